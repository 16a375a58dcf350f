#!/bin/sh
# The whole-library fidelity sweep (issue 17; docs/fidelity.md): every code
# object of the standard library's own files given the fidelity probe, and
# CPython's test suites for the modules below run against it and compared
# case by case with a baseline run of the same suites by the same runner
# (tests/fixtures/guards/sweep.py), on each 3.11 interpreter here: Debian's,
# its debug build, pyenv's. Ends with "N passed, N failed" (suites
# identical to the baseline / suites with an unexpected difference).
#
#   make fidelity                 every suite, every interpreter
#   tools/fidelity.sh [SUITE...]  those suites only
#   make fidelity GUARDS=all      real guards instead of the probe: for each
#                                 guard kind (or GUARDS="key_guard ..."), that
#                                 kind's guard at every site of it the analyser
#                                 accepts in library code, its fallback never
#                                 taken, and GUARD_SUITES compared (one baseline
#                                 run shared by the kinds)
#   make fidelity RUNTIME=1       code compiled at run time (compile(), doctest,
#                                 exec/eval of text) probed too
# Env: SWEEP_JOBS (2: suites run at a time), SWEEP_KINDS ("python dbg pyenv"),
# SWEEP_OUT (a directory kept for the caches and logs; a temporary one).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
SWEEP_RUNTIME=${RUNTIME:-${SWEEP_RUNTIME:-}}
export BUILD SUTURE_ROOT="$ROOT" SUTURE_AGENT_NO_START=1 SWEEP_RUNTIME
PYTHON=${PYTHON:-/usr/bin/python3.11}
# shellcheck source=../tests/e2e/lib.sh
. "$ROOT/tests/e2e/lib.sh"
for f in "$BUILD/tests/e2e/test_guards_tool" "$BUILD/lib/libsuture_agent.so"; do
	[ -e "$f" ] || fail "missing $f (make all unit)"
done

SUITES="test_generators test_coroutines test_asyncgen test_contextlib test_contextlib_async
test_sys_settrace test_pdb test_trace test_with test_scope test_raise test_exceptions
test_exception_group test_except_star test_traceback test_warnings test_patma test_unpack
test_class test_descr test_property test_super test_types test_context
test_asyncio.test_tasks test_asyncio.test_futures test_asyncio.test_locks
test_asyncio.test_queues test_asyncio.test_taskgroups test_asyncio.test_timeouts
test_asyncio.test_streams test_asyncio.test_pep492
test_json test_textwrap test_difflib test_statistics test_fractions test_heapq test_bisect
test_shlex test_csv test_string test_base64 test_collections test_functools test_itertools
test_operator test_enum test_dataclasses test_typing test_abc test_copy test_re test_argparse
test_configparser test_fnmatch test_glob test_posixpath test_genericpath test_shutil
test_tempfile test_struct test_binascii test_hmac test_random test_calendar test_pprint
test_reprlib test_weakref test_doctest test_unittest test_ast test_tokenize test_html
test_htmlparser test_urlparse test_uuid test_ipaddress test_gzip test_queue test_sched
test_graphlib test_getopt test_optparse test_cmd test_quopri test_plistlib test_colorsys
test_gettext test_mimetypes test_netrc test_zipfile"
# The guard sweep's suites (ten kinds, each a full run): generators,
# coroutines, tracing, exceptions and 22 library modules whose code the
# guards fill.
GUARD_SUITES="test_generators test_coroutines test_asyncgen test_contextlib test_sys_settrace
test_with test_exceptions test_traceback test_warnings test_asyncio.test_tasks test_json
test_textwrap test_difflib test_fractions test_shlex test_csv test_string test_base64
test_collections test_functools test_enum test_dataclasses test_copy test_re test_argparse
test_configparser test_posixpath test_pprint test_urlparse test_ipaddress test_html
test_gettext"
GUARDS=${GUARDS:-}
[ "$GUARDS" = all ] && GUARDS="null_guard index_guard key_guard subscript_guard
chain_subscript_guard type_coercion_guard division_guard str_coerce_guard file_guard
callable_guard"
[ -n "$GUARDS" ] && SUITES=$GUARD_SUITES
[ $# -gt 0 ] && SUITES="$*"

total_p=0
total_f=0
O=${SWEEP_OUT:-$W}
mkdir -p "$O/base-python" "$O/base-dbg" "$O/base-pyenv"
for kind in ${SWEEP_KINDS:-python dbg pyenv}; do
	if ! py=$(py311_find "$kind"); then
		echo "absent: $kind interpreter, not swept: $(py311_why "$kind")"
		continue
	fi
	cache="$O/cache-$kind"
	# shellcheck disable=SC2086
	"$py" "$ROOT/tests/fixtures/guards/sweep.py" prepare "$cache" $GUARDS || fail "$kind: prepare"
	for g in ${GUARDS:-probe}; do
		c=$cache
		[ "$g" = probe ] || c="$cache/$g"
		# shellcheck disable=SC2086
		SWEEP_BASELINE="$O/base-$kind" "$py" "$ROOT/tests/fixtures/guards/sweep.py" compare \
			"$c" "$O/out-$kind-$g" $SUITES | tee "$O/$kind-$g.log" | sed "s|^|$kind: $g: |"
		line=$(tail -1 "$O/$kind-$g.log")
		total_p=$((total_p + ${line%% passed*}))
		f=${line#*, }
		total_f=$((total_f + ${f%% failed*}))
	done
done
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
