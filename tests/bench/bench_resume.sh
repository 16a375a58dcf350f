#!/bin/sh
# In-flight resume (issue 6), figures only:
#  1. crash-to-resumed: CRASHES distinct functions crash in turn under
#     suture-run (tests/fixtures/resume/job.py, case "distinct"); each call
#     is resumed in flight. Per call, the job's own clock around the call
#     (crash, report, analysis, patch, install, resume, result delivered to
#     the caller: an upper bound of "crash report to the caller having its
#     result"), and suture's own "guard applied ... in x ms" (report arrival to
#     patch installed) and "resumed in flight ... returned x ms later" (resume request to the
#     agent's answer that the caller has the result). Crashes spaced by 50 ms, then in a burst (the next
#     crash waits while suture stores the previous patch with fsync), then
#     in a burst with the store on tmpfs.
#  2. work preserved: the same job (N records costing COST_MS each, a bad one
#     at record K) under suture-run with in-flight resume, and with
#     --no-resume (the crash ends the run; suture-run re-executes it with the
#     patch loaded): records processed, start-ups, wall time.
# Env: BUILD (absolute), PYTHON, CRASHES (default 100), N (200), K (100),
# COST_MS (5).
set -u
: "${BUILD:?BUILD must be set}"
: "${PYTHON:=/usr/bin/python3.11}"
: "${SUTURE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
CRASHES=${CRASHES:-100}
N=${N:-200}
K=${K:-100}
COST_MS=${COST_MS:-5}
RUN="$BUILD/bin/suture-run"
JOB="$SUTURE_ROOT/tests/fixtures/resume/job.py"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
W=$(mktemp -d /tmp/suture-bench-resume.XXXXXX)
SHM=$(mktemp -d /dev/shm/suture-bench-resume.XXXXXX)
trap 'rm -rf "$W" "$SHM"' EXIT

# pct FILE P: the P-th percentile of the sorted numbers in FILE
pct() { awk -v p="$2" '{ v[NR] = $1 } END { i = int((NR - 1) * p / 100) + 1; printf "%.2f", v[i] }' "$1"; }

echo "load: $(cat /proc/loadavg)"
# latency TAG GAP_MS STORE_DIR
latency() {
	L="$W/lat-$1"
	mkdir -p "$L"
	JOB_FUNCS=$CRASHES JOB_GAP_MS=$2 "$RUN" --python "$PYTHON" --store "$3" "$JOB" "$L" distinct \
		>"$L/out" 2>"$L/err" || { cat "$L/out" "$L/err"; echo "bench_resume: job failed"; exit 1; }
	resumed=$(grep -c "^\[suture\] resumed in flight: " "$L/err")
	sed -n 's/^\[suture\] guard applied: .*, \([0-9.]*\) ms\]$/\1/p' "$L/err" | sort -n >"$L/patch_ms"
	echo "crash-to-resumed, $1: $resumed of $CRASHES calls resumed in flight ($PYTHON):"
	echo "  whole crashing call (job's clock):   p50 $(pct "$L/call_ms" 50) ms  p90 $(pct "$L/call_ms" 90) ms  max $(pct "$L/call_ms" 100) ms"
	sed -n 's/^\[suture\] resumed in flight: .* (the call returned \([0-9.]*\) ms later)$/\1/p' "$L/err" | sort -n >"$L/resume_ms"
	echo "  report -> patch installed (suture): p50 $(pct "$L/patch_ms" 50) ms  p90 $(pct "$L/patch_ms" 90) ms  max $(pct "$L/patch_ms" 100) ms"
	echo "  resume request -> caller has result: p50 $(pct "$L/resume_ms" 50) ms  p90 $(pct "$L/resume_ms" 90) ms  max $(pct "$L/resume_ms" 100) ms"
	paste "$L/patch_ms" "$L/resume_ms" | awk '{ print $1 + $2 }' | sort -n >"$L/sum_ms"
	echo "  report -> caller has result (sum):  p50 $(pct "$L/sum_ms" 50) ms  p90 $(pct "$L/sum_ms" 90) ms"
}
# Each patch is also stored (fsync) after the thread went on: in a burst
# the next crash waits for that; spaced crashes do not.
latency "spaced 50 ms, store on disk" 50 "$W/store-spaced"
latency "burst, store on disk" 0 "$W/store-burst"
latency "burst, store on tmpfs (no disk sync cost)" 0 "$SHM/store"

# work preserved
work() { # TAG ARGS...
	tag=$1; shift
	mkdir -p "$W/$tag"
	t0=$(date +%s%N)
	JOB_N=$N JOB_K=$K JOB_COST_MS=$COST_MS "$RUN" --python "$PYTHON" --store "$W/$tag/store" "$@" \
		"$JOB" "$W/$tag" records >"$W/$tag/out" 2>"$W/$tag/err"
	rc=$?
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	echo "  $tag: exit $rc, records processed $(wc -l <"$W/$tag/progress") for $N, start-ups $(wc -l <"$W/$tag/starts"), wall $ms ms"
}
echo "work preserved: $N records of $COST_MS ms, the bad one at record $K:"
work in-flight
work re-execution --no-resume
echo "command: BUILD=$BUILD CRASHES=$CRASHES N=$N K=$K COST_MS=$COST_MS sh tests/bench/bench_resume.sh"
