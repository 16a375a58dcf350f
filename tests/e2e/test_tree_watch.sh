#!/bin/sh
# suture-attach --pid MASTER --watch alone watches the whole tree: the
# workers that exist at attach (found in /proc: descendants running the
# master's interpreter, each injected) and every later fork (reported by its
# parent's agent). multiprocessing.Pool (map, imap), ProcessPoolExecutor,
# multiprocessing.Process workers with a Queue and a hand-written pre-fork
# server, none started by suture: the bad record (sent only once we watch)
# gets the fallback, one patch is stored, lines name the pid, the master
# gets the patch too; a server worker killed after the patch is respawned
# healed, without a new crash; SIGINT detaches every process of the tree.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
AUDIT="$BUILD/bin/suture-audit"
F="$SUTURE_ROOT/tests/fixtures/tree"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"

patches() { "$AUDIT" --store "$1" --json 2>/dev/null | grep -c '"name"'; }

# attach NAME PID STORE: suture-attach --watch in the background (AP), its
# output in $W/NAME.watch; returns once it watches the whole tree (N
# processes: WANT "watching pid" lines).
attach() {
	"$ATTACH" --pid "$2" --watch --store "$3" >"$W/$1.watch" 2>&1 &
	AP=$!
	track "$AP"
	wait_for 20 sh -c "[ \$(grep -c '^\[suture\] watching pid' '$W/$1.watch') -ge $4 ]" ||
		{ cat "$W/$1.watch"; fail "$1: the tree is not watched"; }
}

# detach NAME: SIGINT, every process detached
detach() {
	kill -INT "$AP"
	wait_pid "$AP" 20 || { cat "$W/$1.watch"; fail "$1: suture-attach failed"; }
	grep -q '^\[suture\] detached' "$W/$1.watch" || { cat "$W/$1.watch"; fail "$1: not detached"; }
}

watch_job() {
	k=$1 S="$W/store-$1"
	start_group "$k" "$W/$k.ready" "$PYTHON" "$F/jobs.py" "$k" "$W/$k"
	master=$BG
	attach "$k" "$master" "$S" 3
	grep -q "^\[suture\] watching pid [0-9]* (of the tree of $master)" "$W/$k.watch" ||
		{ cat "$W/$k.watch"; fail "$k: workers not found"; }
	: >"$W/$k.bad"
	wait_grep '^results: \[2, None, 6\]$' "$W/$k.out" 20
	grep -q '^\[suture\] pid [0-9]*: crash seen: KeyError' "$W/$k.watch" ||
		{ cat "$W/$k.watch"; fail "$k: the crash line does not name its pid"; }
	wait_grep "^\[suture\] pid $master: already healed" "$W/$k.watch" 10
	detach "$k"
	[ "$(patches "$S")" -eq 1 ] || { cat "$W/$k.watch"; fail "$k: not one patch stored"; }
	: >"$W/$k.stop"
	wait_pid "$master" 20 || :
	ok "$k: healed in a worker found at attach, the master patched too"
}

watch_job pool_map
watch_job pool_imap
watch_job ppe
watch_job procq

# The pre-fork server.
S="$W/store-prefork"
start_group prefork "$W/pf.ready" "$PYTHON" "$F/prefork.py" "$W/pf"
master=$BG
port=$(cat "$W/pf.ready")
ask() { "$PYTHON" "$F/ask.py" "$port" "$@"; }
attach prefork "$master" "$S" 3
ask a b c >"$W/ask1"
grep -q '^value: 1 pid' "$W/ask1" && grep -q '^value: None pid' "$W/ask1" &&
	grep -q '^value: 3 pid' "$W/ask1" || { cat "$W/ask1" "$W/prefork.watch"; fail "prefork: answers"; }
wait_grep "^\[suture\] pid $master: already healed" "$W/prefork.watch" 10
crashes=$(grep -c 'crash seen' "$W/prefork.watch")
cp "$W/pf.workers" "$W/pf.old"
victim=$(head -n 1 "$W/pf.old")
kill -KILL "$victim"
wait_for 10 sh -c "! grep -qx '$victim' '$W/pf.workers' && [ \$(wc -l <'$W/pf.workers') -eq 2 ]" ||
	fail "prefork: no worker respawned"
fresh=$(grep -vxF -f "$W/pf.old" "$W/pf.workers")
wait_grep "^\[suture\] watching pid $fresh (of the tree" "$W/prefork.watch" 10
i=0
: >"$W/ask3"
while ! grep -q "pid $fresh\$" "$W/ask3"; do
	i=$((i + 1))
	[ $i -le 40 ] || { cat "$W/ask3"; fail "prefork: the respawned worker $fresh never answered"; }
	ask b >>"$W/ask3"
done
! grep -v '^value: None pid' "$W/ask3" || fail "prefork: respawned worker not healed"
[ "$(grep -c 'crash seen' "$W/prefork.watch")" -eq "$crashes" ] ||
	{ cat "$W/prefork.watch"; fail "prefork: a new crash after the respawn"; }
detach prefork
[ "$(patches "$S")" -eq 1 ] || fail "prefork: not one patch stored"
# Detached: no agent serves any process of the tree any more.
for p in $master $(cat "$W/pf.workers"); do
	[ ! -S "/tmp/suture-$(id -u)/agent-$p.sock" ] || fail "prefork: pid $p still has a channel"
done
ok "prefork: healed in flight, master patched, a respawned worker healed without a crash, all detached"

# suture-audit --pid MASTER: the tree's patches and live hits; rollback
# reaches every process and the store.
"$AUDIT" --pid "$master" --store "$S" >"$W/audit" 2>&1 || { cat "$W/audit"; fail "audit: failed"; }
[ "$(grep -c '^pid [0-9]*: ' "$W/audit")" -eq 3 ] || { cat "$W/audit"; fail "audit: not 3 processes"; }
grep -q "^3 processes in the tree of pid $master\$" "$W/audit" || { cat "$W/audit"; fail "audit: tree line"; }
[ "$(grep -c '^live    __main__.handle:' "$W/audit")" -eq 3 ] || { cat "$W/audit"; fail "audit: not live in all 3"; }
grep -q 'fired [0-9]* time(s) in this process' "$W/audit" || { cat "$W/audit"; fail "audit: no live hits"; }
"$AUDIT" --pid "$master" --store "$S" --json >"$W/audit.json" 2>&1 || fail "audit --json failed"
"$PYTHON" -c 'import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["tree"]) == 2 and all(t["patches"] for t in d["tree"]), d' "$W/audit.json" ||
	{ cat "$W/audit.json"; fail "audit --json: the tree"; }
"$AUDIT" --pid "$master" --store "$S" rollback --all >"$W/rollback" 2>&1 ||
	{ cat "$W/rollback"; fail "rollback failed"; }
[ "$(grep -c '^pid [0-9]*: ' "$W/rollback")" -eq 3 ] || { cat "$W/rollback"; fail "rollback: not 3 processes"; }
[ "$(patches "$S")" -eq 0 ] || fail "rollback: still stored"
"$AUDIT" --pid "$master" --store "$S" >"$W/audit2" 2>&1
[ "$(grep -c '^live ' "$W/audit2")" -eq 0 ] || { cat "$W/audit2"; fail "rollback: still live"; }
ask b >"$W/ask4"
! grep -q '^value: None' "$W/ask4" || { cat "$W/ask4"; fail "rollback: the fallback is still given"; }
ok "suture-audit --pid MASTER: 3 processes, live hits, rollback reached all"
echo PASS
