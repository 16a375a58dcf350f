#!/bin/sh
# --reload on a process tree (issue 13 with issue 12): a master and two
# workers it forked run helper.bump; suture-attach --pid MASTER --reload
# helper.py switches the function in all three processes (each reached or
# injected on its own), the lines name each pid, and every process then
# computes with the new code.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"

# all_out V: every process's latest value is V.
all_out() {
	for _p in $pids; do
		[ "$(cat "$D/out.$_p" 2>/dev/null)" = "$1" ] || return 1
	done
}
for py in $(pythons); do
	tag=$(pytag "$py")
	D="$W/$tag"
	mkdir -p "$D"
	cp -r "$SUTURE_ROOT/tests/fixtures/reload/tree" "$D/app"
	start_group "tree-$tag" "$D/ready" "$py" "$D/app/main.py" "$D"
	pids=$(cat "$D/pids")
	[ "$(echo $pids | wc -w)" -eq 3 ] || fail "$py: expected 3 processes, got: $pids"
	wait_for 10 all_out 11 || fail "$py: the processes never computed 11"
	sed -i 's/return x + 1/return x + 2/' "$D/app/helper.py"
	"$ATTACH" --pid "${pids%% *}" --reload "$D/app/helper.py" --store "$D/store" >"$D/r.out" 2>"$D/r.err" ||
		{ cat "$D/r.out" "$D/r.err"; fail "$py: --reload on the master"; }
	for p in $pids; do
		grep -q "pid $p: reloaded bump ($D/app/helper.py:1)" "$D/r.out" ||
			{ cat "$D/r.out"; fail "$py: no 'reloaded' line for pid $p"; }
	done
	wait_for 10 all_out 12 ||
		{ cat "$D/r.out"; for p in $pids; do echo "$p: $(cat "$D/out.$p")"; done; fail "$py: not every process runs the new code"; }
	ok "$py: master and 2 workers run the reloaded bump"
	stop_group "$BG"
done
echo PASS
