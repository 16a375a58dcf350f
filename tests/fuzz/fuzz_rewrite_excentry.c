/* libFuzzer harness: the exception table's allocation-free entry codec
 * (rewrite/exctable.c), which the agent runs on the code objects it
 * rebuilds. Properties: rewrite_exctable__next reads exactly the entries
 * rewrite_exctable__decode returns and fails where it fails, never moving
 * past the end; every entry written back with rewrite_exctable__put_entry
 * (within REWRITE_EXCTABLE_ENTRY_MAX bytes) reads back the same. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rewrite/rewrite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const struct rewrite_exc *a, const struct rewrite_exc *b)
{
	return a->start == b->start && a->end == b->end && a->target == b->target &&
	       a->depth == b->depth && a->lasti == b->lasti;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	struct rewrite_exc *all = NULL, x, y;
	struct rewrite_diag diag;
	size_t n = 0, i = 0;
	int r, dec = rewrite_exctable__decode(data, end, &all, &n, &diag);

	while ((r = rewrite_exctable__next(&p, end, &x)) == 1) {
		if (p > end || (dec == 0 && (i >= n || !same(&x, &all[i]))))
			__builtin_trap();
		i++;
		uint8_t buf[REWRITE_EXCTABLE_ENTRY_MAX];
		int w = rewrite_exctable__put_entry(buf, sizeof buf, &x);
		if (w == -ERANGE && x.end > x.start && x.target < (1u << 30) &&
		    x.depth < (1u << 29))
			__builtin_trap(); /* a valid entry must be writable */
		if (w < 0)
			continue;
		const uint8_t *q = buf;
		if (w > (int)sizeof buf || rewrite_exctable__next(&q, buf + w, &y) != 1 ||
		    q != buf + w || !same(&x, &y))
			__builtin_trap();
		/* A short buffer is refused, never overrun. */
		if (rewrite_exctable__put_entry(buf, (size_t)w - 1, &x) != -ENOSPC)
			__builtin_trap();
	}
	if (r != 0 && r != -EINVAL && r != -ERANGE)
		__builtin_trap();
	/* decode fails exactly where next does. */
	if ((dec == 0) != (r == 0) || (dec == 0 && i != n))
		__builtin_trap();
	free(all);
	return 0;
}
