/* libFuzzer harness: exception table decoding and lookup. Properties:
 * decode(encode(decode(x))) == decode(x); find() agrees with the decoded
 * entries when they are sorted and disjoint. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rewrite/rewrite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rewrite_exc *e, *e2;
	size_t n, n2;
	struct rewrite_diag diag;
	struct rewrite_exc hit;
	int found = rewrite_exctable__find(data, data + size, size ? data[0] : 0, &hit);
	if (rewrite_exctable__decode(data, data + size, &e, &n, &diag)) {
		return 0;
	}
	(void)found;
	struct rewrite_bytes b = { 0 };
	if (rewrite_exctable__encode(e, n, &b) == 0) {
		if (rewrite_exctable__decode(b.data, b.data + b.len, &e2, &n2, &diag) || n2 != n)
			__builtin_trap();
		for (size_t i = 0; i < n; i++)
			if (e2[i].start != e[i].start || e2[i].end != e[i].end ||
			    e2[i].target != e[i].target || e2[i].depth != e[i].depth ||
			    e2[i].lasti != e[i].lasti)
				__builtin_trap();
		free(e2);
	}
	rewrite_bytes__free(&b);
	int sorted = 1;
	for (size_t i = 1; i < n; i++)
		if (e[i].start < e[i - 1].end)
			sorted = 0;
	for (size_t i = 0; sorted && i < n; i++) {
		if (e[i].end == e[i].start)
			continue;
		if (rewrite_exctable__find(data, data + size, e[i].start, &hit) != 1 ||
		    hit.target != e[i].target || hit.start != e[i].start)
			__builtin_trap();
	}
	free(e);
	return 0;
}
