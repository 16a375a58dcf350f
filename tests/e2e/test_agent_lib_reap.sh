#!/bin/sh
# Regression for test_agent_lib.sh's start_client: a client that writes its
# "how=" line and exits between start_client's grep and its kill -0 (hello
# does, right after its ping) was taken for one that "exited early": dash
# reaps a finished background job while it waits for a foreground command, so
# kill -0 fails for it (test_agent_stress.sh failed so under load, ~1 in 7).
# Made deterministic here: the first grep "reads the file" before the line is
# there (returns 1 after a foreground sleep during which the client finishes
# and is reaped). start_client must accept it, and wait_pid must still give
# the client's exit status; a client that really fails must still fail.
. "$(dirname "$0")/test_agent_lib.sh"

STUB="$W/stub_client"
cat >"$STUB" <<'EOS'
#!/bin/sh
[ "$1" = ok ] && echo "how=2 mode=2 detail=stub"
[ "$1" = ok ] && exit 0
echo "open: stub failure" >&2
exit 2
EOS
chmod +x "$STUB"
CLIENT="$STUB"

_greps=0
grep() {
	_greps=$((_greps + 1))
	if [ $_greps -eq 1 ]; then
		sleep 0.5	# the client writes its line and exits meanwhile
		return 1
	fi
	command grep "$@"
}

start_client a ok
[ $_greps -ge 2 ] || fail "the first grep was not the simulated early read"
wait_pid "$TC" 5 || fail "the stub's exit status was lost"
echo "ok: a client that finished between grep and kill -0 is accepted, exit status kept"

# A client that exits without a session still fails start_client (in a
# subshell: fail exits it).
_greps=0
out=$( (start_client b fail) 2>&1 ) && fail "start_client accepted a failed client: $out"
case "$out" in
*"exited early (exit 2)"*"") ;;
*) fail "unexpected start_client failure: $out" ;;
esac
case "$out" in
*"open: stub failure"*) ;;
*) fail "the failed client's stderr was not shown: $out" ;;
esac
echo "ok: a failed client is still reported, with its exit status and stderr"
echo PASS
