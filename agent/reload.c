/* agent: edit and continue, RELOAD (docs/design.md §10,
 * docs/formats/channel.md "Reload"). Runs on the agent thread with the GIL
 * held (agent__gil_take: the safe point every request uses).
 *
 * The module whose __file__ has the real path the debugger sent is
 * recompiled from the new text (Py_CompileStringObject with the name its
 * functions' code carries, so tracebacks name the same file). A SyntaxError
 * ends the request before anything changed. Module-level statements are not
 * run again: only code objects move.
 *
 * Matching: a unit is a function defined at module level or in a class
 * (its code's qualname has no "<locals>"); its nested code (inner
 * functions, lambdas, comprehensions, classes) rides with it, paired with
 * the new code's nested constant of the same qualname and rank among its
 * siblings. A qualname defined several times (a property's getter and
 * setter) pairs by rank in source order. Units are found through live
 * function objects (gc, as PATCH finds them: install.c) whose globals are
 * the module's dict, so aliases in other modules, bound methods, callbacks
 * in containers, staticmethod/classmethod/property and __wrapped__ chains
 * are all the same few function objects; setting __code__ on each (the
 * setter resets func_version, so specialized call sites re-check) reaches
 * every reference. A call already running keeps its frame's code.
 *
 * A unit whose code or any nested code changed its free variables cannot
 * take the new code (a function's closure has the old cells): the whole
 * unit is refused and keeps its code, so it never runs half old, half new.
 * A function new in the file is added to its module or class only when its
 * definition is a plain `def` (MAKE_FUNCTION with no defaults, no closure,
 * stored at once): defaults and decorators are module statements.
 */
#include "agent/agent-py.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opcode.h"
#include "internal/pycore_opcode.h" /* _PyOpcode_Caches (defined in crash.c) */

struct reload {
	PyObject *done;     /* (pairs, nfunctions) of each unit switched, for the registry */
	PyObject *globals;  /* the module's dict */
	PyObject *filename; /* what its code objects carry as co_filename */
	PyObject *funcs;    /* every live function */
	PyObject *by_code;  /* code address (int) -> list of the functions running it */
	PyObject *olds;     /* qualname -> list of the old units of that name, by line */
	struct wire_reload_entry *v;
	size_t n, cap;
	uint32_t moved;
	char *msg;
	size_t msg_cap;
};

static const char *utf8_or(PyObject *s)
{
	const char *u = (s && PyUnicode_Check(s)) ? PyUnicode_AsUTF8(s) : NULL;
	if (!u)
		PyErr_Clear();
	return u ? u : "?";
}

static int add_entry(struct reload *r, uint32_t kind, PyCodeObject *co, uint32_t nfuncs,
		     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int add_entry(struct reload *r, uint32_t kind, PyCodeObject *co, uint32_t nfuncs,
		     const char *fmt, ...)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 32;
		struct wire_reload_entry *v = realloc(r->v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		r->v = v;
		r->cap = cap;
	}
	struct wire_reload_entry *e = &r->v[r->n++];
	memset(e, 0, sizeof *e);
	e->kind = kind;
	e->line = co->co_firstlineno > 0 ? (uint32_t)co->co_firstlineno : 0;
	e->nfunctions = nfuncs;
	snprintf(e->qualname, sizeof e->qualname, "%s", utf8_or(co->co_qualname));
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->detail, sizeof e->detail, fmt, ap);
	va_end(ap);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Comparing code                                                       */

static int eq(PyObject *a, PyObject *b)
{
	if (a == b)
		return 1;
	if (!a || !b || Py_TYPE(a) != Py_TYPE(b))
		return 0;
	return PyObject_RichCompareBool(a, b, Py_EQ);
}

static int attr_eq(PyObject *a, PyObject *b, const char *name)
{
	PyObject *x = PyObject_GetAttrString(a, name), *y = PyObject_GetAttrString(b, name);
	int r = (x && y) ? eq(x, y) : -1;
	Py_XDECREF(x);
	Py_XDECREF(y);
	return r;
}

/* 1 when a and b run the same (their nested code too, recursively), 0
 * when not, -1 on error; *lines set when only where they sit differs.
 * co_code is read through the attribute: canonical bytes, whatever the
 * live code's quickening did. */
static int code_same(PyCodeObject *a, PyCodeObject *b, bool *lines)
{
	if (a->co_firstlineno != b->co_firstlineno || !eq(a->co_linetable, b->co_linetable))
		*lines = true;
	if (a->co_argcount != b->co_argcount || a->co_posonlyargcount != b->co_posonlyargcount ||
	    a->co_kwonlyargcount != b->co_kwonlyargcount || a->co_flags != b->co_flags ||
	    a->co_stacksize != b->co_stacksize || a->co_nlocalsplus != b->co_nlocalsplus)
		return 0;
	int r = eq(a->co_name, b->co_name);
	if (r == 1)
		r = eq(a->co_qualname, b->co_qualname);
	if (r == 1)
		r = eq(a->co_names, b->co_names);
	if (r == 1)
		r = eq(a->co_localsplusnames, b->co_localsplusnames);
	if (r == 1)
		r = eq(a->co_localspluskinds, b->co_localspluskinds);
	if (r == 1)
		r = eq(a->co_exceptiontable, b->co_exceptiontable);
	if (r == 1)
		r = attr_eq((PyObject *)a, (PyObject *)b, "co_code");
	if (r != 1)
		return r;
	Py_ssize_t n = PyTuple_GET_SIZE(a->co_consts);
	if (n != PyTuple_GET_SIZE(b->co_consts))
		return 0;
	for (Py_ssize_t i = 0; i < n && r == 1; i++) {
		PyObject *x = PyTuple_GET_ITEM(a->co_consts, i),
			 *y = PyTuple_GET_ITEM(b->co_consts, i);
		if (PyCode_Check(x) && PyCode_Check(y))
			r = code_same((PyCodeObject *)x, (PyCodeObject *)y, lines);
		else
			r = eq(x, y);
	}
	return r;
}

/* ------------------------------------------------------------------ */
/* Pairing old and new code                                             */

/* The k-th code constant of co whose qualname is qn, or NULL. */
static PyObject *nth_named(PyCodeObject *co, PyObject *qn, Py_ssize_t k)
{
	for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(co->co_consts); i++) {
		PyObject *c = PyTuple_GET_ITEM(co->co_consts, i);
		if (PyCode_Check(c) && eq(((PyCodeObject *)c)->co_qualname, qn) == 1 && k-- == 0)
			return c;
	}
	return NULL;
}

static void names_of(PyObject *t, char *buf, size_t cap)
{
	size_t at = 0;
	buf[0] = 0;
	for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(t) && at < cap; i++)
		at += (size_t)snprintf(buf + at, cap - at, "%s%s", i ? ", " : "",
				       utf8_or(PyTuple_GET_ITEM(t, i)));
	if (!PyTuple_GET_SIZE(t))
		snprintf(buf, cap, "none");
}

/* Append (old, new) for old and each nested code that has a counterpart.
 * 0; 1 when a free-variable layout differs (why says where); -1 error. */
static int pair(PyCodeObject *old, PyCodeObject *nw, PyObject *pairs, char *why, size_t cap)
{
	PyObject *fo = PyObject_GetAttrString((PyObject *)old, "co_freevars");
	PyObject *fn = PyObject_GetAttrString((PyObject *)nw, "co_freevars");
	int r = (fo && fn) ? eq(fo, fn) : -1;
	if (r == 0) {
		char a[96], b[96];
		names_of(fo, a, sizeof a);
		names_of(fn, b, sizeof b);
		snprintf(why, cap, "%s: its free variables changed (%s -> %s)",
			 utf8_or(old->co_qualname), a, b);
	}
	Py_XDECREF(fo);
	Py_XDECREF(fn);
	if (r != 1)
		return r < 0 ? -1 : 1;
	PyObject *t = PyTuple_Pack(2, (PyObject *)old, (PyObject *)nw);
	if (!t || PyList_Append(pairs, t)) {
		Py_XDECREF(t);
		return -1;
	}
	Py_DECREF(t);
	for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(old->co_consts); i++) {
		PyObject *c = PyTuple_GET_ITEM(old->co_consts, i);
		if (!PyCode_Check(c))
			continue;
		PyObject *qn = ((PyCodeObject *)c)->co_qualname;
		Py_ssize_t rank = 0;
		for (Py_ssize_t k = 0; k < i; k++) {
			PyObject *d = PyTuple_GET_ITEM(old->co_consts, k);
			if (PyCode_Check(d) && eq(((PyCodeObject *)d)->co_qualname, qn) == 1)
				rank++;
		}
		PyObject *nc = nth_named(nw, qn, rank);
		if (nc && (r = pair((PyCodeObject *)c, (PyCodeObject *)nc, pairs, why, cap)))
			return r;
	}
	return 0;
}

/* Give every function running a pair's old code the new one. */
static uint32_t switch_pairs(struct reload *rl, PyObject *pairs, int *err)
{
	uint32_t n = 0;
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
		PyObject *old = PyTuple_GET_ITEM(PyList_GET_ITEM(pairs, i), 0);
		PyObject *nw = PyTuple_GET_ITEM(PyList_GET_ITEM(pairs, i), 1);
		PyObject *key = PyLong_FromVoidPtr(old);
		PyObject *fs = key ? PyDict_GetItemWithError(rl->by_code, key) : NULL;
		Py_XDECREF(key);
		PyErr_Clear();
		for (Py_ssize_t k = 0; fs && k < PyList_GET_SIZE(fs); k++) {
			PyObject *f = PyList_GET_ITEM(fs, k);
			if (((PyFunctionObject *)f)->func_code != old)
				continue; /* switched by an earlier pair */
			if (PyObject_SetAttrString(f, "__code__", nw)) {
				PyErr_Clear();
				*err = -EINVAL;
				continue;
			}
			n++;
		}
	}
	return n;
}

/* key -> list of values, appending v (borrowed key and value). */
static int multi_add(PyObject *d, PyObject *key, PyObject *v)
{
	PyObject *list = PyDict_GetItemWithError(d, key);
	if (!list) {
		if (PyErr_Occurred() || !(list = PyList_New(0)) || PyDict_SetItem(d, key, list)) {
			Py_XDECREF(list);
			return -1;
		}
		Py_DECREF(list);
	}
	return PyList_Append(list, v);
}

/* rl->by_code and rl->olds: one pass each, so that a module of thousands
 * of functions costs lookups, not products. */
static int index_olds(struct reload *rl, PyCodeObject **units, size_t nunits)
{
	if (!(rl->by_code = PyDict_New()) || !(rl->olds = PyDict_New()))
		return -1;
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(rl->funcs); i++) {
		PyObject *f = PyList_GET_ITEM(rl->funcs, i);
		PyObject *key = PyLong_FromVoidPtr(((PyFunctionObject *)f)->func_code);
		int r = key ? multi_add(rl->by_code, key, f) : -1;
		Py_XDECREF(key);
		if (r)
			return -1;
	}
	for (size_t i = 0; i < nunits; i++)
		if (multi_add(rl->olds, units[i]->co_qualname, (PyObject *)units[i]))
			return -1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The new module's definitions                                         */

/* qualname -> list of (code, parent) in source order, for every function
 * defined at module level or in a class body (nested code is reached by
 * pairing). */
static int index_defs(PyCodeObject *parent, PyObject *defs)
{
	for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(parent->co_consts); i++) {
		PyObject *c = PyTuple_GET_ITEM(parent->co_consts, i);
		if (!PyCode_Check(c))
			continue;
		PyCodeObject *co = (PyCodeObject *)c;
		if (!(co->co_flags & CO_OPTIMIZED)) { /* a class body */
			if (index_defs(co, defs))
				return -1;
			continue;
		}
		PyObject *list = PyDict_GetItemWithError(defs, co->co_qualname);
		if (!list) {
			if (PyErr_Occurred() || !(list = PyList_New(0)) ||
			    PyDict_SetItem(defs, co->co_qualname, list)) {
				Py_XDECREF(list);
				return -1;
			}
			Py_DECREF(list);
		}
		PyObject *t = PyTuple_Pack(2, c, (PyObject *)parent);
		if (!t || PyList_Append(list, t)) {
			Py_XDECREF(t);
			return -1;
		}
		Py_DECREF(t);
	}
	return 0;
}

/* How parent's code makes the function of code constant `co`: NULL when
 * a plain `def` (LOAD_CONST co; MAKE_FUNCTION with no defaults or closure;
 * STORE_NAME), else why it cannot be added without running statements. */
static const char *plain_def(PyCodeObject *parent, PyObject *co)
{
	PyObject *bytes = PyObject_GetAttrString((PyObject *)parent, "co_code");
	if (!bytes || !PyBytes_Check(bytes)) {
		PyErr_Clear();
		Py_XDECREF(bytes);
		return "its definition cannot be read";
	}
	const uint8_t *u = (const uint8_t *)PyBytes_AS_STRING(bytes);
	Py_ssize_t n = PyBytes_GET_SIZE(bytes) / 2;
	int state = 0; /* 1: after LOAD_CONST co; 2: after MAKE_FUNCTION */
	const char *why = "its definition is not a plain def";
	unsigned ext = 0;
	for (Py_ssize_t i = 0; i < n; i++) {
		int op = u[2 * i];
		unsigned arg = u[2 * i + 1] | (ext << 8);
		if (op == EXTENDED_ARG) {
			ext = arg;
			continue;
		}
		ext = 0;
		if (state == 1) {
			if (op != MAKE_FUNCTION) {
				state = 0;
			} else if (arg & 0x03) {
				why = "it has default values (module statements are not re-run)";
				break;
			} else if (arg & 0x08) {
				why = "it needs a closure (super() or __class__)";
				break;
			} else {
				state = 2;
			}
		} else if (state == 2) {
			why = op == STORE_NAME || op == STORE_GLOBAL
				      ? NULL
				      : "it is decorated (module statements are not re-run)";
			break;
		}
		if (state == 0 && op == LOAD_CONST &&
		    (Py_ssize_t)arg < PyTuple_GET_SIZE(parent->co_consts) &&
		    PyTuple_GET_ITEM(parent->co_consts, arg) == co)
			state = 1;
		i += _PyOpcode_Caches[_PyOpcode_Deopt[op]];
	}
	Py_DECREF(bytes);
	return why;
}

/* A function new in the file: into its module's dict, or its class. */
static int add_new(struct reload *rl, PyCodeObject *co, PyCodeObject *parent)
{
	const char *qn = utf8_or(co->co_qualname), *dot = strrchr(qn, '.');
	PyObject *owner = NULL, *name = NULL, *fn = NULL;
	int rc = 0;
	if (strstr(qn, "<"))
		return 0; /* a module-level lambda or comprehension: a statement's */
	if (dot) {
		/* Walk Outer.Inner from the module's dict: classes only. */
		char path[256];
		snprintf(path, sizeof path, "%.*s", (int)(dot - qn), qn);
		char *save = NULL, *part = strtok_r(path, ".", &save);
		owner = Py_XNewRef(PyDict_GetItemString(rl->globals, part));
		while (owner && (part = strtok_r(NULL, ".", &save))) {
			PyObject *next = PyType_Check(owner) ? PyObject_GetAttrString(owner, part)
							     : NULL;
			PyErr_Clear();
			Py_SETREF(owner, next);
		}
		if (!owner || !PyType_Check(owner)) {
			Py_XDECREF(owner);
			return add_entry(rl, WIRE_RELOAD_KEPT, co, 0,
					 "not added: its class is new or not in the module");
		}
	}
	const char *why = plain_def(parent, (PyObject *)co);
	if (why) {
		rc = add_entry(rl, WIRE_RELOAD_KEPT, co, 0, "not added: %s", why);
		goto out;
	}
	name = co->co_name;
	PyObject *d = owner ? ((PyTypeObject *)owner)->tp_dict : rl->globals;
	if (PyDict_GetItemWithError(d, name) || PyErr_Occurred()) {
		PyErr_Clear();
		rc = add_entry(rl, WIRE_RELOAD_KEPT, co, 0,
			       "not added: the name is bound to something else");
		goto out;
	}
	if (!(fn = PyFunction_NewWithQualName((PyObject *)co, rl->globals, co->co_qualname)) ||
	    (owner ? PyObject_SetAttr(owner, name, fn) : PyDict_SetItem(rl->globals, name, fn))) {
		PyErr_Clear();
		rc = add_entry(rl, WIRE_RELOAD_KEPT, co, 0, "not added: the assignment failed");
		goto out;
	}
	rc = add_entry(rl, WIRE_RELOAD_ADDED, co, 1, "added to %s",
		       owner ? "its class" : "the module");
out:
	Py_XDECREF(owner);
	Py_XDECREF(fn);
	return rc;
}

/* ------------------------------------------------------------------ */

/* The module whose __file__'s real path is path (a new reference), NULL
 * with no error set when none. */
static PyObject *find_module(const char *path)
{
	PyObject *mods = PyImport_GetModuleDict();
	PyObject *vals = mods ? PyDict_Values(mods) : NULL;
	PyObject *found = NULL;
	for (Py_ssize_t i = 0; vals && i < PyList_GET_SIZE(vals) && !found; i++) {
		PyObject *m = PyList_GET_ITEM(vals, i);
		if (!PyModule_Check(m))
			continue;
		PyObject *f = PyDict_GetItemString(PyModule_GetDict(m), "__file__");
		const char *u = f && PyUnicode_Check(f) ? PyUnicode_AsUTF8(f) : NULL;
		char rp[PATH_MAX];
		if (!u) {
			PyErr_Clear();
			continue;
		}
		if (realpath(u, rp) && strcmp(rp, path) == 0)
			found = Py_NewRef(m);
	}
	Py_XDECREF(vals);
	PyErr_Clear();
	return found;
}

/* The error of a failed compile, as "FILE:LINE: SyntaxError: msg". */
static void compile_error(char *msg, size_t cap)
{
	PyObject *t, *v, *tb;
	PyErr_Fetch(&t, &v, &tb);
	PyErr_NormalizeException(&t, &v, &tb);
	PyObject *m = v ? PyObject_GetAttrString(v, "msg") : NULL;
	PyObject *f = v ? PyObject_GetAttrString(v, "filename") : NULL;
	PyObject *l = v ? PyObject_GetAttrString(v, "lineno") : NULL;
	PyErr_Clear();
	PyObject *s = (!m && v) ? PyObject_Str(v) : NULL;
	long line = l && PyLong_Check(l) ? PyLong_AsLong(l) : 0;
	PyErr_Clear();
	snprintf(msg, cap, "%s:%ld: %s: %s", f && PyUnicode_Check(f) ? utf8_or(f) : "?", line,
		 t ? ((PyTypeObject *)t)->tp_name : "error", utf8_or(m ? m : s));
	Py_XDECREF(m);
	Py_XDECREF(f);
	Py_XDECREF(l);
	Py_XDECREF(s);
	Py_XDECREF(t);
	Py_XDECREF(v);
	Py_XDECREF(tb);
}

static int cmp_line(const void *a, const void *b)
{
	int x = (*(PyCodeObject *const *)a)->co_firstlineno;
	int y = (*(PyCodeObject *const *)b)->co_firstlineno;
	return (x > y) - (x < y);
}

/* The old units of the module: code of live functions whose globals are
 * its dict and whose qualname has no "<locals>", each once, by line. */
static PyCodeObject **old_units(struct reload *rl, size_t *n)
{
	PyCodeObject **v = NULL;
	size_t cap = 0;
	*n = 0;
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(rl->funcs); i++) {
		PyFunctionObject *f = (PyFunctionObject *)PyList_GET_ITEM(rl->funcs, i);
		PyCodeObject *co = (PyCodeObject *)f->func_code;
		/* A resumed or restarted call's continuation is no definition:
		 * its function dies with the call. */
		if (f->func_globals != rl->globals || eq(co->co_filename, rl->filename) != 1 ||
		    strstr(utf8_or(co->co_qualname), "<locals>") ||
		    agent_resume__is_continuation((PyObject *)f))
			continue;
		bool dup = false;
		for (size_t k = 0; k < *n && !dup; k++)
			dup = v[k] == co;
		if (dup)
			continue;
		if (*n == cap) {
			PyCodeObject **nv = realloc(v, (cap = cap ? 2 * cap : 64) * sizeof *nv);
			if (!nv) {
				free(v);
				return NULL;
			}
			v = nv;
		}
		v[(*n)++] = co;
	}
	PyErr_Clear();
	if (*n)
		qsort(v, *n, sizeof *v, cmp_line);
	return v ? v : calloc(1, sizeof *v);
}

/* One unit: old code against the new definitions of its qualname. */
static int reload_unit(struct reload *rl, PyCodeObject *old, PyObject *defs)
{
	PyObject *cands = PyDict_GetItemWithError(defs, old->co_qualname);
	if (!cands) {
		PyErr_Clear();
		return 0; /* gone from the file: the live function keeps its code */
	}
	/* Same qualname several times (getter and setter): pair by rank. */
	PyObject *same_name = PyDict_GetItemWithError(rl->olds, old->co_qualname);
	Py_ssize_t rank = 0, nold = same_name ? PyList_GET_SIZE(same_name) : 0;
	while (rank < nold && PyList_GET_ITEM(same_name, rank) != (PyObject *)old)
		rank++;
	if (rank == nold) {
		PyErr_Clear();
		return -ENOMEM;
	}
	if (nold != PyList_GET_SIZE(cands))
		return add_entry(rl, WIRE_RELOAD_REFUSED, old, 0,
				 "defined %zd time(s) in the file, %zd live definition(s): "
				 "cannot tell which is which",
				 PyList_GET_SIZE(cands), nold);
	PyCodeObject *nw = (PyCodeObject *)PyTuple_GET_ITEM(PyList_GET_ITEM(cands, rank), 0);
	/* A function suture guarded runs its patch: the source's code is
	 * compared with what the patch was made from. Unchanged, it keeps its
	 * guard (even if its lines moved: the guard holds the old lines). */
	PyCodeObject *base = (PyCodeObject *)agent_install__original_of(
		(PyObject *)agent_resume__original(old));
	bool lines = false;
	int same = code_same(base, nw, &lines);
	if (same < 0)
		return -ENOMEM;
	if (same && (!lines || base != old))
		return 0;
	PyObject *pairs = PyList_New(0);
	char why[256] = "";
	if (!pairs)
		return -ENOMEM;
	int r = pair(old, nw, pairs, why, sizeof why);
	int rc = 0, err = 0;
	if (r < 0) {
		rc = -ENOMEM;
	} else if (r > 0) {
		rc = same ? 0 : add_entry(rl, WIRE_RELOAD_REFUSED, nw, 0, "%s", why);
	} else {
		uint32_t nf = switch_pairs(rl, pairs, &err);
		PyObject *t = Py_BuildValue("(OI)", pairs, (unsigned)nf);
		if (!t || PyList_Append(rl->done, t))
			PyErr_Clear(); /* only its listing and rollback are lost */
		Py_XDECREF(t);
		if (same)
			rl->moved++;
		else if (err)
			rc = add_entry(rl, WIRE_RELOAD_REFUSED, nw, nf,
				       "a function refused the new code (%u switched)", nf);
		else
			rc = add_entry(rl, WIRE_RELOAD_RELOADED, nw, nf, "%u function object(s)",
				       nf);
	}
	Py_DECREF(pairs);
	return rc;
}

static int reload_module(struct reload *rl, const struct wire_reload *m,
			 struct wire_reload_result *res)
{
	PyObject *code = NULL, *defs = NULL;
	PyCodeObject **units = NULL;
	size_t nunits = 0;
	char *src = NULL;
	int rc = -ENOMEM;

	if (memchr(m->source, 0, m->source_len)) {
		snprintf(res->message, sizeof res->message,
			 "%.400s: the source holds a NUL byte: not compiled", m->path);
		return -EINVAL;
	}
	if (!(src = malloc(m->source_len + 1)))
		goto out;
	memcpy(src, m->source, m->source_len);
	src[m->source_len] = 0;
	if (agent_install__functions(&rl->funcs) || !(units = old_units(rl, &nunits)) ||
	    index_olds(rl, units, nunits))
		goto out;
	/* The name the live code carries (normally __file__ itself). */
	if (nunits)
		Py_SETREF(rl->filename, Py_NewRef(units[0]->co_filename));
	if (!(code = Py_CompileStringObject(src, rl->filename, Py_file_input, NULL, -1))) {
		compile_error(res->message, sizeof res->message);
		rc = -EINVAL;
		goto out;
	}
	if (!(defs = PyDict_New()) || index_defs((PyCodeObject *)code, defs))
		goto out;
	rc = 0;
	for (size_t i = 0; i < nunits && rc == 0; i++)
		rc = reload_unit(rl, units[i], defs);
	/* New in the file, in source order (a dict keeps insertion order). */
	PyObject *qn, *list;
	Py_ssize_t pos = 0;
	while (rc == 0 && PyDict_Next(defs, &pos, &qn, &list))
		for (Py_ssize_t k = 0; rc == 0 && k < PyList_GET_SIZE(list); k++)
			if (PyDict_Contains(rl->olds, qn) == 0)
				rc = add_new(rl,
					     (PyCodeObject *)
						     PyTuple_GET_ITEM(PyList_GET_ITEM(list, k), 0),
					     (PyCodeObject *)
						     PyTuple_GET_ITEM(PyList_GET_ITEM(list, k), 1));
out:
	if (rc == -ENOMEM && !res->message[0])
		snprintf(res->message, sizeof res->message, "agent: out of memory");
	PyErr_Clear();
	free(src);
	free(units);
	Py_XDECREF(code);
	Py_XDECREF(defs);
	return rc;
}

/* Reloads that changed something, numbered in this process: the name
 * one is listed and rolled back by (agent thread only). */
static unsigned g_reloads;

int agent_reload__run(const struct wire_reload *m, struct wire_buf *b)
{
	struct reload rl = { 0 };
	struct wire_reload_result res;
	PyObject *mod = NULL;
	size_t at;

	memset(&res, 0, sizeof res);
	res.request_id = m->request_id;
	if (!(mod = find_module(m->path))) {
		res.status = -ENOENT;
		snprintf(res.message, sizeof res.message,
			 "%.400s is not loaded in the target (no module has it as __file__)",
			 m->path);
	} else if (!(rl.done = PyList_New(0))) {
		res.status = -ENOMEM;
		snprintf(res.message, sizeof res.message, "agent: out of memory");
	} else {
		rl.globals = PyModule_GetDict(mod);
		rl.filename = Py_XNewRef(PyDict_GetItemString(rl.globals, "__file__"));
		res.status = rl.filename ? reload_module(&rl, m, &res) : -ENOENT;
	}
	if (res.status == 0) {
		uint32_t nrel = 0, nref = 0, nadd = 0;
		for (size_t i = 0; i < rl.n; i++) {
			nrel += rl.v[i].kind == WIRE_RELOAD_RELOADED;
			nref += rl.v[i].kind == WIRE_RELOAD_REFUSED;
			nadd += rl.v[i].kind == WIRE_RELOAD_ADDED;
		}
		res.moved = rl.moved;
		if (nrel || nadd || rl.moved) {
			const char *base = strrchr(m->path, '/');
			snprintf(res.name, sizeof res.name, "reload:%.400s#%u",
				 base ? base + 1 : m->path, ++g_reloads);
		}
		/* Held crashes whose function now runs other code restart there
		 * (the debugger that holds them works out where). */
		for (Py_ssize_t i = 0; res.name[0] && i < PyList_GET_SIZE(rl.done); i++) {
			PyObject *t = PyList_GET_ITEM(rl.done, i);
			agent_install__record_reload(res.name, PyTuple_GET_ITEM(t, 0),
						     (uint32_t)PyLong_AsUnsignedLong(
							     PyTuple_GET_ITEM(t, 1)));
		}
		if (nrel)
			agent_park__reloaded(res.name);
		snprintf(res.message, sizeof res.message,
			 "%u reloaded, %u refused, %u added, %u moved", nrel, nref, nadd, rl.moved);
	} else {
		rl.n = 0; /* nothing changed: no lines */
	}
	res.count = (uint32_t)rl.n;
	int rc = wire_msg__reload_result_begin(b, &res, &at);
	for (size_t i = 0; i < rl.n; i++)
		wire_msg__reload_result_entry(b, &rl.v[i]);
	if (!rc)
		rc = wire_msg__reload_result_end(b, at);
	agent__log("reload %s: %d: %s", m->path, res.status, res.message);
	free(rl.v);
	Py_XDECREF(rl.done);
	Py_XDECREF(rl.funcs);
	Py_XDECREF(rl.by_code);
	Py_XDECREF(rl.olds);
	Py_XDECREF(rl.filename);
	Py_XDECREF(mod);
	PyErr_Clear();
	return rc;
}
