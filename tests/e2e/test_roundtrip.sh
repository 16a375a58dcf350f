#!/bin/sh
# Round trip of every code object of the installed CPython 3.11 standard
# library (test suite included) plus a quickened sample: decode, analyse,
# verify, encode; co_code, co_exceptiontable and co_linetable byte-identical,
# max depth == co_stacksize (except dead handler code, counted), quickened
# bytes deoptimize back. See tests/e2e/test_roundtrip_check.c.
set -eu
. "$(dirname "$0")/lib.sh"
check="$BUILD/tests/e2e/test_roundtrip_check"
[ -x "$check" ] || fail "missing $check (make unit)"
work=$W
"$PYTHON" "$SUTURE_ROOT/tests/fixtures/codedump.py" "$work/stdlib.dump" --stdlib --sample 2>"$work/dump.log"
cat "$work/dump.log"
"$check" "$work/stdlib.dump" 50 | tee "$work/out"
# The corpus must be the real thing, not an empty or trivial dump.
codes=$(sed -n 's/^code objects: \([0-9]*\).*/\1/p' "$work/out")
ext=$(sed -n 's/.*with EXTENDED_ARG: \([0-9]*\).*/\1/p' "$work/out")
quick=$(sed -n 's/^quickened: \([0-9]*\).*/\1/p' "$work/out")
[ "$codes" -gt 50000 ] || fail "only $codes code objects"
[ "$ext" -gt 100 ] || fail "only $ext code objects with EXTENDED_ARG"
spec=$(sed -n 's/^distinct specialized opcodes seen: \([0-9]*\)/\1/p' "$work/out")
[ "$quick" -gt 10 ] || fail "only $quick quickened code objects"
[ "$spec" -gt 30 ] || fail "only $spec specialized opcodes exercised"

# More corpora when this machine has them: Debian's dist-packages compiled
# by the same interpreter, and the standard library of another CPython 3.11
# (a pyenv build): 3.11.x share one bytecode format.
if [ -d /usr/lib/python3/dist-packages ]; then
	"$PYTHON" "$SUTURE_ROOT/tests/fixtures/codedump.py" "$work/dist.dump" \
		--dir=/usr/lib/python3/dist-packages
	"$check" "$work/dist.dump" 50
fi
other=$(py311_find pyenv || true)
if [ -n "$other" ] && [ "$("$other" -c 'import sys; print(sys.version)' 2>/dev/null)" != \
	"$("$PYTHON" -c 'import sys; print(sys.version)')" ]; then
	echo "also: $("$other" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
	"$other" "$SUTURE_ROOT/tests/fixtures/codedump.py" "$work/other.dump" --stdlib --no-tests --sample
	"$check" "$work/other.dump" 50
else
	echo "absent: another CPython 3.11's standard library, not tested: $(py311_why pyenv)"
fi
echo "roundtrip: ok"
