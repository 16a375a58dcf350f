#!/bin/sh
# The watcher's cost where long-running jobs live (docs/performance.md):
#   library   tests/fixtures/frameworks/bench_library.py: structural
#             exceptions raised and handled inside library code (os.environ,
#             string.Template, ChainMap, configparser): the agent sees each
#             one start in library code and stops there
#   flask     tests/fixtures/frameworks/bench_flask.py: a Flask request loop
#             through the test client, a fifth of the URLs unknown
# Each under plain python3.11 and under suture-run (a debugger connected, so
# every exception reaches the watcher, as with suture-attach --watch), best
# of RUNS, interleaved; the workloads print their own CPU time (start-up is
# not in it). Prints figures only.
set -u
: "${BUILD:=build}"
: "${PYTHON:=/usr/bin/python3.11}"
ROOT=${SUTURE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
AGENT="$BUILD/lib/libsuture_agent.so"
RUNS=${RUNS:-7}
[ -f "$AGENT" ] || { echo "build $AGENT first"; exit 1; }
"$PYTHON" -c 'import flask' 2>/dev/null || { echo "flask is not installed (make deps)"; exit 1; }
T=$(mktemp -d /tmp/bench_frameworks.XXXXXX)
trap 'rm -rf "$T"' EXIT

best() { sort -n | head -1; }
echo "python: $PYTHON, runs: $RUNS (best of), load: $(cut -d' ' -f1-3 /proc/loadavg)"
for w in library flask; do
	src="$ROOT/tests/fixtures/frameworks/bench_$w.py"
	: >"$T/plain"; : >"$T/watched"
	i=0
	while [ $i -lt "$RUNS" ]; do
		"$PYTHON" "$src" >>"$T/plain"
		SUTURE_AGENT="$AGENT" "$BUILD/bin/suture-run" --python "$PYTHON" --store "$T/store" \
			"$src" >>"$T/watched" 2>/dev/null
		i=$((i + 1))
	done
	p=$(best <"$T/plain")
	s=$(best <"$T/watched")
	awk -v w="$w" -v p="$p" -v s="$s" 'BEGIN {
		printf "%-8s unwatched %7.4f s   watched %7.4f s   x%.3f\n", w, p, s, s / p }'
done
