/* rewrite/diffgate.c: the semantic diff gate. A patched code object is
 * accepted only if it is the original plus appended blocks plus new
 * exception entries (docs/design.md §7): every original instruction is
 * byte-identical at its offset (a redirect guard may replace exactly one,
 * by a forward jump into the appended code padded with NOPs to the same
 * size, a NOP before it where the jump's prefix is not needed), keeps its
 * location and, unless a guard entry now covers it, its handler; each
 * appended block is covered by the handler of the code it guards; and the
 * verifier passes. */
#include "rewrite/guard-priv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <opcode.h>

static int reject(struct rewrite_diag *diag, const struct rewrite_code_info *info, int64_t where,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int reject(struct rewrite_diag *diag, const struct rewrite_code_info *info, int64_t where,
		  const char *fmt, ...)
{
	if (diag) {
		char why[200];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, sizeof(why), fmt, ap);
		va_end(ap);
		diag->err = -EINVAL;
		diag->where = where;
		guard__fmt(diag->msg, sizeof(diag->msg), "diffgate: code '%s': %s",
			   info->qualname ? info->qualname : "?", why);
	}
	return -EINVAL;
}

static bool same_handler(const struct rewrite_exc *x, const struct rewrite_exc *y)
{
	if (!x || !y)
		return x == y;
	return x->target == y->target && x->depth == y->depth && x->lasti == y->lasti;
}

static bool same_loc(const struct rewrite_loc *x, const struct rewrite_loc *y)
{
	return x->line == y->line && x->end_line == y->end_line && x->col == y->col &&
	       x->end_col == y->end_col;
}

int guard_diffgate__check(const struct rewrite_code_info *orig,
			  const struct rewrite_code_info *patched, struct guard_delta *delta,
			  struct rewrite_diag *diag)
{
	struct guard_delta dl = { .replaced_unit = -1 };
	struct rewrite_code *a = NULL, *b = NULL;
	uint8_t *canon = NULL;
	struct rewrite_loc *guarded_locs = NULL;
	size_t nguarded = 0;
	int err;
	if ((err = rewrite_code__decode(orig, &a, diag)) < 0)
		goto out;
	if ((err = rewrite_code__decode(patched, &b, diag)) < 0)
		goto out;
	int ma = 0;
	if ((err = rewrite_code__analyse(a, &ma, diag)) < 0)
		goto out;
	err = -ENOMEM;
	canon = malloc(orig->code_len + 2);
	guarded_locs = calloc(rewrite_code__ninstrs(a) + 1, sizeof(*guarded_locs));
	if (!canon || !guarded_locs)
		goto out;
	if ((err = rewrite_bytes__deopt(orig->code, orig->code_len, canon)) < 0)
		goto out;
	err = -EINVAL;
	uint32_t units = (uint32_t)(orig->code_len / 2);
	if (patched->code_len < orig->code_len) {
		err = reject(diag, orig, -1,
			     "the patched code is shorter than the original (%u units)", units);
		goto out;
	}
	size_t na = rewrite_code__ninstrs(a), nb = rewrite_code__ninstrs(b);
	const struct rewrite_instr *ia = rewrite_code__instrs(a), *ib = rewrite_code__instrs(b);
	dl.original = na;
	/* Instructions: identical in place, or the one replaced by a jump. */
	for (size_t i = 0; i < na; i++) {
		int64_t j = rewrite_code__instr_at(b, ia[i].offset);
		const uint8_t *pa = canon + 2 * (size_t)ia[i].offset;
		const uint8_t *pb = patched->code + 2 * (size_t)ia[i].offset;
		if (j < 0 || ib[j].offset != ia[i].offset) {
			err = reject(diag, orig, ia[i].offset,
				     "original instruction %s at unit %u moved",
				     rewrite_opcode__name(ia[i].opcode), ia[i].offset);
			goto out;
		}
		if (ib[j].size == ia[i].size && memcmp(pa, pb, 2 * (size_t)ia[i].size) == 0) {
			dl.unchanged++;
			continue;
		}
		/* The one replacement: a forward jump into the appended code,
		 * then NOP padding up to the original instruction's end. A
		 * prefix the jump grew and no longer needs is a NOP before it
		 * (rewrite/code.c, rw_layout: at most 3). */
		uint32_t end = ia[i].offset + ia[i].size;
		int64_t jmp = j;
		while (jmp - j < 3 && jmp + 1 < (int64_t)nb && ib[jmp].opcode == NOP &&
		       ib[jmp + 1].offset < end)
			jmp++;
		int64_t k = jmp + 1;
		while (k < (int64_t)nb && ib[k].offset < end && ib[k].opcode == NOP)
			k++;
		bool padded = ib[k - 1].offset + ib[k - 1].size == end;
		if (dl.replaced || !padded || ib[jmp].opcode != JUMP_FORWARD ||
		    ib[jmp].target < 0 || ib[ib[jmp].target].offset < units) {
			err = reject(
				diag, orig, ia[i].offset,
				"original instruction %s at unit %u was changed (only one may be "
				"replaced, by a jump into appended code)",
				rewrite_opcode__name(ia[i].opcode), ia[i].offset);
			goto out;
		}
		dl.replaced = 1;
		dl.replaced_unit = ia[i].offset;
		guarded_locs[nguarded++] = ia[i].loc;
	}
	for (size_t j = 0; j < nb; j++)
		if (ib[j].offset >= units) {
			dl.appended++;
			dl.appended_units += ib[j].size;
		}
	/* Locations of the original units are untouched. */
	for (uint32_t u = 0; u < units; u++) {
		struct rewrite_loc la, lb;
		int ra = rewrite_code__unit_loc(a, u, &la), rb = rewrite_code__unit_loc(b, u, &lb);
		if (ra != rb || (ra == 0 && !same_loc(&la, &lb))) {
			err = reject(diag, orig, u, "the location of unit %u changed", u);
			goto out;
		}
	}
	/* Handlers: unchanged, or a guard entry over whole instructions. */
	const struct rewrite_exc *eb = rewrite_code__excs(b);
	size_t neb = rewrite_code__nexc(b);
	dl.exc_before = rewrite_code__nexc(a);
	dl.exc_after = neb;
	for (size_t k = 0; k < neb; k++) {
		const struct rewrite_exc *g = &eb[k];
		if (g->start >= units) {
			/* Covers appended code: it must be the handler of the
			 * guarded code of the block it covers; checked below
			 * from the guard side. */
			continue;
		}
		if (g->end > units) {
			err = reject(diag, orig, g->start,
				     "an entry straddles the end of the original code at unit %u",
				     g->start);
			goto out;
		}
		if (g->target < units) {
			/* An original handler: each unit keeps its entry. */
			for (uint32_t u = g->start; u < g->end; u++)
				if (!same_handler(rewrite_code__exc_at(a, u), g)) {
					err = reject(diag, orig, u,
						     "the handler of unit %u changed", u);
					goto out;
				}
			continue;
		}
		/* A guard entry. */
		dl.guard_entries++;
		int64_t s = rewrite_code__instr_at(a, g->start);
		int64_t e = rewrite_code__instr_at(a, g->end - 1);
		if (s < 0 || e < 0 || ia[s].offset != g->start ||
		    ia[e].offset + ia[e].size != g->end) {
			err = reject(diag, orig, g->start,
				     "a guard entry covers part of an instruction at unit %u",
				     g->start);
			goto out;
		}
		const struct rewrite_exc *was = rewrite_code__exc_at(a, g->start);
		for (uint32_t u = g->start; u < g->end; u++)
			if (!same_handler(rewrite_code__exc_at(a, u), was)) {
				err = reject(diag, orig, u,
					     "a guard entry spans two original handlers at unit %u",
					     u);
				goto out;
			}
		const struct rewrite_exc *blk = rewrite_code__exc_at(b, g->target);
		if (!same_handler(blk, was)) {
			err = reject(
				diag, orig, g->target,
				"the guard block at unit %u is not covered by the handler of the "
				"code it guards",
				g->target);
			goto out;
		}
		/* One line per entry: the block is entered from an instruction
		 * of its own line (a forward move CPython's line tracing does
		 * not report), so no trace event is added. Not a RERAISE n > 0:
		 * it raises as the instruction on its stack, any line. */
		struct rewrite_loc bl;
		if (rewrite_code__unit_loc(b, g->target, &bl) < 0)
			bl.line = -2;
		for (int64_t x = s; x <= e; x++)
			if (ia[x].loc.line != bl.line ||
			    (ia[x].opcode == RERAISE && ia[x].arg > 0)) {
				err = reject(
					diag, orig, ia[x].offset,
					"a guard entry covers %s on line %d but its block at unit %u is on line %d (a trace event would be added)",
					rewrite_opcode__name(ia[x].opcode), ia[x].loc.line,
					g->target, bl.line);
				goto out;
			}
		for (int64_t x = s; x <= e && nguarded < na; x++)
			guarded_locs[nguarded++] = ia[x].loc;
	}
	/* Units no entry of b covers must have had none in a. */
	for (uint32_t u = 0; u < units; u++) {
		const struct rewrite_exc *x = rewrite_code__exc_at(b, u);
		if (!x && rewrite_code__exc_at(a, u)) {
			err = reject(diag, orig, u, "unit %u lost its handler", u);
			goto out;
		}
	}
	/* Appended code reads like the code it guards. */
	for (uint32_t u = units; u < (uint32_t)(patched->code_len / 2); u++) {
		struct rewrite_loc lb;
		if (rewrite_code__unit_loc(b, u, &lb) < 0) {
			err = reject(diag, orig, u, "appended unit %u has no location", u);
			goto out;
		}
		bool ok = false;
		for (size_t k = 0; k < nguarded && !ok; k++)
			ok = same_loc(&guarded_locs[k], &lb);
		if (!ok) {
			err = reject(diag, orig, u,
				     "appended unit %u has a location no guarded instruction has",
				     u);
			goto out;
		}
	}
	/* Last, the verifier: after the comparisons, so a moved or changed
	 * instruction is reported as such rather than as its consequence. */
	if ((err = rewrite_code__verify(b, diag)) < 0)
		goto out;
	dl.stacksize_before = orig->stacksize;
	dl.stacksize_after = patched->stacksize;
	err = 0;
out:
	if (delta)
		*delta = dl;
	free(canon);
	free(guarded_locs);
	rewrite_code__free(a);
	rewrite_code__free(b);
	return err;
}

int guard_delta__format(const struct guard_delta *d, char *buf, size_t len)
{
	char rep[48] = "";
	if (d->replaced)
		guard__fmt(rep, sizeof(rep), "1 replaced (unit %lld), ",
			   (long long)d->replaced_unit);
	int n = snprintf(buf, len,
			 "%zu original instructions unchanged, %s%zu appended (%u units), "
			 "exception entries %zu -> %zu (%zu guard), stack %d -> %d",
			 d->unchanged, rep, d->appended, d->appended_units, d->exc_before,
			 d->exc_after, d->guard_entries, d->stacksize_before, d->stacksize_after);
	return n;
}
