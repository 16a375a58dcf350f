#!/bin/sh
# suture-attach --watch refuses bad targets the way --dump does, before it
# touches them, with one line on stderr and the exit code of
# docs/man/suture-attach.1, and leaves nothing behind:
#   a thread id given as --pid (2, "N is a thread of process P: give --pid P"),
#   for --dump too; nothing injected into the process;
#   a binary that exports CPython's symbols but lies (fake_python): --watch
#   refuses it with --dump's exit code and message, injects nothing, and
#   the target lives on.
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

echo PASS
