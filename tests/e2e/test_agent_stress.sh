#!/bin/sh
# Stress on a busy 4-thread target: CYCLES sessions that each restart the
# agent by remote call (ptrace, every thread stopped and released), shake
# hands and detach; then KILLS debuggers killed with SIGKILL at random
# moments while injecting or restarting. The target survives every time,
# every thread's arithmetic stays right, and a last session still watches.
# AGENT_STRESS_CYCLES (default 500) and AGENT_STRESS_KILLS (default 200).
. "$(dirname "$0")/test_agent_lib.sh"

CYCLES=${AGENT_STRESS_CYCLES:-500}
KILLS=${AGENT_STRESS_KILLS:-200}
start_target s plain "$PYTHON" "$FIX/busy_target.py" "$W/s"
"$CLIENT" "$TP" hello >"$W/first" 2>&1 || { cat "$W/first"; fail "first injection"; }
"$CLIENT" "$TP" detach >/dev/null 2>&1 || fail "first detach"
i=0
t0=$(date +%s%N)
while [ $i -lt "$CYCLES" ]; do
	"$CLIENT" "$TP" detach >"$W/c" 2>&1 || { cat "$W/c"; fail "cycle $i: restart/detach"; }
	grep -q '^how=2 ' "$W/c" || { cat "$W/c"; fail "cycle $i: not a restart"; }
	i=$((i + 1))
done
t1=$(date +%s%N)
echo "ok: $CYCLES restart/handshake/detach cycles, $(( (t1 - t0) / CYCLES / 1000 )) us each"

k=0
while [ $k -lt "$KILLS" ]; do
	"$CLIENT" "$TP" hello >/dev/null 2>&1 &
	c=$!
	# 0..15 ms: during the seize, the remote call, the connect or the handshake
	sleep "0.0$(awk -v s=$k 'BEGIN { srand(s); printf "%02d", int(rand() * 16) }')"
	kill -9 "$c" 2>/dev/null
	wait "$c" 2>/dev/null
	kill -0 "$TP" || fail "target died at kill $k"
	# A killed injector leaves the agent either idle or serving: detach it
	# so the next round goes through ptrace again.
	"$CLIENT" "$TP" detach >/dev/null 2>&1
	k=$((k + 1))
done
echo "ok: $KILLS debuggers killed mid-injection, target alive"

start_client s "$TP" hello
wait_pid "$TC" 10 || fail "last session"
grep -q '^how=[02] mode=[12] ' "$W/s.client" || { cat "$W/s.client"; fail "last session not watching"; }
touch "$W/s.stop"
wait_pid "$TP" 30; rc=$?
[ $rc -eq 0 ] || { cat "$W/s.out" "$W/s.err"; fail "target results wrong after the stress (exit $rc)"; }
echo "ok: target results right: $(cat "$W/s.out")"
echo PASS
