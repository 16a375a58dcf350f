/* rewrite/guards.c: the guard vocabulary as data (docs/formats/guards.md).
 *
 * One table says, for each guard kind, its name (the token the store
 * keeps and the agent reports), the exception types it answers, whether it
 * is a handler or a redirect, the helper it calls, the placements it may
 * be decided with, the crashes the classifier turns into it (what
 * re-decision tries) and the text suture-audit shows. A second table does
 * the same for consumers (enum guard_consumer). The synthesizer, the
 * store's validation, re-decision and suture-audit all read these tables.
 *
 * Pure data and lookups: nothing here calls the rest of rewrite/, so the
 * store links this file alone out of the archive (Makefile, LIBDEPS_store).
 */
#include "rewrite/guard.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const struct guard_kind_info kinds[] = {
	{
		.kind = GUARD_NULL,
		.name = "null_guard",
		.nexc = 1,
		.exc = { "AttributeError" },
		.helper = "match_none_attr",
		.placements = GUARD_PLACES_HANDLER,
		.nsamples = 1,
		.samples = { { "AttributeError", "'NoneType' object has no attribute 'x'" } },
		.answers = "AttributeError (or TypeError) on None",
		.when = "a value in it is None, so using it failed",
		.fix = "decide what None means here: check for it before use, or make sure it is set",
	},
	{
		.kind = GUARD_INDEX,
		.name = "index_guard",
		.nexc = 1,
		.exc = { "IndexError" },
		.helper = "match_here",
		.placements = GUARD_PLACES_HANDLER,
		.nsamples = 1,
		.samples = { { "IndexError", "index out of range" } },
		.answers = "IndexError",
		.when = "the index is past the end of the sequence",
		.fix = "check the length first, or handle the empty/short case explicitly",
	},
	{
		.kind = GUARD_KEY,
		.name = "key_guard",
		.nexc = 1,
		.exc = { "KeyError" },
		.helper = "match_here",
		.placements = GUARD_PLACES_HANDLER,
		.nsamples = 1,
		.samples = { { "KeyError", "'key'" } },
		.answers = "KeyError",
		.when = "the key is missing from the mapping",
		.fix = "use .get() with a real default, or make sure the key is always present",
	},
	{
		.kind = GUARD_SUBSCRIPT,
		.name = "subscript_guard",
		.nexc = 1,
		.exc = { "TypeError" },
		.helper = "match_none_subscript",
		.placements = GUARD_PLACES_HANDLER,
		.nsamples = 1,
		.samples = { { "TypeError", "'NoneType' object is not subscriptable" } },
		.answers = "TypeError (object is not subscriptable)",
		.when = "the object subscripted is None or not a container",
		.fix = "check the object before indexing it",
	},
	{
		.kind = GUARD_CHAIN_SUBSCRIPT,
		.name = "chain_subscript_guard",
		.nexc = 3,
		.exc = { "KeyError", "IndexError", "TypeError" },
		.helper = "match_chain",
		.placements = GUARD_PLACES_HANDLER,
		.nsamples = 3,
		.samples = { { "KeyError", "'key'" },
			     { "IndexError", "index out of range" },
			     { "TypeError", "'NoneType' object is not subscriptable" } },
		.answers = "KeyError, IndexError or TypeError in a chain of lookups",
		.when = "some step of the chained lookup is missing or None",
		.fix = "validate the nested structure where it is read",
	},
	{
		.kind = GUARD_TYPE_COERCION,
		.name = "type_coercion_guard",
		.nexc = 2,
		.exc = { "ValueError", "TypeError" },
		.helper = "match_here",
		.placements = GUARD_PLACES_HANDLER,
		.nsamples = 2,
		.samples = { { "ValueError", "invalid literal" },
			     { "TypeError", "argument must be a string or a number" } },
		.answers = "ValueError or TypeError from a conversion",
		.when = "the value cannot be converted (for example int('abc') or float(None))",
		.fix = "validate the input before converting it",
	},
	{
		.kind = GUARD_DIVISION,
		.name = "division_guard",
		.nexc = 1,
		.exc = { "ZeroDivisionError" },
		.helper = "match_here",
		.placements = GUARD_PLACES_HANDLER,
		.nsamples = 1,
		.samples = { { "ZeroDivisionError", "division by zero" } },
		.answers = "ZeroDivisionError",
		.when = "the divisor is zero",
		.fix = "handle the zero case explicitly",
	},
	{
		.kind = GUARD_STR_COERCE,
		.name = "str_coerce_guard",
		.redirect = true,
		.nexc = 1,
		.exc = { "TypeError" },
		.helper = "str_coerce",
		.helper_inplace = "str_coerce_inplace",
		.placements = GUARD_PLACES_REDIRECT,
		.nsamples = 2,
		.samples = { { "TypeError", "can only concatenate str (not \"int\") to str" },
			     { "TypeError",
			       "unsupported operand type(s) for +: 'int' and 'str'" } },
		.answers = "TypeError (str combined with a non-str)",
		.when = "a str is combined with a value of another type",
		.fix = "convert explicitly (str(), f-strings)",
	},
	{
		.kind = GUARD_FILE,
		.name = "file_guard",
		.redirect = true,
		.nexc = 1,
		.exc = { "FileNotFoundError" },
		.helper = "open_or_empty",
		.placements = GUARD_PLACES_REDIRECT,
		.nsamples = 1,
		.samples = { { "FileNotFoundError", "No such file or directory" } },
		.answers = "FileNotFoundError",
		.when = "the file does not exist",
		.fix = "create the file, fix its path, or handle its absence",
	},
	{
		.kind = GUARD_CALLABLE,
		.name = "callable_guard",
		.nexc = 1,
		.exc = { "TypeError" },
		.helper = "match_none_call",
		.placements = GUARD_PLACES_HANDLER,
		.nsamples = 1,
		.samples = { { "TypeError", "'NoneType' object is not callable" } },
		.answers = "TypeError ('NoneType' object is not callable)",
		.when = "the thing called is None",
		.fix = "make sure the callable is set before it is called",
	},
};
_Static_assert(sizeof(kinds) / sizeof(kinds[0]) == GUARD_KIND_LAST - GUARD_KIND_FIRST + 1,
	       "one row per healing guard kind");

const struct guard_kind_info *guard_kind__info(enum guard_kind kind)
{
	if (kind < GUARD_KIND_FIRST || kind > GUARD_KIND_LAST)
		return NULL;
	return &kinds[kind - GUARD_KIND_FIRST];
}

const char *guard_kind__name(enum guard_kind kind)
{
	const struct guard_kind_info *k = guard_kind__info(kind);

	if (k)
		return k->name;
	return kind == GUARD_NONE ? "none" : kind == GUARD_PROBE ? "probe" : "?";
}

enum guard_kind guard_kind__by_name(const char *name)
{
	for (size_t i = 0; name && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(name, kinds[i].name) == 0)
			return kinds[i].kind;
	if (name && strcmp(name, "probe") == 0)
		return GUARD_PROBE;
	return GUARD_NONE;
}

static const char *const placement_names[GUARD_PLACEMENT_COUNT] = {
	[GUARD_PLACE_VALUE] = "value",
	[GUARD_PLACE_STATEMENT] = "statement",
	[GUARD_PLACE_SKIP] = "skip",
	[GUARD_PLACE_REDIRECT] = "redirect",
};

const char *guard_placement__name(enum guard_placement p)
{
	return (unsigned)p < GUARD_PLACEMENT_COUNT ? placement_names[p] : "?";
}

int guard_placement__by_name(const char *name)
{
	for (int p = 0; name && p < GUARD_PLACEMENT_COUNT; p++)
		if (strcmp(name, placement_names[p]) == 0)
			return p;
	return -EINVAL;
}

/* ---- consumers ----------------------------------------------------------- */

struct consumer_row {
	const char *token;
	const char *explain;
};

static const struct consumer_row consumers[GUARD_CONSUMER_COUNT] = {
	[GUARD_CONSUMER_UNKNOWN] = { "unknown", NULL },
	[GUARD_CONSUMER_STORE] = { "store",
				   "The value is assigned to a variable: storing accepts any value, so the "
				   "fallback is safe at this instruction; code that later uses the variable "
				   "receives the fallback and must cope with it." },
	[GUARD_CONSUMER_STORE_ATTR] = { "store-attr",
					"The value is stored in an attribute: storing accepts any value; code that "
					"later reads the attribute receives the fallback and must cope with it." },
	[GUARD_CONSUMER_STORE_ITEM] = { "store-item",
					"The value is stored into a container item: storing accepts any value; "
					"readers of the container see the fallback." },
	[GUARD_CONSUMER_RETURN] = { "return",
				    "The value is returned: the caller receives the fallback instead, and must "
				    "cope with it." },
	[GUARD_CONSUMER_YIELD] = { "yield",
				   "The value is yielded: the consumer of the generator receives the fallback." },
	[GUARD_CONSUMER_CALL_ARG] = { "call-arg",
				      "The value is passed as an argument: the callee receives the fallback and "
				      "must accept it." },
	[GUARD_CONSUMER_DISCARD] = { "discard",
				     "The value was going to be discarded (an expression statement): skipping it "
				     "changes nothing else." },
	[GUARD_CONSUMER_FOR_LOOP] = { "for-loop",
				      "The value was the iterable of a for loop: the loop is skipped, as if it "
				      "were empty." },
	[GUARD_CONSUMER_UNPACK] = { "unpack",
				    "The value was unpacked into several targets: each target gets None." },
	[GUARD_CONSUMER_SKIPPED] = { "skipped",
				     "The failing operation was itself a store or delete: it is skipped, so the "
				     "old value (or no value) stays." },
	[GUARD_CONSUMER_HELPER] = { "helper",
				    "The helper computes the result; whatever used the original result uses it "
				    "unchanged." },
	[GUARD_CONSUMER_BUILD] = { "build",
				   "The value goes into a container being built (list, tuple, dict, set): "
				   "building accepts any value; readers of the container see the fallback." },
	[GUARD_CONSUMER_COMPARE] = { "compare",
				     "The value is compared: == and != accept any value, so the fallback is safe "
				     "there (ordering comparisons may not be)." },
	[GUARD_CONSUMER_IDENTITY] = { "identity",
				      "The value is compared with is / is not: that accepts any value, so the "
				      "fallback is safe there." },
	[GUARD_CONSUMER_STATEMENT] = { "statement",
				       "The value fed an operation that would fail on the fallback too, so the "
				       "whole statement is guarded: an assignment gets the fallback, an augmented "
				       "assignment or expression statement is skipped, a return returns the "
				       "fallback." },
	[GUARD_CONSUMER_OPCODE] = { "opcode", NULL },
};

const char *guard_consumer__name(enum guard_consumer c)
{
	return (unsigned)c < GUARD_CONSUMER_COUNT ? consumers[c].token : "?";
}

int guard_consumer__by_name(const char *name)
{
	for (int c = 0; name && c < GUARD_CONSUMER_COUNT; c++)
		if (strcmp(name, consumers[c].token) == 0)
			return c;
	return -EINVAL;
}

const char *guard_consumer__explain(enum guard_consumer c)
{
	return (unsigned)c < GUARD_CONSUMER_COUNT ? consumers[c].explain : NULL;
}

/* The free texts, by prefix, first match wins (so "store attribute"
 * before "store"). The first group is what rewrite/analyse.c writes
 * (tests/unit/test_rewrite_guards.c and test_rewrite_redecide.c check that
 * every text it writes maps back to the token it decided); the second the forms older
 * suture-audit releases also recognised. */
static const struct {
	const char *prefix;
	enum guard_consumer c;
} text_prefixes[] = {
	{ "store attribute", GUARD_CONSUMER_STORE_ATTR },
	{ "store item", GUARD_CONSUMER_STORE_ITEM },
	{ "store", GUARD_CONSUMER_STORE },
	{ "return", GUARD_CONSUMER_RETURN },
	{ "yield", GUARD_CONSUMER_YIELD },
	{ "call argument", GUARD_CONSUMER_CALL_ARG },
	{ "expression statement", GUARD_CONSUMER_DISCARD },
	{ "for loop", GUARD_CONSUMER_FOR_LOOP },
	{ "unpacking assignment", GUARD_CONSUMER_UNPACK },
	{ "none (the", GUARD_CONSUMER_SKIPPED },
	{ "the instruction's own consumer", GUARD_CONSUMER_HELPER },
	{ "BUILD_", GUARD_CONSUMER_BUILD },
	{ "COMPARE_OP", GUARD_CONSUMER_COMPARE },
	{ "IS_OP", GUARD_CONSUMER_IDENTITY },
	/* Older forms. */
	{ "argument", GUARD_CONSUMER_CALL_ARG },
	{ "operand", GUARD_CONSUMER_HELPER },
	{ "container", GUARD_CONSUMER_BUILD },
	{ "compare", GUARD_CONSUMER_COMPARE },
	{ "statement", GUARD_CONSUMER_STATEMENT },
};

/* An opcode name as rewrite_opcode__name() gives it: capitals, digits and
 * underscores, starting with a capital. */
static bool is_opcode_name(const char *t)
{
	if (*t < 'A' || *t > 'Z')
		return false;
	for (; *t; t++)
		if (!((*t >= 'A' && *t <= 'Z') || (*t >= '0' && *t <= '9') || *t == '_'))
			return false;
	return true;
}

enum guard_consumer guard_consumer__of_text(const char *text)
{
	if (!text || !*text)
		return GUARD_CONSUMER_UNKNOWN;
	for (size_t i = 0; i < sizeof(text_prefixes) / sizeof(text_prefixes[0]); i++)
		if (strncmp(text, text_prefixes[i].prefix, strlen(text_prefixes[i].prefix)) == 0)
			return text_prefixes[i].c;
	return is_opcode_name(text) ? GUARD_CONSUMER_OPCODE : GUARD_CONSUMER_UNKNOWN;
}

void guard_fingerprint__format(uint64_t hash, char *buf, size_t len)
{
	snprintf(buf, len, "fnv64:%016llx", (unsigned long long)hash);
}
