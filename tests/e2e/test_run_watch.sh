#!/bin/sh
# suture-run --restart keeps a service running: a crash (not resumed in flight,
# --no-resume) is healed, the service is restarted with the patch loaded
# before its first call, and serves the same request from then on; a clean
# exit ends the session with the service's status.
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
wait_count() { # PATTERN FILE N
	_n=0
	while [ "$(grep -c -- "$1" "$2" 2>/dev/null)" -lt "$3" ]; do
		_n=$((_n + 1)); [ $_n -gt 500 ] && { cat "$2"; fail "timed out waiting for $3 x '$1'"; }
		sleep 0.02
	done
}
mkfifo "$W/req"
: >"$W/log"
# In a process group of its own: a failure ends the restarted services too.
start_group run "$W/log" "$RUN" --python "$PYTHON" --store "$W/store" --restart --max-restarts 2 \
	--no-resume "$SUTURE_ROOT/tests/fixtures/run/service.py" "$W"
SR=$BG
wait_count "^ready$" "$W/log" 1
echo good >"$W/req"
wait_count "^good -> 1$" "$W/log" 1
echo bad >"$W/req"
wait_count "^ready$" "$W/log" 2
grep -q "^\[suture\] guard applied: key_guard table\[key\]" "$W/run.err" || { cat "$W/run.err"; fail "not healed"; }
grep -q "^\[suture\] restarting .*service.py (restart 1 of 2)" "$W/run.err" || { cat "$W/run.err"; fail "not restarted"; }
echo bad >"$W/req"
wait_count "^bad -> None$" "$W/log" 1
grep -q "^\[suture\] already healed: key_guard" "$W/run.err" || { cat "$W/run.err"; fail "patch not loaded at restart"; }
echo quit >"$W/req"
wait $SR
rc=$?
[ $rc -eq 0 ] || { cat "$W/run.err"; fail "suture-run --restart exited $rc"; }
grep -q "^\[suture\] patches applied: 1, already healed: 1" "$W/run.err" || { cat "$W/run.err"; fail "summary"; }
echo "ok: a healed crash restarts the service with the patch"
echo PASS
