#!/bin/sh
# Edit and continue (issue 13), figures only:
#  1. suture-attach --reload of a module of FUNCS functions (default 1000,
#     five lines each)
#     in a running job that calls them: wall time of the command (attach
#     checks, connect, the agent's compile, gc walk, pairing, switch) with
#     every function changed, one changed, none changed; REPS runs each.
#  2. time from the reload to the held call running again: a job held by
#     suture-attach --watch --hold on an assertion; from just before
#     suture-attach --reload starts to the job's own clock when the
#     restarted call finishes the failing record, and the holder's
#     "restarted [x ms]" (HELD_CHANGED in, restart planned, RESTART
#     answered). HOLDS runs.
# Env: BUILD (absolute), PYTHON, FUNCS (1000), REPS (10), HOLDS (5).
set -u
: "${BUILD:?BUILD must be set}"
: "${PYTHON:=/usr/bin/python3.11}"
FUNCS=${FUNCS:-1000}
REPS=${REPS:-10}
HOLDS=${HOLDS:-5}
ATTACH="$BUILD/bin/suture-attach"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
W=$(mktemp -d /tmp/suture-bench-reload.XXXXXX)
JOB=""
HOLDER=""
trap '[ -n "$JOB" ] && kill "$JOB" 2>/dev/null; [ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null; rm -rf "$W"' EXIT

pct() { sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 } END { i = int((NR - 1) * p / 100) + 1; printf "%.2f", v[i] }'; }
now_ms() { date +%s%N | awk '{ printf "%.3f", $1 / 1e6 }'; }

echo "load: $(cat /proc/loadavg)"
# mod.py with FUNCS functions; function i adds $1, function $2 (-1: none)
# adds $1 + $3.
gen() {
	awk -v n="$FUNCS" -v k="$1" -v one="$2" -v extra="$3" 'BEGIN {
		for (i = 0; i < n; i++) {
			printf "def f%d(x):\n    y = x + %d\n    return y * 2\n\n\n", i, k + (i == one ? extra : 0)
		}
	}' >"$W/mod.py"
}
gen 0 -1 0
cat >"$W/job.py" <<'PY'
import os, sys, time
sys.path.insert(0, os.path.dirname(__file__))
import mod
fs = [getattr(mod, "f%d" % i) for i in range(len([n for n in dir(mod) if n.startswith("f")]))]
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    for f in fs[:50]:
        f(1)
    time.sleep(0.001)
PY
# start_job: a fresh job for each case (a reload's functions join the
# agent's registry: cases do not inherit each other's), its agent injected
# by one reload that changes nothing (not counted).
start_job() {
	[ -n "$JOB" ] && kill "$JOB" 2>/dev/null && wait "$JOB" 2>/dev/null
	rm -f "$W/ready"
	gen 0 -1 0
	SUTURE_AGENT_VERBOSE=1 "$PYTHON" "$W/job.py" "$W/ready" 2>"$W/agent.log" &
	JOB=$!
	while [ ! -s "$W/ready" ]; do sleep 0.02; done
	"$ATTACH" --pid "$JOB" --reload "$W/mod.py" >/dev/null 2>&1
}
# reload_ms TAG MODE: REPS reloads, the module rewritten before each as
# MODE says (all: every function's constant; one: f7's; same: nothing).
# The agent's own time: its log, from the auditor's connection to the
# reload's answer (SUTURE_AGENT_VERBOSE timestamps, ms).
reload_ms() {
	: >"$W/$1.ms"
	: >"$W/$1.agent"
	for r in $(seq 1 "$REPS"); do
		case "$2" in
		all) gen $((100 + r)) -1 0 ;;
		one) gen 500 7 "$r" ;;
		same) gen 0 -1 0 ;;
		esac
		t0=$(now_ms)
		"$ATTACH" --pid "$JOB" --reload "$W/mod.py" >"$W/$1.out" 2>&1 || { cat "$W/$1.out"; exit 1; }
		t1=$(now_ms)
		awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f\n", a - b }' >>"$W/$1.ms"
		awk '/connected$/ { c = $2 } /: reload .*answered$|reload .* of .* answered$/ { if (c) print ($2 - c) * 1; c = 0 }' \
			"$W/agent.log" | tail -n 1 | tr -d ':' >>"$W/$1.agent"
	done
	echo "  $1: p50 $(pct "$W/$1.ms" 50) ms  max $(pct "$W/$1.ms" 100) ms; in the agent p50 $(pct "$W/$1.agent" 50) ms  ($(tail -n 1 "$W/$1.out" | sed 's/^\[suture\] pid [0-9]*: [^:]*: //'))"
}
echo "reload of a $FUNCS-function module ($PYTHON), $REPS runs each, wall time of suture-attach --reload:"
gen 0 -1 0
echo "  (the interpreter's own compile() of that file, the floor of the agent's share: $("$PYTHON" -c '
import sys, time
src = open(sys.argv[1]).read()
ts = []
for _ in range(5):
    t = time.perf_counter(); compile(src, sys.argv[1], "exec"); ts.append(time.perf_counter() - t)
print("%.2f ms" % (sorted(ts)[2] * 1e3))' "$W/mod.py"))"
start_job
reload_ms "every function changed" all
start_job
reload_ms "one function changed" one
start_job
reload_ms "nothing changed" same
kill "$JOB" 2>/dev/null
wait "$JOB" 2>/dev/null
JOB=""

# 2. held call running again
cat >"$W/held.py" <<'PY'
import os, sys, time
d = sys.argv[1]
def process(records):
    total = 0
    for rec in records:
        assert rec >= 0, "negative record"
        total += rec
        if rec == -1 or rec == 1:
            with open(os.path.join(d, "t7"), "w") as f:
                f.write("%.3f" % (time.time() * 1e3))
    return total
def main():
    with open(os.path.join(d, "ready.tmp"), "w") as f:
        f.write(str(os.getpid()))
    os.rename(os.path.join(d, "ready.tmp"), os.path.join(d, "ready"))
    while not os.path.exists(os.path.join(d, "go")):
        time.sleep(0.005)
    return process([5, 4, 3, 2, -1, 0]) * 0
sys.exit(main())
PY
: >"$W/hold.ms"
: >"$W/holder.ms"
for r in $(seq 1 "$HOLDS"); do
	H="$W/h$r"
	mkdir -p "$H"
	cp "$W/held.py" "$H/held.py"
	"$PYTHON" "$H/held.py" "$H" &
	JOB=$!
	while [ ! -s "$H/ready" ]; do sleep 0.02; done
	"$ATTACH" --pid "$JOB" --watch --hold 2>"$H/watch.err" &
	HOLDER=$!
	until grep -q "watching pid" "$H/watch.err" 2>/dev/null; do sleep 0.02; done
	: >"$H/go"
	until grep -q "^\[suture\] held:" "$H/watch.err" 2>/dev/null; do sleep 0.02; done
	sed -i 's/        assert rec >= 0, "negative record"/        rec = abs(rec)/' "$H/held.py"
	t0=$(now_ms)
	"$ATTACH" --pid "$JOB" --reload "$H/held.py" >"$H/reload.out" 2>&1 || { cat "$H/reload.out"; exit 1; }
	wait "$JOB"
	awk -v a="$(cat "$H/t7")" -v b="$t0" 'BEGIN { printf "%.3f\n", a - b }' >>"$W/hold.ms"
	sed -n 's/^\[suture\] restarted: .* \[\([0-9.]*\) ms\]$/\1/p' "$H/watch.err" >>"$W/holder.ms"
	wait "$HOLDER" 2>/dev/null
	JOB=""
	HOLDER=""
done
echo "held call running again after the fix ($HOLDS runs):"
echo "  reload start -> restarted call past the failing line (job's clock): p50 $(pct "$W/hold.ms" 50) ms  max $(pct "$W/hold.ms" 100) ms"
echo "  held-changed -> restart answered (holder):                       p50 $(pct "$W/holder.ms" 50) ms  max $(pct "$W/holder.ms" 100) ms"
