#!/bin/sh
# Handled crashes (issue 11, item 6): a job whose own catch-all logs and
# skips bad records (tests/fixtures/handled/job.py, `except Exception: log;
# continue`) is not patched, but suture-audit lists the site with its
# count (stored by suture-run and suture-attach --watch, live with --pid);
# `--heal-handled SITE` (or the store's config.json "heal_handled") heals
# it: patched, resumed in flight, the records get the fallback and the
# handler is no longer entered. A specific `except KeyError:` is never
# listed. Real python3.11.
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
ATTACH="$BUILD/bin/suture-attach"
AUDIT="$BUILD/bin/suture-audit"
JOB="$SUTURE_ROOT/tests/fixtures/handled/job.py"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
SITE="__main__.work:29"

# handled_listed STORE COUNT: the audit lists SITE as a KeyError COUNT times,
# and nothing of specific().
handled_listed() {
	"$AUDIT" --store "$1" >"$W/audit" 2>&1 || { cat "$W/audit"; fail "audit $1"; }
	grep -q "^handled crashes" "$W/audit" || { cat "$W/audit"; fail "$1: no handled crashes heading"; }
	grep -Eq "^$SITE +KeyError +$2 " "$W/audit" || { cat "$W/audit"; fail "$1: $SITE not listed $2 times"; }
	grep -q "specific" "$W/audit" && { cat "$W/audit"; fail "$1: except KeyError listed"; }
	"$AUDIT" --store "$1" --json >"$W/audit.json" 2>&1 || fail "audit --json $1"
	"$PYTHON" - "$W/audit.json" "$SITE" "$2" <<'PY' || { cat "$W/audit.json"; fail "$1: audit --json"; }
import json, sys
d = json.load(open(sys.argv[1]))
h = d["handled"]
assert len(h) == 1, h
assert h[0]["site"] == sys.argv[2] and h[0]["type"] == "KeyError", h
assert h[0]["count"] == int(sys.argv[3]) and h[0]["last_seen"], h
PY
}

# healed D ERR: the records got the fallback, the handler never ran.
healed() {
	grep -q "^out \[2, None, 6, None, None\]" "$1/out" || { cat "$1/out" "$2"; fail "$1: records not healed"; }
	[ -e "$1/handler" ] && { cat "$1/handler"; fail "$1: the handler was still entered"; }
	grep -q "^\[suture\] crash seen: KeyError: 'v' in work (job.py:29), handled by the application's catch-all but healed: --heal-handled $SITE" "$2" ||
		{ cat "$2"; fail "$1: crash line"; }
	grep -q "^\[suture\] resumed in flight" "$2" || { cat "$2"; fail "$1: not resumed"; }
}

# 1. suture-run: handled, listed.
D="$W/r1"; mkdir -p "$D"
"$RUN" --store "$W/s1" "$JOB" "$D" >"$D/out" 2>"$D/err" || { cat "$D/err"; fail "run 1 exit"; }
grep -q "^out \[2, 6\]" "$D/out" || { cat "$D/out"; fail "run 1 output"; }
[ "$(wc -l <"$D/handler")" -eq 3 ] || fail "run 1: handler entered $(wc -l <"$D/handler") times"
grep -q "^\[suture\] handled crash: KeyError at $SITE, caught by the application's own catch-all" "$D/err" ||
	{ cat "$D/err"; fail "run 1: no handled crash line"; }
grep -q "patches applied: 0," "$D/err" || { cat "$D/err"; fail "run 1 patched"; }
handled_listed "$W/s1" 3
ok "suture-run: not patched, listed 3 times"
# Counts add up over runs; --json has a "handled" event.
"$RUN" --store "$W/s1" --json="$D/events" "$JOB" "$D" >"$D/out" 2>"$D/err" || fail "run 1b exit"
handled_listed "$W/s1" 6
"$PYTHON" -c 'import json,sys
ev=[json.loads(l) for l in open(sys.argv[1])]
h=[e for e in ev if e["event"]=="handled"]
assert len(h)==1 and h[0]["site"]==sys.argv[2] and h[0]["exc_type"]=="KeyError" and h[0]["count"]==3, ev' \
	"$D/events" "$SITE" || { cat "$D/events"; fail "run 1b: handled event"; }
ok "suture-run again: 6, and a handled event"

# 2. --heal-handled: patched, resumed, the handler not entered.
D="$W/r2"; mkdir -p "$D"
"$RUN" --store "$W/s1" --heal-handled "$SITE" "$JOB" "$D" >"$D/out" 2>"$D/err" || { cat "$D/err"; fail "run 2 exit"; }
healed "$D" "$D/err"
"$AUDIT" --store "$W/s1" | grep -q "^__main__.work:29:key_guard " || fail "run 2: patch not stored"
ok "suture-run --heal-handled: patched, records got the fallback"

# 3. The store's config.json opts the site in as well (by the file's stem).
D="$W/r3"; mkdir -p "$D" "$W/s3"; chmod 700 "$W/s3"
printf '{"heal_handled": ["job.work:29"]}\n' >"$W/s3/config.json"
"$RUN" --store "$W/s3" "$JOB" "$D" >"$D/out" 2>"$D/err" || { cat "$D/err"; fail "run 3 exit"; }
grep -q "^out \[2, None, 6, None, None\]" "$D/out" || { cat "$D/out" "$D/err"; fail "config.json heal_handled"; }
printf '{"heal_handled": ["job.work"]}\n' >"$W/s3/config.json"
"$RUN" --store "$W/s3" "$JOB" "$D" >"$D/out" 2>"$D/err" && fail "a malformed heal_handled was accepted"
grep -q "heal_handled" "$D/err" || { cat "$D/err"; fail "malformed heal_handled: message"; }
"$RUN" --heal-handled "work" "$JOB" "$D" >"$D/out" 2>"$D/err"
[ $? -eq 2 ] || fail "--heal-handled without a line: not a usage error"
ok "config.json heal_handled, and malformed sites refused"

# 3b. A forked child counts its own handled crashes, not its parent's
# again (3 in the parent, 2 in the child: 5), through the tree's member.
D="$W/r3b"; mkdir -p "$D"
"$RUN" --store "$W/s3b" "$SUTURE_ROOT/tests/fixtures/handled/fork.py" >"$D/out" 2>"$D/err" ||
	{ cat "$D/err"; fail "fork run exit"; }
"$AUDIT" --store "$W/s3b" >"$D/audit" 2>&1
grep -Eq "^__main__.work:15 +KeyError +5 " "$D/audit" || { cat "$D/audit" "$D/err"; fail "fork: not 5"; }
ok "a forked child's handled crashes counted apart from its parent's"

# 4. suture-audit --pid: live counts.
D="$W/r4"; mkdir -p "$D"
"$RUN" --store "$W/s4" "$JOB" "$D" hold >"$D/out" 2>"$D/err" &
TR=$!; track $TR
wait_file "$D/ready" 20
TP=$(cat "$D/ready"); track "$TP"
touch "$D/go"
wait_file "$D/done" 20
"$AUDIT" --pid "$TP" >"$D/audit" 2>&1 || { cat "$D/audit"; fail "audit --pid"; }
grep -Eq "^$SITE +KeyError +3 " "$D/audit" || { cat "$D/audit"; fail "audit --pid: not listed"; }
"$AUDIT" --pid "$TP" --json >"$D/audit.json" 2>"$D/audit.err" || { cat "$D/audit.err"; fail "audit --pid --json"; }
"$PYTHON" -c 'import json,sys; h=json.load(open(sys.argv[1]))["handled"]; assert h[0]["count"]==3 and h[0]["site"]==sys.argv[2], h' \
	"$D/audit.json" "$SITE" || { cat "$D/audit.json"; fail "audit --pid --json"; }
touch "$D/stop"
wait_pid "$TR" 20 || { cat "$D/err"; fail "run 4 exit"; }
ok "suture-audit --pid lists them live"

# 5. suture-attach --watch: listed; then --heal-handled (stem form).
# watch D STORE ARGS...
watch() {
	_d=$1 _s=$2; shift 2
	mkdir -p "$_d"
	"$PYTHON" "$JOB" "$_d" wait >"$_d/out" 2>"$_d/target.err" &
	TP=$!; track $TP
	wait_file "$_d/ready" 10
	"$ATTACH" --pid "$TP" --watch --store "$_s" "$@" 2>"$_d/err" &
	TW=$!; track $TW
	wait_grep "^\[suture\] watching pid $TP\$" "$_d/err" 20
	touch "$_d/go"
	wait_pid "$TP" 20 || { cat "$_d/target.err"; fail "$_d: job exit"; }
	kill -INT "$TW" 2>/dev/null
	wait_pid "$TW" 20 || { cat "$_d/err"; fail "$_d: watcher exit"; }
}
watch "$W/w1" "$W/s5"
grep -q "^out \[2, 6\]" "$W/w1/out" || fail "watch 1 output"
grep -q "^\[suture\] handled crash: KeyError at $SITE" "$W/w1/err" || { cat "$W/w1/err"; fail "watch 1: no line"; }
handled_listed "$W/s5" 3
ok "suture-attach --watch: not patched, listed"
# Detached (^C) from a job that keeps running: the counts come before BYE,
# and are said before the summary line.
D="$W/w3"; mkdir -p "$D"
"$PYTHON" "$JOB" "$D" hold >"$D/out" 2>"$D/target.err" &
TP=$!; track $TP
wait_file "$D/ready" 10
"$ATTACH" --pid "$TP" --watch --store "$W/s6" 2>"$D/err" &
TW=$!; track $TW
wait_grep "^\[suture\] watching pid $TP\$" "$D/err" 20
touch "$D/go"
wait_file "$D/done" 20
kill -INT "$TW"
wait_pid "$TW" 20 || { cat "$D/err"; fail "w3: watcher exit"; }
handled_listed "$W/s6" 3
h=$(grep -n "handled crash: KeyError at $SITE" "$D/err" | cut -d: -f1)
p=$(grep -n "patches applied:" "$D/err" | cut -d: -f1)
[ -n "$h" ] && [ -n "$p" ] && [ "$h" -lt "$p" ] || { cat "$D/err"; fail "w3: handled line not before the summary"; }
touch "$D/stop"
wait_pid "$TP" 20 >/dev/null || :
ok "suture-attach --watch detached by ^C: the counts before BYE are stored"
watch "$W/w2" "$W/s5" --heal-handled job.work:29
healed "$W/w2" "$W/w2/err"
ok "suture-attach --watch --heal-handled: patched, records got the fallback"
echo PASS
