/* rewrite/exctable.c: the exception table's varint and a lookup that
 * needs nothing else (no allocation, no other rewrite/ object), so the
 * agent can compile it into the target process (AGENT_EXTRA_SRC).
 *
 * Wire form (docs/formats/exception-table.md, CPython's
 * Objects/exception_handling_notes.txt): entries of four varints
 * (start, size, target, depth<<1|lasti) in code units; a varint is 6-bit
 * chunks, most significant first, 0x40 on every chunk but the last; the
 * first byte of an entry has 0x80 set, no other byte has.
 */
#include <errno.h>
#include <stdint.h>

#include "rewrite/rewrite.h"

int rw_exc_varint(const uint8_t **pp, const uint8_t *end, int first, uint32_t *out);

/* One varint; first: this is an entry's first varint (its first byte must
 * carry 0x80). -EINVAL on truncation, a misplaced start bit, > 30 bits. */
int rw_exc_varint(const uint8_t **pp, const uint8_t *end, int first, uint32_t *out)
{
	const uint8_t *p = *pp;
	uint32_t v = 0;
	for (int chunk = 0;; chunk++) {
		if (p >= end || chunk == 5)
			return -EINVAL;
		uint8_t b = *p++;
		if (((b & 0x80) != 0) != (first && chunk == 0))
			return -EINVAL;
		v = (v << 6) | (b & 0x3f);
		if (!(b & 0x40))
			break;
	}
	*pp = p;
	*out = v;
	return 0;
}

int rewrite_exctable__find(const uint8_t *p, const uint8_t *end, uint32_t unit,
			   struct rewrite_exc *out)
{
	while (p < end) {
		uint32_t start, size, target, dl;
		if (rw_exc_varint(&p, end, 1, &start) || rw_exc_varint(&p, end, 0, &size) ||
		    rw_exc_varint(&p, end, 0, &target) || rw_exc_varint(&p, end, 0, &dl))
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
