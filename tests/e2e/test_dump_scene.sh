#!/bin/sh
# suture-attach --dump against real 3.11 interpreters: Debian's stripped
# python3.11 (DWARF from python3.11-dbg), Debian's debug build and pyenv's
# 3.11.7 with a shared libpython. The parked scene has 9 threads: 1200-deep
# recursion, a generator, a coroutine, closures and cells, methods, unicode
# names and big locals. The dump (JSON and text, with locals) must equal the
# interpreter's own view (sys._current_frames, f_lineno, f_locals) exactly;
# without --locals the text is the same minus the locals lines.
set -u
. "$SUTURE_ROOT/tests/fixtures/dump/lib.sh"

for py in $(pythons python dbg pyenv); do
	label=$(echo "$py" | tr '/' '_')
	start_scene "$py" "$WORK/$label.expect.json"
	check_dump "$PID" "$WORK/$label.expect.json" "$label"
	"$SA" --pid "$PID" --dump >"$WORK/$label.nolocals.txt" || fail "$py: plain dump exited $?"
	grep -v '^        ' "$WORK/$label.dump.txt" >"$WORK/$label.stripped.txt"
	cmp -s "$WORK/$label.stripped.txt" "$WORK/$label.nolocals.txt" ||
		fail "$py: --dump without --locals differs: $(diff "$WORK/$label.stripped.txt" "$WORK/$label.nolocals.txt" | head -5)"
	frames=$(grep -c '^    [^ ]' "$WORK/$label.nolocals.txt")
	[ "$frames" -ge 1240 ] || fail "$py: only $frames frames"
	echo "ok: $py ($frames frames)"
	stop_pid "$PID"
done
