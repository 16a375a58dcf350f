#!/bin/sh
# In-flight resume through suture-run (issue 6, docs/design.md §9), on
# Debian's python3.11, pyenv's 3.11.7 when installed, and Debian's debug
# interpreter for the refcount cases. Each case of
# tests/fixtures/resume/job.py crashes in the middle of its work; the job
# must finish every record with its checks holding (exit 0), started once
# (no re-execution), with the expected number of "resumed in flight" lines:
#   records    a loop calling a function per record: the bad record's result
#              is the fallback
#   argument   the crash inside a call's argument (str(rec["k"])): the
#              continuation keeps the call's NULL stack slot
#   loop       the failing frame is the loop itself: every iteration done,
#              locals intact; sys.exc_info() clean; a later ZeroDivisionError
#              at the same (resumed) call site reaches the caller's handler
#              with the right traceback lines (no extra entry)
#   with       the loop inside `with lock:` (released once) and try/finally
#              (the finally body runs exactly once)
#   cm         `with` a Python context manager whose __exit__ never
#              suppresses: a crash, resumed, __exit__ once with None; ones
#              that may suppress (return True, a conditional return,
#              contextlib.suppress) keep their exception: no crash event
#   closure    cells keep working: closures created before the crash see
#              later updates
#   method, quickened (the caller's CALL specialized by 2000 calls first),
#   thread     a worker thread while two other threads tick on
#   many       100,000 crashes in a row: RSS at 10k vs 100k; refcounts of a
#              sentinel passed through the call, None, KeyError, the record
#              and the function unchanged
#   distinct   20 functions crashing in turn from one call site, each resumed
#              in flight (a used decider never hides the next crash)
#   osr        a loop suspended in a Python call gets the patch in its
#              running frame: its own bad record later is no crash event
#   grown      the same when the guard needs a deeper stack than the frame
#              has: the frame keeps its code, its crash is resumed later
#   two        a second, different crash inside the continuation (nested
#              resume): later in the same frame, in a function it calls,
#              inside `with` + try/finally (cleanup once), three crashes in
#              one call, and one outside a try/except that held the first
#              ones: every crash healed and resumed in flight, started once,
#              every guard stored, no exception/frame/record kept alive;
#              again under the trace fallback (SUTURE_AGENT_MODE=trace), and
#              a second run with the store heals them all at start-up
#   deep       ten crashes in one call: the agent resumes 8 nested, the 9th
#              is patched but not resumed (reason printed): it is the call's
#              outcome and suture-run re-executes once with 9 guards
#   fallbacks  generator, coroutine whose frames are too small for the patched
#              code: each says why it is not resumed, later calls are healed; a thread's target, a map() callback, a
#              function under a *args decorator: resumed (entered from C)
#   fromc      the failing frame entered from C: f(*a, **kw) under a
#              decorator, functools.partial, a bound method called by map(),
#              a map() callback (also inside a generator), a thread's target:
#              the C caller gets the continuation's result; a second crash in
#              that call (nested), a continuation that raises (the C caller
#              gets that exception), a later exception of the healed function
#              reaching the program's handler; a sentinel's refcount unchanged
#              (also on the debug interpreter)
#   redirect   redirect guards: "id-" + v and s += r with an int, open() of a
#              missing file inside `with`: the continuation loads the
#              operands again and runs the guard's helper (release and debug
#              interpreters); "id-" + r["n"] (a computed operand) is not
#              resumed, with the reason, later calls healed
#   gen        a generator's and a coroutine's own frame crash: the frame goes
#              on in the patched code at the fallback (the same generator
#              object, past a second bad record), a coroutine under
#              asyncio.gather too (the task does not fail); a frame too small
#              for the patched code is not resumed, with the reason (release
#              and debug interpreters)
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
JOB="$SUTURE_ROOT/tests/fixtures/resume/job.py"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"

# run PY CASE RESUMED CRASHES: one job under suture-run
run() {
	D="$W/$(echo "$1" | tr / _)-$2${TAG:-}"
	mkdir -p "$D"
	timeout 120 "$RUN" --python "$1" --store "$D/store" "$JOB" "$D" "$2" >"$D/out" 2>"$D/err"
	rc=$?
	[ $rc -eq 0 ] || { cat "$D/out" "$D/err"; fail "$1 $2: exit $rc"; }
	grep -q "^FAIL" "$D/out" && { cat "$D/out"; fail "$1 $2: a check failed"; }
	[ "$(wc -l <"$D/starts")" -eq 1 ] || { cat "$D/err"; fail "$1 $2: the job was started again"; }
	r=$(grep -o "\[suture\] resumed in flight: " "$D/err" | wc -l)
	c=$(grep -o "\[suture\] crash seen: " "$D/err" | wc -l)
	[ "$r" -eq "$3" ] && [ "$c" -eq "$4" ] ||
		{ cat "$D/err"; fail "$1 $2: $r resumed, $c crashes (expected $3, $4)"; }
	echo "ok: $1 $2: $r resumed, $(grep -c '^ok' "$D/out") checks: $(grep '^ok' "$D/out" | tail -1 | cut -c4-90)"
}

# two_checks PY WHAT: after `run PY two`: nested crashes said, every guard stored.
two_checks() {
	n=$(grep -o "\[suture\] the resumed call of [a-z_]* crashed again, in [a-z_]*: healing it in flight too" "$D/err" | wc -l)
	[ "$n" -eq 7 ] || { cat "$D/err"; fail "$1 two$2: $n nested crashes said (expected 7)"; }
	"$BUILD/bin/suture-audit" --store "$D/store" >"$D/audit" 2>&1 || { cat "$D/audit"; fail "$1 two$2: audit"; }
	for f in two_job:2 two_callee_job:1 two_part:1 two_with_job:2 three_job:3 two_try_job:3; do
		n=$(grep -c "^__main__\.${f%:*}:[0-9]*:[a-z_]* .* active\$" "$D/audit")
		[ "$n" -eq "${f#*:}" ] || { cat "$D/audit"; fail "$1 two$2: $n guards stored for ${f%:*}"; }
	done
	echo "ok: $1 two$2: 7 crashes inside resumed calls healed in flight, 12 guards stored"
}

pys=$(pythons python pyenv)
for py in $pys; do
	run "$py" records 1 1
	run "$py" argument 1 1
	run "$py" loop 1 1
	run "$py" with 2 2
	run "$py" cm 1 1
	for c in closure method quickened thread many osr; do
		run "$py" $c 1 1
	done
	run "$py" distinct 20 20
	# A second (third...) crash inside a resumed call: healed and resumed
	# in flight, nested; the job is started once (run checks starts).
	run "$py" two 12 12
	two_checks "$py" ""
	# The trace fallback lifts its paused tracing while a continuation runs.
	SUTURE_AGENT_MODE=trace
	export SUTURE_AGENT_MODE
	TAG=-trace
	run "$py" two 12 12
	two_checks "$py" " (trace fallback)"
	unset SUTURE_AGENT_MODE
	TAG=
	# A second run with that store: every guard installed at start-up.
	D2="$D-again"
	mkdir -p "$D2"
	timeout 120 "$RUN" --python "$py" --store "$D/store" "$JOB" "$D2" two >"$D2/out" 2>"$D2/err" ||
		{ cat "$D2/out" "$D2/err"; fail "$py two again: exit status"; }
	[ "$(grep -c "^\[suture\] already healed: " "$D2/err")" -eq 12 ] &&
		! grep -q "crash seen" "$D2/err" && ! grep -q "^FAIL" "$D2/out" ||
		{ cat "$D2/out" "$D2/err"; fail "$py two again: not every guard loaded"; }
	echo "ok: $py two: a second run loads the 12 stored guards, no crash"
	# More nested crashes than the agent resumes (8 deep): the 9th is
	# patched and stored, not resumed, and is the call's outcome; the job
	# is re-executed once with 9 guards and its 10th crash is resumed.
	D="$W/$(echo "$py" | tr / _)-deep"
	mkdir -p "$D"
	timeout 120 "$RUN" --python "$py" --store "$D/store" "$JOB" "$D" deep >"$D/out" 2>"$D/err" ||
		{ cat "$D/out" "$D/err"; fail "$py deep: exit status"; }
	[ "$(wc -l <"$D/starts")" -eq 2 ] && grep -q "^ok deep: every key" "$D/out" &&
		[ "$(grep -o "\[suture\] not resumed in flight (8 resumed calls are running nested in this thread already" "$D/err" | wc -l)" -eq 1 ] &&
		[ "$(grep -o "\[suture\] resumed in flight, but the rest of deep_job raised" "$D/err" | wc -l)" -eq 8 ] &&
		[ "$(grep -o "\[suture\] resumed in flight: " "$D/err" | wc -l)" -eq 1 ] &&
		[ "$(grep -o "\[suture\] stored patch __main__.deep_job:" "$D/err" | wc -l)" -eq 10 ] ||
		{ cat "$D/out" "$D/err"; fail "$py deep"; }
	echo "ok: $py deep: 8 nested resumes, the 9th crash re-executed once with 9 guards, the 10th resumed"
	# grown: the main call resumed, then the suspended frame's own crash
	run "$py" grown 2 2
	grep -q "^\[suture\] already patched: this frame of small kept the original code" "$D/err" ||
		{ cat "$D/err"; fail "$py grown: no reason for the late crash"; }
	run "$py" fallbacks 3 5
	for why in "generator or coroutine frame:2" "the failing frame was entered from C:0"; do
		# not anchored: the target's own thread tracebacks share stderr
		# and may interleave with suture's line
		n=$(grep -o "\[suture\] not resumed in flight (${why%:*}" "$D/err" | wc -l)
		[ "$n" -eq "${why##*:}" ] || { cat "$D/err"; fail "$py fallbacks: '${why%:*}' said $n times"; }
	done
	for f in gen coro target_fn mapped decorated; do
		grep -q "^\[suture\] guard applied: .* in $f " "$D/err" || { cat "$D/err"; fail "$py: $f not healed"; }
	done
	echo "ok: $py: fallback reasons printed (generator, coroutine); thread target, map callback, *args decorator resumed"
	run "$py" fromc 8 9
	grep -q "^\[suture\] resumed in flight, but the rest of fc_raise raised: that exception goes on" "$D/err" ||
		{ cat "$D/err"; fail "$py fromc: the continuation's exception not said"; }
	run "$py" redirect 3 4
	grep -q "\[suture\] not resumed in flight (an operand of the failing instruction is computed, not loaded from a local" "$D/err" ||
		{ cat "$D/err"; fail "$py redirect: no reason for the computed operand"; }
	run "$py" gen 3 4
	grep -q "\[suture\] not resumed in flight (generator or coroutine frame: the patched code needs a deeper stack than the frame was made with" "$D/err" ||
		{ cat "$D/err"; fail "$py gen: no reason for the frame too small"; }
done
# The debug interpreter checks CPython's invariants (assertions) on the
# resume paths. (Its sys.gettotalrefcount is no measure of the agent: the
# agent is built against the release headers, whose Py_INCREF/Py_DECREF do
# not count; job.py checks the refcounts of the objects involved instead.)
if DBG_PY=$(py311_find dbg); then
	for c in many loop with closure distinct two; do
		case $c in distinct) n=20 ;; two) n=12 ;; with) n=2 ;; *) n=1 ;; esac
		run "$DBG_PY" $c $n $n
	done
	# results returned to C callers (the eval loop's own assertions on
	# the stack at RETURN_VALUE and on the tracing state)
	run "$DBG_PY" fromc 8 9
	run "$DBG_PY" redirect 3 4
	run "$DBG_PY" gen 3 4
else
	echo "absent: the debug build's resume checks, not tested: $(py311_why dbg)"
fi
echo PASS
