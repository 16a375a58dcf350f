/* libFuzzer harness: the probe format-string parser (probe/parse.c).
 * Properties: no crash, no read outside the input; on success parts lie
 * inside the text in increasing order, each field names one of the parsed
 * expressions, which lies inside its field. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probe/probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct probe_format f;
	struct probe_err err;
	char *s = malloc(size ? size : 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	if (probe_format__parse(s, size, &f, &err) == 0) {
		size_t last = 0;
		if (f.nparts > PROBE_FMT_MAX_PARTS || f.nexprs > PROBE_FMT_MAX_EXPRS)
			__builtin_trap();
		for (int i = 0; i < f.nparts; i++) {
			const struct probe_part *p = &f.parts[i];
			if (p->off < last || p->off + (size_t)p->len > size)
				__builtin_trap();
			last = p->off + (size_t)p->len;
			if (p->expr >= 0) {
				const struct probe_expr *x = &f.exprs[p->expr];
				if (p->expr >= f.nexprs || x->off != p->off || x->len != p->len ||
				    x->root < 0)
					__builtin_trap();
			}
		}
	} else if (!err.msg[0]) {
		__builtin_trap();
	}
	free(s);
	return 0;
}
