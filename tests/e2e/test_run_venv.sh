#!/bin/sh
# In an activated virtual environment (VIRTUAL_ENV set), suture-run's default
# interpreter is the venv's bin/python: the script sees the venv's sys.prefix
# and is healed as usual; --python still chooses. A venv of another Python is
# refused (exit 5) with a message naming the venv.
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
FIX="$SUTURE_ROOT/tests/fixtures/run"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
unset VIRTUAL_ENV

V="$W/venv"
"$PYTHON" -m venv --without-pip "$V" >"$W/venv.log" 2>&1 ||
	skip "$PYTHON -m venv failed (python3.11-venv missing?): $(tail -1 "$W/venv.log")"
cat >"$W/where.py" <<'PY'
import sys

def load(cfg):
    return cfg["timeout"]

print("prefix", sys.prefix)
print("timeout", load({}))
PY

VIRTUAL_ENV="$V" "$RUN" --store "$W/s1" "$W/where.py" </dev/null >"$W/v.out" 2>"$W/v.err" ||
	{ cat "$W/v.out" "$W/v.err"; fail "in the venv: exit $?"; }
grep -qx "prefix $V" "$W/v.out" || { cat "$W/v.out" "$W/v.err"; fail "in the venv: not the venv's python"; }
grep -qx "timeout None" "$W/v.out" || { cat "$W/v.out" "$W/v.err"; fail "in the venv: not healed"; }
ok "VIRTUAL_ENV: the venv's python, healed"

VIRTUAL_ENV="$V" "$RUN" --store "$W/s2" --python "$PYTHON" "$W/where.py" </dev/null >"$W/p.out" 2>"$W/p.err" ||
	{ cat "$W/p.err"; fail "--python in the venv: exit $?"; }
grep -q "^prefix $V\$" "$W/p.out" && { cat "$W/p.out"; fail "--python $PYTHON: the venv's python was used"; }
ok "VIRTUAL_ENV with --python: --python chooses"

# A venv of another Python: refused before anything runs.
for py in /root/.pyenv/versions/3.12.*/bin/python3.12; do
	[ -x "$py" ] || { echo "absent: Python 3.12 (pyenv): a venv of it is not tested"; break; }
	"$py" -m venv --without-pip "$W/v12" >/dev/null 2>&1 || { echo "absent: $py -m venv failed"; break; }
	VIRTUAL_ENV="$W/v12" "$RUN" --store "$W/s3" "$W/where.py" </dev/null >"$W/o.out" 2>"$W/o.err"
	rc=$?
	[ $rc -eq 5 ] || { cat "$W/o.out" "$W/o.err"; fail "a 3.12 venv: exit $rc, not 5"; }
	grep -q "^suture-run: $W/v12/bin/python is Python 3\.12\.[0-9]*; suture needs CPython 3\.11 (the active virtual environment's" "$W/o.err" ||
		{ cat "$W/o.err"; fail "a 3.12 venv: message"; }
	[ -s "$W/o.out" ] && { cat "$W/o.out"; fail "a 3.12 venv: the script ran"; }
	ok "a 3.12 venv: refused, 5"
	break
done
echo PASS
