#!/bin/sh
# attach/ figures: seize-all / release-all latency and remote call round trip
# on a 5-thread python3.11 (main + 4), idle and busy (2 threads hashing on 2
# cores), and dlopen of a small library. Prints figures, never fails on one.
# Measured by tests/e2e/attach_call (clock_gettime around each API call).
set -u
ROOT=${SUTURE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-$ROOT/build}
PYTHON=${PYTHON:-/usr/bin/python3.11}
DRIVER=$BUILD/tests/e2e/attach_call
[ -x "$DRIVER" ] || { echo "missing $DRIVER"; exit 1; }
work=$(mktemp -d)
tpid=""
trap '[ -n "$tpid" ] && kill -KILL "$tpid" 2>/dev/null; rm -rf "$work"' EXIT

for mode in idle busy; do
	mkfifo "$work/in.$mode"
	"$PYTHON" "$ROOT/tests/fixtures/attach/busy.py" $( [ $mode = idle ] && echo idle ) \
		<"$work/in.$mode" >"$work/out.$mode" 2>&1 &
	tpid=$!
	exec 3>"$work/in.$mode"
	i=0
	until grep -q '^ready' "$work/out.$mode" 2>/dev/null || [ $i -gt 200 ]; do
		i=$((i + 1)); sleep 0.05
	done
	echo "-- $mode target (pid $tpid), 3000 calls"
	"$DRIVER" calls "$tpid" 3000 | grep -v threads-at-call
	"$DRIVER" dlopen "$tpid" libuuid.so.1 | head -1
	echo go >&3
	exec 3>&-
	wait "$tpid" 2>/dev/null
	tpid=""
done
