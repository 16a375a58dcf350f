#!/bin/sh
# suture-run start-up cost (figures, never assertions): a script with 100
# functions, each healed once and stored (so 100 patches are loaded before
# their first call, at the agent's boot hook), started RUNS times under
# suture-run, next to plain python3.11 on the same script, and next to
# suture-run with an empty store. Wall times of the whole run (the script
# itself only defines the functions and calls each with good input).
# Env: BUILD (absolute), PYTHON, RUNS (default 20), NFUNCS (default 100).
set -u
: "${BUILD:?BUILD must be set}"
: "${PYTHON:=/usr/bin/python3.11}"
RUNS=${RUNS:-20}
NFUNCS=${NFUNCS:-100}
RUN="$BUILD/bin/suture-run"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
W=$(mktemp -d /tmp/suture-bench-run.XXXXXX)
trap 'rm -rf "$W"' EXIT

S="$W/app.py"
{
	echo "import sys, threading"
	i=0
	while [ $i -lt "$NFUNCS" ]; do
		printf 'def f%d(d):\n    return d["k%d"]\n\n' $i $i
		i=$((i + 1))
	done
	echo 'fs = [globals()[f"f{i}"] for i in range('"$NFUNCS"')]'
	echo 'if sys.argv[1] == "crash":'
	echo '    threading.excepthook = lambda a: None'
	echo '    for i, f in enumerate(fs):'
	echo '        t = threading.Thread(target=f, args=({},)); t.start(); t.join()'
	echo 'else:'
	echo '    for i, f in enumerate(fs):'
	echo '        assert f({f"k{i}": i}) == i'
} >"$S"

"$RUN" --python "$PYTHON" --store "$W/store" "$S" crash 2>"$W/heal.err"
n=$(grep -c "guard applied" "$W/heal.err")
"$RUN" --python "$PYTHON" --store "$W/store" "$S" quiet 2>"$W/load.err"
l=$(grep -c "already healed: key_guard" "$W/load.err")
echo "bench_run: $PYTHON, $(nproc) cores, $NFUNCS functions, $n patches stored, $l loaded at start, $RUNS runs each"

time_runs() { # LABEL COMMAND...
	label=$1; shift
	: >"$W/t"
	for r in $(seq "$RUNS"); do
		t0=$(date +%s%N)
		"$@" >/dev/null 2>&1
		t1=$(date +%s%N)
		echo $(( (t1 - t0) / 1000 )) >>"$W/t"
	done
	sort -n "$W/t" | awk -v l="$label" '{ v[NR] = $1 } END {
		printf "%-40s median %7.2f ms, min %7.2f ms\n", l, v[int((NR + 1) / 2)] / 1000, v[1] / 1000 }'
	sort -n "$W/t" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }' >"$W/med.$label"
}
time_runs plain "$PYTHON" "$S" quiet
time_runs suture-run-empty-store "$RUN" --python "$PYTHON" --store "$W/empty" "$S" quiet
time_runs suture-run-${l}-patches "$RUN" --python "$PYTHON" --store "$W/store" "$S" quiet
p=$(cat "$W/med.plain")
e=$(cat "$W/med.suture-run-empty-store")
f=$(cat "$W/med.suture-run-${l}-patches")
awk -v p="$p" -v e="$e" -v f="$f" -v l="$l" 'BEGIN {
	printf "added by suture-run: %.2f ms with an empty store, %.2f ms with %d stored patches (%.3f ms a patch)\n",
		(e - p) / 1000, (f - p) / 1000, l, l ? (f - e) / 1000 / l : 0 }'
