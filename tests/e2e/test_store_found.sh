#!/bin/sh
# The store is found from the program, not the working directory (issue 16
# item 5): from the script's directory up, the first .suture of ours (as git
# finds .git), else .suture beside the script's top package; said when the
# first patch makes it. Run from another directory, a script heals once and the next run
# uses the stored patch; a --watch started elsewhere stores where the next
# run looks; suture-audit finds it from a subdirectory; --store and
# $SUTURE_STORE still choose; another user's .suture up the tree is passed
# over.
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
ATTACH="$BUILD/bin/suture-attach"
AUDIT="$BUILD/bin/suture-audit"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
unset SUTURE_STORE VIRTUAL_ENV
mkdir -p "$W/proj/app/sub" "$W/proj/pkg/sub" "$W/proj/app2" "$W/elsewhere"
cat >"$W/proj/app/job.py" <<'PY'
import os, sys, time

def load(cfg):
    return cfg["timeout"]

def port(cfg):
    return cfg["port"]

d = sys.argv[1] if len(sys.argv) > 1 else None
if d:
    with open(d + "/ready", "w") as f:
        f.write(str(os.getpid()))
    while not os.path.exists(d + "/go"):
        time.sleep(0.01)
    print("port", port({}), flush=True)
else:
    print("timeout", load({}), flush=True)
PY

cd "$W/elsewhere" || fail "cd"
"$RUN" --python "$PYTHON" ../proj/app/job.py </dev/null >"$W/1.out" 2>"$W/1.err" ||
	{ cat "$W/1.err"; fail "first run: exit"; }
grep -qx "timeout None" "$W/1.out" || { cat "$W/1.err"; fail "first run: not healed"; }
grep -qx "\[suture\] new store $W/proj/app/\.suture, found from the program (the first \.suture up from its directory, else beside its top package); --store or \$SUTURE_STORE choose another" \
	"$W/1.err" || { cat "$W/1.err"; fail "first run: the store's place not said"; }
[ -d "$W/proj/app/.suture" ] || fail "no store beside the script"
[ -e "$W/elsewhere/.suture" ] && fail "a store was made in the working directory"
ok "run from another directory: healed, stored beside the script, said"

cd / || fail "cd /"
"$RUN" --python "$PYTHON" "$W/proj/app/job.py" </dev/null >"$W/2.out" 2>"$W/2.err" || { cat "$W/2.err"; fail "second run: exit"; }
grep -q "^\[suture\] already healed: key_guard cfg\['timeout'\]" "$W/2.err" ||
	{ cat "$W/2.err"; fail "second run from /: the stored patch was not used"; }
grep -q "new store" "$W/2.err" && { cat "$W/2.err"; fail "second run: the place said again"; }
grep -q "^\[suture\] stored patch" "$W/2.err" && { cat "$W/2.err"; fail "second run: healed again"; }
ok "the second run, from /, uses the stored patch"

# --watch started from another directory stores where the next run looks.
mkdir -p "$W/t"
(cd "$W/proj/app" && exec "$PYTHON" job.py "$W/t") >"$W/t/out" 2>"$W/t/err" &
TP=$!
track "$TP"
wait_file "$W/t/ready" 10
(cd "$W/elsewhere" && exec "$ATTACH" --pid "$TP" --watch) 2>"$W/t/watch.err" &
TW=$!
track "$TW"
wait_grep "^\[suture\] watching pid $TP\$" "$W/t/watch.err" 20
touch "$W/t/go"
wait_pid "$TP" 30 || { cat "$W/t/out" "$W/t/watch.err"; fail "watched job failed"; }
kill -INT "$TW" 2>/dev/null
wait_pid "$TW" 20 || { cat "$W/t/watch.err"; fail "--watch exit status"; }
grep -qx "port None" "$W/t/out" || { cat "$W/t/watch.err"; fail "--watch: not healed"; }
grep -q "^\[suture\] stored patch __main__.port:.* in $W/proj/app/\.suture\$" "$W/t/watch.err" ||
	{ cat "$W/t/watch.err"; fail "--watch: not stored beside the script"; }
[ -e "$W/elsewhere/.suture" ] && fail "--watch made a store in its working directory"
ok "--watch from another directory stores beside the target's script"

# suture-audit from a subdirectory finds it, as git would.
(cd "$W/proj/app/sub" && "$AUDIT") >"$W/a.out" 2>"$W/a.err" || { cat "$W/a.err"; fail "suture-audit: exit"; }
grep -q "__main__.load:4:key_guard" "$W/a.out" && grep -q "__main__.port:7:key_guard" "$W/a.out" ||
	{ cat "$W/a.out" "$W/a.err"; fail "suture-audit from a subdirectory: not the store"; }
ok "suture-audit in a subdirectory lists the store up the tree"

# A script inside a package: the store beside the top package; another
# script of the tree then finds that store walking up.
: >"$W/proj/pkg/__init__.py"
: >"$W/proj/pkg/sub/__init__.py"
sed -n '1,5p' "$W/proj/app/job.py" >"$W/proj/pkg/sub/tool.py"
echo 'print("timeout", load({}))' >>"$W/proj/pkg/sub/tool.py"
cp "$W/proj/pkg/sub/tool.py" "$W/proj/app2/other.py"
"$RUN" --python "$PYTHON" "$W/proj/pkg/sub/tool.py" </dev/null >"$W/p.out" 2>"$W/p.err" || { cat "$W/p.err"; fail "package script"; }
grep -q "new store $W/proj/\.suture, " "$W/p.err" || { cat "$W/p.err"; fail "package script: not beside the top package"; }
"$RUN" --python "$PYTHON" "$W/proj/app2/other.py" </dev/null >"$W/o.out" 2>"$W/o.err" || { cat "$W/o.err"; fail "app2"; }
grep -q "^\[suture\] stored patch .* in $W/proj/\.suture\$" "$W/o.err" || { cat "$W/o.err"; fail "app2: the store up the tree not found"; }
ok "a package's script: .suture beside the top package, found from app2/ up"

# --store and $SUTURE_STORE still choose.
SUTURE_STORE="$W/envstore" "$RUN" --python "$PYTHON" "$W/proj/app/job.py" </dev/null >"$W/e.out" 2>"$W/e.err" ||
	{ cat "$W/e.err"; fail "SUTURE_STORE run"; }
grep -q "^\[suture\] stored patch .* in $W/envstore\$" "$W/e.err" || { cat "$W/e.err"; fail "\$SUTURE_STORE not used"; }
"$RUN" --python "$PYTHON" --store "$W/optstore" "$W/proj/app/job.py" </dev/null >"$W/s.out" 2>"$W/s.err" ||
	{ cat "$W/s.err"; fail "--store run"; }
grep -q "^\[suture\] stored patch .* in $W/optstore\$" "$W/s.err" || { cat "$W/s.err"; fail "--store not used"; }
ok "--store and \$SUTURE_STORE still choose"

# Another user's .suture up the tree is not ours: passed over.
if id nobody >/dev/null 2>&1; then
	mkdir -p "$W/shared/.suture" "$W/shared/x"
	chown nobody "$W/shared/.suture"
	cp "$W/proj/app2/other.py" "$W/shared/x/job.py"
	"$RUN" --python "$PYTHON" "$W/shared/x/job.py" </dev/null >"$W/n.out" 2>"$W/n.err" || { cat "$W/n.err"; fail "shared"; }
	grep -q "new store $W/shared/x/\.suture, " "$W/n.err" || { cat "$W/n.err"; fail "another user's .suture was taken"; }
	ok "another user's .suture up the tree is passed over"
else
	echo "absent: user nobody: another user's .suture not tested"
fi
echo PASS
