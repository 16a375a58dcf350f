#!/bin/sh
# An expired patch stays off until the user renews it (issue 16 item 7): it
# is not applied, its crash is reported and not healed again with a fresh
# TTL (the user's --ttl is kept); suture-audit says so and `suture-audit
# renew NAME [--ttl DAYS]` makes it apply again. Also renew's refusals.
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
AUDIT="$BUILD/bin/suture-audit"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
unset SUTURE_STORE VIRTUAL_ENV
S="$W/store"
cat >"$W/job.py" <<'PY'
def load(cfg):
    return cfg["timeout"]

print("timeout", load({}))
PY
NAME="__main__.load:2:key_guard"

"$RUN" --python "$PYTHON" --store "$S" --ttl 1 "$W/job.py" </dev/null >"$W/1.out" 2>"$W/1.err" ||
	{ cat "$W/1.err"; fail "first run: exit"; }
grep -qx "timeout None" "$W/1.out" || { cat "$W/1.err"; fail "first run: not healed"; }
grep -q "^\[suture\] stored patch $NAME in $S\$" "$W/1.err" || { cat "$W/1.err"; fail "first run: not stored"; }

# Two years pass.
sed -i 's/"created":[[:space:]]*"[^"]*"/"created":	"2024-01-01T00:00:00Z"/' "$S/index.json"
"$AUDIT" --store "$S" >"$W/a1.out" 2>&1
grep -q " expired\$" "$W/a1.out" || { cat "$W/a1.out"; fail "not listed as expired"; }
grep -q "the crash is reported, not healed again.*suture-audit renew NAME" "$W/a1.out" ||
	{ cat "$W/a1.out"; fail "list: the expiry not explained"; }

"$RUN" --python "$PYTHON" --store "$S" "$W/job.py" </dev/null >"$W/2.out" 2>"$W/2.err"
rc=$?
[ $rc -eq 1 ] || { cat "$W/2.out" "$W/2.err"; fail "expired: exit $rc, not the script's 1"; }
grep -qx "timeout None" "$W/2.out" && { cat "$W/2.err"; fail "expired: healed anyway"; }
grep -q "^\[suture\] expired: $NAME (key_guard cfg\['timeout'\] in load, job.py:2) expired 2024-01-02T00:00:00Z: not applied, and its crash is not healed again; fix the source, or renew it (suture-audit renew $NAME)\$" \
	"$W/2.err" || { cat "$W/2.err"; fail "expired: the load line"; }
grep -q "^\[suture\] not healed: $NAME (KeyError in load, job.py:2) expired 2024-01-02T00:00:00Z; renew it to apply it again (suture-audit renew $NAME) or fix the source\$" \
	"$W/2.err" || { cat "$W/2.err"; fail "expired: the crash line"; }
grep -q "stored patch\|guard applied\|re-running" "$W/2.err" && { cat "$W/2.err"; fail "expired: healed again"; }
grep -q "^KeyError: 'timeout'" "$W/2.err" || { cat "$W/2.err"; fail "expired: the crash's traceback"; }
"$AUDIT" --store "$S" --json >"$W/j1.json" || fail "audit --json"
"$PYTHON" - "$W/j1.json" <<'PY' || fail "after the expired run: the stored patch changed"
import json, sys
p = json.load(open(sys.argv[1]))["patches"]
assert len(p) == 1 and p[0]["status"] == "expired" and p[0]["ttl_days"] == 1, p
PY
ok "an expired patch stays off: its crash is reported, not re-healed; --ttl 1 kept"

# Renewing: refusals first.
"$AUDIT" --store "$S" renew nosuch >"$W/r.out" 2>"$W/r.err"; rc=$?
[ $rc -eq 12 ] || { cat "$W/r.err"; fail "renew nosuch: exit $rc, not 12"; }
"$AUDIT" --store "$S" --ttl 3 >"$W/r.out" 2>"$W/r.err"; rc=$?
[ $rc -eq 2 ] || { cat "$W/r.err"; fail "--ttl without renew: exit $rc, not 2"; }
"$AUDIT" --store "$S" renew "$NAME" --ttl 0 >"$W/r.out" 2>"$W/r.err"; rc=$?
[ $rc -eq 2 ] || { cat "$W/r.err"; fail "--ttl 0: exit $rc, not 2"; }
"$AUDIT" --store "$S" renew "$NAME" --ttl 3 --dry-run >"$W/r.out" 2>"$W/r.err" || fail "renew --dry-run"
grep -q "^would renew $NAME: applies again until .* (3 days)\$" "$W/r.out" || { cat "$W/r.out"; fail "renew --dry-run: line"; }
grep -q " expired\$" "$W/a1.out" && "$AUDIT" --store "$S" | grep -q " expired\$" || fail "--dry-run renewed"

"$AUDIT" --store "$S" renew "$NAME" --ttl 3 >"$W/r.out" 2>"$W/r.err" || { cat "$W/r.err"; fail "renew: exit"; }
grep -q "^renewed $NAME: applies again until .* (3 days)\$" "$W/r.out" || { cat "$W/r.out"; fail "renew: line"; }
"$AUDIT" --store "$S" --json >"$W/j2.json" || fail "audit --json after renew"
"$PYTHON" - "$W/j2.json" <<'PY' || fail "after renew: status or life"
import json, sys
p = json.load(open(sys.argv[1]))["patches"][0]
assert p["status"] == "active", p
assert 2 * 86400 < p["ttl_left_seconds"] <= 4 * 86400, p
assert p["created"] == "2024-01-01T00:00:00Z", p
PY
"$RUN" --python "$PYTHON" --store "$S" "$W/job.py" </dev/null >"$W/3.out" 2>"$W/3.err" || { cat "$W/3.err"; fail "renewed: exit"; }
grep -qx "timeout None" "$W/3.out" || { cat "$W/3.err"; fail "renewed: not applied"; }
grep -q "^\[suture\] already healed: key_guard cfg\['timeout'\]" "$W/3.err" || { cat "$W/3.err"; fail "renewed: not loaded"; }
ok "suture-audit renew NAME --ttl 3: applies again for 3 days, its age kept"
echo PASS
