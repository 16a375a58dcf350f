#!/bin/sh
# suture-attach --watch --hold, then --reload from another invocation
# (tests/fixtures/reload/hold/job.py): a batch job keeps a running total
# over twelve records; record 7 fails an assertion. The crash is held: a
# "held" line names the exception, the function, FILE:LINE and the reload
# command; the job's ticker thread keeps making progress meanwhile (the
# park holds no GIL) and the hold outlasts the agent's 2 s park bound. The
# fix is reloaded: the held call restarts at the failing line in the new
# code with its locals (total, the loop's iterator), every record is
# processed exactly once, the total is what the fixed code computes (213),
# the job exits 0 and its caller never saw the exception. Second run: a
# second bug further on crashes the restarted call again; held in turn, the
# next fix restarts it (total 183). Third run: SIGINT to the holder
# releases the crash: the AssertionError goes on (traceback, exit 1). Also
# with process() called from C (functools.partial): restarted, the C caller
# gets the total.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"

start_job() { # DIR [PRICE-EXPRESSION]
	mkdir -p "$1"
	cp -r "$SUTURE_ROOT/tests/fixtures/reload/hold" "$1/app"
	[ $# -gt 1 ] && sed -i "s|\"price\": 3}|\"price\": $2}|" "$1/app/job.py"
	start_bg "job-$(basename "$1")" "$1/ready" "$PYTHON" "$1/app/job.py" "$1"
	P=$BG
	"$ATTACH" --pid "$P" --watch --hold 2>"$1/watch.err" &
	TW=$!
	track $TW
	wait_grep "^\[suture\] watching pid $P: crashes are held" "$1/watch.err"
	: >"$1/go"
	wait_grep "^\[suture\] held: AssertionError: negative quantity in record 7 in process (job.py:34); fix the source, then: suture-attach --pid $P --reload $1/app/job.py" "$1/watch.err"
}

# --hold belongs to --watch.
"$ATTACH" --pid $$ --reload "$0" --hold 2>"$W/usage.err"
[ $? -eq 2 ] && grep -q "^suture-attach: --dry-run, --hold and --ttl go with --watch" "$W/usage.err" ||
	{ cat "$W/usage.err"; fail "--hold without --watch is not a usage error"; }

D="$W/fix"
start_job "$D"
t1=$(cat "$D/ticks")
sleep 2.5 # past the agent's 2 s park bound: a held crash has none
t2=$(cat "$D/ticks")
[ "$t2" -gt $((t1 + 20)) ] || fail "the ticker made no progress while the crash was held ($t1 -> $t2)"
kill -0 "$P" || fail "the held job died"
grep -q "^record 7" "$D/out" && fail "record 7 was processed before the fix"
ok "held 2.5 s on record 7; the ticker thread went on ($t1 -> $t2 ticks)"

sed -i 's|        assert rec\["qty"\] >= 0, "negative quantity in record %d" % rec\["id"\]|        qty = max(rec["qty"], 0)|; s|        total += rec\["qty"\] \* rec\["price"\]|        total += qty * rec["price"]|' "$D/app/job.py"
grep -q 'qty = max' "$D/app/job.py" || fail "the fixture's fix did not apply"
"$ATTACH" --pid "$P" --reload "$D/app/job.py" >"$D/reload.out" 2>&1 || { cat "$D/reload.out"; fail "reload"; }
grep -q "^\[suture\] reloaded process " "$D/reload.out" || { cat "$D/reload.out"; fail "process not reloaded"; }
wait_grep "^\[suture\] restarted: process at line 34 of the new code (was 34), with its locals; its caller got the result" "$D/watch.err"
wait_pid "$P" 20
rc=$?
[ "$rc" = 0 ] || { cat "$W/job-fix.err"; fail "the job exited $rc"; }
grep -qx "total 213 done 1,2,3,4,5,6,7,8,9,10,11,12" "$D/out" || { cat "$D/out"; fail "wrong total or records"; }
[ "$(grep -c '^record ' "$D/out")" -eq 12 ] || { cat "$D/out"; fail "a record was processed twice"; }
grep -qx "record 7 total 63" "$D/out" || { cat "$D/out"; fail "record 7 did not run with the running total"; }
grep -q "AssertionError" "$W/job-fix.err" && fail "the caller saw the exception"
ok "restarted at the failing line: records 1-12 once each, total 213, exit 0"
wait_pid $TW 10 >/dev/null 2>&1 || :

# The same with process() called through functools.partial (its frame is
# entered from C): the restarted call's result goes to that C caller.
D="$W/fromc"
JOB_FROMC=1
export JOB_FROMC
start_job "$D"
unset JOB_FROMC
sed -i 's|        assert rec\["qty"\] >= 0, "negative quantity in record %d" % rec\["id"\]|        qty = max(rec["qty"], 0)|; s|        total += rec\["qty"\] \* rec\["price"\]|        total += qty * rec["price"]|' "$D/app/job.py"
"$ATTACH" --pid "$P" --reload "$D/app/job.py" >"$D/reload.out" 2>&1 || { cat "$D/reload.out"; fail "fromc: reload"; }
wait_grep "^\[suture\] restarted: process at line 34 of the new code (was 34), with its locals; its caller got the result" "$D/watch.err"
wait_pid "$P" 20
rc=$?
[ "$rc" = 0 ] || { cat "$W/job-fromc.err"; fail "fromc: the job exited $rc"; }
grep -qx "total 213 done 1,2,3,4,5,6,7,8,9,10,11,12" "$D/out" || { cat "$D/out"; fail "fromc: wrong total or records"; }
ok "called from C (functools.partial): restarted, the C caller got the total"
wait_pid $TW 10 >/dev/null 2>&1 || :

# A second bug further on: record 10 has no price. The restarted call
# crashes again inside the new code (a TypeError, in the continuation's
# frame); that crash is held in its turn, and the second fix restarts it.
D="$W/twice"
mkdir -p "$D"
start_job "$D" 'None if i == 10 else 3'
sed -i 's|        assert rec\["qty"\] >= 0, "negative quantity in record %d" % rec\["id"\]|        qty = max(rec["qty"], 0)|; s|        total += rec\["qty"\] \* rec\["price"\]|        total += qty * rec["price"]|' "$D/app/job.py"
"$ATTACH" --pid "$P" --reload "$D/app/job.py" >"$D/reload1.out" 2>&1 || { cat "$D/reload1.out"; fail "reload 1"; }
wait_grep "^\[suture\] restarted: process at line 34 of the new code (was 34), with its locals; it crashed again" "$D/watch.err"
wait_grep "^\[suture\] held: TypeError: unsupported operand type(s) for \*: 'int' and 'NoneType' in process (job.py:35)" "$D/watch.err"
sed -i 's|        total += qty \* rec\["price"\]|        total += qty * (rec["price"] or 0)|' "$D/app/job.py"
"$ATTACH" --pid "$P" --reload "$D/app/job.py" >"$D/reload2.out" 2>&1 || { cat "$D/reload2.out"; fail "reload 2"; }
wait_grep "^\[suture\] restarted: process at line 35 of the new code (was 35), with its locals; its caller got the result" "$D/watch.err"
wait_pid "$P" 20
rc=$?
[ "$rc" = 0 ] || { cat "$W/job-twice.err"; fail "the twice-held job exited $rc"; }
grep -qx "total 183 done 1,2,3,4,5,6,7,8,9,10,11,12" "$D/out" || { cat "$D/out"; fail "twice: wrong total or records"; }
[ "$(grep -c '^record ' "$D/out")" -eq 12 ] || { cat "$D/out"; fail "twice: a record was processed twice"; }
ok "a second crash inside the restarted call is held and restarted by the next fix: total 183, exit 0"
wait_pid $TW 10 >/dev/null 2>&1 || :

D="$W/release"
start_job "$D"
kill -INT $TW
wait_grep "^\[suture\] released 1 held crash(es): the exception goes on" "$D/watch.err"
wait_pid "$P" 20
rc=$?
[ "$rc" = 1 ] || fail "released job exited $rc, not 1"
grep -q "^AssertionError: negative quantity in record 7" "$W/job-release.err" ||
	{ cat "$W/job-release.err"; fail "no AssertionError traceback after the release"; }
ok "SIGINT releases the held crash: the AssertionError goes on (exit 1)"
echo PASS
