#!/bin/sh
# A running interpreter with a thread already started gets the agent by
# remote dlopen (no LD_PRELOAD); a thread started after the injection and
# the one started before both have their crashes reported, with their own
# native thread ids.
. "$(dirname "$0")/test_agent_lib.sh"

for py in $(pythons); do
	n="t-$(basename "$(dirname "$(dirname "$py")")")"
	start_target "$n" plain "$py" "$FIX/watch_target.py" "$W/$n" threads
	grep -q libsuture_agent "/proc/$TP/maps" && fail "agent mapped before injection"
	start_client "$n" "$TP" watch 2 30
	grep -q '^how=1 ' "$W/$n.client" || { cat "$W/$n.client"; fail "$py: not injected by dlopen"; }
	touch "$W/$n.go"
	wait_pid "$TP" 60; rc=$?
	[ $rc -eq 0 ] || { cat "$W/$n.err"; fail "$py: target exit $rc"; }
	wait_pid "$TC" 10 || { cat "$W/$n.client.err"; fail "$py: client"; }
	"$PYTHON" "$FIX/check_reports.py" "$W/$n.client" "$W/$n.tb" 2 ||
		{ cat "$W/$n.client"; fail "$py: reports"; }
	echo "ok: $py: thread started before the agent and thread started after both watched"
done
echo PASS
