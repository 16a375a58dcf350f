#!/bin/sh
# Live probes (suture-attach --log, docs/performance.md "Live probes"): a
# line executed 10 M times (hot() in tests/fixtures/probe/bench_target.py)
# timed before the probe, with it (the default rate limit on: about 100
# lines a second are printed, the rest counted as dropped), with a probe
# whose --if is false, and after the probe is removed. The cost of a hit
# is the difference over the executions. CPU time of the running thread,
# best of 3 each. Figures only.
set -u
: "${BUILD:?}" "${PYTHON:=/usr/bin/python3.11}" "${SUTURE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
ATTACH="$BUILD/bin/suture-attach"
T="$SUTURE_ROOT/tests/fixtures/probe/bench_target.py"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
N=${PROBE_BENCH_N:-10000000}
LINE=$(grep -n 'x = i + 1' "$T" | cut -d: -f1)
W=$(mktemp -d)
TP=
AP=
cleanup() {
	[ -n "$AP" ] && kill "$AP" 2>/dev/null
	[ -n "$TP" ] && kill "$TP" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
mkfifo "$W/cmd"
"$PYTHON" "$T" "$W" >"$W/out" 2>"$W/err" &
TP=$!
exec 3>"$W/cmd"
i=0
while [ ! -s "$W/ready" ]; do i=$((i + 1)); [ $i -gt 500 ] && { echo "target not ready"; exit 1; }; sleep 0.02; done

# best3: three runs of hot(N), the least CPU time
best3() {
	best=
	for k in 1 2 3; do
		n0=$(wc -l <"$W/out")
		echo "run $N" >&3
		while [ "$(wc -l <"$W/out")" -le "$n0" ]; do sleep 0.05; done
		t=$(tail -n 1 "$W/out")
		best=$(awk -v a="${best:-$t}" -v b="$t" 'BEGIN { print (b < a) ? b : a }')
	done
	echo "$best"
}

probe_on() { # ARGS...: a --log probe in the background, until it is set
	"$ATTACH" --pid $TP --log "$T:$LINE" 'i={i} x={x}' "$@" >"$W/lines" 2>"$W/attach.err" &
	AP=$!
	i=0
	until grep -q "probe .* set in pid" "$W/attach.err"; do
		i=$((i + 1)); [ $i -gt 500 ] && { cat "$W/attach.err"; exit 1; }; sleep 0.02
	done
}
probe_off() {
	kill -INT $AP
	wait $AP
	AP=
}

best3 >/dev/null # warm-up (specialization)
base=$(best3)
probe_on
probed=$(best3)
probe_off
lines=$(wc -l <"$W/lines")
dropped=$(sed -n 's/.*probe: \([0-9]*\) line(s) dropped by the rate limit in all/\1/p' "$W/attach.err")
probe_on --if 'i < 0'
cond=$(best3)
probe_off
after=$(best3)
echo "quit" >&3
awk -v n="$N" -v b="$base" -v p="$probed" -v c="$cond" -v a="$after" -v l="$lines" -v d="${dropped:-0}" 'BEGIN {
	printf "line executed %d times: %.3f s CPU before the probe (%.1f ns a time)\n", n, b, b * 1e9 / n
	printf "probed, rate limit on: %.3f s; %.1f ns a hit more; %d lines printed, %d dropped over the 3 runs\n", p, (p - b) * 1e9 / n, l, d
	printf "probed with --if false: %.3f s; %.1f ns a hit more\n", c, (c - b) * 1e9 / n
	printf "after the probe was removed: %.3f s (x%.3f of before)\n", a, a / b
}'
