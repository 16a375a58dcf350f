#!/bin/sh
# Plant known plausible bugs one at a time and check that the suite catches
# each (issue 17): a mutation no test fails on is a hole in the tests.
# Run before landing a change to rewrite/, agent/, attach/ or store/:
#
#   make mutate            every mutation
#   tools/mutate.sh NAME   the mutations whose name contains NAME
#
# Works in a temporary clone of HEAD (the working tree is never touched):
# per mutation, one sed edit (it must change the file), a rebuild, then the
# tests named for it (tests/run.sh substrings). Prints "killed NAME (by
# TEST)" or "SURVIVED NAME", and last "N killed, N survived"; exits 1 if
# any survived or a mutation no longer applies (the code moved: update it).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FILTER=${1:-}
TMP=$(mktemp -d /tmp/suture-mutate.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
git clone -q --local "$ROOT" "$TMP/src" || exit 1
cd "$TMP/src" || exit 1
BUILD="$TMP/build"
export BUILD
make -s -j2 BUILD="$BUILD" all unit >"$TMP/build.log" 2>&1 || { tail -20 "$TMP/build.log"; exit 1; }
killed=0
survived=0
broken=0

# mutate NAME FILE SED-EXPRESSION TEST...
mutate() {
	name=$1 file=$2 expr=$3
	shift 3
	case "$name" in *"$FILTER"*) ;; *) return 0 ;; esac
	sed -i "$expr" "$file"
	if git diff --quiet -- "$file"; then
		echo "BROKEN $name: the edit no longer applies to $file"
		broken=$((broken + 1))
		return 0
	fi
	by=""
	if ! make -s -j2 BUILD="$BUILD" all unit >"$TMP/m.log" 2>&1; then
		by="the build"
	else
		for t in "$@"; do
			if ! sh tests/run.sh "$t" >"$TMP/t.log" 2>&1; then
				by=$t
				break
			fi
		done
	fi
	git checkout -q -- "$file"
	if [ -n "$by" ]; then
		echo "killed $name (by $by)"
		killed=$((killed + 1))
	else
		echo "SURVIVED $name"
		survived=$((survived + 1))
	fi
}

# The diff gate compares only each original instruction's first code unit.
mutate diffgate-first-unit rewrite/diffgate.c \
	's/memcmp(pa, pb, 2 \* (size_t)ia\[i\].size) == 0/memcmp(pa, pb, 2) == 0/' \
	test_rewrite_guard
# The verifier forgets the SEND loop's throw depth.
mutate verify-send-loop rewrite/verify.c \
	's/(int32_t)e->depth > in->depth - REWRITE_SEND_LOOP_DROP/0/' \
	test_rewrite_verify
# The probe pops to the analysed depth at a SEND loop's back jump.
mutate probe-send-depth rewrite/guard.c \
	's/base = in->depth - REWRITE_SEND_LOOP_DROP;/base = base;/' \
	test_fidelity_send
# The probe puts several lines in one block (an extra line event).
mutate probe-block-per-line rewrite/guard.c \
	's/groups\[gi\].loc.line == in->loc.line)/1)/' \
	test_rewrite_guard test_fidelity.sh
# The probe covers instructions that cannot raise (a code object rebuilt
# with new bytecode keeps an entry past its end).
mutate probe-never-raises rewrite/guard.c \
	's/^\t\t    probe_never_raises(in->opcode))/\t\t    (0 \&\& probe_never_raises(in->opcode)))/' \
	test_fidelity_rebuild
# The continuation drops NULL stack slots (a crash in a call's argument).
mutate resume-null-slots agent/resume.c \
	's/if (i >= patched->co_nlocalsplus)$/if (0)/' \
	test_resume_run
# One register of the sigreturn frame from the wrong slot.
mutate frame-register attach/arch-x86_64.c \
	's/^\tsc->r13 = r.r13;/\tsc->r13 = r.r12;/' \
	test_attach_regs
# rollback A B removes A twice.
mutate rollback-twice cli/suture-audit.c \
	's/(r = store__remove(s, names\[i\]))/(r = store__remove(s, names[0]))/' \
	test_audit.sh
# The fsync of a store file before its rename dropped.
mutate store-fsync store/store.c \
	's/if ((r = write_all(fd, data, len)) || (fsync(fd) < 0 \&\& (r = -errno)) ||/if ((r = write_all(fd, data, len)) ||/' \
	test_store_durable
# The stale check (code identity) dropped: an edited function gets old bytes.
mutate stale-identity heal/spec.c \
	's/strcmp(s->code_id, code_id) == 0;/(strcmp(s->code_id, code_id) == 0 || code_id);/' \
	test_run_behaviour
# The boot image's key check dropped: an edited function gets the patch
# derived for its old code.
mutate image-key agent/boot.c \
	's/} else if (e.key \&\& agent_codekey(head\[i\]) != e.key) {/} else if (0) {/' \
	test_run_image
# The index hash leaves out every line: a rollback no longer makes the
# image old.
mutate image-hash-nothing store/image.c \
	's/if (!counter_line(p, len))/if (!counter_line(p, len) \&\& 0)/' \
	test_store_image test_run_image
echo "$killed killed, $survived survived, $broken broken"
[ "$survived" -eq 0 ] && [ "$broken" -eq 0 ]
