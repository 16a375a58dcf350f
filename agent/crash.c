/* agent: the crash decision, with the GIL held, for an exception that
 * just started in the frame being unwound (watch.c filters: new, of a
 * structural type, a debugger to tell).
 *
 * It is a crash when nothing may handle it: walking from the frame outward,
 * every frame's exception table (rewrite_exctable__find, compiled in) is
 * looked up at its current instruction and the handler block it names is
 * read without running anything: an except clause that cannot match (the
 * names it tests are resolved as the frame would), a cleanup that
 * re-raises (finally, a with whose __exit__ never suppresses) counts as no
 * handler, anything that cannot be judged counts as one. C code between
 * frames that is known to swallow (hasattr, the old iteration protocol,
 * __del__, dict lookups calling __eq__) counts as a handler; threading's
 * catch-all at a thread's top does not (the thread dies of it). Deliberate
 * raises (raise, assert, re-raise) and exceptions first seen in library
 * code are never crashes. Beyond one frame's handlers (library code, units
 * of work, framework registries, transports and their consumers):
 * policy.c.
 *
 * Verdicts that depend only on code (not on run-time values) are cached
 * per (code object, unit, type): a handled exception in a loop asks the
 * same question again and again.
 */
#include "agent/agent-py.h"
#include "agent/policy.h"
#include "rewrite/rewrite.h"
#include "opcode.h"
#define NEED_OPCODE_TABLES /* _PyOpcode_Deopt/_Caches/_Jump, once: resume.c uses them too */
#include "internal/pycore_opcode.h"

#include <stdio.h>
#include <string.h>

_Static_assert(sizeof(_Py_CODEUNIT) == 2, "3.11 code units are 16-bit");

/* Set by agent_crash__init, with the GIL held, before the watcher is on;
 * read-only afterwards. The standard library's directory
 * ("/usr/lib/python3.11/"); builtins.hasattr and builtins.getattr. */
static PyObject *g_hasattr, *g_getattr;

int agent_crash__unit_of(_PyInterpreterFrame *f, uint32_t *unit)
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
	int op; /* canonical */
	uint32_t arg;
	uint32_t next; /* unit after the instruction and its caches */
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
	PyObject *v[MAX_LOADS]; /* borrowed; NULL = unknown */
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
		if (PyTuple_Check(v)) { /* a constant tuple of types */
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
	/* An async __aexit__ (a coroutine) is judged by its returns too: its
	 * result is what the await gives WITH_EXCEPT_START's caller. */
	if (co->co_flags & (CO_GENERATOR | CO_ASYNC_GENERATOR))
		return 0;
	for (uint32_t u = 0; u < n; u = in.next) {
		if (insn_at(co, u, &in))
			return 0;
		if (in.op == RETURN_VALUE) {
			PyObject *c = prev_op == LOAD_CONST &&
						      prev_arg < (uint32_t)PyTuple_GET_SIZE(
									 co->co_consts)
					      ? PyTuple_GET_ITEM(co->co_consts, prev_arg)
					      : NULL;
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

/* Whether a loop body [from, to) of a handler may end the handling itself:
 * a return, a yield, a POP_EXCEPT, or a jump out of the loop other than to
 * its exit (a break past an else, a continue of an outer loop). */
static int body_leaves(PyCodeObject *co, uint32_t from, uint32_t to)
{
	struct insn in;
	for (uint32_t u = from; u < to; u = in.next) {
		if (insn_at(co, u, &in))
			return 1;
		switch (in.op) {
		case RETURN_VALUE:
		case YIELD_VALUE:
		case POP_EXCEPT:
			return 1;
		case JUMP_FORWARD:
		case POP_JUMP_FORWARD_IF_TRUE:
		case POP_JUMP_FORWARD_IF_FALSE:
		case POP_JUMP_FORWARD_IF_NONE:
		case POP_JUMP_FORWARD_IF_NOT_NONE:
		case JUMP_IF_FALSE_OR_POP:
		case JUMP_IF_TRUE_OR_POP:
		case FOR_ITER:
			if (in.next + in.arg > to)
				return 1;
			break;
		case JUMP_BACKWARD:
		case JUMP_BACKWARD_NO_INTERRUPT:
		case POP_JUMP_BACKWARD_IF_FALSE:
		case POP_JUMP_BACKWARD_IF_TRUE:
		case POP_JUMP_BACKWARD_IF_NONE:
		case POP_JUMP_BACKWARD_IF_NOT_NONE:
			if (in.next - in.arg < from)
				return 1;
			break;
		}
	}
	return 0;
}

/* Whether the clause that matched names Exception or BaseException: a
 * catch-all, as a bare except is. */
static int clause_is_broad(const struct loads *l, int ntuple)
{
	for (int i = l->n - ntuple; i >= 0 && i < l->n; i++) {
		PyObject *v = l->v[i];
		if (v == PyExc_Exception || v == PyExc_BaseException)
			return 1;
		if (v && PyTuple_Check(v))
			for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(v); k++)
				if (PyTuple_GET_ITEM(v, k) == PyExc_Exception ||
				    PyTuple_GET_ITEM(v, k) == PyExc_BaseException)
					return 1;
	}
	return 0;
}

/* *broad: the CATCHES verdict is a catch-all (except Exception/BaseException,
 * a bare except), which in library code ends a unit of work. */
static enum verdict classify_handler(_PyInterpreterFrame *f, const struct rewrite_exc *e,
				     PyObject *type, uint32_t *reraise_at, int *dynamic, int *broad)
{
	PyCodeObject *co = f->f_code;
	struct loads l = { .n = 0 };
	struct insn in;
	int tuple = 1;          /* items the next CHECK_EXC_MATCH tests */
	int tested = 0;         /* a CHECK_EXC_MATCH or a with's __exit__ was met */
	uint32_t loop_exit = 0; /* the last forward conditional jump's target */
	uint32_t u = e->target;
	*broad = 0;

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
		case LOAD_CONST: /* guards name exception types as constants */
			loads_push(&l, in.arg < (uint32_t)PyTuple_GET_SIZE(co->co_consts)
					       ? PyTuple_GET_ITEM(co->co_consts, in.arg)
					       : NULL);
			tuple = 1;
			break;
		case LOAD_ATTR: {
			PyObject *mod = l.n ? l.v[l.n - 1] : NULL, *v = NULL;
			if (mod && PyModule_Check(mod) &&
			    in.arg < (uint32_t)PyTuple_GET_SIZE(co->co_names)) {
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
			tested = 1;
			if (m > 0)
				*broad = clause_is_broad(&l, tuple);
			if (m != 0)
				return CATCHES; /* matches, or cannot tell */
			/* No match: POP_JUMP_FORWARD_IF_FALSE to the next clause. */
			if (insn_at(co, in.next, &jump) || jump.op != POP_JUMP_FORWARD_IF_FALSE)
				return CATCHES;
			u = jump.next + jump.arg;
			l.n = 0;
			tuple = 1;
			tested = 0; /* the next clause: a bare except is broad */
			continue;
		}
		case WITH_EXCEPT_START: {
			/* The __exit__ bound method sits at depth-1 (PEEK(4) in
			 * ceval's WITH_EXCEPT_START); C-implemented ones (locks,
			 * files) never suppress, Python ones may, unless every
			 * return of theirs is a constant None or False. */
			PyObject *exit_fn = NULL;
			*dynamic = 1;
			tested = 1;
			if (e->depth >= 1 && (int)e->depth <= co->co_stacksize)
				exit_fn = f->localsplus[co->co_nlocalsplus + e->depth - 1];
			if (!exit_fn)
				return CATCHES;
			if (!PyCFunction_Check(exit_fn) && !exit_never_suppresses(exit_fn) &&
			    agent_policy__exit_may_suppress(exit_fn, type,
							    agent_policy__is_library(co)))
				return CATCHES;
			break; /* falls through to its RERAISE */
		}
		case POP_JUMP_FORWARD_IF_TRUE:
		case POP_JUMP_FORWARD_IF_FALSE:
		case POP_JUMP_FORWARD_IF_NONE:
		case POP_JUMP_FORWARD_IF_NOT_NONE:
		case JUMP_IF_FALSE_OR_POP:
		case JUMP_IF_TRUE_OR_POP:
			loop_exit = in.next + in.arg;
			break; /* follow the fall-through path */
		case POP_EXCEPT: {
			/* Handled, unless it is the cleanup "COPY 3; POP_EXCEPT; RERAISE". */
			struct insn nx;
			if (insn_at(co, in.next, &nx) == 0 && nx.op == RERAISE) {
				*reraise_at = in.next;
				return RERAISES;
			}
			*broad = !tested; /* a bare except */
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
		case SEND:
			/* async with: __aexit__'s awaitable is driven by a SEND
			 * loop; its forward jump is the way out once it is done. */
			u = in.next + in.arg;
			continue;
		case FOR_ITER:
			/* A loop in the handler (a finally cancelling futures, an
			 * except closing resources): past it, unless its body may
			 * end the handling itself. */
			if (body_leaves(co, u, in.next + in.arg))
				return CATCHES;
			u = in.next + in.arg;
			continue;
		case JUMP_BACKWARD:
			/* The end of a while loop whose test jumped forward to
			 * its exit (loop_exit): leave it there. */
			if (loop_exit > u && in.next >= in.arg &&
			    !body_leaves(co, in.next - in.arg, loop_exit)) {
				u = loop_exit;
				loop_exit = 0;
				continue;
			}
			return CATCHES;
		case CHECK_EG_MATCH: /* except*: cannot tell */
		case RETURN_VALUE:   /* return in finally swallows */
		case YIELD_VALUE:
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
	int r = tail && n >= 12 && PyUnicode_Tailmatch(co->co_filename, tail, 0, n, 1) == 1;
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
	uintptr_t h = ((uintptr_t)co >> 4) ^ ((uintptr_t)type >> 4) ^
		      ((uintptr_t)unit * 2654435761u);
	return &g_vcache[(h ^ (h >> 9)) % VCACHE_SIZE];
}

enum {
	NO_HANDLER = AGENT_NO_HANDLER,
	HANDLED = AGENT_HANDLED,
	THREAD_TOP = AGENT_THREAD_TOP,
	BOUNDARY = AGENT_BOUNDARY,
	/* Handled by a catch-all of application code (except Exception,
	 * BaseException, a bare except): the application's own "log and go
	 * on", which handled.c counts (crash.c only; HANDLED to policy.c). */
	APP_BROAD = 4,
};

/* Whether frame f (at its current instruction) may catch `type`: follow
 * handlers and the re-raises of cleanups within the frame. A malformed
 * table cannot be judged: it counts as catching. THREAD_TOP: it catches,
 * but it is threading's catch-all (the thread dies of it). BOUNDARY: a
 * catch-all of library code (policy.h). */
static int frame_catches(_PyInterpreterFrame *f, PyObject *type)
{
	PyCodeObject *co = f->f_code;
	uint32_t unit, start;
	struct rewrite_exc e;
	if (agent_crash__unit_of(f, &unit))
		return 0;
	start = unit;
	struct vcache_entry *slot = vcache_slot(co, start, type);
	if (slot->code == co && slot->unit == start && slot->type == type &&
	    slot->table == co->co_exceptiontable && slot->size == (uint32_t)Py_SIZE(co))
		return slot->catches;
	const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(co->co_exceptiontable);
	const uint8_t *end = p + PyBytes_GET_SIZE(co->co_exceptiontable);
	int catches = 1, cacheable = 1, broad = 0;
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
		if (classify_handler(f, &e, type, &unit, &dyn, &broad) == CATCHES) {
			cacheable &= !dyn;
			break;
		}
		cacheable &= !dyn;
	}
	if (catches && is_thread_top(co))
		catches = THREAD_TOP;
	else if (catches && broad)
		catches = agent_policy__is_library(co) ? BOUNDARY : APP_BROAD;
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

int agent_watch__frame_verdict(_PyInterpreterFrame *f, PyObject *type)
{
	int v = frame_catches(f, type);
	return v == APP_BROAD ? HANDLED : v;
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
static int c_may_swallow(_PyInterpreterFrame *callee, _PyInterpreterFrame *caller, PyObject *type)
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

static _PyInterpreterFrame *complete_previous(_PyInterpreterFrame *f)
{
	for (f = f->previous; f; f = f->previous)
		if (!_PyFrame_IsIncomplete(f))
			return f;
	return NULL;
}

/* The walk outward from fr (whose own verdict is `first`, or -1 to compute
 * it): 1 when nothing may handle the exception (a crash), 0 when something
 * may. A broad library handler ends a unit of work: policy.c decides
 * whether that is a crash (registries, transports and their consumers).
 * *app_broad (may be NULL) is set when the handler is the application's
 * own catch-all. */
static int walk(_PyInterpreterFrame *fr, int first, PyObject *type, int depth, int *app_broad)
{
	_PyInterpreterFrame *above = NULL;
	while (fr) {
		int v = first >= 0 ? first : frame_catches(fr, type);
		first = -1;
		if (v == APP_BROAD && app_broad)
			*app_broad = 1;
		if (v == HANDLED || v == APP_BROAD)
			return 0;
		if (v == THREAD_TOP)
			return 1; /* what reaches it goes to threading.excepthook */
		if (v == BOUNDARY)
			return agent_policy__boundary(fr, above, type, depth);
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
		above = fr;
		fr = below; /* NULL: the thread's or the program's top */
	}
	return 1;
}

int agent_watch__walk(_PyInterpreterFrame *from, PyObject *type, int depth)
{
	return walk(from, -1, type, depth, NULL);
}

/* The exception is a crash when it starts in application code, not by a
 * deliberate raise, and nothing outward handles it (docs/design.md). */
static int is_crash(_PyInterpreterFrame *f, PyObject *type, int first, int *app_broad)
{
	int op = _Py_OPCODE(*f->prev_instr);
	/* Deliberate: raise, assert, re-raise; held nonetheless while the
	 * debugger holds crashes (an assertion is what --hold is for), a
	 * re-raise never (it was judged where it started). */
	if (op == RERAISE || (op == RAISE_VARARGS && !agent_channel__holds()))
		return 0;
	return walk(f, first, type, 0, app_broad);
}

void agent_crash__init(void)
{
	agent_policy__init();
	if (!g_hasattr) {
		PyObject *b = PyEval_GetBuiltins(); /* borrowed: the dict */
		if (!b) {
			PyObject *m = PyImport_ImportModule("builtins");
			b = m ? PyModule_GetDict(m) : NULL;
			Py_XDECREF(m); /* the module (and its dict) live on */
		}
		g_hasattr = b ? Py_XNewRef(PyDict_GetItemString(b, "hasattr")) : NULL;
		g_getattr = b ? Py_XNewRef(PyDict_GetItemString(b, "getattr")) : NULL;
		PyErr_Clear();
	}
}

int agent_crash__decide(_PyInterpreterFrame *f, PyObject *type)
{
	/* Exceptions that start in library code are never crashes (libraries
	 * use KeyError, IndexError... as control flow): the cheapest test
	 * first, then a handler right here (try/except in the same function). */
	if (agent_policy__is_library(f->f_code))
		return 0;
	int here = frame_catches(f, type);
	int app_broad = 0;
	if (here == HANDLED)
		return 0;
	if (is_crash(f, type, here, &app_broad))
		return 1;
	/* Handled by the application's own catch-all: counted, or healed
	 * where the user opted the site in (--heal-handled). Not while the
	 * debugger holds crashes (what --hold holds is what ends a thread). */
	if (app_broad && !agent_channel__holds() && agent_handled__note(f, type))
		return AGENT_CRASH_OPTED_IN;
	return 0;
}

_PyInterpreterFrame *agent_crash__reraised(_PyInterpreterFrame *f, PyObject *tb, PyObject *type)
{
	int op = canonical_op(f);
	if ((op == RAISE_VARARGS || op == RERAISE) && !agent_policy__is_library(f->f_code))
		return NULL; /* the application raises it again itself */
	PyTracebackObject *o = (PyTracebackObject *)tb;
	for (int i = 0; o->tb_next && i < 4096; i++)
		o = o->tb_next;
	if (!o->tb_frame)
		return NULL;
	_PyInterpreterFrame *of = o->tb_frame->f_frame;
	struct insn in;
	if (of == f || agent_policy__is_library(of->f_code) || o->tb_lasti < 0 ||
	    insn_at(of->f_code, (uint32_t)o->tb_lasti / 2, &in) || in.op == RAISE_VARARGS ||
	    in.op == RERAISE)
		return NULL;
	int here = frame_catches(f, type);
	if (here == HANDLED || here == APP_BROAD || !walk(f, here, type, 0, NULL))
		return NULL;
	return of;
}
