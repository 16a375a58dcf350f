/* heal: crash -> guard -> patch -> store, and stored spec -> patch.
 *
 * Everything the analysis needs is read from the target by inspect/ (the
 * agent never sends code): the failing code object's bytes, tables, names
 * and constants. rewrite/ decides and synthesizes; the diff gate must accept
 * the patch before it is sent; the agent builds the code object from the
 * PATCH parts and installs it on every function sharing the original.
 *
 * The store keeps decisions, never code (docs/design.md §10). On load the
 * guard is synthesized again from the live original: the live code's
 * identity (guard_code__identity) must equal the stored one, and the crash
 * site's fingerprint must be found again at the stored anchor. The exception
 * type is not stored; it is recovered by trying the types that give the
 * stored guard kind and keeping the one whose fingerprint (which hashes the
 * type) equals the stored window hash.
 *
 * A function healed twice: the second guard is analysed on the live, already
 * guarded code, so its code_id is the identity of "original + first guard".
 * On load, patches of one function are applied in sequence: after each one
 * the new code object is found again from the module (the agent's boot
 * install replaced it in its parent's co_consts) and the next patch whose
 * code_id matches is applied. Constants whose repr carries an address ("<type at 0x...>")
 * are described without it, so these identities are stable across runs.
 */
#include "heal/heal.h"
#include "wire/channel.h"
#include "inspect/inspect.h"
#include "rewrite/guard.h"
#include "store/code.h"
#include "store/store.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CO_OPTIMIZED 0x1
#define MAX_TREE 20000
#define MAX_DEPTH 64

/* A page cache over inspect's reader: reading a code object touches many
 * small objects that sit on a few pages (one process_vm_readv a page
 * instead of one a field). Valid only while the target cannot change what
 * we read: it is filled while a crashing thread or an importing module is
 * parked, and dropped after every patch we install and at the end of each
 * event. Direct-mapped. */
#define HEAL_PAGE 4096u
#define HEAL_NPAGES 128u

struct heal_pages {
	const struct inspect_reader *under;
	bool on;
	uint64_t tag[HEAL_NPAGES];     /* page address + 1; 0 = empty */
	uint8_t (*data)[HEAL_PAGE];
};

static int pages_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	struct heal_pages *pc = ctx;
	const struct inspect_reader *u = pc->under;
	uint8_t *out = buf;
	if (!pc->on || !pc->data)
		return u->read(u->ctx, addr, buf, len);
	while (len) {
		uint64_t page = addr & ~(uint64_t)(HEAL_PAGE - 1);
		size_t off = (size_t)(addr - page);
		size_t n = HEAL_PAGE - off < len ? HEAL_PAGE - off : len;
		size_t slot = (size_t)((page / HEAL_PAGE) % HEAL_NPAGES);
		if (pc->tag[slot] != page + 1) {
			if (u->read(u->ctx, page, pc->data[slot], HEAL_PAGE)) {
				/* A page we may not read whole: read exactly. */
				pc->tag[slot] = 0;
				int err = u->read(u->ctx, addr, out, n);
				if (err)
					return err;
				goto next;
			}
			pc->tag[slot] = page + 1;
		}
		memcpy(out, pc->data[slot] + off, n);
next:
		out += n;
		addr += n;
		len -= n;
	}
	return 0;
}

static void pages__drop(struct heal_pages *pc)
{
	memset(pc->tag, 0, sizeof(pc->tag));
}

struct spec;

/* A patch posted to the boot hook whose answer is still to be read. */
struct pend {
	struct spec *s;
	char qualname[256], base[128];
};

/* A code object we replaced, and where its guard's fallback starts: a
 * frame that kept the original (it could not take the new code while
 * suspended) may still crash there, and be resumed in flight then. */
struct heal_patched {
	uint64_t code_addr;
	uint32_t offset, fallback_unit, base_depth;
	/* The name persist() stored it under (it may differ from the agent's
	 * name for it: "#anchor", "@hash"), for its HITS; empty: not stored. */
	char *stored;
};

/* Firings received from the agent, not stored yet. */
struct heal_hit {
	char *name;
	uint64_t count;
	int64_t last;
};

struct heal {
	struct inspect_proc *ip;
	const struct inspect_reader *r;
	struct inspect_reader cached;
	struct heal_pages pages;
	struct inject_session *s;
	struct heal_opts o;
	char program[PATH_MAX];
	FILE *log;
	pid_t pid;
	char cwd[PATH_MAX];
	char pyver[16];
	struct heal_stats st;
	char err[512];
	/* Code objects this session replaced: a second thread that crashed at
	 * the same site before the patch landed reports the old code again. */
	struct heal_patched *patched;
	size_t npatched, cappatched;
	/* While loading at the agent's boot hook: its socket (else -1). */
	int boot_fd;
	uint64_t next_request;
	char key_of[PATH_MAX], key[PATH_MAX];   /* file_key's last answer */
	double t_walk, t_read, t_synth, t_send; /* load times, for --verbose */
	struct pend *pend;                      /* boot: posted, not answered yet */
	size_t npend, cappend;
	size_t pend_read;                       /* ... of which answered (read) */
	size_t pend_sent;                       /* ... of which written to the hook */
	struct heal_hit *hits;                  /* guard firings not yet stored */
	size_t nhits;
	/* heal__load_live: the live code may carry our patches already (a
	 * second attach): a mismatch is counted, never marked stale. */
	bool live;
	unsigned live_skipped;
	struct wire_buf posted;               /* boot: queued PATCH frames */
	/* heal__load_tree_boot_release: the boot event to release right
	 * behind the last posted patches (0: none), and whether it was. */
	uint64_t boot_release;
	bool boot_released;
	/* heal__preload: the specs read from the caller's store handle, for
	 * the next heal__load_tree (used once). */
	struct store *hit_st;                   /* heal__use_store, not ours */
	struct spec *pre;
	size_t npre;
	bool have_pre;
	/* Crashes being healed inside resumed calls (a continuation crashed
	 * again before its answer): heal__on_crash runs nested this deep. */
	unsigned nest;
};

/* The agent nests at most 8 continuations per thread and refuses the
 * resume past that (the crash is still patched and stored here); a bound
 * of our own, above it, keeps our stack flat whatever an agent reports. */
#define HEAL_MAX_NEST 16

static void specs__free(struct spec *v, size_t n);

static const struct heal_patched *was_patched(const struct heal *h, uint64_t addr)
{
	for (size_t i = 0; i < h->npatched; i++)
		if (h->patched[i].code_addr == addr)
			return &h->patched[i];
	return NULL;
}

static void note_patched(struct heal *h, uint64_t addr, uint32_t offset, const struct guard_patch *gp)
{
	if (h->npatched == h->cappatched) {
		size_t nc = h->cappatched ? 2 * h->cappatched : 32;
		struct heal_patched *v = realloc(h->patched, nc * sizeof(*v));
		if (!v)
			return;   /* only a nicer message and a late resume are lost */
		h->patched = v;
		h->cappatched = nc;
	}
	h->patched[h->npatched++] = (struct heal_patched){
		.code_addr = addr, .offset = offset, .fallback_unit = gp->fallback_unit,
		.base_depth = (uint32_t)gp->base_depth, .stored = NULL,
	};
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void say(struct heal *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct heal *h, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line: several tools may share the terminal. */
	fprintf(h->log, "[suture] %s\n", line);
	fflush(h->log);
}

int heal__open(struct inspect_proc *ip, struct inject_session *s, const struct heal_opts *o,
	       struct heal **out)
{
	struct heal *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->ip = ip;
	h->pages.under = inspect_proc__reader(ip);
	h->pages.data = malloc(HEAL_NPAGES * sizeof(*h->pages.data));
	h->cached = *h->pages.under;
	h->cached.read = pages_read;
	h->cached.ctx = &h->pages;
	h->r = &h->cached;
	h->s = s;
	h->boot_fd = -1;
	h->o = *o;
	h->log = o->log ? o->log : stderr;
	h->pid = inspect_proc__pid(ip);
	if (o->program) {
		snprintf(h->program, sizeof(h->program), "%s", o->program);
		h->o.program = h->program;
	}
	char link[64];
	snprintf(link, sizeof(link), "/proc/%d/cwd", (int)h->pid);
	ssize_t n = readlink(link, h->cwd, sizeof(h->cwd) - 1);
	h->cwd[n > 0 ? n : 0] = 0;
	uint32_t v = inspect_proc__version(ip);
	snprintf(h->pyver, sizeof(h->pyver), "%u.%u.%u", (v >> 24) & 0xff, (v >> 16) & 0xff,
		 (v >> 8) & 0xff);
	*out = h;
	return 0;
}

static void take_hits(struct heal *h);

void heal__set_session(struct heal *h, struct inject_session *s)
{
	if (h->s && h->s != s)
		take_hits(h);   /* what the old session received is ours to store */
	h->s = s;
}

void heal__close(struct heal *h)
{
	if (h) {
		heal__flush(h);
		for (size_t i = 0; i < h->nhits; i++)
			free(h->hits[i].name);
		free(h->hits);
		for (size_t i = 0; i < h->npatched; i++)
			free(h->patched[i].stored);
		free(h->patched);
		free(h->pages.data);
		free(h->pend);
		wire_buf__free(&h->posted);
		specs__free(h->pre, h->npre);
	}
	free(h);
}

const char *heal__error(const struct heal *h)
{
	return h->err;
}

const struct heal_stats *heal__stats(const struct heal *h)
{
	return &h->st;
}

void heal__summary(const struct heal *h, FILE *out)
{
	char extra[256] = "";
	size_t at = 0;
	if (h->st.would_apply)
		at += (size_t)snprintf(extra + at, sizeof(extra) - at, ", would apply: %u",
				       h->st.would_apply);
	if (h->st.refused && at < sizeof(extra))
		at += (size_t)snprintf(extra + at, sizeof(extra) - at, ", refused: %u", h->st.refused);
	if (h->st.stale && at < sizeof(extra))
		at += (size_t)snprintf(extra + at, sizeof(extra) - at, ", stale: %u", h->st.stale);
	if (h->st.expired && at < sizeof(extra))
		at += (size_t)snprintf(extra + at, sizeof(extra) - at, ", expired: %u", h->st.expired);
	if (h->st.failed && at < sizeof(extra))
		snprintf(extra + at, sizeof(extra) - at, ", failed: %u", h->st.failed);
	fprintf(out, "[suture] patches applied: %u, already healed: %u%s\n", h->st.applied,
		h->st.loaded, extra);
	fflush(out);
}

/* ------------------------------------------------------------------ */
/* Names and paths                                                     */

/* Copy src into dst[cap], truncated, always terminated. */
static void scopy(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (!cap)
		return;
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

/* co_filename as an absolute, resolved path (relative names are relative
 * to the target's working directory); "<...>" names stay as they are. */
static void file_key(struct heal *h, const char *file, char *out, size_t cap)
{
	char joined[PATH_MAX * 2];
	/* Every code object of a module has the same co_filename. */
	if (h->key_of[0] && strcmp(h->key_of, file) == 0) {
		scopy(out, cap, h->key);
		return;
	}
	if (!file[0] || file[0] == '<') {
		snprintf(out, cap, "%s", file);
		return;
	}
	if (file[0] == '/' || !h->cwd[0])
		scopy(joined, sizeof(joined), file);
	else
		snprintf(joined, sizeof(joined), "%s/%s", h->cwd, file);
	char real[PATH_MAX];
	scopy(out, cap, realpath(joined, real) ? real : joined);
	scopy(h->key_of, sizeof(h->key_of), file);
	scopy(h->key, sizeof(h->key), out);
}

static void module_of(const struct heal *h, const char *absfile, char *out, size_t cap)
{
	if (h->o.program && strcmp(absfile, h->o.program) == 0) {
		snprintf(out, cap, "__main__");
		return;
	}
	const char *base = strrchr(absfile, '/');
	base = base ? base + 1 : absfile;
	char name[256];
	scopy(name, sizeof(name), base);
	char *dot = strrchr(name, '.');
	if (dot)
		*dot = 0;
	if (strcmp(name, "__init__") == 0 && base != absfile) {
		/* a package: its directory's name */
		size_t dl = (size_t)(base - 1 - absfile);
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%.*s", (int)dl, absfile);
		const char *b2 = strrchr(dir, '/');
		scopy(name, sizeof(name), b2 ? b2 + 1 : dir);
	}
	snprintf(out, cap, "%s", name[0] ? name : "?");
}

static const char *base_of(const char *path)
{
	const char *b = strrchr(path, '/');
	return b ? b + 1 : path;
}

/* ------------------------------------------------------------------ */
/* Guard patch -> PATCH message                                        */

struct outgoing_patch {
	struct wire_patch p;
	struct wire_const consts[GUARD_MAX_CONSTS];
	struct wire_const *items[GUARD_MAX_CONSTS];
};

static void outgoing__free(struct outgoing_patch *w)
{
	for (size_t i = 0; i < GUARD_MAX_CONSTS; i++)
		free(w->items[i]);
}

static int str_const(struct wire_const *c, enum wire_const_kind kind, const char *s)
{
	*c = (struct wire_const){ .kind = kind, .data = (const uint8_t *)s, .len = strlen(s) };
	return 0;
}

/* Constants are named, never serialized objects (docs/formats/channel.md). */
static int outgoing__fill(struct outgoing_patch *w, uint64_t code_addr, const struct guard_patch *gp,
			    char *why, size_t cap)
{
	memset(w, 0, sizeof(*w));
	for (size_t i = 0; i < gp->nconsts; i++) {
		const struct guard_const *g = &gp->consts[i];
		struct wire_const *c = &w->consts[i];
		switch (g->kind) {
		case GUARD_CONST_NONE: c->kind = WIRE_CONST_NONE; break;
		case GUARD_CONST_INT: c->kind = WIRE_CONST_INT; c->i = g->i; break;
		case GUARD_CONST_FLOAT: c->kind = WIRE_CONST_FLOAT; c->f = g->f; break;
		case GUARD_CONST_EXC_TYPE: str_const(c, WIRE_CONST_BUILTIN, g->names[0]); break;
		case GUARD_CONST_HELPER: str_const(c, WIRE_CONST_HELPER, g->names[0]); break;
		case GUARD_CONST_EXC_TUPLE:
		case GUARD_CONST_NONE_TUPLE: {
			size_t n = g->kind == GUARD_CONST_EXC_TUPLE ? g->nnames : (size_t)g->i;
			if (g->kind == GUARD_CONST_NONE_TUPLE && (g->i < 0 || g->i > 4096)) {
				snprintf(why, cap, "a tuple constant of %lld items", (long long)g->i);
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
			*c = (struct wire_const){ .kind = WIRE_CONST_TUPLE, .items = it, .nitems = n };
			break;
		}
		case GUARD_CONST_PROBE_EXC:
		default:
			snprintf(why, cap, "constant kind %s cannot be sent", guard_const_kind__name(g->kind));
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
/* Synthesis shared by crashes and loads                                */

struct built {
	struct guard_decision d;
	struct guard_patch gp;
	struct guard_delta delta;
	char fp[32], code_id[32];
};

/* Synthesize d's guard on hc and pass it through the diff gate. */
static int build_patch(struct heal *h, const struct heal_code *hc, struct built *b, char *why,
		       size_t cap)
{
	struct rewrite_diag diag = { 0 };
	struct rewrite_code_info pi;
	struct rewrite_const *pconsts = NULL;
	int err;
	(void)h;
	if ((err = guard__synthesize(&hc->info, &b->d, &b->gp, &diag))) {
		snprintf(why, cap, "synthesis failed: %s", diag.msg[0] ? diag.msg : strerror(-err));
		return err;
	}
	if ((err = guard_patch__info(&hc->info, &b->gp, &pi, &pconsts))) {
		snprintf(why, cap, "cannot describe the patched code: %s", strerror(-err));
		guard_patch__release(&b->gp);
		return err;
	}
	memset(&diag, 0, sizeof(diag));
	err = guard_diffgate__check(&hc->info, &pi, &b->delta, &diag);
	free(pconsts);
	if (err) {
		snprintf(why, cap, "the diff gate rejected the patch: %s", diag.msg);
		guard_patch__release(&b->gp);
		return err;
	}
	return 0;
}

static void show_delta(struct heal *h, const struct heal_code *hc, const struct built *b)
{
	char dl[256];
	guard_delta__format(&b->delta, dl, sizeof(dl));
	say(h, "bytecode delta of %s: %s", hc->qualname, dl);
	guard_patch__dis(&hc->info, &b->gp, b->d.anchor_unit, 4, h->log);
	fflush(h->log);
}

/* PATCH for the boot hook, queued: the hook answers every frame in order
 * (boot_result), so patches are pipelined, and written in one go
 * (boot_send), so the parked importer wakes once for all of them. */
static int boot_post(struct heal *h, const struct wire_patch *p, char *why, size_t cap)
{
	struct wire_patch q = *p;
	q.request_id = ++h->next_request;
	int rc = q.meta.name[0] ? wire_msg__encode_patch_named(&h->posted, &q)
				: wire_msg__encode_patch(&h->posted, &q);
	if (rc || h->posted.err) {
		snprintf(why, cap, "cannot encode the patch: %s", strerror(rc ? -rc : -h->posted.err));
		return rc ? rc : h->posted.err;
	}
	return 0;
}

static int boot_send(struct heal *h)
{
	int rc = 0;
	if (h->posted.len)
		rc = wire_channel__write_all(h->boot_fd, h->posted.data, h->posted.len);
	wire_buf__reset(&h->posted);
	return rc ? -EPIPE : 0;
}

/* The next PATCH_RESULT from the boot hook. */
static int boot_result(struct heal *h, struct wire_patch_result *res, char *why, size_t cap)
{
	uint8_t hdr[WIRE_HDR_SIZE], *pl = NULL;
	struct wire_hdr hd;
	int rc = wire_channel__read_all(h->boot_fd, hdr, sizeof(hdr));
	if (!rc)
		rc = wire_msg__decode_hdr(hdr, hdr + sizeof(hdr), &hd);
	if (!rc && (hd.type != WIRE_MSG_PATCH_RESULT || !hd.len || !(pl = malloc(hd.len))))
		rc = -EPROTO;
	if (!rc)
		rc = wire_channel__read_all(h->boot_fd, pl, hd.len);
	if (!rc)
		rc = wire_msg__decode_patch_result(pl, pl + hd.len, res);
	free(pl);
	if (rc) {
		snprintf(why, cap, "the agent's boot hook did not answer: %s", strerror(-rc));
		return -EPIPE;
	}
	return 0;
}

static int boot_patch(struct heal *h, const struct wire_patch *p, struct wire_patch_result *res,
		      char *why, size_t cap)
{
	int rc = boot_post(h, p, why, cap);
	if (!rc && (rc = boot_send(h)))
		snprintf(why, cap, "the agent's boot hook went away");
	return rc ? rc : boot_result(h, res, why, cap);
}

/* Send and wait for the agent's answer. 0 installed; -EPIPE the agent is
 * gone; other -errno: refused (why says it). */
static int send_patch(struct heal *h, uint64_t code_addr, const struct guard_patch *gp,
		      const struct wire_patch_meta *meta, char *why, size_t cap,
		      struct wire_patch_result *res)
{
	struct outgoing_patch w;
	pages__drop(&h->pages);   /* the target changes now */
	int err = outgoing__fill(&w, code_addr, gp, why, cap);
	if (!err && meta)   /* named: the agent lists it and can roll it back */
		w.p.meta = *meta;
	if (!err) {
		memset(res, 0, sizeof(*res));
		if (h->boot_fd >= 0)
			err = boot_patch(h, &w.p, res, why, cap);
		else if (!h->s) {
			err = -ENOTCONN;
			snprintf(why, cap, "no session with the agent");
		} else if ((err = inject_session__send_patch(h->s, &w.p, res)))
			snprintf(why, cap, "%s", inject_session__error(h->s));
		if (!err && res->status) {
			err = res->status;
			snprintf(why, cap, "the agent refused the patch: %s", res->message);
		}
	}
	outgoing__free(&w);
	return err;
}

/* store/ messages become [suture] lines (a missing store is no news). */
static void store_said(const char *msg, void *ctx)
{
	struct heal *h = ctx;
	snprintf(h->err, sizeof(h->err), "%s", msg);
}

static int open_store(struct heal *h, unsigned flags, struct store **out)
{
	h->err[0] = 0;
	store__set_print(store_said, h);
	int err = store__open(h->o.store_dir, flags, out);
	if (err && err != -ENOENT)
		say(h, "%s", h->err[0] ? h->err : strerror(-err));
	return err;
}

void heal__use_store(struct heal *h, struct store *st)
{
	if (h)
		h->hit_st = st;
}

/* The firings the session received (HITS frames), added to h->hits under
 * the store's names: a patch made in this session by its code address (the
 * agent knows it by the name it was sent with), one loaded by its name. */
static void take_hits(struct heal *h)
{
	struct wire_hit *v = NULL;
	size_t n = 0;
	if (!h->s || inject_session__take_hits(h->s, &v, &n) || !n)
		return;
	for (size_t i = 0; i < n; i++) {
		const char *name = v[i].name;
		for (size_t k = 0; k < h->npatched; k++)
			if (h->patched[k].code_addr == v[i].orig_addr && h->patched[k].stored)
				name = h->patched[k].stored;
		if (!name[0] || !h->o.program || h->o.dry_run)
			continue;   /* an unnamed PATCH, or nothing is stored for this run */
		if (h->o.verbose)
			say(h, "guard fired: %s, %llu time(s)", name, (unsigned long long)v[i].count);
		size_t k = 0;
		while (k < h->nhits && strcmp(h->hits[k].name, name) != 0)
			k++;
		if (k == h->nhits) {
			struct heal_hit *nv = realloc(h->hits, (h->nhits + 1) * sizeof(*nv));
			char *copy = nv ? strdup(name) : NULL;
			if (nv)
				h->hits = nv;
			if (!copy)
				break;
			h->hits[h->nhits++] = (struct heal_hit){ .name = copy };
		}
		h->hits[k].count += v[i].count;
		int64_t last = (int64_t)(v[i].last_ms / 1000);
		if (last > h->hits[k].last)
			h->hits[k].last = last;
	}
	free(v);
}

void heal__flush(struct heal *h)
{
	struct store *st = NULL;
	if (!h)
		return;
	take_hits(h);
	if (!h->nhits)
		return;
	struct store_hit_count *v = calloc(h->nhits, sizeof(*v));
	if (!v)
		return;   /* kept for the next flush */
	for (size_t i = 0; i < h->nhits; i++)
		v[i] = (struct store_hit_count){ h->hits[i].name, h->hits[i].count, h->hits[i].last };
	h->err[0] = 0;
	if (h->hit_st) {
		store__set_print(store_said, h);
		if (store__add_hits(h->hit_st, v, h->nhits, NULL) && h->err[0])
			say(h, "%s", h->err);
	} else if (open_store(h, STORE_F_LAZY, &st) == 0) {
		/* Lazy: the transaction reads the index under the lock anyway. */
		if (store__add_hits(st, v, h->nhits, NULL) && h->err[0])
			say(h, "%s", h->err);
		store__close(st);
	}
	free(v);
	for (size_t i = 0; i < h->nhits; i++)
		free(h->hits[i].name);
	h->nhits = 0;
}

/* The original code's parts, as data, for `suture-audit explain` to show
 * the bytecode side by side (store/code.h; never executed or installed).
 * Canonical bytes: the live ones may be quickened. A failure costs only
 * the side-by-side view. */
static void save_code(struct heal *h, const struct store *st, const struct heal_code *hc,
		      const char *code_id)
{
	struct rewrite_code_info ci = hc->info;
	uint8_t *canon = malloc(ci.code_len ? ci.code_len : 1);
	int err = canon ? rewrite_bytes__deopt(ci.code, ci.code_len, canon) : -ENOMEM;
	if (!err) {
		ci.code = canon;
		err = store_code__save(store__path(st), code_id, &ci);
	}
	if (err)
		say(h, "store: %s: no code file for explain: %s", store__path(st), strerror(-err));
	free(canon);
}

/* Store the patch just installed on code_addr. resumed: its fallback
 * already healed the crash it was made for (in flight), its first hit. */
static void persist(struct heal *h, const struct heal_code *hc, const struct built *b,
		    const char *file, int line, uint64_t code_addr, bool resumed)
{
	char module[256], name[STORE_NAME_MAX + 1];
	struct store *st = NULL;
	if (!h->o.program || h->o.no_store)
		return;
	module_of(h, file, module, sizeof(module));
	struct store_patch p = {
		.guard = guard_kind__name(b->d.kind),
		.module = module,
		.qualname = hc->qualname,
		.file = file,
		.first_line = hc->firstlineno > 0 ? hc->firstlineno : 1,
		.line = line > 0 ? line : (hc->firstlineno > 0 ? hc->firstlineno : 1),
		.target = b->d.target[0] ? b->d.target : "?",
		.fallback = b->d.fallback_text[0] ? b->d.fallback_text : "?",
		.consumer = b->d.consumer[0] ? b->d.consumer : NULL,
		.placement = guard_placement__name(b->d.placement),
		.anchor_offset = b->d.anchor_unit,
		.anchor_window = b->fp,
		.code_id = b->code_id,
		.program = h->o.program,
		.python_version = h->pyver,
		.ttl_days = h->o.ttl_days,
	};
	if (store_patch__default_name(&p, name, sizeof(name)))
		return;
	p.name = name;
	if (open_store(h, STORE_F_CREATE, &st))
		return;
	/* The default name says module, function, line and guard; another
	 * program (two scripts' __main__.load) or another Python may have a
	 * patch of that name: keep both, ours named apart (deterministically,
	 * so healing this program again replaces its own). */
	const struct store_patch *old = store__find(st, name);
	/* Another guard of the same kind on the same line of this function
	 * (d["a"] + d["b"]) is a second patch, not a replacement: named
	 * apart by its anchor. An active patch at the same anchor, or a stale
	 * one, is replaced (the site healed again). */
	if (old && strcmp(old->program, p.program) == 0 &&
	    strcmp(old->python_version, p.python_version) == 0 &&
	    old->status == STORE_STATUS_ACTIVE && old->anchor_offset != p.anchor_offset) {
		size_t n = strlen(name);
		snprintf(name + n, sizeof(name) - n, "#%u", p.anchor_offset);
		old = store__find(st, name);
	}
	if (old && (strcmp(old->program, p.program) != 0 ||
		    strcmp(old->python_version, p.python_version) != 0)) {
		uint64_t hsh = 1469598103934665603ull;
		for (const char *c = p.program; *c; c++)
			hsh = (hsh ^ (uint8_t)*c) * 1099511628211ull;
		for (const char *c = p.python_version; *c; c++)
			hsh = (hsh ^ (uint8_t)*c) * 1099511628211ull;
		size_t n = strlen(name);
		snprintf(name + n, sizeof(name) - n, "@%08llx", (unsigned long long)(hsh & 0xffffffffu));
	}
	if (resumed) {
		p.hits = 1;
		p.last_hit = store__now();
	}
	if (store__add(st, &p) == 0) {
		say(h, "stored patch %s in %s", name, store__path(st));
		/* Its firings come under the name the agent got (patch_meta). */
		if (h->npatched && h->patched[h->npatched - 1].code_addr == code_addr &&
		    !h->patched[h->npatched - 1].stored)
			h->patched[h->npatched - 1].stored = strdup(name);
		save_code(h, st, hc, b->code_id);
	} else {
		say(h, "%s", h->err);
	}
	store__close(st);
}

/* The name and text the agent keeps with a patch (LIST, ROLLBACK): the
 * store's default name, as persist() gives it (a name made distinct with
 * "@<hash>" for another program is not known before the store is open). */
static void patch_meta(struct heal *h, const struct heal_code *hc, const struct built *b,
		       const char *file, int line, struct wire_patch_meta *meta)
{
	char module[256];
	memset(meta, 0, sizeof(*meta));
	module_of(h, file, module, sizeof(module));
	struct store_patch p = {
		.guard = guard_kind__name(b->d.kind),
		.module = module,
		.qualname = hc->qualname,
		.line = line > 0 ? line : (hc->firstlineno > 0 ? hc->firstlineno : 1),
	};
	if (store_patch__default_name(&p, meta->name, sizeof(meta->name)))
		meta->name[0] = 0;
	snprintf(meta->guard, sizeof(meta->guard), "%s", p.guard);
	snprintf(meta->target, sizeof(meta->target), "%s", b->d.target);
	snprintf(meta->fallback, sizeof(meta->fallback), "%s", b->d.fallback_text);
}

/* ------------------------------------------------------------------ */
/* Crashes                                                              */

/* A crash inside the continuation of a resumed call of qualname: healed
 * like any other (its resume may nest again), bounded. 0 or -EPIPE. */
static int heal_nested(struct heal *h, const char *qualname, const struct wire_crash *in)
{
	if (h->nest >= HEAL_MAX_NEST) {
		say(h, "the resumed call of %s crashed again in %s, %u resumed calls deep: not healed "
		    "(that crash goes on)", qualname, in->qualname, h->nest);
		return inject_session__release(h->s, in) == -EPIPE ? -EPIPE : 0;
	}
	say(h, "the resumed call of %s crashed again, in %s: healing it in flight too", qualname,
	    in->qualname);
	bool pages_on = h->pages.on;
	h->nest++;
	int rc = heal__on_crash(h, in, NULL);
	h->nest--;
	/* The target changed meanwhile: read it afresh. */
	pages__drop(&h->pages);
	h->pages.on = pages_on;
	return rc;
}

/* Resume the parked call in flight from the guard's fallback (the patch
 * is installed). Sets *released when the thread went on by itself, *oc
 * to HEAL_RESUMED when its caller got the result. 0 or -EPIPE. */
static int resume_call(struct heal *h, const struct wire_crash *ev, const char *qualname,
		       uint32_t fallback_unit, uint32_t base_depth, bool *released,
		       enum heal_outcome *oc)
{
	struct wire_resume_result rr;
	struct wire_crash in;
	double t0 = now_ms();
	int err = inject_session__resume(h->s, ev, fallback_unit, base_depth, &rr, &in);
	while (err == INJECT_RESUME_NESTED) {
		/* The continuation crashed again (later in the call, or in a
		 * function it calls): that thread is parked on the new crash
		 * and answers ev only once it is dealt with. */
		err = heal_nested(h, qualname, &in);
		if (err == 0)
			err = inject_session__resume_wait(h->s, ev, &rr, &in);
	}
	double ms = now_ms() - t0;
	if (err == -EPIPE) {
		*released = true;
		return -EPIPE;
	}
	if (err == 0 && rr.status == WIRE_RESUMED) {
		*released = true;
		*oc = HEAL_RESUMED;
		say(h, "resumed in flight: %s went on from the fallback; its caller got the result "
		    "[%.2f ms]", qualname, ms);
	} else if (err == 0 && rr.status == WIRE_RESUME_RAISED) {
		*released = true;
		say(h, "resumed in flight, but the rest of %s raised: that exception goes on", qualname);
	} else {
		say(h, "not resumed in flight (%s): this crash goes on, later calls are healed",
		    err ? inject_session__error(h->s) : rr.message);
	}
	return 0;
}

int heal__on_crash(struct heal *h, const struct wire_crash *ev, enum heal_outcome *outcome)
{
	struct heal_code hc;
	struct built b;
	char why[512] = "", file[PATH_MAX];
	enum heal_outcome oc = HEAL_FAILED;
	int rc = 0, err;
	double t0 = now_ms();
	bool released = false;

	memset(&b, 0, sizeof(b));
	h->st.crashes++;
	pages__drop(&h->pages);
	h->pages.on = true;
	file_key(h, ev->filename, file, sizeof(file));
	say(h, "crash seen: %s%s%.160s in %s (%s:%u)", ev->exc_type, ev->message[0] ? ": " : "",
	    ev->message, ev->qualname, base_of(ev->filename), ev->line);

	const struct heal_patched *pp = was_patched(h, ev->code_addr);
	if (pp && pp->offset == ev->offset && pp->fallback_unit && !h->o.no_resume) {
		/* A frame suspended while its function was patched, which could
		 * not take the new code (entered from C, or the guard needs more
		 * stack than the frame has), reached the guarded instruction:
		 * the installed patch lets its call go on in flight. */
		say(h, "already patched: this frame of %s kept the original code (it could not "
		    "take the new one while suspended)", ev->qualname);
		enum heal_outcome late = HEAL_NONE;
		rc = resume_call(h, ev, ev->qualname, pp->fallback_unit, pp->base_depth, &released,
				 &late);
		if (late == HEAL_RESUMED)
			h->st.resumed++;   /* the patch was counted when it was applied */
		oc = HEAL_NONE;
		goto out;
	}
	if (pp) {
		say(h, "already patched: %s was replaced a moment ago; this crash started before",
		    ev->qualname);
		oc = HEAL_NONE;
		goto out;
	}
	if ((err = heal_code__read(h->r, ev->code_addr, &hc))) {
		say(h, "failed: cannot read the code object of %s at %#llx: %s", ev->qualname,
		    (unsigned long long)ev->code_addr, strerror(-err));
		goto out;
	}
	if (!(hc.flags & CO_OPTIMIZED)) {
		/* A module or class body runs once: a guard could never be
		 * used, and re-running the program would crash the same way. */
		say(h, "not patched: the crash is at module level (%s, %s:%u): reported only",
		    hc.qualname, base_of(ev->filename), ev->line);
		oc = HEAL_MODULE_LEVEL;
		goto out_code;
	}
	struct guard_crash c = {
		.unit = ev->offset / 2,
		.exc_type = ev->exc_type,
		.message = ev->message,
		.in_callee = false,   /* the agent reports the frame the exception starts in */
		.stdlib = -1,
	};
	struct rewrite_diag diag = { 0 };
	if ((err = guard__analyse(&hc.info, &c, &b.d, &diag))) {
		say(h, "failed: analysis of %s: %s", hc.qualname, diag.msg[0] ? diag.msg : strerror(-err));
		goto out_code;
	}
	if (b.d.kind == GUARD_NONE) {
		say(h, "refused: %s (%s in %s, %s:%u)", b.d.reason, ev->exc_type, hc.qualname,
		    base_of(ev->filename), ev->line);
		oc = HEAL_REFUSED;
		goto out_code;
	}
	if (build_patch(h, &hc, &b, why, sizeof(why))) {
		say(h, "failed: %s (%s in %s)", why, guard_kind__name(b.d.kind), hc.qualname);
		goto out_code;
	}
	uint64_t id = 0;
	guard_code__identity(&hc.info, &id);
	snprintf(b.code_id, sizeof(b.code_id), "fnv64:%016llx", (unsigned long long)id);
	snprintf(b.fp, sizeof(b.fp), "fnv64:%016llx", (unsigned long long)b.d.fingerprint);
	if (h->o.verbose)
		show_delta(h, &hc, &b);
	if (h->o.dry_run) {
		say(h, "dry run: would apply %s %s -> %s (%s) in %s (%s:%u)", guard_kind__name(b.d.kind),
		    b.d.target, b.d.fallback_text, b.d.consumer, hc.qualname, base_of(ev->filename),
		    ev->line);
		oc = HEAL_WOULD_APPLY;
		goto out_patch;
	}
	struct wire_patch_result res;
	struct wire_patch_meta meta;
	patch_meta(h, &hc, &b, file, (int)ev->line, &meta);
	err = send_patch(h, ev->code_addr, &b.gp, &meta, why, sizeof(why), &res);
	if (err == -EPIPE) {
		rc = -EPIPE;
		say(h, "failed: %s", why);
		goto out_patch;
	}
	if (err) {
		say(h, "failed: %s (%s in %s)", why, guard_kind__name(b.d.kind), hc.qualname);
		goto out_patch;
	}
	double t1 = now_ms();
	note_patched(h, ev->code_addr, ev->offset, &b.gp);
	say(h, "guard applied: %s %s -> %s (%s) in %s (%s:%u) [%u function(s), %.2f ms]",
	    guard_kind__name(b.d.kind), b.d.target, b.d.fallback_text, b.d.consumer, hc.qualname,
	    base_of(ev->filename), ev->line, res.nfunctions, t1 - t0);
	oc = HEAL_APPLIED;
	/* In flight: the failing call continues from the fallback and its
	 * caller gets the result (handler guards only: a redirect guard has
	 * no fallback entry). Otherwise the exception goes on. */
	if (!h->o.no_resume && b.gp.fallback_unit)
		rc = resume_call(h, ev, hc.qualname, b.gp.fallback_unit, (uint32_t)b.gp.base_depth,
				 &released, &oc);
	/* The thread goes on first: persisting (fsync) is not its business. */
	if (!released) {
		released = true;
		if (inject_session__release(h->s, ev) == -EPIPE)
			rc = -EPIPE;
	}
	persist(h, &hc, &b, file, (int)ev->line, ev->code_addr, oc == HEAL_RESUMED);
out_patch:
	guard_patch__release(&b.gp);
out_code:
	heal_code__free(&hc);
out:
	switch (oc) {
	case HEAL_APPLIED: h->st.applied++; break;
	case HEAL_RESUMED: h->st.applied++; h->st.resumed++; break;
	case HEAL_WOULD_APPLY: h->st.would_apply++; break;
	case HEAL_REFUSED: case HEAL_MODULE_LEVEL: h->st.refused++; break;
	case HEAL_FAILED: h->st.failed++; break;
	case HEAL_NONE: break;
	}
	h->pages.on = false;
	if (!released && rc != -EPIPE && inject_session__release(h->s, ev) == -EPIPE)
		rc = -EPIPE;
	if (outcome)
		*outcome = oc;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Loading stored patches                                               */

/* A stored patch of this program, copied out of the store. */
struct spec {
	char *name, *guard, *qualname, *file, *target, *fallback, *code_id, *window;
	uint32_t anchor;
	int line;
	int first_line;       /* co_firstlineno of the function it was made for */
	enum store_verdict verdict;
	int64_t expires;
	bool done;            /* applied, or reported */
	/* A function of its qualname and file was seen, but at another first
	 * line: a sibling of the same name (a property's getter and setter
	 * are both "C.x") may still take it; specs__sweep decides at the end. */
	bool seen;
};

static void specs__free(struct spec *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name); free(v[i].guard); free(v[i].qualname); free(v[i].file);
		free(v[i].target); free(v[i].fallback); free(v[i].code_id); free(v[i].window);
	}
	free(v);
}

static int specs__from(struct heal *h, const struct store *st, struct spec **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	struct store_query q = { .program = h->o.program, .python_version = h->pyver };
	struct store_iter it;
	size_t cap = store__count(st) + 1;
	struct spec *v = calloc(cap, sizeof(*v));
	if (!v)
		return -ENOMEM;
	store_iter__init(&it, st, &q);
	for (const struct store_patch *p; (p = store_iter__next(&it)) && *n < cap;) {
		enum store_verdict vd = store_patch__verdict(p, &q);
		if (vd == STORE_V_OTHER_PYTHON)
			continue;
		struct spec *s = &v[(*n)++];
		s->name = strdup(p->name);
		s->guard = strdup(p->guard);
		s->qualname = strdup(p->qualname);
		s->file = strdup(p->file);
		s->target = strdup(p->target);
		s->fallback = strdup(p->fallback);
		s->code_id = strdup(p->code_id ? p->code_id : "");
		s->window = strdup(p->anchor_window ? p->anchor_window : "");
		s->anchor = p->anchor_offset;
		s->line = p->line;
		s->first_line = p->first_line;
		s->verdict = vd;
		s->expires = store_patch__expires(p);
		if (!s->name || !s->guard || !s->qualname || !s->file || !s->target || !s->fallback ||
		    !s->code_id || !s->window) {
			specs__free(v, *n);
			*n = 0;
			return -ENOMEM;
		}
	}
	*out = v;
	return 0;
}

static int specs__load(struct heal *h, struct spec **out, size_t *n)
{
	struct store *st = NULL;
	*out = NULL;
	*n = 0;
	int err = open_store(h, STORE_F_RDONLY, &st);
	if (err)
		return err == -ENOENT ? 0 : err;
	err = specs__from(h, st, out, n);
	store__close(st);
	return err;
}

int heal__preload(struct heal *h, const struct store *st)
{
	specs__free(h->pre, h->npre);
	h->pre = NULL;
	h->npre = 0;
	h->have_pre = false;
	if (!h->o.program || !st)
		return 0;
	int err = specs__from(h, st, &h->pre, &h->npre);
	h->have_pre = err == 0;
	return err;
}

struct candidate {
	const char *exc, *msg;
};

/* Crashes that give each guard kind (rewrite/analyse.c's classification). */
static size_t candidates_for(enum guard_kind k, struct candidate *c)
{
	switch (k) {
	case GUARD_NULL:
		c[0] = (struct candidate){ "AttributeError", "'NoneType' object has no attribute 'x'" };
		return 1;
	case GUARD_INDEX: c[0] = (struct candidate){ "IndexError", "index out of range" }; return 1;
	case GUARD_KEY: c[0] = (struct candidate){ "KeyError", "'key'" }; return 1;
	case GUARD_SUBSCRIPT:
		c[0] = (struct candidate){ "TypeError", "'NoneType' object is not subscriptable" };
		return 1;
	case GUARD_CHAIN_SUBSCRIPT:
		c[0] = (struct candidate){ "KeyError", "'key'" };
		c[1] = (struct candidate){ "IndexError", "index out of range" };
		c[2] = (struct candidate){ "TypeError", "'NoneType' object is not subscriptable" };
		return 3;
	case GUARD_TYPE_COERCION:
		c[0] = (struct candidate){ "ValueError", "invalid literal" };
		c[1] = (struct candidate){ "TypeError", "argument must be a string or a number" };
		return 2;
	case GUARD_DIVISION: c[0] = (struct candidate){ "ZeroDivisionError", "division by zero" }; return 1;
	case GUARD_STR_COERCE:
		c[0] = (struct candidate){ "TypeError", "can only concatenate str (not \"int\") to str" };
		c[1] = (struct candidate){ "TypeError", "unsupported operand type(s) for +: 'int' and 'str'" };
		return 2;
	case GUARD_FILE:
		c[0] = (struct candidate){ "FileNotFoundError", "No such file or directory" };
		return 1;
	case GUARD_CALLABLE:
		c[0] = (struct candidate){ "TypeError", "'NoneType' object is not callable" };
		return 1;
	default:
		return 0;
	}
}

/* The stored decision again, from the live original. 0 with b->d, or
 * -ESTALE (why says what no longer matches). */
static int redecide(const struct heal_code *hc, const struct spec *s, struct built *b, char *why,
		    size_t cap)
{
	struct candidate cand[4];
	enum guard_kind kind = guard_kind__by_name(s->guard);
	size_t n = candidates_for(kind, cand);
	for (size_t i = 0; i < n; i++) {
		struct guard_crash c = { .unit = s->anchor, .exc_type = cand[i].exc,
					 .message = cand[i].msg, .stdlib = -1 };
		char fp[32];
		if (guard__analyse(&hc->info, &c, &b->d, NULL) || b->d.kind != kind)
			continue;
		snprintf(fp, sizeof(fp), "fnv64:%016llx", (unsigned long long)b->d.fingerprint);
		if (s->window[0] && strcmp(fp, s->window) != 0)
			continue;
		snprintf(b->fp, sizeof(b->fp), "%s", fp);
		return 0;
	}
	snprintf(why, cap, "no %s decided at unit %u any more", s->guard, s->anchor);
	return -ESTALE;
}

int heal_spec__redecide(const struct rewrite_code_info *info, const char *guard, uint32_t anchor,
			const char *window, struct guard_decision *d)
{
	struct heal_code hc = { .info = *info };
	struct spec s = { .guard = (char *)guard, .anchor = anchor, .window = (char *)window };
	struct built b;
	char why[128];
	memset(&b, 0, sizeof(b));
	int err = redecide(&hc, &s, &b, why, sizeof(why));
	if (!err)
		*d = b.d;
	return err;
}

struct node {
	uint64_t addr;
};

struct tree {
	struct node *v;
	size_t n, cap;
};

static int tree__walk(struct heal *h, struct tree *t, uint64_t addr, int depth)
{
	struct inspect_code c;
	if (depth > MAX_DEPTH || t->n >= MAX_TREE)
		return 0;
	if (inspect_code__read(h->r, addr, &c))
		return 0;
	if (t->n == t->cap) {
		size_t nc = t->cap ? 2 * t->cap : 64;
		struct node *nv = realloc(t->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		t->v = nv;
		t->cap = nc;
	}
	t->v[t->n++] = (struct node){ addr };
	uint64_t *items;
	size_t n;
	if (inspect_tuple__read(h->r, c.consts, 1u << 16, &items, &n))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char type[32];
		if (inspect_value__type_name(h->r, items[i], type, sizeof(type)) == 0 &&
		    strcmp(type, "code") == 0) {
			int err = tree__walk(h, t, items[i], depth + 1);
			if (err) {
				free(items);
				return err;
			}
		}
	}
	free(items);
	return 0;
}

/* Where the code of this function is now, after the agent replaced it:
 * found again from the module (an enclosing function patched earlier in
 * this load was replaced too, so the old parent may be gone) by qualified
 * name and first line. 0 if it cannot be found. */
static uint64_t reread_code(struct heal *h, uint64_t root, uint64_t func, const char *qualname,
			    int firstlineno)
{
	struct tree t = { 0 };
	uint64_t a = 0;
	pages__drop(&h->pages);
	/* Live: the function object holds its current code. */
	if (func && h->r->read(h->r->ctx, func + (uint64_t)h->r->off->func_code, &root, 8))
		return 0;
	if (tree__walk(h, &t, root, 0) == 0)
		for (size_t i = func ? 0 : 1; i < t.n && !a; i++) {
			struct inspect_code c;
			if (inspect_code__read(h->r, t.v[i].addr, &c) == 0 && c.firstlineno == firstlineno &&
			    strcmp(c.qualname, qualname) == 0)
				a = t.v[i].addr;
		}
	free(t.v);
	return a;
}

static void mark_stale(struct heal *h, struct spec *s, const char *reason)
{
	struct store *st = NULL;
	if (h->o.dry_run || open_store(h, 0, &st))
		return;
	store__mark_stale(st, s->name, reason);
	store__close(st);
}

static int pend__push(struct heal *h, struct spec *s, const char *qualname, const char *file)
{
	if (h->npend == h->cappend) {
		size_t nc = h->cappend ? 2 * h->cappend : 64;
		struct pend *v = realloc(h->pend, nc * sizeof(*v));
		if (!v)
			return -ENOMEM;
		h->pend = v;
		h->cappend = nc;
	}
	struct pend *p = &h->pend[h->npend++];
	p->s = s;
	scopy(p->qualname, sizeof(p->qualname), qualname);
	scopy(p->base, sizeof(p->base), base_of(file));
	return 0;
}

/* Pipelining: the hook builds the patched code of one chunk while we
 * synthesize the next; at most BOOT_INFLIGHT patches are written and not
 * answered yet, so neither side ever blocks on a full socket buffer. */
#define BOOT_CHUNK 16
#define BOOT_INFLIGHT (2 * BOOT_CHUNK)

/* Read the hook's answers, in order, until at most `keep` are unread. */
static int boot_answers(struct heal *h, size_t keep, int rc)
{
	while (h->pend_read < h->npend && h->pend_sent - h->pend_read > keep) {
		struct pend *p = &h->pend[h->pend_read++];
		struct wire_patch_result res;
		char why[512];
		if (rc == 0)
			rc = boot_result(h, &res, why, sizeof(why));
		if (rc == 0 && res.status)
			snprintf(why, sizeof(why), "the agent refused the patch: %s", res.message);
		if (rc || res.status) {
			say(h, "failed: loading %s: %s", p->s->name, why);
			h->st.failed++;
			continue;
		}
		say(h, "already healed: %s %s -> %s in %s (%s:%d)", p->s->guard, p->s->target,
		    p->s->fallback, p->qualname, p->base, p->s->line);
		h->st.loaded++;
	}
	return rc;
}

enum boot_flush { BOOT_CHUNKED, BOOT_DRAIN, BOOT_LAST };

/* Write the patches posted so far and read answers: BOOT_CHUNKED once a
 * chunk is full, reading only what keeps the pipeline within its bound;
 * BOOT_DRAIN everything, every answer (a patch that must see the ones
 * before it installed); BOOT_LAST the same with the RELEASE behind the
 * patches, so the module runs while we read the answers. */
static int boot_collect(struct heal *h, enum boot_flush how)
{
	if (how == BOOT_CHUNKED && h->npend - h->pend_sent < BOOT_CHUNK)
		return 0;
	double t0 = now_ms();
	if (how == BOOT_LAST && h->boot_release) {
		struct wire_release r = { h->boot_release };
		if (wire_msg__encode_release(&h->posted, &r) == 0 && !h->posted.err)
			h->boot_released = true;
	}
	int rc = boot_send(h);
	if (rc)
		h->boot_released = false;
	/* On error what is unanswered is reported as failed. */
	h->pend_sent = h->npend;
	rc = boot_answers(h, how == BOOT_CHUNKED && !rc ? BOOT_INFLIGHT : 0, rc);
	if (how != BOOT_CHUNKED || rc)
		h->npend = h->pend_read = h->pend_sent = 0;
	h->t_send += now_ms() - t0;
	return rc;
}

/* A stored patch of a function visited in this load that was not applied
 * (rc: the load's status so far; chain_lost: its function's once-patched
 * code could not be found back). */
static void settle(struct heal *h, struct spec *s, bool chain_lost, int rc)
{
	s->done = true;
	if (h->live && s->verdict != STORE_V_EXPIRED) {
		h->live_skipped++;
	} else if (s->verdict == STORE_V_EXPIRED) {
		say(h, "expired: %s: not applied; fix the source", s->name);
		h->st.expired++;
	} else if (s->verdict == STORE_V_STALE) {
		say(h, "stale: %s: marked stale earlier; not applied", s->name);
		h->st.stale++;
	} else if (chain_lost) {
		say(h, "failed: %s: the once-patched %s could not be read back; not applied this time",
		    s->name, s->qualname);
		h->st.failed++;
	} else if (rc == 0) {
		say(h, "stale: %s: %s changed since the patch was made (code identity differs); "
		    "not applied", s->name, s->qualname);
		h->st.stale++;
		mark_stale(h, s, "the function's code changed (code identity differs)");
	}
}

/* After a load: the patches whose function was seen only at another first
 * line (no sibling took them) no longer match the code. */
static void specs__sweep(struct heal *h, struct spec *v, size_t nv, int rc)
{
	for (size_t i = 0; i < nv; i++)
		if (!v[i].done && v[i].seen)
			settle(h, &v[i], false, rc);
}

/* Apply, in sequence, the stored patches whose code_id matches the live
 * code at nd; report the others of this function as stale. */
static int load_node(struct heal *h, struct spec *v, size_t nv, uint64_t root, uint64_t func,
		     const struct node *nd)
{
	uint64_t addr = nd->addr;
	bool chain_lost = false;   /* the patched code could not be found back */
	struct inspect_code c;
	char file[PATH_MAX];
	int rc = 0;

	if (inspect_code__read(h->r, addr, &c))
		return 0;
	/* Cheap test first: a stored function of that name at all? */
	bool any = false;
	for (size_t i = 0; i < nv && !any; i++)
		any = !v[i].done && strcmp(v[i].qualname, c.qualname) == 0;
	if (!any)
		return 0;
	file_key(h, c.filename, file, sizeof(file));
	any = false;
	for (size_t i = 0; i < nv && !any; i++)
		any = !v[i].done && strcmp(v[i].qualname, c.qualname) == 0 && strcmp(v[i].file, file) == 0;
	if (!any)
		return 0;

	for (int step = 0; step < 16 && addr; step++) {
		struct heal_code hc;
		uint64_t id = 0;
		char cid[32], why[512];
		double t0 = now_ms();
		if (heal_code__read(h->r, addr, &hc))
			break;
		double t1 = now_ms();
		h->t_read += t1 - t0;
		guard_code__identity(&hc.info, &id);
		snprintf(cid, sizeof(cid), "fnv64:%016llx", (unsigned long long)id);
		struct spec *s = NULL;
		for (size_t i = 0; i < nv && !s; i++)
			if (!v[i].done && v[i].verdict != STORE_V_STALE &&
			    strcmp(v[i].qualname, c.qualname) == 0 && strcmp(v[i].file, file) == 0 &&
			    strcmp(v[i].code_id, cid) == 0)
				s = &v[i];
		if (!s) {
			heal_code__free(&hc);
			break;
		}
		s->done = true;
		if (s->verdict == STORE_V_EXPIRED) {
			char when[32] = "?";
			store__format_time(s->expires, when, sizeof(when));
			say(h, "expired: %s (%s %s in %s, %s:%d) expired %s: not applied; fix the source",
			    s->name, s->guard, s->target, c.qualname, base_of(file), s->line, when);
			h->st.expired++;
			heal_code__free(&hc);
			continue;   /* the next patch of the chain cannot match either */
		}
		struct built b;
		memset(&b, 0, sizeof(b));
		int bad = redecide(&hc, s, &b, why, sizeof(why)) ||
			  build_patch(h, &hc, &b, why, sizeof(why));
		double t2 = now_ms();
		h->t_synth += t2 - t1;
		if (bad) {
			say(h, "stale: %s: %s; not applied", s->name, why);
			h->st.stale++;
			mark_stale(h, s, why);
			heal_code__free(&hc);
			break;
		}
		if (h->o.verbose) {
			show_delta(h, &hc, &b);
			t2 = now_ms();   /* printing is not the agent's time */
		}
		if (h->o.dry_run) {
			say(h, "dry run: would load %s %s -> %s in %s (%s:%d)", s->guard, b.d.target,
			    b.d.fallback_text, c.qualname, base_of(file), s->line);
			guard_patch__release(&b.gp);
			heal_code__free(&hc);
			break;
		}
		/* Another guard of this function stored on top of this one? */
		bool more = false;
		for (size_t i = 0; i < nv && !more; i++)
			more = !v[i].done && strcmp(v[i].qualname, c.qualname) == 0 &&
			       strcmp(v[i].file, file) == 0 && v[i].first_line == c.firstlineno;
		int err;
		if (h->boot_fd >= 0 && !more && (err = pend__push(h, s, c.qualname, file)) == 0) {
			/* Pipelined: the answer is read by boot_collect. */
			struct outgoing_patch w;
			err = outgoing__fill(&w, addr, &b.gp, why, sizeof(why));
			if (!err) {   /* named: the agent lists it and can roll it back */
				snprintf(w.p.meta.name, sizeof(w.p.meta.name), "%s", s->name);
				snprintf(w.p.meta.guard, sizeof(w.p.meta.guard), "%s", s->guard);
				snprintf(w.p.meta.target, sizeof(w.p.meta.target), "%s", s->target);
				snprintf(w.p.meta.fallback, sizeof(w.p.meta.fallback), "%s", s->fallback);
				err = boot_post(h, &w.p, why, sizeof(why));
			}
			outgoing__free(&w);
			if (err)
				h->npend--;
			else if ((err = boot_collect(h, BOOT_CHUNKED)))
				snprintf(why, sizeof(why), "the agent's boot hook went away");
			h->t_send += now_ms() - t2;
			guard_patch__release(&b.gp);
			heal_code__free(&hc);
			if (err) {
				say(h, "failed: loading %s: %s", s->name, why);
				h->st.failed++;
				rc = err == -EPIPE ? -EPIPE : 0;
			}
			break;
		}
		/* In order: the answers posted before come first. */
		if (h->boot_fd >= 0 && (err = boot_collect(h, BOOT_DRAIN))) {
			guard_patch__release(&b.gp);
			heal_code__free(&hc);
			rc = err;
			break;
		}
		struct wire_patch_result res;
		struct wire_patch_meta meta = { 0 };
		snprintf(meta.name, sizeof(meta.name), "%s", s->name);
		snprintf(meta.guard, sizeof(meta.guard), "%s", s->guard);
		snprintf(meta.target, sizeof(meta.target), "%s", s->target);
		snprintf(meta.fallback, sizeof(meta.fallback), "%s", s->fallback);
		err = send_patch(h, addr, &b.gp, &meta, why, sizeof(why), &res);
		h->t_send += now_ms() - t2;
		guard_patch__release(&b.gp);
		heal_code__free(&hc);
		if (err) {
			say(h, "failed: loading %s: %s", s->name, why);
			h->st.failed++;
			if (err == -EPIPE)
				rc = -EPIPE;
			break;
		}
		say(h, "already healed: %s %s -> %s in %s (%s:%d)", s->guard, s->target, s->fallback,
		    c.qualname, base_of(file), s->line);
		h->st.loaded++;
		if (!more)
			break;
		addr = reread_code(h, root, func, c.qualname, c.firstlineno);
		if (!addr)
			chain_lost = true;
	}
	/* What is left for this function no longer matches its code. Patches
	 * made for another first line may belong to a sibling of the same
	 * qualified name not visited yet: specs__sweep settles them. */
	for (size_t i = 0; i < nv; i++) {
		struct spec *s = &v[i];
		if (s->done || strcmp(s->qualname, c.qualname) != 0 || strcmp(s->file, file) != 0)
			continue;
		if (s->first_line != c.firstlineno) {
			s->seen = true;
			continue;
		}
		settle(h, s, chain_lost, rc);
	}
	return rc;
}

int heal__load_tree_boot(struct heal *h, uint64_t root, int fd)
{
	h->boot_fd = fd;
	int rc = heal__load_tree(h, root);
	h->boot_fd = -1;
	return rc;
}

int heal__load_tree_boot_release(struct heal *h, uint64_t root, int fd, uint64_t event_id,
				 bool *released)
{
	h->boot_release = event_id;
	h->boot_released = false;
	int rc = heal__load_tree_boot(h, root, fd);
	*released = h->boot_released;
	h->boot_release = 0;
	h->boot_released = false;
	return rc;
}

int heal__load_tree(struct heal *h, uint64_t root)
{
	struct spec *v = NULL;
	size_t nv = 0;
	struct tree t = { 0 };
	int rc = 0;

	double t0 = now_ms();
	unsigned loaded0 = h->st.loaded;
	if (!h->o.program)
		return 0;
	h->t_walk = h->t_read = h->t_synth = h->t_send = 0;
	if (h->have_pre) {   /* heal__preload: read while the module was not waiting */
		v = h->pre;
		nv = h->npre;
		h->pre = NULL;
		h->npre = 0;
		h->have_pre = false;
	} else if (specs__load(h, &v, &nv)) {
		goto out;
	}
	if (nv == 0)
		goto out;
	pages__drop(&h->pages);
	h->pages.on = true;
	double tw = now_ms();
	if ((rc = tree__walk(h, &t, root, 0)))
		goto out;
	h->t_walk = now_ms() - tw;
	/* The root itself (a module body) is never patched. */
	h->npend = h->pend_read = h->pend_sent = 0;
	for (size_t i = 1; i < t.n && rc == 0; i++)
		rc = load_node(h, v, nv, root, 0, &t.v[i]);
	if (h->npend) {
		int err = boot_collect(h, BOOT_LAST);
		if (err && !rc)
			rc = err;
	}
	specs__sweep(h, v, nv, rc);
	if (h->o.verbose && h->st.loaded > loaded0)
		say(h, "loaded %u patch(es) in %.2f ms (walking the module's code %.2f, reading the code %.2f, "
		    "synthesis and gate %.2f, agent %.2f)", h->st.loaded - loaded0, now_ms() - t0, h->t_walk,
		    h->t_read, h->t_synth, h->t_send);
out:
	h->pages.on = false;
	free(t.v);
	specs__free(v, nv);
	return rc;
}

#define MAX_CLASS_DEPTH 8     /* class statements nested in one another */
#define MAX_CLASSES 4096      /* classes walked in one load */
#define MAX_ATTRS 4096        /* entries of one module or class dict */

/* One heal__load_live walk over the program's modules. */
struct live_walk {
	struct spec *v;
	size_t nv;
	char modname[256];        /* the module being walked: its classes' __module__ */
	uint64_t *classes;        /* classes walked already (aliases, cycles) */
	size_t nclasses;
};

#define MAX_WRAPPED 4

/* Whether a stored patch still waiting may be for the code named qualname
 * or for code nested in it ("C.m.<locals>.<listcomp>"): a few reads
 * instead of reading every function's code objects whole. */
static bool wanted(const struct live_walk *w, const char *qualname, size_t cap)
{
	size_t n = strlen(qualname);
	if (n + 4 >= cap)
		return true;   /* maybe cut short (at a UTF-8 boundary): look at it whole */
	for (size_t i = 0; i < w->nv; i++) {
		const struct spec *s = &w->v[i];
		if (!s->done && strncmp(s->qualname, qualname, n) == 0 &&
		    (s->qualname[n] == 0 || s->qualname[n] == '.'))
			return true;
	}
	return false;
}

/* The stored patches of one function object: its code and the code nested
 * in it (comprehensions, lambdas, inner functions), then the function a
 * decorator wrapped, when functools.wraps left it in the wrapper's
 * __wrapped__ (MAX_WRAPPED deep). Not a function: 0. The agent installs a
 * patch on every function sharing the code object, so bound methods made
 * before the patch, aliases and the wrapper's own reference follow. */
static int load_func(struct heal *h, struct live_walk *w, uint64_t fn)
{
	const struct inspect_offsets *o = h->r->off;
	int rc = 0;
	for (int depth = 0; depth <= MAX_WRAPPED && fn && rc == 0; depth++) {
		char type[32], qualname[256];
		uint64_t code, qn, dict = 0, next = 0;
		struct tree t = { 0 };
		if (inspect_value__type_name(h->r, fn, type, sizeof(type)) || strcmp(type, "function") ||
		    h->r->read(h->r->ctx, fn + (uint64_t)o->func_code, &code, 8))
			break;
		/* The code's own name (a wrapper's __qualname__ is the wrapped one's). */
		if (h->r->read(h->r->ctx, code + (uint64_t)o->co_qualname, &qn, 8) ||
		    inspect_str__read(h->r, qn, qualname, sizeof(qualname)) ||
		    wanted(w, qualname, sizeof(qualname))) {
			/* What a patch is made from is read live, not from pages
			 * cached while the process ran. */
			pages__drop(&h->pages);
			h->pages.on = false;
			if (tree__walk(h, &t, code, 0) == 0)
				for (size_t k = 0; k < t.n && rc == 0; k++)
					rc = load_node(h, w->v, w->nv, code, fn, &t.v[k]);
			free(t.v);
			pages__drop(&h->pages);
			h->pages.on = true;
		}
		if (o->func_dict < 0 || h->r->read(h->r->ctx, fn + (uint64_t)o->func_dict, &dict, 8) ||
		    !dict || inspect_dict__get(h->r, dict, "__wrapped__", &next) || next == fn)
			break;
		fn = next;
	}
	return rc;
}

static bool str_is(struct heal *h, uint64_t obj, const char *want)
{
	char buf[256];
	return inspect_str__read(h->r, obj, buf, sizeof(buf)) == 0 && strcmp(buf, want) == 0;
}

/* A class of the module being walked (its __module__ says so: classes
 * imported from elsewhere are that module's), and the classes nested in
 * it: plain functions, the function inside a staticmethod or classmethod,
 * a property's getter, setter and deleter. The wrappers' slots are found
 * through their types' own member descriptors (inspect_object__member). */
static int load_class(struct heal *h, struct live_walk *w, uint64_t cls, int depth)
{
	uint64_t flags, dict, mod, *keys = NULL, *vals = NULL;
	size_t n = 0;
	int rc = 0;
	if (depth > MAX_CLASS_DEPTH || w->nclasses >= MAX_CLASSES ||
	    inspect_type__check(h->r, cls, &flags) || !(flags & INSPECT_TPFLAGS_HEAPTYPE))
		return 0;
	for (size_t i = 0; i < w->nclasses; i++)
		if (w->classes[i] == cls)
			return 0;
	w->classes[w->nclasses++] = cls;
	if (inspect_type__dict(h->r, cls, &dict) || inspect_dict__get(h->r, dict, "__module__", &mod) ||
	    !str_is(h, mod, w->modname))
		return 0;
	keys = malloc(MAX_ATTRS * sizeof(*keys));
	vals = malloc(MAX_ATTRS * sizeof(*vals));
	if (!keys || !vals || inspect_dict__items(h->r, dict, keys, vals, MAX_ATTRS, &n))
		n = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		static const char *const prop[] = { "fget", "fset", "fdel" };
		char type[32];
		uint64_t f;
		if (inspect_value__type_name(h->r, vals[i], type, sizeof(type)))
			continue;
		if (strcmp(type, "function") == 0) {
			rc = load_func(h, w, vals[i]);
		} else if (strcmp(type, "staticmethod") == 0 || strcmp(type, "classmethod") == 0) {
			if (inspect_object__member(h->r, vals[i], "__func__", &f) == 0 && f)
				rc = load_func(h, w, f);
		} else if (strcmp(type, "property") == 0) {
			for (size_t k = 0; k < 3 && rc == 0; k++)
				if (inspect_object__member(h->r, vals[i], prop[k], &f) == 0 && f)
					rc = load_func(h, w, f);
		} else if (inspect_type__check(h->r, vals[i], NULL) == 0) {
			rc = load_class(h, w, vals[i], depth + 1);
		}
	}
	free(keys);
	free(vals);
	return rc;
}

/* Stored patches into a process that runs already (suture-attach --watch):
 * the functions of the program's modules, found from sys.modules: each
 * module dict's functions, its classes' methods (plain, staticmethod,
 * classmethod, property accessors; nested classes too, MAX_CLASS_DEPTH
 * deep), the functions decorators wrapped (__wrapped__), and the code
 * nested in all of them, patched through the agent like a crash.
 *
 * The process runs meanwhile. Finding the candidates (dicts, types, the
 * names of code objects) reads through the page cache, a few pages for
 * many small objects: a page gone stale while we walk can only make us
 * miss a function or look at one for nothing. A candidate's code, which a
 * patch is made from, is read live (load_func), and the agent finds the
 * code again among the live functions before it replaces anything. */
int heal__load_live(struct heal *h)
{
	const struct inspect_offsets *o = h->r->off;
	struct live_walk w = { 0 };
	size_t n = 0;
	uint64_t *keys = NULL, *vals = NULL, *mk = NULL, *mv = NULL, modules = 0;
	int rc = 0;
	struct inspect_thread_iter it;
	struct inspect_thread th;

	if (!h->o.program || o->is_modules < 0 || o->mod_dict < 0 || o->func_code < 0)
		return 0;
	if (specs__load(h, &w.v, &w.nv) || w.nv == 0)
		goto out;
	h->live = true;
	h->live_skipped = 0;
	if (inspect_threads__begin(h->ip, &it) || inspect_threads__next(&it, &th) != 1 ||
	    h->r->read(h->r->ctx, th.interp + (uint64_t)o->is_modules, &modules, 8))
		goto out;
	keys = calloc(MAX_ATTRS, 8);
	vals = calloc(MAX_ATTRS, 8);
	mk = calloc(MAX_ATTRS, 8);
	mv = calloc(MAX_ATTRS, 8);
	w.classes = calloc(MAX_CLASSES, sizeof(*w.classes));
	if (!keys || !vals || !mk || !mv || !w.classes)
		goto out;
	pages__drop(&h->pages);
	h->pages.on = true;
	if (inspect_dict__items(h->r, modules, keys, vals, MAX_ATTRS, &n))
		goto out;
	for (size_t i = 0; i < n && rc == 0; i++) {
		char type[32], fname[PATH_MAX], file[PATH_MAX];
		uint64_t md = 0, f = 0, name = 0;
		size_t m = 0;
		if (inspect_value__type_name(h->r, vals[i], type, sizeof(type)) || strcmp(type, "module") ||
		    h->r->read(h->r->ctx, vals[i] + (uint64_t)o->mod_dict, &md, 8) ||
		    inspect_dict__get(h->r, md, "__file__", &f) ||
		    inspect_str__read(h->r, f, fname, sizeof(fname)))
			continue;
		file_key(h, fname, file, sizeof(file));
		bool ours = false;
		for (size_t k = 0; k < w.nv && !ours; k++)
			ours = !w.v[k].done && strcmp(w.v[k].file, file) == 0;
		if (!ours || inspect_dict__items(h->r, md, mk, mv, MAX_ATTRS, &m))
			continue;
		if (inspect_dict__get(h->r, md, "__name__", &name) ||
		    inspect_str__read(h->r, name, w.modname, sizeof(w.modname)))
			w.modname[0] = 0;   /* its functions still; no class can match */
		for (size_t j = 0; j < m && rc == 0; j++) {
			if (inspect_value__type_name(h->r, mv[j], type, sizeof(type)))
				continue;
			if (strcmp(type, "function") == 0)
				rc = load_func(h, &w, mv[j]);
			else if (w.modname[0] && inspect_type__check(h->r, mv[j], NULL) == 0 &&
				 o->tp_dict >= 0)
				rc = load_class(h, &w, mv[j], 0);
		}
	}
	h->pages.on = false;
	specs__sweep(h, w.v, w.nv, rc);
	if (h->live_skipped)
		say(h, "%u stored patch(es) not applied: the live code differs (patched in this process "
		    "already, or its source changed)", h->live_skipped);
out:
	h->pages.on = false;
	h->live = false;
	free(keys);
	free(vals);
	free(mk);
	free(mv);
	free(w.classes);
	specs__free(w.v, w.nv);
	return rc;
}

/* ------------------------------------------------------------------ */

int heal_program__of_pid(pid_t pid, char *buf, size_t cap)
{
	char path[64], cmd[8192], cwd[PATH_MAX];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -ESRCH;
	size_t n = fread(cmd, 1, sizeof(cmd) - 1, f);
	fclose(f);
	cmd[n] = 0;
	snprintf(path, sizeof(path), "/proc/%d/cwd", (int)pid);
	ssize_t l = readlink(path, cwd, sizeof(cwd) - 1);
	cwd[l > 0 ? l : 0] = 0;
	/* argv[0] is the interpreter; skip its options (those taking a value
	 * too) up to the script. -c, -m and "-" have no script. */
	size_t at = strlen(cmd) + 1;
	while (at < n) {
		const char *a = cmd + at;
		at += strlen(a) + 1;
		if (strcmp(a, "-c") == 0 || strcmp(a, "-m") == 0 || strcmp(a, "-") == 0)
			return -ENOENT;
		if (a[0] == '-' && a[1]) {
			if ((strcmp(a, "-W") == 0 || strcmp(a, "-X") == 0) && at < n)
				at += strlen(cmd + at) + 1;
			if (a[1] == 'c' || a[1] == 'm')
				return -ENOENT;
			continue;
		}
		char joined[PATH_MAX * 3], real[PATH_MAX];
		if (a[0] == '/')
			scopy(joined, sizeof(joined), a);
		else
			snprintf(joined, sizeof(joined), "%s/%s", cwd, a);
		scopy(buf, cap, realpath(joined, real) ? real : joined);
		return 0;
	}
	return -ENOENT;
}
