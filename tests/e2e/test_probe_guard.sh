#!/bin/sh
# A probe in a function that a guard already heals (issue 14): the probe
# is built on the guarded code and removed back to it, so the guard heals
# every missing key while the probe reports and after it is gone.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
T="$SUTURE_ROOT/tests/fixtures/probe/guarded_target.py"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
PY=${PYTHON:-/usr/bin/python3.11}
LINE=$(grep -n 't = cfg\["timeout"\]' "$T" | cut -d: -f1)

D="$W/g"
mkdir -p "$D"
"$PY" "$T" "$D" 400 >"$D/out" 2>"$D/err" &
TP=$!
track $TP
wait_file "$D/ready" 20
"$ATTACH" --pid $TP --watch --store "$D/store" 2>"$D/watch.err" &
WP=$!
track $WP
wait_grep "^\[suture\] watching pid $TP\$" "$D/watch.err"
: >"$D/go"
wait_grep "guard applied" "$D/watch.err" 20
kill -INT $WP
wait_pid $WP 20 >/dev/null
"$ATTACH" --pid $TP --log "$T:$LINE" 'i={i} cfg={cfg}' --count 6 >"$D/lines" 2>"$D/attach.err" ||
	fail "--log on a guarded function: $(cat "$D/attach.err")"
[ "$(wc -l <"$D/lines")" -eq 6 ] || fail "lines: $(cat "$D/lines")"
grep -q "cfg={}$" "$D/lines" || fail "no call with the key missing reported: $(cat "$D/lines")"
grep -q "cfg={'timeout': [0-9]*}$" "$D/lines" || fail "no call with the key: $(cat "$D/lines")"
ok "a guarded function probed: calls with and without the key reported"
wait_pid $TP 60 >/dev/null
# At most the first call crashed (the one the guard was made for); every
# later call with the key missing was healed to None.
crashed=$(grep -c " crashed$" "$D/out")
[ "$crashed" -le 1 ] || fail "$crashed calls crashed: the guard stopped working"
last=$(tail -n 1 "$D/out")
[ "$last" = "399 None" ] || fail "the last call: '$last'"
[ "$(grep -c ' None$' "$D/out")" -ge 199 ] || fail "missing keys not healed: $(grep -c ' None$' "$D/out")"
ok "the guard healed every missing key while probed and after"
