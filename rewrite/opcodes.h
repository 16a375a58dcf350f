/* rewrite/opcodes.h: private layout of the opcode table.
 *
 * The table itself (rw_opinfo[256]) is generated at build time by
 * rewrite/gen/gen_opcodes.c into $(BUILD)/gen/rewrite_opcodes.c, from the
 * installed CPython 3.11: internal/pycore_opcode.h (_PyOpcode_Caches,
 * _PyOpcode_Deopt, _PyOpcode_RelativeJump), the `opcode`/`dis` modules of
 * the embedded interpreter (names, argument kinds) and libpython's
 * PyCompile_OpcodeStackEffectWithJump (stack effects, fitted to the models
 * below and checked exhaustively by the generator and by
 * tests/unit/test_rewrite_opcodes.c).
 */
#ifndef SUTURE_REWRITE_OPCODES_H
#define SUTURE_REWRITE_OPCODES_H

#include <stdint.h>

/* How a stack effect depends on the oparg. */
enum rw_effect_kind {
	RW_EFFECT_INVALID = 0, /* no stack effect: not a canonical opcode */
	RW_EFFECT_AFFINE,      /* a + b*arg */
	RW_EFFECT_LOW4,        /* table[arg & 15] */
	RW_EFFECT_BYTES,       /* a + b*(arg & 0xff) + c*(arg >> 8) */
	RW_EFFECT_SMALL,       /* arg < 16 ? table[arg] : a + b*arg */
};

struct rw_effect {
	uint8_t kind;
	int32_t a, b, c;
	int8_t table[16];
};

enum rw_opflag {
	RW_OP_VALID = 1,     /* a known opcode (canonical or specialized) */
	RW_OP_CANONICAL = 2, /* deopt maps it to itself */
	RW_OP_HASARG = 4,
	RW_OP_JUMP = 8, /* relative jump */
	RW_OP_BACKWARD = 16,
	RW_OP_TERMINATOR = 32,
};

struct rw_opinfo {
	const char *name; /* NULL if unknown */
	uint8_t deopt;
	uint8_t caches;
	uint8_t flags;
	uint8_t argkind;            /* enum rewrite_argkind */
	int16_t reverse;            /* the jump in the other direction, -1 */
	struct rw_effect effect[2]; /* [jump] */
};

extern const struct rw_opinfo rw_opinfo[256];
/* opcode.cmp_op and the symbols of opcode._nb_ops, for the disassembler. */
extern const char *const rw_cmp_op[];
extern const unsigned rw_ncmp_op;
extern const char *const rw_nb_op[];
extern const unsigned rw_nnb_op;

#endif /* SUTURE_REWRITE_OPCODES_H */
