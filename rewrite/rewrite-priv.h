/* rewrite/rewrite-priv.h: the code model's private layout, shared by the
 * files of rewrite/ (codec, analysis, guards). Not for other modules. */
#ifndef SUTURE_REWRITE_PRIV_H
#define SUTURE_REWRITE_PRIV_H

#include <stdarg.h>

#include "rewrite/opcodes.h"
#include "rewrite/rewrite.h"

/* co_flags bits (Include/cpython/code.h). */
#define RW_CO_GENERATOR 0x20
#define RW_CO_COROUTINE 0x80
#define RW_CO_ASYNC_GENERATOR 0x200

/* Code units are two bytes, op then oparg (_Py_CODEUNIT, little-endian
 * layout of Include/cpython/code.h's _Py_MAKECODEUNIT). */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rewrite/ reads _Py_CODEUNIT as opcode byte then oparg byte (little-endian)"
#endif
#define RW_OP(p, i) ((p)[2 * (size_t)(i)])
#define RW_ARG(p, i) ((p)[2 * (size_t)(i) + 1])

struct rewrite_code {
	const struct rewrite_code_info *info;
	struct rewrite_instr *instrs;
	size_t ninstrs, instrcap, noriginal;
	uint32_t *orig_offset; /* offsets of the original instructions */
	uint32_t nunits;       /* as of decode or the last layout */
	uint32_t norig_units;
	struct rewrite_exc *excs;
	size_t nexc, exccap;
	struct rewrite_lentry *lentries;
	size_t nlentries;
	bool quickened;
	bool analysed;
	bool laid_out; /* offsets/args of every instruction known */
	int max_depth;
};

/* Fill diag (if any) and return err. The message is prefixed with
 * "rewrite: " and, when code is known, the code object's name and place. */
int rw_fail(struct rewrite_diag *diag, const struct rewrite_code_info *info, int err, int64_t where,
	    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Compute offsets, EXTENDED_ARG counts and jump args of every instruction
 * until sizes settle; -ERANGE if an original instruction would move. */
int rw_layout(struct rewrite_code *code, struct rewrite_diag *diag);

/* Index of the instruction starting exactly at unit, -1 otherwise
 * (binary search over the laid-out offsets). */
int64_t rw_instr_starting_at(const struct rewrite_code *code, uint32_t unit);

/* co_linetable for laid-out instructions: one run per instruction. */
int rw_linetable_encode_instrs(const struct rewrite_instr *ins, size_t n, int firstlineno,
			       struct rewrite_bytes *out);

#endif /* SUTURE_REWRITE_PRIV_H */
