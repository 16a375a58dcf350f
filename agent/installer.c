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
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The GIL's drop request, made before waiting (docs/design.md §4, "The
 * agent's GIL").
 *
 * take_gil() asks the holder to drop the GIL only when one switch
 * interval passes with no release at all (its timed wait timed out). A
 * thread that releases the GIL often but briefly (a stat(), a short read)
 * signals the waiter at each release and has it back before the waiter
 * is scheduled: the wait never times out, and the waiter starves as long
 * as that pattern lasts (seconds with a 20 ms interval and a release
 * every 10 ms; for ever with a 1 s interval). The agent must not: a
 * detach, an install, a patch would wait with it. So its threads make the
 * request take_gil() makes after a timeout, at once: under the GIL's
 * mutex, while another thread holds the GIL, and not once finalization
 * has begun (its threads leave take_gil() without taking). The holder drops it at its
 * next eval-breaker check or release and (FORCE_SWITCHING) waits until
 * another thread has taken it, which is this one, about to wait; the
 * taker's take_gil() clears the request under the same mutex, so none is
 * left behind. Internal layout: checked once against what the API says
 * (the switch interval; the interpreter's id and config, on either side of
 * its ceval state); on a mismatch no request is made, and the agent waits
 * like any thread. */
static int g_gil_layout = -1; /* unknown, 0 mismatch, 1 checked */

static bool gil_request_drop(void)
{
	struct _gil_runtime_state *gil = &_PyRuntime.ceval.gil;
	PyInterpreterState *interp = PyInterpreterState_Main();
	if (g_gil_layout < 0) {
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
	/* Holding it already (a nested take) would leave the request to us. */
	if (!g_gil_layout || PyGILState_Check())
		return false;
	if (pthread_mutex_lock(&gil->mutex))
		return false;
	bool made = false;
	if (_Py_atomic_load_relaxed(&gil->locked) == 1 && !_Py_IsFinalizing()) {
		_Py_atomic_store_relaxed(&interp->ceval.gil_drop_request, 1);
		_Py_atomic_store_relaxed(&interp->ceval.eval_breaker, 1);
		made = true;
	}
	pthread_mutex_unlock(&gil->mutex);
	return made;
}

/* PyGILState_Ensure() ends this thread (pthread_exit) instead of
 * returning when finalization began after the check above: take_gil()
 * then leaves without taking. A holder that saw our request waits in
 * drop_gil() for a taker that will never come, with no timeout; so the
 * request is withdrawn and that wait woken on the way out. */
static void gil_request_withdraw(void *arg)
{
	if (!*(bool *)arg)
		return;
	struct _gil_runtime_state *gil = &_PyRuntime.ceval.gil;
	PyInterpreterState *interp = PyInterpreterState_Main();
	pthread_mutex_lock(&gil->mutex);
	_Py_atomic_store_relaxed(&interp->ceval.gil_drop_request, 0);
	pthread_mutex_unlock(&gil->mutex);
	pthread_mutex_lock(&gil->switch_mutex);
	pthread_cond_signal(&gil->switch_cond);
	pthread_mutex_unlock(&gil->switch_mutex);
}

int agent__gil_take(PyGILState_STATE *st)
{
	if (!Py_IsInitialized() || _Py_IsFinalizing())
		return -ESHUTDOWN;
	bool made = gil_request_drop();
	pthread_cleanup_push(gil_request_withdraw, &made);
	*st = PyGILState_Ensure();
	pthread_cleanup_pop(0);
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
