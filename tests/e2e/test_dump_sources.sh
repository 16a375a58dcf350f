#!/bin/sh
# Where the interpreter layout comes from, in docs/design.md §2's order, and that
# each source gives a correct dump:
#   own .debug_info (python3.11-dbg, pyenv's libpython), the build-id debug
#   file (Debian's stripped python3.11), a .gnu_debuglink file (a stripped
#   copy of pyenv's libpython next to its .debug file), the build-time probe
#   table (a stripped copy with no debug file at all); then the per-build-id
#   cache: used on the next run, rejected and rewritten when damaged.
set -u
. "$SUTURE_ROOT/tests/fixtures/dump/lib.sh"
export XDG_CACHE_HOME="$WORK/cache"

# expect_source LABEL PID SOURCE-TEXT [options]
expect_source() {
	"$SA" --pid "$2" --dump --verbose ${4:-} >/dev/null 2>"$WORK/$1.verbose" ||
		fail "$1: exited $?: $(cat "$WORK/$1.verbose")"
	grep -q "layout from $3" "$WORK/$1.verbose" ||
		fail "$1: expected layout from '$3', got: $(head -2 "$WORK/$1.verbose")"
	echo "ok: $1: $(head -1 "$WORK/$1.verbose")"
}

start_scene "$PYTHON" "$WORK/debian.json" 40
expect_source debian "$PID" "build-id debug file" --no-cache
check_dump "$PID" "$WORK/debian.json" debian --no-cache
stop_pid "$PID"

if DBG_PY=$(py311_find dbg); then
	start_scene "$DBG_PY" "$WORK/dbg.json" 40
	expect_source dbg "$PID" "own .debug_info" --no-cache
	stop_pid "$PID"
else
	echo "absent: the own .debug_info case of a debug build, not tested: $(py311_why dbg)"
fi

if PYENV_PY=$(py311_find pyenv); then
	lib=$(dirname "$PYENV_PY")/../lib/libpython3.11.so.1.0
	start_scene "$PYENV_PY" "$WORK/pyenv.json" 40
	expect_source pyenv "$PID" "own .debug_info" --no-cache
	stop_pid "$PID"

	# .gnu_debuglink: stripped library, DWARF in a file beside it.
	mkdir -p "$WORK/link" "$WORK/bare"
	objcopy --only-keep-debug "$lib" "$WORK/link/libpython3.11.so.1.0.debug" || fail "objcopy"
	(cd "$WORK/link" && objcopy --strip-debug --add-gnu-debuglink=libpython3.11.so.1.0.debug \
		"$lib" libpython3.11.so.1.0) || fail "objcopy debuglink"
	LD_LIBRARY_PATH="$WORK/link" start_scene "$PYENV_PY" "$WORK/link.json" 40
	grep -q "$WORK/link/libpython3.11.so.1.0" /proc/"$PID"/maps || fail "stripped copy not loaded"
	expect_source debuglink "$PID" ".gnu_debuglink file" --no-cache
	check_dump "$PID" "$WORK/link.json" debuglink --no-cache
	stop_pid "$PID"

	# No DWARF anywhere: the build-time probe table.
	objcopy --strip-debug "$lib" "$WORK/bare/libpython3.11.so.1.0" || fail "objcopy strip"
	LD_LIBRARY_PATH="$WORK/bare" start_scene "$PYENV_PY" "$WORK/bare.json" 40
	grep -q "$WORK/bare/libpython3.11.so.1.0" /proc/"$PID"/maps || fail "bare copy not loaded"
	expect_source probe "$PID" "build-time probe table" --no-cache
	check_dump "$PID" "$WORK/bare.json" probe --no-cache
	stop_pid "$PID"
else
	echo "absent: pyenv's libpython cases (own .debug_info, debuglink, probe), not tested: $(py311_why pyenv)"
fi

# The cache: first run resolves and stores, second loads, damage is refused.
start_scene "$PYTHON" "$WORK/cache.json" 40
expect_source cache1 "$PID" "build-id debug file"
entry=$(ls "$XDG_CACHE_HOME"/suture/offsets-*.bin) || fail "no cache entry written"
[ "$(stat -c %a "$entry")" = 600 ] || fail "cache entry mode $(stat -c %a "$entry")"
expect_source cache2 "$PID" "cache"
check_dump "$PID" "$WORK/cache.json" cached
printf 'garbage' | dd of="$entry" bs=1 seek=200 conv=notrunc 2>/dev/null
expect_source cache3 "$PID" "build-id debug file"
expect_source cache4 "$PID" "cache"
stop_pid "$PID"
echo "ok: all layout sources"
