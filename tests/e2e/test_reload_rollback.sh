#!/bin/sh
# suture-audit --pid N lists the reloads of a running job
# (tests/fixtures/reload/app/job.py) and rolls one back: the previous code
# returns through every reference (the module attribute, an alias in another
# module, a bound method, a callback in a dict, a wraps wrapper, a closure
# made before the first reload). Two reloads of the same functions stack:
# the older one is refused until the newer one is rolled back.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
AUDIT="$BUILD/bin/suture-audit"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"

D="$W/job"
mkdir -p "$D"
cp -r "$SUTURE_ROOT/tests/fixtures/reload/app" "$D/app"
start_bg job "$D/ready" "$PYTHON" "$D/app/job.py" "$D"
P=$BG
cd "$D" || fail "cd"

last_rec() { tail -n 1 "$D/out" | awk '{print $2}'; }
rec_after() { # N PATTERN
	wait_for 10 awk -v n="$1" -v pat="$2" '$1 == "rec" && $2 > n && $0 ~ pat { f = 1 } END { exit !f }' "$D/out" ||
		{ tail -n 3 "$D/out"; fail "no record after $1 matching '$2'"; }
}

rec_after 0 "attr=10 alias=10 bound=11 cb=10 wrapped=10 halve=10 closure=15"
sed -i 's/return x \* 2$/return x * 3/; s|        return x + k$|        return x + k + 1|' app/helpers.py
"$ATTACH" --pid "$P" --reload app/helpers.py >r1.out 2>&1 || { cat r1.out; fail "reload 1"; }
sed -i 's/return x \* 3$/return x * 4/' app/helpers.py
"$ATTACH" --pid "$P" --reload app/helpers.py >r2.out 2>&1 || { cat r2.out; fail "reload 2"; }
n=$(last_rec)
rec_after "$n" "attr=20 alias=20 bound=21 cb=20 wrapped=20 halve=10 closure=16"

"$AUDIT" --pid "$P" >a1.out 2>/dev/null || { cat a1.out; fail "audit --pid"; }
grep -q "^reload  reload:helpers.py#1, .* ago; rollback restores the previous code in every reference: suture-audit --pid $P rollback reload:helpers.py#1\$" a1.out ||
	{ cat a1.out; fail "reload #1 not listed"; }
grep -q "^reload  reload:helpers.py#2, " a1.out || { cat a1.out; fail "reload #2 not listed"; }
grep -q "^        score ($D/app/helpers.py:7): 0 function object(s) run it (1 at the reload)\$" a1.out ||
	{ cat a1.out; fail "reload #1's score line"; }
grep -q "^        make_offset ($D/app/helpers.py:33): 2 function object(s) run it" a1.out ||
	{ cat a1.out; fail "reload #1's closure line"; }
grep -q ", 5 reloaded functions\$" a1.out || { cat a1.out; fail "the summary"; }
"$AUDIT" --pid "$P" --json >a1.json 2>/dev/null
"$PYTHON" -c '
import json, sys
d = json.load(open(sys.argv[1]))
names = sorted({p["name"] for p in d["patches"] if p["reload"]})
assert names == ["reload:helpers.py#1", "reload:helpers.py#2"], names
' a1.json || { cat a1.json; fail "audit --json"; }
ok "suture-audit --pid lists both reloads, their functions and the rollback command"

"$AUDIT" --pid "$P" rollback reload:helpers.py#1 >b1.out 2>b1.err && fail "the older reload rolled back under the newer one"
grep -q "was installed on top of 'reload:helpers.py#1': roll it back first" b1.err || { cat b1.err; fail "refusal message"; }
n=$(last_rec)
rec_after "$n" "attr=20 alias=20 bound=21 cb=20 wrapped=20"
ok "the older reload is refused while the newer one sits on it"

"$AUDIT" --pid "$P" rollback reload:helpers.py#2 >b2.out 2>&1 || { cat b2.out; fail "rollback #2"; }
n=$(last_rec)
rec_after "$n" "attr=15 alias=15 bound=16 cb=15 wrapped=15 halve=10 closure=16"
"$AUDIT" --pid "$P" rollback reload:helpers.py#1 >b3.out 2>&1 || { cat b3.out; fail "rollback #1"; }
n=$(last_rec)
rec_after "$n" "attr=10 alias=10 bound=11 cb=10 wrapped=10 halve=10 closure=15"
"$AUDIT" --pid "$P" >a2.out 2>/dev/null
grep -q "^reload" a2.out && { cat a2.out; fail "a rolled-back reload is still listed"; }
kill -0 "$P" || fail "the job died"
ok "rolling back restores the previous code in every reference, closure included"
stop_pid "$P"
echo PASS
