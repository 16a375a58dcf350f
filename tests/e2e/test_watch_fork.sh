#!/bin/sh
# fork(): the child keeps a pass-through hook and no channel (the
# connection belongs to the parent), so its crash is not reported and it
# exits as it would without the agent; the parent's later crash is.
. "$(dirname "$0")/test_agent_lib.sh"

for py in $(pythons); do
	n="k-$(pytag "$py")"
	start_target "$n" preload "$py" "$FIX/fork_target.py" "$W/$n"
	start_client "$n" -n "$TP" watch 2 10
	touch "$W/$n.go"
	wait_pid "$TP" 30; rc=$?
	[ $rc -eq 1 ] || { cat "$W/$n.err"; fail "$py: parent exit $rc"; }
	grep -q '^child exit 1$' "$W/$n.out" || { cat "$W/$n.out" "$W/$n.err"; fail "$py: child"; }
	wait_pid "$TC" 20
	[ "$(grep -c '^crash ' "$W/$n.client")" = 1 ] || { cat "$W/$n.client"; fail "$py: reports"; }
	grep -q "^crash .*msg='parent-crash'" "$W/$n.client" || fail "$py: not the parent's crash"
	echo "ok: $py: the forked child is left alone, the parent is watched"
done
echo PASS
