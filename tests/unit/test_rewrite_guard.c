/* Guard analysis, synthesis, diff gate and fingerprints on real CPython
 * 3.11 code objects (tests/fixtures/guards/unit_cases.py, dumped into
 * unit_cases.dump). Execution of the patches is in tests/e2e/test_guards.sh. */
#include <criterion/criterion.h>
#include <errno.h>
#include <opcode.h>
#include <stdlib.h>
#include <string.h>

#include "rewrite/guard-priv.h" /* guard_op__inputs/outputs */

static struct rewrite_dump *dump;

static void setup(void)
{
	const char *root = getenv("SUTURE_ROOT");
	char path[512];
	snprintf(path, sizeof(path), "%s/tests/fixtures/guards/unit_cases.dump", root ? root : ".");
	struct rewrite_diag diag = { 0 };
	cr_assert_eq(rewrite_dump__open(path, &dump, &diag), 0, "%s", diag.msg);
}

static void teardown(void)
{
	rewrite_dump__close(dump);
}

TestSuite(guard, .init = setup, .fini = teardown);

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
	cr_assert_eq(rewrite_code__decode(info, &c, NULL), 0);
	const struct rewrite_instr *in = rewrite_code__instrs(c);
	for (size_t i = 0; i < rewrite_code__ninstrs(c); i++)
		if (in[i].opcode == op && nth-- == 0) {
			uint32_t u = in[i].offset;
			rewrite_code__free(c);
			return u;
		}
	rewrite_code__free(c);
	cr_assert_fail("no %s", rewrite_opcode__name(op));
	return 0;
}

static struct guard_decision decide(const char *fn, int op, int nth, const char *exc,
				    const char *msg)
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

/* What the block of patch p pushes at its fallback_unit, rendered like a
 * decision's fallback_text ("None", "0", "0.0"): the LOAD_CONST there must
 * name one of the patch's appended constants. */
static void pushed_text(const struct rewrite_code_info *info, const struct guard_patch *p,
			char *out, size_t len)
{
	struct rewrite_code_info pi;
	struct rewrite_const *pc = NULL;
	struct rewrite_code *c = NULL;
	cr_assert_eq(guard_patch__info(info, p, &pi, &pc), 0);
	cr_assert_eq(rewrite_code__decode(&pi, &c, NULL), 0);
	const struct rewrite_instr *in = rewrite_code__instrs(c), *at = NULL;
	for (size_t i = 0; i < rewrite_code__ninstrs(c); i++)
		if (in[i].offset == p->fallback_unit)
			at = &in[i];
	cr_assert(at, "no instruction at the fallback unit %u", p->fallback_unit);
	cr_assert_eq(at->opcode, LOAD_CONST, "%s at the fallback unit",
		     rewrite_opcode__name(at->opcode));
	cr_assert(at->arg >= p->nconsts_before && at->arg - p->nconsts_before < p->nconsts,
		  "LOAD_CONST %u is not an appended constant", at->arg);
	const struct guard_const *k = &p->consts[at->arg - p->nconsts_before];
	switch (k->kind) {
	case GUARD_CONST_NONE:
		snprintf(out, len, "None");
		break;
	case GUARD_CONST_INT:
		snprintf(out, len, "%lld", (long long)k->i);
		break;
	case GUARD_CONST_FLOAT:
		snprintf(out, len, "%.1f", k->f);
		break;
	default:
		snprintf(out, len, "(constant kind %d)", (int)k->kind);
		break;
	}
	rewrite_code__free(c);
	free(pc);
}

/* Synthesize and pass the gate; returns the delta. A handler guard that
 * pushes a fallback pushes the decision's (a redirect replaces the failing
 * instruction by a helper call instead: no fallback_unit). */
static struct guard_delta patch_ok(const char *fn, const struct guard_decision *d)
{
	const struct rewrite_code_info *info = code_named(fn);
	struct guard_patch p;
	struct rewrite_diag diag = { 0 };
	cr_assert_eq(guard__synthesize(info, d, &p, &diag), 0, "%s", diag.msg);
	struct rewrite_code_info pi;
	struct rewrite_const *pc = NULL;
	cr_assert_eq(guard_patch__info(info, &p, &pi, &pc), 0);
	struct guard_delta dl;
	cr_assert_eq(guard_diffgate__check(info, &pi, &dl, &diag), 0, "%s", diag.msg);
	cr_assert_eq(p.orig_units, info->code_len / 2);
	cr_assert(memcmp(p.code.data, info->code, info->code_len) == 0 || dl.replaced == 1);
	if (d->push_fallback && d->placement != GUARD_PLACE_REDIRECT) {
		char got[64];
		pushed_text(info, &p, got, sizeof got);
		cr_assert_str_eq(got, d->fallback_text, "the block pushes %s, the decision says %s",
				 got, d->fallback_text);
	}
	free(pc);
	guard_patch__release(&p);
	return dl;
}

Test(guard, key_guard)
{
	struct guard_decision d = decide("key", BINARY_SUBSCR, 0, "KeyError", "'timeout'");
	cr_assert_eq(d.kind, GUARD_KEY, "%s", d.reason);
	cr_assert_str_eq(d.target, "cfg['timeout']");
	cr_assert_str_eq(d.subject, "cfg");
	cr_assert_str_eq(d.fallback_text, "None");
	cr_assert_eq(d.placement, GUARD_PLACE_VALUE);
	cr_assert(d.push_fallback, "a value-placed guard pushes its fallback");
	struct guard_delta dl = patch_ok("key", &d);
	cr_assert_eq(dl.unchanged, dl.original);
	cr_assert_eq(dl.guard_entries, 1);
}

Test(guard, null_guard)
{
	struct guard_decision d = decide("null", LOAD_ATTR, 0, "AttributeError",
					 "'NoneType' object has no attribute 'name'");
	cr_assert_eq(d.kind, GUARD_NULL);
	cr_assert_str_eq(d.target, "profile.name");
	cr_assert_str_eq(d.subject, "profile");
	patch_ok("null", &d);
	/* Not None: a program error, refused. */
	d = decide("null", LOAD_ATTR, 0, "AttributeError", "'P' object has no attribute 'name'");
	cr_assert_eq(d.kind, GUARD_NONE);
	cr_assert_eq(d.refusal, GUARD_REFUSE_UNHANDLED);
}

Test(guard, division_guard)
{
	struct guard_decision d = decide("div", BINARY_OP, 0, "ZeroDivisionError",
					 "division by zero");
	cr_assert_eq(d.kind, GUARD_DIVISION);
	cr_assert_str_eq(d.target, "total / count");
	cr_assert_str_eq(d.subject, "count");
	cr_assert_str_eq(d.fallback_text, "0.0");
	cr_assert(d.push_fallback);
	patch_ok("div", &d);
}

Test(guard, callable_guard)
{
	struct guard_decision d = decide("call", CALL, 0, "TypeError",
					 "'NoneType' object is not callable");
	cr_assert_eq(d.kind, GUARD_CALLABLE);
	cr_assert_str_eq(d.subject, "callback");
	cr_assert_eq(d.cover[0].last - d.cover[0].first, 1, "PRECALL and CALL covered together");
	patch_ok("call", &d);
}

Test(guard, type_coercion_guard)
{
	struct guard_decision d = decide("coerce", PRECALL, 0, "ValueError",
					 "invalid literal for int() with base 10: 'x'");
	cr_assert_eq(d.kind, GUARD_TYPE_COERCION);
	cr_assert_str_eq(d.target, "int(s)");
	cr_assert_str_eq(d.fallback_text, "0");
	cr_assert_str_eq(d.consumer, "BINARY_OP", "0 + 1 is fine: value placement");
	cr_assert(d.push_fallback);
	patch_ok("coerce", &d);
}

/* In flight, a redirect's continuation starts at the first load of the
 * failing instruction's operands (the instruction consumed them). */
static void redirect_restarts_at(const char *fn, const struct guard_decision *d, int op)
{
	const struct rewrite_code_info *info = code_named(fn);
	struct guard_patch p;
	struct rewrite_diag diag = { 0 };
	cr_assert_eq(guard__synthesize(info, d, &p, &diag), 0, "%s", diag.msg);
	cr_assert_null(p.no_resume, "%s", p.no_resume);
	cr_assert_eq(p.fallback_unit, unit_of(info, op, 0), "restart at unit %u", p.fallback_unit);
	cr_assert_eq(p.base_depth, 0);
	guard_patch__release(&p);
}

Test(guard, str_coerce_guard_redirect)
{
	struct guard_decision d = decide("concat", BINARY_OP, 0, "TypeError",
					 "can only concatenate str (not \"int\") to str");
	cr_assert_eq(d.kind, GUARD_STR_COERCE);
	cr_assert_eq(d.placement, GUARD_PLACE_REDIRECT);
	cr_assert_str_eq(d.subject, "n");
	struct guard_delta dl = patch_ok("concat", &d);
	cr_assert_eq(dl.replaced, 1);
	cr_assert_eq(dl.unchanged + 1, dl.original);
	redirect_restarts_at("concat", &d, LOAD_FAST); /* prefix + n: both loaded again */
}

Test(guard, file_guard_redirect)
{
	struct guard_decision d = decide("read", CALL, 0, "FileNotFoundError",
					 "[Errno 2] No such file or directory: 'x'");
	cr_assert_eq(d.kind, GUARD_FILE);
	cr_assert_str_eq(d.target, "open(path)");
	struct guard_delta dl = patch_ok("read", &d);
	cr_assert_eq(dl.replaced, 1);
	redirect_restarts_at("read", &d, LOAD_GLOBAL); /* NULL + open, path */
}

Test(guard, chain_and_subscript_guards)
{
	struct guard_decision d = decide("chain", BINARY_SUBSCR, 1, "TypeError",
					 "'NoneType' object is not subscriptable");
	cr_assert_eq(d.kind, GUARD_CHAIN_SUBSCRIPT);
	cr_assert_str_eq(d.target, "cfg['db']['host']");
	cr_assert_eq(d.ncover, 2);
	struct guard_delta dl = patch_ok("chain", &d);
	cr_assert_eq(dl.guard_entries, 2);
	d = decide("key", BINARY_SUBSCR, 0, "TypeError", "'NoneType' object is not subscriptable");
	cr_assert_eq(d.kind, GUARD_SUBSCRIPT);
	d = decide("key", BINARY_SUBSCR, 0, "IndexError", "list index out of range");
	cr_assert_eq(d.kind, GUARD_INDEX);
	patch_ok("key", &d);
}

Test(guard, refusals)
{
	struct guard_decision d = decide("raises", RAISE_VARARGS, 0, "ValueError", "x");
	cr_assert_eq(d.refusal, GUARD_REFUSE_RAISE);
	d = decide("asserts", RAISE_VARARGS, 0, "AssertionError", "x");
	cr_assert_eq(d.refusal, GUARD_REFUSE_ASSERT);
	d = decide("key", BINARY_SUBSCR, 0, "app.ConfigError", "x");
	cr_assert_eq(d.refusal, GUARD_REFUSE_CUSTOM);
	cr_assert(strstr(d.reason, "app.ConfigError"));
	const struct rewrite_code_info *info = code_named("key");
	struct guard_crash crash = { .unit = unit_of(info, BINARY_SUBSCR, 0),
				     .exc_type = "KeyError",
				     .message = "'k'",
				     .in_callee = true };
	cr_assert_eq(guard__analyse(info, &crash, &d, NULL), 0);
	cr_assert_eq(d.refusal, GUARD_REFUSE_CALLEE);
	crash.in_callee = false;
	crash.stdlib = 1;
	cr_assert_eq(guard__analyse(info, &crash, &d, NULL), 0);
	cr_assert_eq(d.refusal, GUARD_REFUSE_STDLIB);
	cr_assert(guard__is_stdlib_path("/usr/lib/python3.11/json/decoder.py"));
	cr_assert(!guard__is_stdlib_path("/usr/lib/python3/dist-packages/x.py"));
	cr_assert(!guard__is_stdlib_path("/home/u/app.py"));
	crash.unit = 100000;
	cr_assert_eq(guard__analyse(info, &crash, &d, NULL), -EINVAL);
}

/* A patch the gate must reject after one corruption. */
static void gate_rejects(void (*corrupt)(struct rewrite_code_info *, uint8_t *, uint8_t *,
					 uint8_t *),
			 const char *expect)
{
	const struct rewrite_code_info *info = code_named("key");
	struct guard_decision d = decide("key", BINARY_SUBSCR, 0, "KeyError", "'timeout'");
	struct guard_patch p;
	cr_assert_eq(guard__synthesize(info, &d, &p, NULL), 0);
	struct rewrite_code_info pi;
	struct rewrite_const *pc = NULL;
	cr_assert_eq(guard_patch__info(info, &p, &pi, &pc), 0);
	corrupt(&pi, p.code.data, p.exctable.data, p.linetable.data);
	struct rewrite_diag diag = { 0 };
	cr_assert_eq(guard_diffgate__check(info, &pi, NULL, &diag), -EINVAL);
	cr_assert(strstr(diag.msg, expect), "diag: %s", diag.msg);
	free(pc);
	guard_patch__release(&p);
}

static void moved(struct rewrite_code_info *pi, uint8_t *code, uint8_t *e, uint8_t *l)
{
	(void)pi, (void)e, (void)l;
	/* LOAD_FAST cfg (units 1) now loads another local: stack-valid,
	 * but an original instruction changed. */
	code[3] ^= 1;
}

static void inserted(struct rewrite_code_info *pi, uint8_t *code, uint8_t *e, uint8_t *l)
{
	(void)e, (void)l;
	/* A NOP after RESUME: every later instruction moves by one unit. */
	static uint8_t buf[4096];
	cr_assert_lt(pi->code_len + 2, sizeof(buf));
	memcpy(buf, code, 2);
	buf[2] = NOP;
	buf[3] = 0;
	memcpy(buf + 4, code + 2, pi->code_len - 2);
	pi->code = buf;
	pi->code_len += 2;
}

static void overlapping(struct rewrite_code_info *pi, uint8_t *code, uint8_t *e, uint8_t *l)
{
	(void)code, (void)l;
	static uint8_t table[16];
	/* Two entries over the same units. */
	size_t n = pi->exctable_len;
	memcpy(table, e, n);
	memcpy(table + n, e, n);
	pi->exctable = table;
	pi->exctable_len = 2 * n;
}

static void bad_lines(struct rewrite_code_info *pi, uint8_t *code, uint8_t *e, uint8_t *l)
{
	(void)code, (void)e, (void)l;
	pi->linetable_len -= 2; /* the tail loses its locations */
}

static void later_unit(struct rewrite_code_info *pi, uint8_t *code, uint8_t *e, uint8_t *l)
{
	(void)e, (void)l;
	/* The first inline CACHE unit of BINARY_SUBSCR gets a value: the
	 * instruction's first unit is intact, a later one is not. */
	for (size_t u = 0; u + 1 < pi->code_len / 2; u++)
		if (code[2 * u] == BINARY_SUBSCR) {
			code[2 * (u + 1) + 1] ^= 0x40;
			return;
		}
	cr_assert_fail("no BINARY_SUBSCR in the key snippet");
}

Test(guard, diffgate_rejects)
{
	gate_rejects(later_unit, "BINARY_SUBSCR at unit");
	gate_rejects(moved, "changed");
	gate_rejects(inserted, "LOAD_FAST at unit 1");
	gate_rejects(overlapping, "rewrite");
	gate_rejects(bad_lines, "has no location");
}

/* Rewrite the patched exception table of tryfinally's key guard with fn. */
static void gate_rejects_table(void (*fn)(struct rewrite_exc *e, size_t *n, uint32_t orig_units),
			       const char *expect)
{
	const struct rewrite_code_info *info = code_named("tryfinally");
	struct guard_decision d = decide("tryfinally", BINARY_SUBSCR, 0, "KeyError", "'k'");
	cr_assert_eq(d.kind, GUARD_KEY);
	struct guard_patch p;
	cr_assert_eq(guard__synthesize(info, &d, &p, NULL), 0);
	struct rewrite_exc *e = NULL;
	size_t n = 0;
	cr_assert_eq(rewrite_exctable__decode(p.exctable.data, p.exctable.data + p.exctable.len, &e,
					      &n, NULL),
		     0);
	fn(e, &n, p.orig_units);
	struct rewrite_bytes t = { 0 };
	cr_assert_eq(rewrite_exctable__encode(e, n, &t), 0);
	struct rewrite_code_info pi;
	struct rewrite_const *pc = NULL;
	cr_assert_eq(guard_patch__info(info, &p, &pi, &pc), 0);
	pi.exctable = t.data;
	pi.exctable_len = t.len;
	struct rewrite_diag diag = { 0 };
	cr_assert_eq(guard_diffgate__check(info, &pi, NULL, &diag), -EINVAL);
	cr_assert(strstr(diag.msg, expect), "diag: %s", diag.msg);
	free(e);
	free(pc);
	rewrite_bytes__free(&t);
	guard_patch__release(&p);
}

/* The appended block loses the finally handler that covered the guarded code. */
static void drop_block_cover(struct rewrite_exc *e, size_t *n, uint32_t orig_units)
{
	size_t k = 0;
	for (size_t i = 0; i < *n; i++)
		if (e[i].start < orig_units)
			e[k++] = e[i];
	cr_assert_lt(k, *n);
	*n = k;
}

/* The guard entry covers only the first unit of BINARY_SUBSCR. */
static void partial_cover(struct rewrite_exc *e, size_t *n, uint32_t orig_units)
{
	for (size_t i = 0; i < *n; i++)
		if (e[i].target >= orig_units && e[i].start < orig_units) {
			cr_assert_gt(e[i].end - e[i].start, 1);
			/* the rest goes back to the original handler */
			e[i].end = e[i].start + 1;
			return;
		}
	cr_assert_fail("no guard entry");
}

Test(guard, diffgate_rejects_tables)
{
	gate_rejects_table(drop_block_cover, "not covered by the handler");
	gate_rejects_table(partial_cover, "part of an instruction");
}

Test(guard, probe_everywhere)
{
	for (size_t i = 0; i < rewrite_dump__count(dump); i++) {
		const struct rewrite_code_info *info = &rewrite_dump__entry(dump, i)->info;
		struct guard_patch p;
		struct rewrite_diag diag = { 0 };
		cr_assert_eq(guard__synthesize_probe(info, &p, &diag), 0, "%s", diag.msg);
		struct rewrite_code_info pi;
		struct rewrite_const *pc = NULL;
		cr_assert_eq(guard_patch__info(info, &p, &pi, &pc), 0);
		cr_assert_eq(guard_diffgate__check(info, &pi, NULL, &diag), 0, "%s", diag.msg);
		cr_assert_eq(p.consts[0].kind, GUARD_CONST_PROBE_EXC);
		free(pc);
		guard_patch__release(&p);
	}
}

Test(guard, fingerprint)
{
	const struct rewrite_code_info *info = code_named("key");
	uint32_t u = unit_of(info, BINARY_SUBSCR, 0);
	struct guard_fingerprint a, b, c;
	cr_assert_eq(guard_fingerprint__compute(info, u, "KeyError", &a, NULL), 0);
	cr_assert_eq(guard_fingerprint__compute(info, u + 1, "builtins.KeyError", &b, NULL), 0);
	cr_assert_eq(a.hash, b.hash, "any unit of the instruction, same site");
	cr_assert(strstr(a.window, ">BINARY_SUBSCR"), "%s", a.window);
	cr_assert(strstr(a.window, "LOAD_CONST 'timeout'"), "%s", a.window);
	/* The text and its hash are stored with every patch (a change makes
	 * every stored patch stale): pinned, with a call's +NULL and a jump
	 * back. */
	cr_assert_str_eq(a.window, "RESUME 0|LOAD_FAST cfg|LOAD_CONST 'timeout'|>BINARY_SUBSCR|"
				   "STORE_FAST timeout|LOAD_FAST timeout");
	cr_assert_eq(a.hash, 0x1f954e5c4b0a2a58ull);
	const struct rewrite_code_info *fl = code_named("c_for_loop");
	cr_assert_eq(guard_fingerprint__compute(fl, unit_of(fl, CALL, 0), "KeyError", &c, NULL), 0);
	cr_assert_str_eq(c.window, "LOAD_GLOBAL print+NULL|LOAD_FAST x|PRECALL 1|>CALL 1|POP_TOP|"
				   "JUMP_BACKWARD -7");
	cr_assert_eq(c.hash, 0xc60729ead94a465aull);
	const struct rewrite_code_info *ci = code_named("coerce");
	cr_assert_eq(guard_fingerprint__compute(ci, unit_of(ci, PRECALL, 0), "ValueError", &b,
						NULL),
		     0);
	cr_assert_eq(guard_fingerprint__compute(ci, unit_of(ci, CALL, 0), "ValueError", &c, NULL),
		     0);
	cr_assert_eq(b.hash, c.hash, "PRECALL and CALL are one call site");
	cr_assert_eq(guard_fingerprint__compute(info, u, "IndexError", &c, NULL), 0);
	cr_assert_neq(a.hash, c.hash);
	cr_assert_str_eq(guard_kind__name(GUARD_CHAIN_SUBSCRIPT), "chain_subscript_guard");
	uint64_t id1, id2, id3;
	cr_assert_eq(guard_code__identity(info, &id1), 0);
	cr_assert_eq(guard_code__identity(info, &id2), 0);
	cr_assert_eq(guard_code__identity(code_named("null"), &id3), 0);
	cr_assert_eq(id1, id2);
	cr_assert_neq(id1, id3);
	cr_assert_eq(guard_kind__by_name("file_guard"), GUARD_FILE);
}

/* guard_op__inputs is read from ceval.c; outputs = inputs + stack_effect.
 * No canonical opcode may end up producing a negative number of items. */

Test(guard, op_inputs_consistent)
{
	int checked = 0;
	for (int op = 0; op < 256; op++) {
		if (rewrite_opcode__deopt(op) != op)
			continue;
		for (uint32_t arg = 0; arg < 16; arg++) {
			int eff;
			if (rewrite_opcode__stack_effect(op, arg, 0, &eff) < 0)
				continue;
			if ((op == BUILD_SLICE && arg < 2) || (op == RAISE_VARARGS && arg > 2) ||
			    ((op == COPY || op == SWAP) && arg == 0))
				continue; /* args the compiler never emits */
			cr_assert_geq(guard_op__outputs(op, arg), 0, "%s %u: inputs %d, effect %d",
				      rewrite_opcode__name(op), arg, guard_op__inputs(op, arg),
				      eff);
			checked++;
		}
	}
	cr_assert_gt(checked, 1000);
	cr_assert_eq(guard_op__inputs(BINARY_SUBSCR, 0), 2);
	cr_assert_eq(guard_op__outputs(LOAD_METHOD, 0), 2);
	cr_assert_eq(guard_op__outputs(CALL, 3), 1);
	cr_assert_eq(guard_op__outputs(STORE_SUBSCR, 0), 0);
}

Test(guard, fmt_keeps_utf8_whole)
{
	char buf[6];
	guard__fmt(buf, sizeof(buf), "%s",
		   "ab\xe2\x80\xa6"
		   "cd"); /* ab…cd */
	cr_assert_str_eq(buf, "ab\xe2\x80\xa6");
	guard__fmt(buf, sizeof(buf), "%s", "abcd\xe2\x80\xa6");
	cr_assert_str_eq(buf, "abcd");
	guard__fmt(buf, sizeof(buf), "%s", "abc");
	cr_assert_str_eq(buf, "abc");
}

Test(guard, explain_side_by_side)
{
	const struct rewrite_code_info *info = code_named("concat");
	struct guard_crash crash = { .unit = unit_of(info, BINARY_OP, 0),
				     .exc_type = "TypeError",
				     .message = "can only concatenate str (not \"int\") to str" };
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	cr_assert(out);
	cr_assert_eq(guard__explain(info, &crash, 3, out), 0);
	fclose(out);
	cr_assert(strstr(buf, "guard: str_coerce_guard"), "%s", buf);
	cr_assert(strstr(buf, "diff gate: accepted: "), "%s", buf);
	cr_assert(strstr(buf, "1 replaced"), "%s", buf);
	cr_assert(strstr(buf, " * "), "the replaced line is marked: %s", buf);
	cr_assert(strstr(buf, "LOAD_CONST") && strstr(buf, "str_coerce"), "%s", buf);
	free(buf);
	/* A refusal says why. */
	info = code_named("raises");
	crash = (struct guard_crash){ .unit = unit_of(info, RAISE_VARARGS, 0),
				      .exc_type = "ValueError" };
	out = open_memstream(&buf, &len);
	cr_assert_eq(guard__explain(info, &crash, 3, out), 0);
	fclose(out);
	cr_assert(strstr(buf, "no guard (explicit-raise)"), "%s", buf);
	free(buf);
}
