/* agent: the GIL from the agent's own threads, and installing the watcher
 * with it.
 *
 * Installing the watcher (watch.c) needs the GIL; a thread that never lets
 * it go (a long C call) must not keep the channel from coming up, so the
 * agent thread does not take it itself. It queues a pending call (the
 * interpreter's main thread runs it at its next eval-breaker check) and
 * starts an installer thread that asks PyGILState_Ensure, then waits a
 * bounded time; suture-run's boot hook may install first, at the first
 * module (agent__install_watcher_here). Whoever claims the install under
 * agent_g.lock installs, once; the others wait for it or leave. An
 * installer abandoned by the agent thread's timeout finishes on its own
 * when the GIL frees and frees its own record.
 */
#include "agent/agent-priv.h"
#include "internal/pycore_interp.h"  /* interp->ceval: the drop request */
#include "internal/pycore_runtime.h" /* _PyRuntime.ceval.gil */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The GIL's drop request, made while the agent waits (docs/design.md §4,
 * "The agent's GIL").
 *
 * take_gil() asks the holder to drop the GIL only when one switch
 * interval passes with no release at all (its timed wait timed out). A
 * thread that releases the GIL often but briefly (a stat(), a short read)
 * signals the waiter at each release and has it back before the waiter
 * is scheduled: the wait never times out, and the waiter starves as long
 * as that pattern lasts (seconds with a 20 ms interval and a release
 * every 10 ms; for ever with a 1 s interval). The agent must not: a
 * detach, an install, a patch would wait with it. So while one of its
 * threads waits in PyGILState_Ensure(), a nudger thread makes the request
 * take_gil() would have made, every NUDGE_MS (or the switch interval, if
 * shorter) for as long as the wait lasts: under the GIL's mutex, only while
 * a thread other than the waiter holds the GIL, and not once finalization
 * has begun. The holder drops the GIL at its next eval-breaker check and
 * (FORCE_SWITCHING) waits until another thread has taken it, which is the
 * waiter; the taker's take_gil() clears the request under the same mutex.
 * A request with no waiter would leave that holder waiting for ever, hence
 * the holder check and the withdrawal below. Not at once: a waiter that
 * takes the GIL within the first interval, as during the interpreter's own
 * start-up (site's imports, which the watcher's install must not cut
 * into), takes it as before. Internal layout: checked once against what
 * the API says (the switch interval; the interpreter's id and config, on
 * either side of its ceval state); on a mismatch no request is made, and
 * the agent waits like any thread. */
#define NUDGE_MS 5

static int g_gil_layout = -1; /* unknown, 0 mismatch, 1 checked */

static bool gil_layout_ok(void)
{
	if (g_gil_layout < 0) {
		struct _gil_runtime_state *gil = &_PyRuntime.ceval.gil;
		PyInterpreterState *interp = PyInterpreterState_Main();
		/* Only calls that need no thread state: this thread has
		 * none, and the "current" one is whoever holds the GIL, or
		 * nobody. interp->config lies past interp->ceval. */
		g_gil_layout = interp && gil->interval == _PyEval_GetSwitchInterval() &&
			       interp->runtime == &_PyRuntime &&
			       interp->id == PyInterpreterState_GetID(interp) &&
			       &interp->config == _PyInterpreterState_GetConfig(interp);
		if (!g_gil_layout)
			agent__log("GIL: the runtime's layout is not this build's: "
				   "waiting for it like any thread");
	}
	return g_gil_layout == 1;
}

/* Under the GIL's mutex: the request, if a thread other than waiter
 * holds the GIL (last_holder is the live holder while locked is set and
 * the mutex held: both change only under it). */
static bool gil_request_drop(pthread_t waiter)
{
	struct _gil_runtime_state *gil = &_PyRuntime.ceval.gil;
	PyInterpreterState *interp = PyInterpreterState_Main();
	if (pthread_mutex_lock(&gil->mutex))
		return false;
	bool made = false;
	PyThreadState *holder = (PyThreadState *)_Py_atomic_load_relaxed(&gil->last_holder);
	if (_Py_atomic_load_relaxed(&gil->locked) == 1 && holder &&
	    !pthread_equal((pthread_t)holder->thread_id, waiter) && !_Py_IsFinalizing()) {
		_Py_atomic_store_relaxed(&interp->ceval.gil_drop_request, 1);
		_Py_atomic_store_relaxed(&interp->ceval.eval_breaker, 1);
		made = true;
	}
	pthread_mutex_unlock(&gil->mutex);
	return made;
}

struct nudge {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	pthread_t waiter, thread;
	bool running, done, made;
};

static void *nudger_main(void *arg)
{
	struct nudge *n = arg;
	unsigned ms = NUDGE_MS;
	unsigned long iv_us = _PyEval_GetSwitchInterval();
	if (iv_us / 1000 < ms)
		ms = iv_us >= 1000 ? (unsigned)(iv_us / 1000) : 1;
	pthread_mutex_lock(&n->lock);
	while (!n->done) {
		struct timespec ts;
		agent__deadline(CLOCK_MONOTONIC, ms, &ts);
		if (pthread_cond_timedwait(&n->cond, &n->lock, &ts) == ETIMEDOUT && !n->done &&
		    gil_request_drop(n->waiter))
			n->made = true;
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

/* The wait is over (the GIL taken, or this thread ending in
 * PyGILState_Ensure): the nudger stops and is joined. Ending, a request it
 * made may have no taker: it is withdrawn and the holder waiting in
 * drop_gil() woken (its wait has no timeout). */
static void nudge_stop(struct nudge *n, bool ending)
{
	if (!n->running)
		return;
	pthread_mutex_lock(&n->lock);
	n->done = true;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
	pthread_join(n->thread, NULL);
	n->running = false;
	if (ending && n->made) {
		struct _gil_runtime_state *gil = &_PyRuntime.ceval.gil;
		PyInterpreterState *interp = PyInterpreterState_Main();
		pthread_mutex_lock(&gil->mutex);
		_Py_atomic_store_relaxed(&interp->ceval.gil_drop_request, 0);
		pthread_mutex_unlock(&gil->mutex);
		pthread_mutex_lock(&gil->switch_mutex);
		pthread_cond_signal(&gil->switch_cond);
		pthread_mutex_unlock(&gil->switch_mutex);
	}
}

static void nudge_cleanup(void *arg)
{
	nudge_stop(arg, true);
}

int agent__gil_take(PyGILState_STATE *st)
{
	if (!Py_IsInitialized() || _Py_IsFinalizing())
		return -ESHUTDOWN;
	struct nudge n = { .waiter = pthread_self() };
	/* Holding it already (a nested take): nothing to wait for. */
	if (gil_layout_ok() && !PyGILState_Check()) {
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_mutex_init(&n.lock, NULL);
		pthread_cond_init(&n.cond, &ca);
		pthread_condattr_destroy(&ca);
		/* Every signal blocked: they belong to the program. */
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		n.running = pthread_create(&n.thread, NULL, nudger_main, &n) == 0;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	pthread_cleanup_push(nudge_cleanup, &n);
	*st = PyGILState_Ensure();
	pthread_cleanup_pop(0);
	nudge_stop(&n, false);
	return 0;
}

struct installer {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done, abandoned;
};

void agent_installer__record(uint32_t mode, const char *detail)
{
	pthread_mutex_lock(&agent_g.lock);
	agent_g.mode = mode;
	snprintf(agent_g.detail, sizeof agent_g.detail, "%s", detail);
	agent_g.installed = mode != WIRE_WATCH_NONE;
	agent_g.installing = false;
	pthread_cond_broadcast(&agent_g.cond);
	pthread_mutex_unlock(&agent_g.lock);
}

/* Claim the install (true), or say it is done or another claim holds it.
 * wait: until that other install has finished (call without the GIL:
 * the other needs it). */
static bool install_claim(bool wait)
{
	pthread_mutex_lock(&agent_g.lock);
	bool mine = agent_g.running && !agent_g.stopping && !agent_g.installed &&
		    !agent_g.installing;
	if (mine)
		agent_g.installing = true;
	while (!mine && wait && agent_g.installing)
		pthread_cond_wait(&agent_g.cond, &agent_g.lock);
	pthread_mutex_unlock(&agent_g.lock);
	return mine;
}

/* With the GIL held, the install claimed. */
static void install_claimed(void)
{
	uint32_t mode = WIRE_WATCH_NONE;
	char detail[160] = "";
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	agent_watch__install(&mode, detail, sizeof detail);
	if (mode != WIRE_WATCH_NONE)
		agent__fork_register(); /* children of os.fork() get an agent */
	clock_gettime(CLOCK_MONOTONIC, &t1);
	agent_installer__record(mode, detail);
	agent__log("watcher: %s (%.2f ms)", detail,
		   (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
}

void agent__install_watcher_here(void)
{
	/* An installer that claimed it first waits for the GIL we hold: it
	 * goes on once we let the GIL go. */
	if (install_claim(false))
		install_claimed();
}

/* Until no install is under way (without the GIL: the installer needs it). */
static void install_wait(void)
{
	pthread_mutex_lock(&agent_g.lock);
	while (agent_g.installing)
		pthread_cond_wait(&agent_g.cond, &agent_g.lock);
	pthread_mutex_unlock(&agent_g.lock);
}

/* A pending call: the interpreter's main thread runs it, with the GIL, at
 * its next check of the eval breaker, within microseconds when it runs
 * Python code; the installer thread would wait for the switch interval
 * (5 ms) to get the GIL from it. Whoever comes first installs. */
static int install_pending(void *arg)
{
	(void)arg;
	agent__install_watcher_here();
	return 0;
}

static void *installer_main(void *arg)
{
	struct installer *in = arg;
	PyGILState_STATE st;

	/* Installed already (the boot hook, the pending call), or under way:
	 * nothing to ask the GIL for. */
	install_wait();
	pthread_mutex_lock(&agent_g.lock);
	bool done = agent_g.installed;
	pthread_mutex_unlock(&agent_g.lock);
	if (done) {
		;
	} else if (agent__gil_take(&st) == 0) {
		bool mine = install_claim(false);
		if (mine)
			install_claimed();
		PyGILState_Release(st);
		if (!mine)
			install_wait(); /* the main thread's (pending call, boot hook) */
	} else {
		pthread_mutex_lock(&agent_g.lock);
		if (!agent_g.installed && !agent_g.installing)
			snprintf(agent_g.detail, sizeof agent_g.detail,
				 "interpreter finalizing or not initialized");
		pthread_mutex_unlock(&agent_g.lock);
		agent__log("watcher: interpreter finalizing or not initialized");
	}
	pthread_mutex_lock(&in->lock);
	in->done = true;
	bool abandoned = in->abandoned;
	pthread_cond_signal(&in->cond);
	pthread_mutex_unlock(&in->lock);
	if (abandoned)
		free(in);
	return NULL;
}

void agent_installer__install(unsigned timeout_ms)
{
	/* Claimed already: suture-run's boot hook installs on the
	 * interpreter's own thread, with the GIL, right after it woke us
	 * (boot.c). Its install needs no GIL from anyone and ends: wait for
	 * it rather than start an installer thread and queue a pending call,
	 * whose stack's mapping and clone a starting interpreter would pay
	 * for (docs/performance.md, "start-up, fifth pass"). */
	pthread_mutex_lock(&agent_g.lock);
	bool claimed = agent_g.installing || agent_g.installed;
	pthread_mutex_unlock(&agent_g.lock);
	if (claimed) {
		install_wait();
		return;
	}
	struct installer *in = calloc(1, sizeof *in);
	pthread_t t;
	struct timespec dl;
	if (!in) {
		agent_installer__record(WIRE_WATCH_NONE, "out of memory");
		return;
	}
	pthread_mutex_init(&in->lock, NULL);
	pthread_cond_init(&in->cond, NULL);
	Py_AddPendingCall(install_pending, NULL); /* a full queue: the installer alone */
	if (pthread_create(&t, NULL, installer_main, in)) {
		free(in);
		agent_installer__record(WIRE_WATCH_NONE, "cannot start the installer thread");
		return;
	}
	pthread_detach(t);
	agent__deadline(CLOCK_REALTIME, timeout_ms, &dl); /* in->cond: the default clock */
	pthread_mutex_lock(&in->lock);
	while (!in->done)
		if (pthread_cond_timedwait(&in->cond, &in->lock, &dl) == ETIMEDOUT)
			break;
	bool done = in->done;
	if (!done)
		in->abandoned = true;
	pthread_mutex_unlock(&in->lock);
	if (done) {
		free(in);
	} else {
		/* The installer finishes on its own when the GIL frees; until
		 * then WELCOME says why there is no watcher. */
		pthread_mutex_lock(&agent_g.lock);
		if (!agent_g.installed)
			snprintf(agent_g.detail, sizeof agent_g.detail,
				 "the GIL was not released in time; "
				 "the watcher will be installed when it is");
		pthread_mutex_unlock(&agent_g.lock);
	}
}
