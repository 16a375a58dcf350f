#!/bin/sh
# The channel's place cannot be taken from its user (issue 15 item 4). Two
# users made for the test: a victim V and an attacker A.
#   - A creates /tmp/suture-<V's uid> first (the predictable name). V's
#     programs are still healed, by suture-attach --watch (from root) and by
#     suture-run (as V): the agent passes the name over for a private
#     /tmp/suture-<uid>.<random> only V owns, and the debugger finds it the
#     same way. A's directory is left as it was.
#   - V's own XDG_RUNTIME_DIR holds the channel (<dir>/suture).
#   - XDG_RUNTIME_DIR set to a directory A owns: refused, with a one-line
#     reason naming it and its owner; --watch loads nothing into the target,
#     and suture-run says why the agent did not come up.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
RUN="$BUILD/bin/suture-run"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
py_need PY python
[ "$(id -u)" = 0 ] || skip "needs root (creates two users)"
command -v useradd >/dev/null || skip "no useradd"
V=sutv$$ A=suta$$
useradd -M -s /usr/sbin/nologin "$V" || skip "useradd failed"
useradd -M -s /usr/sbin/nologin "$A" || { userdel "$V"; skip "useradd failed"; }
VU=$(id -u "$V")
SQ=/tmp/suture-$VU
cleanup_users() {
	rm -rf "$SQ" /tmp/suture-"$VU".* 2>/dev/null || :
	userdel "$V" 2>/dev/null || :
	userdel "$A" 2>/dev/null || :
}
trap 'cleanup; cleanup_users' EXIT
user_reaches_build "$V"
# Left by an earlier user that had this uid (removed since): V's now.
rm -rf "$SQ" "$SQ".*
chmod 755 "$W"
as() { _u=$1; shift; setpriv --reuid="$_u" --regid="$_u" --clear-groups "$@"; }

# A squats the name.
as "$A" mkdir -m 0777 "$SQ" || fail "the attacker could not create $SQ"

# 1. suture-attach --watch from root into V's process.
D="$W/attach"
mkdir -p "$D" && chmod 777 "$D"
cp "$SUTURE_ROOT/tests/fixtures/ns/ns_target.py" "$D/t.py"
start_group attach "$D/ready" env -u XDG_RUNTIME_DIR setpriv --reuid="$V" --regid="$V" --clear-groups "$PY" "$D/t.py" "$D"
TP=$BG
"$ATTACH" --pid "$TP" --watch --store "$D/store" 2>"$D/watch.err" &
TW=$!
PIDS="$PIDS $TW"
wait_grep "^\[suture\] watching pid $TP\$" "$D/watch.err" || { cat "$D/watch.err"; fail "--watch with $SQ squatted"; }
wait_grep "^ok None" "$W/attach.out" || { cat "$D/watch.err"; fail "the crash was not healed"; }
P=$(ls -d /tmp/suture-"$VU".* 2>/dev/null)
[ "$(echo "$P" | wc -w)" -eq 1 ] || fail "not one private directory: $P"
[ "$(stat -c '%U %a' "$P")" = "$V 700" ] || fail "$P is not V's, 0700: $(stat -c '%U %a' "$P")"
[ -S "$P/agent-$TP.sock" ] || fail "no socket in $P"
[ "$(stat -c '%U %a' "$SQ")" = "$A 777" ] && [ -z "$(ls -A "$SQ")" ] || fail "the squatted directory was touched"
kill -INT "$TW"
wait "$TW" 2>/dev/null || :
grep -q "^\[suture\] detached" "$D/watch.err" || { cat "$D/watch.err"; fail "no clean detach"; }
stop_group "$TP"
ok "--watch heals V's process with $SQ squatted by another user (channel in $P)"

# 2. suture-run as V: the same private directory, found by the agent.
R="$W/run"
mkdir -p "$R" && chown "$V" "$R"
printf 'def lookup(d):\n    return d["k"]\n\n\nprint("ok", lookup({}))\n' >"$R/app.py"
(cd "$R" && env -u XDG_RUNTIME_DIR setpriv --reuid="$V" --regid="$V" --clear-groups \
	"$RUN" --python "$PY" app.py >"$R/out" 2>"$R/err")
rc=$?
[ "$rc" -eq 0 ] && grep -q "^ok None" "$R/out" || { cat "$R/err"; fail "suture-run as V with $SQ squatted: rc $rc"; }
ok "suture-run heals V's script with $SQ squatted"

# 3. V's own XDG_RUNTIME_DIR: the channel lives in it (the squat is moot).
X="$W/xdgv"
mkdir -p "$X" && chown "$V" "$X" && chmod 700 "$X"
D="$W/xdgv-t"
mkdir -p "$D" && chmod 777 "$D"
cp "$SUTURE_ROOT/tests/fixtures/ns/ns_target.py" "$D/t.py"
start_group xdgv "$D/ready" env XDG_RUNTIME_DIR="$X" setpriv --reuid="$V" --regid="$V" --clear-groups "$PY" "$D/t.py" "$D"
TP=$BG
"$ATTACH" --pid "$TP" --watch --store "$D/store" 2>"$D/watch.err" &
TW=$!
PIDS="$PIDS $TW"
wait_grep "^\[suture\] watching pid $TP\$" "$D/watch.err" || { cat "$D/watch.err"; fail "--watch with V's XDG_RUNTIME_DIR"; }
wait_grep "^ok None" "$W/xdgv.out" || { cat "$D/watch.err"; fail "not healed with V's XDG_RUNTIME_DIR"; }
[ -S "$X/suture/agent-$TP.sock" ] || fail "no socket in $X/suture"
[ "$(stat -c '%U %a' "$X/suture")" = "$V 700" ] || fail "$X/suture is not V's, 0700"
kill -INT "$TW"
wait "$TW" 2>/dev/null || :
stop_group "$TP"
ok "--watch heals with the channel in V's XDG_RUNTIME_DIR ($X/suture)"

# 4. XDG_RUNTIME_DIR owned by A: refused, and said why.
X="$W/xdg"
mkdir -p "$X" && chown "$A" "$X" && chmod 700 "$X"
D="$W/xdgt"
mkdir -p "$D" && chmod 777 "$D"
cp "$SUTURE_ROOT/tests/fixtures/ns/ns_target.py" "$D/t.py"
start_group xdgt "$D/ready" env XDG_RUNTIME_DIR="$X" setpriv --reuid="$V" --regid="$V" --clear-groups "$PY" "$D/t.py" "$D"
TP=$BG
"$ATTACH" --pid "$TP" --watch --store "$D/store" >"$D/out" 2>"$D/err"
rc=$?
[ "$rc" -ne 0 ] || fail "--watch with a foreign XDG_RUNTIME_DIR succeeded"
[ "$(wc -l <"$D/err")" -eq 1 ] || { cat "$D/err"; fail "not a one-line error"; }
grep -q "XDG_RUNTIME_DIR $X is owned by uid $(id -u "$A"), not $VU" "$D/err" || { cat "$D/err"; fail "the error does not say why"; }
grep -q libsuture_agent "/proc/$TP/maps" && fail "the agent was loaded anyway"
stop_group "$TP"
ok "--watch: $(cat "$D/err"); nothing loaded"
(cd "$R" && env XDG_RUNTIME_DIR="$X" setpriv --reuid="$V" --regid="$V" --clear-groups \
	"$RUN" --python "$PY" app.py >"$R/out2" 2>"$R/err2")
grep -q "the agent did not come up: channel directory refused: XDG_RUNTIME_DIR $X is owned by uid" "$R/err2" ||
	{ cat "$R/err2"; fail "suture-run does not say why"; }
ok "suture-run: $(grep 'did not come up' "$R/err2")"
echo PASS
