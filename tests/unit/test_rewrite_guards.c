/* The guard vocabulary as data (rewrite/guards.c): every kind has a name,
 * the exceptions it answers, a helper and placements; the synthesizer
 * builds exactly what a kind's row says (handler or redirect, the types it
 * matches, the helper it calls); the analyser's consumer texts map back to
 * the tokens it decides, and every token has its own name. */
#include "test_rewrite_cases.h"
#include "rewrite/guard-priv.h" /* guard__builtin_exc */

#include <errno.h>

TestSuite(guards, .init = cases_open, .fini = cases_close);

static bool has_name(const struct guard_kind_info *k, const char *exc)
{
	for (size_t i = 0; i < k->nexc; i++)
		if (strcmp(k->exc[i], exc) == 0)
			return true;
	return false;
}

Test(guards, every_kind_has_a_complete_row)
{
	for (int kind = GUARD_KIND_FIRST; kind <= GUARD_KIND_LAST; kind++) {
		const struct guard_kind_info *k = guard_kind__info(kind);

		cr_assert_not_null(k, "kind %d", kind);
		cr_assert_eq(k->kind, kind, "row of kind %d is out of order", kind);
		cr_assert_not_null(k->name);
		cr_assert_str_eq(guard_kind__name(kind), k->name);
		cr_assert_eq(guard_kind__by_name(k->name), kind, "%s", k->name);
		cr_assert(strlen(k->name) > 6 && !strcmp(k->name + strlen(k->name) - 6, "_guard"),
			  "%s", k->name);
		cr_assert(k->nexc >= 1 && k->nexc <= GUARD_KIND_MAX_EXC, "%s", k->name);
		cr_assert(k->nexc <= GUARD_CONST_NAMES, "%s: more types than a constant holds",
			  k->name);
		for (size_t i = 0; i < k->nexc; i++)
			cr_assert(guard__builtin_exc(k->exc[i]), "%s: %s", k->name, k->exc[i]);
		cr_assert_not_null(k->helper, "%s", k->name);
		cr_assert(k->redirect || !k->helper_inplace, "%s", k->name);
		cr_assert_eq(k->placements,
			     k->redirect ? GUARD_PLACES_REDIRECT : GUARD_PLACES_HANDLER, "%s",
			     k->name);
		/* Re-decision recovers the exception type from the samples: they
		 * cover every type the kind answers, and no other. */
		cr_assert(k->nsamples >= 1 && k->nsamples <= GUARD_KIND_MAX_SAMPLES, "%s", k->name);
		for (size_t i = 0; i < k->nsamples; i++)
			cr_assert(has_name(k, k->samples[i].exc_type), "%s: sample %s", k->name,
				  k->samples[i].exc_type);
		for (size_t i = 0; i < k->nexc; i++) {
			bool sampled = false;

			for (size_t j = 0; j < k->nsamples; j++)
				sampled |= strcmp(k->samples[j].exc_type, k->exc[i]) == 0;
			cr_assert(sampled, "%s: no sample raises %s", k->name, k->exc[i]);
		}
		cr_assert(k->answers && *k->answers && k->when && *k->when && k->fix && *k->fix,
			  "%s: suture-audit's texts", k->name);
		for (int other = GUARD_KIND_FIRST; other < kind; other++)
			cr_assert_str_neq(guard_kind__info(other)->name, k->name);
	}
	cr_assert_null(guard_kind__info(GUARD_NONE));
	cr_assert_null(guard_kind__info(GUARD_PROBE));
	cr_assert_null(guard_kind__info((enum guard_kind)99));
	cr_assert_str_eq(guard_kind__name(GUARD_NONE), "none");
	cr_assert_str_eq(guard_kind__name(GUARD_PROBE), "probe");
	cr_assert_eq(guard_kind__by_name("probe"), GUARD_PROBE);
	cr_assert_eq(guard_kind__by_name("key"), GUARD_NONE);
	cr_assert_eq(guard_kind__by_name(NULL), GUARD_NONE);
}

Test(guards, placements_have_names)
{
	for (int p = 0; p < GUARD_PLACEMENT_COUNT; p++)
		cr_assert_eq(guard_placement__by_name(guard_placement__name(p)), p);
	cr_assert_str_eq(guard_placement__name(GUARD_PLACE_SKIP), "skip");
	cr_assert_eq(guard_placement__by_name("inline"), -EINVAL);
	cr_assert_eq(guard_placement__by_name(NULL), -EINVAL);
}

/* The patch of each kind's case is what its row says. */
Test(guards, synthesizer_follows_the_table)
{
	unsigned seen = 0;

	for (size_t i = 0; i < NKIND_CASES; i++) {
		const struct kind_case *kc = &kind_cases[i];
		const struct guard_kind_info *k = guard_kind__info(kc->kind);
		struct guard_decision d = decide(kc->fn, kc->op, kc->nth, kc->exc, kc->msg);
		struct guard_patch p;
		struct rewrite_diag diag = { 0 };
		const struct guard_const *helper = NULL;

		cr_assert_eq(d.kind, kc->kind, "%s: %s", k->name, d.reason);
		seen |= 1u << kc->kind;
		cr_assert(k->placements & (1u << d.placement), "%s decided %s", k->name,
			  guard_placement__name(d.placement));
		cr_assert_eq(guard__synthesize(code_named(kc->fn), &d, &p, &diag), 0, "%s",
			     diag.msg);
		cr_assert_eq(p.kind, kc->kind);
		for (size_t c = 0; c < p.nconsts; c++)
			if (p.consts[c].kind == GUARD_CONST_HELPER)
				helper = &p.consts[c];
		cr_assert_not_null(helper, "%s: no helper constant", k->name);
		if (k->redirect) {
			cr_assert_geq(p.replaced_unit, 0, "%s replaces no instruction", k->name);
			cr_assert_eq(p.nentries, 0, "%s added handler entries", k->name);
			cr_assert(!strcmp(helper->names[0], k->helper) ||
					  (k->helper_inplace &&
					   !strcmp(helper->names[0], k->helper_inplace)),
				  "%s calls %s", k->name, helper->names[0]);
		} else {
			const struct guard_const *m = &p.consts[0];

			cr_assert_eq(p.replaced_unit, -1, "%s replaced an instruction", k->name);
			cr_assert_geq(p.nentries, 1, "%s added no handler entry", k->name);
			cr_assert_eq(m->kind,
				     k->nexc == 1 ? GUARD_CONST_EXC_TYPE : GUARD_CONST_EXC_TUPLE);
			cr_assert_eq(m->nnames, k->nexc, "%s", k->name);
			for (size_t n = 0; n < k->nexc; n++)
				cr_assert_str_eq(m->names[n], k->exc[n], "%s", k->name);
			cr_assert_str_eq(helper->names[0], k->helper, "%s", k->name);
		}
		guard_patch__release(&p);
	}
	for (int kind = GUARD_KIND_FIRST; kind <= GUARD_KIND_LAST; kind++)
		cr_assert(seen & (1u << kind), "no case for %s", guard_kind__name(kind));
}

/* For a caller that gates: the same patch, byte for byte, as the verified
 * synthesis gives, and the gate accepts it (the gate's verification
 * stands for the one left out). */
Test(guards, synthesis_for_the_gate_is_the_same_patch)
{
	for (size_t i = 0; i < NKIND_CASES; i++) {
		const struct kind_case *kc = &kind_cases[i];
		const struct rewrite_code_info *info = code_named(kc->fn);
		struct guard_decision d = decide(kc->fn, kc->op, kc->nth, kc->exc, kc->msg);
		struct guard_patch a, b;
		struct rewrite_diag diag = { 0 };
		cr_assert_eq(guard__synthesize(info, &d, &a, &diag), 0, "%s", diag.msg);
		cr_assert_eq(guard__synthesize_for_gate(info, &d, &b, &diag), 0, "%s", diag.msg);
		cr_assert_eq(a.code.len, b.code.len);
		cr_assert_eq(memcmp(a.code.data, b.code.data, a.code.len), 0, "%s", kc->fn);
		cr_assert_eq(a.exctable.len, b.exctable.len);
		cr_assert_eq(memcmp(a.exctable.data, b.exctable.data, a.exctable.len), 0);
		cr_assert_eq(a.linetable.len, b.linetable.len);
		cr_assert_eq(memcmp(a.linetable.data, b.linetable.data, a.linetable.len), 0);
		cr_assert_eq(a.nconsts, b.nconsts);
		cr_assert_eq(a.stacksize, b.stacksize);
		struct rewrite_code_info pi;
		struct rewrite_const *pc = NULL;
		struct guard_delta dl;
		cr_assert_eq(guard_patch__info(info, &b, &pi, &pc), 0);
		cr_assert_eq(guard_diffgate__check(info, &pi, &dl, &diag), 0, "%s: %s", kc->fn,
			     diag.msg);
		free(pc);
		guard_patch__release(&a);
		guard_patch__release(&b);
	}
}

Test(guards, consumer_tokens)
{
	for (int c = 0; c < GUARD_CONSUMER_COUNT; c++) {
		const char *t = guard_consumer__name(c);

		cr_assert(t && *t && strcmp(t, "?") != 0, "consumer %d", c);
		cr_assert_eq(guard_consumer__by_name(t), c, "%s", t);
		for (const char *q = t; *q; q++)
			cr_assert((*q >= 'a' && *q <= 'z') || *q == '-', "token %s", t);
		if (c == GUARD_CONSUMER_UNKNOWN || c == GUARD_CONSUMER_OPCODE)
			cr_assert_null(guard_consumer__explain(c), "%s", t);
		else
			cr_assert_not_null(guard_consumer__explain(c), "%s", t);
		for (int o = 0; o < c; o++)
			cr_assert_str_neq(guard_consumer__name(o), t);
	}
	cr_assert_eq(guard_consumer__by_name("call argument"), -EINVAL);
	cr_assert_eq(guard_consumer__by_name(NULL), -EINVAL);
	cr_assert_str_eq(guard_consumer__name(GUARD_CONSUMER_COUNT), "?");
	cr_assert_null(guard_consumer__explain(GUARD_CONSUMER_COUNT));
}

Test(guards, consumer_of_text)
{
	static const struct {
		const char *text;
		enum guard_consumer c;
	} t[] = {
		{ "store timeout", GUARD_CONSUMER_STORE },
		{ "store attribute .x", GUARD_CONSUMER_STORE_ATTR },
		{ "store item", GUARD_CONSUMER_STORE_ITEM },
		{ "none (the delete is skipped)", GUARD_CONSUMER_SKIPPED },
		{ "BUILD_CONST_KEY_MAP", GUARD_CONSUMER_BUILD },
		{ "CONTAINS_OP", GUARD_CONSUMER_OPCODE },
		{ "FORMAT_VALUE", GUARD_CONSUMER_OPCODE },
		{ "argument", GUARD_CONSUMER_CALL_ARG },
		{ "operand", GUARD_CONSUMER_HELPER },
		{ "container", GUARD_CONSUMER_BUILD },
		{ "statement", GUARD_CONSUMER_STATEMENT },
		{ "Store x", GUARD_CONSUMER_UNKNOWN },
		{ "", GUARD_CONSUMER_UNKNOWN },
		{ NULL, GUARD_CONSUMER_UNKNOWN },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		cr_assert_eq(guard_consumer__of_text(t[i].text), t[i].c, "\"%s\"",
			     t[i].text ? t[i].text : "(null)");
}

/* What the analyser decides, per consumer shape (unit_cases.py, c_*), and
 * that its text maps back to its token: a store migrated from the text
 * gets what a fresh analysis would give. */
Test(guards, analyser_consumers)
{
	static const struct {
		const char *fn;
		int op;
		enum guard_consumer c;
		enum guard_placement place;
	} t[] = {
		{ "key", BINARY_SUBSCR, GUARD_CONSUMER_STORE, GUARD_PLACE_VALUE },
		{ "null", LOAD_ATTR, GUARD_CONSUMER_RETURN, GUARD_PLACE_VALUE },
		{ "c_store_attr", LOAD_ATTR, GUARD_CONSUMER_STORE_ATTR, GUARD_PLACE_VALUE },
		{ "c_store_item", LOAD_ATTR, GUARD_CONSUMER_STORE_ITEM, GUARD_PLACE_VALUE },
		{ "c_yield", LOAD_ATTR, GUARD_CONSUMER_YIELD, GUARD_PLACE_VALUE },
		{ "c_call_arg", LOAD_ATTR, GUARD_CONSUMER_CALL_ARG, GUARD_PLACE_VALUE },
		{ "c_discard", LOAD_ATTR, GUARD_CONSUMER_DISCARD, GUARD_PLACE_VALUE },
		{ "c_for_loop", LOAD_ATTR, GUARD_CONSUMER_FOR_LOOP, GUARD_PLACE_SKIP },
		{ "c_unpack", LOAD_ATTR, GUARD_CONSUMER_UNPACK, GUARD_PLACE_STATEMENT },
		{ "c_skip_store", STORE_ATTR, GUARD_CONSUMER_SKIPPED, GUARD_PLACE_SKIP },
		{ "c_skip_delete", DELETE_ATTR, GUARD_CONSUMER_SKIPPED, GUARD_PLACE_SKIP },
		{ "c_build", LOAD_ATTR, GUARD_CONSUMER_BUILD, GUARD_PLACE_VALUE },
		{ "c_compare", LOAD_ATTR, GUARD_CONSUMER_COMPARE, GUARD_PLACE_VALUE },
		{ "c_identity", LOAD_ATTR, GUARD_CONSUMER_IDENTITY, GUARD_PLACE_VALUE },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct guard_decision d;

		if (!strcmp(t[i].fn, "key"))
			d = decide("key", BINARY_SUBSCR, 0, "KeyError", "'timeout'");
		else
			d = decide(t[i].fn, t[i].op, 0, "AttributeError",
				   "'NoneType' object has no attribute 'name'");
		cr_assert_neq(d.kind, GUARD_NONE, "%s: %s", t[i].fn, d.reason);
		cr_assert_eq(d.consumer_kind, t[i].c, "%s: %s (\"%s\")", t[i].fn,
			     guard_consumer__name(d.consumer_kind), d.consumer);
		cr_assert_eq(d.placement, t[i].place, "%s: %s", t[i].fn,
			     guard_placement__name(d.placement));
		cr_assert_eq(guard_consumer__of_text(d.consumer), d.consumer_kind, "%s: \"%s\"",
			     t[i].fn, d.consumer);
	}
	/* A redirect's own consumer, and an opcode named by the text. */
	for (size_t i = 0; i < NKIND_CASES; i++) {
		const struct kind_case *kc = &kind_cases[i];
		struct guard_decision d = decide(kc->fn, kc->op, kc->nth, kc->exc, kc->msg);

		cr_assert_eq(guard_consumer__of_text(d.consumer), d.consumer_kind, "%s: \"%s\"",
			     guard_kind__name(d.kind), d.consumer);
		if (guard_kind__info(d.kind)->redirect)
			cr_assert_eq(d.consumer_kind, GUARD_CONSUMER_HELPER);
	}
	struct guard_decision d = decide("coerce", PRECALL, 0, "ValueError", "invalid literal");
	cr_assert_eq(d.consumer_kind, GUARD_CONSUMER_OPCODE);
	cr_assert_str_eq(d.consumer, "BINARY_OP");
}
