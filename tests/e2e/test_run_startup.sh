#!/bin/sh
# suture-run's start-up (issue 16 item 12, docs/performance.md "start-up,
# third pass"): under suture-run the agent thread does not poll for the end
# of Py_Initialize every 0.5 ms (about a hundred wake-ups while the
# interpreter starts, each taking CPU from it): the boot hook wakes it at
# the first module, so it waits a few times at most; with -S (no site) the
# first module is the script's own and the same holds. Without suture-run
# (LD_PRELOAD alone, no boot hook) the agent still comes up, polling. The
# heal and the stored patch work as before either way.
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
AGENT="$BUILD/lib/libsuture_agent.so"
export SUTURE_AGENT="$AGENT"

waits() { # FILE: the agent's count of waits for the interpreter
	sed -n 's/.*interpreter initialized (\([0-9]*\) wait(s) for it).*/\1/p' "$1" | head -1
}

printf 'pass\n' >"$W/empty.py"
for i in 1 2 3; do
	SUTURE_AGENT_VERBOSE=1 "$RUN" --python "$PYTHON" --store "$W/s" "$W/empty.py" </dev/null \
		>/dev/null 2>"$W/e$i" || { cat "$W/e$i"; fail "run $i: exit status"; }
	n=$(waits "$W/e$i")
	[ -n "$n" ] || { cat "$W/e$i"; fail "run $i: no 'interpreter initialized' line"; }
	[ "$n" -le 10 ] || { cat "$W/e$i"; fail "run $i: the agent waited $n times for the interpreter (polled)"; }
	grep -q "listening on" "$W/e$i" || { cat "$W/e$i"; fail "run $i: the agent did not listen"; }
done
ok "suture-run: the agent is woken by the boot hook, no polling ($n wait(s))"

# -S: no site, the script's module is the first one.
cp "$SUTURE_ROOT/tests/fixtures/run/key_app.py" "$W/key_app.py"
SUTURE_AGENT_VERBOSE=1 "$RUN" --store "$W/s2" -- "$PYTHON" -S "$W/key_app.py" </dev/null \
	>"$W/k.out" 2>"$W/k.err" || { cat "$W/k.err"; fail "-S: exit status"; }
n=$(waits "$W/k.err")
[ -n "$n" ] && [ "$n" -le 10 ] || { cat "$W/k.err"; fail "-S: $n waits"; }
grep -q "^\[suture\] guard applied" "$W/k.err" && grep -qx "timeout None" "$W/k.out" ||
	{ cat "$W/k.out" "$W/k.err"; fail "-S: not healed"; }
"$RUN" --store "$W/s2" -- "$PYTHON" -S "$W/key_app.py" </dev/null >"$W/k2.out" 2>"$W/k2.err" ||
	{ cat "$W/k2.err"; fail "-S, second run: exit status"; }
grep -q "^\[suture\] already healed: key_guard" "$W/k2.err" || { cat "$W/k2.err"; fail "-S: the stored patch was not loaded"; }
ok "-S: woken at the script's module; healed, then loaded from the store"

# LD_PRELOAD alone: no boot hook, the agent polls and comes up.
LD_PRELOAD="$AGENT" SUTURE_AGENT_VERBOSE=1 "$PYTHON" -c 'import time; time.sleep(0.3)' 2>"$W/p.err" ||
	{ cat "$W/p.err"; fail "LD_PRELOAD: exit status"; }
grep -q "listening on" "$W/p.err" || { cat "$W/p.err"; fail "LD_PRELOAD: the agent did not come up"; }
ok "LD_PRELOAD without suture-run: the agent comes up (polling)"
echo PASS
