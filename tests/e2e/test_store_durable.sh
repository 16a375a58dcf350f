#!/bin/sh
# The store's writes are durable in order (store/store.c, docs/formats/
# store.md): every file is written to a new temporary name, fsync'd, renamed
# over its name, then its directory is fsync'd. A missing fsync shows in no
# functional test (the page cache survives a killed process), only after a
# power loss; the system calls themselves are checked here with strace, for
# index.json and the code/ files a real heal writes.
set -u
. "$(dirname "$0")/lib.sh"
command -v strace >/dev/null 2>&1 || skip "needs strace (apt-get install strace; make deps installs it)"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
cp "$SUTURE_ROOT/tests/fixtures/run/key_app.py" "$W/app.py"
# suture-run's own process writes the store: no -f (the target is not traced).
strace -qq -y -e trace=fsync,fdatasync,rename,renameat,renameat2,open,openat -o "$W/trace" \
	"$BUILD/bin/suture-run" --python "$PYTHON" --store "$W/s" "$W/app.py" >"$W/out" 2>"$W/err" ||
	{ cat "$W/err"; fail "suture-run under strace"; }
grep -q "stored patch" "$W/err" || { cat "$W/err"; fail "nothing stored"; }
# For each rename into the store: the temporary file was fsync'd after it
# was opened and before the rename, and the directory after the rename.
awk -v store="$W/s" '
	/^(fsync|fdatasync)\(/ {
		p = $0; sub(/^[a-z]*\([0-9]*</, "", p); sub(/>.*/, "", p)
		synced[p] = NR; next
	}
	/^renameat2?\(/ {
		split($0, q, "\"")
		dir = $0; sub(/^renameat2?\([0-9]*</, "", dir); sub(/>.*/, "", dir)
		if (index(dir, store) != 1) next
		n++
		tmp = dir "/" q[2]
		if (!(tmp in synced)) { print "not fsynced before rename: " tmp; bad = 1 }
		pending[dir] = NR; name[dir] = q[4]
		next
	}
	END {
		for (d in pending)
			if (!(d in synced) || synced[d] < pending[d]) {
				print "directory not fsynced after renaming " name[d] ": " d; bad = 1
			}
		if (n < 2) { print "expected renames of index.json and a code file, saw " n; bad = 1 }
		exit bad
	}' "$W/trace" || { cat "$W/trace"; fail "store writes not durable in order"; }
grep -q '"index.json"' "$W/trace" && grep -q 'code>, "[0-9a-f]*\.json"' "$W/trace" ||
	{ cat "$W/trace"; fail "index.json and a code file were not both written"; }
ok "index.json and code/ files: fsync, rename, directory fsync"
echo PASS
