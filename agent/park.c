/* agent: parking crashing threads (agent/README.md; the frames are
 * docs/formats/channel.md's CRASH, RELEASE, RESUME and RESUME_RESULT).
 *
 * A thread whose exception the watcher judged a crash comes here without
 * the GIL (watch.c let it go: the program's other threads run on, and the
 * debugger reads this thread's frames from outside while it waits). It
 * sends CRASH and waits on agent_g.cond until the debugger answers its
 * event (RELEASE, RESUME), the debugger goes (every pending thread is
 * released) or the park bound passes; nothing here runs Python. Its entry
 * lives on its own stack and is linked into agent_g.parked meanwhile.
 */
#include "agent/agent-priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

struct agent_parked {
	uint64_t id;
	enum agent_verdict verdict;
	struct wire_resume resume;
	struct wire_restart *restart; /* RESTART's parameters (malloc'ed) */
	/* A held crash: its frame, the code it runs, and the function code a
	 * HELD_CHANGED was last sent for (so one reload is told once). */
	bool held;
	_PyInterpreterFrame *frame;
	PyObject *code, *told;
	struct agent_parked *next;
};

bool agent_channel__holds(void)
{
	return __atomic_load_n(&agent_g.hold, __ATOMIC_RELAXED);
}

bool agent_park__restart_locked(uint64_t event_id, struct wire_restart *r)
{
	for (struct agent_parked *q = agent_g.parked; q; q = q->next)
		if (q->id == event_id && q->held && q->verdict == AGENT_VERDICT_PENDING) {
			q->verdict = AGENT_VERDICT_RESTART;
			q->restart = r;
			pthread_cond_broadcast(&agent_g.cond);
			return true;
		}
	free(r);
	return false;
}

void agent_park__reloaded(const char *reload)
{
	struct wire_buf b = { 0 };
	pthread_mutex_lock(&agent_g.lock);
	for (struct agent_parked *q = agent_g.parked; q; q = q->next) {
		/* The parked thread waits inside its frame's unwinding: the
		 * frame and its function are alive; we hold the GIL. */
		PyFunctionObject *fn = q->held ? agent_resume__function_of(q->frame) : NULL;
		if (!fn || q->verdict != AGENT_VERDICT_PENDING || fn->func_code == q->code ||
		    fn->func_code == q->told)
			continue;
		struct wire_held_changed m = { .event_id = q->id,
					       .code_addr = (uint64_t)(uintptr_t)fn->func_code };
		snprintf(m.reload, sizeof m.reload, "%s", reload);
		q->told = fn->func_code;
		if (wire_msg__encode_held_changed(&b, &m) == 0 && agent_server__send_locked(&b) &&
		    agent_g.client_fd >= 0)
			shutdown(agent_g.client_fd, SHUT_RDWR); /* the agent thread closes it */
		wire_buf__reset(&b);
		agent__log("held event %llu: its function was reloaded (%s)",
			   (unsigned long long)q->id, reload);
	}
	pthread_mutex_unlock(&agent_g.lock);
	wire_buf__free(&b);
}

bool agent_channel__has_debugger(void)
{
	return __atomic_load_n(&agent_g.ready, __ATOMIC_RELAXED);
}

bool agent_channel__may_wait(void)
{
	/* A fork whose agent is not started yet (no os.fork(): a C fork):
	 * here the GIL is held, a safe point to start it; the crash then
	 * waits for its channel and a debugger like an early one at boot. */
	agent__fork_start();
	/* Also before the channel is open: the agent thread may still wait
	 * for Py_Initialize when an early crash comes. park() stops waiting
	 * if the thread ends without a channel. */
	return agent_g.wait_debugger_ms != 0 &&
	       (agent_g.listen_fd >= 0 || (__atomic_load_n(&agent_g.running, __ATOMIC_RELAXED) &&
					   !__atomic_load_n(&agent_g.stopping, __ATOMIC_RELAXED)));
}

void agent_park__release_all_locked(enum agent_verdict v)
{
	for (struct agent_parked *p = agent_g.parked; p; p = p->next)
		if (p->verdict == AGENT_VERDICT_PENDING)
			p->verdict = v;
	pthread_cond_broadcast(&agent_g.cond);
}

bool agent_park__answer_locked(uint64_t event_id, enum agent_verdict v,
			       const struct wire_resume *resume)
{
	bool found = false;
	for (struct agent_parked *q = agent_g.parked; q; q = q->next)
		if (q->id == event_id && q->verdict == AGENT_VERDICT_PENDING) {
			q->verdict = v;
			if (resume)
				q->resume = *resume;
			found = true;
		}
	pthread_cond_broadcast(&agent_g.cond);
	return found;
}

enum agent_verdict agent_channel__park(struct wire_crash *crash, void *frame, void *code,
				       struct wire_resume *resume, struct wire_restart **restart)
{
	struct agent_parked me = { .verdict = AGENT_VERDICT_PENDING };
	struct wire_buf b = { 0 };
	struct timespec deadline;

	pthread_mutex_lock(&agent_g.lock);
	if ((!agent_g.ready || agent_g.client_fd < 0) && agent_g.wait_debugger_ms) {
		/* suture-run: the supervisor may not have connected yet. */
		struct timespec dl;
		agent__deadline(CLOCK_MONOTONIC, agent_g.wait_debugger_ms, &dl);
		while ((!agent_g.ready || agent_g.client_fd < 0) && agent_g.running &&
		       pthread_cond_timedwait(&agent_g.cond, &agent_g.lock, &dl) != ETIMEDOUT)
			;
	}
	if (!agent_g.ready || agent_g.client_fd < 0) {
		pthread_mutex_unlock(&agent_g.lock);
		return AGENT_VERDICT_NO_DEBUGGER;
	}
	me.id = crash->event_id = ++agent_g.next_event;
	if (wire_msg__encode_crash(&b, crash) || agent_server__send_locked(&b)) {
		if (agent_g.client_fd >= 0)
			shutdown(agent_g.client_fd, SHUT_RDWR); /* the agent thread closes it */
		pthread_mutex_unlock(&agent_g.lock);
		wire_buf__free(&b);
		return AGENT_VERDICT_NO_DEBUGGER;
	}
	wire_buf__free(&b);
	/* Held: until the debugger answers or leaves, however long the user
	 * takes to fix the source. */
	me.held = agent_g.hold && frame && code;
	me.frame = frame;
	me.code = code;
	me.next = agent_g.parked;
	agent_g.parked = &me;
	agent_stats.crashes++;
	agent_stats.parked++;

	agent__deadline(CLOCK_MONOTONIC, agent_watch__timeout(), &deadline);
	while (me.verdict == AGENT_VERDICT_PENDING) {
		if (me.held) {
			pthread_cond_wait(&agent_g.cond, &agent_g.lock);
			continue;
		}
		if (pthread_cond_timedwait(&agent_g.cond, &agent_g.lock, &deadline) == ETIMEDOUT &&
		    me.verdict == AGENT_VERDICT_PENDING)
			me.verdict = AGENT_VERDICT_TIMEOUT;
	}

	for (struct agent_parked **pp = &agent_g.parked; *pp; pp = &(*pp)->next)
		if (*pp == &me) {
			*pp = me.next;
			break;
		}
	agent_stats.parked--;
	pthread_mutex_unlock(&agent_g.lock);
	if (me.verdict == AGENT_VERDICT_RESUME)
		*resume = me.resume;
	*restart = me.restart;
	return me.verdict;
}

void agent_channel__resume_result(const struct wire_resume_result *r)
{
	struct wire_buf b = { 0 };
	pthread_mutex_lock(&agent_g.lock);
	/* Only the agent thread closes the descriptor (it polls it); a failed
	 * write here shuts it down, which the agent thread sees as EOF. */
	if (wire_msg__encode_resume_result(&b, r) == 0 && agent_g.ready &&
	    agent_server__send_locked(&b) && agent_g.client_fd >= 0)
		shutdown(agent_g.client_fd, SHUT_RDWR);
	pthread_mutex_unlock(&agent_g.lock);
	wire_buf__free(&b);
}
