#!/bin/sh
# Every instruction of 1,600 standard-library code objects (json, textwrap,
# difflib, statistics, fractions, shlex, csv, string, base64, argparse,
# configparser, email, pathlib, dataclasses, asyncio.tasks) crashed with each
# of the structural exceptions: the analysis never fails, and every guard it
# decides must synthesize, pass the verifier and the diff gate.
set -eu
. "$(dirname "$0")/lib.sh"
tool="$BUILD/tests/e2e/test_guards_tool"
[ -x "$tool" ] || fail "missing $tool (make unit)"
work=$W
L=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
"$PYTHON" "$SUTURE_ROOT/tests/fixtures/codedump.py" "$work/sweep.dump" "$L"/json/*.py \
	"$L/textwrap.py" "$L/difflib.py" "$L/statistics.py" "$L/fractions.py" "$L/shlex.py" \
	"$L/csv.py" "$L/string.py" "$L/base64.py" "$L/argparse.py" "$L/configparser.py" \
	"$L"/email/*.py "$L/pathlib.py" "$L/dataclasses.py" "$L/asyncio/tasks.py"
"$tool" sweep "$work/sweep.dump" | tee "$work/out"
# Every kind must have been exercised, and many times.
for k in null_guard index_guard key_guard subscript_guard chain_subscript_guard \
	type_coercion_guard division_guard str_coerce_guard file_guard callable_guard; do
	n=$(sed -n "s/^sweep: $k: \([0-9]*\) .*/\1/p" "$work/out")
	[ "${n:-0}" -gt 5 ] || fail "sweep: $k exercised ${n:-0} times"
done
echo "sweep: ok"
# The real-guard fidelity sweep's patches (make fidelity GUARDS=...): each
# kind's guard at every site of it in the same code, stacked; every code
# object's stack of guards passes the diff gate at each step and the
# verifier, and no accepted site is left out.
for k in null_guard index_guard key_guard subscript_guard chain_subscript_guard \
	type_coercion_guard division_guard str_coerce_guard file_guard callable_guard; do
	"$tool" guards "$work/sweep.dump" "$k" >"$work/g.out" 2>"$work/g.err" ||
		{ cat "$work/g.err"; grep -v '"gate":"ok"' "$work/g.out" | grep -v '"sites":0' |
			head -3 | cut -c1-300; fail "guards $k"; }
	cat "$work/g.err"
	sites=$(sed -n "s/^guards: $k: \([0-9]*\) sites guarded, 0 left out (stacking), 0 failures$/\1/p" "$work/g.err")
	[ "${sites:-0}" -gt 0 ] || fail "guards $k: $(cat "$work/g.err")"
done
echo "guards: ok"
