#!/bin/sh
# The store's share of "start a script with 100 stored patches": open a store
# of 100 patches (read + validate index.json) and select the applicable ones
# of one module of one program. Prints figures; never fails on a number.
#   in-process: store-tool bench (store__open + store_iter over the query + close)
#   per process: a whole `store-tool find` process vs `true`, and plain
#                python3.11 -c pass for scale
set -u
ROOT=${SUTURE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-$ROOT/build}
PYTHON=${PYTHON:-/usr/bin/python3.11}
TOOL=$BUILD/tests/store-tool
[ -x "$TOOL" ] || { echo "missing $TOOL (build first)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PROG=/srv/app/main.py

ms_per_run() { # runs, command...: average wall time of one run, in ms
	n=$1; shift
	t0=$(date +%s%N)
	i=0
	while [ $i -lt "$n" ]; do "$@" >/dev/null 2>&1; i=$((i + 1)); done
	t1=$(date +%s%N)
	echo "$t0 $t1 $n" | awk '{ printf "%.3f", ($2 - $1) / 1e6 / $3 }'
}

for count in 100 1000; do
	S=$WORK/s$count
	"$TOOL" fill --store "$S" --count $count --modules 10 --program $PROG || exit 1
	echo "store of $count patches (10 modules), index.json $(wc -c <"$S/index.json") bytes"
	"$TOOL" bench --store "$S" --program $PROG --module mod3 --iterations 2000 | sed 's/^/  /'
	find_ms=$(ms_per_run 200 "$TOOL" find --store "$S" --program $PROG --module mod3)
	true_ms=$(ms_per_run 200 /bin/true)
	echo "  whole process 'store-tool find': $find_ms ms/run (/bin/true: $true_ms ms/run)"
done
py_ms=$(ms_per_run 20 "$PYTHON" -c pass)
echo "for scale: $PYTHON -c pass: $py_ms ms/run"
