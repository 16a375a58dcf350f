#!/bin/sh
# Targets in simulated containers, reached from the host (issue 12 item 3):
#   mnt    mount + pid namespaces, a private tmpfs on /tmp
#   net    the same plus a network namespace
#   user   the same plus a user namespace (--map-root-user) made by another
#          user: the host's root is not mapped in it, so the debugger joins it
#   chroot the mount + pid case inside a minimal root (bind-mounted /usr,
#          a /proc, a private /tmp) where the agent's host path does not exist
# In each: --dump, --watch heals a real crash (the thread's lookup returns
# None from then on), suture-audit --pid lists the live patch. Then a root
# without /proc (the agent cannot be loaded from a memfd there): a one-line
# error naming the mount namespace, and nothing of suture in the target.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
AUDIT="$BUILD/bin/suture-audit"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
py_need PY python
[ "$(id -u)" = 0 ] || skip "needs root (namespaces, a test user, chroot)"
unshare --mount --pid --fork true 2>/dev/null || skip "unshare --mount --pid fails here"
TARGET="$SUTURE_ROOT/tests/fixtures/ns/ns_target.py"
USR=sutns$$
cleanup_user() { userdel "$USR" 2>/dev/null || :; }
trap 'cleanup_user; cleanup' EXIT
chmod 755 "$W"

# start MODE DIR: the target in its namespaces; HP its pid on the host.
start() {
	_m=$1 _d=$2
	mkdir -p "$_d"
	cp "$TARGET" "$_d/t.py"
	chmod 777 "$_d"
	# DIR stays visible through the private /tmp: parked on /mnt (inside
	# the namespace only), then bound back at its own path.
	_inner='mount --bind "$1" /mnt && mount -t tmpfs -o mode=1777 tmpfs /tmp && mkdir -p "$1" && mount --bind /mnt "$1" && exec "$2" "$1/t.py" "$1"'
	case $_m in
	mnt) set -- unshare --mount --pid --fork ;;
	net) set -- unshare --mount --pid --net --fork ;;
	user) set -- setpriv --reuid="$USR" --regid="$USR" --clear-groups \
		unshare --user --map-root-user --mount --pid --fork ;;
	chroot | noproc)
		_r="$_d/root"
		mkdir -p "$_r/usr" "$_r/tmp" "$_r/proc" "$_r/dev" "$_r$_d"
		for _l in bin lib lib64 sbin; do [ -L "/$_l" ] && ln -s "usr/$_l" "$_r/$_l"; done
		_mp='mount -t proc proc "$3/proc" && '
		[ "$_m" = noproc ] && _mp=''
		_inner='mount --rbind /usr "$3/usr" && mount --bind /dev "$3/dev" && '$_mp'mount -t tmpfs -o mode=1777 tmpfs "$3/tmp" && mkdir -p "$3$1" && mount --bind "$1" "$3$1" && exec chroot "$3" "$2" "$1/t.py" "$1"'
		set -- unshare --mount --pid --fork ;;
	esac
	start_group "$_m" "$_d/ready" "$@" sh -c "$_inner" sh "$_d" "$PY" "${_r:-}"
	_n=0
	HP=""
	while [ -z "$HP" ]; do
		HP=$(cat "/proc/$BG/task/$BG/children" 2>/dev/null | tr -d ' ')
		_n=$((_n + 1)); [ $_n -gt 200 ] && fail "$_m: no target process"; sleep 0.02
	done
	_in=$(cut -d' ' -f1 "$_d/ready")
	[ "$_in" != "$HP" ] || fail "$_m: the target is not in a pid namespace of its own"
}

agent_mapped() { grep -q libsuture_agent "/proc/$1/maps"; }

check_mode() {
	_m=$1 _d="$W/$1"
	start "$_m" "$_d"
	if [ "$_m" = chroot ]; then
		[ -e "/proc/$HP/root$SUTURE_AGENT" ] && fail "chroot: the agent's host path exists in the target's root"
	fi
	if [ "$_m" = user ]; then
		# A debugger that may ptrace (CAP_SYS_PTRACE) but not join the
		# namespace (no CAP_SYS_ADMIN over it): refused before anything is
		# loaded, saying which namespace.
		setpriv --bounding-set=-sys_admin --inh-caps=-sys_admin \
			"$ATTACH" --pid "$HP" --watch --store "$_d/store" >"$_d/nojoin.out" 2>"$_d/nojoin.err" &&
			fail "user: --watch without CAP_SYS_ADMIN succeeded"
		[ "$(wc -l <"$_d/nojoin.err")" -eq 1 ] || { cat "$_d/nojoin.err"; fail "user: not a one-line error"; }
		grep -q "user namespace: cannot join it" "$_d/nojoin.err" || { cat "$_d/nojoin.err"; fail "user: the error does not say which namespace"; }
		agent_mapped "$HP" && fail "user: the agent was left loaded"
		ok "user: $(cat "$_d/nojoin.err"); nothing loaded"
	fi
	"$ATTACH" --pid "$HP" --dump >"$_d/dump.out" 2>"$_d/dump.err" ||
		{ cat "$_d/dump.err"; fail "$_m: --dump"; }
	grep -q "t.py" "$_d/dump.out" || { cat "$_d/dump.out"; fail "$_m: --dump shows no frame of t.py"; }
	"$ATTACH" --pid "$HP" --watch --store "$_d/store" 2>"$_d/watch.err" &
	_tw=$!
	PIDS="$PIDS $_tw"
	wait_grep "^\[suture\] watching pid $HP\$" "$_d/watch.err" ||
		{ cat "$_d/watch.err"; fail "$_m: --watch never watched"; }
	wait_grep "^ok None" "$W/$_m.out" || { cat "$_d/watch.err"; fail "$_m: the crash was not healed"; }
	wait_grep "^\[suture\] stored patch __main__.lookup:" "$_d/watch.err" 10
	"$AUDIT" --pid "$HP" --store "$_d/store" >"$_d/audit.out" 2>"$_d/audit.err" ||
		{ cat "$_d/audit.err"; fail "$_m: suture-audit --pid"; }
	grep -q "^live .*__main__.lookup:" "$_d/audit.out" || { cat "$_d/audit.out"; fail "$_m: audit lists no live patch"; }
	if [ "$_m" = user ]; then
		# The agent's peer check still holds: the host's root, connecting
		# without joining the namespace, is uid 65534 there: closed at once
		# (a busy agent would answer ERROR; a refused peer gets nothing).
		"$PY" - "/proc/$HP/root/tmp/suture-0/agent-$_in.sock" <<'PYEOF' || fail "user: the agent accepted an unmapped peer"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(5)
sys.exit(0 if s.recv(100) == b"" else 1)
PYEOF
		ok "user: an unmapped peer (the host's root, not joined) is refused by the agent"
	fi
	kill -INT "$_tw"
	wait "$_tw" 2>/dev/null || :
	grep -q "^\[suture\] detached" "$_d/watch.err" || { cat "$_d/watch.err"; fail "$_m: no clean detach"; }
	stop_group "$BG"
	ok "$_m: --dump, --watch (healed), suture-audit --pid"
}

check_mode mnt
if unshare --net true 2>/dev/null; then check_mode net; else echo "absent: network namespaces ($(unshare --net true 2>&1))"; fi
if useradd -M -s /usr/sbin/nologin "$USR" 2>/dev/null &&
   setpriv --reuid="$USR" --regid="$USR" --clear-groups unshare --user --map-root-user true 2>/dev/null; then
	check_mode user
else
	echo "absent: unprivileged user namespaces or useradd, not tested"
fi
check_mode chroot

# A root with no /proc: refused before anything is loaded.
D="$W/noproc"
start noproc "$D"
"$ATTACH" --pid "$HP" --watch --store "$D/store" >"$D/watch.out" 2>"$D/watch.err"
rc=$?
[ "$rc" -ne 0 ] || fail "noproc: --watch succeeded"
[ "$(wc -l <"$D/watch.err")" -eq 1 ] || { cat "$D/watch.err"; fail "noproc: not a one-line error"; }
grep -q "mount namespace: no procfs at /proc" "$D/watch.err" || { cat "$D/watch.err"; fail "noproc: the error does not say which"; }
agent_mapped "$HP" && fail "noproc: the agent was left loaded"
ok "noproc: $(cat "$D/watch.err"), nothing loaded"
echo PASS
