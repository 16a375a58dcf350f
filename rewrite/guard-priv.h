/* rewrite/guard-priv.h: internals shared by guard.c, analyse.c, diffgate.c
 * and fingerprint.c. Not part of the public API. */
#ifndef SUTURE_REWRITE_GUARD_PRIV_H
#define SUTURE_REWRITE_GUARD_PRIV_H

#include "rewrite/guard.h"

/* A decoded, analysed original. */
struct gctx {
	const struct rewrite_code_info *info;
	struct rewrite_code *code;
	const struct rewrite_instr *in; /* original instructions (valid until an append) */
	size_t n;
	int max_depth;
	uint8_t *jump_target; /* n flags: some jump or handler lands here */
};

/* Decode info and analyse stack depths; -EINVAL with diag on bad code. */
int gctx__open(struct gctx *g, const struct rewrite_code_info *info, struct rewrite_diag *diag);
void gctx__close(struct gctx *g); /* accepts a zeroed gctx */

/* Stack items a canonical instruction consumes and produces on the
 * fall-through path, in compile.c's static model (PRECALL pops its
 * arguments, CALL the callable pair). Read from ceval.c's opcode bodies;
 * outputs = inputs + stack_effect(jump=0), so the two always agree with
 * rewrite_opcode__stack_effect (tests/unit/test_rewrite_guard.c checks
 * that no opcode ends up with negative outputs). */
int guard_op__inputs(int op, uint32_t arg);
int guard_op__outputs(int op, uint32_t arg);

/* Name, constant or local an instruction's arg refers to, "?" if unknown. */
const char *gctx__argtext(const struct gctx *g, const struct rewrite_instr *ins);

/* Index of the instruction that starts at or contains unit, -1 if none. */
int64_t gctx__at(const struct gctx *g, uint32_t unit);

/* Whether name is a builtin exception type of CPython 3.11. */
bool guard__builtin_exc(const char *name);

/* FNV-1a 64. */
uint64_t guard__fnv1a(uint64_t h, const void *p, size_t len);
#define GUARD_FNV_SEED 0xcbf29ce484222325ULL

/* snprintf that never overflows and always terminates. */
void guard__fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
