#!/bin/sh
# Bad targets get one clear line on stderr ("suture-attach: pid N: ...")
# and a distinct exit code (docs/man/suture-attach.1), and are not harmed:
#   2 usage, 3 no such process, 4 not Python, 5 not 3.11, 6 permission
#   (other user, no CAP_SYS_PTRACE, Yama), 7 already traced, 8 stopped,
#   9 exited during the dump.
set -u
. "$SUTURE_ROOT/tests/fixtures/dump/lib.sh"
TUSER=suture-test

# expect_rc LABEL RC PATTERN COMMAND...: exit code and the one-line message.
expect_rc() {
	_label=$1 _rc=$2 _pat=$3; shift 3
	"$@" >"$WORK/out" 2>"$WORK/err"
	got=$?
	[ "$got" -eq "$_rc" ] || fail "$_label: exit $got, expected $_rc; stderr: $(cat "$WORK/err")"
	[ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "$_label: stderr is not one line: $(cat "$WORK/err")"
	grep -Eq "$_pat" "$WORK/err" || fail "$_label: message '$(cat "$WORK/err")' does not match '$_pat'"
	[ ! -s "$WORK/out" ] || fail "$_label: printed a dump: $(head -3 "$WORK/out")"
	echo "ok: $_label -> $got: $(cat "$WORK/err")"
}

start_idle() { # PYTHON READYFILE [args]: sets PID
	_py=$1 _ready=$2; shift 2
	READY_SECONDS=30 start_bg "idle-$(basename "$_ready")" "$_ready" "$_py" "$FIX/idle.py" "$_ready" "$@"
	PID=$BG
}

# Usage errors.
expect_rc "no arguments" 2 "pid is required" "$SA"
expect_rc "bad pid" 2 "bad pid 'x'" "$SA" --pid x --dump
expect_rc "no mode" 2 "no mode" "$SA" --pid 1
expect_rc "watch option without --watch" 2 "go with --watch" "$SA" --pid 1 --dump --ttl 3
expect_rc "bad ttl" 2 "bad --ttl" "$SA" --pid 1 --watch --ttl 0
"$SA" --help | grep -q -- "--dump" || fail "--help"
"$SA" --version | grep -Eq '^suture-attach [0-9]' || fail "--version"

# 3: a pid that does not exist (a child that has been reaped).
true & gone=$!
wait $gone
kill -0 $gone 2>/dev/null && fail "pid $gone still exists"
expect_rc "no such process" 3 "^suture-attach: pid $gone: no such process$" "$SA" --pid $gone --dump

# 4: not Python.
sleep 300 & sp=$!
PIDS="$PIDS $sp"
expect_rc "not python" 4 "^suture-attach: pid $sp: not a Python process" "$SA" --pid $sp --dump
stop_pid $sp

# 5: Python, but not 3.11 (pyenv's 3.12 and 3.10 builds, when present).
for m in 3.12 3.10; do
	py=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/$m.*/bin/python$m 2>/dev/null | sort -V | tail -n 1)
	[ -n "$py" ] || { echo "absent: a pyenv $m build, the 'not 3.11' case for it not tested"; continue; }
	v=$("$py" -c 'import platform; print(platform.python_version())') || fail "$py: no version"
	start_idle "$py" "$WORK/ready-$v"
	expect_rc "python $v" 5 "^suture-attach: pid $PID: (Python $v is not supported|Python older than 3.11)" \
		"$SA" --pid "$PID" --dump
	stop_pid "$PID"
done

# The 3.11 target for the rest.
start_idle "$PYTHON" "$WORK/ready"
T=$PID

# 6: permission. Another user may not read a root process; root without
# CAP_SYS_PTRACE may not read another user's process.
id "$TUSER" >/dev/null 2>&1 || useradd -r -M -s /usr/sbin/nologin "$TUSER" || fail "useradd"
U=$(id -u "$TUSER") G=$(id -g "$TUSER")
# The other user runs copies from $WORK (0755): the checkout may sit in a
# directory only root can enter (a fresh clone in mktemp -d, say).
cp "$SA" "$WORK/suture-attach" && cp "$FIX/idle.py" "$FIX/dumpexpect.py" "$WORK/" &&
	chmod 755 "$WORK/suture-attach" && chmod 644 "$WORK/idle.py" "$WORK/dumpexpect.py" ||
	fail "copies for the other user"
expect_rc "other user" 6 "^suture-attach: pid $T: permission denied" \
	setpriv --reuid="$U" --regid="$G" --clear-groups env HOME="$WORK" "$WORK/suture-attach" --pid "$T" --dump
mkdir -p "$WORK/u" && chmod 777 "$WORK/u"
READY_SECONDS=30 start_bg user-idle "$WORK/u/ready" \
	setpriv --reuid="$U" --regid="$G" --clear-groups "$PYTHON" "$WORK/idle.py" "$WORK/u/ready"
UT=$BG
expect_rc "no CAP_SYS_PTRACE" 6 "^suture-attach: pid $UT: (permission denied|ptrace not permitted)" \
	setpriv --inh-caps=-sys_ptrace --bounding-set=-sys_ptrace "$SA" --pid "$UT" --dump --no-cache
# Yama ptrace_scope 1 forbids a same-user, non-descendant tracer.
if [ -r /proc/sys/kernel/yama/ptrace_scope ] && [ "$(cat /proc/sys/kernel/yama/ptrace_scope)" -ge 1 ]; then
	expect_rc "yama" 6 "^suture-attach: pid $UT: (permission denied|ptrace not permitted)" \
		setpriv --reuid="$U" --regid="$G" --clear-groups env HOME="$WORK/u" "$WORK/suture-attach" --pid "$UT" --dump
else
	echo "skip: Yama is not active on this kernel (no /proc/sys/kernel/yama/ptrace_scope >= 1)"
fi
stop_pid "$UT"

# 7: already traced (another process holds a ptrace seize on it).
"$PYTHON" "$FIX/seize.py" "$T" "$WORK/seized" >"$WORK/seize.err" 2>&1 &
tr=$!
PIDS="$PIDS $tr"
wait_for 10 test -f "$WORK/seized" || fail "helper could not seize: $(cat "$WORK/seize.err")"
expect_rc "already traced" 7 "^suture-attach: pid $T: already traced by pid $tr" "$SA" --pid "$T" --dump
stop_pid $tr
wait_for 5 sh -c "grep -q 'TracerPid:[[:space:]]*0$' /proc/$T/status" || fail "tracer did not let go"

# 8: stopped with SIGSTOP; untouched, and fine again after SIGCONT.
kill -STOP "$T"
wait_for 5 sh -c "grep -q '^State:[[:space:]]*T' /proc/$T/status" || fail "target did not stop"
expect_rc "stopped" 8 "^suture-attach: pid $T: process is stopped" "$SA" --pid "$T" --dump
grep -q '^State:[[:space:]]*T' /proc/"$T"/status || fail "target no longer stopped"
kill -CONT "$T"
wait_for 5 sh -c "! grep -q '^State:[[:space:]]*T' /proc/$T/status" || fail "target did not continue"
"$SA" --pid "$T" --dump >"$WORK/after" || fail "dump after SIGCONT exited $?"
grep -q "park" "$WORK/after" || fail "dump after SIGCONT: $(cat "$WORK/after")"
kill -0 "$T" || fail "target died"
stop_pid "$T"

# 9: the target exits while it is being dumped: dump back to back (with
# locals, 8 threads 800 frames deep) while it calls os._exit at a random
# moment. Every dump must end 0 (done before), 9 (exited during) or 3
# (gone before it began); at least one must catch it in the middle.
caught=0
for try in 1 2 3 4 5 6 7 8 9 10; do
	delay=$(awk -v s="$try" 'BEGIN { srand(s); printf "%.3f", 0.05 + rand() * 0.3 }')
	start_idle "$PYTHON" "$WORK/ready-exit-$try" 8 "$delay"
	while :; do
		"$SA" --pid "$PID" --dump --locals >/dev/null 2>"$WORK/exit.err"
		rc=$?
		case $rc in
		0) continue ;;
		9) grep -Eq "^suture-attach: pid $PID: process exited during the dump$" "$WORK/exit.err" ||
			fail "exit 9 message: $(cat "$WORK/exit.err")"
		   caught=$((caught + 1)); break ;;
		3) break ;;
		*) fail "target exiting: dump exited $rc: $(cat "$WORK/exit.err")" ;;
		esac
	done
	stop_pid "$PID"
	[ $caught -ge 1 ] && break
done
[ $caught -ge 1 ] || fail "never caught the target exiting mid-dump in 10 tries"
echo "ok: caught a target exiting during the dump (try $try)"
