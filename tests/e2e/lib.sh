# Shared by every tests/e2e/test_*.sh (sourced, POSIX sh; not a test itself).
#
#   fail MSG          the test failed: "FAIL: MSG", exit 1 (ok MSG: "ok: MSG")
#   skip MSG          the test cannot run here: MSG as the last line, exit 77;
#                     tests/run.sh reports it as SKIP with MSG (never a pass)
#   note_fail MSG     a failed check in a test that goes on to report every
#                     check; finish then exits 1 if there was one
#   start_bg NAME READY CMD...   start CMD with a ready handshake
#   start_group NAME READY CMD...  the same in a process group of its own
#   stop_pid PID, stop_group PGID  end what the test started
#   wait_for, wait_file, wait_grep, wait_pid  polling with a deadline
#   pythons KIND..., py_need VAR KIND, pytag PY   the 3.11 interpreters here
#
# Processes are remembered by pid (PIDS) or process group (PGIDS) when they
# are started and ended by those only, at exit whatever the reason (a
# failure, tests/run.sh's timeout sending TERM). Never by name.
set -u
: "${SUTURE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${BUILD:=$SUTURE_ROOT/build}"
case "$BUILD" in /*) ;; *) BUILD="$SUTURE_ROOT/$BUILD" ;; esac
: "${PYTHON:=/usr/bin/python3.11}"
export BUILD PYTHON SUTURE_ROOT
# Channel directories are /tmp/suture-UID in the tests (a login session's
# XDG_RUNTIME_DIR would move them: docs/formats/channel.md, "Where it lives");
# tests of XDG_RUNTIME_DIR set it themselves.
unset XDG_RUNTIME_DIR

# W: the test's scratch directory (physical path: suture-audit shortens
# paths under getcwd(), a symlinked /tmp would defeat it).
W=$(mktemp -d "/tmp/suture-$(basename "$0" .sh).XXXXXX") || { echo "FAIL: mktemp"; exit 1; }
W=$(cd "$W" && pwd -P)
PIDS=""
PGIDS=""
FAILS=0

# Every step may fail (a process already gone): "|| :" keeps a script
# running under set -e from leaving the cleanup half done.
cleanup() {
	for _p in $PGIDS; do
		kill -CONT "-$_p" 2>/dev/null || :
		kill -KILL "-$_p" 2>/dev/null || :
	done
	for _p in $PIDS; do
		kill -CONT "$_p" 2>/dev/null || :   # a target a test left stopped
		kill -KILL "$_p" 2>/dev/null || :
		wait "$_p" 2>/dev/null || :
	done
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }
skip() { echo "$*"; exit 77; }
note_fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
finish() {
	[ "$FAILS" -eq 0 ] || fail "$FAILS check(s) failed"
	echo PASS
}

# track PID: end PID at exit (a process the test did not start itself, such
# as the script suture-run runs, named by a ready file).
track() { PIDS="$PIDS $1"; }

# stop_pid PID: end it now and forget it.
stop_pid() {
	kill -CONT "$1" 2>/dev/null || :
	kill -KILL "$1" 2>/dev/null || :
	wait "$1" 2>/dev/null || :
	PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' ' || :)
}

# stop_group PGID: end every process of a group start_group made.
stop_group() {
	kill -KILL "-$1" 2>/dev/null || :
	wait "$1" 2>/dev/null || :
	PGIDS=$(echo "$PGIDS" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' ' || :)
	PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' ' || :)
}

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds; status 1 after
# SECONDS.
wait_for() {
	_wf_n=$(( $1 * 50 )); shift
	while [ $_wf_n -gt 0 ]; do
		"$@" 2>/dev/null && return 0
		sleep 0.02
		_wf_n=$((_wf_n - 1))
	done
	return 1
}

# wait_file PATH [SECONDS]: until PATH is not empty, or fail.
wait_file() {
	wait_for "${2:-20}" test -s "$1" || fail "timed out waiting for $1"
}

# wait_grep PATTERN FILE [SECONDS]: until a line of FILE matches, or show
# FILE and fail.
wait_grep() {
	wait_for "${3:-10}" grep -q -- "$1" "$2" || { cat "$2"; fail "timed out waiting for '$1' in $2"; }
}

# wait_pid PID [SECONDS]: its exit status, or fail after SECONDS.
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

# start_bg NAME READY CMD...: CMD in the background, stdout in $W/NAME.out,
# stderr in $W/NAME.err, its pid in BG (and PIDS). Returns once the file
# READY is not empty (the program writes it when it is ready, its pid
# usually); fails with its stderr if it exits first or takes over
# ${READY_SECONDS:-20}s.
start_bg() {
	_sb_name=$1 _sb_ready=$2
	shift 2
	"$@" >"$W/$_sb_name.out" 2>"$W/$_sb_name.err" &
	BG=$!
	PIDS="$PIDS $BG"
	_sb_ready_wait "$_sb_name" "$_sb_ready"
}

# start_group NAME READY CMD...: the same, CMD leading a process group of its
# own (a background job of a non-interactive shell leads no group, so setsid
# execs in place: BG is the group's id), so that stop_group and
# the exit cleanup end its children as well.
start_group() {
	_sb_name=$1 _sb_ready=$2
	shift 2
	setsid "$@" >"$W/$_sb_name.out" 2>"$W/$_sb_name.err" &
	BG=$!
	PGIDS="$PGIDS $BG"
	PIDS="$PIDS $BG"
	_sb_ready_wait "$_sb_name" "$_sb_ready"
}

_sb_ready_wait() {
	_sb_n=$(( ${READY_SECONDS:-20} * 50 ))
	while [ ! -s "$2" ]; do
		if ! kill -0 "$BG" 2>/dev/null ||
		   [ "$(awk '{print $3}' /proc/$BG/stat 2>/dev/null)" = Z ]; then
			[ -s "$2" ] && return 0
			cat "$W/$1.err"
			fail "$1 exited before it was ready"
		fi
		_sb_n=$((_sb_n - 1))
		[ $_sb_n -gt 0 ] || { cat "$W/$1.err"; fail "$1 not ready after ${READY_SECONDS:-20}s"; }
		sleep 0.02
	done
}

# --- CPython 3.11 interpreters -------------------------------------------------
# Kinds: python ($PYTHON, the one the build targets), debian
# (/usr/bin/python3.11), dbg (Debian's debug build: python3.11d, which
# python3.11-dbg installs; $PYTHON_DBG overrides), pyenv (the newest pyenv
# 3.11 build under $PYENV_ROOT or ~/.pyenv; $PYTHON_PYENV overrides: a shared
# libpython with its own .debug_info, unlike Debian's).

# py311_find KIND: its path, status 1 (no output) when absent.
py311_find() {
	case "$1" in
	python) _pf="$PYTHON" ;;
	debian) _pf=/usr/bin/python3.11 ;;
	dbg)
		_pf=${PYTHON_DBG:-}
		if [ -z "$_pf" ]; then
			for _c in /usr/bin/python3.11d /usr/bin/python3.11-dbg; do
				[ -x "$_c" ] && { _pf=$_c; break; }
			done
		fi ;;
	pyenv)
		_pf=${PYTHON_PYENV:-}
		if [ -z "$_pf" ]; then
			_pf=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.11*/bin/python3.11 \
				"$HOME"/.pyenv/versions/3.11*/bin/python3.11 2>/dev/null |
				sort -V | tail -n 1)
		fi ;;
	*) fail "lib.sh: unknown interpreter kind '$1'" ;;
	esac
	[ -n "$_pf" ] && [ -x "$_pf" ] || return 1
	echo "$_pf"
}

# py311_why KIND: why KIND is absent, for a skip or a note.
py311_why() {
	case "$1" in
	python) echo "no \$PYTHON interpreter at $PYTHON" ;;
	debian) echo "no /usr/bin/python3.11" ;;
	dbg) echo "no debug build (${PYTHON_DBG:-/usr/bin/python3.11d or python3.11-dbg}; apt-get install python3.11-dbg)" ;;
	pyenv) echo "no pyenv 3.11 build (${PYTHON_PYENV:-${PYENV_ROOT:-$HOME/.pyenv}/versions/3.11*/bin/python3.11})" ;;
	esac
}

# pythons [KIND...]: the present interpreters of those kinds (default:
# python pyenv), one a line, each binary once; an absent kind is named on
# stderr, which goes to the test's log: "absent: pyenv (...), not tested".
pythons() {
	[ $# -gt 0 ] || set -- python pyenv
	_ps_seen=""
	for _k in "$@"; do
		if ! _p=$(py311_find "$_k"); then
			echo "absent: $_k interpreter, not tested: $(py311_why "$_k")" >&2
			continue
		fi
		_r=$(readlink -f "$_p")
		case " $_ps_seen " in *" $_r "*) continue ;; esac
		_ps_seen="$_ps_seen $_r"
		echo "$_p"
	done
}

# pythons_dbg: pythons plus Debian's debug build (its assertions check the
# interpreter's invariants after frames and code objects were touched).
pythons_dbg() { pythons python pyenv dbg; }

# py_need VAR KIND: VAR=the interpreter, or skip the test saying why.
py_need() {
	_pn=$(py311_find "$2") || skip "needs the $2 interpreter: $(py311_why "$2")"
	eval "$1=\$_pn"
}

# pytag PY: a short name for an interpreter (python, dbg, pyenv, or its
# directory's name), for file names and messages.
pytag() {
	_pt=$(readlink -f "$1")
	for _k in python dbg pyenv; do
		_p=$(py311_find "$_k") || continue
		[ "$(readlink -f "$_p")" = "$_pt" ] && { echo "$_k"; return 0; }
	done
	basename "$(dirname "$(dirname "$1")")"
}

# user_reaches_build USER: USER (a test's own unprivileged user) can run the
# built commands and read the agent; else skip naming the directory that
# stops it (a clone under a 0700 `mktemp -d`, a private home).
user_reaches_build() {
	setpriv --reuid="$1" --regid="$1" --clear-groups \
		test -x "$BUILD/bin/suture-attach" -a -r "$BUILD/lib/libsuture_agent.so" && return 0
	_urb=$BUILD
	_urb_bad=$BUILD
	while [ "$_urb" != / ]; do
		setpriv --reuid="$1" --regid="$1" --clear-groups test -x "$_urb" || _urb_bad=$_urb
		_urb=$(dirname "$_urb")
	done
	skip "user $1 cannot reach the build: $_urb_bad is not searchable by other users"
}
