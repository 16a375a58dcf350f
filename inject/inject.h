/* inject/: the debugger's side of the agent.
 *
 * A session is one connection to libsuture_agent.so inside a target: the
 * agent is injected if it is not there yet (remote dlopen through attach/,
 * on the thread attach_proc__pick_call_thread chooses), restarted if it was
 * detached (remote call of suture_agent_start), or simply connected to when
 * it already serves (a second injection finds and reuses it; a target
 * started with LD_PRELOAD=libsuture_agent.so needs no ptrace at all).
 *
 * Typical loop (suture-attach --watch):
 *
 *   struct inject_session *s;
 *   struct inject_opts o = { .agent_path = NULL };  // defaults
 *   char err[512];
 *   if ((rc = inject_session__open(pid, &o, &s, err, sizeof err))) { fprintf(stderr, "%s\n", err); ... }
 *   for (;;) {
 *           struct wire_crash ev;
 *           rc = inject_session__next_event(s, 1000, &ev);
 *           if (rc == -ETIMEDOUT) continue;
 *           if (rc) break;                          // -EPIPE: the target exited
 *           ... read the parked frame with inspect/ (ev.tid, ev.frame_addr, ev.code_addr) ...
 *           inject_session__send_patch(s, &patch, &res);   // optional
 *           inject_session__release(s, &ev);        // the exception goes on
 *   }
 *   inject_session__detach(s);                      // watcher removed, patches stay
 *   inject_session__close(s);
 *
 * Errors: 0 or -errno; each failure leaves a one-line message naming the
 * module, the pid and the cause in inject_session__error() (for open, in
 * its err buffer, as inspect_proc__open does). -ECONNREFUSED/-ENOENT: no agent serves the pid;
 * -EPERM: the channel directory or peer failed the ownership checks;
 * -EPROTO: the agent answered something malformed or unexpected;
 * -EPIPE: the agent closed the channel (target exited or agent detached);
 * -ENOEXEC: the target is not CPython 3.11 (no PyTraceBack_Here exported),
 * or dlopen failed inside it (the message carries dlerror());
 * -ETIMEDOUT: nothing within the bound. A failure of the ptrace machinery
 * is reported as attach/ reports it (message "inject: pid N: attach: ...").
 *
 * Nothing here is thread-safe: one thread drives a session.
 */
#ifndef SUTURE_INJECT_H
#define SUTURE_INJECT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "wire/msg.h" /* wire_crash, wire_patch, wire_patch_result, wire_pong */

struct inject_session;

struct inject_opts {
	/* Absolute path of libsuture_agent.so; NULL: $SUTURE_AGENT, else the
	 * libsuture_agent.so in the running executable's ../lib/suture/ (an
	 * installed tree) or ../lib/ (the build tree), else PREFIX/lib/suture/. */
	const char *agent_path;
	/* How long a crashing thread stays parked waiting for us (sent in
	 * HELLO); 0: the agent's default (2000 ms, SUTURE_AGENT_TIMEOUT_MS). */
	uint32_t park_timeout_ms;
	/* How long to wait for the agent's socket after injecting (or for an
	 * LD_PRELOAD agent to come up); 0: 5000 ms. */
	uint32_t connect_timeout_ms;
	/* Ask for HITS (guard firings, inject_session__take_hits): a debugger
	 * that records them (suture-run, suture-attach --watch). Firings wait
	 * in the agent until a debugger that asks for them connects. */
	bool hits;
	/* Follow the process tree (WIRE_HELLO_F_TREE): the agent reports each
	 * child whose own agent came up (inject_session__take_forked), and a
	 * child's crash waits for a debugger to connect to it. */
	bool tree;
	/* Never use ptrace: only connect to an agent that is (or will be,
	 * within connect_timeout_ms) there. */
	bool no_inject;
	/* An auditor (suture-audit --pid): HELLO_CONTROL instead of HELLO, so
	 * an agent that serves another debugger still answers LIST, ROLLBACK
	 * and PING (docs/formats/channel.md); no crashes are read. */
	bool control;
	/* More application code for the agent's crash decision (absolute
	 * paths, ':'-separated: suture-attach --app-path); NULL: none. */
	const char *app_paths;
	/* Hold crashes (suture-attach --watch --hold, WIRE_HELLO_F_HOLD): any
	 * exception ending a thread of application code is reported and its
	 * thread stays parked, without a bound, until released, restarted
	 * or we leave. */
	bool hold;
	/* Ask for HANDLED (handled crashes: the application's own catch-all
	 * caught a structural exception of its code; take_handled), and opt
	 * sites in to healing all the same (WIRE_HELLO_F_HANDLED):
	 * heal_handled, '\n'-separated "module.qualname:line", NULL: none. */
	bool handled;
	const char *heal_handled;
};

/* What open did, for messages and tests. */
enum inject_how {
	INJECT_HOW_CONNECTED = 0, /* an agent was already serving */
	INJECT_HOW_DLOPEN = 1,    /* remote dlopen of the agent */
	INJECT_HOW_RESTARTED = 2, /* mapped but detached: remote suture_agent_start() */
};

/* On failure err (errlen bytes, may be 0) gets the message, *out NULL. */
int inject_session__open(pid_t pid, const struct inject_opts *opts, struct inject_session **out,
			 char *err, size_t errlen);
/* Accepts NULL. Closing without detach leaves the agent watching, idle
 * (parked threads are released at once: the agent sees EOF). */
void inject_session__close(struct inject_session *s);
const char *inject_session__error(const struct inject_session *s);

pid_t inject_session__pid(const struct inject_session *s);
enum inject_how inject_session__how(const struct inject_session *s);
/* From the agent's WELCOME: enum wire_watch_mode and a sentence. */
uint32_t inject_session__watch_mode(const struct inject_session *s);
const char *inject_session__watch_detail(const struct inject_session *s);
uint32_t inject_session__py_hexversion(const struct inject_session *s);
/* How long open took, for --verbose and benchmarks: total (injection,
 * connection, handshake) and the time the target's threads were stopped
 * by ptrace (0 when no injection was needed), in nanoseconds. */
struct inject_timings {
	uint64_t open_ns;
	uint64_t stopped_ns;
};
void inject_session__timings(const struct inject_session *s, struct inject_timings *t);

/* The channel's file descriptor, for poll() in a caller's event loop
 * (readable: call next_event with timeout 0). */
int inject_session__fd(const struct inject_session *s);

/* Wait up to timeout_ms (-1: forever) for a crash report. 0 with *ev
 * filled; -ETIMEDOUT; -EPIPE when the agent is gone. The crashing thread
 * stays parked until inject_session__release (or the agent's bound).
 * With hold: INJECT_EVENT_HELD_CHANGED when a reload gave the function of
 * held event ev->event_id new code (ev->code_addr; the reload's name in
 * ev->message; nothing else of *ev is set). */
#define INJECT_EVENT_HELD_CHANGED 1
int inject_session__next_event(struct inject_session *s, int timeout_ms, struct wire_crash *ev);
/* A crash report the session queued while it awaited something else: 0
 * with *ev filled, -EAGAIN when none is queued. Reads nothing from the
 * agent, so a caller that reads the channel itself (suture-attach --log,
 * whose PROBE_HIT frames next_event would take for unexpected) loses no
 * frame. */
int inject_session__queued_event(struct inject_session *s, struct wire_crash *ev);
int inject_session__release(struct inject_session *s, const struct wire_crash *ev);

/* Send a patch and wait for the agent's answer. Returns 0 when the answer
 * came (res->status says whether the agent installed it: 0 or -errno, with
 * res->message); -errno when the channel failed. request_id is assigned
 * here when p->request_id is 0. Crash reports arriving meanwhile are kept
 * for next_event. */
int inject_session__send_patch(struct inject_session *s, const struct wire_patch *p,
			       struct wire_patch_result *res);

/* In-flight resume of the parked crash ev (docs/design.md §9), after
 * inject_session__send_patch installed the patch for its frame's code:
 * the failing call continues from the guard's fallback (fallback_unit,
 * base_depth: guard_patch's fields) with its locals and live stack items,
 * and its caller receives the result; the thread is released by it.
 * Returns 0 when the agent answered: res->status is WIRE_RESUMED,
 * WIRE_RESUME_RAISED (the continuation raised: that exception goes on) or
 * -errno (not resumed: generator/coroutine, entered from C, a caller not at
 * a CALL...; the exception goes on untouched, later calls are healed),
 * with res->message. Call release afterwards only if status < 0.
 *
 * The continuation may crash again (a second crash later in the same call,
 * or in a function it calls): the agent reports it from the same thread
 * before its answer, parked. With nested non-NULL, such a CRASH (same tid
 * as ev) ends the wait: INJECT_RESUME_NESTED with *nested filled; heal it
 * like any crash (patch, resume or release it), then call
 * inject_session__resume_wait(ev) for ev's own answer. With nested NULL
 * it is kept for next_event (and ev's answer waits for its park bound).
 * Crash reports of other threads are kept for next_event. */
#define INJECT_RESUME_NESTED 1
int inject_session__resume(struct inject_session *s, const struct wire_crash *ev,
			   uint32_t fallback_unit, uint32_t base_depth,
			   struct wire_resume_result *res, struct wire_crash *nested);
int inject_session__resume_wait(struct inject_session *s, const struct wire_crash *ev,
				struct wire_resume_result *res, struct wire_crash *nested);

/* Restart the held crash ev in its function's new code (RESTART,
 * docs/formats/channel.md): r says where and how locals map. Returns 0
 * when the agent answered, res->status as for a resume (WIRE_RESUMED: the
 * call went on in the new code and its caller got the result;
 * WIRE_RESUME_RAISED: the restarted code raised, that exception goes on;
 * < 0: not restarted, the crash is held again as a new event). A crash
 * inside the restarted call (held too) ends the wait as for a resume:
 * INJECT_RESUME_NESTED with *nested; ev's own answer comes when that call
 * is over (next_event skips it). */
int inject_session__restart(struct inject_session *s, const struct wire_crash *ev,
			    const struct wire_restart *r, struct wire_resume_result *res,
			    struct wire_crash *nested);

/* TREE_FILES: the agent's process and every later fork report a module
 * about to run from one of files ('\n'-separated real paths, len bytes;
 * empty: none) on the debugger's socket sock (docs/formats/channel.md,
 * "Process trees"). *kept: how many the agent kept. 0 or -errno. */
int inject_session__tree_files(struct inject_session *s, const char *sock, const char *files,
			       size_t len, uint32_t *kept);
/* Liveness and counters. */
int inject_session__ping(struct inject_session *s, struct wire_pong *out);

/* Guard firings the agent reported (HITS frames, which it sends on its own
 * whenever guards fired, coalesced, before BYE and at the target's exit):
 * every read of the session collects them, whatever it waits for; they
 * add up per (name, original code address) here until taken. take moves
 * them to *out (malloc'ed, *n entries, NULL when none; freed by the
 * caller). 0 or -ENOMEM (then they stay). */
/* The children the agent reported (FORKED) since the last call, oldest
 * first, at most cap of them; the rest stay. Returns how many. */
size_t inject_session__take_forked(struct inject_session *s, struct wire_forked *out, size_t cap);
int inject_session__take_hits(struct inject_session *s, struct wire_hit **out, size_t *n);
/* Handled crashes the agent reported (HANDLED frames, sent like HITS),
 * added up per (site, type) until taken, as take_hits. */
int inject_session__take_handled(struct inject_session *s, struct wire_handled_entry **out,
				 size_t *n);
/* Whether handled crashes wait to be taken. */
bool inject_session__has_handled(const struct inject_session *s);
/* The agent's totals of handled crashes since it started (HANDLED_LIST):
 * *out malloc'ed (NULL when none), *n entries. Served to an auditor too.
 * 0 or -errno. */
int inject_session__list_handled(struct inject_session *s, struct wire_handled_entry **out,
				 size_t *n);

/* The patches installed in the target (the agent's registry, LIST in
 * docs/formats/channel.md), including those suture-run's loader installed
 * at start-up: *out is a malloc'ed array of *n entries (NULL when none),
 * freed by the caller. 0, -EPIPE, or
 * -EPROTO (an agent older than LIST refuses it and closes the channel). */
int inject_session__list(struct inject_session *s, struct wire_live_patch **out, size_t *n);
/* Give functions their original code back: name = a patch's name, NULL =
 * all. 0 = answered (res->status: 0, -ENOENT no live patch of that name,
 * -EBUSY another patch sits on top of it; res->message says so); the
 * dry run changes nothing and counts what would be restored. */
int inject_session__rollback(struct inject_session *s, const char *name, bool dry_run,
			     struct wire_rollback_result *res);

/* Edit and continue (RELOAD, docs/formats/channel.md): the module loaded
 * from real path `path` is recompiled in the target from source[0..len)
 * and its changed functions switched. 0 when the agent answered: res
 * (status 0, or -ENOENT / -EINVAL with res->message) and its entries,
 * walked with wire_reload_iter, which point into *frame (malloc'ed, freed
 * by the caller, NULL on failure); -errno when the channel failed.
 * Served beside another debugger too (as an auditor's request). */
int inject_session__reload(struct inject_session *s, const char *path, const void *source,
			   size_t len, struct wire_reload_result *res, uint8_t **frame);

/* Remove the watcher and close the agent's channel (it answers BYE);
 * applied patches stay. The session can only be closed afterwards. */
int inject_session__detach(struct inject_session *s);

/* The channel socket path for pid, as this process can reach it (through
 * /proc/PID/root when pid's mount namespace is not ours). */
int inject_socket_path(pid_t pid, char *buf, size_t cap);
/* Whether pid's channel directory is refused (wire_channel__place): -EPERM
 * with why set to the one-line cause (XDG_RUNTIME_DIR owned by another
 * user, open to others...); 0 when usable or not made yet; -errno when pid
 * cannot be read. For messages when an agent did not come up. */
int inject_channel_check(pid_t pid, char *why, size_t cap);

#endif
