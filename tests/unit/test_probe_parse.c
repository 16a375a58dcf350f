/* probe/parse.c: what the probe language accepts and refuses, and the
 * shape of what it builds (the agent evaluates these nodes). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "probe/probe.h"

static struct probe_expr e;
static struct probe_format f;
static struct probe_err err;

static int parse(const char *s)
{
	return probe_expr__parse(s, 0, strlen(s), &e, &err);
}

Test(probe_parse, accepts_the_subset)
{
	const char *ok[] = {
		"i",
		"self.items[i + 1].name",
		"d['k'] == \"v\" and not flag or n is None",
		"-x // 2 % 3 * 1.5e3 - +y",
		"x is not None",
		"k not in d",
		"(a + b) * c",
		"s + 'a\\'b\\n'",
		"True",
		"1_000",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		cr_assert_eq(parse(ok[i]), 0, "%s: %s", ok[i], err.msg);
}

Test(probe_parse, precedence_and_shape)
{
	cr_assert_eq(parse("a + b * c"), 0);
	const struct probe_node *root = &e.nodes[e.root];
	cr_assert_eq(root->kind, PROBE_N_BINOP);
	cr_assert_eq(root->op, PROBE_ADD);
	cr_assert_eq(e.nodes[root->b].kind, PROBE_N_BINOP);
	cr_assert_eq(e.nodes[root->b].op, PROBE_MUL);
	cr_assert_eq(parse("not a == b"), 0);
	cr_assert_eq(e.nodes[e.root].kind, PROBE_N_NOT);
	cr_assert_eq(parse("box.tag"), 0);
	root = &e.nodes[e.root];
	cr_assert_eq(root->kind, PROBE_N_ATTR);
	cr_assert_eq(root->len, 3);
	cr_assert_eq(memcmp("box.tag" + root->off, "tag", 3), 0);
	cr_assert_eq(parse("12"), 0);
	cr_assert_eq(e.nodes[e.root].i, 12);
}

Test(probe_parse, refuses_calls_and_state_changes)
{
	const char *calls[] = { "f(x)", "a.b()", "d['k'](1)", "(f)(x)", "lambda: 1", "x = 1" };
	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
		cr_assert_eq(parse(calls[i]), -EPERM, "%s", calls[i]);
		cr_assert(err.msg[0]);
	}
}

Test(probe_parse, refuses_what_it_does_not_know)
{
	const char *bad[] = { "",       "a <",           "a < b < c", "[1, 2]", "x[1:2]",
			      "a ** 2", "x if y else z", "f'x'",      "0x10",   "a.1",
			      "'open",  "a\nb",          "not",       "(a",     "a)" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(parse(bad[i]), -EINVAL, "%s gave %d", bad[i], parse(bad[i]));
	char deep[200];
	memset(deep, '(', 100);
	deep[100] = 'a';
	memset(deep + 101, ')', 98);
	deep[199] = 0;
	cr_assert_eq(parse(deep), -E2BIG);
}

Test(probe_parse, format_fields_and_braces)
{
	const char *s = "i={i} {{lit}} d={d['}']}!";
	cr_assert_eq(probe_format__parse(s, strlen(s), &f, &err), 0, "%s", err.msg);
	cr_assert_eq(f.nexprs, 2);
	char out[64] = "";
	for (int i = 0; i < f.nparts; i++)
		if (f.parts[i].expr < 0)
			strncat(out, s + f.parts[i].off, f.parts[i].len);
		else
			strcat(out, "#");
	cr_assert_str_eq(out, "i=# {lit} d=#!");
	cr_assert_eq(probe_format__parse("a {x", 4, &f, &err), -EINVAL);
	cr_assert_eq(probe_format__parse("a } b", 5, &f, &err), -EINVAL);
	cr_assert_eq(probe_format__parse("{f(1)}", 6, &f, &err), -EPERM);
	cr_assert_eq(probe_format__parse("{}", 2, &f, &err), -EINVAL);
}

Test(probe_parse, unescape)
{
	char out[8];
	cr_assert_eq(probe_str__unescape("a\\nb", 4, out, sizeof out), 3);
	cr_assert_eq(out[1], '\n');
	cr_assert_eq(probe_str__unescape("\\x41", 4, out, sizeof out), -EINVAL);
	cr_assert_eq(probe_str__unescape("123456789", 9, out, sizeof out), -E2BIG);
}
