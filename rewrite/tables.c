/* rewrite/tables.c: co_exceptiontable and co_linetable as whole tables
 * (allocating decoders and encoders over the entry codecs of exctable.c and
 * linetable.c), deoptimization of quickened bytes, diagnostics.
 *
 * Exception table: docs/formats/exception-table.md, after CPython's
 * Objects/exception_handling_notes.txt and compile.c's
 * assemble_emit_exception_table_item(). Location table:
 * docs/formats/location-table.md, after Objects/locations.md and
 * compile.c's write_location_info_entry(). One small function per form.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rewrite/rewrite-priv.h"

int rw_fail(struct rewrite_diag *diag, const struct rewrite_code_info *info, int err, int64_t where,
	    const char *fmt, ...)
{
	if (!diag)
		return err;
	diag->err = err;
	diag->where = where;
	int n;
	if (info)
		n = snprintf(diag->msg, sizeof(diag->msg), "rewrite: code '%s' (%s:%d): ",
			     info->qualname ? info->qualname
			     : info->name   ? info->name
					    : "?",
			     info->filename ? info->filename : "?", info->firstlineno);
	else
		n = snprintf(diag->msg, sizeof(diag->msg), "rewrite: ");
	if (n < 0 || (size_t)n >= sizeof(diag->msg))
		return err;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(diag->msg + n, sizeof(diag->msg) - n, fmt, ap);
	va_end(ap);
	return err;
}

void rewrite_bytes__free(struct rewrite_bytes *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
}

/* A growable output buffer for the encoders. */
struct obuf {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static void obuf_put(struct obuf *o, uint8_t byte)
{
	if (o->err)
		return;
	if (o->len == o->cap) {
		size_t cap = o->cap ? 2 * o->cap : 64;
		uint8_t *p = realloc(o->p, cap);
		if (!p) {
			o->err = -ENOMEM;
			return;
		}
		o->p = p;
		o->cap = cap;
	}
	o->p[o->len++] = byte;
}

static int obuf_finish(struct obuf *o, struct rewrite_bytes *out)
{
	if (!o->err && !o->p && !(o->p = malloc(1)))
		o->err = -ENOMEM; /* data is never NULL on success, even when empty */
	if (o->err) {
		free(o->p);
		return o->err;
	}
	out->data = o->p;
	out->len = o->len;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Deoptimization (Objects/codeobject.c: deopt_code)                      */

int rewrite_bytes__deopt(const uint8_t *in, size_t len, uint8_t *out)
{
	if (len % 2)
		return -EINVAL;
	size_t n = len / 2;
	for (size_t i = 0; i < n; i++) {
		int op = rewrite_opcode__deopt(RW_OP(in, i));
		if (op < 0)
			return -EINVAL;
		uint8_t arg = RW_ARG(in, i);
		RW_OP(out, i) = (uint8_t)op;
		RW_ARG(out, i) = arg;
		int caches = rw_opinfo[op].caches;
		if ((size_t)caches > n - 1 - i)
			return -EINVAL;
		while (caches--) {
			i++;
			RW_OP(out, i) = 0;
			RW_ARG(out, i) = 0;
		}
	}
	return 0;
}

/* Bytes from an allocation-free encoder (exctable.c, linetable.c). */
static void obuf_append(struct obuf *o, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		obuf_put(o, p[i]);
}

/* ---------------------------------------------------------------------- */
/* Exception table: the entry codec is rewrite/exctable.c's.               */

int rewrite_exctable__decode(const uint8_t *p, const uint8_t *end, struct rewrite_exc **out,
			     size_t *n, struct rewrite_diag *diag)
{
	const uint8_t *base = p;
	struct rewrite_exc *e = NULL, x;
	size_t len = 0, cap = 0;
	int r;
	*out = NULL;
	*n = 0;
	for (const uint8_t *at = p; (r = rewrite_exctable__next(&p, end, &x)) != 0; at = p) {
		if (r == -EINVAL) {
			free(e);
			return rw_fail(diag, NULL, -EINVAL, at - base,
				       "exception table: malformed or truncated entry at byte %td",
				       at - base);
		}
		if (r < 0) {
			free(e);
			return rw_fail(diag, NULL, -EINVAL, at - base,
				       "exception table: entry at byte %td ends beyond 2^30 units",
				       at - base);
		}
		if (len == cap) {
			size_t nc = cap ? 2 * cap : 8;
			struct rewrite_exc *ne = realloc(e, nc * sizeof(*e));
			if (!ne) {
				free(e);
				return rw_fail(diag, NULL, -ENOMEM, -1,
					       "exception table: out of memory");
			}
			e = ne;
			cap = nc;
		}
		e[len++] = x;
	}
	*out = e;
	*n = len;
	return 0;
}

int rewrite_exctable__encode(const struct rewrite_exc *e, size_t n, struct rewrite_bytes *out)
{
	struct obuf o = { 0 };
	for (size_t i = 0; i < n; i++) {
		uint8_t item[REWRITE_EXCTABLE_ENTRY_MAX];
		int w = rewrite_exctable__put_entry(item, sizeof item, &e[i]);
		if (w < 0) {
			free(o.p);
			return w;
		}
		obuf_append(&o, item, (size_t)w);
	}
	return obuf_finish(&o, out);
}

/* ---------------------------------------------------------------------- */
/* Location table: the entry codec is rewrite/linetable.c's.              */

int rewrite_linetable__decode(const uint8_t *p, const uint8_t *end, int firstlineno,
			      struct rewrite_lentry **out, size_t *n, struct rewrite_diag *diag)
{
	struct rewrite_linetable_iter it;
	struct rewrite_lentry *e = NULL, x;
	size_t len = 0, cap = 0;
	int r;
	*out = NULL;
	*n = 0;
	rewrite_linetable__iter_init(&it, p, end, firstlineno);
	while ((r = rewrite_linetable__next(&it, &x)) != 0) {
		if (r < 0) {
			free(e);
			return rw_fail(diag, NULL, -EINVAL, it.p - p,
				       "location table: malformed or truncated entry at byte %td",
				       it.p - p);
		}
		if (len == cap) {
			size_t nc = cap ? 2 * cap : 16;
			struct rewrite_lentry *ne = realloc(e, nc * sizeof(*e));
			if (!ne) {
				free(e);
				return rw_fail(diag, NULL, -ENOMEM, -1,
					       "location table: out of memory");
			}
			e = ne;
			cap = nc;
		}
		e[len++] = x;
	}
	*out = e;
	*n = len;
	return 0;
}

/* One entry of 1..8 units into o; *prev is the running start line. */
static int loc_put_entry(struct obuf *o, const struct rewrite_loc *l, uint32_t units, int64_t *prev)
{
	uint8_t item[REWRITE_LINETABLE_ENTRY_MAX];
	int w = rewrite_linetable__put_entry(item, sizeof item, l, units, prev);
	if (w < 0)
		return w;
	obuf_append(o, item, (size_t)w);
	return 0;
}

int rewrite_linetable__encode(const struct rewrite_lentry *e, size_t n, int firstlineno,
			      struct rewrite_bytes *out)
{
	struct obuf o = { 0 };
	int64_t prev = firstlineno;
	for (size_t i = 0; i < n; i++) {
		int err = loc_put_entry(&o, &e[i].loc, e[i].len, &prev);
		if (err) {
			free(o.p);
			return err;
		}
	}
	return obuf_finish(&o, out);
}

/* One run per instruction, runs longer than 8 units split as compile.c's
 * assemble_emit_location(): full entries of 8 first, then the rest. */
int rw_linetable_encode_instrs(const struct rewrite_instr *ins, size_t n, int firstlineno,
			       struct rewrite_bytes *out)
{
	struct obuf o = { 0 };
	int64_t prev = firstlineno;
	for (size_t i = 0; i < n; i++) {
		uint32_t units = ins[i].size;
		int err = 0;
		while (!err && units > 8) {
			err = loc_put_entry(&o, &ins[i].loc, 8, &prev);
			units -= 8;
		}
		if (!err)
			err = loc_put_entry(&o, &ins[i].loc, units, &prev);
		if (err) {
			free(o.p);
			return err;
		}
	}
	return obuf_finish(&o, out);
}
