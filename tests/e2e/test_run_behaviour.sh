#!/bin/sh
# suture-run around the script: arguments, stdin, stdout and the exit status
# pass through; a signal sent to suture-run reaches the script and suture-run
# ends the same way; deliberate raises/asserts and handled exceptions are
# never patched; a crash at module level is reported once, not looped;
# --shadow reports each fallback handed on; a
# patch stored for one script never applies to another with the same
# function; a source edit makes the stored patch stale (reported, marked,
# never applied); an expired patch is not applied and says so; two
# suture-run on one store at once lose nothing.
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
AUDIT="$BUILD/bin/suture-audit"
FIX="$SUTURE_ROOT/tests/fixtures/run"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
run() { "$RUN" --python "$PYTHON" --verbose "$@"; }
connected() { grep -q "^\[suture\] agent ready in pid" "$1" || { cat "$1"; fail "$2: never connected"; }; }

# --- pass-through ---------------------------------------------------------
echo "from stdin" | run --store "$W/s0" "$FIX/passthrough.py" a "b c" -x 7 >"$W/pt.out" 2>"$W/pt.err"
rc=$?
[ $rc -eq 7 ] || { cat "$W/pt.out" "$W/pt.err"; fail "exit status 7 came back as $rc"; }
grep -qx "argv0: passthrough.py" "$W/pt.out" || fail "argv[0]"
grep -qx "args: \['a', 'b c', '-x'\]" "$W/pt.out" || { cat "$W/pt.out"; fail "arguments"; }
grep -qx "stdin: from stdin" "$W/pt.out" || fail "stdin"
grep -q "^\[suture\]" "$W/pt.out" && fail "suture wrote on the script's stdout"
grep -q "^\[suture\] patches applied: 0, already healed: 0" "$W/pt.err" || fail "no summary"
echo "ok: arguments, stdin, stdout, exit status"

# --- one watcher ---------------------------------------------------------------
# The boot hook installs the watcher at the first module and the agent's own
# installer must then leave it alone: one entry jump, never a second install
# that would find the jump and add the trace fallback on top.
i=0
while [ $i -lt 10 ]; do
	SUTURE_AGENT_VERBOSE=1 run --store "$W/s0" "$FIX/passthrough.py" 0 </dev/null >/dev/null 2>"$W/one.err"
	[ "$(grep -c 'watcher: ' "$W/one.err")" -eq 1 ] || { cat "$W/one.err"; fail "watcher installed $(grep -c 'watcher: ' "$W/one.err") times"; }
	grep -Eq "^\[suture\] agent ready in pid [0-9]* \((rel32|absolute) jump at PyTraceBack_Here" "$W/one.err" ||
		{ cat "$W/one.err"; fail "the watcher is not the entry jump"; }
	i=$((i + 1))
done
echo "ok: one watcher, the entry jump, installed once"

# --- an agent that never listens --------------------------------------------
# It closes suture-run's ready pipe without a byte: suture-run says so at
# once and the script runs on, unwatched, with its own exit status.
echo "x" | SUTURE_AGENT_NO_START=1 run --store "$W/s0" "$FIX/passthrough.py" a -x 5 \
	>"$W/ns.out" 2>"$W/ns.err"
rc=$?
[ $rc -eq 5 ] || { cat "$W/ns.err"; fail "no agent: exit status 5 came back as $rc"; }
grep -q "^\[suture\] pid [0-9]*: the agent did not come up: crashes are not healed" "$W/ns.err" ||
	{ cat "$W/ns.err"; fail "no agent: not reported"; }
grep -q "agent ready" "$W/ns.err" && fail "no agent: yet connected"
grep -qx "args: \['a', '-x'\]" "$W/ns.out" || { cat "$W/ns.out"; fail "no agent: the script did not run"; }
echo "ok: an agent that never comes up is reported, the script runs"

# --- signals ----------------------------------------------------------------
"$RUN" --python "$PYTHON" --store "$W/s0" "$FIX/passthrough.py" sleep "$W/sleep.ready" \
	>"$W/sig.out" 2>"$W/sig.err" &
SR=$!
PIDS="$PIDS $SR"
n=0
while [ ! -s "$W/sleep.ready" ]; do
	n=$((n + 1)); [ $n -gt 500 ] && fail "the sleeping script never started"; sleep 0.02
done
CHILD=$(cat "$W/sleep.ready")
kill -TERM $SR
wait $SR
rc=$?
[ $rc -eq 143 ] || { cat "$W/sig.err"; fail "SIGTERM: suture-run ended with $rc, not 143"; }
kill -0 "$CHILD" 2>/dev/null && fail "SIGTERM was not forwarded to the script"
echo "ok: SIGTERM forwarded, same death"

# --- never patched ------------------------------------------------------------
for how in raise assert; do
	run --store "$W/s1" "$FIX/raise_app.py" $how >"$W/r.out" 2>"$W/r.err"
	rc=$?
	[ $rc -eq 1 ] || fail "$how: exit $rc"
	connected "$W/r.err" "$how"
	grep -q "guard applied" "$W/r.err" && { cat "$W/r.err"; fail "$how was patched"; }
	grep -q "re-running" "$W/r.err" && fail "$how: re-run"
	grep -q "^Traceback" "$W/r.err" || fail "$how: the traceback is gone"
done
run --store "$W/s1" "$FIX/handled_app.py" >"$W/h.out" 2>"$W/h.err" || { cat "$W/h.err"; fail "handled_app failed"; }
connected "$W/h.err" handled
grep -q "crash seen\|guard applied" "$W/h.err" && { cat "$W/h.err"; fail "a handled exception was reported"; }
grep -qx "caught" "$W/h.out" && grep -qx "iter \[1, 2\]" "$W/h.out" || fail "handled_app output"
[ -e "$W/s1/index.json" ] && grep -q '"name"' "$W/s1/index.json" && fail "something was stored"
echo "ok: raise, assert and handled exceptions untouched"

run --store "$W/s2" "$FIX/module_crash.py" >"$W/m.out" 2>"$W/m.err"
rc=$?
[ $rc -eq 1 ] || fail "module-level crash: exit $rc"
connected "$W/m.err" module
grep -q "^\[suture\] not patched: the crash is at module level" "$W/m.err" || { cat "$W/m.err"; fail "module level not reported"; }
[ "$(grep -c '^start$' "$W/m.out")" -eq 1 ] || fail "module-level crash looped"
echo "ok: module-level crash reported once"

# --- another script, same function name ------------------------------------------
mkdir -p "$W/a" "$W/b"
cp "$FIX/key_app.py" "$W/a/app.py"
cp "$FIX/key_app.py" "$W/b/app.py"
run --store "$W/s3" "$W/a/app.py" >"$W/a.out" 2>"$W/a.err" || { cat "$W/a.err"; fail "a/app.py not healed"; }
run --store "$W/s3" --dry-run "$W/b/app.py" >"$W/b.out" 2>"$W/b.err"
[ $? -eq 1 ] || { cat "$W/b.err"; fail "b/app.py did not crash: a's patch applied to it?"; }
grep -q "^\[suture\] already healed:" "$W/b.err" && fail "a's patch was loaded into b"
run --store "$W/s3" "$W/a/app.py" >"$W/a2.out" 2>"$W/a2.err" || fail "a/app.py second run"
grep -q "^\[suture\] already healed: key_guard" "$W/a2.err" || { cat "$W/a2.err"; fail "a/app.py not loaded"; }
# Healing b as well keeps a's patch (same default name, another program).
run --store "$W/s3" "$W/b/app.py" >/dev/null 2>"$W/b2.err" || { cat "$W/b2.err"; fail "b/app.py not healed"; }
[ "$("$AUDIT" --store "$W/s3" --json | grep -c '"guard"')" -eq 2 ] || { "$AUDIT" --store "$W/s3"; fail "b's patch replaced a's"; }
run --store "$W/s3" "$W/a/app.py" >/dev/null 2>"$W/a3.err" || fail "a/app.py third run"
grep -q "^\[suture\] patches applied: 0, already healed: 1" "$W/a3.err" || { cat "$W/a3.err"; fail "a's patch lost"; }
echo "ok: patches stay with their program"

# --- two guards in one function, loaded in chain -------------------------------
cp "$FIX/two_sites.py" "$W/two.py"
run --store "$W/s6" --no-resume "$W/two.py" >"$W/t1.out" 2>"$W/t1.err" || { cat "$W/t1.err"; fail "two sites: first run"; }
[ "$(grep -c "^\[suture\] guard applied: key_guard" "$W/t1.err")" -eq 2 ] || { cat "$W/t1.err"; fail "two sites: guards"; }
run --store "$W/s6" "$W/two.py" >"$W/t2.out" 2>"$W/t2.err" || fail "two sites: second run"
grep -qx "result (None, None)" "$W/t2.out" || fail "two sites: result"
grep -q "^\[suture\] patches applied: 0, already healed: 2$" "$W/t2.err" || { cat "$W/t2.err"; fail "two sites: not both loaded"; }
cp "$FIX/nested_sites.py" "$W/nest.py"
run --store "$W/s8" --no-resume --retries 5 "$W/nest.py" >"$W/n1.out" 2>"$W/n1.err" || { cat "$W/n1.err"; fail "nested: first run"; }
run --store "$W/s8" "$W/nest.py" >"$W/n2.out" 2>"$W/n2.err" || fail "nested: second run"
grep -qx "result (None, (None, None))" "$W/n2.out" || fail "nested: result"
grep -q "^\[suture\] patches applied: 0, already healed: 3$" "$W/n2.err" || { cat "$W/n2.err"; fail "nested: not all loaded"; }
# Same kind, same line: two patches, not one replacing the other.
cp "$FIX/one_line_sites.py" "$W/line.py"
run --store "$W/s9" --no-resume "$W/line.py" >"$W/l1.out" 2>"$W/l1.err" || { cat "$W/l1.err"; fail "one line: first run"; }
[ "$("$AUDIT" --store "$W/s9" --json | grep -c '"guard"')" -eq 2 ] || { "$AUDIT" --store "$W/s9"; fail "one line: a patch replaced the other"; }
"$AUDIT" --store "$W/s9" --json | grep -q '"name":[[:space:]]*"__main__.f:4:key_guard#[0-9]*"' ||
	{ "$AUDIT" --store "$W/s9" --json; fail "one line: the second is not named by its anchor"; }
run --store "$W/s9" "$W/line.py" >"$W/l2.out" 2>"$W/l2.err" || { cat "$W/l2.err"; fail "one line: second run"; }
grep -qx "result (None, None)" "$W/l2.out" || fail "one line: result"
grep -q "^\[suture\] patches applied: 0, already healed: 2$" "$W/l2.err" || { cat "$W/l2.err"; fail "one line: not both loaded"; }
echo "ok: two guards in one function, also nested in a patched one, also on one line"

# --- --verbose shows the bytecode delta side by side --------------------------------
cp "$FIX/key_app.py" "$W/v.py"
run --store "$W/s7" --dry-run "$W/v.py" >/dev/null 2>"$W/v.err"
grep -q "^\[suture\] bytecode delta of load: .* original instructions unchanged, .* appended" "$W/v.err" &&
	grep -q "^original  *patched$" "$W/v.err" && grep -q "BINARY_SUBSCR" "$W/v.err" &&
	grep -q "^exception table (patched; + new):" "$W/v.err" || { cat "$W/v.err"; fail "--verbose delta"; }
grep -q "^\[suture\] dry run: would apply key_guard cfg\['timeout'\] -> None" "$W/v.err" || fail "--dry-run line"
[ -e "$W/s7/index.json" ] && grep -q '"name"' "$W/s7/index.json" && fail "--dry-run stored something"
echo "ok: --verbose delta, --dry-run"

# --- --shadow: each use of a fallback is reported --------------------------------
run --store "$W/s3" --shadow "$W/a/app.py" >"$W/sh.out" 2>"$W/sh.err" || fail "--shadow run"
grep -q "^\[suture\] shadow: key_guard fallback None used in load (app.py:4): KeyError" "$W/sh.err" ||
	{ cat "$W/sh.err"; fail "--shadow said nothing"; }
run --store "$W/s3" "$W/a/app.py" >/dev/null 2>"$W/nosh.err" || fail "run without --shadow"
grep -q "shadow:" "$W/nosh.err" && fail "shadow lines without --shadow"
echo "ok: --shadow"

# --- a source edit retires the patch --------------------------------------------
# One more statement before the failing line: same function, new code.
sed -i 's/^    timeout = cfg\["timeout"\]$/    cfg = dict(cfg)\n    timeout = cfg["timeout"]/' "$W/a/app.py"
grep -q '    cfg = dict(cfg)' "$W/a/app.py" || fail "sed did not edit"
run --store "$W/s3" "$W/a/app.py" >"$W/e.out" 2>"$W/e.err" || { cat "$W/e.err"; fail "edited app.py not healed"; }
grep -q "^\[suture\] stale: __main__.load:4:key_guard" "$W/e.err" || { cat "$W/e.err"; fail "stale not reported"; }
grep -q "^\[suture\] already healed: key_guard" "$W/e.err" &&
	! grep -q "^\[suture\] guard applied:" "$W/e.err" && fail "the stale patch was applied"
"$AUDIT" --store "$W/s3" --json >"$W/e.json" || fail "audit"
"$PYTHON" - "$W/e.json" <<'PY' || { cat "$W/e.json"; fail "store after the edit"; }
import json, sys
p = {x["name"]: x["status"] for x in json.load(open(sys.argv[1]))["patches"]}
assert p.get("__main__.load:4:key_guard") == "stale", p
assert p.get("__main__.load:5:key_guard") == "active", p
PY
run --store "$W/s3" "$W/a/app.py" >"$W/e2.out" 2>"$W/e2.err" || fail "edited app.py, third run"
grep -q "^\[suture\] patches applied: 0, already healed: 1" "$W/e2.err" || { cat "$W/e2.err"; fail "new patch not loaded"; }
echo "ok: a source edit retires the stale patch"
# The same when the edit comes after the guarded line (same line numbers up
# to it): the stored bytes are the old function's, never applied to the new.
cp "$FIX/key_app.py" "$W/after.py"
run --store "$W/s8" "$W/after.py" >/dev/null 2>"$W/af.err" || { cat "$W/af.err"; fail "after.py not healed"; }
sed -i 's/^    return timeout$/    return timeout if timeout else -1/' "$W/after.py"
grep -q 'return timeout if timeout else -1' "$W/after.py" || fail "sed did not edit after.py"
run --store "$W/s8" "$W/after.py" >"$W/af2.out" 2>"$W/af2.err" || { cat "$W/af2.err"; fail "edited after.py not healed"; }
grep -q "^\[suture\] stale: __main__.load:4:key_guard" "$W/af2.err" || { cat "$W/af2.err"; fail "an edit after the guarded line: stale not reported"; }
grep -q "^timeout -1$" "$W/af2.out" || { cat "$W/af2.out" "$W/af2.err"; fail "an edit after the guarded line: the old code ran"; }
echo "ok: an edit after the guarded line retires the patch too (the new code runs)"

# --- expiry ------------------------------------------------------------------------
cp "$FIX/key_app.py" "$W/c.py"
run --store "$W/s4" "$W/c.py" >/dev/null 2>"$W/c.err" || { cat "$W/c.err"; fail "c.py not healed"; }
"$PYTHON" - "$W/s4/index.json" <<'PY' || fail "could not age the patch"
import json, sys
p = sys.argv[1]
d = json.load(open(p))
for x in d["patches"]:
    x["created"] = "2020-01-01T00:00:00Z"
json.dump(d, open(p, "w"), indent=1)
PY
run --store "$W/s4" --dry-run "$W/c.py" >"$W/x.out" 2>"$W/x.err"
[ $? -eq 1 ] || { cat "$W/x.err"; fail "an expired patch was applied"; }
grep -q "^\[suture\] expired: __main__.load:4:key_guard" "$W/x.err" || { cat "$W/x.err"; fail "expiry not reported"; }
echo "ok: an expired patch is not applied"

# --- two runs on one store at once -------------------------------------------------
cp "$FIX/kinds.py" "$W/k.py"
for k in key_guard index_guard division_guard null_guard; do
	"$RUN" --python "$PYTHON" --store "$W/s5" "$W/k.py" $k >"$W/cc.$k.out" 2>"$W/cc.$k.err" &
	PIDS="$PIDS $!"
done
wait
n=$("$AUDIT" --store "$W/s5" --json | grep -c '"guard"')
[ "$n" -eq 4 ] || { "$AUDIT" --store "$W/s5"; fail "concurrent runs: $n patches stored, not 4"; }
echo "ok: concurrent runs lose nothing"
echo PASS
