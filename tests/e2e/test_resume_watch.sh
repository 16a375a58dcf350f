#!/bin/sh
# In-flight resume through `suture-attach --pid N --watch` (issue 6): the
# job (tests/fixtures/resume/job.py) is started without suture and waits;
# the watcher attaches to the running process (remote injection of the
# agent), then the job is let go and reaches its bad record. It must finish
# every record with its checks holding and exit 0, started once, with the
# crash resumed in flight (the caller got the fallback):
#   records    a loop calling a function per record
#   loop       the failing frame is the loop itself, locals intact, exact
#              traceback for a later unrelated exception at the call site
#   osr        a loop suspended in a Python call gets the patch in its
#              running frame: its own bad record is no second crash event
#   thread     a worker thread while other threads keep ticking
#   two        second and third crashes inside resumed calls (same frame, a
#              function it calls, with + finally, three in one call, past a
#              parked frame's try/except): each healed and resumed in
#              flight, nested; every guard stored
#   fallbacks  generator, coroutine (frames too small for the patched code):
#              reasons printed, later calls healed;
#              thread target, map() callback, *args decorator: resumed
#   fromc      frames entered from C (f(*a, **kw), functools.partial, a
#              bound method and a callback called by map(), one inside a
#              generator, a thread's target): the C caller gets the result
#   redirect   str + int, s += int, open() of a missing file: resumed (the
#              operands loaded again); a computed operand: not resumed
#   gen        a generator's, a coroutine's own frame (also under gather): it
#              goes on in the patched code
# On Debian's python3.11 and pyenv's 3.11.7 when installed.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
JOB="$SUTURE_ROOT/tests/fixtures/resume/job.py"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"

# run PY CASE RESUMED CRASHES
run() {
	D="$W/$(echo "$1" | tr / _)-$2"
	mkdir -p "$D"
	"$1" "$JOB" "$D" "$2" wait >"$D/out" 2>"$D/target.err" &
	TP=$!
	PIDS="$PIDS $TP"
	wait_file "$D/ready" 10
	"$ATTACH" --pid "$TP" --watch --store "$D/store" 2>"$D/err" &
	TW=$!
	PIDS="$PIDS $TW"
	_n=0
	while ! grep -q "^\[suture\] watching pid $TP\$" "$D/err"; do
		_n=$((_n + 1)); [ $_n -gt 500 ] && { cat "$D/err"; fail "$1 $2: watcher not ready"; }
		sleep 0.02
	done
	touch "$D/go"
	wait "$TP"
	rc=$?
	kill -INT "$TW" 2>/dev/null   # it may have stopped with the job already
	wait "$TW" || { cat "$D/err"; fail "$1 $2: watcher exit status"; }
	[ $rc -eq 0 ] || { cat "$D/out" "$D/target.err" "$D/err"; fail "$1 $2: job exit $rc"; }
	grep -q "^FAIL" "$D/out" && { cat "$D/out"; fail "$1 $2: a check failed"; }
	[ "$(wc -l <"$D/starts")" -eq 1 ] || fail "$1 $2: the job was started again"
	r=$(grep -c "^\[suture\] resumed in flight: " "$D/err")
	c=$(grep -c "^\[suture\] crash seen: " "$D/err")
	[ "$r" -eq "$3" ] && [ "$c" -eq "$4" ] ||
		{ cat "$D/err"; fail "$1 $2: $r resumed, $c crashes (expected $3, $4)"; }
	echo "ok: $1 $2 (attached): $r resumed, $(grep -c '^ok' "$D/out") checks: $(grep '^ok' "$D/out" | tail -1 | cut -c4-80)"
}

pys=$(pythons python pyenv)
for py in $pys; do
	run "$py" records 1 1
	grep -q "^\[suture\] guard applied: key_guard rec\['value'\] -> None (return) in process " "$D/err" ||
		{ cat "$D/err"; fail "$py records: guard"; }
	run "$py" loop 1 1
	run "$py" osr 1 1
	run "$py" thread 1 1
	run "$py" two 12 12
	n=$(grep -c "^\[suture\] the resumed call of [a-z_]* crashed again, in [a-z_]*: healing it in flight too" "$D/err")
	[ "$n" -eq 7 ] || { cat "$D/err"; fail "$py two: $n nested crashes said (expected 7)"; }
	"$BUILD/bin/suture-audit" --store "$D/store" >"$D/audit" 2>&1 || { cat "$D/audit"; fail "$py two: audit"; }
	[ "$(grep -c " active\$" "$D/audit")" -eq 12 ] || { cat "$D/audit"; fail "$py two: guards stored"; }
	run "$py" fallbacks 3 5
	[ "$(grep -c "^\[suture\] not resumed in flight (generator or coroutine frame" "$D/err")" -eq 2 ] &&
		! grep -q "not resumed in flight (the failing frame was entered from C" "$D/err" ||
		{ cat "$D/err"; fail "$py fallbacks: reasons"; }
	run "$py" fromc 8 9
	run "$py" redirect 3 4
	run "$py" gen 3 4
done
echo PASS
