#!/bin/sh
# Latencies of the agent path, on a target with 4 busy threads
# (tests/fixtures/agent/busy_target.py):
#   inject   attach-to-watching (remote dlopen, connect, handshake) and the
#            time the target's threads were stopped by ptrace, best and
#            median of RUNS fresh targets; next to `gdb -p PID -batch -ex
#            'call (void *) dlopen(...)'` on the same kind of target (its
#            stop time is its whole session: gdb stops every thread from
#            attach to detach; GDB_RUNS of them, default 3: gdb reads the
#            interpreter's DWARF first, which takes seconds).
#   restart  the same for an agent already mapped but detached.
#   patch    crash reported -> PATCH sent -> PATCH_RESULT received, for a
#            small function on a heap of a few thousand functions (the
#            agent walks gc.get_objects()).
#   resume   crash reported -> patch installed -> call resumed in flight and
#            its result delivered (RESUME_RESULT received), on
#            tests/fixtures/agent/resume_target.py.
# Prints figures only.
set -u
: "${BUILD:=build}"
: "${PYTHON:=/usr/bin/python3.11}"
ROOT=${SUTURE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
AGENT="$BUILD/lib/libsuture_agent.so"
CLIENT="$BUILD/tests/e2e/test_agent_client"
FIX="$ROOT/tests/fixtures/agent"
RUNS=${RUNS:-9}
export SUTURE_AGENT="$AGENT"
[ -x "$CLIENT" ] || { echo "build $CLIENT first"; exit 1; }
W=$(mktemp -d /tmp/suture-bench.XXXXXX)
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf "$W"' EXIT

target() { # name -> TP
	rm -f "$W/$1.ready" "$W/$1.stop"
	"$PYTHON" "$FIX/busy_target.py" "$W/$1" >/dev/null 2>&1 &
	TP=$!
	PIDS="$PIDS $TP"
	while [ ! -s "$W/$1.ready" ]; do sleep 0.01; done
	sleep 0.1
}
stop() { touch "$W/$1.stop"; wait "$2" 2>/dev/null; }
stats() { # label unit < numbers
	sort -n | awk -v l="$1" -v u="$2" '{ v[NR] = $1 } END {
		if (NR == 0) { printf "%-34s n/a\n", l; exit }
		printf "%-34s best %8.2f %s   median %8.2f %s   (n=%d)\n", l, v[1], u, v[int((NR + 1) / 2)], u, NR }'
}

: >"$W/open"; : >"$W/stop"; : >"$W/ropen"; : >"$W/rstop"; : >"$W/gdb"
i=0
while [ $i -lt "$RUNS" ]; do
	target t$i
	"$CLIENT" "$TP" detach >"$W/o" 2>&1
	sed -n 's/.*open_us=\([0-9]*\) stopped_us=\([0-9]*\).*/\1 \2/p' "$W/o" |
		awk -v a="$W/open" -v b="$W/stop" '{ print $1 / 1000 >> a; print $2 / 1000 >> b }'
	"$CLIENT" "$TP" detach >"$W/o" 2>&1
	sed -n 's/.*open_us=\([0-9]*\) stopped_us=\([0-9]*\).*/\1 \2/p' "$W/o" |
		awk -v a="$W/ropen" -v b="$W/rstop" '{ print $1 / 1000 >> a; print $2 / 1000 >> b }'
	stop t$i "$TP"
	if command -v gdb >/dev/null && [ $i -lt "${GDB_RUNS:-3}" ]; then
		target g$i
		cp "$AGENT" "$W/libgdbcopy.so"
		t0=$(date +%s%N)
		SUTURE_AGENT_NO_START=1 gdb -nx -q -p "$TP" -batch \
			-ex "call (void *) dlopen(\"$W/libgdbcopy.so\", 2)" >/dev/null 2>&1
		t1=$(date +%s%N)
		echo "$(( (t1 - t0) / 1000 ))" | awk '{ print $1 / 1000 }' >>"$W/gdb"
		stop g$i "$TP"
	fi
	i=$((i + 1))
done
echo "python: $PYTHON, target: 4 busy threads, runs: $RUNS"
stats "inject (dlopen) to watching" ms <"$W/open"
stats "  target stopped by ptrace" ms <"$W/stop"
stats "restart (mapped, detached)" ms <"$W/ropen"
stats "  target stopped by ptrace" ms <"$W/rstop"
stats "gdb -p -batch call dlopen (= stop)" ms <"$W/gdb"

# Crash -> patch installed.
cat >"$W/crasher.py" <<'PY'
import dis, os, sys, time, types
state = sys.argv[1]
# A heap like a small application's: a few thousand functions.
mods = [types.FunctionType((lambda: None).__code__, {}) for _ in range(5000)]
def get(d, k):
    return d[k]
code = get.__code__
with open(state + ".spec", "w") as f:
    f.write("code_addr %#x\nstacksize %d\ncode %s\nexctable %s\nlinetable %s\n" % (
        id(code), code.co_stacksize, code.co_code.hex(), code.co_exceptiontable.hex(),
        code.co_linetable.hex()))
    f.write("const builtin KeyError\nconst none\n")
open(state + ".ready", "w").write("%d\n" % os.getpid())
while not os.path.exists(state + ".go"):
    time.sleep(0.005)
for i in range(int(sys.argv[2])):
    try:
        import threading
        t = threading.Thread(target=get, args=({}, i))
        t.start(); t.join()
    except Exception:
        pass
PY
N=$RUNS
LD_PRELOAD="$AGENT" "$PYTHON" "$W/crasher.py" "$W/c" "$N" >/dev/null 2>&1 &
TP=$!
PIDS="$PIDS $TP"
while [ ! -s "$W/c.ready" ]; do sleep 0.01; done
"$CLIENT" -n "$TP" watch "$N" 60 patch "$W/c.spec" >"$W/cw" 2>&1 &
TC=$!
while ! grep -q '^how=' "$W/cw" 2>/dev/null; do sleep 0.01; done
touch "$W/c.go"
wait "$TC"
wait "$TP" 2>/dev/null
sed -n 's/.*patch_us=\([0-9]*\).*/\1/p' "$W/cw" | awk '{ print $1 / 1000 }' | stats "crash report -> patch installed" ms

# Crash -> resumed in flight.
: >"$W/res"
i=0
while [ $i -lt "$RUNS" ]; do
	rm -f "$W/r.ready" "$W/r.go"
	LD_PRELOAD="$AGENT" "$PYTHON" "$FIX/resume_target.py" "$W/r" ok >/dev/null 2>&1 &
	TP=$!
	PIDS="$PIDS $TP"
	while [ ! -s "$W/r.ready" ]; do sleep 0.01; done
	"$CLIENT" -n "$TP" watch 1 30 resume "$W/r.spec" >"$W/rw" 2>&1 &
	TC=$!
	while ! grep -q '^how=' "$W/rw" 2>/dev/null; do sleep 0.01; done
	touch "$W/r.go"
	wait "$TC"
	wait "$TP" 2>/dev/null
	p=$(sed -n 's/.*patch_us=\([0-9]*\).*/\1/p' "$W/rw")
	r=$(sed -n 's/.*resume_us=\([0-9]*\).*/\1/p' "$W/rw")
	[ -n "$p" ] && [ -n "$r" ] && echo "$p $r" | awk '{ print ($1 + $2) / 1000 }' >>"$W/res"
	i=$((i + 1))
done
stats "crash report -> patched + resumed" ms <"$W/res"
