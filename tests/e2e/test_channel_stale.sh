#!/bin/sh
# Stale channel files (docs/formats/channel.md, "Stale files"): an agent
# whose process was killed by a signal leaves agent-PID.sock and .lock in
# /tmp/suture-UID. The next debugger lookup (suture-attach --watch on
# another process) and the next agent to open its channel remove them: a
# lock no agent holds whose pid is dead, or whose pid was started after the
# lock was written (reused). A live agent's files, and a fresh unheld lock
# of a live pid (an agent starting), are kept.
set -u
. "$(dirname "$0")/lib.sh"
SA="$BUILD/bin/suture-attach"
AGENT="$BUILD/lib/libsuture_agent.so"
FIX="$SUTURE_ROOT/tests/fixtures/attach_errors"
export SUTURE_AGENT="$AGENT"
CHAN=/tmp/suture-$(id -u)
mkdir -p -m 700 "$CHAN" || fail "mkdir $CHAN"

# A pid that is dead: one we started and killed.
dead_pid() {
	sleep 60 &
	_d=$!
	kill -KILL $_d
	wait $_d 2>/dev/null
	kill -0 $_d 2>/dev/null && fail "pid $_d still exists"
	echo $_d
}

# plant PID [AGE]: the files a killed agent leaves (a bound socket, a lock).
plant() {
	"$PYTHON" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' \
		"$CHAN/agent-$1.sock" || fail "bind $CHAN/agent-$1.sock"
	: >"$CHAN/agent-$1.lock"
	[ -z "${2:-}" ] || touch -d "$2" "$CHAN/agent-$1.lock" "$CHAN/agent-$1.sock"
}

gone() {
	[ ! -e "$CHAN/agent-$1.sock" ] && [ ! -e "$CHAN/agent-$1.lock" ] ||
		fail "$2: files of pid $1 are still there: $(ls -l "$CHAN"/agent-$1.*)"
}
kept() {
	[ -e "$CHAN/agent-$1.sock" ] && [ -e "$CHAN/agent-$1.lock" ] ||
		fail "$2: files of pid $1 were removed: $(ls -l "$CHAN")"
}

# A live agent (LD_PRELOAD) serving its process.
start_bg live "$W/live" env LD_PRELOAD="$AGENT" "$PYTHON" "$FIX/threads.py" "$W/live"
read -r L _ <"$W/live"
wait_for 10 test -S "$CHAN/agent-$L.sock" || fail "the preloaded agent of $L has no socket"
# A live process (no agent) with a fresh unheld lock: an agent starting.
start_bg sleeper "$W/sleeper" sh -c 'echo $$ >"$1"; exec sleep 60' sh "$W/sleeper"
S=$BG
plant "$S"
# A live process whose pid's lock predates it: the pid was reused.
start_bg reused "$W/reused" sh -c 'echo $$ >"$1"; exec sleep 60' sh "$W/reused"
R=$BG
plant "$R" "-1 hour"

# 1. The debugger's lookup sweeps.
D=$(dead_pid)
plant "$D"
start_bg target "$W/target" "$PYTHON" "$FIX/threads.py" "$W/target"
read -r T _ <"$W/target"
"$SA" --pid "$T" --watch --timeout 1 2>"$W/watch.err" || fail "--watch exited $?: $(cat "$W/watch.err")"
gone "$D" "debugger, dead pid"
gone "$R" "debugger, reused pid"
kept "$L" "debugger, live agent"
kept "$S" "debugger, unheld fresh lock of a live pid"
"$SA" --pid "$L" --detach 2>"$W/detach.err" && ok "the live agent still answers" ||
	fail "the live agent's channel broke: $(cat "$W/detach.err")"

# 2. An agent opening its channel sweeps (a target started with the agent
# preloaded: no debugger involved).
D2=$(dead_pid)
plant "$D2"
start_bg second "$W/second" env LD_PRELOAD="$AGENT" "$PYTHON" "$FIX/threads.py" "$W/second"
read -r P2 _ <"$W/second"
wait_for 10 test -S "$CHAN/agent-$P2.sock" || fail "the preloaded agent of $P2 has no socket"
gone "$D2" "agent, dead pid"
kept "$S" "agent, unheld fresh lock of a live pid"
kept "$P2" "agent, its own"

rm -f "$CHAN/agent-$S.sock" "$CHAN/agent-$S.lock"
echo PASS
