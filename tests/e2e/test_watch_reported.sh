#!/bin/sh
# Structural crashes next to handlers that do not catch them are reported
# (inside `with lock:`, try/finally, a non-matching except, __init__, a
# method, a decorated function called through *args, a comprehension, a
# closure; KeyError, IndexError, ZeroDivisionError, AttributeError on None,
# calling None, int("twelve"), str + int, a missing file), each in a thread
# of its own, then one in the main thread: 13 reports, each naming the
# thread, code object and instruction offset of the interpreter's own
# traceback. Both interpreters; Debian's also with the trace fallback.
. "$(dirname "$0")/test_agent_lib.sh"

run() { # name py
	start_target "$1" preload "$2" "$FIX/watch_target.py" "$W/$1" reported
	start_client "$1" -n "$TP" watch 13 30
	touch "$W/$1.go"
	wait_pid "$TP" 60; rc=$?
	[ $rc -eq 1 ] || { cat "$W/$1.err"; fail "$1: target exit $rc, expected 1"; }
	wait_pid "$TC" 10; crc=$?
	[ $crc -eq 0 ] || { cat "$W/$1.client" "$W/$1.client.err"; fail "$1: client exit $crc"; }
	"$PYTHON" "$FIX/check_reports.py" "$W/$1.client" "$W/$1.tb" 13 ||
		{ cat "$W/$1.client"; fail "$1: reports"; }
	echo "ok: $1 ($2): 13 crashes reported where they happened"
}

for py in $(pythons_dbg); do
	run "r-$(pytag "$py")" "$py"
done
SUTURE_AGENT_MODE=trace run r-trace "$PYTHON"
echo PASS
