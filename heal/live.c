/* heal: stored patches into a process that runs already (suture-attach
 * --watch): the live walk over sys.modules, the classes of the program's
 * modules and the functions decorators wrapped (__wrapped__). Each
 * function found goes through heal__load_node (load.c) like a module's
 * code at boot. */
#include "heal/heal-priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CLASS_DEPTH 8 /* class statements nested in one another */
#define MAX_CLASSES 4096  /* classes walked in one load */
#define MAX_ATTRS 4096    /* entries of one module or class dict */

/* One heal__load_live walk over the program's modules. */
struct live_walk {
	struct spec *v;
	size_t nv;
	char modname[256]; /* the module being walked: its classes' __module__ */
	uint64_t *classes; /* classes walked already (aliases, cycles) */
	size_t nclasses;
};

#define MAX_WRAPPED 4

/* The stored patches of one function object: its code and the code nested
 * in it (comprehensions, lambdas, inner functions), then the function a
 * decorator wrapped, when functools.wraps left it in the wrapper's
 * __wrapped__ (MAX_WRAPPED deep). Not a function: 0. The agent installs a
 * patch on every function sharing the code object, so bound methods made
 * before the patch, aliases and the wrapper's own reference follow. */
static int load_func(struct heal *h, struct live_walk *w, uint64_t fn)
{
	const struct inspect_offsets *o = h->r->off;
	int rc = 0;
	for (int depth = 0; depth <= MAX_WRAPPED && fn && rc == 0; depth++) {
		char type[32], qualname[256];
		uint64_t code, qn, dict = 0, next = 0;
		struct tree t = { 0 };
		if (inspect_value__type_name(h->r, fn, type, sizeof(type)) ||
		    strcmp(type, "function") ||
		    h->r->read(h->r->ctx, fn + (uint64_t)o->func_code, &code, 8))
			break;
		/* The code's own name (a wrapper's __qualname__ is the wrapped one's). */
		if (h->r->read(h->r->ctx, code + (uint64_t)o->co_qualname, &qn, 8) ||
		    inspect_str__read(h->r, qn, qualname, sizeof(qualname)) ||
		    heal_specs__wanted(w->v, w->nv, qualname, sizeof(qualname))) {
			/* What a patch is made from is read live, not from pages
			 * cached while the process ran. */
			heal_pages__drop(&h->pages);
			h->pages.on = false;
			if (heal__tree_walk(h, &t, code, 0) == 0)
				for (size_t k = 0; k < t.n && rc == 0; k++)
					rc = heal__load_node(h, w->v, w->nv, code, fn, &t.v[k]);
			heal__tree_free(&t);
			heal_pages__drop(&h->pages);
			h->pages.on = true;
		}
		if (o->func_dict < 0 ||
		    h->r->read(h->r->ctx, fn + (uint64_t)o->func_dict, &dict, 8) || !dict ||
		    inspect_dict__get(h->r, dict, "__wrapped__", &next) || next == fn)
			break;
		fn = next;
	}
	return rc;
}

static bool str_is(struct heal *h, uint64_t obj, const char *want)
{
	char buf[256];
	return inspect_str__read(h->r, obj, buf, sizeof(buf)) == 0 && strcmp(buf, want) == 0;
}

/* A class of the module being walked (its __module__ says so: classes
 * imported from elsewhere are that module's), and the classes nested in
 * it: plain functions, the function inside a staticmethod or classmethod,
 * a property's getter, setter and deleter. The wrappers' slots are found
 * through their types' own member descriptors (inspect_object__member). */
static int load_class(struct heal *h, struct live_walk *w, uint64_t cls, int depth)
{
	uint64_t flags, dict, mod, *keys = NULL, *vals = NULL;
	size_t n = 0;
	int rc = 0;
	if (depth > MAX_CLASS_DEPTH || w->nclasses >= MAX_CLASSES ||
	    inspect_type__check(h->r, cls, &flags) || !(flags & INSPECT_TPFLAGS_HEAPTYPE))
		return 0;
	for (size_t i = 0; i < w->nclasses; i++)
		if (w->classes[i] == cls)
			return 0;
	w->classes[w->nclasses++] = cls;
	if (inspect_type__dict(h->r, cls, &dict) ||
	    inspect_dict__get(h->r, dict, "__module__", &mod) || !str_is(h, mod, w->modname))
		return 0;
	keys = malloc(MAX_ATTRS * sizeof(*keys));
	vals = malloc(MAX_ATTRS * sizeof(*vals));
	if (!keys || !vals || inspect_dict__items(h->r, dict, keys, vals, MAX_ATTRS, &n))
		n = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		static const char *const prop[] = { "fget", "fset", "fdel" };
		char type[32];
		uint64_t f;
		if (inspect_value__type_name(h->r, vals[i], type, sizeof(type)))
			continue;
		if (strcmp(type, "function") == 0) {
			rc = load_func(h, w, vals[i]);
		} else if (strcmp(type, "staticmethod") == 0 || strcmp(type, "classmethod") == 0) {
			if (inspect_object__member(h->r, vals[i], "__func__", &f) == 0 && f)
				rc = load_func(h, w, f);
		} else if (strcmp(type, "property") == 0) {
			for (size_t k = 0; k < 3 && rc == 0; k++)
				if (inspect_object__member(h->r, vals[i], prop[k], &f) == 0 && f)
					rc = load_func(h, w, f);
		} else if (inspect_type__check(h->r, vals[i], NULL) == 0) {
			rc = load_class(h, w, vals[i], depth + 1);
		}
	}
	free(keys);
	free(vals);
	return rc;
}

/* Stored patches into a process that runs already (suture-attach --watch):
 * the functions of the program's modules, found from sys.modules: each
 * module dict's functions, its classes' methods (plain, staticmethod,
 * classmethod, property accessors; nested classes too, MAX_CLASS_DEPTH
 * deep), the functions decorators wrapped (__wrapped__), and the code
 * nested in all of them, patched through the agent like a crash.
 *
 * The process runs meanwhile. Finding the candidates (dicts, types, the
 * names of code objects) reads through the page cache, a few pages for
 * many small objects: a page gone stale while we walk can only make us
 * miss a function or look at one for nothing. A candidate's code, which a
 * patch is made from, is read live (load_func), and the agent finds the
 * code again among the live functions before it replaces anything. */
int heal__load_live(struct heal *h)
{
	const struct inspect_offsets *o = h->r->off;
	struct live_walk w = { 0 };
	size_t n = 0;
	uint64_t *keys = NULL, *vals = NULL, *mk = NULL, *mv = NULL, modules = 0;
	int rc = 0;
	struct inspect_thread_iter it;
	struct inspect_thread th;

	if (!h->o.program || o->is_modules < 0 || o->mod_dict < 0 || o->func_code < 0)
		return 0;
	if (heal__specs_load(h, &w.v, &w.nv) || w.nv == 0)
		goto out;
	h->live = true;
	h->live_skipped = 0;
	if (inspect_threads__begin(h->ip, &it) || inspect_threads__next(&it, &th) != 1 ||
	    h->r->read(h->r->ctx, th.interp + (uint64_t)o->is_modules, &modules, 8))
		goto out;
	keys = calloc(MAX_ATTRS, 8);
	vals = calloc(MAX_ATTRS, 8);
	mk = calloc(MAX_ATTRS, 8);
	mv = calloc(MAX_ATTRS, 8);
	w.classes = calloc(MAX_CLASSES, sizeof(*w.classes));
	if (!keys || !vals || !mk || !mv || !w.classes)
		goto out;
	heal_pages__drop(&h->pages);
	h->pages.on = true;
	if (inspect_dict__items(h->r, modules, keys, vals, MAX_ATTRS, &n))
		goto out;
	for (size_t i = 0; i < n && rc == 0; i++) {
		char type[32], fname[PATH_MAX], file[PATH_MAX];
		uint64_t md = 0, f = 0, name = 0;
		size_t m = 0;
		if (inspect_value__type_name(h->r, vals[i], type, sizeof(type)) ||
		    strcmp(type, "module") ||
		    h->r->read(h->r->ctx, vals[i] + (uint64_t)o->mod_dict, &md, 8) ||
		    inspect_dict__get(h->r, md, "__file__", &f) ||
		    inspect_str__read(h->r, f, fname, sizeof(fname)))
			continue;
		heal__file_key(h, fname, file, sizeof(file));
		bool ours = false;
		for (size_t k = 0; k < w.nv && !ours; k++)
			ours = !w.v[k].done && strcmp(w.v[k].file, file) == 0;
		if (!ours || inspect_dict__items(h->r, md, mk, mv, MAX_ATTRS, &m))
			continue;
		if (inspect_dict__get(h->r, md, "__name__", &name) ||
		    inspect_str__read(h->r, name, w.modname, sizeof(w.modname)))
			w.modname[0] = 0; /* its functions still; no class can match */
		for (size_t j = 0; j < m && rc == 0; j++) {
			if (inspect_value__type_name(h->r, mv[j], type, sizeof(type)))
				continue;
			if (strcmp(type, "function") == 0)
				rc = load_func(h, &w, mv[j]);
			else if (w.modname[0] && inspect_type__check(h->r, mv[j], NULL) == 0 &&
				 o->tp_dict >= 0)
				rc = load_class(h, &w, mv[j], 0);
		}
	}
	h->pages.on = false;
	heal__specs_sweep(h, w.v, w.nv, rc);
	if (h->live_skipped)
		heal__say(
			h,
			"%u stored patch(es) not applied: the live code differs (patched in this process "
			"already, or its source changed)",
			h->live_skipped);
out:
	h->pages.on = false;
	h->live = false;
	free(keys);
	free(vals);
	free(mk);
	free(mv);
	free(w.classes);
	heal_specs__free(w.v, w.nv);
	return rc;
}
