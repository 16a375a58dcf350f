#!/bin/sh
# suture-run re-runs a script whose healed crash was not resumed only when
# the re-run finds the same standard input: a terminal or /dev/null. A
# pipe, a socket or a file is consumed by the first run: no re-run, a
# message that says why, the crashed run's exit status. --retries 0: never.
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
FIX="$SUTURE_ROOT/tests/fixtures/run"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
# --no-resume: the crash goes on and the script dies of it.
run() { "$RUN" --python "$PYTHON" --no-resume "$@"; }

# --- piped stdin: not re-run -----------------------------------------------
printf 'a=1\nb=2\n' | run --store "$W/s1" "$FIX/stdin_job.py" >"$W/p.out" 2>"$W/p.err"
rc=$?
[ $rc -ne 0 ] || { cat "$W/p.out" "$W/p.err"; fail "piped stdin: exit 0 after the crash"; }
grep -q "^\[suture\] guard applied" "$W/p.err" || { cat "$W/p.err"; fail "piped stdin: not healed"; }
grep -q "^\[suture\] re-running" "$W/p.err" && { cat "$W/p.err"; fail "piped stdin: re-run"; }
grep -q "^\[suture\] not re-running .*stdin_job.py: its standard input was a pipe and is consumed; the patch is stored for the next run$" "$W/p.err" ||
	{ cat "$W/p.err"; fail "piped stdin: no message"; }
[ "$(grep -c '^processed' "$W/p.out")" -eq 1 ] || { cat "$W/p.out"; fail "piped stdin: run twice"; }
ok "piped stdin: not re-run, exit $rc, said why"

# --- stdin a file: not re-run ----------------------------------------------
printf 'a=1\n' >"$W/in.txt"
run --store "$W/s2" "$FIX/stdin_job.py" <"$W/in.txt" >"$W/f.out" 2>"$W/f.err"
rc=$?
[ $rc -ne 0 ] || { cat "$W/f.err"; fail "file stdin: exit 0 after the crash"; }
grep -q "^\[suture\] not re-running .*: its standard input was a file and is consumed" "$W/f.err" ||
	{ cat "$W/f.err"; fail "file stdin: no message"; }
ok "file stdin: not re-run"

# --- /dev/null: re-run as before, and said why -------------------------------
run --store "$W/s3" "$FIX/stdin_job.py" </dev/null >"$W/n.out" 2>"$W/n.err"
rc=$?
[ $rc -eq 0 ] || { cat "$W/n.out" "$W/n.err"; fail "/dev/null: exit $rc, not 0"; }
grep -q "^\[suture\] re-running .*stdin_job.py from the start (attempt 2 of 4) with the new patch: the crash was not resumed in flight; what ran before it runs again" "$W/n.err" ||
	{ cat "$W/n.err"; fail "/dev/null: not re-run"; }
grep -qx "threshold None" "$W/n.out" || { cat "$W/n.out"; fail "/dev/null: the re-run was not healed"; }
ok "/dev/null: re-run with the reason"

# --- --retries 0: never -------------------------------------------------------
run --store "$W/s4" --retries 0 "$FIX/stdin_job.py" </dev/null >"$W/z.out" 2>"$W/z.err"
rc=$?
[ $rc -ne 0 ] || { cat "$W/z.err"; fail "--retries 0: exit 0"; }
grep -q "^\[suture\] re-running" "$W/z.err" && { cat "$W/z.err"; fail "--retries 0: re-run"; }
grep -q "^\[suture\] not re-running .*stdin_job.py: --retries 0; the patch is stored for the next run$" "$W/z.err" ||
	{ cat "$W/z.err"; fail "--retries 0: no message"; }
# The stored patch is used by the next run.
run --store "$W/s4" "$FIX/stdin_job.py" </dev/null >"$W/z2.out" 2>"$W/z2.err" || { cat "$W/z2.err"; fail "--retries 0: next run"; }
grep -q "already healed: 1" "$W/z2.err" || { cat "$W/z2.err"; fail "--retries 0: patch not stored"; }
ok "--retries 0: not re-run, the patch stored"
echo PASS
