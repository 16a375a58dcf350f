/* agent: libsuture_agent.so's entry, its thread and the channel server.
 *
 * The constructor only starts a thread (docs/design.md §4: never run
 * Python on the thread that loaded us, it may be a hijacked one). That
 * thread waits until the interpreter is initialized (LD_PRELOAD loads us
 * before Py_Initialize), opens the channel, has the watcher installed with
 * the GIL held (whichever comes first: a pending call the main thread runs
 * at its next eval-breaker check, an installer thread's PyGILState_Ensure,
 * or suture-run's boot hook at the first module), then serves one debugger
 * at a time on a Unix socket in a directory only this user can enter
 * (docs/formats/channel.md).
 *
 * A single instance per process: a flock on <dir>/agent-<pid>.lock, taken
 * before anything else, makes a second copy (LD_PRELOAD + dlopen of another
 * path) stay idle. Detaching removes the watcher, closes the channel and
 * ends the thread; the code stays mapped (patched code may call our
 * helpers) and suture_agent_start() starts it again.
 */
#include "agent/agent-py.h"
#include "wire/channel.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct agent_stats agent_stats;

struct parked {
	uint64_t id;
	enum agent_verdict verdict;
	struct wire_resume resume;
	struct parked *next;
};

static struct {
	pthread_mutex_t lock;     /* everything below, and writes to client_fd */
	pthread_cond_t cond;      /* parked threads wait here */
	int listen_fd, client_fd, lock_fd;
	bool ready;               /* a debugger completed HELLO */
	bool hits;                /* ... which asked for HITS (WIRE_HELLO_F_HITS) */
	bool running;             /* the agent thread exists */
	bool stopping;
	uint64_t next_event;
	struct parked *parked;
	char sock_path[WIRE_PATH_MAX];
	char lock_path[WIRE_PATH_MAX];
	/* The watcher's install result, for WELCOME. */
	uint32_t mode;
	char detail[160];
	bool installed;
	/* An install is under way (it may let the GIL go while it imports):
	 * whoever claimed it under g.lock installs, the other waits on g.cond. */
	bool installing;
} g = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.listen_fd = -1, .client_fd = -1, .lock_fd = -1,
};

/* The agent thread (joinable), until the next start joins it. */
static pthread_t g_thread;
static bool g_thread_live;

static int g_verbose = -1;
/* SUTURE_AGENT_WAIT_DEBUGGER_MS: how long a crash waits for a debugger to
 * connect when none is (0: not at all, the default). */
static unsigned g_wait_debugger_ms;
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
	fprintf(stderr, "suture-agent[%d] %.3f: %s\n", (int)getpid(), ts.tv_sec * 1e3 + ts.tv_nsec / 1e6,
		line);
}

/* ------------------------------------------------------------------ */
/* Parking (called by watch.c without the GIL)                         */

bool agent_channel__has_debugger(void)
{
	return __atomic_load_n(&g.ready, __ATOMIC_RELAXED);
}

bool agent_channel__may_wait(void)
{
	/* Also before the channel is open: the agent thread may still wait
	 * for Py_Initialize when an early crash comes. park() stops waiting
	 * if the thread ends without a channel. */
	return g_wait_debugger_ms != 0 &&
	       (g.listen_fd >= 0 || (__atomic_load_n(&g.running, __ATOMIC_RELAXED) &&
				     !__atomic_load_n(&g.stopping, __ATOMIC_RELAXED)));
}

static int send_locked(struct wire_buf *b)
{
	if (g.client_fd < 0)
		return -ENOTCONN;
	return wire_channel__write_all(g.client_fd, b->data, b->len);
}

static void close_client_locked(const char *why);

static void release_all_locked(enum agent_verdict v)
{
	for (struct parked *p = g.parked; p; p = p->next)
		if (p->verdict == AGENT_VERDICT_PENDING)
			p->verdict = v;
	pthread_cond_broadcast(&g.cond);
}

enum agent_verdict agent_channel__park(struct wire_crash *crash, struct wire_resume *resume)
{
	struct parked me = { .verdict = AGENT_VERDICT_PENDING };
	struct wire_buf b = { 0 };
	struct timespec deadline;

	pthread_mutex_lock(&g.lock);
	if ((!g.ready || g.client_fd < 0) && g_wait_debugger_ms) {
		/* suture-run: the supervisor may not have connected yet. */
		struct timespec dl;
		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_sec += g_wait_debugger_ms / 1000;
		dl.tv_nsec += (long)(g_wait_debugger_ms % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		while ((!g.ready || g.client_fd < 0) && g.running &&
		       pthread_cond_timedwait(&g.cond, &g.lock, &dl) != ETIMEDOUT)
			;
	}
	if (!g.ready || g.client_fd < 0) {
		pthread_mutex_unlock(&g.lock);
		return AGENT_VERDICT_NO_DEBUGGER;
	}
	me.id = crash->event_id = ++g.next_event;
	if (wire_msg__encode_crash(&b, crash) || send_locked(&b)) {
		if (g.client_fd >= 0)
			shutdown(g.client_fd, SHUT_RDWR);   /* the agent thread closes it */
		pthread_mutex_unlock(&g.lock);
		wire_buf__free(&b);
		return AGENT_VERDICT_NO_DEBUGGER;
	}
	wire_buf__free(&b);
	me.next = g.parked;
	g.parked = &me;
	agent_stats.crashes++;
	agent_stats.parked++;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	uint32_t ms = agent_watch__timeout();
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	while (me.verdict == AGENT_VERDICT_PENDING)
		if (pthread_cond_timedwait(&g.cond, &g.lock, &deadline) == ETIMEDOUT &&
		    me.verdict == AGENT_VERDICT_PENDING)
			me.verdict = AGENT_VERDICT_TIMEOUT;

	for (struct parked **pp = &g.parked; *pp; pp = &(*pp)->next)
		if (*pp == &me) {
			*pp = me.next;
			break;
		}
	agent_stats.parked--;
	pthread_mutex_unlock(&g.lock);
	if (me.verdict == AGENT_VERDICT_RESUME)
		*resume = me.resume;
	return me.verdict;
}

void agent_channel__resume_result(const struct wire_resume_result *r)
{
	struct wire_buf b = { 0 };
	pthread_mutex_lock(&g.lock);
	/* Only the agent thread closes the descriptor (it polls it); a failed
	 * write here shuts it down, which the agent thread sees as EOF. */
	if (wire_msg__encode_resume_result(&b, r) == 0 && g.ready && send_locked(&b) &&
	    g.client_fd >= 0)
		shutdown(g.client_fd, SHUT_RDWR);
	pthread_mutex_unlock(&g.lock);
	wire_buf__free(&b);
}

/* ------------------------------------------------------------------ */
/* The GIL                                                              */

/* PyGILState_Ensure refuses nothing and cannot time out; check the
 * interpreter's state first. Returns 0 with the GIL held. */
static int gil_take(PyGILState_STATE *st)
{
	if (!Py_IsInitialized() || _Py_IsFinalizing())
		return -ESHUTDOWN;
	*st = PyGILState_Ensure();
	return 0;
}

struct installer {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done, abandoned;
};

static void record_install(uint32_t mode, const char *detail)
{
	pthread_mutex_lock(&g.lock);
	g.mode = mode;
	snprintf(g.detail, sizeof g.detail, "%s", detail);
	g.installed = mode != WIRE_WATCH_NONE;
	g.installing = false;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
}

/* Claim the install (true), or say it is done or another claim holds it.
 * wait: until that other install has finished (call without the GIL:
 * the other needs it). */
static bool install_claim(bool wait)
{
	pthread_mutex_lock(&g.lock);
	bool mine = g.running && !g.stopping && !g.installed && !g.installing;
	if (mine)
		g.installing = true;
	while (!mine && wait && g.installing)
		pthread_cond_wait(&g.cond, &g.lock);
	pthread_mutex_unlock(&g.lock);
	return mine;
}

/* Installing the watcher takes the GIL; a thread that never lets it go
 * (a long C call) must not keep the channel from coming up, so the attempt
 * runs on its own thread and the agent thread waits a bounded time. */
/* With the GIL held, the install claimed. */
static void install_claimed(void)
{
	uint32_t mode = WIRE_WATCH_NONE;
	char detail[160] = "";
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	agent_watch__install(&mode, detail, sizeof detail);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	record_install(mode, detail);
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
	pthread_mutex_lock(&g.lock);
	while (g.installing)
		pthread_cond_wait(&g.cond, &g.lock);
	pthread_mutex_unlock(&g.lock);
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
	pthread_mutex_lock(&g.lock);
	bool done = g.installed;
	pthread_mutex_unlock(&g.lock);
	if (done) {
		;
	} else if (gil_take(&st) == 0) {
		bool mine = install_claim(false);
		if (mine)
			install_claimed();
		PyGILState_Release(st);
		if (!mine)
			install_wait();   /* the main thread's (pending call, boot hook) */
	} else {
		pthread_mutex_lock(&g.lock);
		if (!g.installed && !g.installing)
			snprintf(g.detail, sizeof g.detail, "interpreter finalizing or not initialized");
		pthread_mutex_unlock(&g.lock);
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

static void install_watcher(unsigned timeout_ms)
{
	struct installer *in = calloc(1, sizeof *in);
	pthread_t t;
	struct timespec dl;
	if (!in) {
		record_install(WIRE_WATCH_NONE, "out of memory");
		return;
	}
	pthread_mutex_init(&in->lock, NULL);
	pthread_cond_init(&in->cond, NULL);
	Py_AddPendingCall(install_pending, NULL);   /* a full queue: the installer alone */
	if (pthread_create(&t, NULL, installer_main, in)) {
		free(in);
		record_install(WIRE_WATCH_NONE, "cannot start the installer thread");
		return;
	}
	pthread_detach(t);
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
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
		pthread_mutex_lock(&g.lock);
		if (!g.installed)
			snprintf(g.detail, sizeof g.detail, "the GIL was not released in time; "
				 "the watcher will be installed when it is");
		pthread_mutex_unlock(&g.lock);
	}
}

/* ------------------------------------------------------------------ */
/* The channel                                                          */

/* WELCOME: who we are and how we watch (docs/formats/channel.md). */
static void encode_welcome(struct wire_buf *b)
{
	struct wire_welcome w;
	memset(&w, 0, sizeof w);
	w.version = WIRE_PROTO_VERSION;
	w.pid = (uint32_t)getpid();
	w.py_hexversion = (uint32_t)Py_Version;
	pthread_mutex_lock(&g.lock);
	w.watch_mode = g.mode;
	snprintf(w.detail, sizeof w.detail, "%s", g.detail);
	pthread_mutex_unlock(&g.lock);
	wire_msg__encode_welcome(b, &w);
}

/* ROLLBACK for the debugger or an auditor (who: for the log). */
static void rollback_run(const struct wire_rollback *m, struct wire_rollback_result *res,
			 const char *who)
{
	PyGILState_STATE st;
	memset(res, 0, sizeof *res);
	res->request_id = m->request_id;
	if (gil_take(&st)) {
		res->status = -ESHUTDOWN;
		snprintf(res->message, sizeof res->message, "agent: interpreter finalizing");
	} else {
		res->status = agent_install__rollback(m, res);
		PyGILState_Release(st);
	}
	agent__log("rollback%s %s%s: %d: %s", who, (m->flags & WIRE_ROLLBACK_F_ALL) ? "(all)" : m->name,
		   (m->flags & WIRE_ROLLBACK_F_DRY_RUN) ? " (dry run)" : "", res->status, res->message);
}

/* PONG: the counters, read under the lock. */
static void pong_of(const struct wire_ping *ping, struct wire_pong *pong)
{
	pthread_mutex_lock(&g.lock);
	pong->cookie = ping->cookie;
	pong->crashes = agent_stats.crashes;
	pong->parked = agent_stats.parked;
	pong->hook_calls = agent_stats.hook_calls;
	pthread_mutex_unlock(&g.lock);
}


static void close_client_locked(const char *why)
{
	if (g.client_fd >= 0) {
		agent__log("debugger gone: %s", why);
		close(g.client_fd);
	}
	g.client_fd = -1;
	__atomic_store_n(&g.ready, false, __ATOMIC_RELAXED);
	/* Parked threads go on with their exception untouched. */
	release_all_locked(AGENT_VERDICT_NO_DEBUGGER);
}

/* The first part of a reply, sent while the caller still holds the GIL:
 * a program that ends as soon as it runs again (its last loop switched to
 * the patched code, say) would otherwise close the channel before the
 * answer is out. Never blocks: what does not fit now goes out with
 * reply_rest() once the GIL is released. Returns the bytes sent. */
static size_t reply_early(struct wire_buf *b)
{
	size_t sent = 0;
	pthread_mutex_lock(&g.lock);
	while (b->err == 0 && g.client_fd >= 0 && sent < b->len) {
		ssize_t n = send(g.client_fd, b->data + sent, b->len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;   /* full (or failed: reply_rest says so) */
		sent += (size_t)n;
	}
	/* Held until reply_rest: no other frame may come between the parts. */
	return sent;
}

static void reply_rest(struct wire_buf *b, size_t sent)
{
	if (b->err == 0 && sent < b->len &&
	    (g.client_fd < 0 ||
	     wire_channel__write_all(g.client_fd, b->data + sent, b->len - sent) != 0))
		close_client_locked("write failed");
	pthread_mutex_unlock(&g.lock);
	wire_buf__reset(b);
}

static void reply(struct wire_buf *b)
{
	pthread_mutex_lock(&g.lock);
	if (b->err == 0 && send_locked(b) != 0)
		close_client_locked("write failed");
	pthread_mutex_unlock(&g.lock);
	wire_buf__reset(b);
}

/* HITS (docs/formats/channel.md): the firings counted since the last one,
 * to the debugger if it asked for them (WIRE_HELLO_F_HITS: suture-run,
 * suture-attach --watch); else they wait for one that does.
 * No GIL needed: the counts are plain integers. deadline (CLOCK_REALTIME,
 * may be NULL) bounds the waits for the locks (the exit handler's case). */
static void send_hits(const struct timespec *deadline)
{
	struct wire_buf hb = { 0 };
	if (deadline ? pthread_mutex_timedlock(&g.lock, deadline) : pthread_mutex_lock(&g.lock))
		return;
	if (g.ready && g.hits && g.client_fd >= 0 && agent_install__hits(&hb, deadline) > 0 &&
	    send_locked(&hb) && g.client_fd >= 0)
		shutdown(g.client_fd, SHUT_RDWR);   /* the agent thread sees EOF and closes */
	pthread_mutex_unlock(&g.lock);
	wire_buf__free(&hb);
}

static void refuse(struct wire_buf *b, const char *why)
{
	wire_msg__encode_error(b, why);
	reply(b);
	pthread_mutex_lock(&g.lock);
	close_client_locked(why);
	pthread_mutex_unlock(&g.lock);
}

/* An auditor (suture-audit --pid) while a debugger is connected: its
 * first frame is HELLO_CONTROL, then only LIST, ROLLBACK and PING, served
 * here on the agent thread (the debugger's frames wait meanwhile, so the
 * session is bounded: 10 s, 32 frames, 64 KiB a frame). Crashes are never
 * reported to it. Anything else gets ERROR and the connection is closed. */
static void serve_control(int fd)
{
	struct wire_buf b = { 0 };
	struct timespec t0, now;
	bool hello = false;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int frames = 0; frames < 32; frames++) {
		uint8_t hdr[WIRE_HDR_SIZE], *payload = NULL;
		struct wire_hdr h;
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		clock_gettime(CLOCK_MONOTONIC, &now);
		long left = 10000 - ((now.tv_sec - t0.tv_sec) * 1000 +
				     (now.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0 || poll(&pf, 1, (int)left) <= 0 ||
		    wire_channel__read_all(fd, hdr, sizeof hdr) ||
		    wire_msg__decode_hdr(hdr, hdr + sizeof hdr, &h) || h.len > (64u << 10) ||
		    (h.len && !(payload = malloc(h.len))) ||
		    (h.len && wire_channel__read_all(fd, payload, h.len))) {
			free(payload);
			break;
		}
		const uint8_t *p = payload, *end = payload + h.len;
		const char *refuse_why = NULL;
		PyGILState_STATE st;
		if (!hello) {
			struct wire_hello hm;
			if (h.type != WIRE_MSG_HELLO_CONTROL || wire_msg__decode_hello(p, end, &hm) ||
			    hm.version != WIRE_PROTO_VERSION) {
				refuse_why = "another debugger is connected";
			} else {
				encode_welcome(&b);
				hello = true;
			}
		} else if (h.type == WIRE_MSG_LIST) {
			struct wire_list m;
			if (wire_msg__decode_list(p, end, &m) || gil_take(&st)) {
				refuse_why = "agent: malformed LIST, or the interpreter is finalizing";
			} else {
				int rc = agent_install__list(&b, m.request_id);
				PyGILState_Release(st);
				if (rc) {
					wire_buf__reset(&b);
					refuse_why = "agent: cannot list the installed patches";
				}
			}
		} else if (h.type == WIRE_MSG_ROLLBACK) {
			struct wire_rollback m;
			struct wire_rollback_result res;
			if (wire_msg__decode_rollback(p, end, &m)) {
				refuse_why = "agent: malformed ROLLBACK";
			} else {
				rollback_run(&m, &res, " (auditor)");
				wire_msg__encode_rollback_result(&b, &res);
			}
		} else if (h.type == WIRE_MSG_PING) {
			struct wire_ping ping;
			struct wire_pong pong;
			if (wire_msg__decode_ping(p, end, &ping)) {
				refuse_why = "agent: malformed PING";
			} else {
				pong_of(&ping, &pong);
				wire_msg__encode_pong(&b, &pong);
			}
		} else {
			refuse_why = "agent: another debugger is connected: only LIST, ROLLBACK and "
				     "PING are served to an auditor";
		}
		free(payload);
		if (refuse_why) {
			wire_buf__reset(&b);
			wire_msg__encode_error(&b, refuse_why);
		}
		if (b.err || wire_channel__write_all(fd, b.data, b.len) || refuse_why)
			break;
		wire_buf__reset(&b);
	}
	wire_buf__free(&b);
}

/* Whether the first frame waiting on fd is HELLO_CONTROL (peeked, within
 * a second: debuggers send their HELLO at once). */
static bool is_auditor(int fd)
{
	uint8_t hdr[WIRE_HDR_SIZE];
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	if (poll(&pf, 1, 1000) <= 0)
		return false;
	ssize_t n = recv(fd, hdr, sizeof hdr, MSG_PEEK | MSG_DONTWAIT);
	return n == (ssize_t)sizeof hdr && (hdr[4] | hdr[5] << 8) == WIRE_MSG_HELLO_CONTROL;
}

static void accept_client(void)
{
	int fd = accept4(g.listen_fd, NULL, NULL, SOCK_CLOEXEC);
	struct ucred cred;
	socklen_t len = sizeof cred;
	struct wire_buf b = { 0 };
	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) ||
	    (cred.uid != getuid() && cred.uid != 0)) {
		agent__log("refused a peer of uid %u", (unsigned)cred.uid);
		close(fd);
		return;
	}
	pthread_mutex_lock(&g.lock);
	bool busy = g.client_fd >= 0;
	if (busy) {
		/* A debugger that left while we were busy elsewhere. */
		char c;
		ssize_t r = recv(g.client_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
			close_client_locked("EOF");
			busy = false;
		}
	}
	pthread_mutex_unlock(&g.lock);
	if (busy) {
		struct timeval tv = { 2, 0 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		if (is_auditor(fd)) {
			agent__log("auditor pid %d connected", (int)cred.pid);
			serve_control(fd);
			close(fd);
			return;
		}
		wire_msg__encode_error(&b, "another debugger is connected");
		if (b.err == 0)
			wire_channel__write_all(fd, b.data, b.len);
		wire_buf__free(&b);
		close(fd);
		return;
	}
	/* A debugger that stops mid-frame, or stops reading, must not hang
	 * us (writes happen under g.lock). */
	struct timeval tv = { 5, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	pthread_mutex_lock(&g.lock);
	g.client_fd = fd;
	pthread_mutex_unlock(&g.lock);
	agent__log("debugger pid %d connected", (int)cred.pid);
}

static void on_hello(struct wire_buf *b, const uint8_t *p, const uint8_t *end)
{
	struct wire_hello h;
	if (wire_msg__decode_hello(p, end, &h) || h.version != WIRE_PROTO_VERSION) {
		refuse(b, "agent: bad HELLO or protocol version");
		return;
	}
	if (h.timeout_ms)
		agent_watch__set_timeout(h.timeout_ms);
	encode_welcome(b);
	reply(b);
	pthread_mutex_lock(&g.lock);
	g.hits = (h.flags & WIRE_HELLO_F_HITS) != 0;
	__atomic_store_n(&g.ready, true, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&g.cond);   /* crashes waiting for a debugger */
	pthread_mutex_unlock(&g.lock);
}

static void on_release(struct wire_buf *b, const uint8_t *p, const uint8_t *end)
{
	struct wire_release r;
	if (wire_msg__decode_release(p, end, &r)) {
		refuse(b, "agent: malformed RELEASE");
		return;
	}
	pthread_mutex_lock(&g.lock);
	for (struct parked *q = g.parked; q; q = q->next)
		if (q->id == r.event_id && q->verdict == AGENT_VERDICT_PENDING)
			q->verdict = AGENT_VERDICT_RELEASE;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
}

/* RESUME: the parked thread does the work (it owns the frames) and
 * answers RESUME_RESULT itself; an unknown or released event is answered
 * here. */
static void on_resume(struct wire_buf *b, const uint8_t *p, const uint8_t *end)
{
	struct wire_resume r;
	bool found = false;
	if (wire_msg__decode_resume(p, end, &r)) {
		refuse(b, "agent: malformed RESUME");
		return;
	}
	pthread_mutex_lock(&g.lock);
	for (struct parked *q = g.parked; q; q = q->next)
		if (q->id == r.event_id && q->verdict == AGENT_VERDICT_PENDING) {
			q->verdict = AGENT_VERDICT_RESUME;
			q->resume = r;
			found = true;
		}
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
	if (!found) {
		struct wire_resume_result res = { r.event_id, -ENOENT, "" };
		snprintf(res.message, sizeof res.message,
			 "agent: event %llu is not parked (released or timed out)",
			 (unsigned long long)r.event_id);
		wire_msg__encode_resume_result(b, &res);
		reply(b);
	}
}

static void on_patch(struct wire_buf *b, const uint8_t *p, const uint8_t *end, bool named)
{
	struct wire_patch m;
	struct wire_patch_result res;
	PyGILState_STATE st;
	if (named ? wire_msg__decode_patch_named(p, end, &m) : wire_msg__decode_patch(p, end, &m)) {
		refuse(b, named ? "agent: malformed PATCH_NAMED" : "agent: malformed PATCH");
		return;
	}
	memset(&res, 0, sizeof res);
	res.request_id = m.request_id;
	if (gil_take(&st)) {
		res.status = -ESHUTDOWN;
		snprintf(res.message, sizeof res.message, "agent: interpreter finalizing");
		wire_msg__encode_patch_result(b, &res);
		reply(b);
	} else {
		res.status = agent_install__patch(&m, &res);
		/* Answered before the program runs on (reply_early). */
		wire_msg__encode_patch_result(b, &res);
		size_t sent = reply_early(b);
		PyGILState_Release(st);
		reply_rest(b, sent);
	}
	agent__log("patch %llu for code %#llx: %d, %u functions, %u parents: %s",
		   (unsigned long long)m.request_id, (unsigned long long)m.code_addr,
		   res.status, res.nfunctions, res.nparents, res.message);
}

/* LIST: the registry, encoded with the GIL held (it reads code objects). */
static void on_list(struct wire_buf *b, const uint8_t *p, const uint8_t *end)
{
	struct wire_list m;
	PyGILState_STATE st;
	int rc;
	if (wire_msg__decode_list(p, end, &m)) {
		refuse(b, "agent: malformed LIST");
		return;
	}
	if (gil_take(&st)) {
		refuse(b, "agent: interpreter finalizing");
		return;
	}
	rc = agent_install__list(b, m.request_id);
	PyGILState_Release(st);
	if (rc) {
		wire_buf__reset(b);
		refuse(b, "agent: cannot list the installed patches (out of memory)");
		return;
	}
	reply(b);
}

static void on_rollback(struct wire_buf *b, const uint8_t *p, const uint8_t *end)
{
	struct wire_rollback m;
	struct wire_rollback_result res;
	if (wire_msg__decode_rollback(p, end, &m)) {
		refuse(b, "agent: malformed ROLLBACK");
		return;
	}
	rollback_run(&m, &res, "");
	wire_msg__encode_rollback_result(b, &res);
	reply(b);
}

static void on_ping(struct wire_buf *b, const uint8_t *p, const uint8_t *end)
{
	struct wire_ping ping;
	struct wire_pong pong;
	if (wire_msg__decode_ping(p, end, &ping)) {
		refuse(b, "agent: malformed PING");
		return;
	}
	pong_of(&ping, &pong);
	wire_msg__encode_pong(b, &pong);
	reply(b);
}

static void stop_channel(void)
{
	pthread_mutex_lock(&g.lock);
	close_client_locked("detached");
	if (g.listen_fd >= 0) {
		close(g.listen_fd);
		unlink(g.sock_path);
	}
	g.listen_fd = -1;
	if (g.lock_fd >= 0) {
		unlink(g.lock_path);
		close(g.lock_fd);   /* drops the flock */
	}
	g.lock_fd = -1;
	pthread_mutex_unlock(&g.lock);
}

/* DETACH: unwatch (with the GIL), take the socket away, answer BYE. The
 * socket goes before BYE, so a debugger that reconnects right after BYE
 * finds no stale listener (it restarts the agent instead). */
static void on_detach(struct wire_buf *b)
{
	PyGILState_STATE st;
	g.stopping = true;
	pthread_mutex_lock(&g.lock);
	__atomic_store_n(&g.ready, false, __ATOMIC_RELAXED);
	release_all_locked(AGENT_VERDICT_RELEASE);
	if (g.listen_fd >= 0) {
		close(g.listen_fd);
		unlink(g.sock_path);
	}
	g.listen_fd = -1;
	pthread_mutex_unlock(&g.lock);
	if (gil_take(&st) == 0) {
		agent_watch__remove();
		PyGILState_Release(st);
	}
	record_install(WIRE_WATCH_NONE, "detached");
	/* The debugger records firings up to BYE. */
	if (agent_install__hits_pending()) {
		pthread_mutex_lock(&g.lock);
		if (g.client_fd >= 0 && g.hits && agent_install__hits(b, NULL) > 0 &&
		    send_locked(b))
			close_client_locked("write failed");
		pthread_mutex_unlock(&g.lock);
		wire_buf__reset(b);
	}
	wire_msg__encode_empty(b, WIRE_MSG_BYE);
	reply(b);
}

/* One frame from the debugger; false when the agent must stop. */
static bool serve_one(struct wire_buf *b)
{
	struct wire_hdr h;
	uint8_t hdr[WIRE_HDR_SIZE];
	uint8_t *payload = NULL;
	int fd = g.client_fd;
	bool go_on = true;

	int rc = wire_channel__read_all(fd, hdr, sizeof hdr);
	if (rc) {
		pthread_mutex_lock(&g.lock);
		close_client_locked(rc == -EPIPE ? "EOF" : "read failed");
		pthread_mutex_unlock(&g.lock);
		return true;
	}
	if (wire_msg__decode_hdr(hdr, hdr + sizeof hdr, &h)) {
		refuse(b, "agent: malformed frame header");
		return true;
	}
	if (h.len && !(payload = malloc(h.len))) {
		refuse(b, "agent: out of memory");
		return true;
	}
	if (h.len && wire_channel__read_all(fd, payload, h.len)) {
		pthread_mutex_lock(&g.lock);
		close_client_locked("truncated frame");
		pthread_mutex_unlock(&g.lock);
		free(payload);
		return true;
	}
	const uint8_t *p = payload, *end = payload + h.len;
	/* HELLO_CONTROL when no debugger is connected: an auditor is served as
	 * one (it reads no crashes and leaves soon; parked threads then go on). */
	if (h.type != WIRE_MSG_HELLO && h.type != WIRE_MSG_HELLO_CONTROL && !g.ready) {
		refuse(b, "agent: HELLO expected first");
	} else {
		switch (h.type) {
		case WIRE_MSG_HELLO:
		case WIRE_MSG_HELLO_CONTROL: on_hello(b, p, end); break;
		case WIRE_MSG_RELEASE: on_release(b, p, end); break;
		case WIRE_MSG_PATCH: on_patch(b, p, end, false); break;
		case WIRE_MSG_PATCH_NAMED: on_patch(b, p, end, true); break;
		case WIRE_MSG_LIST: on_list(b, p, end); break;
		case WIRE_MSG_ROLLBACK: on_rollback(b, p, end); break;
		case WIRE_MSG_RESUME: on_resume(b, p, end); break;
		case WIRE_MSG_PING: on_ping(b, p, end); break;
		case WIRE_MSG_DETACH:
			if (wire_msg__decode_empty(p, end)) {
				refuse(b, "agent: malformed DETACH");
				break;
			}
			on_detach(b);
			go_on = false;
			break;
		default:
			refuse(b, "agent: unexpected frame type");
		}
	}
	free(payload);
	return go_on;
}

static int open_channel(void)
{
	char dir[WIRE_PATH_MAX];
	int rc;
	pid_t pid = getpid();
	uid_t uid = getuid();

	if ((rc = wire_channel__dir(uid, dir, sizeof dir)) ||
	    (rc = wire_channel__ensure_dir(dir, uid)))
		return rc;
	wire_channel__path(dir, pid, "lock", g.lock_path, sizeof g.lock_path);
	wire_channel__path(dir, pid, "sock", g.sock_path, sizeof g.sock_path);
	int lfd = open(g.lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lfd < 0)
		return -errno;
	if (flock(lfd, LOCK_EX | LOCK_NB)) {
		close(lfd);
		return -EALREADY;   /* another copy of the agent serves this process */
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (fd < 0) {
		rc = -errno;
		goto fail_lock;
	}
	/* The socket gets its public name only once it listens: a debugger
	 * woken by its appearance (suture-run watches the directory) must not
	 * meet ECONNREFUSED and back off. rename() keeps the bound socket. */
	char tmp[sizeof g.sock_path];
	wire_channel__path(dir, pid, "sock-new", tmp, sizeof tmp);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", tmp);
	unlink(tmp);           /* previous processes with our pid; we hold the lock */
	unlink(g.sock_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || chmod(tmp, 0600) || listen(fd, 4) ||
	    rename(tmp, g.sock_path)) {
		rc = -errno;
		unlink(tmp);
		goto fail_sock;
	}
	g.lock_fd = lfd;
	g.listen_fd = fd;
	return 0;
fail_sock:
	close(fd);
fail_lock:
	close(lfd);
	return rc;
}

static void *agent_main(void *arg)
{
	struct wire_buf b = { 0 };
	int rc;
	(void)arg;

	/* LD_PRELOAD: wait for Py_Initialize to finish. */
	/* Every 0.5 ms: a debugger may hold the script until we listen. */
	while (!Py_IsInitialized())
		usleep(500);
	agent__log("interpreter initialized");
	if ((rc = open_channel())) {
		agent__log("channel not opened: %s", strerror(-rc));
		ready_say(false);
		goto out;
	}
	ready_say(true);
	const char *gt = getenv("SUTURE_AGENT_GIL_TIMEOUT_MS");
	install_watcher(gt && *gt ? (unsigned)strtoul(gt, NULL, 10) : 5000);
	agent__log("listening on %s", g.sock_path);

	struct timespec last_hits = { 0, 0 };
	for (;;) {
		struct pollfd pf[2] = {
			{ .fd = g.listen_fd, .events = POLLIN },
			{ .fd = g.client_fd, .events = POLLIN },
		};
		int n = poll(pf, g.client_fd >= 0 ? 2 : 1, 200);
		if (n < 0 && errno != EINTR)
			break;
		/* The client first: its EOF must be seen before a new
		 * debugger (often the same tool, reconnecting) is accepted. */
		if (n > 0 && g.client_fd >= 0 && pf[1].fd == g.client_fd &&
		    (pf[1].revents & (POLLIN | POLLHUP | POLLERR)))
			if (!serve_one(&b))
				break;
		if (n > 0 && (pf[0].revents & POLLIN))
			accept_client();
		/* Firings, coalesced: at most one HITS every 100 ms. */
		if (agent_install__hits_pending() && __atomic_load_n(&g.ready, __ATOMIC_RELAXED) &&
		    g.hits) {
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			if ((now.tv_sec - last_hits.tv_sec) * 1000 +
			    (now.tv_nsec - last_hits.tv_nsec) / 1000000 >= 100) {
				send_hits(NULL);
				last_hits = now;
			}
		}
		if (agent_watch__mode() == WIRE_WATCH_TRACE) {
			PyGILState_STATE st;
			if (gil_take(&st) == 0) {
				agent_watch__rescan_threads();
				PyGILState_Release(st);
			}
		}
	}
	stop_channel();
out:
	wire_buf__free(&b);
	pthread_mutex_lock(&g.lock);
	g.running = false;
	pthread_cond_broadcast(&g.cond);   /* a restart waiting for us to end */
	pthread_mutex_unlock(&g.lock);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Entry points                                                         */

/* Whether this process is a Python interpreter: LD_PRELOAD also loads us
 * into whatever runs first (`#!/usr/bin/env python3` starts env). Python
 * data symbols are weak (agent/module.mk), so we get here either way. */
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
	/* Called remotely, every other thread is stopped by the debugger: wait
	 * for nothing another thread may hold (g.lock; the old agent thread on
	 * its way out, which only the release lets end). The call cannot be
	 * abandoned half-done (g.running set, no thread): -EAGAIN asks the
	 * debugger to let the process run and call again. */
	if (pthread_mutex_trylock(&g.lock))
		return -EAGAIN;
	if (g.running) {
		rc = g.stopping ? -EAGAIN : 0;
		pthread_mutex_unlock(&g.lock);
		return rc;
	}
	/* The old thread is joinable: joining frees its stack here, so no
	 * exiting thread holds glibc's stack cache lock pthread_create takes. */
	if (g_thread_live) {
		if (pthread_tryjoin_np(g_thread, NULL)) {
			pthread_mutex_unlock(&g.lock);
			return -EAGAIN;
		}
		g_thread_live = false;
	}
	g.running = true;
	g.stopping = false;
	pthread_mutex_unlock(&g.lock);
	/* The thread takes no signal: they belong to the program. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (pthread_create(&g_thread, NULL, agent_main, NULL))
		rc = -EAGAIN;
	else
		g_thread_live = true;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		pthread_mutex_lock(&g.lock);
		g.running = false;
		pthread_mutex_unlock(&g.lock);
	}
	return rc;
}

/* After fork the child has no agent thread and must not speak on the
 * parent's connection: it keeps the (pass-through) hook only. */
static void atfork_child(void)
{
	agent_watch__disable();
	g.ready = false;
	g.running = false;
	g_thread_live = false;   /* the parent's thread: not ours to join */
	g.parked = NULL;
	if (g.client_fd >= 0)
		close(g.client_fd);
	if (g.listen_fd >= 0)
		close(g.listen_fd);
	if (g.lock_fd >= 0)
		close(g.lock_fd);
	g.client_fd = g.listen_fd = g.lock_fd = -1;
	if (g_ready_fd >= 0)
		close(g_ready_fd);   /* the parent's agent answers for itself */
	g_ready_fd = -1;
	pthread_mutex_init(&g.lock, NULL);
}

static void at_exit(void)
{
	/* Guards that fired since the last HITS (the last moments of the
	 * program): sent before the process closes the channel. After
	 * Py_FinalizeEx: no Python here, and a lock some other thread keeps
	 * is waited for one second at most. */
	if (agent_install__hits_pending()) {
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += 1;
		send_hits(&dl);
		agent__log("hits: the last firings at exit%s", agent_install__hits_pending() ?
			   " (not sent: no debugger asked for them, or a lock was held)" : "");
	}
	if (g.listen_fd >= 0 && g.sock_path[0])
		unlink(g.sock_path);
	/* Ours while we hold it (one process has this pid; a second copy of
	 * the library in it never retries): left behind, one file a pid
	 * would pile up in the channel directory. */
	if (g.lock_fd >= 0 && g.lock_path[0])
		unlink(g.lock_path);
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
	pthread_cond_init(&g.cond, &ca);
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
		g_wait_debugger_ms = (unsigned)strtoul(wd, NULL, 10);
	/* Loaded as the _suture_helpers extension module by tests: stay inert. */
	if (getenv("SUTURE_AGENT_NO_START")) {
		ready_say(false);
		return;
	}
	if (suture_agent_start()) {
		agent__log("cannot start the agent thread");
		ready_say(false);
	}
}
