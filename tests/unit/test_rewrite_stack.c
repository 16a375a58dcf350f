/* Stack-depth analysis (rewrite/stack.c) on real CPython 3.11 snippets and
 * on hand-made inconsistent code. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include <opcode.h>

#include "rewrite/rewrite.h"
#include "test_rewrite_snippets.h"

#define U(op, arg) (uint8_t)(op), (uint8_t)(arg)

static struct rewrite_code *decode(const struct rewrite_code_info *in)
{
	struct rewrite_code *code;
	struct rewrite_diag diag = { 0 };
	cr_assert_eq(rewrite_code__decode(in, &code, &diag), 0, "%s", diag.msg);
	return code;
}

static const struct rewrite_instr *find(const struct rewrite_code *code, int op, size_t nth)
{
	const struct rewrite_instr *ins = rewrite_code__instrs(code);
	for (size_t k = 0; k < rewrite_code__ninstrs(code); k++)
		if (ins[k].opcode == op && nth-- == 0)
			return &ins[k];
	cr_assert_fail("opcode %d not found", op);
	return NULL;
}

Test(stack, max_depth_matches_co_stacksize)
{
	for (size_t s = 0; s < sizeof(all_snippets) / sizeof(*all_snippets); s++) {
		struct rewrite_code_info in = snippet_info(all_snippets[s]);
		struct rewrite_code *code = decode(&in);
		int max = -1;
		struct rewrite_diag diag = { 0 };
		cr_assert_eq(rewrite_code__analyse(code, &max, &diag), 0, "%s", diag.msg);
		cr_assert_eq(max, in.stacksize, "%s: %d != %d", in.name, max, in.stacksize);
		/* every instruction of these snippets is reachable */
		const struct rewrite_instr *ins = rewrite_code__instrs(code);
		for (size_t k = 0; k < rewrite_code__ninstrs(code); k++)
			cr_assert_geq(ins[k].depth, 0, "%s: instruction %zu unreached", in.name, k);
		rewrite_code__free(code);
	}
}

Test(stack, generator_starts_at_one_and_for_iter_jump_pops)
{
	struct rewrite_code_info in = snippet_info(&snip_gen);
	struct rewrite_code *code = decode(&in);
	cr_assert_eq(rewrite_code__analyse(code, NULL, NULL), 0);
	const struct rewrite_instr *ins = rewrite_code__instrs(code);
	cr_assert_eq(ins[0].opcode, RETURN_GENERATOR);
	cr_assert_eq(ins[0].depth, 1);
	cr_assert_eq(ins[1].opcode, POP_TOP);
	cr_assert_eq(ins[1].depth, 1);
	cr_assert_eq(ins[2].depth, 0);
	const struct rewrite_instr *fi = find(code, FOR_ITER, 0);
	/* the iterator is on the stack in the loop; the exit pops it */
	cr_assert_eq(fi->depth, 1);
	cr_assert_eq(rewrite_code__instrs(code)[fi->target].depth, 0);
	cr_assert_eq(find(code, YIELD_VALUE, 0)->depth, 2);
	rewrite_code__free(code);
}

Test(stack, handlers_entered_at_table_depth)
{
	struct rewrite_code_info in = snippet_info(&snip_tryexc);
	struct rewrite_code *code = decode(&in);
	cr_assert_eq(rewrite_code__analyse(code, NULL, NULL), 0);
	const struct rewrite_instr *ins = rewrite_code__instrs(code);
	size_t nx = rewrite_code__nexc(code);
	const struct rewrite_exc *x = rewrite_code__excs(code);
	cr_assert_gt(nx, 1);
	size_t lasti = 0;
	for (size_t i = 0; i < nx; i++) {
		int64_t h = rewrite_code__instr_at(code, x[i].target);
		cr_assert_geq(h, 0);
		cr_assert_eq(ins[h].offset, x[i].target);
		cr_assert_eq(ins[h].depth, (int)(x[i].depth + x[i].lasti + 1));
		lasti += x[i].lasti;
	}
	cr_assert_gt(lasti, 0);
	/* the first handler starts with PUSH_EXC_INFO over the exception */
	cr_assert_eq(ins[rewrite_code__instr_at(code, x[0].target)].opcode, PUSH_EXC_INFO);
	rewrite_code__free(code);
}

Test(stack, with_and_comprehension)
{
	struct rewrite_code_info in = snippet_info(&snip_withloop);
	struct rewrite_code *code = decode(&in);
	int max;
	cr_assert_eq(rewrite_code__analyse(code, &max, NULL), 0);
	/* BEFORE_WITH pushes __exit__ and the value: depth after it is 2 */
	const struct rewrite_instr *bw = find(code, BEFORE_WITH, 0);
	cr_assert_eq(bw->depth, 1);
	cr_assert_eq((bw + 1)->depth, 2);
	cr_assert_eq(find(code, WITH_EXCEPT_START, 0)->depth, 4);
	rewrite_code__free(code);
}

static int analyse_err(const uint8_t *c, size_t len, const uint8_t *exc, size_t exc_len,
		       const char *needle)
{
	struct rewrite_code_info in;
	memset(&in, 0, sizeof(in));
	in.code = c;
	in.code_len = len;
	in.exctable = exc;
	in.exctable_len = exc_len;
	in.firstlineno = 1;
	in.qualname = "bad";
	struct rewrite_code *code = decode(&in);
	struct rewrite_diag diag = { 0 };
	int err = rewrite_code__analyse(code, NULL, &diag);
	cr_assert(strstr(diag.msg, needle), "'%s' lacks '%s'", diag.msg, needle);
	rewrite_code__free(code);
	return err;
}

Test(stack, inconsistent_code_rejected)
{
	static const uint8_t under[] = { U(RESUME, 0), U(POP_TOP, 0), U(RETURN_VALUE, 0) };
	cr_assert_eq(analyse_err(under, sizeof(under), NULL, 0, "underflow"), -EINVAL);
	/* a join reached at depth 0 by the jump and at depth 1 by falling through */
	static const uint8_t join[] = {
		U(RESUME, 0),     U(LOAD_CONST, 0), U(POP_JUMP_FORWARD_IF_TRUE, 1),
		U(LOAD_CONST, 0), U(LOAD_CONST, 0), U(RETURN_VALUE, 0)
	};
	cr_assert_eq(analyse_err(join, sizeof(join), NULL, 0, "inconsistent stack depth at unit 4"),
		     -EINVAL);
	static const uint8_t falls[] = { U(RESUME, 0), U(LOAD_CONST, 0), U(POP_TOP, 0) };
	cr_assert_eq(analyse_err(falls, sizeof(falls), NULL, 0, "falls off the end"), -EINVAL);
	/* a handler entry at depth 3 over an instruction at depth 0 */
	static const uint8_t body[] = { U(RESUME, 0), U(LOAD_CONST, 0), U(RETURN_VALUE, 0),
					U(RERAISE, 0) };
	static const uint8_t exc[] = { 0x80 | 0, 1, 3, 3 << 1 };
	cr_assert_eq(analyse_err(body, sizeof(body), exc, sizeof(exc), "below its handler"),
		     -EINVAL);
	/* RERAISE at depth 0 reached by a handler at depth -? no: at depth 1 is fine,
	 * but a handler landing inside an instruction is rejected */
	static const uint8_t body2[] = { U(RESUME, 0), U(LOAD_CONST, 0), U(BINARY_OP, 0), U(0, 0),
					 U(RETURN_VALUE, 0) };
	static const uint8_t exc2[] = { 0x80 | 0, 1, 3, 0 };
	cr_assert_eq(analyse_err(body2, sizeof(body2), exc2, sizeof(exc2),
				 "not an instruction start"),
		     -EINVAL);
}

Test(stack, generator_flag_changes_start)
{
	/* RETURN_GENERATOR; POP_TOP only balances when the frame starts at 1 */
	static const uint8_t c[] = { U(RETURN_GENERATOR, 0), U(POP_TOP, 0), U(RESUME, 0),
				     U(LOAD_CONST, 0), U(RETURN_VALUE, 0) };
	struct rewrite_code_info in;
	memset(&in, 0, sizeof(in));
	in.code = c;
	in.code_len = sizeof(c);
	in.flags = 0x20; /* CO_GENERATOR */
	struct rewrite_code *code = decode(&in);
	int max;
	cr_assert_eq(rewrite_code__analyse(code, &max, NULL), 0);
	cr_assert_eq(max, 1);
	rewrite_code__free(code);
	in.flags = 0;
	code = decode(&in);
	cr_assert_eq(rewrite_code__analyse(code, &max, NULL), -EINVAL);
	rewrite_code__free(code);
}
