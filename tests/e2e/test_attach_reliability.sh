#!/bin/sh
# Reliability of suture-attach on a busy 4-thread target (issue 15; the
# target, tests/fixtures/agent/busy_target.py, checks its own arithmetic in
# every thread, with handled exceptions and short sleeps): CYCLES (default
# 100) `suture-attach --watch` sessions, each injecting or restarting the
# agent (ptrace, every thread stopped and released) and detaching on SIGINT;
# then KILLS (default 50) watchers killed with SIGKILL at random moments of
# their attach (within 0.7 of the time one takes to say "watching": most
# while checking or injecting, with the target's threads seized), each
# followed by --detach. The target lives through every one, is never left
# stopped, and its results are right at the end; its descriptors, threads
# and RSS are flat (the same after the last clean detach as after the
# second, RSS within RSS_SLACK_KB). About 25 s here (0.12 s a cycle).
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
FIX="$SUTURE_ROOT/tests/fixtures/agent"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
CYCLES=${CYCLES:-100}
KILLS=${KILLS:-50}
RSS_SLACK_KB=${RSS_SLACK_KB:-4096}
S="$W/store"

start_bg t "$W/t.ready" "$PYTHON" "$FIX/busy_target.py" "$W/t"
TP=$BG

# cycle: one watcher, attached, then detached by SIGINT; exit 0 and the
# detach line, or fail.
cycle() {
	rm -f "$W/w.err" # a fresh file: the last one says "watching" already
	"$ATTACH" --pid "$TP" --watch --store "$S" 2>"$W/w.err" &
	_w=$!
	PIDS="$PIDS $_w"
	wait_grep "^\[suture\] watching pid $TP\$" "$W/w.err" 20
	kill -INT "$_w"
	_n=0
	while kill -0 "$_w" 2>/dev/null && [ "$(awk '{ print $3 }' /proc/$_w/stat 2>/dev/null)" != Z ]; do
		_n=$((_n + 1))
		[ $_n -lt 1000 ] || { cat "$W/w.err"; fail "$1: the watcher did not stop within 20 s of SIGINT"; }
		sleep 0.02
	done
	wait "$_w" || { cat "$W/w.err"; fail "$1: watcher exit status"; }
	grep -q "^\[suture\] detached: watcher removed" "$W/w.err" ||
		{ cat "$W/w.err"; fail "$1: no detach"; }
}

fds() { ls "/proc/$TP/fd" | wc -l; }
tasks() { ls "/proc/$TP/task" | wc -l; }
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$TP/status"; }

# Warm up (the agent loaded once, the target's allocations settled).
cycle warmup
cycle warmup
sleep 0.5
fd0=$(fds) th0=$(tasks) rss0=$(rss)
echo "baseline: $fd0 fds, $th0 threads, $rss0 KiB"

t0=$(date +%s%N)
i=0
while [ $i -lt "$CYCLES" ]; do
	cycle "cycle $i"
	kill -0 "$TP" || fail "target died at cycle $i"
	i=$((i + 1))
done
t1=$(date +%s%N)
ok "$CYCLES attach/detach cycles, $(( (t1 - t0) / CYCLES / 1000000 )) ms each"

# How long an attach takes here (to "watching"): the kills land within it.
s0=$(date +%s%N)
rm -f "$W/w.err"
"$ATTACH" --pid "$TP" --watch --store "$S" 2>"$W/w.err" &
_w=$!
PIDS="$PIDS $_w"
wait_grep "^\[suture\] watching pid $TP\$" "$W/w.err" 20
span=$(( ($(date +%s%N) - s0) / 1000000 ))
kill -INT "$_w"
wait "$_w" || fail "timing: watcher exit status"
early=0
k=0
while [ $k -lt "$KILLS" ]; do
	d=$(awk -v s=$k -v m="$span" 'BEGIN { srand(s); printf "%.3f", rand() * m * 0.7 / 1000 }')
	"$ATTACH" --pid "$TP" --watch --store "$S" 2>"$W/k.err" &
	c=$!
	sleep "$d"
	kill -KILL "$c" 2>/dev/null
	wait "$c" 2>/dev/null
	grep -q "watching pid" "$W/k.err" || early=$((early + 1))
	kill -0 "$TP" || fail "target died at kill $k (after $d s)"
	[ "$(awk '{ print $3 }' "/proc/$TP/stat")" != T ] || fail "target left stopped at kill $k"
	# An agent left serving (or half started) goes back to detached.
	"$ATTACH" --pid "$TP" --detach >/dev/null 2>"$W/d.err"
	rc=$?
	[ $rc -eq 0 ] || [ $rc -eq 11 ] || { cat "$W/d.err"; fail "--detach after kill $k: exit $rc"; }
	k=$((k + 1))
done
ok "$KILLS watchers killed within 0.7 x ${span} ms of their start ($early before watching), target alive"

cycle final
sleep 0.5
fd1=$(fds) th1=$(tasks) rss1=$(rss)
echo "after: $fd1 fds, $th1 threads, $rss1 KiB"
[ "$fd1" -eq "$fd0" ] || { ls -l "/proc/$TP/fd"; fail "descriptors: $fd0 -> $fd1"; }
[ "$th1" -eq "$th0" ] || fail "threads: $th0 -> $th1"
[ "$rss1" -le $((rss0 + RSS_SLACK_KB)) ] || fail "RSS: $rss0 -> $rss1 KiB"
ok "flat: $fd1 descriptors, $th1 threads, RSS $rss0 -> $rss1 KiB"

touch "$W/t.stop"
wait_pid "$TP" 30
rc=$?
[ $rc -eq 0 ] || { cat "$W/t.out" "$W/t.err"; fail "the target's results are wrong (exit $rc)"; }
ok "the target's own checks hold: $(cat "$W/t.out")"
echo PASS
