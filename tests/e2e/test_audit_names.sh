#!/bin/sh
# What a user can read and type (issue 16 item 9, part): explain, rollback
# and renew take a function's name where it names one patch (an ambiguous
# one is refused, naming the candidates, exit 12); the table fits the
# terminal (cut cells end in an ellipsis), whole in a pipe; colour on a
# terminal only, never with NO_COLOR; explain never breaks the command it
# gives across lines; suture-run's lines say what their
# figures are and show no addresses.
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
AUDIT="$BUILD/bin/suture-audit"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
unset SUTURE_STORE VIRTUAL_ENV NO_COLOR COLUMNS
S="$W/store"
mkdir -p "$W/a" "$W/b"
cat >"$W/a/service_with_a_long_name.py" <<'PY'
def load(cfg):
    return cfg["timeout"]

def port(cfg):
    return cfg["a_rather_long_key_for_the_port_number"]

print(load({}), port({}))
PY
printf 'def load(cfg):\n    return cfg["retries"]\n\nprint(load({}))\n' >"$W/b/other.py"
for f in "$W/a/service_with_a_long_name.py" "$W/b/other.py"; do
	"$RUN" --python "$PYTHON" --store "$S" "$f" </dev/null >"$W/run.out" 2>>"$W/run.err" ||
		{ cat "$W/run.err"; fail "$f: exit"; }
done
grep -q "^\[suture\] guard applied: key_guard cfg\['timeout'\] -> None (return) in load (service_with_a_long_name.py:2); installed in [0-9]* functions\{0,1\} in [0-9.]* ms\$" "$W/run.err" ||
	{ cat "$W/run.err"; fail "guard applied: the figures not said"; }
grep -q "^\[suture\] resumed in flight: load went on from the fallback; its caller got the result (the call returned [0-9.]* ms later)\$" "$W/run.err" ||
	{ cat "$W/run.err"; fail "resumed: the figure not said"; }
grep -q "0x[0-9a-f]\{6,\}" "$W/run.err" && { cat "$W/run.err"; fail "an address in suture-run's lines"; }
ok "suture-run's lines: what each figure is, no address"

"$AUDIT" --store "$S" explain port >"$W/e.out" 2>"$W/e.err" || { cat "$W/e.err"; fail "explain port: exit"; }
[ "$(head -1 "$W/e.out")" = "__main__.port:5:key_guard" ] || { head -3 "$W/e.out"; fail "explain port: not that patch"; }
grep -q "^ *\(.* \)\{0,1\}suture-audit rollback __main__\.port:5:key_guard\$" "$W/e.out" ||
	{ cat "$W/e.out"; fail "explain: the rollback command is broken across lines"; }
"$AUDIT" --store "$S" explain load >"$W/e2.out" 2>"$W/e2.err"
rc=$?
[ $rc -eq 12 ] || { cat "$W/e2.err"; fail "explain load (two patches): exit $rc, not 12"; }
[ "$(wc -l <"$W/e2.err")" -eq 1 ] && grep -q '^suture-audit: "load" names 2 patches (__main__.load:2:key_guard, __main__.load:2:key_guard@[0-9a-f]*); nothing explained: give the full name$' "$W/e2.err" ||
	{ cat "$W/e2.err"; fail "explain load: the ambiguity not said in one line"; }
"$AUDIT" --store "$S" renew port --ttl 2 >"$W/r.out" 2>&1 || { cat "$W/r.out"; fail "renew port"; }
grep -q "^renewed __main__.port:5:key_guard: " "$W/r.out" || { cat "$W/r.out"; fail "renew port: line"; }
"$AUDIT" --store "$S" rollback __main__.port >"$W/b.out" 2>&1 || { cat "$W/b.out"; fail "rollback __main__.port"; }
"$AUDIT" --store "$S" --json | grep -q '"__main__.port:5:key_guard"' && fail "rollback __main__.port: still stored"
"$AUDIT" --store "$S" rollback nosuch >/dev/null 2>&1; [ $? -eq 12 ] || fail "rollback nosuch: not 12"
ok "explain/renew/rollback by function name; an ambiguous one refused with its candidates"

# The table on an 80-column terminal (a pty through script(1)), in a pipe.
command -v script >/dev/null 2>&1 || skip "script(1) (util-linux) is not installed: the terminal is not tested"
COLUMNS=80 script -qec "$AUDIT --store $S" /dev/null >"$W/tty.out" 2>&1 || fail "audit on a terminal"
tr -d '\r' <"$W/tty.out" | sed 's/\x1b\[[0-9;]*m//g' >"$W/tty.txt"
"$PYTHON" - "$W/tty.txt" 80 <<'PY' || fail "the table does not fit 80 columns"
import sys
lines = [l.rstrip("\n") for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
table = [l for l in lines if not l.startswith(("1 ", "2 ")) and "expired:" not in l]
assert all(len(l) <= int(sys.argv[2]) for l in table), [len(l) for l in table]
assert any("\u2026" in l for l in table), "nothing was cut"
PY
grep -q "$(printf '\033')\[32mactive" "$W/tty.out" || { cat -v "$W/tty.out"; fail "no colour on a terminal"; }
NO_COLOR=1 COLUMNS=80 script -qec "$AUDIT --store $S" /dev/null >"$W/nc.out" 2>&1
grep -q "$(printf '\033')" "$W/nc.out" && fail "colour with NO_COLOR"
"$AUDIT" --store "$S" >"$W/pipe.out" 2>&1
grep -q "$(printf '\033')" "$W/pipe.out" && fail "colour in a pipe"
grep -q "service_with_a_long_name.py:2" "$W/pipe.out" || { cat "$W/pipe.out"; fail "a pipe got cut cells"; }
ok "the table fits the terminal, colour on a terminal only (NO_COLOR honoured), whole in a pipe"
echo PASS
