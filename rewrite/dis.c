/* rewrite/dis.c: a disassembly for people (suture-dis, and later the
 * side-by-side view of a patched code object). Offsets are shown in bytes,
 * as Python's dis module does (2 * code unit): an instruction at its op's
 * unit ("+" marks EXTENDED_ARG prefixes folded in), a jump target at the
 * unit execution lands on (its first prefix). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rewrite/rewrite-priv.h"

/* snprintf that keeps counting when the buffer is full. */
struct fmt {
	char *buf;
	size_t len, used;
};

static void put(struct fmt *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct fmt *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t room = f->used < f->len ? f->len - f->used : 0;
	int n = vsnprintf(room ? f->buf + f->used : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		f->used += (size_t)n;
}

static const char *name_at(const char *const *v, size_t n, uint32_t i)
{
	return (v && i < n && v[i]) ? v[i] : NULL;
}

static void put_argval(struct fmt *f, const struct rewrite_code *code,
		       const struct rewrite_instr *in)
{
	const struct rewrite_code_info *info = code->info;
	const char *s = NULL;
	switch (rewrite_opcode__argkind(in->opcode)) {
	case REWRITE_ARG_CONST:
		if (info->consts && in->arg < info->nconsts && info->consts[in->arg].repr)
			s = info->consts[in->arg].repr;
		if (s && info->consts[in->arg].type && !strcmp(info->consts[in->arg].type, "code"))
			put(f, " (<code object %s>)", s);
		else if (s)
			put(f, " (%.60s%s)", s, strlen(s) > 60 ? "..." : "");
		return;
	case REWRITE_ARG_NAME: {
		bool global = strcmp(rw_opinfo[in->opcode].name, "LOAD_GLOBAL") == 0;
		s = name_at(info->names, info->nnames, global ? in->arg >> 1 : in->arg);
		if (s)
			put(f, " (%s%s)", global && (in->arg & 1) ? "NULL + " : "", s);
		return;
	}
	case REWRITE_ARG_LOCAL:
	case REWRITE_ARG_FREE:
		s = name_at(info->localsplusnames,
			    info->nlocalsplus > 0 ? (size_t)info->nlocalsplus : 0, in->arg);
		if (s)
			put(f, " (%s)", s);
		return;
	case REWRITE_ARG_COMPARE:
		if (in->arg < rw_ncmp_op)
			put(f, " (%s)", rw_cmp_op[in->arg]);
		return;
	case REWRITE_ARG_JUMP:
		if (in->target >= 0 && (size_t)in->target < code->ninstrs) {
			const struct rewrite_instr *t = &code->instrs[in->target];
			/* where execution lands: the first EXTENDED_ARG, as dis */
			put(f, " (to %u)", 2 * t->offset);
		}
		return;
	default:
		if (strcmp(rw_opinfo[in->opcode].name, "BINARY_OP") == 0 && in->arg < rw_nnb_op)
			put(f, " (%s)", rw_nb_op[in->arg]);
		return;
	}
}

int rewrite_code__format_instr(const struct rewrite_code *code, size_t index, unsigned flags,
			       char *buf, size_t len)
{
	struct fmt f = { buf, len, 0 };
	if (len)
		buf[0] = 0;
	if (index >= code->ninstrs)
		return -EINVAL;
	const struct rewrite_instr *in = &code->instrs[index];
	put(&f, "%6u", 2 * (in->offset + in->nprefix));
	if (flags & REWRITE_DIS_LINES) {
		if (in->loc.line >= 0)
			put(&f, " L%-5d", in->loc.line);
		else
			put(&f, " %-6s", "L-");
	}
	put(&f, " %s%-26s", in->nprefix ? "+" : " ", rw_opinfo[in->opcode].name);
	if (rewrite_opcode__has_arg(in->opcode) || in->arg)
		put(&f, " %6u", in->arg);
	else
		put(&f, " %6s", "");
	put_argval(&f, code, in);
	if (flags & REWRITE_DIS_DEPTH) {
		if (in->depth >= 0)
			put(&f, "  d=%d", in->depth);
		else
			put(&f, "  d=-");
	}
	if (in->npad)
		put(&f, "  [+%u NOP]", in->npad);
	if (index >= code->noriginal)
		put(&f, "  [appended]");
	return f.used > INT32_MAX ? -ERANGE : (int)f.used;
}

int rewrite_code__dis(const struct rewrite_code *code, unsigned flags, FILE *out)
{
	const struct rewrite_code_info *info = code->info;
	char line[512];
	fprintf(out,
		"code %s (%s:%d): %zu instructions, %u units, co_stacksize %d, co_flags 0x%x\n",
		info->qualname ? info->qualname : "?", info->filename ? info->filename : "?",
		info->firstlineno, code->ninstrs, code->nunits, info->stacksize, info->flags);
	for (size_t k = 0; k < code->ninstrs; k++) {
		int n = rewrite_code__format_instr(code, k, flags, line, sizeof(line));
		if (n < 0)
			return n;
		fprintf(out, "%s%s\n", line, (size_t)n >= sizeof(line) ? "..." : "");
	}
	if (code->nexc) {
		fprintf(out, "exception table (bytes):\n");
		for (size_t x = 0; x < code->nexc; x++) {
			const struct rewrite_exc *e = &code->excs[x];
			fprintf(out, "  %u to %u -> %u [%u]%s\n", 2 * e->start, 2 * e->end,
				2 * e->target, e->depth, e->lasti ? " lasti" : "");
		}
	}
	if (flags & REWRITE_DIS_LINES) {
		fprintf(out, "location table (bytes):\n");
		for (size_t i = 0; i < code->nlentries; i++) {
			const struct rewrite_lentry *l = &code->lentries[i];
			fprintf(out, "  %u-%u: ", 2 * l->start, 2 * (l->start + l->len));
			if (l->loc.line < 0)
				fprintf(out, "no location\n");
			else if (l->loc.col < 0)
				fprintf(out, "line %d-%d\n", l->loc.line, l->loc.end_line);
			else
				fprintf(out, "line %d:%d-%d:%d\n", l->loc.line, l->loc.col,
					l->loc.end_line, l->loc.end_col);
		}
	}
	return ferror(out) ? -EIO : 0;
}
