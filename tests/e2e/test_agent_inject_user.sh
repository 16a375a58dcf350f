#!/bin/sh
# An unprivileged debugger (a user made for the test, the target's own)
# injects the agent from a memfd, detaches, and attaches again: the restart
# finds suture_agent_start() through the target's dlsym, since without
# CAP_CHECKPOINT_RESTORE the memfd the agent came from cannot be opened
# (/proc/PID/map_files) and has no path.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
py_need PY python
[ "$(id -u)" = 0 ] || skip "needs root (creates a user)"
U=sutu$$
useradd -M -s /usr/sbin/nologin "$U" || skip "useradd failed"
UU=$(id -u "$U")
# The agent's channel directory (the target runs as U, with the host's /tmp).
trap 'cleanup; rm -rf "/tmp/suture-$UU" "/tmp/suture-$UU".*; userdel "$U" 2>/dev/null || :' EXIT
rm -rf "/tmp/suture-$UU" "/tmp/suture-$UU".* # an earlier user's with this uid
user_reaches_build "$U"
chmod 755 "$W"
D="$W/t"
mkdir -p "$D" && chmod 777 "$D"
cp "$SUTURE_ROOT/tests/fixtures/ns/ns_target.py" "$D/t.py"
start_group target "$D/ready" env -u XDG_RUNTIME_DIR setpriv --reuid="$U" --regid="$U" --clear-groups "$PY" "$D/t.py" "$D"
TP=$BG
for i in 1 2; do
	setpriv --reuid="$U" --regid="$U" --clear-groups env SUTURE_AGENT="$SUTURE_AGENT" "$ATTACH" --pid "$TP" --watch --store "$D/s$i" 2>"$D/w$i.err" &
	TW=$!
	PIDS="$PIDS $TW"
	wait_grep "^\[suture\] watching pid $TP\$" "$D/w$i.err" || { cat "$D/w$i.err"; fail "attach $i as $U"; }
	[ $i = 1 ] && { wait_grep "^ok None" "$W/target.out" || { cat "$D/w1.err"; fail "the crash was not healed"; }; }
	kill -INT "$TW"
	wait "$TW" 2>/dev/null || :
	grep -q "^\[suture\] detached" "$D/w$i.err" || { cat "$D/w$i.err"; fail "detach $i"; }
done
grep -q "/memfd:libsuture_agent.so" "/proc/$TP/maps" || fail "not loaded from a memfd"
[ "$(grep -c 'libsuture_agent.so' "/proc/$TP/maps")" -ge 1 ] && [ "$(awk '/libsuture_agent.so/ {print $5}' "/proc/$TP/maps" | sort -u | wc -l)" = 1 ] || fail "two copies"
ok "as $U: injected from a memfd, detached, restarted, detached"
echo PASS
