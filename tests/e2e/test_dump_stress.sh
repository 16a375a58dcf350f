#!/bin/sh
# 1000 dumps (with locals) against a busy 4-thread target: every dump
# succeeds, every 100th is checked (5 threads, each worker inside work(),
# at most one GIL holder), the target stays alive and its own checksums
# stay correct throughout.
set -u
. "$SUTURE_ROOT/tests/fixtures/dump/lib.sh"
N=${DUMP_STRESS_N:-1000}

READY_SECONDS=30 start_bg busy "$WORK/ready" "$PYTHON" "$FIX/busy.py" "$WORK/ready" "$WORK/stop"
PID=$BG

cat >"$WORK/check.py" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
ts = d["threads"]
assert len(ts) == 5, "threads: %d" % len(ts)
workers = [t for t in ts if any(f["qualname"] == "work" for f in t["frames"])]
assert len(workers) == 4, "workers in work(): %d" % len(workers)
for t in workers:
    names = [f["qualname"] for f in t["frames"]]
    assert names[-1] == "Thread._bootstrap", names
    w = [f for f in t["frames"] if f["qualname"] == "work"][0]
    loc = {l["name"]: l["repr"] for l in w["locals"]}
    assert loc["idx"] in ("0", "1", "2", "3"), loc
assert sum(t["holds_gil"] for t in ts) <= 1
PY

i=0
while [ $i -lt "$N" ]; do
	i=$((i + 1))
	if [ $((i % 100)) -eq 0 ]; then
		"$SA" --pid "$PID" --dump --locals --json >"$WORK/d.json" 2>"$WORK/err" ||
			fail "dump $i exited $?: $(cat "$WORK/err")"
		"$PYTHON" "$WORK/check.py" "$WORK/d.json" || fail "dump $i content wrong"
	else
		"$SA" --pid "$PID" --dump --locals >/dev/null 2>"$WORK/err" ||
			fail "dump $i exited $?: $(cat "$WORK/err")"
	fi
	kill -0 "$PID" 2>/dev/null || fail "target died after dump $i: $(cat "$WORK/busy.out" "$WORK/busy.err")"
done
touch "$WORK/stop"
wait_pid "$PID" 30
rc=$?
[ $rc -eq 0 ] || fail "target exited $rc: $(cat "$WORK/busy.out" "$WORK/busy.err")"
grep -q '^ok [0-9]' "$WORK/busy.out" || fail "target output: $(cat "$WORK/busy.out")"
echo "ok: $N dumps; target: $(cat "$WORK/busy.out")"
