/* rewrite/verify.c: the structural invariants CPython 3.11 relies on
 * when it runs a code object (docs/formats/bytecode.md). */
#include <errno.h>

#include "rewrite/rewrite-priv.h"

int rewrite_code__verify(struct rewrite_code *code, struct rewrite_diag *diag)
{
	const struct rewrite_code_info *info = code->info;
	int err, max = 0;
	/* Structure first (the analysis relies on it), then depths. */
	if ((err = rw_layout(code, diag)))
		return err;
	size_t n = code->ninstrs;
	for (size_t k = 0; k < n; k++) {
		const struct rewrite_instr *in = &code->instrs[k];
		if (!(rw_opinfo[in->opcode].flags & RW_OP_CANONICAL) || in->opcode == 0)
			return rw_fail(diag, info, -EINVAL, in->offset,
				       "opcode %u at unit %u is not canonical", in->opcode,
				       in->offset);
		if (rewrite_opcode__is_jump(in->opcode)) {
			if (in->target < 0 || (size_t)in->target >= n)
				return rw_fail(diag, info, -EINVAL, in->offset,
					       "jump at unit %u has no target instruction",
					       in->offset);
		} else if (in->target >= 0) {
			return rw_fail(diag, info, -EINVAL, in->offset,
				       "%s at unit %u is not a jump but has a target",
				       rw_opinfo[in->opcode].name, in->offset);
		}
	}
	for (size_t x = 0; x < code->nexc; x++) {
		const struct rewrite_exc *e = &code->excs[x];
		if (e->end <= e->start)
			return rw_fail(diag, info, -EINVAL, e->start,
				       "exception entry %zu is empty", x);
		if (e->end > code->nunits)
			return rw_fail(
				diag, info, -EINVAL, e->start,
				"exception entry %zu ends at unit %u, beyond the code (%u units)",
				x, e->end, code->nunits);
		if (x > 0 && e->start < code->excs[x - 1].end)
			return rw_fail(diag, info, -EINVAL, e->start,
				       "exception entry %zu overlaps or precedes entry %zu", x,
				       x - 1);
		if (rw_instr_starting_at(code, e->start) < 0 ||
		    (e->end < code->nunits && rw_instr_starting_at(code, e->end) < 0))
			return rw_fail(diag, info, -EINVAL, e->start,
				       "exception entry %zu [%u, %u) cuts an instruction", x,
				       e->start, e->end);
		if (rw_instr_starting_at(code, e->target) < 0)
			return rw_fail(
				diag, info, -EINVAL, e->target,
				"exception entry %zu: handler at unit %u is not an instruction start",
				x, e->target);
	}
	/* The decoded location table must cover the original code exactly;
	 * appended instructions get one run each from the encoder. */
	uint64_t covered = 0;
	for (size_t i = 0; i < code->nlentries; i++) {
		if (code->lentries[i].start != covered)
			return rw_fail(diag, info, -EINVAL, covered,
				       "location table has a gap at unit %llu",
				       (unsigned long long)covered);
		covered += code->lentries[i].len;
	}
	if (covered != code->norig_units)
		return rw_fail(diag, info, -EINVAL, covered,
			       "location table covers %llu units, the code has %u",
			       (unsigned long long)covered, code->norig_units);
	if (!code->analysed && (err = rewrite_code__analyse(code, NULL, diag)))
		return err;
	max = code->max_depth;
	for (size_t x = 0; x < code->nexc; x++) {
		const struct rewrite_exc *e = &code->excs[x];
		int64_t t = rw_instr_starting_at(code, e->target);
		int32_t hd = code->instrs[t].depth;
		if (hd >= 0 && hd != (int64_t)e->depth + e->lasti + 1)
			return rw_fail(
				diag, info, -EINVAL, e->target,
				"exception entry %zu: handler at unit %u is entered at depth %u but analysed at %d",
				x, e->target, e->depth + e->lasti + 1, hd);
		for (int64_t i = rw_instr_starting_at(code, e->start);
		     i >= 0 && (size_t)i < n && code->instrs[i].offset < e->end; i++) {
			const struct rewrite_instr *in = &code->instrs[i];
			if (in->depth >= 0 && rewrite_code__send_loop_jump(code, (size_t)i) &&
			    (int32_t)e->depth > in->depth - REWRITE_SEND_LOOP_DROP)
				return rw_fail(
					diag, info, -EINVAL, in->offset,
					"exception entry %zu covers the SEND loop's back jump at unit %u at depth %u; a throw() into the loop raises there at depth %d",
					x, in->offset, e->depth,
					in->depth - REWRITE_SEND_LOOP_DROP);
		}
	}
	if (max > info->stacksize)
		return rw_fail(diag, info, -EINVAL, -1,
			       "max stack depth %d exceeds co_stacksize %d", max, info->stacksize);
	return 0;
}
