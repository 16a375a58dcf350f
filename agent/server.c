/* agent: the channel server (docs/formats/channel.md), on the agent thread.
 *
 * A Unix socket <dir>/agent-<pid>.sock in a directory only this user can
 * enter, guarded by a flock on <dir>/agent-<pid>.lock taken first (a second
 * copy of the agent in the process stays idle). One debugger at a time is
 * served: its frames are read here (wire_channel__read_frame) and answered
 * by one handler per frame type; the work that needs Python (PATCH, LIST,
 * ROLLBACK, the watcher's removal at DETACH) takes the GIL for its length
 * (agent__gil_take), everything else runs without it. A second connection
 * while a debugger is served is an auditor (suture-audit --pid) if its
 * first frame is HELLO_CONTROL: served here, bounded, and never told of
 * crashes; anyone else gets ERROR.
 *
 * Writes to the debugger happen under agent_g.lock (parked threads write
 * CRASH and RESUME_RESULT too: park.c); only the agent thread closes the
 * descriptor, others shut it down on a failed write.
 */
#include "agent/agent-priv.h"
#include "agent/probe.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* How long a frame poll() announced may take to arrive whole. */
#define SERVE_FRAME_MS 5000

/* WELCOME: who we are and how we watch (docs/formats/channel.md). */
static void encode_welcome(struct wire_buf *b)
{
	struct wire_welcome w;
	memset(&w, 0, sizeof w);
	w.version = WIRE_PROTO_VERSION;
	w.pid = (uint32_t)getpid();
	w.py_hexversion = (uint32_t)Py_Version;
	pthread_mutex_lock(&agent_g.lock);
	w.watch_mode = agent_g.mode;
	snprintf(w.detail, sizeof w.detail, "%s", agent_g.detail);
	pthread_mutex_unlock(&agent_g.lock);
	wire_msg__encode_welcome(b, &w);
}

/* ROLLBACK for the debugger or an auditor (who: for the log). */
static void rollback_run(const struct wire_rollback *m, struct wire_rollback_result *res,
			 const char *who)
{
	PyGILState_STATE st;
	memset(res, 0, sizeof *res);
	res->request_id = m->request_id;
	if (agent__gil_take(&st)) {
		res->status = -ESHUTDOWN;
		snprintf(res->message, sizeof res->message, "agent: interpreter finalizing");
	} else {
		res->status = agent_install__rollback(m, res);
		PyGILState_Release(st);
	}
	agent__log("rollback%s %s%s: %d: %s", who,
		   (m->flags & WIRE_ROLLBACK_F_ALL) ? "(all)" : m->name,
		   (m->flags & WIRE_ROLLBACK_F_DRY_RUN) ? " (dry run)" : "", res->status,
		   res->message);
}

/* RELOAD for the debugger or an auditor (suture-attach --reload beside a
 * --watch): the whole RELOAD_RESULT frame into b, or an ERROR. */
static void reload_run(struct wire_buf *b, const uint8_t *p, const uint8_t *end, const char *who)
{
	static struct wire_reload m; /* the agent thread's alone; 4 KiB of path */
	PyGILState_STATE st;
	if (wire_msg__decode_reload(p, end, &m)) {
		wire_msg__encode_error(b, "agent: malformed RELOAD");
		return;
	}
	if (agent__gil_take(&st)) {
		wire_msg__encode_error(b, "agent: interpreter finalizing");
		return;
	}
	int rc = agent_reload__run(&m, b);
	PyGILState_Release(st);
	if (rc) {
		wire_buf__reset(b);
		wire_msg__encode_error(b,
				       "agent: cannot encode the reload's result (out of memory)");
	}
	agent__log("reload%s of %s answered", who, m.path);
}

/* PONG: the counters, read under the lock. */
static void pong_of(const struct wire_ping *ping, struct wire_pong *pong)
{
	pthread_mutex_lock(&agent_g.lock);
	pong->cookie = ping->cookie;
	pong->crashes = agent_stats.crashes;
	pong->parked = agent_stats.parked;
	pong->hook_calls = agent_stats.hook_calls;
	pthread_mutex_unlock(&agent_g.lock);
}

int agent_server__send_locked(struct wire_buf *b)
{
	if (agent_g.client_fd < 0)
		return -ENOTCONN;
	return wire_channel__write_all(agent_g.client_fd, b->data, b->len);
}

void agent_server__close_client_locked(const char *why)
{
	if (agent_g.client_fd >= 0) {
		agent__log("debugger gone: %s", why);
		close(agent_g.client_fd);
	}
	agent_g.client_fd = -1;
	__atomic_store_n(&agent_g.ready, false, __ATOMIC_RELAXED);
	__atomic_store_n(&agent_g.hold, false, __ATOMIC_RELAXED);
	/* Parked threads go on with their exception untouched. */
	agent_park__release_all_locked(AGENT_VERDICT_NO_DEBUGGER);
	/* Probes stop now; their code goes at the serve loop's next turn. */
	agent_probe__disconnected_locked();
}

/* The first part of a reply, sent while the caller still holds the GIL:
 * a program that ends as soon as it runs again (its last loop switched to
 * the patched code, say) would otherwise close the channel before the
 * answer is out. Never blocks: what does not fit now goes out with
 * reply_rest() once the GIL is released. Returns the bytes sent. */
static size_t reply_early(struct wire_buf *b)
{
	size_t sent = 0;
	pthread_mutex_lock(&agent_g.lock);
	while (b->err == 0 && agent_g.client_fd >= 0 && sent < b->len) {
		ssize_t n = send(agent_g.client_fd, b->data + sent, b->len - sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* full (or failed: reply_rest says so) */
		sent += (size_t)n;
	}
	/* Held until reply_rest: no other frame may come between the parts. */
	return sent;
}

static void reply_rest(struct wire_buf *b, size_t sent)
{
	if (b->err == 0 && sent < b->len &&
	    (agent_g.client_fd < 0 ||
	     wire_channel__write_all(agent_g.client_fd, b->data + sent, b->len - sent) != 0))
		agent_server__close_client_locked("write failed");
	pthread_mutex_unlock(&agent_g.lock);
	wire_buf__reset(b);
}

static void reply(struct wire_buf *b)
{
	pthread_mutex_lock(&agent_g.lock);
	if (b->err == 0 && agent_server__send_locked(b) != 0)
		agent_server__close_client_locked("write failed");
	pthread_mutex_unlock(&agent_g.lock);
	wire_buf__reset(b);
}

/* HITS (docs/formats/channel.md): the firings counted since the last one,
 * to the debugger if it asked for them (WIRE_HELLO_F_HITS: suture-run,
 * suture-attach --watch); else they wait for one that does.
 * No GIL needed: the counts are plain integers. deadline (CLOCK_REALTIME,
 * may be NULL) bounds the waits for the locks (the exit handler's case). */
void agent_server__send_hits(const struct timespec *deadline)
{
	struct wire_buf hb = { 0 };
	if (deadline ? pthread_mutex_timedlock(&agent_g.lock, deadline)
		     : pthread_mutex_lock(&agent_g.lock))
		return;
	if (agent_g.ready && agent_g.hits && agent_g.client_fd >= 0 &&
	    agent_install__hits(&hb, deadline) > 0 && agent_server__send_locked(&hb) &&
	    agent_g.client_fd >= 0)
		shutdown(agent_g.client_fd, SHUT_RDWR); /* the agent thread sees EOF and closes */
	pthread_mutex_unlock(&agent_g.lock);
	wire_buf__free(&hb);
}

/* HANDLED (docs/formats/channel.md): the handled crashes counted since the
 * last one, to the debugger if it asked for them (WIRE_HELLO_F_HANDLED);
 * deadline as for HITS. */
void agent_server__send_handled(const struct timespec *deadline)
{
	struct wire_buf hb = { 0 };
	if (deadline ? pthread_mutex_timedlock(&agent_g.lock, deadline)
		     : pthread_mutex_lock(&agent_g.lock))
		return;
	if (agent_g.ready && agent_handled__wanted() && agent_g.client_fd >= 0 &&
	    agent_handled__encode(&hb, WIRE_MSG_HANDLED, deadline) > 0 &&
	    agent_server__send_locked(&hb) && agent_g.client_fd >= 0)
		shutdown(agent_g.client_fd, SHUT_RDWR); /* the agent thread sees EOF and closes */
	pthread_mutex_unlock(&agent_g.lock);
	wire_buf__free(&hb);
}

/* HANDLED_LIST: the totals, to a debugger or an auditor. */
static int handled_list(struct wire_buf *b, const uint8_t *p, const uint8_t *end)
{
	if (wire_msg__decode_empty(p, end))
		return -EINVAL;
	return agent_handled__encode(b, WIRE_MSG_HANDLED_RESULT, NULL) < 0 ? -EIO : 0;
}

static void refuse(struct wire_buf *b, const char *why)
{
	wire_msg__encode_error(b, why);
	reply(b);
	pthread_mutex_lock(&agent_g.lock);
	agent_server__close_client_locked(why);
	pthread_mutex_unlock(&agent_g.lock);
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
		uint8_t *payload = NULL;
		struct wire_hdr h;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long left = 10000 - ((now.tv_sec - t0.tv_sec) * 1000 +
				     (now.tv_nsec - t0.tv_nsec) / 1000000);
		/* A RELOAD carries a module's source: up to 4 MiB. */
		if (left <= 0 || wire_channel__read_frame(fd, (int)left, &h, &payload) ||
		    h.len > (h.type == WIRE_MSG_RELOAD ? (4u << 20) : (64u << 10))) {
			free(payload);
			break;
		}
		const uint8_t *p = payload, *end = payload + h.len;
		const char *refuse_why = NULL;
		PyGILState_STATE st;
		if (!hello) {
			struct wire_hello hm;
			if (h.type != WIRE_MSG_HELLO_CONTROL ||
			    wire_msg__decode_hello(p, end, &hm) ||
			    hm.version != WIRE_PROTO_VERSION) {
				refuse_why = "another debugger is connected";
			} else {
				encode_welcome(&b);
				hello = true;
			}
		} else if (h.type == WIRE_MSG_LIST) {
			struct wire_list m;
			if (wire_msg__decode_list(p, end, &m) || agent__gil_take(&st)) {
				refuse_why =
					"agent: malformed LIST, or the interpreter is finalizing";
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
		} else if (h.type == WIRE_MSG_RELOAD) {
			reload_run(&b, p, end, " (auditor)");
		} else if (h.type == WIRE_MSG_HANDLED_LIST) {
			if (handled_list(&b, p, end))
				refuse_why = "agent: malformed HANDLED_LIST";
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
			refuse_why = "agent: another debugger is connected: only LIST, ROLLBACK, "
				     "RELOAD, HANDLED_LIST and PING are served to an auditor";
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
	int fd = accept4(agent_g.listen_fd, NULL, NULL, SOCK_CLOEXEC);
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
	pthread_mutex_lock(&agent_g.lock);
	bool busy = agent_g.client_fd >= 0;
	if (busy) {
		/* A debugger that left while we were busy elsewhere. */
		char c;
		ssize_t r = recv(agent_g.client_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
			agent_server__close_client_locked("EOF");
			busy = false;
		}
	}
	pthread_mutex_unlock(&agent_g.lock);
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
	 * us (writes happen under agent_g.lock). */
	struct timeval tv = { 5, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	pthread_mutex_lock(&agent_g.lock);
	agent_g.client_fd = fd;
	pthread_mutex_unlock(&agent_g.lock);
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
	if (h.flags & WIRE_HELLO_F_APP_PATHS)
		agent_policy__offer_app_paths(h.app_paths);
	/* Every HELLO says which sites are opted in (none without the flag). */
	agent_handled__offer(h.heal_handled, (h.flags & WIRE_HELLO_F_HANDLED) != 0);
	encode_welcome(b);
	reply(b);
	pthread_mutex_lock(&agent_g.lock);
	agent_g.hits = (h.flags & WIRE_HELLO_F_HITS) != 0;
	__atomic_store_n(&agent_g.hold, (h.flags & WIRE_HELLO_F_HOLD) != 0, __ATOMIC_RELAXED);
	agent_g.tree = (h.flags & WIRE_HELLO_F_TREE) != 0;
	__atomic_store_n(&agent_g.ready, true, __ATOMIC_RELAXED);
	/* Children that came up while no debugger followed the tree. */
	for (unsigned i = 0; agent_g.tree && i < agent_g.nforked_queue; i++) {
		struct wire_forked f = { agent_g.forked_queue[i][0], agent_g.forked_queue[i][1] };
		if (wire_msg__encode_forked(b, &f) == 0 && agent_server__send_locked(b))
			break;
		wire_buf__reset(b);
	}
	wire_buf__reset(b);
	agent_g.nforked_queue = 0;
	pthread_cond_broadcast(&agent_g.cond); /* crashes waiting for a debugger */
	pthread_mutex_unlock(&agent_g.lock);
}

static void on_release(struct wire_buf *b, const uint8_t *p, const uint8_t *end)
{
	struct wire_release r;
	if (wire_msg__decode_release(p, end, &r)) {
		refuse(b, "agent: malformed RELEASE");
		return;
	}
	pthread_mutex_lock(&agent_g.lock);
	agent_park__answer_locked(r.event_id, AGENT_VERDICT_RELEASE, NULL);
	pthread_mutex_unlock(&agent_g.lock);
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
	pthread_mutex_lock(&agent_g.lock);
	found = agent_park__answer_locked(r.event_id, AGENT_VERDICT_RESUME, &r);
	pthread_mutex_unlock(&agent_g.lock);
	if (!found) {
		struct wire_resume_result res = { r.event_id, -ENOENT, "" };
		snprintf(res.message, sizeof res.message,
			 "agent: event %llu is not parked (released or timed out)",
			 (unsigned long long)r.event_id);
		wire_msg__encode_resume_result(b, &res);
		reply(b);
	}
}

/* RESTART: the held thread does the work (it owns the frame) and answers
 * RESUME_RESULT itself; an event that is not held (released, or never
 * held) is answered here. */
static void on_restart(struct wire_buf *b, const uint8_t *p, const uint8_t *end)
{
	struct wire_restart *r = malloc(sizeof *r);
	if (!r || wire_msg__decode_restart(p, end, r)) {
		free(r);
		refuse(b, r ? "agent: malformed RESTART" : "agent: out of memory");
		return;
	}
	uint64_t id = r->event_id;
	pthread_mutex_lock(&agent_g.lock);
	bool found = agent_park__restart_locked(id, r); /* takes r */
	pthread_mutex_unlock(&agent_g.lock);
	if (!found) {
		struct wire_resume_result res = { id, -ENOENT, "" };
		snprintf(res.message, sizeof res.message, "agent: event %llu is not held",
			 (unsigned long long)id);
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
	if (agent__gil_take(&st)) {
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
		   (unsigned long long)m.request_id, (unsigned long long)m.code_addr, res.status,
		   res.nfunctions, res.nparents, res.message);
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
	if (agent__gil_take(&st)) {
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

void agent_server__close(void)
{
	pthread_mutex_lock(&agent_g.lock);
	agent_server__close_client_locked("detached");
	if (agent_g.listen_fd >= 0) {
		close(agent_g.listen_fd);
		unlink(agent_g.sock_path);
	}
	agent_g.listen_fd = -1;
	if (agent_g.lock_fd >= 0) {
		unlink(agent_g.lock_path);
		close(agent_g.lock_fd); /* drops the flock */
	}
	agent_g.lock_fd = -1;
	if (agent_g.fork_rd >= 0)
		close(agent_g.fork_rd);
	if (agent_g.fork_wr >= 0)
		close(agent_g.fork_wr);
	agent_g.fork_rd = agent_g.fork_wr = -1;
	pthread_mutex_unlock(&agent_g.lock);
}

/* DETACH: unwatch (with the GIL), take the socket away, answer BYE. The
 * socket goes before BYE, so a debugger that reconnects right after BYE
 * finds no stale listener (it restarts the agent instead). */
static void on_detach(struct wire_buf *b)
{
	PyGILState_STATE st;
	agent_g.stopping = true;
	pthread_mutex_lock(&agent_g.lock);
	__atomic_store_n(&agent_g.ready, false, __ATOMIC_RELAXED);
	agent_park__release_all_locked(AGENT_VERDICT_RELEASE);
	if (agent_g.listen_fd >= 0) {
		close(agent_g.listen_fd);
		unlink(agent_g.sock_path);
	}
	agent_g.listen_fd = -1;
	pthread_mutex_unlock(&agent_g.lock);
	if (agent__gil_take(&st) == 0) {
		agent_watch__remove();
		PyGILState_Release(st);
	}
	agent_installer__record(WIRE_WATCH_NONE, "detached");
	/* The debugger records firings up to BYE. */
	if (agent_install__hits_pending()) {
		pthread_mutex_lock(&agent_g.lock);
		if (agent_g.client_fd >= 0 && agent_g.hits && agent_install__hits(b, NULL) > 0 &&
		    agent_server__send_locked(b))
			agent_server__close_client_locked("write failed");
		pthread_mutex_unlock(&agent_g.lock);
		wire_buf__reset(b);
	}
	/* ... and handled crashes too. */
	if (agent_handled__pending()) {
		pthread_mutex_lock(&agent_g.lock);
		if (agent_g.client_fd >= 0 &&
		    agent_handled__encode(b, WIRE_MSG_HANDLED, NULL) > 0 &&
		    agent_server__send_locked(b))
			agent_server__close_client_locked("write failed");
		pthread_mutex_unlock(&agent_g.lock);
		wire_buf__reset(b);
	}
	wire_msg__encode_empty(b, WIRE_MSG_BYE);
	reply(b);
}

/* The probes' frames (agent/probe.c, docs/formats/channel.md "Probes"). */
static void on_probe(struct wire_buf *b, uint16_t type, const uint8_t *p, const uint8_t *end)
{
	static struct wire_probe_set set;
	struct wire_probe_ctl ctl;
	uint64_t ev;
	switch (type) {
	case WIRE_MSG_PROBE_SET:
		if (wire_msg__decode_probe_set(p, end, &set)) {
			refuse(b, "agent: malformed PROBE_SET");
			return;
		}
		agent_probe__on_set(b, &set);
		break;
	case WIRE_MSG_PROBE_ARM:
	case WIRE_MSG_PROBE_CLEAR:
		if (wire_msg__decode_probe_ctl(p, end, &ctl)) {
			refuse(b, "agent: malformed PROBE_ARM/CLEAR");
			return;
		}
		if (type == WIRE_MSG_PROBE_ARM)
			agent_probe__on_arm(b, &ctl);
		else
			agent_probe__on_clear(b, &ctl);
		break;
	default:
		if (wire_msg__decode_probe_release(p, end, &ev)) {
			refuse(b, "agent: malformed PROBE_RELEASE");
			return;
		}
		agent_probe__release(ev);
		return;
	}
	reply(b);
}

/* One frame from the debugger (poll said it is there); false when the
 * agent must stop. */
static bool serve_one(struct wire_buf *b)
{
	struct wire_hdr h;
	uint8_t *payload = NULL;
	bool go_on = true;

	/* Waits only if the frame stalls midway (SO_RCVTIMEO bounds each read). */
	int rc = wire_channel__read_frame(agent_g.client_fd, SERVE_FRAME_MS, &h, &payload);
	if (rc == -EPROTO || rc == -ENOMEM) {
		refuse(b, rc == -EPROTO ? "agent: malformed frame header" : "agent: out of memory");
		return true;
	}
	if (rc) {
		pthread_mutex_lock(&agent_g.lock);
		agent_server__close_client_locked(rc == -EPIPE       ? "EOF"
						  : rc == -ETIMEDOUT ? "read timed out"
								     : "read failed");
		pthread_mutex_unlock(&agent_g.lock);
		return true;
	}
	const uint8_t *p = payload, *end = payload + h.len;
	/* HELLO_CONTROL when no debugger is connected: an auditor is served as
	 * one (it reads no crashes and leaves soon; parked threads then go on). */
	if (h.type != WIRE_MSG_HELLO && h.type != WIRE_MSG_HELLO_CONTROL && !agent_g.ready) {
		refuse(b, "agent: HELLO expected first");
	} else {
		switch (h.type) {
		case WIRE_MSG_HELLO:
		case WIRE_MSG_HELLO_CONTROL:
			on_hello(b, p, end);
			break;
		case WIRE_MSG_RELEASE:
			on_release(b, p, end);
			break;
		case WIRE_MSG_PATCH:
			on_patch(b, p, end, false);
			break;
		case WIRE_MSG_PATCH_NAMED:
			on_patch(b, p, end, true);
			break;
		case WIRE_MSG_LIST:
			on_list(b, p, end);
			break;
		case WIRE_MSG_ROLLBACK:
			on_rollback(b, p, end);
			break;
		case WIRE_MSG_RESUME:
			on_resume(b, p, end);
			break;
		case WIRE_MSG_PING:
			on_ping(b, p, end);
			break;
		case WIRE_MSG_PROBE_SET:
		case WIRE_MSG_PROBE_ARM:
		case WIRE_MSG_PROBE_CLEAR:
		case WIRE_MSG_PROBE_RELEASE:
			on_probe(b, h.type, p, end);
			break;
		case WIRE_MSG_RELOAD:
			reload_run(b, p, end, "");
			reply(b);
			break;
		case WIRE_MSG_RESTART:
			on_restart(b, p, end);
			break;
		case WIRE_MSG_HANDLED_LIST:
			if (handled_list(b, p, end))
				refuse(b, "agent: malformed HANDLED_LIST");
			else
				reply(b);
			break;
		case WIRE_MSG_TREE_FILES:
			if (agent_boot__tree_files(b, p, end))
				refuse(b, "agent: malformed TREE_FILES");
			else
				reply(b);
			break;
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

/* XDG_RUNTIME_DIR as a debugger outside reads it: from the environment
 * block the process started with (/proc/self/environ), so that a program
 * that changed it since still meets its debugger; getenv() without /proc. */
static bool own_xdg(char *buf, size_t cap)
{
	char env[16384];
	size_t len = 0;
	int fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		const char *x = getenv("XDG_RUNTIME_DIR");
		return x && snprintf(buf, cap, "%s", x) < (int)cap;
	}
	for (ssize_t r; len < sizeof env && (r = read(fd, env + len, sizeof env - len)) > 0;)
		len += (size_t)r;
	close(fd);
	return wire_channel__xdg(env, env + len, buf, cap) == 0;
}

/* A debugger loaded us from a memfd (inject/remote.c) and left its
 * descriptor to us: the mapping keeps the library, so it is closed here,
 * on the agent thread, rather than by one more remote call while the
 * process was stopped. Any descriptor naming our memfd is ours (the
 * program never sees its number). */
static void close_own_memfd(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[64], link[64];
		int fd = atoi(e->d_name);
		if (fd <= 2 || fd == dirfd(d))
			continue;
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(path, link, sizeof link - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		if (strncmp(link, "/memfd:libsuture_agent.so", 25) == 0)
			close(fd);
	}
	closedir(d);
}

int agent_server__open(void)
{
	char dir[WIRE_PATH_MAX], why[256], xdg[256];
	int rc, dirfd = -1, rootfd;
	pid_t pid = getpid();
	uid_t uid = getuid();

	close_own_memfd();
	if ((rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	rc = wire_channel__place(rootfd, uid, uid, own_xdg(xdg, sizeof xdg) ? xdg : NULL, true,
				 &dirfd, dir, sizeof dir, why, sizeof why);
	close(rootfd);
	if (rc) {
		agent__log("channel: %s", why);
		return rc;
	}
	close(dirfd);
	if (why[0])
		agent__log("channel: %s", why);
	/* Files of processes killed before their agent could remove them
	 * (docs/formats/channel.md, "Stale files"). */
	wire_channel__sweep(dir);
	wire_channel__path(dir, pid, "lock", agent_g.lock_path, sizeof agent_g.lock_path);
	wire_channel__path(dir, pid, "sock", agent_g.sock_path, sizeof agent_g.sock_path);
	int lfd = open(agent_g.lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lfd < 0)
		return -errno;
	if (flock(lfd, LOCK_EX | LOCK_NB)) {
		close(lfd);
		return -EALREADY; /* another copy of the agent serves this process */
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
	char tmp[sizeof agent_g.sock_path];
	wire_channel__path(dir, pid, "sock-new", tmp, sizeof tmp);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", tmp);
	unlink(tmp); /* previous processes with our pid; we hold the lock */
	unlink(agent_g.sock_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || chmod(tmp, 0600) || listen(fd, 4) ||
	    rename(tmp, agent_g.sock_path)) {
		rc = -errno;
		unlink(tmp);
		goto fail_sock;
	}
	agent_g.lock_fd = lfd;
	agent_g.listen_fd = fd;
	/* Children's notices (agent_server__fork_announce); without the
	 * pipe, children still get their agent, only no FORKED is sent. */
	int pp[2];
	if (pipe2(pp, O_CLOEXEC) == 0) {
		fcntl(pp[1], F_SETFL, O_NONBLOCK); /* a child never waits on us */
		fcntl(pp[0], F_SETFL, O_NONBLOCK);
		agent_g.fork_rd = pp[0];
		agent_g.fork_wr = pp[1];
	}
	return 0;
fail_sock:
	close(fd);
fail_lock:
	close(lfd);
	return rc;
}

void agent_server__fork_announce(void)
{
	int fd = agent_g.parent_fork_wr;
	if (fd < 0)
		return;
	agent_g.parent_fork_wr = -1;
	/* One write of 8 bytes (< PIPE_BUF): atomic among siblings. */
	uint32_t note[2] = { (uint32_t)getpid(), (uint32_t)getppid() };
	ssize_t w;
	do
		w = write(fd, note, sizeof note);
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)sizeof note)
		agent__log("fork: the parent's agent was not told (%s)",
			   w < 0 ? strerror(errno) : "short write");
	close(fd);
}

/* Children's notices: FORKED to a debugger that follows the tree, else
 * queued for the next one that does. */
static void forked_read(struct wire_buf *b)
{
	uint32_t note[2];
	ssize_t r;
	while ((r = read(agent_g.fork_rd, note, sizeof note)) == (ssize_t)sizeof note) {
		if (!note[0] || !note[1] || note[0] > INT32_MAX || note[1] > INT32_MAX)
			continue;
		agent__log("fork: child %u (parent %u) listens", note[0], note[1]);
		pthread_mutex_lock(&agent_g.lock);
		if (agent_g.ready && agent_g.tree && agent_g.client_fd >= 0) {
			struct wire_forked f = { note[0], note[1] };
			if (wire_msg__encode_forked(b, &f) == 0 && agent_server__send_locked(b))
				agent_server__close_client_locked("write failed");
			wire_buf__reset(b);
		} else {
			unsigned n = agent_g.nforked_queue;
			if (n == sizeof agent_g.forked_queue / sizeof agent_g.forked_queue[0]) {
				memmove(agent_g.forked_queue, agent_g.forked_queue + 1,
					(n - 1) * sizeof agent_g.forked_queue[0]);
				n--;
			}
			agent_g.forked_queue[n][0] = note[0];
			agent_g.forked_queue[n][1] = note[1];
			agent_g.nforked_queue = n + 1;
		}
		pthread_mutex_unlock(&agent_g.lock);
	}
}

void agent_server__serve(void)
{
	struct wire_buf b = { 0 };
	struct timespec last_hits = { 0, 0 }, last_handled = { 0, 0 };
	for (;;) {
		struct pollfd pf[3] = {
			{ .fd = agent_g.listen_fd, .events = POLLIN },
			{ .fd = agent_g.fork_rd, .events = POLLIN },
			{ .fd = agent_g.client_fd, .events = POLLIN },
		};
		int n = poll(pf, agent_g.client_fd >= 0 ? 3 : 2, 200);
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0 && agent_g.fork_rd >= 0 && (pf[1].revents & POLLIN))
			forked_read(&b);
		/* The client first: its EOF must be seen before a new
		 * debugger (often the same tool, reconnecting) is accepted. */
		if (n > 0 && agent_g.client_fd >= 0 && pf[2].fd == agent_g.client_fd &&
		    (pf[2].revents & (POLLIN | POLLHUP | POLLERR)))
			if (!serve_one(&b))
				break;
		/* A debugger that left its probes: their code goes before the
		 * next one is accepted. */
		agent_probe__clear_orphans();
		if (n > 0 && (pf[0].revents & POLLIN))
			accept_client();
		/* Firings, coalesced: at most one HITS every 100 ms. */
		if (agent_install__hits_pending() &&
		    __atomic_load_n(&agent_g.ready, __ATOMIC_RELAXED) && agent_g.hits) {
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			if ((now.tv_sec - last_hits.tv_sec) * 1000 +
				    (now.tv_nsec - last_hits.tv_nsec) / 1000000 >=
			    100) {
				agent_server__send_hits(NULL);
				last_hits = now;
			}
		}
		/* Handled crashes, coalesced the same way; when they were
		 * last seen is this tick's time. */
		agent_handled__tick();
		if (agent_handled__pending() && __atomic_load_n(&agent_g.ready, __ATOMIC_RELAXED)) {
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			if ((now.tv_sec - last_handled.tv_sec) * 1000 +
				    (now.tv_nsec - last_handled.tv_nsec) / 1000000 >=
			    100) {
				agent_server__send_handled(NULL);
				last_handled = now;
			}
		}
		if (agent_watch__mode() == WIRE_WATCH_TRACE) {
			PyGILState_STATE st;
			if (agent__gil_take(&st) == 0) {
				agent_watch__rescan_threads();
				PyGILState_Release(st);
			}
		}
	}
	/* DETACH (or a poll failure) with probes still set: they go too. */
	pthread_mutex_lock(&agent_g.lock);
	agent_probe__disconnected_locked();
	pthread_mutex_unlock(&agent_g.lock);
	agent_probe__clear_orphans();
	wire_buf__free(&b);
}
