/* agent: building a patched code object and installing it (DESIGN.md
 * section 6, "new calls").
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
 */
#include "inject/agent/agent-py.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "inject/agent/helpers.h"

/* Every code object reachable from live functions, each once. */
struct codes {
	PyObject *list;   /* codes, strong references */
	PyObject *seen;   /* set of addresses (ints): code equality is by value */
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
static PyObject *build_const(struct inject_const_iter *it, PyObject *builtins, char *err,
			     size_t cap)
{
	struct inject_const c;
	int rc = inject_const_iter__next(it, &c);
	if (rc <= 0) {
		snprintf(err, cap, "agent: patch constants truncated");
		return NULL;
	}
	switch (c.kind) {
	case INJECT_CONST_NONE: Py_RETURN_NONE;
	case INJECT_CONST_TRUE: Py_RETURN_TRUE;
	case INJECT_CONST_FALSE: Py_RETURN_FALSE;
	case INJECT_CONST_ELLIPSIS: return Py_NewRef(Py_Ellipsis);
	case INJECT_CONST_INT: return PyLong_FromLongLong(c.i);
	case INJECT_CONST_FLOAT: return PyFloat_FromDouble(c.f);
	case INJECT_CONST_STR:
		return PyUnicode_DecodeUTF8((const char *)c.data, (Py_ssize_t)c.len, "strict");
	case INJECT_CONST_BYTES:
		return PyBytes_FromStringAndSize((const char *)c.data, (Py_ssize_t)c.len);
	case INJECT_CONST_BUILTIN:
	case INJECT_CONST_HELPER: {
		char name[65];
		memcpy(name, c.data, c.len);   /* len <= 64, checked by the decoder */
		name[c.len] = 0;
		PyObject *o;
		if (c.kind == INJECT_CONST_HELPER) {
			o = suture_helpers__get(name);
		} else {
			o = PyObject_GetAttrString(builtins, name);
		}
		if (!o)
			snprintf(err, cap, "agent: no %s named '%s'",
				 c.kind == INJECT_CONST_HELPER ? "helper" : "builtin", name);
		return o;
	}
	case INJECT_CONST_TUPLE: {
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

static PyObject *build_code(PyCodeObject *old, const struct inject_patch *p, char *err, size_t cap)
{
	PyObject *builtins = NULL, *consts = NULL, *names = NULL, *kw = NULL, *args = NULL;
	PyObject *replace = NULL, *newc = NULL, *o;
	struct inject_const_iter ci;
	struct inject_name_iter ni;
	const uint8_t *s;
	size_t len;
	int rc;

	if (!(builtins = PyImport_ImportModule("builtins")) || !(consts = PyList_New(0)) ||
	    !(names = PyList_New(0)))
		goto out;
	inject_const_iter__init(&ci, p);
	for (size_t i = 0; i < p->nconsts; i++) {
		if (!(o = build_const(&ci, builtins, err, cap)))
			goto out;
		rc = PyList_Append(consts, o);
		Py_DECREF(o);
		if (rc)
			goto out;
	}
	inject_name_iter__init(&ni, p);
	while ((rc = inject_name_iter__next(&ni, &s, &len)) > 0) {
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
	if (set_new(kw, "co_code", PyBytes_FromStringAndSize((const char *)p->code,
							     (Py_ssize_t)p->code_len)) ||
	    set_new(kw, "co_exceptiontable", PyBytes_FromStringAndSize((const char *)p->exctable,
									(Py_ssize_t)p->exctable_len)) ||
	    set_new(kw, "co_linetable", PyBytes_FromStringAndSize((const char *)p->linetable,
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
			      struct inject_patch_result *res, PyObject *pairs, int depth)
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
			snprintf(res->message, sizeof res->message,
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
		int rc = install_everywhere((PyObject *)parent, np, funcs, all, res, pairs, depth + 1);
		Py_DECREF(np);
		if (rc)
			return rc;
	}
	return 0;
}

/* Old code objects taken out of frames: kept alive for good (a few per
 * patch), as nothing tells us when every pointer into them is gone. */
static PyObject *g_retired;

/* OSR (DESIGN.md section 6): a frame suspended in an inlined Python call
 * (its callee has is_entry == 0) re-reads f_code and prev_instr from its
 * _PyInterpreterFrame when the callee returns (ceval's resume_frame:
 * SET_LOCALS_FROM_FRAME), so it can be given the new code: offsets are
 * the same, the locals layout is the same (replace keeps it), and the
 * value stack was sized from the original, so the new one must not need
 * more. A frame running in a C-level eval loop (the current one, or one
 * whose callee was entered from C) keeps first_instr in a C local: never
 * touched. Generator frames are left alone (gi_code would disagree). */
static int swap_frames(PyObject *pairs, struct inject_patch_result *res)
{
	PyInterpreterState *interp = PyInterpreterState_Main();
	if (!g_retired && !(g_retired = PyList_New(0)))
		return -ENOMEM;
	for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts; ts = PyThreadState_Next(ts)) {
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
				Py_DECREF(old);   /* the frame's reference; g_retired keeps it */
				res->nframes++;
				break;
			}
		}
	}
	return 0;
}

int agent_install__patch(const struct inject_patch *p, struct inject_patch_result *res)
{
	PyObject *gc = NULL, *objs = NULL, *funcs = NULL, *newc = NULL, *pairs = NULL;
	struct codes all = { NULL, NULL };
	PyObject *old = NULL;
	int rc = -ENOMEM;

	res->nfunctions = res->nparents = res->nframes = 0;
	res->message[0] = 0;
	if (!(gc = PyImport_ImportModule("gc")) ||
	    !(objs = PyObject_CallMethod(gc, "get_objects", NULL)) || !PyList_Check(objs) ||
	    !(funcs = PyList_New(0)) || !(all.list = PyList_New(0)) || !(all.seen = PySet_New(NULL)) ||
	    !(pairs = PyList_New(0)))
		goto out;
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(objs); i++) {
		PyObject *o = PyList_GET_ITEM(objs, i);
		if (!PyFunction_Check(o))
			continue;
		if (PyList_Append(funcs, o) || codes__add(&all, ((PyFunctionObject *)o)->func_code))
			goto out;
	}
	Py_CLEAR(objs);
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
	if (!(newc = build_code((PyCodeObject *)old, p, res->message, sizeof res->message))) {
		rc = -EINVAL;
		goto out;
	}
	rc = install_everywhere(old, newc, funcs, &all, res, pairs, 0);
	if (rc == 0)
		rc = swap_frames(pairs, res);
	if (rc == 0)
		snprintf(res->message, sizeof res->message,
			 "installed on %u function(s), %u enclosing code object(s), %u suspended frame(s)",
			 res->nfunctions, res->nparents, res->nframes);
out:
	if (rc == -ENOMEM && !res->message[0])
		snprintf(res->message, sizeof res->message, "agent: out of memory walking objects");
	PyErr_Clear();
	Py_XDECREF(gc);
	Py_XDECREF(objs);
	Py_XDECREF(funcs);
	Py_XDECREF(all.list);
	Py_XDECREF(all.seen);
	Py_XDECREF(newc);
	Py_XDECREF(pairs);
	return rc;
}
