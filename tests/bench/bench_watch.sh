#!/bin/sh
# The crash watcher's cost on a CPU-bound workload whose exceptions are all
# handled in normal flow (tests/fixtures/agent/bench_workload.py: 300k
# iterations of KeyError raised and caught in a caller or the same frame,
# getattr with a default, hasattr, int() of bad text). Ratios to an
# unwatched run, best of RUNS each, interleaved:
#   agent-jump   under suture-run (a debugger connected, so every exception
#                is judged), PyTraceBack_Here entry jump (default)
#   agent-trace  the same with the C trace function fallback
#   settrace     a sys.settrace exception tracer (CodeSuture's approach)
# The workload prints its own CPU time: suture-run's start-up is not in it.
# Prints figures only.
set -u
: "${BUILD:=build}"
: "${PYTHON:=/usr/bin/python3.11}"
ROOT=${SUTURE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
AGENT="$BUILD/lib/libsuture_agent.so"
W="$ROOT/tests/fixtures/agent/bench_workload.py"
RUNS=${RUNS:-7}
[ -f "$AGENT" ] || { echo "build $AGENT first"; exit 1; }
STORE=$(mktemp -d /tmp/bench_watch.store.XXXXXX)
trap 'rm -rf "$STORE"' EXIT

best() { sort -n | head -1; }
: >/tmp/bench_watch.$$.plain; : >/tmp/bench_watch.$$.jump
: >/tmp/bench_watch.$$.trace; : >/tmp/bench_watch.$$.settrace
i=0
while [ $i -lt "$RUNS" ]; do
	"$PYTHON" "$W" >>/tmp/bench_watch.$$.plain
	SUTURE_AGENT="$AGENT" "$BUILD/bin/suture-run" --python "$PYTHON" --store "$STORE" "$W" \
		>>/tmp/bench_watch.$$.jump 2>/dev/null
	SUTURE_AGENT_MODE=trace SUTURE_AGENT="$AGENT" "$BUILD/bin/suture-run" --python "$PYTHON" \
		--store "$STORE" "$W" >>/tmp/bench_watch.$$.trace 2>/dev/null
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
