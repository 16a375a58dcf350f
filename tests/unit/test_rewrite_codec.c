/* Codecs of rewrite/: exception and location table varints, instruction
 * decoding (EXTENDED_ARG folding, jumps, deopt), encoding (growth, tail
 * appends, direction flips), malformed input. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <opcode.h>

#include "rewrite/rewrite.h"
#include "test_rewrite_snippets.h"

#define U(op, arg) (uint8_t)(op), (uint8_t)(arg)
#define RW_TEST_OP(p, unit) ((p)[2 * (size_t)(unit)])

static struct rewrite_code_info info_of(const uint8_t *code, size_t len)
{
	struct rewrite_code_info in;
	memset(&in, 0, sizeof(in));
	in.code = code;
	in.code_len = len;
	in.firstlineno = 1;
	in.stacksize = 10;
	in.qualname = in.name = "t";
	in.filename = "t.py";
	return in;
}

static void expect_bytes(const struct rewrite_bytes *b, const void *p, size_t len)
{
	cr_assert_eq(b->len, len, "length %zu, expected %zu", b->len, len);
	cr_assert(len == 0 || memcmp(b->data, p, len) == 0, "bytes differ");
}

/* ---------------------------------------------------------------------- */

Test(exctable, encodes_like_cpython)
{
	/* snippet tryexc's table, written by CPython's assembler */
	struct rewrite_code_info in = snippet_info(&snip_tryexc);
	struct rewrite_exc *e;
	size_t n;
	cr_assert_eq(rewrite_exctable__decode(in.exctable, in.exctable + in.exctable_len, &e, &n,
					      NULL),
		     0);
	cr_assert_gt(n, 1);
	struct rewrite_bytes b = { 0 };
	cr_assert_eq(rewrite_exctable__encode(e, n, &b), 0);
	expect_bytes(&b, in.exctable, in.exctable_len);
	rewrite_bytes__free(&b);
	free(e);
}

Test(exctable, varint_chunks_msb_first)
{
	struct rewrite_exc e = { .start = 0x41,
				 .end = 0x41 + 1,
				 .target = (1u << 24) + 5,
				 .depth = 3,
				 .lasti = true };
	struct rewrite_bytes b = { 0 };
	cr_assert_eq(rewrite_exctable__encode(&e, 1, &b), 0);
	/* start 0x41 = 1<<6 | 1: 0x80|0x40|1, then 1; size 1; target 2^24+5:
	 * 5 chunks (1,0,0,0,5); depth<<1|lasti = 7 */
	static const uint8_t want[] = { 0xc1, 0x01, 0x01, 0x41, 0x40, 0x40, 0x40, 0x05, 0x07 };
	expect_bytes(&b, want, sizeof(want));
	struct rewrite_exc *d;
	size_t n;
	cr_assert_eq(rewrite_exctable__decode(b.data, b.data + b.len, &d, &n, NULL), 0);
	cr_assert_eq(n, 1);
	cr_assert(d[0].start == e.start && d[0].end == e.end && d[0].target == e.target &&
		  d[0].depth == 3 && d[0].lasti);
	free(d);
	rewrite_bytes__free(&b);
}

Test(exctable, random_round_trip)
{
	srand(7);
	struct rewrite_exc e[64];
	uint32_t at = 0;
	for (int i = 0; i < 64; i++) {
		uint32_t shift = (uint32_t)(rand() % 24);
		e[i].start = at + (uint32_t)(rand() % 5);
		e[i].end = e[i].start + 1 + ((uint32_t)rand() & ((1u << shift) - 1));
		e[i].target = (uint32_t)rand() & ((1u << 29) - 1);
		e[i].depth = (uint32_t)rand() % 70000;
		e[i].lasti = rand() & 1;
		at = e[i].end;
	}
	struct rewrite_bytes b = { 0 };
	cr_assert_eq(rewrite_exctable__encode(e, 64, &b), 0);
	struct rewrite_exc *d;
	size_t n;
	cr_assert_eq(rewrite_exctable__decode(b.data, b.data + b.len, &d, &n, NULL), 0);
	cr_assert_eq(n, 64);
	for (int i = 0; i < 64; i++)
		cr_assert(d[i].start == e[i].start && d[i].end == e[i].end &&
				  d[i].target == e[i].target && d[i].depth == e[i].depth &&
				  d[i].lasti == e[i].lasti,
			  "entry %d", i);
	free(d);
	rewrite_bytes__free(&b);
}

Test(exctable, truncation_and_bad_bits_rejected)
{
	struct rewrite_code_info in = snippet_info(&snip_withloop);
	const uint8_t *p = in.exctable;
	size_t len = in.exctable_len;
	cr_assert_gt(len, 4);
	struct rewrite_exc *d;
	size_t n;
	struct rewrite_diag diag = { 0 };
	/* Every cut that is not at an entry boundary must fail. */
	for (size_t cut = 1; cut < len; cut++) {
		bool boundary = (p[cut] & 0x80) != 0;
		int err = rewrite_exctable__decode(p, p + cut, &d, &n, &diag);
		if (boundary) {
			cr_assert_eq(err, 0, "cut at %zu", cut);
			free(d);
		} else {
			cr_assert_eq(err, -EINVAL, "cut at %zu", cut);
			cr_assert(strstr(diag.msg, "exception table"));
		}
	}
	uint8_t bad[64];
	memcpy(bad, p, len);
	bad[1] |= 0x80; /* start bit inside an entry */
	cr_assert_eq(rewrite_exctable__decode(bad, bad + len, &d, &n, NULL), -EINVAL);
	memcpy(bad, p, len);
	bad[0] &= 0x7f; /* no start bit on the first byte */
	cr_assert_eq(rewrite_exctable__decode(bad, bad + len, &d, &n, NULL), -EINVAL);
	static const uint8_t wide[] = { 0xc1, 0x41, 0x41, 0x41, 0x41, 0x01, 1, 1, 1 };
	cr_assert_eq(rewrite_exctable__decode(wide, wide + sizeof(wide), &d, &n, NULL), -EINVAL);
}

Test(exctable, find_without_allocating)
{
	struct rewrite_exc e[] = {
		{ .start = 2, .end = 10, .target = 40, .depth = 0 },
		{ .start = 12, .end = 20, .target = 50, .depth = 2, .lasti = true },
	};
	struct rewrite_bytes b = { 0 };
	cr_assert_eq(rewrite_exctable__encode(e, 2, &b), 0);
	struct rewrite_exc got;
	cr_assert_eq(rewrite_exctable__find(b.data, b.data + b.len, 1, &got), 0);
	cr_assert_eq(rewrite_exctable__find(b.data, b.data + b.len, 2, &got), 1);
	cr_assert_eq(got.target, 40);
	cr_assert_eq(rewrite_exctable__find(b.data, b.data + b.len, 10, &got), 0);
	cr_assert_eq(rewrite_exctable__find(b.data, b.data + b.len, 19, &got), 1);
	cr_assert(got.lasti && got.depth == 2 && got.start == 12 && got.end == 20);
	cr_assert_eq(rewrite_exctable__find(b.data, b.data + b.len, 25, &got), 0);
	cr_assert_eq(rewrite_exctable__find(b.data, b.data + b.len - 1, 25, &got), -EINVAL);
	rewrite_bytes__free(&b);
}

/* ---------------------------------------------------------------------- */

Test(linetable, every_form_round_trips)
{
	struct rewrite_lentry e[] = {
		{ 0, 1, { 1, 1, 0, 0 } },        /* short form */
		{ 1, 8, { 1, 1, 79, 94 } },      /* short form, widest */
		{ 9, 2, { 3, 3, 100, 120 } },    /* one-line form, delta 2 */
		{ 11, 1, { 3, 3, 5, 4 } },       /* end < start column: one-line */
		{ 12, 3, { -1, -1, -1, -1 } },   /* no location */
		{ 15, 1, { 2, 2, -1, -1 } },     /* no columns, negative delta */
		{ 16, 4, { 1000, 1003, 7, 2 } }, /* long form */
		{ 20, 1, { 10, 10, 200, 300 } }, /* long: columns too wide */
		{ 21, 2, { 5, 9, -1, -1 } },     /* long: no columns, several lines */
	};
	size_t n = sizeof(e) / sizeof(*e);
	struct rewrite_bytes b = { 0 };
	cr_assert_eq(rewrite_linetable__encode(e, n, 1, &b), 0);
	struct rewrite_lentry *d;
	size_t dn;
	cr_assert_eq(rewrite_linetable__decode(b.data, b.data + b.len, 1, &d, &dn, NULL), 0);
	cr_assert_eq(dn, n);
	for (size_t i = 0; i < n; i++) {
		cr_assert(d[i].start == e[i].start && d[i].len == e[i].len, "entry %zu", i);
		cr_assert(d[i].loc.line == e[i].loc.line &&
				  d[i].loc.end_line == e[i].loc.end_line &&
				  d[i].loc.col == e[i].loc.col &&
				  d[i].loc.end_col == e[i].loc.end_col,
			  "entry %zu: %d %d %d %d", i, d[i].loc.line, d[i].loc.end_line,
			  d[i].loc.col, d[i].loc.end_col);
	}
	/* first byte of each form: 1 CCCC LLL */
	cr_assert_eq(b.data[0], 0x80 | (0 << 3) | 0);
	free(d);
	rewrite_bytes__free(&b);
}

Test(linetable, varints_least_significant_first)
{
	/* long form, line delta +200 (svarint 400 = 0x10 | 0x40, 0x06),
	 * end delta 0, columns 0 and 1 (stored +1) */
	struct rewrite_lentry e = { 0, 1, { 201, 201, 0, 300 } };
	struct rewrite_bytes b = { 0 };
	cr_assert_eq(rewrite_linetable__encode(&e, 1, 1, &b), 0);
	static const uint8_t want[] = { 0x80 | (14 << 3), 0x50, 0x06, 0x00, 0x01, 0x6d, 0x04 };
	expect_bytes(&b, want, sizeof(want));
	rewrite_bytes__free(&b);
}

Test(linetable, cpython_tables_re_encode)
{
	for (size_t s = 0; s < sizeof(all_snippets) / sizeof(*all_snippets); s++) {
		struct rewrite_code_info in = snippet_info(all_snippets[s]);
		struct rewrite_lentry *d;
		size_t n;
		cr_assert_eq(rewrite_linetable__decode(in.linetable,
						       in.linetable + in.linetable_len,
						       in.firstlineno, &d, &n, NULL),
			     0);
		struct rewrite_bytes b = { 0 };
		cr_assert_eq(rewrite_linetable__encode(d, n, in.firstlineno, &b), 0);
		expect_bytes(&b, in.linetable, in.linetable_len);
		uint32_t units = 0;
		for (size_t i = 0; i < n; i++)
			units += d[i].len;
		cr_assert_eq(units * 2, in.code_len, "%s", in.name);
		free(d);
		rewrite_bytes__free(&b);
	}
}

Test(linetable, truncation_rejected)
{
	struct rewrite_code_info in = snippet_info(&snip_tryexc);
	const uint8_t *p = in.linetable;
	struct rewrite_lentry *d;
	size_t n;
	for (size_t cut = 1; cut < in.linetable_len; cut++) {
		int err = rewrite_linetable__decode(p, p + cut, 1, &d, &n, NULL);
		if (p[cut] & 0x80) {
			cr_assert_eq(err, 0, "cut at %zu", cut);
			free(d);
		} else {
			cr_assert_eq(err, -EINVAL, "cut at %zu", cut);
		}
	}
	static const uint8_t cont_bad[] = { 0x80 | (14 << 3), 0x40 }; /* varint cut */
	static const uint8_t nofirst[] = { 0x10 };                    /* no entry bit */
	static const uint8_t toolong[] = {
		0x80 | (13 << 3), 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x01
	};
	cr_assert_eq(rewrite_linetable__decode(cont_bad, cont_bad + 2, 1, &d, &n, NULL), -EINVAL);
	cr_assert_eq(rewrite_linetable__decode(nofirst, nofirst + 1, 1, &d, &n, NULL), -EINVAL);
	cr_assert_eq(rewrite_linetable__decode(toolong, toolong + sizeof(toolong), 1, &d, &n, NULL),
		     -EINVAL);
}

/* ---------------------------------------------------------------------- */

Test(code, snippets_round_trip)
{
	for (size_t s = 0; s < sizeof(all_snippets) / sizeof(*all_snippets); s++) {
		struct rewrite_code_info in = snippet_info(all_snippets[s]);
		struct rewrite_code *code;
		struct rewrite_diag diag = { 0 };
		cr_assert_eq(rewrite_code__decode(&in, &code, &diag), 0, "%s", diag.msg);
		cr_assert(!rewrite_code__was_quickened(code));
		struct rewrite_bytes c = { 0 }, x = { 0 }, l = { 0 };
		cr_assert_eq(rewrite_code__encode(code, &c, &x, &l, &diag), 0, "%s", diag.msg);
		expect_bytes(&c, in.code, in.code_len);
		expect_bytes(&x, in.exctable, in.exctable_len);
		expect_bytes(&l, in.linetable, in.linetable_len);
		rewrite_bytes__free(&c);
		rewrite_bytes__free(&x);
		rewrite_bytes__free(&l);
		rewrite_code__free(code);
	}
}

Test(code, extended_arg_folded_and_jump_resolved)
{
	/* big(): a while loop over 300 ifs; its JUMP_BACKWARD needs EXTENDED_ARG */
	struct rewrite_code_info in = snippet_info(&snip_big);
	struct rewrite_code *code;
	cr_assert_eq(rewrite_code__decode(&in, &code, NULL), 0);
	const struct rewrite_instr *ins = rewrite_code__instrs(code);
	size_t n = rewrite_code__ninstrs(code);
	size_t found = 0;
	for (size_t k = 0; k < n; k++) {
		if (!rewrite_opcode__is_backward(ins[k].opcode) || ins[k].nprefix == 0)
			continue;
		cr_assert_eq(ins[k].nprefix, 1);
		cr_assert_gt(ins[k].arg, 255);
		cr_assert_eq(ins[k].size, 2);
		/* relative to the end of the instruction, prefixes included */
		const struct rewrite_instr *t = &ins[ins[k].target];
		cr_assert_eq(t->offset, ins[k].offset + ins[k].size - ins[k].arg);
		cr_assert_eq(RW_TEST_OP(in.code, ins[k].offset), EXTENDED_ARG);
		found++;
	}
	cr_assert_eq(found, 1);
	for (size_t k = 0; k < n; k++)
		if (ins[k].target >= 0 && !rewrite_opcode__is_backward(ins[k].opcode))
			cr_assert_gt(ins[ins[k].target].offset, ins[k].offset);
	rewrite_code__free(code);
}

Test(code, redundant_prefix_kept)
{
	/* EXTENDED_ARG 0 before LOAD_CONST 1: the size is kept on encode */
	static const uint8_t c[] = { U(RESUME, 0), U(EXTENDED_ARG, 0), U(LOAD_CONST, 1),
				     U(RETURN_VALUE, 0) };
	struct rewrite_code_info in = info_of(c, sizeof(c));
	struct rewrite_code *code;
	cr_assert_eq(rewrite_code__decode(&in, &code, NULL), 0);
	cr_assert_eq(rewrite_code__ninstrs(code), 3);
	cr_assert_eq(rewrite_code__instrs(code)[1].nprefix, 1);
	cr_assert_eq(rewrite_code__instrs(code)[1].arg, 1);
	struct rewrite_bytes b = { 0 };
	cr_assert_eq(rewrite_code__encode(code, &b, NULL, NULL, NULL), 0);
	expect_bytes(&b, c, sizeof(c));
	rewrite_bytes__free(&b);
	rewrite_code__free(code);
}

Test(code, appended_jump_back_grows_and_settles)
{
	/* A handler appended after 300 units jumps back to unit 1: its arg
	 * needs an EXTENDED_ARG, which moves its own end: sizes settle. */
	size_t units = 300;
	uint8_t *c = calloc(units, 2);
	c[0] = RESUME;
	for (size_t i = 1; i < units - 2; i++)
		c[2 * i] = NOP;
	c[2 * (units - 2)] = LOAD_CONST;
	c[2 * (units - 1)] = RETURN_VALUE;
	struct rewrite_code_info in = info_of(c, units * 2);
	struct rewrite_code *code;
	cr_assert_eq(rewrite_code__decode(&in, &code, NULL), 0);
	size_t norig = rewrite_code__ninstrs(code);
	struct rewrite_loc loc = { 3, 3, 4, 9 };
	int64_t pop = rewrite_code__append(code, POP_TOP, 0, -1, &loc, 0);
	/* JUMP_FORWARD given, but the target is behind: flipped to backward */
	int64_t j = rewrite_code__append(code, JUMP_FORWARD, 0, 1, &loc, 0);
	int64_t j2 = rewrite_code__append(code, JUMP_BACKWARD, 0, pop, &loc, 0);
	cr_assert(pop == (int64_t)norig && j == pop + 1 && j2 == j + 1);
	struct rewrite_bytes b = { 0 }, l = { 0 };
	struct rewrite_diag diag = { 0 };
	cr_assert_eq(rewrite_code__encode(code, &b, NULL, &l, &diag), 0, "%s", diag.msg);
	const struct rewrite_instr *ins = rewrite_code__instrs(code);
	cr_assert_eq(b.len, (units + 1 + 2 + 1) * 2);
	cr_assert(memcmp(b.data, c, units * 2) == 0, "original bytes moved");
	cr_assert_eq(ins[j].opcode, JUMP_BACKWARD);
	cr_assert_eq(ins[j].nprefix, 1);
	cr_assert_eq(ins[j].offset, units + 1);
	cr_assert_eq(ins[j].arg, units + 1 + 2 - 1);
	cr_assert_eq(b.data[2 * (units + 1)], EXTENDED_ARG);
	cr_assert_eq(b.data[2 * (units + 1) + 1], (units + 2) >> 8);
	cr_assert_eq(b.data[2 * (units + 2)], JUMP_BACKWARD);
	cr_assert_eq(b.data[2 * (units + 2) + 1], (units + 2) & 0xff);
	cr_assert_eq(ins[j2].arg, 4);
	/* the appended code got one location run each */
	struct rewrite_lentry *d;
	size_t dn;
	cr_assert_eq(rewrite_linetable__decode(l.data, l.data + l.len, 1, &d, &dn, NULL), 0);
	cr_assert_eq(d[dn - 1].loc.line, 3);
	cr_assert_eq(d[dn - 1].loc.col, 4);
	uint32_t covered = 0;
	for (size_t i = 0; i < dn; i++)
		covered += d[i].len;
	cr_assert_eq(covered * 2, b.len);
	free(d);
	rewrite_bytes__free(&b);
	rewrite_bytes__free(&l);
	rewrite_code__free(code);
	free(c);
}

Test(code, replace_pads_with_nops_or_fails)
{
	struct rewrite_code_info in = snippet_info(&snip_simple);
	struct rewrite_code *code;
	cr_assert_eq(rewrite_code__decode(&in, &code, NULL), 0);
	/* BINARY_OP (1 unit + 1 cache) -> JUMP_FORWARD to an appended block,
	 * then one NOP: same two units, no redundant EXTENDED_ARG. */
	size_t k = 4;
	cr_assert_eq(rewrite_code__instrs(code)[k].opcode, BINARY_OP);
	uint32_t at = rewrite_code__instrs(code)[k].offset;
	int64_t blk = rewrite_code__append(code, NOP, 0, -1, NULL, 0);
	cr_assert_eq(rewrite_code__replace(code, k, JUMP_FORWARD, 0, blk, 0), 0);
	struct rewrite_bytes b = { 0 };
	cr_assert_eq(rewrite_code__encode(code, &b, NULL, NULL, NULL), 0);
	cr_assert_eq(b.len, in.code_len + 2);
	const struct rewrite_instr *ri = &rewrite_code__instrs(code)[k];
	cr_assert(ri->npad == 1 && ri->size == 2 && ri->nprefix == 0);
	cr_assert_eq(b.data[2 * at], JUMP_FORWARD);
	/* the jump counts from its own end, not from the end of the padding */
	cr_assert_eq(at + 1 + b.data[2 * at + 1], in.code_len / 2);
	cr_assert_eq(b.data[2 * at + 2], NOP);
	cr_assert_eq(b.data[2 * at + 3], 0);
	cr_assert(memcmp(b.data + 2 * (at + 2), in.code + 2 * (at + 2),
			 in.code_len - 2 * (at + 2)) == 0);
	rewrite_bytes__free(&b);
	/* the patched bytes decode: the padding is a NOP instruction */
	struct rewrite_code *back;
	struct rewrite_code_info pi = in;
	cr_assert_eq(rewrite_code__encode(code, &b, NULL, NULL, NULL), 0);
	pi.code = b.data;
	pi.code_len = b.len;
	pi.linetable = NULL;
	pi.linetable_len = 0;
	cr_assert_eq(rewrite_code__decode(&pi, &back, NULL), 0);
	cr_assert_eq(rewrite_code__instrs(back)[k + 1].opcode, NOP);
	rewrite_code__free(back);
	rewrite_bytes__free(&b);
	/* longer than the slot: later instructions would move */
	cr_assert_eq(rewrite_code__replace(code, k, BINARY_SUBSCR, 0, -1, 0), 0);
	struct rewrite_diag diag = { 0 };
	cr_assert_eq(rewrite_code__encode(code, &b, NULL, NULL, &diag), -ERANGE);
	cr_assert(strstr(diag.msg, "would move"), "%s", diag.msg);
	rewrite_code__free(code);
}

/* units of RESUME, two LOAD_CONSTs, a BINARY_SUBSCR at units 3..7, NOPs
 * and RETURN_VALUE, decoded, the BINARY_SUBSCR replaced by a jump to a NOP
 * appended after the end (a redirect guard's shape). *bytes: the original,
 * the caller's to free. */
static struct rewrite_code *subscr_jumped_over(size_t units, uint8_t **bytes)
{
	uint8_t *c = calloc(units, 2);
	c[0] = RESUME;
	c[2] = LOAD_CONST;
	c[4] = LOAD_CONST;
	c[6] = BINARY_SUBSCR; /* units 3..7 */
	for (size_t i = 8; i < units - 1; i++)
		c[2 * i] = NOP;
	c[2 * (units - 1)] = RETURN_VALUE;
	struct rewrite_code_info in = info_of(c, units * 2);
	struct rewrite_code *code;
	cr_assert_eq(rewrite_code__decode(&in, &code, NULL), 0);
	int64_t blk = rewrite_code__append(code, NOP, 0, -1, NULL, 0);
	cr_assert_eq(rewrite_code__replace(code, 3, JUMP_FORWARD, 0, blk, 0), 0);
	*bytes = c;
	return code;
}

Test(code, replaced_jump_grows_into_its_padding)
{
	/* BINARY_SUBSCR (5 units) replaced by a jump to a block 300 units away:
	 * EXTENDED_ARG 1, JUMP_FORWARD, then 3 NOPs. */
	size_t units = 310;
	uint8_t *c;
	struct rewrite_code *code = subscr_jumped_over(units, &c);
	struct rewrite_bytes b = { 0 };
	struct rewrite_diag diag = { 0 };
	cr_assert_eq(rewrite_code__encode(code, &b, NULL, NULL, &diag), 0, "%s", diag.msg);
	const struct rewrite_instr *ri = &rewrite_code__instrs(code)[3];
	cr_assert(ri->nprefix == 1 && ri->npad == 3 && ri->size == 5, "%u %u %u", ri->nprefix,
		  ri->npad, ri->size);
	cr_assert_eq(b.data[6], EXTENDED_ARG);
	cr_assert_eq(b.data[7], 1);
	cr_assert_eq(b.data[8], JUMP_FORWARD);
	cr_assert_eq(5 + 256 + b.data[9], units); /* from unit 5, the jump's end */
	for (int u = 5; u < 8; u++)
		cr_assert(b.data[2 * u] == NOP && b.data[2 * u + 1] == 0);
	cr_assert(memcmp(b.data + 16, c + 16, units * 2 - 16) == 0);
	rewrite_bytes__free(&b);
	rewrite_code__free(code);
	free(c);
}

Test(code, jump_at_the_prefix_boundary_leads_with_a_nop)
{
	/* The block is 256 units from the jump's end without a prefix, 255
	 * with one: the prefix stays (sizes settle) but is written as NOP 0
	 * before the jump, never EXTENDED_ARG 0 (a debug build's
	 * assert(oparg)); a second layout gives the same bytes. */
	size_t units = 260;
	uint8_t *c;
	struct rewrite_code *code = subscr_jumped_over(units, &c);
	struct rewrite_bytes b = { 0 }, b2 = { 0 };
	struct rewrite_diag diag = { 0 };
	cr_assert_eq(rewrite_code__encode(code, &b, NULL, NULL, &diag), 0, "%s", diag.msg);
	const struct rewrite_instr *ri = &rewrite_code__instrs(code)[3];
	cr_assert(ri->nprefix == 1 && ri->nlead == 1 && ri->npad == 3 && ri->arg == 255,
		  "%u %u %u %u", ri->nprefix, ri->nlead, ri->npad, ri->arg);
	cr_assert(b.data[6] == NOP && b.data[7] == 0);
	cr_assert(b.data[8] == JUMP_FORWARD && b.data[9] == 255);
	cr_assert_eq(5 + 255, units); /* from unit 5, the jump's end */
	for (size_t u = 0; u < b.len / 2; u++)
		cr_assert(b.data[2 * u] != EXTENDED_ARG || b.data[2 * u + 1] != 0, "unit %zu", u);
	cr_assert_eq(rewrite_code__encode(code, &b2, NULL, NULL, &diag), 0, "%s", diag.msg);
	cr_assert(b2.len == b.len && memcmp(b.data, b2.data, b.len) == 0);
	rewrite_bytes__free(&b);
	rewrite_bytes__free(&b2);
	rewrite_code__free(code);
	free(c);
}

Test(code, deopt_quickened)
{
	/* LOAD_GLOBAL_BUILTIN with counters in its caches, EXTENDED_ARG_QUICK,
	 * LOAD_FAST__LOAD_FAST superinstruction. */
	int lg = rewrite_opcode__by_name("LOAD_GLOBAL_BUILTIN");
	int eq = rewrite_opcode__by_name("EXTENDED_ARG_QUICK");
	int ll = rewrite_opcode__by_name("LOAD_FAST__LOAD_FAST");
	cr_assert(lg > 0 && eq > 0 && ll > 0);
	cr_assert_eq(rewrite_opcode__deopt(lg), LOAD_GLOBAL);
	cr_assert_eq(rewrite_opcode__caches(LOAD_GLOBAL), 5);
	uint8_t q[] = { U(RESUME, 0),
			U(lg, 1),
			7,
			7,
			1,
			2,
			3,
			4,
			5,
			6,
			8,
			9,
			U(eq, 1),
			U(ll, 2),
			U(LOAD_FAST, 1),
			U(RETURN_VALUE, 0) };
	uint8_t want[] = { U(RESUME, 0),
			   U(LOAD_GLOBAL, 1),
			   0,
			   0,
			   0,
			   0,
			   0,
			   0,
			   0,
			   0,
			   0,
			   0,
			   U(EXTENDED_ARG, 1),
			   U(LOAD_FAST, 2),
			   U(LOAD_FAST, 1),
			   U(RETURN_VALUE, 0) };
	uint8_t out[sizeof(q)];
	cr_assert_eq(rewrite_bytes__deopt(q, sizeof(q), out), 0);
	cr_assert(memcmp(out, want, sizeof(want)) == 0);
	struct rewrite_code_info in = info_of(q, sizeof(q));
	struct rewrite_code *code;
	cr_assert_eq(rewrite_code__decode(&in, &code, NULL), 0);
	cr_assert(rewrite_code__was_quickened(code));
	cr_assert_eq(rewrite_code__instrs(code)[2].arg, 258);
	struct rewrite_bytes b = { 0 };
	cr_assert_eq(rewrite_code__encode(code, &b, NULL, NULL, NULL), 0);
	expect_bytes(&b, want, sizeof(want));
	rewrite_bytes__free(&b);
	rewrite_code__free(code);
	uint8_t bad[] = { U(255, 0) };
	cr_assert_eq(rewrite_bytes__deopt(bad, 2, out), -EINVAL);
	cr_assert_eq(rewrite_bytes__deopt(q, 3, out), -EINVAL);
}

static int decode_err(const uint8_t *c, size_t len, const char *needle)
{
	struct rewrite_code_info in = info_of(c, len);
	struct rewrite_code *code = NULL;
	struct rewrite_diag diag = { 0 };
	int err = rewrite_code__decode(&in, &code, &diag);
	cr_assert_null(code);
	cr_assert(strstr(diag.msg, needle), "message '%s' lacks '%s'", diag.msg, needle);
	cr_assert(strstr(diag.msg, "rewrite: code 't' (t.py:1)"), "%s", diag.msg);
	return err;
}

Test(code, malformed_rejected)
{
	static const uint8_t odd[] = { RESUME, 0, 1 };
	cr_assert_eq(decode_err(odd, 3, "bad length"), -EINVAL);
	static const uint8_t unknown[] = { U(RESUME, 0), U(255, 0) };
	cr_assert_eq(decode_err(unknown, 4, "unknown opcode 255"), -EINVAL);
	static const uint8_t cache[] = { U(RESUME, 0), U(CACHE, 0) };
	cr_assert_eq(decode_err(cache, 4, "CACHE at unit 1"), -EINVAL);
	static const uint8_t cut_caches[] = { U(RESUME, 0), U(BINARY_OP, 0) };
	cr_assert_eq(decode_err(cut_caches, 4, "caches run off"), -EINVAL);
	static const uint8_t ext_end[] = { U(RESUME, 0), U(EXTENDED_ARG, 1) };
	cr_assert_eq(decode_err(ext_end, 4, "runs off the end"), -EINVAL);
	/* JUMP_FORWARD 1 from unit 1 lands on unit 3: the cache of BINARY_OP */
	static const uint8_t mid[] = { U(RESUME, 0), U(JUMP_FORWARD, 1), U(BINARY_OP, 0),
				       U(CACHE, 0), U(RETURN_VALUE, 0) };
	cr_assert_eq(decode_err(mid, sizeof(mid), "inside an instruction"), -EINVAL);
	static const uint8_t out[] = { U(RESUME, 0), U(JUMP_BACKWARD, 3), U(RETURN_VALUE, 0) };
	cr_assert_eq(decode_err(out, sizeof(out), "outside the code"), -EINVAL);
	static const uint8_t past[] = { U(RESUME, 0), U(JUMP_FORWARD, 1), U(RETURN_VALUE, 0) };
	cr_assert_eq(decode_err(past, sizeof(past), "outside the code"), -EINVAL);
	static const uint8_t wide[] = { U(EXTENDED_ARG, 1), U(EXTENDED_ARG, 0), U(EXTENDED_ARG, 0),
					U(EXTENDED_ARG, 0), U(LOAD_CONST, 0) };
	cr_assert_eq(decode_err(wide, sizeof(wide), "overflow 32 bits"), -EINVAL);
}

Test(code, bad_tables_rejected_by_decode)
{
	struct rewrite_code_info in = snippet_info(&snip_tryexc);
	in.exctable_len -= 1;
	struct rewrite_code *code;
	struct rewrite_diag diag = { 0 };
	cr_assert_eq(rewrite_code__decode(&in, &code, &diag), -EINVAL);
	cr_assert(strstr(diag.msg, "tryexc") && strstr(diag.msg, "exception table"), "%s",
		  diag.msg);
	in = snippet_info(&snip_tryexc);
	in.linetable_len -= 1;
	cr_assert_eq(rewrite_code__decode(&in, &code, &diag), -EINVAL);
	cr_assert(strstr(diag.msg, "location table"), "%s", diag.msg);
}
