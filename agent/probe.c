/* agent: live probes, the target's side (agent/probe.h, docs/design.md §12).
 *
 * Nothing here runs program code. A probe's expressions (probe/parse.c, the
 * same parser the debugger ran) are evaluated by hand over the calling
 * frame:
 *   - names: the frame's fast locals and cells (by the interned names of
 *     co_localsplusnames), then f_locals when the frame has a dict, then
 *     globals, then builtins: dictionary reads with str keys;
 *   - attributes: a module's dict; a class (metatype `type` only) through
 *     _PyType_Lookup when the value is no descriptor; an instance only when
 *     its type uses PyObject_GenericGetAttr (no __getattr__ or
 *     __getattribute__) and the type attribute of that name is absent, a
 *     plain value or a C-level non-data descriptor (function,
 *     classmethod, staticmethod, method descriptor); data descriptors
 *     (property, __slots__ members, getsets) are refused;
 *   - subscripts of exact dict (keys: exact str, int, float, bool, None),
 *     list, tuple and str (int indexes);
 *   - arithmetic and comparisons of exact int, float, bool and str (sizes
 *     bounded), `is`, `in` over exact containers of such values;
 *   - truth of None, bool, numbers and exact str/list/tuple/dict/set only.
 * Values are rendered by the agent (render()), never by repr() of a
 * program type: exact builtin types are written out with size limits,
 * anything else as <TypeName at 0x...>.
 *
 * The helper runs on the program's thread with the GIL held and never
 * raises; a hit is sent without blocking the program (a full socket drops
 * the line and counts it, like the rate limit).
 */
#include "agent/probe.h"
#include "agent/agent-priv.h"
#include "probe/probe.h"
#include "rewrite/rewrite.h"

#include "internal/pycore_code.h" /* _PyLocals_GetKind, CO_FAST_CELL */

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Static_assert(WIRE_PROBE_TEXT_MAX == PROBE_TEXT_MAX, "the wire bounds what the parser takes");
_Static_assert(WIRE_PROBE_MAX_VALUES == PROBE_FMT_MAX_EXPRS, "one value per field");

#define AGENT_PROBES 8
#define VALUE_MAX 512          /* bytes of one rendered value */
#define RENDER_ITEMS 16        /* items of a container shown */
#define RENDER_DEPTH 3         /* containers inside containers */
#define STR_SHOWN 200          /* characters of a string shown */
#define INT_BITS_MAX 4096      /* operands of arithmetic; larger ints are shown by size */
#define SNAPSHOT_PARK_MS 10000 /* a snapshot's thread waits at most this long */

struct expr_consts {
	/* Per node: interned name (NAME, ATTR), str or number (constants). */
	PyObject *obj[PROBE_EXPR_MAX_NODES];
};

struct agent_probe {
	bool used;
	int active; /* read by the helper without the lock (atomics) */
	bool armed;
	bool snapshot;
	uint32_t id, line;
	uint32_t count, rate;
	uint64_t hits, dropped, dropped_since, refused;
	uint64_t last_ns;
	double tokens;
	char file[512];
	char fmt_text[PROBE_TEXT_MAX + 1];
	char cond_text[PROBE_TEXT_MAX + 1];
	struct probe_format fmt;
	struct probe_expr cond;
	bool has_cond;
	struct expr_consts fmt_k[PROBE_FMT_MAX_EXPRS];
	struct expr_consts cond_k;
	/* The code objects holding the line (strong), and after ARM the
	 * (original, probed) pairs the patches made. */
	PyObject *origs, *pairs;
};

static struct agent_probe g_probes[AGENT_PROBES];
static uint32_t g_next_id = 1;
static uint64_t g_next_event = 1;
/* Snapshots: one parked thread at a time (agent_g.lock). */
static pthread_cond_t g_park_cond = PTHREAD_COND_INITIALIZER;
static uint64_t g_parked_event, g_released_event;
/* Set when the debugger left with probes in place (agent_g.lock). */
static bool g_orphans;

static void trace_update_all(void);

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Evaluation                                                          */

struct ev {
	const char *src;
	const struct probe_expr *e;
	const struct expr_consts *k;
	_PyInterpreterFrame *f;
	char why[160]; /* why the value could not be had */
};

static PyObject *fail(struct ev *ev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static PyObject *fail(struct ev *ev, const char *fmt, ...)
{
	if (!ev->why[0]) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(ev->why, sizeof ev->why, fmt, ap);
		va_end(ap);
	}
	PyErr_Clear();
	return NULL;
}

static bool is_plain_scalar(PyObject *o)
{
	return o == Py_None || PyBool_Check(o) || PyLong_CheckExact(o) || PyFloat_CheckExact(o) ||
	       PyUnicode_CheckExact(o);
}

static bool is_number(PyObject *o)
{
	return PyBool_Check(o) || PyLong_CheckExact(o) || PyFloat_CheckExact(o);
}

static bool int_small(PyObject *o)
{
	if (!PyLong_Check(o))
		return true;
	size_t bits = _PyLong_NumBits(o);
	PyErr_Clear();
	return bits != (size_t)-1 && bits <= INT_BITS_MAX;
}

/* A variable of the frame, by interned name; NULL with why. */
static PyObject *lookup_name(struct ev *ev, PyObject *name, const struct probe_node *nd)
{
	_PyInterpreterFrame *f = ev->f;
	PyCodeObject *co = f->f_code;
	for (int i = 0; i < co->co_nlocalsplus; i++) {
		PyObject *n = PyTuple_GET_ITEM(co->co_localsplusnames, i);
		if (n != name && PyUnicode_Compare(n, name) != 0)
			continue;
		PyObject *v = f->localsplus[i];
		_PyLocals_Kind kind = _PyLocals_GetKind(co->co_localspluskinds, i);
		if (v && (kind & (CO_FAST_CELL | CO_FAST_FREE)) && PyCell_Check(v))
			v = PyCell_GET(v);
		if (!v)
			return fail(ev, "<unbound %.*s>", (int)nd->len, ev->src + nd->off);
		return Py_NewRef(v);
	}
	PyErr_Clear();
	PyObject *scopes[3] = { f->f_locals, f->f_globals, f->f_builtins };
	for (int s = 0; s < 3; s++) {
		if (!scopes[s] || !PyDict_CheckExact(scopes[s]))
			continue;
		PyObject *v = PyDict_GetItemWithError(scopes[s], name);
		if (v)
			return Py_NewRef(v);
		PyErr_Clear();
	}
	return fail(ev, "<no name %.*s>", (int)nd->len, ev->src + nd->off);
}

static bool c_level_nondata(PyObject *descr)
{
	PyTypeObject *t = Py_TYPE(descr);
	return t == &PyFunction_Type || t == &PyClassMethod_Type || t == &PyStaticMethod_Type ||
	       t == &PyMethodDescr_Type || t == &PyClassMethodDescr_Type || t == &PyCFunction_Type;
}

static PyObject *get_attr(struct ev *ev, PyObject *obj, PyObject *name, const struct probe_node *nd)
{
	const char *an = ev->src + nd->off;
	int al = (int)nd->len;
	if (PyModule_CheckExact(obj)) {
		PyObject *d = PyModule_GetDict(obj);
		PyObject *v = d ? PyDict_GetItemWithError(d, name) : NULL;
		if (v)
			return Py_NewRef(v);
		return fail(ev, "<no attribute %.*s>", al, an);
	}
	if (PyType_Check(obj)) {
		if (Py_TYPE(obj) != &PyType_Type)
			return fail(ev, "<refused: %.*s of a class with a metaclass>", al, an);
		PyObject *v = _PyType_Lookup((PyTypeObject *)obj, name);
		if (!v)
			return fail(ev, "<no attribute %.*s>", al, an);
		if (Py_TYPE(v)->tp_descr_get)
			return fail(ev, "<refused: %.*s is a descriptor>", al, an);
		return Py_NewRef(v);
	}
	PyTypeObject *tp = Py_TYPE(obj);
	if (tp->tp_getattro != PyObject_GenericGetAttr)
		return fail(ev, "<refused: %s has __getattr__ or __getattribute__>", tp->tp_name);
	PyObject *descr = _PyType_Lookup(tp, name);
	if (descr && Py_TYPE(descr)->tp_descr_set)
		return fail(ev, "<refused: %.*s is a property or slot of %s>", al, an, tp->tp_name);
	if (descr && Py_TYPE(descr)->tp_descr_get && !c_level_nondata(descr))
		return fail(ev, "<refused: %.*s is a descriptor of %s>", al, an, tp->tp_name);
	PyObject *v = PyObject_GenericGetAttr(obj, name);
	if (!v)
		return fail(ev, "<no attribute %.*s>", al, an);
	return v;
}

static PyObject *subscript(struct ev *ev, PyObject *c, PyObject *k)
{
	if (PyDict_CheckExact(c)) {
		if (!is_plain_scalar(k))
			return fail(ev, "<refused: dict key of type %s>", Py_TYPE(k)->tp_name);
		PyObject *v = PyDict_GetItemWithError(c, k);
		if (!v)
			return fail(ev, "<KeyError>");
		return Py_NewRef(v);
	}
	if (PyList_CheckExact(c) || PyTuple_CheckExact(c) || PyUnicode_CheckExact(c)) {
		if (!PyLong_CheckExact(k) && !PyBool_Check(k))
			return fail(ev, "<refused: index of type %s>", Py_TYPE(k)->tp_name);
		Py_ssize_t i = PyLong_AsSsize_t(k);
		if (i == -1 && PyErr_Occurred())
			return fail(ev, "<IndexError>");
		Py_ssize_t n = PyList_CheckExact(c)    ? PyList_GET_SIZE(c)
			       : PyTuple_CheckExact(c) ? PyTuple_GET_SIZE(c)
						       : PyUnicode_GET_LENGTH(c);
		if (i < 0)
			i += n;
		if (i < 0 || i >= n)
			return fail(ev, "<IndexError>");
		if (PyList_CheckExact(c))
			return Py_NewRef(PyList_GET_ITEM(c, i));
		if (PyTuple_CheckExact(c))
			return Py_NewRef(PyTuple_GET_ITEM(c, i));
		return PyUnicode_Substring(c, i, i + 1);
	}
	return fail(ev, "<refused: subscript of %s>", Py_TYPE(c)->tp_name);
}

/* 1 true, 0 false, -1 refused (why set). */
static int truth(struct ev *ev, PyObject *o)
{
	if (o == Py_None)
		return 0;
	if (is_number(o) || PyUnicode_CheckExact(o) || PyList_CheckExact(o) ||
	    PyTuple_CheckExact(o) || PyDict_CheckExact(o) || PySet_CheckExact(o) ||
	    PyFrozenSet_CheckExact(o) || PyBytes_CheckExact(o)) {
		int r = PyObject_IsTrue(o);
		if (r < 0)
			PyErr_Clear();
		return r;
	}
	fail(ev, "<refused: truth of %s>", Py_TYPE(o)->tp_name);
	return -1;
}

static PyObject *binop(struct ev *ev, int op, PyObject *a, PyObject *b)
{
	if (is_number(a) && is_number(b)) {
		if (!int_small(a) || !int_small(b))
			return fail(ev, "<refused: integer over %d bits>", INT_BITS_MAX);
		PyObject *r = NULL;
		switch (op) {
		case PROBE_ADD:
			r = PyNumber_Add(a, b);
			break;
		case PROBE_SUB:
			r = PyNumber_Subtract(a, b);
			break;
		case PROBE_MUL:
			r = PyNumber_Multiply(a, b);
			break;
		case PROBE_DIV:
			r = PyNumber_TrueDivide(a, b);
			break;
		case PROBE_FLOORDIV:
			r = PyNumber_FloorDivide(a, b);
			break;
		case PROBE_MOD:
			r = PyNumber_Remainder(a, b);
			break;
		}
		if (!r)
			return fail(ev, "<%s>",
				    PyErr_ExceptionMatches(PyExc_ZeroDivisionError)
					    ? "ZeroDivisionError"
					    : "arithmetic error");
		return r;
	}
	if (op == PROBE_ADD && PyUnicode_CheckExact(a) && PyUnicode_CheckExact(b)) {
		if (PyUnicode_GET_LENGTH(a) + PyUnicode_GET_LENGTH(b) > 65536)
			return fail(ev, "<refused: string over 65536 characters>");
		return PyUnicode_Concat(a, b);
	}
	if (op == PROBE_MUL && (PyUnicode_CheckExact(a) || PyUnicode_CheckExact(b))) {
		PyObject *s = PyUnicode_CheckExact(a) ? a : b, *n = s == a ? b : a;
		if (!PyLong_CheckExact(n) && !PyBool_Check(n))
			return fail(ev, "<refused: str * %s>", Py_TYPE(n)->tp_name);
		long times = PyLong_AsLong(n);
		PyErr_Clear();
		if (times > 0 && PyUnicode_GET_LENGTH(s) * (double)times > 65536)
			return fail(ev, "<refused: string over 65536 characters>");
		return PyNumber_Multiply(a, b);
	}
	return fail(ev, "<refused: %s %s %s>", Py_TYPE(a)->tp_name, probe_binop__name(op),
		    Py_TYPE(b)->tp_name);
}

static PyObject *compare(struct ev *ev, int op, PyObject *a, PyObject *b)
{
	int r;
	switch (op) {
	case PROBE_IS:
		return Py_NewRef(a == b ? Py_True : Py_False);
	case PROBE_IS_NOT:
		return Py_NewRef(a != b ? Py_True : Py_False);
	case PROBE_IN:
	case PROBE_NOT_IN:
		if (PyDict_CheckExact(b) || PySet_CheckExact(b) || PyFrozenSet_CheckExact(b)) {
			if (!is_plain_scalar(a))
				return fail(ev, "<refused: 'in' with a %s>", Py_TYPE(a)->tp_name);
			r = PySequence_Contains(b, a);
		} else if (PyUnicode_CheckExact(b)) {
			if (!PyUnicode_CheckExact(a))
				return fail(ev, "<refused: %s in str>", Py_TYPE(a)->tp_name);
			r = PyUnicode_Contains(b, a);
		} else if (PyList_CheckExact(b) || PyTuple_CheckExact(b)) {
			if (!is_plain_scalar(a))
				return fail(ev, "<refused: 'in' with a %s>", Py_TYPE(a)->tp_name);
			Py_ssize_t n = PySequence_Fast_GET_SIZE(b);
			PyObject **items = PySequence_Fast_ITEMS(b);
			r = 0;
			for (Py_ssize_t i = 0; i < n && r == 0; i++) {
				if (items[i] == a) {
					r = 1;
					break;
				}
				if (!is_plain_scalar(items[i]))
					return fail(ev, "<refused: 'in' over a %s item>",
						    Py_TYPE(items[i])->tp_name);
				r = PyObject_RichCompareBool(items[i], a, Py_EQ);
			}
		} else {
			return fail(ev, "<refused: 'in' %s>", Py_TYPE(b)->tp_name);
		}
		if (r < 0)
			return fail(ev, "<comparison error>");
		return Py_NewRef((r != 0) == (op == PROBE_IN) ? Py_True : Py_False);
	}
	bool ok = (is_number(a) && is_number(b)) ||
		  (PyUnicode_CheckExact(a) && PyUnicode_CheckExact(b)) ||
		  ((op == PROBE_EQ || op == PROBE_NE) && is_plain_scalar(a) && is_plain_scalar(b));
	if (!ok)
		return fail(ev, "<refused: %s %s %s>", Py_TYPE(a)->tp_name, probe_cmpop__name(op),
			    Py_TYPE(b)->tp_name);
	static const int pyop[] = { Py_EQ, Py_NE, Py_LT, Py_LE, Py_GT, Py_GE };
	PyObject *res = PyObject_RichCompare(a, b, pyop[op]);
	return res ? res : fail(ev, "<comparison error>");
}

static PyObject *eval(struct ev *ev, int16_t at)
{
	if (at < 0 || at >= ev->e->n)
		return fail(ev, "<malformed expression>");
	const struct probe_node *nd = &ev->e->nodes[at];
	PyObject *a = NULL, *b = NULL, *r = NULL;
	int t;
	switch (nd->kind) {
	case PROBE_N_NAME:
		return lookup_name(ev, ev->k->obj[at], nd);
	case PROBE_N_INT:
	case PROBE_N_FLOAT:
	case PROBE_N_STR:
		return Py_NewRef(ev->k->obj[at]);
	case PROBE_N_NONE:
		return Py_NewRef(Py_None);
	case PROBE_N_TRUE:
		return Py_NewRef(Py_True);
	case PROBE_N_FALSE:
		return Py_NewRef(Py_False);
	case PROBE_N_ATTR:
		if (!(a = eval(ev, nd->a)))
			return NULL;
		r = get_attr(ev, a, ev->k->obj[at], nd);
		break;
	case PROBE_N_SUBSCR:
		if (!(a = eval(ev, nd->a)) || !(b = eval(ev, nd->b)))
			break;
		r = subscript(ev, a, b);
		break;
	case PROBE_N_BINOP:
		if (!(a = eval(ev, nd->a)) || !(b = eval(ev, nd->b)))
			break;
		r = binop(ev, nd->op, a, b);
		break;
	case PROBE_N_CMP:
		if (!(a = eval(ev, nd->a)) || !(b = eval(ev, nd->b)))
			break;
		r = compare(ev, nd->op, a, b);
		break;
	case PROBE_N_AND:
	case PROBE_N_OR:
		if (!(a = eval(ev, nd->a)))
			return NULL;
		if ((t = truth(ev, a)) < 0)
			break;
		if ((nd->kind == PROBE_N_AND) != (t != 0))
			return a; /* and: a falsy a; or: a truthy a */
		Py_DECREF(a);
		return eval(ev, nd->b);
	case PROBE_N_NOT:
		if (!(a = eval(ev, nd->a)) || (t = truth(ev, a)) < 0)
			break;
		r = Py_NewRef(t ? Py_False : Py_True);
		break;
	case PROBE_N_NEG:
	case PROBE_N_POS:
		if (!(a = eval(ev, nd->a)))
			return NULL;
		if (!is_number(a) || !int_small(a)) {
			fail(ev, "<refused: unary on %s>", Py_TYPE(a)->tp_name);
			break;
		}
		r = nd->kind == PROBE_N_NEG ? PyNumber_Negative(a) : PyNumber_Positive(a);
		if (!r)
			fail(ev, "<arithmetic error>");
		break;
	default:
		fail(ev, "<malformed expression>");
	}
	Py_XDECREF(a);
	Py_XDECREF(b);
	if (!r)
		PyErr_Clear();
	return r;
}

/* ------------------------------------------------------------------ */
/* Rendering                                                           */

struct out {
	char *p;
	size_t len, cap;
	bool cut;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->len + n >= o->cap) {
		n = o->cap - 1 > o->len ? o->cap - 1 - o->len : 0;
		o->cut = true;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = 0;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void putf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct out *o, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* repr() of an exact builtin scalar (C code only), put as UTF-8. */
static void put_repr(struct out *o, PyObject *v)
{
	PyObject *r = PyObject_Repr(v);
	const char *u = r ? PyUnicode_AsUTF8(r) : NULL;
	if (u)
		puts_(o, u);
	else
		puts_(o, "<unrenderable>");
	Py_XDECREF(r);
	PyErr_Clear();
}

static void render(struct out *o, PyObject *v, int depth)
{
	if (o->cut)
		return;
	if (v == Py_None || PyBool_Check(v) || PyFloat_CheckExact(v)) {
		put_repr(o, v);
	} else if (PyLong_CheckExact(v)) {
		size_t bits = _PyLong_NumBits(v);
		PyErr_Clear();
		if (bits == (size_t)-1 || bits > 10000)
			putf(o, "<int of %zu bits>", bits);
		else
			put_repr(o, v);
	} else if (PyUnicode_CheckExact(v) || PyBytes_CheckExact(v)) {
		Py_ssize_t n = PyUnicode_CheckExact(v) ? PyUnicode_GET_LENGTH(v)
						       : PyBytes_GET_SIZE(v);
		PyObject *part = n <= STR_SHOWN ? Py_NewRef(v)
				 : PyUnicode_CheckExact(v)
					 ? PyUnicode_Substring(v, 0, STR_SHOWN)
					 : PyBytes_FromStringAndSize(PyBytes_AS_STRING(v),
								     STR_SHOWN);
		if (part)
			put_repr(o, part);
		Py_XDECREF(part);
		PyErr_Clear();
		if (n > STR_SHOWN)
			putf(o, "...(%zd chars)", n);
	} else if (PyList_CheckExact(v) || PyTuple_CheckExact(v)) {
		bool list = PyList_CheckExact(v);
		Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
		if (depth >= RENDER_DEPTH) {
			putf(o, "<%s of %zd items>", list ? "list" : "tuple", n);
			return;
		}
		puts_(o, list ? "[" : "(");
		for (Py_ssize_t i = 0; i < n && !o->cut; i++) {
			if (i == RENDER_ITEMS) {
				putf(o, ", ...(%zd items)", n);
				break;
			}
			if (i)
				puts_(o, ", ");
			render(o, PySequence_Fast_ITEMS(v)[i], depth + 1);
		}
		puts_(o, list ? "]" : (n == 1 ? ",)" : ")"));
	} else if (PyDict_CheckExact(v)) {
		Py_ssize_t n = PyDict_GET_SIZE(v), pos = 0, i = 0;
		PyObject *k, *val;
		if (depth >= RENDER_DEPTH) {
			putf(o, "<dict of %zd items>", n);
			return;
		}
		puts_(o, "{");
		while (!o->cut && PyDict_Next(v, &pos, &k, &val)) {
			if (i == RENDER_ITEMS) {
				putf(o, ", ...(%zd items)", n);
				break;
			}
			if (i++)
				puts_(o, ", ");
			render(o, k, depth + 1);
			puts_(o, ": ");
			render(o, val, depth + 1);
		}
		puts_(o, "}");
	} else {
		putf(o, "<%s at %p>", Py_TYPE(v)->tp_name, (void *)v);
	}
}

/* ------------------------------------------------------------------ */
/* Sending                                                             */

/* The frame, whole, without blocking the program: a socket that has no
 * room drops the line (-EAGAIN). A frame once begun is finished (other
 * writers take agent_g.lock for whole frames only). */
static int send_nowait(const struct wire_buf *b)
{
	int rc = 0;
	pthread_mutex_lock(&agent_g.lock);
	if (agent_g.client_fd < 0 || !agent_g.ready) {
		rc = -ENOTCONN;
	} else {
		ssize_t n;
		do
			n = send(agent_g.client_fd, b->data, b->len, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			rc = (errno == EAGAIN || errno == EWOULDBLOCK) ? -EAGAIN : -EPIPE;
		else if ((size_t)n < b->len)
			rc = wire_channel__write_all(agent_g.client_fd, b->data + n,
						     b->len - (size_t)n);
		if (rc == -EPIPE)
			shutdown(agent_g.client_fd, SHUT_RDWR); /* the agent thread sees EOF */
	}
	pthread_mutex_unlock(&agent_g.lock);
	return rc;
}

/* A snapshot's thread waits (GIL released) until the debugger has read its
 * stack (PROBE_RELEASE), leaves, or the bound passes. */
static void park(uint64_t event)
{
	struct timespec until;
	agent__deadline(CLOCK_REALTIME, SNAPSHOT_PARK_MS, &until);
	Py_BEGIN_ALLOW_THREADS;
	pthread_mutex_lock(&agent_g.lock);
	g_parked_event = event;
	while (g_released_event != event && agent_g.client_fd >= 0 &&
	       pthread_cond_timedwait(&g_park_cond, &agent_g.lock, &until) != ETIMEDOUT)
		;
	g_parked_event = 0;
	pthread_mutex_unlock(&agent_g.lock);
	Py_END_ALLOW_THREADS;
}

void agent_probe__release(uint64_t event_id)
{
	pthread_mutex_lock(&agent_g.lock);
	g_released_event = event_id;
	pthread_cond_broadcast(&g_park_cond);
	pthread_mutex_unlock(&agent_g.lock);
}

static struct agent_probe *probe_by_id(uint32_t id)
{
	for (int i = 0; i < AGENT_PROBES; i++)
		if (g_probes[i].used && g_probes[i].id == id)
			return &g_probes[i];
	return NULL;
}

static bool rate_allows(struct agent_probe *p)
{
	if (!p->rate)
		return true;
	uint64_t now = now_ns(CLOCK_MONOTONIC);
	if (p->last_ns) {
		p->tokens += (double)(now - p->last_ns) * p->rate / 1e9;
		if (p->tokens > p->rate)
			p->tokens = p->rate;
	}
	p->last_ns = now;
	if (p->tokens < 1.0)
		return false;
	p->tokens -= 1.0;
	return true;
}

/* One hit of p in frame f (the GIL held). Not re-entered: an allocation
 * of ours may run the garbage collector, whose finalizers are program code
 * that may run a probed line on this thread; that line is dropped. */
static bool g_in_hit;

static void hit_once(struct agent_probe *p, _PyInterpreterFrame *f, int line);

static void hit(struct agent_probe *p, _PyInterpreterFrame *f, int line)
{
	if (g_in_hit) {
		p->dropped++;
		p->dropped_since++;
		return;
	}
	g_in_hit = true;
	hit_once(p, f, line);
	g_in_hit = false;
}

static void hit_once(struct agent_probe *p, _PyInterpreterFrame *f, int line)
{
	if (p->has_cond) {
		struct ev ev = { .src = p->cond_text, .e = &p->cond, .k = &p->cond_k, .f = f };
		PyObject *v = eval(&ev, p->cond.root);
		int t = v ? truth(&ev, v) : -1;
		Py_XDECREF(v);
		if (t <= 0) {
			if (t < 0)
				p->refused++;
			return;
		}
	}
	if (!rate_allows(p)) {
		p->dropped++;
		p->dropped_since++;
		return;
	}
	if (p->count && p->hits >= p->count)
		return;
	static char vals[PROBE_FMT_MAX_EXPRS][VALUE_MAX];
	struct wire_probe_hit m;
	memset(&m, 0, sizeof m);
	for (int i = 0; i < p->fmt.nexprs; i++) {
		struct ev ev = { .src = p->fmt_text,
				 .e = &p->fmt.exprs[i],
				 .k = &p->fmt_k[i],
				 .f = f };
		struct out o = { .p = vals[i], .cap = VALUE_MAX };
		vals[i][0] = 0;
		PyObject *v = eval(&ev, p->fmt.exprs[i].root);
		if (v)
			render(&o, v, 0);
		else
			puts_(&o, ev.why[0] ? ev.why : "<error>");
		if (o.cut && o.len >= 3)
			memcpy(o.p + o.len - 3, "...", 3);
		Py_XDECREF(v);
		m.values[i] = vals[i];
	}
	PyErr_Clear();
	m.nvalues = p->fmt.nexprs;
	m.probe_id = p->id;
	m.time_ns = now_ns(CLOCK_REALTIME);
	m.tid = (uint64_t)syscall(SYS_gettid);
	m.thread_ident = (uint64_t)PyThread_get_thread_ident();
	m.line = (uint32_t)line;
	m.dropped = p->dropped_since;
	if (p->snapshot) {
		m.flags = WIRE_PROBE_F_PARKED;
		m.event_id = g_next_event++;
	}
	static struct wire_buf b;
	wire_buf__reset(&b);
	if (wire_msg__encode_probe_hit(&b, &m))
		return;
	p->hits++;
	if (p->count && p->hits >= p->count)
		__atomic_store_n(&p->active, 0, __ATOMIC_RELAXED);
	int rc = send_nowait(&b);
	if (rc == -EAGAIN) {
		p->dropped++;
		p->dropped_since++;
		p->hits--;
		if (p->count)
			__atomic_store_n(&p->active, 1, __ATOMIC_RELAXED);
		return;
	}
	p->dropped_since = 0;
	if (rc == 0 && p->snapshot) {
		g_in_hit = false; /* other threads may report meanwhile */
		park(m.event_id);
	}
}

PyObject *agent_probe__hit(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	(void)self;
	if (nargs != 1 || !PyLong_CheckExact(args[0]))
		Py_RETURN_NONE;
	long id = PyLong_AsLong(args[0]);
	PyErr_Clear();
	struct agent_probe *p = probe_by_id((uint32_t)id);
	if (!p || !__atomic_load_n(&p->active, __ATOMIC_RELAXED))
		Py_RETURN_NONE;
	PyThreadState *ts = PyThreadState_Get();
	_PyInterpreterFrame *f = ts->cframe ? ts->cframe->current_frame : NULL;
	if (!f)
		Py_RETURN_NONE;
	hit(p, f, (int)p->line);
	Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ */
/* Running frames                                                      */

/* A frame current in a C-level eval loop keeps first_instr, consts and
 * names in C locals (ceval.c SET_LOCALS_FROM_FRAME, run only at
 * resume_frame): it cannot be given the probed code. Its thread gets a
 * C trace function instead, for as long as such a frame lives there:
 *   - a line event of that frame on the probe's line is a hit;
 *   - a call event of an inlined callee (is_entry == 0) means the caller
 *     is suspended and re-reads f_code and prev_instr when the callee
 *     returns: it is switched to the probed code then (as install.c's OSR
 *     does), and the trace function goes once nothing needs it.
 * After a probe is cleared the same switch goes the other way for a frame
 * that still runs the probed code (g_stale: its (original, probed)
 * pairs). A thread the program traces itself (sys.settrace, a profiler,
 * the watcher's trace fallback) is left alone. */

static PyObject *g_stale;   /* (original, probed) pairs of cleared probes */
static PyObject *g_retired; /* code objects taken out of frames: kept for good */

/* The probed code of p for orig, if p's patch made one. */
static PyObject *probed_of(const struct agent_probe *p, PyObject *orig)
{
	for (Py_ssize_t i = 0; p->pairs && i < PyList_GET_SIZE(p->pairs); i++) {
		PyObject *pair = PyList_GET_ITEM(p->pairs, i);
		if (PyTuple_GET_ITEM(pair, 0) == orig)
			return PyTuple_GET_ITEM(pair, 1);
	}
	return NULL;
}

static bool is_orig_of(const struct agent_probe *p, PyObject *code)
{
	for (Py_ssize_t i = 0; p->origs && i < PyList_GET_SIZE(p->origs); i++)
		if (PyList_GET_ITEM(p->origs, i) == code)
			return true;
	return false;
}

/* Whether code is a logpoint patch of probe id: its last two constants
 * are the probe_hit helper and id (rewrite/guard.c appends them so). */
static bool is_probed_code(PyObject *code, uint32_t id)
{
	PyObject *k = ((PyCodeObject *)code)->co_consts;
	Py_ssize_t n = PyTuple_GET_SIZE(k);
	if (n < 2)
		return false;
	PyObject *h = PyTuple_GET_ITEM(k, n - 2), *v = PyTuple_GET_ITEM(k, n - 1);
	return PyCFunction_Check(h) &&
	       ((PyCFunctionObject *)h)->m_ml->ml_meth ==
		       (PyCFunction)(void (*)(void))agent_probe__hit &&
	       PyLong_CheckExact(v) && PyLong_AsLong(v) == (long)id;
}

/* After the patches: which probed code object each original became. */
static void find_pairs(struct agent_probe *p)
{
	Py_CLEAR(p->pairs);
	PyObject *gc = PyImport_ImportModule("gc");
	PyObject *objs = gc ? PyObject_CallMethod(gc, "get_objects", NULL) : NULL;
	Py_XDECREF(gc);
	if (!objs || !PyList_Check(objs) || !(p->pairs = PyList_New(0)))
		goto out;
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(objs); i++) {
		PyObject *o = PyList_GET_ITEM(objs, i);
		if (!PyFunction_Check(o))
			continue;
		PyObject *x = PyFunction_GET_CODE(o);
		if (!is_probed_code(x, p->id))
			continue;
		for (Py_ssize_t k = 0; k < PyList_GET_SIZE(p->origs); k++) {
			PyCodeObject *c = (PyCodeObject *)PyList_GET_ITEM(p->origs, k);
			PyCodeObject *xc = (PyCodeObject *)x;
			if (c->co_firstlineno != xc->co_firstlineno ||
			    PyUnicode_Compare(c->co_qualname, xc->co_qualname) != 0 ||
			    probed_of(p, (PyObject *)c))
				continue;
			PyObject *pair = PyTuple_Pack(2, (PyObject *)c, x);
			if (!pair || PyList_Append(p->pairs, pair)) {
				Py_XDECREF(pair);
				goto out;
			}
			Py_DECREF(pair);
		}
	}
out:
	PyErr_Clear();
	Py_XDECREF(objs);
}

/* Switch a suspended frame from code `from` to code `to` (same offsets
 * for every original instruction). */
static bool osr(_PyInterpreterFrame *f, PyObject *from, PyObject *to)
{
	PyCodeObject *a = (PyCodeObject *)from, *b = (PyCodeObject *)to;
	ptrdiff_t at = f->prev_instr - _PyCode_CODE(a);
	if (f->f_code != a || a->co_nlocalsplus != b->co_nlocalsplus ||
	    b->co_stacksize > a->co_stacksize || at < 0 || at >= Py_SIZE(a) || at >= Py_SIZE(b))
		return false;
	if ((!g_retired && !(g_retired = PyList_New(0))) || PyList_Append(g_retired, from)) {
		PyErr_Clear();
		return false;
	}
	f->f_code = (PyCodeObject *)Py_NewRef(to);
	f->prev_instr = _PyCode_CODE(b) + at;
	Py_DECREF(from); /* the frame's reference; g_retired keeps it */
	return true;
}

/* What a frame running `code` needs: 1 a hit by line events (an original
 * of an active probe), 2 a switch back (a cleared probe's code), 0 none.
 * *pair: the (original, probed) pair for a switch. */
static int frame_need(PyObject *code, PyObject **from, PyObject **to)
{
	for (int i = 0; i < AGENT_PROBES; i++) {
		struct agent_probe *p = &g_probes[i];
		if (!p->used || !__atomic_load_n(&p->active, __ATOMIC_RELAXED) ||
		    !is_orig_of(p, code))
			continue;
		*from = code;
		*to = probed_of(p, code);
		return 1;
	}
	for (Py_ssize_t i = 0; g_stale && i < PyList_GET_SIZE(g_stale); i++) {
		PyObject *pair = PyList_GET_ITEM(g_stale, i);
		if (PyTuple_GET_ITEM(pair, 1) == code) {
			*from = code;
			*to = PyTuple_GET_ITEM(pair, 0);
			return 2;
		}
	}
	return 0;
}

static int probe_trace(PyObject *obj, PyFrameObject *fo, int what, PyObject *arg);

/* Whether the thread has a frame that needs the trace function. */
static bool thread_needs(PyThreadState *ts)
{
	PyObject *from, *to;
	for (_PyInterpreterFrame *f = ts->cframe ? ts->cframe->current_frame : NULL; f;
	     f = f->previous)
		if (!_PyFrame_IsIncomplete(f) && f->owner == FRAME_OWNED_BY_THREAD &&
		    frame_need((PyObject *)f->f_code, &from, &to))
			return true;
	return false;
}

/* internal/pycore_pystate.h's _PyThreadState_UpdateTracingState (which
 * cannot be included next to Python.h's GC macros): the flag the eval loop
 * ors into every opcode while a trace or profile function is set. */
static void update_tracing(PyThreadState *ts)
{
	bool on = ts->tracing == 0 && (ts->c_tracefunc || ts->c_profilefunc);
	ts->cframe->use_tracing = on ? 255 : 0;
}

static bool trace_on(PyThreadState *ts)
{
	if (ts->c_tracefunc == probe_trace)
		return true;
	if (ts->c_tracefunc || ts->c_profilefunc || !ts->cframe)
		return false; /* the program's own tracer or profiler, or the watcher's */
	ts->c_traceobj = NULL;
	ts->c_tracefunc = probe_trace;
	update_tracing(ts);
	return true;
}

static void trace_off(PyThreadState *ts)
{
	if (ts->c_tracefunc != probe_trace)
		return;
	ts->c_tracefunc = NULL;
	ts->c_traceobj = NULL;
	if (ts->cframe)
		update_tracing(ts);
}

static int probe_trace(PyObject *obj, PyFrameObject *fo, int what, PyObject *arg)
{
	(void)obj;
	(void)arg;
	_PyInterpreterFrame *f = fo->f_frame;
	PyObject *from, *to;
	PyObject *et, *ev, *etb;
	PyErr_Fetch(&et, &ev, &etb);
	if (what == PyTrace_LINE && frame_need((PyObject *)f->f_code, &from, &to) == 1) {
		int line = PyFrame_GetLineNumber(fo);
		for (int i = 0; i < AGENT_PROBES; i++) {
			struct agent_probe *p = &g_probes[i];
			if (p->used && __atomic_load_n(&p->active, __ATOMIC_RELAXED) &&
			    (int)p->line == line && is_orig_of(p, (PyObject *)f->f_code))
				hit(p, f, line);
		}
	} else if (what == PyTrace_CALL && !f->is_entry && f->previous &&
		   f->previous->owner == FRAME_OWNED_BY_THREAD &&
		   frame_need((PyObject *)f->previous->f_code, &from, &to) && to) {
		/* The caller is suspended in this inlined call: it takes the
		 * other code when the callee returns. */
		osr(f->previous, from, to);
	}
	if (what == PyTrace_RETURN || what == PyTrace_CALL) {
		PyThreadState *ts = PyThreadState_Get();
		/* The returning frame is still on the chain: it is leaving. */
		bool need = false;
		for (_PyInterpreterFrame *g = ts->cframe ? ts->cframe->current_frame : NULL;
		     g && !need; g = g->previous)
			if ((what != PyTrace_RETURN || g != f) && !_PyFrame_IsIncomplete(g) &&
			    g->owner == FRAME_OWNED_BY_THREAD &&
			    frame_need((PyObject *)g->f_code, &from, &to))
				need = true;
		if (!need)
			trace_off(ts);
	}
	PyErr_Clear();
	PyErr_Restore(et, ev, etb);
	return 0;
}

/* At ARM: every thread with a frame of p's originals gets the trace
 * function (frames install.c could switch run the probed code already).
 * The number of such frames. */
static unsigned trace_running(struct agent_probe *p)
{
	unsigned n = 0;
	if (!g_stale && !(g_stale = PyList_New(0)))
		PyErr_Clear();
	for (PyThreadState *ts = PyInterpreterState_ThreadHead(PyInterpreterState_Main()); ts;
	     ts = PyThreadState_Next(ts)) {
		unsigned here = 0;
		for (_PyInterpreterFrame *f = ts->cframe ? ts->cframe->current_frame : NULL; f;
		     f = f->previous)
			if (!_PyFrame_IsIncomplete(f) && f->owner == FRAME_OWNED_BY_THREAD &&
			    is_orig_of(p, (PyObject *)f->f_code))
				here++;
		if (here && trace_on(ts))
			n += here;
		else if (here)
			agent__log(
				"probe %u: a thread traces itself: %u running frame(s) not probed",
				p->id, here);
	}
	return n;
}

/* After a change: trace the threads that need it, and only those. */
static void trace_update_all(void)
{
	bool any = false;
	for (PyThreadState *ts = PyInterpreterState_ThreadHead(PyInterpreterState_Main()); ts;
	     ts = PyThreadState_Next(ts)) {
		if (thread_needs(ts)) {
			any |= trace_on(ts);
		} else {
			trace_off(ts);
		}
	}
	if (!any && g_stale)
		PyList_SetSlice(g_stale, 0, PyList_GET_SIZE(g_stale), NULL);
}

/* ------------------------------------------------------------------ */
/* Registration                                                        */

static void consts_free(struct expr_consts *k)
{
	for (int i = 0; i < PROBE_EXPR_MAX_NODES; i++)
		Py_CLEAR(k->obj[i]);
}

/* The objects a parsed expression's nodes stand for. */
static int consts_make(const char *src, const struct probe_expr *e, struct expr_consts *k)
{
	for (int i = 0; i < e->n; i++) {
		const struct probe_node *nd = &e->nodes[i];
		PyObject *o = NULL;
		switch (nd->kind) {
		case PROBE_N_NAME:
		case PROBE_N_ATTR:
			o = PyUnicode_FromStringAndSize(src + nd->off, nd->len);
			if (o)
				PyUnicode_InternInPlace(&o);
			break;
		case PROBE_N_STR: {
			char tmp[PROBE_TEXT_MAX];
			int n = probe_str__unescape(src + nd->off, nd->len, tmp, sizeof tmp);
			o = n >= 0 ? PyUnicode_DecodeUTF8(tmp, n, "replace") : NULL;
			break;
		}
		case PROBE_N_INT:
			o = PyLong_FromLongLong(nd->i);
			break;
		case PROBE_N_FLOAT:
			o = PyFloat_FromDouble(nd->f);
			break;
		default:
			continue;
		}
		if (!o) {
			PyErr_Clear();
			return -ENOMEM;
		}
		k->obj[i] = o;
	}
	return 0;
}

static void probe_free(struct agent_probe *p)
{
	consts_free(&p->cond_k);
	for (int i = 0; i < PROBE_FMT_MAX_EXPRS; i++)
		consts_free(&p->fmt_k[i]);
	Py_CLEAR(p->origs);
	Py_CLEAR(p->pairs);
	memset(p, 0, sizeof *p);
}

/* co_filename names FILE: the same text, or FILE is a path suffix of it
 * ("app.py", "pkg/mod.py"), or both resolve to the same file. */
static bool file_matches(PyObject *filename, const char *file)
{
	const char *fn = PyUnicode_Check(filename) ? PyUnicode_AsUTF8(filename) : NULL;
	if (!fn) {
		PyErr_Clear();
		return false;
	}
	if (!strcmp(fn, file))
		return true;
	size_t a = strlen(fn), b = strlen(file);
	if (file[0] != '/' && a > b && fn[a - b - 1] == '/' && !strcmp(fn + a - b, file))
		return true;
	/* Different base names never resolve to one file through realpath
	 * (symlinks aside): skip the system calls for them. */
	const char *ba = strrchr(fn, '/'), *bb = strrchr(file, '/');
	if (strcmp(ba ? ba + 1 : fn, bb ? bb + 1 : file) != 0)
		return false;
	char ra[4096], rb[4096];
	return realpath(fn, ra) && realpath(file, rb) && !strcmp(ra, rb);
}

struct lines {
	bool found;        /* LINE has code */
	int before, after; /* nearest lines with code, 0 if none */
	bool any;          /* a code object of the file */
};

/* Whether code has an instruction on line past its RESUME (its body);
 * nearest lines with code around it go into ln. */
static bool code_has_line(PyCodeObject *co, int line, struct lines *ln)
{
	struct rewrite_linetable_iter it;
	struct rewrite_lentry e;
	const uint8_t *lt = (const uint8_t *)PyBytes_AS_STRING(co->co_linetable);
	bool found = false;
	rewrite_linetable__iter_init(&it, lt, lt + PyBytes_GET_SIZE(co->co_linetable),
				     co->co_firstlineno);
	/* The first unit's entry holds RESUME (and the prologue): it is the
	 * def line, not the body. */
	bool first = true;
	while (rewrite_linetable__next(&it, &e) == 1) {
		int l = e.loc.line;
		if (first) {
			first = false;
			if (co->co_flags & CO_OPTIMIZED)
				continue;
		}
		if (l <= 0)
			continue;
		if (l == line)
			found = true;
		else if (l < line && l > ln->before)
			ln->before = l;
		else if (l > line && (!ln->after || l < ln->after))
			ln->after = l;
	}
	ln->any = true;
	return found;
}

/* Every code object reachable from live functions (nested code through
 * co_consts) and from the frames of every thread, each once. */
static int add_code(PyObject *list, PyObject *seen, PyObject *code, int depth)
{
	if (depth > 32)
		return 0;
	PyObject *key = PyLong_FromVoidPtr(code);
	int r = key ? PySet_Contains(seen, key) : -1;
	if (r == 0 && (PySet_Add(seen, key) || PyList_Append(list, code)))
		r = -1;
	Py_XDECREF(key);
	if (r != 0)
		return r < 0 ? -1 : 0;
	PyObject *consts = ((PyCodeObject *)code)->co_consts;
	for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(consts); i++) {
		PyObject *k = PyTuple_GET_ITEM(consts, i);
		if (PyCode_Check(k) && add_code(list, seen, k, depth + 1))
			return -1;
	}
	return 0;
}

static PyObject *all_codes(void)
{
	PyObject *gc = PyImport_ImportModule("gc");
	PyObject *objs = gc ? PyObject_CallMethod(gc, "get_objects", NULL) : NULL;
	PyObject *list = PyList_New(0), *seen = PySet_New(NULL);
	Py_XDECREF(gc);
	if (!objs || !list || !seen || !PyList_Check(objs))
		goto fail;
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(objs); i++) {
		PyObject *o = PyList_GET_ITEM(objs, i);
		if (PyFunction_Check(o) && add_code(list, seen, PyFunction_GET_CODE(o), 0))
			goto fail;
	}
	for (PyThreadState *ts = PyInterpreterState_ThreadHead(PyInterpreterState_Main()); ts;
	     ts = PyThreadState_Next(ts))
		for (_PyInterpreterFrame *f = ts->cframe ? ts->cframe->current_frame : NULL; f;
		     f = f->previous)
			if (!_PyFrame_IsIncomplete(f) &&
			    add_code(list, seen, (PyObject *)f->f_code, 0))
				goto fail;
	Py_DECREF(objs);
	Py_DECREF(seen);
	return list;
fail:
	PyErr_Clear();
	Py_XDECREF(objs);
	Py_XDECREF(list);
	Py_XDECREF(seen);
	return NULL;
}

static void result_msg(struct wire_probe_result *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void result_msg(struct wire_probe_result *r, int status, const char *fmt, ...)
{
	va_list ap;
	r->status = status;
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof r->message, fmt, ap);
	va_end(ap);
}

static void set_locked_gil(const struct wire_probe_set *m, struct wire_probe_result *r)
{
	struct agent_probe *p = NULL;
	for (int i = 0; i < AGENT_PROBES && !p; i++)
		if (!g_probes[i].used)
			p = &g_probes[i];
	if (!p) {
		result_msg(r, -EBUSY, "agent: %d probes already set", AGENT_PROBES);
		return;
	}
	memset(p, 0, sizeof *p);
	snprintf(p->file, sizeof p->file, "%s", m->file);
	snprintf(p->fmt_text, sizeof p->fmt_text, "%s", m->format);
	snprintf(p->cond_text, sizeof p->cond_text, "%s", m->cond);
	struct probe_err err;
	if (probe_format__parse(p->fmt_text, strlen(p->fmt_text), &p->fmt, &err)) {
		result_msg(r, -EINVAL, "agent: format: %s", err.msg);
		return;
	}
	p->has_cond = p->cond_text[0] != 0;
	if (p->has_cond &&
	    probe_expr__parse(p->cond_text, 0, strlen(p->cond_text), &p->cond, &err)) {
		result_msg(r, -EINVAL, "agent: condition: %s", err.msg);
		return;
	}
	p->used = true; /* from here on probe_free undoes */
	int rc = 0;
	for (int i = 0; i < p->fmt.nexprs && !rc; i++)
		rc = consts_make(p->fmt_text, &p->fmt.exprs[i], &p->fmt_k[i]);
	if (!rc && p->has_cond)
		rc = consts_make(p->cond_text, &p->cond, &p->cond_k);
	PyObject *codes = rc ? NULL : all_codes();
	if (!codes) {
		probe_free(p);
		{
			result_msg(r, -ENOMEM, "agent: out of memory");
			return;
		}
	}
	struct lines ln = { 0 };
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(codes); i++) {
		PyCodeObject *co = (PyCodeObject *)PyList_GET_ITEM(codes, i);
		if (!file_matches(co->co_filename, m->file) ||
		    !code_has_line(co, (int)m->line, &ln))
			continue;
		if (r->ncodes >= WIRE_PROBE_MAX_CODES) {
			Py_DECREF(codes);
			probe_free(p);
			{
				result_msg(r, -E2BIG,
					   "agent: line %u is in more than %d code objects",
					   m->line, WIRE_PROBE_MAX_CODES);
				return;
			}
		}
		r->codes[r->ncodes++] = (uint64_t)(uintptr_t)co;
	}
	Py_DECREF(codes);
	if (r->ncodes && !(p->origs = PyList_New(0))) {
		PyErr_Clear();
		probe_free(p);
		result_msg(r, -ENOMEM, "agent: out of memory");
		return;
	}
	for (uint32_t i = 0; i < r->ncodes; i++)
		if (PyList_Append(p->origs, (PyObject *)(uintptr_t)r->codes[i])) {
			PyErr_Clear();
			probe_free(p);
			result_msg(r, -ENOMEM, "agent: out of memory");
			return;
		}
	if (!r->ncodes) {
		probe_free(p);
		if (!ln.any) {
			result_msg(r, -ENOENT,
				   "no live code of %s (is the file name right? it is matched "
				   "against co_filename)",
				   m->file);
			return;
		}
		char near[96] = "";
		if (ln.before && ln.after)
			snprintf(near, sizeof near, "%d and %d", ln.before, ln.after);
		else
			snprintf(near, sizeof near, "%d", ln.before ? ln.before : ln.after);
		result_msg(r, -ENOENT, "%s:%u has no code; nearest lines with code: %s", m->file,
			   m->line, near);
		return;
	}
	p->id = g_next_id++;
	p->line = m->line;
	p->count = (m->flags & WIRE_PROBE_F_SNAPSHOT) ? 1 : m->count;
	p->rate = m->rate;
	p->tokens = m->rate;
	p->snapshot = (m->flags & WIRE_PROBE_F_SNAPSHOT) != 0;
	r->probe_id = p->id;
	result_msg(r, 0, "probe %u: %u code object(s)", p->id, r->ncodes);
}

static void reply_result(struct wire_buf *b, struct wire_probe_result *r)
{
	wire_msg__encode_probe_result(b, r);
}

void agent_probe__on_set(struct wire_buf *b, const struct wire_probe_set *m)
{
	static struct wire_probe_result r;
	PyGILState_STATE st;
	memset(&r, 0, sizeof r);
	r.request_id = m->request_id;
	if (agent__gil_take(&st)) {
		result_msg(&r, -ESHUTDOWN, "agent: interpreter finalizing");
	} else {
		set_locked_gil(m, &r);
		PyGILState_Release(st);
	}
	agent__log("probe set %s:%u: %d: %s", m->file, m->line, r.status, r.message);
	reply_result(b, &r);
}

void agent_probe__on_arm(struct wire_buf *b, const struct wire_probe_ctl *m)
{
	struct wire_probe_result r;
	PyGILState_STATE st;
	memset(&r, 0, sizeof r);
	r.request_id = m->request_id;
	r.probe_id = m->probe_id;
	if (agent__gil_take(&st)) {
		result_msg(&r, -ESHUTDOWN, "agent: interpreter finalizing");
	} else {
		struct agent_probe *p = probe_by_id(m->probe_id);
		if (!p) {
			result_msg(&r, -ENOENT, "agent: no probe %u", m->probe_id);
		} else {
			p->armed = true;
			__atomic_store_n(&p->active, 1, __ATOMIC_RELAXED);
			find_pairs(p);
			unsigned n = trace_running(p);
			r.hits = n; /* ARM: frames given the line-trace function */
			result_msg(&r, 0, "probe %u armed; %u running frame(s) traced", p->id, n);
		}
		PyGILState_Release(st);
	}
	reply_result(b, &r);
}

/* Switch p off and give every function and frame its code back (the
 * patches named "probe:<id>"); the GIL held. */
static void clear_one(struct agent_probe *p, struct wire_probe_result *r)
{
	__atomic_store_n(&p->active, 0, __ATOMIC_RELAXED);
	struct wire_rollback rb;
	struct wire_rollback_result rr;
	memset(&rb, 0, sizeof rb);
	snprintf(rb.name, sizeof rb.name, "probe:%u", p->id);
	int rc = agent_install__rollback(&rb, &rr);
	if (r) {
		r->hits += p->hits;
		r->dropped += p->dropped;
		if (rc && rc != -ENOENT && !r->status)
			result_msg(r, rc, "agent: probe %u: %s", p->id, rr.message);
	}
	agent__log("probe %u cleared: %u function(s), %u frame(s) restored (%d)", p->id,
		   rr.nfunctions, rr.nframes, rc);
	/* Frames still running the probed code (current in their C eval
	 * loop when the rollback came) are switched back at their next
	 * Python call by the trace function. */
	if (p->pairs && g_stale)
		for (Py_ssize_t i = 0; i < PyList_GET_SIZE(p->pairs); i++)
			if (PyList_Append(g_stale, PyList_GET_ITEM(p->pairs, i)))
				PyErr_Clear();
	probe_free(p);
	trace_update_all();
}

void agent_probe__on_clear(struct wire_buf *b, const struct wire_probe_ctl *m)
{
	struct wire_probe_result r;
	PyGILState_STATE st;
	memset(&r, 0, sizeof r);
	r.request_id = m->request_id;
	r.probe_id = m->probe_id;
	if (agent__gil_take(&st)) {
		result_msg(&r, -ESHUTDOWN, "agent: interpreter finalizing");
	} else {
		bool any = false;
		for (int i = 0; i < AGENT_PROBES; i++)
			if (g_probes[i].used && (!m->probe_id || g_probes[i].id == m->probe_id)) {
				any = true;
				clear_one(&g_probes[i], &r);
			}
		if (!any && m->probe_id)
			result_msg(&r, -ENOENT, "agent: no probe %u", m->probe_id);
		else if (!r.status)
			result_msg(&r, 0, "cleared");
		PyGILState_Release(st);
	}
	reply_result(b, &r);
}

void agent_probe__disconnected_locked(void)
{
	bool any = false;
	for (int i = 0; i < AGENT_PROBES; i++)
		if (g_probes[i].used) {
			__atomic_store_n(&g_probes[i].active, 0, __ATOMIC_RELAXED);
			any = true;
		}
	if (any)
		g_orphans = true;
	pthread_cond_broadcast(&g_park_cond);
}

void agent_probe__clear_orphans(void)
{
	PyGILState_STATE st;
	pthread_mutex_lock(&agent_g.lock);
	bool todo = g_orphans;
	g_orphans = false;
	pthread_mutex_unlock(&agent_g.lock);
	if (!todo || agent__gil_take(&st))
		return;
	for (int i = 0; i < AGENT_PROBES; i++)
		if (g_probes[i].used)
			clear_one(&g_probes[i], NULL);
	PyGILState_Release(st);
}
