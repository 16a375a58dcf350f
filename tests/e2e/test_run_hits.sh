#!/bin/sh
# A stored patch's hits count the times its guard fired, not the runs that
# loaded it (tests/fixtures/run/hits_app.py), on Debian's python3.11 and
# pyenv's 3.11.7: a crash resumed in flight is its new patch's first hit;
# patches made and stored once (their counts then reset to
# zero in index.json), a run where lookup's guard fires 3 times gives it 3
# hits with last_hit set while unused (loaded, never called) keeps 0 and
# null; a run with no firing changes nothing; a firing as the script's
# very last statement is still counted (the agent's exit flush); two
# guards stacked in one function are told apart (1 and 2); 80000 firings in
# four threads, while the agent sends its counts, give 80000; while a run is
# held, suture-audit --pid shows the live firing counts, and the run's
# firings land in the store when it ends. (suture-attach --watch:
# test_attach_watch.sh.)
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
AUDIT="$BUILD/bin/suture-audit"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
cp "$SUTURE_ROOT/tests/fixtures/run/hits_app.py" "$W/hits_app.py"

LOOKUP=__main__.lookup:22:key_guard
UNUSED=__main__.unused:26:null_guard
PAIR_X=__main__.pair:30:key_guard
PAIR_Y=__main__.pair:31:key_guard

# counts STORE: "name hits last_hit" lines, last_hit "-" when null
counts() {
	"$AUDIT" --store "$1" --json >"$W/json" || fail "audit --json"
	"$PYTHON" - "$W/json" <<'PY'
import json, sys
for p in json.load(open(sys.argv[1]))["patches"]:
    print(p["name"], p["hits"], p["last_hit"] or "-")
PY
}
# expect STORE NAME HITS SET|NULL
expect() {
	line=$(counts "$1" | grep "^$2 ")
	[ -n "$line" ] || fail "$2 not stored"
	set -- "$1" "$2" "$3" "$4" $line
	[ "$6" = "$3" ] || fail "$2: hits $6, wanted $3"
	case $4 in
	SET) [ "$7" != "-" ] || fail "$2: last_hit null with $6 hits" ;;
	NULL) [ "$7" = "-" ] || fail "$2: last_hit $7, wanted null" ;;
	esac
}
# run PY STORE ARGS...: suture-run the app, which must exit 0
run() {
	_py=$1 _s=$2
	shift 2
	"$RUN" --python "$_py" --store "$_s" "$W/hits_app.py" "$@" >"$W/out" 2>"$W/err" ||
		{ cat "$W/out" "$W/err"; fail "$_py: run $* exited $?"; }
	grep -q "crash seen" "$W/err" && [ "$1" != make ] && { cat "$W/err"; fail "$_py: run $* crashed"; }
	return 0
}

one_python() {
	py=$1
	S="$W/store-$(echo "$py" | tr / _)"
	run "$py" "$S" make
	grep -q "^\[suture\] patches applied: 4" "$W/err" || { cat "$W/err"; fail "$py: make"; }
	# A crash healed in flight (the call resumed from the new guard's
	# fallback) is its patch's first hit.
	if grep -q "^\[suture\] resumed in flight: lookup " "$W/err"; then
		expect "$S" "$LOOKUP" 1 SET
		ok "$py: a crash resumed in flight is one hit"
	fi
	# Start from zero: made patches may have fired already (resumed in
	# flight counts one), which is not what is tested here.
	"$PYTHON" - "$S/index.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for p in d["patches"]:
    p["hits"], p["last_hit"] = 0, None
json.dump(d, open(sys.argv[1], "w"))
PY
	expect "$S" "$LOOKUP" 0 NULL

	run "$py" "$S" 3
	grep -q "^\[suture\] patches applied: 0, already healed: 4" "$W/err" || { cat "$W/err"; fail "$py: not loaded"; }
	[ "$(grep -c '^lookup: None$' "$W/out")" = 3 ] || { cat "$W/out"; fail "$py: 3 healed calls"; }
	expect "$S" "$LOOKUP" 3 SET
	expect "$S" "$UNUSED" 0 NULL
	expect "$S" "$PAIR_X" 0 NULL
	ok "$py: 3 firings counted 3; loaded and never fired: 0, null"

	t3=$(counts "$S" | grep "^$LOOKUP " | cut -d' ' -f3)
	run "$py" "$S" 0
	expect "$S" "$LOOKUP" 3 SET
	expect "$S" "$UNUSED" 0 NULL
	[ "$(counts "$S" | grep "^$LOOKUP " | cut -d' ' -f3)" = "$t3" ] || fail "$py: last_hit moved without a firing"
	ok "$py: a run without firings leaves the counts"

	run "$py" "$S" 0 last
	expect "$S" "$LOOKUP" 4 SET
	ok "$py: a firing right before the exit is counted"

	run "$py" "$S" pair
	expect "$S" "$PAIR_X" 1 SET
	expect "$S" "$PAIR_Y" 2 SET
	expect "$S" "$LOOKUP" 4 SET
	ok "$py: stacked guards in one function counted apart"

	# Firings in four threads while the agent builds and sends its HITS
	# frames: each is counted once, none is lost.
	run "$py" "$S" burst
	grep -qx "burst: 80000" "$W/out" || { cat "$W/out" "$W/err"; fail "$py: burst"; }
	expect "$S" "$LOOKUP" 80004 SET
	ok "$py: 80000 firings in 4 threads counted 80000"
	run "$py" "$S" 2
	expect "$S" "$LOOKUP" 80006 SET

	# Live: the held run's agent reports its counts to suture-audit --pid.
	rm -f "$W/fifo"
	mkfifo "$W/fifo"
	"$RUN" --python "$py" --store "$S" "$W/hits_app.py" 2 hold "$W/fifo" >"$W/hout" 2>"$W/herr" &
	rp=$!
	PIDS="$PIDS $rp"
	n=0
	until grep -q '^ready ' "$W/hout"; do
		n=$((n + 1))
		[ $n -gt 500 ] && { cat "$W/hout" "$W/herr"; fail "$py: held run not ready"; }
		sleep 0.02
	done
	child=$(sed -n 's/^ready //p' "$W/hout")
	"$AUDIT" --store "$S" --pid "$child" >"$W/live" 2>&1 || { cat "$W/live"; fail "$py: audit --pid"; }
	grep -A4 "^live    $LOOKUP\$" "$W/live" | grep -q "fired 2 time(s) in this process, last at 20" ||
		{ cat "$W/live"; fail "$py: live count of lookup"; }
	grep -A4 "^live    $UNUSED\$" "$W/live" | grep -q "never fired in this process" ||
		{ cat "$W/live"; fail "$py: live count of unused"; }
	"$AUDIT" --store "$S" --pid "$child" --json >"$W/livej" 2>&1 || fail "$py: audit --pid --json"
	"$PYTHON" - "$W/livej" "$LOOKUP" "$UNUSED" <<'PY' || fail "$py: live JSON counts"
import json, sys
v = {p["name"]: p for p in json.load(open(sys.argv[1]))["patches"] if p["live"]}
assert v[sys.argv[2]]["live_hits"] == 2 and v[sys.argv[2]]["live_last_hit"], v[sys.argv[2]]
assert v[sys.argv[3]]["live_hits"] == 0 and v[sys.argv[3]]["live_last_hit"] is None, v[sys.argv[3]]
PY
	echo go >"$W/fifo"
	wait $rp || { cat "$W/hout" "$W/herr"; fail "$py: held run exited $?"; }
	PIDS=""
	expect "$S" "$LOOKUP" 80008 SET
	expect "$S" "$UNUSED" 0 NULL
	ok "$py: live counts shown by suture-audit --pid, stored at the end"
	"$AUDIT" --store "$S" explain "$LOOKUP" | grep -q "hits: *the guard fired 80008 time(s)" ||
		fail "$py: explain's hits line"
	"$AUDIT" --store "$S" explain "$UNUSED" | grep -q "hits: *the guard never fired" ||
		fail "$py: explain's hits line of a never fired patch"
}

pys=$(pythons python pyenv)
for py in $pys; do
	one_python "$py"
done
echo PASS
