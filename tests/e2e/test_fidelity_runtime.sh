#!/bin/sh
# The fidelity sweep's slice for code that is not loaded from library
# files (issue 17): the frozen import modules (_frozen_importlib, set up
# before any import, whose functions the sweep swaps in place) and code
# compiled at run time (compile(): doctest's examples; exec()/eval() of
# text: dataclasses' and namedtuple's generated methods) get the probe,
# and CPython's suites for them compare case by case with a baseline run
# that has the same hooks; python3.11 and the debug build.
set -eu
. "$(dirname "$0")/lib.sh"
for f in "$BUILD/tests/e2e/test_guards_tool" "$BUILD/lib/libsuture_agent.so"; do
	[ -e "$f" ] || fail "missing $f (make all unit)"
done
export SUTURE_AGENT_NO_START=1 SWEEP_RUNTIME=1
export SWEEP_FILES="importlib/_bootstrap.py importlib/_bootstrap_external.py posixpath.py
genericpath.py doctest.py dataclasses.py collections/__init__.py"
sweep=$SUTURE_ROOT/tests/fixtures/guards/sweep.py
n=0
for py in $(pythons python dbg); do
	k=$(basename "$py")
	# doctest's examples once (each compiled example runs the engine).
	SUITES="test_dataclasses test_importlib.test_api"
	[ "$n" -eq 0 ] && SUITES="test_doctest $SUITES"
	want="$(echo "$SUITES" | wc -w) passed, 0 failed"
	"$py" "$sweep" prepare "$W/cache-$k" >/dev/null || fail "$py: prepare"
	# shellcheck disable=SC2086
	out=$("$py" "$sweep" compare "$W/cache-$k" "$W/out-$k" $SUITES 2>&1) || true
	echo "$out" | sed "s|^|$k: |"
	[ "$(echo "$out" | tail -1)" = "$want" ] || fail "$py: the runtime slice differs"
	for s in $SUITES; do
		log=$W/out-$k/$s.patched.log
		grep -q "code compiled at run time probed" "$log" || fail "$py: $s: no runtime probe"
		grep -q "^sweep: [1-9][0-9]* code objects compiled at run time probed" "$log" ||
			{ grep "^sweep:" "$log"; fail "$py: $s: nothing compiled at run time was probed"; }
	done
	r=$(cat "$W"/out-"$k"/*.patched.log | sed -n 's/^sweep: \([0-9]*\) code objects compiled at run time probed/\1/p' |
		awk '{ s += $1 } END { print s }')
	ok "$py: frozen importlib and $r code objects compiled at run time probed, $SUITES identical"
	n=$((n + 1))
done
[ "$n" -gt 0 ] || skip "no 3.11 interpreter here"
echo PASS
