#!/bin/sh
# Execution test of every guard kind: real functions crash, the engine
# (rewrite/guard.h, through build/tests/e2e/test_guards_tool) builds the
# patch, code.replace() installs it, and the patched function must heal
# with the guard's fallback, behave as before on healthy input, keep
# sys.exc_info() clean and let other exceptions through with unchanged
# tracebacks. Helpers come from libsuture_agent.so loaded as _suture_helpers.
# Run with the release interpreter, Debian's debug build and pyenv's 3.11.7.
set -eu
: "${BUILD:?}" "${PYTHON:=/usr/bin/python3.11}" "${SUTURE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
for f in "$BUILD/tests/e2e/test_guards_tool" "$BUILD/lib/libsuture_agent.so"; do
	[ -e "$f" ] || { echo "missing $f (make all unit)"; exit 1; }
done
export BUILD SUTURE_ROOT SUTURE_AGENT_NO_START=1
"$PYTHON" "$SUTURE_ROOT/tests/fixtures/guards/run_guards.py"
# Debian's debug build asserts on bytecode the release build tolerates
# (EXTENDED_ARG 0, stack discipline), and pyenv's 3.11.7 (a shared
# libpython) is another supported target: the same cases must pass there
# too, when they are installed.
for other in "${PYTHON_DBG:-/usr/bin/python3.11-dbg}" \
	"${PYTHON_PYENV:-/root/.pyenv/versions/3.11.7/bin/python3.11}"; do
	if [ -x "$other" ]; then
		echo "== again under $other"
		"$other" "$SUTURE_ROOT/tests/fixtures/guards/run_guards.py"
	else
		echo "no $other: skipped"
	fi
done
