/* rewrite/stack.c: stack-depth analysis, after compile.c's stackdepth()
 * in CPython 3.11, on the final bytecode: the pseudo SETUP_* instructions
 * are gone, their role is played by the exception table (an entry's
 * handler is entered at depth + lasti + 1, which is what stackdepth()
 * pushed for the SETUP_* jump). */
#include <errno.h>
#include <stdlib.h>

#include "rewrite/rewrite-priv.h"

struct walk {
	struct rewrite_code *code;
	struct rewrite_diag *diag;
	size_t *todo;
	size_t ntodo;
	int max;
};

static int reach(struct walk *w, size_t from, size_t to, int64_t depth, const char *how)
{
	struct rewrite_instr *in = &w->code->instrs[to];
	if (depth < 0)
		return rw_fail(w->diag, w->code->info, -EINVAL, w->code->instrs[from].offset,
			       "stack underflow (%lld) %s from the instruction at unit %u",
			       (long long)depth, how, w->code->instrs[from].offset);
	if (depth > INT32_MAX / 2)
		return rw_fail(w->diag, w->code->info, -EINVAL, in->offset, "stack too deep");
	if (depth > w->max)
		w->max = (int)depth;
	if (in->depth < 0) {
		in->depth = (int32_t)depth;
		w->todo[w->ntodo++] = to;
		return 0;
	}
	if (in->depth != depth)
		return rw_fail(w->diag, w->code->info, -EINVAL, in->offset,
			       "inconsistent stack depth at unit %u: %d and %lld (%s from unit %u)",
			       in->offset, in->depth, (long long)depth, how,
			       w->code->instrs[from].offset);
	return 0;
}

int rewrite_code__analyse(struct rewrite_code *code, int *max_depth, struct rewrite_diag *diag)
{
	const struct rewrite_code_info *info = code->info;
	size_t n = code->ninstrs;
	int err = rw_layout(code, diag);
	if (err)
		return err;
	for (size_t k = 1; k < code->nexc; k++)
		if (code->excs[k].start < code->excs[k - 1].end)
			return rw_fail(diag, info, -EINVAL, code->excs[k].start,
				       "exception entries %zu and %zu overlap or are unsorted",
				       k - 1, k);
	/* Handler of every instruction, looked up at its op unit (the unit
	 * ceval reports as prev_instr), and the handler's instruction. */
	int64_t *hidx = malloc((n ? n : 1) * sizeof(*hidx));
	int64_t *htarget = malloc((code->nexc ? code->nexc : 1) * sizeof(*htarget));
	struct walk w = { .code = code,
			  .diag = diag,
			  .todo = malloc((n ? n : 1) * sizeof(size_t)) };
	if (!hidx || !htarget || !w.todo) {
		err = rw_fail(diag, info, -ENOMEM, -1, "out of memory");
		goto out;
	}
	for (size_t x = 0; x < code->nexc; x++) {
		htarget[x] = rw_instr_starting_at(code, code->excs[x].target);
		if (htarget[x] < 0) {
			err = rw_fail(
				diag, info, -EINVAL, code->excs[x].target,
				"exception entry %zu: handler at unit %u is not an instruction start",
				x, code->excs[x].target);
			goto out;
		}
	}
	size_t x = 0;
	for (size_t k = 0; k < n; k++) {
		struct rewrite_instr *in = &code->instrs[k];
		uint32_t u = in->offset + in->nprefix;
		while (x < code->nexc && code->excs[x].end <= u)
			x++;
		hidx[k] = (x < code->nexc && code->excs[x].start <= u) ? (int64_t)x : -1;
		in->depth = -1;
	}

	int start = (info->flags & (RW_CO_GENERATOR | RW_CO_COROUTINE | RW_CO_ASYNC_GENERATOR)) ? 1
												: 0;
	if (n == 0) {
		err = rw_fail(diag, info, -EINVAL, -1, "no instructions");
		goto out;
	}
	if ((err = reach(&w, 0, 0, start, "at entry")))
		goto out;
	while (w.ntodo) {
		size_t k = w.todo[--w.ntodo];
		for (;;) {
			struct rewrite_instr *in = &code->instrs[k];
			int64_t d = in->depth;
			if (hidx[k] >= 0) {
				const struct rewrite_exc *h = &code->excs[hidx[k]];
				if (d < h->depth) {
					err = rw_fail(
						diag, info, -EINVAL, in->offset,
						"depth %lld at unit %u is below its handler's depth %u",
						(long long)d, in->offset, h->depth);
					goto out;
				}
				if ((err = reach(&w, k, (size_t)htarget[hidx[k]],
						 (int64_t)h->depth + h->lasti + 1, "raising")))
					goto out;
			}
			int e0, e1;
			if (rewrite_opcode__stack_effect(in->opcode, in->arg, 0, &e0) ||
			    rewrite_opcode__stack_effect(in->opcode, in->arg, 1, &e1)) {
				err = rw_fail(diag, info, -EINVAL, in->offset,
					      "%s at unit %u has no stack effect",
					      rw_opinfo[in->opcode].name, in->offset);
				goto out;
			}
			int64_t nd = d + e0;
			if (nd < 0) {
				err = rw_fail(diag, info, -EINVAL, in->offset,
					      "stack underflow at unit %u (%s, depth %lld)",
					      in->offset, rw_opinfo[in->opcode].name, (long long)d);
				goto out;
			}
			if (nd > w.max)
				w.max = (int)nd;
			if (in->target >= 0 &&
			    (err = reach(&w, k, (size_t)in->target, d + e1, "jumping")))
				goto out;
			if (rw_opinfo[in->opcode].flags & RW_OP_TERMINATOR)
				break;
			if (k + 1 >= n) {
				err = rw_fail(diag, info, -EINVAL, in->offset,
					      "flow falls off the end of the code after unit %u",
					      in->offset);
				goto out;
			}
			struct rewrite_instr *next = &code->instrs[k + 1];
			if (next->depth >= 0) {
				if ((err = reach(&w, k, k + 1, nd, "falling through")))
					goto out;
				break;
			}
			next->depth = (int32_t)nd;
			k++;
		}
	}
	code->analysed = true;
	code->max_depth = w.max;
	if (max_depth)
		*max_depth = w.max;
out:
	free(hidx);
	free(htarget);
	free(w.todo);
	return err;
}
