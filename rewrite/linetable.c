/* rewrite/linetable.c: the location table's wire form without allocation:
 * an entry iterator (rewrite_linetable__next) and one entry written
 * (rewrite_linetable__put_entry). Nothing else of rewrite/ is needed, so
 * the agent compiles this file into the target process (AGENT_EXTRA_SRC in
 * agent/module.mk); tables.c builds the allocating decoder and encoders on
 * the same functions.
 *
 * Wire form (docs/formats/location-table.md, CPython's Objects/locations.md,
 * compile.c's write_location_info_entry): entries of 1..8 code units, a
 * first byte 1CCCCLLL (code, length - 1), then the form's fields with bit 7
 * clear; varints are 6-bit chunks, least significant first, bit 6 continues;
 * signed varints carry the sign in bit 0.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "rewrite/rewrite.h"

enum {
	LOC_SHORT0 = 0,     /* ..9 */
	LOC_ONE_LINE0 = 10, /* ..12 */
	LOC_NO_COLUMNS = 13,
	LOC_LONG = 14,
	LOC_NONE = 15,
};

/* A 32-bit varint is six chunks; the long form has four of them. */
_Static_assert(REWRITE_LINETABLE_ENTRY_MAX == 1 + 4 * 6, "first byte and four varints");

static int loc_varint(const uint8_t **pp, const uint8_t *end, uint32_t *out)
{
	const uint8_t *p = *pp;
	uint32_t v = 0;
	for (unsigned shift = 0;; shift += 6) {
		if (p >= end || (*p & 0x80) || shift > 30)
			return -EINVAL;
		uint8_t b = *p++;
		if (shift == 30 && (b & 0x3f) > 3)
			return -EINVAL; /* beyond 32 bits */
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

void rewrite_linetable__iter_init(struct rewrite_linetable_iter *it, const uint8_t *p,
				  const uint8_t *end, int firstlineno)
{
	it->p = p;
	it->end = end;
	it->line = firstlineno;
	it->unit = 0;
}

int rewrite_linetable__next(struct rewrite_linetable_iter *it, struct rewrite_lentry *out)
{
	const uint8_t *p = it->p, *end = it->end;
	int64_t line = it->line;
	if (p >= end)
		return 0;
	uint8_t first = *p++;
	if (!(first & 0x80))
		return -EINVAL;
	int code = (first >> 3) & 15;
	uint32_t units = (first & 7) + 1;
	struct rewrite_loc loc = { -1, -1, -1, -1 };
	if (code <= 9) {
		uint8_t b;
		if (loc_byte(&p, end, &b) || !fits_i32(line))
			return -EINVAL;
		loc.line = loc.end_line = (int32_t)line;
		loc.col = code * 8 + ((b >> 4) & 7);
		loc.end_col = loc.col + (b & 15);
	} else if (code <= 12) {
		uint8_t c, ec;
		if (loc_byte(&p, end, &c) || loc_byte(&p, end, &ec))
			return -EINVAL;
		line += code - LOC_ONE_LINE0;
		if (!fits_i32(line))
			return -EINVAL;
		loc.line = loc.end_line = (int32_t)line;
		loc.col = c;
		loc.end_col = ec;
	} else if (code == LOC_NO_COLUMNS) {
		int64_t d;
		if (loc_svarint(&p, end, &d))
			return -EINVAL;
		line += d;
		if (!fits_i32(line))
			return -EINVAL;
		loc.line = loc.end_line = (int32_t)line;
	} else if (code == LOC_LONG) {
		int64_t d;
		uint32_t dl, c, ec;
		if (loc_svarint(&p, end, &d) || loc_varint(&p, end, &dl) ||
		    loc_varint(&p, end, &c) || loc_varint(&p, end, &ec))
			return -EINVAL;
		line += d;
		/* Columns are stored plus one: checked before the minus. */
		if (!fits_i32(line) || !fits_i32(line + dl) || c > INT32_MAX || ec > INT32_MAX)
			return -EINVAL;
		loc.line = (int32_t)line;
		loc.end_line = (int32_t)(line + dl);
		loc.col = (int32_t)c - 1;
		loc.end_col = (int32_t)ec - 1;
	}
	if (it->unit + units > UINT32_MAX)
		return -EINVAL;
	*out = (struct rewrite_lentry){ .start = (uint32_t)it->unit, .len = units, .loc = loc };
	it->unit += units;
	it->line = line;
	it->p = p;
	return 1;
}

static size_t loc_put_varint(uint8_t *p, uint32_t v)
{
	size_t n = 0;
	while (v >= 64) {
		p[n++] = (uint8_t)(0x40 | (v & 0x3f));
		v >>= 6;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* |v| <= INT32_MAX (checked by the caller): v << 1 fits 32 bits. */
static size_t loc_put_svarint(uint8_t *p, int64_t v)
{
	return loc_put_varint(p, v < 0 ? (uint32_t)(((uint64_t)-v << 1) | 1)
				       : (uint32_t)((uint64_t)v << 1));
}

static uint8_t loc_first(int code, uint32_t units)
{
	return (uint8_t)(0x80 | (code << 3) | (units - 1));
}

/* The form compile.c's write_location_info_entry() chooses, so CPython's
 * own tables re-encode to the same bytes. */
static int loc_entry(uint8_t *p, const struct rewrite_loc *l, uint32_t units, int64_t *prev)
{
	size_t n = 0;
	if (units < 1 || units > 8)
		return -ERANGE;
	if (l->line < 0) {
		p[n++] = loc_first(LOC_NONE, units);
		return (int)n;
	}
	int64_t delta = (int64_t)l->line - *prev;
	int32_t col = l->col, ecol = l->end_col;
	if (col < -1 || ecol < -1 || delta > INT32_MAX || delta < -(int64_t)INT32_MAX)
		return -ERANGE;
	if (col < 0 || ecol < 0) {
		if (l->end_line == l->line || l->end_line == -1) {
			p[n++] = loc_first(LOC_NO_COLUMNS, units);
			n += loc_put_svarint(p + n, delta);
			*prev = l->line;
			return (int)n;
		}
	} else if (l->end_line == l->line) {
		if (delta == 0 && col < 80 && ecol - col < 16 && ecol >= col) {
			p[n++] = loc_first(LOC_SHORT0 + (col >> 3), units);
			p[n++] = (uint8_t)(((col & 7) << 4) | (ecol - col));
			return (int)n;
		}
		if (delta >= 0 && delta < 3 && col < 128 && ecol < 128) {
			p[n++] = loc_first(LOC_ONE_LINE0 + (int)delta, units);
			p[n++] = (uint8_t)col;
			p[n++] = (uint8_t)ecol;
			*prev = l->line;
			return (int)n;
		}
	}
	if (l->end_line < l->line)
		return -ERANGE;
	p[n++] = loc_first(LOC_LONG, units);
	n += loc_put_svarint(p + n, delta);
	n += loc_put_varint(p + n, (uint32_t)(l->end_line - l->line));
	/* Plus one in 32 bits: col may be INT32_MAX. */
	n += loc_put_varint(p + n, (uint32_t)col + 1u);
	n += loc_put_varint(p + n, (uint32_t)ecol + 1u);
	*prev = l->line;
	return (int)n;
}

int rewrite_linetable__put_entry(uint8_t *buf, size_t cap, const struct rewrite_loc *l,
				 uint32_t units, int64_t *prev)
{
	uint8_t tmp[REWRITE_LINETABLE_ENTRY_MAX];
	int64_t line = *prev;
	int n = loc_entry(tmp, l, units, &line);
	if (n < 0)
		return n;
	if ((size_t)n > cap)
		return -ENOSPC;
	memcpy(buf, tmp, (size_t)n);
	*prev = line;
	return n;
}
