#!/bin/sh
# Guard engine figures over the whole CPython 3.11 standard library (tests
# included): fidelity-probe synthesis and diff-gate throughput (code objects
# per second), and the cost of one real guard (analyse + synthesize + gate).
# Figures only, never a verdict.
set -eu
: "${BUILD:?}" "${PYTHON:=/usr/bin/python3.11}" "${SUTURE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
tool="$BUILD/tests/e2e/test_guards_tool"
[ -x "$tool" ] || { echo "missing $tool (make unit)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" "$SUTURE_ROOT/tests/fixtures/codedump.py" "$work/stdlib.dump" --stdlib 2>/dev/null
"$tool" bench "$work/stdlib.dump"
