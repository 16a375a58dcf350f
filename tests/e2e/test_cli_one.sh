#!/bin/sh
# One CLI (issue 16 item 8): the four commands share one table of exit
# statuses (cli/exit.h, the table in suture(7) says the same); an unknown
# option is one line naming --help, exit 2, in each; -h/--help and
# -V/--version everywhere (suture-audit's -p too); suture-attach refuses
# --dump with --watch; "no such process" is 3 for suture-attach and
# suture-audit --pid alike.
set -u
. "$(dirname "$0")/lib.sh"
B="$BUILD/bin"
for c in suture-run suture-attach suture-audit suture-dis; do
	"$B/$c" --no-such-option >"$W/o" 2>"$W/e"
	rc=$?
	[ $rc -eq 2 ] || fail "$c --no-such-option: exit $rc, not 2"
	[ "$(wc -l <"$W/e")" -eq 1 ] && grep -q "^$c: .*--no-such-option.*(see $c --help)\$" "$W/e" ||
		{ cat "$W/e"; fail "$c --no-such-option: not one line naming --help"; }
	for v in -V --version; do
		"$B/$c" $v >"$W/o" 2>&1 || fail "$c $v: exit"
		grep -q "^$c 0\.1\.0" "$W/o" || { cat "$W/o"; fail "$c $v"; }
	done
	for h in -h --help; do
		"$B/$c" $h >"$W/o" 2>&1 || fail "$c $h: exit"
		grep -q "^usage: $c" "$W/o" || { head -3 "$W/o"; fail "$c $h"; }
	done
done
ok "unknown option: one line, exit 2; -h/--help, -V/--version in all four"

"$B/suture-attach" --pid 1 --dump --watch >"$W/o" 2>"$W/e"; rc=$?
[ $rc -eq 2 ] && [ "$(cat "$W/e")" = "suture-attach: --dump, --watch and --detach: give one of them" ] ||
	{ cat "$W/e"; fail "--dump --watch: exit $rc"; }
ok "suture-attach --dump --watch refused"

# A pid that is gone: the same status from both commands.
sh -c 'exit 0' &
gone=$!
wait $gone
"$B/suture-attach" --pid "$gone" --dump >/dev/null 2>"$W/e"; a=$?
"$B/suture-audit" -p "$gone" >/dev/null 2>"$W/e2"; b=$?
[ $a -eq 3 ] && [ $b -eq 3 ] || { cat "$W/e" "$W/e2"; fail "no such process: suture-attach $a, suture-audit $b (both 3)"; }
ok "no such process: 3 from suture-attach and suture-audit -p"

# The header and the overview page list the same numbers and meanings' count.
"$PYTHON" - "$SUTURE_ROOT/cli/exit.h" "$SUTURE_ROOT/docs/man/suture.7" <<'PY' || fail "cli/exit.h and suture(7) disagree"
import re, sys
h = {int(n) for n in re.findall(r"EXIT_[A-Z_]+ = (\d+),", open(sys.argv[1]).read())}
page = open(sys.argv[2]).read()
table = page[page.index(".TS"):page.index(".TE")]
m = {int(l.split("\t")[0]) for l in table.splitlines() if re.match(r"^\d+\t", l)}
assert h == m, (sorted(h), sorted(m))
PY
for c in suture-run suture-attach suture-audit suture-dis; do
	grep -q '#include "cli/exit.h"' "$SUTURE_ROOT/cli/$c.c" || fail "$c does not use cli/exit.h"
done
ok "one table: cli/exit.h, used by the four, and suture(7) agree"
echo PASS
