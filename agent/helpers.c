/* agent: runtime helpers for guards (see helpers.h, docs/guards.md).
 *
 * Contract shared by every helper: on healthy input it does exactly what
 * the replaced instruction did (same call, same result, same exception);
 * only the one structural failure the guard heals is turned into the
 * fallback. Errors other than that one are left set, unchanged, so the
 * traceback the program sees is the one it would have seen.
 */
#include "agent/helpers.h"
#include "agent/agent.h"
#include "agent/probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --shadow (SUTURE_SHADOW=1 in the target's environment, read once): one
 * line on fd 2 each time a guard hands its fallback on. Written with stdio,
 * not sys.stderr: no Python code may run while a handler holds the
 * exception. */
static int shadow_on(void)
{
	static int on = -1;
	if (on < 0) {
		const char *v = getenv("SUTURE_SHADOW");
		on = v && *v && strcmp(v, "0") != 0;
	}
	return on;
}

/* "key_guard fallback None used in load (app.py:4): KeyError 'timeout' swallowed".
 * Names the Python frame running the guard (the helper is a C function it
 * calls). exc may be NULL (then etype/emsg describe it). Never raises. */
static void shadow_report(const char *kind, const char *fallback, PyObject *exc)
{
	if (!shadow_on())
		return;
	PyObject *et, *ev, *etb;
	PyErr_Fetch(&et, &ev, &etb);
	const char *qual = "?", *file = "?", *type = "?", *msg = "";
	int line = -1;
	PyObject *q = NULL, *r = NULL;
	PyFrameObject *f = PyEval_GetFrame(); /* borrowed */
	if (f) {
		PyCodeObject *code = PyFrame_GetCode(f); /* new reference */
		line = PyFrame_GetLineNumber(f);
		q = PyObject_GetAttrString((PyObject *)code, "co_qualname");
		qual = q ? PyUnicode_AsUTF8(q) : NULL;
		file = PyUnicode_AsUTF8(code->co_filename);
		Py_DECREF(code);
	}
	if (exc) {
		type = Py_TYPE(exc)->tp_name;
		PyObject *str = PyObject_Str(exc);
		r = str ? PyObject_Repr(str) : NULL;
		Py_XDECREF(str);
		msg = r ? PyUnicode_AsUTF8(r) : NULL;
	}
	const char *base = file ? strrchr(file, '/') : NULL;
	fprintf(stderr, "[suture] shadow: %s fallback %s used in %s (%s:%d): %s %s swallowed\n",
		kind, fallback, qual ? qual : "?",
		base   ? base + 1
		: file ? file
		       : "?",
		line, type, msg ? msg : "");
	fflush(stderr);
	Py_XDECREF(q);
	Py_XDECREF(r);
	PyErr_Clear();
	PyErr_Restore(et, ev, etb);
}

/* The exception was raised by the instruction that holds the guard, not by
 * Python code it called: the traceback has exactly one entry (this frame's,
 * added when the exception entered it; see PyTraceBack_Here in ceval.c). */
static int raised_here(PyObject *exc)
{
	PyObject *tb = PyException_GetTraceback(exc);
	if (!tb)
		return 0;
	PyObject *next = PyObject_GetAttrString(tb, "tb_next");
	Py_DECREF(tb);
	if (!next) {
		PyErr_Clear();
		return 0;
	}
	int here = next == Py_None;
	Py_DECREF(next);
	return here;
}

static int message_is(PyObject *exc, const char *text)
{
	PyObject *s = PyObject_Str(exc);
	if (!s) {
		PyErr_Clear();
		return 0;
	}
	const char *u = PyUnicode_AsUTF8(s);
	int eq = u && strcmp(u, text) == 0;
	if (!u)
		PyErr_Clear();
	Py_DECREF(s);
	return eq;
}

static int attr_on_none(PyObject *exc)
{
	if (!PyErr_GivenExceptionMatches(exc, PyExc_AttributeError))
		return 0;
	/* 3.11 records the object in AttributeError.obj (Objects/object.c,
	 * set_attribute_error_context); fall back to the message. */
	PyObject *obj = PyObject_GetAttrString(exc, "obj");
	if (!obj) {
		PyErr_Clear();
		return 0;
	}
	int none = obj == Py_None;
	Py_DECREF(obj);
	if (none)
		return 1;
	PyObject *s = PyObject_Str(exc);
	if (!s) {
		PyErr_Clear();
		return 0;
	}
	const char *u = PyUnicode_AsUTF8(s);
	int pfx = u && strncmp(u, "'NoneType' object has no attribute", 34) == 0;
	if (!u)
		PyErr_Clear();
	Py_DECREF(s);
	return pfx;
}

static const char NOT_SUBSCRIPTABLE[] = "'NoneType' object is not subscriptable";
static const char NOT_CALLABLE[] = "'NoneType' object is not callable";

/* The precise filters a handler guard runs after CHECK_EXC_MATCH, so the
 * same exception type raised for another reason (inside a property, a
 * __getitem__ written in Python, a callee) still propagates. Each takes the
 * exception and returns None to heal, or the exception itself to re-raise
 * (called in the method form [helper, exc], so the block's stack never
 * holds more than lasti, the exception and one more item). Never raises. */
static const char *number_fallback(PyObject *exc);

static PyObject *verdict(PyObject *exc, int heal, const char *kind)
{
	if (heal) {
		const char *fb = "None";
		if (strcmp(kind, "division_guard") == 0 || strcmp(kind, "type_coercion_guard") == 0)
			fb = number_fallback(exc);
		shadow_report(kind, fb, exc);
		agent_install__fired();
		Py_RETURN_NONE;
	}
	return Py_NewRef(exc);
}

/* 0.0 for true division and float(), 0 for // and % and int(), read from
 * CPython's messages ("float division by zero", "integer division or
 * modulo by zero", "could not convert string to float", ...). */
static const char *number_fallback(PyObject *exc)
{
	PyObject *s = PyObject_Str(exc);
	const char *u = s ? PyUnicode_AsUTF8(s) : NULL;
	const char *fb = "0";
	if (u && PyErr_GivenExceptionMatches(exc, PyExc_ZeroDivisionError))
		fb = strstr(u, "floor") || strstr(u, "modulo") ? "0" : "0.0";
	else if (u && strstr(u, "float"))
		fb = "0.0";
	PyErr_Clear();
	Py_XDECREF(s);
	return fb;
}

/* The guard a match_here filter serves, from the exception type. */
static const char *here_kind(PyObject *exc)
{
	if (PyErr_GivenExceptionMatches(exc, PyExc_KeyError))
		return "key_guard";
	if (PyErr_GivenExceptionMatches(exc, PyExc_IndexError))
		return "index_guard";
	if (PyErr_GivenExceptionMatches(exc, PyExc_ZeroDivisionError))
		return "division_guard";
	return "type_coercion_guard";
}

static int check_exc(PyObject *const *args, Py_ssize_t nargs, const char *name)
{
	if (nargs == 1 && PyExceptionInstance_Check(args[0]))
		return 0;
	PyErr_Format(PyExc_TypeError, "%s(exc): one exception instance expected", name);
	return -1;
}

static PyObject *h_match_here(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	(void)self;
	if (check_exc(args, nargs, "match_here") < 0)
		return NULL;
	return verdict(args[0], raised_here(args[0]), here_kind(args[0]));
}

static PyObject *h_match_none_attr(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	(void)self;
	if (check_exc(args, nargs, "match_none_attr") < 0)
		return NULL;
	return verdict(args[0], raised_here(args[0]) && attr_on_none(args[0]), "null_guard");
}

static PyObject *h_match_none_subscript(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	(void)self;
	if (check_exc(args, nargs, "match_none_subscript") < 0)
		return NULL;
	PyObject *e = args[0];
	return verdict(e,
		       raised_here(e) && PyErr_GivenExceptionMatches(e, PyExc_TypeError) &&
			       message_is(e, NOT_SUBSCRIPTABLE),
		       "subscript_guard");
}

static PyObject *h_match_none_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	(void)self;
	if (check_exc(args, nargs, "match_none_call") < 0)
		return NULL;
	PyObject *e = args[0];
	return verdict(e,
		       raised_here(e) && PyErr_GivenExceptionMatches(e, PyExc_TypeError) &&
			       message_is(e, NOT_CALLABLE),
		       "callable_guard");
}

static PyObject *h_match_chain(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	(void)self;
	if (check_exc(args, nargs, "match_chain") < 0)
		return NULL;
	PyObject *e = args[0];
	return verdict(e,
		       raised_here(e) && (PyErr_GivenExceptionMatches(e, PyExc_KeyError) ||
					  PyErr_GivenExceptionMatches(e, PyExc_IndexError) ||
					  (PyErr_GivenExceptionMatches(e, PyExc_TypeError) &&
					   message_is(e, NOT_SUBSCRIPTABLE))),
		       "chain_subscript_guard");
}

/* a + b (or a += b); if that raises TypeError and one side is a str, the
 * result is str(a) + str(b). Anything else propagates unchanged. */
static PyObject *str_coerce(PyObject *const *args, Py_ssize_t nargs, int inplace)
{
	if (nargs != 2) {
		PyErr_SetString(PyExc_TypeError, "str_coerce(a, b): two arguments");
		return NULL;
	}
	PyObject *a = args[0], *b = args[1];
	PyObject *r = inplace ? PyNumber_InPlaceAdd(a, b) : PyNumber_Add(a, b);
	if (r || !PyErr_ExceptionMatches(PyExc_TypeError) ||
	    !(PyUnicode_Check(a) || PyUnicode_Check(b)))
		return r;
	PyObject *et, *ev, *etb;
	PyErr_Fetch(&et, &ev, &etb);
	PyObject *sa = PyObject_Str(a);
	PyObject *sb = sa ? PyObject_Str(b) : NULL;
	r = sb ? PyUnicode_Concat(sa, sb) : NULL;
	Py_XDECREF(sb);
	Py_XDECREF(sa);
	if (!r) {
		/* str() itself failed: the program sees its original error. */
		PyErr_Clear();
		PyErr_Restore(et, ev, etb);
		return NULL;
	}
	PyErr_NormalizeException(&et, &ev, &etb);
	if (ev)
		shadow_report("str_coerce_guard", "str(a) + str(b)", ev);
	agent_install__fired();
	Py_XDECREF(et);
	Py_XDECREF(ev);
	Py_XDECREF(etb);
	return r;
}

static PyObject *h_str_coerce(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	(void)self;
	return str_coerce(args, nargs, 0);
}

static PyObject *h_str_coerce_inplace(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	(void)self;
	return str_coerce(args, nargs, 1);
}

/* The mode open() was asked for: its second positional argument or the
 * `mode` keyword; "r" when absent. Borrowed; NULL if not a str. */
static PyObject *open_mode(PyObject *const *args, Py_ssize_t npos, PyObject *kwnames)
{
	if (npos >= 2)
		return PyUnicode_Check(args[1]) ? args[1] : NULL;
	Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
	for (Py_ssize_t i = 0; i < nkw; i++) {
		PyObject *k = PyTuple_GET_ITEM(kwnames, i);
		if (PyUnicode_CompareWithASCIIString(k, "mode") == 0)
			return PyUnicode_Check(args[npos + i]) ? args[npos + i] : NULL;
	}
	return NULL;
}

/* open_or_empty(opener, *args, **kwargs): opener(*args, **kwargs), where
 * opener is the callable the program loaded (normally the builtin open).
 * FileNotFoundError gives an empty in-memory file of the requested mode:
 * io.BytesIO() for a binary mode, io.StringIO() otherwise. */
static PyObject *h_open_or_empty(PyObject *self, PyObject *const *args, size_t nargsf,
				 PyObject *kwnames)
{
	(void)self;
	Py_ssize_t npos = PyVectorcall_NARGS(nargsf);
	if (npos < 1) {
		PyErr_SetString(PyExc_TypeError, "open_or_empty(opener, ...): no opener");
		return NULL;
	}
	PyObject *r = PyObject_Vectorcall(args[0], args + 1, npos - 1, kwnames);
	if (r || !PyErr_ExceptionMatches(PyExc_FileNotFoundError))
		return r;
	PyObject *et, *ev, *etb;
	PyErr_Fetch(&et, &ev, &etb);
	PyObject *mode = open_mode(args + 1, npos - 1, kwnames);
	int binary = 0;
	if (mode) {
		const char *m = PyUnicode_AsUTF8(mode);
		binary = m && strchr(m, 'b');
		PyErr_Clear();
	}
	PyObject *io = PyImport_ImportModule("io");
	r = io ? PyObject_CallMethod(io, binary ? "BytesIO" : "StringIO", NULL) : NULL;
	Py_XDECREF(io);
	if (!r) {
		PyErr_Clear();
		PyErr_Restore(et, ev, etb);
		return NULL;
	}
	PyErr_NormalizeException(&et, &ev, &etb);
	if (ev)
		shadow_report("file_guard", binary ? "io.BytesIO()" : "io.StringIO()", ev);
	agent_install__fired();
	Py_XDECREF(et);
	Py_XDECREF(ev);
	Py_XDECREF(etb);
	return r;
}

static PyMethodDef helper_defs[] = {
	{ "match_here", (PyCFunction)(void (*)(void))h_match_here, METH_FASTCALL,
	  "match_here(exc): None if exc was raised by the guarded instruction, else exc" },
	{ "match_none_attr", (PyCFunction)(void (*)(void))h_match_none_attr, METH_FASTCALL,
	  "match_none_attr(exc): None for an AttributeError on None raised here, else exc" },
	{ "match_none_subscript", (PyCFunction)(void (*)(void))h_match_none_subscript,
	  METH_FASTCALL, "match_none_subscript(exc): None for subscripting None here, else exc" },
	{ "match_none_call", (PyCFunction)(void (*)(void))h_match_none_call, METH_FASTCALL,
	  "match_none_call(exc): None for calling None here, else exc" },
	{ "match_chain", (PyCFunction)(void (*)(void))h_match_chain, METH_FASTCALL,
	  "match_chain(exc): None for a missing/None link raised here, else exc" },
	{ "str_coerce", (PyCFunction)(void (*)(void))h_str_coerce, METH_FASTCALL,
	  "str_coerce(a, b): a + b, or str(a) + str(b) if that fails on a str" },
	{ "str_coerce_inplace", (PyCFunction)(void (*)(void))h_str_coerce_inplace, METH_FASTCALL,
	  "str_coerce_inplace(a, b): a += b, or str(a) + str(b) if that fails on a str" },
	{ "open_or_empty", (PyCFunction)(void (*)(void))h_open_or_empty,
	  METH_FASTCALL | METH_KEYWORDS,
	  "open_or_empty(opener, *args, **kw): opener(...), or an empty in-memory file" },
	{ "probe_hit", (PyCFunction)(void (*)(void))agent_probe__hit, METH_FASTCALL,
	  "probe_hit(id): report a live probe's line (agent/probe.c); None, never raises" },
	{ NULL, NULL, 0, NULL },
};

PyObject *suture_helpers__get(const char *name)
{
	for (PyMethodDef *d = helper_defs; d->ml_name; d++)
		if (strcmp(d->ml_name, name) == 0)
			return PyCFunction_NewEx(d, NULL, NULL);
	PyErr_Format(PyExc_KeyError, "suture helpers: no helper named '%s'", name);
	return NULL;
}

static struct PyModuleDef helpers_module = {
	PyModuleDef_HEAD_INIT,
	"_suture_helpers",
	"suture's runtime helpers for guards (tests load libsuture_agent.so as this module)",
	-1,
	helper_defs,
	NULL,
	NULL,
	NULL,
	NULL,
};

PyMODINIT_FUNC PyInit__suture_helpers(void)
{
	return PyModule_Create(&helpers_module);
}
