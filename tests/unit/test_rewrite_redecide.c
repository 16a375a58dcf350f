/* Re-decision (rewrite/redecide.c): a spec (kind, anchor, fingerprint)
 * finds its decision again on the same code, for every kind; the crashes
 * the classifier heals and the samples re-decision tries are inverses of
 * each other over every instruction of the test code objects. */
#include "test_rewrite_cases.h"

#include <errno.h>

TestSuite(redecide, .init = cases_open, .fini = cases_close);

static struct guard_spec spec_of(const struct guard_decision *d, char *window, size_t len)
{
	guard_fingerprint__format(d->fingerprint, window, len);
	return (struct guard_spec){ .guard = guard_kind__name(d->kind),
				    .anchor = d->anchor_unit,
				    .window = window };
}

static void assert_same_decision(const struct guard_decision *a, const struct guard_decision *b)
{
	cr_assert_eq(a->kind, b->kind);
	cr_assert_eq(a->fingerprint, b->fingerprint);
	cr_assert_eq(a->anchor_unit, b->anchor_unit);
	cr_assert_str_eq(a->exc_type, b->exc_type);
	cr_assert_str_eq(a->target, b->target);
	cr_assert_eq(a->placement, b->placement);
	cr_assert_eq(a->consumer_kind, b->consumer_kind);
	cr_assert_eq(a->resume, b->resume);
}

Test(redecide, every_kind_round_trips)
{
	for (size_t i = 0; i < NKIND_CASES; i++) {
		const struct kind_case *kc = &kind_cases[i];
		struct guard_decision d = decide(kc->fn, kc->op, kc->nth, kc->exc, kc->msg), again;
		struct rewrite_diag diag = { 0 };
		char window[32];
		struct guard_spec s = spec_of(&d, window, sizeof(window));

		cr_assert_eq(d.kind, kc->kind, "%s", d.reason);
		cr_assert_eq(guard_spec__redecide(code_named(kc->fn), &s, &again, &diag), 0,
			     "%s: %s", s.guard, diag.msg);
		assert_same_decision(&d, &again);
		/* Without a window: the first sample that decides the kind. */
		s.window = NULL;
		cr_assert_eq(guard_spec__redecide(code_named(kc->fn), &s, &again, NULL), 0, "%s",
			     s.guard);
		cr_assert_eq(again.kind, kc->kind);
	}
}

Test(redecide, mismatches_are_stale)
{
	struct guard_decision d = decide("key", BINARY_SUBSCR, 0, "KeyError", "'timeout'"), again;
	struct rewrite_diag diag = { 0 };
	char window[32];
	struct guard_spec s = spec_of(&d, window, sizeof(window));

	/* Another fingerprint (the IndexError one at the same place). */
	s.window = "fnv64:0123456789abcdef";
	cr_assert_eq(guard_spec__redecide(code_named("key"), &s, &again, &diag), -ESTALE);
	cr_assert(strncmp(diag.msg, "no key_guard decided at unit ", 29) == 0, "%s", diag.msg);
	s.window = window;
	/* The same spec on another function. */
	cr_assert_eq(guard_spec__redecide(code_named("chain"), &s, &again, NULL), -ESTALE);
	/* A kind that does not arise there. */
	s.guard = "division_guard";
	s.window = NULL;
	cr_assert_eq(guard_spec__redecide(code_named("key"), &s, &again, NULL), -ESTALE);
	s.guard = "frob_guard";
	cr_assert_eq(guard_spec__redecide(code_named("key"), &s, &again, &diag), -EINVAL);
	cr_assert(strstr(diag.msg, "unknown guard kind \"frob_guard\""), "%s", diag.msg);
	s.guard = "probe";
	cr_assert_eq(guard_spec__redecide(code_named("key"), &s, &again, NULL), -EINVAL);
}

/* Every sample crash of every kind at every instruction of every test code
 * object: whatever the classifier decides is a kind that answers that
 * exception type (the table covers the classifier), and its spec is
 * decided again identically (the samples cover the table); its consumer
 * text maps back to its token. */
Test(redecide, classifier_and_samples_are_inverses)
{
	size_t decided = 0;
	unsigned kinds = 0;

	for (size_t e = 0; e < rewrite_dump__count(dump); e++) {
		const struct rewrite_code_info *info = &rewrite_dump__entry(dump, e)->info;
		struct rewrite_code *c = NULL;

		cr_assert_eq(rewrite_code__decode(info, &c, NULL), 0);
		for (size_t n = 0; n < rewrite_code__ninstrs(c); n++) {
			uint32_t unit = rewrite_code__instrs(c)[n].offset;

			for (int kind = GUARD_KIND_FIRST; kind <= GUARD_KIND_LAST; kind++) {
				const struct guard_kind_info *k = guard_kind__info(kind);

				for (size_t i = 0; i < k->nsamples; i++) {
					struct guard_crash crash = {
						.unit = unit,
						.exc_type = k->samples[i].exc_type,
						.message = k->samples[i].message,
						.stdlib = 0
					};
					struct guard_decision d, again;
					struct rewrite_diag diag = { 0 };
					char window[32];

					cr_assert_eq(guard__analyse(info, &crash, &d, NULL), 0);
					if (d.kind == GUARD_NONE)
						continue;
					const struct guard_kind_info *got = guard_kind__info(
						d.kind);
					bool answers = false;
					for (size_t x = 0; x < got->nexc; x++)
						answers |= !strcmp(got->exc[x], crash.exc_type);
					cr_assert(answers,
						  "%s at unit %u of %s: %s does not answer %s",
						  got->name, unit, info->name, got->name,
						  crash.exc_type);
					struct guard_spec s = spec_of(&d, window, sizeof(window));
					cr_assert_eq(guard_spec__redecide(info, &s, &again, &diag),
						     0, "%s at unit %u of %s (%s): %s", got->name,
						     unit, info->name, crash.exc_type, diag.msg);
					assert_same_decision(&d, &again);
					cr_assert_eq(guard_consumer__of_text(d.consumer),
						     d.consumer_kind, "%s: \"%s\"", info->name,
						     d.consumer);
					decided++;
					kinds |= 1u << d.kind;
				}
			}
		}
		rewrite_code__free(c);
	}
	cr_assert_gt(decided, 30);
	for (int kind = GUARD_KIND_FIRST; kind <= GUARD_KIND_LAST; kind++)
		cr_assert(kinds & (1u << kind), "%s never decided", guard_kind__name(kind));
}
