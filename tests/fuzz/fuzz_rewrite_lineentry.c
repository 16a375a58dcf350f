/* libFuzzer harness: the location table's allocation-free entry codec
 * (rewrite/linetable.c), which the agent runs on the code objects it
 * rebuilds. Properties: the iterator reads exactly the entries
 * rewrite_linetable__decode returns and fails where it fails; every entry
 * written back with rewrite_linetable__put_entry (within
 * REWRITE_LINETABLE_ENTRY_MAX bytes, from the same running line) reads back
 * with the same length, lines, and columns when both are known. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rewrite/rewrite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rewrite_linetable_iter it, back;
	struct rewrite_lentry *all = NULL, x, y;
	struct rewrite_diag diag;
	size_t n = 0, i = 0;
	/* The first byte picks co_firstlineno, negative ones included. */
	int first = size ? (int)(int8_t)data[0] * 1000 : 1;
	const uint8_t *p = size ? data + 1 : data, *end = data + size;
	int r, dec = rewrite_linetable__decode(p, end, first, &all, &n, &diag);

	rewrite_linetable__iter_init(&it, p, end, first);
	for (;;) {
		int64_t prev = it.line;
		if ((r = rewrite_linetable__next(&it, &x)) != 1)
			break;
		if (it.p > end || (dec == 0 && (i >= n || memcmp(&x, &all[i], sizeof x))))
			__builtin_trap();
		i++;
		uint8_t buf[REWRITE_LINETABLE_ENTRY_MAX];
		int64_t wprev = prev;
		int w = rewrite_linetable__put_entry(buf, sizeof buf, &x.loc, x.len, &wprev);
		if (w < 0)
			continue;
		rewrite_linetable__iter_init(&back, buf, buf + w, 0);
		back.line = prev;
		if (w > (int)sizeof buf || rewrite_linetable__next(&back, &y) != 1 ||
		    back.p != buf + w || y.len != x.len || y.loc.line != x.loc.line ||
		    y.loc.end_line != x.loc.end_line || back.line != wprev)
			__builtin_trap();
		if (x.loc.col >= 0 && x.loc.end_col >= 0 &&
		    (y.loc.col != x.loc.col || y.loc.end_col != x.loc.end_col))
			__builtin_trap();
		if (rewrite_linetable__put_entry(buf, (size_t)w - 1, &x.loc, x.len, &prev) !=
		    -ENOSPC)
			__builtin_trap();
	}
	if (r != 0 && r != -EINVAL)
		__builtin_trap();
	if ((dec == 0) != (r == 0) || (dec == 0 && i != n))
		__builtin_trap();
	free(all);
	return 0;
}
