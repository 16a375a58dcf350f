#!/bin/sh
# The interpreter's memory allocator options with suture (found while
# checking issue 16 item 4's interpreter flags): `-X dev`, PYTHONDEVMODE and
# PYTHONMALLOC=debug install the debug hooks during the pre-initialization,
# PYTHONMALLOC=malloc removes a debug build's; the agent's audit hook entry,
# allocated before that (agent/boot.c), was freed by the other allocator at
# exit: "Debug memory block ... bad ID" and a segfault (or glibc's abort),
# after the program had run and been healed. Every combination must exit 0,
# healed, with nothing of the kind on stderr. Debian's release and debug
# builds and pyenv's 3.11 where installed.
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
unset SUTURE_STORE VIRTUAL_ENV PYTHONMALLOC PYTHONDEVMODE
printf 'def load(cfg):\n    return cfg["timeout"]\n\nprint("timeout", load({}))\n' >"$W/job.py"
n=0
for py in $(pythons_dbg); do
	tag=$(pytag "$py")
	for how in "-X dev" "-Xdev -u" "PYTHONDEVMODE=1" "PYTHONMALLOC=debug" "PYTHONMALLOC=malloc" \
		"PYTHONMALLOC=pymalloc_debug" "-E PYTHONMALLOC=debug" "-I -X dev"; do
		n=$((n + 1))
		flags="" envs=""
		for w in $how; do case "$w" in *=*) envs="$envs $w" ;; *) flags="$flags $w" ;; esac; done
		# shellcheck disable=SC2086
		env $envs "$RUN" --store "$W/s$n" -- "$py" $flags "$W/job.py" </dev/null >"$W/$n.out" 2>"$W/$n.err"
		rc=$?
		[ $rc -eq 0 ] || { cat "$W/$n.err"; fail "$tag $how: exit $rc"; }
		grep -qx "timeout None" "$W/$n.out" || { cat "$W/$n.err"; fail "$tag $how: not healed"; }
		grep -q "Debug memory block\|Fatal Python error\|free(): invalid\|bad ID" "$W/$n.err" &&
			{ cat "$W/$n.err"; fail "$tag $how: the allocator complained"; }
	done
	ok "$tag: -X dev, PYTHONDEVMODE, PYTHONMALLOC=debug|malloc|pymalloc_debug, -E, -I: healed, clean exit"
done
echo PASS
