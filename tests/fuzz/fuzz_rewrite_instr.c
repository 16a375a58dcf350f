/* libFuzzer harness: the instruction encoder (rewrite/instr.c) the agent
 * builds its continuation and caller code with. Properties: it writes
 * exactly nprefix + 1 + ncaches units or refuses (too few prefixes for the
 * arg, a short buffer), never past cap; reading the units back as ceval's
 * EXTENDED_ARG does gives the op and the arg; caches are zero. */
#include <errno.h>
#include <opcode.h>
#include <stdint.h>
#include <string.h>

#include "rewrite/rewrite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t in[9] = { 0 }, buf[2 * (255 + 1 + 255) + 8];
	memcpy(in, data, size < sizeof in ? size : sizeof in);
	int op = in[0];
	uint32_t arg = (uint32_t)in[1] | (uint32_t)in[2] << 8 | (uint32_t)in[3] << 16 |
		       (uint32_t)in[4] << 24;
	unsigned nprefix = in[5] % 8, ncaches = in[6] % 8;
	size_t cap = (size_t)in[7] % 40;
	if (op == EXTENDED_ARG)
		op = NOP; /* the encoder writes the op unit as given */
	memset(buf, 0xa5, sizeof buf);
	int w = rewrite_instr__put(buf, cap, op, arg, nprefix, ncaches);
	size_t want = 2 * ((size_t)nprefix + 1 + ncaches);
	if (nprefix < rewrite_instr__prefixes(arg)) {
		if (w != -ERANGE)
			__builtin_trap();
		return 0;
	}
	if (want > cap) {
		if (w != -ENOSPC || buf[0] != 0xa5)
			__builtin_trap();
		return 0;
	}
	if (w != (int)want || buf[want] != 0xa5)
		__builtin_trap();
	uint32_t got = 0;
	size_t u = 0;
	for (; buf[2 * u] == EXTENDED_ARG; u++)
		got = got << 8 | buf[2 * u + 1];
	got = got << 8 | buf[2 * u + 1];
	if (u != nprefix || buf[2 * u] != op || got != arg)
		__builtin_trap();
	for (size_t c = u + 1; c < want / 2; c++)
		if (buf[2 * c] || buf[2 * c + 1])
			__builtin_trap();
	/* Out of range inputs are refused. */
	if (rewrite_instr__put(buf, sizeof buf, 256, 0, 0, 0) != -EINVAL ||
	    rewrite_instr__put(buf, sizeof buf, op, 0, 256, 0) != -EINVAL)
		__builtin_trap();
	return 0;
}
