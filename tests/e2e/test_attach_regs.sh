#!/bin/sh
# A remote call leaves the thread's general registers as they were: a
# thread spinning in assembly with 13 registers at known values checks them
# on every iteration (tests/fixtures/attach/regs_target.c) while a remote
# usleep() runs on it, (1) with the debugger restoring the thread, (2) with
# the debugger killed during the call: then the call returns through the
# frame the debugger built and rt_sigreturn restores every register from it
# (attach/arch-x86_64.c). A register taken from the wrong slot fails here.
set -u
. "$(dirname "$0")/lib.sh"
T="$BUILD/tests/e2e/regs_target"
D="$BUILD/tests/e2e/attach_call"
[ -x "$T" ] && [ -x "$D" ] || fail "missing $T or $D (make all)"

# one NAME KILL: a target, a remote usleep on its spinning thread; KILL=1
# kills the debugger while the call runs.
one() {
	"$T" "$W/$1.stop" >"$W/$1.out" 2>&1 &
	tp=$!
	track "$tp"
	wait_grep "^ready " "$W/$1.out" 10 || fail "$1: target not ready"
	tid=$(sed -n 's/^ready [0-9]* \([0-9]*\)$/\1/p' "$W/$1.out")
	"$D" stall "$tp" "$tid" 700000 >"$W/$1.drv" 2>&1 &
	dp=$!
	track "$dp"
	wait_grep "^calling" "$W/$1.drv" 10 || { cat "$W/$1.drv"; fail "$1: the call never started"; }
	if [ "$2" = 1 ]; then
		sleep 0.2
		kill -KILL "$dp" 2>/dev/null
		wait "$dp" 2>/dev/null
		grep -q "^returned" "$W/$1.drv" && fail "$1: the call ended before the debugger was killed"
	else
		wait "$dp" || { cat "$W/$1.drv"; fail "$1: the debugger failed"; }
	fi
	sleep 1 # the usleep ends, the thread goes back to its loop and checks
	touch "$W/$1.stop"
	wait "$tp"
	rc=$?
	[ $rc -eq 0 ] && grep -q "^regs ok$" "$W/$1.out" || { cat "$W/$1.out"; fail "$1: registers changed (exit $rc)"; }
}
one restored 0
ok "a remote call restored by the debugger: 13 registers intact"
one orphaned 1
ok "a remote call whose debugger was killed: rt_sigreturn restored 13 registers intact"
echo PASS
