#!/bin/sh
# A reload retires suture's own stored patches of the functions it changed:
# a job crashes on a missing key (tests/fixtures/reload/app/guarded.py),
# suture-attach --watch guards it and stores the patch; the user fixes the
# source and reloads it (beside the running --watch, with its --store); the
# patch is marked superseded by the reload (a stale patch whose reason names
# the reload: store format version 2 unchanged), suture-audit shows
# "superseded" in its table, its explain and its JSON; later records run the
# fixed code (no guard firing). A reload that changes nothing of the guarded
# function leaves its patch active.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
AUDIT="$BUILD/bin/suture-audit"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"

D="$W/job"
mkdir -p "$D"
cp -r "$SUTURE_ROOT/tests/fixtures/reload/app" "$D/app"
start_bg job "$D/ready" "$PYTHON" "$D/app/guarded.py" "$D"
P=$BG
"$ATTACH" --pid "$P" --watch --store "$D/store" 2>"$D/watch.err" &
TW=$!
track $TW
wait_grep "^\[suture\] stored patch rates.price:7:key_guard" "$D/watch.err" 20
wait_grep "tin price=None" "$D/out"
NAME=rates.price:7:key_guard

# A reload that does not touch price: the patch stays active.
printf '\n\ndef unrelated():\n    return 1\n' >>"$D/app/rates.py"
"$ATTACH" --pid "$P" --reload "$D/app/rates.py" --store "$D/store" >"$D/r0.out" 2>&1 ||
	{ cat "$D/r0.out"; fail "reload 0"; }
grep -q "^\[suture\] superseded" "$D/r0.out" && fail "a reload that left price alone superseded its patch"
"$AUDIT" --store "$D/store" >"$D/a0.out"
grep -q "$NAME .* active" "$D/a0.out" || { cat "$D/a0.out"; fail "the patch is not active"; }

# The fix.
sed -i 's/return TABLE\[kind\] \* 2/return TABLE.get(kind, 1) * 2/' "$D/app/rates.py"
"$ATTACH" --pid "$P" --reload "$D/app/rates.py" --store "$D/store" >"$D/r1.out" 2>&1 ||
	{ cat "$D/r1.out"; fail "reload exited non-zero"; }
grep -q "^\[suture\] reloaded price " "$D/r1.out" || { cat "$D/r1.out"; fail "price not reloaded"; }
grep -q "^\[suture\] superseded $NAME: its function was reloaded (reload:rates.py#" "$D/r1.out" ||
	{ cat "$D/r1.out"; fail "no superseded line"; }
n=$(tail -n 1 "$D/out" | awk '{print $2}')
wait_for 10 awk -v n="$n" '$2 > n && $3 == "tin" && $4 == "price=2" { f = 1 } END { exit !f }' "$D/out" ||
	{ tail -n 3 "$D/out"; fail "the fixed code does not run"; }
ok "the reload supersedes the stored patch of price; tin records run the fix"

"$AUDIT" --store "$D/store" >"$D/a1.out"
grep -q "^$NAME .* superseded\$" "$D/a1.out" || { cat "$D/a1.out"; fail "audit's table"; }
grep -q "^1 superseded: " "$D/a1.out" || { cat "$D/a1.out"; fail "audit's summary"; }
"$AUDIT" --store "$D/store" explain "$NAME" >"$D/a2.out"
grep -q "superseded by the reload reload:rates.py#" "$D/a2.out" || { cat "$D/a2.out"; fail "audit explain"; }
"$AUDIT" --store "$D/store" --json >"$D/a3.json"
"$PYTHON" -c '
import json, sys
p = json.load(open(sys.argv[1]))["patches"][0]
assert p["status"] == "stale", p
assert p["superseded_by"].startswith("reload:rates.py#"), p
' "$D/a3.json" || { cat "$D/a3.json"; fail "audit --json"; }
grep -q '"version":	2' "$D/store/index.json" || fail "the store's format version changed"
ok "suture-audit shows it superseded (table, explain, JSON); the store stays version 2"

kill -INT $TW
wait_pid $TW 10 >/dev/null 2>&1 || :
"$AUDIT" --store "$D/store" >"$D/a4.out"
grep -q "^$NAME .* superseded\$" "$D/a4.out" || { cat "$D/a4.out"; fail "the watch's detach revived the patch"; }
stop_pid "$P"
echo PASS
