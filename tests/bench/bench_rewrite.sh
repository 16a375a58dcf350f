#!/bin/sh
# Bytecode engine throughput vs Debian's python3-bytecode, in one run, on
# the same code objects: a deterministic sample (every STEP-th code object)
# of the non-test standard library, plus suture's figure on the whole
# stdlib corpus (tests included). Rates are per CPU second of each side's
# own process (robust on a loaded machine). Figures only, no assertion.
#   BUILD=build sh tests/bench/bench_rewrite.sh     (or: make bench B=rewrite)
set -eu
ROOT=${SUTURE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
PYTHON=${PYTHON:-/usr/bin/python3.11}
STEP=${STEP:-25}
bin="$BUILD/tests/bench/bench_rewrite"
[ -x "$bin" ] || { echo "missing $bin (make bench)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PYTHON" - "$ROOT/tests/fixtures" "$work/sample.dump" "$STEP" <<'PY' >"$work/py.out"
import sys, time
sys.path.insert(0, sys.argv[1])
import codedump
from bytecode import Bytecode
out, step = sys.argv[2], int(sys.argv[3])
codes = []
def walk(c):
    codes.append(c)
    for k in c.co_consts:
        if isinstance(k, type(c)):
            walk(k)
import warnings
warnings.simplefilter("ignore")
for path in codedump.stdlib_files(False):
    try:
        walk(compile(open(path, "rb").read(), path, "exec", dont_inherit=True))
    except (SyntaxError, ValueError):
        pass
sample = codes[::step]
d = codedump.Dump()
for c in sample:
    d.add(c, nested=False)  # exactly the sampled objects on both sides
d.write(out)
failed = 0
t, w = time.process_time(), time.perf_counter()
for c in sample:
    try:
        Bytecode.from_code(c).to_code()
    except Exception:
        failed += 1
dt, w = time.process_time() - t, time.perf_counter() - w
print("python3-bytecode: %d code objects in %.3f s CPU (%.3f s wall): %.0f code objects per CPU "
      "second (Bytecode.from_code(c).to_code(), %d failed)" % (len(sample), dt, w, len(sample) / dt,
                                                             failed))
print("rate=%.1f" % (len(sample) / dt))
PY
"$bin" "$work/sample.dump" 2 >"$work/c.out"
grep -v '^rate=' "$work/py.out"
grep -v '^rate=' "$work/c.out"
py=$(sed -n 's/^rate=//p' "$work/py.out")
c=$(sed -n 's/^rate=//p' "$work/c.out")
awk -v c="$c" -v p="$py" 'BEGIN { printf "ratio (same sample): suture is %.0fx faster than python3-bytecode\n", c / p }'
"$PYTHON" "$ROOT/tests/fixtures/codedump.py" "$work/full.dump" --stdlib 2>/dev/null
printf 'whole stdlib corpus: '
"$bin" "$work/full.dump" 2 | grep -v '^rate='
