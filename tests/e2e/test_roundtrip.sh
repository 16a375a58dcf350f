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

# More corpora when this machine has them: Debian's dist-packages compiled
# by the same interpreter, and the standard library of another CPython 3.11
# (e.g. a pyenv 3.11.7 first on PATH): 3.11.x share one bytecode format.
if [ -d /usr/lib/python3/dist-packages ]; then
	"$PYTHON" "$SUTURE_ROOT/tests/fixtures/codedump.py" "$work/dist.dump" \
		--dir=/usr/lib/python3/dist-packages
	"$check" "$work/dist.dump" 50
fi
other=$(command -v python3.11 || true)
if [ -n "$other" ] && [ "$("$other" -c 'import sys; print(sys.version)' 2>/dev/null)" != \
	"$("$PYTHON" -c 'import sys; print(sys.version)')" ] &&
	"$other" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
	echo "also: $("$other" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
	"$other" "$SUTURE_ROOT/tests/fixtures/codedump.py" "$work/other.dump" --stdlib --no-tests --sample
	"$check" "$work/other.dump" 50
else
	echo "no other CPython 3.11 on PATH: second interpreter skipped"
fi
echo "roundtrip: ok"
