#!/bin/sh
# The agent loaded with LD_PRELOAD (how suture-run loads it): channel in
# /tmp/suture-<uid> (0700) with a socket named by pid, handshake (WELCOME:
# version, pid, Python version, watch mode), PING counters; a second session
# reuses it; a second copy of the library loaded in the same process stays
# idle (one report, not two); DETACH removes the watcher and closes the
# channel, after which a crash is not reported and goes on untouched; the
# agent strips itself from LD_PRELOAD so child processes do not inherit it;
# SUTURE_AGENT_WAIT_DEBUGGER_MS makes an early crash wait for a debugger.
. "$(dirname "$0")/test_agent_lib.sh"

uid=$(id -u)
for py in $(pythons); do
	tag=$(basename "$(dirname "$(dirname "$py")")")
	start_target "a-$tag" preload "$py" "$FIX/watch_target.py" "$W/a-$tag" handled
	sock="/tmp/suture-$uid/agent-$TP.sock"
	_n=0
	while [ ! -S "$sock" ]; do
		_n=$((_n + 1)); [ $_n -gt 500 ] && fail "$py: no socket $sock"; sleep 0.02
	done
	[ "$(stat -c %a "/tmp/suture-$uid")" = 700 ] || fail "channel dir mode is not 0700"
	"$CLIENT" -n "$TP" hello >"$W/a1" || fail "$py: hello"
	grep -q "^how=0 mode=[12] py=0x30b0" "$W/a1" || { cat "$W/a1"; fail "$py: WELCOME"; }
	grep -q "^pong crashes=0 parked=0" "$W/a1" || { cat "$W/a1"; fail "$py: PONG"; }
	"$CLIENT" -n "$TP" hello >"$W/a2" || fail "$py: second session"
	"$CLIENT" -n "$TP" detach >"$W/a3" || fail "$py: detach"
	grep -q '^detached' "$W/a3" || fail "$py: no BYE"
	[ -e "$sock" ] && fail "$py: socket left after detach"
	[ -e "/tmp/suture-$uid/agent-$TP.lock" ] && fail "$py: lock file left after detach"
	touch "$W/a-$tag.go"
	wait_pid "$TP" 30; rc=$?
	[ $rc -eq 1 ] || fail "$py: exit $rc after detach"
	grep -q "KeyError: 'missing'" "$W/a-$tag.err" || fail "$py: traceback after detach"
	echo "ok: $py: handshake, reuse, detach"

	# Two copies of the library (LD_PRELOAD of both): one serves.
	cp "$AGENT" "$W/libsuture_agent_copy.so"
	LD_PRELOAD="$AGENT $W/libsuture_agent_copy.so" "$py" "$FIX/watch_target.py" "$W/b-$tag" crash \
		2>"$W/b-$tag.err" &
	TP=$!
	PIDS="$PIDS $TP"
	wait_file "$W/b-$tag.ready"
	start_client "b-$tag" -n "$TP" watch 2 3
	touch "$W/b-$tag.go"
	wait_pid "$TP" 30
	wait_pid "$TC" 10; crc=$?
	[ $crc -eq 3 ] || [ $crc -eq 4 ] || fail "$py: client exit $crc"
	[ "$(grep -c '^crash ' "$W/b-$tag.client")" = 1 ] || { cat "$W/b-$tag.client"; fail "$py: two copies: reports"; }
	echo "ok: $py: a second copy stays idle"
done

# suture-run's case: with SUTURE_AGENT_WAIT_DEBUGGER_MS a crash that
# happens before any debugger connected waits for one (here it connects
# 300 ms after the crash) and is reported.
touch "$W/w.go"
SUTURE_AGENT_WAIT_DEBUGGER_MS=10000 start_target w preload "$PYTHON" "$FIX/watch_target.py" "$W/w" crash
sleep 0.3
kill -0 "$TP" || fail "the crash did not wait for a debugger"
start_client w -n "$TP" watch 1 10
wait_pid "$TP" 30
wait_pid "$TC" 10 || { cat "$W/w.client"; fail "waiting crash not reported"; }
grep -q '^crash .*func=lookup' "$W/w.client" || fail "waiting crash: wrong report"
for f in sock lock; do
	[ -e "/tmp/suture-$uid/agent-$TP.$f" ] && fail "agent-$TP.$f left after the process exited"
done
echo "ok: a crash before the debugger connected waited for it"

# Preloaded into a process that is not Python (a shell, or env running a
# `#!/usr/bin/env python3.11` script), the agent loads, stays inert and
# leaves LD_PRELOAD for the interpreter that process runs.
LD_PRELOAD="$AGENT" sh -c 'echo "sh ok"' >"$W/sh" 2>&1 || { cat "$W/sh"; fail "a shell cannot run with the agent preloaded"; }
grep -q '^sh ok$' "$W/sh" || { cat "$W/sh"; fail "shell output"; }
printf '#!/usr/bin/env %s\nimport os\nprint("agent", "libsuture_agent" in open("/proc/self/maps").read())\n' \
	"$PYTHON" >"$W/shebang.py"
chmod +x "$W/shebang.py"
LD_PRELOAD="$AGENT" "$W/shebang.py" >"$W/sb" 2>&1 || { cat "$W/sb"; fail "env + python with the agent preloaded"; }
grep -q '^agent True$' "$W/sb" || { cat "$W/sb"; fail "the interpreter started by env did not get the agent"; }
echo "ok: inert in a shell and in env, active in the interpreter env starts"

# Children do not inherit the agent through LD_PRELOAD.
LD_PRELOAD="$AGENT" "$PYTHON" -c 'import os, subprocess; print(subprocess.run(["sh", "-c", "echo pre=$LD_PRELOAD"], capture_output=True, text=True).stdout.strip())' >"$W/env" 2>&1
grep -q '^pre=$' "$W/env" || { cat "$W/env"; fail "LD_PRELOAD inherited by a child"; }
echo PASS
