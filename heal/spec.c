/* heal: stored specs as the loader uses them: copied out of the store,
 * and matched to the functions met while walking the target. */
#include "heal/heal-priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void heal_specs__free(struct spec *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].guard);
		free(v[i].qualname);
		free(v[i].file);
		free(v[i].target);
		free(v[i].fallback);
		free(v[i].code_id);
		free(v[i].window);
	}
	free(v);
}

static int spec__cmp(const void *a, const void *b)
{
	const struct spec *x = a, *y = b;
	int c = strcmp(x->qualname, y->qualname);
	return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

void heal_specs__range(const struct spec *v, size_t nv, const char *qualname, size_t *lo,
		       size_t *hi)
{
	size_t a = 0, b = nv;
	while (a < b) { /* the first not below qualname */
		size_t m = a + (b - a) / 2;
		if (strcmp(v[m].qualname, qualname) < 0)
			a = m + 1;
		else
			b = m;
	}
	*lo = a;
	while (a < nv && strcmp(v[a].qualname, qualname) == 0)
		a++;
	*hi = a;
}

int heal_specs__from(const struct store *st, const char *program, const char *python_version,
		     struct spec **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	struct store_query q = { .program = program, .python_version = python_version };
	struct store_iter it;
	size_t cap = store__count(st) + 1;
	struct spec *v = calloc(cap, sizeof(*v));
	if (!v)
		return -ENOMEM;
	store_iter__init(&it, st, &q);
	for (const struct store_patch *p; (p = store_iter__next(&it)) && *n < cap;) {
		enum store_verdict vd = store_patch__verdict(p, &q);
		if (vd == STORE_V_OTHER_PYTHON)
			continue;
		struct spec *s = &v[(*n)++];
		s->name = strdup(p->name);
		s->guard = strdup(p->guard);
		s->qualname = strdup(p->qualname);
		s->file = strdup(p->file);
		s->target = strdup(p->target);
		s->fallback = strdup(p->fallback);
		s->code_id = strdup(p->code_id ? p->code_id : "");
		s->window = strdup(p->anchor_window ? p->anchor_window : "");
		s->anchor = p->anchor_offset;
		s->line = p->line;
		s->first_line = p->first_line;
		s->verdict = vd;
		s->expires = store_patch__expires(p);
		s->seq = *n - 1;
		if (!s->name || !s->guard || !s->qualname || !s->file || !s->target ||
		    !s->fallback || !s->code_id || !s->window) {
			heal_specs__free(v, *n);
			*n = 0;
			return -ENOMEM;
		}
	}
	/* Per function met in a walk, a binary search instead of a scan of
	 * every spec: the walk of a module of N functions with N patches
	 * compared N^2 names (docs/performance.md, "start-up, third pass"). */
	qsort(v, *n, sizeof(*v), spec__cmp);
	*out = v;
	return 0;
}

bool heal_spec__for(const struct spec *s, const char *qualname, const char *file)
{
	return !s->done && strcmp(s->qualname, qualname) == 0 && strcmp(s->file, file) == 0;
}

bool heal_spec__applies(const struct spec *s, const char *qualname, const char *file,
			const char *code_id)
{
	return heal_spec__for(s, qualname, file) && s->verdict != STORE_V_STALE &&
	       strcmp(s->code_id, code_id) == 0;
}

bool heal_specs__wanted(const struct spec *v, size_t nv, const char *qualname, size_t cap)
{
	size_t n = strlen(qualname);
	if (n + 4 >= cap)
		return true; /* maybe cut short (at a UTF-8 boundary): look at it whole */
	for (size_t i = 0; i < nv; i++) {
		const struct spec *s = &v[i];
		if (!s->done && strncmp(s->qualname, qualname, n) == 0 &&
		    (s->qualname[n] == 0 || s->qualname[n] == '.'))
			return true;
	}
	return false;
}
