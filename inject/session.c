/* inject/: a debugger's session with the agent (inject/inject.h). */
#include "inject/inject.h"
#include "attach/attach.h"
#include "wire/channel.h"
#include "inject/inject-priv.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_MAX 64

struct inject_session {
	pid_t pid;
	pid_t nspid; /* the agent's own pid (WELCOME), in its pid namespace */
	int fd;
	enum inject_how how;
	struct wire_welcome welcome;
	uint64_t next_request;
	/* Crash reports that arrived while waiting for another answer. */
	struct wire_crash queue[QUEUE_MAX];
	size_t qhead, qlen;
	bool detached;
	struct inject_timings timings;
	/* HELD_CHANGED frames not read by next_event yet. */
	struct wire_held_changed held[8];
	size_t nheld;
	/* HITS received, not taken yet. */
	struct wire_hit *hits;
	size_t nhits;
	/* HANDLED received, not taken yet. */
	struct wire_handled_entry *handled;
	size_t nhandled;
	/* FORKED received, not taken yet (the oldest dropped when full). */
	struct wire_forked forked[64];
	size_t nforked;
	char err[512];
};

static int fail(struct inject_session *s, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct inject_session *s, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof s->err, fmt, ap);
	va_end(ap);
	return rc;
}

const char *inject_session__error(const struct inject_session *s)
{
	return s ? s->err : "";
}

pid_t inject_session__pid(const struct inject_session *s)
{
	return s->pid;
}
enum inject_how inject_session__how(const struct inject_session *s)
{
	return s->how;
}
uint32_t inject_session__watch_mode(const struct inject_session *s)
{
	return s->welcome.watch_mode;
}
const char *inject_session__watch_detail(const struct inject_session *s)
{
	return s->welcome.detail;
}
uint32_t inject_session__py_hexversion(const struct inject_session *s)
{
	return s->welcome.py_hexversion;
}
int inject_session__fd(const struct inject_session *s)
{
	return s->fd;
}

int inject_socket_path(pid_t pid, char *buf, size_t cap)
{
	struct inject_target t;
	char err[256];
	int rc = inject__target_open(pid, &t, err, sizeof err);
	if (rc == 0)
		rc = inject__target_sock_path(&t, buf, cap);
	inject__target_close(&t);
	return rc;
}

int inject_channel_check(pid_t pid, char *why, size_t cap)
{
	struct inject_target t;
	char err[256];
	int rc = inject__target_open(pid, &t, err, sizeof err);
	if (rc == 0)
		rc = inject__target_place(&t, why, cap);
	inject__target_close(&t);
	return rc == -EPERM ? rc : rc == -ENOENT ? 0 : rc;
}

uint64_t inject__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void inject_session__timings(const struct inject_session *s, struct inject_timings *t)
{
	*t = s->timings;
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int send_buf(struct inject_session *s, struct wire_buf *b)
{
	if (b->err)
		return fail(s, b->err, "inject: pid %d: cannot encode a frame", (int)s->pid);
	int rc = wire_channel__write_all(s->fd, b->data, b->len);
	wire_buf__reset(b);
	if (rc)
		return fail(s, rc == -ECONNRESET ? -EPIPE : rc,
			    "inject: pid %d: the agent's channel is closed", (int)s->pid);
	return 0;
}

/* Read one frame within timeout_ms (-1 forever). *payload is malloc'ed. */
static int read_frame(struct inject_session *s, int timeout_ms, struct wire_hdr *h,
		      uint8_t **payload)
{
	int rc = wire_channel__read_frame(s->fd, timeout_ms, h, payload);
	switch (rc) {
	case 0:
	case -ETIMEDOUT:
		return rc;
	case -EPIPE:
		return fail(s, rc, "inject: pid %d: the agent closed the channel", (int)s->pid);
	case -EPROTO:
		return fail(s, rc, "inject: pid %d: malformed frame header from the agent",
			    (int)s->pid);
	case -ENOMEM:
		return fail(s, rc, "inject: pid %d: out of memory", (int)s->pid);
	default:
		return fail(s, rc, "inject: pid %d: poll: %s", (int)s->pid, strerror(-rc));
	}
}

/* A HITS frame: its counts join s->hits (a malformed one is dropped: the
 * counts are statistics, the conversation goes on). Frees payload. */
static void note_hits(struct inject_session *s, uint8_t *payload, uint32_t len)
{
	struct wire_hits m;
	struct wire_hits_iter it;
	struct wire_hit e;
	if (wire_msg__decode_hits(payload, payload + len, &m) == 0) {
		wire_hits_iter__init(&it, &m);
		while (wire_hits_iter__next(&it, &e) > 0) {
			size_t i = 0;
			while (i < s->nhits && (s->hits[i].orig_addr != e.orig_addr ||
						strcmp(s->hits[i].name, e.name) != 0))
				i++;
			if (i == s->nhits) {
				struct wire_hit *v = realloc(s->hits, (s->nhits + 1) * sizeof *v);
				if (!v)
					break;
				s->hits = v;
				s->hits[s->nhits] = e;
				s->hits[s->nhits++].count = 0;
			}
			s->hits[i].count += e.count;
			if (e.last_ms > s->hits[i].last_ms)
				s->hits[i].last_ms = e.last_ms;
		}
	}
	free(payload);
}

/* A HANDLED frame: its counts join s->handled per (site, type), like
 * HITS. Frees payload. */
static void note_handled(struct inject_session *s, uint8_t *payload, uint32_t len)
{
	struct wire_handled m;
	struct wire_handled_iter it;
	struct wire_handled_entry e;
	if (wire_msg__decode_handled(payload, payload + len, &m) == 0) {
		wire_handled_iter__init(&it, &m);
		while (wire_handled_iter__next(&it, &e) > 0) {
			size_t i = 0;
			while (i < s->nhandled && (strcmp(s->handled[i].site, e.site) != 0 ||
						   strcmp(s->handled[i].exc_type, e.exc_type) != 0))
				i++;
			if (i == s->nhandled) {
				struct wire_handled_entry *v = realloc(s->handled, (s->nhandled +
										    1) * sizeof *v);
				if (!v)
					break;
				s->handled = v;
				s->handled[s->nhandled] = e;
				s->handled[s->nhandled++].count = 0;
			}
			s->handled[i].count += e.count;
			if (e.last_ms > s->handled[i].last_ms)
				s->handled[i].last_ms = e.last_ms;
		}
	}
	free(payload);
}

bool inject_session__has_handled(const struct inject_session *s)
{
	return s && s->nhandled;
}

int inject_session__take_handled(struct inject_session *s, struct wire_handled_entry **out,
				 size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!s || !s->nhandled)
		return 0;
	*out = s->handled;
	*n = s->nhandled;
	s->handled = NULL;
	s->nhandled = 0;
	return 0;
}

/* A FORKED frame: the child joins s->forked (a malformed one is dropped). */
static void note_forked(struct inject_session *s, uint8_t *payload, uint32_t len)
{
	struct wire_forked f;
	if (wire_msg__decode_forked(payload, payload + len, &f) == 0) {
		size_t cap = sizeof s->forked / sizeof s->forked[0];
		if (s->nforked == cap) {
			memmove(s->forked, s->forked + 1, (cap - 1) * sizeof s->forked[0]);
			s->nforked--;
		}
		s->forked[s->nforked++] = f;
	}
	free(payload);
}

size_t inject_session__take_forked(struct inject_session *s, struct wire_forked *out, size_t cap)
{
	size_t n = s && s->nforked < cap ? s->nforked : cap;
	if (!s)
		return 0;
	memcpy(out, s->forked, n * sizeof *out);
	memmove(s->forked, s->forked + n, (s->nforked - n) * sizeof *out);
	s->nforked -= n;
	return n;
}

int inject_session__take_hits(struct inject_session *s, struct wire_hit **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!s || !s->nhits)
		return 0;
	*out = s->hits;
	*n = s->nhits;
	s->hits = NULL;
	s->nhits = 0;
	return 0;
}

/* A HELD_CHANGED frame arrived while something else was awaited: kept
 * for next_event (a malformed one, or one past the queue, is dropped: the
 * held crash stays held and a later reload tells again). Frees payload. */
static void note_held(struct inject_session *s, uint8_t *payload, uint32_t len)
{
	if (s->nheld < sizeof s->held / sizeof s->held[0] &&
	    wire_msg__decode_held_changed(payload, payload + len, &s->held[s->nheld]) == 0)
		s->nheld++;
	free(payload);
}

/* Wait for a frame of type `want`, queueing crash reports meanwhile. */
static int await(struct inject_session *s, uint16_t want, int timeout_ms, uint8_t **payload,
		 uint32_t *len)
{
	long deadline = now_ms() + timeout_ms;
	for (;;) {
		struct wire_hdr h;
		long left = timeout_ms < 0 ? -1 : deadline - now_ms();
		if (timeout_ms >= 0 && left < 0)
			left = 0;
		int rc = read_frame(s, (int)left, &h, payload);
		if (rc == -ETIMEDOUT)
			return fail(s, rc, "inject: pid %d: no answer from the agent", (int)s->pid);
		if (rc)
			return rc;
		if (h.type == want) {
			*len = h.len;
			return 0;
		}
		if (h.type == WIRE_MSG_HITS) {
			note_hits(s, *payload, h.len);
			*payload = NULL;
			continue;
		}
		if (h.type == WIRE_MSG_HANDLED) {
			note_handled(s, *payload, h.len);
			*payload = NULL;
			continue;
		}
		if (h.type == WIRE_MSG_HELD_CHANGED) {
			note_held(s, *payload, h.len);
			*payload = NULL;
			continue;
		}
		if (h.type == WIRE_MSG_FORKED) {
			note_forked(s, *payload, h.len);
			*payload = NULL;
			continue;
		}
		if (h.type == WIRE_MSG_CRASH && s->qlen < QUEUE_MAX) {
			struct wire_crash *c = &s->queue[(s->qhead + s->qlen) % QUEUE_MAX];
			if (wire_msg__decode_crash(*payload, *payload + h.len, c) == 0)
				s->qlen++;
			free(*payload);
			continue;
		}
		if (h.type == WIRE_MSG_ERROR) {
			char text[256];
			wire_msg__decode_error(*payload, *payload + h.len, text, sizeof text);
			free(*payload);
			return fail(s, -EPROTO, "inject: pid %d: the agent refused: %s",
				    (int)s->pid, text);
		}
		free(*payload);
		if (h.type != WIRE_MSG_CRASH)
			return fail(s, -EPROTO,
				    "inject: pid %d: unexpected frame type %u from the agent",
				    (int)s->pid, h.type);
	}
}

static int handshake(struct inject_session *s, const struct inject_opts *o)
{
	struct wire_buf b = { 0 };
	struct wire_hello *hello = calloc(1, sizeof *hello); /* 4 KiB of paths */
	if (!hello)
		return fail(s, -ENOMEM, "inject: pid %d: out of memory", (int)s->pid);
	hello->version = WIRE_PROTO_VERSION;
	hello->timeout_ms = o ? o->park_timeout_ms : 0;
	hello->flags = o && o->hits && !o->control ? WIRE_HELLO_F_HITS : 0;
	if (o && o->hold && !o->control)
		hello->flags |= WIRE_HELLO_F_HOLD;
	if (o && o->tree && !o->control)
		hello->flags |= WIRE_HELLO_F_TREE;
	if (o && o->handled && !o->control) {
		const char *hh = o->heal_handled ? o->heal_handled : "";
		if (strlen(hh) >= sizeof hello->heal_handled) {
			free(hello);
			return fail(s, -ENAMETOOLONG,
				    "inject: pid %d: --heal-handled: over %zu bytes", (int)s->pid,
				    sizeof hello->heal_handled - 1);
		}
		hello->flags |= WIRE_HELLO_F_HANDLED;
		snprintf(hello->heal_handled, sizeof hello->heal_handled, "%s", hh);
	}
	if (o && o->app_paths && o->app_paths[0] && !o->control) {
		if (strlen(o->app_paths) >= sizeof hello->app_paths) {
			free(hello);
			return fail(s, -ENAMETOOLONG, "inject: pid %d: --app-path: over %zu bytes",
				    (int)s->pid, sizeof hello->app_paths - 1);
		}
		hello->flags |= WIRE_HELLO_F_APP_PATHS;
		snprintf(hello->app_paths, sizeof hello->app_paths, "%s", o->app_paths);
	}
	uint8_t *p;
	uint32_t len;
	if (o && o->control)
		wire_msg__encode_hello_control(&b, hello);
	else
		wire_msg__encode_hello(&b, hello);
	free(hello);
	int rc = send_buf(s, &b);
	wire_buf__free(&b);
	/* An agent that refuses us at once (another debugger is connected)
	 * writes ERROR and closes, maybe before our HELLO arrived: the ERROR is
	 * still queued on our side; read it for its cause. */
	if (rc == -EPIPE) {
		int r2 = await(s, WIRE_MSG_WELCOME, 200, &p, &len);
		if (r2 == 0)
			free(p);
		if (r2 == -EPROTO)
			return r2;
		return fail(s, rc, "inject: pid %d: the agent's channel is closed", (int)s->pid);
	}
	if (rc || (rc = await(s, WIRE_MSG_WELCOME, 5000, &p, &len)))
		return rc;
	rc = wire_msg__decode_welcome(p, p + len, &s->welcome);
	free(p);
	if (rc || s->welcome.version != WIRE_PROTO_VERSION || s->welcome.pid != (uint32_t)s->nspid)
		return fail(s, -EPROTO, "inject: pid %d: bad WELCOME from the agent", (int)s->pid);
	return 0;
}

/* Connect, retrying until the agent's socket appears or the bound passes. */
static int connect_wait(const struct inject_target *t, uint32_t timeout_ms, int *fd, char *err,
			size_t cap)
{
	long deadline = now_ms() + (timeout_ms ? timeout_ms : 5000);
	for (;;) {
		int rc = inject__target_connect(t, fd, err, cap);
		if (rc == 0 || (rc != -ENOENT && rc != -ECONNREFUSED) || now_ms() > deadline)
			return rc;
		/* A zombie answers kill(pid, 0): ask /proc whether it runs. */
		if (!attach_pid__alive(t->pid)) {
			snprintf(err, cap, "inject: pid %d: process exited", (int)t->pid);
			return -ESRCH;
		}
		usleep(1000); /* a connect costs little; a late session holds a script */
	}
}

int inject_session__open(pid_t pid, const struct inject_opts *opts, struct inject_session **out,
			 char *err, size_t errlen)
{
	struct inject_opts dflt = { 0 };
	const struct inject_opts *o = opts ? opts : &dflt;
	struct inject_session *s = calloc(1, sizeof *s);
	struct inject_target t = { .rootfd = -1 };
	uint64_t t0 = inject__now_ns();
	int rc;

	*out = NULL;
	if (!s) {
		snprintf(err, errlen, "inject: pid %d: out of memory", (int)pid);
		return -ENOMEM;
	}
	s->pid = pid;
	s->fd = -1;
	s->how = INJECT_HOW_CONNECTED;
	if ((rc = inject__target_open(pid, &t, s->err, sizeof s->err)))
		goto fail;
	s->nspid = t.nspid;
	rc = inject__target_connect(&t, &s->fd, s->err, sizeof s->err);
	if (rc == -ENOENT || rc == -ECONNREFUSED) {
		if (o->no_inject) {
			rc = connect_wait(&t, o->connect_timeout_ms, &s->fd, s->err, sizeof s->err);
		} else {
			/* Everything that would make the agent unreachable once
			 * loaded is checked first: a refusal leaves nothing in
			 * the target. */
			if ((rc = inject__target_check_user(&t, s->err, sizeof s->err)) ||
			    (rc = inject__target_check_proc(&t, s->err, sizeof s->err)))
				goto fail;
			rc = inject__load_agent(pid, o->agent_path, &s->how, &s->timings.stopped_ns,
						s->err, sizeof s->err);
			if (rc == 0)
				rc = connect_wait(&t, o->connect_timeout_ms, &s->fd, s->err,
						  sizeof s->err);
		}
	}
	if (rc || (rc = handshake(s, o)))
		goto fail;
	inject__target_close(&t);
	s->timings.open_ns = inject__now_ns() - t0;
	*out = s;
	return 0;
fail:
	inject__target_close(&t);
	snprintf(err, errlen, "%s", s->err);
	inject_session__close(s);
	return rc;
}

void inject_session__close(struct inject_session *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->hits);
	free(s->handled);
	free(s);
}

/* A HELD_CHANGED as an event: event id, the new code in code_addr, the
 * reload's name in message. */
static int held_event(struct inject_session *s, struct wire_crash *ev)
{
	memset(ev, 0, sizeof *ev);
	ev->event_id = s->held[0].event_id;
	ev->code_addr = s->held[0].code_addr;
	snprintf(ev->message, sizeof ev->message, "%.500s", s->held[0].reload);
	memmove(&s->held[0], &s->held[1], --s->nheld * sizeof s->held[0]);
	return INJECT_EVENT_HELD_CHANGED;
}

int inject_session__queued_event(struct inject_session *s, struct wire_crash *ev)
{
	if (!s->qlen)
		return -EAGAIN;
	*ev = s->queue[s->qhead];
	s->qhead = (s->qhead + 1) % QUEUE_MAX;
	s->qlen--;
	return 0;
}

int inject_session__next_event(struct inject_session *s, int timeout_ms, struct wire_crash *ev)
{
	if (s->nheld)
		return held_event(s, ev);
	if (inject_session__queued_event(s, ev) == 0)
		return 0;
	long deadline = now_ms() + timeout_ms;
	for (;;) {
		struct wire_hdr h;
		uint8_t *p;
		long left = timeout_ms < 0 ? -1 : deadline - now_ms();
		if (timeout_ms >= 0 && left < 0)
			left = 0;
		int rc = read_frame(s, (int)left, &h, &p);
		if (rc)
			return rc;
		if (h.type == WIRE_MSG_CRASH) {
			rc = wire_msg__decode_crash(p, p + h.len, ev);
			free(p);
			if (rc)
				return fail(s, -EPROTO, "inject: pid %d: malformed CRASH",
					    (int)s->pid);
			return 0;
		}
		if (h.type == WIRE_MSG_HITS) {
			note_hits(s, p, h.len);
			continue;
		}
		if (h.type == WIRE_MSG_HANDLED) {
			note_handled(s, p, h.len);
			continue;
		}
		if (h.type == WIRE_MSG_HELD_CHANGED) {
			note_held(s, p, h.len);
			return held_event(s, ev);
		}
		if (h.type == WIRE_MSG_FORKED) {
			note_forked(s, p, h.len);
			continue;
		}
		free(p);
		if (h.type != WIRE_MSG_PONG && h.type != WIRE_MSG_PATCH_RESULT &&
		    h.type != WIRE_MSG_RESUME_RESULT && h.type != WIRE_MSG_LIST_RESULT &&
		    h.type != WIRE_MSG_ROLLBACK_RESULT && h.type != WIRE_MSG_TREE_FILES_RESULT)
			return fail(s, -EPROTO, "inject: pid %d: unexpected frame type %u",
				    (int)s->pid, h.type);
	}
}

int inject_session__release(struct inject_session *s, const struct wire_crash *ev)
{
	struct wire_buf b = { 0 };
	struct wire_release r = { ev->event_id };
	wire_msg__encode_release(&b, &r);
	int rc = send_buf(s, &b);
	wire_buf__free(&b);
	return rc;
}

int inject_session__send_patch(struct inject_session *s, const struct wire_patch *p,
			       struct wire_patch_result *res)
{
	struct wire_buf b = { 0 };
	struct wire_patch copy = *p;
	uint8_t *payload;
	uint32_t len;
	if (!copy.request_id)
		copy.request_id = ++s->next_request;
	int rc = copy.meta.name[0] ? wire_msg__encode_patch_named(&b, &copy)
				   : wire_msg__encode_patch(&b, &copy);
	if (rc) {
		wire_buf__free(&b);
		return fail(s, rc, "inject: pid %d: cannot encode the patch", (int)s->pid);
	}
	rc = send_buf(s, &b);
	wire_buf__free(&b);
	/* gc.get_objects() on a big heap takes a while; give it 30 s. An
	 * answer to an earlier request that timed out may come first: skip it. */
	for (;;) {
		if (rc || (rc = await(s, WIRE_MSG_PATCH_RESULT, 30000, &payload, &len)))
			return rc;
		rc = wire_msg__decode_patch_result(payload, payload + len, res);
		free(payload);
		if (rc)
			return fail(s, -EPROTO, "inject: pid %d: malformed PATCH_RESULT",
				    (int)s->pid);
		if (res->request_id == copy.request_id)
			break;
	}
	if (res->status)
		fail(s, 0, "%s", res->message);
	return 0;
}

int inject_session__resume(struct inject_session *s, const struct wire_crash *ev,
			   uint32_t fallback_unit, uint32_t base_depth,
			   struct wire_resume_result *res, struct wire_crash *nested)
{
	struct wire_buf b = { 0 };
	struct wire_resume r = { ev->event_id, fallback_unit, base_depth };
	wire_msg__encode_resume(&b, &r);
	int rc = send_buf(s, &b);
	wire_buf__free(&b);
	return rc ? rc : inject_session__resume_wait(s, ev, res, nested);
}

int inject_session__resume_wait(struct inject_session *s, const struct wire_crash *ev,
				struct wire_resume_result *res, struct wire_crash *nested)
{
	/* The continuation runs the rest of the failing call: no fixed bound
	 * fits every program, 10 minutes keeps a wedged agent from hanging us. */
	long deadline = now_ms() + 600000;
	for (;;) {
		struct wire_hdr h;
		uint8_t *p;
		long left = deadline - now_ms();
		int rc = read_frame(s, left < 0 ? 0 : (int)left, &h, &p);
		if (rc == -ETIMEDOUT)
			return fail(s, rc, "inject: pid %d: no answer from the agent", (int)s->pid);
		if (rc)
			return rc;
		if (h.type == WIRE_MSG_RESUME_RESULT) {
			rc = wire_msg__decode_resume_result(p, p + h.len, res);
			free(p);
			if (rc || res->event_id != ev->event_id)
				return fail(s, -EPROTO, "inject: pid %d: malformed RESUME_RESULT",
					    (int)s->pid);
			if (res->status < 0)
				fail(s, 0, "%s", res->message);
			return 0;
		}
		if (h.type == WIRE_MSG_CRASH) {
			struct wire_crash c;
			rc = wire_msg__decode_crash(p, p + h.len, &c);
			free(p);
			if (rc)
				return fail(s, -EPROTO, "inject: pid %d: malformed CRASH",
					    (int)s->pid);
			/* The resumed thread runs the continuation until it answers:
			 * a crash it reports meanwhile is inside it, and parked
			 * until handled; the answer cannot come before. */
			if (nested && c.tid == ev->tid) {
				*nested = c;
				return INJECT_RESUME_NESTED;
			}
			if (s->qlen < QUEUE_MAX) {
				s->queue[(s->qhead + s->qlen) % QUEUE_MAX] = c;
				s->qlen++;
			}
			continue;
		}
		if (h.type == WIRE_MSG_HITS) {
			note_hits(s, p, h.len);
			continue;
		}
		if (h.type == WIRE_MSG_HANDLED) {
			note_handled(s, p, h.len);
			continue;
		}
		if (h.type == WIRE_MSG_HELD_CHANGED) {
			note_held(s, p, h.len);
			continue;
		}
		if (h.type == WIRE_MSG_FORKED) {
			note_forked(s, p, h.len);
			continue;
		}
		if (h.type == WIRE_MSG_ERROR) {
			char text[256];
			wire_msg__decode_error(p, p + h.len, text, sizeof text);
			free(p);
			return fail(s, -EPROTO, "inject: pid %d: the agent refused: %s",
				    (int)s->pid, text);
		}
		free(p);
		return fail(s, -EPROTO, "inject: pid %d: unexpected frame type %u from the agent",
			    (int)s->pid, h.type);
	}
}

int inject_session__restart(struct inject_session *s, const struct wire_crash *ev,
			    const struct wire_restart *r, struct wire_resume_result *res,
			    struct wire_crash *nested)
{
	struct wire_buf b = { 0 };
	wire_msg__encode_restart(&b, r);
	int rc = send_buf(s, &b);
	wire_buf__free(&b);
	return rc ? rc : inject_session__resume_wait(s, ev, res, nested);
}

int inject_session__list(struct inject_session *s, struct wire_live_patch **out, size_t *n)
{
	struct wire_buf b = { 0 };
	struct wire_list m = { ++s->next_request };
	struct wire_list_result lr;
	struct wire_live_iter it;
	uint8_t *p;
	uint32_t len;
	*out = NULL;
	*n = 0;
	wire_msg__encode_list(&b, &m);
	int rc = send_buf(s, &b);
	wire_buf__free(&b);
	for (;;) { /* gc.get_objects() again: 30 s, as for a patch */
		if (rc || (rc = await(s, WIRE_MSG_LIST_RESULT, 30000, &p, &len)))
			return rc;
		if (wire_msg__decode_list_result(p, p + len, &lr)) {
			free(p);
			return fail(s, -EPROTO, "inject: pid %d: malformed LIST_RESULT",
				    (int)s->pid);
		}
		if (lr.request_id == m.request_id)
			break;
		free(p);
	}
	struct wire_live_patch *v = lr.count ? calloc(lr.count, sizeof *v) : NULL;
	if (lr.count && !v) {
		free(p);
		return fail(s, -ENOMEM, "inject: pid %d: out of memory", (int)s->pid);
	}
	wire_live_iter__init(&it, &lr);
	size_t k = 0;
	while (k < lr.count && wire_live_iter__next(&it, &v[k]) > 0)
		k++;
	free(p);
	*out = v;
	*n = k;
	return 0;
}

int inject_session__list_handled(struct inject_session *s, struct wire_handled_entry **out,
				 size_t *n)
{
	struct wire_buf b = { 0 };
	struct wire_handled m;
	struct wire_handled_iter it;
	uint8_t *p;
	uint32_t len;
	*out = NULL;
	*n = 0;
	wire_msg__encode_empty(&b, WIRE_MSG_HANDLED_LIST);
	int rc = send_buf(s, &b);
	wire_buf__free(&b);
	if (rc || (rc = await(s, WIRE_MSG_HANDLED_RESULT, 10000, &p, &len)))
		return rc;
	if (wire_msg__decode_handled(p, p + len, &m)) {
		free(p);
		return fail(s, -EPROTO, "inject: pid %d: malformed HANDLED_RESULT", (int)s->pid);
	}
	struct wire_handled_entry *v = m.count ? calloc(m.count, sizeof *v) : NULL;
	if (m.count && !v) {
		free(p);
		return fail(s, -ENOMEM, "inject: pid %d: out of memory", (int)s->pid);
	}
	wire_handled_iter__init(&it, &m);
	size_t k = 0;
	while (k < m.count && wire_handled_iter__next(&it, &v[k]) > 0)
		k++;
	free(p);
	*out = v;
	*n = k;
	return 0;
}

int inject_session__rollback(struct inject_session *s, const char *name, bool dry_run,
			     struct wire_rollback_result *res)
{
	struct wire_buf b = { 0 };
	struct wire_rollback m = { .request_id = ++s->next_request };
	uint8_t *p;
	uint32_t len;
	if (name && strlen(name) > WIRE_NAME_MAX)
		return fail(s, -ENAMETOOLONG, "inject: pid %d: patch name too long", (int)s->pid);
	m.flags = (name ? 0 : WIRE_ROLLBACK_F_ALL) | (dry_run ? WIRE_ROLLBACK_F_DRY_RUN : 0);
	snprintf(m.name, sizeof m.name, "%s", name ? name : "");
	wire_msg__encode_rollback(&b, &m);
	int rc = send_buf(s, &b);
	wire_buf__free(&b);
	for (;;) {
		if (rc || (rc = await(s, WIRE_MSG_ROLLBACK_RESULT, 30000, &p, &len)))
			return rc;
		rc = wire_msg__decode_rollback_result(p, p + len, res);
		free(p);
		if (rc)
			return fail(s, -EPROTO, "inject: pid %d: malformed ROLLBACK_RESULT",
				    (int)s->pid);
		if (res->request_id == m.request_id)
			break;
	}
	if (res->status)
		fail(s, 0, "%s", res->message);
	return 0;
}

int inject_session__tree_files(struct inject_session *s, const char *sock, const char *files,
			       size_t len, uint32_t *kept)
{
	struct wire_buf b = { 0 };
	struct wire_tree_files m = { .files = files, .files_len = len };
	uint8_t *p;
	uint32_t n;
	snprintf(m.sock, sizeof m.sock, "%s", sock);
	wire_msg__encode_tree_files(&b, &m);
	int rc = send_buf(s, &b);
	wire_buf__free(&b);
	if (rc || (rc = await(s, WIRE_MSG_TREE_FILES_RESULT, 5000, &p, &n)))
		return rc;
	rc = wire_msg__decode_tree_files_result(p, p + n, kept);
	free(p);
	if (rc)
		return fail(s, -EPROTO, "inject: pid %d: malformed TREE_FILES_RESULT", (int)s->pid);
	return 0;
}

int inject_session__ping(struct inject_session *s, struct wire_pong *out)
{
	struct wire_buf b = { 0 };
	struct wire_ping ping = { (uint64_t)now_ms() };
	uint8_t *p;
	uint32_t len;
	wire_msg__encode_ping(&b, &ping);
	int rc = send_buf(s, &b);
	wire_buf__free(&b);
	for (;;) { /* skip the answer to an earlier ping that timed out */
		if (rc || (rc = await(s, WIRE_MSG_PONG, 5000, &p, &len)))
			return rc;
		rc = wire_msg__decode_pong(p, p + len, out);
		free(p);
		if (rc)
			return fail(s, -EPROTO, "inject: pid %d: malformed PONG", (int)s->pid);
		if (out->cookie == ping.cookie)
			return 0;
	}
}

int inject_session__detach(struct inject_session *s)
{
	struct wire_buf b = { 0 };
	uint8_t *p;
	uint32_t len;
	if (s->detached)
		return 0;
	wire_msg__encode_empty(&b, WIRE_MSG_DETACH);
	int rc = send_buf(s, &b);
	wire_buf__free(&b);
	if (rc || (rc = await(s, WIRE_MSG_BYE, 10000, &p, &len)))
		return rc;
	free(p);
	s->detached = true;
	return 0;
}

int inject_session__reload(struct inject_session *s, const char *path, const void *source,
			   size_t len, struct wire_reload_result *res, uint8_t **frame)
{
	static struct wire_reload m; /* 4 KiB of path; one thread drives sessions */
	struct wire_buf b = { 0 };
	uint8_t *p;
	uint32_t plen;
	*frame = NULL;
	memset(&m, 0, sizeof m);
	m.request_id = ++s->next_request;
	if (strlen(path) >= sizeof m.path)
		return fail(s, -ENAMETOOLONG, "inject: pid %d: %s: path too long", (int)s->pid,
			    path);
	snprintf(m.path, sizeof m.path, "%s", path);
	m.source = source;
	m.source_len = len;
	int rc = wire_msg__encode_reload(&b, &m);
	if (rc) {
		wire_buf__free(&b);
		return fail(s, rc, "inject: pid %d: %s: cannot encode the reload (%s)", (int)s->pid,
			    path, strerror(-rc));
	}
	rc = send_buf(s, &b);
	wire_buf__free(&b);
	for (;;) { /* compiling and gc.get_objects(): 30 s, as for a patch */
		if (rc || (rc = await(s, WIRE_MSG_RELOAD_RESULT, 30000, &p, &plen)))
			return rc;
		if (wire_msg__decode_reload_result(p, p + plen, res)) {
			free(p);
			return fail(s, -EPROTO, "inject: pid %d: malformed RELOAD_RESULT",
				    (int)s->pid);
		}
		if (res->request_id == m.request_id)
			break;
		free(p);
	}
	*frame = p;
	if (res->status)
		fail(s, 0, "%s", res->message);
	return 0;
}
