#!/bin/sh
# suture-run installs stored patches before the first call everywhere: in
# __main__, in imported modules, and for functions called while their module
# is being imported (the agent's boot hook parks the module before its body
# runs). With --no-resume every crash ends a run, so the script needs
# several re-runs, each loading what the previous ones stored; then a clean
# run, where a healed function is also called while its module is being
# imported, applies nothing new and crashes nowhere. With in-flight resume
# (the default) the first run already completes, also when the first crash
# happens while a module is being imported.
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
cp "$SUTURE_ROOT"/tests/fixtures/run/imports/*.py "$W/"

check_out() { # FILE
	for l in "level None" "port None" "rows [1, None]" "mean 0.0" "done" "$2"; do
		grep -qxF "$l" "$1" || { cat "$1"; fail "missing output line '$l'"; }
	done
}

pys=$(pythons python pyenv)
for py in $pys; do
	S="$W/store-$(echo "$py" | tr / _)"
	"$RUN" --python "$py" --store "$S" --no-resume --retries 5 "$W/app.py" >"$W/o1" 2>"$W/e1"
	rc=$?
	[ $rc -eq 0 ] || { cat "$W/o1" "$W/e1"; fail "$py: --no-resume run exited $rc"; }
	check_out "$W/o1" "import-time level unset"
	n=$(grep -c "^\[suture\] guard applied:" "$W/e1")
	[ "$n" -eq 4 ] || { cat "$W/e1"; fail "$py: $n guards applied, not 4"; }
	grep -q "^\[suture\] re-running" "$W/e1" || fail "$py: never re-run"
	# Now defaults() is also called while helper is imported: healed before.
	IMPORT_TIME=1 "$RUN" --python "$py" --store "$S" "$W/app.py" >"$W/o2" 2>"$W/e2" ||
		{ cat "$W/e2"; fail "$py: clean run"; }
	check_out "$W/o2" "import-time level None"
	grep -q "^\[suture\] already healed: key_guard d\['level'\] -> None in defaults (helper.py:" "$W/e2" ||
		{ cat "$W/e2"; fail "$py: the import-time call was not healed before it ran"; }
	grep -q "crash seen" "$W/e2" && { cat "$W/e2"; fail "$py: a crash in the clean run"; }
	grep -q "^\[suture\] patches applied: 0, already healed: 4$" "$W/e2" || { cat "$W/e2"; fail "$py: clean run summary"; }
	echo "ok: $py: __main__, imported module, import-time call, method comprehension loaded before first call"

	# The same files reached through a symbolic link to their directory:
	# the modules' file names are not the listed real paths, and the boot
	# hook still knows them (by device and inode) before they run.
	ln -sfn "$W" "$W/via"
	IMPORT_TIME=1 "$RUN" --python "$py" --store "$S" "$W/via/app.py" >"$W/o5" 2>"$W/e5" ||
		{ cat "$W/e5"; fail "$py: run through a symlink"; }
	check_out "$W/o5" "import-time level None"
	grep -q "crash seen" "$W/e5" && { cat "$W/e5"; fail "$py: through a symlink: a crash"; }
	grep -q "^\[suture\] patches applied: 0, already healed: 4$" "$W/e5" ||
		{ cat "$W/e5"; fail "$py: through a symlink: the stored patches were not loaded first"; }
	echo "ok: $py: modules reached through a symlinked directory get their patches first"

	S2="$S-resume"
	"$RUN" --python "$py" --store "$S2" "$W/app.py" >"$W/o3" 2>"$W/e3"
	rc=$?
	[ $rc -eq 0 ] || { cat "$W/o3" "$W/e3"; fail "$py: resume run exited $rc"; }
	check_out "$W/o3" "import-time level unset"
	grep -q "^\[suture\] re-running" "$W/e3" && { cat "$W/e3"; fail "$py: re-run although every crash was resumed"; }
	[ "$(grep -c "^\[suture\] resumed in flight" "$W/e3")" -eq 4 ] || { cat "$W/e3"; fail "$py: not all resumed"; }
	[ "$(grep -c "^done$" "$W/o3")" -eq 1 ] || fail "$py: ran twice"
	echo "ok: $py: every crash resumed in flight, one run"

	# A crash while helper is being imported, in the first run: seen
	# through importlib's frames (whose handlers re-raise), healed and
	# resumed in flight, so the import completes.
	S3="$S-import"
	IMPORT_TIME=1 "$RUN" --python "$py" --store "$S3" "$W/app.py" >"$W/o4" 2>"$W/e4"
	rc=$?
	[ $rc -eq 0 ] || { cat "$W/o4" "$W/e4"; fail "$py: import-time crash: exit $rc"; }
	check_out "$W/o4" "import-time level None"
	grep -q "^\[suture\] crash seen: KeyError: 'level' in defaults (helper.py:" "$W/e4" ||
		{ cat "$W/e4"; fail "$py: the import-time crash was not seen"; }
	grep -q "^\[suture\] re-running" "$W/e4" && { cat "$W/e4"; fail "$py: import-time crash: re-run"; }
	[ "$(grep -c "^\[suture\] resumed in flight" "$W/e4")" -eq 4 ] || { cat "$W/e4"; fail "$py: import-time crash: not all resumed"; }
	echo "ok: $py: a crash during an import healed and resumed in flight"
done
echo PASS
