#!/bin/sh
# A --watch attach that fails midway leaves the process as it was: the
# target holds the GIL in one long C call (read(2) on a fifo through
# ctypes.PyDLL), so the injected agent cannot install its watcher in time
# (SUTURE_AGENT_GIL_TIMEOUT_MS=300) and WELCOME says it does not watch;
# suture-attach fails with that message and detaches the agent it loaded:
# once the GIL frees, no channel is left and no watcher is installed (a
# restarted agent installs the entry jump again, mode 1/2, which it could
# not if a jump were still there), and the held call was not disturbed.
. "$(dirname "$0")/test_agent_lib.sh"
ATTACH="$BUILD/bin/suture-attach"

mkfifo "$W/g.fifo"
cat >"$W/busy.py" <<'PY'
import ctypes, os, sys
fd = os.open(sys.argv[1] + ".fifo", os.O_RDWR)
open(sys.argv[1] + ".ready", "w").write("%d\n" % os.getpid())
libc = ctypes.PyDLL(None)                        # PyDLL: calls keep the GIL
buf = ctypes.create_string_buffer(1)
n = libc.read(fd, buf, 1)                        # holds the GIL until the test writes
open(sys.argv[1] + ".done", "w").write("%d %r\n" % (n, buf.raw))
import time
while not os.path.exists(sys.argv[1] + ".go"):
    time.sleep(0.01)
PY
SUTURE_AGENT_GIL_TIMEOUT_MS=300 start_target g plain "$PYTHON" "$W/busy.py" "$W/g"
sleep 0.1
"$ATTACH" --pid "$TP" --watch --store "$W/store" >"$W/att.out" 2>"$W/att.err" &
AP=$!
track "$AP"
sock="/tmp/suture-$(id -u)/agent-$TP.sock"
wait_for 20 test -S "$sock" || { cat "$W/att.err"; fail "the agent never listened"; }
# suture-attach has the refusal and waits for the agent's goodbye, which
# needs the GIL.
sleep 1
[ ! -e "$W/g.done" ] || fail "the GIL-holding call ended early: $(cat "$W/g.done")"
echo x >"$W/g.fifo"
wait_pid "$AP" 20; rc=$?
[ $rc -ne 0 ] || { cat "$W/att.err"; fail "suture-attach succeeded"; }
grep -q 'the agent is not watching' "$W/att.err" || { cat "$W/att.err"; fail "not the refusal"; }
wait_file "$W/g.done" 20
grep -q "^1 b'x'$" "$W/g.done" || fail "the held read(2) was disturbed: $(cat "$W/g.done")"
sleep 0.5 # the abandoned installer has had the GIL by now
[ ! -e "$sock" ] || fail "the agent's channel is still there"
"$CLIENT" -n "$TP" hello >"$W/h1" 2>&1 && { cat "$W/h1"; fail "an agent still serves the process"; }
# The watcher was never installed: a restarted agent puts the entry jump in.
"$CLIENT" "$TP" hello >"$W/h2" 2>&1 || { cat "$W/h2"; fail "restart"; }
grep -q '^how=2 mode=[12] ' "$W/h2" || { cat "$W/h2"; fail "not restarted with the entry jump"; }
"$CLIENT" "$TP" detach >/dev/null 2>&1
touch "$W/g.go"
wait_pid "$TP" 20 || fail "the target did not end cleanly"
echo "ok: a failed attach left no agent and no watcher"
echo PASS
