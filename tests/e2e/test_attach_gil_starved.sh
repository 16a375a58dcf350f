#!/bin/sh
# The agent takes the GIL from a thread that never lets a waiter have it
# (issue 15; docs/design.md, "The agent's GIL"). The target
# (tests/fixtures/agent/gil_starved_target.py) runs with a one-second
# switch interval and a worker that releases the GIL for a stat() every
# 2 ms: CPython's waiting threads never time out, so never ask for it, and
# lose every race for it. Each of CYCLES (default 6) `suture-attach
# --watch` sessions must still install its watcher ("watching", not "the
# GIL was not released in time"), the first heal the crash in flight
# (a patch: the GIL again), `suture-audit --pid` list it live, and SIGINT
# detach with status 0 (the unwatch: the GIL again, BYE within the
# debugger's 10 s). The target's calls all return None and it exits 0.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
AUDIT="$BUILD/bin/suture-audit"
FIX="$SUTURE_ROOT/tests/fixtures/agent"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
CYCLES=${CYCLES:-6}
S="$W/store"

start_bg t "$W/ready" "$PYTHON" "$FIX/gil_starved_target.py" "$W"
TP=$BG

i=1
while [ $i -le "$CYCLES" ]; do
	rm -f "$W/w.err"
	"$ATTACH" --pid "$TP" --watch --store "$S" 2>"$W/w.err" &
	TW=$!
	PIDS="$PIDS $TW"
	wait_grep "^\[suture\] watching pid $TP\$" "$W/w.err" 30
	if grep -q "not watching" "$W/w.err"; then
		cat "$W/w.err"
		fail "cycle $i: the watcher was not installed"
	fi
	if [ $i -eq 1 ]; then
		touch "$W/go"
		wait_grep "^\[suture\] stored patch __main__.lookup:" "$W/w.err" 30
		"$AUDIT" --pid "$TP" --store "$S" >"$W/audit.out" 2>&1 ||
			{ cat "$W/audit.out"; fail "suture-audit --pid"; }
		grep -q "lookup" "$W/audit.out" ||
			{ cat "$W/audit.out"; fail "suture-audit --pid does not list the live patch"; }
		ok "the crash healed in flight and listed live"
	fi
	kill -INT "$TW"
	wait "$TW"
	rc=$?
	PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$TW" | tr '\n' ' ')
	if [ $rc -ne 0 ] || ! grep -q "^\[suture\] detached: watcher removed" "$W/w.err"; then
		cat "$W/w.err"
		fail "cycle $i: the detach ended with status $rc"
	fi
	i=$((i + 1))
done
ok "$CYCLES sessions installed, detached and exited 0"

touch "$W/quit"
wait_pid "$TP" 20 || { cat "$W/t.err"; fail "the target saw a call not healed"; }
ok "the target's every call returned None"
echo PASS
