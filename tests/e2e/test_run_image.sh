#!/bin/sh
# The boot image (docs/formats/boot-image.md; issue 16 item 12): after a run
# that loaded the stored patches the usual way, suture-run keeps what it sent
# and the next runs' boot hook installs it itself. Each run must say and do
# exactly what a run that derives every patch says and does
# (SUTURE_RUN_NO_IMAGE=1): the same lines, output and exit status, under
# other hash seeds (a frozenset constant), for a nested function, a method,
# two guards stacked in one function and a second module; a guard's firings are stored and leave the image in
# use; a rollback, an edited function, a damaged image, --dry-run and
# --verbose each go the usual way, and the image comes back after.
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
AUDIT="$BUILD/bin/suture-audit"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
unset SUTURE_STORE VIRTUAL_ENV SUTURE_RUN_NO_IMAGE
S="$W/store"
mkdir -p "$W/pkg"
: >"$W/pkg/__init__.py"
cat >"$W/pkg/mod.py" <<'PY'
def scale(d):
    return d["factor"] * 2
PY
cat >"$W/job.py" <<'PY'
import sys
import threading
from pkg.mod import scale

def kind(d):
    return d["kind"] in {"alpha", "beta", "gamma"}

class Loader:
    def load(self, cfg):
        return cfg["timeout"]

def outer(d):
    def inner():
        return d["inner"]
    return inner()

def pair(d):
    a = d["a"]
    b = d["b"]
    return (a, b)

calls = [(kind, {}), (Loader().load, {}), (outer, {}), (scale, {}), (pair, {})]
if sys.argv[1] == "crash":
    threading.excepthook = lambda a: None
    for f, a in calls:
        t = threading.Thread(target=f, args=(a,))
        t.start()
        t.join()
else:
    good = [(kind, {"kind": "beta"}), (Loader().load, {"timeout": 3}),
            (outer, {"inner": 4}), (scale, {"factor": 5}), (pair, {"a": 1, "b": 2})]
    print([f(a) for f, a in good])
    if sys.argv[1] == "bad":
        print([f(a) for f, a in calls])
PY
cd "$W" || fail "cd"

"$RUN" --python "$PYTHON" --store "$S" job.py crash </dev/null >/dev/null 2>"$W/0.err" ||
	{ cat "$W/0.err"; fail "crash run: exit"; }
n=$(grep -c "^\[suture\] stored patch" "$W/0.err")
[ "$n" -eq 6 ] || { cat "$W/0.err"; fail "crash run: $n patches stored, not 6"; }

# run NAME ARGS...: the program's stdout, its [suture] lines sorted, the exit
# status and the agent's boot lines.
run() {
	_n=$1
	shift
	SUTURE_AGENT_VERBOSE=1 "$RUN" --python "$PYTHON" --store "$S" "$@" </dev/null \
		>"$W/$_n.out" 2>"$W/$_n.all"
	echo $? >"$W/$_n.rc"
	grep '^\[suture\]' "$W/$_n.all" | sort >"$W/$_n.err"
}
same_as() { # NAME REF: what the user sees is the same
	cmp -s "$W/$1.out" "$W/$2.out" && cmp -s "$W/$1.err" "$W/$2.err" &&
		cmp -s "$W/$1.rc" "$W/$2.rc" ||
		{
			diff "$W/$2.err" "$W/$1.err"
			diff "$W/$2.out" "$W/$1.out"
			cat "$W/$1.all"
			fail "$1: not what $2 said and did"
		}
}
from_image() { # NAME (its .all) or FILE.err
	case "$1" in
	*.err) grep -c "patches installed from the image" "$W/$1" ;;
	*) grep -c "patches installed from the image" "$W/$1.all" ;;
	esac
}

# The reference: every patch derived.
SUTURE_RUN_NO_IMAGE=1 run ref job.py quiet
[ "$(from_image ref)" -eq 0 ] || fail "SUTURE_RUN_NO_IMAGE=1 used an image"
[ "$(grep -c '^\[suture\] already healed:' "$W/ref.err")" -eq 6 ] || { cat "$W/ref.all"; fail "ref: not 6 loaded"; }
ls "$S"/boot-*.img >/dev/null 2>&1 && fail "SUTURE_RUN_NO_IMAGE=1 wrote an image"

run first job.py quiet
same_as first ref
[ "$(from_image first)" -eq 0 ] || fail "first: an image before any was written"
ls "$S"/boot-*.img >/dev/null 2>&1 || { cat "$W/first.all"; fail "no image written after a clean load"; }
ok "a load the usual way writes the image (the reference run with SUTURE_RUN_NO_IMAGE=1 did not)"

for seed in 1 2 3; do
	PYTHONHASHSEED=$seed run "img$seed" job.py quiet
	same_as "img$seed" ref
	grep -q "boot: 5 of 5 patches installed from the image" "$W/img$seed.all" &&
		grep -q "boot: 1 of 1 patches installed from the image" "$W/img$seed.all" ||
		{ cat "$W/img$seed.all"; fail "seed $seed: not installed from the image"; }
done
ok "the hook installs from the image (two modules, a frozenset constant under three hash seeds, a method, a nested function, two guards stacked): the same lines, output and status"

# A guard fires: the same answer, its firing stored, the image still used.
"$AUDIT" --store "$S" --json >"$W/audit0.json" || fail "suture-audit --json"
SUTURE_RUN_NO_IMAGE=1 run badref job.py bad
run bad job.py bad
same_as bad badref
[ "$(from_image bad)" -eq 2 ] || { cat "$W/bad.all"; fail "bad: not from the image"; }
grep -qx "\[False, None, None, None, (None, None)\]" "$W/bad.out" || { cat "$W/bad.out" "$W/bad.all"; fail "bad: not healed"; }
"$AUDIT" --store "$S" --json >"$W/audit.json" || fail "suture-audit --json"
"$PYTHON" - "$W/audit0.json" "$W/audit.json" <<'PY' || fail "firings of patches installed from the image not stored"
import json, sys
hits = [{p["name"]: p["hits"] for p in json.load(open(f))["patches"]} for f in sys.argv[1:]]
# the reference run and the image run each fired every guard once
assert len(hits[0]) == 6 and all(hits[1][n] == hits[0][n] + 2 for n in hits[0]), hits
PY
run after_hits job.py quiet
same_as after_hits ref
[ "$(from_image after_hits)" -eq 2 ] || { cat "$W/after_hits.all"; fail "firings made the image old"; }
ok "a guard installed from the image fires; its firings are stored and the image stays in use"

# --json: the same "loaded" events (the usual way's, then the image's).
SUTURE_RUN_NO_IMAGE=1 "$RUN" --python "$PYTHON" --store "$S" --json="$W/ev_ref.json" job.py quiet \
	</dev/null >/dev/null 2>&1 || fail "--json, derived: exit"
SUTURE_AGENT_VERBOSE=1 "$RUN" --python "$PYTHON" --store "$S" --json="$W/ev_img.json" job.py quiet \
	</dev/null >/dev/null 2>"$W/ev_img.err" || fail "--json, image: exit"
[ "$(from_image ev_img.err)" -eq 2 ] || { cat "$W/ev_img.err"; fail "--json: not from the image"; }
"$PYTHON" - "$W/ev_ref.json" "$W/ev_img.json" <<'PY' || fail "--json: the image's loaded events differ"
import json, sys
def loaded(f):
    ev = [json.loads(line) for line in open(f)]
    return sorted((e["name"], e["guard"], e["target"], e["fallback"], e["function"], e["line"])
                  for e in ev if e.get("event") == "loaded")
a, b = loaded(sys.argv[1]), loaded(sys.argv[2])
assert len(a) == 6 and a == b, (a, b)
PY
ok "--json: the same loaded events from the image"

# --dry-run and --verbose derive.
run dry --dry-run job.py quiet
[ "$(from_image dry)" -eq 0 ] || fail "--dry-run used the image"
grep -q "dry run: would load" "$W/dry.err" || { cat "$W/dry.all"; fail "--dry-run: no derivation"; }
run verbose --verbose job.py quiet
[ "$(from_image verbose)" -eq 0 ] || fail "--verbose used the image"
ok "--dry-run and --verbose derive every patch"

# A rollback changes the index: the usual way, without the patch.
"$AUDIT" --store "$S" rollback Loader.load >/dev/null 2>&1 || fail "rollback"
SUTURE_RUN_NO_IMAGE=1 run rbref job.py quiet
run rb job.py quiet
same_as rb rbref
[ "$(from_image rb)" -eq 0 ] || { cat "$W/rb.all"; fail "rollback: the old image was used"; }
[ "$(grep -c '^\[suture\] already healed:' "$W/rb.err")" -eq 5 ] || { cat "$W/rb.all"; fail "rollback: not 5 loaded"; }
run rb2 job.py quiet
same_as rb2 rbref
[ "$(from_image rb2)" -eq 2 ] || { cat "$W/rb2.all"; fail "after a rollback: no new image"; }
ok "after a rollback the image is not used; the next one is written without the patch"

# An edited function in the second module: that section goes the usual way
# (stale, as without an image), the script's still comes from the image.
cat >"$W/pkg/mod.py" <<'PY'
def scale(d):
    factor = d["factor"]
    return factor * 2
PY
cp "$S/index.json" "$W/index.before-edit"
run edited job.py quiet
cp "$W/index.before-edit" "$S/index.json" # the same start for the reference
SUTURE_RUN_NO_IMAGE=1 run editref job.py quiet
same_as edited editref
grep -q "boot: 4 of 4 patches installed from the image" "$W/edited.all" ||
	{ cat "$W/edited.all"; fail "edited: the script's section not from the image"; }
grep -q "image: scale changed: not used" "$W/edited.all" ||
	{ cat "$W/edited.all"; fail "edited: the changed function not noticed"; }
grep -q "stale: .*scale" "$W/edited.err" || { cat "$W/edited.all"; fail "edited: not reported stale"; }
ok "an edited function: its module loads the usual way (stale, as without the image); the others from the image"

# A damaged image: not used, the patches load the usual way, a good one is
# written again.
img=$(ls "$S"/boot-*.img)
run pre job.py quiet
sz=$(wc -c <"$img")
printf 'X' | dd of="$img" bs=1 seek=$((sz / 2)) conv=notrunc 2>/dev/null
run damaged job.py quiet
same_as damaged pre
[ "$(from_image damaged)" -eq 0 ] || { cat "$W/damaged.all"; fail "a damaged image was used"; }
run repaired job.py quiet
same_as repaired pre
grep -q "boot: 4 of 4 patches installed from the image" "$W/repaired.all" ||
	{ cat "$W/repaired.all"; fail "no good image written after a damaged one"; }
ok "a damaged image is not used and is replaced"

# Another's image: the store's rules (a group-writable file is refused).
chmod 664 "$img"
run foreign job.py quiet
[ "$(from_image foreign)" -eq 0 ] || fail "a group-writable image was used"
same_as foreign pre
echo PASS
