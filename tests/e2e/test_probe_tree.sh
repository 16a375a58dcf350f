#!/bin/sh
# Live probes on a process tree (issue 14 with issue 12): a master and two
# workers it forked run work(i, k) in a loop. --log on the master sets the
# probe in all three (each its own agent, injected), --count 9 counts lines
# over the tree and every line names its pid ("[pid N] ") with that
# process's values; --json objects carry each process's pid. A file only
# the master and worker 1 imported (after the fork) is probed in those two,
# and worker 2 is skipped with one line on stderr. After the probes each
# process finds work's code object the original again (co_code and
# co_consts equal). --snapshot on the master with --if picking worker 2
# prints worker 2's stack and locals.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
T="$SUTURE_ROOT/tests/fixtures/probe/tree.py"
X="$SUTURE_ROOT/tests/fixtures/probe/tree_extra.py"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
PY=${PYTHON:-/usr/bin/python3.11}
LINE=$(grep -n 'label = total' "$T" | cut -d: -f1)
XL=$(grep -n 'r = i \* 2' "$X" | cut -d: -f1)

start_tree() { # DIR: M W1 W2 its pids
	mkdir -p "$1"
	start_group "$(basename "$1")" "$1/ready" "$PY" "$T" "$1"
	read -r M W1 W2 <"$1/pids" || fail "no pids in $1"
	[ -n "$W2" ] || fail "expected 3 processes: $(cat "$1/pids")"
}

# stop_tree DIR: every process ends, each saw the probe and runs work's
# original code again; tree_extra.twice likewise where it was imported.
stop_tree() {
	touch "$1/stop"
	wait_pid "$M" 30 >/dev/null || fail "the tree did not stop"
	for p in $M $W1 $W2; do
		[ -f "$1/check.$p" ] || fail "no check from pid $p"
		grep -qx "probed yes" "$1/check.$p" || fail "pid $p never ran the probe: $(cat "$1/check.$p")"
		grep -qx "same yes" "$1/check.$p" || fail "pid $p: work's code is not the original after exit"
	done
	grep -qx "extra yes" "$1/check.$M" || fail "master's twice: $(cat "$1/check.$M")"
	grep -qx "extra yes" "$1/check.$W1" || fail "worker 1's twice: $(cat "$1/check.$W1")"
	grep -qx "extra none" "$1/check.$W2" || fail "worker 2 imported tree_extra"
}

# 1. --log --count 9 over the tree; a file worker 2 never imported.
D="$W/log"
start_tree "$D"
"$ATTACH" --pid "$M" --log "$T:$LINE" 'k={k} i={i} total={total}' --count 9 >"$D/lines" \
	2>"$D/attach.err" || fail "--log on the tree: $(cat "$D/attach.err")"
[ "$(wc -l <"$D/lines")" -eq 9 ] || fail "expected 9 lines, got: $(cat "$D/lines")"
[ "$(grep -c "probe $T:$LINE set in pid" "$D/attach.err")" -eq 3 ] ||
	fail "not set in 3 processes: $(cat "$D/attach.err")"
while read -r tag pid kv iv tv; do
	pid=${pid%]}
	k=${kv#k=} i=${iv#i=} t=${tv#total=}
	[ "$tag" = "[pid" ] || fail "no [pid N] prefix: $tag $pid $kv"
	case $k in 0) want=$M ;; 1) want=$W1 ;; 2) want=$W2 ;; *) fail "k=$k" ;; esac
	[ "$pid" = "$want" ] || fail "k=$k reported by pid $pid, expected $want"
	[ "$t" = $((10 * i + k)) ] || fail "pid $pid: total=$t for i=$i k=$k"
done <"$D/lines"
for p in $M $W1 $W2; do
	grep -q "^\[pid $p\] k=" "$D/lines" || fail "no line from pid $p: $(cat "$D/lines")"
done
ok "--log --count 9 on the master: lines from all 3 pids with their values"

"$ATTACH" --pid "$M" --log "$X:$XL" 'i={i}' --count 6 >"$D/xlines" 2>"$D/x.err" ||
	fail "--log on tree_extra: $(cat "$D/x.err")"
[ "$(wc -l <"$D/xlines")" -eq 6 ] || fail "tree_extra: $(cat "$D/xlines")"
grep -q "^\[pid $W2\]" "$D/xlines" && fail "worker 2 reported a line it has no code for"
[ "$(grep -c "not probed: .*pid $W2" "$D/x.err")" -eq 1 ] ||
	fail "worker 2 not said to be skipped: $(cat "$D/x.err")"
[ "$(grep -c "set in pid" "$D/x.err")" -eq 2 ] || fail "tree_extra: $(cat "$D/x.err")"
ok "a file worker 2 never imported: probed in the other two, worker 2 skipped in one line"
stop_tree "$D"
ok "after exit each process runs work's (and twice's) original code"

# 2. --json carries each pid; --snapshot whose first hit is in worker 2.
D="$W/snap"
start_tree "$D"
"$ATTACH" --pid "$M" --log "$T:$LINE" '{total}' --count 12 --json >"$D/lines" 2>"$D/attach.err" ||
	fail "--json on the tree: $(cat "$D/attach.err")"
"$PY" - "$D/lines" "$M" "$W1" "$W2" <<'PYEOF' || fail "--json: $(cat "$D/lines")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
pids = [int(p) for p in sys.argv[2:5]]
assert len(rows) == 12, len(rows)
assert {r["pid"] for r in rows} == set(pids), {r["pid"] for r in rows}
for r in rows:
    assert int(r["values"]["total"]) % 10 == pids.index(r["pid"]), r
    assert r["text"] == r["values"]["total"], r
PYEOF
ok "--json: objects from all 3 pids, each with its own values"
"$ATTACH" --pid "$M" --snapshot "$T:$LINE" --if 'k == 2 and i > 3' >"$D/snap" 2>"$D/snap.err" ||
	fail "--snapshot on the tree: $(cat "$D/snap.err")"
grep -q "snapshot in pid $W2" "$D/snap.err" || fail "not worker 2's: $(cat "$D/snap.err")"
[ "$(grep -c '^Thread ' "$D/snap")" -eq 1 ] || fail "not one thread: $(cat "$D/snap")"
grep -q "^Thread $W2 " "$D/snap" || fail "not worker 2's thread: $(cat "$D/snap")"
grep -q "^    work ($T:$LINE)" "$D/snap" || fail "no work frame: $(cat "$D/snap")"
grep -qx "        k = 2" "$D/snap" || fail "work's k is not 2: $(cat "$D/snap")"
ok "--snapshot on the master: worker 2's stack and locals at its hit"
stop_tree "$D"
ok "after the snapshot each process runs work's original code"

# 5. A worker forked while a probe is set inherits the probed code: it is
# not probed (its agent drops the parent's probes at once) and runs the
# original code, as every process does once the probe is gone.
D="$W/late"
start_tree "$D"
"$ATTACH" --pid "$M" --log "$T:$LINE" 'k={k}' --timeout 4 >"$D/lines" 2>"$D/attach.err" &
LP=$!
track "$LP"
wait_grep "probe $T:$LINE set in pid $W2" "$D/attach.err" 15
touch "$D/spawn"
wait_file "$D/late" 10
read -r L <"$D/late"
wait "$LP" || fail "--log --timeout: $(cat "$D/attach.err")"
grep -q "^\[pid $L\]" "$D/lines" && fail "the worker forked during the probe reported lines"
sleep 0.5
touch "$D/stop"
wait_pid "$M" 30 >/dev/null || fail "the tree did not stop"
[ -f "$D/check.$L" ] || fail "no check from the late worker $L"
grep -qx "same yes" "$D/check.$L" || fail "the worker forked during the probe still runs the probed code: $(cat "$D/check.$L")"
ok "a worker forked while the probe was set runs the original code (not probed)"
