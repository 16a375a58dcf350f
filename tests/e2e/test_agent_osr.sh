#!/bin/sh
# Live replacement of a running loop (docs/design.md §8, OSR): the
# function's frame is suspended in an inlined Python call when the patch
# arrives; the agent gives that frame the patched code (same offsets), and
# the loop's next iteration runs it without the function returning. Both
# interpreters, LD_PRELOAD and remote injection.
. "$(dirname "$0")/test_agent_lib.sh"

for py in $(pythons_dbg); do
	for how in preload plain; do
		n="o-$how-$(pytag "$py")"
		opt=""; [ $how = preload ] && opt=-n
		start_target "$n" $how "$py" "$FIX/osr_target.py" "$W/$n"
		sleep 0.1
		"$CLIENT" $opt "$TP" patch "$W/$n.spec" >"$W/$n.r" 2>&1 || { cat "$W/$n.r"; fail "$py $how: patch"; }
		grep -q 'frames=[1-9]' "$W/$n.r" || { cat "$W/$n.r"; fail "$py $how: the running frame was not switched"; }
		wait_pid "$TP" 30; rc=$?
		[ $rc -eq 0 ] || { cat "$W/$n.out" "$W/$n.err"; fail "$py $how: loop did not pick the patch up"; }
		echo "ok: $py $how: $(cat "$W/$n.out")"
	done
done
echo PASS
