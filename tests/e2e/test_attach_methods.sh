#!/bin/sh
# suture-attach --watch loads stored patches into methods, not only into
# module-level functions. A first run under suture-run heals a method, a
# staticmethod, a classmethod, a property getter and setter (both named
# Parser.size), a decorated method (reached through the __wrapped__ that
# functools.wraps leaves), a method of a nested class and a module-level
# function, and stores the patches. Then a fresh process of the same program is started
# plainly (no suture), suture-attach --watch attaches with that store: every
# patch is "already healed" at attach, and each call with a bad record
# returns the fallback without a crash, including through a bound method
# captured before the attach. A second suture-run loads all eight too (the
# getter's and setter's patches share a qualified name). Debian's
# python3.11, its debug build and pyenv's 3.11.7.
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
ATTACH="$BUILD/bin/suture-attach"
AUDIT="$BUILD/bin/suture-audit"
TARGET="$SUTURE_ROOT/tests/fixtures/heal/methods_target.py"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"

wait_count() { # PATTERN FILE N
	_n=0
	while [ "$(grep -c -- "$1" "$2" 2>/dev/null)" -lt "$3" ]; do
		_n=$((_n + 1)); [ $_n -gt 500 ] && { cat "$2"; fail "timed out waiting for $3 x '$1' in $2"; }
		sleep 0.02
	done
}
wait_ready() { # DIR
	_n=0
	while [ ! -s "$1/ready" ]; do
		_n=$((_n + 1)); [ $_n -gt 500 ] && fail "target never ready"; sleep 0.02
	done
}
prepare() { # DIR
	mkdir -p "$1"
	mkfifo "$1/cmd"
	: >"$1/out"
}

# call, fallback, expected "already healed" text (a grep pattern)
CASES="method|None|key_guard rec\[self.field\] -> None in Parser.parse (
static|0.0|division_guard a / b -> 0.0 in Parser.ratio (
classm|None|null_guard rec.level -> None in Parser.level (
getter|0|type_coercion_guard int(self.raw) -> 0 in Parser.size (
setter|None|key_guard rec\['n'\] -> None in Parser.size (
decorated|None|key_guard rec\['tag'\] -> None in Parser.tagged (
nested|None|key_guard rec\['name'\] -> None in Parser.Row.name (
top|None|key_guard rec\['id'\] -> None in top ("

pys=$(pythons python dbg pyenv)
for py in $pys; do
	D="$W/$(echo "$py" | tr / _)"
	S="$D/store"
	# 1. suture-run heals each crash site once and stores the patch.
	R="$D/run"
	prepare "$R"
	"$RUN" --python "$py" --store "$S" -- "$TARGET" "$R" 2>"$R/err" &
	SR=$!
	PIDS="$PIDS $SR"
	wait_ready "$R"
	PIDS="$PIDS $(cat "$R/ready")"   # the script itself: a failure kills it too
	n=0
	echo "$CASES" | while IFS='|' read -r name val healed; do
		n=$((n + 1))
		echo "$name" >"$R/cmd"
		wait_grep "^$name \(crashed\|->\)" "$R/out"
		# (not at a line start: the traceback of a crash shares the file)
		wait_count "\[suture\] stored patch " "$R/err" $n
	done || exit 1
	echo quit >"$R/cmd"
	wait $SR
	rc=$?
	[ $rc -eq 0 ] || { cat "$R/err"; fail "$py: suture-run exited $rc"; }
	grep -q "^\[suture\] patches applied: 8, already healed: 0" "$R/err" || { cat "$R/err"; fail "$py: first run"; }
	echo "ok: $py: suture-run healed and stored 8 patches (7 in classes)"

	# 1b. suture-run again: all eight load before their first call; the
	# getter's and the setter's patches (one qualified name, two functions)
	# each go to their own function, neither is taken for stale.
	R="$D/rerun"
	prepare "$R"
	"$RUN" --python "$py" --store "$S" -- "$TARGET" "$R" 2>"$R/err" &
	SR=$!
	PIDS="$PIDS $SR"
	wait_ready "$R"
	PIDS="$PIDS $(cat "$R/ready")"   # the script itself: a failure kills it too
	for call in getter:0 setter:None; do
		echo "${call%%:*}" >"$R/cmd"
		wait_grep "^${call%%:*} \(crashed\|->\)" "$R/out"
		grep -qxF "${call%%:*} -> ${call#*:}" "$R/out" || { cat "$R/out" "$R/err"; fail "$py: rerun: $call"; }
	done
	echo quit >"$R/cmd"
	wait $SR
	rc=$?
	[ $rc -eq 0 ] || { cat "$R/err"; fail "$py: second suture-run exited $rc"; }
	grep -q "^\[suture\] patches applied: 0, already healed: 8$" "$R/err" || { cat "$R/err"; fail "$py: second run"; }
	grep -q "stale" "$R/err" && { cat "$R/err"; fail "$py: second run: stale"; }
	echo "ok: $py: a second suture-run loads all eight (getter and setter of one property apart)"

	# 2. A fresh process of the same program, started plainly; attach.
	A="$D/attach"
	prepare "$A"
	"$py" "$TARGET" "$A" 2>"$A/target.err" &
	TP=$!
	PIDS="$PIDS $TP"
	wait_ready "$A"
	"$ATTACH" --pid "$TP" --watch --store "$S" 2>"$A/err" &
	TW=$!
	PIDS="$PIDS $TW"
	wait_grep "^\[suture\] watching pid $TP\$" "$A/err"
	echo "$CASES" | while IFS='|' read -r name val healed; do
		grep -q "^\[suture\] already healed: $healed" "$A/err" ||
			{ cat "$A/err"; fail "$py: $name not loaded at attach"; }
	done || exit 1
	# The bound method was made before the attach; it follows the patch.
	for call in "bound|None" $(echo "$CASES" | cut -d'|' -f1,2); do
		name=${call%%|*} val=${call#*|}
		echo "$name" >"$A/cmd"
		wait_grep "^$name \(crashed\|->\)" "$A/out"
		grep -qxF "$name -> $val" "$A/out" || { cat "$A/out" "$A/err"; fail "$py: $name did not return $val"; }
	done
	grep -q "crash seen" "$A/err" && { cat "$A/err"; fail "$py: a loaded method crashed"; }
	kill -INT "$TW"
	wait "$TW" || { cat "$A/err"; fail "$py: watcher exit status"; }
	grep -q "^\[suture\] patches applied: 0, already healed: 8$" "$A/err" || { cat "$A/err"; fail "$py: summary"; }
	echo quit >"$A/cmd"
	wait "$TP" || fail "$py: the target did not exit cleanly"
	"$AUDIT" --store "$S" --json | grep -q '"status":[[:space:]]*"stale"' &&
		{ "$AUDIT" --store "$S"; fail "$py: a patch was marked stale"; }
	echo "ok: $py: methods, staticmethod, classmethod, property getter and setter, decorated method, nested class, module function and a bound method from before the attach loaded at attach"
done
echo PASS
