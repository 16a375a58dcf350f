#!/bin/sh
# Every guard kind end to end through suture-run, on Debian's python3.11 and
# pyenv's 3.11.7: the first run crashes, heals, stores the patch and re-runs
# the script, which then exits 0 with the healed result; the second run
# loads the stored patch before the function's first call (zero new
# patches, "already healed", no crash seen; the guard fired twice: hits 2);
# `suture-audit rollback` brings
# the crash back; the source file is never modified.
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
AUDIT="$BUILD/bin/suture-audit"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"

cp "$SUTURE_ROOT/tests/fixtures/run/kinds.py" "$W/kinds.py"
sum0=$(sha256sum <"$W/kinds.py")

expect() {
	case $1 in
	type_coercion_guard) echo 0 ;;
	division_guard) echo 0.0 ;;
	str_coerce_guard) echo "'count: 3'" ;;
	file_guard) echo "''" ;;
	*) echo None ;;
	esac
}

# one_python PY: every kind on one interpreter (both run at once).
one_python() {
	py=$1
	tag=$(echo "$py" | tr / _)
	for k in null_guard index_guard key_guard subscript_guard chain_subscript_guard \
		type_coercion_guard division_guard str_coerce_guard file_guard callable_guard; do
		S="$W/store-$tag-$k"
		o="$W/$tag-$k"
		want="result: $(expect $k)"
		# 1. heal, store, re-run (the bad call, fn(*args), would be resumed
		# in flight: test_resume_run.sh; here the re-run path is followed)
		"$RUN" --python "$py" --store "$S" --no-resume "$W/kinds.py" $k >"$o.out1" 2>"$o.err1"
		rc=$?
		[ $rc -eq 0 ] || { cat "$o.out1" "$o.err1"; fail "$py $k: first run exited $rc"; }
		grep -qx "$want" "$o.out1" || { cat "$o.out1" "$o.err1"; fail "$py $k: no '$want'"; }
		grep -q "^\[suture\] guard applied: $k " "$o.err1" || { cat "$o.err1"; fail "$py $k: not healed"; }
		grep -q "^\[suture\] re-running " "$o.err1" || fail "$py $k: not re-run"
		grep -q "^\[suture\] patches applied: 1, already healed: 1" "$o.err1" ||
			{ cat "$o.err1"; fail "$py $k: summary of the first run"; }
		# the spec carries the consumer's token (store format 2): a redirect's
		# own consumer, else a token the analyser decides
		"$AUDIT" --store "$S" --json >"$o.json" || fail "$py $k: suture-audit --json"
		"$PYTHON" - "$o.json" "$k" <<'EOF' || { cat "$o.json"; fail "$py $k: consumer token"; }
import json, sys
(p,) = json.load(open(sys.argv[1]))["patches"]
redirect = sys.argv[2] in ("str_coerce_guard", "file_guard")
assert p["consumer"] and p["consumer_kind"], p
assert (p["consumer_kind"] == "helper") == redirect, p
assert p["consumer_kind"] not in ("unknown", "statement"), p
EOF
		grep -q '"version":	2,' "$S/index.json" || fail "$py $k: not a version 2 index"
		# 2. loaded before the first call: no crash at all
		"$RUN" --python "$py" --store "$S" "$W/kinds.py" $k >"$o.out2" 2>"$o.err2"
		rc=$?
		[ $rc -eq 0 ] || { cat "$o.out2" "$o.err2"; fail "$py $k: second run exited $rc"; }
		grep -qx "$want" "$o.out2" || { cat "$o.out2" "$o.err2"; fail "$py $k: second run result"; }
		grep -q "crash seen" "$o.err2" && { cat "$o.err2"; fail "$py $k: second run crashed"; }
		grep -q "^\[suture\] already healed: $k " "$o.err2" || { cat "$o.err2"; fail "$py $k: not loaded"; }
		grep -q "^\[suture\] patches applied: 0, already healed: 1$" "$o.err2" ||
			{ cat "$o.err2"; fail "$py $k: summary of the second run"; }
		# hits: the guard fired once in the re-run and once in this run
		# (a redirect guard's helper, or a handler's filter, counted each
		# time; loading is not a hit), with its time
		"$AUDIT" --store "$S" --json >"$o.json" 2>&1 || fail "$py $k: audit --json"
		grep -q '"hits":[[:space:]]*2,' "$o.json" || { cat "$o.json"; fail "$py $k: hits not 2"; }
		grep -q '"last_hit":[[:space:]]*"20[0-9][0-9]-' "$o.json" || { cat "$o.json"; fail "$py $k: last_hit not recorded"; }
		# 3. rollback: the crash is back, with its own traceback
		"$AUDIT" --store "$S" rollback --all >"$o.rb" 2>&1 || { cat "$o.rb"; fail "$py $k: rollback"; }
		"$RUN" --python "$py" --store "$S" --dry-run "$W/kinds.py" $k >"$o.out3" 2>"$o.err3"
		rc=$?
		[ $rc -eq 1 ] || { cat "$o.out3" "$o.err3"; fail "$py $k: after rollback exited $rc, not 1"; }
		grep -q "^Traceback" "$o.err3" || fail "$py $k: no traceback after rollback"
		grep -q "^\[suture\] already healed:" "$o.err3" && fail "$py $k: a rolled back patch was loaded"
		grep -q "^\[suture\] dry run: would apply $k" "$o.err3" || { cat "$o.err3"; fail "$py $k: dry run"; }
		"$AUDIT" --store "$S" --json | grep -q '"name"' && fail "$py $k: --dry-run stored a patch"
		echo "ok: $py $k"
	done
	echo PASS >"$W/$tag.ok"
}

pys=$(pythons python pyenv)
for py in $pys; do
	one_python "$py" >"$W/$(echo "$py" | tr / _).log" 2>&1 &
done
wait
for py in $pys; do
	tag=$(echo "$py" | tr / _)
	cat "$W/$tag.log"
	[ -e "$W/$tag.ok" ] || fail "$py (see above)"
done
[ "$(sha256sum <"$W/kinds.py")" = "$sum0" ] || fail "the script was modified"
echo PASS
