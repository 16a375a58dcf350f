/* agent: the state the agent thread, the channel server, parking and the
 * watcher's installer share, and their interfaces to each other.
 *
 *   main.c       the constructor, suture_agent_start(), the agent thread's
 *                life (wait for the interpreter, open, install, serve,
 *                close), fork and exit
 *   server.c     the channel: the listening socket, one debugger at a
 *                time, an auditor beside it, every frame type's handler
 *   park.c       crashing threads parked until the debugger answers
 *   installer.c  the GIL from the agent's own threads, and installing the
 *                watcher with it
 *
 * One instance per process (agent_g). Everything in it is guarded by
 * agent_g.lock unless its comment says otherwise. Python types appear only
 * through agent-py.h.
 */
#ifndef SUTURE_AGENT_PRIV_H
#define SUTURE_AGENT_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/agent-py.h"
#include "wire/channel.h"

struct agent_parked; /* park.c: one parked thread, on its own stack */

struct agent_state {
	pthread_mutex_t lock; /* everything below, and writes to client_fd */
	pthread_cond_t cond;  /* parked threads, install waiters, restarts */
	/* Opened and closed by the agent thread only (the descriptors are
	 * read without the lock by the thread that owns them). */
	int listen_fd, client_fd, lock_fd;
	bool ready;    /* a debugger completed HELLO (also read relaxed) */
	bool hits;     /* ... which asked for HITS (WIRE_HELLO_F_HITS) */
	bool hold;     /* ... which holds crashes (WIRE_HELLO_F_HOLD; also read relaxed) */
	bool running;  /* the agent thread exists (also read relaxed) */
	bool stopping; /* DETACH under way (also read relaxed) */
	uint64_t next_event;
	struct agent_parked *parked;
	char sock_path[WIRE_PATH_MAX];
	char lock_path[WIRE_PATH_MAX];
	/* The watcher's install result, for WELCOME. */
	uint32_t mode;
	char detail[160];
	bool installed;
	/* An install is under way (it may let the GIL go while it imports):
	 * whoever claimed it under the lock installs, the other waits on cond. */
	bool installing;
	/* SUTURE_AGENT_WAIT_DEBUGGER_MS: how long a crash waits for a debugger
	 * to connect when none is (0: not at all, the default). Set by the
	 * constructor before any thread exists. */
	unsigned wait_debugger_ms;
	/* Process trees (docs/design.md §15). tree: the debugger asked for
	 * FORKED (WIRE_HELLO_F_TREE). fork_rd/fork_wr: a pipe (CLOEXEC, the
	 * write end non-blocking) made with the channel; a forked child's
	 * agent writes its pid and its parent's there once its own channel
	 * listens, and the agent thread turns that into FORKED.
	 * parent_fork_wr: in a child, the write end it inherited (the
	 * nearest ancestor's agent that had a channel), until it is used.
	 * forked: this process is a fork whose agent thread is not started
	 * yet (the Python after-fork callback or the first exception the
	 * hook sees starts it). forked_queue: notices read while no tree
	 * debugger was connected, sent at its HELLO (the oldest dropped). */
	bool tree;
	int fork_rd, fork_wr, parent_fork_wr;
	bool forked;
	uint32_t forked_queue[32][2];
	unsigned nforked_queue;
};
extern struct agent_state agent_g;

/* server.c (the agent thread). open: the lock file and the listening
 * socket (0, -EALREADY when another copy of the agent serves this process,
 * -errno). serve: accept and serve debuggers until DETACH or a poll
 * failure. close: socket and lock gone (idempotent). */
int agent_server__open(void);
void agent_server__serve(void);
void agent_server__close(void);
/* HITS to the debugger if it asked for them; deadline (CLOCK_REALTIME, may
 * be NULL) bounds the waits for the locks (the exit handler's case). */
void agent_server__send_hits(const struct timespec *deadline);
/* The same for handled crashes (HANDLED, WIRE_HELLO_F_HANDLED). */
void agent_server__send_handled(const struct timespec *deadline);
/* With agent_g.lock held: write a whole frame to the debugger (-ENOTCONN
 * without one); close its connection, releasing parked threads. */
int agent_server__send_locked(struct wire_buf *b);
void agent_server__close_client_locked(const char *why);

/* park.c, with agent_g.lock held: give every pending parked thread verdict
 * v; give the one parked for event_id (if still pending) verdict v and, for
 * RESUME, *resume. Both wake the parked threads; answer returns whether
 * event_id was pending. */
void agent_park__release_all_locked(enum agent_verdict v);
bool agent_park__answer_locked(uint64_t event_id, enum agent_verdict v,
			       const struct wire_resume *resume);
/* park.c, with agent_g.lock held: give the held event_id, if pending,
 * RESTART with *r (taken: freed here when not). */
bool agent_park__restart_locked(uint64_t event_id, struct wire_restart *r);

/* installer.c. gil_take: PyGILState_Ensure refuses nothing and cannot time
 * out, so the interpreter's state is checked first: 0 with the GIL held,
 * -ESHUTDOWN when it is finalizing or not initialized. install: have the
 * watcher installed (a pending call, an installer thread), waiting at most
 * timeout_ms for it. record: the result WELCOME reports. */
int agent__gil_take(PyGILState_STATE *st);
void agent_installer__install(unsigned timeout_ms);
void agent_installer__record(uint32_t mode, const char *detail);

/* main.c: the interpreter is initialized (the boot hook's first module):
 * wakes the agent thread that waits for Py_Initialize's end. */
void agent__interpreter_up(void);
/* boot.c: the boot hook is set (suture-run started us): it will call
 * agent__interpreter_up, so the agent thread need not poll. */
bool agent_boot__active(void);
/* main.c: under suture-run the constructor leaves the agent thread to the
 * boot hook (agent__start_deferred at the first audit event after
 * Py_Initialize, or when the hook cannot be set): a second thread in the
 * process while the interpreter initializes makes every page-table change
 * of its start (mmap, munmap, mprotect) a cross-CPU TLB flush. Starts the
 * thread once, if the constructor deferred it; anything else is a no-op. */
void agent__start_deferred(void);
bool agent__start_is_deferred(void);
/* main.c: the monotonic or realtime clock plus ms. */
void agent__deadline(clockid_t clock, unsigned ms, struct timespec *ts);
/* main.c: in a forked child whose agent is not started yet, start it (the
 * caller holds the GIL: a safe point, after CPython's own after-fork
 * work). Cheap when there is nothing to do. */
void agent__fork_start(void);
/* main.c, on the agent thread with the GIL held: have CPython call
 * agent__fork_start in every child os.fork() makes (os.register_at_fork),
 * once per process tree. */
void agent__fork_register(void);
/* server.c, on a child's agent thread once its channel listens: tell the
 * parent's agent (the inherited pipe), then make this process's own. */
void agent_server__fork_announce(void);
/* boot.c, on the agent thread: TREE_FILES (docs/formats/channel.md,
 * "Process trees"): the list every later fork reports its module execs
 * from; TREE_FILES_RESULT encoded in b. -EINVAL malformed. Never waits for
 * the GIL. */
struct wire_buf;
int agent_boot__tree_files(struct wire_buf *b, const uint8_t *p, const uint8_t *end);
/* boot.c, in a forked child with the GIL (the after-fork callback): the
 * audit hook that reports listed module execs, if the inherited list has
 * files. */
void agent_boot__tree_child(void);
/* install.c, in a forked child: the registry lock is new and the firings
 * counted so far are the parent's to report. */
void agent_install__atfork_child(void);

/* offer.c: a string the agent thread hands to code that runs with the GIL
 * (HELLO's application paths, its --heal-handled sites). put() copies it
 * under the lock and moves the generation; the GIL side checks moved()
 * (one atomic load) on its hot path and take()s a copy when it did. The
 * buffer is the owner's: AGENT_OFFER_INIT(buf) for a static char array. */
struct agent_offer {
	pthread_mutex_t lock;
	unsigned gen, taken;
	char *buf;
	size_t size;
};
#define AGENT_OFFER_INIT(b)                                     \
	{                                                       \
		PTHREAD_MUTEX_INITIALIZER, 0, 0, (b), sizeof(b) \
	}
void agent_offer__put(struct agent_offer *o, const char *s);
static inline bool agent_offer__moved(const struct agent_offer *o)
{
	return __atomic_load_n(&o->gen, __ATOMIC_ACQUIRE) != o->taken;
}
/* Copies the offered string into copy (n bytes, NUL-terminated) and marks
 * this generation taken. With the GIL: one taker. */
void agent_offer__take(struct agent_offer *o, char *copy, size_t n);
/* In a forked child: the lock may have been held by the parent's agent
 * thread at the fork. */
void agent_offer__atfork_child(struct agent_offer *o);

#endif
