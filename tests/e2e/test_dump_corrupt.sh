#!/bin/sh
# Dumps of a damaged interpreter (issue 15, item 9): a target corrupts its
# own frames and thread states with ctypes (tests/fixtures/dump/corrupt.py),
# and suture-attach --dump (text and --json, with --locals) must list every
# thread once, mark exactly what is wrong, keep every valid frame, and exit
# 0 (tests/fixtures/dump/corrupt_check.py): a frame cycle of 3 (each frame
# once, not 100,000), a frame whose previous is itself (it is shown, then
# the loop), an unreadable tstate->cframe (that thread marked, the others
# dumped), a tstate->next to unmapped memory, to bytes that are no thread
# state, back to the list's head (each marked as a thread-list error), and
# all of them together. The target is not harmed.
set -u
. "$SUTURE_ROOT/tests/fixtures/dump/lib.sh"

for modes in "" cycle self cframe next bogus loop cycle,self,cframe,next; do
	label=${modes:-none}
	R="$WORK/ready-$(echo "$label" | tr , _)"
	"$PYTHON" "$FIX/corrupt.py" "$modes" "$R" >"$R.out" 2>&1 &
	P=$!
	PIDS="$PIDS $P"
	wait_for 20 test -s "$R" || {
		wait $P
		[ $? -eq 3 ] && skip "$(cat "$R.out")"
		fail "$label: target not ready: $(cat "$R.out")"
	}
	"$SA" --pid "$P" --dump --locals --json >"$R.json" 2>"$R.err" ||
		fail "$label: --json exit $?: $(cat "$R.err")"
	"$SA" --pid "$P" --dump >"$R.txt" 2>>"$R.err" || fail "$label: text exit $?: $(cat "$R.err")"
	"$PYTHON" "$FIX/corrupt_check.py" "$modes" "$R.json" "$R.txt" ||
		{ cat "$R.txt"; fail "$label: the dumps"; }
	kill -0 "$P" || fail "$label: the target died"
	ok "$label: $(grep -c . "$R.txt") lines; $(grep -E '^ *<(frame|thread)' "$R.txt" | tr '\n' ' ')"
	stop_pid "$P"
done
echo PASS
