# Sourced by tests/e2e/test_agent*.sh and test_watch*.sh (not a test itself).
# Starts target interpreters with a ready handshake, drives the test client,
# and ends only the processes it started, by pid.
set -u
: "${BUILD:?BUILD must be set (absolute build dir)}"
: "${PYTHON:=/usr/bin/python3.11}"
: "${SUTURE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
AGENT="$BUILD/lib/libsuture_agent.so"
CLIENT="$BUILD/tests/e2e/test_agent_client"
FIX="$SUTURE_ROOT/tests/fixtures/agent"
PYENV_PY=/root/.pyenv/versions/3.11.7/bin/python3.11
DBG_PY=/usr/bin/python3.11-dbg
export SUTURE_AGENT="$AGENT"
[ -x "$CLIENT" ] && [ -f "$AGENT" ] || { echo "build $CLIENT and $AGENT first"; exit 1; }

W=$(mktemp -d /tmp/suture-agent-test.XXXXXX)
PIDS=""
cleanup() {
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
	rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# Interpreters to test: Debian's, and pyenv's 3.11.7 when installed.
pythons() {
	echo "$PYTHON"
	[ -x "$PYENV_PY" ] && echo "$PYENV_PY"
	return 0
}

# A short distinct name for an interpreter, for state file names.
pytag() {
	case "$1" in
	"$DBG_PY") echo dbg ;;
	"$PYENV_PY") echo pyenv ;;
	*) echo "$(basename "$(dirname "$(dirname "$1")")")" ;;
	esac
}

# The same plus Debian's debug build (its assertions check the interpreter's
# invariants after we touched frames and code objects), when installed.
pythons_dbg() {
	pythons
	[ -x "$DBG_PY" ] && echo "$DBG_PY"
	return 0
}

# wait_file PATH [SECONDS]
wait_file() {
	_wf=0
	while [ ! -s "$1" ]; do
		_wf=$((_wf + 1))
		[ $_wf -gt $(( ${2:-20} * 50 )) ] && fail "timed out waiting for $1"
		sleep 0.02
	done
}

# start_target NAME MODE(preload|plain) PY SCRIPT ARGS... ; sets TP (pid)
# The script writes $W/NAME.ready; stderr goes to $W/NAME.err.
start_target() {
	_st_name=$1 _st_mode=$2 _st_py=$3
	shift 3
	if [ "$_st_mode" = preload ]; then
		LD_PRELOAD="$AGENT" "$_st_py" "$@" 2>"$W/$_st_name.err" >"$W/$_st_name.out" &
	else
		"$_st_py" "$@" 2>"$W/$_st_name.err" >"$W/$_st_name.out" &
	fi
	TP=$!
	PIDS="$PIDS $TP"
	wait_file "$W/$_st_name.ready"
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

# wait_pid PID [SECONDS]: exit status, or fail after SECONDS.
wait_pid() {
	_wp=0
	while kill -0 "$1" 2>/dev/null; do
		# a zombie of ours is reaped by wait below
		[ "$(awk '{print $3}' /proc/$1/stat 2>/dev/null)" = Z ] && break
		_wp=$((_wp + 1))
		[ $_wp -gt $(( ${2:-30} * 50 )) ] && fail "pid $1 still running after ${2:-30}s"
		sleep 0.02
	done
	wait "$1"
}
