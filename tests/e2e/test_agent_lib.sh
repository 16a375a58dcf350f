# Sourced by tests/e2e/test_agent*.sh and test_watch*.sh (not a test itself):
# the agent and the test client on top of tests/e2e/lib.sh (fail, cleanup,
# start_bg, wait_*, pythons, pytag).
. "$(dirname "$0")/lib.sh"
AGENT="$BUILD/lib/libsuture_agent.so"
CLIENT="$BUILD/tests/e2e/test_agent_client"
FIX="$SUTURE_ROOT/tests/fixtures/agent"
export SUTURE_AGENT="$AGENT"
[ -x "$CLIENT" ] && [ -f "$AGENT" ] || fail "build $CLIENT and $AGENT first"

# start_target NAME MODE(preload|plain) PY SCRIPT ARGS... ; sets TP (pid)
# The script writes $W/NAME.ready; stdout and stderr go to $W/NAME.out, .err.
start_target() {
	_st_name=$1 _st_mode=$2 _st_py=$3
	shift 3
	if [ "$_st_mode" = preload ]; then
		start_bg "$_st_name" "$W/$_st_name.ready" env LD_PRELOAD="$AGENT" "$_st_py" "$@"
	else
		start_bg "$_st_name" "$W/$_st_name.ready" "$_st_py" "$@"
	fi
	TP=$BG
}

# start_client NAME ARGS... : the client in the background, output in
# $W/NAME.client; returns once its session is open (the "how=" line).
# A short command (hello) may write its lines and exit between our grep and
# kill -0, and dash reaps a finished background job while it waits for any
# foreground one (grep, sleep): kill -0 then fails for a client that
# succeeded. So a client that is gone is judged by its output, read again;
# its exit status stays available to wait/wait_pid.
start_client() {
	_sc_name=$1
	shift
	"$CLIENT" "$@" >"$W/$_sc_name.client" 2>"$W/$_sc_name.client.err" &
	TC=$!
	PIDS="$PIDS $TC"
	_sc=0
	while ! grep -q '^how=' "$W/$_sc_name.client" 2>/dev/null; do
		kill -0 "$TC" 2>/dev/null || {
			grep -q '^how=' "$W/$_sc_name.client" 2>/dev/null && break
			wait "$TC"
			_sc=$?
			cat "$W/$_sc_name.client" "$W/$_sc_name.client.err"
			fail "client $_sc_name exited early (exit $_sc)"
		}
		_sc=$((_sc + 1))
		[ $_sc -gt 500 ] && fail "client $_sc_name never connected"
		sleep 0.02
	done
}
