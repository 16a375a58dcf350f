#!/bin/sh
# Run the benchmarks: every tests/bench/bench_* executable (or *.sh), each
# printing its own figures. Usage: tests/bench/run.sh [SUBSTRING]
# Benchmarks never fail on a number; docs/performance.md records results.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
PYTHON=${PYTHON:-/usr/bin/python3.11}
export BUILD PYTHON SUTURE_ROOT="$ROOT"
status=0
for b in tests/bench/bench_*; do
	case "$b" in *"${1:-}"*) ;; *) continue ;; esac
	case "$b" in
	*.sh) runner="sh" ;;
	*) [ -x "$b" ] || continue; runner="" ;;
	esac
	echo "== $(basename "$b")"
	$runner "$b" || { echo "bench $(basename "$b") failed" >&2; status=1; }
done
exit $status
