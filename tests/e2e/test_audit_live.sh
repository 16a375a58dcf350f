#!/bin/sh
# suture-audit --pid N against a live process healed by suture-attach
# --watch (tests/fixtures/audit/live_target.py): the listing (text and
# --json) shows exactly the patches the agent installed, merged with the
# store; rollback NAME --pid N gives the function its original code back
# (the crash comes back on the next call and the attached watcher sees it
# again) and removes the stored patch; --all --dry-run changes nothing live
# or on disk; after rollback --all (the agent detached: restarted for the
# request) a new watcher heals the crash again. While the watcher is
# attached suture-audit is served as an auditor. Errors: a process without
# the agent, a process that is gone, an unknown name. explain shows the original and patched bytecode
# side by side, and falls back to the spec without the code file.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
AUDIT="$BUILD/bin/suture-audit"
TARGET="$SUTURE_ROOT/tests/fixtures/audit/live_target.py"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
S="$W/store"


# call NAME EXPECTED-LINE: run NAME in the target, wait for one more EXPECTED-LINE
call() {
	_w=${CW:-$W}
	_c=$(grep -cxF "$2" "$_w/out")
	echo "$1" >"$_w/cmd"
	_n=0
	while [ "$(grep -cxF "$2" "$_w/out")" -le "$_c" ]; do
		_n=$((_n + 1))
		[ $_n -gt 500 ] && { cat "$_w/out"; fail "$1: no '$2'"; }
		sleep 0.02
	done
}

start_watch() {
	"$ATTACH" --pid "$TP" --watch --store "$S" 2>"$W/watch.err" &
	TW=$!
	PIDS="$PIDS $TW"
	wait_grep "^\[suture\] watching pid $TP\$" "$W/watch.err"
}

stop_watch() {
	kill -INT "$TW"
	wait "$TW" || fail "the watcher did not detach cleanly"
	grep -q "^\[suture\] detached" "$W/watch.err" || { cat "$W/watch.err"; fail "no detach"; }
}

# audit ARGS...: stdout in $W/a.out, stderr in $W/a.err, status in $rc
audit() { "$AUDIT" --store "$S" "$@" >"$W/a.out" 2>"$W/a.err"; rc=$?; }
expect_rc() {
	[ "$rc" -eq "$1" ] || { cat "$W/a.out" "$W/a.err"; fail "$2: exit $rc, wanted $1"; }
}

mkfifo "$W/cmd"
: >"$W/out"
"$PYTHON" "$TARGET" "$W" 2>"$W/target.err" &
TP=$!
PIDS="$PIDS $TP"
_n=0
while [ ! -s "$W/ready" ]; do
	_n=$((_n + 1)); [ $_n -gt 500 ] && fail "target never ready"; sleep 0.02
done

# Heal two functions live.
start_watch
# Each first call is resumed in flight (fn(*args) from C: its C caller gets
# the fallback), and the next one is healed.
call greet "greet -> None"
wait_grep "^\[suture\] stored patch __main__.greet:" "$W/watch.err"
wait_grep "^\[suture\] resumed in flight: greet " "$W/watch.err"
call greet "greet -> None"
call ratio "ratio -> 0.0"
wait_grep "^\[suture\] stored patch __main__.ratio:" "$W/watch.err"
call ratio "ratio -> 0.0"
G=$(sed -n 's/^\[suture\] stored patch \(__main__\.greet:[^ ]*\) in .*/\1/p' "$W/watch.err")
R=$(sed -n 's/^\[suture\] stored patch \(__main__\.ratio:[^ ]*\) in .*/\1/p' "$W/watch.err")
[ -n "$G" ] && [ -n "$R" ] || fail "patch names not found"

# The listing, while the watcher stays attached (suture-audit asks as an
# auditor): exactly these two, live and stored.
audit --pid "$TP"
expect_rc 0 "--pid list"
[ "$(grep -c '^live ' "$W/a.out")" -eq 2 ] || { cat "$W/a.out"; fail "not two live patches"; }
grep -q "^live    $G\$" "$W/a.out" || fail "greet's patch not listed"
grep -q "^live    $R\$" "$W/a.out" || fail "ratio's patch not listed"
grep -q "null_guard on user.name -> None in greet" "$W/a.out" || fail "greet's guard text"
grep -q "^2 live patches, 0 stored but not live\$" "$W/a.out" || { cat "$W/a.out"; fail "summary"; }
ok "--pid lists the two live patches"
audit --pid "$TP" --json
expect_rc 0 "--pid --json"
"$PYTHON" - "$W/a.out" "$G" "$R" "$TP" <<'EOF' || fail "--pid --json content"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["pid"] == int(sys.argv[4]), d["pid"]
ps = d["patches"]
assert sorted(p["name"] for p in ps) == sorted(sys.argv[2:4]), ps
for p in ps:
    assert p["live"] is True and p["stored"] is True and p["status"] == "active", p
    assert p["live_functions"] >= 1 and p["functions"] >= 1, p
    assert p["installed"] and p["original_code"] != p["patched_code"], p
g = [p for p in ps if p["function"] == "greet"][0]
assert g["guard"] == "null_guard" and g["target"] == "user.name" and g["fallback"] == "None", g
EOF
ok "--pid --json lists the two live patches"

# --all --dry-run: nothing changes, live or on disk.
sum0=$(cksum <"$S/index.json")
audit --pid "$TP" rollback --all --dry-run
expect_rc 0 "rollback --all --dry-run --pid"
grep -q "would roll back 2 patch(es)" "$W/a.out" || { cat "$W/a.out"; fail "dry-run live text"; }
[ "$(cksum <"$S/index.json")" = "$sum0" ] || fail "dry run changed the store"
call greet "greet -> None"
audit --pid "$TP" --json
"$PYTHON" -c 'import json,sys; assert len(json.load(open(sys.argv[1]))["patches"]) == 2' \
	"$W/a.out" || fail "dry run changed the live patches"
ok "--all --dry-run --pid changes nothing"

# Unknown name: nothing changes.
audit --pid "$TP" rollback no.such:1:null_guard
expect_rc 12 "rollback of an unknown name"
[ "$(cksum <"$S/index.json")" = "$sum0" ] || fail "an unknown name changed the store"
ok "unknown name: exit 12, nothing removed"

# Roll back greet's patch: the original code returns, ratio keeps its patch.
audit --pid "$TP" rollback "$G"
expect_rc 0 "rollback NAME --pid"
grep -q "^pid $TP: rolled back 1 patch(es)" "$W/a.out" || { cat "$W/a.out"; fail "rollback text"; }
grep -q "^removed $G " "$W/a.out" || fail "not removed from the store"
seen0=$(grep -c "crash seen: AttributeError.* in greet" "$W/watch.err")
call greet "greet crashed: AttributeError"
call ratio "ratio -> 0.0"
# The watcher, still attached, is told of the crash again.
wait_grep "crash seen: AttributeError.* in greet" "$W/watch.err"
_n=0
while [ "$(grep -c "crash seen: AttributeError.* in greet" "$W/watch.err")" -le "$seen0" ]; do
	_n=$((_n + 1)); [ $_n -gt 250 ] && { cat "$W/watch.err"; fail "the watcher did not see the crash again"; }
	sleep 0.02
done
stop_watch
audit --json
"$PYTHON" -c 'import json,sys; n=[p["name"] for p in json.load(open(sys.argv[1]))["patches"]]; assert n == [sys.argv[2]], n' \
	"$W/a.out" "$R" || fail "store after rollback"
audit --pid "$TP"
[ "$(grep -c '^live ' "$W/a.out")" -eq 1 ] && grep -q "^live    $R\$" "$W/a.out" ||
	{ cat "$W/a.out"; fail "live list after rollback"; }
ok "rollback NAME --pid with a watcher attached: greet crashes again and the watcher sees it, ratio stays healed, store updated"

# Everything back; a new watcher sees the crash again and heals it again.
audit --pid "$TP" rollback --all
expect_rc 0 "rollback --all --pid"
call ratio "ratio crashed: ZeroDivisionError"
audit --pid "$TP"
grep -q "^0 live patches, 0 stored but not live\$" "$W/a.out" || { cat "$W/a.out"; fail "not empty"; }
start_watch
call greet "greet -> None"
wait_grep "^\[suture\] guard applied: null_guard user.name -> None" "$W/watch.err"
wait_grep "^\[suture\] resumed in flight: greet " "$W/watch.err"
call greet "greet -> None"
stop_watch
ok "after rollback --all the watcher reports the crash again and heals it (resumed in flight)"

G2=$(sed -n 's/^\[suture\] stored patch \(__main__\.greet:[^ ]*\) in .*/\1/p' "$W/watch.err")

# A patch suture-run's loader installs at start-up (before the first call)
# is live too, and rolls back while suture-run stays attached.
CW="$W/run"
mkdir -p "$CW"
mkfifo "$CW/cmd"
: >"$CW/out"
"$BUILD/bin/suture-run" --store "$S" -- "$TARGET" "$CW" 2>"$W/run.err" &
RP=$!
PIDS="$PIDS $RP"
_n=0
while [ ! -s "$CW/ready" ]; do
	_n=$((_n + 1)); [ $_n -gt 500 ] && { cat "$W/run.err"; fail "suture-run target never ready"; }; sleep 0.02
done
TP2=$(cat "$CW/ready")
call greet "greet -> None"
audit --pid "$TP2"
expect_rc 0 "--pid on a suture-run process"
grep -q "^live    $G2\$" "$W/a.out" || { cat "$W/a.out" "$W/run.err"; fail "the boot patch is not listed live"; }
audit --pid "$TP2" rollback "$G2"
expect_rc 0 "rollback of a boot patch"
# the crash is back: suture-run heals it again, resumed in flight
call greet "greet -> None"
wait_grep "^\[suture\] resumed in flight: greet " "$W/run.err"
echo quit >"$CW/cmd"
wait "$RP" || { cat "$W/run.err"; fail "suture-run exit status"; }
CW=
ok "a patch loaded at start-up by suture-run is listed live and rolled back"
G2=$(sed -n 's/^\[suture\] stored patch \(__main__\.greet:[^ ]*\) in .*/\1/p' "$W/run.err" | tail -n 1)
[ -n "$G2" ] || { cat "$W/run.err"; fail "suture-run did not store greet's patch again"; }

# explain: the side-by-side bytecode from the code file, and without it.
audit explain "$G2"
expect_rc 0 "explain"
grep -q "original.*patched" "$W/a.out" || { cat "$W/a.out"; fail "no side-by-side header"; }
grep -q "LOAD_ATTR.*name.*LOAD_ATTR.*name" "$W/a.out" || { cat "$W/a.out"; fail "failing instruction not on both sides"; }
grep -q "appended (.* instructions" "$W/a.out" && grep -q "^ *+ .*CHECK_EXC_MATCH" "$W/a.out" ||
	{ cat "$W/a.out"; fail "appended block missing"; }
ok "explain shows original and patched bytecode side by side"
rm -f "$S"/code/*.json
audit explain "$G2"
expect_rc 0 "explain without the code file"
grep -q "no saved original code" "$W/a.out" || { cat "$W/a.out"; fail "no fallback note"; }
grep -q "null_guard\|None" "$W/a.out" || fail "spec explanation missing"
ok "explain without the code file says so and explains the spec"

# Errors: a process without the agent, a process that is gone.
sleep 30 &
SP=$!
PIDS="$PIDS $SP"
audit --pid "$SP"
expect_rc 11 "--pid without an agent"
grep -q "no suture agent in this process" "$W/a.err" || fail "no-agent message"
kill "$SP"
wait "$SP" 2>/dev/null
audit --pid "$SP"
expect_rc 3 "--pid of a process that is gone"
grep -q "no such process" "$W/a.err" || fail "gone message"
ok "errors: no agent (6), no such process (7)"

echo quit >"$W/cmd"
wait "$TP"
echo "PASS"
