#!/bin/sh
# suture-run watches the whole process tree its script forks: a crash in a
# multiprocessing.Pool worker (map and imap), a ProcessPoolExecutor worker, a
# multiprocessing.Process worker fed by a Queue and a hand-written pre-fork
# server's worker is healed there (lines name the pid), stored once, and
# sent to every other process of the tree, the script's own included. The
# bad record gets the fallback in flight, the job started once: the worker
# called the function from Python (procq, the server) or from C (the pools'
# func(*args): its C caller gets the result). A server
# worker killed after the patch is respawned healed: no new crash.
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
AUDIT="$BUILD/bin/suture-audit"
F="$SUTURE_ROOT/tests/fixtures/tree"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"

patches() { "$AUDIT" --store "$1" --json 2>/dev/null | grep -c '"name"'; }

# job KIND STARTS: one round of KIND to its end
job() {
	S="$W/store-$1"
	"$RUN" --python "$PYTHON" --store "$S" "$F/jobs.py" "$1" >"$W/$1.out" 2>"$W/$1.err"
	rc=$?
	[ $rc -eq 0 ] || { cat "$W/$1.out" "$W/$1.err"; fail "$1: exited $rc"; }
	grep -qxF "results: [2, None, 6]" "$W/$1.out" || { cat "$W/$1.out" "$W/$1.err"; fail "$1: no fallback"; }
	runs=$(( $(grep -c '^\[suture\] re-running' "$W/$1.err") + 1 ))
	[ "$runs" -eq "$2" ] || { cat "$W/$1.err"; fail "$1: started $runs times, not $2"; }
	[ "$(patches "$S")" -eq 1 ] || { cat "$W/$1.err"; fail "$1: not one patch stored"; }
	grep -q '^\[suture\] pid [0-9]*: crash seen: KeyError' "$W/$1.err" ||
		{ cat "$W/$1.err"; fail "$1: the worker's crash line does not name its pid"; }
	grep -q '^\[suture\] watching pid [0-9]* (of the tree of ' "$W/$1.err" ||
		{ cat "$W/$1.err"; fail "$1: workers not watched"; }
	ok "$1 ($runs start(s), 1 patch)"
}

job pool_map 1
job pool_imap 1
job ppe 1
job procq 1
grep -q '^\[suture\] pid [0-9]*: resumed in flight' "$W/procq.err" || fail "procq: not resumed in flight"

# The pre-fork server: healed in flight in one worker, its sibling and the
# master get the patch, a respawned worker is born healed.
S="$W/store-prefork"
start_group prefork "$W/pf.ready" "$RUN" --python "$PYTHON" --store "$S" "$F/prefork.py" "$W/pf"
RUNPID=$BG
port=$(cat "$W/pf.ready")
ask() { "$PYTHON" "$F/ask.py" "$port" "$@"; }
ask a b c >"$W/ask1"
grep -q '^value: 1 pid' "$W/ask1" && grep -q '^value: None pid' "$W/ask1" &&
	grep -q '^value: 3 pid' "$W/ask1" || { cat "$W/ask1" "$W/prefork.err"; fail "prefork: answers"; }
wait_grep '^\[suture\] pid [0-9]*: stored patch' "$W/prefork.err" 10
# Both workers answer the bad record with the fallback.
ask b b b b b b >"$W/ask2"
[ "$(grep -c '^value: None pid' "$W/ask2")" -eq 6 ] || { cat "$W/ask2"; fail "prefork: not healed"; }
master=$(pgrep -P "$RUNPID" | head -n 1)
wait_grep "^\[suture\] pid $master: already healed" "$W/prefork.err" 10
crashes=$(grep -c 'crash seen' "$W/prefork.err")
cp "$W/pf.workers" "$W/pf.old"
sleep 0.3 # the agents report firings every 100 ms: the victim's are in
victim=$(head -n 1 "$W/pf.old")
kill -KILL "$victim"
wait_for 10 sh -c "! grep -qx '$victim' '$W/pf.workers' && [ \$(wc -l <'$W/pf.workers') -eq 2 ]" ||
	fail "prefork: no worker respawned"
fresh=$(grep -vxF -f "$W/pf.old" "$W/pf.workers")
wait_grep "^\[suture\] watching pid $fresh (of the tree" "$W/prefork.err" 10
# Until the respawned worker has answered (accept() picks either).
i=0
: >"$W/ask3"
while ! grep -q "pid $fresh\$" "$W/ask3"; do
	i=$((i + 1))
	[ $i -le 40 ] || { cat "$W/ask3"; fail "prefork: the respawned worker $fresh never answered"; }
	ask b >>"$W/ask3"
done
! grep -v '^value: None pid' "$W/ask3" || fail "prefork: respawned worker not healed"
[ "$(grep -c 'crash seen' "$W/prefork.err")" -eq "$crashes" ] ||
	{ cat "$W/prefork.err"; fail "prefork: a new crash after the respawn"; }
[ "$(patches "$S")" -eq 1 ] || fail "prefork: not one patch stored"
sleep 0.3
kill -TERM "$RUNPID"
wait_pid "$RUNPID" 20 || :
# The guard's firings in every worker (the respawned one's too) are stored.
hits=$("$AUDIT" --store "$S" --json | "$PYTHON" -c 'import json, sys; print(sum(p["hits"] for p in json.load(sys.stdin)["patches"]))')
answered=$(cat "$W/ask2" "$W/ask3" | grep -c '^value: None')
[ "$hits" -ge "$answered" ] || { cat "$W/prefork.err"; fail "prefork: $hits hits stored for $answered healed answers"; }
ok "prefork: healed in flight, siblings and master patched, a respawned worker healed without a crash"

# Run again: the stored patch is loaded at the start, the workers fork
# healed; no crash, and the firings in workers that never crashed nor got a
# patch in this run are stored too.
rm -f "$W/pf.ready"
start_group prefork2 "$W/pf.ready" "$RUN" --python "$PYTHON" --store "$S" "$F/prefork.py" "$W/pf"
RUNPID=$BG
port=$(cat "$W/pf.ready")
wait_for 10 sh -c "[ \$(grep -c '^\[suture\] watching pid' '$W/prefork2.err') -ge 2 ]" ||
	{ cat "$W/prefork2.err"; fail "prefork again: workers not watched"; }
ask b b b b b b >"$W/ask5"
[ "$(grep -c '^value: None pid' "$W/ask5")" -eq 6 ] || { cat "$W/ask5"; fail "prefork again: not healed"; }
sleep 0.3
kill -TERM "$RUNPID"
wait_pid "$RUNPID" 20 || :
! grep -q 'crash seen' "$W/prefork2.err" || { cat "$W/prefork2.err"; fail "prefork again: a crash"; }
hits2=$("$AUDIT" --store "$S" --json | "$PYTHON" -c 'import json, sys; print(sum(p["hits"] for p in json.load(sys.stdin)["patches"]))')
[ "$hits2" -ge $((hits + 6)) ] || { cat "$W/prefork2.err"; fail "prefork again: $hits2 hits stored, not $hits + 6"; }
ok "prefork again: born healed, the workers' firings stored"
echo PASS
