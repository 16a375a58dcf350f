#!/bin/sh
# A hand-written pre-fork server whose workers import their module
# (lateapp.py) after the fork, the master never: under suture-run and under
# suture-attach --pid MASTER --watch, the bad record's crash in a worker is
# healed and stored; a worker killed by its pid is respawned, its import of
# lateapp.py meets the stored patch before the module's first line runs
# (TREE_FILES, docs/design.md §15): it answers the bad record with the
# fallback and no new crash is seen. A run with the patch stored already:
# every worker's import gets it, no crash at all. A stale tree socket a
# killed debugger left is removed.
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
ATTACH="$BUILD/bin/suture-attach"
AUDIT="$BUILD/bin/suture-audit"
F="$SUTURE_ROOT/tests/fixtures/tree"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
TREE_LATE=1
export TREE_LATE

patches() { "$AUDIT" --store "$1" --json 2>/dev/null | grep -c '"name"'; }

# scenario NAME LOG STATE: the server runs (its port in STATE.ready), LOG
# is the tool's output.
scenario() {
	n=$1 log=$2 st=$3
	port=$(cat "$st.ready")
	ask() { "$PYTHON" "$F/ask.py" "$port" "$@"; }
	ask a b >"$W/$n.ask1"
	grep -q '^value: 1 pid' "$W/$n.ask1" || { cat "$W/$n.ask1" "$log"; fail "$n: a"; }
	wait_grep '^\[suture\] pid [0-9]*: stored patch lateapp.handle' "$log" 10
	# Until both workers answer the bad record with the fallback.
	i=0
	: >"$W/$n.ask2"
	while [ "$(grep '^value: None pid' "$W/$n.ask2" | sort -u | wc -l)" -lt 2 ]; do
		i=$((i + 1))
		[ $i -le 40 ] || { cat "$W/$n.ask2" "$log"; fail "$n: both workers not healed"; }
		ask b >>"$W/$n.ask2"
	done
	crashes=$(grep -c 'crash seen' "$log")
	cp "$st.workers" "$W/$n.old"
	victim=$(head -n 1 "$W/$n.old")
	kill -KILL "$victim"
	wait_for 10 sh -c "! grep -qx '$victim' '$st.workers' && [ \$(wc -l <'$st.workers') -eq 2 ]" ||
		fail "$n: no worker respawned"
	fresh=$(grep -vxF -f "$W/$n.old" "$st.workers")
	i=0
	: >"$W/$n.ask3"
	while ! grep -q "pid $fresh\$" "$W/$n.ask3"; do
		i=$((i + 1))
		[ $i -le 40 ] || { cat "$W/$n.ask3" "$log"; fail "$n: the respawned worker $fresh never answered"; }
		ask b >>"$W/$n.ask3"
	done
	! grep -v '^value: None pid' "$W/$n.ask3" || { cat "$W/$n.ask3" "$log"; fail "$n: respawned worker not healed"; }
	[ "$(grep -c 'crash seen' "$log")" -eq "$crashes" ] ||
		{ cat "$log"; fail "$n: a new crash after the respawn"; }
	grep -q "^\[suture\] pid $fresh: 1 stored patch(es) installed before lateapp.py ran" "$log" ||
		{ cat "$log"; fail "$n: the respawned worker's import did not get the patch first"; }
}

# A debugger killed with SIGKILL left its socket (tree-PID.sock in the
# per-user channel directory): the next one removes it (its pid is gone).
# The directory is XDG_RUNTIME_DIR's suture/, else /tmp/suture-UID.
if [ -n "${XDG_RUNTIME_DIR:-}" ]; then CHAN="$XDG_RUNTIME_DIR/suture"; else CHAN="/tmp/suture-$(id -u)"; fi
mkdir -p -m 700 "$CHAN"
sh -c 'exit 0' &
DEAD=$!
wait "$DEAD"
STALE="$CHAN/tree-$DEAD.sock"
"$PYTHON" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$STALE"

# Under suture-run.
S="$W/store-run"
start_group run "$W/run.ready" "$RUN" --python "$PYTHON" --store "$S" "$F/prefork.py" "$W/run"
RUNPID=$BG
scenario run "$W/run.err" "$W/run"
[ ! -e "$STALE" ] || { rm -f "$STALE"; fail "run: a stale tree socket was left"; }
[ "$(patches "$S")" -eq 1 ] || { cat "$W/run.err"; fail "run: not one patch stored"; }
kill -TERM "$RUNPID"
wait_pid "$RUNPID" 20 || :
ok "suture-run: a worker respawned after the patch imports it healed, no new crash"

# Again with the patch stored: both workers' imports get it, no crash.
rm -f "$W/run.ready"
start_group run2 "$W/run.ready" "$RUN" --python "$PYTHON" --store "$S" "$F/prefork.py" "$W/run"
RUNPID=$BG
port=$(cat "$W/run.ready")
wait_for 10 sh -c "[ \$(grep -c 'stored patch(es) installed before lateapp.py ran' '$W/run2.err') -ge 2 ]" ||
	{ cat "$W/run2.err"; fail "run again: the workers' imports did not get the patch"; }
"$PYTHON" "$F/ask.py" "$port" b b b b >"$W/run2.ask"
[ "$(grep -c '^value: None pid' "$W/run2.ask")" -eq 4 ] || { cat "$W/run2.ask"; fail "run again: not healed"; }
kill -TERM "$RUNPID"
wait_pid "$RUNPID" 20 || :
! grep -q 'crash seen' "$W/run2.err" || { cat "$W/run2.err"; fail "run again: a crash"; }
ok "suture-run again: every worker's import gets the stored patch, no crash"

# Under suture-attach --watch alone.
S="$W/store-att"
start_group att "$W/att.ready" "$PYTHON" "$F/prefork.py" "$W/att"
master=$BG
"$ATTACH" --pid "$master" --watch --store "$S" >"$W/att.watch" 2>&1 &
AP=$!
track "$AP"
wait_for 20 sh -c "[ \$(grep -c '^\[suture\] watching pid' '$W/att.watch') -ge 3 ]" ||
	{ cat "$W/att.watch"; fail "att: the tree is not watched"; }
scenario att "$W/att.watch" "$W/att"
kill -INT "$AP"
wait_pid "$AP" 20 || { cat "$W/att.watch"; fail "att: suture-attach failed"; }
[ "$(patches "$S")" -eq 1 ] || { cat "$W/att.watch"; fail "att: not one patch stored"; }
ok "suture-attach --watch: the same"
echo PASS
