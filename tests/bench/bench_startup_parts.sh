#!/bin/sh
# Where suture-run's start-up goes (figures, never assertions;
# docs/performance.md "start-up, fourth pass"): an empty script under plain
# python3.11, with the agent preloaded but inert (SUTURE_AGENT_NO_START=1),
# with the agent preloaded and started (no debugger), under suture-run with
# an empty store; and suture-run --version next to /bin/true. RUNS rounds
# (default 31), the configurations interleaved so that load changes hit
# them alike; medians of wall time and of CPU time (user+sys of the
# children, getrusage). Env: BUILD (absolute), PYTHON, RUNS.
set -u
: "${BUILD:?BUILD must be set}"
: "${PYTHON:=/usr/bin/python3.11}"
RUNS=${RUNS:-31}
W=$(mktemp -d /tmp/suture-bench-parts.XXXXXX)
trap 'rm -rf "$W"' EXIT
printf 'pass\n' >"$W/empty.py"
"$BUILD/bin/suture-run" --agent "$BUILD/lib/libsuture_agent.so" --python "$PYTHON" \
	--store "$W/store" "$W/empty.py" 2>/dev/null
echo "bench_startup_parts: $PYTHON, $(nproc) cores, $RUNS rounds, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$PYTHON" - "$RUNS" "$BUILD" "$PYTHON" "$W" <<'PY'
import os, resource, statistics, subprocess, sys, time
runs, build, py, w = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
agent = build + "/lib/libsuture_agent.so"
empty = w + "/empty.py"
base = {k: v for k, v in os.environ.items() if k not in ("SUTURE_AGENT", "LD_PRELOAD")}
def env(**kw):
    e = dict(base)
    e.update(kw)
    return e
confs = [
    ("plain python3.11, empty script", [py, empty], base),
    ("agent preloaded, inert", [py, empty], env(LD_PRELOAD=agent, SUTURE_AGENT_NO_START="1")),
    ("agent preloaded and started, no debugger", [py, empty], env(LD_PRELOAD=agent)),
    ("suture-run, empty store", [build + "/bin/suture-run", "--agent", agent, "--python", py,
                                 "--store", w + "/store", empty], base),
    ("/bin/true", ["/bin/true"], base),
    ("suture-run --version", [build + "/bin/suture-run", "--version"], base),
]
res = {n: ([], []) for n, _, _ in confs}
for _ in range(runs):
    for n, cmd, e in confs:
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=e, check=True)
        t1 = time.perf_counter()
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        res[n][0].append((t1 - t0) * 1e3)
        res[n][1].append((r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1e3)
for n, _, _ in confs:
    wall, cpu = res[n]
    print("%-42s wall median %6.2f ms (min %6.2f); CPU median %6.2f ms"
          % (n, statistics.median(wall), min(wall), statistics.median(cpu)))
PY
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (wall figures grow with it)"
