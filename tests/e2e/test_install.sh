#!/bin/sh
# An installed tree works as a user (or a Debian package) gets it, with no
# SUTURE_AGENT set (issue 16 item 3):
#   make install DESTDIR=D PREFIX=/usr   D/usr/bin on PATH: suture-run heals
#       a crash (and loads it again, then from its boot image) and
#       suture-attach --watch heals a running process; the agent
#       is found relative to the executable's real path (D/usr/lib/suture,
#       also through a symbolic link to the command); D is in no binary
#   make install PREFIX=P                a command copied away from P/bin
#       finds the agent through the compiled-in P
# The build tree is copied first (mtimes kept): installing with another
# PREFIX recompiles one file there, not in the tree other tests use.
set -u
. "$(dirname "$0")/lib.sh"
unset SUTURE_AGENT SUTURE_STORE VIRTUAL_ENV
[ -x "$BUILD/bin/suture-run" ] || fail "$BUILD/bin/suture-run: build first"
mkdir -p "$W/build"
for d in bin lib obj gen; do cp -a "$BUILD/$d" "$W/build/" || fail "copy of $BUILD/$d"; done

D="$W/dest"
make -s -C "$SUTURE_ROOT" BUILD="$W/build" PREFIX=/usr DESTDIR="$D" install >"$W/make.log" 2>&1 ||
	{ cat "$W/make.log"; fail "make install DESTDIR=$D PREFIX=/usr"; }
for f in bin/suture-run bin/suture-attach bin/suture-audit bin/suture-dis lib/suture/libsuture_agent.so \
	share/man/man1/suture-run.1 share/man/man1/suture-dis.1 share/man/man7/suture.7; do
	[ -f "$D/usr/$f" ] || fail "not installed: /usr/$f"
done
for f in "$D"/usr/bin/* "$D/usr/lib/suture/libsuture_agent.so"; do
	grep -aqF "$D" "$f" && fail "$f contains the DESTDIR $D"
done
ok "make install DESTDIR PREFIX=/usr: the tree, no DESTDIR inside"
if command -v man >/dev/null 2>&1; then
	for page in suture suture-run suture-attach suture-audit suture-dis; do
		MANWIDTH=100 man -M "$D/usr/share/man" -P cat "$page" 2>/dev/null >"$W/man.txt" ||
			fail "man $page: not found in the installed tree"
		grep -q "^NAME" "$W/man.txt" && grep -q "^EXAMPLES" "$W/man.txt" || fail "man $page: no NAME or EXAMPLES"
	done
	ok "man suture (the overview) and the four commands' pages, from the installed tree"
else
	echo "absent: man: the installed pages are not read"
fi

cp "$SUTURE_ROOT/tests/fixtures/run/wait_job.py" "$W/job.py"

PATH="$D/usr/bin:$PATH"
export PATH
[ "$(command -v suture-run)" = "$D/usr/bin/suture-run" ] || fail "suture-run on PATH: $(command -v suture-run)"
(cd "$W" && suture-run --store "$W/s1" job.py </dev/null >"$W/r.out" 2>"$W/r.err") ||
	{ rc=$?; cat "$W/r.out" "$W/r.err"; fail "installed suture-run: exit $rc"; }
grep -qx "timeout None" "$W/r.out" || { cat "$W/r.out" "$W/r.err"; fail "installed suture-run: not healed"; }
ok "installed suture-run on PATH heals"
# The next run loads the stored patch the usual way and keeps a boot image;
# the one after installs it from there (docs/formats/boot-image.md): the
# image names the installed suture-run and agent.
for n in 2 3; do
	(cd "$W" && SUTURE_AGENT_VERBOSE=1 suture-run --store "$W/s1" job.py </dev/null \
		>"$W/r$n.out" 2>"$W/r$n.err") || { cat "$W/r$n.err"; fail "installed suture-run, run $n: exit"; }
	grep -qx "timeout None" "$W/r$n.out" &&
		grep -q '^\[suture\] already healed: key_guard' "$W/r$n.err" ||
		{ cat "$W/r$n.out" "$W/r$n.err"; fail "installed suture-run, run $n: the stored patch not loaded"; }
done
grep -q "patches installed from the image" "$W/r2.err" && fail "run 2: an image before any was written"
grep -q "boot: 1 of 1 patches installed from the image" "$W/r3.err" ||
	{ cat "$W/r3.err"; fail "installed suture-run, run 3: not installed from the boot image"; }
ok "installed suture-run: the stored patch loaded, then installed from its boot image"

# Through a symbolic link elsewhere on PATH (~/bin style): the real path counts.
mkdir -p "$W/links"
ln -s "$D/usr/bin/suture-run" "$W/links/suture-run"
"$W/links/suture-run" --store "$W/s2" "$W/job.py" </dev/null >"$W/l.out" 2>"$W/l.err" ||
	{ rc=$?; cat "$W/l.out" "$W/l.err"; fail "suture-run through a symlink: exit $rc"; }
grep -qx "timeout None" "$W/l.out" || { cat "$W/l.err"; fail "suture-run through a symlink: not healed"; }
ok "a symbolic link to the installed suture-run finds the agent"

mkdir -p "$W/t"
"$PYTHON" "$W/job.py" "$W/t" >"$W/t/out" 2>"$W/t/err" &
TP=$!
track "$TP"
wait_file "$W/t/ready" 10
suture-attach --pid "$TP" --watch --store "$W/s3" 2>"$W/t/watch.err" &
TW=$!
track "$TW"
wait_grep "^\[suture\] watching pid $TP\$" "$W/t/watch.err" 20
touch "$W/t/go"
wait_pid "$TP" 30 || { cat "$W/t/out" "$W/t/err" "$W/t/watch.err"; fail "the watched job failed"; }
kill -INT "$TW" 2>/dev/null
wait_pid "$TW" 20 || { cat "$W/t/watch.err"; fail "installed suture-attach --watch: exit status"; }
grep -qx "timeout None" "$W/t/out" || { cat "$W/t/out" "$W/t/watch.err"; fail "--watch: not healed"; }
grep -q "^\[suture\] guard applied: key_guard cfg\['timeout'\]" "$W/t/watch.err" ||
	{ cat "$W/t/watch.err"; fail "--watch: no guard line"; }
ok "installed suture-attach --watch heals a running process"

# The compiled-in PREFIX: a command moved away from its tree still finds it.
P="$W/prefix"
make -s -C "$SUTURE_ROOT" BUILD="$W/build" PREFIX="$P" install >"$W/make2.log" 2>&1 ||
	{ cat "$W/make2.log"; fail "make install PREFIX=$P"; }
mkdir -p "$W/away/bin"
cp "$P/bin/suture-run" "$W/away/bin/"
"$W/away/bin/suture-run" --store "$W/s4" "$W/job.py" </dev/null >"$W/a.out" 2>"$W/a.err" ||
	{ rc=$?; cat "$W/a.out" "$W/a.err"; fail "suture-run away from PREFIX: exit $rc"; }
grep -qx "timeout None" "$W/a.out" || { cat "$W/a.err"; fail "suture-run away from PREFIX: not healed"; }
rm -rf "$P/lib/suture"
"$W/away/bin/suture-run" --store "$W/s5" "$W/job.py" </dev/null >"$W/n.out" 2>"$W/n.err"
rc=$?
[ $rc -eq 1 ] || { cat "$W/n.err"; fail "no agent anywhere: exit $rc, not 1"; }
grep -q "^suture-run: libsuture_agent.so not found (looked in $W/away/bin/\.\./lib/suture, .*, $P/lib/suture)\$" \
	"$W/n.err" || { cat "$W/n.err"; fail "no agent anywhere: message"; }
ok "the compiled-in PREFIX is looked in; a missing agent names every place"
echo PASS
