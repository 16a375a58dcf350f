#!/bin/sh
# The manual reads as one (issue 16 item 11): every page (the four commands'
# and the suture(7) overview) has its EXAMPLES right after the SYNOPSIS, the
# same footer fields (.TH date, source "suture 0.1.0", manual "suture
# manual"), and a SEE ALSO naming every other page; each renders without a
# groff error. README's first steps come first, say `make` needs no root and
# python3.11-dbg is optional.
set -u
. "$(dirname "$0")/lib.sh"
M="$SUTURE_ROOT/docs/man"
pages="suture.7 suture-run.1 suture-attach.1 suture-audit.1 suture-dis.1"
foot=""
for p in $pages; do
	f="$M/$p"
	[ -f "$f" ] || fail "$p: missing"
	secs=$(grep '^\.SH ' "$f" | sed 's/^\.SH //; s/"//g' | tr '\n' '|')
	case "$secs" in NAME\|SYNOPSIS\|EXAMPLES\|*) ;; *) fail "$p: sections $secs (EXAMPLES not right after SYNOPSIS)" ;; esac
	th=$(grep '^\.TH ' "$f" | sed 's/^\.TH [^ ]* [0-9] //')
	[ -z "$foot" ] && foot=$th
	[ "$th" = "$foot" ] || fail "$p: footer '$th', others '$foot'"
	see=$(sed -n '/^\.SH SEE ALSO/,$p' "$f")
	self=${p%.*}
	for q in $pages; do
		n=${q%.*} s=${q##*.}
		[ "$n" = "$self" ] && continue
		echo "$see" | grep -q "^\.BR $n ($s)" || fail "$p: SEE ALSO does not name $n($s)"
	done
	if command -v groff >/dev/null 2>&1; then
		groff -man -t -Tutf8 -ww "$f" 2>"$W/groff.err" >/dev/null
		grep -v "table wider than line width\|around line" "$W/groff.err" | grep -q . &&
			{ cat "$W/groff.err"; fail "$p: groff warnings"; }
	fi
done
ok "five pages: EXAMPLES after SYNOPSIS, one footer ($foot), SEE ALSO complete"

R="$SUTURE_ROOT/README.md"
first=$(grep -n '^## First steps' "$R" | cut -d: -f1)
what=$(grep -n '^## What it does' "$R" | cut -d: -f1)
[ -n "$first" ] && [ -n "$what" ] && [ "$first" -lt "$what" ] || fail "README: First steps do not come first"
sed -n "${first},${what}p" "$R" >"$W/first"
grep -q '`make` (no root needed)' "$W/first" || fail "README: make's no-root not said"
grep -q 'optional: a built-in layout table' "$W/first" || fail "README: python3.11-dbg not said optional"
grep -q 'man suture' "$W/first" || fail "README: man suture not named"
ok "README: first steps first (build without root, python3.11-dbg optional, man suture)"
echo PASS
