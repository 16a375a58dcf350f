/* agent: building a patched code object and installing it (docs/design.md §8).
 *
 * The patch (docs/formats/channel.md, PATCH) names the original code object
 * by address. The address is never dereferenced as such: the agent finds
 * the code among those reachable from live function objects (and, through
 * co_consts, their nested code) and compares pointers. The new code object
 * is original.replace(co_code=..., co_exceptiontable=..., co_linetable=...,
 * co_stacksize=..., co_consts=original+appended, co_names=original+appended),
 * so everything else (names, flags, cell layout, qualname) is the original's.
 *
 * It is then assigned, through the func.__code__ setter (which resets
 * func_version, so specialized call sites re-check), to every function
 * whose code is the original: aliases, bound-method copies, functions kept
 * by decorators (__wrapped__) and callbacks all hold the same function or
 * one of several functions sharing the code. Nested code lives in the
 * parent's co_consts: each parent gets a copy whose consts point to the new
 * code, installed the same way, recursively (a lambda in a comprehension in
 * a method replaces three code objects).
 *
 * Last, frames suspended in an inlined call whose code was replaced are
 * switched to the new code (OSR, swap_frames below), so a loop that is
 * already running picks the patch up at its next iteration.
 *
 * One file over 800 lines: the registry (LIST, ROLLBACK, HITS, and the
 * reloads' entries, agent_install__record_reload) undoes what the install
 * walk does (collect, install_everywhere, swap_frames) with the same
 * walk; split, each half would export the other's internals.
 */
#include "agent/agent-py.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/helpers.h"

/* Every code object reachable from live functions, each once. */
struct codes {
	PyObject *list; /* codes, strong references */
	PyObject *seen; /* set of addresses (ints): code equality is by value */
};

static int codes__add(struct codes *c, PyObject *code)
{
	PyObject *key = PyLong_FromVoidPtr(code);
	if (!key)
		return -1;
	int r = PySet_Contains(c->seen, key);
	if (r == 0 && (PySet_Add(c->seen, key) || PyList_Append(c->list, code)))
		r = -1;
	Py_DECREF(key);
	if (r != 0)
		return r < 0 ? -1 : 0;
	PyObject *consts = ((PyCodeObject *)code)->co_consts;
	for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(consts); i++) {
		PyObject *k = PyTuple_GET_ITEM(consts, i);
		if (PyCode_Check(k) && codes__add(c, k))
			return -1;
	}
	return 0;
}

/* Appended constants, depth first: a TUPLE item is followed by its items. */
static PyObject *build_const(struct wire_const_iter *it, PyObject *builtins, char *err, size_t cap)
{
	struct wire_const c;
	int rc = wire_const_iter__next(it, &c);
	if (rc <= 0) {
		snprintf(err, cap, "agent: patch constants truncated");
		return NULL;
	}
	switch (c.kind) {
	case WIRE_CONST_NONE:
		Py_RETURN_NONE;
	case WIRE_CONST_TRUE:
		Py_RETURN_TRUE;
	case WIRE_CONST_FALSE:
		Py_RETURN_FALSE;
	case WIRE_CONST_ELLIPSIS:
		return Py_NewRef(Py_Ellipsis);
	case WIRE_CONST_INT:
		return PyLong_FromLongLong(c.i);
	case WIRE_CONST_FLOAT:
		return PyFloat_FromDouble(c.f);
	case WIRE_CONST_STR:
		return PyUnicode_DecodeUTF8((const char *)c.data, (Py_ssize_t)c.len, "strict");
	case WIRE_CONST_BYTES:
		return PyBytes_FromStringAndSize((const char *)c.data, (Py_ssize_t)c.len);
	case WIRE_CONST_BUILTIN:
	case WIRE_CONST_HELPER: {
		char name[65];
		memcpy(name, c.data, c.len); /* len <= 64, checked by the decoder */
		name[c.len] = 0;
		PyObject *o;
		if (c.kind == WIRE_CONST_HELPER) {
			o = suture_helpers__get(name);
		} else {
			o = PyObject_GetAttrString(builtins, name);
		}
		if (!o)
			snprintf(err, cap, "agent: no %s named '%s'",
				 c.kind == WIRE_CONST_HELPER ? "helper" : "builtin", name);
		return o;
	}
	case WIRE_CONST_TUPLE: {
		PyObject *t = PyTuple_New((Py_ssize_t)c.nitems);
		for (size_t i = 0; t && i < c.nitems; i++) {
			PyObject *item = build_const(it, builtins, err, cap);
			if (!item) {
				Py_CLEAR(t);
				break;
			}
			PyTuple_SET_ITEM(t, (Py_ssize_t)i, item);
		}
		return t;
	}
	}
	snprintf(err, cap, "agent: unknown constant kind %d", (int)c.kind);
	return NULL;
}

static PyObject *concat(PyObject *head, PyObject *tail_list)
{
	PyObject *tail = PyList_AsTuple(tail_list);
	PyObject *r = tail ? PySequence_Concat(head, tail) : NULL;
	Py_XDECREF(tail);
	return r;
}

/* kw[key] = value, consuming value (which may be NULL: an error). */
static int set_new(PyObject *kw, const char *key, PyObject *value)
{
	int rc = value ? PyDict_SetItemString(kw, key, value) : -1;
	Py_XDECREF(value);
	return rc;
}

/* The builtins module, as sys.modules has it (new reference): no import
 * machinery, whose checks of an imported module were a fifth of a boot
 * install's time (docs/performance.md, "start-up, sixth pass"); imported
 * only when sys.modules has none. */
static PyObject *builtins_module(void)
{
	PyObject *name = PyUnicode_InternFromString("builtins");
	PyObject *m = name ? PyImport_GetModule(name) : NULL;
	Py_XDECREF(name);
	if (!m && !PyErr_Occurred())
		m = PyImport_ImportModule("builtins");
	return m;
}

PyObject *agent_install__build_code(PyCodeObject *old, const struct wire_patch *p, char *err,
				    size_t cap)
{
	PyObject *builtins = NULL, *consts = NULL, *names = NULL, *kw = NULL, *args = NULL;
	PyObject *replace = NULL, *newc = NULL, *o;
	struct wire_const_iter ci;
	struct wire_name_iter ni;
	const uint8_t *s;
	size_t len;
	int rc;

	if (!(builtins = builtins_module()) || !(consts = PyList_New(0)) ||
	    !(names = PyList_New(0)))
		goto out;
	wire_const_iter__init(&ci, p);
	for (size_t i = 0; i < p->nconsts; i++) {
		if (!(o = build_const(&ci, builtins, err, cap)))
			goto out;
		rc = PyList_Append(consts, o);
		Py_DECREF(o);
		if (rc)
			goto out;
	}
	wire_name_iter__init(&ni, p);
	while ((rc = wire_name_iter__next(&ni, &s, &len)) > 0) {
		if (!(o = PyUnicode_DecodeUTF8((const char *)s, (Py_ssize_t)len, "strict")))
			goto out;
		PyUnicode_InternInPlace(&o);
		rc = PyList_Append(names, o);
		Py_DECREF(o);
		if (rc)
			goto out;
	}
	if (!(kw = PyDict_New()) || !(args = PyTuple_New(0)))
		goto out;
	if (set_new(kw, "co_code",
		    PyBytes_FromStringAndSize((const char *)p->code, (Py_ssize_t)p->code_len)) ||
	    set_new(kw, "co_exceptiontable",
		    PyBytes_FromStringAndSize((const char *)p->exctable,
					      (Py_ssize_t)p->exctable_len)) ||
	    set_new(kw, "co_linetable",
		    PyBytes_FromStringAndSize((const char *)p->linetable,
					      (Py_ssize_t)p->linetable_len)) ||
	    set_new(kw, "co_stacksize", PyLong_FromUnsignedLong(p->stacksize)) ||
	    set_new(kw, "co_consts", concat(old->co_consts, consts)) ||
	    set_new(kw, "co_names", concat(old->co_names, names)))
		goto out;
	if (!(replace = PyObject_GetAttrString((PyObject *)old, "replace")))
		goto out;
	newc = PyObject_Call(replace, args, kw);
out:
	if (!newc && !err[0]) {
		PyObject *t, *v, *tb;
		PyErr_Fetch(&t, &v, &tb);
		PyObject *sv = v ? PyObject_Str(v) : NULL;
		const char *m = sv ? PyUnicode_AsUTF8(sv) : NULL;
		snprintf(err, cap, "agent: building the code object failed: %s", m ? m : "?");
		Py_XDECREF(sv);
		Py_XDECREF(t);
		Py_XDECREF(v);
		Py_XDECREF(tb);
	}
	PyErr_Clear();
	Py_XDECREF(builtins);
	Py_XDECREF(consts);
	Py_XDECREF(names);
	Py_XDECREF(kw);
	Py_XDECREF(args);
	Py_XDECREF(replace);
	return newc;
}

static const char *utf8_or(PyObject *s)
{
	const char *u = (s && PyUnicode_Check(s)) ? PyUnicode_AsUTF8(s) : NULL;
	if (!u)
		PyErr_Clear();
	return u ? u : "?";
}

/* Give new to every function holding old and, for every code object whose
 * co_consts holds old, install a copy pointing to new. */
static int install_everywhere(PyObject *old, PyObject *newc, PyObject *funcs, struct codes *all,
			      struct wire_patch_result *res, PyObject *pairs, int depth)
{
	PyObject *pair = PyTuple_Pack(2, old, newc);
	if (!pair || PyList_Append(pairs, pair)) {
		Py_XDECREF(pair);
		return -ENOMEM;
	}
	Py_DECREF(pair);
	if (depth > 32) {
		snprintf(res->message, sizeof res->message, "agent: code nesting too deep");
		return -ELOOP;
	}
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(funcs); i++) {
		PyObject *f = PyList_GET_ITEM(funcs, i);
		if (((PyFunctionObject *)f)->func_code != old)
			continue;
		if (PyObject_SetAttrString(f, "__code__", newc)) {
			PyErr_Clear();
			snprintf(
				res->message, sizeof res->message,
				"agent: the function refused the new code (free variables differ?)");
			return -EINVAL;
		}
		res->nfunctions++;
		agent__log("patch: function %s given the new code",
			   utf8_or(((PyFunctionObject *)f)->func_qualname));
	}
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(all->list); i++) {
		PyCodeObject *parent = (PyCodeObject *)PyList_GET_ITEM(all->list, i);
		PyObject *consts = parent->co_consts;
		Py_ssize_t n = PyTuple_GET_SIZE(consts), at = -1;
		for (Py_ssize_t k = 0; k < n; k++)
			if (PyTuple_GET_ITEM(consts, k) == old)
				at = k;
		if (at < 0)
			continue;
		PyObject *nc = PyTuple_New(n);
		if (!nc)
			return -ENOMEM;
		for (Py_ssize_t k = 0; k < n; k++) {
			PyObject *item = PyTuple_GET_ITEM(consts, k);
			PyTuple_SET_ITEM(nc, k, Py_NewRef(item == old ? newc : item));
		}
		PyObject *replace = PyObject_GetAttrString((PyObject *)parent, "replace");
		PyObject *kw = Py_BuildValue("{sO}", "co_consts", nc);
		PyObject *args = PyTuple_New(0);
		PyObject *np = (replace && kw && args) ? PyObject_Call(replace, args, kw) : NULL;
		Py_XDECREF(replace);
		Py_XDECREF(kw);
		Py_XDECREF(args);
		Py_DECREF(nc);
		if (!np) {
			PyErr_Clear();
			snprintf(res->message, sizeof res->message,
				 "agent: cannot copy the enclosing code object");
			return -EINVAL;
		}
		res->nparents++;
		agent__log("patch: enclosing code %s replaced", utf8_or(parent->co_qualname));
		int rc = install_everywhere((PyObject *)parent, np, funcs, all, res, pairs,
					    depth + 1);
		Py_DECREF(np);
		if (rc)
			return rc;
	}
	return 0;
}

/* Old code objects taken out of frames: kept alive for good (a few per
 * patch), as nothing tells us when every pointer into them is gone. */
static PyObject *g_retired;

/* OSR (docs/design.md §8): a frame suspended in an inlined Python call
 * (its callee has is_entry == 0) re-reads f_code and prev_instr from its
 * _PyInterpreterFrame when the callee returns (ceval's resume_frame:
 * SET_LOCALS_FROM_FRAME), so it can be given the new code: offsets are
 * the same, the locals layout is the same (replace keeps it), and the
 * value stack was sized from the original, so the new one must not need
 * more. A frame running in a C-level eval loop (the current one, or one
 * whose callee was entered from C) keeps first_instr in a C local: never
 * touched. Generator frames: swap_generators. */
static int swap_frames(PyObject *pairs, struct wire_patch_result *res)
{
	PyInterpreterState *interp = PyInterpreterState_Main();
	if (!g_retired && !(g_retired = PyList_New(0)))
		return -ENOMEM;
	for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts;
	     ts = PyThreadState_Next(ts)) {
		if (!ts->cframe)
			continue;
		_PyInterpreterFrame *callee = ts->cframe->current_frame;
		for (_PyInterpreterFrame *f = callee ? callee->previous : NULL; f;
		     callee = f, f = f->previous) {
			if (callee->is_entry || f->owner != FRAME_OWNED_BY_THREAD ||
			    _PyFrame_IsIncomplete(f))
				continue;
			for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
				PyObject *pair = PyList_GET_ITEM(pairs, i);
				PyCodeObject *old = (PyCodeObject *)PyTuple_GET_ITEM(pair, 0);
				PyCodeObject *nc = (PyCodeObject *)PyTuple_GET_ITEM(pair, 1);
				if (f->f_code != old)
					continue;
				ptrdiff_t at = f->prev_instr - _PyCode_CODE(old);
				if (nc->co_nlocalsplus != old->co_nlocalsplus ||
				    nc->co_stacksize > old->co_stacksize || at < 0 ||
				    at >= Py_SIZE(old) || at >= Py_SIZE(nc)) {
					agent__log("osr: frame of %s kept its code (stack %d > %d)",
						   utf8_or(old->co_qualname), nc->co_stacksize,
						   old->co_stacksize);
					break;
				}
				if (PyList_Append(g_retired, (PyObject *)old))
					return -ENOMEM;
				f->f_code = (PyCodeObject *)Py_NewRef((PyObject *)nc);
				f->prev_instr = _PyCode_CODE(nc) + at;
				Py_DECREF(old); /* the frame's reference; g_retired keeps it */
				res->nframes++;
				break;
			}
		}
	}
	return 0;
}

/* A suspended generator, coroutine or async generator (FRAME_CREATED or
 * FRAME_SUSPENDED: not on any thread's stack) takes the new code the same
 * way: resuming it pushes its frame and the eval loop starts from
 * SET_LOCALS_FROM_FRAME, re-reading f_code and prev_instr. gi_code follows,
 * so the object and its frame agree (_PyGen_yf reads the frame's next
 * instruction, gen.gi_code the object's). The frame was sized from the
 * original code when the generator was made: a deeper stack keeps it out.
 * A loop in progress inside a generator or coroutine then runs the patched
 * code from its next resumption (a probe reports it, a guard heals it). */
static int swap_generators(PyObject *pairs, struct wire_patch_result *res)
{
	PyObject *gc = NULL, *objs = NULL;
	int rc = -ENOMEM;
	if (!(gc = PyImport_ImportModule("gc")) ||
	    !(objs = PyObject_CallMethod(gc, "get_objects", NULL)) || !PyList_Check(objs))
		goto out;
	for (Py_ssize_t k = 0; k < PyList_GET_SIZE(objs); k++) {
		PyObject *o = PyList_GET_ITEM(objs, k);
		if (!PyGen_CheckExact(o) && !PyCoro_CheckExact(o) && !PyAsyncGen_CheckExact(o))
			continue;
		PyGenObject *g = (PyGenObject *)o;
		if (g->gi_frame_state != FRAME_CREATED && g->gi_frame_state != FRAME_SUSPENDED)
			continue;
		_PyInterpreterFrame *f = (_PyInterpreterFrame *)g->gi_iframe;
		for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
			PyObject *pair = PyList_GET_ITEM(pairs, i);
			PyCodeObject *old = (PyCodeObject *)PyTuple_GET_ITEM(pair, 0);
			PyCodeObject *nc = (PyCodeObject *)PyTuple_GET_ITEM(pair, 1);
			if (f->f_code != old || g->gi_code != old)
				continue;
			ptrdiff_t at = f->prev_instr - _PyCode_CODE(old);
			bool created = g->gi_frame_state == FRAME_CREATED;
			if (nc->co_nlocalsplus != old->co_nlocalsplus ||
			    nc->co_stacksize > old->co_stacksize || at < (created ? -1 : 0) ||
			    at >= Py_SIZE(old) || at >= Py_SIZE(nc)) {
				agent__log("osr: suspended %s kept its code",
					   utf8_or(old->co_qualname));
				break;
			}
			if (PyList_Append(g_retired, (PyObject *)old))
				goto out;
			f->f_code = (PyCodeObject *)Py_NewRef((PyObject *)nc);
			f->prev_instr = _PyCode_CODE(nc) + at;
			Py_DECREF(old); /* the frame's reference; g_retired keeps it */
			g->gi_code = (PyCodeObject *)Py_NewRef((PyObject *)nc);
			Py_DECREF(old); /* the generator's */
			res->nframes++;
			break;
		}
	}
	rc = 0;
out:
	PyErr_Clear();
	Py_XDECREF(gc);
	Py_XDECREF(objs);
	return rc;
}

static void registry__record(const struct wire_patch *p, PyObject *pairs,
			     const struct wire_patch_result *res);

/* Every live function object and every code object reachable from them.
 * 0, or -ENOMEM with the error cleared (the caller frees what is set). */
static int collect(PyObject **funcs, struct codes *all)
{
	PyObject *gc = NULL, *objs = NULL;
	int rc = -ENOMEM;
	if (!(gc = PyImport_ImportModule("gc")) ||
	    !(objs = PyObject_CallMethod(gc, "get_objects", NULL)) || !PyList_Check(objs) ||
	    !(*funcs = PyList_New(0)) || !(all->list = PyList_New(0)) ||
	    !(all->seen = PySet_New(NULL)))
		goto out;
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(objs); i++) {
		PyObject *o = PyList_GET_ITEM(objs, i);
		if (!PyFunction_Check(o))
			continue;
		if (PyList_Append(*funcs, o) || codes__add(all, ((PyFunctionObject *)o)->func_code))
			goto out;
	}
	rc = 0;
out:
	PyErr_Clear();
	Py_XDECREF(gc);
	Py_XDECREF(objs);
	return rc;
}

int agent_install__functions(PyObject **funcs)
{
	struct codes all = { NULL, NULL };
	*funcs = NULL;
	int rc = collect(funcs, &all);
	Py_XDECREF(all.list);
	Py_XDECREF(all.seen);
	if (rc)
		Py_CLEAR(*funcs);
	return rc;
}

int agent_install__patch(const struct wire_patch *p, struct wire_patch_result *res)
{
	PyObject *funcs = NULL, *newc = NULL, *pairs = NULL;
	struct codes all = { NULL, NULL };
	PyObject *old = NULL;
	int rc = -ENOMEM;

	res->nfunctions = res->nparents = res->nframes = 0;
	res->message[0] = 0;
	if (collect(&funcs, &all) || !(pairs = PyList_New(0)))
		goto out;
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(all.list); i++)
		if ((uint64_t)(uintptr_t)PyList_GET_ITEM(all.list, i) == p->code_addr)
			old = PyList_GET_ITEM(all.list, i);
	if (!old) {
		rc = -ENOENT;
		snprintf(res->message, sizeof res->message,
			 "agent: code object %#llx is not reachable from any live function",
			 (unsigned long long)p->code_addr);
		goto out;
	}
	if (!(newc = agent_install__build_code((PyCodeObject *)old, p, res->message,
					       sizeof res->message))) {
		rc = -EINVAL;
		goto out;
	}
	rc = install_everywhere(old, newc, funcs, &all, res, pairs, 0);
	if (rc == 0)
		rc = swap_frames(pairs, res);
	if (rc == 0)
		rc = swap_generators(pairs, res);
	if (rc == 0)
		registry__record(p, pairs, res);
	if (rc == 0)
		snprintf(
			res->message, sizeof res->message,
			"installed on %u function(s), %u enclosing code object(s), %u suspended frame(s)",
			res->nfunctions, res->nparents, res->nframes);
out:
	if (rc == -ENOMEM && !res->message[0])
		snprintf(res->message, sizeof res->message, "agent: out of memory walking objects");
	PyErr_Clear();
	Py_XDECREF(funcs);
	Py_XDECREF(all.list);
	Py_XDECREF(all.seen);
	Py_XDECREF(newc);
	Py_XDECREF(pairs);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Registry of installed patches (LIST, ROLLBACK).                      */

/* One PATCH that installed: the original code object and the patched one
 * (both kept alive here), the enclosing copies made for it (kept alive
 * too: frames may run them), and what the debugger called it. Changed only
 * with the GIL held and g_reg_lock taken (the agent thread and the exit
 * handler read the names and counts without the GIL). */
struct live_entry {
	/* What the debugger called it (struct wire_patch_meta's fields) in
	 * one allocation, name first (freeing name frees all four): a copy
	 * of the fixed-size struct was 945 bytes an entry, and a boot load
	 * of 100 patches spent a quarter of its installs in the fresh pages
	 * of this growing array (docs/performance.md, "start-up, sixth
	 * pass"). */
	char *name, *guard, *target, *fallback;
	PyObject *orig, *patched;
	PyObject *pairs;
	uint64_t installed_ms;
	uint32_t nfunctions, nparents, nframes;
	/* The guard's block: code units [orig_units, patched_units) of the
	 * patched code (guards are appended, docs/guards.md). */
	Py_ssize_t orig_units, patched_units;
	/* Firings: counted with the GIL held (atomics: the readers hold
	 * g_reg_lock only); reported = how many HITS already carried. */
	uint64_t fired, reported, last_ms;
	/* A reload's unit (reload.c), not a guard: pairs are (old, new) for
	 * the unit and its nested code; no guard block. */
	bool reload;
};

static struct live_entry *g_live;
/* Guard entries in the registry (not reloads): without any, a code
 * object is its own original and nothing need be searched (a reload of a
 * thousand functions asks a thousand times). */
static size_t g_nguards;

static size_t g_nlive, g_cap_live;
static pthread_mutex_t g_reg_lock = PTHREAD_MUTEX_INITIALIZER;
/* Firings of rolled-back entries not reported yet (under g_reg_lock). */
static struct wire_hit *g_gone;
static size_t g_ngone;
/* A firing since the last agent_install__hits (a cheap check). */
static int g_hits_dirty;

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Called by agent_install__patch after a successful install; a failure to
 * record only costs the patch its listing and rollback (logged). */
static void registry__record(const struct wire_patch *p, PyObject *pairs,
			     const struct wire_patch_result *res)
{
	if (g_nlive == g_cap_live) {
		size_t cap = g_cap_live ? 2 * g_cap_live : 16;
		pthread_mutex_lock(&g_reg_lock);
		struct live_entry *v = realloc(g_live, cap * sizeof *v);
		if (v) {
			g_live = v;
			g_cap_live = cap;
		}
		pthread_mutex_unlock(&g_reg_lock);
		if (!v) {
			agent__log("registry: out of memory, patch not recorded");
			return;
		}
	}
	const struct wire_patch_meta *m = &p->meta;
	size_t ln = strlen(m->name) + 1, lg = strlen(m->guard) + 1, lt = strlen(m->target) + 1,
	       lf = strlen(m->fallback) + 1;
	char *names = malloc(ln + lg + lt + lf);
	if (!names) {
		agent__log("registry: out of memory, patch not recorded");
		return;
	}
	memcpy(names, m->name, ln);
	memcpy(names + ln, m->guard, lg);
	memcpy(names + ln + lg, m->target, lt);
	memcpy(names + ln + lg + lt, m->fallback, lf);
	PyObject *first = PyList_GET_ITEM(pairs, 0); /* (original, patched) */
	pthread_mutex_lock(&g_reg_lock);
	struct live_entry *e = &g_live[g_nlive];
	memset(e, 0, sizeof *e);
	e->name = names;
	e->guard = names + ln;
	e->target = names + ln + lg;
	e->fallback = names + ln + lg + lt;
	e->orig = Py_NewRef(PyTuple_GET_ITEM(first, 0));
	e->patched = Py_NewRef(PyTuple_GET_ITEM(first, 1));
	e->pairs = Py_NewRef(pairs);
	e->installed_ms = wall_ms();
	e->nfunctions = res->nfunctions;
	e->nparents = res->nparents;
	e->nframes = res->nframes;
	e->orig_units = Py_SIZE(e->orig);
	e->patched_units = Py_SIZE(e->patched);
	e->fired = e->reported = e->last_ms = 0;
	g_nlive++;
	g_nguards++; /* a reload's entry is taken back out by record_reload */
	pthread_mutex_unlock(&g_reg_lock);
}

void agent_install__record_reload(const char *name, PyObject *pairs, uint32_t nfunctions)
{
	struct wire_patch p;
	struct wire_patch_result res = { .nfunctions = nfunctions };
	memset(&p, 0, sizeof p);
	snprintf(p.meta.name, sizeof p.meta.name, "%s", name);
	snprintf(p.meta.guard, sizeof p.meta.guard, "reload");
	size_t before = g_nlive;
	registry__record(&p, pairs, &res);
	if (g_nlive > before) {
		pthread_mutex_lock(&g_reg_lock);
		g_live[before].reload = true;
		g_nguards--;
		g_live[before].orig_units = g_live[before].patched_units; /* no guard block */
		pthread_mutex_unlock(&g_reg_lock);
	}
}

void agent_install__record_boot(PyObject *orig, PyObject *newc, const struct wire_patch *p)
{
	struct wire_patch_result res = { .nparents = 1 };
	PyObject *pair = PyTuple_Pack(2, orig, newc);
	PyObject *pairs = pair ? PyList_New(0) : NULL;
	if (pairs && PyList_Append(pairs, pair) == 0)
		registry__record(p, pairs, &res);
	else
		agent__log("registry: out of memory, boot patch not recorded");
	PyErr_Clear();
	Py_XDECREF(pair);
	Py_XDECREF(pairs);
}

PyObject *agent_install__original_of(PyObject *code)
{
	for (int depth = 0; g_nguards && depth < 64; depth++) {
		size_t i = g_nlive;
		while (i-- > 0 && (g_live[i].patched != code || g_live[i].reload))
			;
		if (i == (size_t)-1)
			break;
		code = g_live[i].orig;
	}
	return code;
}

/* Functions running the entry's code: the patched code, or for a reload
 * any of its new code objects (closures made from nested code too). */
static uint32_t count_running(PyObject *funcs, const struct live_entry *e)
{
	uint32_t n = 0;
	Py_ssize_t np = e->reload ? PyList_GET_SIZE(e->pairs) : 1;
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(funcs); i++) {
		PyObject *code = ((PyFunctionObject *)PyList_GET_ITEM(funcs, i))->func_code;
		for (Py_ssize_t k = 0; k < np; k++)
			if (code == (e->reload ? PyTuple_GET_ITEM(PyList_GET_ITEM(e->pairs, k), 1)
					       : e->patched)) {
				n++;
				break;
			}
	}
	return n;
}

int agent_install__list(struct wire_buf *b, uint64_t request_id)
{
	PyObject *funcs = NULL;
	struct codes all = { NULL, NULL };
	size_t at;
	int rc = collect(&funcs, &all);
	if (rc)
		goto out;
	wire_msg__list_result_begin(b, request_id, (uint32_t)g_nlive, &at);
	for (size_t i = 0; i < g_nlive; i++) {
		const struct live_entry *e = &g_live[i];
		PyCodeObject *orig = (PyCodeObject *)e->orig;
		struct wire_live_patch lp;
		memset(&lp, 0, sizeof lp);
		snprintf(lp.meta.name, sizeof lp.meta.name, "%s", e->name);
		snprintf(lp.meta.guard, sizeof lp.meta.guard, "%s", e->guard);
		snprintf(lp.meta.target, sizeof lp.meta.target, "%s", e->target);
		snprintf(lp.meta.fallback, sizeof lp.meta.fallback, "%s", e->fallback);
		snprintf(lp.qualname, sizeof lp.qualname, "%s", utf8_or(orig->co_qualname));
		snprintf(lp.filename, sizeof lp.filename, "%s", utf8_or(orig->co_filename));
		lp.first_line = orig->co_firstlineno > 0 ? (uint32_t)orig->co_firstlineno : 0;
		for (size_t k = 0; k < i; k++)
			if (g_live[k].patched == e->orig)
				lp.flags |= WIRE_LIVE_F_STACKED;
		if (e->reload)
			lp.flags |= WIRE_LIVE_F_RELOAD;
		lp.orig_addr = (uint64_t)(uintptr_t)e->orig;
		lp.new_addr = (uint64_t)(uintptr_t)e->patched;
		lp.installed_ms = e->installed_ms;
		lp.nfunctions = e->nfunctions;
		lp.nparents = e->nparents;
		lp.nframes = e->nframes;
		lp.live_functions = count_running(funcs, e);
		lp.hits = __atomic_load_n(&e->fired, __ATOMIC_RELAXED);
		lp.last_hit_ms = __atomic_load_n(&e->last_ms, __ATOMIC_RELAXED);
		wire_msg__list_result_entry(b, &lp);
	}
	rc = wire_msg__list_result_end(b, at);
out:
	Py_XDECREF(funcs);
	Py_XDECREF(all.list);
	Py_XDECREF(all.seen);
	return rc;
}

/* Under g_reg_lock: a rolled-back entry's firings not reported yet wait
 * in g_gone for the next HITS (lost only if memory runs out). */
static void keep_unreported(const struct live_entry *e)
{
	uint64_t n = __atomic_load_n(&e->fired, __ATOMIC_RELAXED) - e->reported;
	if (!n)
		return;
	struct wire_hit *v = realloc(g_gone, (g_ngone + 1) * sizeof *v);
	if (!v)
		return;
	g_gone = v;
	struct wire_hit *h = &g_gone[g_ngone++];
	memset(h, 0, sizeof *h);
	snprintf(h->name, sizeof h->name, "%s", e->name);
	h->orig_addr = (uint64_t)(uintptr_t)e->orig;
	h->count = n;
	h->last_ms = __atomic_load_n(&e->last_ms, __ATOMIC_RELAXED);
}

static bool rollback_selects(const struct wire_rollback *m, const struct live_entry *e)
{
	return (m->flags & WIRE_ROLLBACK_F_ALL) || strcmp(e->name, m->name) == 0;
}

/* Undo one entry: installing is done again, backwards. Every function
 * whose code is the patched object gets the original object back; every
 * code object whose co_consts holds the patched one (the enclosing copies
 * made at install, or later copies of them made for other patches in the
 * same module) gets a copy holding the original, recursively, so functions
 * created later from an enclosing code are unpatched too; suspended frames
 * go back to the original where their offset exists there (not inside the
 * appended guard block). */
/* A reload's unit back: every function running one of its new code
 * objects (the unit's, or nested code's: closures made since) gets the old
 * one again. Calls running keep their code, as at the reload. */
static int rollback_reload(struct live_entry *e, PyObject *funcs, struct wire_rollback_result *res)
{
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(e->pairs); i++) {
		PyObject *old = PyTuple_GET_ITEM(PyList_GET_ITEM(e->pairs, i), 0);
		PyObject *nw = PyTuple_GET_ITEM(PyList_GET_ITEM(e->pairs, i), 1);
		for (Py_ssize_t k = 0; k < PyList_GET_SIZE(funcs); k++) {
			PyObject *f = PyList_GET_ITEM(funcs, k);
			if (((PyFunctionObject *)f)->func_code != nw)
				continue;
			if (PyObject_SetAttrString(f, "__code__", old)) {
				PyErr_Clear();
				snprintf(res->message, sizeof res->message,
					 "agent: a function refused its previous code");
				return -EINVAL;
			}
			res->nfunctions++;
		}
	}
	return 0;
}

static int rollback_one(struct live_entry *e, struct wire_rollback_result *res)
{
	PyObject *funcs = NULL, *pairs = NULL;
	struct codes all = { NULL, NULL };
	struct wire_patch_result pr;
	int rc = -ENOMEM;

	memset(&pr, 0, sizeof pr);
	if (collect(&funcs, &all) || !(pairs = PyList_New(0)))
		goto out;
	if (e->reload) {
		rc = rollback_reload(e, funcs, res);
		agent__log("rollback: %s (reload): %d", e->name, rc);
		goto out;
	}
	rc = install_everywhere(e->patched, e->orig, funcs, &all, &pr, pairs, 0);
	if (rc == 0)
		rc = swap_frames(pairs, &pr);
	if (rc == 0)
		rc = swap_generators(pairs, &pr);
	res->nfunctions += pr.nfunctions;
	res->nframes += pr.nframes;
	if (rc && pr.message[0])
		snprintf(res->message, sizeof res->message, "%s", pr.message);
	agent__log("rollback: %s: %u function(s), %u enclosing, %u frame(s): %d", e->name,
		   pr.nfunctions, pr.nparents, pr.nframes, rc);
out:
	PyErr_Clear();
	Py_XDECREF(funcs);
	Py_XDECREF(all.list);
	Py_XDECREF(all.seen);
	Py_XDECREF(pairs);
	return rc;
}

int agent_install__rollback(const struct wire_rollback *m, struct wire_rollback_result *res)
{
	PyObject *funcs = NULL;
	struct codes all = { NULL, NULL };
	int rc = 0;
	res->npatches = res->nfunctions = res->nframes = 0;
	res->message[0] = 0;
	for (size_t i = 0; i < g_nlive; i++)
		if (rollback_selects(m, &g_live[i]))
			res->npatches++;
	if (!res->npatches) {
		if (m->flags & WIRE_ROLLBACK_F_ALL)
			snprintf(res->message, sizeof res->message, "no live patch");
		else
			snprintf(res->message, sizeof res->message,
				 "agent: no live patch named '%.200s'", m->name);
		return (m->flags & WIRE_ROLLBACK_F_ALL) ? 0 : -ENOENT;
	}
	/* A second guard in the same function was built on this patch's code:
	 * rolling back only the first would drop the second with it. */
	for (size_t i = 0; i < g_nlive; i++) {
		if (!rollback_selects(m, &g_live[i]))
			continue;
		for (size_t k = i + 1; k < g_nlive; k++) {
			if (rollback_selects(m, &g_live[k]) || g_live[k].orig != g_live[i].patched)
				continue;
			snprintf(
				res->message, sizeof res->message,
				"agent: patch '%.90s' was installed on top of '%.90s': roll it back "
				"first (or all)",
				g_live[k].name[0] ? g_live[k].name : "(unnamed)", g_live[i].name);
			return -EBUSY;
		}
	}
	if (m->flags & WIRE_ROLLBACK_F_DRY_RUN) {
		if ((rc = collect(&funcs, &all)) == 0)
			for (size_t i = 0; i < g_nlive; i++)
				if (rollback_selects(m, &g_live[i]))
					res->nfunctions += count_running(funcs, &g_live[i]);
		Py_XDECREF(funcs);
		Py_XDECREF(all.list);
		Py_XDECREF(all.seen);
	} else {
		/* Newest first: a stacked patch's original is its base's patched code. */
		for (size_t i = g_nlive; rc == 0 && i-- > 0;) {
			struct live_entry *e = &g_live[i];
			if (!rollback_selects(m, e))
				continue;
			if ((rc = rollback_one(e, res)))
				break;
			/* The objects stay alive as long as frames or functions use them. */
			Py_DECREF(e->orig);
			Py_DECREF(e->patched);
			Py_DECREF(e->pairs);
			pthread_mutex_lock(&g_reg_lock);
			if (!e->reload)
				g_nguards--;
			keep_unreported(e);
			free(e->name);
			memmove(e, e + 1, (g_nlive - i - 1) * sizeof *e);
			g_nlive--;
			pthread_mutex_unlock(&g_reg_lock);
		}
	}
	if (rc && !res->message[0])
		snprintf(res->message, sizeof res->message, "agent: rollback failed: %s",
			 strerror(-rc));
	if (!rc)
		snprintf(res->message, sizeof res->message,
			 "%s %u patch(es): %u function(s), %u suspended frame(s)",
			 (m->flags & WIRE_ROLLBACK_F_DRY_RUN) ? "would roll back" : "rolled back",
			 res->npatches, res->nfunctions, res->nframes);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Firings (HITS)                                                       */

/* The entry whose guard block holds `unit` of `code`: the entry that
 * produced code, or, the unit being below its block, the entry it was
 * stacked on (a second guard in one function is appended after the
 * first, whose block keeps its offsets), and so on down. */
static struct live_entry *entry_of(PyObject *code, Py_ssize_t unit)
{
	for (int depth = 0; depth < 64; depth++) {
		struct live_entry *e = NULL;
		for (size_t i = g_nlive; i-- > 0;)
			if (g_live[i].patched == code) {
				e = &g_live[i];
				break;
			}
		if (!e)
			return NULL;
		if (unit >= e->orig_units)
			return unit < e->patched_units ? e : NULL;
		code = e->orig;
	}
	return NULL;
}

void agent_install__fired(void)
{
	PyThreadState *ts = PyThreadState_Get();
	/* A builtin helper pushes no frame: the current one runs the guard. */
	_PyInterpreterFrame *f = ts && ts->cframe ? ts->cframe->current_frame : NULL;
	if (!f || !f->prev_instr)
		return;
	Py_ssize_t unit = f->prev_instr - _PyCode_CODE(f->f_code);
	struct live_entry *e = entry_of((PyObject *)f->f_code, unit);
	if (!e) {
		agent__log("hits: a guard fired in %s at unit %zd, in no registry entry's block",
			   utf8_or(f->f_code->co_qualname), unit);
		return;
	}
	__atomic_add_fetch(&e->fired, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&e->last_ms, wall_ms(), __ATOMIC_RELAXED);
	__atomic_store_n(&g_hits_dirty, 1, __ATOMIC_RELEASE);
}

/* Under g_reg_lock: an entry has firings not reported yet. */
static bool unreported_left(void)
{
	for (size_t i = 0; i < g_nlive; i++)
		if (__atomic_load_n(&g_live[i].fired, __ATOMIC_RELAXED) != g_live[i].reported)
			return true;
	return false;
}

void agent_install__atfork_child(void)
{
	pthread_mutex_init(&g_reg_lock, NULL);
	for (size_t i = 0; i < g_nlive; i++)
		g_live[i].reported = g_live[i].fired;
	g_ngone = 0;
	g_hits_dirty = 0;
}

bool agent_install__hits_pending(void)
{
	return __atomic_load_n(&g_hits_dirty, __ATOMIC_ACQUIRE) != 0;
}

int agent_install__hits(struct wire_buf *b, const struct timespec *deadline)
{
	size_t at;
	uint32_t n = 0;
	if (deadline ? pthread_mutex_timedlock(&g_reg_lock, deadline)
		     : pthread_mutex_lock(&g_reg_lock))
		return -ETIMEDOUT;
	__atomic_store_n(&g_hits_dirty, 0, __ATOMIC_RELEASE);
	for (size_t i = 0; i < g_nlive; i++)
		if (__atomic_load_n(&g_live[i].fired, __ATOMIC_RELAXED) != g_live[i].reported)
			n++;
	/* A guard may fire meanwhile (counts only grow): at most n live
	 * entries go into this frame, the others into the next one. */
	uint32_t nlive = n;
	if (!(n += (uint32_t)g_ngone)) {
		pthread_mutex_unlock(&g_reg_lock);
		return 0;
	}
	int rc = wire_msg__hits_begin(b, n, &at);
	for (size_t i = 0; i < g_ngone; i++)
		wire_msg__hits_entry(b, &g_gone[i]);
	for (size_t i = 0; i < g_nlive && nlive; i++) {
		struct live_entry *e = &g_live[i];
		uint64_t fired = __atomic_load_n(&e->fired, __ATOMIC_RELAXED);
		if (fired == e->reported)
			continue;
		nlive--;
		struct wire_hit h;
		memset(&h, 0, sizeof h);
		snprintf(h.name, sizeof h.name, "%s", e->name);
		h.orig_addr = (uint64_t)(uintptr_t)e->orig;
		h.count = fired - e->reported;
		h.last_ms = __atomic_load_n(&e->last_ms, __ATOMIC_RELAXED);
		wire_msg__hits_entry(b, &h);
		e->reported = fired;
	}
	if (!rc)
		rc = wire_msg__hits_end(b, at);
	g_ngone = 0;
	if (unreported_left())
		__atomic_store_n(&g_hits_dirty, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&g_reg_lock);
	return rc ? rc : 1;
}
