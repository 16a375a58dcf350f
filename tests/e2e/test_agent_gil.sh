#!/bin/sh
# A target whose main thread holds the GIL in one long C call gets the agent
# by remote dlopen in the middle of that call: the agent's channel still
# comes up, and its WELCOME says the watcher is not installed yet (mode 0)
# instead of hanging; once the GIL frees the watcher is installed (mode 1/2)
# and the crash that follows is reported. The install bound is shortened
# with SUTURE_AGENT_GIL_TIMEOUT_MS=300. The C call is read(2) on a fifo
# through ctypes.PyDLL, which keeps the GIL: it lasts until the test writes,
# after the handshake, however fast the machine.
. "$(dirname "$0")/test_agent_lib.sh"

mkfifo "$W/g.fifo"
cat >"$W/busy.py" <<'PY'
import ctypes, os, sys
fd = os.open(sys.argv[1] + ".fifo", os.O_RDWR)   # O_RDWR: the open never blocks
libc = ctypes.PyDLL(None)                        # PyDLL: calls keep the GIL
buf = ctypes.create_string_buffer(1)
open(sys.argv[1] + ".ready", "w").write("%d\n" % os.getpid())
n = libc.read(fd, buf, 1)                        # holds the GIL until the test writes
open(sys.argv[1] + ".done", "w").write("%d %r\n" % (n, buf.raw))
import time
while not os.path.exists(sys.argv[1] + ".go"):
    time.sleep(0.01)
{}["missing"]
PY
SUTURE_AGENT_GIL_TIMEOUT_MS=300 start_target g plain "$PYTHON" "$W/busy.py" "$W/g"
sleep 0.1
"$CLIENT" "$TP" hello >"$W/g1" 2>&1 || { cat "$W/g1"; fail "no channel while the GIL is held"; }
[ ! -e "$W/g.done" ] || fail "the GIL-holding call ended before the test let it: $(cat "$W/g.done")"
grep -q '^how=1 mode=0 .*GIL was not released' "$W/g1" ||
	{ cat "$W/g1"; fail "WELCOME does not say the watcher waits for the GIL"; }
echo x >"$W/g.fifo"
wait_file "$W/g.done" 60
grep -q "^1 b'x'$" "$W/g.done" || fail "the held read(2) was disturbed by the injection: $(cat "$W/g.done")"
_n=0
until "$CLIENT" -n "$TP" hello 2>&1 | grep -q '^how=0 mode=[12] '; do
	_n=$((_n + 1)); [ $_n -gt 100 ] && fail "watcher never installed after the GIL freed"; sleep 0.05
done
start_client g -n "$TP" watch 1 20
touch "$W/g.go"
wait_pid "$TP" 30
wait_pid "$TC" 10 || { cat "$W/g.client"; fail "crash after the late install not reported"; }
grep -q '^crash .*type=KeyError' "$W/g.client" || fail "no KeyError report"
echo "ok: channel up while the GIL was held, watcher installed when it freed"
echo PASS
