/* Round trip over a codedump (tests/e2e/test_roundtrip.sh): every code
 * object is decoded, analysed, verified and encoded again; co_code,
 * co_exceptiontable and co_linetable must come back byte-identical, the
 * analysed max depth must equal co_stacksize, and quickened bytes must
 * deoptimize to co_code (both with rewrite_bytes__deopt and through
 * decode + encode). Prints counts; exits 1 on any failure.
 *
 * Usage: test_roundtrip_check DUMP [MAX_REPORTED]
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rewrite/rewrite.h"

static int same(const struct rewrite_bytes *b, const uint8_t *p, size_t len)
{
	return b->len == len && (len == 0 || memcmp(b->data, p, len) == 0);
}

static const char *who(const struct rewrite_code_info *in, char *buf, size_t len)
{
	snprintf(buf, len, "%s:%d %s", in->filename, in->firstlineno, in->qualname);
	return buf;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s DUMP [MAX_REPORTED]\n", argv[0]);
		return 2;
	}
	long max_reported = argc > 2 ? strtol(argv[2], NULL, 10) : 20;
	struct rewrite_diag diag = { 0 };
	struct rewrite_dump *dump;
	if (rewrite_dump__open(argv[1], &dump, &diag)) {
		fprintf(stderr, "%s\n", diag.msg);
		return 1;
	}
	size_t n = rewrite_dump__count(dump);
	size_t decode_fail = 0, verify_fail = 0, code_diff = 0, exc_diff = 0, line_diff = 0;
	size_t depth_diff = 0, depth_below = 0, quick = 0, quick_fail = 0, ext = 0, excs = 0;
	long reported = 0;
	bool specialized[256] = { false };
	char buf[512];
#define REPORT(...)                                   \
	do {                                          \
		if (reported++ < max_reported)        \
			fprintf(stderr, __VA_ARGS__); \
	} while (0)
	for (size_t i = 0; i < n; i++) {
		const struct rewrite_dump_entry *e = rewrite_dump__entry(dump, i);
		const struct rewrite_code_info *in = &e->info;
		struct rewrite_code *code;
		if (rewrite_code__decode(in, &code, &diag)) {
			decode_fail++;
			REPORT("decode: %s\n", diag.msg);
			continue;
		}
		int max = -1;
		if (rewrite_code__analyse(code, &max, &diag) || rewrite_code__verify(code, &diag)) {
			verify_fail++;
			REPORT("verify: %s\n", diag.msg);
		} else if (max != in->stacksize) {
			/* compile.c's stackdepth() also counts the depth of a handler
			 * whose try body was optimized away (its SETUP_* pushed it);
			 * in the final code that handler is dead: unreachable
			 * instructions. Only that case is accepted, and counted. */
			size_t dead = 0;
			const struct rewrite_instr *di = rewrite_code__instrs(code);
			for (size_t k = 0; k < rewrite_code__ninstrs(code); k++)
				dead += di[k].depth < 0;
			if (max < in->stacksize && dead) {
				depth_below++;
			} else {
				depth_diff++;
				REPORT("depth: %s: analysed %d, co_stacksize %d\n",
				       who(in, buf, sizeof(buf)), max, in->stacksize);
			}
		}
		const struct rewrite_instr *ins = rewrite_code__instrs(code);
		for (size_t k = 0; k < rewrite_code__ninstrs(code); k++)
			if (ins[k].nprefix) {
				ext++;
				break;
			}
		if (rewrite_code__nexc(code))
			excs++;
		struct rewrite_bytes c = { 0 }, x = { 0 }, l = { 0 };
		if (rewrite_code__encode(code, &c, &x, &l, &diag)) {
			code_diff++;
			REPORT("encode: %s\n", diag.msg);
		} else {
			if (!same(&c, in->code, in->code_len)) {
				code_diff++;
				REPORT("co_code differs: %s\n", who(in, buf, sizeof(buf)));
			}
			if (!same(&x, in->exctable, in->exctable_len)) {
				exc_diff++;
				REPORT("co_exceptiontable differs: %s\n",
				       who(in, buf, sizeof(buf)));
			}
			if (!same(&l, in->linetable, in->linetable_len)) {
				line_diff++;
				REPORT("co_linetable differs: %s\n", who(in, buf, sizeof(buf)));
			}
		}
		rewrite_bytes__free(&c);
		rewrite_bytes__free(&x);
		rewrite_bytes__free(&l);
		rewrite_code__free(code);

		if (e->adaptive) {
			quick++;
			for (size_t u = 0; u + 1 < e->adaptive_len; u += 2) {
				int op = e->adaptive[u];
				if (rewrite_opcode__deopt(op) >= 0 &&
				    rewrite_opcode__deopt(op) != op)
					specialized[op] = true;
			}
			int ok = e->adaptive_len == in->code_len;
			uint8_t *d = malloc(e->adaptive_len ? e->adaptive_len : 1);
			if (ok && (!d || rewrite_bytes__deopt(e->adaptive, e->adaptive_len, d) ||
				   memcmp(d, in->code, in->code_len)))
				ok = 0;
			free(d);
			struct rewrite_code_info qi = *in;
			qi.code = e->adaptive;
			qi.code_len = e->adaptive_len;
			struct rewrite_code *q;
			if (ok && rewrite_code__decode(&qi, &q, &diag) == 0) {
				struct rewrite_bytes qc = { 0 };
				if (!rewrite_code__was_quickened(q) ||
				    rewrite_code__encode(q, &qc, NULL, NULL, &diag) ||
				    !same(&qc, in->code, in->code_len))
					ok = 0;
				rewrite_bytes__free(&qc);
				rewrite_code__free(q);
			} else {
				ok = 0;
			}
			if (!ok) {
				quick_fail++;
				REPORT("quickened form does not deopt back: %s\n",
				       who(in, buf, sizeof(buf)));
			}
		}
	}
	printf("code objects: %zu (with EXTENDED_ARG: %zu, with exception table: %zu)\n", n, ext,
	       excs);
	printf("decode failures: %zu, analyse/verify failures: %zu\n", decode_fail, verify_fail);
	printf("byte differences: co_code %zu, co_exceptiontable %zu, co_linetable %zu\n",
	       code_diff, exc_diff, line_diff);
	printf("max depth != co_stacksize: %zu; below it with dead handler code: %zu\n", depth_diff,
	       depth_below);
	size_t nspec = 0;
	for (int op = 0; op < 256; op++)
		nspec += specialized[op];
	printf("quickened: %zu, not deoptimized back: %zu\n", quick, quick_fail);
	printf("distinct specialized opcodes seen: %zu\n", nspec);
	rewrite_dump__close(dump);
	return (decode_fail || verify_fail || code_diff || exc_diff || line_diff || depth_diff ||
		quick_fail)
		       ? 1
		       : 0;
}
