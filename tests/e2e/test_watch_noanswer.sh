#!/bin/sh
# When no debugger answers, the exception goes on untouched: the same
# traceback on stderr and the same exit code as without the agent, whether
# no debugger is connected, the debugger holds the report past the park
# bound, or the debugger is killed with SIGKILL while the thread is parked
# (the agent sees EOF and lets the thread go at once, long before its bound).
. "$(dirname "$0")/test_agent_lib.sh"

for py in $(pythons); do
	tag=$(basename "$(dirname "$(dirname "$py")")")
	# Reference: no agent at all.
	start_target "ref-$tag" plain "$py" "$FIX/watch_target.py" "$W/ref-$tag" crash
	touch "$W/ref-$tag.go"
	wait_pid "$TP" 30; ref_rc=$?
	[ $ref_rc -eq 1 ] || fail "$py: reference exit $ref_rc"
	grep -q "KeyError: 'missing'" "$W/ref-$tag.err" || fail "$py: reference traceback"

	same() { # name
		cmp -s "$W/ref-$tag.err" "$W/$1.err" ||
			{ diff "$W/ref-$tag.err" "$W/$1.err"; fail "$py: $1: traceback differs"; }
	}

	# Agent loaded, nobody connected.
	start_target "none-$tag" preload "$py" "$FIX/watch_target.py" "$W/none-$tag" crash
	touch "$W/none-$tag.go"
	wait_pid "$TP" 30; rc=$?
	[ $rc -eq $ref_rc ] || fail "$py: no debugger: exit $rc"
	same "none-$tag"

	# A debugger that never answers: the 300 ms bound lets it go.
	start_target "hold-$tag" preload "$py" "$FIX/watch_target.py" "$W/hold-$tag" crash
	start_client "hold-$tag" -n -t 300 "$TP" watch 1 30 hold
	touch "$W/hold-$tag.go"
	wait_pid "$TP" 30; rc=$?
	[ $rc -eq $ref_rc ] || fail "$py: held: exit $rc"
	grep -q "^crash .*type=KeyError" "$W/hold-$tag.client" || fail "$py: held: no report"
	same "hold-$tag"
	wait "$TC" 2>/dev/null

	# A debugger killed with SIGKILL while the thread is parked for up to 60 s.
	start_target "kill-$tag" preload "$py" "$FIX/watch_target.py" "$W/kill-$tag" crash
	start_client "kill-$tag" -n -t 60000 "$TP" watch 1 60 hold
	touch "$W/kill-$tag.go"
	_n=0
	while ! grep -q '^crash ' "$W/kill-$tag.client"; do
		_n=$((_n + 1)); [ $_n -gt 1000 ] && fail "$py: kill: no report"; sleep 0.02
	done
	kill -0 "$TP" || fail "$py: kill: target not parked"
	kill -9 "$TC"
	start=$(date +%s)
	wait_pid "$TP" 10; rc=$?
	[ $rc -eq $ref_rc ] || fail "$py: debugger killed: exit $rc"
	[ $(( $(date +%s) - start )) -le 5 ] || fail "$py: target stayed parked after the debugger died"
	same "kill-$tag"
	echo "ok: $py: no debugger, a silent one, a killed one: exception untouched"
done
echo PASS
