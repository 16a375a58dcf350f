#!/bin/sh
# A patch (new co_code pointing one LOAD_CONST at an appended constant, one
# appended name) is built into a code object by the agent and installed on
# every function sharing the original: aliases, a second function on the
# same code, callbacks, bound methods captured before, a decorated
# function's wrapped original, closures made before and after, nested code
# (inner function, list comprehension, lambda) through their parents'
# co_consts. Every path returns the new value afterwards, including call
# sites that were specialized before. Appended constants name a builtin
# (KeyError) and a helper (guard_match), resolved in the target. A code
# address that is not live and an unknown helper are refused. Both
# interpreters, LD_PRELOAD and remote injection. The agent's own log
# (SUTURE_AGENT_VERBOSE) names each function given the new code: value's
# code must reach both of its functions (value, and twin made on the same
# code), not one of them plus the module's.
. "$(dirname "$0")/test_agent_lib.sh"

for py in $(pythons_dbg); do
	for how in preload plain; do
		n="p-$how-$(pytag "$py")"
		opt=""; [ $how = preload ] && opt=-n
		SUTURE_AGENT_VERBOSE=1 start_target "$n" $how "$py" "$FIX/patch_target.py" "$W/$n"
		# An unknown helper name is refused, nothing installed.
		sed 's/^const helper match_here/const helper no_such_helper/' "$W/$n.spec.value" >"$W/$n.spec.nohelper"
		"$CLIENT" $opt "$TP" patch "$W/$n.spec.nohelper" >"$W/$n.r.nohelper" 2>&1 &&
			fail "$py: an unknown helper was accepted"
		grep -q "status=-22 .*no helper named 'no_such_helper'" "$W/$n.r.nohelper" ||
			{ cat "$W/$n.r.nohelper"; fail "$py: unknown helper message"; }
		for code in value method decorated inner listcomp lambda; do
			"$CLIENT" $opt "$TP" patch "$W/$n.spec.$code" >"$W/$n.r.$code" 2>&1 ||
				{ cat "$W/$n.r.$code"; fail "$py $how: patch $code"; }
		done
		nv=$(grep -c 'patch: function value given the new code' "$W/$n.err")
		[ "$nv" -eq 2 ] || { cat "$W/$n.r.value"; grep 'patch: ' "$W/$n.err";
			fail "$py $how: value's code given to $nv function(s), not to value and twin"; }
		grep -q 'parents=[1-9]' "$W/$n.r.inner" || fail "$py: inner: parent not replaced"
		grep -q 'parents=[1-9]' "$W/$n.r.listcomp" || fail "$py: listcomp: parent not replaced"
		# A patch for a code object that is not live is refused.
		sed 's/^code_addr .*/code_addr 0x10/' "$W/$n.spec.value" >"$W/$n.spec.bogus"
		"$CLIENT" $opt "$TP" patch "$W/$n.spec.bogus" >"$W/$n.r.bogus" 2>&1 &&
			fail "$py: a bogus code address was accepted"
		grep -q 'status=-2 .*not reachable' "$W/$n.r.bogus" || { cat "$W/$n.r.bogus"; fail "$py: bogus"; }
		touch "$W/$n.go"
		wait_pid "$TP" 30; rc=$?
		[ $rc -eq 0 ] || { cat "$W/$n.out" "$W/$n.err"; fail "$py $how: not every path patched"; }
		echo "ok: $py $how: $(cat "$W/$n.out")"
	done
done
echo PASS
