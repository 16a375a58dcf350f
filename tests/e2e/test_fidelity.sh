#!/bin/sh
# Fidelity oracle: 14 standard-library modules (json and its submodules,
# textwrap, difflib, statistics, fractions, heapq, bisect, shlex, csv,
# string, base64) with every code object replaced (a) by the engine's
# re-encoding and (b) by a probe guard at every reachable instruction that
# re-raises everything; CPython's own test suites for them must still pass,
# and tracebacks of errors raised in them must read the same. First, the
# probe patch of every code object of the whole standard library (tests
# included) must pass the diff gate and the verifier.
set -eu
. "$(dirname "$0")/lib.sh"
for f in "$BUILD/tests/e2e/test_guards_tool" "$BUILD/lib/libsuture_agent.so"; do
	[ -e "$f" ] || fail "missing $f (make all unit)"
done
export SUTURE_AGENT_NO_START=1
work=$W
"$PYTHON" "$SUTURE_ROOT/tests/fixtures/codedump.py" "$work/stdlib.dump" --stdlib 2>"$work/dump.log"
cat "$work/dump.log"
"$BUILD/tests/e2e/test_guards_tool" probe "$work/stdlib.dump" >"$work/probe.out"
codes=$(wc -l <"$work/probe.out")
ok=$(grep -c '"gate":"ok"' "$work/probe.out" || true)
echo "fidelity: probe patches accepted by the diff gate: $ok of $codes code objects"
[ "$codes" -gt 50000 ] && [ "$ok" -eq "$codes" ] || { grep -v '"gate":"ok"' "$work/probe.out" | head -5 | cut -c1-400; fail "probe patches: $ok of $codes accepted"; }

TESTS="test_json test_textwrap test_difflib test_statistics test_fractions test_heapq
test_bisect test_shlex test_csv test_string test_base64"
for mode in identity probe; do
	# shellcheck disable=SC2086
	"$PYTHON" "$SUTURE_ROOT/tests/fixtures/guards/fidelity.py" $mode $TESTS
	echo "fidelity: $mode: CPython's test suites pass"
done
# The probe again under Debian's debug build, whose assertions check the
# stack discipline and opargs of every executed block (statistics' suite,
# slow there, is left out).
if DBG=$(py311_find dbg); then
	# shellcheck disable=SC2086
	"$DBG" "$SUTURE_ROOT/tests/fixtures/guards/fidelity.py" probe $(echo $TESTS | sed 's/test_statistics//')
	echo "fidelity: probe under $DBG: CPython's test suites pass"
else
	echo "absent: the probe under the debug build, not tested: $(py311_why dbg)"
fi
# Tracing sees no probe: the tracing suites' own functions (what they
# trace) carry the probe, and every event they compare is unchanged (one
# block per line, entered only from its own line: issue 17, item 2).
TRACING="test_sys_settrace test_pdb test_trace"
for py in "$PYTHON" ${DBG:+"$DBG"}; do
	# shellcheck disable=SC2086
	"$py" "$SUTURE_ROOT/tests/fixtures/guards/fidelity.py" probe --self $TRACING
	echo "fidelity: probe under $py: $TRACING pass with their own code probed"
done
echo PASS
