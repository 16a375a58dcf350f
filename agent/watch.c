/* agent: the crash watcher.
 *
 * The eval loop calls PyTraceBack_Here(frame) each time an exception enters
 * a Python frame through its `error:` label (Python/ceval.c). We replace
 * that function by writing a jump at its entry (arch-<arch>.c encodes it;
 * the original bytes are kept and written back on removal) to
 * agent_traceback_here(), which first does exactly what
 * Python/traceback.c's version does (fetch, _PyTraceBack_FromFrame,
 * restore), then, only for an exception that is new (no traceback yet: it
 * starts in this frame), of a structural type, in the frame being unwound,
 * with a debugger to tell, asks crash.c whether it is a crash. A crash
 * parks the thread (GIL released, park.c) until the debugger answers or a
 * bound passes; the exception then goes on untouched, or the call is
 * resumed (resume.c).
 *
 * Where the text cannot be written, a C trace function on every thread
 * state gives the same events (PyTrace_EXCEPTION, right after
 * PyTraceBack_Here in the same `error:` path), at the price of tracing.
 */
#include "agent/agent-py.h"
#include "agent/policy.h"
#include "agent/arch.h"
#include "opcode.h"
#include "internal/pycore_opcode.h" /* _PyOpcode_Deopt (defined in crash.c) */
#include "attach/attach.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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
static uint8_t g_orig[AGENT_ARCH_JUMP_MAX];
static size_t g_patch_len;

static int agent_traceback_here(PyFrameObject *frame);

/* ------------------------------------------------------------------ */
/* Crashes                                                            */

/* Exact types only: a user subclass of KeyError is the program's own
 * signalling, not a structural accident. */
static int is_structural(PyObject *type)
{
	return type == PyExc_AttributeError || type == PyExc_KeyError || type == PyExc_IndexError ||
	       type == PyExc_ZeroDivisionError || type == PyExc_ValueError ||
	       type == PyExc_TypeError || type == PyExc_FileNotFoundError;
}

/* While the debugger holds crashes (suture-attach --watch --hold), any
 * exception may end a thread: an AssertionError, the program's own
 * classes. Not the ones that stop a program on purpose (SystemExit,
 * KeyboardInterrupt, GeneratorExit: not Exception subclasses) nor the
 * iteration protocol's. One relaxed load when nobody holds. */
static int is_holdable(PyObject *type)
{
	return agent_channel__holds() && PyType_Check(type) &&
	       PyType_IsSubtype((PyTypeObject *)type, (PyTypeObject *)PyExc_Exception) &&
	       !PyType_IsSubtype((PyTypeObject *)type, (PyTypeObject *)PyExc_StopIteration) &&
	       !PyType_IsSubtype((PyTypeObject *)type, (PyTypeObject *)PyExc_StopAsyncIteration);
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
/* The values of the last crashes reported (identity only, never
 * dereferenced): a stored exception re-raised elsewhere is not reported a
 * second time. GIL held. */
#define REPORTED_RING 16
static const void *g_reported[REPORTED_RING];
static unsigned g_reported_at;

static int was_reported(const void *val)
{
	for (unsigned i = 0; i < REPORTED_RING; i++)
		if (val && g_reported[i] == val)
			return 1;
	return 0;
}

/* resumable: 0 when f is the frame of a call that returned already (a
 * stored exception re-raised by its consumer): then only later calls are
 * healed. */
static void park(_PyInterpreterFrame *f, PyObject **pexc, PyObject **pval, PyObject **ptb,
		 int resumable)
{
	struct wire_crash c;
	PyCodeObject *co = f->f_code;
	uint32_t unit = 0;

	memset(&c, 0, sizeof c);
	agent_crash__unit_of(f, &unit);
	/* A crash in a continuation's own frame is one of the function's code
	 * the continuation was built from (same offsets past its prologue). */
	if (agent_resume__site(f, &co, &unit) < 0)
		return;
	/* A caller whose callee was resumed runs a copy of its code (the
	 * decider appended, offsets unchanged): its own crash is the
	 * original's, which its function owns. */
	co = agent_resume__original(co);
	c.tid = (uint64_t)gettid();
	c.thread_ident = (uint64_t)PyThread_get_thread_ident();
	c.code_addr = (uint64_t)(uintptr_t)co;
	c.frame_addr = (uint64_t)(uintptr_t)f;
	c.offset = unit * 2;
	int line = PyCode_Addr2Line(co, (int)(unit * 2));
	c.line = line > 0 ? (uint32_t)line : 0;
	snprintf(c.exc_type, sizeof c.exc_type, "%s", ((PyTypeObject *)*pexc)->tp_name);
	PyErr_NormalizeException(pexc, pval, ptb);
	g_reported[g_reported_at++ % REPORTED_RING] = *pval;
	PyObject *msg = *pval ? PyObject_Str(*pval) : NULL;
	copy_utf8(c.message, sizeof c.message, msg);
	Py_XDECREF(msg);
	copy_utf8(c.filename, sizeof c.filename, co->co_filename);
	copy_utf8(c.qualname, sizeof c.qualname, co->co_qualname);
	PyErr_Clear();

	struct wire_resume resume;
	struct wire_restart *restart = NULL;
	PyThreadState *save;
	enum agent_verdict v;
again:
	save = PyEval_SaveThread();
	v = agent_channel__park(&c, f, co, &resume, &restart);
	PyEval_RestoreThread(save);
	if (v == AGENT_VERDICT_RESTART) {
		/* A held crash whose function was reloaded: run it again from
		 * the failing line in the new code (resume.c). */
		struct wire_resume_result r = { c.event_id, 0, "" };
		if (resumable)
			r.status = agent_resume__restart(f, pexc, pval, ptb, restart, r.message,
							 sizeof r.message);
		else {
			r.status = -EINVAL;
			snprintf(r.message, sizeof r.message,
				 "the failing call had returned: its exception was stored and "
				 "re-raised by its consumer");
		}
		free(restart);
		restart = NULL;
		PyErr_Clear();
		save = PyEval_SaveThread();
		agent_channel__resume_result(&r);
		PyEval_RestoreThread(save);
		/* Not restarted (nothing changed): still held, as a new event,
		 * for the next reload. */
		if (r.status < 0 && resumable)
			goto again;
	} else if (v == AGENT_VERDICT_RESUME) {
		struct wire_resume_result r = { c.event_id, 0, "" };
		if (resumable) {
			r.status = agent_resume__run(f, pexc, pval, ptb, resume.fallback_unit,
						     resume.base_depth, r.message,
						     sizeof r.message);
		} else {
			r.status = -EINVAL;
			snprintf(r.message, sizeof r.message,
				 "the failing call had returned: its exception was stored and "
				 "re-raised by its consumer");
		}
		PyErr_Clear();
		save = PyEval_SaveThread();
		agent_channel__resume_result(&r);
		PyEval_RestoreThread(save);
	}
	agent__log("crash %llu in %s (%s:%u) %s: verdict %d", (unsigned long long)c.event_id,
		   c.qualname, c.filename, c.line, c.exc_type, (int)v);
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
	if (!agent_crash__decide(f, *pexc))
		return;
	park(f, pexc, pval, ptb, 1);
}

/* A structural exception that enters frame f other than from f's callee:
 * stored by a transport (a future, a task) and re-raised by its consumer,
 * whose code was not known when it started. If it began in application
 * code and nothing from here outward handles it, it is a crash of that
 * origin (crash.c), reported there. */
static void consider_reraise(PyThreadState *ts, PyFrameObject *frame, PyObject **pexc,
			     PyObject **pval, PyObject **ptb, PyObject *tb)
{
	_PyInterpreterFrame *f = frame->f_frame;
	if (!ts->cframe || f != ts->cframe->current_frame || _PyFrame_IsIncomplete(f) ||
	    !PyTraceBack_Check(tb) || was_reported(*pval))
		return;
	_PyInterpreterFrame *origin = agent_crash__reraised(f, tb, *pexc);
	if (origin)
		park(origin, pexc, pval, ptb, 0);
}

/* ------------------------------------------------------------------ */
/* The PyTraceBack_Here replacement                                    */

/* Reimplements Python/traceback.c:PyTraceBack_Here with exported API (so
 * the original entry needs no relocated instructions), then watches. */
static int agent_traceback_here(PyFrameObject *frame)
{
	PyObject *exc, *val, *tb, *newtb;
	agent_resume__settle();
	PyErr_Fetch(&exc, &val, &tb);
	newtb = _PyTraceBack_FromFrame(tb, frame);
	if (newtb == NULL) {
		_PyErr_ChainExceptions(exc, val, tb);
		return -1;
	}
	agent_stats.hook_calls++;
	/* Nobody to tell (no debugger, none awaited): nothing to decide. */
	if (g_watching && (is_structural(exc) || is_holdable(exc)) &&
	    (agent_channel__has_debugger() || agent_channel__may_wait())) {
		PyThreadState *ts = PyThreadState_Get();
		_PyInterpreterFrame *f = frame->f_frame;
		int depth;
		/* tb == NULL: the exception starts in this frame (library code:
		 * never a crash, the cheapest answer first). With a traceback,
		 * it propagates from a callee (nothing to do), unless this frame
		 * raised it itself with entries of other frames only: a stored
		 * exception re-raised by a consumer (`raise self._exception`),
		 * one load and two compares. */
		if (tb == NULL ? !agent_policy__is_library(f->f_code)
			       : (_PyOpcode_Deopt[_Py_OPCODE(*f->prev_instr)] == RAISE_VARARGS &&
				  PyTraceBack_Check(tb) &&
				  ((PyTracebackObject *)tb)->tb_frame != frame)) {
			if (busy_enter(ts, &depth)) {
				if (tb == NULL)
					consider(ts, frame, &exc, &val, &newtb);
				else
					consider_reraise(ts, frame, &exc, &val, &newtb, tb);
				busy_leave(ts, depth);
				/* A result for a C caller: armed last, once nothing
				 * else runs before this frame's next dispatch. */
				agent_resume__arm(ts);
			}
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
	    !(is_structural(exc) || is_holdable(exc)) ||
	    !(agent_channel__has_debugger() || agent_channel__may_wait()))
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

/* Protection of the mapping holding addr, from /proc/self/maps, each line
 * read by attach/'s parser (attach/maps.c, compiled in). A line longer
 * than the buffer comes in pieces: only a line's first piece is parsed
 * (the address range and permissions lead it; the path may be cut). */
static int page_prot(uintptr_t addr, int *prot)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	bool head = true;
	int rc = -ENOENT;
	if (!f)
		return -errno;
	while (rc && fgets(line, sizeof line, f)) {
		size_t len = strlen(line);
		struct attach_map m;
		size_t path_len;
		if (head && attach_maps__parse_line(line, line + len, &m, &path_len) == 0 &&
		    addr >= m.start && addr < m.end) {
			*prot = (m.perms[0] == 'r' ? PROT_READ : 0) |
				(m.perms[1] == 'w' ? PROT_WRITE : 0) |
				(m.perms[2] == 'x' ? PROT_EXEC : 0);
			rc = 0;
		}
		head = len > 0 && line[len - 1] == '\n';
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
	struct agent_arch_jump j;

	/* Someone (another agent copy, a profiler) already redirected it. */
	if (agent_arch__starts_with_jump(entry)) {
		snprintf(detail, cap, "PyTraceBack_Here at %p already starts with a jump",
			 (void *)entry);
		return -EEXIST;
	}
	agent_arch__jump((uintptr_t)entry, to, &j);
	memcpy(g_orig, entry, j.len);
	int rc = write_text(entry, j.code, j.len);
	if (rc) {
		snprintf(detail, cap, "cannot write PyTraceBack_Here at %p: %s", (void *)entry,
			 strerror(-rc));
		return rc;
	}
	g_entry = entry;
	g_patch_len = j.len;
	*mode = j.mode;
	snprintf(detail, cap, "%s jump at PyTraceBack_Here %p -> %p", j.form, (void *)entry,
		 (void *)to);
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

static PyMethodDef thread_hook_def = { "suture_thread_hook",
				       (PyCFunction)(void (*)(void))thread_hook, METH_FASTCALL,
				       "suture agent: watch a new thread" };

static void set_threading_hook(int on)
{
	PyObject *threading = PyImport_ImportModule("threading");
	PyObject *fn = on ? PyCFunction_New(&thread_hook_def, NULL) : Py_NewRef(Py_None);
	PyObject *r = (threading && fn) ? PyObject_CallMethod(threading, "settrace", "O", fn)
					: NULL;
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
	agent_crash__init();
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
	snprintf(detail + used, cap - used, "%strace function on every thread%s", used ? "; " : "",
		 rc == -EINVAL ? " (SUTURE_AGENT_MODE=trace)" : "");
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

uint32_t agent_watch__mode(void)
{
	return g_mode;
}
void agent_watch__set_timeout(uint32_t ms)
{
	g_timeout_ms = ms;
}
uint32_t agent_watch__timeout(void)
{
	return g_timeout_ms;
}

void agent_watch__disable(void)
{
	g_watching = 0;
}
