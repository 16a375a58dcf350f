#!/bin/sh
# The store across processes: several store-tool processes (standing in for
# concurrent suture-run healers) add patches and count hits on one store at
# once; nothing is lost, no temporary file is left, and the index stays
# valid; several adding one name at once keep every patch. Then: a patch
# made for one program is never selected for another with the same module
# and function, and an expired one is never applicable.
set -u
. "$(dirname "$0")/lib.sh"
TOOL=$BUILD/tests/store-tool
AUDIT=$BUILD/bin/suture-audit
[ -x "$TOOL" ] && [ -x "$AUDIT" ] || fail "build $TOOL and $AUDIT first"
WORK=$W
S=$WORK/store

NPROC=6
NEACH=15
"$TOOL" add --store "$S" --name shared --guard key_guard --module m --qualname f --line 1 \
	>/dev/null || note_fail "seed"
pids=""
p=0
while [ $p -lt $NPROC ]; do
	(
		i=0
		while [ $i -lt $NEACH ]; do
			"$TOOL" add --store "$S" --name "w$p.$i" --guard index_guard --module "mod$p" \
				--qualname f --line $((i + 1)) >/dev/null || exit 1
			"$TOOL" hit --store "$S" shared || exit 1
			i=$((i + 1))
		done
	) &
	pids="$pids $!"
	p=$((p + 1))
done
for pid in $pids; do
	wait "$pid" || note_fail "writer $pid failed"
done

"$AUDIT" --store "$S" --json >"$WORK/json" || note_fail "audit after concurrent writes"
n=$(grep -c '"name":' "$WORK/json")
[ "$n" -eq $((NPROC * NEACH + 1)) ] && ok "all $n patches present" || note_fail "$n patches, wanted $((NPROC * NEACH + 1))"
p=0
while [ $p -lt $NPROC ]; do
	i=0
	while [ $i -lt $NEACH ]; do
		grep -q "\"name\":	\"w$p.$i\"" "$WORK/json" || note_fail "w$p.$i lost"
		i=$((i + 1))
	done
	p=$((p + 1))
done
hits=$(tr -d '\n\t ' <"$WORK/json" | sed 's/.*"name":"shared"[^}]*"hits":\([0-9]*\).*/\1/')
[ "$hits" = $((NPROC * NEACH)) ] && ok "shared hit count $hits" || note_fail "shared hits $hits, wanted $((NPROC * NEACH))"
left=$(ls -A "$S" | grep -v -e '^index.json$' -e '^lock$')
[ -z "$left" ] && ok "no temporary files left" || note_fail "left behind: $left"
[ "$(stat -c %a "$S")" = 700 ] && ok "store directory is 0700" || note_fail "mode $(stat -c %a "$S")"
[ "$(stat -c %a "$S/index.json")" = 600 ] && ok "index is 0600" || note_fail "index mode $(stat -c %a "$S/index.json")"

# One site healed by several programs at once: every racer has read the
# index before any adds (--wait), each adds under the same default name,
# and the name is chosen under the lock (store__add_unique, as suture-run
# stores a new patch): no patch replaces another's, 20 rounds out of 20.
ROUNDS=20
RACERS=4
r=0
kept=0
while [ $r -lt $ROUNDS ]; do
	R=$WORK/race$r
	pids=""
	i=0
	while [ $i -lt $RACERS ]; do
		"$TOOL" add --unique --wait "$WORK/go$r" --store "$R" --guard key_guard \
			--module __main__ --qualname load --line 4 --program "/srv/racer$i/app.py" \
			>"$WORK/race$r.$i" &
		pids="$pids $!"
		i=$((i + 1))
	done
	# Let every racer open the store (create it, read the index).
	n=0
	while [ $n -lt 200 ] && ! [ -d "$R" ]; do
		n=$((n + 1)); sleep 0.01
	done
	sleep 0.1
	touch "$WORK/go$r"
	for pid in $pids; do
		wait "$pid" || fail "round $r: racer $pid failed"
	done
	n=$("$AUDIT" --store "$R" --json | grep -c '"name":')
	names=$(cat "$WORK"/race$r.* | sort -u | wc -l)
	if [ "$n" -eq $RACERS ] && [ "$names" -eq $RACERS ]; then
		kept=$((kept + 1))
	else
		fail "round $r: $n patches stored and $names names given for $RACERS racers"
	fi
	r=$((r + 1))
done
[ $kept -eq $ROUNDS ] && ok "same-name racers kept every patch in $kept/$ROUNDS rounds"

# Program identity: same module and function, two scripts.
P=$WORK/p
"$TOOL" add --store "$P" --name a --guard key_guard --module app --qualname load --line 3 \
	--program /srv/one/app.py >/dev/null
"$TOOL" add --store "$P" --name b --guard key_guard --module app --qualname load --line 3 \
	--program /srv/two/app.py >/dev/null
"$TOOL" add --store "$P" --name old --guard key_guard --module app --qualname load --line 9 \
	--program /srv/one/app.py --age $((8 * 86400)) >/dev/null
"$TOOL" add --store "$P" --name gone --guard key_guard --module app --qualname load --line 7 \
	--program /srv/one/app.py --stale "code changed" >/dev/null
got=$("$TOOL" find --store "$P" --program /srv/one/app.py --module app | tr '\n' ' ')
[ "$got" = "a " ] && ok "only the program's own live patch applies" || note_fail "selected: $got"
got=$("$TOOL" find --store "$P" --program /srv/two/app.py --module app | tr '\n' ' ')
[ "$got" = "b " ] && ok "other program" || note_fail "selected for two: $got"
got=$("$TOOL" find --store "$P" --program /srv/one/app.py --module app --python 3.12.0 | tr '\n' ' ')
[ -z "$got" ] && ok "another Python version gets nothing" || note_fail "selected under 3.12: $got"

finish
