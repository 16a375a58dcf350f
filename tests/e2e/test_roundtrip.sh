#!/bin/sh
# Round trip of every code object of the installed CPython 3.11 standard
# library (test suite included) plus a quickened sample: decode, analyse,
# verify, encode; co_code, co_exceptiontable and co_linetable byte-identical,
# max depth == co_stacksize (except dead handler code, counted), quickened
# bytes deoptimize back. See tests/e2e/test_roundtrip_check.c.
set -eu
: "${BUILD:?}" "${PYTHON:=/usr/bin/python3.11}" "${SUTURE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
check="$BUILD/tests/e2e/test_roundtrip_check"
[ -x "$check" ] || { echo "missing $check (make unit)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" "$SUTURE_ROOT/tests/fixtures/codedump.py" "$work/stdlib.dump" --stdlib --sample 2>"$work/dump.log"
cat "$work/dump.log"
"$check" "$work/stdlib.dump" 50 | tee "$work/out"
# The corpus must be the real thing, not an empty or trivial dump.
codes=$(sed -n 's/^code objects: \([0-9]*\).*/\1/p' "$work/out")
ext=$(sed -n 's/.*with EXTENDED_ARG: \([0-9]*\).*/\1/p' "$work/out")
quick=$(sed -n 's/^quickened: \([0-9]*\).*/\1/p' "$work/out")
[ "$codes" -gt 50000 ] || { echo "only $codes code objects"; exit 1; }
[ "$ext" -gt 100 ] || { echo "only $ext code objects with EXTENDED_ARG"; exit 1; }
spec=$(sed -n 's/^distinct specialized opcodes seen: \([0-9]*\)/\1/p' "$work/out")
[ "$quick" -gt 10 ] || { echo "only $quick quickened code objects"; exit 1; }
[ "$spec" -gt 30 ] || { echo "only $spec specialized opcodes exercised"; exit 1; }
echo "roundtrip: ok"
