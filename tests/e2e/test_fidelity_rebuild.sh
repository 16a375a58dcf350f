#!/bin/sh
# Code objects rebuilt from probed ones (code.replace(), types.CodeType(),
# new bytecode keeping the exception table as test_code does) behave as
# rebuilt from the unprobed ones, under every 3.11 here and Debian's debug
# build; then test_code itself passes with its own functions probed
# (issue 17, item 3).
set -eu
. "$(dirname "$0")/lib.sh"
for f in "$BUILD/tests/e2e/test_guards_tool" "$BUILD/lib/libsuture_agent.so"; do
	[ -e "$f" ] || fail "missing $f (make all unit)"
done
export SUTURE_AGENT_NO_START=1
n=0
for py in $(pythons python pyenv dbg); do
	# Without the fix a debug build loops on an unknown opcode, printing
	# without end: bounded in time and in output.
	rc=0
	timeout 30 "$py" "$SUTURE_ROOT/tests/fixtures/guards/rebuild.py" 2>&1 | head -c 100000 >"$W/out" || rc=$?
	out=$(cat "$W/out")
	echo "$out" | grep -q "^empty with test_code_new_empty's bytecode: raises AssertionError()$" ||
		{ echo "$out" | tail -5; fail "$py: code rebuilt from a probed one"; }
	[ "$(echo "$out" | grep -c .)" -eq 29 ] || { echo "$out" | tail -5; fail "$py: expected 29 cases (rc $rc)"; }
	ok "$py: 29 code objects rebuilt from probed ones behave as from unprobed ones"
	out=$(timeout 60 "$py" "$SUTURE_ROOT/tests/fixtures/guards/fidelity.py" probe --self test_code 2>&1 |
		head -c 100000) || true
	echo "$out" | grep -q "Tests result: SUCCESS\|^Result: SUCCESS" ||
		{ echo "$out" | tail -5; fail "$py: test_code with its own functions probed"; }
	ok "$py: test_code passes with its own functions probed"
	n=$((n + 1))
done
[ "$n" -gt 0 ] || skip "no 3.11 interpreter here"
echo PASS
