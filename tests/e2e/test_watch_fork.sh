#!/bin/sh
# fork(): the child keeps the watcher, starts its own agent and opens its
# own channel (named after its own pid); the parent's agent tells its
# debugger (FORKED, asked for by HELLO's tree flag), whose child's crash
# waits until a debugger connects to the child. Both the os.fork() path
# (CPython's after-fork callback starts the child's agent) and a fork()
# CPython does not know of (the child's first exception starts it) are
# tried. A debugger that does not follow the tree hears nothing of the
# child, whose crash is then not held (test_tree_*.sh: the tools).
. "$(dirname "$0")/test_agent_lib.sh"

for py in $(pythons); do
	for how in os c; do
		n="k-$(pytag "$py")-$how"
		start_target "$n" preload "$py" "$FIX/fork_target.py" "$W/$n" "$how"
		start_client "$n" -n -f "$TP" watch 1 20
		touch "$W/$n.go"
		wait_file "$W/$n.child" 10
		child=$(cat "$W/$n.child")
		wait_grep "^forked pid=$child ppid=$TP\$" "$W/$n.client" 10
		[ -S "/tmp/suture-$(id -u)/agent-$child.sock" ] || fail "$py $how: no channel of its own"
		# The child's crash waited for us.
		"$CLIENT" -n "$child" watch 1 10 >"$W/$n.child.client" 2>&1 ||
			{ cat "$W/$n.child.client" "$W/$n.err"; fail "$py $how: child's crash not reported"; }
		grep -q "^crash .*msg='child-crash'" "$W/$n.child.client" ||
			{ cat "$W/$n.child.client"; fail "$py $how: not the child's crash"; }
		wait_pid "$TP" 30; rc=$?
		[ $rc -eq 1 ] || { cat "$W/$n.err"; fail "$py $how: parent exit $rc"; }
		grep -q '^child exit 1$' "$W/$n.out" || { cat "$W/$n.out" "$W/$n.err"; fail "$py $how: child"; }
		wait_pid "$TC" 20
		[ "$(grep -c '^crash ' "$W/$n.client")" = 1 ] || { cat "$W/$n.client"; fail "$py $how: reports"; }
		grep -q "^crash .*msg='parent-crash'" "$W/$n.client" || fail "$py $how: not the parent's crash"
		echo "ok: $py $how: the child has its own agent, reported, its crash held for it"
	done
	# Without the tree flag: nothing about the child, its crash goes on at once.
	n="k-$(pytag "$py")-plain"
	start_target "$n" preload "$py" "$FIX/fork_target.py" "$W/$n" os
	start_client "$n" -n "$TP" watch 1 20
	touch "$W/$n.go"
	wait_pid "$TP" 30; rc=$?
	[ $rc -eq 1 ] || { cat "$W/$n.err"; fail "$py plain: parent exit $rc"; }
	wait_pid "$TC" 20
	! grep -q '^forked' "$W/$n.client" || fail "$py plain: FORKED without the tree flag"
	grep -q "^crash .*msg='parent-crash'" "$W/$n.client" || fail "$py plain: parent's crash"
	echo "ok: $py: a debugger that does not follow the tree is not told"
done
echo PASS
