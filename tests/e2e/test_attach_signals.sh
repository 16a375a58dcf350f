#!/bin/sh
# A second signal during detach (issue 15, item 8): a double Ctrl-C,
# timeout(1)'s TERM sent twice, INT then TERM. suture-attach --watch is
# attached to a target whose guard keeps firing (tests/fixtures/agent/
# signals_target.py, the GIL busy, so the detach takes a few ms), then gets
# two signals SIGPAIR_DELAY ms apart (tests/fixtures/agent/sigpair.py).
# Every one of ROUNDS rounds (default 40) must detach: the "detached" line
# printed and exit status 0 (suture-attach(1)). No firing is lost: the
# HITS the agent sends before BYE are stored, so at the end the store's
# hit count equals the count the target kept itself.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
AUDIT="$BUILD/bin/suture-audit"
FIX="$SUTURE_ROOT/tests/fixtures/agent"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
ROUNDS=${ROUNDS:-40}
S="$W/store"

"$PYTHON" "$FIX/signals_target.py" "$W" >"$W/target.out" 2>"$W/target.err" &
TP=$!
PIDS="$PIDS $TP"
wait_file "$W/ready" 10

# watch: a watcher, its stderr in $W/watch.err, its pid in TW.
watch() {
	# A fresh file: the last one says "watching" already (and a signal
	# sent before the watcher installs its handlers is lost).
	rm -f "$W/watch.err"
	"$ATTACH" --pid "$TP" --watch --store "$S" 2>"$W/watch.err" &
	TW=$!
	PIDS="$PIDS $TW"
	wait_grep "^\[suture\] watching pid $TP\$" "$W/watch.err" 20
}

# The first crash, healed in flight; from then on the guard fires.
watch
touch "$W/go"
wait_grep "^\[suture\] stored patch __main__.lookup:" "$W/watch.err"
sleep 0.2

good=0
i=0
while [ $i -lt "$ROUNDS" ]; do
	[ $i -eq 0 ] || watch
	sleep "0.0$(( i % 5 ))"  # firings pile up in the agent meanwhile
	case $(( i % 4 )) in
	0) pair="INT 0 INT" ;;
	1) pair="INT $(( i % 7 )) INT" ;;
	2) pair="TERM $(( i % 5 )) TERM" ;;
	3) pair="INT $(( i % 9 )) TERM" ;;
	esac
	# shellcheck disable=SC2086
	"$PYTHON" "$FIX/sigpair.py" "$TW" $pair
	wait "$TW"
	rc=$?
	PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$TW" | tr '\n' ' ')
	if [ $rc -eq 0 ] && grep -q "^\[suture\] detached: watcher removed" "$W/watch.err"; then
		good=$((good + 1))
	else
		echo "round $i ($pair): exit $rc"
		sed 's/^/    /' "$W/watch.err"
	fi
	i=$((i + 1))
done
[ $good -eq "$ROUNDS" ] || fail "$good of $ROUNDS rounds detached with status 0"
ok "$good of $ROUNDS rounds detached and exited 0 after two signals"

# Every firing stored: a last watcher collects what fired since, and
# detaches once.
touch "$W/stop"
wait_file "$W/count" 10
watch
kill -INT "$TW"
wait_pid "$TW" 10 || { cat "$W/watch.err"; fail "the last watcher's exit status"; }
touch "$W/quit"
wait_pid "$TP" 10 || { cat "$W/target.err"; fail "the target saw a call not healed"; }
want=$(cat "$W/count")
"$AUDIT" --store "$S" --json >"$W/audit.json" || fail "suture-audit --json"
got=$("$PYTHON" -c 'import json, sys
print(sum(p["hits"] for p in json.load(open(sys.argv[1]))["patches"]))' "$W/audit.json")
[ "$got" -eq "$want" ] || fail "the store counts $got firings, the target $want"
ok "the store counts every firing: $got"
echo PASS
