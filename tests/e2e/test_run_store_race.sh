#!/bin/sh
# Two programs heal the same site at once: a/app.py and b/app.py, one
# __main__.load each, crash on one line with one guard, so both patches want
# the name __main__.load:4:key_guard. Both suture-run are released together
# (each script waits for a file before it crashes) and store on one store;
# the name is chosen under the store's lock (store__add_unique), so both
# patches are kept, the second named apart with "@<hash>", in each of 20
# rounds.
set -u
: "${BUILD:?BUILD must be set (absolute build dir)}"
: "${PYTHON:=/usr/bin/python3.11}"
RUN="$BUILD/bin/suture-run"
AUDIT="$BUILD/bin/suture-audit"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
W=$(mktemp -d /tmp/suture-run-race.XXXXXX)
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
ROUNDS=${ROUNDS:-20}

mkdir "$W/a" "$W/b"
for d in a b; do
	cat >"$W/$d/app.py" <<'PY'
import os, sys, time

def load(cfg):
    timeout = cfg["timeout"]
    return timeout

open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[1]):
    time.sleep(0.002)
print("timeout", load({"retries": 3}))
PY
done

r=0
while [ $r -lt $ROUNDS ]; do
	S="$W/s$r"
	GO="$W/go$r"
	pids=""
	for d in a b; do
		"$RUN" --python "$PYTHON" --store "$S" "$W/$d/app.py" "$GO" "$W/ready$r.$d" \
			>"$W/$r.$d.out" 2>"$W/$r.$d.err" &
		pids="$pids $!"
	done
	PIDS="$PIDS $pids"
	n=0
	while ! [ -e "$W/ready$r.a" ] || ! [ -e "$W/ready$r.b" ]; do
		n=$((n + 1)); [ $n -gt 3000 ] && fail "round $r: the scripts never started"; sleep 0.01
	done
	touch "$GO"
	for p in $pids; do
		wait $p || { cat "$W/$r.a.err" "$W/$r.b.err"; fail "round $r: a run failed"; }
	done
	"$AUDIT" --store "$S" --json >"$W/$r.json" || fail "round $r: audit"
	"$PYTHON" - "$W/$r.json" "$W/a/app.py" "$W/b/app.py" <<'PY' ||
import json, sys
p = json.load(open(sys.argv[1]))["patches"]
progs = sorted(x["program"] for x in p)
assert progs == sorted(sys.argv[2:4]), progs
names = sorted(x["name"] for x in p)
assert names[0] == "__main__.load:4:key_guard", names
assert names[1].startswith("__main__.load:4:key_guard@"), names
PY
		{ cat "$W/$r.json" "$W/$r.a.err" "$W/$r.b.err"; fail "round $r: a patch was lost"; }
	r=$((r + 1))
done
echo "ok: both patches kept in $ROUNDS/$ROUNDS rounds of same-name heals at once"
echo PASS
