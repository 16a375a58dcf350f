/* rewrite/code.c: decoding code units into instructions, the model's
 * accessors, append-only editing, layout and encoding.
 * Format: docs/formats/bytecode.md. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <opcode.h> /* CPython's opcode numbers */

#include "rewrite/rewrite-priv.h"

static int grow_instrs(struct rewrite_code *code, size_t want)
{
	if (want <= code->instrcap)
		return 0;
	size_t cap = code->instrcap ? code->instrcap : 16;
	while (cap < want)
		cap *= 2;
	struct rewrite_instr *p = realloc(code->instrs, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	code->instrs = p;
	code->instrcap = cap;
	return 0;
}

bool rewrite_code__send_loop_jump(const struct rewrite_code *code, size_t i)
{
	const struct rewrite_instr *in = &code->instrs[i];
	return in->opcode == JUMP_BACKWARD_NO_INTERRUPT && in->target >= 0 &&
	       (size_t)in->target < code->ninstrs && code->instrs[in->target].opcode == SEND;
}

int64_t rw_instr_starting_at(const struct rewrite_code *code, uint32_t unit)
{
	size_t lo = 0, hi = code->ninstrs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint32_t off = code->instrs[mid].offset;
		if (off == unit)
			return (int64_t)mid;
		if (off < unit)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

int64_t rewrite_code__instr_at(const struct rewrite_code *code, uint32_t unit)
{
	size_t lo = 0, hi = code->ninstrs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct rewrite_instr *in = &code->instrs[mid];
		if (unit < in->offset)
			hi = mid;
		else if (unit >= in->offset + in->size)
			lo = mid + 1;
		else
			return (int64_t)mid;
	}
	return -1;
}

/* Jump target unit of a laid-out jump: relative to the end of the
 * instruction (prefixes and caches included), as compile.c's
 * assemble_jump_offsets(). */
static int64_t jump_unit(const struct rewrite_instr *in)
{
	int64_t end = (int64_t)in->offset + in->size - in->npad;
	return rewrite_opcode__is_backward(in->opcode) ? end - (int64_t)in->arg
						       : end + (int64_t)in->arg;
}

int rewrite_code__decode(const struct rewrite_code_info *info, struct rewrite_code **out,
			 struct rewrite_diag *diag)
{
	struct rewrite_code *code = NULL;
	int err;

	*out = NULL;
	if (!info || (!info->code && info->code_len))
		return rw_fail(diag, NULL, -EINVAL, -1, "no code to decode");
	if (info->code_len % 2 || info->code_len == 0 || info->code_len / 2 > UINT32_MAX / 2)
		return rw_fail(diag, info, -EINVAL, -1, "co_code has a bad length (%zu bytes)",
			       info->code_len);
	code = calloc(1, sizeof(*code));
	if (!code)
		return rw_fail(diag, info, -ENOMEM, -1, "out of memory");
	code->info = info;
	const uint8_t *p = info->code;
	uint32_t n = (uint32_t)(info->code_len / 2);
	code->nunits = code->norig_units = n;

	/* Instructions: at most one per unit; shrink later is not needed. */
	for (uint32_t i = 0; i < n;) {
		uint32_t start = i, arg = 0;
		unsigned nprefix = 0;
		int op;
		for (;;) {
			op = rewrite_opcode__deopt(RW_OP(p, i));
			if (op < 0) {
				err = rw_fail(diag, info, -EINVAL, i,
					      "unknown opcode %u at unit %u", RW_OP(p, i), i);
				goto fail;
			}
			if (op != RW_OP(p, i))
				code->quickened = true;
			if (arg > 0xffffff) {
				err = rw_fail(diag, info, -EINVAL, i,
					      "EXTENDED_ARG prefixes overflow 32 bits at unit %u",
					      i);
				goto fail;
			}
			arg = (arg << 8) | RW_ARG(p, i);
			if (op != EXTENDED_ARG)
				break;
			if (nprefix == 255) {
				err = rw_fail(diag, info, -EINVAL, i,
					      "too many EXTENDED_ARG at unit %u", i);
				goto fail;
			}
			nprefix++;
			i++;
			if (i >= n) {
				err = rw_fail(
					diag, info, -EINVAL, start,
					"EXTENDED_ARG at unit %u runs off the end of the code",
					start);
				goto fail;
			}
		}
		if (op == CACHE) {
			err = rw_fail(diag, info, -EINVAL, i,
				      "CACHE at unit %u where an instruction should start", i);
			goto fail;
		}
		unsigned caches = rw_opinfo[op].caches;
		if (caches > n - 1 - i) {
			err = rw_fail(diag, info, -EINVAL, i,
				      "%s at unit %u: its %u caches run off the end of the code",
				      rw_opinfo[op].name, i, caches);
			goto fail;
		}
		for (unsigned c = 1; c <= caches; c++)
			if (RW_OP(p, i + c) || RW_ARG(p, i + c))
				code->quickened = true;
		if ((err = grow_instrs(code, code->ninstrs + 1))) {
			err = rw_fail(diag, info, err, -1, "out of memory");
			goto fail;
		}
		code->instrs[code->ninstrs++] = (struct rewrite_instr){
			.offset = start,
			.arg = arg,
			.opcode = (uint8_t)op,
			.nprefix = (uint8_t)nprefix,
			.nprefix_min = (uint8_t)nprefix,
			.ncaches = (uint8_t)caches,
			.size = (uint8_t)(nprefix + 1 + caches),
			.target = -1,
			.depth = -1,
			.loc = { -1, -1, -1, -1 },
		};
		i += 1 + caches;
	}
	code->noriginal = code->ninstrs;

	/* Jump targets, resolved to instruction indices. */
	for (size_t k = 0; k < code->ninstrs; k++) {
		struct rewrite_instr *in = &code->instrs[k];
		if (!rewrite_opcode__is_jump(in->opcode))
			continue;
		int64_t t = jump_unit(in);
		int64_t idx = (t >= 0 && t < n) ? rw_instr_starting_at(code, (uint32_t)t) : -1;
		if (idx < 0) {
			err = rw_fail(diag, info, -EINVAL, in->offset,
				      "%s at unit %u jumps to unit %lld, %s",
				      rw_opinfo[in->opcode].name, in->offset, (long long)t,
				      (t < 0 || t >= n) ? "outside the code"
							: "inside an instruction");
			goto fail;
		}
		in->target = (int32_t)idx;
	}

	code->orig_offset = malloc(code->ninstrs * sizeof(uint32_t));
	if (!code->orig_offset) {
		err = rw_fail(diag, info, -ENOMEM, -1, "out of memory");
		goto fail;
	}
	for (size_t k = 0; k < code->ninstrs; k++)
		code->orig_offset[k] = code->instrs[k].offset;

	if (info->exctable_len) {
		if (!info->exctable) {
			err = rw_fail(diag, info, -EINVAL, -1, "exception table pointer missing");
			goto fail;
		}
		err = rewrite_exctable__decode(info->exctable, info->exctable + info->exctable_len,
					       &code->excs, &code->nexc, diag);
		if (err) {
			char msg[sizeof(diag->msg)];
			if (diag)
				memcpy(msg, diag->msg, sizeof(msg));
			rw_fail(diag, info, err, diag ? diag->where : -1, "%s",
				diag ? msg + strlen("rewrite: ") : "bad exception table");
			goto fail;
		}
		code->exccap = code->nexc;
	}
	if (info->linetable_len) {
		if (!info->linetable) {
			err = rw_fail(diag, info, -EINVAL, -1, "location table pointer missing");
			goto fail;
		}
		err = rewrite_linetable__decode(info->linetable,
						info->linetable + info->linetable_len,
						info->firstlineno, &code->lentries,
						&code->nlentries, diag);
		if (err) {
			char msg[sizeof(diag->msg)];
			if (diag)
				memcpy(msg, diag->msg, sizeof(msg));
			rw_fail(diag, info, err, diag ? diag->where : -1, "%s",
				diag ? msg + strlen("rewrite: ") : "bad location table");
			goto fail;
		}
	}
	/* Each instruction takes the location of its op unit (the table has one
	 * run per instruction in compiler output; verify checks coverage). */
	size_t e = 0;
	for (size_t k = 0; k < code->ninstrs; k++) {
		struct rewrite_instr *in = &code->instrs[k];
		uint32_t u = in->offset + in->nprefix;
		while (e < code->nlentries && code->lentries[e].start + code->lentries[e].len <= u)
			e++;
		if (e < code->nlentries && code->lentries[e].start <= u)
			in->loc = code->lentries[e].loc;
	}
	code->laid_out = true;
	*out = code;
	return 0;
fail:
	rewrite_code__free(code);
	return err;
}

void rewrite_code__free(struct rewrite_code *code)
{
	if (!code)
		return;
	free(code->instrs);
	free(code->orig_offset);
	free(code->excs);
	free(code->lentries);
	free(code);
}

const struct rewrite_code_info *rewrite_code__info(const struct rewrite_code *code)
{
	return code->info;
}

bool rewrite_code__was_quickened(const struct rewrite_code *code)
{
	return code->quickened;
}

size_t rewrite_code__ninstrs(const struct rewrite_code *code)
{
	return code->ninstrs;
}

const struct rewrite_instr *rewrite_code__instrs(const struct rewrite_code *code)
{
	return code->instrs;
}

size_t rewrite_code__noriginal(const struct rewrite_code *code)
{
	return code->noriginal;
}

uint32_t rewrite_code__nunits(const struct rewrite_code *code)
{
	return code->nunits;
}

size_t rewrite_code__nexc(const struct rewrite_code *code)
{
	return code->nexc;
}

const struct rewrite_exc *rewrite_code__excs(const struct rewrite_code *code)
{
	return code->excs;
}

const struct rewrite_exc *rewrite_code__exc_at(const struct rewrite_code *code, uint32_t unit)
{
	size_t lo = 0, hi = code->nexc;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct rewrite_exc *x = &code->excs[mid];
		if (unit < x->start)
			hi = mid;
		else if (unit >= x->end)
			lo = mid + 1;
		else
			return x;
	}
	return NULL;
}

size_t rewrite_code__nlentries(const struct rewrite_code *code)
{
	return code->nlentries;
}

const struct rewrite_lentry *rewrite_code__lentries(const struct rewrite_code *code)
{
	return code->lentries;
}

int rewrite_code__unit_loc(const struct rewrite_code *code, uint32_t unit, struct rewrite_loc *loc)
{
	size_t lo = 0, hi = code->nlentries;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct rewrite_lentry *x = &code->lentries[mid];
		if (unit < x->start)
			hi = mid;
		else if (unit >= x->start + x->len)
			lo = mid + 1;
		else {
			*loc = x->loc;
			return 0;
		}
	}
	return -ENOENT;
}

/* ---------------------------------------------------------------------- */
/* Editing                                                                */

static int check_new(int opcode, int64_t target)
{
	if (opcode < 0 || opcode > 255 || !(rw_opinfo[opcode].flags & RW_OP_CANONICAL) ||
	    opcode == CACHE || opcode == EXTENDED_ARG)
		return -EINVAL;
	bool jump = rewrite_opcode__is_jump(opcode);
	if (jump != (target >= 0) || target > INT32_MAX)
		return -EINVAL;
	return 0;
}

int64_t rewrite_code__append(struct rewrite_code *code, int opcode, uint32_t arg, int64_t target,
			     const struct rewrite_loc *loc, unsigned nprefix)
{
	int err = check_new(opcode, target);
	if (err)
		return err;
	if (nprefix > 3 || code->ninstrs >= INT32_MAX)
		return -ERANGE;
	if ((err = grow_instrs(code, code->ninstrs + 1)))
		return err;
	unsigned caches = rw_opinfo[opcode].caches;
	/* Provisional offset right after the last instruction, so lookups by
	 * unit keep working before the next layout fixes jump sizes. */
	uint32_t off = 0;
	if (code->ninstrs) {
		const struct rewrite_instr *last = &code->instrs[code->ninstrs - 1];
		off = last->offset + last->size;
	}
	code->instrs[code->ninstrs] = (struct rewrite_instr){
		.offset = off,
		.arg = rewrite_opcode__is_jump(opcode) ? 0 : arg,
		.opcode = (uint8_t)opcode,
		.nprefix = (uint8_t)nprefix,
		.nprefix_min = (uint8_t)nprefix,
		.ncaches = (uint8_t)caches,
		.size = (uint8_t)(nprefix + 1 + caches),
		.target = (int32_t)target,
		.depth = -1,
		.loc = loc ? *loc : (struct rewrite_loc){ -1, -1, -1, -1 },
	};
	code->nunits = off + code->instrs[code->ninstrs].size;
	code->laid_out = false;
	code->analysed = false;
	return (int64_t)code->ninstrs++;
}

int rewrite_code__replace(struct rewrite_code *code, size_t index, int opcode, uint32_t arg,
			  int64_t target, unsigned nprefix)
{
	int err = check_new(opcode, target);
	if (err)
		return err;
	if (index >= code->ninstrs || nprefix > 255)
		return -ERANGE;
	struct rewrite_instr *in = &code->instrs[index];
	in->opcode = (uint8_t)opcode;
	in->arg = rewrite_opcode__is_jump(opcode) ? 0 : arg;
	in->target = (int32_t)target;
	in->nprefix = in->nprefix_min = (uint8_t)nprefix;
	in->nlead = 0;
	in->ncaches = rw_opinfo[opcode].caches;
	in->npad = 0; /* recomputed by the layout for original instructions */
	in->size = (uint8_t)(nprefix + 1 + in->ncaches);
	code->laid_out = false;
	code->analysed = false;
	return 0;
}

int rewrite_code__set_excs(struct rewrite_code *code, const struct rewrite_exc *e, size_t n)
{
	struct rewrite_exc *p = NULL;
	if (n) {
		p = malloc(n * sizeof(*p));
		if (!p)
			return -ENOMEM;
		memcpy(p, e, n * sizeof(*p));
	}
	free(code->excs);
	code->excs = p;
	code->nexc = code->exccap = n;
	code->analysed = false;
	return 0;
}

int rewrite_code__add_exc(struct rewrite_code *code, const struct rewrite_exc *e)
{
	if (e->end <= e->start)
		return -EINVAL;
	size_t pos = code->nexc;
	while (pos > 0 && code->excs[pos - 1].start > e->start)
		pos--;
	if ((pos > 0 && code->excs[pos - 1].end > e->start) ||
	    (pos < code->nexc && code->excs[pos].start < e->end))
		return -EINVAL; /* would overlap */
	if (code->nexc == code->exccap) {
		size_t cap = code->exccap ? 2 * code->exccap : 4;
		struct rewrite_exc *p = realloc(code->excs, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		code->excs = p;
		code->exccap = cap;
	}
	memmove(&code->excs[pos + 1], &code->excs[pos], (code->nexc - pos) * sizeof(*e));
	code->excs[pos] = *e;
	code->nexc++;
	code->analysed = false;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Layout and encoding                                                    */

int rw_layout(struct rewrite_code *code, struct rewrite_diag *diag)
{
	const struct rewrite_code_info *info = code->info;
	size_t n = code->ninstrs;
	for (size_t k = 0; k < n; k++) {
		struct rewrite_instr *in = &code->instrs[k];
		if (in->target >= (int64_t)n ||
		    (in->target >= 0) != rewrite_opcode__is_jump(in->opcode))
			return rw_fail(diag, info, -EINVAL, k,
				       "instruction %zu: bad jump target %d", k, in->target);
		unsigned need = rewrite_instr__prefixes(in->arg);
		in->nprefix = (uint8_t)(need > in->nprefix_min ? need : in->nprefix_min);
		in->nlead = 0;
		in->npad = 0;
		in->size = (uint8_t)(in->nprefix + 1 + in->ncaches);
	}
	/* Sizes only grow, so this settles (at most 3 growths an instruction).
	 * An original instruction shorter than its slot (a replacement) is
	 * padded with NOPs up to the slot. A forward jump's growth moves its
	 * own end towards its target: the arg that needed one more prefix may
	 * no longer need it (256 units away with none, 255 with one). The
	 * prefix stays, for the sizes to settle, and is written as a NOP
	 * before the jump (nlead), never as EXTENDED_ARG 0, which debug
	 * builds assert on (ceval.c, TARGET(EXTENDED_ARG): assert(oparg)). */
	for (int round = 0;; round++) {
		uint64_t off = 0;
		for (size_t k = 0; k < n; k++) {
			struct rewrite_instr *in = &code->instrs[k];
			in->offset = (uint32_t)off;
			if (k < code->noriginal) {
				uint32_t slot = (k + 1 < code->noriginal ? code->orig_offset[k + 1]
									 : code->norig_units) -
						code->orig_offset[k];
				unsigned content = in->nprefix + 1u + in->ncaches;
				in->npad = (uint8_t)(content < slot ? slot - content : 0);
				in->size = (uint8_t)(content + in->npad);
			}
			off += in->size;
		}
		if (off > UINT32_MAX / 2)
			return rw_fail(diag, info, -ERANGE, -1, "code too long");
		code->nunits = (uint32_t)off;
		bool changed = false;
		for (size_t k = 0; k < n; k++) {
			struct rewrite_instr *in = &code->instrs[k];
			if (in->target < 0)
				continue;
			int64_t end = (int64_t)in->offset + in->size - in->npad;
			int64_t t = code->instrs[in->target].offset;
			bool back = rewrite_opcode__is_backward(in->opcode);
			if ((back && t > end) || (!back && t < end)) {
				int rev = rewrite_opcode__reverse_jump(in->opcode);
				if (rev < 0)
					return rw_fail(diag, info, -ERANGE, k,
						       "instruction %zu: %s cannot jump %s", k,
						       rw_opinfo[in->opcode].name,
						       back ? "forward" : "backward");
				in->opcode = (uint8_t)rev;
				back = !back;
			}
			uint32_t arg = (uint32_t)(back ? end - t : t - end);
			in->arg = arg;
			unsigned need = rewrite_instr__prefixes(arg);
			if (need > in->nprefix) {
				/* grows into its padding first, if it has any */
				in->nprefix = (uint8_t)need;
				in->size = (uint8_t)(need + 1 + in->ncaches);
				changed = true;
			}
		}
		if (!changed)
			break;
	}
	for (size_t k = 0; k < n; k++) {
		struct rewrite_instr *in = &code->instrs[k];
		unsigned keep = rewrite_instr__prefixes(in->arg);
		if (keep < in->nprefix_min)
			keep = in->nprefix_min;
		in->nlead = (uint8_t)(in->nprefix - keep);
	}
	for (size_t k = 0; k < code->noriginal; k++)
		if (code->instrs[k].offset != code->orig_offset[k])
			return rw_fail(diag, info, -ERANGE, code->orig_offset[k],
				       "original instruction %zu would move from unit %u to %u", k,
				       code->orig_offset[k], code->instrs[k].offset);
	code->laid_out = true;
	return 0;
}

static int encode_code(const struct rewrite_code *code, struct rewrite_bytes *out)
{
	size_t len = (size_t)code->nunits * 2;
	uint8_t *p = calloc(len ? len : 1, 1);
	if (!p)
		return -ENOMEM;
	for (size_t k = 0; k < code->ninstrs; k++) {
		const struct rewrite_instr *in = &code->instrs[k];
		size_t u = in->offset;
		/* caches zero, as in _PyCode_GetCode() (rewrite/instr.c) */
		int w = u * 2 > len ? -ENOSPC
				    : rewrite_instr__put(p + 2 * u, len - 2 * u, in->opcode,
							 in->arg, in->nprefix, in->ncaches);
		if (w < 0) {
			free(p);
			return w;
		}
		/* padding is NOP 0, before the op (nlead) and after it (npad) */
		for (unsigned j = 0; j < in->nlead; j++)
			RW_OP(p, in->offset + j) = NOP, RW_ARG(p, in->offset + j) = 0;
		u += (size_t)w / 2;
		for (unsigned j = 0; j < in->npad; j++)
			RW_OP(p, u + j) = NOP;
	}
	out->data = p;
	out->len = len;
	return 0;
}

int rewrite_code__encode(struct rewrite_code *code, struct rewrite_bytes *co_code,
			 struct rewrite_bytes *exctable, struct rewrite_bytes *linetable,
			 struct rewrite_diag *diag)
{
	const struct rewrite_code_info *info = code->info;
	int err = rw_layout(code, diag);
	if (err)
		return err;
	struct rewrite_bytes c = { 0 }, x = { 0 }, l = { 0 };
	if (co_code && (err = encode_code(code, &c)))
		return rw_fail(diag, info, err, -1, "encoding co_code: %s", strerror(-err));
	if (exctable && (err = rewrite_exctable__encode(code->excs, code->nexc, &x))) {
		rewrite_bytes__free(&c);
		return rw_fail(diag, info, err, -1, "encoding the exception table: %s",
			       strerror(-err));
	}
	if (linetable && (err = rw_linetable_encode_instrs(code->instrs, code->ninstrs,
							   info->firstlineno, &l))) {
		rewrite_bytes__free(&c);
		rewrite_bytes__free(&x);
		return rw_fail(diag, info, err, -1, "encoding the location table: %s",
			       strerror(-err));
	}
	if (co_code)
		*co_code = c;
	if (exctable)
		*exctable = x;
	if (linetable)
		*linetable = l;
	return 0;
}
