/* rewrite/guard.c: guard synthesis (docs/design.md §7, docs/formats/guards.md,
 * patch format in docs/formats/patch.md).
 *
 * Handler guard, appended after the original code; the new entry covers the
 * failing instruction (prefixes to caches) with depth = base, lasti set:
 *
 *   H:  LOAD_CONST    <exception type(s)>     [base.., lasti, exc]
 *       CHECK_EXC_MATCH
 *       POP_JUMP_FORWARD_IF_FALSE R
 *       LOAD_CONST    <filter helper>         precise filter: raised by this
 *       SWAP          2                       instruction, on None ...
 *       PRECALL 0 / CALL 0                    method form [helper, exc]: no NULL;
 *                                             returns None (heal) or exc
 *       COPY          1
 *       POP_JUMP_FORWARD_IF_NOT_NONE R        [base.., lasti, exc]
 *       POP_TOP                               None
 *       POP_TOP                               lasti
 *   F:  LOAD_CONST    <fallback>              (not for a skipped statement)
 *       JUMP_BACKWARD <resume>
 *   R:  RERAISE 1                             prev_instr = lasti: tracebacks,
 *                                             f_lineno and enclosing handlers'
 *                                             lasti are those of the original
 *
 * The block never holds more than base + 3 items, so the stack size grows
 * only where the original never went that deep.
 *
 * No PUSH_EXC_INFO/POP_EXCEPT: no Python code runs while the exception is
 * held (the filter is a builtin), so sys.exc_info() is never touched and is
 * clean after healing. RERAISE goes straight to exception_unwind (no second
 * traceback entry); the unwinder looks the handler up at the RERAISE's own
 * offset, which is why the block is covered by the entry that covered the
 * failing instruction: the program's own try/finally/with still runs.
 */
#include "rewrite/guard-priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <opcode.h>

static int verify_patch(const struct rewrite_code_info *info, const struct guard_patch *p,
			struct rewrite_diag *diag);

static int set_diag(struct rewrite_diag *diag, int err, const struct rewrite_code_info *info,
		    const char *what)
{
	if (diag) {
		diag->err = err;
		diag->where = -1;
		guard__fmt(diag->msg, sizeof(diag->msg), "guard: code '%s': %s",
			   info && info->qualname ? info->qualname : "?", what);
	}
	return err;
}

static int add_const(struct guard_patch *p, struct guard_const c)
{
	if (p->nconsts >= GUARD_MAX_CONSTS)
		return -ERANGE;
	p->consts[p->nconsts] = c;
	return (int)(p->nconsts_before + p->nconsts++);
}

/* Append one instruction; -errno on failure, else its index. */
static int64_t emit(struct rewrite_code *code, int op, uint32_t arg, int64_t target,
		    const struct rewrite_loc *loc)
{
	return rewrite_code__append(code, op, arg, target, loc, 0);
}

/* A range of units [start, end) a new entry covers, with its handler. */
struct cover_unit {
	uint32_t start, end;
	struct rewrite_exc entry;
};

static int cmp_exc(const void *a, const void *b)
{
	const struct rewrite_exc *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* The new table: original entries minus the covered ranges (split where
 * they overlap), plus the new entries. Covers must not overlap each other. */
static int build_table(const struct rewrite_exc *orig, size_t norig, const struct cover_unit *cov,
		       size_t ncov, const struct rewrite_exc *extra, size_t nextra,
		       struct rewrite_exc **out, size_t *nout)
{
	size_t cap = norig * (ncov + 1) + ncov + nextra + 1;
	struct rewrite_exc *t = calloc(cap, sizeof(*t));
	if (!t)
		return -ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < norig; i++) {
		uint32_t s = orig[i].start;
		/* covers are sorted by start */
		for (size_t c = 0; c < ncov && s < orig[i].end; c++) {
			if (cov[c].end <= s || cov[c].start >= orig[i].end)
				continue;
			if (cov[c].start > s) {
				t[n] = orig[i];
				t[n].start = s;
				t[n].end = cov[c].start;
				n++;
			}
			s = cov[c].end;
		}
		if (s < orig[i].end) {
			t[n] = orig[i];
			t[n].start = s;
			n++;
		}
	}
	for (size_t c = 0; c < ncov; c++)
		t[n++] = cov[c].entry;
	for (size_t e = 0; e < nextra; e++)
		t[n++] = extra[e];
	qsort(t, n, sizeof(*t), cmp_exc);
	*out = t;
	*nout = n;
	return 0;
}

/* Encode, lay the new table out with the block offsets now known, encode
 * again, analyse and verify. Fills the byte fields and stacksize. */
struct block {
	int64_t first, last;           /* appended instruction indices */
	const struct rewrite_exc *enc; /* entry covering the guarded code, or NULL */
	struct rewrite_exc enc_copy;
};

static int finish(struct gctx *g, struct guard_patch *p, const struct cover_unit *cov_idx,
		  size_t ncov, const int64_t *cov_block, struct block *blocks, size_t nblocks,
		  struct rewrite_diag *diag)
{
	struct rewrite_exc *orig = NULL, *table = NULL, *extra = NULL;
	struct cover_unit *cov = NULL;
	size_t norig = rewrite_code__nexc(g->code), ntable = 0;
	int err = -ENOMEM;
	orig = malloc((norig + 1) * sizeof(*orig));
	cov = malloc((ncov + 1) * sizeof(*cov));
	extra = malloc((nblocks + 1) * sizeof(*extra));
	if (!orig || !cov || !extra)
		goto out;
	if (norig)
		memcpy(orig, rewrite_code__excs(g->code), norig * sizeof(*orig));
	/* First layout: offsets of the appended blocks. */
	err = rewrite_code__encode(g->code, NULL, NULL, NULL, diag);
	if (err < 0)
		goto out;
	const struct rewrite_instr *in = rewrite_code__instrs(g->code);
	size_t nextra = 0;
	for (size_t b = 0; b < nblocks; b++) {
		if (!blocks[b].enc)
			continue;
		const struct rewrite_instr *l = &in[blocks[b].last];
		extra[nextra] = blocks[b].enc_copy;
		extra[nextra].start = in[blocks[b].first].offset;
		extra[nextra].end = l->offset + l->size;
		nextra++;
	}
	for (size_t c = 0; c < ncov; c++) {
		cov[c] = cov_idx[c];
		cov[c].entry.target = in[blocks[cov_block[c]].first].offset;
	}
	err = build_table(orig, norig, cov, ncov, extra, nextra, &table, &ntable);
	if (err < 0)
		goto out;
	err = rewrite_code__set_excs(g->code, table, ntable);
	if (err < 0)
		goto out;
	err = rewrite_code__encode(g->code, &p->code, &p->exctable, &p->linetable, diag);
	if (err < 0)
		goto out;
	int maxd = 0;
	err = rewrite_code__analyse(g->code, &maxd, diag);
	if (err < 0)
		goto out;
	p->stacksize = maxd > g->info->stacksize ? maxd : g->info->stacksize;
	in = rewrite_code__instrs(g->code);
	p->block_unit = nblocks ? in[blocks[0].first].offset : 0;
	p->nentries = ncov;
	err = 0;
out:
	free(orig);
	free(table);
	free(extra);
	free(cov);
	return err;
}

static struct cover_unit cover_of(const struct gctx *g, const struct guard_cover *c, int32_t depth)
{
	const struct rewrite_instr *a = &g->in[c->first], *b = &g->in[c->last];
	struct cover_unit u = { .start = a->offset, .end = b->offset + b->size };
	u.entry = (struct rewrite_exc){ .start = u.start,
					.end = u.end,
					.depth = (uint32_t)depth,
					.lasti = true };
	return u;
}

static int synth_handler(struct gctx *g, const struct guard_decision *d, struct guard_patch *p,
			 struct rewrite_diag *diag)
{
	const struct rewrite_loc *loc0 = &g->in[d->anchor].loc;
	struct rewrite_loc loc = *loc0;
	/* The types and the filter come from the kind's row (rewrite/guards.c). */
	const struct guard_kind_info *ki = guard_kind__info(d->kind);
	if (!ki || ki->redirect || !ki->nexc || ki->nexc > GUARD_CONST_NAMES)
		return set_diag(diag, -EINVAL, g->info, "not a handler guard kind");
	struct guard_const match = { .kind = ki->nexc == 1 ? GUARD_CONST_EXC_TYPE
							   : GUARD_CONST_EXC_TUPLE,
				     .nnames = ki->nexc };
	for (size_t i = 0; i < ki->nexc; i++)
		match.names[i] = ki->exc[i];
	const char *filter = ki->helper;
	int c_match = add_const(p, match);
	int c_helper = add_const(p, (struct guard_const){ .kind = GUARD_CONST_HELPER,
							  .nnames = 1,
							  .names = { filter } });
	int c_fb = -1;
	if (d->push_fallback) {
		struct guard_const fb = { .kind = GUARD_CONST_NONE };
		if (d->fallback == GUARD_FB_INT0)
			fb = (struct guard_const){ .kind = GUARD_CONST_INT, .i = 0 };
		else if (d->fallback == GUARD_FB_FLOAT0)
			fb = (struct guard_const){ .kind = GUARD_CONST_FLOAT, .f = 0.0 };
		if (d->unpack)
			fb = (struct guard_const){ .kind = GUARD_CONST_NONE_TUPLE, .i = d->unpack };
		c_fb = add_const(p, fb);
	}
	if (c_match < 0 || c_helper < 0 || (d->push_fallback && c_fb < 0))
		return -ERANGE;

	int64_t h = (int64_t)rewrite_code__ninstrs(g->code);
	int64_t r = h + 12 + (d->push_fallback ? 1 : 0); /* index of RERAISE */
	int64_t k;
	if ((k = emit(g->code, LOAD_CONST, (uint32_t)c_match, -1, &loc)) < 0 ||
	    (k = emit(g->code, CHECK_EXC_MATCH, 0, -1, &loc)) < 0 ||
	    (k = emit(g->code, POP_JUMP_FORWARD_IF_FALSE, 0, r, &loc)) < 0 ||
	    (k = emit(g->code, LOAD_CONST, (uint32_t)c_helper, -1, &loc)) < 0 ||
	    (k = emit(g->code, SWAP, 2, -1, &loc)) < 0 ||
	    (k = emit(g->code, PRECALL, 0, -1, &loc)) < 0 ||
	    (k = emit(g->code, CALL, 0, -1, &loc)) < 0 ||
	    (k = emit(g->code, COPY, 1, -1, &loc)) < 0 ||
	    (k = emit(g->code, POP_JUMP_FORWARD_IF_NOT_NONE, 0, r, &loc)) < 0 ||
	    (k = emit(g->code, POP_TOP, 0, -1, &loc)) < 0 ||
	    (k = emit(g->code, POP_TOP, 0, -1, &loc)) < 0)
		return (int)k;
	int64_t fbi = k + 1;
	if (d->push_fallback && (k = emit(g->code, LOAD_CONST, (uint32_t)c_fb, -1, &loc)) < 0)
		return (int)k;
	if ((k = emit(g->code, JUMP_BACKWARD, 0, d->resume, &loc)) < 0 ||
	    (k = emit(g->code, RERAISE, 1, -1, &loc)) < 0)
		return (int)k;
	if (k != r)
		return set_diag(diag, -EINVAL, g->info, "handler block layout mismatch");
	g->in = rewrite_code__instrs(g->code); /* appends move the array */

	struct block blk = { .first = h, .last = r };
	const struct rewrite_exc *enc = rewrite_code__exc_at(g->code,
							     g->in[d->cover[0].first].offset);
	if (enc) {
		blk.enc = enc;
		blk.enc_copy = *enc;
	}
	struct cover_unit cov[GUARD_MAX_COVER];
	int64_t cov_block[GUARD_MAX_COVER];
	for (size_t c = 0; c < d->ncover; c++) {
		const struct rewrite_exc *e2 =
			rewrite_code__exc_at(g->code, g->in[d->cover[c].first].offset);
		if ((e2 == NULL) != (enc == NULL) ||
		    (e2 && (e2->target != enc->target || e2->depth != enc->depth)))
			return set_diag(diag, -EINVAL, g->info,
					"guarded instructions sit under different handlers");
		cov[c] = cover_of(g, &d->cover[c], d->base_depth);
		cov_block[c] = 0;
	}
	int err = finish(g, p, cov, d->ncover, cov_block, &blk, 1, diag);
	if (err < 0)
		return err;
	const struct rewrite_instr *in = rewrite_code__instrs(g->code);
	p->fallback_unit = in[fbi].offset;
	p->resume_unit = in[d->resume].offset;
	p->base_depth = d->base_depth;
	return 0;
}

/* In flight, a redirect guard's failing instruction has consumed its
 * operands (BINARY_OP decrefs both before it fails; CALL its callable and
 * arguments): the continuation cannot take them from the frame. It can
 * produce them again when the instructions that pushed them (back to the
 * stack depth below the first operand) only read a local, a cell, a
 * constant or a global, or mark a call's shape: running them again
 * repeats nothing, and nothing between them and the failure changed what
 * they read. The continuation then starts at the first of them, with
 * the stack below, and runs the redirect in place of the failing
 * instruction. NULL with *unit and *depth set, or why not. No jump or
 * handler may land inside the run: another path would have pushed
 * other operands. */
static const char *redirect_restart(const struct gctx *g, int64_t rep, int32_t below,
				    uint32_t *unit, int32_t *depth)
{
	if (below < 0 || g->in[rep].depth < below)
		return "the stack depth at the failing instruction is unknown";
	for (int64_t i = rep;; i--) {
		if (i < 0 || g->in[i].depth < below)
			return "the operands' loads were not found";
		if (i < rep) {
			switch (g->in[i].opcode) {
			case LOAD_FAST:
			case LOAD_CONST:
			case LOAD_DEREF:
			case LOAD_GLOBAL:
			case PUSH_NULL:
			case KW_NAMES:
				break;
			default:
				return "an operand of the failing instruction is computed, not "
				       "loaded from a local, a cell, a constant or a global: "
				       "computing it again could repeat its effects";
			}
		}
		if (g->in[i].depth == below && i < rep) {
			for (int64_t j = i + 1; j <= rep; j++)
				if (g->jump_target[j])
					return "a jump lands between the operands' loads and the "
					       "failing instruction";
			*unit = g->in[i].offset;
			*depth = below;
			return NULL;
		}
	}
}

static int synth_redirect(struct gctx *g, const struct guard_decision *d, struct guard_patch *p,
			  struct rewrite_diag *diag)
{
	int64_t rep = d->anchor; /* BINARY_OP, or the PRECALL of open(...) */
	const struct rewrite_instr *ri = &g->in[rep];
	struct rewrite_loc loc = ri->loc;
	const struct guard_kind_info *ki = guard_kind__info(d->kind);
	const char *helper;
	int64_t after;
	if (!ki || !ki->redirect)
		return set_diag(diag, -EINVAL, g->info, "not a redirect guard kind");
	helper = ki->helper;
	if (d->kind == GUARD_STR_COERCE) {
		if (ri->opcode != BINARY_OP)
			return set_diag(diag, -EINVAL, g->info,
					"str_coerce_guard needs a BINARY_OP");
		if (ri->arg == NB_INPLACE_ADD)
			helper = ki->helper_inplace;
		after = rep + 1;
	} else {
		if (ri->opcode != PRECALL || (size_t)rep + 1 >= g->n ||
		    g->in[rep + 1].opcode != CALL)
			return set_diag(diag, -EINVAL, g->info,
					"file_guard needs a PRECALL/CALL pair");
		after = rep + 2;
	}
	int c_helper = add_const(p, (struct guard_const){ .kind = GUARD_CONST_HELPER,
							  .nnames = 1,
							  .names = { helper } });
	if (c_helper < 0)
		return -ERANGE;
	uint32_t nargs = ri->arg;
	uint32_t rep_unit = ri->offset;
	uint32_t restart = 0;
	int32_t restart_depth = 0;
	/* BINARY_OP takes two operands; PRECALL n a NULL (or self), the
	 * callable and n arguments. */
	p->no_resume =
		redirect_restart(g, rep,
				 ri->depth - (d->kind == GUARD_STR_COERCE ? 2 : (int32_t)nargs + 2),
				 &restart, &restart_depth);
	int64_t h = (int64_t)rewrite_code__ninstrs(g->code);
	int64_t k;
	if ((k = emit(g->code, LOAD_CONST, (uint32_t)c_helper, -1, &loc)) < 0)
		return (int)k;
	if (d->kind == GUARD_STR_COERCE) {
		/* [a, b, h] -> [h, a, b]; PRECALL 1 sees h in the method slot. */
		if ((k = emit(g->code, SWAP, 3, -1, &loc)) < 0 ||
		    (k = emit(g->code, SWAP, 2, -1, &loc)) < 0 ||
		    (k = emit(g->code, PRECALL, 1, -1, &loc)) < 0 ||
		    (k = emit(g->code, CALL, 1, -1, &loc)) < 0)
			return (int)k;
	} else {
		/* [NULL, open, a1..an, h] -> [NULL, h, open, a1..an]: the
		 * helper gets the program's callable as its first argument.
		 * The NULL stays (POP_TOP on it would crash); SWAP n+2 puts
		 * h above it, then SWAP n+1 .. SWAP 2 rotate open down to
		 * the first argument. KW_NAMES (already executed) still
		 * names the last arguments. */
		for (uint32_t s = nargs + 2; s >= 2; s--)
			if ((k = emit(g->code, SWAP, s, -1, &loc)) < 0)
				return (int)k;
		if ((k = emit(g->code, PRECALL, nargs + 1, -1, &loc)) < 0 ||
		    (k = emit(g->code, CALL, nargs + 1, -1, &loc)) < 0)
			return (int)k;
	}
	if ((k = emit(g->code, JUMP_BACKWARD, 0, after, &loc)) < 0)
		return (int)k;
	g->in = rewrite_code__instrs(g->code); /* appends move the array */
	/* The jump is shorter than the instruction it replaces: the encoder
	 * keeps the slot with NOP units after the jump (instr.npad), never
	 * with EXTENDED_ARG 0, which debug builds assert on (ceval.c,
	 * TARGET(EXTENDED_ARG): assert(oparg)). */
	int err = rewrite_code__replace(g->code, (size_t)rep, JUMP_FORWARD, 0, h, 0);
	if (err < 0)
		return err;
	struct block blk = { .first = h, .last = k };
	const struct rewrite_exc *enc = rewrite_code__exc_at(g->code, rep_unit);
	if (enc) {
		blk.enc = enc;
		blk.enc_copy = *enc;
	}
	err = finish(g, p, NULL, 0, NULL, &blk, 1, diag);
	if (err < 0)
		return err;
	const struct rewrite_instr *in = rewrite_code__instrs(g->code);
	p->replaced_unit = rep_unit;
	p->resume_unit = in[after].offset;
	p->base_depth = p->no_resume ? d->base_depth : restart_depth;
	p->fallback_unit = p->no_resume ? 0 : restart;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Probes (suture-attach --log/--snapshot, docs/design.md §12)             */

/* Instructions a logpoint may not displace into its block: the call pair
 * (a specialized PRECALL finishes the call and skips the CALL after it:
 * ceval.c SKIP_CALL), the frame prologue, and generator plumbing. */
static bool logpoint_displaceable(int op)
{
	switch (op) {
	case PRECALL:
	case CALL:
	case KW_NAMES:
	case RESUME:
	case RETURN_GENERATOR:
	case MAKE_CELL:
	case COPY_FREE_VARS:
	case YIELD_VALUE:
	case SEND:
	case ASYNC_GEN_WRAP:
	case GET_AWAITABLE:
	case FOR_ITER:             /* forward only: no variant reaches back */
	case JUMP_IF_FALSE_OR_POP: /* likewise */
	case JUMP_IF_TRUE_OR_POP:
	case EXTENDED_ARG:
	case CACHE:
		return false;
	}
	return true;
}

/* Instructions before the probed one that change no local and no global:
 * evaluating the probe after them sees what it would have seen before. */
static bool logpoint_pure_push(int op)
{
	return op == LOAD_FAST || op == LOAD_CONST || op == NOP || op == PUSH_NULL ||
	       op == LOAD_CLOSURE || op == LOAD_DEREF || op == COPY;
}

static bool logpoint_terminator(int op)
{
	return op == RETURN_VALUE || op == JUMP_FORWARD || op == JUMP_BACKWARD ||
	       op == JUMP_BACKWARD_NO_INTERRUPT || op == RAISE_VARARGS || op == RERAISE;
}

/* One attempt: the jump replaces instruction rep. */
static int synth_logpoint_at(const struct rewrite_code_info *info, size_t rep, int64_t probe_id,
			     const char *helper, struct guard_patch *p, struct rewrite_diag *diag)
{
	struct gctx g;
	int err = gctx__open(&g, info, diag);
	if (err < 0)
		return err;
	memset(p, 0, sizeof(*p));
	p->replaced_unit = -1;
	p->kind = GUARD_PROBE;
	p->nconsts_before = info->nconsts;
	p->orig_units = rewrite_code__nunits(g.code);
	const struct rewrite_instr ri = g.in[rep];
	const struct rewrite_loc loc = ri.loc;
	int c_helper = add_const(p, (struct guard_const){ .kind = GUARD_CONST_HELPER,
							  .nnames = 1,
							  .names = { helper } });
	int c_id = add_const(p, (struct guard_const){ .kind = GUARD_CONST_INT, .i = probe_id });
	int64_t h = (int64_t)rewrite_code__ninstrs(g.code), k;
	/* [helper, id] with PRECALL 0 / CALL 0: the method form, helper(id),
	 * two stack slots and no NULL. */
	if ((k = emit(g.code, LOAD_CONST, (uint32_t)c_helper, -1, &loc)) < 0 ||
	    (k = emit(g.code, LOAD_CONST, (uint32_t)c_id, -1, &loc)) < 0 ||
	    (k = emit(g.code, PRECALL, 0, -1, &loc)) < 0 ||
	    (k = emit(g.code, CALL, 0, -1, &loc)) < 0 ||
	    (k = emit(g.code, POP_TOP, 0, -1, &loc)) < 0 ||
	    (k = emit(g.code, ri.opcode, ri.arg, ri.target, &loc)) < 0 ||
	    (!logpoint_terminator(ri.opcode) &&
	     (k = emit(g.code, JUMP_BACKWARD, 0, (int64_t)rep + 1, &loc)) < 0)) {
		err = (int)k;
		goto out;
	}
	err = rewrite_code__replace(g.code, rep, JUMP_FORWARD, 0, h, 0);
	if (err < 0)
		goto out;
	struct block blk = { .first = h, .last = k };
	const struct rewrite_exc *enc = rewrite_code__exc_at(g.code, ri.offset);
	if (enc) {
		blk.enc = enc;
		blk.enc_copy = *enc;
	}
	err = finish(&g, p, NULL, 0, NULL, &blk, 1, diag);
	if (err < 0)
		goto out;
	p->replaced_unit = ri.offset;
	p->resume_unit = ri.offset + ri.size;
	p->base_depth = ri.depth;
	err = verify_patch(info, p, diag);
out:
	gctx__close(&g);
	if (err < 0)
		guard_patch__release(p);
	return err;
}

int guard__synthesize_logpoint(const struct rewrite_code_info *info, int line, int64_t probe_id,
			       const char *helper, struct guard_patch *out,
			       struct rewrite_diag *diag)
{
	struct gctx g;
	memset(out, 0, sizeof(*out));
	out->replaced_unit = -1;
	int err = gctx__open(&g, info, diag);
	if (err < 0)
		return err;
	size_t start = 0, first = g.n;
	for (size_t i = 0; i < g.n; i++)
		if (g.in[i].opcode == RESUME) {
			start = i + 1;
			break;
		}
	for (size_t i = start; i < g.n; i++)
		if (g.in[i].loc.line == line && g.in[i].depth >= 0) {
			first = i;
			break;
		}
	if (first == g.n) {
		err = set_diag(diag, -ENOENT, info, "no reachable instruction on that line");
		gctx__close(&g);
		return err;
	}
	/* Candidates: the line's first instruction, else a later one of the
	 * same run if everything before it only pushes (a one-unit jump
	 * reaches 255 units; a bigger instruction holds an EXTENDED_ARG). */
	size_t cand[16], ncand = 0;
	for (size_t i = first; i < g.n && ncand < 16 && g.in[i].loc.line == line; i++) {
		if (i > first && g.jump_target[i])
			break;
		if (logpoint_displaceable(g.in[i].opcode))
			cand[ncand++] = i;
		if (!logpoint_pure_push(g.in[i].opcode))
			break;
	}
	int first_op = g.in[first].opcode;
	gctx__close(&g);
	if (!ncand)
		return set_diag(
			diag, -EOPNOTSUPP, info,
			first_op == PRECALL || first_op == CALL || first_op == KW_NAMES
				? "the line starts inside a call"
				: "the line starts with an instruction a probe cannot displace");
	err = -ERANGE;
	for (size_t c = 0; c < ncand && err == -ERANGE; c++)
		err = synth_logpoint_at(info, cand[c], probe_id, helper, out, diag);
	return err;
}

static int synthesize(const struct rewrite_code_info *info, const struct guard_decision *d,
		      struct guard_patch *out, struct rewrite_diag *diag, bool verify)
{
	memset(out, 0, sizeof(*out));
	out->replaced_unit = -1;
	if (!d || d->kind == GUARD_NONE || d->kind == GUARD_PROBE)
		return set_diag(diag, -EINVAL, info, "no guard decided for this crash");
	struct gctx g;
	int err = gctx__open(&g, info, diag);
	if (err < 0)
		return err;
	if (d->anchor < 0 || (size_t)d->anchor >= g.n || d->resume < 0 ||
	    (size_t)d->resume >= g.n || d->ncover > GUARD_MAX_COVER) {
		err = set_diag(diag, -EINVAL, info, "decision does not fit this code object");
		goto out;
	}
	out->kind = d->kind;
	out->nconsts_before = info->nconsts;
	out->orig_units = rewrite_code__nunits(g.code);
	if (d->placement == GUARD_PLACE_REDIRECT)
		err = synth_redirect(&g, d, out, diag);
	else
		err = synth_handler(&g, d, out, diag);
	if (err == 0 && verify)
		err = verify_patch(info, out, diag);
out:
	gctx__close(&g);
	if (err < 0)
		guard_patch__release(out);
	return err;
}

int guard__synthesize(const struct rewrite_code_info *info, const struct guard_decision *d,
		      struct guard_patch *out, struct rewrite_diag *diag)
{
	return synthesize(info, d, out, diag, true);
}

int guard__synthesize_for_gate(const struct rewrite_code_info *info, const struct guard_decision *d,
			       struct guard_patch *out, struct rewrite_diag *diag)
{
	return synthesize(info, d, out, diag, false);
}

/* ---------------------------------------------------------------------- */
/* The fidelity probe                                                     */

/* Instructions that never raise into their frame's handlers (CPython
 * 3.11, Python/ceval.c): no error path, or, for RETURN_VALUE, one that
 * leaves the frame (exit_unwind) without reading its exception table. Only
 * a trace function raising at a line event enters a handler there, and
 * then the probe would re-raise it unchanged. The probe leaves them
 * uncovered, so code none of whose instructions can raise (`def f():
 * pass`) carries no exception table, as without the probe: a program that
 * builds a new code object from its fields with other bytecode
 * (code.replace(co_code=...), types.CodeType(...), test_code's
 * test_code_new_empty) keeps that table, and an entry of it would send an
 * exception past the end of the new bytecode (issue 17, item 3). */
static bool probe_never_raises(int op)
{
	switch (op) {
	case NOP:
	case POP_TOP:
	case PUSH_NULL:
	case LOAD_CONST:
	case STORE_FAST:
	case COPY:
	case SWAP:
	case RETURN_VALUE:
	case JUMP_FORWARD:
	case KW_NAMES:
	case PUSH_EXC_INFO:
	case POP_EXCEPT:
	case LOAD_ASSERTION_ERROR:
		return true;
	default:
		return false;
	}
}

/* One block per (stack base, enclosing entry, line), located at the first
 * guarded instruction of its line: an exception entering it from an
 * instruction of the same line is a forward move within the line, which
 * CPython's line tracing does not report (Python/ceval.c,
 * maybe_call_line_trace; RERAISE n > 0, whose raise comes from another
 * line, is left uncovered), and RERAISE 1 restores the raising instruction
 * before the enclosing handler is entered, so trace events, tracebacks
 * and f_lineno read as without the probe (docs/formats/patch.md). */
struct probe_group {
	struct rewrite_loc loc;
	int32_t base;
	int64_t enc; /* index of the enclosing original entry, -1 */
	struct block blk;
};

int guard__synthesize_probe(const struct rewrite_code_info *info, struct guard_patch *out,
			    struct rewrite_diag *diag)
{
	memset(out, 0, sizeof(*out));
	out->replaced_unit = -1;
	out->kind = GUARD_PROBE;
	struct gctx g;
	int err = gctx__open(&g, info, diag);
	if (err < 0)
		return err;
	struct probe_group *groups = NULL;
	struct cover_unit *cov = NULL;
	int64_t *cov_block = NULL;
	struct block *blocks = NULL;
	size_t ngroups = 0, ncov = 0;
	err = -ENOMEM;
	groups = calloc(g.n + 1, sizeof(*groups));
	cov = calloc(g.n + 1, sizeof(*cov));
	cov_block = calloc(g.n + 1, sizeof(*cov_block));
	if (!groups || !cov || !cov_block)
		goto out;
	out->nconsts_before = info->nconsts;
	out->orig_units = rewrite_code__nunits(g.code);
	int c_probe = add_const(out, (struct guard_const){ .kind = GUARD_CONST_PROBE_EXC });
	const struct rewrite_exc *excs = rewrite_code__excs(g.code);
	size_t n0 = g.n;
	/* The prologue up to the first RESUME runs before the frame is
	 * set up for exceptions (MAKE_CELL, COPY_FREE_VARS, RETURN_GENERATOR):
	 * CPython never covers it, neither do we. */
	size_t start = 0;
	for (size_t i = 0; i < n0; i++)
		if (g.in[i].opcode == RESUME) {
			start = i + 1;
			break;
		}
	for (size_t i = start; i < n0; i++) {
		const struct rewrite_instr *in = &g.in[i];
		/* RERAISE n > 0 restores the frame's instruction to the lasti
		 * on the stack (another line) before it raises: a block behind
		 * it would be entered from that line. The exception was seen
		 * where it was first raised. */
		if (in->depth < 0 || (in->opcode == RERAISE && in->arg > 0) ||
		    probe_never_raises(in->opcode))
			continue;
		const struct rewrite_exc *e = rewrite_code__exc_at(g.code, in->offset);
		int32_t base = in->depth - guard_op__inputs(in->opcode, in->arg);
		if (rewrite_code__send_loop_jump(g.code, i))
			base = in->depth - REWRITE_SEND_LOOP_DROP;
		if (e && (int32_t)e->depth > base)
			base = (int32_t)e->depth;
		if (base < 0)
			base = 0;
		int64_t ei = e ? e - excs : -1;
		size_t gi;
		for (gi = 0; gi < ngroups; gi++)
			if (groups[gi].base == base && groups[gi].enc == ei &&
			    groups[gi].loc.line == in->loc.line)
				break;
		if (gi == ngroups) {
			groups[gi].base = base;
			groups[gi].enc = ei;
			groups[gi].loc = in->loc;
			if (e) {
				groups[gi].blk.enc = e;
				groups[gi].blk.enc_copy = *e;
			}
			ngroups++;
		}
		/* Merge with the previous cover when contiguous and alike. */
		if (ncov && cov_block[ncov - 1] == (int64_t)gi && cov[ncov - 1].end == in->offset) {
			cov[ncov - 1].end = in->offset + in->size;
			cov[ncov - 1].entry.end = cov[ncov - 1].end;
			continue;
		}
		cov[ncov].start = in->offset;
		cov[ncov].end = in->offset + in->size;
		cov[ncov].entry = (struct rewrite_exc){ .start = cov[ncov].start,
							.end = cov[ncov].end,
							.depth = (uint32_t)base,
							.lasti = true };
		cov_block[ncov] = (int64_t)gi;
		ncov++;
	}
	blocks = calloc(ngroups + 1, sizeof(*blocks));
	if (!blocks)
		goto out;
	for (size_t gi = 0; gi < ngroups; gi++) {
		/* The exception was not ours: RERAISE 1 either way. */
		struct rewrite_loc loc = groups[gi].loc;
		int64_t h = (int64_t)rewrite_code__ninstrs(g.code), k;
		if ((k = emit(g.code, LOAD_CONST, (uint32_t)c_probe, -1, &loc)) < 0 ||
		    (k = emit(g.code, CHECK_EXC_MATCH, 0, -1, &loc)) < 0 ||
		    (k = emit(g.code, POP_JUMP_FORWARD_IF_FALSE, 0, h + 4, &loc)) < 0 ||
		    (k = emit(g.code, RERAISE, 1, -1, &loc)) < 0 ||
		    (k = emit(g.code, RERAISE, 1, -1, &loc)) < 0) {
			err = (int)k;
			goto out;
		}
		blocks[gi] = groups[gi].blk;
		blocks[gi].first = h;
		blocks[gi].last = k;
	}
	/* g.in may have moved with the appends; finish() reads the model. */
	g.in = rewrite_code__instrs(g.code);
	err = finish(&g, out, cov, ncov, cov_block, blocks, ngroups, diag);
	if (err == 0)
		err = verify_patch(info, out, diag);
out:
	free(groups);
	free(cov);
	free(cov_block);
	free(blocks);
	gctx__close(&g);
	if (err < 0)
		guard_patch__release(out);
	return err;
}

/* The patched code object must pass the verifier with its own stack size
 * (the model still carries the original's). */
static int verify_patch(const struct rewrite_code_info *info, const struct guard_patch *p,
			struct rewrite_diag *diag)
{
	struct rewrite_code_info pi;
	struct rewrite_const *pc = NULL;
	struct rewrite_code *c = NULL;
	int err = guard_patch__info(info, p, &pi, &pc);
	if (err == 0)
		err = rewrite_code__decode(&pi, &c, diag);
	if (err == 0)
		err = rewrite_code__verify(c, diag);
	rewrite_code__free(c);
	free(pc);
	return err;
}

void guard_patch__release(struct guard_patch *p)
{
	if (!p)
		return;
	rewrite_bytes__free(&p->code);
	rewrite_bytes__free(&p->exctable);
	rewrite_bytes__free(&p->linetable);
	p->code.data = p->exctable.data = p->linetable.data = NULL;
}

/* ---------------------------------------------------------------------- */
/* Describing the patched code object                                     */

static struct rewrite_const const_text(const struct guard_const *c)
{
	switch (c->kind) {
	case GUARD_CONST_NONE:
		return (struct rewrite_const){ "NoneType", "None" };
	case GUARD_CONST_INT: {
		static const char *const small[] = { "0", "1", "2", "3", "4", "5", "6", "7" };
		return (struct rewrite_const){ "int",
					       c->i >= 0 && c->i < 8 ? small[c->i] : "<int>" };
	}
	case GUARD_CONST_FLOAT:
		return (struct rewrite_const){ "float", "0.0" };
	case GUARD_CONST_EXC_TYPE:
		return (struct rewrite_const){ "type", c->names[0] };
	case GUARD_CONST_EXC_TUPLE:
		return (struct rewrite_const){ "tuple", "(<exception types>)" };
	case GUARD_CONST_HELPER:
		return (struct rewrite_const){ "builtin_function_or_method", c->names[0] };
	case GUARD_CONST_PROBE_EXC:
		return (struct rewrite_const){ "type", "<probe exception>" };
	case GUARD_CONST_NONE_TUPLE:
		return (struct rewrite_const){ "tuple", "(None, ...)" };
	}
	return (struct rewrite_const){ "?", "?" };
}

int guard_patch__info(const struct rewrite_code_info *info, const struct guard_patch *p,
		      struct rewrite_code_info *out, struct rewrite_const **consts)
{
	*out = *info;
	*consts = calloc(info->nconsts + p->nconsts + 1, sizeof(**consts));
	if (!*consts)
		return -ENOMEM;
	if (info->nconsts)
		memcpy(*consts, info->consts, info->nconsts * sizeof(**consts));
	for (size_t i = 0; i < p->nconsts; i++)
		(*consts)[info->nconsts + i] = const_text(&p->consts[i]);
	out->consts = *consts;
	out->nconsts = info->nconsts + p->nconsts;
	out->code = p->code.data;
	out->code_len = p->code.len;
	out->exctable = p->exctable.data;
	out->exctable_len = p->exctable.len;
	out->linetable = p->linetable.data;
	out->linetable_len = p->linetable.len;
	out->stacksize = p->stacksize;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Side-by-side disassembly                                               */

#define COLW 74

static void print_cols(FILE *out, const char *l, const char *mark, const char *r)
{
	fprintf(out, "%-*.*s %s %s\n", COLW, COLW, l, mark, r);
}

int guard_patch__dis(const struct rewrite_code_info *info, const struct guard_patch *p,
		     uint32_t anchor_unit, unsigned context, FILE *out)
{
	struct rewrite_code_info pi;
	struct rewrite_const *pc = NULL;
	struct rewrite_code *a = NULL, *b = NULL;
	int err = guard_patch__info(info, p, &pi, &pc);
	if (err < 0)
		return err;
	if ((err = rewrite_code__decode(info, &a, NULL)) < 0 ||
	    (err = rewrite_code__decode(&pi, &b, NULL)) < 0)
		goto out;
	int ma, mb;
	if ((err = rewrite_code__analyse(a, &ma, NULL)) < 0 ||
	    (err = rewrite_code__analyse(b, &mb, NULL)) < 0)
		goto out;
	size_t na = rewrite_code__ninstrs(a), nb = rewrite_code__ninstrs(b);
	const struct rewrite_instr *ia = rewrite_code__instrs(a), *ib = rewrite_code__instrs(b);
	int64_t at = rewrite_code__instr_at(a, anchor_unit);
	if (at < 0)
		at = 0;
	size_t lo = (size_t)at > context ? (size_t)at - context : 0;
	size_t hi = (size_t)at + context + 1 < na ? (size_t)at + context + 1 : na;
	unsigned fl = REWRITE_DIS_DEPTH | REWRITE_DIS_LINES;
	char l[160], r[160];
	fprintf(out, "%-*s   %s\n", COLW, "original", "patched");
	/* Originals keep their offsets: walk both by unit. */
	size_t jb = 0;
	for (size_t i = lo; i < hi; i++) {
		while (jb < nb && ib[jb].offset < ia[i].offset)
			jb++;
		rewrite_code__format_instr(a, i, fl, l, sizeof(l));
		if (jb < nb && ib[jb].offset == ia[i].offset) {
			rewrite_code__format_instr(b, jb, fl, r, sizeof(r));
			bool same = ib[jb].opcode == ia[i].opcode && ib[jb].arg == ia[i].arg &&
				    ib[jb].size == ia[i].size;
			print_cols(out, l, same ? (i == (size_t)at ? ">" : " ") : "*", r);
		} else {
			print_cols(out, l, "?", "");
		}
	}
	size_t napp = 0;
	for (size_t j = 0; j < nb; j++)
		napp += ib[j].offset >= p->orig_units;
	fprintf(out, "%-*s   appended (%zu instructions from unit %u):\n", COLW, "", napp,
		p->orig_units);
	for (size_t j = 0; j < nb; j++) {
		if (ib[j].offset < p->orig_units)
			continue;
		rewrite_code__format_instr(b, j, fl, r, sizeof(r));
		print_cols(out, "", "+", r);
	}
	fprintf(out, "exception table (patched; + new):\n");
	const struct rewrite_exc *eb = rewrite_code__excs(b);
	for (size_t k = 0; k < rewrite_code__nexc(b); k++) {
		bool isnew = eb[k].target >= p->orig_units;
		fprintf(out, "  %s %u to %u -> %u [%u]%s\n", isnew ? "+" : " ", eb[k].start * 2,
			eb[k].end * 2 - 2, eb[k].target * 2, eb[k].depth,
			eb[k].lasti ? " lasti" : "");
	}
	fprintf(out, "stack size %d -> %d\n", info->stacksize, p->stacksize);
out:
	rewrite_code__free(a);
	rewrite_code__free(b);
	free(pc);
	return err;
}

int guard__explain(const struct rewrite_code_info *info, const struct guard_crash *crash,
		   unsigned context, FILE *out)
{
	struct guard_decision d;
	struct rewrite_diag diag = { 0 };
	int err = guard__analyse(info, crash, &d, &diag);
	if (err < 0) {
		fprintf(out, "%s\n", diag.msg);
		return err;
	}
	fprintf(out, "crash: %s at unit %u of '%s'\n", crash->exc_type, crash->unit,
		info->qualname ? info->qualname : "?");
	if (d.kind == GUARD_NONE) {
		fprintf(out, "no guard (%s): %s\n", guard_refusal__name(d.refusal), d.reason);
		return 0;
	}
	fprintf(out,
		"guard: %s\ntarget: %s (subject %s)\nfallback: %s\nplacement: %s, %s\n"
		"fingerprint: %016llx\n",
		guard_kind__name(d.kind), d.target, d.subject, d.fallback_text,
		guard_placement__name(d.placement), d.consumer, (unsigned long long)d.fingerprint);
	struct guard_patch p;
	err = guard__synthesize(info, &d, &p, &diag);
	if (err < 0) {
		fprintf(out, "%s\n", diag.msg);
		return err;
	}
	struct rewrite_code_info pi;
	struct rewrite_const *pc = NULL;
	struct guard_delta dl;
	err = guard_patch__info(info, &p, &pi, &pc);
	if (err == 0)
		err = guard_diffgate__check(info, &pi, &dl, &diag);
	free(pc);
	if (err == 0) {
		char buf[256];
		guard_delta__format(&dl, buf, sizeof(buf));
		fprintf(out, "diff gate: accepted: %s\n\n", buf);
		err = guard_patch__dis(info, &p, d.anchor_unit, context, out);
	} else {
		fprintf(out, "diff gate: rejected: %s\n", diag.msg);
	}
	guard_patch__release(&p);
	return err;
}
