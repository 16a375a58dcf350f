/* agent: the channel server (docs/formats/channel.md), on the agent thread.
 *
 * A Unix socket <dir>/agent-<pid>.sock in a directory only this user can
 * enter, guarded by a flock on <dir>/agent-<pid>.lock taken first (a second
 * copy of the agent in the process stays idle). One poll() loop serves
 * every connection and waits on none of them: frames are read as far as
 * they have come (frame_in__pump) and checked by wire/'s decoders once
 * whole; peers get deadlines and a bound on their number ("Peers" below),
 * so a connection that goes silent, stops inside a frame or stops
 * reading (an auditor stopped with Ctrl-Z) delays nobody, and a parked
 * crash is answered as soon as its debugger speaks. A connection is
 * judged by its first frame: HELLO makes it the debugger (one at a time),
 * HELLO_CONTROL an auditor (suture-audit --pid: LIST, ROLLBACK, RELOAD,
 * PING; never told of crashes). The debugger's frames are answered by one
 * handler per frame type; the work that needs Python (PATCH, LIST,
 * ROLLBACK, the watcher's removal at DETACH) takes the GIL for its length
 * (agent__gil_take), everything else runs without it.
 *
 * Writes to the debugger happen under agent_g.lock (parked threads write
 * CRASH and RESUME_RESULT too: park.c), bounded by SO_SNDTIMEO; only the
 * agent thread closes the descriptor, others shut it down on a failed
 * write.
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

/* How long a frame of the debugger may take to arrive whole, once begun. */
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

/* ---- Frames read without waiting ---------------------------------------- */

/* The frame under way on one connection: its header, then its payload,
 * filled by whatever recv() returns now (docs/formats/channel.md,
 * "Peers": no peer may make the agent thread wait). */
struct frame_in {
	uint8_t hdr[WIRE_HDR_SIZE];
	size_t got; /* bytes of this frame so far, header included */
	struct wire_hdr h;
	uint8_t *payload;
	long begun; /* monotonic ms of its first byte */
};

/* The debugger's frame under way; reset whenever its connection closes. */
static struct frame_in g_dbg_in;

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void frame_in__reset(struct frame_in *in)
{
	free(in->payload);
	memset(in, 0, sizeof *in);
}

/* Read what fd has of the frame under way, never waiting. 1: the frame is
 * whole (frame_in__take it); 0: not yet; -EPIPE: EOF; -EPROTO: a header
 * wire_msg__decode_hdr refuses; -EMSGSIZE: a payload over max; -ENOMEM;
 * -errno of recv. At most one frame is read a call, so one busy peer
 * cannot keep the loop from the others. */
static int frame_in__pump(int fd, struct frame_in *in, uint32_t max)
{
	for (;;) {
		uint8_t *dst;
		size_t want;
		if (in->got < WIRE_HDR_SIZE) {
			dst = in->hdr + in->got;
			want = WIRE_HDR_SIZE - in->got;
		} else {
			size_t off = in->got - WIRE_HDR_SIZE;
			if (off == in->h.len)
				return 1;
			dst = in->payload + off;
			want = in->h.len - off;
		}
		ssize_t n = recv(fd, dst, want, MSG_DONTWAIT);
		if (n == 0)
			return -EPIPE;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		}
		if (in->got == 0)
			in->begun = now_ms();
		in->got += (size_t)n;
		if (in->got == WIRE_HDR_SIZE) {
			if (wire_msg__decode_hdr(in->hdr, in->hdr + WIRE_HDR_SIZE, &in->h))
				return -EPROTO;
			if (in->h.len > max)
				return -EMSGSIZE;
			if (in->h.len && !(in->payload = malloc(in->h.len)))
				return -ENOMEM;
		}
	}
}

/* The whole frame out of in (the caller frees *payload); in is ready for
 * the next one. */
static void frame_in__take(struct frame_in *in, struct wire_hdr *h, uint8_t **payload)
{
	*h = in->h;
	*payload = in->payload;
	in->payload = NULL;
	frame_in__reset(in);
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
	frame_in__reset(&g_dbg_in); /* only the agent thread closes it, and reads it */
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

/* What the debugger sent since the last call (poll said something is
 * there): nothing more until its frame is whole, else that frame served.
 * False when the agent must stop. */
static bool serve_debugger(struct wire_buf *b)
{
	struct wire_hdr h;
	uint8_t *payload = NULL;
	bool go_on = true;

	int rc = frame_in__pump(agent_g.client_fd, &g_dbg_in, WIRE_MAX_PAYLOAD);
	if (rc == 0)
		return true;
	if (rc == -EPROTO || rc == -EMSGSIZE || rc == -ENOMEM) {
		refuse(b, rc == -ENOMEM ? "agent: out of memory" : "agent: malformed frame header");
		return true;
	}
	if (rc < 0) {
		pthread_mutex_lock(&agent_g.lock);
		agent_server__close_client_locked(rc == -EPIPE ? "EOF" : "read failed");
		pthread_mutex_unlock(&agent_g.lock);
		return true;
	}
	frame_in__take(&g_dbg_in, &h, &payload);
	const uint8_t *p = payload, *end = payload + h.len;
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

/* ---- Peers: connections that are not (or not yet) the debugger --------- */

/* Every connection is accepted at once and judged by its first frame,
 * read like every frame without waiting: HELLO makes it the debugger
 * (when none is connected), HELLO_CONTROL an auditor, anything else is
 * refused. A new connection has PEER_FIRST_MS to send its first frame
 * whole, an auditor AUDIT_SESSION_MS for its whole session; then it is
 * dropped, whatever it is doing (stopped with Ctrl-Z, silent, stuck
 * inside a frame, not reading). An answer the socket does not take at
 * once waits in the peer's buffer for POLLOUT, and the peer's next frame
 * is read only once it is out. With PEERS_MAX peers, a new connection
 * takes the place of the oldest that has not spoken yet, else it is
 * refused. */
#define PEERS_MAX 8
#define PEER_FIRST_MS 2000
#define AUDIT_SESSION_MS 10000
#define AUDIT_FRAMES 32
#define PEER_FRAME_MAX (64u << 10)
#define AUDIT_RELOAD_MAX (4u << 20)

enum peer_role { PEER_FREE = 0, PEER_NEW, PEER_AUDITOR };

struct peer {
	enum peer_role role; /* PEER_FREE: the slot is unused, fd meaningless */
	int fd;
	pid_t pid;     /* SO_PEERCRED, for the log */
	long since;    /* accepted, monotonic ms */
	long deadline; /* dropped then */
	int frames;    /* an auditor's frames served */
	bool closing;  /* out holds its last frame (ERROR): close once sent */
	struct frame_in in;
	struct wire_buf out; /* one answer at a time */
	size_t out_sent;
};

static struct peer g_peers[PEERS_MAX];

/* shutdown() first: a forked child's copy of fd must not keep the peer
 * from seeing EOF. */
static void peer__drop(struct peer *p, const char *why)
{
	if (p->role == PEER_FREE)
		return;
	if (why)
		agent__log("%s pid %d dropped: %s", p->role == PEER_AUDITOR ? "auditor" : "peer",
			   (int)p->pid, why);
	if (p->fd >= 0) {
		shutdown(p->fd, SHUT_RDWR);
		close(p->fd);
	}
	frame_in__reset(&p->in);
	wire_buf__free(&p->out);
	memset(p, 0, sizeof *p);
	p->fd = -1;
}

/* Send what the socket takes now of p's answer. */
static void peer__flush(struct peer *p)
{
	if (p->out.err) {
		peer__drop(p, "out of memory");
		return;
	}
	while (p->out_sent < p->out.len) {
		ssize_t n = send(p->fd, p->out.data + p->out_sent, p->out.len - p->out_sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return; /* the rest at POLLOUT */
		if (n <= 0) {
			peer__drop(p, "write failed");
			return;
		}
		p->out_sent += (size_t)n;
	}
	wire_buf__reset(&p->out);
	p->out_sent = 0;
	if (p->closing)
		peer__drop(p, "refused");
}

/* ERROR as p's last frame (p->out is empty: answers go one at a time). */
static void peer__refuse(struct peer *p, const char *why)
{
	agent__log("%s pid %d refused: %s", p->role == PEER_AUDITOR ? "auditor" : "peer",
		   (int)p->pid, why);
	wire_buf__reset(&p->out);
	wire_msg__encode_error(&p->out, why);
	p->closing = true;
}

/* An auditor's frame (docs/formats/channel.md, "Auditors"): LIST,
 * ROLLBACK and PING; never crashes. Its answer goes to p->out. */
static void peer__audit(struct peer *p, const struct wire_hdr *h, const uint8_t *pl)
{
	const uint8_t *end = pl + h->len;
	struct wire_buf *b = &p->out;
	PyGILState_STATE st;
	if (++p->frames > AUDIT_FRAMES) {
		peer__refuse(p, "agent: auditor session over its bound (32 frames)");
	} else if (h->len > PEER_FRAME_MAX && h->type != WIRE_MSG_RELOAD) {
		peer__refuse(p, "agent: frame too large for an auditor");
	} else if (h->type == WIRE_MSG_RELOAD) {
		reload_run(b, pl, end, " (auditor)");
	} else if (h->type == WIRE_MSG_LIST) {
		struct wire_list m;
		if (wire_msg__decode_list(pl, end, &m) || agent__gil_take(&st)) {
			peer__refuse(p, "agent: malformed LIST, or the interpreter is finalizing");
			return;
		}
		int rc = agent_install__list(b, m.request_id);
		PyGILState_Release(st);
		if (rc)
			peer__refuse(p, "agent: cannot list the installed patches");
	} else if (h->type == WIRE_MSG_ROLLBACK) {
		struct wire_rollback m;
		struct wire_rollback_result res;
		if (wire_msg__decode_rollback(pl, end, &m)) {
			peer__refuse(p, "agent: malformed ROLLBACK");
			return;
		}
		rollback_run(&m, &res, " (auditor)");
		wire_msg__encode_rollback_result(b, &res);
	} else if (h->type == WIRE_MSG_HANDLED_LIST) {
		if (handled_list(b, pl, end))
			peer__refuse(p, "agent: malformed HANDLED_LIST");
	} else if (h->type == WIRE_MSG_PING) {
		struct wire_ping ping;
		struct wire_pong pong;
		if (wire_msg__decode_ping(pl, end, &ping)) {
			peer__refuse(p, "agent: malformed PING");
			return;
		}
		pong_of(&ping, &pong);
		wire_msg__encode_pong(b, &pong);
	} else {
		peer__refuse(p, "agent: another debugger is connected: only LIST, ROLLBACK, "
				"RELOAD, HANDLED_LIST and PING are served to an auditor");
	}
}

/* A new connection's first frame: HELLO (the debugger), HELLO_CONTROL (an
 * auditor) or a refusal. b: the server's buffer for the debugger's
 * answers. */
static void peer__first(struct peer *p, const struct wire_hdr *h, const uint8_t *pl,
			struct wire_buf *b)
{
	const uint8_t *end = pl + h->len;
	struct wire_hello hm;
	if (h->type == WIRE_MSG_HELLO_CONTROL) {
		if (wire_msg__decode_hello(pl, end, &hm) || hm.version != WIRE_PROTO_VERSION) {
			peer__refuse(p, "agent: bad HELLO or protocol version");
			return;
		}
		p->role = PEER_AUDITOR;
		p->deadline = p->since + AUDIT_SESSION_MS;
		agent__log("auditor pid %d connected", (int)p->pid);
		encode_welcome(&p->out);
		return;
	}
	if (h->type != WIRE_MSG_HELLO) {
		peer__refuse(p, "agent: HELLO expected first");
		return;
	}
	pthread_mutex_lock(&agent_g.lock);
	bool busy = agent_g.client_fd >= 0;
	if (busy) {
		/* A debugger that left, its EOF not seen yet. */
		char c;
		ssize_t r = recv(agent_g.client_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
			agent_server__close_client_locked("EOF");
			busy = false;
		}
	}
	pthread_mutex_unlock(&agent_g.lock);
	if (busy) {
		peer__refuse(p, "another debugger is connected");
		return;
	}
	/* The debugger: read without waiting like any peer, written to under
	 * agent_g.lock by parked threads too, so a debugger that stops
	 * reading holds a writer at most this long. */
	int fd = p->fd;
	pid_t pid = p->pid;
	struct timeval tv = { 5, 0 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	p->fd = -1; /* now the debugger's */
	peer__drop(p, NULL);
	pthread_mutex_lock(&agent_g.lock);
	agent_g.client_fd = fd;
	pthread_mutex_unlock(&agent_g.lock);
	agent__log("debugger pid %d connected", (int)pid);
	on_hello(b, pl, end);
}

/* poll() said something about p (revents). */
static void peer__io(struct peer *p, short revents, struct wire_buf *b)
{
	struct wire_hdr h;
	uint8_t *payload;
	if (p->out.len) {
		peer__flush(p); /* also how a gone peer is noticed */
		return;
	}
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return;
	/* A RELOAD carries a module's source: up to 4 MiB (peer__audit checks
	 * the other types against PEER_FRAME_MAX). */
	int rc = frame_in__pump(p->fd, &p->in,
				p->role == PEER_AUDITOR ? AUDIT_RELOAD_MAX : PEER_FRAME_MAX);
	if (rc == 0)
		return;
	if (rc == -EPROTO || rc == -EMSGSIZE) {
		peer__refuse(p, rc == -EPROTO ? "agent: malformed frame header"
					      : "agent: frame too large for an auditor");
		peer__flush(p);
		return;
	}
	if (rc < 0) {
		peer__drop(p, rc == -EPIPE ? "EOF" : "read failed");
		return;
	}
	frame_in__take(&p->in, &h, &payload);
	if (p->role == PEER_NEW)
		peer__first(p, &h, payload, b);
	else
		peer__audit(p, &h, payload);
	free(payload);
	if (p->role != PEER_FREE)
		peer__flush(p);
}

static void peers__accept(void)
{
	int fd = accept4(agent_g.listen_fd, NULL, NULL, SOCK_CLOEXEC);
	struct ucred cred;
	socklen_t len = sizeof cred;
	struct peer *p = NULL, *oldest = NULL;
	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) ||
	    (cred.uid != getuid() && cred.uid != 0)) {
		agent__log("refused a peer of uid %u", (unsigned)cred.uid);
		close(fd);
		return;
	}
	for (int i = 0; i < PEERS_MAX && !p; i++) {
		if (g_peers[i].role == PEER_FREE)
			p = &g_peers[i];
		else if (g_peers[i].role == PEER_NEW &&
			 (!oldest || g_peers[i].since < oldest->since))
			oldest = &g_peers[i];
	}
	if (!p && oldest) {
		peer__drop(oldest, "too many connections: the oldest silent one goes");
		p = oldest;
	}
	if (!p) {
		struct wire_buf e = { 0 };
		agent__log("refused peer pid %d: %d auditors served", (int)cred.pid, PEERS_MAX);
		if (wire_msg__encode_error(&e, "agent: too many connections") == 0)
			(void)!send(fd, e.data, e.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		wire_buf__free(&e);
		close(fd);
		return;
	}
	memset(p, 0, sizeof *p);
	p->role = PEER_NEW;
	p->fd = fd;
	p->pid = cred.pid;
	p->since = now_ms();
	p->deadline = p->since + PEER_FIRST_MS;
}

/* Peers inherited through fork (this thread's state in the parent) are
 * only closed: shutting them down would end the parent's sessions. */
static void peers__reset(void)
{
	for (int i = 0; i < PEERS_MAX; i++) {
		if (g_peers[i].role != PEER_FREE)
			close(g_peers[i].fd);
		frame_in__reset(&g_peers[i].in);
		wire_buf__free(&g_peers[i].out);
		memset(&g_peers[i], 0, sizeof g_peers[i]);
		g_peers[i].fd = -1;
	}
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
	peers__reset();
	for (;;) {
		struct pollfd pf[3 + PEERS_MAX];
		struct peer *of[3 + PEERS_MAX];
		int np = 2, dbg = -1;
		long now = now_ms(), wake = now + 200;
		pf[0] = (struct pollfd){ .fd = agent_g.listen_fd, .events = POLLIN };
		pf[1] = (struct pollfd){ .fd = agent_g.fork_rd, .events = POLLIN };
		if (agent_g.client_fd >= 0) {
			dbg = np;
			pf[np++] = (struct pollfd){ .fd = agent_g.client_fd, .events = POLLIN };
			if (g_dbg_in.got && g_dbg_in.begun + SERVE_FRAME_MS < wake)
				wake = g_dbg_in.begun + SERVE_FRAME_MS;
		}
		for (int i = 0; i < PEERS_MAX; i++) {
			struct peer *p = &g_peers[i];
			if (p->role == PEER_FREE)
				continue;
			of[np] = p;
			pf[np++] = (struct pollfd){ .fd = p->fd,
						    .events = p->out.len ? POLLOUT : POLLIN };
			if (p->deadline < wake)
				wake = p->deadline;
		}
		int n = poll(pf, (nfds_t)np, wake > now ? (int)(wake - now) : 0);
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0 && agent_g.fork_rd >= 0 && (pf[1].revents & POLLIN))
			forked_read(&b);
		/* The debugger first: its EOF must be seen before a new
		 * debugger (often the same tool, reconnecting) says HELLO. */
		if (n > 0 && dbg >= 0 && agent_g.client_fd == pf[dbg].fd &&
		    (pf[dbg].revents & (POLLIN | POLLHUP | POLLERR)))
			if (!serve_debugger(&b))
				break;
		/* A debugger that left its probes: their code goes before the
		 * next one is accepted. */
		agent_probe__clear_orphans();
		for (int i = 2; n > 0 && i < np; i++)
			if (i != dbg && pf[i].revents && of[i]->role != PEER_FREE &&
			    of[i]->fd == pf[i].fd)
				peer__io(of[i], pf[i].revents, &b);
		now = now_ms();
		/* A debugger stopped inside a frame. */
		if (agent_g.client_fd >= 0 && g_dbg_in.got &&
		    now - g_dbg_in.begun >= SERVE_FRAME_MS) {
			pthread_mutex_lock(&agent_g.lock);
			agent_server__close_client_locked("read timed out inside a frame");
			pthread_mutex_unlock(&agent_g.lock);
		}
		for (int i = 0; i < PEERS_MAX; i++)
			if (g_peers[i].role != PEER_FREE && now >= g_peers[i].deadline)
				peer__drop(&g_peers[i], g_peers[i].role == PEER_NEW
								? "no first frame in time"
								: "session over its time bound");
		if (n > 0 && (pf[0].revents & POLLIN))
			peers__accept();
		/* Firings, coalesced: at most one HITS every 100 ms. */
		if (agent_install__hits_pending() &&
		    __atomic_load_n(&agent_g.ready, __ATOMIC_RELAXED) && agent_g.hits) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			if ((ts.tv_sec - last_hits.tv_sec) * 1000 +
				    (ts.tv_nsec - last_hits.tv_nsec) / 1000000 >=
			    100) {
				agent_server__send_hits(NULL);
				last_hits = ts;
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
	for (int i = 0; i < PEERS_MAX; i++)
		peer__drop(&g_peers[i], NULL);
	wire_buf__free(&b);
}
