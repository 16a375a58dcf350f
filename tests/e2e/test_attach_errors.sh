#!/bin/sh
# suture-attach --watch refuses bad targets the way --dump does, before it
# touches them, with one line on stderr and the exit code of
# docs/man/suture-attach.1, and leaves nothing behind:
#   a thread id given as --pid (2, "N is a thread of process P: give --pid P"),
#   for --dump too; nothing injected into the process;
#   a binary that exports CPython's symbols but lies (fake_python): --watch
#   refuses it with --dump's exit code and message, injects nothing, and
#   the target lives on;
#   --watch's exit codes are --dump's, with one prefix: 3 no such process,
#   4 not Python, 7 already traced, 8 stopped, 3 "process exited" when the target exits while it is
#   being attached (inside the remote dlopen, or while the debugger waits
#   for the agent's socket: exit_on_load.so stands in for the agent).
set -u
. "$(dirname "$0")/lib.sh"
SA="$BUILD/bin/suture-attach"
FIX="$SUTURE_ROOT/tests/fixtures/attach_errors"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
CHAN=/tmp/suture-$(id -u)

# expect_rc LABEL RC PATTERN COMMAND...: exit code and the one-line message.
expect_rc() {
	_label=$1 _rc=$2 _pat=$3; shift 3
	"$@" >"$W/out" 2>"$W/err"
	got=$?
	[ "$got" -eq "$_rc" ] || fail "$_label: exit $got, expected $_rc; stderr: $(cat "$W/err")"
	[ "$(wc -l <"$W/err")" -eq 1 ] || fail "$_label: stderr is not one line: $(cat "$W/err")"
	grep -Eq "$_pat" "$W/err" || fail "$_label: message '$(cat "$W/err")' does not match '$_pat'"
	ok "$_label -> $got: $(cat "$W/err")"
}

# untouched PID: no agent library mapped, no channel files for it.
untouched() {
	! grep -q libsuture_agent.so /proc/"$1"/maps || fail "pid $1: the agent was loaded"
	[ ! -e "$CHAN/agent-$1.sock" ] || fail "pid $1: $CHAN/agent-$1.sock left behind"
	[ ! -e "$CHAN/agent-$1.lock" ] || fail "pid $1: $CHAN/agent-$1.lock left behind"
	kill -0 "$1" || fail "pid $1 died"
}

# A thread id.
start_bg threads "$W/threads" "$PYTHON" "$FIX/threads.py" "$W/threads"
read -r P TID <"$W/threads"
[ "$P" != "$TID" ] || fail "the second thread has the process's id"
for mode in --watch --dump; do
	expect_rc "thread id $mode" 2 "^suture-attach: $TID is a thread of process $P: give --pid $P$" \
		"$SA" --pid "$TID" $mode
	untouched "$P"
done
stop_pid "$P"

# A lying CPython: --dump's refusal is --watch's.
start_bg fake "$W/fake" "$BUILD/tests/e2e/fake_python" "$W/fake"
F=$BG
"$SA" --pid "$F" --dump >/dev/null 2>"$W/dump.err"
drc=$?
[ "$drc" -ne 0 ] || fail "--dump accepted the fake CPython"
expect_rc "fake CPython --watch" "$drc" "^$(sed 's/[][\\.*^$]/\\&/g' "$W/dump.err")\$" \
	"$SA" --pid "$F" --watch --timeout 2
untouched "$F"
stop_pid "$F"

# 3: no such process (a child that has been reaped).
true & gone=$!
wait $gone
kill -0 $gone 2>/dev/null && fail "pid $gone still exists"
expect_rc "no such process --watch" 3 "^suture-attach: pid $gone: no such process$" \
	"$SA" --pid $gone --watch

# 4: not Python.
start_bg sleep "$W/sleep.ready" sh -c 'echo $$ >"$1"; exec sleep 60' sh "$W/sleep.ready"
expect_rc "not python --watch" 4 "^suture-attach: pid $BG: not a Python process" \
	"$SA" --pid "$BG" --watch
untouched "$BG"
stop_pid "$BG"

# 7: already traced; 8: stopped. Untouched either way.
start_bg py "$W/py" "$PYTHON" "$FIX/threads.py" "$W/py"
read -r T _ <"$W/py"
"$PYTHON" "$SUTURE_ROOT/tests/fixtures/dump/seize.py" "$T" "$W/seized" >"$W/seize.err" 2>&1 &
tr=$!
track $tr
wait_for 10 test -f "$W/seized" || fail "helper could not seize: $(cat "$W/seize.err")"
expect_rc "already traced --watch" 7 "^suture-attach: pid $T: already traced by pid $tr" \
	"$SA" --pid "$T" --watch
stop_pid $tr
wait_for 5 sh -c "grep -q 'TracerPid:[[:space:]]*0$' /proc/$T/status" || fail "tracer did not let go"
untouched "$T"
kill -STOP "$T"
wait_for 5 sh -c "grep -q '^State:[[:space:]]*T' /proc/$T/status" || fail "target did not stop"
expect_rc "stopped --watch" 8 "^suture-attach: pid $T: process is stopped" "$SA" --pid "$T" --watch
kill -CONT "$T"
untouched "$T"
stop_pid "$T"

# 3: the target exits during the attach, a zombie of ours until we reap it.
for when in now later; do
	start_bg "exit-$when" "$W/exit-$when" env EXIT_ON_LOAD=$when "$PYTHON" \
		"$FIX/threads.py" "$W/exit-$when"
	read -r X _ <"$W/exit-$when"
	t0=$(date +%s)
	SUTURE_AGENT="$BUILD/tests/e2e/exit_on_load.so" expect_rc "exits during attach ($when)" 3 \
		"^suture-attach: pid $X: process exited" "$SA" --pid "$X" --watch
	[ $(($(date +%s) - t0)) -lt 4 ] || fail "exit during attach ($when) took $(($(date +%s) - t0)) s"
	if grep -q ": \(attach\|inject\|inspect\|heal\): \|pid $X: .*pid $X:" "$W/err"; then
		fail "two prefixes: $(cat "$W/err")"
	fi
	stop_pid "$X"
done

echo PASS
