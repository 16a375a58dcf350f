#!/bin/sh
# suture-run refuses an interpreter other than CPython 3.11 before anything
# is preloaded into it (the agent would kill it: 3.12/3.13 abort, 3.10
# faults): one line, exit 5, the script never runs. --python NAME without
# a '/' is looked up on PATH.
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
FIX="$SUTURE_ROOT/tests/fixtures/run"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"

# --- a bare name: looked up on PATH --------------------------------------------
PATH="$(dirname "$PYTHON"):$PATH" "$RUN" --store "$W/s0" --python "$(basename "$PYTHON")" \
	"$FIX/key_app.py" </dev/null >"$W/b.out" 2>"$W/b.err" || { cat "$W/b.err"; fail "--python $(basename "$PYTHON"): not run"; }
grep -qx "done" "$W/b.out" || { cat "$W/b.out" "$W/b.err"; fail "--python $(basename "$PYTHON"): the script did not run"; }
ok "--python $(basename "$PYTHON") found on PATH"
"$RUN" --store "$W/s0" --python no-such-python3.11 "$FIX/key_app.py" </dev/null >"$W/n.out" 2>"$W/n.err"
rc=$?
[ $rc -eq 127 ] || { cat "$W/n.err"; fail "an absent bare name: exit $rc, not 127"; }
grep -qx "suture-run: no-such-python3.11: not found on PATH" "$W/n.err" || { cat "$W/n.err"; fail "an absent bare name: message"; }
ok "an absent bare name: 127, one line"

# --- not a Python at all -------------------------------------------------------
"$RUN" --store "$W/s0" --python /bin/true "$FIX/key_app.py" </dev/null >"$W/t.out" 2>"$W/t.err"
rc=$?
[ $rc -eq 5 ] || { cat "$W/t.err"; fail "/bin/true: exit $rc, not 5"; }
[ "$(wc -l <"$W/t.err")" -eq 1 ] || { cat "$W/t.err"; fail "/bin/true: not one line"; }
grep -qx "suture-run: /bin/true did not report a Python version; suture needs CPython 3.11" "$W/t.err" ||
	{ cat "$W/t.err"; fail "/bin/true: message"; }
ok "/bin/true: refused, 5"

# --- other Pythons: refused before the agent is preloaded ----------------------
seen=""
for v in 3.10 3.12 3.13; do
	for py in /root/.pyenv/versions/$v.*/bin/python$v; do
		[ -x "$py" ] || continue
		"$RUN" --store "$W/s1" --python "$py" "$FIX/key_app.py" </dev/null >"$W/o.out" 2>"$W/o.err"
		rc=$?
		[ $rc -eq 5 ] || { cat "$W/o.out" "$W/o.err"; fail "$py: exit $rc, not 5"; }
		full=$("$py" -c 'import platform; print(platform.python_version())')
		[ "$(cat "$W/o.err")" = "suture-run: $py is Python $full; suture needs CPython 3.11" ] ||
			{ cat "$W/o.err"; fail "$py: message"; }
		[ -s "$W/o.out" ] && { cat "$W/o.out"; fail "$py: the script ran"; }
		[ -e "$W/s1" ] && fail "$py: a store was made"
		ok "$py ($full): refused, 5, one line"
		seen="$seen $v"
	done
done
[ -n "$seen" ] || skip "no Python 3.10, 3.12 or 3.13 under /root/.pyenv/versions: refusing them is not tested"
for v in 3.10 3.12 3.13; do
	case "$seen" in *"$v"*) ;; *) echo "absent: Python $v (pyenv): not tested" ;; esac
done
echo PASS
