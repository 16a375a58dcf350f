/* rewrite/fingerprint.c: a crash site's identity, stable across runs,
 * processes and quickening: computed on the canonical instructions (the
 * decoder deoptimizes co_code_adaptive), with names and constants as text
 * and jumps as relative distances, so nothing depends on addresses. */
#include "rewrite/guard-priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <opcode.h>

#define FP_BEFORE 3
#define FP_AFTER 2

/* An int in decimal, as "%d" gives it, or "%+d" with sign (buf: 24 bytes). */
static void fmt_int(char *buf, int64_t v, bool sign)
{
	char tmp[24];
	size_t n = 0;
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	size_t o = 0;
	if (v < 0)
		buf[o++] = '-';
	else if (sign)
		buf[o++] = '+';
	while (n)
		buf[o++] = tmp[--n];
	buf[o] = '\0';
}

/* The pieces appended to w[cap] at *used, whole, as snprintf(w + *used,
 * cap - *used, "%s%s...") would: when they do not fit, what fits is
 * written, w ends at its last byte, and false says the window is full. */
static bool window_add(char *w, size_t cap, size_t *used, const char *const *piece, size_t n)
{
	size_t len = 0;
	for (size_t k = 0; k < n; k++)
		len += strlen(piece[k]);
	size_t at = *used, room = cap - at; /* room >= 1: w[at] is the NUL */
	for (size_t k = 0; k < n && at < cap - 1; k++) {
		size_t l = strlen(piece[k]);
		if (l > cap - 1 - at)
			l = cap - 1 - at;
		memcpy(w + at, piece[k], l);
		at += l;
	}
	w[at] = '\0';
	if (len >= room) {
		*used = cap - 1;
		return false;
	}
	*used = at;
	return true;
}

int guard_fingerprint__compute(const struct rewrite_code_info *info, uint32_t unit,
			       const char *exc_type, struct guard_fingerprint *out,
			       struct rewrite_diag *diag)
{
	memset(out, 0, sizeof(*out));
	struct rewrite_code *code = NULL;
	int err = rewrite_code__decode(info, &code, diag);
	if (err < 0)
		return err;
	int64_t at = rewrite_code__instr_at(code, unit);
	if (at < 0) {
		if (diag) {
			diag->err = -EINVAL;
			diag->where = unit;
			guard__fmt(diag->msg, sizeof(diag->msg),
				   "guard: fingerprint: unit %u is outside code '%s'", unit,
				   info->qualname ? info->qualname : "?");
		}
		rewrite_code__free(code);
		return -EINVAL;
	}
	struct gctx g = { .info = info,
			  .code = code,
			  .in = rewrite_code__instrs(code),
			  .n = rewrite_code__ninstrs(code) };
	/* A call fails at its PRECALL (specialized builtin calls) or at its
	 * CALL: one site either way. */
	if (g.in[at].opcode == PRECALL && (size_t)at + 1 < g.n && g.in[at + 1].opcode == CALL)
		at++;
	int64_t lo = at - FP_BEFORE < 0 ? 0 : at - FP_BEFORE;
	int64_t hi = at + FP_AFTER >= (int64_t)g.n ? (int64_t)g.n - 1 : at + FP_AFTER;
	/* The window's text is stored (as its hash) and compared at every
	 * later load: these pieces must stay byte for byte what the
	 * snprintf calls they replace gave ("%s%s" of the argument with
	 * guard__fmt's cut, "%+d", "%u", then "%s%s%s%s%s" into the
	 * window, cut at its end). Without snprintf: it was half of this
	 * function's instructions, 100 of them in every boot load of 100
	 * patches (docs/performance.md, "start-up, sixth pass"). */
	size_t used = 0;
	for (int64_t i = lo; i <= hi; i++) {
		const struct rewrite_instr *in = &g.in[i];
		char arg[96];
		switch (rewrite_opcode__argkind(in->opcode)) {
		case REWRITE_ARG_NAME:
		case REWRITE_ARG_LOCAL:
		case REWRITE_ARG_FREE:
		case REWRITE_ARG_CONST: {
			const char *text = gctx__argtext(&g, in);
			const char *more = in->opcode == LOAD_GLOBAL && (in->arg & 1) ? "+NULL"
										      : "";
			size_t a = strlen(text), b = strlen(more);
			if (a + b < sizeof(arg)) {
				memcpy(arg, text, a);
				memcpy(arg + a, more, b + 1);
			} else {
				guard__fmt(arg, sizeof(arg), "%s%s", text, more); /* its cut */
			}
			break;
		}
		case REWRITE_ARG_JUMP:
			fmt_int(arg, in->target >= 0 ? (int64_t)(in->target - i) : 0, true);
			break;
		case REWRITE_ARG_NONE:
			arg[0] = '\0';
			break;
		default:
			fmt_int(arg, in->arg, false);
		}
		const char *piece[5] = { i == lo ? "" : "|", i == at ? ">" : "",
					 rewrite_opcode__name(in->opcode), arg[0] ? " " : "", arg };
		if (!window_add(out->window, sizeof(out->window), &used, piece, 5))
			break;
	}
	uint64_t h = guard__fnv1a(GUARD_FNV_SEED, out->window, strlen(out->window));
	h = guard__fnv1a(h, "\0", 1);
	const char *t = exc_type ? exc_type : "";
	if (strncmp(t, "builtins.", 9) == 0)
		t += 9;
	out->hash = guard__fnv1a(h, t, strlen(t));
	rewrite_code__free(code);
	return 0;
}

static uint64_t hash_str(uint64_t h, const char *s)
{
	s = s ? s : "";
	return guard__fnv1a(h, s, strlen(s) + 1); /* the NUL separates fields */
}

int guard_code__identity(const struct rewrite_code_info *info, uint64_t *id)
{
	uint8_t *canon = malloc(info->code_len + 1);
	if (!canon)
		return -ENOMEM;
	int err = rewrite_bytes__deopt(info->code, info->code_len, canon);
	if (err < 0) {
		free(canon);
		return err;
	}
	uint64_t h = guard__fnv1a(GUARD_FNV_SEED, canon, info->code_len);
	free(canon);
	h = guard__fnv1a(h, info->exctable, info->exctable_len);
	h = guard__fnv1a(h, info->linetable, info->linetable_len);
	for (size_t i = 0; i < info->nconsts; i++) {
		h = hash_str(h, info->consts[i].type);
		h = hash_str(h, info->consts[i].repr);
	}
	for (size_t i = 0; i < info->nnames; i++)
		h = hash_str(h, info->names[i]);
	h = hash_str(h, info->filename);
	h = hash_str(h, info->qualname);
	*id = guard__fnv1a(h, &info->firstlineno, sizeof(info->firstlineno));
	return 0;
}
