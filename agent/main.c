/* agent: libsuture_agent.so's entry and the agent thread's life.
 *
 * The constructor only starts a thread (never run Python on the thread that
 * loaded us: it may be a hijacked one, stopped anywhere by the debugger's
 * remote dlopen; agent/README.md). That thread waits until the interpreter
 * is initialized (LD_PRELOAD loads us before Py_Initialize), opens the
 * channel (server.c), has the watcher installed with the GIL held
 * (installer.c), then serves one debugger at a time until DETACH
 * (docs/formats/channel.md).
 *
 * A single instance per process: a flock on <dir>/agent-<pid>.lock, taken
 * before anything else, makes a second copy (LD_PRELOAD + dlopen of another
 * path) stay idle. Detaching removes the watcher, closes the channel and
 * ends the thread; the code stays mapped (patched code may call our
 * helpers) and suture_agent_start() starts it again.
 */
#include "agent/agent-priv.h"
#include "agent/probe.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct agent_stats agent_stats;

struct agent_state agent_g = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.listen_fd = -1,
	.client_fd = -1,
	.lock_fd = -1,
	.fork_rd = -1,
	.fork_wr = -1,
	.parent_fork_wr = -1,
};

/* The agent thread (joinable), until the next start joins it. */
static pthread_t g_thread;
static bool g_thread_live;

static int g_verbose = -1;
/* SUTURE_AGENT_READY_FD: a pipe's write end from suture-run, written once
 * the channel listens and closed (EOF: no channel will come). */
static int g_ready_fd = -1;

static void ready_say(bool up)
{
	int fd = g_ready_fd;
	g_ready_fd = -1;
	if (fd < 0)
		return;
	if (up) {
		ssize_t w;
		do
			w = write(fd, "1", 1);
		while (w < 0 && errno == EINTR);
	}
	close(fd);
}

void agent__log(const char *fmt, ...)
{
	va_list ap;
	if (g_verbose < 0) {
		const char *v = getenv("SUTURE_AGENT_VERBOSE");
		g_verbose = v && *v && strcmp(v, "0") != 0;
	}
	if (!g_verbose)
		return;
	char line[600];
	struct timespec ts;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* Monotonic milliseconds: comparable with the debugger's own clock. */
	fprintf(stderr, "suture-agent[%d] %.3f: %s\n", (int)getpid(),
		ts.tv_sec * 1e3 + ts.tv_nsec / 1e6, line);
}

void agent__deadline(clockid_t clock, unsigned ms, struct timespec *ts)
{
	clock_gettime(clock, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

__attribute__((visibility("default"))) int suture_agent_start(void);

/* The constructor left the start to the boot hook (agent-priv.h). */
static bool g_deferred;

bool agent__start_is_deferred(void)
{
	return __atomic_load_n(&g_deferred, __ATOMIC_ACQUIRE);
}

/* Start the agent thread, or tell suture-run (the ready pipe's EOF) that
 * no channel will come. */
static void start_or_say(void)
{
	if (suture_agent_start()) {
		agent__log("cannot start the agent thread");
		ready_say(false);
	}
}

void agent__start_deferred(void)
{
	if (__atomic_exchange_n(&g_deferred, false, __ATOMIC_ACQ_REL))
		start_or_say();
}

/* Py_Initialize's end, as the boot hook sees it (agent__interpreter_up). */
static pthread_mutex_t g_up_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_up_cond = PTHREAD_COND_INITIALIZER; /* CLOCK_REALTIME */
static bool g_up;

void agent__interpreter_up(void)
{
	pthread_mutex_lock(&g_up_lock);
	g_up = true;
	pthread_cond_broadcast(&g_up_cond);
	pthread_mutex_unlock(&g_up_lock);
}

/* LD_PRELOAD: wait for Py_Initialize to finish. Under suture-run the boot
 * hook wakes us at the first module after initialization (site's): no
 * polling, whose wake-ups every 0.5 ms cost the starting interpreter CPU
 * and, with a second thread of the process running, a TLB shootdown on
 * each of its page-table changes (docs/performance.md, "start-up, third
 * pass"); checked every 50 ms all the same, in case no module runs.
 * Otherwise every 0.5 ms: nothing tells us, and a debugger may hold the
 * script until we listen. */
static unsigned wait_initialized(void)
{
	unsigned waits = 0;
	for (; !Py_IsInitialized(); waits++) {
		if (!agent_boot__active()) {
			usleep(500);
			continue;
		}
		struct timespec ts;
		agent__deadline(CLOCK_REALTIME, 50, &ts);
		pthread_mutex_lock(&g_up_lock);
		if (!g_up)
			pthread_cond_timedwait(&g_up_cond, &g_up_lock, &ts);
		pthread_mutex_unlock(&g_up_lock);
	}
	return waits;
}

/* The agent thread: the channel's life. */
static void *agent_main(void *arg)
{
	int rc;
	(void)arg;

	unsigned waits = wait_initialized();
	agent__log("interpreter initialized (%u wait(s) for it)", waits);
	if ((rc = agent_server__open())) {
		agent__log("channel not opened: %s", strerror(-rc));
		ready_say(false);
		goto out;
	}
	ready_say(true);
	/* A forked child: the parent's agent tells its debugger about us. */
	agent_server__fork_announce();
	pthread_mutex_lock(&agent_g.lock);
	bool installed = agent_g.installed; /* a fork keeps its parent's watcher */
	pthread_mutex_unlock(&agent_g.lock);
	if (!installed) {
		const char *gt = getenv("SUTURE_AGENT_GIL_TIMEOUT_MS");
		agent_installer__install(gt && *gt ? (unsigned)strtoul(gt, NULL, 10) : 5000);
	}
	agent__log("listening on %s", agent_g.sock_path);
	agent_server__serve();
	agent_server__close();
out:
	pthread_mutex_lock(&agent_g.lock);
	agent_g.running = false;
	pthread_cond_broadcast(&agent_g.cond); /* a restart waiting for us to end */
	pthread_mutex_unlock(&agent_g.lock);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Entry points                                                         */

/* Whether this process is a Python interpreter: LD_PRELOAD also loads us
 * into whatever runs first (`#!/usr/bin/env python3` starts env). Python
 * data symbols are weak (inject/module.mk), so we get here either way. */
static bool in_python(void)
{
	return dlsym(RTLD_DEFAULT, "Py_IsInitialized") != NULL &&
	       dlsym(RTLD_DEFAULT, "PyTraceBack_Here") != NULL;
}

/* Start the agent thread if it is not running: the constructor calls it;
 * a debugger calls it (remote call) to restart a detached agent, since a
 * second dlopen of a loaded library runs no constructor. 0 or -errno. */
__attribute__((visibility("default"))) int suture_agent_start(void)
{
	if (!in_python())
		return -ENOEXEC;
	sigset_t all, old;
	int rc = 0;
	/* Called remotely, every other thread is stopped by the debugger:
	 * wait for nothing another thread may hold (agent_g.lock; the old
	 * agent thread on its way out, which only the release lets end). The
	 * call cannot be abandoned half-done (running set, no thread): -EAGAIN
	 * asks the debugger to let the process run and call again. */
	if (pthread_mutex_trylock(&agent_g.lock))
		return -EAGAIN;
	if (agent_g.running) {
		rc = agent_g.stopping ? -EAGAIN : 0;
		pthread_mutex_unlock(&agent_g.lock);
		return rc;
	}
	/* The old thread is joinable: joining frees its stack here, so no
	 * exiting thread holds glibc's stack cache lock pthread_create takes. */
	if (g_thread_live) {
		if (pthread_tryjoin_np(g_thread, NULL)) {
			pthread_mutex_unlock(&agent_g.lock);
			return -EAGAIN;
		}
		g_thread_live = false;
	}
	agent_g.running = true;
	agent_g.stopping = false;
	pthread_mutex_unlock(&agent_g.lock);
	/* The thread takes no signal: they belong to the program. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (pthread_create(&g_thread, NULL, agent_main, NULL))
		rc = -EAGAIN;
	else
		g_thread_live = true;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		pthread_mutex_lock(&agent_g.lock);
		agent_g.running = false;
		pthread_mutex_unlock(&agent_g.lock);
	}
	return rc;
}

/* After fork (docs/design.md §15) the child is a copy of the thread that
 * forked: the agent thread, parked threads and whoever held agent_g.lock
 * or the registry's lock are not in it. This handler runs in the child
 * right after fork(), before CPython's own after-fork work, where only
 * async-signal-safe work is sure to be legal: it closes the parent's
 * descriptors and resets state with plain stores (the mutexes and the
 * condition are initialized again, as glibc does its own). The watcher
 * stays installed. The child's agent thread is started later from a safe
 * point (agent__fork_start): CPython's after-fork callback, or the first
 * exception the watcher sees, whichever comes first; that thread opens
 * the child's own channel (named after its own pid) and tells the
 * parent's agent. A crash that comes before the channel is up waits for a
 * debugger, as at boot, when the parent's debugger follows the tree. */
static void atfork_child(void)
{
	bool had = agent_g.running || agent_g.forked;
	bool follow = agent_g.tree && agent_g.ready;
	pthread_condattr_t ca;
	agent_g.ready = false;
	agent_g.hits = false;
	agent_g.tree = false;
	agent_g.running = false;
	agent_g.stopping = false;
	agent_g.installing = false;
	g_thread_live = false; /* the parent's thread: not ours to join */
	agent_g.parked = NULL;
	agent_g.nforked_queue = 0;
	if (agent_g.client_fd >= 0)
		close(agent_g.client_fd);
	if (agent_g.listen_fd >= 0)
		close(agent_g.listen_fd);
	if (agent_g.lock_fd >= 0)
		close(agent_g.lock_fd);
	agent_g.client_fd = agent_g.listen_fd = agent_g.lock_fd = -1;
	agent_g.sock_path[0] = agent_g.lock_path[0] = 0;
	if (agent_g.fork_rd >= 0)
		close(agent_g.fork_rd);
	agent_g.fork_rd = -1;
	/* The nearest ancestor's agent with a channel hears of us. */
	if (agent_g.fork_wr >= 0) {
		if (agent_g.parent_fork_wr >= 0)
			close(agent_g.parent_fork_wr);
		agent_g.parent_fork_wr = agent_g.fork_wr;
	}
	agent_g.fork_wr = -1;
	if (g_ready_fd >= 0)
		close(g_ready_fd); /* the parent's agent answers for itself */
	g_ready_fd = -1;
	if (follow && agent_g.wait_debugger_ms < 5000)
		agent_g.wait_debugger_ms = 5000;
	pthread_mutex_init(&agent_g.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&agent_g.cond, &ca);
	pthread_condattr_destroy(&ca);
	agent_install__atfork_child();
	agent_probe__atfork_child();
	agent_handled__atfork_child();
	agent_policy__atfork_child();
	__atomic_store_n(&agent_g.forked, had, __ATOMIC_RELEASE);
}

void agent__fork_start(void)
{
	if (!__atomic_load_n(&agent_g.forked, __ATOMIC_ACQUIRE) ||
	    !__atomic_exchange_n(&agent_g.forked, false, __ATOMIC_ACQ_REL))
		return;
	int rc = suture_agent_start();
	if (rc)
		agent__log("fork: the agent thread did not start: %s", strerror(-rc));
}

/* os.register_at_fork(after_in_child=...): CPython runs it in the child
 * of os.fork() (multiprocessing, gunicorn, concurrent.futures) with the
 * GIL held, once its interpreter state is valid again. */
static PyObject *after_fork_child(PyObject *self, PyObject *noargs)
{
	(void)self;
	(void)noargs;
	agent_boot__tree_child(); /* before the child imports anything */
	agent__fork_start();
	Py_RETURN_NONE;
}

static PyMethodDef g_after_fork_def = { "_suture_after_fork", after_fork_child, METH_NOARGS, NULL };
/* Inherited by children: the interpreter's callback list is too. */
static bool g_fork_registered;

void agent__fork_register(void)
{
	if (g_fork_registered)
		return;
	PyObject *et, *ev, *etb;
	PyErr_Fetch(&et, &ev, &etb); /* the install's caller may be raising */
	/* posix's, which os re-exports: posix is built in and imported by
	 * the import system's own start, where os is a module of the
	 * standard library that importing here would run, in the boot
	 * hook's case before site does (docs/performance.md, "start-up,
	 * sixth pass"). */
	PyObject *os = PyImport_ImportModule("posix");
	PyObject *reg = os ? PyObject_GetAttrString(os, "register_at_fork") : NULL;
	PyObject *fn = reg ? PyCFunction_New(&g_after_fork_def, NULL) : NULL;
	PyObject *args = fn ? PyTuple_New(0) : NULL;
	PyObject *kw = args ? Py_BuildValue("{s:O}", "after_in_child", fn) : NULL;
	PyObject *r = kw ? PyObject_Call(reg, args, kw) : NULL;
	if (r)
		g_fork_registered = true;
	else
		agent__log("fork: os.register_at_fork failed: children start their agent at "
			   "their first exception");
	PyErr_Clear();
	Py_XDECREF(r);
	Py_XDECREF(kw);
	Py_XDECREF(args);
	Py_XDECREF(fn);
	Py_XDECREF(reg);
	Py_XDECREF(os);
	PyErr_Restore(et, ev, etb);
}

static void at_exit(void)
{
	/* Guards that fired since the last HITS (the last moments of the
	 * program): sent before the process closes the channel. After
	 * Py_FinalizeEx: no Python here, and a lock some other thread keeps
	 * is waited for one second at most. */
	if (agent_install__hits_pending()) {
		struct timespec dl;
		agent__deadline(CLOCK_REALTIME, 1000, &dl);
		agent_server__send_hits(&dl);
		agent__log("hits: the last firings at exit%s",
			   agent_install__hits_pending()
				   ? " (not sent: no debugger asked for them, or a lock was held)"
				   : "");
	}
	if (agent_handled__pending()) {
		struct timespec dl;
		agent__deadline(CLOCK_REALTIME, 1000, &dl);
		agent_server__send_handled(&dl);
	}
	if (agent_g.listen_fd >= 0 && agent_g.sock_path[0])
		unlink(agent_g.sock_path);
	/* Ours while we hold it (one process has this pid; a second copy of
	 * the library in it never retries): left behind, one file a pid
	 * would pile up in the channel directory. */
	if (agent_g.lock_fd >= 0 && agent_g.lock_path[0])
		unlink(agent_g.lock_path);
}

/* Remove our own path from LD_PRELOAD so the program's children (shells,
 * other tools) do not load a library that needs libpython's symbols. */
static void strip_preload(void)
{
	const char *pre = getenv("LD_PRELOAD");
	if (!pre || !strstr(pre, "libsuture_agent"))
		return;
	char *copy = strdup(pre), *out = calloc(1, strlen(pre) + 1), *save = NULL;
	if (!copy || !out)
		goto done;
	for (char *tok = strtok_r(copy, " :", &save); tok; tok = strtok_r(NULL, " :", &save)) {
		if (strstr(tok, "libsuture_agent"))
			continue;
		if (*out)
			strcat(out, ":");
		strcat(out, tok);
	}
	if (*out)
		setenv("LD_PRELOAD", out, 1);
	else
		unsetenv("LD_PRELOAD");
done:
	free(copy);
	free(out);
}

__attribute__((constructor)) static void agent_ctor(void)
{
	pthread_condattr_t ca;
	/* Not Python: stay inert, and keep LD_PRELOAD for the interpreter
	 * this process may exec. */
	if (!in_python())
		return;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&agent_g.cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_atfork(NULL, NULL, atfork_child);
	atexit(at_exit);
	strip_preload();
	const char *rf = getenv("SUTURE_AGENT_READY_FD");
	if (rf && *rf) {
		char *end;
		long fd = strtol(rf, &end, 10);
		/* Not inherited by the program's children. */
		if (!*end && fd > 2 && fd < INT_MAX && fcntl((int)fd, F_SETFD, FD_CLOEXEC) == 0)
			g_ready_fd = (int)fd;
		unsetenv("SUTURE_AGENT_READY_FD");
	}
	const char *wd = getenv("SUTURE_AGENT_WAIT_DEBUGGER_MS");
	if (wd && *wd)
		agent_g.wait_debugger_ms = (unsigned)strtoul(wd, NULL, 10);
	/* Loaded as the _suture_helpers extension module by tests: stay inert. */
	if (getenv("SUTURE_AGENT_NO_START")) {
		ready_say(false);
		return;
	}
	/* suture-run's boot hook is or will be set (its constructor may run
	 * before or after ours): it starts the thread once the interpreter is
	 * initialized, or at once if it cannot be set. */
	if (agent_boot__active() ||
	    (getenv("SUTURE_AGENT_BOOT_FD") && getenv("SUTURE_AGENT_BOOT"))) {
		__atomic_store_n(&g_deferred, true, __ATOMIC_RELEASE);
		return;
	}
	start_or_say();
}
