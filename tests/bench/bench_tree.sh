#!/bin/sh
# Process trees (docs/design.md §15): suture-attach --watch on a pre-fork
# master with 16 workers until all 17 processes are watched; a patch made in
# one worker until it is installed in the 16 others (15 siblings and the
# master); the cost of os.fork() in a process with the agent loaded (idle,
# and followed by a debugger: the child starts its agent, opens its channel
# and is announced) against one without. Prints figures, never fails on one.
# Times are taken by polling the tool's output every 5 ms.
set -u
ROOT=${SUTURE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-$ROOT/build}
PYTHON=${PYTHON:-/usr/bin/python3.11}
F=$ROOT/tests/fixtures/tree
export SUTURE_AGENT=$BUILD/lib/libsuture_agent.so
work=$(mktemp -d)
mpid="" apid="" rpid=""
trap '[ -n "$apid" ] && kill -INT "$apid" 2>/dev/null; sleep 0.5
	[ -n "$mpid" ] && kill -TERM "$mpid" 2>/dev/null
	[ -n "$rpid" ] && kill -TERM "$rpid" 2>/dev/null; rm -rf "$work"' EXIT
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# until_count FILE PATTERN N: wait (60 s at most) until N lines match
until_count() {
	i=0
	while [ "$(grep -c -- "$2" "$1" 2>/dev/null)" -lt "$3" ]; do
		i=$((i + 1)); [ $i -gt 12000 ] && return 1; sleep 0.005
	done
}

echo "-- load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
for round in 1 2 3; do
	"$PYTHON" "$F/prefork.py" "$work/pf$round" 16 >/dev/null 2>&1 &
	mpid=$!
	i=0; until [ -s "$work/pf$round.ready" ] || [ $i -gt 400 ]; do i=$((i + 1)); sleep 0.05; done
	port=$(cat "$work/pf$round.ready")
	t0=$(now_ms)
	"$BUILD/bin/suture-attach" --pid "$mpid" --watch --store "$work/s$round" >"$work/w$round" 2>&1 &
	apid=$!
	until_count "$work/w$round" '^\[suture\] watching pid' 17 || { echo "not all watched"; cat "$work/w$round"; }
	t1=$(now_ms)
	echo "round $round: attach to a master with 16 workers until 17 processes watch: $((t1 - t0)) ms"
	"$PYTHON" "$F/ask.py" "$port" b >/dev/null &
	until_count "$work/w$round" 'stored patch' 1
	t2=$(now_ms)
	until_count "$work/w$round" 'already healed' 16 || { echo "not all patched"; tail -5 "$work/w$round"; }
	t3=$(now_ms)
	echo "round $round: a patch from the worker that crashed to the 16 other processes: $((t3 - t2)) ms"
	kill -INT "$apid"; wait "$apid" 2>/dev/null; apid=""
	kill -TERM "$mpid"; wait "$mpid" 2>/dev/null; mpid=""
done

echo "-- os.fork() of a process that exits at once, 300 times"
printf "without the agent:            "
"$PYTHON" "$F/forkloop.py" 300
printf "agent loaded, no debugger:    "
LD_PRELOAD=$SUTURE_AGENT "$PYTHON" "$F/forkloop.py" 300
printf "under suture-run (followed):  "
"$BUILD/bin/suture-run" --python "$PYTHON" --store "$work/srun" "$F/forkloop.py" 300 2>/dev/null
