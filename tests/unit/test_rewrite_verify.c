/* The verifier (rewrite/verify.c): CPython snippets pass, each broken
 * invariant is reported, and a guard-shaped edit (appended handler block
 * jumping back, new exception entry) verifies after encode + re-decode. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <opcode.h>

#include "rewrite/rewrite.h"
#include "test_rewrite_snippets.h"

static struct rewrite_code *decode(const struct rewrite_code_info *in)
{
	struct rewrite_code *code;
	struct rewrite_diag diag = { 0 };
	cr_assert_eq(rewrite_code__decode(in, &code, &diag), 0, "%s", diag.msg);
	return code;
}

static void expect_verify(struct rewrite_code *code, int want, const char *needle)
{
	struct rewrite_diag diag = { 0 };
	int err = rewrite_code__verify(code, &diag);
	cr_assert_eq(err, want, "verify returned %d: %s", err, diag.msg);
	if (needle)
		cr_assert(strstr(diag.msg, needle), "'%s' lacks '%s'", diag.msg, needle);
}

Test(verify, cpython_snippets_pass)
{
	for (size_t s = 0; s < sizeof(all_snippets) / sizeof(*all_snippets); s++) {
		struct rewrite_code_info in = snippet_info(all_snippets[s]);
		struct rewrite_code *code = decode(&in);
		expect_verify(code, 0, NULL);
		rewrite_code__free(code);
	}
}

Test(verify, overlapping_and_unsorted_entries)
{
	struct rewrite_code_info in = snippet_info(&snip_tryexc);
	struct rewrite_code *code = decode(&in);
	size_t n = rewrite_code__nexc(code);
	struct rewrite_exc e[16];
	cr_assert(n >= 2 && n < 16);
	memcpy(e, rewrite_code__excs(code), n * sizeof(*e));
	struct rewrite_exc save = e[1];
	e[1].start = e[0].end - 1 > e[0].start ? e[0].end - 1 : e[0].start;
	cr_assert_eq(rewrite_code__set_excs(code, e, n), 0);
	expect_verify(code, -EINVAL, "overlap");
	e[1] = save;
	struct rewrite_exc swap = e[0];
	e[0] = e[1];
	e[1] = swap;
	cr_assert_eq(rewrite_code__set_excs(code, e, n), 0);
	expect_verify(code, -EINVAL, "overlap");
	/* add_exc refuses overlap itself */
	memcpy(e, rewrite_code__excs(code), n * sizeof(*e));
	cr_assert_eq(rewrite_code__set_excs(code, NULL, 0), 0);
	cr_assert_eq(rewrite_code__add_exc(code, &e[1]), 0);
	cr_assert_eq(rewrite_code__add_exc(code, &e[1]), -EINVAL);
	rewrite_code__free(code);
}

Test(verify, entries_must_respect_instructions_and_code)
{
	struct rewrite_code_info in = snippet_info(&snip_tryexc);
	struct rewrite_code *code = decode(&in);
	size_t n = rewrite_code__nexc(code);
	struct rewrite_exc e[16];
	memcpy(e, rewrite_code__excs(code), n * sizeof(*e));
	/* the first entry covers BINARY_SUBSCR (1 unit + 4 caches): end inside */
	const struct rewrite_instr *ins = rewrite_code__instrs(code);
	int64_t k = rewrite_code__instr_at(code, e[0].start);
	while (ins[k].ncaches == 0)
		k++;
	struct rewrite_exc cut = e[0];
	cut.end = ins[k].offset + 2;
	cr_assert_eq(rewrite_code__set_excs(code, &cut, 1), 0);
	expect_verify(code, -EINVAL, "cuts an instruction");
	struct rewrite_exc beyond = e[n - 1];
	beyond.end = rewrite_code__nunits(code) + 4;
	cr_assert_eq(rewrite_code__set_excs(code, &beyond, 1), 0);
	expect_verify(code, -EINVAL, "beyond the code");
	struct rewrite_exc empty = e[0];
	empty.end = empty.start;
	cr_assert_eq(rewrite_code__set_excs(code, &empty, 1), 0);
	expect_verify(code, -EINVAL, "empty");
	struct rewrite_exc depth = e[0];
	depth.depth += 1; /* handler then entered one deeper than analysed elsewhere */
	struct rewrite_exc two[2] = { depth, e[1] };
	cr_assert_eq(rewrite_code__set_excs(code, two, 2), 0);
	expect_verify(code, -EINVAL, NULL);
	rewrite_code__free(code);
}

Test(verify, location_table_must_cover_code)
{
	struct rewrite_code_info in = snippet_info(&snip_simple);
	/* drop the last entry */
	while (!(in.linetable[in.linetable_len - 1] & 0x80))
		in.linetable_len--;
	in.linetable_len--;
	struct rewrite_code *code = decode(&in);
	expect_verify(code, -EINVAL, "location table covers");
	rewrite_code__free(code);
}

Test(verify, stacksize_respected)
{
	struct rewrite_code_info in = snippet_info(&snip_withloop);
	in.stacksize -= 1;
	struct rewrite_code *code = decode(&in);
	expect_verify(code, -EINVAL, "exceeds co_stacksize");
	rewrite_code__free(code);
}

/* A handler guard in miniature (docs/design.md §7): an entry covering
 * exactly BINARY_OP in `return a + b * 2`, at the depth before it minus its
 * two inputs, to an appended block that drops the exception, pushes None
 * and jumps back after the failing instruction. */
Test(verify, guard_shaped_edit_verifies_after_encode)
{
	struct rewrite_code_info in = snippet_info(&snip_simple);
	struct rewrite_code *code = decode(&in);
	cr_assert_eq(rewrite_code__analyse(code, NULL, NULL), 0);
	const struct rewrite_instr *ins = rewrite_code__instrs(code);
	size_t k = 0;
	for (size_t i = 0, seen = 0; i < rewrite_code__ninstrs(code); i++)
		if (ins[i].opcode == BINARY_OP && seen++ == 1)
			k = i; /* the `+` */
	cr_assert_gt(k, 0);
	struct rewrite_loc loc = ins[k].loc;
	uint32_t start = ins[k].offset, end = ins[k].offset + ins[k].size;
	uint32_t depth = (uint32_t)ins[k].depth - 2;
	int64_t blk = rewrite_code__append(code, POP_TOP, 0, -1, &loc, 0);
	cr_assert_geq(blk, 0);
	cr_assert_geq(rewrite_code__append(code, LOAD_CONST, 0, -1, &loc, 0), 0);
	cr_assert_geq(rewrite_code__append(code, JUMP_FORWARD, 0, (int64_t)k + 1, &loc, 0), 0);
	struct rewrite_bytes c = { 0 }, x = { 0 }, l = { 0 };
	struct rewrite_diag diag = { 0 };
	cr_assert_eq(rewrite_code__encode(code, &c, NULL, NULL, &diag), 0, "%s", diag.msg);
	uint32_t target = rewrite_code__instrs(code)[blk].offset;
	struct rewrite_exc e = { .start = start, .end = end, .target = target, .depth = depth };
	cr_assert_eq(rewrite_code__add_exc(code, &e), 0);
	rewrite_bytes__free(&c);
	cr_assert_eq(rewrite_code__encode(code, &c, &x, &l, &diag), 0, "%s", diag.msg);
	cr_assert(memcmp(c.data, in.code, in.code_len) == 0, "original bytes changed");
	/* The patched object decodes and verifies on its own. */
	struct rewrite_code_info out = in;
	out.code = c.data;
	out.code_len = c.len;
	out.exctable = x.data;
	out.exctable_len = x.len;
	out.linetable = l.data;
	out.linetable_len = l.len;
	struct rewrite_code *p = decode(&out);
	int max;
	cr_assert_eq(rewrite_code__analyse(p, &max, &diag), 0, "%s", diag.msg);
	cr_assert_eq(max, in.stacksize);
	expect_verify(p, 0, NULL);
	cr_assert_eq(rewrite_code__nexc(p), 1);
	cr_assert_eq(rewrite_code__instrs(p)[rewrite_code__ninstrs(p) - 1].opcode, JUMP_BACKWARD);
	rewrite_code__free(p);
	rewrite_bytes__free(&c);
	rewrite_bytes__free(&x);
	rewrite_bytes__free(&l);
	rewrite_code__free(code);
}

/* A throw() into a generator suspended in a SEND loop (yield from, await)
 * raises at the loop's JUMP_BACKWARD_NO_INTERRUPT two below its analysed
 * depth (Objects/genobject.c, _gen_throw): an entry popping to the
 * analysed depth there fails CPython's `STACK_LEVEL() >= level` (checked by
 * python3.11-dbg), one popping to the lower depth is sound. */
Test(verify, send_loop_back_jump_is_entered_two_lower)
{
	struct rewrite_code_info in = snippet_info(&snip_delegate);
	struct rewrite_code *code = decode(&in);
	cr_assert_eq(rewrite_code__analyse(code, NULL, NULL), 0);
	const struct rewrite_instr *ins = rewrite_code__instrs(code);
	size_t n = rewrite_code__ninstrs(code), j = n, r = n;
	for (size_t i = 0; i < n; i++) {
		if (rewrite_code__send_loop_jump(code, i))
			j = i;
		if (ins[i].opcode == RETURN_VALUE)
			r = i;
	}
	cr_assert(j < n && r < n, "no SEND loop or no RETURN_VALUE in the snippet");
	cr_assert_eq(ins[j].depth, 2, "back jump analysed at depth %d", ins[j].depth);
	/* Targets analysed at the depth each entry enters them with (depth + 1:
	 * the exception), so only the rule under test can fail: RETURN_VALUE
	 * sits at depth 1, the back jump itself at 2. */
	struct rewrite_exc e = { .start = ins[j].offset,
				 .end = ins[j].offset + ins[j].size,
				 .target = ins[r].offset,
				 .depth = 0,
				 .lasti = false };
	cr_assert_eq(rewrite_code__add_exc(code, &e), 0);
	expect_verify(code, 0, NULL);
	e.depth = 1;
	e.target = ins[j].offset;
	cr_assert_eq(rewrite_code__set_excs(code, &e, 1), 0);
	expect_verify(code, -EINVAL, "SEND loop's back jump");
	rewrite_code__free(code);
}
