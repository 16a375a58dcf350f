/* The generated opcode table against CPython itself: stack effects against
 * libpython's PyCompile_OpcodeStackEffectWithJump (dlopen'ed), for every
 * opcode, both jump directions and a wide range of args; deopt and cache
 * counts against internal/pycore_opcode.h. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>

#define Py_BUILD_CORE 1
#define NEED_OPCODE_TABLES 1
#include <internal/pycore_opcode.h>

#include "rewrite/rewrite.h"

typedef int (*effect_fn)(int, int, int);

static effect_fn load_effect(void)
{
	void *h = dlopen("libpython3.11.so.1.0", RTLD_NOW | RTLD_LOCAL);
	cr_assert_not_null(h, "dlopen libpython3.11: %s", dlerror());
	effect_fn f = (effect_fn)(uintptr_t)dlsym(h, "PyCompile_OpcodeStackEffectWithJump");
	cr_assert_not_null(f);
	return f;
}

static void check_arg(effect_fn f, int op, long arg, long *checked)
{
	for (int jump = 0; jump <= 1; jump++) {
		int want = f(op, (int)arg, jump), got = 0;
		int err = rewrite_opcode__stack_effect(op, (uint32_t)arg, jump, &got);
		if (want == INT_MAX) {
			cr_assert_eq(err, -EINVAL, "op %d arg %ld: expected no effect", op, arg);
		} else {
			cr_assert_eq(err, 0, "op %d (%s) arg %ld jump %d", op,
				     rewrite_opcode__name(op), arg, jump);
			cr_assert_eq(got, want, "op %s arg %ld jump %d: %d != %d",
				     rewrite_opcode__name(op), arg, jump, got, want);
		}
		(*checked)++;
	}
}

Test(opcodes, stack_effects_match_libpython)
{
	effect_fn f = load_effect();
	long checked = 0;
	for (int op = 1; op < 256; op++) {
		if (rewrite_opcode__deopt(op) != op)
			continue;
		for (long arg = 0; arg < (1L << 16); arg++)
			check_arg(f, op, arg, &checked);
		for (int k = 16; k <= 29; k++)
			for (long d = -2; d <= 2; d++)
				check_arg(f, op, (1L << k) + d, &checked);
	}
	cr_assert_gt(checked, 100L * 65536 * 2);
}

Test(opcodes, specialized_and_unknown_have_no_effect)
{
	int e;
	int spec = rewrite_opcode__by_name("LOAD_ATTR_INSTANCE_VALUE");
	cr_assert_gt(spec, 0);
	cr_assert_eq(rewrite_opcode__stack_effect(spec, 0, 0, &e), -EINVAL);
	cr_assert_eq(rewrite_opcode__stack_effect(CACHE, 0, 0, &e), -EINVAL);
	cr_assert_eq(rewrite_opcode__stack_effect(LOAD_CONST, 0, 2, &e), -EINVAL);
	cr_assert_null(rewrite_opcode__name(-1));
	cr_assert_null(rewrite_opcode__name(256));
}

Test(opcodes, tables_match_pycore_opcode)
{
	for (int op = 0; op < 256; op++) {
		if (_PyOpcode_Deopt[op] == 0 && op != CACHE) {
			cr_assert_null(rewrite_opcode__name(op), "op %d", op);
			cr_assert_eq(rewrite_opcode__deopt(op), -1);
			continue;
		}
		cr_assert_not_null(rewrite_opcode__name(op), "op %d", op);
		cr_assert_eq(rewrite_opcode__deopt(op), _PyOpcode_Deopt[op], "op %d", op);
		cr_assert_eq(rewrite_opcode__caches(op), _PyOpcode_Caches[_PyOpcode_Deopt[op]]);
		int jrel = (_PyOpcode_RelativeJump[op >> 5] >> (op & 31)) & 1;
		cr_assert_eq(rewrite_opcode__is_jump(op), jrel, "op %s", rewrite_opcode__name(op));
		cr_assert_eq(rewrite_opcode__has_arg(op), op >= HAVE_ARGUMENT);
	}
	cr_assert_eq(rewrite_opcode__by_name("LOAD_GLOBAL"), LOAD_GLOBAL);
	cr_assert_eq(rewrite_opcode__argkind(LOAD_GLOBAL), REWRITE_ARG_NAME);
	cr_assert_eq(rewrite_opcode__argkind(LOAD_CONST), REWRITE_ARG_CONST);
	cr_assert_eq(rewrite_opcode__argkind(LOAD_FAST), REWRITE_ARG_LOCAL);
	cr_assert_eq(rewrite_opcode__argkind(LOAD_DEREF), REWRITE_ARG_FREE);
	cr_assert_eq(rewrite_opcode__argkind(COMPARE_OP), REWRITE_ARG_COMPARE);
	cr_assert_eq(rewrite_opcode__argkind(JUMP_BACKWARD), REWRITE_ARG_JUMP);
	cr_assert(rewrite_opcode__is_backward(JUMP_BACKWARD));
	cr_assert(rewrite_opcode__is_backward(POP_JUMP_BACKWARD_IF_NONE));
	cr_assert(!rewrite_opcode__is_backward(JUMP_FORWARD));
	cr_assert_eq(rewrite_opcode__reverse_jump(JUMP_FORWARD), JUMP_BACKWARD);
	cr_assert_eq(rewrite_opcode__reverse_jump(POP_JUMP_FORWARD_IF_TRUE),
		     POP_JUMP_BACKWARD_IF_TRUE);
	cr_assert_eq(rewrite_opcode__reverse_jump(FOR_ITER), -1);
	cr_assert(rewrite_opcode__is_terminator(RERAISE));
	cr_assert(rewrite_opcode__is_terminator(JUMP_BACKWARD_NO_INTERRUPT));
	cr_assert(!rewrite_opcode__is_terminator(POP_JUMP_FORWARD_IF_TRUE));
}
