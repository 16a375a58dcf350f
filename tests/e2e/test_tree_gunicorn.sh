#!/bin/sh
# gunicorn (Debian's) with 2 sync workers serving a Flask app (preloaded in
# the master; TREE_PRELOAD=0, test_tree_gunicorn_nopreload.sh: imported by
# each worker after the fork), under suture-run and under suture-attach --pid MASTER --watch
# alone: the bad record's crash in a worker is healed (the request that
# crashed, and one a sibling served before the patch reached it, get a 500;
# every later one the fallback, from both workers), one patch is stored; a
# worker killed by its pid is respawned by the master already healed, and
# answers the bad record with the fallback without a new crash (without
# --preload: its import of the app met the stored patch before its first
# line ran).
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
ATTACH="$BUILD/bin/suture-attach"
AUDIT="$BUILD/bin/suture-audit"
F="$SUTURE_ROOT/tests/fixtures/tree"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
GUNICORN=/usr/bin/gunicorn
[ -x "$GUNICORN" ] || skip "needs gunicorn (apt-get install gunicorn)"
"$PYTHON" -c 'import flask' 2>/dev/null || skip "needs python3-flask"

patches() { "$AUDIT" --store "$1" --json 2>/dev/null | grep -c '"name"'; }
free_port() {
	"$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# scenario NAME LOG: gunicorn runs (its master's pid in $W/NAME.ready), LOG
# is the tool's output.
scenario() {
	n=$1 log=$2
	get() { "$PYTHON" "$F/ask.py" --http "$TREE_PORT" "$@"; }
	get a b >"$W/$n.ask1"
	grep -q '^value: 1 pid' "$W/$n.ask1" || { cat "$W/$n.ask1" "$log"; fail "$n: /a"; }
	wait_grep '^\[suture\] pid [0-9]*: stored patch gapp.item' "$log" 20
	# Until both workers answer the bad record with the fallback.
	i=0
	: >"$W/$n.ask2"
	while [ "$(grep '^value: None pid' "$W/$n.ask2" | sort -u | wc -l)" -lt 2 ]; do
		i=$((i + 1))
		[ $i -le 40 ] || { cat "$W/$n.ask2" "$log"; fail "$n: both workers not healed"; }
		get b >>"$W/$n.ask2"
	done
	[ "$(grep -c '^error' "$W/$n.ask2")" -le 1 ] || { cat "$W/$n.ask2" "$log"; fail "$n: 500s after the patch"; }
	crashes=$(grep -c 'crash seen' "$log")
	victim=$(grep '^value: None pid' "$W/$n.ask2" | tail -n 1 | sed 's/.*pid //')
	kill -KILL "$victim"
	# Its successor: a third worker announced by the master's agent.
	wait_for 20 sh -c "[ \$(grep -c '^\[suture\] watching pid [0-9]* (of the tree' '$log') -ge 3 ]" ||
		{ cat "$log"; fail "$n: the respawned worker is not watched"; }
	fresh=$(grep '^\[suture\] watching pid [0-9]* (of the tree' "$log" | tail -n 1 |
		sed 's/.*watching pid \([0-9]*\).*/\1/')
	[ "$fresh" != "$victim" ] || fail "$n: no new worker"
	i=0
	: >"$W/$n.ask3"
	while ! grep -q "pid $fresh\$" "$W/$n.ask3"; do
		i=$((i + 1))
		[ $i -le 40 ] || { cat "$W/$n.ask3" "$log"; fail "$n: the respawned worker $fresh never answered"; }
		get b >>"$W/$n.ask3"
	done
	! grep -v '^value: None pid' "$W/$n.ask3" || { cat "$log"; fail "$n: respawned worker not healed"; }
	[ "$(grep -c 'crash seen' "$log")" -eq "$crashes" ] ||
		{ cat "$log"; fail "$n: a new crash after the respawn"; }
	if [ "${TREE_PRELOAD:-1}" = 0 ]; then
		grep -q "^\[suture\] pid $fresh: 1 stored patch(es) installed before gapp.py ran" "$log" ||
			{ cat "$log"; fail "$n: the respawned worker's import did not get the patch first"; }
	fi
}

# Under suture-run.
TREE_PORT=$(free_port) TREE_STATE="$W/run"
export TREE_PORT TREE_STATE
start_group run "$W/run.ready" "$RUN" --python "$PYTHON" --store "$W/store-run" \
	"$GUNICORN" -c "$F/gconf.py" --chdir "$F" gapp:app
RUNPID=$BG
scenario run "$W/run.err"
[ "$(patches "$W/store-run")" -eq 1 ] || { cat "$W/run.err"; fail "run: not one patch stored"; }
kill -TERM "$RUNPID"
wait_pid "$RUNPID" 30 || :
ok "gunicorn under suture-run: healed in both workers, a respawned worker healed without a crash"

# Under suture-attach --watch alone.
TREE_PORT=$(free_port) TREE_STATE="$W/att"
export TREE_PORT TREE_STATE
start_group att "$W/att.ready" "$PYTHON" "$GUNICORN" -c "$F/gconf.py" --chdir "$F" gapp:app
master=$(cat "$W/att.ready")
wait_for 20 sh -c "[ \$(pgrep -P $master | wc -l) -ge 2 ]" || fail "att: no workers"
"$ATTACH" --pid "$master" --watch --store "$W/store-att" >"$W/att.watch" 2>&1 &
AP=$!
track "$AP"
wait_for 20 sh -c "[ \$(grep -c '^\[suture\] watching pid' '$W/att.watch') -ge 3 ]" ||
	{ cat "$W/att.watch"; fail "att: the tree is not watched"; }
scenario att "$W/att.watch"
kill -INT "$AP"
wait_pid "$AP" 20 || { cat "$W/att.watch"; fail "att: suture-attach failed"; }
[ "$(patches "$W/store-att")" -eq 1 ] || { cat "$W/att.watch"; fail "att: not one patch stored"; }
ok "gunicorn under suture-attach --watch: the same"
echo PASS
