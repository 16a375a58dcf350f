/* libFuzzer harness: the probe expression parser (probe/parse.c), which
 * the agent runs on text from the debugger. Properties: no crash, no read
 * outside the input; on success every node's children precede it, every
 * text slice lies inside the expression, the root is a node; a string
 * literal's body unescapes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probe/probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct probe_expr e;
	struct probe_err err;
	char *s = malloc(size ? size : 1); /* exact size: ASan sees overreads */
	if (!s)
		return 0;
	memcpy(s, data, size);
	if (probe_expr__parse(s, 0, size, &e, &err) == 0) {
		if (e.root < 0 || e.root >= e.n || e.n > PROBE_EXPR_MAX_NODES)
			__builtin_trap();
		for (int i = 0; i < e.n; i++) {
			const struct probe_node *nd = &e.nodes[i];
			if (nd->a >= i || nd->b >= i || nd->kind < PROBE_N_NAME ||
			    nd->kind > PROBE_N_POS)
				__builtin_trap();
			if (nd->off + (size_t)nd->len > size)
				__builtin_trap();
			if (nd->kind == PROBE_N_STR) {
				char out[PROBE_TEXT_MAX];
				if (probe_str__unescape(s + nd->off, nd->len, out, sizeof out) < 0)
					__builtin_trap();
			}
		}
	} else if (!err.msg[0] || err.at > size) {
		__builtin_trap();
	}
	free(s);
	return 0;
}
