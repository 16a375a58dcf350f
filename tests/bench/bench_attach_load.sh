#!/bin/sh
# Loading stored patches at attach (figures, never assertions):
# `suture-attach --pid N --watch` on a plain python3.11 running a program of
# NCLASSES classes of 10 methods each (tests/fixtures/heal/many_classes.py),
# from the command's start to "[suture] watching pid N" (its own clock):
# with a store holding two patches of the program (a method of the last
# class and a module function), which makes suture walk every class, and
# with an empty store. Env: BUILD (absolute), PYTHON, ROUNDS (default 5),
# NCLASSES (default 2000).
set -u
: "${BUILD:?BUILD must be set}"
: "${PYTHON:=/usr/bin/python3.11}"
: "${SUTURE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
ROUNDS=${ROUNDS:-5}
NCLASSES=${NCLASSES:-2000}
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
T="$SUTURE_ROOT/tests/fixtures/heal/many_classes.py"
W=$(mktemp -d /tmp/suture-bench-attach-load.XXXXXX)
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf "$W"' EXIT
stats() { # numbers on stdin -> "median X, min Y, max Z"
	sort -g | awk '{ v[NR] = $1 } END { if (!NR) { print "n/a"; exit }
		printf "median %.2f ms, min %.2f, max %.2f (n=%d)", v[int((NR + 1) / 2)], v[1], v[NR], NR }'
}

echo "bench_attach_load: $PYTHON, $NCLASSES classes x 10 methods, $ROUNDS rounds, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD/bin/suture-run" --python "$PYTHON" --store "$W/store" -- "$T" "$NCLASSES" once \
	>"$W/once.out" 2>"$W/once.err" || { cat "$W/once.err"; echo "bench_attach_load: first run failed"; exit 1; }
mkdir "$W/empty"
for store in store empty; do
	: >"$W/t.$store"
	for r in $(seq "$ROUNDS"); do
		rm -f "$W/ready"
		"$PYTHON" "$T" "$NCLASSES" "$W/ready" &
		TP=$!
		PIDS="$PIDS $TP"
		n=0
		while [ ! -s "$W/ready" ]; do
			n=$((n + 1)); [ $n -gt 1000 ] && { echo "bench_attach_load: target never ready"; exit 1; }
			sleep 0.01
		done
		"$BUILD/bin/suture-attach" --pid "$TP" --watch --store "$W/$store" --verbose --timeout 0.2 \
			2>"$W/a.err"
		[ $store = store ] && ! grep -q "already healed: .* in C$((NCLASSES - 1)).m9 " "$W/a.err" &&
			{ cat "$W/a.err"; echo "bench_attach_load: the method was not loaded"; exit 1; }
		sed -n 's/.*; watching \([0-9.]*\) ms after start.*/\1/p' "$W/a.err" >>"$W/t.$store"
		kill -9 "$TP" 2>/dev/null
		wait "$TP" 2>/dev/null
	done
done
echo "attach to watching, 2 stored patches loaded (every class walked): $(stats <"$W/t.store")"
echo "attach to watching, empty store:                                 $(stats <"$W/t.empty")"
