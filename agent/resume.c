/* agent: in-flight resume of a parked crash (agent/README.md).
 *
 * Runs in the crashing thread, inside the watcher (the exception of frame F
 * is held, the error indicator clear), after the debugger installed the
 * patch for F's code. Offsets of the patched code equal the original's, so:
 *
 *  K  = a prologue + the patched code of F. The prologue stores F's locals
 *       (cells carried raw, so closures keep their cells) and pushes the
 *       value-stack items below base_depth (loop iterators, with-exit
 *       callables), then jumps to fallback_unit, where the guard's block
 *       pushes the fallback and jumps back into the original code. The
 *       patched code's exception table and line table are shifted by the
 *       prologue's length. K is run as a function of no arguments.
 *  R  = K's result is delivered to F's caller C, suspended at its CALL
 *       (F entered inline, is_entry == 0): C's frame gets a copy of its
 *       code with a handler covering that CALL, whose appended block calls
 *       a one-shot decider with the exception: the exception F is about to
 *       propagate gives R (once); any other re-raises, so a later real
 *       crash at that call is never swallowed. The block is covered by the
 *       entry that covered the CALL, so C's own handlers still apply.
 *       F entered from C (is_entry: f(*a, **kw), partial, a callback of C
 *       code) returns R itself to its C caller: see "Returning K's result
 *       to a C caller" below.
 *  F  gets a copy of its code with no exception-table entries and unwinds
 *       without running its handlers again (K ran what was left of F).
 *  If K raises, F likewise unwinds without handlers, with K's exception.
 *
 * Nesting: while K runs, the watcher looks at this thread again (the
 * continuation is outside the watcher's no-re-entry guard: see watch.c,
 * busy_enter), so a second crash later in the same call is reported and
 * resumed too, up to MAX_NEST continuations deep per thread:
 *  - in a function K calls: the usual resume, with K's frame as the caller
 *    (its code is ours; it takes a decider like any other code);
 *  - in K's own frame: K was called from C (here) and its code belongs to
 *    no function, so the crash is reported against the code K was built
 *    from, at the offset less the prologue (the debugger patches the real
 *    function on top of its first guard), and the resume builds K2 from
 *    the function's new code and K's frame. K2's result is K's result:
 *    K's frame unwinds without handlers and the resume that called K (its
 *    level, below) takes the exception K propagates, compared by
 *    identity, as that result. Nothing is delivered twice and no cleanup
 *    runs twice: every frame that hands its work on unwinds bare.
 *
 * Frames switched are handled as in OSR: prev_instr rebased by index, the
 * old code kept alive. A generator's or coroutine's own frame goes on
 * itself in the patched code ("Going on inside a generator" below).
 * Anything outside the preconditions (a caller not at a CALL, frame sizes
 * that do not fit, a generator frame too small for the patched code, a
 * thread that traces or profiles where the result must pass through the
 * trace event) is refused before anything changes.
 *
 * One file over 800 lines: building the continuation K, the caller's
 * decider copy and running them share the level bookkeeping and the
 * frame layout rules; split, each half would need the other's internals.
 */
#include "agent/agent-py.h"
#include "rewrite/rewrite.h"
#include "opcode.h"
#include "internal/pycore_opcode.h" /* _PyOpcode_Deopt/_PyOpcode_Caches (defined in crash.c) */
#include "internal/pycore_code.h"   /* _PyLocals_GetKind, CO_FAST_CELL/FREE */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENTRIES 4096

/* Old code objects of switched frames are kept alive a while: the C eval
 * loop of the failing frame still holds first_instr into its old code
 * until the frame has unwound, which happens right after the watcher
 * returns, before this thread lets the GIL go. A ring of the last KEEP is
 * far more than enough and keeps memory flat over many resumes. */
#define KEEP 64
static PyObject *g_kept[KEEP];
static unsigned g_kept_next;

static int keep(PyObject *o)
{
	PyObject *old = g_kept[g_kept_next % KEEP];
	g_kept[g_kept_next % KEEP] = Py_NewRef(o);
	g_kept_next++;
	Py_XDECREF(old);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Continuations running now                                            */

/* Continuations nest at most this deep per thread (a crash in K resumed as
 * K2, a crash in K2 as K3...): each level holds a C-level eval loop on the
 * thread's stack. Past it a crash in the innermost one is still reported
 * and patched, and is that call's outcome. */
#define MAX_NEST 8

/* K's constants [from, to): the frame's values, loaded by its prologue
 * only. Once K's call is over they are replaced by None (scrub), so
 * nothing that keeps K's code (the keep ring, tracebacks, copies made for
 * a decider) keeps the program's objects alive. */
struct span {
	Py_ssize_t from, to;
};

static void scrub(PyObject *consts, struct span v)
{
	for (Py_ssize_t i = v.from; i < v.to && i < PyTuple_GET_SIZE(consts); i++) {
		PyObject *o = PyTuple_GET_ITEM(consts, i);
		PyTuple_SET_ITEM(consts, i, Py_NewRef(Py_None));
		Py_DECREF(o);
	}
}

/* One running continuation, on the C stack of agent_resume__run while K
 * is called. All threads' levels are one list, newest first, touched with
 * the GIL held only; a thread pushes and pops its own in order, so its
 * innermost level is the first of its own in the list. */
struct level {
	PyThreadState *ts;
	_PyInterpreterFrame *f;  /* the frame parked in the watcher, running K */
	PyFunctionObject *fn;    /* the real function (alive: f or an outer level holds it) */
	PyObject *kfunc;         /* K's function (alive during the call) */
	PyCodeObject *patched;   /* the code K was built from (strong) */
	uint32_t shift;          /* K's prologue, in units */
	struct span values;      /* K's constants that only its prologue loads */
	PyObject *token, *value; /* set by a resume of K's own frame (strong) */
	struct level *next;
};
static struct level *g_levels;

static struct level *level_top(PyThreadState *ts)
{
	for (struct level *l = g_levels; l; l = l->next)
		if (l->ts == ts)
			return l;
	return NULL;
}

static void level_pop(struct level *me)
{
	for (struct level **pp = &g_levels; *pp; pp = &(*pp)->next)
		if (*pp == me) {
			*pp = me->next;
			return;
		}
}

int agent_resume__depth(PyThreadState *ts)
{
	int n = 0;
	for (struct level *l = g_levels; l; l = l->next)
		n += l->ts == ts;
	return n;
}

/* The innermost continuation of this thread, if f is its K frame (a frame
 * of K's function: K's code, or a copy of it with a decider). */
static struct level *level_of_frame(_PyInterpreterFrame *f)
{
	struct level *l = level_top(PyThreadState_Get());
	return l && f->f_func && (PyObject *)f->f_func == l->kfunc ? l : NULL;
}

PyFunctionObject *agent_resume__function_of(_PyInterpreterFrame *f)
{
	/* Any thread's levels: the agent thread asks about parked frames. */
	for (struct level *l = g_levels; l; l = l->next)
		if (f->f_func && (PyObject *)f->f_func == l->kfunc)
			return l->fn;
	return f->f_func;
}

int agent_resume__is_continuation(PyObject *fn)
{
	for (struct level *l = g_levels; l; l = l->next)
		if (l->kfunc == fn)
			return 1;
	return 0;
}

int agent_resume__site(_PyInterpreterFrame *f, PyCodeObject **code, uint32_t *unit)
{
	struct level *l = level_of_frame(f);
	if (!l)
		return 0;
	if (*unit < l->shift)
		return -1; /* the prologue raises nothing: not a site of the function */
	*code = l->patched;
	*unit -= l->shift;
	return 1;
}

int agent_resume__skips(_PyInterpreterFrame *fr, _PyInterpreterFrame *below)
{
	PyThreadState *ts = PyThreadState_Get();
	for (struct level *l = g_levels; l; l = l->next)
		if (l->ts == ts && fr->f_func && (PyObject *)fr->f_func == l->kfunc &&
		    l->f == below)
			return 1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Byte builders: growable buffers filled by rewrite's allocation-free
 * codecs (rewrite/instr.c, exctable.c, linetable.c, compiled in), the same
 * checked code the debugger builds patches with. */

struct bytes {
	uint8_t *p;
	size_t len, cap;
	int err; /* the first failure; every later write is dropped */
};

/* Room for n more bytes at b->p + b->len, or NULL (b->err set). */
static uint8_t *reserve(struct bytes *b, size_t n)
{
	if (b->err)
		return NULL;
	if (b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap - b->len < n)
			cap *= 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p) {
			b->err = -ENOMEM;
			return NULL;
		}
		b->p = p;
		b->cap = cap;
	}
	return b->p + b->len;
}

/* An encoder's result at the reserved room: bytes written, or -errno. */
static void wrote(struct bytes *b, int w)
{
	if (w < 0)
		b->err = w;
	else
		b->len += (size_t)w;
}

static void put_bytes(struct bytes *b, const void *src, size_t n)
{
	uint8_t *p = reserve(b, n);
	if (p && n) {
		memcpy(p, src, n);
		b->len += n;
	}
}

/* One instruction with the fewest EXTENDED_ARG prefixes its arg needs
 * (never a zero one: CPython's compiler never emits it and debug builds
 * assert against it), then its zeroed caches. */
static void emit(struct bytes *b, int op, uint32_t arg)
{
	unsigned prefixes = rewrite_instr__prefixes(arg), caches = _PyOpcode_Caches[op];
	size_t n = 2 * ((size_t)prefixes + 1 + caches);
	uint8_t *p = reserve(b, n);
	if (p)
		wrote(b, rewrite_instr__put(p, n, op, arg, prefixes, caches));
}

/* co_exceptiontable's entries (docs/formats/exception-table.md) into
 * e[cap]: 0, or -1 when the table is malformed or has more than cap. */
static int decode_entries(PyObject *table, struct rewrite_exc *e, size_t cap, size_t *n)
{
	const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(table);
	const uint8_t *end = p + PyBytes_GET_SIZE(table);
	struct rewrite_exc x;
	int r;
	*n = 0;
	while ((r = rewrite_exctable__next(&p, end, &x)) == 1) {
		if (*n == cap)
			return -1;
		e[(*n)++] = x;
	}
	return r < 0 ? -1 : 0;
}

/* Entries left empty by a split are dropped; a value beyond the table's
 * 30 bits fails the buffer. */
static void encode_entries(struct bytes *b, const struct rewrite_exc *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (e[i].end <= e[i].start)
			continue;
		uint8_t *p = reserve(b, REWRITE_EXCTABLE_ENTRY_MAX);
		if (p)
			wrote(b, rewrite_exctable__put_entry(p, REWRITE_EXCTABLE_ENTRY_MAX, &e[i]));
	}
}

/* `units` code units located at *loc (line -1: no location) in entries of
 * at most 8 (docs/formats/location-table.md); *prev is the running line
 * the table so far ends on. */
static void put_location(struct bytes *b, const struct rewrite_loc *loc, size_t units,
			 int64_t *prev)
{
	while (units && !b->err) {
		uint32_t n = units > 8 ? 8 : (uint32_t)units;
		uint8_t *p = reserve(b, REWRITE_LINETABLE_ENTRY_MAX);
		if (p)
			wrote(b, rewrite_linetable__put_entry(p, REWRITE_LINETABLE_ENTRY_MAX, loc,
							      n, prev));
		units -= n;
	}
}

/* The line co's table ends on, which an appended entry's delta counts
 * from. -1: malformed. */
static int linetable_end_line(PyCodeObject *co, int64_t *line)
{
	const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(co->co_linetable);
	struct rewrite_linetable_iter it;
	struct rewrite_lentry e;
	int r;
	rewrite_linetable__iter_init(&it, p, p + PyBytes_GET_SIZE(co->co_linetable),
				     co->co_firstlineno);
	while ((r = rewrite_linetable__next(&it, &e)) == 1)
		;
	if (r < 0)
		return -1;
	*line = it.line;
	return 0;
}

/* `units` appended units located where the instruction at byte offset
 * `at` of co is, so a traceback through them names that instruction's
 * line; no location if it has none. */
static void put_location_of(struct bytes *b, PyCodeObject *co, int at, size_t units)
{
	struct rewrite_loc loc = { -1, -1, -1, -1 };
	int line, col, end_line, end_col;
	int64_t last = 0;
	if (PyCode_Addr2Location(co, at, &line, &col, &end_line, &end_col) && line >= 0 &&
	    end_line >= line && linetable_end_line(co, &last) == 0)
		loc = (struct rewrite_loc){ line, end_line, col, end_col };
	put_location(b, &loc, units, &last);
}

static PyObject *bytes_obj(const struct bytes *b)
{
	return PyBytes_FromStringAndSize((const char *)b->p, (Py_ssize_t)b->len);
}

/* code.replace(**kw), kw built from (name, new reference) pairs. */
static PyObject *replace(PyObject *code, const char *const *keys, PyObject **vals, int n)
{
	PyObject *kw = PyDict_New(), *args = PyTuple_New(0), *fn = NULL, *r = NULL;
	int ok = kw && args;
	for (int i = 0; i < n; i++) {
		if (!vals[i] || (ok && PyDict_SetItemString(kw, keys[i], vals[i])))
			ok = 0;
		Py_XDECREF(vals[i]);
	}
	if (ok && (fn = PyObject_GetAttrString(code, "replace")))
		r = PyObject_Call(fn, args, kw);
	Py_XDECREF(fn);
	Py_XDECREF(kw);
	Py_XDECREF(args);
	return r;
}

static PyObject *concat_tuple(PyObject *t, PyObject *list)
{
	PyObject *tail = PyList_AsTuple(list);
	PyObject *r = tail ? PySequence_Concat(t, tail) : NULL;
	Py_XDECREF(tail);
	return r;
}

/* Switch a live frame to `nc` (same offsets). The caller has put the old
 * code in the keep ring first (the C loop of a running frame still points
 * into it), so dropping the frame's reference cannot free it. */
static void switch_frame(_PyInterpreterFrame *f, PyCodeObject *nc)
{
	PyCodeObject *old = f->f_code;
	ptrdiff_t at = f->prev_instr - _PyCode_CODE(old);
	f->f_code = (PyCodeObject *)Py_NewRef((PyObject *)nc);
	f->prev_instr = _PyCode_CODE(nc) + at;
	Py_DECREF(old);
}

/* ------------------------------------------------------------------ */
/* The one-shot decider                                                 */

struct decider {
	PyObject *token; /* the exception F propagates */
	PyObject *value; /* K's result */
	int used;
	uint32_t block; /* the unit its block starts at in the caller's code */
	PyObject *orig; /* the caller's code the copy holding it was made from
			    * (the function's, never a copy: a crash of the caller
			    * later is reported against it) */
};

static void decider_free(PyObject *capsule)
{
	struct decider *d = PyCapsule_GetPointer(capsule, "suture.decider");
	if (d) {
		Py_XDECREF(d->token);
		Py_XDECREF(d->value);
		Py_XDECREF(d->orig);
		free(d);
	}
}

static PyObject *decide(PyObject *self, PyObject *exc)
{
	struct decider *d = PyCapsule_GetPointer(self, "suture.decider");
	if (d && !d->used && exc == d->token) {
		/* One shot: drop the exception (its traceback holds the failing
		 * frame's locals) as soon as the result is delivered. */
		PyObject *r = d->value;
		d->used = 1;
		d->value = NULL;
		Py_CLEAR(d->token);
		return r;
	}
	/* Anything else at that call site is the program's own: re-raise it
	 * as it came. The eval loop adds the caller's traceback entry again
	 * when the block's CALL fails (the block carries the CALL's location),
	 * so drop the one added when the exception entered at the original
	 * CALL: the caller appears once, at its line. */
	if (PyExceptionInstance_Check(exc)) {
		PyObject *tb = PyException_GetTraceback(exc);
		PyFrameObject *here = PyEval_GetFrame();
		if (tb && here && ((PyTracebackObject *)tb)->tb_frame == here) {
			PyObject *next = (PyObject *)((PyTracebackObject *)tb)->tb_next;
			Py_XINCREF(next);
			PyException_SetTraceback(exc, next ? next : Py_None);
			Py_DECREF(tb);
			tb = next;
		}
		PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), Py_NewRef(exc), tb);
	} else
		PyErr_SetString(PyExc_SystemError, "suture decider: not an exception");
	return NULL;
}

static PyMethodDef decider_def = { "suture_resume_decider", decide, METH_O,
				   "suture: deliver a resumed call's result once" };

/* Deciders are the last constants of a caller's code: one per call
 * resumed in that frame (a second resume at the same call chains its block
 * to the first one's). */
PyCodeObject *agent_resume__original(PyCodeObject *co)
{
	Py_ssize_t n = PyTuple_GET_SIZE(co->co_consts);
	PyObject *o = n ? PyTuple_GET_ITEM(co->co_consts, n - 1) : NULL;
	if (!o || !PyCFunction_Check(o) || ((PyCFunctionObject *)o)->m_ml != &decider_def)
		return co;
	struct decider *d = PyCapsule_GetPointer(PyCFunction_GET_SELF(o), "suture.decider");
	if (!d) {
		PyErr_Clear();
		return co;
	}
	return d->orig ? (PyCodeObject *)d->orig : co;
}

int agent_resume__is_decider_block(PyCodeObject *co, uint32_t target)
{
	for (Py_ssize_t i = PyTuple_GET_SIZE(co->co_consts) - 1; i >= 0; i--) {
		PyObject *o = PyTuple_GET_ITEM(co->co_consts, i);
		if (!PyCFunction_Check(o) || ((PyCFunctionObject *)o)->m_ml != &decider_def)
			return 0;
		struct decider *d = PyCapsule_GetPointer(PyCFunction_GET_SELF(o), "suture.decider");
		if (!d) {
			PyErr_Clear();
			return 0;
		}
		if (target == d->block)
			return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */

/* map (NULL: the identity, same layout): K's local i is f's local map[i]
 * (-1: unbound), the stack items come from above f's own locals. */
static PyObject *build_k(_PyInterpreterFrame *f, PyCodeObject *patched, uint32_t fallback_unit,
			 uint32_t base_depth, const int32_t *map, uint32_t *pshift,
			 struct span *pvalues, char *msg, size_t cap)
{
	struct bytes code = { 0 }, table = { 0 }, lines = { 0 };
	struct rewrite_exc *e = calloc(MAX_ENTRIES, sizeof *e);
	PyObject *values = PyList_New(0), *co_code = NULL, *k = NULL;
	Py_ssize_t nconsts = PyTuple_GET_SIZE(patched->co_consts);
	size_t n = 0;

	if (!e || !values)
		goto out;
	/* Locals (and cells, raw), then the live stack items. */
	for (int i = 0; i < patched->co_nlocalsplus + (int)base_depth; i++) {
		PyObject *v;
		if (!map)
			v = f->localsplus[i];
		else if (i < patched->co_nlocalsplus)
			v = map[i] >= 0 ? f->localsplus[map[i]] : NULL;
		else
			v = f->localsplus[f->f_code->co_nlocalsplus +
					  (i - patched->co_nlocalsplus)];
		if (!v) {
			if (i >= patched->co_nlocalsplus)
				emit(&code, PUSH_NULL, 0);
			continue;
		}
		emit(&code, LOAD_CONST, (uint32_t)(nconsts + PyList_GET_SIZE(values)));
		if (i < patched->co_nlocalsplus)
			emit(&code, STORE_FAST, (uint32_t)i);
		if (PyList_Append(values, v))
			goto out;
	}
	/* The jump ends where the patched code starts, so its arg is
	 * fallback_unit itself, whatever its size. */
	emit(&code, JUMP_FORWARD, fallback_unit);
	if (code.err)
		goto out;
	uint32_t shift = (uint32_t)(code.len / 2);
	*pshift = shift;
	*pvalues = (struct span){ nconsts, nconsts + PyList_GET_SIZE(values) };
	if (!(co_code = PyObject_GetAttrString((PyObject *)patched, "co_code")))
		goto out;
	put_bytes(&code, PyBytes_AS_STRING(co_code), (size_t)PyBytes_GET_SIZE(co_code));
	if (decode_entries(patched->co_exceptiontable, e, MAX_ENTRIES, &n)) {
		snprintf(msg, cap, "agent: resume: malformed exception table");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		e[i].start += shift;
		e[i].end += shift;
		e[i].target += shift;
	}
	encode_entries(&table, e, n);
	/* The prologue has no location ("none" leaves the running line
	 * alone), then the patched code's table as it is. */
	int64_t first = patched->co_firstlineno;
	put_location(&lines, &(struct rewrite_loc){ -1, -1, -1, -1 }, shift, &first);
	put_bytes(&lines, PyBytes_AS_STRING(patched->co_linetable),
		  (size_t)PyBytes_GET_SIZE(patched->co_linetable));
	if (code.err || table.err || lines.err)
		goto out;
	{
		static const char *const keys[] = { "co_code",           "co_exceptiontable",
						    "co_linetable",      "co_consts",
						    "co_argcount",       "co_posonlyargcount",
						    "co_kwonlyargcount", "co_flags",
						    "co_stacksize" };
		int stack = patched->co_stacksize > (int)base_depth ? patched->co_stacksize
								    : (int)base_depth;
		PyObject *vals[9] = {
			bytes_obj(&code),
			bytes_obj(&table),
			bytes_obj(&lines),
			concat_tuple(patched->co_consts, values),
			PyLong_FromLong(0),
			PyLong_FromLong(0),
			PyLong_FromLong(0),
			PyLong_FromLong(patched->co_flags & ~(CO_VARARGS | CO_VARKEYWORDS)),
			PyLong_FromLong(stack),
		};
		k = replace((PyObject *)patched, keys, vals, 9);
	}
out:
	if (!k && !msg[0])
		snprintf(msg, cap, "agent: resume: cannot build the continuation");
	PyErr_Clear();
	free(e);
	free(code.p);
	free(table.p);
	free(lines.p);
	Py_XDECREF(values);
	Py_XDECREF(co_code);
	return k;
}

/* C's code with a handler at the CALL (units [call, call_end)) whose block
 * asks the decider. depth: C's stack depth without the call's inputs. */
static PyObject *build_caller(PyCodeObject *c, uint32_t call, uint32_t call_end, uint32_t depth,
			      PyObject *decider, struct span values, char *msg, size_t cap)
{
	struct bytes code = { 0 }, table = { 0 }, lines = { 0 };
	struct rewrite_exc *e = calloc(MAX_ENTRIES + 4, sizeof *e), *out = NULL;
	PyObject *co_code = NULL, *r = NULL;
	size_t n = 0, m = 0;
	struct rewrite_exc cover = { 0, 0, 0, 0, false };
	int covered = 0;

	if (!e || !(out = calloc(MAX_ENTRIES + 4, sizeof *out)) ||
	    !(co_code = PyObject_GetAttrString((PyObject *)c, "co_code")))
		goto done;
	put_bytes(&code, PyBytes_AS_STRING(co_code), (size_t)PyBytes_GET_SIZE(co_code));
	uint32_t block = (uint32_t)(code.len / 2);
	emit(&code, LOAD_CONST, (uint32_t)PyTuple_GET_SIZE(c->co_consts));
	emit(&code, SWAP, 2); /* [decider, exc]: a method call */
	emit(&code, PRECALL, 0);
	emit(&code, CALL, 0);
	/* Back to after the CALL; the arg counts from the jump's own end, so
	 * settle its size (EXTENDED_ARG prefixes) first. */
	uint32_t here = (uint32_t)(code.len / 2), size = 1;
	while (1 + rewrite_instr__prefixes(here + size - call_end) != size)
		size = 1 + rewrite_instr__prefixes(here + size - call_end);
	emit(&code, JUMP_BACKWARD, here + size - call_end);
	uint32_t block_end = (uint32_t)(code.len / 2);

	if (decode_entries(c->co_exceptiontable, e, MAX_ENTRIES, &n)) {
		snprintf(msg, cap, "agent: resume: malformed exception table of the caller");
		goto done;
	}
	/* Entries are sorted and never overlap; the one covering the CALL (if
	 * any) covers all of it: split it around our entry. */
	struct rewrite_exc mine = { call, call_end, block, depth, false };
	int inserted = 0;
	for (size_t i = 0; i < n; i++) {
		if (e[i].start < call_end && call < e[i].end) {
			cover = e[i];
			covered = 1;
			/* An earlier resume of this call left its decider here (it
			 * delivered already): take its place rather than chain to
			 * it, so the program's own entry stays one hop away. */
			if (agent_resume__is_decider_block(c, e[i].target)) {
				covered = 0;
				for (size_t j = 0; j < n; j++)
					if (e[j].start <= e[i].target && e[i].target < e[j].end) {
						cover = e[j];
						covered = 1;
					}
			}
			struct rewrite_exc lo = e[i], hi = e[i];
			lo.end = call;
			hi.start = call_end;
			out[m++] = lo;
			out[m++] = mine;
			out[m++] = hi;
			inserted = 1;
			continue;
		}
		if (!inserted && e[i].start >= call_end) {
			out[m++] = mine;
			inserted = 1;
		}
		out[m++] = e[i];
	}
	if (!inserted)
		out[m++] = mine;
	/* A re-raise from the block still reaches the program's own handler. */
	if (covered)
		out[m++] = (struct rewrite_exc){ block, block_end, cover.target, cover.depth,
						 cover.lasti };
	encode_entries(&table, out, m);
	put_bytes(&lines, PyBytes_AS_STRING(c->co_linetable),
		  (size_t)PyBytes_GET_SIZE(c->co_linetable));
	put_location_of(&lines, c, (int)call * 2, block_end - block);
	if (code.err || table.err || lines.err)
		goto done;
	{
		static const char *const keys[] = { "co_code", "co_exceptiontable", "co_linetable",
						    "co_consts" };
		PyObject *one = PyTuple_Pack(1, decider);
		PyObject *consts = one ? PySequence_Concat(c->co_consts, one) : NULL;
		/* C is a continuation's frame: its copy needs no values (its
		 * prologue ran) and must not keep them. */
		if (consts)
			scrub(consts, values);
		PyObject *vals[4] = { bytes_obj(&code), bytes_obj(&table), bytes_obj(&lines),
				      consts };
		Py_XDECREF(one);
		r = replace((PyObject *)c, keys, vals, 4);
	}
done:
	if (!r && !msg[0])
		snprintf(msg, cap, "agent: resume: cannot build the caller's handler");
	PyErr_Clear();
	free(e);
	free(out);
	free(code.p);
	free(table.p);
	free(lines.p);
	Py_XDECREF(co_code);
	return r;
}

/* F's code with no exception-table entries (it unwinds straight out). */
static PyObject *without_handlers(PyCodeObject *co)
{
	static const char *const keys[] = { "co_exceptiontable" };
	PyObject *vals[1] = { PyBytes_FromStringAndSize("", 0) };
	return replace((PyObject *)co, keys, vals, 1);
}

/* ------------------------------------------------------------------ */
/* Returning K's result to a C caller                                   */

/* F entered from C (is_entry: partial, f(*a, **kw), a bound method or a
 * callback called by C code) runs in its own C eval loop, whose caller
 * (_PyEval_Vector) takes whatever that loop returns. After the watcher
 * returns, the loop looks up a handler in F's code object's exception
 * table (frame->f_code) and jumps into the bytes it started with
 * (first_instr, a C local): only F's own bytes can run. So F's own code
 * object gets, for that lookup only, a table with one entry covering the
 * failing instruction whose target is a RETURN_VALUE of F's bytes; and
 * the thread a one-shot trace function with the frame's per-opcode event
 * on (Python/ceval.c, DO_TRACING: it saves the stack pointer, calls the
 * trace function, then reloads stack and next instruction from the frame).
 * At that event, before RETURN_VALUE runs, the function puts the table
 * back, takes itself off, and replaces the exception on F's value stack
 * (the handler's only item, depth 0) by K's result: RETURN_VALUE returns
 * it to the C caller with no exception set, and F's frame is cleared by
 * its owner as after any return. No other thread can run in between: the
 * table is swapped after the watcher's last GIL release and put back at
 * the next instruction dispatch of the same thread, with no eval-breaker
 * check between (exception_unwind, then DO_TRACING) and the collector off
 * (no finalizer, no program code, can run there). */
struct entry_return {
	PyThreadState *ts; /* non-NULL: prepared */
	int armed;         /* the table swapped, the trace function set */
	_PyInterpreterFrame *f;
	PyFrameObject *fo;      /* f's frame object (strong) */
	PyCodeObject *co;       /* f's code object (strong) */
	PyObject *table;        /* armed: co's own table, taken out; else ours (strong) */
	PyObject *value;        /* K's result (strong) */
	Py_tracefunc tracefunc; /* the thread's, put back (none: refused before) */
	PyObject *traceobj;
	char trace_opcodes;
	/* A generator's or coroutine's own frame (see "Going on inside a
	 * generator" below): the code it goes on in (strong) and where. */
	PyCodeObject *land;
	uint32_t land_unit;
	/* The collector is off while armed: a collection at an allocation
	 * in between (call_exc_trace's tuple) could run finalizers, that is
	 * program code, which could release the GIL while the table is
	 * swapped. */
	int gc_was;
};
static struct entry_return g_er;

static void gen_hop(_PyInterpreterFrame *f);

static void er_drop(void)
{
	Py_XDECREF(g_er.fo);
	Py_XDECREF(g_er.co);
	Py_XDECREF(g_er.table);
	Py_XDECREF(g_er.value);
	Py_XDECREF(g_er.land);
	g_er = (struct entry_return){ 0 };
}

/* Put everything back; the value stays with the caller of this. */
static void er_disarm(void)
{
	PyObject *ours = (PyObject *)g_er.co->co_exceptiontable;
	g_er.co->co_exceptiontable = g_er.table;
	g_er.table = ours;
	g_er.fo->f_trace_opcodes = g_er.trace_opcodes;
	g_er.ts->c_tracefunc = g_er.tracefunc;
	g_er.ts->c_traceobj = g_er.traceobj;
	if (g_er.gc_was)
		PyGC_Enable();
	/* Inside a trace call PyThreadState_LeaveTracing recomputes this. */
	if (!g_er.ts->tracing)
		g_er.ts->cframe->use_tracing = (g_er.ts->c_tracefunc || g_er.ts->c_profilefunc)
						       ? 255
						       : 0;
	g_er.armed = 0;
}

static int er_trace(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
	(void)obj;
	(void)arg;
	/* The exception event of the watcher's own error path comes first
	 * (call_exc_trace): not yet. */
	if (!g_er.armed || (what != PyTrace_LINE && what != PyTrace_OPCODE) ||
	    frame->f_frame != g_er.f)
		return 0;
	_PyInterpreterFrame *f = g_er.f;
	if (g_er.land) {
		gen_hop(f);
		return 0;
	}
	PyObject **top = &f->localsplus[f->stacktop - 1];
	PyObject *exc = *top;
	*top = g_er.value; /* the stack takes the reference */
	g_er.value = NULL;
	er_disarm();
	er_drop();
	Py_XDECREF(exc);
	return 0;
}

void agent_resume__arm(PyThreadState *ts)
{
	if (g_er.ts != ts || g_er.armed)
		return;
	PyObject *own = g_er.co->co_exceptiontable;
	g_er.co->co_exceptiontable = g_er.table;
	g_er.table = own;
	g_er.trace_opcodes = g_er.fo->f_trace_opcodes;
	g_er.fo->f_trace_opcodes = 1;
	g_er.tracefunc = ts->c_tracefunc;
	g_er.traceobj = ts->c_traceobj;
	ts->c_tracefunc = er_trace;
	ts->c_traceobj = NULL;
	ts->cframe->use_tracing = 255;
	g_er.gc_was = PyGC_Disable();
	g_er.armed = 1;
}

void agent_resume__settle(void)
{
	/* Armed, yet another exception reached the watcher: the loop did not
	 * get to the trace event (no memory for the line table): the call
	 * keeps that error and nothing of ours stays. */
	if (g_er.armed) {
		er_disarm();
		er_drop();
	}
}

/* The first RETURN_VALUE of co at or after its first traceable
 * instruction (DO_TRACING only calls the trace function from there). */
static int return_unit(PyCodeObject *co, uint32_t *unit)
{
	_Py_CODEUNIT *c = _PyCode_CODE(co);
	for (Py_ssize_t i = 0; i < Py_SIZE(co);) {
		int op = _PyOpcode_Deopt[_Py_OPCODE(c[i])];
		if (op == RETURN_VALUE && i >= co->_co_firsttraceable) {
			*unit = (uint32_t)i;
			return 0;
		}
		i += 1 + _PyOpcode_Caches[op];
	}
	return -1;
}

/* Why F, entered from C, cannot hand K's result to its C caller; NULL if
 * it can. The table for the return is built into *table. */
static const char *entry_refusal(_PyInterpreterFrame *f, PyObject **table)
{
	PyThreadState *ts = PyThreadState_Get();
	PyCodeObject *co = f->f_code;
	uint32_t ret, at = (uint32_t)(f->prev_instr - _PyCode_CODE(co));
	if (f->owner != FRAME_OWNED_BY_THREAD || !f->frame_obj)
		return "the failing frame was entered from C and is not the thread's own";
	if (!(co->co_flags & CO_OPTIMIZED))
		return "the failing frame is a module or class body run from C";
	if (ts->tracing || ts->c_tracefunc || ts->c_profilefunc)
		return "the failing frame was entered from C and the thread has a trace or "
		       "profile function (the result would have to pass through it)";
	if (g_er.ts)
		return "another result is on its way to a C caller";
	if (at >= (uint32_t)Py_SIZE(co) || return_unit(co, &ret))
		return "the failing frame was entered from C and its code has no return "
		       "instruction to hand the result back with";
	int op = _PyOpcode_Deopt[_Py_OPCODE(_PyCode_CODE(co)[at])];
	struct rewrite_exc e = { at, at + 1 + _PyOpcode_Caches[op], ret, 0, false };
	uint8_t b[REWRITE_EXCTABLE_ENTRY_MAX];
	int n = rewrite_exctable__put_entry(b, sizeof b, &e);
	if (n < 0 || !(*table = PyBytes_FromStringAndSize((const char *)b, n))) {
		PyErr_Clear();
		return "agent: resume: cannot build the return to the C caller";
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Going on inside a generator                                          */

/* A crash in a generator's or coroutine's own frame G: G belongs to its
 * generator object, which whoever iterates or awaits it holds, so the call
 * goes on in G itself, not in a continuation: G switches to the patched
 * code and goes on at the guard's fallback. G runs in the C eval loop of
 * gen_send_ex2, which keeps first_instr, names and consts of the code G
 * started with in C locals and reloads them from the frame only when a
 * Python function it called inline returns (resume_frame:
 * SET_LOCALS_FROM_FRAME). So, through the same trace event as a return to
 * a C caller (the swapped table's entry keeps the stack to base_depth and
 * targets the failing instruction, which never runs), the trace function
 * turns the exception's slot into a call of hop(), a function of ours,
 * and points the frame at a PRECALL 0/CALL 0 pair of ours (DO_TRACING
 * runs the frame's next instruction from the frame's prev_instr, a
 * pointer). CALL pushes hop's frame inline (no PEP 523 evaluator: else it
 * would be called from C and the loop would go on in our pair). hop's
 * code (RESUME 2: no eval-breaker check before it) calls hop_land(),
 * which switches G's code and the generator's gi_code to L, the patched
 * code plus a landing block (POP_TOP hop's result, JUMP_BACKWARD_NO_INTERRUPT
 * to the fallback), and points G's prev_instr before the landing; from
 * then on G is consistent should the GIL be released. hop returns, the
 * loop reloads G from its frame and runs the landing block, then the
 * guard's fallback, then the rest of G. The frame was sized from the
 * original code: L's stack must fit in it, with the two items of the call
 * above base_depth. */
static PyObject *g_hop;        /* hop's function object, made once */
static _Py_CODEUNIT g_pair[8]; /* PRECALL 0, its cache, CALL 0, its caches */
static struct {
	_PyInterpreterFrame *f; /* G, between the trace event and hop_land */
	PyCodeObject *code;     /* L (strong) */
	uint32_t unit;
} g_landing;

static PyObject *hop_land(PyObject *self, PyObject *unused)
{
	(void)self;
	(void)unused;
	_PyInterpreterFrame *f = g_landing.f;
	PyCodeObject *nc = g_landing.code;
	if (!f || !nc)
		Py_RETURN_NONE;
	g_landing.f = NULL;
	g_landing.code = NULL;
	PyGenObject *gen = (PyGenObject *)((char *)f - offsetof(PyGenObject, gi_iframe));
	PyCodeObject *old = f->f_code;
	keep((PyObject *)old);
	f->f_code = nc; /* takes g_landing's reference */
	f->prev_instr = _PyCode_CODE(nc) + g_landing.unit - 1;
	Py_DECREF(old);
	if (gen->gi_code == old) {
		gen->gi_code = (PyCodeObject *)Py_NewRef((PyObject *)nc);
		Py_DECREF(old);
	}
	Py_RETURN_NONE;
}

static PyMethodDef hop_land_def = { "suture_resume_land", hop_land, METH_NOARGS,
				    "suture: switch a generator's frame to its patched code" };

static int hop_init(void)
{
	if (g_hop)
		return 0;
	struct bytes pair = { 0 }, code = { 0 }, lines = { 0 };
	PyObject *land = NULL, *empty = NULL, *co = NULL, *fn = NULL, *globals = NULL;
	int64_t first = 1;
	emit(&pair, PRECALL, 0);
	emit(&pair, CALL, 0);
	emit(&code, RESUME, 2);
	emit(&code, PUSH_NULL, 0);
	emit(&code, LOAD_CONST, 0);
	emit(&code, PRECALL, 0);
	emit(&code, CALL, 0);
	emit(&code, RETURN_VALUE, 0);
	put_location(&lines, &(struct rewrite_loc){ -1, -1, -1, -1 }, code.len / 2, &first);
	if (pair.err || code.err || lines.err || pair.len > sizeof g_pair)
		goto out;
	if (!(land = PyCFunction_New(&hop_land_def, NULL)) ||
	    !(empty = (PyObject *)PyCode_NewEmpty("<suture>", "suture_resume_hop", 1)) ||
	    !(globals = PyDict_New()) ||
	    PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()))
		goto out;
	{
		static const char *const keys[] = { "co_code", "co_consts", "co_linetable",
						    "co_stacksize", "co_flags" };
		PyObject *vals[5] = { bytes_obj(&code), PyTuple_Pack(1, land), bytes_obj(&lines),
				      PyLong_FromLong(2),
				      PyLong_FromLong(CO_OPTIMIZED | CO_NEWLOCALS) };
		co = replace(empty, keys, vals, 5);
	}
	if (!co || !(fn = PyFunction_New(co, globals)))
		goto out;
	memcpy(g_pair, pair.p, pair.len);
	g_hop = fn;
	fn = NULL;
out:
	PyErr_Clear();
	Py_XDECREF(fn);
	Py_XDECREF(co);
	Py_XDECREF(globals);
	Py_XDECREF(empty);
	Py_XDECREF(land);
	free(pair.p);
	free(code.p);
	free(lines.p);
	return g_hop ? 0 : -ENOMEM;
}

/* At the trace event: the stack is base_depth items and the exception. */
static void gen_hop(_PyInterpreterFrame *f)
{
	PyObject **top = &f->localsplus[f->stacktop - 1];
	PyObject *exc = *top;
	*top = NULL;               /* the call's NULL slot */
	top[1] = Py_NewRef(g_hop); /* the callable; CALL takes it */
	f->stacktop++;
	f->prev_instr = g_pair; /* DO_TRACING runs this next */
	g_landing.f = f;
	g_landing.code = g_er.land; /* the reference moves */
	g_landing.unit = g_er.land_unit;
	g_er.land = NULL;
	er_disarm();
	er_drop();
	Py_XDECREF(exc);
}

/* L: the patched code plus the landing block: POP_TOP (hop's result),
 * JUMP_BACKWARD_NO_INTERRUPT to the fallback (no eval-breaker check: the
 * block raises nothing and needs no handler). *unit: where it starts. */
static PyObject *build_landing(PyCodeObject *p, uint32_t fallback_unit, uint32_t *unit)
{
	struct bytes code = { 0 }, lines = { 0 };
	PyObject *co_code = PyObject_GetAttrString((PyObject *)p, "co_code"), *r = NULL;
	if (!co_code)
		goto out;
	put_bytes(&code, PyBytes_AS_STRING(co_code), (size_t)PyBytes_GET_SIZE(co_code));
	*unit = (uint32_t)(code.len / 2);
	emit(&code, POP_TOP, 0);
	uint32_t here = (uint32_t)(code.len / 2), size = 1;
	while (1 + rewrite_instr__prefixes(here + size - fallback_unit) != size)
		size = 1 + rewrite_instr__prefixes(here + size - fallback_unit);
	emit(&code, JUMP_BACKWARD_NO_INTERRUPT, here + size - fallback_unit);
	put_bytes(&lines, PyBytes_AS_STRING(p->co_linetable),
		  (size_t)PyBytes_GET_SIZE(p->co_linetable));
	put_location_of(&lines, p, (int)fallback_unit * 2, code.len / 2 - *unit);
	if (code.err || lines.err)
		goto out;
	{
		static const char *const keys[] = { "co_code", "co_linetable" };
		PyObject *vals[2] = { bytes_obj(&code), bytes_obj(&lines) };
		r = replace((PyObject *)p, keys, vals, 2);
	}
out:
	PyErr_Clear();
	Py_XDECREF(co_code);
	free(code.p);
	free(lines.p);
	return r;
}

#define GEN_FLAGS (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR | CO_ITERABLE_COROUTINE)

/* The failing frame f is a generator's or coroutine's own: prepare its
 * going on in the patched code (armed by the watcher, agent_resume__arm). */
static int gen_resume(_PyInterpreterFrame *f, PyCodeObject *patched, uint32_t fallback_unit,
		      uint32_t base_depth, char *msg, size_t cap)
{
	PyThreadState *ts = PyThreadState_Get();
	PyCodeObject *co = f->f_code;
	uint32_t at = (uint32_t)(f->prev_instr - _PyCode_CODE(co)), unit = 0;
	const char *why = NULL;
	PyObject *table = NULL, *land = NULL;
	if (f->owner != FRAME_OWNED_BY_GENERATOR || !f->frame_obj)
		why = "the generator's frame is not owned by its generator";
	else if (ts->tracing || ts->c_tracefunc || ts->c_profilefunc)
		why = "generator or coroutine frame in a thread with a trace or profile function";
	else if (_PyInterpreterState_GetEvalFrameFunc(ts->interp) != _PyEval_EvalFrameDefault)
		why = "generator or coroutine frame under a frame evaluator (PEP 523): the "
		      "frame cannot be switched to the patched code";
	else if (g_er.ts || g_landing.f)
		why = "another resume is on its way in this process";
	else if (ts->recursion_remaining < 2)
		/* hop's inline call must not fail at its start: the loop would
		 * unwind G from our PRECALL/CALL pair. */
		why = "generator or coroutine frame at the thread's recursion limit";
	else if (patched->co_nlocalsplus != co->co_nlocalsplus ||
		 patched->co_stacksize > co->co_stacksize ||
		 (int)base_depth + 2 > co->co_stacksize || at >= (uint32_t)Py_SIZE(co) ||
		 at < (uint32_t)co->_co_firsttraceable)
		why = "generator or coroutine frame: the patched code needs a deeper stack "
		      "than the frame was made with";
	else if (hop_init())
		why = "agent: resume: cannot build the generator's landing";
	if (why) {
		snprintf(msg, cap, "%s: later calls are healed", why);
		return -ENOTSUP;
	}
	int op = _PyOpcode_Deopt[_Py_OPCODE(_PyCode_CODE(co)[at])];
	struct rewrite_exc e = { at, at + 1 + _PyOpcode_Caches[op], at, base_depth, false };
	uint8_t b[REWRITE_EXCTABLE_ENTRY_MAX];
	int n = rewrite_exctable__put_entry(b, sizeof b, &e);
	if (n < 0 || !(table = PyBytes_FromStringAndSize((const char *)b, n)) ||
	    !(land = build_landing(patched, fallback_unit, &unit)) ||
	    ((PyCodeObject *)land)->co_stacksize > co->co_stacksize) {
		PyErr_Clear();
		Py_XDECREF(table);
		Py_XDECREF(land);
		snprintf(msg, cap, "agent: resume: cannot build the generator's landing");
		return -ENOMEM;
	}
	g_er = (struct entry_return){
		.ts = ts,
		.f = f,
		.fo = (PyFrameObject *)Py_NewRef((PyObject *)f->frame_obj),
		.co = (PyCodeObject *)Py_NewRef((PyObject *)co),
		.table = table,
		.land = (PyCodeObject *)land,
		.land_unit = unit,
	};
	snprintf(msg, cap, "resumed at unit %u inside the generator or coroutine's own frame",
		 fallback_unit);
	return WIRE_RESUMED;
}

static int run(_PyInterpreterFrame *f, PyObject **pexc, PyObject **pval, PyObject **ptb,
	       uint32_t fallback_unit, uint32_t base_depth, const int32_t *map, char *msg,
	       size_t cap);

int agent_resume__run(_PyInterpreterFrame *f, PyObject **pexc, PyObject **pval, PyObject **ptb,
		      uint32_t fallback_unit, uint32_t base_depth, char *msg, size_t cap)
{
	return run(f, pexc, pval, ptb, fallback_unit, base_depth, NULL, msg, cap);
}

/* The kinds that must agree between an old local and the new one it
 * fills: a cell stays a cell (closures made before hold it), a free
 * variable stays free. */
#define CELL_OR_FREE (CO_FAST_CELL | CO_FAST_FREE)

int agent_resume__restart(_PyInterpreterFrame *f, PyObject **pexc, PyObject **pval, PyObject **ptb,
			  const struct wire_restart *r, char *msg, size_t cap)
{
	/* f may be a continuation's own frame (a crash held inside a call
	 * restarted or resumed before): its function is the level's, and its
	 * locals are laid out as the code the continuation was built from. */
	PyFunctionObject *fn = agent_resume__function_of(f);
	PyCodeObject *nc = fn ? (PyCodeObject *)fn->func_code : NULL;
	PyCodeObject *oc = f->f_code;
	msg[0] = 0;
	if (!nc || (uint64_t)(uintptr_t)nc != r->code_addr) {
		snprintf(msg, cap, "the function's code changed again since: reload once more");
		return -ESTALE;
	}
	if (r->nmap != (uint32_t)nc->co_nlocalsplus || r->unit >= (uint32_t)Py_SIZE(nc) ||
	    (int)r->base_depth > oc->co_stacksize || (int)r->base_depth > nc->co_stacksize) {
		snprintf(msg, cap, "the restart does not fit the new code");
		return -EINVAL;
	}
	for (uint32_t i = 0; i < r->nmap; i++) {
		int32_t j = r->map[i];
		_PyLocals_Kind kn = _PyLocals_GetKind(nc->co_localspluskinds, (int)i);
		if (j >= oc->co_nlocalsplus ||
		    (j >= 0 && (_PyLocals_GetKind(oc->co_localspluskinds, j) & CELL_OR_FREE) !=
				       (kn & CELL_OR_FREE)) ||
		    (j < 0 && (kn & CELL_OR_FREE))) {
			snprintf(msg, cap, "local %u of the new code cannot take the old value",
				 (unsigned)i);
			return -EINVAL;
		}
	}
	return run(f, pexc, pval, ptb, r->unit, r->base_depth, r->map, msg, cap);
}

static int run(_PyInterpreterFrame *f, PyObject **pexc, PyObject **pval, PyObject **ptb,
	       uint32_t fallback_unit, uint32_t base_depth, const int32_t *map, char *msg,
	       size_t cap)
{
	PyThreadState *ts = PyThreadState_Get();
	PyCodeObject *co = f->f_code;
	/* f may be the K frame of this thread's innermost continuation (its own
	 * crash, reported against the code K was built from): then the real
	 * function is that level's, and K's C caller takes the result. */
	struct level *up = level_of_frame(f);
	PyFunctionObject *fn = up ? up->fn : f->f_func;
	PyCodeObject *seen = up ? up->patched : co; /* the code the crash was reported in */
	PyCodeObject *patched = fn ? (PyCodeObject *)fn->func_code : NULL;
	_PyInterpreterFrame *c = f->previous;
	PyObject *k = NULL, *kfunc = NULL, *result = NULL, *flat = NULL, *decider = NULL;
	PyObject *c_new = NULL, *capsule = NULL, *ret_table = NULL;
	struct decider *d = NULL;
	struct level me = { 0 };
	uint32_t depth = 0, shift = 0;
	ptrdiff_t call = 0, last = 0;
	struct span values = { 0, 0 };
	struct level *cl = NULL;
	int rc = -EINVAL, nest = agent_resume__depth(ts);

	msg[0] = 0;
	if (co->co_flags & GEN_FLAGS) {
		if (map || up || !patched || patched == seen || !(patched->co_flags & GEN_FLAGS) ||
		    fallback_unit >= (uint32_t)Py_SIZE(patched)) {
			snprintf(msg, cap,
				 map ? "generator or coroutine frame: it goes on only in its "
				       "function's patched code, not in a reloaded one"
				     : "generator or coroutine frame: the function's code is not "
				       "the patch for this frame");
			return -ENOTSUP;
		}
		return gen_resume(f, patched, fallback_unit, base_depth, msg, cap);
	}
	if (!patched || patched == seen ||
	    (!map && patched->co_nlocalsplus != co->co_nlocalsplus) ||
	    fallback_unit >= (uint32_t)Py_SIZE(patched) || (int)base_depth > co->co_stacksize) {
		snprintf(msg, cap, "the function's code is not the patch for this frame");
		return -EINVAL;
	}
	if (nest >= MAX_NEST) {
		snprintf(msg, cap,
			 "%d resumed calls are running nested in this thread already: "
			 "this crash is the call's outcome, later calls are healed",
			 nest);
		return -ELOOP;
	}
	int entry = !up && (f->is_entry || !c);
	if (entry) {
		const char *why = entry_refusal(f, &ret_table);
		if (why) {
			snprintf(msg, cap, "%s: later calls are healed", why);
			return -ENOTSUP;
		}
	} else if (!up) {
		/* The caller may be a generator's frame: it is resumed through
		 * the same eval loop, which re-reads f_code, and _PyGen_yf reads
		 * its prev_instr, rebased like everything else. */
		if (c->owner == FRAME_OWNED_BY_FRAME_OBJECT || _PyFrame_IsIncomplete(c)) {
			snprintf(msg, cap,
				 "the caller's frame cannot be switched: later calls are healed");
			return -ENOTSUP;
		}
		/* C is suspended in an inlined CALL: prev_instr is its last cache. */
		last = c->prev_instr - _PyCode_CODE(c->f_code);
		call = last - _PyOpcode_Caches[CALL];
		if (call < 0 || last >= Py_SIZE(c->f_code) ||
		    _PyOpcode_Deopt[_Py_OPCODE(_PyCode_CODE(c->f_code)[call])] != CALL ||
		    c->stacktop < c->f_code->co_nlocalsplus) {
			snprintf(msg, cap,
				 "the caller is not suspended at a CALL: later calls are healed");
			return -ENOTSUP;
		}
		depth = (uint32_t)(c->stacktop - c->f_code->co_nlocalsplus);
		cl = level_of_frame(c); /* C may be a continuation's frame */
	}

	if (!(k = build_k(f, patched, fallback_unit, base_depth, map, &shift, &values, msg, cap)))
		goto out;
	if (!(kfunc = PyFunction_New(k, f->f_globals)))
		goto out;
	if (fn->func_closure && PyFunction_SetClosure(kfunc, fn->func_closure))
		goto out;
	if (!(flat = without_handlers(co)))
		goto out;
	/* Everything that can fail is built before K runs: once it ran, its
	 * effects are done and its result must be delivered. */
	if (!up && !entry) {
		if (!(d = calloc(1, sizeof *d)))
			goto out;
		d->token = Py_NewRef(*pval);
		if (!(capsule = PyCapsule_New(d, "suture.decider", decider_free))) {
			Py_DECREF(d->token);
			free(d);
			goto out;
		}
		if (!(decider = PyCFunction_New(&decider_def, capsule)))
			goto out;
		d->block = (uint32_t)Py_SIZE(c->f_code); /* build_caller appends it there */
		d->orig = Py_NewRef((PyObject *)agent_resume__original(c->f_code));
		if (!(c_new = build_caller(c->f_code, (uint32_t)call, (uint32_t)last + 1, depth,
					   decider, cl ? cl->values : (struct span){ 0, 0 }, msg,
					   cap)))
			goto out;
		if (((PyCodeObject *)c_new)->co_stacksize < c->f_code->co_stacksize ||
		    ((PyCodeObject *)c_new)->co_nlocalsplus != c->f_code->co_nlocalsplus) {
			snprintf(msg, cap, "the caller's frame cannot take the new code");
			goto out;
		}
		if (keep((PyObject *)c->f_code))
			goto out;
	}
	if (keep((PyObject *)co))
		goto out;

	/* While K runs, this level lets the watcher see K's crashes (watch.c
	 * asks agent_resume__depth) and tells where they are. */
	me = (struct level){
		ts,    f,      fn,   kfunc, (PyCodeObject *)Py_NewRef((PyObject *)patched),
		shift, values, NULL, NULL,  g_levels
	};
	g_levels = &me;
	/* With the trace fallback, this runs inside the eval loop's call of
	 * our trace function, where tracing is paused (call_trace's
	 * PyThreadState_EnterTracing): lift that for K, so K's crashes reach
	 * the watcher too, and put it back before returning there. */
	int untrace = agent_watch__mode() == WIRE_WATCH_TRACE && ts->tracing > 0;
	if (untrace)
		PyThreadState_LeaveTracing(ts);
	result = PyObject_CallNoArgs(kfunc);
	if (untrace)
		PyThreadState_EnterTracing(ts);
	level_pop(&me);
	{
		/* K's frame is gone; its values go now (the exception, if
		 * any, is held: no Python error is set while they are freed). */
		PyObject *e0, *v0, *t0;
		PyErr_Fetch(&e0, &v0, &t0);
		scrub(((PyCodeObject *)k)->co_consts, values);
		PyErr_Restore(e0, v0, t0);
	}
	if (!result) {
		PyObject *e2, *v2, *t2;
		PyErr_Fetch(&e2, &v2, &t2);
		PyErr_NormalizeException(&e2, &v2, &t2);
		if (me.token && v2 == me.token) {
			/* K's own frame crashed, was resumed as K2 and unwound
			 * bare with that exception: K2's result is K's. */
			result = me.value;
			me.value = NULL;
			Py_XDECREF(e2);
			Py_XDECREF(v2);
			Py_XDECREF(t2);
		} else {
			/* K raised: that exception is the call's outcome. */
			switch_frame(f, (PyCodeObject *)flat);
			Py_XDECREF(*pexc);
			Py_XDECREF(*pval);
			Py_XDECREF(*ptb);
			*pexc = e2;
			*pval = v2;
			*ptb = t2;
			snprintf(msg, cap, "the continuation raised %s",
				 ((PyTypeObject *)e2)->tp_name);
			rc = WIRE_RESUME_RAISED;
			goto out;
		}
	}
	if (up) {
		/* f is the K frame of the level below: it unwinds bare with the
		 * exception it holds, which that level's resume takes as R. */
		Py_XSETREF(up->token, Py_NewRef(*pval));
		Py_XSETREF(up->value, Py_NewRef(result));
		switch_frame(f, (PyCodeObject *)flat);
		snprintf(msg, cap,
			 "resumed at unit %u inside the resumed call (%d deep); "
			 "it returns the result",
			 fallback_unit, nest);
		rc = WIRE_RESUMED;
		goto out;
	}
	if (entry) {
		/* Armed by the watcher once it is done (agent_resume__arm):
		 * nothing may run between the swap and F's next dispatch. */
		g_er = (struct entry_return){
			.ts = ts,
			.f = f,
			.fo = (PyFrameObject *)Py_NewRef((PyObject *)f->frame_obj),
			.co = (PyCodeObject *)Py_NewRef((PyObject *)co),
			.table = ret_table,
			.value = Py_NewRef(result),
		};
		ret_table = NULL;
		snprintf(msg, cap, "resumed at unit %u; the result is returned to the C caller",
			 fallback_unit);
		rc = WIRE_RESUMED;
		goto out;
	}
	d->value = Py_NewRef(result);
	switch_frame(c, (PyCodeObject *)c_new);
	switch_frame(f, (PyCodeObject *)flat);
	snprintf(msg, cap, "resumed at unit %u; the caller receives the result", fallback_unit);
	rc = WIRE_RESUMED;
out:
	if (rc < 0 && !msg[0])
		snprintf(msg, cap, "agent: resume failed");
	PyErr_Clear();
	Py_XDECREF(me.patched);
	Py_XDECREF(me.token);
	Py_XDECREF(me.value);
	Py_XDECREF(k);
	Py_XDECREF(kfunc);
	Py_XDECREF(result);
	Py_XDECREF(flat);
	Py_XDECREF(decider);
	Py_XDECREF(capsule);
	Py_XDECREF(c_new);
	Py_XDECREF(ret_table);
	return rc;
}
