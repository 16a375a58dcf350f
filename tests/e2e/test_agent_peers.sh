#!/bin/sh
# No peer of the agent's channel may delay another (issue 15, item 5): while
# suture-attach --watch serves a target (tests/fixtures/agent/peers_target.py),
# peers that go silent (tests/fixtures/agent/peer.py) are connected and left
# there: an auditor session stopped after its WELCOME (Ctrl-Z), one stopped
# in the middle of a frame, a connection that sends nothing, one that stops
# inside a frame header, 64 silent connections at once. Each time a crash
# follows, and it must still be healed in flight (the job gets None for the
# bad record) within its normal time, far under the agent's 2 s park bound.
# Then: suture-audit --pid is served as an auditor beside them; with the
# debugger killed (the agent serves on), a silent connection made first
# does not keep the next watcher out; a watcher detaches cleanly with a
# stopped auditor connected.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
AUDIT="$BUILD/bin/suture-audit"
FIX="$SUTURE_ROOT/tests/fixtures/agent"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
# The heal's wall time allowed, in ms: a crash healed at all took less
# than the park bound (2000 ms); this also catches a stall of a second.
LIMIT_MS=${PEERS_LIMIT_MS:-900}

mkfifo "$W/cmd"
: >"$W/out"
"$PYTHON" "$FIX/peers_target.py" "$W" 2>"$W/target.err" &
TP=$!
PIDS="$PIDS $TP"
wait_file "$W/ready" 10

start_watch() {
	rm -f "$W/watch.err" # a fresh file: the last one says "watching" already
	"$ATTACH" --pid "$TP" --watch --store "$W/store" 2>"$W/watch.err" &
	TW=$!
	PIDS="$PIDS $TW"
	wait_grep "^\[suture\] watching pid $TP\$" "$W/watch.err"
}

# crash N WHAT: crash job N, wait for its line; healed within LIMIT_MS.
crash() {
	echo "crash $1" >"$W/cmd"
	wait_grep "^crash $1 " "$W/out" 15
	line=$(grep "^crash $1 " "$W/out")
	case "$line" in
	"crash $1 healed "*) ;;
	*) cat "$W/watch.err"; fail "$2: $line" ;;
	esac
	ms=${line#"crash $1 healed "}
	[ "$ms" -le "$LIMIT_MS" ] || { cat "$W/watch.err"; fail "$2: healed in $ms ms (over $LIMIT_MS)"; }
	ok "$2: crash healed in flight in $ms ms"
}

# peer NAME MODE [COUNT]: a peer in place (or refused by the agent).
peer() {
	"$PYTHON" "$FIX/peer.py" "$TP" "$2" "$W/$1.ready" ${3:-} 2>"$W/$1.err" &
	PIDS="$PIDS $!"
	wait_file "$W/$1.ready" 10
}

start_watch
crash 0 "no peer"

peer a1 auditor
[ "$(cat "$W/a1.ready")" = ok ] || fail "the auditor peer was refused"
crash 1 "an auditor stopped after WELCOME"

peer a2 auditor-mid
crash 2 "an auditor stopped inside a frame"

peer s1 silent
peer p1 partial
crash 3 "a silent connection and one stopped inside a header"

peer f1 flood 64
crash 4 "64 silent connections"

# The auditor's own session is served beside them all (the flood's
# connections outstay no deadline: refused at first, served after).
n=0
until "$AUDIT" --store "$W/store" --pid "$TP" >"$W/audit.out" 2>"$W/audit.err"; do
	n=$((n + 1))
	[ $n -lt 10 ] || { cat "$W/audit.err"; fail "suture-audit --pid never served"; }
	sleep 0.5
done
[ "$(grep -c '^live ' "$W/audit.out")" -eq 5 ] || { cat "$W/audit.out"; fail "the live listing"; }
ok "suture-audit --pid served beside the stopped peers (5 live patches)"

# The debugger killed, the agent serves on without one: a silent
# connection made first must not keep the next watcher out.
stop_pid "$TW"
peer s2 silent
start_watch
crash 5 "a silent connection made before the watcher"

# Detach with a stopped auditor connected.
peer a3 auditor
kill -INT "$TW"
wait_pid "$TW" 10 || { cat "$W/watch.err"; fail "the watcher did not detach cleanly"; }
grep -q "^\[suture\] detached" "$W/watch.err" || { cat "$W/watch.err"; fail "no detach line"; }
ok "the watcher detached with a stopped auditor connected"
echo quit >"$W/cmd"
wait_pid "$TP" 10 || fail "target exit status"
echo PASS
