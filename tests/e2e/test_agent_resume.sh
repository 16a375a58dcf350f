#!/bin/sh
# In-flight resume (docs/design.md §9): a job's loop crashes on a bad
# record; the debugger installs a handler guard for the function and
# resumes the parked call: the call continues from the failing statement
# with its locals and its loop iterator, every remaining record is
# processed, the caller receives the result from the one call (the function
# ran once), sys.exc_info() is clean, later calls are healed. When the
# continuation itself raises, that exception is the call's outcome. A later,
# unrelated exception at the same call site in the same caller frame is
# re-raised to the caller's own handler, never swallowed. When
# the frame was entered from C (a thread's target), the C caller gets the
# result; where that thread has a profile function, resume is refused with
# its reason, the exception goes on untouched and later calls are healed.
# Then the cases of resume_cases.py: the loop inside `with lock:` (released
# exactly once), try/finally (finally body once), a closure updating a
# nonlocal through its cell, a method, a worker thread while other threads
# run, an already specialized caller, a generator as the caller, and
# 100,000 records with 50,000 bad
# ones (one call; 500,000 more healed KeyErrors with memory flat).
# Both interpreters, LD_PRELOAD and remote injection, and Debian's debug
# interpreter (python3.11-dbg: its assertions check CPython's invariants).
. "$(dirname "$0")/test_agent_lib.sh"

run() { # name how py mode expected-status expected-outcome
	opt=""; [ "$2" = preload ] && opt=-n
	start_target "$1" "$2" "$3" "$FIX/resume_target.py" "$W/$1" "$4"
	start_client "$1" $opt "$TP" watch 1 30 resume "$W/$1.spec"
	touch "$W/$1.go"
	wait_pid "$TP" 30; rc=$?
	wait_pid "$TC" 10
	grep -q "^resumed status=$5 " "$W/$1.client" ||
		{ cat "$W/$1.client" "$W/$1.client.err"; fail "$1: resume status is not $5"; }
	[ $rc -eq 0 ] || { cat "$W/$1.out" "$W/$1.err"; fail "$1: target exit $rc"; }
	grep -q "$6" "$W/$1.out" || { cat "$W/$1.out"; fail "$1: outcome"; }
	echo "ok: $1: $(grep '^resumed' "$W/$1.client" | cut -c1-80) / $(head -1 "$W/$1.out" | cut -c1-70)"
}

for py in $(pythons_dbg); do
	tag=$(pytag "$py")
	for how in preload plain; do
		run "ok-$how-$tag" $how "$py" ok 0 \
			'^outcome \[0, 2, 4, 6, 8, -2, 12, 14, 16, 18\] calls=1 exc_info=None'
	done
	run "raise-$tag" preload "$py" raise 1 "^outcome TypeError calls=1"
	run "again-$tag" preload "$py" again 0 \
		"^outcome again \[\[0, 2, 4, 6, 8, -2, 12, 14, 16, 18\], 'TypeError'\] calls=2"
	run "fromc-$tag" preload "$py" fromc 0 \
		"^outcome fromc thread=\[\] result=healed later=\[2, -2, 6\] calls=2"
	run "profiled-$tag" preload "$py" profiled -95 \
		"^outcome profiled thread=\['KeyError'\] result=\[\] later=\[2, -2, 6\]"
	grep -q "profile function" "$W/profiled-$tag.client" ||
		{ cat "$W/profiled-$tag.client"; fail "profiled-$tag: no reason given"; }
	for c in with finally closure method thread quickened generator many; do
		n="case-$c-$tag"
		start_target "$n" preload "$py" "$FIX/resume_cases.py" "$W/$n" "$c"
		start_client "$n" -n "$TP" watch 1 30 resume "$W/$n.spec"
		touch "$W/$n.go"
		wait_pid "$TP" 60; rc=$?
		wait_pid "$TC" 10
		grep -q '^resumed status=0 ' "$W/$n.client" ||
			{ cat "$W/$n.client" "$W/$n.client.err" "$W/$n.err"; fail "$n: not resumed"; }
		[ $rc -eq 0 ] || { cat "$W/$n.out" "$W/$n.err"; fail "$n: checks failed"; }
		echo "ok: $n: $(cat "$W/$n.out")"
	done
done
echo PASS
