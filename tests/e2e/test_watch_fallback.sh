#!/bin/sh
# Where code cannot be written, the watcher picks the C trace-function
# fallback by itself and says so: the target turns on
# Memory-Deny-Write-Execute (prctl PR_SET_MDWE, Linux 6.3+), so no code page
# can be made writable; the agent, injected by remote dlopen, reports watch
# mode 3 with the reason, and the 13 structural crashes of the "reported"
# scenario (threads started after the injection included) are reported
# where they happened. Both interpreters.
. "$(dirname "$0")/test_agent_lib.sh"

for py in $(pythons); do
	n="f-$(pytag "$py")"
	WATCH_TARGET_MDWE=1 start_target "$n" plain "$py" "$FIX/watch_target.py" "$W/$n" reported
	start_client "$n" "$TP" watch 13 60
	grep -q '^how=1 mode=3 .*detail=cannot write PyTraceBack_Here.*trace function on every thread' \
		"$W/$n.client" || { cat "$W/$n.client"; fail "$py: fallback not selected or not reported"; }
	touch "$W/$n.go"
	wait_pid "$TP" 60; rc=$?
	[ $rc -eq 1 ] || { cat "$W/$n.out" "$W/$n.err"; fail "$py: target exit $rc"; }
	wait_pid "$TC" 10 || { cat "$W/$n.client.err"; fail "$py: client"; }
	"$PYTHON" "$FIX/check_reports.py" "$W/$n.client" "$W/$n.tb" 13 || fail "$py: reports"
	echo "ok: $py: W^X target, trace fallback chosen and reported, 13 crashes reported"
done
echo PASS
