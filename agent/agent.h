/* agent: private interfaces of libsuture_agent.so (loaded into the target).
 *
 * Pieces (agent/README.md): main.c (constructor, the agent thread's life),
 * server.c (the channel server), park.c (crashing threads waiting for the
 * debugger), installer.c (the GIL from the agent's threads, installing the
 * watcher), watch.c (the PyTraceBack_Here replacement, the trace fallback),
 * crash.c (the crash decision), policy.c (library code, units of work,
 * framework registries, transports), resume.c (in-flight resume), install.c
 * (building and installing patched code objects), boot.c (stored patches
 * at start-up), helpers.c (the guards' runtime helpers). Codecs come from
 * other modules, compiled in (agent/module.mk): the channel's (wire/),
 * rewrite's allocation-free table and instruction codecs, attach's maps
 * line parser. Python types appear only in agent-py.h; the state the
 * agent thread's pieces share is in agent-priv.h.
 */
#ifndef SUTURE_AGENT_H
#define SUTURE_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include "wire/msg.h"

/* What a parked thread learns when it wakes. */
enum agent_verdict {
	AGENT_VERDICT_PENDING = 0,
	AGENT_VERDICT_RELEASE = 1,     /* the debugger answered: go on */
	AGENT_VERDICT_TIMEOUT = 2,     /* nobody answered in time: go on */
	AGENT_VERDICT_NO_DEBUGGER = 3, /* no debugger connected, or it left */
	AGENT_VERDICT_RESUME = 4,      /* resume in flight (parameters in *resume) */
	AGENT_VERDICT_RESTART = 5,     /* a held crash restarts in the new code (*restart) */
};

/* park.c: report a crash and wait (called without the GIL). Fills
 * crash->event_id. frame: the parked _PyInterpreterFrame, code: the code
 * object the crash is reported in (a held crash's function is watched for
 * reloads through them: told when it runs other code). While a debugger holds
 * crashes (WIRE_HELLO_F_HOLD) the wait has no bound. RESTART gives a
 * malloc'ed *restart the caller frees. */
enum agent_verdict agent_channel__park(struct wire_crash *crash, void *frame, void *code,
				       struct wire_resume *resume, struct wire_restart **restart);
/* Whether the debugger holds crashes (a cheap read). */
bool agent_channel__holds(void);
/* The parked thread's answer to RESUME (called without the GIL). */
void agent_channel__resume_result(const struct wire_resume_result *r);
/* Whether a debugger has completed the handshake (a cheap read). */
bool agent_channel__has_debugger(void);
/* Whether a crash should wait for a debugger to connect
 * (SUTURE_AGENT_WAIT_DEBUGGER_MS, for suture-run). */
bool agent_channel__may_wait(void);
/* Log one line to stderr when SUTURE_AGENT_VERBOSE is set. */
void agent__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* install.c: a guard healed something (its helper is about to return the
 * fallback); called by helpers.c with the GIL held, on that path only.
 * Counts one firing for the registry entry whose guard block the current
 * frame is in (by its code object and instruction offset). */
void agent_install__fired(void);
/* install.c, callable without the GIL: whether a guard fired since the
 * last agent_install__hits; and that call, which appends a HITS frame with
 * every entry's firings since the last one to b (1), or nothing (0: none),
 * marking them reported. deadline (CLOCK_REALTIME, may be NULL) bounds the
 * wait for the registry's lock: -ETIMEDOUT. */
struct timespec;
bool agent_install__hits_pending(void);
int agent_install__hits(struct wire_buf *b, const struct timespec *deadline);

/* policy.c, callable without the GIL (the server thread, on HELLO):
 * application paths a debugger adds (suture-attach --app-path, ':'-
 * separated, absolute); the watcher takes them at its next decision. */
void agent_policy__offer_app_paths(const char *paths);
/* In a forked child: the offer's lock may have been held at the fork. */
void agent_policy__atfork_child(void);

/* handled.c, callable without the GIL (the agent thread). offer: HELLO's
 * --heal-handled sites ('\n'-separated; the watcher takes them at its next
 * handled crash) and whether the debugger wants HANDLED frames. pending:
 * a count moved since the last HANDLED and one is wanted. encode: a
 * HANDLED frame (the counts since the last one, marking them reported;
 * nothing when none moved: 0) or a HANDLED_RESULT (the totals, always)
 * appended to b: 1, or -errno (-ETIMEDOUT: deadline, CLOCK_REALTIME, may
 * be NULL, passed waiting for the lock). */
void agent_handled__offer(const char *sites, bool report);
/* The agent thread's poll tick: when each moved count was last seen. */
void agent_handled__tick(void);
/* In a forked child (one thread): the parent's counts are not the child's. */
void agent_handled__atfork_child(void);
bool agent_handled__pending(void);
bool agent_handled__wanted(void);
int agent_handled__encode(struct wire_buf *b, enum wire_msg_type type,
			  const struct timespec *deadline);

/* Counters shown in PONG. */
struct agent_stats {
	uint64_t hook_calls;
	uint32_t crashes;
	uint32_t parked;
};
extern struct agent_stats agent_stats;

#endif
