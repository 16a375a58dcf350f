#!/bin/sh
# Handled exceptions (try/except in a caller or the same frame, hasattr,
# getattr with a default, iteration protocols, dict.get, json's own
# ValueError, a KeyError in __init__ caught by the caller), deliberate
# raise/assert and an error raised inside the standard library are never
# reported; the one structural crash after them is, with the thread, code
# object and instruction offset the interpreter's own traceback names.
# Entry-jump watcher and trace fallback, every interpreter.
. "$(dirname "$0")/test_agent_lib.sh"

for py in $(pythons_dbg); do
	for mode in jump trace; do
		n="h-$mode-$(pytag "$py")"
		if [ $mode = trace ]; then export SUTURE_AGENT_MODE=trace; else unset SUTURE_AGENT_MODE; fi
		start_target "$n" preload "$py" "$FIX/watch_target.py" "$W/$n" handled
		start_client "$n" -n "$TP" watch 5 20
		want='[12]'; [ $mode = trace ] && want=3
		grep -q "^how=0 mode=$want " "$W/$n.client" || { cat "$W/$n.client"; fail "$py: watch mode is not $want"; }
		touch "$W/$n.go"
		wait_pid "$TP" 60; rc=$?
		[ $rc -eq 1 ] || { cat "$W/$n.err"; fail "$py $mode: target exit $rc, expected 1"; }
		kill -9 "$TC" 2>/dev/null; wait "$TC" 2>/dev/null
		"$PYTHON" "$FIX/check_reports.py" "$W/$n.client" "$W/$n.tb" 1 ||
			{ cat "$W/$n.client"; fail "$py $mode: reports"; }
		grep -q "func=lookup" "$W/$n.client" || fail "$py $mode: the crash is not in lookup"
		echo "ok: $py $mode: 1 crash reported, handled patterns silent"
	done
done
unset SUTURE_AGENT_MODE
echo PASS
