/* rewrite/exctable.c: the exception table's wire form without allocation:
 * one varint, one entry read (rewrite_exctable__next), one entry written
 * (rewrite_exctable__put_entry) and a lookup (rewrite_exctable__find).
 * Nothing else of rewrite/ is needed, so the agent compiles this file into
 * the target process (AGENT_EXTRA_SRC in agent/module.mk); tables.c builds
 * the allocating decoder and encoder on the same functions.
 *
 * Wire form (docs/formats/exception-table.md, CPython's
 * Objects/exception_handling_notes.txt, compile.c's
 * assemble_emit_exception_table_item): entries of four varints
 * (start, size, target, depth<<1|lasti) in code units; a varint is 6-bit
 * chunks, most significant first, 0x40 on every chunk but the last; the
 * first byte of an entry has 0x80 set, no other byte has. Values are below
 * 2^30 (five chunks).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "rewrite/rewrite.h"

#define EXC_CONT 0x40
#define EXC_START 0x80
#define EXC_MAX_VALUE ((1u << 30) - 1)

_Static_assert(REWRITE_EXCTABLE_ENTRY_MAX == 4 * 5, "four varints of at most five chunks");

/* One varint; first: this is an entry's first varint (its first byte must
 * carry 0x80). -EINVAL on truncation, a misplaced start bit, > 30 bits. */
static int exc_varint(const uint8_t **pp, const uint8_t *end, int first, uint32_t *out)
{
	const uint8_t *p = *pp;
	uint32_t v = 0;
	for (int chunk = 0;; chunk++) {
		if (p >= end || chunk == 5)
			return -EINVAL;
		uint8_t b = *p++;
		if (((b & EXC_START) != 0) != (first && chunk == 0))
			return -EINVAL;
		v = (v << 6) | (b & 0x3f);
		if (!(b & EXC_CONT))
			break;
	}
	*pp = p;
	*out = v;
	return 0;
}

/* The four varints of the entry at *pp, *pp advanced past them only on
 * success. -EINVAL as exc_varint. */
static int read_entry(const uint8_t **pp, const uint8_t *end, uint32_t *start, uint32_t *size,
		      uint32_t *target, uint32_t *dl)
{
	const uint8_t *p = *pp;
	if (exc_varint(&p, end, 1, start) || exc_varint(&p, end, 0, size) ||
	    exc_varint(&p, end, 0, target) || exc_varint(&p, end, 0, dl))
		return -EINVAL;
	*pp = p;
	return 0;
}

int rewrite_exctable__next(const uint8_t **pp, const uint8_t *end, struct rewrite_exc *out)
{
	const uint8_t *p = *pp;
	uint32_t start, size, target, dl;
	if (p >= end)
		return 0;
	if (read_entry(&p, end, &start, &size, &target, &dl))
		return -EINVAL;
	if ((uint64_t)start + size > EXC_MAX_VALUE)
		return -ERANGE;
	*out = (struct rewrite_exc){
		.start = start,
		.end = start + size,
		.target = target,
		.depth = dl >> 1,
		.lasti = dl & 1,
	};
	*pp = p;
	return 1;
}

int rewrite_exctable__find(const uint8_t *p, const uint8_t *end, uint32_t unit,
			   struct rewrite_exc *out)
{
	while (p < end) {
		uint32_t start, size, target, dl;
		if (read_entry(&p, end, &start, &size, &target, &dl))
			return -EINVAL;
		/* Entries are sorted (CPython's get_exception_handler() also stops
		 * at the first entry past unit). */
		if (unit < start)
			return 0;
		if ((uint64_t)unit < (uint64_t)start + size) {
			out->start = start;
			out->end = start + size;
			out->target = target;
			out->depth = dl >> 1;
			out->lasti = dl & 1;
			return 1;
		}
	}
	return 0;
}

/* compile.c: assemble_emit_exception_table_item. value < 2^30: at most
 * five chunks, the first one's bits 6-7 free for EXC_CONT and msb. */
static size_t put_varint(uint8_t *p, uint32_t value, uint8_t msb)
{
	size_t n = 0;
	for (int shift = 24; shift > 0; shift -= 6)
		if (value >= 1u << shift) {
			p[n++] = (uint8_t)(((value >> shift) & 0x3f) | EXC_CONT | msb);
			msb = 0;
		}
	p[n++] = (uint8_t)((value & 0x3f) | msb);
	return n;
}

int rewrite_exctable__put_entry(uint8_t *buf, size_t cap, const struct rewrite_exc *e)
{
	uint8_t tmp[REWRITE_EXCTABLE_ENTRY_MAX];
	size_t n = 0;
	if (e->end <= e->start || e->end > EXC_MAX_VALUE || e->target > EXC_MAX_VALUE ||
	    e->depth > (EXC_MAX_VALUE >> 1))
		return -ERANGE;
	n += put_varint(tmp + n, e->start, EXC_START);
	n += put_varint(tmp + n, e->end - e->start, 0);
	n += put_varint(tmp + n, e->target, 0);
	n += put_varint(tmp + n, (e->depth << 1) | (e->lasti ? 1 : 0), 0);
	if (n > cap)
		return -ENOSPC;
	memcpy(buf, tmp, n);
	return (int)n;
}
