#!/bin/sh
# --json (issue 16 item 10): suture-run and suture-attach --watch print one
# JSON object a line per event on stdout (docs/formats/events.md), the
# "[suture]" lines staying on stderr; suture-run's program keeps its stdout
# (the same stream: its lines are not JSON), or --json=FILE keeps them apart.
# Checked: each line parses, the events and their order (crash,
# guard_applied, resumed, stored, exit; loaded on the next run; refused for
# a module-level crash), their fields.
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
ATTACH="$BUILD/bin/suture-attach"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
unset SUTURE_STORE VIRTUAL_ENV
cp "$SUTURE_ROOT/tests/fixtures/run/wait_job.py" "$W/job.py"
printf 'cfg = {}\nprint(cfg["port"])\n' >"$W/top.py"

# check.py OUT EXPECTED-EVENTS...: every JSON line parses; the events, in order.
cat >"$W/check.py" <<'PY'
import json, sys
out, want = sys.argv[1], sys.argv[2:]
events, other = [], []
for line in open(out):
    if line.startswith("{"):
        e = json.loads(line)
        assert isinstance(e["time"], float) and isinstance(e["pid"], int) and e["pid"] > 0, e
        events.append(e)
    else:
        other.append(line.rstrip("\n"))
got = [e["event"] for e in events]
assert got == want, "events %s, expected %s" % (got, want)
by = {e["event"]: e for e in events}
if "crash" in by:
    c = by["crash"]
    assert c["exc_type"] == "KeyError" and c["file"].endswith(".py") and c["line"] > 0, c
if "guard_applied" in by:
    g = by["guard_applied"]
    assert g["guard"] == "key_guard" and g["target"] == "cfg['timeout']" and g["fallback"] == "None", g
    assert g["function"] == "load" and g["functions"] >= 1 and g["ms"] >= 0, g
if "stored" in by:
    assert by["stored"]["name"] == "__main__.load:4:key_guard", by["stored"]
if "refused" in by:
    assert by["refused"]["reason"] == "the crash is at module level", by["refused"]
if "exit" in by:
    assert isinstance(by["exit"]["status"], int), by["exit"]
if other:
    print("\n".join(other))
PY

"$RUN" --python "$PYTHON" --store "$W/s" --json "$W/job.py" </dev/null >"$W/1.out" 2>"$W/1.err" ||
	{ cat "$W/1.out" "$W/1.err"; fail "suture-run --json: exit"; }
"$PYTHON" "$W/check.py" "$W/1.out" crash guard_applied resumed stored exit >"$W/1.prog" ||
	{ cat "$W/1.out"; fail "suture-run --json: events"; }
[ "$(cat "$W/1.prog")" = "timeout None" ] || { cat "$W/1.out"; fail "suture-run --json: the program's stdout"; }
grep -q "^{" "$W/1.err" && { cat "$W/1.err"; fail "JSON on stderr"; }
grep -q "^\[suture\] guard applied:" "$W/1.err" || { cat "$W/1.err"; fail "the [suture] lines left stderr"; }
ok "suture-run --json: crash, guard_applied, resumed, stored, exit on stdout; [suture] lines on stderr"

"$RUN" --python "$PYTHON" --store "$W/s" --json="$W/ev.jsonl" "$W/job.py" </dev/null >"$W/2.out" 2>"$W/2.err" ||
	{ cat "$W/2.err"; fail "--json=FILE: exit"; }
[ "$(cat "$W/2.out")" = "timeout None" ] || { cat "$W/2.out"; fail "--json=FILE: stdout is not the program's alone"; }
"$PYTHON" "$W/check.py" "$W/ev.jsonl" loaded exit >/dev/null || { cat "$W/ev.jsonl"; fail "--json=FILE: events"; }
ok "suture-run --json=FILE: the events in FILE (loaded, exit), stdout the program's"

"$RUN" --python "$PYTHON" --store "$W/s" --json "$W/top.py" </dev/null >"$W/3.out" 2>"$W/3.err"
[ $? -eq 1 ] || { cat "$W/3.err"; fail "module-level crash: exit status"; }
"$PYTHON" "$W/check.py" "$W/3.out" crash refused exit >/dev/null || { cat "$W/3.out"; fail "refused: events"; }
ok "a refusal is a refused event"

mkdir -p "$W/t"
"$PYTHON" "$W/job.py" "$W/t" >"$W/t/out" 2>"$W/t/err" &
TP=$!
track "$TP"
wait_file "$W/t/ready" 10
"$ATTACH" --pid "$TP" --watch --json --store "$W/s2" >"$W/t/events" 2>"$W/t/watch.err" &
TW=$!
track "$TW"
wait_grep "^\[suture\] watching pid $TP\$" "$W/t/watch.err" 20
touch "$W/t/go"
wait_pid "$TP" 30 || { cat "$W/t/watch.err"; fail "watched job failed"; }
kill -INT "$TW" 2>/dev/null
wait_pid "$TW" 20 || { cat "$W/t/watch.err"; fail "--watch --json: exit status"; }
"$PYTHON" "$W/check.py" "$W/t/events" crash guard_applied resumed stored >"$W/t/other" ||
	{ cat "$W/t/events"; fail "--watch --json: events"; }
[ -s "$W/t/other" ] && { cat "$W/t/other"; fail "--watch --json: other lines on stdout"; }
grep -q "^{" "$W/t/watch.err" && fail "--watch --json: JSON on stderr"
ok "suture-attach --watch --json: the same events on stdout, nothing else there"
echo PASS
