/* heal: the stored decision again, from the live original: a spec keeps
 * the guard kind, anchor and window fingerprint, never the exception, so
 * the crashes that give each kind are tried in turn. Used by loading
 * (heal_spec__redecide) and by `suture-audit explain`. */
#include "heal/heal-priv.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct candidate {
	const char *exc, *msg;
};

/* Crashes that give each guard kind (rewrite/analyse.c's classification). */
static size_t candidates_for(enum guard_kind k, struct candidate *c)
{
	switch (k) {
	case GUARD_NULL:
		c[0] = (struct candidate){ "AttributeError", "'NoneType' object has no attribute 'x'" };
		return 1;
	case GUARD_INDEX: c[0] = (struct candidate){ "IndexError", "index out of range" }; return 1;
	case GUARD_KEY: c[0] = (struct candidate){ "KeyError", "'key'" }; return 1;
	case GUARD_SUBSCRIPT:
		c[0] = (struct candidate){ "TypeError", "'NoneType' object is not subscriptable" };
		return 1;
	case GUARD_CHAIN_SUBSCRIPT:
		c[0] = (struct candidate){ "KeyError", "'key'" };
		c[1] = (struct candidate){ "IndexError", "index out of range" };
		c[2] = (struct candidate){ "TypeError", "'NoneType' object is not subscriptable" };
		return 3;
	case GUARD_TYPE_COERCION:
		c[0] = (struct candidate){ "ValueError", "invalid literal" };
		c[1] = (struct candidate){ "TypeError", "argument must be a string or a number" };
		return 2;
	case GUARD_DIVISION: c[0] = (struct candidate){ "ZeroDivisionError", "division by zero" }; return 1;
	case GUARD_STR_COERCE:
		c[0] = (struct candidate){ "TypeError", "can only concatenate str (not \"int\") to str" };
		c[1] = (struct candidate){ "TypeError", "unsupported operand type(s) for +: 'int' and 'str'" };
		return 2;
	case GUARD_FILE:
		c[0] = (struct candidate){ "FileNotFoundError", "No such file or directory" };
		return 1;
	case GUARD_CALLABLE:
		c[0] = (struct candidate){ "TypeError", "'NoneType' object is not callable" };
		return 1;
	default:
		return 0;
	}
}

/* The stored decision again, from the live original. 0 with b->d, or
 * -ESTALE (why says what no longer matches). */
static int redecide(const struct heal_code *hc, const struct spec *s, struct built *b, char *why,
		    size_t cap)
{
	struct candidate cand[4];
	enum guard_kind kind = guard_kind__by_name(s->guard);
	size_t n = candidates_for(kind, cand);
	for (size_t i = 0; i < n; i++) {
		struct guard_crash c = { .unit = s->anchor, .exc_type = cand[i].exc,
					 .message = cand[i].msg, .stdlib = -1 };
		char fp[32];
		if (guard__analyse(&hc->info, &c, &b->d, NULL) || b->d.kind != kind)
			continue;
		snprintf(fp, sizeof(fp), "fnv64:%016llx", (unsigned long long)b->d.fingerprint);
		if (s->window[0] && strcmp(fp, s->window) != 0)
			continue;
		snprintf(b->fp, sizeof(b->fp), "%s", fp);
		return 0;
	}
	snprintf(why, cap, "no %s decided at unit %u any more", s->guard, s->anchor);
	return -ESTALE;
}

int heal_spec__redecide(const struct rewrite_code_info *info, const char *guard, uint32_t anchor,
			const char *window, struct guard_decision *d)
{
	struct heal_code hc = { .info = *info };
	struct spec s = { .guard = (char *)guard, .anchor = anchor, .window = (char *)window };
	struct built b;
	char why[128];
	memset(&b, 0, sizeof(b));
	int err = redecide(&hc, &s, &b, why, sizeof(why));
	if (!err)
		*d = b.d;
	return err;
}
