#!/bin/sh
# A redirect guard whose jump sits at the prefix boundary, on Debian's debug
# build (its EXTENDED_ARG asserts a non-zero oparg) and the others: the
# generated `"count: " + n` (tests/fixtures/run/jump_boundary.py) is 256
# units from the appended block without a prefix and 255 with one. The
# encoder used to write EXTENDED_ARG 0 there and python3.11d aborted (rc
# 134) on the healed run; found by `make fidelity GUARDS=all` on the debug
# build (csv.Sniffer._guess_quote_and_delimiter). Each interpreter: heal
# and re-run (exit 0, the fallback's result), the stored patch loaded
# before the first call (exit 0), and a heal resumed in flight (exit 0).
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
py_need DBG dbg

for py in $(pythons_dbg 2>>"$W/absent"); do
	t=$(pytag "$py")
	"$py" "$SUTURE_ROOT/tests/fixtures/run/jump_boundary.py" "$W/$t.py" ||
		fail "$t: the fixture could not be generated"
	for mode in rerun stored resume; do
		case $mode in
		rerun) set -- --store "$W/s-$t" --no-resume ;;
		stored) set -- --store "$W/s-$t" ;;
		resume) set -- --store "$W/r-$t" ;;
		esac
		"$RUN" --python "$py" "$@" "$W/$t.py" >"$W/$t-$mode.out" 2>"$W/$t-$mode.err"
		rc=$?
		[ $rc -eq 0 ] || fail "$t $mode: exit $rc: $(tail -3 "$W/$t-$mode.err")"
		grep -q "^result: 'count: 3'$" "$W/$t-$mode.out" ||
			fail "$t $mode: no fallback result: $(cat "$W/$t-$mode.out")"
	done
	grep -q "guard applied: str_coerce_guard" "$W/$t-rerun.err" ||
		fail "$t: no guard applied: $(cat "$W/$t-rerun.err")"
	grep -q "re-running" "$W/$t-rerun.err" || fail "$t: not re-run"
	grep -q "already healed: str_coerce_guard" "$W/$t-stored.err" ||
		fail "$t: the stored patch was not loaded: $(cat "$W/$t-stored.err")"
	grep -q "crash seen" "$W/$t-stored.err" && fail "$t: the stored run crashed"
	echo "$t: healed, re-run, loaded, resumed"
done
cat "$W/absent" 2>/dev/null
echo PASS
