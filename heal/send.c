/* heal: patches on their way to the agent.
 *
 * One interface (heal-priv.h, struct heal_sender) whatever the transport,
 * so the pipeline never knows which one it uses: the live session of
 * inject/, and the socket of the agent's boot hook while suture-run loads
 * a module's stored patches (wire/boot.h). The frames are
 * docs/formats/channel.md's, encoded and decoded by wire/msg.c; every
 * frame read here goes through a wire_reader (wire/channel.h).
 */
#include "heal/heal-priv.h"
#include "wire/boot.h"
#include "wire/channel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Guard patch -> PATCH message                                        */

void heal_outgoing__free(struct outgoing_patch *w)
{
	for (size_t i = 0; i < GUARD_MAX_CONSTS; i++)
		free(w->items[i]);
}

static int str_const(struct wire_const *c, enum wire_const_kind kind, const char *s)
{
	*c = (struct wire_const){ .kind = kind, .data = (const uint8_t *)s, .len = strlen(s) };
	return 0;
}

int heal_outgoing__fill(struct outgoing_patch *w, uint64_t code_addr, const struct guard_patch *gp,
			char *why, size_t cap)
{
	memset(w, 0, sizeof(*w));
	for (size_t i = 0; i < gp->nconsts; i++) {
		const struct guard_const *g = &gp->consts[i];
		struct wire_const *c = &w->consts[i];
		switch (g->kind) {
		case GUARD_CONST_NONE:
			c->kind = WIRE_CONST_NONE;
			break;
		case GUARD_CONST_INT:
			c->kind = WIRE_CONST_INT;
			c->i = g->i;
			break;
		case GUARD_CONST_FLOAT:
			c->kind = WIRE_CONST_FLOAT;
			c->f = g->f;
			break;
		case GUARD_CONST_EXC_TYPE:
			str_const(c, WIRE_CONST_BUILTIN, g->names[0]);
			break;
		case GUARD_CONST_HELPER:
			str_const(c, WIRE_CONST_HELPER, g->names[0]);
			break;
		case GUARD_CONST_EXC_TUPLE:
		case GUARD_CONST_NONE_TUPLE: {
			size_t n = g->kind == GUARD_CONST_EXC_TUPLE ? g->nnames : (size_t)g->i;
			if (g->kind == GUARD_CONST_NONE_TUPLE && (g->i < 0 || g->i > 4096)) {
				snprintf(why, cap, "a tuple constant of %lld items",
					 (long long)g->i);
				return -EINVAL;
			}
			struct wire_const *it = calloc(n + 1, sizeof(*it));
			if (!it)
				return -ENOMEM;
			w->items[i] = it;
			for (size_t k = 0; k < n; k++) {
				if (g->kind == GUARD_CONST_EXC_TUPLE)
					str_const(&it[k], WIRE_CONST_BUILTIN, g->names[k]);
				else
					it[k].kind = WIRE_CONST_NONE;
			}
			*c = (struct wire_const){ .kind = WIRE_CONST_TUPLE,
						  .items = it,
						  .nitems = n };
			break;
		}
		case GUARD_CONST_PROBE_EXC:
		default:
			snprintf(why, cap, "constant kind %s cannot be sent",
				 guard_const_kind__name(g->kind));
			return -EINVAL;
		}
	}
	w->p.code_addr = code_addr;
	w->p.stacksize = (uint32_t)gp->stacksize;
	w->p.code = gp->code.data;
	w->p.code_len = gp->code.len;
	w->p.exctable = gp->exctable.data;
	w->p.exctable_len = gp->exctable.len;
	w->p.linetable = gp->linetable.data;
	w->p.linetable_len = gp->linetable.len;
	w->p.consts = w->consts;
	w->p.nconsts = gp->nconsts;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The live session                                                     */

static int session_post(struct heal_sender *sd, const struct wire_patch *p, char *why, size_t cap)
{
	struct heal_session_sender *ss = (struct heal_session_sender *)sd;
	if (ss->have) {
		snprintf(why, cap, "the answer to the patch before was not collected");
		return -EBUSY;
	}
	if (!ss->s) {
		snprintf(why, cap, "no session with the agent");
		return -ENOTCONN;
	}
	memset(&ss->res, 0, sizeof(ss->res));
	int err = inject_session__send_patch(ss->s, p, &ss->res);
	if (err) {
		snprintf(why, cap, "%s", inject_session__error(ss->s));
		return err;
	}
	ss->have = true;
	return 0;
}

static int session_flush(struct heal_sender *sd, bool last)
{
	(void)sd;
	(void)last; /* every post was written and answered already */
	return 0;
}

static int session_collect(struct heal_sender *sd, struct wire_patch_result *res, char *why,
			   size_t cap)
{
	struct heal_session_sender *ss = (struct heal_session_sender *)sd;
	if (!ss->have) {
		snprintf(why, cap, "no patch is waiting for its answer");
		return -EPROTO;
	}
	*res = ss->res;
	ss->have = false;
	return 0;
}

static const struct heal_sender_ops session_ops = {
	.post = session_post,
	.flush = session_flush,
	.collect = session_collect,
};

void heal_sender__session(struct heal_session_sender *ss, struct inject_session *s)
{
	*ss = (struct heal_session_sender){
		.base = { .ops = &session_ops, .chunk = 1, .inflight = 0 },
		.s = s
	};
}

/* ------------------------------------------------------------------ */
/* The boot hook's socket                                               */

/* Pipelining: the hook builds the patched code of one chunk while we
 * synthesize the next, within wire/boot.h's bound on unanswered patches
 * (which also says why the hook never blocks answering). Chunks of 32
 * rather than 16, each a write and a wake-up on both sides: a module of
 * 100 patches was released after 1.9 ms instead of 2.1-2.2; 128 in
 * flight rather than 64, so that we do not wait for the first chunks'
 * answers while the hook installs the later ones: 1.9-2.0 ms instead of
 * 2.3-2.4 (docs/performance.md, "start-up, sixth pass"). */
#define BOOT_CHUNK 32
#define BOOT_INFLIGHT WIRE_BOOT_MAX_UNANSWERED

static int boot_post(struct heal_sender *sd, const struct wire_patch *p, char *why, size_t cap)
{
	struct heal_boot_sender *b = (struct heal_boot_sender *)sd;
	struct wire_patch q = *p;
	q.request_id = ++b->next_request;
	int rc = q.meta.name[0] ? wire_msg__encode_patch_named(&b->posted, &q)
				: wire_msg__encode_patch(&b->posted, &q);
	if (rc || b->posted.err) {
		b->next_request--;
		snprintf(why, cap, "cannot encode the patch: %s",
			 strerror(rc ? -rc : -b->posted.err));
		return rc ? rc : b->posted.err;
	}
	return 0;
}

static int boot_flush(struct heal_sender *sd, bool last)
{
	struct heal_boot_sender *b = (struct heal_boot_sender *)sd;
	int rc = 0;
	if (last && b->release) {
		struct wire_release r = { b->release };
		if (wire_msg__encode_release(&b->posted, &r) == 0 && !b->posted.err)
			b->released = true;
	}
	if (b->posted.len)
		rc = wire_channel__write_all(b->fd, b->posted.data, b->posted.len);
	wire_buf__reset(&b->posted);
	if (rc)
		b->released = false;
	else if (b->released)
		b->released_at = heal__now_ms();
	return rc ? -EPIPE : 0;
}

static int boot_collect(struct heal_sender *sd, struct wire_patch_result *res, char *why,
			size_t cap)
{
	struct heal_boot_sender *b = (struct heal_boot_sender *)sd;
	struct wire_hdr hd;
	uint8_t *pl = NULL;
	int rc = wire_reader__next(b->rd, b->fd, -1, &hd, &pl);
	if (!rc && (hd.type != WIRE_MSG_PATCH_RESULT || !pl))
		rc = -EPROTO;
	if (!rc)
		rc = wire_msg__decode_patch_result(pl, pl + hd.len, res);
	free(pl);
	/* The hook answers in order: another id is a confused peer. */
	if (!rc && res->request_id != ++b->next_answer)
		rc = -EPROTO;
	if (rc) {
		snprintf(why, cap, "the agent's boot hook did not answer: %s", strerror(-rc));
		return -EPIPE;
	}
	return 0;
}

static const struct heal_sender_ops boot_ops = {
	.post = boot_post,
	.flush = boot_flush,
	.collect = boot_collect,
};

void heal_sender__boot(struct heal_boot_sender *b, int fd, struct wire_reader *rd, uint64_t release)
{
	*b = (struct heal_boot_sender){
		.base = { .ops = &boot_ops, .chunk = BOOT_CHUNK, .inflight = BOOT_INFLIGHT },
		.fd = fd,
		.rd = rd,
		.release = release,
	};
}

void heal_sender__boot_free(struct heal_boot_sender *b)
{
	wire_buf__free(&b->posted);
}

int heal_boot__next_report(int fd, struct wire_reader *rd, struct wire_crash *ev,
			   struct wire_patch_result **img, size_t *nimg)
{
	*img = NULL;
	*nimg = 0;
	for (;;) {
		uint8_t *pl = NULL;
		struct wire_hdr hd;
		int rc = wire_reader__next(rd, fd, -1, &hd, &pl);
		if (!rc && hd.type == WIRE_MSG_PATCH_RESULT && *nimg < WIRE_IMAGE_MAX_ENTRIES) {
			struct wire_patch_result res;
			struct wire_patch_result *v = realloc(*img, (*nimg + 1) * sizeof(*v));
			rc = !v ? -ENOMEM
			     : wire_msg__decode_patch_result(pl, pl + hd.len, &res) ||
					     !(res.request_id & WIRE_BOOT_IMAGE_BIT)
				     ? -EPROTO
				     : 0;
			if (v)
				*img = v;
			if (!rc)
				(*img)[(*nimg)++] = res;
			free(pl);
			if (!rc)
				continue;
		} else if (!rc && (hd.type != WIRE_MSG_CRASH || !pl)) {
			rc = -EPROTO;
		} else if (!rc) {
			rc = wire_msg__decode_crash(pl, pl + hd.len, ev);
		}
		if (hd.type != WIRE_MSG_PATCH_RESULT)
			free(pl);
		if (rc) {
			free(*img);
			*img = NULL;
			*nimg = 0;
		}
		return rc;
	}
}

int heal_boot__next_module(int fd, struct wire_reader *rd, struct wire_crash *ev)
{
	struct wire_patch_result *img;
	size_t n;
	int rc = heal_boot__next_report(fd, rd, ev, &img, &n);
	free(img);
	return rc ? rc : n ? -EPROTO : 0; /* no image is given there */
}

int heal_boot__release(int fd, uint64_t event_id)
{
	struct wire_buf b = { 0 };
	struct wire_release r = { event_id };
	wire_msg__encode_release(&b, &r);
	int rc = b.err ? b.err : wire_channel__write_all(fd, b.data, b.len);
	wire_buf__free(&b);
	return rc;
}

/* ------------------------------------------------------------------ */

int heal__send_one(struct heal *h, uint64_t code_addr, const struct guard_patch *gp,
		   const struct wire_patch_meta *meta, char *why, size_t cap,
		   struct wire_patch_result *res)
{
	struct heal_sender *sd = h->send;
	struct outgoing_patch w;
	heal_pages__drop(&h->pages); /* the target changes now */
	memset(res, 0, sizeof(*res));
	int err = heal_outgoing__fill(&w, code_addr, gp, why, cap);
	if (!err && meta) /* named: the agent lists it and can roll it back */
		w.p.meta = *meta;
	if (!err)
		err = sd->ops->post(sd, &w.p, why, cap);
	if (!err && (err = sd->ops->flush(sd, false)))
		snprintf(why, cap, "the agent went away");
	if (!err)
		err = sd->ops->collect(sd, res, why, cap);
	if (!err && res->status) {
		err = res->status;
		snprintf(why, cap, "the agent refused the patch: %s", res->message);
	}
	heal_outgoing__free(&w);
	return err;
}
