#!/bin/sh
# What suture costs a live target and its user, measured the way a user
# meets it (figures, never assertions; docs/performance.md, "Stop time and
# wall time"):
#
# 1. The first injection's stop time under load: a fresh busy 4-thread
#    target (tests/fixtures/agent/busy_target.py: CPU work, handled
#    exceptions, short sleeps) while LOAD (default 2) CPU hogs run on the
#    2 cores; `suture-attach --pid N --watch` injects the agent (remote
#    dlopen: every thread seized, one calls dlopen, all released) and its
#    --verbose line gives "target stopped" (first PTRACE_SEIZE to the last
#    thread released), "injection" and "watching ... after start". ROUNDS
#    (default 20) targets, median and max. BEFORE=<build dir>: the same
#    rounds also inject with that build (the two alternate, one target
#    each), for a before/after at the same load.
# 2. The dump's wall time: `suture-attach --pid N --dump --locals` on a
#    4-thread target 50 frames deep each (tests/fixtures/dump/
#    bench_target.py, 207 frames with the main thread), from spawn to exit,
#    next to /bin/true timed the same way (a Python loop of subprocess.run
#    with stdout to /dev/null, perf_counter around each); DUMPS (default
#    200) runs, median, p90 and max; idle machine (no hogs), then under
#    LOAD hogs.
# ONLY=stop: part 1 alone.
set -u
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3.11}
ROOT=${SUTURE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SA="$BUILD/bin/suture-attach"
ROUNDS=${ROUNDS:-20}
DUMPS=${DUMPS:-200}
LOAD=${LOAD:-2}
BEFORE=${BEFORE:-}
ONLY=${ONLY:-}
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
W=$(mktemp -d /tmp/suture-bench-stop.XXXXXX)
PIDS=""
HOGS=""
# Hogs get TERM: timeout(1) passes it to its loop and exits; a SIGKILLed
# timeout would leave the loop running for ever.
cleanup() {
	for p in $HOGS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$W"
}
trap cleanup EXIT INT TERM

stats() { # numbers on stdin -> "median X ms, p90 Y, max Z (n=N)"
	sort -g | awk '{ v[NR] = $1 } END { if (!NR) { print "n/a"; exit }
		printf "median %.2f ms, p90 %.2f, max %.2f (n=%d)", v[int((NR + 1) / 2)],
			v[int(NR * 0.9 + 0.5)], v[NR], NR }'
}
# hogs N: N busy loops, each for at most 600 s.
hogs() {
	i=0
	while [ $i -lt "$1" ]; do
		timeout 600 sh -c 'while :; do :; done' &
		HOGS="$HOGS $!"
		i=$((i + 1))
	done
}
hogs_stop() {
	for p in $HOGS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	HOGS=""
}
ready() { # FILE: wait until it exists
	n=0
	while [ ! -s "$1" ]; do
		n=$((n + 1)); [ $n -gt 1000 ] && { echo "bench_stop: target never ready" >&2; exit 1; }
		sleep 0.01
	done
}

echo "bench_stop: $PYTHON, load average $(cut -d' ' -f1-3 /proc/loadavg), $LOAD hogs"

# ---- 1. first injection under load ----
hogs "$LOAD"
: >"$W/stop"
: >"$W/inj"
: >"$W/watch"
: >"$W/b.stop"
: >"$W/b.inj"
: >"$W/b.watch"
# inject SUTURE-ATTACH PREFIX: one fresh target, one first injection, its
# figures appended to $W/PREFIXstop, ...inj, ...watch.
inject() {
	rm -f "$W/t.ready" "$W/t.stop"
	"$PYTHON" "$ROOT/tests/fixtures/agent/busy_target.py" "$W/t" >/dev/null 2>&1 &
	TP=$!
	PIDS="$PIDS $TP"
	ready "$W/t.ready"
	sleep 0.2
	SUTURE_AGENT="$(dirname "$(dirname "$1")")/lib/libsuture_agent.so" \
		"$1" --pid "$TP" --watch --store "$W/store$2" --verbose --timeout 0.05 2>"$W/a.err"
	grep -q "injected" "$W/a.err" || { cat "$W/a.err"; echo "bench_stop: not a first injection" >&2; exit 1; }
	sed -n 's/.*target stopped \([0-9.]*\) ms.*/\1/p' "$W/a.err" >>"$W/${2}stop"
	sed -n 's/.*injection \([0-9.]*\) ms.*/\1/p' "$W/a.err" >>"$W/${2}inj"
	sed -n 's/.*; watching \([0-9.]*\) ms after start.*/\1/p' "$W/a.err" >>"$W/${2}watch"
	kill -9 "$TP" 2>/dev/null
	wait "$TP" 2>/dev/null
}
r=0
while [ $r -lt "$ROUNDS" ]; do
	[ -n "$BEFORE" ] && inject "$BEFORE/bin/suture-attach" b.
	inject "$SA" ""
	r=$((r + 1))
done
hogs_stop
echo "first injection, busy 4-thread target, $LOAD hogs:"
echo "  target stopped:       $(stats <"$W/stop")"
echo "  injection:            $(stats <"$W/inj")"
echo "  start to watching:    $(stats <"$W/watch")"
if [ -n "$BEFORE" ]; then
	echo "the same rounds with BEFORE=$BEFORE:"
	echo "  target stopped:       $(stats <"$W/b.stop")"
	echo "  injection:            $(stats <"$W/b.inj")"
	echo "  start to watching:    $(stats <"$W/b.watch")"
fi
echo "load average after part 1: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$ONLY" = stop ] && exit 0

# ---- 2. the dump's wall time ----
"$PYTHON" "$ROOT/tests/fixtures/dump/bench_target.py" "$W/d.ready" >/dev/null 2>&1 &
DP=$!
PIDS="$PIDS $DP"
ready "$W/d.ready"
"$SA" --pid "$DP" --dump --locals >"$W/first.txt" || { echo "bench_stop: dump failed" >&2; exit 1; }
frames=$(grep -c '^    [^ ]' "$W/first.txt")
# spawn_times RUNS CMD...: one wall time (ms) a line, spawn to exit.
spawn_times() {
	"$PYTHON" - "$@" <<'PY'
import subprocess, sys, time
runs, cmd = int(sys.argv[1]), sys.argv[2:]
out = []
for _ in range(runs):
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    out.append((time.perf_counter() - t0) * 1e3)
print("\n".join("%.3f" % v for v in out))
PY
}
for phase in idle loaded; do
	[ $phase = loaded ] && hogs "$LOAD"
	spawn_times "$DUMPS" /bin/true >"$W/true.$phase"
	spawn_times "$DUMPS" "$SA" --pid "$DP" --dump --locals >"$W/dump.$phase"
	i=0
	: >"$W/v.$phase"
	while [ $i -lt 50 ]; do
		"$SA" --pid "$DP" --dump --locals --verbose 2>>"$W/v.$phase" >/dev/null
		i=$((i + 1))
	done
	hogs_stop
	echo "dump --locals, $frames frames in 5 threads, $phase ($( [ $phase = loaded ] && echo "$LOAD hogs" || echo "no hogs")):"
	echo "  suture-attach, spawn to exit: $(stats <"$W/dump.$phase")"
	echo "  /bin/true, the same way:      $(stats <"$W/true.$phase")"
	echo "  --verbose: open $(sed -n 's/.*: open \([0-9.]*\) ms$/\1/p' "$W/v.$phase" | stats);" \
		"dump $(sed -n 's/.*, dump \([0-9.]*\) ms$/\1/p' "$W/v.$phase" | stats);" \
		"target stopped $(sed -n 's/.*target stopped \([0-9.]*\) ms.*/\1/p' "$W/v.$phase" | stats)"
done

# ---- 3. the dump's CPU work, steady under any load ----
# Instructions executed in user space (valgrind's callgrind, when
# installed), start to exit: the part of the wall time that is ours.
if command -v valgrind >/dev/null 2>&1; then
	ir() {
		valgrind --tool=callgrind --callgrind-out-file="$W/cg.out" "$@" >/dev/null 2>"$W/cg.err"
		sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' "$W/cg.err" | tr -d ,
	}
	echo "user-space instructions, start to exit (callgrind):" \
		"--dump --locals $(ir "$SA" --pid "$DP" --dump --locals)," \
		"--dump $(ir "$SA" --pid "$DP" --dump)," \
		"--version $(ir "$SA" --version), /bin/true $(ir /bin/true)"
else
	echo "user-space instructions: valgrind not installed, not measured"
fi
