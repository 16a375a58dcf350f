#!/bin/sh
# Injection into a running interpreter by remote dlopen of a memfd
# holding the agent (attach/, inject/remote.c): the
# first session injects (how=1), the second finds and reuses the agent
# (how=0, still one copy mapped), a detach closes the channel, the next
# session restarts the mapped agent (how=2, suture_agent_start) and its
# watcher reports a crash. The restart installs the entry jump again
# (mode 1/2, not the trace fallback it would pick if the entry still held
# a jump), which shows the detach put the original bytes back. The target
# runs on untouched throughout.
. "$(dirname "$0")/test_agent_lib.sh"

for py in $(pythons); do
	tag=$(basename "$(dirname "$(dirname "$py")")")
	start_target "i-$tag" plain "$py" "$FIX/watch_target.py" "$W/i-$tag" handled
	"$CLIENT" "$TP" hello >"$W/i1" 2>&1 || { cat "$W/i1"; fail "$py: inject"; }
	grep -q '^how=1 mode=[12] ' "$W/i1" || { cat "$W/i1"; fail "$py: not a dlopen"; }
	"$CLIENT" "$TP" hello >"$W/i2" 2>&1 || { cat "$W/i2"; fail "$py: second"; }
	grep -q '^how=0 ' "$W/i2" || { cat "$W/i2"; fail "$py: second injection did not reuse"; }
	# Loaded from a memfd (no path of ours in the target; no file left).
	[ "$(grep -c '/memfd:libsuture_agent.so (deleted)$' "/proc/$TP/maps" | tr -d ' ')" -ge 1 ] || fail "$py: not mapped from a memfd"
	[ "$(awk '/libsuture_agent.so/ {print $5}' "/proc/$TP/maps" | sort -u | wc -l)" = 1 ] || fail "$py: two copies"
	ls -l "/proc/$TP/fd" | grep -q memfd && fail "$py: the memfd's descriptor was left open in the target"
	"$CLIENT" "$TP" detach >"$W/i3" 2>&1 || { cat "$W/i3"; fail "$py: detach"; }
	start_client "i-$tag" "$TP" watch 1 30
	grep -q '^how=2 mode=[12] ' "$W/i-$tag.client" || { cat "$W/i-$tag.client"; fail "$py: not restarted"; }
	touch "$W/i-$tag.go"
	wait_pid "$TP" 60; rc=$?
	[ $rc -eq 1 ] || { cat "$W/i-$tag.err"; fail "$py: target exit $rc"; }
	wait_pid "$TC" 10 || fail "$py: client"
	"$PYTHON" "$FIX/check_reports.py" "$W/i-$tag.client" "$W/i-$tag.tb" 1 || fail "$py: report"
	echo "ok: $py: injected, reused, detached, restarted, watching"
done
# A process that is not CPython is refused before any thread is stopped.
sleep 30 &
SP=$!
PIDS="$PIDS $SP"
"$CLIENT" "$SP" hello >"$W/ns" 2>&1 && fail "injected into sleep"
grep -q 'not a CPython 3.11 process' "$W/ns" || { cat "$W/ns"; fail "refusal message"; }
grep -q libsuture_agent "/proc/$SP/maps" && fail "agent mapped into sleep"
kill -0 "$SP" || fail "sleep harmed"
echo "ok: a process that is not CPython is refused, untouched"
echo PASS
