#!/bin/sh
# Execution test of every guard kind: real functions crash, the engine
# (rewrite/guard.h, through build/tests/e2e/test_guards_tool) builds the
# patch, code.replace() installs it, and the patched function must heal
# with the guard's fallback, behave as before on healthy input, keep
# sys.exc_info() clean and let other exceptions through with unchanged
# tracebacks. Helpers come from libsuture_agent.so loaded as _suture_helpers.
# Run with the release interpreter, Debian's debug build and pyenv's 3.11.7.
set -eu
. "$(dirname "$0")/lib.sh"
for f in "$BUILD/tests/e2e/test_guards_tool" "$BUILD/lib/libsuture_agent.so"; do
	[ -e "$f" ] || fail "missing $f (make all unit)"
done
export SUTURE_AGENT_NO_START=1
"$PYTHON" "$SUTURE_ROOT/tests/fixtures/guards/run_guards.py"
# Debian's debug build asserts on bytecode the release build tolerates
# (EXTENDED_ARG 0, stack discipline), and pyenv's 3.11.7 (a shared
# libpython) is another supported target: the same cases must pass there
# too, when they are installed (an absent one is named in the log).
for other in $(pythons dbg pyenv); do
	echo "== again under $other"
	"$other" "$SUTURE_ROOT/tests/fixtures/guards/run_guards.py"
done
