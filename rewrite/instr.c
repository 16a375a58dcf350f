/* rewrite/instr.c: one instruction's wire form without allocation, so the
 * agent compiles this file into the target process (AGENT_EXTRA_SRC in
 * agent/module.mk) and builds its code the way rewrite/code.c's encoder
 * lays out every instruction.
 *
 * Wire form (docs/formats/bytecode.md, CPython's compile.c write_instr and
 * ceval.c EXTENDED_ARG): EXTENDED_ARG prefixes carrying the arg's high
 * bytes, most significant first, then the op unit with the low byte, then
 * the op's inline CACHE units, zero in canonical bytes (_PyCode_GetCode).
 * Units are two bytes, opcode then oparg (_Py_MAKECODEUNIT, little-endian).
 */
#include <errno.h>
#include <stdint.h>

#include <opcode.h> /* CPython's opcode numbers: EXTENDED_ARG */

#include "rewrite/rewrite.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rewrite/ writes _Py_CODEUNIT as opcode byte then oparg byte (little-endian)"
#endif

unsigned rewrite_instr__prefixes(uint32_t arg)
{
	return arg < (1u << 8) ? 0 : arg < (1u << 16) ? 1 : arg < (1u << 24) ? 2 : 3;
}

int rewrite_instr__put(uint8_t *buf, size_t cap, int op, uint32_t arg, unsigned nprefix,
		       unsigned ncaches)
{
	if (op < 0 || op > 255 || nprefix > 255 || ncaches > 255)
		return -EINVAL;
	if (nprefix < rewrite_instr__prefixes(arg))
		return -ERANGE;
	size_t units = (size_t)nprefix + 1 + ncaches;
	if (units > cap / 2)
		return -ENOSPC;
	uint8_t *p = buf;
	/* Prefixes beyond the third carry 0: padding that keeps a size. */
	for (unsigned j = nprefix; j >= 1; j--) {
		*p++ = EXTENDED_ARG;
		*p++ = j >= 4 ? 0 : (uint8_t)(arg >> (8 * j));
	}
	*p++ = (uint8_t)op;
	*p++ = (uint8_t)arg;
	for (unsigned j = 0; j < ncaches; j++) {
		*p++ = 0;
		*p++ = 0;
	}
	return (int)(units * 2);
}
