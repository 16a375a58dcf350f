#!/bin/sh
# The watcher changes nothing a program can observe: CPython's own tests
# for tracebacks, exceptions, tracing, generators, with-statements,
# contextlib and threading pass in a process that has the agent loaded
# (PyTraceBack_Here replaced by the entry jump) and a debugger connected.
# Needs Debian's libpython3.11-testsuite (CPython's tests). The suite runs
# with SIGINT back at its default disposition (a background job of a
# non-interactive shell starts with SIGINT ignored, and some of these tests
# raise SIGINT on purpose). Every structural exception these suites raise
# is caught (assertRaises, try/except, threading's own handler around run()),
# so the watcher must report no crash: any report is a false positive that
# parked a thread of a passing program.
. "$(dirname "$0")/test_agent_lib.sh"

"$PYTHON" -c 'import test.test_traceback' 2>/dev/null ||
	skip "CPython's test suite is not installed (libpython3.11-testsuite)"
MODS="test_traceback test_exceptions test_sys_settrace test_generators test_with test_contextlib test_threading"
env --default-signal=INT LD_PRELOAD="$AGENT" SUTURE_AGENT_WAIT_DEBUGGER_MS=3000 \
	"$PYTHON" -m test $MODS >"$W/suite.out" 2>&1 &
TP=$!
track "$TP"
sleep 0.3
start_client suite -n "$TP" watch 100000 600
grep -q '^how=0 mode=[12] ' "$W/suite.client" || { cat "$W/suite.client"; fail "not watching"; }
wait "$TP"; rc=$?
wait "$TC" 2>/dev/null
[ $rc -eq 0 ] || { tail -40 "$W/suite.out"; fail "CPython tests failed under the watcher (exit $rc)"; }
grep -q "Tests result: SUCCESS" "$W/suite.out" || fail "no success line"
# Module-level code the suites compile and exec at run time (a temporary
# file, no site-packages: application code) and whose error a bare except
# of the suite (library code) captures is a unit of work's end by
# suture's rule (docs/design.md §6); module-level code is reported only,
# never patched, so such reports are counted apart. Any report in a
# function is a false positive.
n=$(grep '^crash' "$W/suite.client" | grep -vc ' func=<module> ')
m=$(grep '^crash' "$W/suite.client" | grep -c ' func=<module> ')
[ "$n" -eq 0 ] || { grep '^crash' "$W/suite.client" | grep -v ' func=<module> ' | head -5; fail "$n crash report(s) for exceptions the suites catch"; }
[ "$m" -le 4 ] || { grep '^crash' "$W/suite.client" | head -5; fail "$m module-level reports (at most the 2 exec'd temporary files, twice, are expected)"; }
echo "ok: no crash reports in functions ($m module-level); $(grep -E 'tests? OK' "$W/suite.out" | head -1)"
echo PASS
