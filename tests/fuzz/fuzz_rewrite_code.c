/* libFuzzer harness: instruction decoding, analysis, verification and
 * encoding of arbitrary co_code bytes. Property: whatever decodes without
 * being flagged quickened encodes back to the very same bytes, and encoding
 * always equals CPython's deoptimized form. With bit 1 of the first byte
 * set, the input is first shaped into well-formed instructions (opcodes
 * mapped onto the canonical ones, caches added) so that the analysis and
 * the verifier are reached often. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rewrite/rewrite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct rewrite_code_info in;
	memset(&in, 0, sizeof(in));
	in.flags = data[0] & 1 ? 0x20 : 0;
	in.code = data + 1;
	in.code_len = (size - 1) & ~(size_t)1;
	uint8_t *shaped = NULL;
	if (data[0] & 2) {
		static int canon[256], ncanon;
		if (!ncanon)
			for (int op = 1; op < 256; op++)
				if (rewrite_opcode__deopt(op) == op)
					canon[ncanon++] = op;
		shaped = malloc(in.code_len * 16 + 2); /* up to 10 caches a unit */
		if (!shaped)
			return 0;
		size_t o = 0;
		for (size_t i = 0; i + 2 <= in.code_len; i += 2) {
			int op = canon[data[1 + i] % ncanon];
			shaped[o++] = (uint8_t)op;
			/* short jumps mostly land on code, so the analysis runs */
			shaped[o++] = rewrite_opcode__is_jump(op) ? data[2 + i] % 6 : data[2 + i];
			for (int c = 0; c < rewrite_opcode__caches(op); c++) {
				shaped[o++] = 0;
				shaped[o++] = 0;
			}
		}
		in.code = shaped;
		in.code_len = o;
	}
	in.stacksize = 64;
	struct rewrite_code *code;
	struct rewrite_diag diag;
	if (rewrite_code__decode(&in, &code, &diag)) {
		free(shaped);
		return 0;
	}
	int max;
	if (rewrite_code__analyse(code, &max, &diag) == 0)
		(void)rewrite_code__verify(code, &diag);
	char line[256];
	for (size_t k = 0; k < rewrite_code__ninstrs(code); k++)
		(void)rewrite_code__format_instr(code, k, REWRITE_DIS_DEPTH | REWRITE_DIS_LINES,
						 line, sizeof(line));
	uint8_t *deopt = malloc(in.code_len);
	if (deopt && rewrite_bytes__deopt(in.code, in.code_len, deopt) != 0)
		__builtin_trap(); /* decode accepted what deopt refuses */
	struct rewrite_bytes c = { 0 };
	if (rewrite_code__encode(code, &c, NULL, NULL, &diag) == 0) {
		if (c.len != in.code_len || memcmp(c.data, deopt, c.len) != 0)
			__builtin_trap(); /* must equal _PyCode_GetCode's canonical form */
		if (!rewrite_code__was_quickened(code) && memcmp(c.data, in.code, c.len) != 0)
			__builtin_trap();
	}
	rewrite_bytes__free(&c);
	free(deopt);
	rewrite_code__free(code);
	free(shaped);
	return 0;
}
