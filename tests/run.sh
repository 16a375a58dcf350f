#!/bin/sh
# Run every test: Criterion unit binaries, short fuzz runs, end-to-end
# scripts. Usage: tests/run.sh [SUBSTRING]  (only tests whose name has it)
# Prints one PASS/FAIL line a test, the log tail of each failure, and a
# closing "N passed, N failed" line; exits non-zero if anything failed.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
PYTHON=${PYTHON:-/usr/bin/python3.11}
FILTER=${1:-}
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
TEST_TIMEOUT=${TEST_TIMEOUT:-900}
export BUILD PYTHON SUTURE_ROOT="$ROOT"
LOGS="$BUILD/test-logs"
mkdir -p "$LOGS"

passed=0
failed=0
failures=""

run_one() { # name, command...
	name=$1; shift
	case "$name" in *"$FILTER"*) ;; *) return 0 ;; esac
	log="$LOGS/$name.log"
	mkdir -p "$(dirname "$log")"
	start=$(date +%s)
	timeout --kill-after=10 "$TEST_TIMEOUT" "$@" >"$log" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	if [ $rc -eq 0 ]; then
		passed=$((passed + 1))
		echo "PASS $name (${secs}s)"
	else
		failed=$((failed + 1))
		failures="$failures $name"
		echo "FAIL $name (exit $rc, ${secs}s); last lines of $log:"
		tail -n 40 "$log" | sed 's/^/    /'
	fi
}

for t in "$BUILD"/tests/unit/test_*; do
	[ -x "$t" ] || continue
	run_one "unit/$(basename "$t")" "$t" --jobs 2
done

for f in "$BUILD"/fuzz/fuzz_*; do
	[ -x "$f" ] || continue
	n=$(basename "$f")
	work=$(mktemp -d)
	seeds="$ROOT/tests/fuzz/corpus/$n"
	[ -d "$seeds" ] || seeds=""
	run_one "fuzz/$n" "$f" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 "$work" $seeds
	rm -rf "$work"
done

for t in tests/e2e/test_*; do
	[ -x "$t" ] || continue
	run_one "e2e/$(basename "$t")" "$t"
done

[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ $passed -gt 0 ]
