#!/bin/sh
# Remote calls in a live, busy, multi-threaded CPython 3.11 (Debian's and, if
# present, pyenv's): >= 500 libc calls across all its threads (including the
# ones blocked in read() and in time.sleep), then dlopen of a harmless library.
# The target must print exactly what an unattached run prints and exit 0.
# Env: BUILD (absolute), PYTHON, SUTURE_ROOT. Ends only the processes it starts.
set -eu
ROOT=${SUTURE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-$ROOT/build}
PYTHON=${PYTHON:-/usr/bin/python3.11}
DRIVER=$BUILD/tests/e2e/attach_call
FIXTURE=$ROOT/tests/fixtures/attach/busy.py
CALLS=${ATTACH_CALLS:-600}
[ -x "$DRIVER" ] || { echo "missing $DRIVER (make BUILD=... all)"; exit 1; }

work=$(mktemp -d)
tpid=""
cleanup() {
	if [ -n "$tpid" ] && kill -0 "$tpid" 2>/dev/null; then kill -KILL "$tpid" 2>/dev/null || true; fi
	exec 3>&- 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

# start PY NAME: runs the fixture with a fifo as stdin (fd 3 holds it open),
# waits for "ready", sets $tpid.
start() {
	rm -f "$work/in"
	mkfifo "$work/in"
	"$1" "$FIXTURE" <"$work/in" >"$work/$2.out" 2>"$work/$2.err" &
	tpid=$!
	exec 3>"$work/in"
	i=0
	until grep -q '^ready ' "$work/$2.out" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 200 ] || ! kill -0 "$tpid" 2>/dev/null; then
			echo "FAIL: $2: target never became ready"; cat "$work/$2.err"; exit 1
		fi
		sleep 0.05
	done
}

# finish NAME: tells the target to finish, waits, checks exit status 0.
finish() {
	echo go >&3
	exec 3>&-
	rc=0
	wait "$tpid" || rc=$?
	tpid=""
	if [ $rc -ne 0 ]; then
		echo "FAIL: $1: target exited with status $rc"; cat "$work/$1.err"; exit 1
	fi
	grep -v '^ready ' "$work/$1.out" >"$work/$1.cmp"
}

run_python() { # PY LABEL
	py=$1; label=$2
	echo "== $label: $py"
	# Reference: the same program, never attached.
	start "$py" "$label-ref"
	sleep 0.3
	finish "$label-ref"

	start "$py" "$label"
	sleep 0.2
	if ! "$DRIVER" calls "$tpid" "$CALLS" >"$work/$label.drv"; then
		cat "$work/$label.drv"; echo "FAIL: $label: remote calls failed"; exit 1
	fi
	cat "$work/$label.drv"
	# The calls landed on threads blocked in read() and in sleep too.
	grep -Eq 'read [1-9]' "$work/$label.drv" || { echo "FAIL: no call on a thread blocked in read"; exit 1; }
	grep -Eq 'sleep [1-9]' "$work/$label.drv" || { echo "FAIL: no call on a sleeping thread"; exit 1; }
	# dlopen: a library already loaded (refcount) and one that is not.
	grep -q 'libuuid' "/proc/$tpid/maps" && { echo "FAIL: libuuid already mapped?"; exit 1; }
	"$DRIVER" dlopen "$tpid" libm.so.6
	"$DRIVER" dlopen "$tpid" libuuid.so.1
	grep -q 'libuuid.so.1' "/proc/$tpid/maps" || { echo "FAIL: libuuid.so.1 not in maps"; exit 1; }
	# Keep it attached-to while it works, then let it finish.
	"$DRIVER" calls "$tpid" 150 >/dev/null
	finish "$label"
	if ! cmp -s "$work/$label-ref.cmp" "$work/$label.cmp"; then
		echo "FAIL: $label: output differs from the unattached run"
		diff "$work/$label-ref.cmp" "$work/$label.cmp" || true
		exit 1
	fi
	grep -q 'short=0' "$work/$label.cmp" || { echo "FAIL: a time.sleep woke early"; exit 1; }
	grep -q 'bad=0' "$work/$label.cmp" || { echo "FAIL: a worker computed a wrong digest"; exit 1; }
	grep -q 'reader: ping' "$work/$label.cmp" || { echo "FAIL: the blocked read lost its data"; exit 1; }
	cat "$work/$label.cmp"
}

run_python "$PYTHON" debian
PYENV=/root/.pyenv/versions/3.11.7/bin/python3.11
if [ -x "$PYENV" ]; then
	run_python "$PYENV" pyenv
else
	echo "(no pyenv 3.11.7: skipped that half)"
fi
echo PASS
