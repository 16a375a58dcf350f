/* Shared by the guard vocabulary tests (test_rewrite_guards.c,
 * test_rewrite_redecide.c): the real CPython 3.11 code objects of
 * tests/fixtures/guards/unit_cases.py (dumped into unit_cases.dump), and
 * one crash of each guard kind on them, with the exception and message
 * CPython raises there. */
#ifndef TEST_REWRITE_CASES_H
#define TEST_REWRITE_CASES_H

#include <criterion/criterion.h>
#include <opcode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rewrite/guard.h"

static struct rewrite_dump *dump;

static void cases_open(void)
{
	const char *root = getenv("SUTURE_ROOT");
	char path[512];
	struct rewrite_diag diag = { 0 };

	snprintf(path, sizeof(path), "%s/tests/fixtures/guards/unit_cases.dump", root ? root : ".");
	cr_assert_eq(rewrite_dump__open(path, &dump, &diag), 0, "%s", diag.msg);
}

static void cases_close(void)
{
	rewrite_dump__close(dump);
	dump = NULL;
}

static const struct rewrite_code_info *code_named(const char *name)
{
	for (size_t i = 0; i < rewrite_dump__count(dump); i++) {
		const struct rewrite_code_info *info = &rewrite_dump__entry(dump, i)->info;

		if (info->name && strcmp(info->name, name) == 0)
			return info;
	}
	cr_assert_fail("no code object %s", name);
	return NULL;
}

/* Unit of the n-th instruction with opcode op. */
static uint32_t unit_of(const struct rewrite_code_info *info, int op, int nth)
{
	struct rewrite_code *c = NULL;
	const struct rewrite_instr *in;

	cr_assert_eq(rewrite_code__decode(info, &c, NULL), 0);
	in = rewrite_code__instrs(c);
	for (size_t i = 0; i < rewrite_code__ninstrs(c); i++) {
		if (in[i].opcode == op && nth-- == 0) {
			uint32_t u = in[i].offset;

			rewrite_code__free(c);
			return u;
		}
	}
	rewrite_code__free(c);
	cr_assert_fail("no %s", rewrite_opcode__name(op));
	return 0;
}

struct kind_case {
	enum guard_kind kind;
	const char *fn;
	int op, nth;
	const char *exc, *msg;
};

static const struct kind_case kind_cases[] = {
	{ GUARD_NULL, "null", LOAD_ATTR, 0, "AttributeError",
	  "'NoneType' object has no attribute 'name'" },
	{ GUARD_INDEX, "key", BINARY_SUBSCR, 0, "IndexError", "list index out of range" },
	{ GUARD_KEY, "key", BINARY_SUBSCR, 0, "KeyError", "'timeout'" },
	{ GUARD_SUBSCRIPT, "key", BINARY_SUBSCR, 0, "TypeError",
	  "'NoneType' object is not subscriptable" },
	{ GUARD_CHAIN_SUBSCRIPT, "chain", BINARY_SUBSCR, 1, "KeyError", "'host'" },
	{ GUARD_TYPE_COERCION, "coerce", PRECALL, 0, "ValueError",
	  "invalid literal for int() with base 10: 'x'" },
	{ GUARD_DIVISION, "div", BINARY_OP, 0, "ZeroDivisionError", "division by zero" },
	{ GUARD_STR_COERCE, "concat", BINARY_OP, 0, "TypeError",
	  "can only concatenate str (not \"int\") to str" },
	{ GUARD_FILE, "read", CALL, 0, "FileNotFoundError",
	  "[Errno 2] No such file or directory: 'x'" },
	{ GUARD_CALLABLE, "call", CALL, 0, "TypeError", "'NoneType' object is not callable" },
};
#define NKIND_CASES (sizeof(kind_cases) / sizeof(kind_cases[0]))

static __attribute__((unused)) struct guard_decision decide(const char *fn, int op, int nth,
							    const char *exc, const char *msg)
{
	const struct rewrite_code_info *info = code_named(fn);
	struct guard_crash crash = { .unit = unit_of(info, op, nth),
				     .exc_type = exc,
				     .message = msg,
				     .stdlib = 0 };
	struct guard_decision d;
	struct rewrite_diag diag = { 0 };

	cr_assert_eq(guard__analyse(info, &crash, &d, &diag), 0, "%s", diag.msg);
	return d;
}

#endif
