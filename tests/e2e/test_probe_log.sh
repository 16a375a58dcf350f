#!/bin/sh
# suture-attach --log against running interpreters (issue 14): a loop
# probed with --count 5 prints 5 lines with the right values (names,
# attributes, subscripts, constants, arithmetic), then the probe is gone:
# work's code is the original object again (co_code, co_consts equal) and
# the program's output is byte-identical to a run without the probe; --if
# picks the one iteration; --json gives one object per hit; 4 threads
# hitting one probe are all reported; a property is refused (its getter
# would raise in the target); a line without code and an expression with a
# call are refused with one line each and leave the target untouched; a
# SIGKILLed suture-attach leaves no probe behind. Calls already running:
# a loop that never calls Python code (its frame never leaves the C eval
# loop) and a loop in the function that calls work() are both reported.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
T="$SUTURE_ROOT/tests/fixtures/probe/probe_target.py"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
PY=${PYTHON:-/usr/bin/python3.11}
LABEL=$(grep -n 'label = box.tag' "$T" | cut -d: -f1)
BLANK=$((LABEL + 2)) # the blank line after "return total"
SPIN=$(grep -n 'acc = acc + i' "$T" | cut -d: -f1)
CALLER=$(grep -n 'r = work(i, box, items)' "$T" | cut -d: -f1)

run_target() { # DIR MODE N: start it, TP its pid
	mkdir -p "$1"
	"$PY" "$T" "$1" "$2" "$3" >"$1/out" 2>"$1/err" &
	TP=$!
	track $TP
	wait_file "$1/ready" 20
}

# Baseline: the program's output without any probe.
mkdir -p "$W/base"
"$PY" "$T" "$W/base" loop 300 >"$W/base/out" 2>"$W/base/err" || fail "baseline run"

# 1. --count 5: five lines, values consistent, then the probe is gone.
D="$W/count"
run_target "$D" loop 300
"$ATTACH" --pid $TP --log "$T:$LABEL" \
	'i={i} total={total} tag={box.tag} n={box.n} it={items[1]} x={i*3+1} s={"a" + "b"}' \
	--count 5 >"$D/lines" 2>"$D/attach.err" || fail "--log --count 5: $(cat "$D/attach.err")"
[ "$(wc -l <"$D/lines")" -eq 5 ] || fail "expected 5 lines, got: $(cat "$D/lines")"
first=$(sed -n 's/^i=\([0-9]*\) .*/\1/p' "$D/lines" | head -1)
[ -n "$first" ] || fail "no i= in $(cat "$D/lines")"
k=0
while [ $k -lt 5 ]; do
	i=$((first + k))
	want="i=$i total=$((2 * i + 20)) tag='b$i' n=$i it=20 x=$((3 * i + 1)) s='ab'"
	got=$(sed -n "$((k + 1))p" "$D/lines")
	[ "$got" = "$want" ] || fail "line $((k + 1)): '$got', expected '$want'"
	k=$((k + 1))
done
ok "--count 5: five lines with the right values"
wait_pid $TP 30 >/dev/null
grep -qx "probed yes" "$D/check" || fail "the probe never reached work(): $(cat "$D/check")"
grep -qx "same yes" "$D/check" || fail "work's code is not the original after exit"
ok "work() ran the probe, and its original code object after exit"
cmp -s "$W/base/out" "$D/out" || fail "the program's output changed under the probe"
ok "the program's output is byte-identical with and without the probe"

# 2. --if picks the iteration; --json; a refused property; then SIGKILL.
D="$W/if"
run_target "$D" loop 400
"$ATTACH" --pid $TP --log "$T:$LABEL" 'i={i} p={box.prop}' --if 'i == 150 or i == 151 and box.n > 0' \
	--count 2 --json >"$D/lines" 2>"$D/attach.err" || fail "--if: $(cat "$D/attach.err")"
"$PY" - "$D/lines" "$TP" "$T" "$LABEL" <<'PYEOF' || fail "--json: $(cat "$D/lines")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 2, rows
for want, r in zip((150, 151), rows):
    assert r["pid"] == int(sys.argv[2]) and r["line"] == int(sys.argv[4]), r
    assert r["file"] == sys.argv[3] and r["values"]["i"] == str(want), r
    assert r["values"]["box.prop"].startswith("<refused: prop is a property"), r
    assert r["text"].startswith("i=%d p=<refused" % want), r
    assert isinstance(r["thread"], int) and r["time"].endswith("Z"), r
PYEOF
ok "--if picked iterations 150 and 151; --json objects; a property refused"
"$ATTACH" --pid $TP --log "$T:$LABEL" 'i={i}' >"$D/killed" 2>&1 &
KP=$!
wait_for 10 test -s "$D/killed" || fail "no line from the probe to kill"
kill -KILL $KP
wait_pid $TP 30 >/dev/null
grep -qx "same yes" "$D/check" || fail "a killed suture-attach left the probe in place"
grep -q "RuntimeError" "$D/err" && fail "a probe ran the property getter"
ok "SIGKILLed suture-attach: the agent removed the probe"

# 3. Refusals leave the target untouched.
D="$W/refuse"
run_target "$D" loop 300
"$ATTACH" --pid $TP --log "$T:$BLANK" 'x' >"$D/o" 2>"$D/e"
rc=$?
[ $rc -eq 12 ] || fail "a line without code: exit $rc, expected 12: $(cat "$D/e")"
[ "$(wc -l <"$D/e")" -eq 1 ] || fail "not one line: $(cat "$D/e")"
grep -q "has no code; nearest lines with code: $((LABEL + 1)) and" "$D/e" ||
	fail "no nearest lines: $(cat "$D/e")"
"$ATTACH" --pid $TP --log "$T:$LABEL" 'x={len(items)}' >"$D/o" 2>"$D/e"
rc=$?
[ $rc -eq 2 ] || fail "a call: exit $rc, expected 2"
[ "$(wc -l <"$D/e")" -eq 1 ] && grep -q "a call" "$D/e" || fail "call refusal: $(cat "$D/e")"
"$ATTACH" --pid $TP --log "$T:$LABEL" 'x={items.__class__.mro()}' >"$D/o" 2>"$D/e" &&
	fail "a method call was accepted"
wait_pid $TP 30 >/dev/null
grep -qx "probed no" "$D/check" || fail "a refused probe touched the target"
cmp -s "$W/base/out" "$D/out" || fail "output changed after refusals"
ok "a line without code (nearest lines named) and calls refused; target untouched"

# 4. Four threads, one probe.
D="$W/threads"
run_target "$D" threads 300
"$ATTACH" --pid $TP --log "$T:$LABEL" '{i}' --count 40 --json >"$D/lines" 2>"$D/attach.err" ||
	fail "threads: $(cat "$D/attach.err")"
"$PY" - "$D/lines" <<'PYEOF' || fail "threads: $(cat "$D/lines")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 40, len(rows)
assert len({r["thread"] for r in rows}) == 4, {r["thread"] for r in rows}
assert len({r["tid"] for r in rows}) == 4
PYEOF
wait_pid $TP 30 >/dev/null
grep -qx "same yes" "$D/check" || fail "threads: code not restored"
ok "4 threads reported by one probe, code restored"

# 5. Calls already running: spin() never calls Python code, so its frame
# stays in its C eval loop (a line-trace function reports it); loop()
# calls work() and is switched to the probed code at that call.
D="$W/spin"
run_target "$D" spin 4000
"$ATTACH" --pid $TP --log "$T:$SPIN" 'i={i} acc={acc}' --count 4 --timeout 10 >"$D/lines" 2>"$D/attach.err" ||
	fail "spin: $(cat "$D/attach.err")"
[ "$(wc -l <"$D/lines")" -eq 4 ] || fail "spin: $(cat "$D/lines")"
while read -r l; do
	i=${l#i=}
	i=${i%% *}
	[ "$l" = "i=$i acc=$((i * (i - 1) / 2))" ] || fail "spin line '$l'"
done <"$D/lines"
wait_pid $TP 30 >/dev/null
grep -qx "spin yes" "$D/check" || fail "spin: constants changed"
ok "a running loop that never calls Python code is probed"
D="$W/caller"
run_target "$D" loop 300
"$ATTACH" --pid $TP --log "$T:$CALLER" 'i={i}' --count 3 --timeout 10 >"$D/lines" 2>"$D/attach.err" ||
	fail "caller: $(cat "$D/attach.err")"
[ "$(wc -l <"$D/lines")" -eq 3 ] || fail "caller: $(cat "$D/lines")"
wait_pid $TP 30 >/dev/null
cmp -s "$W/base/out" "$D/out" || fail "caller: output changed"
ok "the loop calling work(), running at attach, is probed"

# 6. A loop in a module body (code no function holds), running at attach.
M="$SUTURE_ROOT/tests/fixtures/probe/module_loop.py"
ML=$(grep -n 'total += i' "$M" | cut -d: -f1)
D="$W/module"
mkdir -p "$D"
"$PY" "$M" "$D" 3000 >"$D/out" 2>"$D/err" &
TP=$!
track $TP
wait_file "$D/ready" 20
"$ATTACH" --pid $TP --log "$M:$ML" 'i={i} total={total}' --count 3 --timeout 10 >"$D/lines" \
	2>"$D/attach.err" || fail "module loop: $(cat "$D/attach.err")"
[ "$(wc -l <"$D/lines")" -eq 3 ] || fail "module loop: $(cat "$D/lines")"
while read -r l; do
	i=${l#i=}
	i=${i%% *}
	[ "$l" = "i=$i total=$((i * (i - 1) / 2))" ] || fail "module loop line '$l'"
done <"$D/lines"
wait_pid $TP 30 >/dev/null
[ "$(cat "$D/out")" = "4498500" ] || fail "module loop output: $(cat "$D/out")"
ok "a loop in a module body, running at attach, is probed"
