#!/bin/sh
# suture-attach --snapshot against a running interpreter (issue 14): the
# first time the line runs with --if true, that thread's stack with its
# locals is printed as --dump --locals prints it (or one JSON document),
# the probe is removed and the command exits 0; the program's output is
# unchanged and its code is the original again. A line that does not run
# within --timeout exits 13 and leaves nothing behind.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
T="$SUTURE_ROOT/tests/fixtures/probe/probe_target.py"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
PY=${PYTHON:-/usr/bin/python3.11}
LABEL=$(grep -n 'label = box.tag' "$T" | cut -d: -f1)

run_target() { # DIR MODE N
	mkdir -p "$1"
	"$PY" "$T" "$1" "$2" "$3" >"$1/out" 2>"$1/err" &
	TP=$!
	track $TP
	wait_file "$1/ready" 20
}

mkdir -p "$W/base"
"$PY" "$T" "$W/base" loop 300 >"$W/base/out" 2>"$W/base/err" || fail "baseline run"

D="$W/text"
run_target "$D" loop 300
"$ATTACH" --pid $TP --snapshot "$T:$LABEL" --if 'i == 120' >"$D/snap" 2>"$D/attach.err" ||
	fail "--snapshot: $(cat "$D/attach.err")"
grep -q "^Thread $TP " "$D/snap" || fail "not the main thread: $(cat "$D/snap")"
[ "$(grep -c '^Thread ' "$D/snap")" -eq 1 ] || fail "more than the hitting thread"
grep -q "^    work ($T:$LABEL)" "$D/snap" || fail "no work frame at line $LABEL: $(cat "$D/snap")"
sed -n '/^    work /,/^    loop /p' "$D/snap" >"$D/work"
grep -qx "        i = 120" "$D/work" || fail "work's i is not 120: $(cat "$D/work")"
grep -qx "        total = 260" "$D/work" || fail "work's total: $(cat "$D/work")"
grep -q "^    loop (" "$D/snap" && grep -q "^        items = \[10, 20, 30\]" "$D/snap" ||
	fail "the caller's locals: $(cat "$D/snap")"
wait_pid $TP 30 >/dev/null
grep -qx "same yes" "$D/check" || fail "code not restored after the snapshot"
cmp -s "$W/base/out" "$D/out" || fail "the output changed under the snapshot"
ok "snapshot with --if: that iteration's locals, probe gone, output unchanged"

D="$W/json"
run_target "$D" loop 300
"$ATTACH" --pid $TP --snapshot "$T:$LABEL" --if 'i == 100' --json >"$D/snap" 2>"$D/attach.err" ||
	fail "--snapshot --json: $(cat "$D/attach.err")"
"$PY" - "$D/snap" <<'PYEOF' || fail "json snapshot: $(cat "$D/snap")"
import json, sys
doc = json.load(open(sys.argv[1]))
text = json.dumps(doc)
assert '"work"' in text and '"120"' not in text, text[:400]
def walk(o):
    if isinstance(o, dict):
        yield o
        for v in o.values():
            yield from walk(v)
    elif isinstance(o, list):
        for v in o:
            yield from walk(v)
frames = [d for d in walk(doc) if d.get("function") == "work" or d.get("name") == "work"]
assert frames, text[:400]
assert "100" in json.dumps(frames[0]), frames[0]
PYEOF
wait_pid $TP 30 >/dev/null
grep -qx "same yes" "$D/check" || fail "json: code not restored"
ok "snapshot --json: one document with that iteration's frame"

D="$W/never"
run_target "$D" loop 300
"$ATTACH" --pid $TP --snapshot "$T:$LABEL" --if 'i < 0' --timeout 1 >"$D/snap" 2>"$D/attach.err"
rc=$?
[ $rc -eq 14 ] || fail "no hit within --timeout: exit $rc, expected 14: $(cat "$D/attach.err")"
[ -s "$D/snap" ] && fail "a snapshot without a hit"
wait_pid $TP 30 >/dev/null
grep -qx "same yes" "$D/check" || fail "timeout: code not restored"
ok "no hit within --timeout: exit 14, probe removed"
