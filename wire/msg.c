/* wire/: channel wire forms. Spec: docs/formats/channel.md.
 *
 * One file over 800 lines: one small encoder and one checked decoder per
 * message type, in channel.md's order, so the format and its code read
 * side by side. */
#include "wire/msg.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(double) == 8, "f64 constants are carried as 8 bytes");

/* ------------------------------------------------------------------ */
/* Encoding                                                           */

void wire_buf__free(struct wire_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->err = 0;
}

void wire_buf__reset(struct wire_buf *b)
{
	b->len = 0;
	b->err = 0;
}

void wire_buf__put(struct wire_buf *b, const void *src, size_t n)
{
	if (b->err)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *d = realloc(b->data, cap);
		if (!d) {
			b->err = -ENOMEM;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, src, n);
	b->len += n;
}

static void put(struct wire_buf *b, const void *src, size_t n)
{
	wire_buf__put(b, src, n);
}

static void put_u8(struct wire_buf *b, uint8_t v)
{
	put(b, &v, 1);
}

static void put_u16(struct wire_buf *b, uint16_t v)
{
	uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	put(b, x, 2);
}

static void put_u32(struct wire_buf *b, uint32_t v)
{
	uint8_t x[4];
	for (int i = 0; i < 4; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	put(b, x, 4);
}

static void put_u64(struct wire_buf *b, uint64_t v)
{
	uint8_t x[8];
	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	put(b, x, 8);
}

static void put_blob(struct wire_buf *b, const void *p, size_t n)
{
	if (n > WIRE_MAX_PAYLOAD) {
		b->err = -E2BIG;
		return;
	}
	put_u32(b, (uint32_t)n);
	put(b, p, n);
}

static void put_str(struct wire_buf *b, const char *s)
{
	put_blob(b, s ? s : "", s ? strlen(s) : 0);
}

/* Frames are built in place: reserve the header, write the payload, then
 * fill the length in. */
static size_t frame_begin(struct wire_buf *b, enum wire_msg_type type)
{
	size_t at = b->len;
	put_u32(b, 0);
	put_u16(b, (uint16_t)type);
	put_u16(b, 0);
	return at;
}

static int frame_end(struct wire_buf *b, size_t at)
{
	if (b->err)
		return b->err;
	size_t n = b->len - at - WIRE_HDR_SIZE;
	if (n > WIRE_MAX_PAYLOAD) {
		b->len = at;
		return -E2BIG;
	}
	for (int i = 0; i < 4; i++)
		b->data[at + i] = (uint8_t)(n >> (8 * i));
	return 0;
}

int wire_msg__encode_hello(struct wire_buf *b, const struct wire_hello *m)
{
	size_t at = frame_begin(b, WIRE_MSG_HELLO);
	put_u32(b, m->version);
	put_u32(b, m->timeout_ms);
	put_u32(b, m->flags);
	if (m->flags & WIRE_HELLO_F_APP_PATHS) {
		size_t n = strnlen(m->app_paths, sizeof(m->app_paths));
		if (n == sizeof(m->app_paths)) {
			b->err = -ENAMETOOLONG;
			return b->err;
		}
		put_blob(b, m->app_paths, n);
	}
	if (m->flags & WIRE_HELLO_F_HANDLED) {
		size_t n = strnlen(m->heal_handled, sizeof(m->heal_handled));
		if (n == sizeof(m->heal_handled)) {
			b->err = -ENAMETOOLONG;
			return b->err;
		}
		put_blob(b, m->heal_handled, n);
	}
	return frame_end(b, at);
}

int wire_msg__encode_hello_control(struct wire_buf *b, const struct wire_hello *m)
{
	size_t at = frame_begin(b, WIRE_MSG_HELLO_CONTROL);
	put_u32(b, m->version);
	put_u32(b, m->timeout_ms);
	put_u32(b, m->flags);
	return frame_end(b, at);
}

int wire_msg__encode_welcome(struct wire_buf *b, const struct wire_welcome *m)
{
	size_t at = frame_begin(b, WIRE_MSG_WELCOME);
	put_u32(b, m->version);
	put_u32(b, m->pid);
	put_u32(b, m->py_hexversion);
	put_u32(b, m->watch_mode);
	put_str(b, m->detail);
	return frame_end(b, at);
}

int wire_msg__encode_crash(struct wire_buf *b, const struct wire_crash *m)
{
	size_t at = frame_begin(b, WIRE_MSG_CRASH);
	put_u64(b, m->event_id);
	put_u64(b, m->tid);
	put_u64(b, m->thread_ident);
	put_u64(b, m->code_addr);
	put_u64(b, m->frame_addr);
	put_u32(b, m->offset);
	put_u32(b, m->line);
	put_str(b, m->exc_type);
	put_str(b, m->message);
	put_str(b, m->filename);
	put_str(b, m->qualname);
	return frame_end(b, at);
}

int wire_msg__encode_release(struct wire_buf *b, const struct wire_release *m)
{
	size_t at = frame_begin(b, WIRE_MSG_RELEASE);
	put_u64(b, m->event_id);
	return frame_end(b, at);
}

static int put_const(struct wire_buf *b, const struct wire_const *c, int depth)
{
	uint64_t bits;
	put_u8(b, (uint8_t)c->kind);
	switch (c->kind) {
	case WIRE_CONST_NONE:
	case WIRE_CONST_TRUE:
	case WIRE_CONST_FALSE:
	case WIRE_CONST_ELLIPSIS:
		return 0;
	case WIRE_CONST_INT:
		put_u64(b, (uint64_t)c->i);
		return 0;
	case WIRE_CONST_FLOAT:
		memcpy(&bits, &c->f, 8);
		put_u64(b, bits);
		return 0;
	case WIRE_CONST_STR:
	case WIRE_CONST_BYTES:
	case WIRE_CONST_BUILTIN:
	case WIRE_CONST_HELPER:
		put_blob(b, c->data, c->len);
		return 0;
	case WIRE_CONST_TUPLE:
		if (depth >= WIRE_MAX_CONST_DEPTH || c->nitems > UINT32_MAX)
			return -EINVAL;
		put_u32(b, (uint32_t)c->nitems);
		for (size_t i = 0; i < c->nitems; i++) {
			int rc = put_const(b, &c->items[i], depth + 1);
			if (rc)
				return rc;
		}
		return 0;
	}
	return -EINVAL;
}

/* PATCH's payload (shared by PATCH and PATCH_NAMED); 0 or -EINVAL. */
static int put_patch_body(struct wire_buf *b, const struct wire_patch *m)
{
	put_u64(b, m->request_id);
	put_u64(b, m->code_addr);
	put_u32(b, m->stacksize);
	put_u32(b, m->flags);
	put_blob(b, m->code, m->code_len);
	put_blob(b, m->exctable, m->exctable_len);
	put_blob(b, m->linetable, m->linetable_len);
	put_u32(b, (uint32_t)m->nconsts);
	for (size_t i = 0; i < m->nconsts; i++) {
		int rc = put_const(b, &m->consts[i], 0);
		if (rc)
			return rc;
	}
	put_u32(b, (uint32_t)m->nnames);
	for (size_t i = 0; i < m->nnames; i++)
		put_str(b, m->names[i]);
	return 0;
}

int wire_msg__encode_patch(struct wire_buf *b, const struct wire_patch *m)
{
	size_t at = frame_begin(b, WIRE_MSG_PATCH);
	int rc = put_patch_body(b, m);
	if (rc) {
		b->len = at;
		return rc;
	}
	return frame_end(b, at);
}

static void put_meta(struct wire_buf *b, const struct wire_patch_meta *m)
{
	put_str(b, m->name);
	put_str(b, m->guard);
	put_str(b, m->target);
	put_str(b, m->fallback);
}

int wire_msg__encode_patch_named(struct wire_buf *b, const struct wire_patch *m)
{
	size_t n = strnlen(m->meta.name, sizeof m->meta.name);
	if (n == 0 || n > WIRE_NAME_MAX)
		return -EINVAL;
	size_t at = frame_begin(b, WIRE_MSG_PATCH_NAMED);
	put_meta(b, &m->meta);
	int rc = put_patch_body(b, m);
	if (rc) {
		b->len = at;
		return rc;
	}
	return frame_end(b, at);
}

int wire_msg__encode_list(struct wire_buf *b, const struct wire_list *m)
{
	size_t at = frame_begin(b, WIRE_MSG_LIST);
	put_u64(b, m->request_id);
	return frame_end(b, at);
}

int wire_msg__list_result_begin(struct wire_buf *b, uint64_t request_id, uint32_t count, size_t *at)
{
	*at = frame_begin(b, WIRE_MSG_LIST_RESULT);
	put_u64(b, request_id);
	put_u32(b, count);
	return b->err;
}

void wire_msg__list_result_entry(struct wire_buf *b, const struct wire_live_patch *e)
{
	put_meta(b, &e->meta);
	put_str(b, e->qualname);
	put_str(b, e->filename);
	put_u32(b, e->first_line);
	put_u32(b, e->flags);
	put_u64(b, e->orig_addr);
	put_u64(b, e->new_addr);
	put_u64(b, e->installed_ms);
	put_u32(b, e->nfunctions);
	put_u32(b, e->nparents);
	put_u32(b, e->nframes);
	put_u32(b, e->live_functions);
	put_u64(b, e->hits);
	put_u64(b, e->last_hit_ms);
}

int wire_msg__hits_begin(struct wire_buf *b, uint32_t count, size_t *at)
{
	*at = frame_begin(b, WIRE_MSG_HITS);
	put_u32(b, count);
	return b->err;
}

void wire_msg__hits_entry(struct wire_buf *b, const struct wire_hit *e)
{
	put_str(b, e->name);
	put_u64(b, e->orig_addr);
	put_u64(b, e->count);
	put_u64(b, e->last_ms);
}

int wire_msg__hits_end(struct wire_buf *b, size_t at)
{
	return frame_end(b, at);
}

int wire_msg__handled_begin(struct wire_buf *b, enum wire_msg_type type, uint32_t count, size_t *at)
{
	*at = frame_begin(b, type);
	put_u32(b, count);
	return b->err;
}

void wire_msg__handled_entry(struct wire_buf *b, const struct wire_handled_entry *e)
{
	put_str(b, e->site);
	put_str(b, e->exc_type);
	put_u64(b, e->count);
	put_u64(b, e->last_ms);
}

int wire_msg__handled_end(struct wire_buf *b, size_t at)
{
	return frame_end(b, at);
}

int wire_msg__list_result_end(struct wire_buf *b, size_t at)
{
	return frame_end(b, at);
}

int wire_msg__encode_rollback(struct wire_buf *b, const struct wire_rollback *m)
{
	size_t at = frame_begin(b, WIRE_MSG_ROLLBACK);
	put_u64(b, m->request_id);
	put_u32(b, m->flags);
	put_str(b, m->name);
	return frame_end(b, at);
}

int wire_msg__encode_rollback_result(struct wire_buf *b, const struct wire_rollback_result *m)
{
	size_t at = frame_begin(b, WIRE_MSG_ROLLBACK_RESULT);
	put_u64(b, m->request_id);
	put_u32(b, (uint32_t)m->status);
	put_u32(b, m->npatches);
	put_u32(b, m->nfunctions);
	put_u32(b, m->nframes);
	put_str(b, m->message);
	return frame_end(b, at);
}

int wire_msg__encode_patch_result(struct wire_buf *b, const struct wire_patch_result *m)
{
	size_t at = frame_begin(b, WIRE_MSG_PATCH_RESULT);
	put_u64(b, m->request_id);
	put_u32(b, (uint32_t)m->status);
	put_u32(b, m->nfunctions);
	put_u32(b, m->nparents);
	put_u32(b, m->nframes);
	put_u64(b, m->key);
	put_str(b, m->message);
	return frame_end(b, at);
}

int wire_msg__encode_ping(struct wire_buf *b, const struct wire_ping *m)
{
	size_t at = frame_begin(b, WIRE_MSG_PING);
	put_u64(b, m->cookie);
	return frame_end(b, at);
}

/* docs/formats/channel.md, "Process trees (FORKED)". */
int wire_msg__encode_forked(struct wire_buf *b, const struct wire_forked *m)
{
	assert(m->pid && m->ppid);
	size_t at = frame_begin(b, WIRE_MSG_FORKED);
	put_u32(b, m->pid);
	put_u32(b, m->ppid);
	return frame_end(b, at);
}

int wire_msg__encode_tree_files(struct wire_buf *b, const struct wire_tree_files *m)
{
	size_t n = strnlen(m->sock, sizeof m->sock);
	if (n == sizeof m->sock || (n == 0 && m->files_len)) {
		b->err = n ? -ENAMETOOLONG : -EINVAL;
		return b->err;
	}
	if (m->files_len > WIRE_TREE_FILES_MAX) {
		b->err = -E2BIG;
		return b->err;
	}
	size_t at = frame_begin(b, WIRE_MSG_TREE_FILES);
	put_str(b, m->sock);
	put_blob(b, m->files, m->files_len);
	return frame_end(b, at);
}

int wire_msg__encode_tree_files_result(struct wire_buf *b, uint32_t nfiles)
{
	size_t at = frame_begin(b, WIRE_MSG_TREE_FILES_RESULT);
	put_u32(b, nfiles);
	return frame_end(b, at);
}

int wire_msg__encode_pong(struct wire_buf *b, const struct wire_pong *m)
{
	size_t at = frame_begin(b, WIRE_MSG_PONG);
	put_u64(b, m->cookie);
	put_u32(b, m->crashes);
	put_u32(b, m->parked);
	put_u64(b, m->hook_calls);
	return frame_end(b, at);
}

int wire_msg__encode_resume(struct wire_buf *b, const struct wire_resume *m)
{
	size_t at = frame_begin(b, WIRE_MSG_RESUME);
	put_u64(b, m->event_id);
	put_u32(b, m->fallback_unit);
	put_u32(b, m->base_depth);
	return frame_end(b, at);
}

int wire_msg__encode_resume_result(struct wire_buf *b, const struct wire_resume_result *m)
{
	size_t at = frame_begin(b, WIRE_MSG_RESUME_RESULT);
	put_u64(b, m->event_id);
	put_u32(b, (uint32_t)m->status);
	put_str(b, m->message);
	return frame_end(b, at);
}

int wire_msg__encode_reload(struct wire_buf *b, const struct wire_reload *m)
{
	size_t n = strnlen(m->path, sizeof m->path);
	if (n == sizeof m->path || n == 0) {
		b->err = n ? -ENAMETOOLONG : -EINVAL;
		return b->err;
	}
	size_t at = frame_begin(b, WIRE_MSG_RELOAD);
	put_u64(b, m->request_id);
	put_u32(b, m->flags);
	put_str(b, m->path);
	put_blob(b, m->source, m->source_len);
	return frame_end(b, at);
}

int wire_msg__reload_result_begin(struct wire_buf *b, const struct wire_reload_result *m,
				  size_t *at)
{
	*at = frame_begin(b, WIRE_MSG_RELOAD_RESULT);
	put_u64(b, m->request_id);
	put_u32(b, (uint32_t)m->status);
	put_u32(b, m->moved);
	put_str(b, m->message);
	put_str(b, m->name);
	put_u32(b, m->count);
	return b->err;
}

void wire_msg__reload_result_entry(struct wire_buf *b, const struct wire_reload_entry *e)
{
	put_u32(b, e->kind);
	put_u32(b, e->line);
	put_u32(b, e->nfunctions);
	put_str(b, e->qualname);
	put_str(b, e->detail);
}

int wire_msg__reload_result_end(struct wire_buf *b, size_t at)
{
	return frame_end(b, at);
}

int wire_msg__encode_held_changed(struct wire_buf *b, const struct wire_held_changed *m)
{
	size_t at = frame_begin(b, WIRE_MSG_HELD_CHANGED);
	put_u64(b, m->event_id);
	put_u64(b, m->code_addr);
	put_str(b, m->reload);
	return frame_end(b, at);
}

int wire_msg__encode_restart(struct wire_buf *b, const struct wire_restart *m)
{
	if (m->nmap > WIRE_RESTART_MAX_LOCALS) {
		b->err = -EINVAL;
		return b->err;
	}
	size_t at = frame_begin(b, WIRE_MSG_RESTART);
	put_u64(b, m->event_id);
	put_u64(b, m->code_addr);
	put_u32(b, m->unit);
	put_u32(b, m->base_depth);
	put_u32(b, m->nmap);
	for (uint32_t i = 0; i < m->nmap; i++)
		put_u32(b, (uint32_t)m->map[i]);
	return frame_end(b, at);
}

int wire_msg__encode_empty(struct wire_buf *b, enum wire_msg_type type)
{
	return frame_end(b, frame_begin(b, type));
}

int wire_msg__encode_error(struct wire_buf *b, const char *text)
{
	size_t at = frame_begin(b, WIRE_MSG_ERROR);
	put_str(b, text);
	return frame_end(b, at);
}

/* ------------------------------------------------------------------ */
/* Decoding: a cursor that fails once and stays failed.               */

struct rd {
	const uint8_t *p, *end;
	int bad;
};

static const uint8_t *take(struct rd *r, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = 1;
		return NULL;
	}
	const uint8_t *at = r->p;
	r->p += n;
	return at;
}

static uint8_t get_u8(struct rd *r)
{
	const uint8_t *x = take(r, 1);
	return x ? x[0] : 0;
}

static uint16_t get_u16(struct rd *r)
{
	const uint8_t *x = take(r, 2);
	return x ? (uint16_t)(x[0] | (x[1] << 8)) : 0;
}

static uint32_t get_u32(struct rd *r)
{
	const uint8_t *x = take(r, 4);
	uint32_t v = 0;
	for (int i = 0; x && i < 4; i++)
		v |= (uint32_t)x[i] << (8 * i);
	return v;
}

static uint64_t get_u64(struct rd *r)
{
	const uint8_t *x = take(r, 8);
	uint64_t v = 0;
	for (int i = 0; x && i < 8; i++)
		v |= (uint64_t)x[i] << (8 * i);
	return v;
}

static const uint8_t *get_blob(struct rd *r, size_t *len)
{
	uint32_t n = get_u32(r);
	const uint8_t *p = take(r, n);
	*len = p ? n : 0;
	return p;
}

static void get_str(struct rd *r, char *dst, size_t cap)
{
	size_t n;
	const uint8_t *s = get_blob(r, &n);
	if (!s) {
		dst[0] = 0;
		return;
	}
	if (n > cap - 1)
		n = cap - 1;
	memcpy(dst, s, n);
	dst[n] = 0;
}

static int finish(const struct rd *r)
{
	return (r->bad || r->p != r->end) ? -EINVAL : 0;
}

int wire_msg__decode_hdr(const uint8_t *p, const uint8_t *end, struct wire_hdr *h)
{
	struct rd r = { p, end, 0 };
	h->len = get_u32(&r);
	h->type = get_u16(&r);
	uint16_t zero = get_u16(&r);
	if (r.bad || zero != 0 || h->len > WIRE_MAX_PAYLOAD || !WIRE_MSG_IS_DEFINED(h->type))
		return -EINVAL;
	return 0;
}

int wire_msg__decode_hello(const uint8_t *p, const uint8_t *end, struct wire_hello *m)
{
	struct rd r = { p, end, 0 };
	m->version = get_u32(&r);
	m->timeout_ms = get_u32(&r);
	m->flags = get_u32(&r);
	m->app_paths[0] = 0;
	m->heal_handled[0] = 0;
	if (!r.bad && (m->flags & ~(WIRE_HELLO_F_HITS | WIRE_HELLO_F_APP_PATHS | WIRE_HELLO_F_HOLD |
				    WIRE_HELLO_F_TREE | WIRE_HELLO_F_HANDLED)))
		return -EINVAL;
	if (!r.bad && (m->flags & WIRE_HELLO_F_APP_PATHS)) {
		size_t n;
		const uint8_t *s = get_blob(&r, &n);
		if (!s || n >= sizeof(m->app_paths) || memchr(s, 0, n))
			return -EINVAL;
		memcpy(m->app_paths, s, n);
		m->app_paths[n] = 0;
	}
	if (!r.bad && (m->flags & WIRE_HELLO_F_HANDLED)) {
		size_t n;
		const uint8_t *s = get_blob(&r, &n);
		if (!s || n >= sizeof(m->heal_handled) || memchr(s, 0, n))
			return -EINVAL;
		memcpy(m->heal_handled, s, n);
		m->heal_handled[n] = 0;
	}
	return finish(&r);
}

int wire_msg__decode_welcome(const uint8_t *p, const uint8_t *end, struct wire_welcome *m)
{
	struct rd r = { p, end, 0 };
	m->version = get_u32(&r);
	m->pid = get_u32(&r);
	m->py_hexversion = get_u32(&r);
	m->watch_mode = get_u32(&r);
	get_str(&r, m->detail, sizeof m->detail);
	if (!r.bad && m->watch_mode > WIRE_WATCH_TRACE)
		return -EINVAL;
	return finish(&r);
}

int wire_msg__decode_crash(const uint8_t *p, const uint8_t *end, struct wire_crash *m)
{
	struct rd r = { p, end, 0 };
	m->event_id = get_u64(&r);
	m->tid = get_u64(&r);
	m->thread_ident = get_u64(&r);
	m->code_addr = get_u64(&r);
	m->frame_addr = get_u64(&r);
	m->offset = get_u32(&r);
	m->line = get_u32(&r);
	get_str(&r, m->exc_type, sizeof m->exc_type);
	get_str(&r, m->message, sizeof m->message);
	get_str(&r, m->filename, sizeof m->filename);
	get_str(&r, m->qualname, sizeof m->qualname);
	return finish(&r);
}

int wire_msg__decode_release(const uint8_t *p, const uint8_t *end, struct wire_release *m)
{
	struct rd r = { p, end, 0 };
	m->event_id = get_u64(&r);
	return finish(&r);
}

/* One constant (and, for a tuple, its items), validated; the decoded item
 * goes to c when c is non-NULL. */
static void skip_const(struct rd *r, int depth)
{
	uint8_t kind = get_u8(r);
	size_t n;
	if (r->bad)
		return;
	switch (kind) {
	case WIRE_CONST_NONE:
	case WIRE_CONST_TRUE:
	case WIRE_CONST_FALSE:
	case WIRE_CONST_ELLIPSIS:
		return;
	case WIRE_CONST_INT:
	case WIRE_CONST_FLOAT:
		take(r, 8);
		return;
	case WIRE_CONST_STR:
	case WIRE_CONST_BYTES:
		get_blob(r, &n);
		return;
	case WIRE_CONST_BUILTIN:
	case WIRE_CONST_HELPER:
		/* Names: non-empty, at most 64 bytes. */
		if (!get_blob(r, &n) || n == 0 || n > 64)
			r->bad = 1;
		return;
	case WIRE_CONST_TUPLE: {
		uint32_t count = get_u32(r);
		if (depth >= WIRE_MAX_CONST_DEPTH || count > (size_t)(r->end - r->p)) {
			r->bad = 1;
			return;
		}
		for (uint32_t i = 0; i < count && !r->bad; i++)
			skip_const(r, depth + 1);
		return;
	}
	default:
		r->bad = 1;
	}
}

static int get_patch_body(struct rd *rp, struct wire_patch *m)
{
	struct rd r = *rp;
	m->request_id = get_u64(&r);
	m->code_addr = get_u64(&r);
	m->stacksize = get_u32(&r);
	m->flags = get_u32(&r);
	m->code = get_blob(&r, &m->code_len);
	m->exctable = get_blob(&r, &m->exctable_len);
	m->linetable = get_blob(&r, &m->linetable_len);
	if (r.bad || m->code_len == 0 || m->code_len % 2 || m->flags != 0 ||
	    m->stacksize > (1u << 20))
		return -EINVAL;
	uint32_t nconsts = get_u32(&r);
	/* Every item takes at least one byte: a count beyond the bytes left
	 * is a lie, refused before looping on it. */
	if (nconsts > (size_t)(r.end - r.p))
		return -EINVAL;
	m->consts_p = r.p;
	for (uint32_t i = 0; i < nconsts && !r.bad; i++)
		skip_const(&r, 0);
	m->consts_end = r.p;
	m->nconsts = nconsts;
	uint32_t nnames = get_u32(&r);
	if (r.bad || nnames > (size_t)(r.end - r.p) / 4)
		return -EINVAL;
	m->names_p = r.p;
	for (uint32_t i = 0; i < nnames && !r.bad; i++) {
		size_t n;
		if (!get_blob(&r, &n) || n == 0 || n > 256)
			r.bad = 1;
	}
	m->names_end = r.p;
	m->nnames = nnames;
	*rp = r;
	return finish(&r);
}

int wire_msg__decode_patch(const uint8_t *p, const uint8_t *end, struct wire_patch *m)
{
	struct rd r = { p, end, 0 };
	memset(m, 0, sizeof *m);
	return get_patch_body(&r, m);
}

static void get_meta(struct rd *r, struct wire_patch_meta *m)
{
	get_str(r, m->name, sizeof m->name);
	get_str(r, m->guard, sizeof m->guard);
	get_str(r, m->target, sizeof m->target);
	get_str(r, m->fallback, sizeof m->fallback);
}

int wire_msg__decode_patch_named(const uint8_t *p, const uint8_t *end, struct wire_patch *m)
{
	struct rd r = { p, end, 0 };
	memset(m, 0, sizeof *m);
	size_t n;
	struct rd peek = r;
	/* The name must arrive whole: a truncated name would roll back
	 * something else. */
	if (!get_blob(&peek, &n) || n == 0 || n > WIRE_NAME_MAX)
		return -EINVAL;
	get_meta(&r, &m->meta);
	if (r.bad)
		return -EINVAL;
	return get_patch_body(&r, m);
}

int wire_msg__decode_list(const uint8_t *p, const uint8_t *end, struct wire_list *m)
{
	struct rd r = { p, end, 0 };
	m->request_id = get_u64(&r);
	return finish(&r);
}

static void get_live(struct rd *r, struct wire_live_patch *e)
{
	get_meta(r, &e->meta);
	get_str(r, e->qualname, sizeof e->qualname);
	get_str(r, e->filename, sizeof e->filename);
	e->first_line = get_u32(r);
	e->flags = get_u32(r);
	e->orig_addr = get_u64(r);
	e->new_addr = get_u64(r);
	e->installed_ms = get_u64(r);
	e->nfunctions = get_u32(r);
	e->nparents = get_u32(r);
	e->nframes = get_u32(r);
	e->live_functions = get_u32(r);
	e->hits = get_u64(r);
	e->last_hit_ms = get_u64(r);
}

/* A count, then that many entries of at least min_size bytes each (a
 * larger count is a lie), each read by get into scratch: checked whole
 * here, walked again by entries_next. */
typedef void (*get_entry_fn)(struct rd *r, void *e);

static int get_entries(struct rd *r, uint32_t *count, size_t min_size, get_entry_fn get,
		       void *scratch, const uint8_t **ep, const uint8_t **ee)
{
	*count = get_u32(r);
	if (r->bad || *count > (size_t)(r->end - r->p) / min_size)
		return -EINVAL;
	*ep = r->p;
	for (uint32_t i = 0; i < *count && !r->bad; i++)
		get(r, scratch);
	*ee = r->p;
	return finish(r);
}

/* 1 with the next entry in e, 0 at the end, -EINVAL on a bad one. */
static int entries_next(const uint8_t **p, const uint8_t *end, get_entry_fn get, void *e)
{
	struct rd r = { *p, end, 0 };
	if (*p == end)
		return 0;
	get(&r, e);
	if (r.bad)
		return -EINVAL;
	*p = r.p;
	return 1;
}

static void get_live_entry(struct rd *r, void *e)
{
	get_live(r, e);
}

int wire_msg__decode_list_result(const uint8_t *p, const uint8_t *end, struct wire_list_result *m)
{
	struct rd r = { p, end, 0 };
	struct wire_live_patch e;
	memset(m, 0, sizeof *m);
	m->request_id = get_u64(&r);
	/* An entry takes at least 100 bytes. */
	return get_entries(&r, &m->count, 100, get_live_entry, &e, &m->entries_p, &m->entries_end);
}

void wire_live_iter__init(struct wire_live_iter *it, const struct wire_list_result *m)
{
	it->p = m->entries_p;
	it->end = m->entries_end;
}

int wire_live_iter__next(struct wire_live_iter *it, struct wire_live_patch *e)
{
	return entries_next(&it->p, it->end, get_live_entry, e);
}

static void get_hit(struct rd *r, void *v)
{
	struct wire_hit *e = v;
	get_str(r, e->name, sizeof e->name);
	e->orig_addr = get_u64(r);
	e->count = get_u64(r);
	e->last_ms = get_u64(r);
	if (e->count == 0)
		r->bad = 1;
}

int wire_msg__decode_hits(const uint8_t *p, const uint8_t *end, struct wire_hits *m)
{
	struct rd r = { p, end, 0 };
	struct wire_hit e;
	memset(m, 0, sizeof *m);
	/* An entry takes at least 28 bytes. */
	return get_entries(&r, &m->count, 28, get_hit, &e, &m->entries_p, &m->entries_end);
}

void wire_hits_iter__init(struct wire_hits_iter *it, const struct wire_hits *m)
{
	it->p = m->entries_p;
	it->end = m->entries_end;
}

int wire_hits_iter__next(struct wire_hits_iter *it, struct wire_hit *e)
{
	return entries_next(&it->p, it->end, get_hit, e);
}

static void get_handled(struct rd *r, void *v)
{
	struct wire_handled_entry *e = v;
	get_str(r, e->site, sizeof e->site);
	get_str(r, e->exc_type, sizeof e->exc_type);
	e->count = get_u64(r);
	e->last_ms = get_u64(r);
	if (e->count == 0 || !e->site[0] || !e->exc_type[0])
		r->bad = 1;
}

int wire_msg__decode_handled(const uint8_t *p, const uint8_t *end, struct wire_handled *m)
{
	struct rd r = { p, end, 0 };
	struct wire_handled_entry e;
	memset(m, 0, sizeof *m);
	/* An entry takes at least 26 bytes (two 1-byte strings, two u64s, lengths). */
	return get_entries(&r, &m->count, 26, get_handled, &e, &m->entries_p, &m->entries_end);
}

void wire_handled_iter__init(struct wire_handled_iter *it, const struct wire_handled *m)
{
	it->p = m->entries_p;
	it->end = m->entries_end;
}

int wire_handled_iter__next(struct wire_handled_iter *it, struct wire_handled_entry *e)
{
	return entries_next(&it->p, it->end, get_handled, e);
}

int wire_msg__decode_rollback(const uint8_t *p, const uint8_t *end, struct wire_rollback *m)
{
	struct rd r = { p, end, 0 };
	size_t n;
	m->request_id = get_u64(&r);
	m->flags = get_u32(&r);
	struct rd peek = r;
	get_blob(&peek, &n);
	get_str(&r, m->name, sizeof m->name);
	if (r.bad || (m->flags & ~(WIRE_ROLLBACK_F_ALL | WIRE_ROLLBACK_F_DRY_RUN)) ||
	    n > WIRE_NAME_MAX || ((m->flags & WIRE_ROLLBACK_F_ALL) ? n != 0 : n == 0))
		return -EINVAL;
	return finish(&r);
}

int wire_msg__decode_rollback_result(const uint8_t *p, const uint8_t *end,
				     struct wire_rollback_result *m)
{
	struct rd r = { p, end, 0 };
	m->request_id = get_u64(&r);
	m->status = (int32_t)get_u32(&r);
	m->npatches = get_u32(&r);
	m->nfunctions = get_u32(&r);
	m->nframes = get_u32(&r);
	get_str(&r, m->message, sizeof m->message);
	if (!r.bad && m->status > 0)
		return -EINVAL;
	return finish(&r);
}

int wire_msg__decode_reload(const uint8_t *p, const uint8_t *end, struct wire_reload *m)
{
	struct rd r = { p, end, 0 };
	size_t n;
	m->request_id = get_u64(&r);
	m->flags = get_u32(&r);
	struct rd peek = r;
	get_blob(&peek, &n);
	get_str(&r, m->path, sizeof m->path);
	m->source = get_blob(&r, &m->source_len);
	/* A path that was cut, empty, or holds a NUL names another file. */
	if (r.bad || m->flags || n == 0 || n >= sizeof m->path || strlen(m->path) != n)
		return -EINVAL;
	return finish(&r);
}

int wire_msg__decode_held_changed(const uint8_t *p, const uint8_t *end, struct wire_held_changed *m)
{
	struct rd r = { p, end, 0 };
	m->event_id = get_u64(&r);
	m->code_addr = get_u64(&r);
	get_str(&r, m->reload, sizeof m->reload);
	return finish(&r);
}

int wire_msg__decode_restart(const uint8_t *p, const uint8_t *end, struct wire_restart *m)
{
	struct rd r = { p, end, 0 };
	m->event_id = get_u64(&r);
	m->code_addr = get_u64(&r);
	m->unit = get_u32(&r);
	m->base_depth = get_u32(&r);
	m->nmap = get_u32(&r);
	if (r.bad || m->unit >= (1u << 24) || m->base_depth >= (1u << 20) ||
	    m->nmap > WIRE_RESTART_MAX_LOCALS || m->nmap > (size_t)(r.end - r.p) / 4)
		return -EINVAL;
	for (uint32_t i = 0; i < m->nmap; i++) {
		m->map[i] = (int32_t)get_u32(&r);
		if (m->map[i] < -1 || m->map[i] > WIRE_RESTART_MAX_LOCALS)
			return -EINVAL;
	}
	return finish(&r);
}

static void get_reload_entry(struct rd *r, void *v)
{
	struct wire_reload_entry *e = v;
	e->kind = get_u32(r);
	e->line = get_u32(r);
	e->nfunctions = get_u32(r);
	get_str(r, e->qualname, sizeof e->qualname);
	get_str(r, e->detail, sizeof e->detail);
	if (e->kind < WIRE_RELOAD_RELOADED || e->kind > WIRE_RELOAD_KEPT)
		r->bad = 1;
}

int wire_msg__decode_reload_result(const uint8_t *p, const uint8_t *end,
				   struct wire_reload_result *m)
{
	struct rd r = { p, end, 0 };
	struct wire_reload_entry e;
	memset(m, 0, sizeof *m);
	m->request_id = get_u64(&r);
	m->status = (int32_t)get_u32(&r);
	m->moved = get_u32(&r);
	get_str(&r, m->message, sizeof m->message);
	get_str(&r, m->name, sizeof m->name);
	if (r.bad || m->status > 0)
		return -EINVAL;
	/* An entry takes at least 20 bytes. */
	return get_entries(&r, &m->count, 20, get_reload_entry, &e, &m->entries_p, &m->entries_end);
}

void wire_reload_iter__init(struct wire_reload_iter *it, const struct wire_reload_result *m)
{
	it->p = m->entries_p;
	it->end = m->entries_end;
}

int wire_reload_iter__next(struct wire_reload_iter *it, struct wire_reload_entry *e)
{
	return entries_next(&it->p, it->end, get_reload_entry, e);
}

void wire_const_iter__init(struct wire_const_iter *it, const struct wire_patch *m)
{
	it->p = m->consts_p;
	it->end = m->consts_end;
}

int wire_const_iter__next(struct wire_const_iter *it, struct wire_const *c)
{
	struct rd r = { it->p, it->end, 0 };
	uint64_t bits;
	if (it->p == it->end)
		return 0;
	memset(c, 0, sizeof *c);
	uint8_t kind = get_u8(&r);
	c->kind = (enum wire_const_kind)kind;
	switch (kind) {
	case WIRE_CONST_NONE:
	case WIRE_CONST_TRUE:
	case WIRE_CONST_FALSE:
	case WIRE_CONST_ELLIPSIS:
		break;
	case WIRE_CONST_INT:
		c->i = (int64_t)get_u64(&r);
		break;
	case WIRE_CONST_FLOAT:
		bits = get_u64(&r);
		memcpy(&c->f, &bits, 8);
		break;
	case WIRE_CONST_STR:
	case WIRE_CONST_BYTES:
	case WIRE_CONST_BUILTIN:
	case WIRE_CONST_HELPER:
		c->data = get_blob(&r, &c->len);
		break;
	case WIRE_CONST_TUPLE:
		c->nitems = get_u32(&r);
		break;
	default:
		return -EINVAL;
	}
	if (r.bad)
		return -EINVAL;
	it->p = r.p;
	return 1;
}

void wire_name_iter__init(struct wire_name_iter *it, const struct wire_patch *m)
{
	it->p = m->names_p;
	it->end = m->names_end;
}

int wire_name_iter__next(struct wire_name_iter *it, const uint8_t **s, size_t *len)
{
	struct rd r = { it->p, it->end, 0 };
	if (it->p == it->end)
		return 0;
	*s = get_blob(&r, len);
	if (r.bad)
		return -EINVAL;
	it->p = r.p;
	return 1;
}

int wire_msg__decode_patch_result(const uint8_t *p, const uint8_t *end, struct wire_patch_result *m)
{
	struct rd r = { p, end, 0 };
	m->request_id = get_u64(&r);
	m->status = (int32_t)get_u32(&r);
	m->nfunctions = get_u32(&r);
	m->nparents = get_u32(&r);
	m->nframes = get_u32(&r);
	m->key = get_u64(&r);
	get_str(&r, m->message, sizeof m->message);
	if (!r.bad && m->status > 0)
		return -EINVAL;
	return finish(&r);
}

int wire_msg__decode_ping(const uint8_t *p, const uint8_t *end, struct wire_ping *m)
{
	struct rd r = { p, end, 0 };
	m->cookie = get_u64(&r);
	return finish(&r);
}

int wire_msg__decode_forked(const uint8_t *p, const uint8_t *end, struct wire_forked *m)
{
	struct rd r = { p, end, 0 };
	m->pid = get_u32(&r);
	m->ppid = get_u32(&r);
	if (!r.bad && (!m->pid || !m->ppid || m->pid > INT32_MAX || m->ppid > INT32_MAX))
		return -EINVAL;
	return finish(&r);
}

int wire_msg__decode_tree_files(const uint8_t *p, const uint8_t *end, struct wire_tree_files *m)
{
	struct rd r = { p, end, 0 };
	size_t n;
	struct rd peek = r;
	get_blob(&peek, &n);
	get_str(&r, m->sock, sizeof m->sock);
	const uint8_t *f = get_blob(&r, &m->files_len);
	m->files = (const char *)f;
	/* A cut or NUL-holding socket path names another socket; files need
	 * a socket to report to. */
	if (r.bad || n >= sizeof m->sock || strlen(m->sock) != n || (n == 0 && m->files_len) ||
	    m->files_len > WIRE_TREE_FILES_MAX || (f && memchr(f, 0, m->files_len)))
		return -EINVAL;
	return finish(&r);
}

int wire_msg__decode_tree_files_result(const uint8_t *p, const uint8_t *end, uint32_t *nfiles)
{
	struct rd r = { p, end, 0 };
	*nfiles = get_u32(&r);
	return finish(&r);
}

int wire_msg__decode_pong(const uint8_t *p, const uint8_t *end, struct wire_pong *m)
{
	struct rd r = { p, end, 0 };
	m->cookie = get_u64(&r);
	m->crashes = get_u32(&r);
	m->parked = get_u32(&r);
	m->hook_calls = get_u64(&r);
	return finish(&r);
}

int wire_msg__decode_resume(const uint8_t *p, const uint8_t *end, struct wire_resume *m)
{
	struct rd r = { p, end, 0 };
	m->event_id = get_u64(&r);
	m->fallback_unit = get_u32(&r);
	m->base_depth = get_u32(&r);
	if (!r.bad && (m->fallback_unit > (1u << 24) || m->base_depth > (1u << 20)))
		return -EINVAL;
	return finish(&r);
}

int wire_msg__decode_resume_result(const uint8_t *p, const uint8_t *end,
				   struct wire_resume_result *m)
{
	struct rd r = { p, end, 0 };
	m->event_id = get_u64(&r);
	m->status = (int32_t)get_u32(&r);
	get_str(&r, m->message, sizeof m->message);
	if (!r.bad && m->status > WIRE_RESUME_RAISED)
		return -EINVAL;
	return finish(&r);
}

int wire_msg__decode_error(const uint8_t *p, const uint8_t *end, char *text, size_t cap)
{
	struct rd r = { p, end, 0 };
	get_str(&r, text, cap);
	return finish(&r);
}

int wire_msg__decode_empty(const uint8_t *p, const uint8_t *end)
{
	return p == end ? 0 : -EINVAL;
}

/* ------------------------------------------------------------------ */
/* Probes (docs/formats/channel.md, "Probes")                          */

int wire_msg__encode_probe_set(struct wire_buf *b, const struct wire_probe_set *m)
{
	size_t at = frame_begin(b, WIRE_MSG_PROBE_SET);
	put_u64(b, m->request_id);
	put_u32(b, m->flags);
	put_u32(b, m->count);
	put_u32(b, m->rate);
	put_u32(b, m->line);
	put_str(b, m->file);
	put_str(b, m->format);
	put_str(b, m->cond);
	return frame_end(b, at);
}

int wire_msg__encode_probe_result(struct wire_buf *b, const struct wire_probe_result *m)
{
	if (m->ncodes > WIRE_PROBE_MAX_CODES)
		return -EINVAL;
	size_t at = frame_begin(b, WIRE_MSG_PROBE_RESULT);
	put_u64(b, m->request_id);
	put_u32(b, (uint32_t)m->status);
	put_u32(b, m->probe_id);
	put_u64(b, m->hits);
	put_u64(b, m->dropped);
	put_u32(b, m->ncodes);
	for (uint32_t i = 0; i < m->ncodes; i++)
		put_u64(b, m->codes[i]);
	put_str(b, m->message);
	return frame_end(b, at);
}

int wire_msg__encode_probe_ctl(struct wire_buf *b, enum wire_msg_type type,
			       const struct wire_probe_ctl *m)
{
	if (type != WIRE_MSG_PROBE_ARM && type != WIRE_MSG_PROBE_CLEAR)
		return -EINVAL;
	size_t at = frame_begin(b, type);
	put_u64(b, m->request_id);
	put_u32(b, m->probe_id);
	return frame_end(b, at);
}

int wire_msg__encode_probe_hit(struct wire_buf *b, const struct wire_probe_hit *m)
{
	if (m->nvalues > WIRE_PROBE_MAX_VALUES)
		return -EINVAL;
	size_t at = frame_begin(b, WIRE_MSG_PROBE_HIT);
	put_u32(b, m->probe_id);
	put_u32(b, m->flags);
	put_u64(b, m->event_id);
	put_u64(b, m->time_ns);
	put_u64(b, m->tid);
	put_u64(b, m->thread_ident);
	put_u32(b, m->line);
	put_u64(b, m->dropped);
	put_u32(b, m->nvalues);
	for (uint32_t i = 0; i < m->nvalues; i++) {
		size_t n = m->values[i] ? strlen(m->values[i]) : 0;
		put_blob(b, m->values[i] ? m->values[i] : "",
			 n > WIRE_PROBE_VALUE_MAX ? WIRE_PROBE_VALUE_MAX : n);
	}
	return frame_end(b, at);
}

int wire_msg__encode_probe_release(struct wire_buf *b, uint64_t event_id)
{
	size_t at = frame_begin(b, WIRE_MSG_PROBE_RELEASE);
	put_u64(b, event_id);
	return frame_end(b, at);
}

/* A string that must fit whole (the agent parses it): -EINVAL otherwise. */
static void get_str_whole(struct rd *r, char *dst, size_t cap)
{
	size_t n;
	const uint8_t *s = get_blob(r, &n);
	dst[0] = 0;
	if (!s)
		return;
	if (n > cap - 1 || memchr(s, 0, n)) {
		r->bad = 1;
		return;
	}
	memcpy(dst, s, n);
	dst[n] = 0;
}

int wire_msg__decode_probe_set(const uint8_t *p, const uint8_t *end, struct wire_probe_set *m)
{
	struct rd r = { p, end, 0 };
	m->request_id = get_u64(&r);
	m->flags = get_u32(&r);
	m->count = get_u32(&r);
	m->rate = get_u32(&r);
	m->line = get_u32(&r);
	get_str_whole(&r, m->file, sizeof m->file);
	get_str_whole(&r, m->format, sizeof m->format);
	get_str_whole(&r, m->cond, sizeof m->cond);
	if (!r.bad && ((m->flags & ~WIRE_PROBE_F_SNAPSHOT) || m->line == 0 || !m->file[0]))
		return -EINVAL;
	return finish(&r);
}

int wire_msg__decode_probe_result(const uint8_t *p, const uint8_t *end, struct wire_probe_result *m)
{
	struct rd r = { p, end, 0 };
	m->request_id = get_u64(&r);
	m->status = (int32_t)get_u32(&r);
	m->probe_id = get_u32(&r);
	m->hits = get_u64(&r);
	m->dropped = get_u64(&r);
	m->ncodes = get_u32(&r);
	if (r.bad || m->ncodes > WIRE_PROBE_MAX_CODES || m->status > 0)
		return -EINVAL;
	for (uint32_t i = 0; i < m->ncodes; i++)
		m->codes[i] = get_u64(&r);
	get_str(&r, m->message, sizeof m->message);
	return finish(&r);
}

int wire_msg__decode_probe_ctl(const uint8_t *p, const uint8_t *end, struct wire_probe_ctl *m)
{
	struct rd r = { p, end, 0 };
	m->request_id = get_u64(&r);
	m->probe_id = get_u32(&r);
	return finish(&r);
}

int wire_msg__decode_probe_hit(const uint8_t *p, const uint8_t *end, struct wire_probe_hit *m)
{
	struct rd r = { p, end, 0 };
	m->probe_id = get_u32(&r);
	m->flags = get_u32(&r);
	m->event_id = get_u64(&r);
	m->time_ns = get_u64(&r);
	m->tid = get_u64(&r);
	m->thread_ident = get_u64(&r);
	m->line = get_u32(&r);
	m->dropped = get_u64(&r);
	m->nvalues = get_u32(&r);
	if (r.bad || m->nvalues > WIRE_PROBE_MAX_VALUES || (m->flags & ~WIRE_PROBE_F_PARKED))
		return -EINVAL;
	for (uint32_t i = 0; i < m->nvalues; i++) {
		size_t n;
		const uint8_t *s = get_blob(&r, &n);
		if (!s || n > WIRE_PROBE_VALUE_MAX)
			return -EINVAL;
		m->values[i] = (const char *)s;
		m->value_len[i] = (uint32_t)n;
	}
	return finish(&r);
}

int wire_msg__decode_probe_release(const uint8_t *p, const uint8_t *end, uint64_t *event_id)
{
	struct rd r = { p, end, 0 };
	*event_id = get_u64(&r);
	return finish(&r);
}
