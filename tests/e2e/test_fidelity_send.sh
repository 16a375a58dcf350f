#!/bin/sh
# SEND loops (yield from, await, async for, async with) under the fidelity
# probe: gen.throw(), close() and asyncio cancellation into a suspended loop
# behave as without it, under every 3.11 here and Debian's debug build,
# whose `STACK_LEVEL() >= level` assertion aborts on an exception entry
# that pops below what CPython leaves on the stack there (issue 17, item 1).
set -eu
. "$(dirname "$0")/lib.sh"
for f in "$BUILD/tests/e2e/test_guards_tool" "$BUILD/lib/libsuture_agent.so"; do
	[ -e "$f" ] || fail "missing $f (make all unit)"
done
export SUTURE_AGENT_NO_START=1
n=0
for py in $(pythons python pyenv dbg); do
	out=$("$py" "$SUTURE_ROOT/tests/fixtures/guards/send_throw.py" 2>&1) ||
		{ echo "$out" | tail -5; fail "$py: SEND loops under the probe"; }
	[ "$(echo "$out" | grep -c .)" -eq 8 ] || { echo "$out"; fail "$py: expected 8 cases"; }
	ok "$py: 8 throws into probed SEND loops behave as unprobed"
	n=$((n + 1))
done
[ "$n" -gt 0 ] || skip "no 3.11 interpreter here"
echo PASS
