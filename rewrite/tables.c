/* rewrite/tables.c: the wire forms of co_exceptiontable and co_linetable,
 * deoptimization of quickened bytes, diagnostics.
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

int rw_fail(struct rewrite_diag *diag, const struct rewrite_code_info *info, int err,
	    int64_t where, const char *fmt, ...)
{
	if (!diag)
		return err;
	diag->err = err;
	diag->where = where;
	int n;
	if (info)
		n = snprintf(diag->msg, sizeof(diag->msg), "rewrite: code '%s' (%s:%d): ",
			     info->qualname ? info->qualname : info->name ? info->name : "?",
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
		o->err = -ENOMEM;  /* data is never NULL on success, even when empty */
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

/* ---------------------------------------------------------------------- */
/* Exception table: varints of 6-bit chunks, most significant first, bit 6
 * (0x40) continues, bit 7 (0x80) marks the first byte of an entry.       */

#define EXC_CONT 0x40
#define EXC_START 0x80
#define EXC_MAX_VALUE ((1u << 30) - 1)

int rw_exc_varint(const uint8_t **pp, const uint8_t *end, int first, uint32_t *out);

int rewrite_exctable__decode(const uint8_t *p, const uint8_t *end,
			     struct rewrite_exc **out, size_t *n, struct rewrite_diag *diag)
{
	const uint8_t *base = p;
	struct rewrite_exc *e = NULL;
	size_t len = 0, cap = 0;
	*out = NULL;
	*n = 0;
	while (p < end) {
		uint32_t start, size, target, dl;
		const uint8_t *at = p;
		if (rw_exc_varint(&p, end, 1, &start) || rw_exc_varint(&p, end, 0, &size) ||
		    rw_exc_varint(&p, end, 0, &target) || rw_exc_varint(&p, end, 0, &dl)) {
			free(e);
			return rw_fail(diag, NULL, -EINVAL, at - base,
				       "exception table: malformed or truncated entry at byte %td",
				       at - base);
		}
		if ((uint64_t)start + size > EXC_MAX_VALUE) {
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
				return rw_fail(diag, NULL, -ENOMEM, -1, "exception table: out of memory");
			}
			e = ne;
			cap = nc;
		}
		e[len++] = (struct rewrite_exc){
			.start = start, .end = start + size, .target = target,
			.depth = dl >> 1, .lasti = dl & 1,
		};
	}
	*out = e;
	*n = len;
	return 0;
}

/* compile.c: assemble_emit_exception_table_item */
static void exc_put_item(struct obuf *o, uint32_t value, uint8_t msb)
{
	if (value >= 1u << 24) {
		obuf_put(o, (uint8_t)((value >> 24) | EXC_CONT | msb));
		msb = 0;
	}
	if (value >= 1u << 18) {
		obuf_put(o, (uint8_t)(((value >> 18) & 0x3f) | EXC_CONT | msb));
		msb = 0;
	}
	if (value >= 1u << 12) {
		obuf_put(o, (uint8_t)(((value >> 12) & 0x3f) | EXC_CONT | msb));
		msb = 0;
	}
	if (value >= 1u << 6) {
		obuf_put(o, (uint8_t)(((value >> 6) & 0x3f) | EXC_CONT | msb));
		msb = 0;
	}
	obuf_put(o, (uint8_t)((value & 0x3f) | msb));
}

int rewrite_exctable__encode(const struct rewrite_exc *e, size_t n, struct rewrite_bytes *out)
{
	struct obuf o = { 0 };
	for (size_t i = 0; i < n; i++) {
		if (e[i].end <= e[i].start || e[i].end > EXC_MAX_VALUE ||
		    e[i].target > EXC_MAX_VALUE || e[i].depth > (EXC_MAX_VALUE >> 1)) {
			free(o.p);
			return -ERANGE;
		}
		exc_put_item(&o, e[i].start, EXC_START);
		exc_put_item(&o, e[i].end - e[i].start, 0);
		exc_put_item(&o, e[i].target, 0);
		exc_put_item(&o, (e[i].depth << 1) | (e[i].lasti ? 1 : 0), 0);
	}
	return obuf_finish(&o, out);
}

/* ---------------------------------------------------------------------- */
/* Location table: entries start with a byte 1CCCCLLL (code, length-1),
 * varints are 6-bit chunks least significant first, bit 6 continues.     */

enum {
	LOC_SHORT0 = 0,       /* ..9 */
	LOC_ONE_LINE0 = 10,   /* ..12 */
	LOC_NO_COLUMNS = 13,
	LOC_LONG = 14,
	LOC_NONE = 15,
};

static int loc_varint(const uint8_t **pp, const uint8_t *end, uint32_t *out)
{
	const uint8_t *p = *pp;
	uint32_t v = 0;
	for (unsigned shift = 0;; shift += 6) {
		if (p >= end || (*p & 0x80) || shift > 30)
			return -EINVAL;
		uint8_t b = *p++;
		if (shift == 30 && (b & 0x3f) > 3)
			return -EINVAL;  /* beyond 32 bits */
		v |= (uint32_t)(b & 0x3f) << shift;
		if (!(b & 0x40))
			break;
	}
	*pp = p;
	*out = v;
	return 0;
}

static int loc_svarint(const uint8_t **pp, const uint8_t *end, int64_t *out)
{
	uint32_t u;
	int err = loc_varint(pp, end, &u);
	if (err)
		return err;
	*out = (u & 1) ? -(int64_t)(u >> 1) : (int64_t)(u >> 1);
	return 0;
}

static int loc_byte(const uint8_t **pp, const uint8_t *end, uint8_t *out)
{
	if (*pp >= end || (**pp & 0x80))
		return -EINVAL;
	*out = *(*pp)++;
	return 0;
}

/* Lines are >= 0 (a module's RESUME is on line 0); -1 is our "none", so a
 * negative computed line is malformed input. */
static bool fits_i32(int64_t v)
{
	return v >= 0 && v <= INT32_MAX;
}

int rewrite_linetable__decode(const uint8_t *p, const uint8_t *end, int firstlineno,
			      struct rewrite_lentry **out, size_t *n, struct rewrite_diag *diag)
{
	const uint8_t *base = p;
	struct rewrite_lentry *e = NULL;
	size_t len = 0, cap = 0;
	int64_t line = firstlineno;
	uint64_t unit = 0;
	*out = NULL;
	*n = 0;
	while (p < end) {
		const uint8_t *at = p;
		uint8_t first = *p++;
		if (!(first & 0x80))
			goto bad;
		int code = (first >> 3) & 15;
		uint32_t units = (first & 7) + 1;
		struct rewrite_loc loc = { -1, -1, -1, -1 };
		if (code <= 9) {
			uint8_t b;
			if (loc_byte(&p, end, &b) || !fits_i32(line))
				goto bad;
			loc.line = loc.end_line = (int32_t)line;
			loc.col = code * 8 + ((b >> 4) & 7);
			loc.end_col = loc.col + (b & 15);
		} else if (code <= 12) {
			uint8_t c, ec;
			if (loc_byte(&p, end, &c) || loc_byte(&p, end, &ec))
				goto bad;
			line += code - LOC_ONE_LINE0;
			if (!fits_i32(line))
				goto bad;
			loc.line = loc.end_line = (int32_t)line;
			loc.col = c;
			loc.end_col = ec;
		} else if (code == LOC_NO_COLUMNS) {
			int64_t d;
			if (loc_svarint(&p, end, &d))
				goto bad;
			line += d;
			if (!fits_i32(line))
				goto bad;
			loc.line = loc.end_line = (int32_t)line;
		} else if (code == LOC_LONG) {
			int64_t d;
			uint32_t dl, c, ec;
			if (loc_svarint(&p, end, &d) || loc_varint(&p, end, &dl) ||
			    loc_varint(&p, end, &c) || loc_varint(&p, end, &ec))
				goto bad;
			line += d;
			/* Columns are stored plus one: checked before the minus. */
			if (!fits_i32(line) || !fits_i32(line + dl) || c > INT32_MAX || ec > INT32_MAX)
				goto bad;
			loc.line = (int32_t)line;
			loc.end_line = (int32_t)(line + dl);
			loc.col = (int32_t)c - 1;
			loc.end_col = (int32_t)ec - 1;
		}
		if (len == cap) {
			size_t nc = cap ? 2 * cap : 16;
			struct rewrite_lentry *ne = realloc(e, nc * sizeof(*e));
			if (!ne) {
				free(e);
				return rw_fail(diag, NULL, -ENOMEM, -1, "location table: out of memory");
			}
			e = ne;
			cap = nc;
		}
		if (unit + units > UINT32_MAX)
			goto bad;
		e[len++] = (struct rewrite_lentry){ .start = (uint32_t)unit, .len = units, .loc = loc };
		unit += units;
		continue;
bad:
		free(e);
		return rw_fail(diag, NULL, -EINVAL, at - base,
			       "location table: malformed or truncated entry at byte %td", at - base);
	}
	*out = e;
	*n = len;
	return 0;
}

static void loc_put_varint(struct obuf *o, uint32_t v)
{
	while (v >= 64) {
		obuf_put(o, (uint8_t)(0x40 | (v & 0x3f)));
		v >>= 6;
	}
	obuf_put(o, (uint8_t)v);
}

static void loc_put_svarint(struct obuf *o, int64_t v)
{
	loc_put_varint(o, v < 0 ? (uint32_t)(((uint64_t)-v << 1) | 1) : (uint32_t)((uint64_t)v << 1));
}

static void loc_put_first(struct obuf *o, int code, uint32_t units)
{
	obuf_put(o, (uint8_t)(0x80 | (code << 3) | (units - 1)));
}

/* One entry of 1..8 units, choosing the form as compile.c's
 * write_location_info_entry() does, so CPython's own tables re-encode to
 * the same bytes. *prev is the running start line. */
static int loc_put_entry(struct obuf *o, const struct rewrite_loc *l, uint32_t units,
			 int64_t *prev)
{
	if (units < 1 || units > 8)
		return -ERANGE;
	if (l->line < 0) {
		loc_put_first(o, LOC_NONE, units);
		return 0;
	}
	int64_t delta = (int64_t)l->line - *prev;
	int32_t col = l->col, ecol = l->end_col;
	if (col < -1 || ecol < -1)
		return -ERANGE;
	if (col < 0 || ecol < 0) {
		if (l->end_line == l->line || l->end_line == -1) {
			loc_put_first(o, LOC_NO_COLUMNS, units);
			loc_put_svarint(o, delta);
			*prev = l->line;
			return 0;
		}
	} else if (l->end_line == l->line) {
		if (delta == 0 && col < 80 && ecol - col < 16 && ecol >= col) {
			loc_put_first(o, LOC_SHORT0 + (col >> 3), units);
			obuf_put(o, (uint8_t)(((col & 7) << 4) | (ecol - col)));
			return 0;
		}
		if (delta >= 0 && delta < 3 && col < 128 && ecol < 128) {
			loc_put_first(o, LOC_ONE_LINE0 + (int)delta, units);
			obuf_put(o, (uint8_t)col);
			obuf_put(o, (uint8_t)ecol);
			*prev = l->line;
			return 0;
		}
	}
	if (l->end_line < l->line)
		return -ERANGE;
	loc_put_first(o, LOC_LONG, units);
	loc_put_svarint(o, delta);
	loc_put_varint(o, (uint32_t)(l->end_line - l->line));
	loc_put_varint(o, (uint32_t)(col + 1));
	loc_put_varint(o, (uint32_t)(ecol + 1));
	*prev = l->line;
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
