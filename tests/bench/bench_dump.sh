#!/bin/sh
# suture-attach --dump --locals against a target with 4 threads parked 50
# frames deep (+ the main thread), next to gdb's py-bt (Debian's
# python3.11 gdb extension) on the same target in the same run.
# Prints: mean dump wall time (process start to exit), median time inside
# the tool (open excluded), median time the target was stopped, and gdb's
# median wall time (gdb keeps the target stopped for about all of it).
set -u
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3.11}
ROOT=${SUTURE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SA="$BUILD/bin/suture-attach"
RUNS=${BENCH_DUMP_RUNS:-200}
GDB_RUNS=${BENCH_GDB_RUNS:-5}
WORK=$(mktemp -d /tmp/suture-bench.XXXXXX)

"$PYTHON" "$ROOT/tests/fixtures/dump/bench_target.py" "$WORK/ready" &
PID=$!
trap 'kill -KILL $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$WORK"' EXIT INT TERM
n=0
while [ ! -f "$WORK/ready" ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n + 1)); done
[ -f "$WORK/ready" ] || { echo "bench_dump: target never ready" >&2; exit 1; }

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) { print "n/a"; exit }
	m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f", m }'; }

"$SA" --pid $PID --dump --locals >"$WORK/first.txt" || { echo "bench_dump: dump failed" >&2; exit 1; }
frames=$(grep -c '^    [^ ]' "$WORK/first.txt")
# In-tool and stopped times from --verbose, one line a dump.
i=0
: >"$WORK/stats"
while [ $i -lt "$RUNS" ]; do
	"$SA" --pid $PID --dump --locals --verbose >/dev/null 2>>"$WORK/stats"
	i=$((i + 1))
done
# Wall time, process start to exit, as the mean of a batch timed once (a
# timer per run would add its own fork to every figure).
t0=$(date +%s%N)
i=0
while [ $i -lt "$RUNS" ]; do
	"$SA" --pid $PID --dump --locals >/dev/null
	i=$((i + 1))
done
t1=$(date +%s%N)
wall=$(awk -v a="$t0" -v b="$t1" -v n="$RUNS" 'BEGIN { printf "%.3f", (b - a) / 1e6 / n }')
inside=$(sed -n 's/.*, dump \([0-9.]*\) ms$/\1/p' "$WORK/stats" | median)
stopped=$(sed -n 's/.*target stopped \([0-9.]*\) ms.*/\1/p' "$WORK/stats" | median)
stop_part=$(sed -n 's/.*(stop \([0-9.]*\), copy.*/\1/p' "$WORK/stats" | median)
copy_part=$(sed -n 's/.*, copy \([0-9.]*\), resume.*/\1/p' "$WORK/stats" | median)

: >"$WORK/gdb"
ok=yes
i=0
while [ $i -lt "$GDB_RUNS" ]; do
	t0=$(date +%s%N)
	gdb -p $PID -batch -ex py-bt >"$WORK/gdb.out" 2>&1
	t1=$(date +%s%N)
	grep -q "level" "$WORK/gdb.out" || grep -q "join" "$WORK/gdb.out" || ok=no
	echo "$(( (t1 - t0) / 1000 ))" | awk '{ printf "%.3f\n", $1 / 1000 }' >>"$WORK/gdb"
	i=$((i + 1))
done
gdb_ms=$(median <"$WORK/gdb")

echo "target: 5 threads ($frames Python frames), locals on; $RUNS dumps, $GDB_RUNS gdb runs"
echo "suture-attach --dump --locals: mean wall ${wall} ms a run from sh (fork to exit); median in the tool ${inside} ms"
echo "  target stopped: median ${stopped} ms (stopping threads ${stop_part} ms, copying ${copy_part} ms)"
echo "gdb -p PID -batch -ex py-bt: median ${gdb_ms} ms (py-bt output ok: $ok)"
awk -v g="$gdb_ms" -v s="$wall" 'BEGIN { if (s > 0) printf "speedup vs gdb: %.0fx (wall to wall)\n", g / s }'
