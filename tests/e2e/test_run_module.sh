#!/bin/sh
# What people type (issue 16 item 4): `suture-run -m pkg args`, and a whole
# interpreter command line after `--`: `python3.11 [-X ...|-u|-O] -m mod
# args` or `python3.11 [options] script.py args`, passed as typed (the
# program sees the flags and its arguments); the module's file is the
# program's identity (found in the working directory, or $PYTHONPATH from
# elsewhere), so the next run loads its patch. -c, a script on stdin, and
# --python with an interpreter after the options are refused (exit 2).
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
unset VIRTUAL_ENV PYTHONPATH SUTURE_STORE PYTHONDONTWRITEBYTECODE PYTHONOPTIMIZE PYTHONUTF8
# A bare python3.11 on PATH that is the interpreter under test.
mkdir -p "$W/pybin" "$W/app/pkg" "$W/elsewhere"
ln -s "$PYTHON" "$W/pybin/python3.11"
PATH="$W/pybin:$PATH"
export PATH

cat >"$W/app/pkg/__init__.py" <<'PY'
PY
cat >"$W/app/pkg/__main__.py" <<'PY'
import sys

def load(cfg):
    return cfg["timeout"]

print("main", __name__, sys.argv[1:], "O=%d B=%d utf8=%d" % (sys.flags.optimize,
      sys.flags.dont_write_bytecode, sys.flags.utf8_mode))
print("timeout", load({}))
PY
sed 's/^print("main"/print("mod"/' "$W/app/pkg/__main__.py" >"$W/app/mod.py"

# suture-run -m pkg a b, from the package's directory: healed, then loaded.
(cd "$W/app" && "$RUN" --store "$W/s1" -m pkg a b </dev/null >"$W/m1.out" 2>"$W/m1.err") ||
	{ rc=$?; cat "$W/m1.out" "$W/m1.err"; fail "-m pkg: exit $rc"; }
grep -qx "main __main__ \['a', 'b'\] O=0 B=0 utf8=0" "$W/m1.out" || { cat "$W/m1.out"; fail "-m pkg: not run as python -m"; }
grep -qx "timeout None" "$W/m1.out" || { cat "$W/m1.err"; fail "-m pkg: not healed"; }
grep -q "^\[suture\] stored patch __main__.load:4:key_guard" "$W/m1.err" || { cat "$W/m1.err"; fail "-m pkg: not stored"; }
(cd "$W/app" && "$RUN" --store "$W/s1" -m pkg </dev/null >"$W/m2.out" 2>"$W/m2.err") ||
	{ cat "$W/m2.err"; fail "-m pkg again: exit"; }
grep -q "^\[suture\] already healed: key_guard cfg\['timeout'\]" "$W/m2.err" ||
	{ cat "$W/m2.err"; fail "-m pkg again: the stored patch was not loaded"; }
ok "suture-run -m pkg: run as python -m, healed, loaded by the next run"

# From elsewhere, found through PYTHONPATH: the same program, its patch.
(cd "$W/elsewhere" && PYTHONPATH="$W/app" "$RUN" --store "$W/s1" -m pkg </dev/null >"$W/p.out" 2>"$W/p.err") ||
	{ cat "$W/p.err"; fail "-m pkg via PYTHONPATH: exit"; }
grep -q "^\[suture\] already healed: key_guard" "$W/p.err" || { cat "$W/p.err"; fail "-m pkg via PYTHONPATH: patch not loaded"; }
ok "-m pkg through PYTHONPATH from another directory: the same program"

# An interpreter command line with its flags after --.
(cd "$W/app" && "$RUN" --store "$W/s2" -- python3.11 -X utf8 -u -B -O -m mod x \
	</dev/null >"$W/f.out" 2>"$W/f.err") || { rc=$?; cat "$W/f.out" "$W/f.err"; fail "-- python3.11 -X utf8 -u -O -m mod: exit $rc"; }
grep -qx "mod __main__ \['x'\] O=1 B=1 utf8=1" "$W/f.out" || { cat "$W/f.out" "$W/f.err"; fail "flags not passed"; }
grep -qx "timeout None" "$W/f.out" || { cat "$W/f.err"; fail "-- python3.11 ... -m mod: not healed"; }
ok "-- python3.11 -X utf8 -u -B -O -m mod x: flags and arguments passed, healed"

"$RUN" --store "$W/s3" -- "$PYTHON" -B "$W/app/mod.py" y </dev/null >"$W/s.out" 2>"$W/s.err" ||
	{ rc=$?; cat "$W/s.err"; fail "-- python script.py: exit $rc"; }
grep -qx "mod __main__ \['y'\] O=0 B=1 utf8=0" "$W/s.out" || { cat "$W/s.out"; fail "-- python -B script.py: not as typed"; }
grep -qx "timeout None" "$W/s.out" || { cat "$W/s.err"; fail "-- python script.py: not healed"; }
ok "-- $PYTHON -B script.py y"

# A `python -m svc` started without suture, healed by --watch: its patch is
# kept under the module's file, where `suture-run -m svc` finds it.
mkdir -p "$W/app/svc" "$W/t"
: >"$W/app/svc/__init__.py"
cat >"$W/app/svc/__main__.py" <<'PY'
import os, sys, time

def port(cfg):
    return cfg["port"]

d = sys.argv[1] if len(sys.argv) > 1 else None
if d:
    with open(d + "/ready", "w") as f:
        f.write(str(os.getpid()))
    while not os.path.exists(d + "/go"):
        time.sleep(0.01)
print("port", port({}), flush=True)
PY
(cd "$W/app" && exec "$PYTHON" -m svc "$W/t") >"$W/t/out" 2>"$W/t/err" &
TP=$!
track "$TP"
wait_file "$W/t/ready" 10
"$BUILD/bin/suture-attach" --pid "$TP" --watch --store "$W/s5" 2>"$W/t/watch.err" &
TW=$!
track "$TW"
wait_grep "^\[suture\] watching pid $TP\$" "$W/t/watch.err" 20
touch "$W/t/go"
wait_pid "$TP" 30 || { cat "$W/t/watch.err"; fail "python -m svc under --watch failed"; }
kill -INT "$TW" 2>/dev/null
wait_pid "$TW" 20 || { cat "$W/t/watch.err"; fail "--watch of python -m: exit status"; }
grep -q "^\[suture\] stored patch __main__.port:4:key_guard in $W/s5\$" "$W/t/watch.err" ||
	{ cat "$W/t/watch.err"; fail "--watch of python -m svc: not stored"; }
(cd "$W/app" && "$RUN" --store "$W/s5" -m svc </dev/null >"$W/w.out" 2>"$W/w.err") || { cat "$W/w.err"; fail "-m svc after --watch"; }
grep -q "^\[suture\] already healed: key_guard cfg\['port'\]" "$W/w.err" ||
	{ cat "$W/w.err"; fail "suture-run -m svc: the patch --watch stored was not loaded"; }
ok "--watch of python -m svc stores under the module's file; suture-run -m svc loads it"

refused() { # MESSAGE-PATTERN ARGS...
	_pat=$1; shift
	"$RUN" --store "$W/s4" "$@" </dev/null >"$W/r.out" 2>"$W/r.err"
	_rc=$?
	[ $_rc -eq 2 ] || { cat "$W/r.err"; fail "$*: exit $_rc, not 2"; }
	[ "$(wc -l <"$W/r.err")" -eq 1 ] && grep -q "^suture-run: $_pat" "$W/r.err" || { cat "$W/r.err"; fail "$*: message"; }
	[ -s "$W/r.out" ] && { cat "$W/r.out"; fail "$*: something ran"; }
	return 0
}
refused "-c runs no file" -- python3.11 -c 'print(1)'
refused "a script from standard input" -- python3.11 -
refused "no script or -m module after python3.11" -- python3.11 -u
refused "--python $PYTHON and an interpreter after the options" --python "$PYTHON" -- python3.11 "$W/app/mod.py"
ok "-c, stdin, no script, two interpreters: refused in one line, exit 2"
echo PASS
