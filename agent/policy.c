/* agent: application code against library code, units of work, framework
 * registries and transports (policy.h; docs/design.md, "What counts as a
 * crash"). GIL held throughout; no program code is run. */
#include "agent/agent-priv.h"
#include "agent/policy.h"

#include "internal/pycore_code.h" /* _PyLocals_GetKind */

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 8

static PyObject *g_stdlib_prefix; /* ".../lib/python3.11/", with its slash */
static PyObject *g_app_paths;     /* list of str: SUTURE_APP_PATH, then HELLO's */

/* Paths a debugger offered (HELLO, on the server thread, no GIL): taken
 * into g_app_paths by the watcher, with the GIL, when the generation
 * moves. */
static char g_offered[WIRE_APP_PATHS_MAX];
static struct agent_offer g_offer = AGENT_OFFER_INIT(g_offered);

/* ------------------------------------------------------------------ */
/* Application or library                                              */

static int has_prefix(PyObject *s, PyObject *prefix)
{
	int r = PyUnicode_Tailmatch(s, prefix, 0, PY_SSIZE_T_MAX, -1) == 1;
	PyErr_Clear();
	return r;
}

static int contains(PyObject *s, const char *needle)
{
	PyObject *n = PyUnicode_FromString(needle);
	int r = n && PyUnicode_Find(s, n, 0, PY_SSIZE_T_MAX, 1) >= 0;
	Py_XDECREF(n);
	PyErr_Clear();
	return r;
}

static int ends_with(PyObject *s, const char *tail)
{
	PyObject *t = PyUnicode_FromString(tail);
	int r = t && PyUnicode_Tailmatch(s, t, 0, PY_SSIZE_T_MAX, 1) == 1;
	Py_XDECREF(t);
	PyErr_Clear();
	return r;
}

/* The directory of os.py: the standard library's. os is imported at
 * start-up already, so this takes no trip through the import system
 * (which runs Python code and may let the GIL go). */
static void find_stdlib(void)
{
	/* 3.11's sys._stdlib_dir (the config's stdlib_dir): no import at all. */
	PyObject *dir = PySys_GetObject("_stdlib_dir"); /* borrowed */
	if (dir && PyUnicode_Check(dir) && PyUnicode_GET_LENGTH(dir) > 1) {
		g_stdlib_prefix = PyUnicode_FromFormat("%U/", dir);
		if (g_stdlib_prefix)
			return;
	}
	PyErr_Clear();
	PyObject *name = PyUnicode_FromString("os");
	PyObject *os = name ? PyImport_GetModule(name) : NULL;
	Py_XDECREF(name);
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

/* Absolute directories (or files) the user declared application code,
 * even inside site-packages, ':'-separated, added to g_app_paths. A
 * directory matches the files below it only, so /srv/app does not claim
 * /srv/application. */
static void add_app_paths(const char *v)
{
	if (!v || !*v)
		return;
	if (!g_app_paths && !(g_app_paths = PyList_New(0)))
		goto out;
	while (*v) {
		const char *end = strchr(v, ':');
		size_t n = end ? (size_t)(end - v) : strlen(v);
		if (n > 0 && v[0] == '/') {
			PyObject *p = PyUnicode_FromStringAndSize(v, (Py_ssize_t)n);
			if (p && !ends_with(p, "/") && !ends_with(p, ".py")) {
				PyObject *q = PyUnicode_FromFormat("%U/", p);
				Py_DECREF(p);
				p = q;
			}
			if (p)
				PyList_Append(g_app_paths, p);
			Py_XDECREF(p);
		}
		v += n + (end ? 1 : 0);
	}
out:
	PyErr_Clear();
}

void agent_policy__offer_app_paths(const char *paths)
{
	agent_offer__put(&g_offer, paths);
}

void agent_policy__atfork_child(void)
{
	agent_offer__atfork_child(&g_offer);
}

static void clear_lib_cache(void);

/* GIL held: take paths offered since the last look. */
static void take_offered(void)
{
	char copy[WIRE_APP_PATHS_MAX];
	agent_offer__take(&g_offer, copy, sizeof copy);
	add_app_paths(copy);
	clear_lib_cache();
	agent__log("application paths added by the debugger: %s", copy);
}

void agent_policy__init(void)
{
	static int env_read;
	if (!g_stdlib_prefix)
		find_stdlib();
	if (!env_read) {
		env_read = 1;
		add_app_paths(getenv("SUTURE_APP_PATH"));
	}
	agent__log("library code: %s, site-packages, dist-packages; application paths: %s",
		   g_stdlib_prefix ? PyUnicode_AsUTF8(g_stdlib_prefix)
				   : "(standard library not found)",
		   getenv("SUTURE_APP_PATH") ? getenv("SUTURE_APP_PATH") : "(none)");
	PyErr_Clear();
}

static int classify_file(PyObject *fn)
{
	if (!PyUnicode_Check(fn) || PyUnicode_GET_LENGTH(fn) == 0)
		return 0;
	if (PyUnicode_READ_CHAR(fn, 0) == '<')
		/* "<frozen os>" is the standard library; "<string>", "<stdin>"
		 * are code the program compiled itself. */
		return contains(fn, "<frozen ");
	if (g_app_paths)
		for (Py_ssize_t i = 0; i < PyList_GET_SIZE(g_app_paths); i++)
			if (has_prefix(fn, PyList_GET_ITEM(g_app_paths, i)))
				return 0;
	if (g_stdlib_prefix && has_prefix(fn, g_stdlib_prefix))
		return 1;
	return contains(fn, "/site-packages/") || contains(fn, "/dist-packages/");
}

/* A code object's file never changes; a freed one whose address is reused
 * is told apart by its filename object (a stale hit costs one verdict). */
#define LIBCACHE_SIZE 256
static struct {
	const void *code, *file;
	int lib;
} g_lib[LIBCACHE_SIZE];

static void clear_lib_cache(void)
{
	memset(g_lib, 0, sizeof g_lib);
}

int agent_policy__is_library(PyCodeObject *co)
{
	if (agent_offer__moved(&g_offer))
		take_offered();
	uintptr_t h = (uintptr_t)co >> 4;
	unsigned i = (unsigned)((h ^ (h >> 8)) % LIBCACHE_SIZE);
	if (g_lib[i].code == co && g_lib[i].file == co->co_filename)
		return g_lib[i].lib;
	int lib = classify_file(co->co_filename);
	g_lib[i].code = co;
	g_lib[i].file = co->co_filename;
	g_lib[i].lib = lib;
	return lib;
}

/* ------------------------------------------------------------------ */
/* Reading without running code                                        */

static int code_is(PyCodeObject *co, const char *file_tail, const char *qualname)
{
	return PyUnicode_CompareWithASCIIString(co->co_qualname, qualname) == 0 &&
	       ends_with(co->co_filename, file_tail);
}

/* A local of f by name (a cell's content for cell and free variables);
 * borrowed, NULL when absent or unbound. */
static PyObject *local_named(_PyInterpreterFrame *f, const char *name)
{
	PyCodeObject *co = f->f_code;
	PyObject *names = co->co_localsplusnames;
	for (int i = 0; i < co->co_nlocalsplus && i < PyTuple_GET_SIZE(names); i++) {
		if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(names, i), name) != 0)
			continue;
		PyObject *v = f->localsplus[i];
		if (v &&
		    (_PyLocals_GetKind(co->co_localspluskinds, i) &
		     (CO_FAST_CELL | CO_FAST_FREE)) &&
		    PyCell_Check(v))
			v = PyCell_GET(v);
		return v;
	}
	return NULL;
}

/* A closure variable of a Python function by name; borrowed. */
static PyObject *closure_named(PyObject *fn, const char *name)
{
	if (!PyFunction_Check(fn))
		return NULL;
	PyCodeObject *co = (PyCodeObject *)PyFunction_GET_CODE(fn);
	PyObject *cells = PyFunction_GET_CLOSURE(fn);
	if (!cells || !PyTuple_Check(cells))
		return NULL;
	Py_ssize_t nfree = PyTuple_GET_SIZE(cells);
	PyObject *names = co->co_localsplusnames;
	Py_ssize_t n = PyTuple_GET_SIZE(names);
	/* Free variables are the last co_nfreevars names, in closure order. */
	for (Py_ssize_t k = 0; k < nfree && k < n; k++) {
		PyObject *nm = PyTuple_GET_ITEM(names, n - nfree + k);
		PyObject *cell = PyTuple_GET_ITEM(cells, k);
		if (PyUnicode_CompareWithASCIIString(nm, name) == 0 && PyCell_Check(cell))
			return PyCell_GET(cell);
	}
	return NULL;
}

/* obj.name when that reads only an instance dict or a plain class
 * attribute: refused (NULL) for a type with its own __getattribute__ or
 * __getattr__, or a data descriptor other than a C member (a property
 * runs code). New reference. */
static PyObject *attr_plain(PyObject *obj, const char *name)
{
	PyTypeObject *tp = Py_TYPE(obj);
	PyObject *key = NULL, *v = NULL;
	if (tp->tp_getattro != PyObject_GenericGetAttr)
		return NULL;
	if (!(key = PyUnicode_InternFromString(name)))
		goto out;
	PyObject *descr = _PyType_Lookup(tp, key);
	if (descr && Py_TYPE(descr)->tp_descr_set) {
		if (Py_TYPE(descr) == &PyMemberDescr_Type || Py_TYPE(descr) == &PyGetSetDescr_Type)
			v = Py_TYPE(descr)->tp_descr_get(descr, obj, (PyObject *)tp);
		goto out;
	}
	PyObject **dp = _PyObject_GetDictPtr(obj);
	if (dp && *dp && PyDict_CheckExact(*dp))
		v = Py_XNewRef(PyDict_GetItemWithError(*dp, key));
	if (!v && descr && !Py_TYPE(descr)->tp_descr_get)
		v = Py_NewRef(descr);
out:
	Py_XDECREF(key);
	PyErr_Clear();
	return v;
}

/* obj.name through a C getter or member of obj's type (its code is C:
 * getset and member descriptors are made by C types only). New reference. */
static PyObject *attr_c(PyObject *obj, const char *name)
{
	PyObject *key = PyUnicode_InternFromString(name), *v = NULL;
	PyObject *descr = key ? _PyType_Lookup(Py_TYPE(obj), key) : NULL;
	if (descr &&
	    (Py_TYPE(descr) == &PyGetSetDescr_Type || Py_TYPE(descr) == &PyMemberDescr_Type))
		v = Py_TYPE(descr)->tp_descr_get(descr, obj, (PyObject *)Py_TYPE(obj));
	Py_XDECREF(key);
	PyErr_Clear();
	return v;
}

/* Whether map (a dict keyed by exception classes, and perhaps status codes)
 * has an entry for type or one of its bases. Type keys hash by identity
 * and compare by identity (exception classes' metaclass is type). */
static int mro_in(PyObject *map, PyObject *type)
{
	PyObject *mro = ((PyTypeObject *)type)->tp_mro;
	if (!PyDict_Check(map) || !mro || !PyTuple_Check(mro))
		return 0;
	for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro); i++) {
		PyObject *cls = PyTuple_GET_ITEM(mro, i);
		if (Py_TYPE(cls) != &PyType_Type)
			return 0; /* a metaclass could run code on __eq__ */
		if (PyDict_GetItemWithError(map, cls))
			return 1;
		PyErr_Clear();
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Context managers                                                    */

/* The frame of a suspended generator, coroutine or async generator; NULL
 * when it is not suspended (running, finished, not started). */
static _PyInterpreterFrame *suspended_frame(PyObject *g)
{
	if (!(PyGen_CheckExact(g) || PyCoro_CheckExact(g) || PyAsyncGen_CheckExact(g)))
		return NULL;
	PyGenObject *gen = (PyGenObject *)g;
	return gen->gi_frame_state == FRAME_SUSPENDED ? (_PyInterpreterFrame *)gen->gi_iframe
						      : NULL;
}

int agent_policy__exit_may_suppress(PyObject *exit_fn, PyObject *type, int library)
{
	PyObject *fn = PyMethod_Check(exit_fn) ? PyMethod_GET_FUNCTION(exit_fn) : exit_fn;
	PyObject *self = PyMethod_Check(exit_fn) ? PyMethod_GET_SELF(exit_fn) : NULL;
	if (!PyFunction_Check(fn))
		return 1;
	PyCodeObject *co = (PyCodeObject *)PyFunction_GET_CODE(fn);
	if (self && (code_is(co, "/contextlib.py", "_GeneratorContextManager.__exit__") ||
		     code_is(co, "/contextlib.py", "_AsyncGeneratorContextManager.__aexit__"))) {
		/* __exit__ throws the exception into the generator at its
		 * yield and suppresses it only if the generator does not
		 * re-raise it: judge the generator's own handlers there. */
		PyObject *gen = attr_plain(self, "gen");
		_PyInterpreterFrame *gf = gen ? suspended_frame(gen) : NULL;
		int v = gf ? agent_watch__frame_verdict(gf, type) : AGENT_HANDLED;
		Py_XDECREF(gen);
		return v != AGENT_NO_HANDLER;
	}
	if (self && code_is(co, "/contextlib.py", "suppress.__exit__")) {
		PyObject *excs = attr_plain(self, "_exceptions");
		int r = !excs || PyErr_GivenExceptionMatches(type, excs);
		Py_XDECREF(excs);
		PyErr_Clear();
		return r;
	}
	/* Context managers of libraries that suppress only their own
	 * cancellation, or return what a C lock's __exit__ returns: an
	 * application's error goes through them. */
	static const struct {
		const char *file_tail, *qualname;
	} passes[] = {
		{ "/threading.py", "Condition.__exit__" },
		{ "/anyio/_backends/_asyncio.py", "CancelScope.__exit__" },
		{ "/anyio/_backends/_asyncio.py", "CapacityLimiter.__aexit__" },
		{ "/anyio/_backends/_asyncio.py", "TaskGroup.__aexit__" },
		{ "/asyncio/timeouts.py", "Timeout.__aexit__" },
	};
	(void)library;
	for (size_t i = 0; i < sizeof passes / sizeof passes[0]; i++)
		if (code_is(co, passes[i].file_tail, passes[i].qualname))
			return 0;
	/* Any other may (assertRaises, pytest.raises, ExitStack...). */
	return 1;
}

/* ------------------------------------------------------------------ */
/* Registries of the application's handlers                            */

/* Flask: app.error_handler_spec[scope][code][cls], scope None for the app
 * and blueprint names; code None for exception classes (what
 * Flask._find_error_handler reads). Any scope counts: which blueprints
 * the request went through is request state we do not read. */
static int flask_registered(_PyInterpreterFrame *f, PyObject *type)
{
	PyObject *app = local_named(f, "self");
	PyObject *spec = app ? attr_plain(app, "error_handler_spec") : NULL;
	int r = 0;
	if (spec && PyDict_Check(spec)) {
		Py_ssize_t pos = 0;
		PyObject *k, *scope;
		while (!r && PyDict_Next(spec, &pos, &k, &scope)) {
			PyObject *map = PyDict_Check(scope)
						? PyDict_GetItemWithError(scope, Py_None)
						: NULL;
			r = map && mro_in(map, type);
		}
	}
	Py_XDECREF(spec);
	PyErr_Clear();
	return r;
}

/* Django: BaseHandler._get_response hands the exception to the
 * process_exception methods of the middleware (self._exception_middleware);
 * any such method is the application's handling. */
static int django_registered(_PyInterpreterFrame *f, PyObject *type)
{
	(void)type;
	PyObject *h = local_named(f, "self");
	PyObject *mw = h ? attr_plain(h, "_exception_middleware") : NULL;
	int r = mw && PyList_Check(mw) && PyList_GET_SIZE(mw) > 0;
	Py_XDECREF(mw);
	return r;
}

/* Starlette/FastAPI: ExceptionMiddleware looks the type's classes up in
 * self._exception_handlers (app.exception_handler / exception_handlers=). */
static int starlette_registered(_PyInterpreterFrame *f, PyObject *type)
{
	PyObject *mw = local_named(f, "self");
	PyObject *map = mw ? attr_plain(mw, "_exception_handlers") : NULL;
	int r = map && mro_in(map, type);
	Py_XDECREF(map);
	return r;
}

/* ServerErrorMiddleware: a handler for 500/Exception is the application's. */
static int starlette_500_registered(_PyInterpreterFrame *f, PyObject *type)
{
	(void)type;
	PyObject *mw = local_named(f, "self");
	PyObject *h = mw ? attr_plain(mw, "handler") : NULL;
	int r = h && h != Py_None;
	Py_XDECREF(h);
	return r;
}

/* ------------------------------------------------------------------ */
/* Transports: the exception is stored for a consumer                  */

static int future_consumers(PyObject *fut, PyObject *type, int depth);

static int is_coro_like(PyObject *o)
{
	return PyCoro_CheckExact(o) || PyGen_CheckExact(o);
}

/* The task T2 awaits something that leads to our future: judge the
 * coroutines of T2's await chain at their suspension points, innermost
 * first, then T2's own consumers. */
static int task_awaiter(PyObject *task, PyObject *type, int depth)
{
	PyObject *chain[16];
	int n = 0;
	PyObject *c = attr_c(task, "_coro");
	while (c && is_coro_like(c) && n < 16) {
		chain[n++] = c;
		c = attr_c(c, PyCoro_CheckExact(c) ? "cr_await" : "gi_yieldfrom");
	}
	Py_XDECREF(c);
	int verdict = -1;
	for (int i = n - 1; i >= 0 && verdict < 0; i--) {
		PyGenObject *g = (PyGenObject *)chain[i];
		if (g->gi_frame_state != FRAME_SUSPENDED)
			continue;
		_PyInterpreterFrame *fr = (_PyInterpreterFrame *)g->gi_iframe;
		int v = agent_watch__frame_verdict(fr, type);
		if (v == AGENT_HANDLED)
			verdict = 0;
		else if (v == AGENT_BOUNDARY || v == AGENT_THREAD_TOP)
			verdict = agent_policy__boundary(fr, NULL, type, depth + 1);
	}
	for (int i = 0; i < n; i++)
		Py_DECREF(chain[i]);
	return verdict >= 0 ? verdict : future_consumers(task, type, depth + 1);
}

/* run_until_complete(fut) is the consumer: it re-raises fut's exception to
 * its caller on this thread. */
static int loop_caller(PyObject *type, int depth)
{
	PyThreadState *ts = PyThreadState_Get();
	for (_PyInterpreterFrame *f = ts->cframe ? ts->cframe->current_frame : NULL; f;
	     f = f->previous) {
		if (_PyFrame_IsIncomplete(f))
			continue;
		if (code_is(f->f_code, "/asyncio/base_events.py",
			    "BaseEventLoop.run_until_complete")) {
			_PyInterpreterFrame *below = f->previous;
			while (below && _PyFrame_IsIncomplete(below))
				below = below->previous;
			return below ? agent_watch__walk(below, type, depth + 1) : 1;
		}
	}
	return 0;
}

/* One done-callback of an asyncio future, as a consumer. */
static int callback_consumer(PyObject *cb, PyObject *type, int depth)
{
	if (PyCFunction_Check(cb) && PyCFunction_GET_SELF(cb) &&
	    strcmp(((PyCFunctionObject *)cb)->m_ml->ml_name, "task_wakeup") == 0)
		return task_awaiter(PyCFunction_GET_SELF(cb), type, depth);
	if (!PyFunction_Check(cb))
		return 0;
	PyCodeObject *co = (PyCodeObject *)PyFunction_GET_CODE(cb);
	if (code_is(co, "/asyncio/tasks.py", "gather.<locals>._done_callback")) {
		PyObject *rex = closure_named(cb, "return_exceptions");
		PyObject *outer = closure_named(cb, "outer");
		if (!rex || rex != Py_False)
			return 0; /* return_exceptions=True: a result, not an error */
		return outer ? future_consumers(outer, type, depth + 1) : 0;
	}
	if (code_is(co, "/asyncio/base_events.py", "_run_until_complete_cb"))
		return loop_caller(type, depth);
	return 0; /* a consumer we cannot judge: leave it alone */
}

/* The consumers of an asyncio future: its done-callbacks. None yet: the
 * decision cannot be made now; the exception is left alone. */
static int future_consumers(PyObject *fut, PyObject *type, int depth)
{
	if (depth > MAX_DEPTH)
		return 0;
	PyObject *cbs = attr_c(fut, "_callbacks");
	int crash = 0;
	if (cbs && PyList_Check(cbs))
		for (Py_ssize_t i = 0; i < PyList_GET_SIZE(cbs) && !crash; i++) {
			PyObject *e = PyList_GET_ITEM(cbs, i);
			if (PyTuple_Check(e) && PyTuple_GET_SIZE(e) >= 1)
				crash = callback_consumer(PyTuple_GET_ITEM(e, 0), type, depth);
		}
	Py_XDECREF(cbs);
	return crash;
}

/* asyncio's Handle._run runs a callback; when the walk came from a
 * coroutine stepped from here (a Task's step, in C), the exception goes into
 * the task, whose consumers decide. Anything else a callback raises ends up
 * in the loop's exception handler: a unit of work ends. */
static int asyncio_handle(_PyInterpreterFrame *f, _PyInterpreterFrame *above, PyObject *type,
			  int depth)
{
	(void)f;
	if (!above || !above->is_entry || !(above->f_code->co_flags & CO_COROUTINE))
		return 1;
	/* The running task: _asyncio._current_tasks[loop] for this thread's
	 * running loop (_asyncio._get_running_loop, C). The loop's hash and
	 * equality must be object's, so the lookup runs no code. */
	PyObject *name = PyUnicode_FromString("_asyncio");
	PyObject *mod = name ? PyImport_GetModule(name) : NULL;
	Py_XDECREF(name);
	PyObject *get = mod ? PyObject_GetAttrString(mod, "_get_running_loop") : NULL;
	PyObject *cur = mod ? PyObject_GetAttrString(mod, "_current_tasks") : NULL;
	PyObject *loop = get && PyCFunction_Check(get) ? PyObject_CallNoArgs(get) : NULL;
	PyObject *task = NULL;
	if (loop && cur && PyDict_CheckExact(cur) &&
	    Py_TYPE(loop)->tp_hash == PyBaseObject_Type.tp_hash &&
	    Py_TYPE(loop)->tp_richcompare == PyBaseObject_Type.tp_richcompare)
		task = Py_XNewRef(PyDict_GetItemWithError(cur, loop));
	Py_XDECREF(mod);
	Py_XDECREF(get);
	Py_XDECREF(cur);
	Py_XDECREF(loop);
	PyErr_Clear();
	int r = task && task != Py_None ? future_consumers(task, type, depth) : 0;
	Py_XDECREF(task);
	return r;
}

/* concurrent.futures' _WorkItem.run stores the exception in the work item's
 * future. Its consumer is a thread blocked in that future's result(), or in
 * the iterator Executor.map returned while the future is in its list; no
 * such thread yet: undecided, left alone. */
static int futures_workitem(_PyInterpreterFrame *f, _PyInterpreterFrame *above, PyObject *type,
			    int depth)
{
	(void)above;
	PyObject *item = local_named(f, "self");
	PyObject *fut = item ? attr_plain(item, "future") : NULL;
	int r = 0, found = 0;
	if (!fut)
		return 0;
	PyInterpreterState *interp = PyThreadState_Get()->interp;
	for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts && !found;
	     ts = PyThreadState_Next(ts)) {
		for (_PyInterpreterFrame *c = ts->cframe ? ts->cframe->current_frame : NULL;
		     c && !found; c = c->previous) {
			if (_PyFrame_IsIncomplete(c))
				continue;
			PyCodeObject *co = c->f_code;
			if (code_is(co, "/concurrent/futures/_base.py", "Future.result")) {
				found = local_named(c, "self") == fut;
			} else if (code_is(co, "/concurrent/futures/_base.py",
					   "Executor.map.<locals>.result_iterator")) {
				PyObject *fs = local_named(c, "fs");
				if (fs && PyList_Check(fs))
					for (Py_ssize_t i = 0; i < PyList_GET_SIZE(fs) && !found;
					     i++)
						found = PyList_GET_ITEM(fs, i) == fut;
			}
			if (found)
				r = agent_watch__walk(c, type, depth + 1);
		}
	}
	Py_DECREF(fut);
	return r;
}

/* anyio's worker thread (run_sync, FastAPI's sync endpoints) hands the
 * exception to an asyncio future the awaiting task waits on. */
static int anyio_worker(_PyInterpreterFrame *f, _PyInterpreterFrame *above, PyObject *type,
			int depth)
{
	(void)above;
	PyObject *fut = local_named(f, "future");
	return fut ? future_consumers(fut, type, depth) : 0;
}

/* Celery's tracer stores a task's exception in its result (eager mode:
 * EagerResult; a worker: the result backend); the consumer is whoever calls
 * .get() later, not known yet: the exception is left alone here and judged
 * when .get() raises it again (crash.c, a re-raise). */
static int celery_tracer(_PyInterpreterFrame *f, _PyInterpreterFrame *above, PyObject *type,
			 int depth)
{
	(void)f;
	(void)above;
	(void)type;
	(void)depth;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The table                                                           */

struct boundary_rule {
	const char *file_tail, *qualname;
	/* registries: 1 when the application registered a handler */
	int (*registered)(_PyInterpreterFrame *f, PyObject *type);
	/* transports: 1 when the consumer does not handle it */
	int (*consumer)(_PyInterpreterFrame *f, _PyInterpreterFrame *above, PyObject *type,
			int depth);
};

/* Test runners: their catch-all records an error as the test's result (a
 * doctest example that expects a traceback, an error a test reports): the
 * program handles it, by design. */
static int test_runner(_PyInterpreterFrame *f, PyObject *type)
{
	(void)f;
	(void)type;
	return 1;
}

/* Not in the table, by design: process workers. multiprocessing's pool
 * `worker` (except Exception), concurrent.futures' `_process_worker`
 * (except BaseException) and `BaseProcess._bootstrap` (bare except) send
 * the exception to another process, pickled without its frames, or print
 * it: no consumer in this process can handle it, so their broad handler
 * ends a unit of work like any other library catch-all (return 1 below):
 * a crash in the worker, healed there (docs/design.md §6, §15;
 * tests/e2e/test_tree_*.sh). */
static const struct boundary_rule rules[] = {
	{ "/doctest.py", "DocTestRunner.__run", test_runner, NULL },
	{ "/unittest/case.py", "_Outcome.testPartExecutor", test_runner, NULL },
	{ "/unittest/case.py", "TestCase.run", test_runner, NULL },
	{ "/_pytest/runner.py", "CallInfo.from_call", test_runner, NULL },
	{ "/flask/app.py", "Flask.full_dispatch_request", flask_registered, NULL },
	{ "/django/core/handlers/base.py", "BaseHandler._get_response", django_registered, NULL },
	{ "/django/core/handlers/base.py", "BaseHandler._get_response_async", django_registered,
	  NULL },
	{ "/starlette/middleware/exceptions.py", "ExceptionMiddleware.__call__",
	  starlette_registered, NULL },
	{ "/starlette/middleware/errors.py", "ServerErrorMiddleware.__call__",
	  starlette_500_registered, NULL },
	{ "/asyncio/events.py", "Handle._run", NULL, asyncio_handle },
	{ "/concurrent/futures/thread.py", "_WorkItem.run", NULL, futures_workitem },
	{ "/anyio/_backends/_asyncio.py", "WorkerThread.run", NULL, anyio_worker },
	{ "/celery/app/trace.py", "build_tracer.<locals>.trace_task", NULL, celery_tracer },
};

int agent_policy__boundary(_PyInterpreterFrame *fr, _PyInterpreterFrame *above, PyObject *type,
			   int depth)
{
	PyCodeObject *co = fr->f_code;
	if (depth > MAX_DEPTH)
		return 0;
	for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
		const struct boundary_rule *r = &rules[i];
		if (!code_is(co, r->file_tail, r->qualname))
			continue;
		if (r->registered)
			return !r->registered(fr, type);
		return r->consumer(fr, above, type, depth);
	}
	return 1;
}
