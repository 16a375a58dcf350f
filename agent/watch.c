/* agent: the crash watcher (docs/design.md §5).
 *
 * The eval loop calls PyTraceBack_Here(frame) each time an exception enters
 * a Python frame through its `error:` label (Python/ceval.c). We replace
 * that function by writing a jump at its entry to agent_traceback_here(),
 * which first does exactly what Python/traceback.c's version does (fetch,
 * _PyTraceBack_FromFrame, restore), then, only for an exception that is new
 * (no traceback yet: it starts in this frame), of a structural type, in the
 * frame being unwound, decides whether it is a crash. A crash parks the
 * thread (GIL released) until the debugger answers or a bound passes; the
 * exception then goes on untouched.
 *
 * Where the text cannot be written, a C trace function on every thread
 * state gives the same events (PyTrace_EXCEPTION, right after
 * PyTraceBack_Here in the same `error:` path), at the price of tracing.
 */
#include "agent/agent-py.h"
#include "rewrite/rewrite.h"
#include "opcode.h"
#define NEED_OPCODE_TABLES
#include "internal/pycore_opcode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

_Static_assert(sizeof(_Py_CODEUNIT) == 2, "3.11 code units are 16-bit");

/* Every piece of state below is read and written with the GIL held, except
 * g_mode/g_timeout_ms which are plain words read by the channel. */
static int g_watching;
static uint32_t g_mode = WIRE_WATCH_NONE;
static uint32_t g_timeout_ms = 2000;
/* No re-entry, per thread and level: the (thread state, continuation
 * depth) pairs inside consider(). Exceptions raised by our own work there
 * (a __str__, a lookup) are never considered; a continuation run by a
 * resume (resume.c) is a level deeper, so the crashes of the resumed call
 * are watched like any others, and inside their consider() the same rule
 * holds again. Touched with the GIL held only (a parked or resuming thread
 * stays listed while it lets the GIL go). Not thread-local storage: a
 * dlopen'ed library's TLS costs a __tls_get_addr call per exception, or
 * static TLS space that the target may not have left; the usual answer
 * here is "nobody", one load (the depth is only asked when ts is listed). */
#define MAX_BUSY 64
static struct busy {
	PyThreadState *ts;
	int depth;
} g_busy[MAX_BUSY];
static int g_nbusy;

/* 1: ts entered at *depth (call busy_leave with it after), 0: ts is
 * already inside at its current level (or the table is full): do not
 * watch. */
static int busy_enter(PyThreadState *ts, int *depth)
{
	int d = -1;
	for (int i = 0; i < g_nbusy; i++)
		if (g_busy[i].ts == ts) {
			if (d < 0)
				d = agent_resume__depth(ts);
			if (g_busy[i].depth == d)
				return 0;
		}
	if (g_nbusy == MAX_BUSY)
		return 0;
	*depth = d < 0 ? 0 : d;
	g_busy[g_nbusy++] = (struct busy){ ts, *depth };
	return 1;
}

static void busy_leave(PyThreadState *ts, int depth)
{
	for (int i = 0; i < g_nbusy; i++)
		if (g_busy[i].ts == ts && g_busy[i].depth == depth) {
			g_busy[i] = g_busy[--g_nbusy];
			return;
		}
}

/* Entry jump state: the original bytes, kept for the undo. */
static uint8_t *g_entry;
static uint8_t g_orig[14];
static size_t g_patch_len;

/* The standard library's directory ("/usr/lib/python3.11/"). */
static PyObject *g_stdlib_prefix, *g_str_os;
/* builtins.hasattr and builtins.getattr (immortal in practice). */
static PyObject *g_hasattr, *g_getattr;

static int agent_traceback_here(PyFrameObject *frame);

/* ------------------------------------------------------------------ */
/* The crash decision                                                 */

/* Exact types only: a user subclass of KeyError is the program's own
 * signalling, not a structural accident. */
static int is_structural(PyObject *type)
{
	return type == PyExc_AttributeError || type == PyExc_KeyError ||
	       type == PyExc_IndexError || type == PyExc_ZeroDivisionError ||
	       type == PyExc_ValueError || type == PyExc_TypeError ||
	       type == PyExc_FileNotFoundError;
}

static int unit_of(_PyInterpreterFrame *f, uint32_t *unit)
{
	PyCodeObject *co = f->f_code;
	ptrdiff_t u = f->prev_instr - _PyCode_CODE(co);
	if (u < 0 || u >= Py_SIZE(co))
		return -1;
	*unit = (uint32_t)u;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Does a frame catch the exception?                                  */

/* A handler block, read from its target: it catches (an except clause
 * that matches, a bare except, anything we cannot judge), or it is a
 * cleanup that re-raises (finally, a with whose __exit__ is C code, except
 * clauses that do not match) at some code unit, where the frame's table is
 * consulted again. */
enum verdict { CATCHES, RERAISES };

struct insn {
	int op;          /* canonical */
	uint32_t arg;
	uint32_t next;   /* unit after the instruction and its caches */
};

static int insn_at(PyCodeObject *co, uint32_t u, struct insn *in)
{
	const _Py_CODEUNIT *code = _PyCode_CODE(co);
	uint32_t n = (uint32_t)Py_SIZE(co), arg = 0;
	int op;
	for (int k = 0;; k++) {
		if (u >= n || k > 3)
			return -1;
		op = _PyOpcode_Deopt[_Py_OPCODE(code[u])];
		arg = (arg << 8) | _Py_OPARG(code[u]);
		if (op != EXTENDED_ARG)
			break;
		u++;
	}
	in->op = op;
	in->arg = arg;
	in->next = u + 1 + _PyOpcode_Caches[op];
	return 0;
}

/* What an `except X:` clause names, when it can be known without running
 * code: a global or builtin name, an attribute of a module, a tuple of those. */
#define MAX_LOADS 8
struct loads {
	PyObject *v[MAX_LOADS];   /* borrowed; NULL = unknown */
	int n;
};

static void loads_push(struct loads *l, PyObject *v)
{
	if (l->n == MAX_LOADS) {
		memmove(l->v, l->v + 1, sizeof l->v[0] * (MAX_LOADS - 1));
		l->n--;
	}
	l->v[l->n++] = v;
}

static PyObject *global_named(_PyInterpreterFrame *f, PyObject *names, uint32_t i)
{
	if (i >= (uint32_t)PyTuple_GET_SIZE(names))
		return NULL;
	PyObject *name = PyTuple_GET_ITEM(names, i), *v = NULL;
	if (PyDict_Check(f->f_globals))
		v = PyDict_GetItemWithError(f->f_globals, name);
	if (!v && PyDict_Check(f->f_builtins))
		v = PyDict_GetItemWithError(f->f_builtins, name);
	PyErr_Clear();
	return v;
}

/* 1 matches, 0 does not, -1 unknown. */
static int clause_matches(struct loads *l, PyObject *type, int ntuple)
{
	int from = l->n - ntuple;
	if (from < 0)
		return -1;
	for (int i = from; i < l->n; i++) {
		PyObject *v = l->v[i];
		if (!v)
			return -1;
		if (PyTuple_Check(v)) {   /* a constant tuple of types */
			for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(v); k++)
				if (!PyExceptionClass_Check(PyTuple_GET_ITEM(v, k)))
					return -1;
		} else if (!PyExceptionClass_Check(v)) {
			return -1;
		}
	}
	for (int i = from; i < l->n; i++)
		if (PyErr_GivenExceptionMatches(type, l->v[i]))
			return 1;
	return 0;
}

/* *dynamic is set when the verdict read a run-time value (not cacheable). */
/* Whether a Python-level __exit__ can never suppress an exception: every
 * RETURN_VALUE of its code returns a constant None or False (the implicit
 * "return None" of a cleanup method, an explicit "return False") and no
 * jump lands on one (a conditional expression would reach it with another
 * value). Anything else (contextlib's __exit__, a computed return, a
 * generator) may suppress. */
static int exit_never_suppresses(PyObject *exit_fn)
{
	PyObject *fn = PyMethod_Check(exit_fn) ? PyMethod_GET_FUNCTION(exit_fn) : exit_fn;
	if (!PyFunction_Check(fn))
		return 0;
	PyCodeObject *co = (PyCodeObject *)PyFunction_GET_CODE(fn);
	uint32_t n = (uint32_t)Py_SIZE(co), prev_op = 0, prev_arg = 0;
	struct insn in;
	if (co->co_flags & (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR))
		return 0;
	for (uint32_t u = 0; u < n; u = in.next) {
		if (insn_at(co, u, &in))
			return 0;
		if (in.op == RETURN_VALUE) {
			PyObject *c = prev_op == LOAD_CONST &&
					      prev_arg < (uint32_t)PyTuple_GET_SIZE(co->co_consts)
					      ? PyTuple_GET_ITEM(co->co_consts, prev_arg) : NULL;
			if (c != Py_None && c != Py_False)
				return 0;
			/* No jump (either direction, to be safe) lands here. */
			struct insn j;
			for (uint32_t v = 0; v < n; v = j.next) {
				if (insn_at(co, v, &j))
					return 0;
				if ((_PyOpcode_Jump[j.op >> 5] >> (j.op & 31)) & 1 &&
				    (j.next + j.arg == u || j.next - j.arg == u))
					return 0;
			}
		}
		prev_op = (uint32_t)in.op;
		prev_arg = in.arg;
	}
	return 1;
}

static enum verdict classify_handler(_PyInterpreterFrame *f, const struct rewrite_exc *e,
				     PyObject *type, uint32_t *reraise_at, int *dynamic)
{
	PyCodeObject *co = f->f_code;
	struct loads l = { .n = 0 };
	struct insn in;
	int tuple = 1;       /* items the next CHECK_EXC_MATCH tests */
	uint32_t u = e->target;

	for (int steps = 0; steps < 512; steps++) {
		if (insn_at(co, u, &in))
			return CATCHES;
		switch (in.op) {
		case PUSH_EXC_INFO:
		case NOP:
			break;
		case LOAD_GLOBAL:
			loads_push(&l, global_named(f, co->co_names, in.arg >> 1));
			tuple = 1;
			break;
		case LOAD_NAME:
			loads_push(&l, global_named(f, co->co_names, in.arg));
			tuple = 1;
			break;
		case LOAD_CONST:   /* guards name exception types as constants */
			loads_push(&l, in.arg < (uint32_t)PyTuple_GET_SIZE(co->co_consts)
					       ? PyTuple_GET_ITEM(co->co_consts, in.arg) : NULL);
			tuple = 1;
			break;
		case LOAD_ATTR: {
			PyObject *mod = l.n ? l.v[l.n - 1] : NULL, *v = NULL;
			if (mod && PyModule_Check(mod) && in.arg < (uint32_t)PyTuple_GET_SIZE(co->co_names)) {
				v = PyDict_GetItemWithError(PyModule_GetDict(mod),
							    PyTuple_GET_ITEM(co->co_names, in.arg));
				PyErr_Clear();
			}
			if (l.n)
				l.v[l.n - 1] = v;
			break;
		}
		case BUILD_TUPLE:
			tuple = (int)in.arg;
			break;
		case CHECK_EXC_MATCH: {
			int m = clause_matches(&l, type, tuple);
			struct insn jump;
			if (m != 0)
				return CATCHES;   /* matches, or cannot tell */
			/* No match: POP_JUMP_FORWARD_IF_FALSE to the next clause. */
			if (insn_at(co, in.next, &jump) || jump.op != POP_JUMP_FORWARD_IF_FALSE)
				return CATCHES;
			u = jump.next + jump.arg;
			l.n = 0;
			tuple = 1;
			continue;
		}
		case WITH_EXCEPT_START: {
			/* The __exit__ bound method sits at depth-1 (PEEK(4) in
			 * ceval's WITH_EXCEPT_START); C-implemented ones (locks,
			 * files) never suppress, Python ones may, unless every
			 * return of theirs is a constant None or False. */
			PyObject *exit_fn = NULL;
			*dynamic = 1;
			if (e->depth >= 1 && (int)e->depth <= co->co_stacksize)
				exit_fn = f->localsplus[co->co_nlocalsplus + e->depth - 1];
			if (!exit_fn || (!PyCFunction_Check(exit_fn) && !exit_never_suppresses(exit_fn)))
				return CATCHES;
			break;   /* falls through to its RERAISE */
		}
		case POP_JUMP_FORWARD_IF_TRUE:
		case POP_JUMP_FORWARD_IF_FALSE:
		case POP_JUMP_FORWARD_IF_NONE:
		case POP_JUMP_FORWARD_IF_NOT_NONE:
		case JUMP_IF_FALSE_OR_POP:
		case JUMP_IF_TRUE_OR_POP:
			break;   /* follow the fall-through path */
		case POP_EXCEPT: {
			/* Handled, unless it is the cleanup "COPY 3; POP_EXCEPT; RERAISE". */
			struct insn nx;
			if (insn_at(co, in.next, &nx) == 0 && nx.op == RERAISE) {
				*reraise_at = in.next;
				return RERAISES;
			}
			return CATCHES;
		}
		case RERAISE:
			*reraise_at = u;
			return RERAISES;
		case JUMP_FORWARD:
			/* Within a handler (leaving it passes POP_EXCEPT): over
			 * a nested try's own handler or an else branch, as in
			 * importlib's "except: try: del sys.modules[name]
			 * except KeyError: pass; raise". Forward only: no loop. */
			u = in.next + in.arg;
			continue;
		case CHECK_EG_MATCH:       /* except*: cannot tell */
		case RETURN_VALUE:         /* return in finally swallows */
		case YIELD_VALUE:
		case JUMP_BACKWARD:
		case JUMP_BACKWARD_NO_INTERRUPT:
		case POP_JUMP_BACKWARD_IF_FALSE:
		case POP_JUMP_BACKWARD_IF_TRUE:
		case POP_JUMP_BACKWARD_IF_NONE:
		case POP_JUMP_BACKWARD_IF_NOT_NONE:
			return CATCHES;
		default:
			tuple = 1;
			break;
		}
		u = in.next;
	}
	return CATCHES;
}

static int name_is(PyCodeObject *co, const char *s)
{
	return PyUnicode_CompareWithASCIIString(co->co_name, s) == 0;
}

/* threading.Thread._bootstrap_inner catches everything to hand it to
 * threading.excepthook: for us that is the top of the thread. */
static int is_thread_top(PyCodeObject *co)
{
	if (!name_is(co, "_bootstrap_inner"))
		return 0;
	Py_ssize_t n = PyUnicode_GET_LENGTH(co->co_filename);
	PyObject *tail = PyUnicode_FromString("threading.py");
	int r = tail && n >= 12 &&
		PyUnicode_Tailmatch(co->co_filename, tail, 0, n, 1) == 1;
	Py_XDECREF(tail);
	PyErr_Clear();
	return r;
}

/* Verdicts of frame_catches, per (code object, code unit, exception type):
 * handled exceptions in a loop ask the same question again and again. A
 * code object's bytes and table never change; a freed one whose address is
 * reused is told apart by its exception table object and code size. Only
 * verdicts that did not depend on run-time values (a with's __exit__) are
 * kept. Touched with the GIL held only. */
#define VCACHE_SIZE 512
struct vcache_entry {
	const void *code, *table, *type;
	uint32_t unit, size;
	int catches;
};
static struct vcache_entry g_vcache[VCACHE_SIZE];

static struct vcache_entry *vcache_slot(PyCodeObject *co, uint32_t unit, PyObject *type)
{
	uintptr_t h = ((uintptr_t)co >> 4) ^ ((uintptr_t)type >> 4) ^ ((uintptr_t)unit * 2654435761u);
	return &g_vcache[(h ^ (h >> 9)) % VCACHE_SIZE];
}

enum { NO_HANDLER = 0, HANDLED = 1, THREAD_TOP = 2 };

/* Whether frame f (at its current instruction) may catch `type`: follow
 * handlers and the re-raises of cleanups within the frame. A malformed
 * table cannot be judged: it counts as catching. THREAD_TOP: it catches,
 * but it is threading's catch-all (the thread dies of it). */
static int frame_catches(_PyInterpreterFrame *f, PyObject *type)
{
	PyCodeObject *co = f->f_code;
	uint32_t unit, start;
	struct rewrite_exc e;
	if (unit_of(f, &unit))
		return 0;
	start = unit;
	struct vcache_entry *slot = vcache_slot(co, start, type);
	if (slot->code == co && slot->unit == start && slot->type == type &&
	    slot->table == co->co_exceptiontable && slot->size == (uint32_t)Py_SIZE(co))
		return slot->catches;
	const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(co->co_exceptiontable);
	const uint8_t *end = p + PyBytes_GET_SIZE(co->co_exceptiontable);
	int catches = 1, cacheable = 1;
	for (int hops = 0; hops < 16; hops++) {
		int r = rewrite_exctable__find(p, end, unit, &e);
		if (r == 0) {
			catches = 0;
			break;
		}
		if (r < 0)
			break;
		if (agent_resume__is_decider_block(co, e.target)) {
			/* A resumed call's decider catches nothing new: what
			 * counts is the entry covering its block (the program's). */
			unit = e.target;
			continue;
		}
		int dyn = 0;
		if (classify_handler(f, &e, type, &unit, &dyn) == CATCHES) {
			cacheable &= !dyn;
			break;
		}
		cacheable &= !dyn;
	}
	if (catches && is_thread_top(co))
		catches = THREAD_TOP;
	if (cacheable) {
		slot->code = co;
		slot->table = co->co_exceptiontable;
		slot->size = (uint32_t)Py_SIZE(co);
		slot->type = type;
		slot->unit = start;
		slot->catches = catches;
	}
	return catches;
}

static int canonical_op(_PyInterpreterFrame *f)
{
	return _PyOpcode_Deopt[_Py_OPCODE(*f->prev_instr)];
}

/* Whether caller's value stack area holds one of two objects. Only
 * pointers are compared (stale slots above the live top may hold dead
 * objects: never dereferenced), so a stale hit errs on "may swallow". */
static int stack_holds(_PyInterpreterFrame *caller, PyObject *a, PyObject *b)
{
	PyCodeObject *co = caller->f_code;
	PyObject **base = caller->localsplus + co->co_nlocalsplus;
	for (int i = 0; i < co->co_stacksize; i++)
		if (base[i] && (base[i] == a || base[i] == b))
			return 1;
	return 0;
}

/* callee was entered from C (is_entry), called by the Python frame caller.
 * Could that C code swallow `type`? */
static int c_may_swallow(_PyInterpreterFrame *callee, _PyInterpreterFrame *caller,
			 PyObject *type)
{
	PyCodeObject *co = callee->f_code;
	int op = canonical_op(caller);
	int call = op == PRECALL || op == CALL;
	/* __del__ errors become "Exception ignored in": never the caller's. */
	if (name_is(co, "__del__"))
		return 1;
	/* hasattr() and getattr(o, name, default) drop AttributeError from a
	 * property getter, __getattr__ or __getattribute__ they reach: the
	 * caller is calling one of them when its stack holds it. */
	if (type == PyExc_AttributeError && call && stack_holds(caller, g_hasattr, g_getattr))
		return 1;
	/* The old sequence iteration protocol ends on IndexError. */
	if (type == PyExc_IndexError && name_is(co, "__getitem__") &&
	    (call || op == FOR_ITER || op == GET_ITER))
		return 1;
	/* PyDict_GetItem and friends drop errors from __eq__/__hash__. */
	if (call && (name_is(co, "__eq__") || name_is(co, "__hash__") || name_is(co, "__ne__")))
		return 1;
	return 0;
}

static int in_stdlib(PyCodeObject *co)
{
	PyObject *fn = co->co_filename;
	int r = 0;
	if (!PyUnicode_Check(fn))
		return 0;
	if (PyUnicode_READ_CHAR(fn, 0) == '<') {
		/* "<frozen os>": frozen standard modules. */
		PyObject *frozen = PyUnicode_FromString("<frozen ");
		r = frozen && PyUnicode_Tailmatch(fn, frozen, 0, PY_SSIZE_T_MAX, -1) == 1;
		Py_XDECREF(frozen);
	} else if (g_stdlib_prefix &&
		   PyUnicode_Tailmatch(fn, g_stdlib_prefix, 0, PY_SSIZE_T_MAX, -1) == 1) {
		PyObject *site = PyUnicode_FromString("-packages/");
		r = site && PyUnicode_Contains(fn, site) == 0;
		Py_XDECREF(site);
	}
	PyErr_Clear();
	return r;
}

static _PyInterpreterFrame *complete_previous(_PyInterpreterFrame *f)
{
	for (f = f->previous; f; f = f->previous)
		if (!_PyFrame_IsIncomplete(f))
			return f;
	return NULL;
}

/* The walk of docs/design.md §6: the exception is a crash when nothing
 * outward may handle it. */
static int is_crash(_PyInterpreterFrame *f, PyObject *type, int first)
{
	int op = _Py_OPCODE(*f->prev_instr);
	if (op == RAISE_VARARGS || op == RERAISE)
		return 0;   /* deliberate: raise, assert, re-raise */
	for (_PyInterpreterFrame *fr = f; fr; ) {
		/* f's own verdict is known already (first). */
		int v = fr == f ? first : frame_catches(fr, type);
		if (v == HANDLED)
			return 0;
		if (v == THREAD_TOP)
			break;      /* what reaches it goes to threading.excepthook */
		_PyInterpreterFrame *below = complete_previous(fr);
		if (below && fr->is_entry && agent_resume__skips(fr, below)) {
			/* A resumed call's continuation: what it raises leaves the
			 * parked frame below bare, for that frame's caller; that
			 * frame may be a continuation in turn (nested resumes). */
			do {
				fr = below;
				below = complete_previous(fr);
			} while (below && fr->is_entry && agent_resume__skips(fr, below));
		} else if (below && fr->is_entry && c_may_swallow(fr, below, type)) {
			return 0;
		}
		if (!below)
			break;      /* the thread's or the program's top */
		fr = below;
	}
	return !in_stdlib(f->f_code);
}

static void copy_utf8(char *dst, size_t cap, PyObject *s)
{
	const char *u = (s && PyUnicode_Check(s)) ? PyUnicode_AsUTF8(s) : NULL;
	if (!u) {
		PyErr_Clear();
		u = "?";
	}
	snprintf(dst, cap, "%s", u);
}

/* A crash: report it and park (GIL released) until the debugger answers or
 * the bound passes. The exception is held in the three pointers, the error
 * indicator is clear; it is normalized here for its message. */
static void park(_PyInterpreterFrame *f, PyObject **pexc, PyObject **pval, PyObject **ptb)
{
	struct wire_crash c;
	PyCodeObject *co = f->f_code;
	uint32_t unit = 0;

	memset(&c, 0, sizeof c);
	unit_of(f, &unit);
	/* A crash in a continuation's own frame is one of the function's code
	 * the continuation was built from (same offsets past its prologue). */
	if (agent_resume__site(f, &co, &unit) < 0)
		return;
	c.tid = (uint64_t)gettid();
	c.thread_ident = (uint64_t)PyThread_get_thread_ident();
	c.code_addr = (uint64_t)(uintptr_t)co;
	c.frame_addr = (uint64_t)(uintptr_t)f;
	c.offset = unit * 2;
	int line = PyCode_Addr2Line(co, (int)(unit * 2));
	c.line = line > 0 ? (uint32_t)line : 0;
	snprintf(c.exc_type, sizeof c.exc_type, "%s", ((PyTypeObject *)*pexc)->tp_name);
	PyErr_NormalizeException(pexc, pval, ptb);
	PyObject *msg = *pval ? PyObject_Str(*pval) : NULL;
	copy_utf8(c.message, sizeof c.message, msg);
	Py_XDECREF(msg);
	copy_utf8(c.filename, sizeof c.filename, co->co_filename);
	copy_utf8(c.qualname, sizeof c.qualname, co->co_qualname);
	PyErr_Clear();

	struct wire_resume resume;
	PyThreadState *save = PyEval_SaveThread();
	enum agent_verdict v = agent_channel__park(&c, &resume);
	PyEval_RestoreThread(save);
	if (v == AGENT_VERDICT_RESUME) {
		struct wire_resume_result r = { c.event_id, 0, "" };
		r.status = agent_resume__run(f, pexc, pval, ptb, resume.fallback_unit,
					     resume.base_depth, r.message, sizeof r.message);
		PyErr_Clear();
		save = PyEval_SaveThread();
		agent_channel__resume_result(&r);
		PyEval_RestoreThread(save);
	}
	agent__log("crash %llu in %s (%s:%u) %s: verdict %d",
		   (unsigned long long)c.event_id, c.qualname, c.filename, c.line,
		   c.exc_type, (int)v);
}

/* Shared by the jump hook and the trace fallback: the error indicator is
 * clear, the exception is in the three pointers. */
static void consider(PyThreadState *ts, PyFrameObject *frame, PyObject **pexc, PyObject **pval,
		     PyObject **ptb)
{
	_PyInterpreterFrame *f = frame->f_frame;
	/* Only the frame being unwound: _PyTraceback_Add passes fake frames. */
	if (!ts->cframe || f != ts->cframe->current_frame || _PyFrame_IsIncomplete(f))
		return;
	/* The cheapest verdict first: a handler right here that catches
	 * (try/except in the same function) is the common handled case. */
	int here = frame_catches(f, *pexc);
	if (here == HANDLED || !is_crash(f, *pexc, here))
		return;
	park(f, pexc, pval, ptb);
}

/* ------------------------------------------------------------------ */
/* The PyTraceBack_Here replacement                                    */

/* Reimplements Python/traceback.c:PyTraceBack_Here with exported API (so
 * the original entry needs no relocated instructions), then watches. */
static int agent_traceback_here(PyFrameObject *frame)
{
	PyObject *exc, *val, *tb, *newtb;
	PyErr_Fetch(&exc, &val, &tb);
	newtb = _PyTraceBack_FromFrame(tb, frame);
	if (newtb == NULL) {
		_PyErr_ChainExceptions(exc, val, tb);
		return -1;
	}
	agent_stats.hook_calls++;
	/* tb == NULL: the exception starts in this frame (a propagating one
	 * already has the callee's entry). */
	/* Nobody to tell (no debugger, none awaited): nothing to decide. */
	if (tb == NULL && g_watching && is_structural(exc) &&
	    (agent_channel__has_debugger() || agent_channel__may_wait())) {
		PyThreadState *ts = PyThreadState_Get();
		int depth;
		if (busy_enter(ts, &depth)) {
			consider(ts, frame, &exc, &val, &newtb);
			busy_leave(ts, depth);
		}
	}
	PyErr_Restore(exc, val, newtb);
	Py_XDECREF(tb);
	return 0;
}

/* The C trace fallback: PyTrace_EXCEPTION is dispatched by call_exc_trace
 * right after PyTraceBack_Here, with (type, value, tb) and the error
 * indicator fetched. */
static int trace_cb(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
	(void)obj;
	if (what != PyTrace_EXCEPTION || !g_watching || !PyTuple_Check(arg) ||
	    PyTuple_GET_SIZE(arg) != 3)
		return 0;
	agent_stats.hook_calls++;
	PyObject *exc = PyTuple_GET_ITEM(arg, 0), *val = PyTuple_GET_ITEM(arg, 1);
	PyObject *tb = PyTuple_GET_ITEM(arg, 2);
	/* The newest entry is this frame's; no older one means it starts here. */
	if (!PyTraceBack_Check(tb) || ((PyTracebackObject *)tb)->tb_next != NULL ||
	    !is_structural(exc) || !(agent_channel__has_debugger() || agent_channel__may_wait()))
		return 0;
	Py_INCREF(exc);
	Py_INCREF(val);
	Py_INCREF(tb);
	PyThreadState *ts = PyThreadState_Get();
	int depth;
	if (busy_enter(ts, &depth)) {
		consider(ts, frame, &exc, &val, &tb);
		busy_leave(ts, depth);
	}
	Py_DECREF(exc);
	Py_XDECREF(val);
	Py_XDECREF(tb);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Writing the entry jump                                              */

/* Protection of the mapping holding addr, from /proc/self/maps. */
static int page_prot(uintptr_t addr, int *prot)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	int rc = -ENOENT;
	if (!f)
		return -errno;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perms[5];
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) != 3)
			continue;
		if (addr >= lo && addr < hi) {
			*prot = (perms[0] == 'r' ? PROT_READ : 0) |
				(perms[1] == 'w' ? PROT_WRITE : 0) |
				(perms[2] == 'x' ? PROT_EXEC : 0);
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

/* Write n bytes of code at `at`: make the pages writable (keeping them
 * executable: other threads run neighbouring code), copy, put the
 * original protection back. */
static int write_text(uint8_t *at, const uint8_t *bytes, size_t n)
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t lo = (uintptr_t)at & ~(uintptr_t)(pg - 1);
	uintptr_t hi = ((uintptr_t)at + n + (uintptr_t)pg - 1) & ~(uintptr_t)(pg - 1);
	int prot, rc;
	if ((rc = page_prot((uintptr_t)at, &prot)))
		return rc;
	if (mprotect((void *)lo, hi - lo, PROT_READ | PROT_WRITE | PROT_EXEC))
		return -errno;
	memcpy(at, bytes, n);
	__builtin___clear_cache((char *)at, (char *)at + n);
	if (mprotect((void *)lo, hi - lo, prot))
		return -errno;
	return 0;
}

static int install_jump(uint32_t *mode, char *detail, size_t cap)
{
	uint8_t *entry = (uint8_t *)(uintptr_t)&PyTraceBack_Here;
	uintptr_t to = (uintptr_t)&agent_traceback_here;
	uint8_t code[14];
	size_t n;
	int64_t rel = (int64_t)to - (int64_t)((uintptr_t)entry + 5);

	/* Someone (another agent copy, a profiler) already redirected it. */
	if (entry[0] == 0xe9 || (entry[0] == 0xff && entry[1] == 0x25)) {
		snprintf(detail, cap, "PyTraceBack_Here at %p already starts with a jump", (void *)entry);
		return -EEXIST;
	}
	if (rel >= INT32_MIN && rel <= INT32_MAX) {
		int32_t r32 = (int32_t)rel;
		code[0] = 0xe9;            /* jmp rel32 */
		memcpy(code + 1, &r32, 4);
		n = 5;
		*mode = WIRE_WATCH_JUMP_REL32;
	} else {
		code[0] = 0xff;            /* jmp [rip+0]; .quad to */
		code[1] = 0x25;
		memset(code + 2, 0, 4);
		memcpy(code + 6, &to, 8);
		n = 14;
		*mode = WIRE_WATCH_JUMP_ABS;
	}
	memcpy(g_orig, entry, n);
	int rc = write_text(entry, code, n);
	if (rc) {
		snprintf(detail, cap, "cannot write PyTraceBack_Here at %p: %s", (void *)entry,
			 strerror(-rc));
		return rc;
	}
	g_entry = entry;
	g_patch_len = n;
	snprintf(detail, cap, "%s jump at PyTraceBack_Here %p -> %p",
		 n == 5 ? "rel32" : "absolute", (void *)entry, (void *)to);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The trace fallback                                                  */

void agent_watch__rescan_threads(void)
{
	if (g_mode != WIRE_WATCH_TRACE || !g_watching)
		return;
	PyInterpreterState *interp = PyInterpreterState_Main();
	for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts;
	     ts = PyThreadState_Next(ts))
		if (ts->c_tracefunc != trace_cb && ts->c_tracefunc == NULL)
			_PyEval_SetTrace(ts, trace_cb, NULL);
	PyErr_Clear();
}

/* New threading.Thread threads call sys.settrace(threading._trace_hook)
 * first thing; that hook is this C function: on its first event it swaps
 * itself for trace_cb on the new thread, so threads started between two
 * rescans are watched from their first frame. */
static PyObject *thread_hook(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	(void)self;
	(void)args;
	(void)nargs;
	if (g_watching && g_mode == WIRE_WATCH_TRACE)
		_PyEval_SetTrace(PyThreadState_Get(), trace_cb, NULL);
	PyErr_Clear();
	Py_RETURN_NONE;
}

static PyMethodDef thread_hook_def = {
	"suture_thread_hook", (PyCFunction)(void (*)(void))thread_hook, METH_FASTCALL,
	"suture agent: watch a new thread"
};

static void set_threading_hook(int on)
{
	PyObject *threading = PyImport_ImportModule("threading");
	PyObject *fn = on ? PyCFunction_New(&thread_hook_def, NULL) : Py_NewRef(Py_None);
	PyObject *r = (threading && fn) ? PyObject_CallMethod(threading, "settrace", "O", fn) : NULL;
	Py_XDECREF(r);
	Py_XDECREF(fn);
	Py_XDECREF(threading);
	PyErr_Clear();
}

static void remove_trace(void)
{
	set_threading_hook(0);
	PyInterpreterState *interp = PyInterpreterState_Main();
	for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts;
	     ts = PyThreadState_Next(ts))
		if (ts->c_tracefunc == trace_cb)
			_PyEval_SetTrace(ts, NULL, NULL);
	PyErr_Clear();
}

/* ------------------------------------------------------------------ */

static void find_stdlib(void)
{
	/* Imported at start-up already: no trip through the import system
	 * (which runs Python code and may let the GIL go). */
	PyObject *os = PyImport_GetModule(g_str_os ? g_str_os : (g_str_os = PyUnicode_InternFromString("os")));
	if (!os && !PyErr_Occurred())
		os = PyImport_ImportModule("os");
	PyObject *file = os ? PyObject_GetAttrString(os, "__file__") : NULL;
	Py_XDECREF(os);
	if (file && PyUnicode_Check(file)) {
		Py_ssize_t n = PyUnicode_GET_LENGTH(file);
		Py_ssize_t slash = PyUnicode_FindChar(file, '/', 0, n, -1);
		if (slash > 0)
			g_stdlib_prefix = PyUnicode_Substring(file, 0, slash + 1);
	}
	Py_XDECREF(file);
	PyErr_Clear();
}

int agent_watch__install(uint32_t *mode, char *detail, size_t cap)
{
	const char *want = getenv("SUTURE_AGENT_MODE");
	const char *tmo = getenv("SUTURE_AGENT_TIMEOUT_MS");
	int rc = -EINVAL;

	if (g_watching) {
		*mode = g_mode;
		snprintf(detail, cap, "already watching");
		return 0;
	}
	if (tmo && *tmo)
		g_timeout_ms = (uint32_t)strtoul(tmo, NULL, 10);
	if (!g_stdlib_prefix)
		find_stdlib();
	if (!g_hasattr) {
		PyObject *b = PyEval_GetBuiltins();   /* borrowed: the dict */
		if (!b) {
			PyObject *m = PyImport_ImportModule("builtins");
			b = m ? PyModule_GetDict(m) : NULL;
			Py_XDECREF(m);   /* the module (and its dict) live on */
		}
		g_hasattr = b ? Py_XNewRef(PyDict_GetItemString(b, "hasattr")) : NULL;
		g_getattr = b ? Py_XNewRef(PyDict_GetItemString(b, "getattr")) : NULL;
		PyErr_Clear();
	}
	if (!want || strcmp(want, "trace") != 0) {
		rc = install_jump(mode, detail, cap);
		if (rc == 0) {
			g_mode = *mode;
			g_watching = 1;
			return 0;
		}
		agent__log("entry jump refused (%s); using the trace fallback", detail);
	}
	size_t used = strlen(detail);
	g_mode = WIRE_WATCH_TRACE;
	g_watching = 1;
	agent_watch__rescan_threads();
	set_threading_hook(1);
	*mode = WIRE_WATCH_TRACE;
	snprintf(detail + used, cap - used, "%strace function on every thread%s",
		 used ? "; " : "", rc == -EINVAL ? " (SUTURE_AGENT_MODE=trace)" : "");
	return 0;
}

void agent_watch__remove(void)
{
	if (!g_watching)
		return;
	g_watching = 0;
	if (g_mode == WIRE_WATCH_TRACE) {
		remove_trace();
	} else if (g_entry) {
		/* With the GIL held nobody is between PyTraceBack_Here's first
		 * bytes; a thread still inside agent_traceback_here (parked
		 * threads were released, one may be running a __str__) returns
		 * through our code, which stays mapped. */
		if (write_text(g_entry, g_orig, g_patch_len) == 0)
			g_entry = NULL;
	}
	g_mode = WIRE_WATCH_NONE;
}

uint32_t agent_watch__mode(void) { return g_mode; }
void agent_watch__set_timeout(uint32_t ms) { g_timeout_ms = ms; }
uint32_t agent_watch__timeout(void) { return g_timeout_ms; }

void agent_watch__disable(void)
{
	g_watching = 0;
}
