#!/bin/sh
# Run every test: Criterion unit binaries, short fuzz runs, end-to-end
# scripts. Usage: tests/run.sh [SUBSTRING]  (only tests whose name has it)
# Prints one PASS/FAIL/SKIP line a test, the log tail of each failure, and a
# closing "N passed, N failed, N skipped" line; exits non-zero if anything
# failed. An end-to-end script that exits 77 (tests/e2e/lib.sh's skip) is a
# SKIP, its reason the last line it wrote; a skip is never a pass. Only e2e
# scripts may skip so: 77 is also libFuzzer's exit status for a crash. A
# unit test Criterion skips is listed under its binary's PASS line, with
# its reason, and counted in the skips.
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
skipped=0
failures=""

run_one() { # name, may-skip(yes|no), command...
	name=$1 may_skip=$2; shift 2
	case "$name" in *"$FILTER"*) ;; *) return 0 ;; esac
	log="$LOGS/$name.log"
	mkdir -p "$(dirname "$log")"
	start=$(date +%s)
	timeout --kill-after=10 "$TEST_TIMEOUT" "$@" </dev/null >"$log" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	if [ $rc -eq 0 ]; then
		passed=$((passed + 1))
		echo "PASS $name (${secs}s)"
		# What a passing script could not test here (lib.sh's pythons).
		grep '^absent: ' "$log" | sed 's/^/    /'
		# A unit binary passes with tests Criterion skipped (cr_skip_test:
		# no pyenv, no python3.11-dbg...): each named with its reason and
		# counted as a skip, never hidden in the pass.
		n=0
		case "$name" in unit/*) n=$(grep -c '^\[SKIP\] ' "$log") ;; esac
		if [ "$n" -gt 0 ]; then
			skipped=$((skipped + n))
			grep '^\[SKIP\] ' "$log" | sed 's/^\[SKIP\] /    skipped inside: /'
		fi
	elif [ $rc -eq 77 ] && [ "$may_skip" = yes ]; then
		skipped=$((skipped + 1))
		echo "SKIP $name (${secs}s): $(tail -n 1 "$log")"
	else
		failed=$((failed + 1))
		failures="$failures $name"
		echo "FAIL $name (exit $rc, ${secs}s); last lines of $log:"
		tail -n 40 "$log" | sed 's/^/    /'
	fi
}

for t in "$BUILD"/tests/unit/test_*; do
	[ -x "$t" ] || continue
	run_one "unit/$(basename "$t")" no "$t" --jobs 2 --verbose
done

for f in "$BUILD"/fuzz/fuzz_*; do
	[ -x "$f" ] || continue
	n=$(basename "$f")
	work=$(mktemp -d)
	seeds="$ROOT/tests/fuzz/corpus/$n"
	[ -d "$seeds" ] || seeds=""
	run_one "fuzz/$n" no "$f" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 "$work" $seeds
	rm -rf "$work"
done

for t in tests/e2e/test_*; do
	[ -x "$t" ] || continue
	run_one "e2e/$(basename "$t")" yes "$t"
done

[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed, $skipped skipped"
# A filter that selects nothing is an error; one that selects only skipped
# tests is not (the closing line says so).
[ $failed -eq 0 ] && [ $((passed + skipped)) -gt 0 ]
