/* heal: where a line of an old source text is in the edited text (the
 * restart of a held crash: docs/design.md §14). Pure: two texts in, a line
 * number out.
 *
 * The edit is the region between the longest common run of leading lines
 * and the longest common run of trailing lines. A line above it keeps its
 * number, a line below it moves by the difference in length, and a line
 * inside it keeps its distance from the region's start (the statement the
 * user rewrote in place), clamped to the new region: that is where the
 * crashing statement's replacement starts. Lines inserted right above it
 * (a check added before the failing statement) are where it starts too. */
#include "heal/heal-priv.h"

#include <stdlib.h>
#include <string.h>

/* Lines of t[0..n): their starts in v (cap entries), the count. */
static size_t split(const char *t, size_t n, const char **v, size_t *len, size_t cap)
{
	size_t k = 0;
	const char *p = t, *end = t + n;
	while (p < end && k < cap) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl : end;
		v[k] = p;
		len[k++] = (size_t)(stop - p);
		p = nl ? nl + 1 : end;
	}
	return k;
}

static int same(const char *a, size_t la, const char *b, size_t lb)
{
	return la == lb && memcmp(a, b, la) == 0;
}

int heal_linemap__map(const char *old, size_t old_len, const char *now, size_t now_len, int line)
{
	enum { CAP = 1 << 20 };
	const char **a = malloc(CAP * sizeof *a), **b = malloc(CAP * sizeof *b);
	size_t *la = malloc(CAP * sizeof *la), *lb = malloc(CAP * sizeof *lb);
	int r = -1;
	if (!a || !b || !la || !lb || line < 1)
		goto out;
	size_t na = split(old, old_len, a, la, CAP), nb = split(now, now_len, b, lb, CAP);
	if ((size_t)line > na)
		goto out;
	size_t p = 0, s = 0;
	while (p < na && p < nb && same(a[p], la[p], b[p], lb[p]))
		p++;
	while (s < na - p && s < nb - p &&
	       same(a[na - 1 - s], la[na - 1 - s], b[nb - 1 - s], lb[nb - 1 - s]))
		s++;
	if ((size_t)line <= p) {
		r = line;
	} else if ((size_t)line == p + 1 && na - s == p) {
		r = line; /* lines inserted right above it: the restart runs them */
	} else if ((size_t)line > na - s) {
		r = (int)((size_t)line + nb - na);
	} else if (nb - s > p) { /* inside the edit, which left lines there */
		size_t at = p + 1 + ((size_t)line - (p + 1));
		r = (int)(at > nb - s ? nb - s : at);
	}
out:
	free(a);
	free(b);
	free(la);
	free(lb);
	return r;
}
