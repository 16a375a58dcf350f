#!/bin/sh
# suture-run start-up cost (figures, never assertions; docs/performance.md):
# a script with 100
# functions, each healed once and stored (so 100 patches are loaded before
# their first call, at the agent's boot hook), started RUNS times under
# suture-run, next to plain python3.11 on the same script, and next to
# suture-run with an empty store. Wall times of the whole run (the script
# itself only defines the functions and calls each with good input).
# Env: BUILD (absolute), PYTHON, RUNS (default 20), NFUNCS (default 100);
# BEFORE (absolute, optional): another tree's build, whose suture-run (and
# agent) run in the same rounds, on the same store: a before/after in one run.
set -u
: "${BUILD:?BUILD must be set}"
: "${PYTHON:=/usr/bin/python3.11}"
RUNS=${RUNS:-20}
NFUNCS=${NFUNCS:-100}
RUN="$BUILD/bin/suture-run"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
W=$(mktemp -d /tmp/suture-bench-run.XXXXXX)
trap 'rm -rf "$W"' EXIT

S="$W/app.py"
{
	echo "import sys, threading"
	i=0
	while [ $i -lt "$NFUNCS" ]; do
		printf 'def f%d(d):\n    return d["k%d"]\n\n' $i $i
		i=$((i + 1))
	done
	echo 'fs = [globals()[f"f{i}"] for i in range('"$NFUNCS"')]'
	echo 'if sys.argv[1] == "crash":'
	echo '    threading.excepthook = lambda a: None'
	echo '    for i, f in enumerate(fs):'
	echo '        t = threading.Thread(target=f, args=({},)); t.start(); t.join()'
	echo 'else:'
	echo '    for i, f in enumerate(fs):'
	echo '        assert f({f"k{i}": i}) == i'
} >"$S"

"$RUN" --python "$PYTHON" --store "$W/store" "$S" crash 2>"$W/heal.err"
n=$(grep -c "guard applied" "$W/heal.err")
"$RUN" --python "$PYTHON" --store "$W/store" "$S" quiet 2>"$W/load.err"
l=$(grep -c "already healed: key_guard" "$W/load.err")
img=no
ls "$W/store"/boot-*.img >/dev/null 2>&1 && img=yes
echo "bench_run: $PYTHON, $(nproc) cores, $NFUNCS functions, $n patches stored, $l loaded at start, boot image written: $img, $RUNS runs each"

# Wall time and CPU time (user+sys of the command and its children, from
# getrusage) of RUNS runs of each configuration, interleaved so that load
# changes hit them alike.
# The empty script (`pass`) measures start-up alone, against plain
# python3.11 on the same file.
printf 'pass\n' >"$W/empty.py"
BEFORE=${BEFORE:-} "$PYTHON" - "$RUNS" "$l" "$PYTHON" "$RUN" "$S" "$W" <<'PY'
import os, resource, subprocess, sys, time
runs, l, py, run, script, w = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
empty = w + "/empty.py"
confs = [("plain python3.11", [py, script, "quiet"]),
         ("suture-run, empty store", [run, "--python", py, "--store", w + "/empty", script, "quiet"]),
         (f"suture-run, {l} stored patches", [run, "--python", py, "--store", w + "/store", script, "quiet"]),
         # The same store, every patch derived again (no boot image:
         # docs/formats/boot-image.md), as before the image existed.
         (f"suture-run, {l} stored patches, no image",
          [run, "--python", py, "--store", w + "/store", script, "quiet"]),
         ("plain python3.11, empty script", [py, empty]),
         ("suture-run, empty script", [run, "--python", py, "--store", w + "/empty", empty])]
before = os.environ.get("BEFORE")
if before:
    confs += [(f"BEFORE suture-run, {l} stored patches",
               [before + "/bin/suture-run", "--agent", before + "/lib/libsuture_agent.so", "--python", py,
                "--store", w + "/store", script, "quiet"]),
              ("BEFORE suture-run, empty script",
               [before + "/bin/suture-run", "--agent", before + "/lib/libsuture_agent.so", "--python", py,
                "--store", w + "/empty", empty])]
# The environment of each (the no-image configuration's says so).
no_image = dict(os.environ, SUTURE_RUN_NO_IMAGE="1")
env_of = {n: (no_image if n.endswith("no image") else None) for n, _ in confs}
# What each is compared with: the plain run of the same script.
ref = {n: ("plain python3.11, empty script" if "empty script" in n else "plain python3.11")
       for n, _ in confs}
res = {name: ([], []) for name, _ in confs}
la0 = open("/proc/loadavg").read().split()[:3]
# Each round starts one configuration further on: every configuration
# runs at every place in a round equally often (on this VM the first run
# of a round was seen 8 ms slower than the second in one series, and a
# fixed order put that on plain python3.11 every time).
for r in range(runs):
    k = r % len(confs)
    for name, cmd in confs[k:] + confs[:k]:
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       env=env_of[name])
        t1 = time.perf_counter()
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        res[name][0].append((t1 - t0) * 1e3)
        res[name][1].append((r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1e3)
med = lambda v: sorted(v)[len(v) // 2]
for name, _ in confs:
    wall, cpu = res[name]
    print(f"{name:45s} wall median {med(wall):7.2f} ms (min {min(wall):7.2f}); CPU median {med(cpu):6.2f} ms")
names = [n for n, _ in confs if "suture-run" in n]
for n in names:
    p = ref[n]
    # Paired: the median of each round's difference (the rounds are
    # interleaved), steadier than a difference of medians on a VM whose
    # two CPUs drift apart.
    paired = med([a - b for a, b in zip(res[n][0], res[p][0])])
    print(f"added by {n}: wall {med(res[n][0]) - med(res[p][0]):+.2f} ms (paired {paired:+.2f}, "
          f"min to min {min(res[n][0]) - min(res[p][0]):+.2f} ms), CPU "
          f"{med(res[n][1]) - med(res[p][1]):+.2f} ms")
# As ratios to plain start-up, measured in the same interleaved rounds
# (what a loaded machine does to one it does to the other).
for n in names:
    p = ref[n]
    print(f"ratio to plain, {n}: wall median x{med(res[n][0]) / med(res[p][0]):.3f}, "
          f"min x{min(res[n][0]) / min(res[p][0]):.3f}, CPU median "
          f"x{med(res[n][1]) / med(res[p][1]):.3f}")
print(f"load average during the rounds: {la0} -> {open('/proc/loadavg').read().split()[:3]}")

# suture-run's own clock (ms after the interpreter was started), medians over the runs.
import re
pat = re.compile(r"first module reported ([-0-9.]+), agent session ([-0-9.]+), .*, \S+ held from ([-0-9.]+) to "
                 r"([-0-9.]+) \(([-0-9.]+) ms, loading patches ([-0-9.]+), released after ([-0-9.]+)\); script ended ([-0-9.]+)")
for name, cmd in confs[1:4]:
    rows = []
    env = dict(env_of[name] or os.environ, SUTURE_RUN_TIMING="1")
    for _ in range(runs):
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
        m = pat.search(p.stderr)
        if m:
            rows.append([float(x) for x in m.groups()])
    if not rows:
        print(f"{name}: no start-up clock line")
        continue
    col = lambda i: med([r[i] for r in rows])
    print(f"clock of {name} (medians, ms after the start): first module reported {col(0):.2f}, "
          f"agent session up {col(1):.2f}, script module held {col(2):.2f}..{col(3):.2f} "
          f"({col(4):.2f} ms, of which loading patches {col(5):.2f}; the module released after "
          f"{col(6):.2f}), script ended {col(7):.2f}")
PY
# Instructions executed by suture-run itself (not the interpreter it
# starts), from callgrind when valgrind is installed: unlike times, they
# do not move with the machine's load.
if command -v valgrind >/dev/null 2>&1; then
	for st in empty store noimage; do
		what="empty store"
		[ "$st" = store ] && what="$l stored patches"
		[ "$st" = noimage ] && what="$l stored patches, no image"
		dir=$st
		[ "$st" = noimage ] && dir=store
		env $([ "$st" = noimage ] && echo SUTURE_RUN_NO_IMAGE=1) \
			valgrind --tool=callgrind --callgrind-out-file=/dev/null "$RUN" --python "$PYTHON" \
			--store "$W/$dir" "$S" quiet 2>&1 >/dev/null |
			sed -n "s/.*I *refs: *\([0-9,]*\).*/suture-run's own instructions, $what: \1/p"
	done
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (wall figures grow with it)"
