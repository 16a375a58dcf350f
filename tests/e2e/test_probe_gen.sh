#!/bin/sh
# Probes reach loops in progress inside a generator and a coroutine made
# before the probe was set (their suspended frames take the probed code at
# their next resumption, agent/install.c swap_generators), and after exit
# the objects, their frames and their functions hold the original code again.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
T="$SUTURE_ROOT/tests/fixtures/probe/gen_target.py"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
GL=$(grep -n 'total += i' "$T" | cut -d: -f1)
CL=$(grep -n 'acc += 2 \* j' "$T" | cut -d: -f1)
for py in $(pythons); do
	D="$W/$(pytag "$py")"
	mkdir -p "$D"
	start_bg "gen-$(pytag "$py")" "$D/ready" "$py" "$T" "$D"
	P=$BG
	"$ATTACH" --pid "$P" --log "$T:$GL" 'i={i} total={total}' --count 3 --timeout 20 >"$D/g" 2>"$D/g.err" ||
		fail "$py: --log in the generator: $(cat "$D/g.err")"
	[ "$(grep -c '^i=[0-9]* total=[0-9]*$' "$D/g")" -eq 3 ] || fail "$py: generator lines: $(cat "$D/g")"
	awk '{split($1,a,"=");split($2,b,"="); i=a[2]; if (b[2] != i*(i-1)/2) exit 1}' "$D/g" ||
		fail "$py: wrong values from the generator: $(cat "$D/g")"
	"$ATTACH" --pid "$P" --log "$T:$CL" 'j={j} acc={acc}' --count 3 --timeout 20 >"$D/c" 2>"$D/c.err" ||
		fail "$py: --log in the coroutine: $(cat "$D/c.err")"
	[ "$(grep -c '^j=[0-9]* acc=[0-9]*$' "$D/c")" -eq 3 ] || fail "$py: coroutine lines: $(cat "$D/c")"
	touch "$D/stop"
	wait_pid "$P" 20 >/dev/null
	grep -qx "gen True" "$W/gen-$(pytag "$py").out" && grep -qx "coro True" "$W/gen-$(pytag "$py").out" ||
		fail "$py: code not the original after the probes: $(cat "$W/gen-$(pytag "$py").out")"
	ok "$py: a generator's and a coroutine's loops in progress probed, their code original after"
done
echo PASS
