#!/bin/sh
# The crash watcher's cost on a CPU-bound workload whose exceptions are all
# handled in normal flow (tests/fixtures/agent/bench_workload.py: 300k
# iterations of KeyError raised and caught in a caller or the same frame,
# getattr with a default, hasattr, int() of bad text). Ratios to an
# unwatched run, best of RUNS each, interleaved:
#   agent-jump   libsuture_agent.so, PyTraceBack_Here entry jump (default)
#   agent-trace  libsuture_agent.so, C trace function fallback
#   settrace     a sys.settrace exception tracer (CodeSuture's approach)
# Prints figures only.
set -u
: "${BUILD:=build}"
: "${PYTHON:=/usr/bin/python3.11}"
ROOT=${SUTURE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
AGENT="$BUILD/lib/libsuture_agent.so"
W="$ROOT/tests/fixtures/agent/bench_workload.py"
RUNS=${RUNS:-7}
[ -f "$AGENT" ] || { echo "build $AGENT first"; exit 1; }

best() { sort -n | head -1; }
: >/tmp/bench_watch.$$.plain; : >/tmp/bench_watch.$$.jump
: >/tmp/bench_watch.$$.trace; : >/tmp/bench_watch.$$.settrace
i=0
while [ $i -lt "$RUNS" ]; do
	"$PYTHON" "$W" >>/tmp/bench_watch.$$.plain
	LD_PRELOAD="$AGENT" "$PYTHON" "$W" >>/tmp/bench_watch.$$.jump
	SUTURE_AGENT_MODE=trace LD_PRELOAD="$AGENT" "$PYTHON" "$W" >>/tmp/bench_watch.$$.trace
	"$PYTHON" "$W" settrace >>/tmp/bench_watch.$$.settrace
	i=$((i + 1))
done
plain=$(best </tmp/bench_watch.$$.plain)
echo "python: $PYTHON, runs: $RUNS (best of), workload: $(basename "$W")"
for m in plain jump trace settrace; do
	t=$(best </tmp/bench_watch.$$.$m)
	awk -v m="$m" -v t="$t" -v p="$plain" 'BEGIN {
		name = (m == "plain") ? "unwatched" : (m == "jump") ? "agent-jump" : (m == "trace") ? "agent-trace" : "settrace";
		printf "%-12s %8.4f s   x%.3f\n", name, t, t / p }'
	rm -f /tmp/bench_watch.$$.$m
done
