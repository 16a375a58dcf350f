#!/bin/sh
# The store against another user (docs/formats/store.md, "Safety rules";
# suture-audit(1), FILES): root's suture-run heals a crash in a directory an
# unprivileged user can write, and that user has planted
#   1. ".suture -> a root-owned directory": the store is refused, one line
#      naming the path and the cause, and nothing is written there;
#   2. "code -> a root-owned directory" in a store that was world writable
#      once (then fixed with chmod go-w, as the refusal says): the patch is
#      stored, its code file refused, nothing written through the link;
#   3. a hard link to the user's file at the code file's old temporary name
#      "<hex>.json.tmp.<pid>", in a code/ the user owns or others can write:
#      code/ is refused and the linked file keeps its bytes.
# Needs root and useradd (a test user, removed at the end); else skipped
# with exit status 77.
set -u
: "${BUILD:?BUILD must be set (absolute build dir)}"
: "${PYTHON:=/usr/bin/python3.11}"
: "${SUTURE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
RUN="$BUILD/bin/suture-run"
AUDIT="$BUILD/bin/suture-audit"
FIX="$SUTURE_ROOT/tests/fixtures/run"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root: a root suture-run against an unprivileged user"
for c in useradd userdel runuser; do
	command -v $c >/dev/null 2>&1 || skip "no $c on this machine"
done
U="suture-t$$"
W=$(mktemp -d /tmp/suture-hostile.XXXXXX)
PIDS=""
USER_MADE=0
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; [ $USER_MADE -eq 1 ] && userdel "$U" 2>/dev/null; rm -rf "$W"' EXIT
useradd -M -N -s /bin/sh "$U" >"$W/useradd.err" 2>&1 || skip "useradd failed: $(head -1 "$W/useradd.err")"
USER_MADE=1
UID_U=$(id -u "$U")
as_user() { runuser -u "$U" -- "$@"; }
chmod 755 "$W"

# The user's working directory, and a directory of root's the links lead to.
mkdir "$W/cwd" "$W/rootdir"
chown "$U" "$W/cwd"
echo keep >"$W/rootdir/keep"
cp "$FIX/key_app.py" "$W/cwd/app.py"
# Crashes once the file named by its argument exists.
cat >"$W/cwd/wait.py" <<'EOF'
import os, sys, time

def load(cfg):
    timeout = cfg["timeout"]
    return timeout

while not os.path.exists(sys.argv[1]):
    time.sleep(0.005)
print("timeout", load({"retries": 3}))
EOF
untouched() { # what
	[ "$(ls -A "$W/rootdir")" = keep ] && [ "$(cat "$W/rootdir/keep")" = keep ] ||
		{ ls -la "$W/rootdir"; fail "$1: written through the link"; }
}

# --- 1. .suture -> root's directory -----------------------------------------------
as_user ln -s "$W/rootdir" "$W/cwd/.suture" || fail "the user could not plant the link"
(cd "$W/cwd" && "$RUN" --python "$PYTHON" app.py) >"$W/1.out" 2>"$W/1.err"
rc=$?
[ $rc -eq 0 ] || { cat "$W/1.err"; fail "default store: the script's exit status $rc, not 0"; }
grep -q "^timeout None$" "$W/1.out" || { cat "$W/1.out" "$W/1.err"; fail "the crash was not healed"; }
grep -qx "\[suture\] store: $W/cwd/\.suture: is a symbolic link (to $W/rootdir): refusing it.*" "$W/1.err" ||
	{ cat "$W/1.err"; fail "default store: no one-line refusal naming .suture and the link"; }
untouched "default store"
"$RUN" --python "$PYTHON" --store "$W/cwd/.suture" "$W/cwd/app.py" >/dev/null 2>"$W/1b.err"
grep -qx "\[suture\] store: $W/cwd/\.suture: is a symbolic link (to $W/rootdir): refusing it.*" \
	"$W/1b.err" || { cat "$W/1b.err"; fail "--store: no refusal"; }
untouched "--store"
"$AUDIT" --store "$W/cwd/.suture" >/dev/null 2>"$W/1c.err"
rc=$?
[ $rc -eq 1 ] || { cat "$W/1c.err"; fail "suture-audit on the link: exit $rc, not 1"; }
[ "$(wc -l <"$W/1c.err")" -eq 1 ] && grep -q "$W/cwd/\.suture: is a symbolic link" "$W/1c.err" ||
	{ cat "$W/1c.err"; fail "suture-audit: not one line naming the path and the cause"; }
echo "ok: a symbolic link at .suture is refused, its target untouched"

# --- 2. code -> root's directory -------------------------------------------------------
mkdir "$W/s2"
chmod 777 "$W/s2"
as_user ln -s "$W/rootdir" "$W/s2/code" || fail "the user could not plant code/"
chmod go-w "$W/s2"
"$RUN" --python "$PYTHON" --store "$W/s2" "$W/cwd/app.py" >/dev/null 2>"$W/2.err" ||
	{ cat "$W/2.err"; fail "code/ link: the run failed"; }
grep -q "^\[suture\] stored patch __main__.load:4:key_guard in $W/s2$" "$W/2.err" ||
	{ cat "$W/2.err"; fail "code/ link: the patch itself was not stored"; }
grep -qx "\[suture\] store: $W/s2/code: is a symbolic link (to $W/rootdir): refusing it.*(no code file for explain)" \
	"$W/2.err" || { cat "$W/2.err"; fail "code/ link: no one-line refusal"; }
untouched "code/"
echo "ok: a symbolic link at code/ is refused, its target untouched"

# --- 3. a hard link at the old temporary name ---------------------------------------------
# The code id of wait.py's load, from a run in a store of root's own.
touch "$W/go"
"$RUN" --python "$PYTHON" --store "$W/s0" "$W/cwd/wait.py" "$W/go" >/dev/null 2>"$W/s0.err" ||
	{ cat "$W/s0.err"; fail "scratch run"; }
HEX=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["patches"][0]["code_id"].split(":")[1])' \
	"$W/s0/index.json") || fail "no code id"
[ -e "$W/s0/code/$HEX.json" ] || fail "the scratch run saved no code/$HEX.json"
rm -f "$W/go"
echo precious >"$W/victim"
chown "$U" "$W/victim"
chmod 644 "$W/victim"
for how in owned writable; do
	S="$W/s3.$how"
	mkdir "$S"
	if [ $how = owned ]; then
		# Made by the user while the store was open to everyone.
		chmod 777 "$S"
		as_user mkdir "$S/code" || fail "the user could not make code/"
		chmod go-w "$S"
		cause="owned by uid $UID_U, not by you (uid 0)"
	else
		mkdir "$S/code"
		chmod 1777 "$S/code"
		cause="world writable (mode 1777)"
	fi
	"$RUN" --python "$PYTHON" --store "$S" "$W/cwd/wait.py" "$W/go" >/dev/null 2>"$W/3.$how.err" &
	RP=$!
	PIDS="$PIDS $RP"
	as_user ln "$W/victim" "$S/code/$HEX.json.tmp.$RP" || fail "$how: the user could not plant the link"
	touch "$W/go"
	wait $RP || { cat "$W/3.$how.err"; fail "$how code/: the run failed"; }
	rm -f "$W/go"
	grep -qx "\[suture\] store: $S/code: $cause.*(no code file for explain)" "$W/3.$how.err" ||
		{ cat "$W/3.$how.err"; fail "$how code/: no one-line refusal"; }
	[ "$(cat "$W/victim")" = precious ] || fail "$how code/: the hard-linked file was overwritten"
	[ "$(ls -A "$S/code")" = "$HEX.json.tmp.$RP" ] || { ls -la "$S/code"; fail "$how code/: written in"; }
	echo "ok: code/ $how by others is refused, the hard-linked file untouched"
done
echo PASS
