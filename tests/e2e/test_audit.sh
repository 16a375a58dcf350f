#!/bin/sh
# suture-audit end to end, against stores written by the test driver
# $BUILD/tests/store-tool (standing in for suture-run): the table and JSON
# listings, explain, rollback by name / --all / --dry-run, and the errors and
# exit codes of docs/man/suture-audit.1 (unknown name, corrupt index, bad
# permissions, missing store, --pid, usage).
set -u
. "$(dirname "$0")/lib.sh"
AUDIT=$BUILD/bin/suture-audit
TOOL=$BUILD/tests/store-tool
for b in "$AUDIT" "$TOOL"; do
	[ -x "$b" ] || fail "missing $b (build first)"
done

WORK=$W  # physical (lib.sh): suture-audit shortens paths under getcwd()
cd "$WORK" || fail "cd $WORK"

# run CMD...: stdout in $WORK/out, stderr in $WORK/err, status in $rc
run() { "$@" >"$WORK/out" 2>"$WORK/err"; rc=$?; }
expect_rc() { # want, what
	if [ "$rc" -eq "$1" ]; then ok "$2 (exit $rc)"; else
		note_fail "$2: exit $rc, wanted $1"; sed 's/^/    out: /' "$WORK/out"; sed 's/^/    err: /' "$WORK/err"; fi
}
expect_in() { # file, text, what
	if grep -qF -- "$2" "$1"; then ok "$3"; else
		note_fail "$3: no \"$2\" in:"; sed 's/^/    /' "$1"; fi
}

S=$WORK/store
H=1800   # half an hour, keeps ages away from display boundaries

# ---- missing store ---------------------------------------------------------
# Listing: an empty list, as for an empty store (compared below), exit 0,
# nothing on stderr unless it is a terminal. explain and rollback: exit 4.
run "$AUDIT" --store "$S"
expect_rc 0 "missing store: list"
expect_in "$WORK/out" "no patches in $S" "missing store: no patches"
[ -s "$WORK/err" ] && { note_fail "missing store: stderr not a tty, yet:"; sed 's/^/    /' "$WORK/err"; }
run "$AUDIT" --store "$S" --json
expect_rc 0 "missing store: --json"
cp "$WORK/out" "$WORK/absent.json"
[ -s "$WORK/err" ] && note_fail "missing store: --json wrote on stderr: $(cat "$WORK/err")"
[ "$(tr -d ' \t\n' <"$WORK/out")" = '{"patches":[]}' ] && ok "missing store: empty JSON" ||
	note_fail "missing store: JSON: $(cat "$WORK/out")"
if command -v script >/dev/null 2>&1; then
	# stderr a terminal: the one-line note.
	script -qec "\"$AUDIT\" --store \"$S\" >/dev/null" /dev/null >"$WORK/tty" 2>&1 </dev/null
	[ "$(tr -d '\r' <"$WORK/tty")" = "suture-audit: store: $S: no such store (nothing was healed here?)" ] &&
		ok "missing store: the note on a terminal" || note_fail "missing store: terminal: $(cat "$WORK/tty")"
else
	echo "absent: script(1): the note on a terminal is not tested"
fi
[ -e "$S" ] && note_fail "missing store: listing created it"
run "$AUDIT" --store "$S" explain
expect_rc 4 "missing store: explain"
expect_in "$WORK/err" "suture-audit: store: $S: no such store" "missing store message"
run "$AUDIT" --store "$S" rollback --all
expect_rc 4 "missing store: rollback"

# ---- a store with an active, an expired and a stale patch --------------------
"$TOOL" add --store "$S" --guard key_guard --module app --qualname load_config \
	--file "$WORK/app.py" --first-line 10 --line 12 --target 'cfg["timeout"]' \
	--fallback 30 --consumer "store timeout" --placement value --program "$WORK/app.py" --age $((2 * 86400 + 2 * 3600 + H)) \
	--hits 3 --last-hit 2026-01-02T03:04:05Z >/dev/null || note_fail "store-tool add 1"
"$TOOL" add --store "$S" --guard division_guard --module app.stats --qualname Stats.mean \
	--file "$WORK/stats.py" --line 40 --target 'total / count' --fallback 0 \
	--consumer return --age $((10 * 86400 + H)) >/dev/null || note_fail "store-tool add 2"
"$TOOL" add --store "$S" --name app.main:5:null_guard --guard null_guard --module app \
	--qualname main --file "$WORK/app.py" --line 5 --target user.name --fallback None \
	--age $H --ttl 3 >/dev/null || note_fail "store-tool add 3"
"$TOOL" stale --store "$S" app.main:5:null_guard "code_id differs" || note_fail "store-tool stale"

run "$AUDIT" --store "$S"
expect_rc 0 "list"
cat >"$WORK/want" <<'EOF'
NAME                                    FUNCTION              FILE:LINE    GUARD           TARGET          FALLBACK  AGE    TTL LEFT  HITS  STATUS
app.load_config:12:key_guard            app.load_config       app.py:12    key_guard       cfg["timeout"]  30        2d2h   4d21h     3     active
app.stats.Stats.mean:40:division_guard  app.stats.Stats.mean  stats.py:40  division_guard  total / count   0         10d0h  -         0     expired
app.main:5:null_guard                   app.main              app.py:5     null_guard      user.name       None      30m    2d23h     0     stale

1 expired: no longer applied, so the crash will come back. Fix the source, then: suture-audit rollback NAME
1 stale: the code changed since the patch was made; never applied. Remove: suture-audit rollback NAME
EOF
if cmp -s "$WORK/want" "$WORK/out"; then ok "table exact"; else
	note_fail "table differs:"; diff "$WORK/want" "$WORK/out" | sed 's/^/    /'; fi

# The same through $SUTURE_STORE and through the default ./.suture.
run env SUTURE_STORE="$S" "$AUDIT"
cmp -s "$WORK/want" "$WORK/out" && ok "SUTURE_STORE" || note_fail "SUTURE_STORE listing differs"
mkdir "$WORK/proj" && cp -r "$S" "$WORK/proj/.suture"
(cd "$WORK/proj" && env -u SUTURE_STORE "$AUDIT" >"$WORK/out2" 2>&1)
grep -q "app.load_config:12:key_guard" "$WORK/out2" && ok "default ./.suture" || note_fail "default ./.suture"

# ---- JSON ---------------------------------------------------------------------
run "$AUDIT" --store "$S" --json
expect_rc 0 "list --json"
if "$PYTHON" - "$WORK/out" "$WORK" <<'EOF'
import json, sys, datetime
doc = json.load(open(sys.argv[1]))
work = sys.argv[2]
assert list(doc) == ["patches"], list(doc)
ps = {p["name"]: p for p in doc["patches"]}
assert len(doc["patches"]) == 3
need = ["name", "function", "module", "file", "line", "guard", "target", "fallback",
        "created", "ttl_days", "status", "hits"]
for p in doc["patches"]:
    for k in need:
        assert k in p, (p["name"], k)
a = ps["app.load_config:12:key_guard"]
assert (a["function"], a["module"], a["file"], a["line"], a["first_line"]) == \
    ("load_config", "app", work + "/app.py", 12, 10), a
assert (a["guard"], a["target"], a["fallback"], a["consumer"], a["placement"]) == \
    ("key_guard", 'cfg["timeout"]', "30", "store timeout", "value"), a
assert a["consumer_kind"] == "store", a
assert (a["ttl_days"], a["status"], a["hits"], a["last_hit"]) == \
    (7, "active", 3, "2026-01-02T03:04:05Z"), a
created = datetime.datetime.strptime(a["created"], "%Y-%m-%dT%H:%M:%SZ").replace(
    tzinfo=datetime.timezone.utc)
age = (datetime.datetime.now(datetime.timezone.utc) - created).total_seconds()
want = 2 * 86400 + 2 * 3600 + 1800
assert want - 5 <= age <= want + 60, age
assert abs(a["age_seconds"] - want) < 60, a["age_seconds"]
b = ps["app.stats.Stats.mean:40:division_guard"]
assert (b["status"], b["ttl_left_seconds"], b["consumer"], b["placement"]) == \
    ("expired", 0, "return", None), b
c = ps["app.main:5:null_guard"]
assert (c["status"], c["stale_reason"], c["ttl_days"]) == ("stale", "code_id differs", 3), c
for p in doc["patches"]:
    assert set(p["anchor"]) == {"offset", "window"}
print("json ok")
EOF
then ok "JSON fields and statuses"; else note_fail "JSON check"; sed 's/^/    /' "$WORK/out"; fi

# ---- explain ------------------------------------------------------------------
run "$AUDIT" --store "$S" explain app.load_config:12:key_guard
expect_rc 0 "explain NAME"
expect_in "$WORK/out" "raises KeyError" "explain names the exception"
expect_in "$WORK/out" "uses 30 instead" "explain names the fallback"
expect_in "$WORK/out" "assigned to a variable" "explain judges the consumer"
expect_in "$WORK/out" "hits:     the guard fired 3 time(s) (healed that many crashes), last at" \
	"explain says how often the guard fired"
expect_in "$WORK/out" "          2026-01-02T03:04:05Z" "explain says when it fired last"
run "$AUDIT" --store "$S" explain app.stats.Stats.mean:40:division_guard
expect_in "$WORK/out" "hits:     the guard never fired in a recorded run (loaded is not fired)" \
	"explain says a guard never fired"
run "$AUDIT" --store "$S" explain
expect_rc 0 "explain all"
expect_in "$WORK/out" "expired (made 10d0h ago, TTL 7 days)" "explain reports expiry"
expect_in "$WORK/out" "code_id differs" "explain reports staleness"
run "$AUDIT" --store "$S" explain nope
expect_rc 3 "explain unknown name"
E=$WORK/explain-store
"$TOOL" add --store "$E" --name redir --guard str_coerce_guard --module a --qualname f \
	--line 3 --target "'n=' + n" --fallback "'n=' + str(n)" \
	--consumer "the instruction's own consumer" --placement redirect >/dev/null
"$TOOL" add --store "$E" --name stmt --guard null_guard --module a --qualname g \
	--line 9 --target "user.name.upper()" --fallback None --consumer "store name" \
	--placement statement >/dev/null
"$TOOL" add --store "$E" --name skip --guard null_guard --module a --qualname h \
	--line 11 --target "log.write(x)" --fallback None --consumer "expression statement" \
	--placement skip >/dev/null
run "$AUDIT" --store "$E" explain redir
expect_in "$WORK/out" "The instruction is redirected to a" "explain: redirect guard"
expect_in "$WORK/out" "The helper computes the result" "explain: redirect consumer"
run "$AUDIT" --store "$E" explain stmt
expect_in "$WORK/out" "finishes the statement" "explain: statement guard"
expect_in "$WORK/out" "assigned to a variable" "explain: statement consumer"
expect_in "$WORK/out" "Note: None has no attributes" "explain: None fallback note"
run "$AUDIT" --store "$E" explain skip
expect_in "$WORK/out" "skips the rest of the" "explain: skip placement"
expect_in "$WORK/out" "was going to be discarded" "explain: expression statement consumer"
# The token decides, not the text: a text no release wrote, with its token.
"$TOOL" add --store "$E" --name tok --guard key_guard --module a --qualname k \
	--line 5 --target 'cfg["x"]' --fallback None --consumer "arg 2 of print" \
	--consumer-kind call-arg --placement value >/dev/null
run "$AUDIT" --store "$E" explain tok
expect_in "$WORK/out" "passed as an argument" "explain: by consumer token"

# A version 1 store (docs/formats/store.md, Versions): explained by the
# tokens derived from its texts; reading it leaves the file as it was.
V1=$WORK/v1-store
mkdir -m 700 "$V1" && cp "$SUTURE_ROOT/tests/fixtures/store/index-v1.json" "$V1/index.json" &&
	chmod 600 "$V1/index.json"
run "$AUDIT" --store "$V1" explain p12
expect_rc 0 "explain a version 1 store"
expect_in "$WORK/out" "The instruction is redirected to a" "v1: redirect guard"
expect_in "$WORK/out" "The helper computes the result" "v1: helper consumer"
run "$AUDIT" --store "$V1" explain p8
expect_in "$WORK/out" "the loop is skipped" "v1: for loop consumer"
run "$AUDIT" --store "$V1" explain p22
expect_in "$WORK/out" "finishes the statement" "v1: statement consumer implies the placement"
run "$AUDIT" --store "$V1" explain p16
expect_in "$WORK/out" "The value is consumed by: CONTAINS_OP." "v1: an opcode named by its text"
run "$AUDIT" --store "$V1" --json
if "$PYTHON" - "$WORK/out" <<'EOF2'
import json, sys
ps = {p["name"]: p for p in json.load(open(sys.argv[1]))["patches"]}
assert (ps["p6"]["consumer"], ps["p6"]["consumer_kind"]) == ("call argument", "call-arg"), ps["p6"]
assert ps["p17"]["consumer_kind"] is None, ps["p17"]
EOF2
then ok "v1: JSON has the derived tokens"; else fail "v1: JSON tokens"; fi
cmp -s "$SUTURE_ROOT/tests/fixtures/store/index-v1.json" "$V1/index.json" && ok "v1: reading keeps the file" ||
	fail "v1: reading rewrote the file"

# suture-audit explains with rewrite/ alone: it links no pipeline (heal/).
if nm "$AUDIT" | grep -q ' T heal_'; then fail "suture-audit links heal/"; else
	ok "suture-audit does not link heal/"; fi

# ---- rollback ------------------------------------------------------------------
cp "$S/index.json" "$WORK/before.json"
run "$AUDIT" --store "$S" rollback nope
expect_rc 3 "rollback unknown name"
expect_in "$WORK/err" "no patch named \"nope\"; nothing removed" "unknown name message"
run "$AUDIT" --store "$S" rollback app.main:5:null_guard nope
expect_rc 3 "rollback with one unknown name"
cmp -s "$WORK/before.json" "$S/index.json" && ok "nothing removed on error" || note_fail "store changed on error"

run "$AUDIT" --store "$S" rollback --all --dry-run
expect_rc 0 "rollback --all --dry-run"
[ "$(grep -c '^would remove ' "$WORK/out")" -eq 3 ] && ok "dry run lists 3" || note_fail "dry run output"
cp "$WORK/out" "$WORK/dryall"
cmp -s "$WORK/before.json" "$S/index.json" && ok "dry run changes nothing" || note_fail "dry run changed the store"
run "$AUDIT" --store "$S" rollback --dry-run app.main:5:null_guard
expect_rc 0 "rollback NAME --dry-run"
expect_in "$WORK/out" "would remove app.main:5:null_guard (null_guard on user.name in app.main, $WORK/app.py:5)" "dry run by name"
cmp -s "$WORK/before.json" "$S/index.json" && ok "dry run by name changes nothing" || note_fail "dry run by name changed the store"

run "$AUDIT" --store "$S" rollback app.main:5:null_guard
expect_rc 0 "rollback NAME"
expect_in "$WORK/out" "removed app.main:5:null_guard (null_guard on user.name in app.main, $WORK/app.py:5)" "rollback says what"
run "$AUDIT" --store "$S"
grep -q "app.main:5:null_guard" "$WORK/out" && note_fail "rolled back patch still listed" || ok "rolled back patch gone"
[ "$(wc -l <"$WORK/out")" -eq 5 ] && ok "two patches left" || note_fail "expected 2 rows"

# Two names at once remove both (each once): the index keeps the rest.
cp "$S/index.json" "$WORK/two.json"
two=$(sed -n 's/^would remove \([^ ]*\) .*/\1/p' "$WORK/dryall" | grep -v '^app.main:5:null_guard$' | tr '\n' ' ')
[ "$(echo $two | wc -w)" -eq 2 ] || note_fail "expected two names left, got: $two"
# shellcheck disable=SC2086
run "$AUDIT" --store "$S" rollback $two
expect_rc 0 "rollback A B"
[ "$(grep -c '^removed ' "$WORK/out")" -eq 2 ] && ok "rollback A B says two removed" || note_fail "rollback A B output: $(cat "$WORK/out")"
run "$AUDIT" --store "$S"
expect_in "$WORK/out" "no patches in $S" "rollback A B removed both"
cp "$WORK/two.json" "$S/index.json"

run "$AUDIT" --store "$S" rollback --all
expect_rc 0 "rollback --all"
expect_in "$WORK/out" "2 patches removed from $S" "rollback --all count"
run "$AUDIT" --store "$S"
expect_rc 0 "list empty"
expect_in "$WORK/out" "no patches in $S" "empty store"
run "$AUDIT" --store "$S" --json
[ "$(tr -d ' \t\n' <"$WORK/out")" = '{"patches":[]}' ] && ok "empty JSON" || note_fail "empty JSON: $(cat "$WORK/out")"
cmp -s "$WORK/out" "$WORK/absent.json" && ok "missing store: the same JSON as an empty store" ||
	note_fail "missing store: JSON differs from an empty store's"

# ---- corrupt index: refused, named, kept ------------------------------------------
"$TOOL" add --store "$S" --guard index_guard --module m --qualname f --line 3 >/dev/null
head -c 100 "$S/index.json" >"$WORK/trunc.json"
cp "$WORK/trunc.json" "$S/index.json"
run "$AUDIT" --store "$S"
expect_rc 1 "truncated index"
expect_in "$WORK/err" "suture-audit: store: $S/index.json: line" "corrupt message names the file"
expect_in "$WORK/err" "unexpected end of file (truncated?)" "corrupt message gives the cause"
expect_in "$WORK/err" "mv $S/index.json $S/index.json.bad" "corrupt message says how to move it aside"
run "$AUDIT" --store "$S" rollback --all
expect_rc 1 "rollback on a corrupt index"
cmp -s "$WORK/trunc.json" "$S/index.json" && ok "corrupt index kept byte for byte" || note_fail "corrupt index was changed"
printf '{"format": "suture-store", "version": 9, "patches": []}\n' >"$S/index.json"
run "$AUDIT" --store "$S" --json
expect_rc 1 "future version"
expect_in "$WORK/err" "format version 9 is not supported" "version message"
echo 'not json at all' >"$S/index.json"
run "$AUDIT" --store "$S"
expect_rc 1 "not JSON"
expect_in "$WORK/err" "line 1, column 1: invalid JSON" "not JSON message"
rm "$S/index.json"

# ---- permissions ---------------------------------------------------------------
chmod 0770 "$S"
run "$AUDIT" --store "$S"
expect_rc 1 "group-writable store"
expect_in "$WORK/err" "group writable (mode 0770): refusing a store other users can change; run: chmod go-w $S" "group-writable message"
chmod 0757 "$S"
run "$AUDIT" --store "$S" rollback --all
expect_rc 1 "world-writable store"
chmod 0700 "$S"
"$TOOL" add --store "$S" --guard index_guard --module m --qualname f --line 3 >/dev/null
chmod 0666 "$S/index.json"
run "$AUDIT" --store "$S"
expect_rc 1 "world-writable index"
expect_in "$WORK/err" "$S/index.json: world writable" "index permission message"
chmod 0600 "$S/index.json"

# ---- options -------------------------------------------------------------------
sleep 30 &
SLEEP_PID=$!
track "$SLEEP_PID"
run "$AUDIT" --store "$S" --pid "$SLEEP_PID"
kill "$SLEEP_PID" 2>/dev/null
expect_rc 6 "--pid of a process without the agent"
expect_in "$WORK/err" "no suture agent in this process" "--pid message"
run "$AUDIT" --pid abc
expect_rc 2 "--pid abc"
run "$AUDIT" --bogus
expect_rc 2 "unknown option"
run "$AUDIT" frobnicate
expect_rc 2 "unknown command"
run "$AUDIT" --store "$S" rollback
expect_rc 2 "rollback without NAME or --all"
run "$AUDIT" --store "$S" rollback --all m.f:3:index_guard
expect_rc 2 "rollback --all with a NAME"
run "$AUDIT" --help
expect_rc 0 "--help"
expect_in "$WORK/out" "usage: suture-audit" "--help text"
run "$AUDIT" --version
expect_rc 0 "--version"
expect_in "$WORK/out" "store format 2" "--version text"

finish
