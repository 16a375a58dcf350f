#!/bin/sh
# A large dump is written as it goes (issue 15, item 9): suture-attach
# --dump --locals --json of a target with 4 threads 1500 frames deep and 16
# long locals a frame (tests/fixtures/dump/big.py, about 27 MB of JSON)
# must not hold the document in memory: its peak RSS stays within 16 MB of
# the text dump's (building the document tree took about 100 MB more). The
# JSON parses, every frame is there, and strings with quotes, backslashes,
# tabs and non-ASCII text come back exact.
set -u
. "$SUTURE_ROOT/tests/fixtures/dump/lib.sh"
DEPTH=${BIG_DEPTH:-1500}

"$PYTHON" "$FIX/big.py" "$WORK/ready" "$DEPTH" >"$WORK/target.out" 2>&1 &
P=$!
PIDS="$PIDS $P"
wait_for 60 test -s "$WORK/ready" || fail "target not ready: $(cat "$WORK/target.out")"

# rss OUT ARGS...: suture-attach ARGS > OUT; prints its peak RSS in KiB.
rss() {
	_out=$1
	shift
	"$PYTHON" - "$_out" "$SA" "$@" <<'PY'
import resource, subprocess, sys
with open(sys.argv[1], "w") as out:
    rc = subprocess.run(sys.argv[2:], stdout=out).returncode
if rc:
    sys.exit("suture-attach exit %d" % rc)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
}
t=$(rss "$WORK/dump.txt" --pid "$P" --dump --locals) || fail "text dump"
j=$(rss "$WORK/dump.json" --pid "$P" --dump --locals --json) || fail "JSON dump"
echo "peak RSS: text $t KiB, JSON $j KiB; sizes $(wc -c <"$WORK/dump.txt") and $(wc -c <"$WORK/dump.json") bytes"
[ "$j" -le $((t + 16384)) ] || fail "the JSON dump took $j KiB, the text dump $t KiB"
ok "the JSON dump is streamed"

"$PYTHON" - "$WORK/dump.json" "$DEPTH" <<'PY' || fail "JSON content"
import json, sys
doc = json.load(open(sys.argv[1]))
depth = int(sys.argv[2])
deep = [t for t in doc["threads"] if sum(f["qualname"] == "deep" for f in t["frames"]) == depth + 1]
assert len(deep) == 4, [(t["name"], len(t["frames"])) for t in doc["threads"]]
a1 = repr("é\t\"q\"\\ " * 25)
for t in deep:
    f = [f for f in t["frames"] if f["qualname"] == "deep"][0]
    loc = {l["name"]: l["repr"] for l in f["locals"]}
    assert loc["a1"][:60] == a1[:60], (loc["a1"][:60], a1[:60])
    assert loc["tag"] in ("'t0'", "'t1'", "'t2'", "'t3'"), loc["tag"]
PY
ok "the JSON holds every frame, escapes exact"
kill -0 "$P" || fail "target died"
echo PASS
