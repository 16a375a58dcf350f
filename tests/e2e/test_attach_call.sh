#!/bin/sh
# Remote calls in a live, busy, multi-threaded CPython 3.11 (Debian's and, if
# present, pyenv's): >= 500 libc calls across all its threads (including the
# ones blocked in read() and in time.sleep), then dlopen of a harmless library.
# The target must print exactly what an unattached run prints and exit 0.
# Env: BUILD (absolute), PYTHON, SUTURE_ROOT. Ends only the processes it starts.
set -eu
. "$(dirname "$0")/lib.sh"
DRIVER=$BUILD/tests/e2e/attach_call
FIXTURE=$SUTURE_ROOT/tests/fixtures/attach/busy.py
CALLS=${ATTACH_CALLS:-600}
[ -x "$DRIVER" ] || fail "missing $DRIVER (make BUILD=... all)"
work=$W
tpid=""

# start PY NAME: runs the fixture with a fifo as stdin (fd 3 holds it open),
# waits for "ready", sets $tpid.
start() {
	rm -f "$work/in"
	mkfifo "$work/in"
	"$1" "$FIXTURE" <"$work/in" >"$work/$2.out" 2>"$work/$2.err" &
	tpid=$!
	track "$tpid"
	exec 3>"$work/in"
	i=0
	until grep -q '^ready ' "$work/$2.out" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 200 ] || ! kill -0 "$tpid" 2>/dev/null; then
			cat "$work/$2.err"; fail "$2: target never became ready"
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
		cat "$work/$1.err"; fail "$1: target exited with status $rc"
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
		cat "$work/$label.drv"; fail "$label: remote calls failed"
	fi
	cat "$work/$label.drv"
	# The calls landed on threads blocked in read() and in sleep too.
	grep -Eq 'read [1-9]' "$work/$label.drv" || fail "no call on a thread blocked in read"
	grep -Eq 'sleep [1-9]' "$work/$label.drv" || fail "no call on a sleeping thread"
	# dlopen: a library already loaded (refcount) and one that is not.
	grep -q 'libuuid' "/proc/$tpid/maps" && fail "libuuid already mapped?"
	"$DRIVER" dlopen "$tpid" libm.so.6
	"$DRIVER" dlopen "$tpid" libuuid.so.1
	grep -q 'libuuid.so.1' "/proc/$tpid/maps" || fail "libuuid.so.1 not in maps"
	# Keep it attached-to while it works, then let it finish.
	"$DRIVER" calls "$tpid" 150 >/dev/null
	finish "$label"
	if ! cmp -s "$work/$label-ref.cmp" "$work/$label.cmp"; then
		diff "$work/$label-ref.cmp" "$work/$label.cmp" || true
		fail "$label: output differs from the unattached run"
	fi
	grep -q 'short=0' "$work/$label.cmp" || fail "a time.sleep woke early"
	grep -q 'bad=0' "$work/$label.cmp" || fail "a worker computed a wrong digest"
	grep -q 'reader: ping' "$work/$label.cmp" || fail "the blocked read lost its data"
	cat "$work/$label.cmp"
}

run_python "$PYTHON" debian
if PYENV=$(py311_find pyenv); then
	run_python "$PYENV" pyenv
else
	echo "absent: the pyenv half, not tested: $(py311_why pyenv)"
fi
echo PASS
