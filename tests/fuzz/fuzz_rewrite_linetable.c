/* libFuzzer harness: location table decoding. Properties: entries are
 * contiguous from unit 0, 1..8 units each; re-encoding keeps units and
 * start lines. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rewrite/rewrite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rewrite_lentry *e, *e2;
	size_t n, n2;
	struct rewrite_diag diag;
	int first = size ? (int)data[0] - 100 : 1;
	if (rewrite_linetable__decode(data, data + size, first, &e, &n, &diag))
		return 0;
	uint32_t unit = 0;
	for (size_t i = 0; i < n; i++) {
		if (e[i].start != unit || e[i].len < 1 || e[i].len > 8)
			__builtin_trap();
		unit += e[i].len;
	}
	struct rewrite_bytes b = { 0 };
	if (rewrite_linetable__encode(e, n, first, &b) == 0) {
		if (rewrite_linetable__decode(b.data, b.data + b.len, first, &e2, &n2, &diag) ||
		    n2 != n)
			__builtin_trap();
		for (size_t i = 0; i < n; i++)
			if (e2[i].len != e[i].len || e2[i].loc.line != e[i].loc.line)
				__builtin_trap();
		free(e2);
	}
	rewrite_bytes__free(&b);
	free(e);
	return 0;
}
