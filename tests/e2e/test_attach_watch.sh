#!/bin/sh
# suture-attach --pid N --watch against running interpreters (Debian's
# python3.11 and pyenv's 3.11.7): the target is started without suture; the
# watcher attaches, injects the agent and heals. For each of the ten guard
# kinds the first call (in its own thread) is resumed in flight and returns
# the fallback, and the next call is healed. Also: a bound method captured before the
# patch, a list comprehension, a closure, a decorated function, a thread
# started before the attach; handled exceptions (try/except in a caller,
# hasattr, getattr with a default, iteration) are never reported. SIGINT
# detaches cleanly (patches stay); a SIGKILLed debugger leaves a parked
# thread to go on and the target survives; another process of the same
# program gets the stored patches at attach, a method's included. Hits:
# each kind's guard fired twice while the first watcher was attached (its
# first call, called as fn(*args) from C, resumed in flight from the guard,
# then the healed call), recorded when it detached; the second watcher
# records the firings of the patches it loaded (one more each for the six
# kinds called, sent by the agent before BYE at its SIGINT detach).
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
AUDIT="$BUILD/bin/suture-audit"
TARGET="$SUTURE_ROOT/tests/fixtures/heal/watch_target.py"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"


# cmd DIR LINE EXPECTED-OUT-LINE: send a command, wait for its result line
cmd() {
	echo "$2" >"$1/cmd"
	wait_grep "^$3\$" "$1/out"
}

start_target() { # DIR PY
	mkdir -p "$1"
	mkfifo "$1/cmd"
	: >"$1/out"
	"$2" "$TARGET" "$1" 2>"$1/target.err" &
	TP=$!
	PIDS="$PIDS $TP"
	_n=0
	while [ ! -s "$1/ready" ]; do
		_n=$((_n + 1)); [ $_n -gt 500 ] && fail "target never ready"; sleep 0.02
	done
}

start_watch() { # DIR PID ARGS...
	_d=$1 _p=$2
	shift 2
	"$ATTACH" --pid "$_p" --watch --store "$_d/store" "$@" 2>"$_d/watch.err" &
	TW=$!
	PIDS="$PIDS $TW"
	wait_grep "^\[suture\] watching pid $_p\$" "$_d/watch.err"
}

# first_call NAME VALUE COMMAND: the first call of a crash site either
# crashes, or (resumed in flight) returns VALUE with a "resumed" line.
first_call() {
	r0=$(grep -c "^\[suture\] resumed in flight:" "$D/watch.err")
	g0=$(grep -c "^\[suture\] guard applied:" "$D/watch.err")
	echo "$3" >"$D/cmd"
	wait_grep "^$1 \(crashed\|->\)" "$D/out"
	_n=0
	while [ "$(grep -c "^\[suture\] guard applied:" "$D/watch.err")" -le "$g0" ]; do
		_n=$((_n + 1)); [ $_n -gt 500 ] && { cat "$D/watch.err"; fail "$py: $1 not patched"; }
		sleep 0.02
	done
	r1=$(grep -c "^\[suture\] resumed in flight:" "$D/watch.err")
	if grep -q "^$1 -> " "$D/out"; then
		grep -qxF "$1 -> $2" "$D/out" || { cat "$D/out"; fail "$py: $1 resumed with a wrong value"; }
		[ "$r1" -gt "$r0" ] || { cat "$D/watch.err"; fail "$py: $1 returned without a crash or a resume"; }
		resumed="$resumed $1"
	else
		[ "$r1" -eq "$r0" ] || fail "$py: $1 crashed although it was resumed"
	fi
}

# again NAME VALUE COMMAND: a later call returns VALUE
again() {
	n1=$(grep -cxF "$1 -> $2" "$D/out")
	echo "$3" >"$D/cmd"
	_n=0
	while [ "$(grep -cxF "$1 -> $2" "$D/out")" -le "$n1" ]; do
		_n=$((_n + 1)); [ $_n -gt 500 ] && { cat "$D/out"; fail "$py: $1 not healed"; }
		sleep 0.02
	done
}

# kind_hits STORE: "KIND HITS ..." for kinds.py's ten functions, sorted
kind_hits() {
	"$AUDIT" --store "$1" --json >"$1.json" || fail "audit --json"
	"$PYTHON" - "$1.json" <<'PY'
import json, sys
v = sorted((p["function"], p["hits"]) for p in json.load(open(sys.argv[1]))["patches"]
           if p["module"] == "kinds")
print(" ".join("%s %d" % x for x in v))
PY
}

healed() {
	case $1 in
	type_coercion_guard) echo 0 ;;
	division_guard) echo 0.0 ;;
	str_coerce_guard) echo "'count: 3'" ;;
	file_guard) echo "''" ;;
	*) echo None ;;
	esac
}

pys=$(pythons python pyenv)
for py in $pys; do
	D="$W/$(echo "$py" | tr / _)"
	resumed=""
	start_target "$D" "$py"
	start_watch "$D" "$TP"
	for k in null_guard index_guard key_guard subscript_guard chain_subscript_guard \
		type_coercion_guard division_guard str_coerce_guard file_guard callable_guard; do
		# called as fn(*args): entered from C, resumed in flight, the
		# first call already returns the fallback
		first_call "$k" "$(healed $k)" "$k"
		again "$k" "$(healed $k)" "$k"
	done
	[ "$(echo $resumed | wc -w)" -eq 10 ] || { cat "$D/watch.err"; fail "$py: resumed only:$resumed"; }
	resumed=""
	echo "ok: $py: ten guard kinds healed in a running process, each first call resumed in flight"
	# These callers reach the function through a plain CALL, so the agent
	# can resume the crashing call in flight: the first call then returns
	# the fallback already ("resumed in flight"); otherwise it crashes.
	for s in method:None comp:"[1, None]" closure:None decorated:None; do
		name=${s%%:*} val=${s#*:}
		first_call "$name" "$val" "shape $name"
		again "$name" "$val" "shape $name"
	done
	first_call pre None pre
	grep -q "^\[suture\] guard applied: key_guard d\['pre'\] .* in pre_thread_fn" "$D/watch.err" ||
		{ cat "$D/watch.err"; fail "$py: the thread from before the attach was not healed"; }
	again pre_thread None "shape pre_thread"
	echo "ok: $py: resumed in flight:${resumed:- none}"
	echo "ok: $py: bound method, comprehension, closure, decorated, thread from before the attach"
	n0=$(grep -c "crash seen" "$D/watch.err")
	cmd "$D" "shape handled_try" "handled_try -> 'caught'"
	cmd "$D" "shape handled_hasattr" "handled_hasattr -> False"
	cmd "$D" "shape handled_getattr" "handled_getattr -> 'default'"
	cmd "$D" "shape handled_iter" "handled_iter -> \[1, 2, 3\]"
	sleep 0.2
	[ "$(grep -c "crash seen" "$D/watch.err")" -eq "$n0" ] || { cat "$D/watch.err"; fail "$py: a handled exception was reported"; }
	echo "ok: $py: handled exceptions untouched"
	# Interrupt: clean detach, patches stay, the target lives on.
	kill -INT "$TW"
	wait "$TW" || { cat "$D/watch.err"; fail "$py: watcher exit status after SIGINT"; }
	grep -q "^\[suture\] detached" "$D/watch.err" || { cat "$D/watch.err"; fail "$py: no clean detach"; }
	cmd "$D" key_guard "key_guard -> None"
	n=$("$AUDIT" --store "$D/store" --json | grep -c '"guard"')
	[ "$n" -eq 15 ] || { "$AUDIT" --store "$D/store"; fail "$py: $n patches stored, not 15"; }
	echo "ok: $py: SIGINT detaches, patches stay and are stored"
	kind_hits "$D/store" >"$D/hits1"
	[ "$(cat "$D/hits1")" = "callable_guard 2 chain_subscript_guard 2 division_guard 2 file_guard 2 index_guard 2 key_guard 2 null_guard 2 str_coerce_guard 2 subscript_guard 2 type_coercion_guard 2" ] ||
		{ cat "$D/hits1"; fail "$py: hits after the first watcher"; }
	echo "ok: $py: one firing each recorded (the call after the detach is not)"
	# SIGKILL while a crashing thread is parked: the agent sees EOF and lets
	# the exception go on; the target survives and still answers.
	start_watch "$D" "$TP"
	kill -STOP "$TW"
	echo "shape late" >"$D/cmd"
	sleep 0.4
	grep -q "^late" "$D/out" && { cat "$D/out" "$D/watch.err"; fail "$py: the crash was not parked while the debugger was stopped"; }
	kill -KILL "$TW"
	wait "$TW" 2>/dev/null
	t0=$(date +%s%N)
	wait_grep "^late crashed\$" "$D/out" 5
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	[ $ms -lt 1000 ] || fail "$py: the parked thread waited ${ms} ms after the debugger died"
	cmd "$D" key_guard "key_guard -> None"
	kill -0 "$TP" || fail "$py: the target died with the debugger"
	# --detach: the agent the killed debugger left behind stops serving;
	# its patches stay; a second --detach finds no agent (exit 11).
	sock="/tmp/suture-$(id -u)/agent-$TP.sock"
	[ -S "$sock" ] || fail "$py: no agent socket after the debugger died"
	"$ATTACH" --pid "$TP" --detach 2>"$D/detach.err" || { cat "$D/detach.err"; fail "$py: --detach"; }
	grep -q "^\[suture\] detached from pid $TP" "$D/detach.err" || { cat "$D/detach.err"; fail "$py: --detach said"; }
	[ -e "$sock" ] && fail "$py: the agent socket is still there after --detach"
	cmd "$D" key_guard "key_guard -> None"
	"$ATTACH" --pid "$TP" --detach 2>"$D/detach2.err"
	rc=$?
	[ $rc -eq 11 ] && grep -q "no suture agent serves" "$D/detach2.err" ||
		{ cat "$D/detach2.err"; fail "$py: second --detach exited $rc"; }
	# --timeout: stops by itself, detaching cleanly (and restarts the agent).
	"$ATTACH" --pid "$TP" --watch --store "$D/store" --timeout 0.3 2>"$D/timeout.err" ||
		{ cat "$D/timeout.err"; fail "$py: --timeout exit status"; }
	grep -q "^\[suture\] timeout: stopped watching pid $TP" "$D/timeout.err" &&
		grep -q "^\[suture\] detached" "$D/timeout.err" || { cat "$D/timeout.err"; fail "$py: --timeout"; }
	cmd "$D" index_guard "index_guard -> None"
	echo quit >"$D/cmd"
	wait "$TP" || fail "$py: the target did not exit cleanly"
	echo "ok: $py: SIGKILLed debugger, target unharmed"
	# Another process of the same program: what was stored is installed
	# into its live functions at attach (module functions, methods and the
	# code nested in them), before any crash.
	D2="$D.again"
	start_target "$D2" "$py"
	"$ATTACH" --pid "$TP" --watch --store "$D/store" 2>"$D2/watch.err" &
	TW=$!
	PIDS="$PIDS $TW"
	wait_grep "^\[suture\] watching pid $TP\$" "$D2/watch.err"
	for k in null_guard key_guard division_guard str_coerce_guard file_guard callable_guard; do
		grep -q "^\[suture\] already healed: $k " "$D2/watch.err" || { cat "$D2/watch.err"; fail "$py: $k not loaded at attach"; }
		cmd "$D2" "$k" "$k -> $(healed $k)"
	done
	# A method too (shapes.Box.get, called through a bound method made
	# before the attach); test_attach_methods.sh has the other method kinds.
	grep -q "^\[suture\] already healed: key_guard self.d\['k'\] -> None in Box.get " "$D2/watch.err" ||
		{ cat "$D2/watch.err"; fail "$py: the method Box.get not loaded at attach"; }
	cmd "$D2" "shape method" "method -> None"
	# A decorated function: the module holds functools.wraps' wrapper; the
	# patched function is its __wrapped__.
	grep -q "^\[suture\] already healed: key_guard d\['z'\] -> None in decorated " "$D2/watch.err" ||
		{ cat "$D2/watch.err"; fail "$py: the decorated function not loaded at attach"; }
	cmd "$D2" "shape decorated" "decorated -> None"
	# Code nested in a function: a comprehension, a closure's inner function.
	grep -q "^\[suture\] already healed: key_guard r\['v'\] -> None in comp.<locals>.<listcomp> " "$D2/watch.err" ||
		{ cat "$D2/watch.err"; fail "$py: the comprehension not loaded at attach"; }
	cmd "$D2" "shape comp" "comp -> \[1, None\]"
	cmd "$D2" "shape closure" "closure -> None"
	first=$(grep -c "^\[suture\] crash seen" "$D2/watch.err")
	[ "$first" -eq 0 ] || { cat "$D2/watch.err"; fail "$py: a loaded function crashed"; }
	kill -INT "$TW"
	wait "$TW" || fail "$py: second watcher"
	echo quit >"$D2/cmd"
	wait "$TP" || fail "$py: the second target did not exit cleanly"
	"$AUDIT" --store "$D/store" --json | grep -q '"status":[[:space:]]*"stale"' &&
		{ "$AUDIT" --store "$D/store"; fail "$py: re-attaching marked patches stale"; }
	echo "ok: $py: stored patches loaded into a running process at attach"
	kind_hits "$D/store" >"$D/hits2"
	# key_guard was also called in the first process with no debugger (or a
	# SIGKILLed one, or --detach, which do not ask for HITS) connected: those
	# firings wait in its agent for the next watcher that records them (the
	# --timeout one), unless the killed one had received them already.
	sed 's/ key_guard [0-9]*//' "$D/hits2" >"$D/hits2b"
	[ "$(cat "$D/hits2b")" = "callable_guard 3 chain_subscript_guard 2 division_guard 3 file_guard 3 index_guard 2 null_guard 3 str_coerce_guard 3 subscript_guard 2 type_coercion_guard 2" ] ||
		{ cat "$D/hits2"; fail "$py: hits after the second watcher"; }
	kh=$(sed 's/.* key_guard \([0-9]*\).*/\1/' "$D/hits2")
	[ "$kh" -ge 4 ] && [ "$kh" -le 6 ] || { cat "$D/hits2"; fail "$py: key_guard hits $kh, not 4 to 6"; }
	echo "ok: $py: the loaded patches' firings recorded at detach"
done
echo PASS
