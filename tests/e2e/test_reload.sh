#!/bin/sh
# suture-attach --pid N --reload FILE (edit and continue) against a running
# job (tests/fixtures/reload/app/job.py) that uses a helper with a logic bug
# through every kind of reference: the module attribute, an alias in another
# module, a bound method saved at start, a callback in a dict, a
# functools.wraps wrapper, a static method's comprehension, a closure. After
# the edit and the reload, later records use the new code through all of
# them, and a function new in the file is added to the module; a call
# running during the reload finishes in the old code. Refusals
# leave the target unchanged: a syntax error (exit 13, its file and line), a
# file the target never imported (exit 12), a closure whose free variables
# changed (refused line, exit 0, the closure keeps its code), a bad pid.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"

# rec_after N PATTERN: a record numbered above N matches PATTERN.
last_rec() { tail -n 1 "$D/out" | awk '{print $2}'; }
rec_after() {
	_ra=0
	while :; do
		if awk -v n="$1" -v pat="$2" '$1 == "rec" && $2 > n && $0 ~ pat { f = 1 } END { exit !f }' "$D/out"; then
			return 0
		fi
		_ra=$((_ra + 1))
		[ $_ra -gt 250 ] && { tail -n 3 "$D/out"; fail "$py: no record after $1 matching '$2'"; }
		sleep 0.02
	done
}

for py in $(pythons); do
	tag=$(pytag "$py")
	D="$W/$tag"
	mkdir -p "$D"
	cp -r "$SUTURE_ROOT/tests/fixtures/reload/app" "$D/app"
	start_bg "job-$tag" "$D/ready" "$py" "$D/app/job.py" "$D"
	P=$BG
	rec_after 0 "attr=10 alias=10 bound=11 cb=10 wrapped=10 halve=10 closure=15 bonus=-"

	# The fix, and a new function, while a call of slow() runs (it began
	# within the last 20 ms and lasts 1.5 s).
	sed -i 's/return x \* 2$/return x * 3/; s/    return "old"$/    return "new"/' "$D/app/helpers.py"
	printf '\n\ndef bonus(x):\n    return x + 100\n' >>"$D/app/helpers.py"
	wait_grep "^slow -> old" "$D/out"
	ns=$(grep -c "^slow started" "$D/out")
	wait_for 5 sh -c "[ \$(grep -c '^slow started' '$D/out') -gt $ns ]" || fail "$py: slow() not called again"
	"$ATTACH" --pid "$P" --reload "$D/app/helpers.py" >"$D/r1.out" 2>"$D/r1.err" ||
		{ cat "$D/r1.err"; fail "$py: reload exited $?"; }
	nold=$(grep -c "^slow -> old" "$D/out")
	grep -q "^\[suture\] reloaded score ($D/app/helpers.py:7)" "$D/r1.out" ||
		{ cat "$D/r1.out"; fail "$py: no 'reloaded score' line"; }
	grep -q "^\[suture\] reloaded wrapped_score " "$D/r1.out" || fail "$py: wrapped_score not reloaded"
	grep -q "^\[suture\] reloaded slow " "$D/r1.out" || fail "$py: slow not reloaded"
	grep -q "^\[suture\] added bonus " "$D/r1.out" || fail "$py: bonus not added"
	[ "$(grep -c '^\[suture\] reloaded ' "$D/r1.out")" -eq 3 ] ||
		{ cat "$D/r1.out"; fail "$py: unchanged functions reported as reloaded"; }
	n=$(last_rec)
	rec_after "$n" "attr=15 alias=15 bound=16 cb=15 wrapped=15 halve=10 closure=15 bonus=105"
	ok "$py: reloaded through the attribute, an alias, a bound method, a callback, a wrapper; bonus added"
	wait_grep "^slow -> new" "$D/out"
	[ "$(grep -c "^slow -> old" "$D/out")" -eq $((nold + 1)) ] ||
		{ cat "$D/out" | grep slow; fail "$py: the call running during the reload did not finish in the old code"; }
	ok "$py: the call of slow() running during the reload finished in the old code, the next ran the new"

	# A comprehension inside a static method, and a closure's body.
	sed -i 's|v // 2 for v|v // 4 for v|; s|        return x + k$|        return x + k + 1|' "$D/app/helpers.py"
	"$ATTACH" --pid "$P" --reload "$D/app/helpers.py" >"$D/r2.out" 2>&1 || { cat "$D/r2.out"; fail "$py: reload 2"; }
	grep -q "^\[suture\] reloaded Scorer.halve " "$D/r2.out" || { cat "$D/r2.out"; fail "$py: halve"; }
	grep -q "^\[suture\] reloaded make_offset .*: 2 function object" "$D/r2.out" ||
		{ cat "$D/r2.out"; fail "$py: the closure made before was not switched"; }
	n=$(last_rec)
	rec_after "$n" "halve=5 closure=16 bonus=105"
	ok "$py: a comprehension and a closure made before the reload run the new code"

	# A changed closure: refused, nothing switched.
	cp "$D/app/helpers.py" "$D/good.py"
	sed -i 's|    def add(x):|    j = 2\n\n    def add(x):|; s|return x + k + 1$|return x + k + j|' "$D/app/helpers.py"
	"$ATTACH" --pid "$P" --reload "$D/app/helpers.py" >"$D/r3.out" 2>&1 || { cat "$D/r3.out"; fail "$py: reload 3"; }
	grep -q "^\[suture\] refused make_offset .*make_offset.<locals>.add: its free variables changed (k -> j, k)" "$D/r3.out" ||
		{ cat "$D/r3.out"; fail "$py: no refusal of the changed closure"; }
	n=$(last_rec)
	rec_after "$n" "closure=16 bonus=105"
	ok "$py: a changed closure is refused and keeps its code"

	# A syntax error: exit 13, file and line, target unchanged.
	cp "$D/good.py" "$D/app/helpers.py"
	sed -i 's/return x \* 3$/return x * 4/' "$D/app/helpers.py"
	printf 'def broken(:\n    pass\n' >>"$D/app/helpers.py"
	line=$(grep -n '^def broken' "$D/app/helpers.py" | cut -d: -f1)
	"$ATTACH" --pid "$P" --reload "$D/app/helpers.py" >"$D/r4.out" 2>"$D/r4.err"
	rc=$?
	[ $rc -eq 13 ] || { cat "$D/r4.out" "$D/r4.err"; fail "$py: syntax error exit $rc, not 13"; }
	[ "$(wc -l <"$D/r4.err")" -eq 1 ] && grep -q "helpers.py:$line: SyntaxError: .*target unchanged" "$D/r4.err" ||
		{ cat "$D/r4.err"; fail "$py: the syntax error's message"; }
	n=$(last_rec)
	rec_after "$n" "attr=15 alias=15 bound=16 cb=15"
	ok "$py: a syntax error is refused (exit 13, $(cat "$D/r4.err" | cut -c1-60)...)"

	# A file the target never imported, a missing file, a bad pid.
	"$ATTACH" --pid "$P" --reload "$D/app/never.py" >"$D/r5.out" 2>"$D/r5.err"
	rc=$?
	[ $rc -eq 12 ] && grep -q "never.py is not loaded in the target" "$D/r5.err" ||
		{ cat "$D/r5.err"; fail "$py: never imported: exit $rc"; }
	"$ATTACH" --pid "$P" --reload "$D/app/missing.py" 2>"$D/r6.err"
	[ $? -eq 2 ] || fail "$py: a missing file is not a usage error"
	"$ATTACH" --pid 999999 --reload "$D/app/never.py" 2>"$D/r7.err"
	[ $? -eq 3 ] || { cat "$D/r7.err"; fail "$py: a bad pid is not exit 3"; }
	n=$(last_rec)
	rec_after "$n" "attr=15 alias=15 bound=16 cb=15 wrapped=15 halve=5 closure=16 bonus=105"
	kill -0 "$P" || fail "$py: the job died"
	ok "$py: never imported (exit 12), missing file (2), bad pid (3); the job runs on unchanged"
	stop_pid "$P"
done
echo PASS
