#!/bin/sh
# The watcher's cost where exceptions are raised and handled inside library
# code (issue 11's benchmarks; docs/performance.md, "Handled exceptions"):
# tests/fixtures/frameworks/bench_handled.py's workloads (json decode
# errors caught by the application, KeyErrors raised and caught in
# os/string/collections/configparser/email, Django URL resolution 404s,
# and the application's own catch-all around a KeyError of its code: a
# handled crash, counted), each
#   plain    python3.11, no agent
#   run      under suture-run (a debugger connected all along)
#   attach   started plain, then suture-attach --watch attaches before the
#            timed loop (the agent injected remotely)
# interleaved, ROUNDS rounds; the workload prints its own CPU time (start-up
# is not in it); medians and ratios to plain. Then a wsgiref server
# (bench_wsgi.py) serving REQS requests to a client in another process:
# requests a second (client) and the server's CPU time, plain and under
# suture-attach --watch and suture-run. Prints figures only; the machine's
# load is printed with them.
set -u
: "${BUILD:=build}"
: "${PYTHON:=/usr/bin/python3.11}"
ROOT=${SUTURE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
AGENT="$BUILD/lib/libsuture_agent.so"
ROUNDS=${ROUNDS:-7}
REQS=${REQS:-1500}
WORKLOADS=${WORKLOADS:-json lookups django app}
# Iterations of each workload's loop: long enough (about half a second
# plain) that a busy machine's noise is not the figure.
export BENCH_N=${BENCH_N:-150000}
[ -f "$AGENT" ] || { echo "build $AGENT first"; exit 1; }
FX="$ROOT/tests/fixtures/frameworks"
T=$(mktemp -d /tmp/bench_handled.XXXXXX)
PIDS=""
trap 'for p in $PIDS; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$T"' EXIT
export SUTURE_AGENT="$AGENT"

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# wait_for_file PATH: up to 20 s.
wait_for_file() {
	_n=0
	while [ ! -s "$1" ]; do
		_n=$((_n + 1)); [ $_n -gt 2000 ] && { echo "timed out waiting for $1" >&2; return 1; }
		sleep 0.01
	done
}

# attached OUT CMD...: CMD (which waits for $T/go, writing $T/go.ready)
# under suture-attach --watch; its stdout appended to OUT.
attached() {
	_out=$1; shift
	rm -f "$T/go" "$T/go.ready"
	"$@" >>"$_out" &
	_tp=$!; PIDS="$PIDS $_tp"
	wait_for_file "$T/go.ready" || return 1
	"$BUILD/bin/suture-attach" --pid "$_tp" --watch --store "$T/store" 2>"$T/w.err" &
	_tw=$!; PIDS="$PIDS $_tw"
	_n=0
	while ! grep -q "watching pid" "$T/w.err" 2>/dev/null; do
		_n=$((_n + 1)); [ $_n -gt 2000 ] && { cat "$T/w.err" >&2; return 1; }
		sleep 0.01
	done
	touch "$T/go"
	wait "$_tp"
	kill -INT "$_tw" 2>/dev/null
	wait "$_tw"
}

echo "python: $PYTHON, rounds: $ROUNDS, BENCH_N: $BENCH_N, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for w in $WORKLOADS; do : >"$T/$w.plain"; : >"$T/$w.run"; : >"$T/$w.attach"; done
r=0
while [ $r -lt "$ROUNDS" ]; do
	for w in $WORKLOADS; do
		"$PYTHON" "$FX/bench_handled.py" "$w" >>"$T/$w.plain"
		"$BUILD/bin/suture-run" --python "$PYTHON" --store "$T/store" \
			"$FX/bench_handled.py" "$w" >>"$T/$w.run" 2>/dev/null
		attached "$T/$w.attach" "$PYTHON" "$FX/bench_handled.py" "$w" "$T/go"
	done
	r=$((r + 1))
done
for w in $WORKLOADS; do
	p=$(median <"$T/$w.plain") s=$(median <"$T/$w.run") a=$(median <"$T/$w.attach")
	awk -v w="$w" -v p="$p" -v s="$s" -v a="$a" 'BEGIN {
		printf "%-8s CPU s, median: plain %.4f   suture-run %.4f (x%.3f)   attach --watch %.4f (x%.3f)\n",
			w, p, s, s / p, a, a / p }'
done

# The wsgiref request loop.
serve() { # MODE
	rm -f "$T/srv" "$T/go" "$T/go.ready"
	case $1 in
	plain) "$PYTHON" "$FX/bench_wsgi.py" "$T/srv" "$REQS" >>"$T/wsgi.$1.cpu" & ;;
	run) "$BUILD/bin/suture-run" --python "$PYTHON" --store "$T/store" \
		"$FX/bench_wsgi.py" "$T/srv" "$REQS" >>"$T/wsgi.$1.cpu" 2>/dev/null & ;;
	attach) "$PYTHON" "$FX/bench_wsgi.py" "$T/srv" "$REQS" "$T/go" >>"$T/wsgi.$1.cpu" & ;;
	esac
	_sp=$!; PIDS="$PIDS $_sp"
	if [ "$1" = attach ]; then
		wait_for_file "$T/go.ready" || return 1
		"$BUILD/bin/suture-attach" --pid "$(cat "$T/go.ready")" --watch --store "$T/store" 2>"$T/w.err" &
		_tw=$!; PIDS="$PIDS $_tw"
		_n=0
		while ! grep -q "watching pid" "$T/w.err" 2>/dev/null; do
			_n=$((_n + 1)); [ $_n -gt 2000 ] && { cat "$T/w.err" >&2; return 1; }
			sleep 0.01
		done
		touch "$T/go"
	fi
	wait_for_file "$T/srv" || return 1
	"$PYTHON" "$FX/bench_wsgi_client.py" "$(cut -d' ' -f1 "$T/srv")" "$REQS" >>"$T/wsgi.$1.rps"
	wait "$_sp"
	if [ "$1" = attach ]; then kill -INT "$_tw" 2>/dev/null; wait "$_tw"; fi
}
for m in plain run attach; do : >"$T/wsgi.$m.cpu"; : >"$T/wsgi.$m.rps"; done
r=0
while [ $r -lt "$ROUNDS" ]; do
	for m in plain run attach; do serve $m; done
	r=$((r + 1))
done
pc=$(median <"$T/wsgi.plain.cpu") pr=$(median <"$T/wsgi.plain.rps")
for m in run attach; do
	c=$(median <"$T/wsgi.$m.cpu") q=$(median <"$T/wsgi.$m.rps")
	awk -v m="$m" -v pc="$pc" -v pr="$pr" -v c="$c" -v q="$q" -v n="$REQS" 'BEGIN {
		printf "wsgiref %-6s requests/s median %.0f vs plain %.0f (x%.3f); server CPU %.1f us/request vs %.1f (x%.3f)\n",
			m, q, pr, q / pr, c / n * 1e6, pc / n * 1e6, c / pc }'
done

# Where the time goes, independent of the machine's load: the share of CPU
# samples (perf record, cpu-clock) of the watched process spent in the
# agent's code, per workload under suture-run (the wall and CPU medians
# above move by several percent from run to run on a busy machine).
if command -v perf >/dev/null 2>&1 && perf record -q -o "$T/p.data" true 2>/dev/null; then
	for w in $WORKLOADS wsgi; do
		if [ $w = wsgi ]; then
			rm -f "$T/srv"
			perf record -q -F 2999 -o "$T/p.data" -- "$BUILD/bin/suture-run" --python "$PYTHON" \
				--store "$T/store" "$FX/bench_wsgi.py" "$T/srv" "$REQS" >/dev/null 2>&1 &
			_pp=$!; PIDS="$PIDS $_pp"
			wait_for_file "$T/srv" || continue
			"$PYTHON" "$FX/bench_wsgi_client.py" "$(cut -d' ' -f1 "$T/srv")" "$REQS" >/dev/null
			wait "$_pp"
		else
			BENCH_N=${PERF_N:-200000} perf record -q -F 2999 -o "$T/p.data" -- "$BUILD/bin/suture-run" \
				--python "$PYTHON" --store "$T/store" "$FX/bench_handled.py" "$w" >/dev/null 2>&1
		fi
		perf report -i "$T/p.data" --comm python3.11 --no-children --sort dso -g none 2>/dev/null |
			awk -v w="$w" '$1 ~ /%$/ { t += $1; if ($2 == "libsuture_agent.so") a = $1 }
				END { printf "%-8s perf: agent code %.2f%% of the watched process'"'"'s samples\n", w, a }'
	done
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
