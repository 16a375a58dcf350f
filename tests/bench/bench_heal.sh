#!/bin/sh
# Healing latencies (figures, never assertions):
#  1. attach-to-watching: `suture-attach --pid N --watch` on a fresh target,
#     from the command's start to "[suture] watching pid N" (its own clock),
#     the remote dlopen's part, and how long the target's threads were
#     stopped (ptrace); next to gdb injecting the same library with
#     `call (void*)dlopen(...)` into another fresh target of the same kind,
#     in the same run. For both, the target's own ticker thread reports the
#     longest stall it saw (1 ms sleeps).
#  2. crash-to-patch: from the crash report's arrival to the agent's answer
#     that the patch is installed (heal__on_crash's clock), over many crash
#     sites.
# Env: BUILD (absolute), PYTHON, ROUNDS (default 5), GDB_ROUNDS (default 2:
# gdb reads python3.11's whole debug info each time, ~15-25 s a round here),
# CRASHES (default 40).
set -u
: "${BUILD:?BUILD must be set}"
: "${PYTHON:=/usr/bin/python3.11}"
: "${SUTURE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
ROUNDS=${ROUNDS:-5}
GDB_ROUNDS=${GDB_ROUNDS:-2}
CRASHES=${CRASHES:-40}
ATTACH=${SUTURE_ATTACH:-$BUILD/bin/suture-attach}
AGENT="$BUILD/lib/libsuture_agent.so"
export SUTURE_AGENT="$AGENT"
T="$SUTURE_ROOT/tests/fixtures/heal/bench_target.py"
W=$(mktemp -d /tmp/suture-bench-heal.XXXXXX)
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf "$W"' EXIT

wait_grep() {
	n=0
	while ! grep -q -- "$1" "$2" 2>/dev/null; do
		n=$((n + 1)); [ $n -gt 1000 ] && { echo "bench_heal: timed out on '$1'"; exit 1; }
		sleep 0.01
	done
}
start() { # DIR NFUNCS
	mkdir -p "$1"; mkfifo "$1/cmd"; : >"$1/out"
	"$PYTHON" "$T" "$1" "$2" 2>"$1/err" &
	TP=$!; PIDS="$PIDS $TP"
	wait_grep . "$1/ready"
	sleep 0.2   # let the ticker run
}
gap() { # DIR -> longest stall seen since reset, ms
	echo gap >"$1/cmd"; wait_grep "^gap" "$1/out"
	grep "^gap" "$1/out" | tail -1 | cut -d' ' -f2
}
stats() { # numbers on stdin -> "median X, min Y, max Z"
	sort -g | awk '{ v[NR] = $1 } END { if (!NR) { print "n/a"; exit }
		printf "median %.3f, min %.3f, max %.3f (n=%d)", v[int((NR + 1) / 2)], v[1], v[NR], NR }'
}

echo "bench_heal: $PYTHON, $(nproc) cores, $ROUNDS rounds ($GDB_ROUNDS with gdb), load average $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$W/s.watch"; : >"$W/s.inj"; : >"$W/s.stop"; : >"$W/s.gap"; : >"$W/g.wall"; : >"$W/g.gap"
for r in $(seq "$ROUNDS"); do
	D="$W/s$r"; start "$D" 1
	"$ATTACH" --pid "$TP" --watch --verbose --timeout 0.3 2>"$D/watch.err"
	line=$(grep "watching .* ms after start" "$D/watch.err")
	echo "$line" | sed 's/.*; watching \([0-9.]*\) ms after start, injection \([0-9.]*\) ms, target stopped \([0-9.]*\) ms.*/\1 \2 \3/' >"$D/f"
	read -r a b c <"$D/f"
	echo "$a" >>"$W/s.watch"; echo "$b" >>"$W/s.inj"; echo "$c" >>"$W/s.stop"
	gap "$D" >>"$W/s.gap"
	echo quit >"$D/cmd"
	if [ "$r" -le "$GDB_ROUNDS" ] && command -v gdb >/dev/null; then
		G="$W/g$r"; start "$G" 1
		t0=$(date +%s%N)
		gdb -q -batch -nx -p "$TP" -ex "call (void*)dlopen(\"$AGENT\", 2)" >"$G/gdb.out" 2>&1
		t1=$(date +%s%N)
		echo "$(( (t1 - t0) / 1000 ))" | awk '{ printf "%.3f\n", $1 / 1000 }' >>"$W/g.wall"
		gap "$G" >>"$W/g.gap"
		echo quit >"$G/cmd"
	fi
done
echo "suture-attach --watch: command start to watching (ms): $(stats <"$W/s.watch")"
echo "  injection (connect, dlopen, handshake) (ms):        $(stats <"$W/s.inj")"
echo "  target stopped by ptrace (ms):                      $(stats <"$W/s.stop")"
echo "  longest stall the target saw (ms):                  $(stats <"$W/s.gap")"
if [ -s "$W/g.wall" ]; then
	echo "gdb -p PID -batch -ex 'call (void*)dlopen(...)' (ms):  $(stats <"$W/g.wall")"
	echo "  longest stall the target saw (ms):                  $(stats <"$W/g.gap")"
	ms=$(stats <"$W/s.watch" | sed 's/median \([0-9.]*\).*/\1/')
	mg=$(stats <"$W/g.wall" | sed 's/median \([0-9.]*\).*/\1/')
	sg=$(stats <"$W/s.gap" | sed 's/median \([0-9.]*\).*/\1/')
	gg=$(stats <"$W/g.gap" | sed 's/median \([0-9.]*\).*/\1/')
	echo "ratio gdb/suture: injection wall $(awk "BEGIN { printf \"%.1f\", $mg / $ms }")x, target stall $(awk "BEGIN { printf \"%.1f\", $gg / $sg }")x"
fi

# Crash-to-patch over CRASHES distinct crash sites in one target.
D="$W/c"; start "$D" "$CRASHES"
"$ATTACH" --pid "$TP" --watch --store "$W/store" 2>"$D/watch.err" &
TW=$!; PIDS="$PIDS $TW"
wait_grep "watching pid" "$D/watch.err"
for i in $(seq 0 $((CRASHES - 1))); do
	echo "crash $i" >"$D/cmd"; wait_grep "^done $i\$" "$D/out"
done
kill -INT $TW; wait $TW
grep "guard applied" "$D/watch.err" | sed 's/.*; installed in [0-9]* functions\{0,1\} in \([0-9.]*\) ms$/\1/' >"$W/c.lat"
echo "crash-to-patch, $CRASHES crash sites (ms): $(stats <"$W/c.lat")"
echo quit >"$D/cmd"
