/* heal: stored patches into code about to run or running.
 *
 * The store keeps decisions, never code (docs/formats/store.md). On load
 * the guard is synthesized again from the live original: the live code's
 * identity (guard_code__identity) must equal the stored one, and the crash
 * site's fingerprint must be found again at the stored anchor
 * (guard_spec__redecide, rewrite/redecide.c). A function healed twice: the second guard was
 * analysed on the already guarded code, so its code_id is the identity of
 * "original + first guard"; patches of one function are applied in
 * sequence, the new code object found again after each one.
 *
 * Patches go out through h->send (send.c), whatever the transport: the
 * loop posts, and collects the answers as the sender's pipeline allows.
 */
#include "heal/heal-priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TREE 20000
#define MAX_DEPTH 64

int heal__specs_load(struct heal *h, struct spec **out, size_t *n)
{
	struct store *st = NULL;
	*out = NULL;
	*n = 0;
	int err = heal__open_store(h, STORE_F_RDONLY, &st);
	if (err)
		return err == -ENOENT ? 0 : err;
	err = heal_specs__from(st, h->o.program, h->pyver, out, n);
	store__close(st);
	return err;
}

int heal__preload(struct heal *h, const struct store *st)
{
	heal_specs__free(h->pre, h->npre);
	h->pre = NULL;
	h->npre = 0;
	h->have_pre = false;
	if (!h->o.program || !st)
		return 0;
	int err = heal_specs__from(st, h->o.program, h->pyver, &h->pre, &h->npre);
	h->have_pre = err == 0;
	return err;
}

/* The tree's copy of a file name (a module's code objects share one). */
static const char *tree_file(struct tree *t, const char *name)
{
	for (size_t i = t->nfiles; i-- > 0;)
		if (strcmp(t->files[i], name) == 0)
			return t->files[i];
	char **v = realloc(t->files, (t->nfiles + 1) * sizeof(*v));
	if (!v)
		return NULL;
	t->files = v;
	if (!(v[t->nfiles] = strdup(name)))
		return NULL;
	return v[t->nfiles++];
}

void heal__tree_free(struct tree *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].qualname);
	for (size_t i = 0; i < t->nfiles; i++)
		free(t->files[i]);
	free(t->v);
	free(t->files);
	memset(t, 0, sizeof(*t));
}

int heal__tree_walk(struct heal *h, struct tree *t, uint64_t addr, int depth)
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
	struct node nd = { .addr = addr,
			   .firstlineno = c.firstlineno,
			   .qualname = strdup(c.qualname),
			   .filename = tree_file(t, c.filename) };
	if (!nd.qualname || !nd.filename) {
		free(nd.qualname);
		return -ENOMEM;
	}
	t->v[t->n++] = nd;
	uint64_t *items;
	size_t n;
	if (inspect_tuple__read(h->r, c.consts, 1u << 16, &items, &n))
		return 0;
	for (size_t i = 0; i < n; i++) {
		/* A code object by its type's address (code is never
		 * subclassed): one word read, not the type's name. */
		uint64_t type = 0;
		if (h->r->read(h->r->ctx, items[i] + (uint64_t)h->r->off->ob_type, &type, 8) == 0 &&
		    type && type == h->r->types->type_code) {
			int err = heal__tree_walk(h, t, items[i], depth + 1);
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
	heal_pages__drop(&h->pages);
	/* Live: the function object holds its current code. */
	if (func && h->r->read(h->r->ctx, func + (uint64_t)h->r->off->func_code, &root, 8))
		return 0;
	if (heal__tree_walk(h, &t, root, 0) == 0)
		for (size_t i = func ? 0 : 1; i < t.n && !a; i++)
			if (t.v[i].firstlineno == firstlineno &&
			    strcmp(t.v[i].qualname, qualname) == 0)
				a = t.v[i].addr;
	heal__tree_free(&t);
	return a;
}

static void mark_stale(struct heal *h, struct spec *s, const char *reason)
{
	struct store *st = NULL;
	if (h->o.dry_run || heal__open_store(h, 0, &st))
		return;
	store__mark_stale(st, s->name, reason);
	store__close(st);
}

static int pend__push(struct heal *h, struct spec *s, const char *qualname, const char *file,
		      int firstlineno, bool head)
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
	heal_names__copy(p->qualname, sizeof(p->qualname), qualname);
	heal_names__copy(p->base, sizeof(p->base), heal_names__base(file));
	p->payload = NULL;
	p->payload_len = 0;
	p->firstlineno = firstlineno > 0 ? (uint32_t)firstlineno : 0;
	p->head = head;
	return 0;
}

/* For the boot image: what the PATCH_NAMED w says, without the address
 * of this run's code object (the hook of a later run finds its own). A
 * failure only leaves the module out of the image. */
static void pend__keep_payload(struct pend *p, const struct wire_patch *w)
{
	struct wire_buf b = { 0 };
	struct wire_patch c = *w;
	c.code_addr = 0;
	if (wire_msg__encode_patch_named(&b, &c) == 0 && b.len > WIRE_HDR_SIZE &&
	    (p->payload = malloc(b.len - WIRE_HDR_SIZE))) {
		p->payload_len = b.len - WIRE_HDR_SIZE;
		memcpy(p->payload, b.data + WIRE_HDR_SIZE, p->payload_len);
	}
	wire_buf__free(&b);
}

/* Read the answers, in order, until at most `keep` flushed ones are
 * unread; rc: the load's transport status so far (not 0: what is left is
 * reported as failed). */
static int answers(struct heal *h, size_t keep, int rc, const char *gone)
{
	struct heal_sender *sd = h->send;
	char why[512];
	heal_names__copy(why, sizeof(why), gone);
	while (h->pend_read < h->npend && h->pend_sent - h->pend_read > keep) {
		struct pend *p = &h->pend[h->pend_read++];
		struct wire_patch_result res = { 0 };
		if (rc == 0)
			rc = sd->ops->collect(sd, &res, why, sizeof(why));
		/* Each answer is a change in the target: in a live process,
		 * anything may have moved. At boot (the module's body has not
		 * run) it is the patched code object's parent's co_consts and
		 * new objects only; the walk lists parents before children and
		 * each node is read once after its parent's answers, and a
		 * chain's re-read (reread_code) drops the pages itself: a
		 * node read later was not changed by an earlier answer. Keeping
		 * the pages saves reading every later node's pages again (3.5
		 * process_vm_readv a patch, 100 patches: docs/performance.md,
		 * "start-up, fifth pass"). */
		if (h->live)
			heal_pages__drop(&h->pages);
		if (rc == 0 && res.status)
			snprintf(why, sizeof(why), "the agent refused the patch: %s", res.message);
		if (h->rec && !h->live) {
			if (rc || res.status)
				h->rec->cur_bad = true;
			else
				heal_image_rec__entry(h->rec, p, res.key, p->s->expires);
		}
		free(p->payload);
		p->payload = NULL;
		if (rc || res.status) {
			char line[1024];
			heal_loaded__failed_text(p->s->name, why, line, sizeof(line));
			heal__say(h, "%s", line);
			h->st.failed++;
			if (!rc)
				heal_names__copy(why, sizeof(why), gone);
			continue;
		}
		struct heal_loaded l = { p->s->name,  p->s->guard, p->s->target, p->s->fallback,
					 p->qualname, p->base,     p->s->line };
		char line[1024];
		heal_loaded__text(&l, line, sizeof(line));
		heal__note(h, "%s", line);
		heal_loaded__event(&l, h->o.events, h->pid);
		h->st.loaded++;
		p->s->loaded = true;
	}
	return rc;
}

void heal_loaded__text(const struct heal_loaded *l, char *out, size_t cap)
{
	snprintf(out, cap, "already healed: %s %s -> %s in %s (%s:%d)", l->guard, l->target,
		 l->fallback, l->function, l->base, l->line);
}

void heal_loaded__event(const struct heal_loaded *l, FILE *events, pid_t pid)
{
	heal_event__emit(events, pid, "loaded", "s:name", l->name, "s:guard", l->guard, "s:target",
			 l->target, "s:fallback", l->fallback, "s:function", l->function, "i:line",
			 (long long)l->line, NULL);
}

void heal_loaded__failed_text(const char *name, const char *why, char *out, size_t cap)
{
	snprintf(out, cap, "failed: loading %s: %s", name, why);
}

enum load_flush { LOAD_CHUNKED, LOAD_DRAIN, LOAD_LAST };

/* Flush the patches posted so far and read answers: LOAD_CHUNKED once the
 * sender's chunk is full, reading only what keeps the pipeline within its
 * bound; LOAD_DRAIN everything, every answer (a patch that must see the
 * ones before it installed); LOAD_LAST the same as the load's final
 * flush (a boot hook's module is released right behind the patches, so it
 * runs while the answers are read). 0, or the transport's -errno. */
static int collect(struct heal *h, enum load_flush how)
{
	struct heal_sender *sd = h->send;
	if (how == LOAD_CHUNKED && h->npend - h->pend_sent < sd->chunk)
		return 0;
	double t0 = heal__now_ms();
	int rc = sd->ops->flush(sd, how == LOAD_LAST);
	/* On error what is unanswered is reported as failed. */
	h->pend_sent = h->npend;
	rc = answers(h, how == LOAD_CHUNKED && !rc ? sd->inflight : 0, rc, "the agent went away");
	if (how != LOAD_CHUNKED || rc || h->pend_read == h->npend)
		h->npend = h->pend_read = h->pend_sent = 0;
	h->t_send += heal__now_ms() - t0;
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
		heal__say(h,
			  "expired: %s: not applied, and its crash is not healed again; fix the "
			  "source, or renew it (suture-audit renew %s)",
			  s->name, s->name);
		h->st.expired++;
	} else if (s->verdict == STORE_V_STALE) {
		heal__say(h, "stale: %s: marked stale earlier; not applied", s->name);
		h->st.stale++;
	} else if (chain_lost) {
		heal__say(
			h,
			"failed: %s: the once-patched %s could not be read back; not applied this time",
			s->name, s->qualname);
		h->st.failed++;
	} else if (rc == 0) {
		heal__say(h,
			  "stale: %s: %s changed since the patch was made (code identity differs); "
			  "not applied",
			  s->name, s->qualname);
		h->st.stale++;
		mark_stale(h, s, "the function's code changed (code identity differs)");
	}
}

void heal__specs_sweep(struct heal *h, struct spec *v, size_t nv, int rc)
{
	for (size_t i = 0; i < nv; i++)
		if (!v[i].done && v[i].seen)
			settle(h, &v[i], false, rc);
}

int heal__load_node(struct heal *h, struct spec *v, size_t nv, uint64_t root, uint64_t func,
		    const struct node *nd)
{
	uint64_t addr = nd->addr;
	bool chain_lost = false; /* the patched code could not be found back */
	/* What the walk read of it. */
	const struct {
		const char *qualname, *filename;
		int firstlineno;
	} c = { nd->qualname, nd->filename, nd->firstlineno };
	char file[PATH_MAX];
	int rc = 0;

	/* Cheap test first: a stored function of that name at all? The specs
	 * of this qualname are v[lo, hi) (heal_specs__from sorts them). */
	size_t lo, hi;
	heal_specs__range(v, nv, c.qualname, &lo, &hi);
	bool any = false;
	for (size_t i = lo; i < hi && !any; i++)
		any = !v[i].done;
	if (!any)
		return 0;
	heal__file_key(h, c.filename, file, sizeof(file));
	any = false;
	for (size_t i = lo; i < hi && !any; i++)
		any = heal_spec__for(&v[i], c.qualname, file);
	if (!any)
		return 0;

	for (int step = 0; step < 16 && addr; step++) {
		struct heal_code hc;
		uint64_t id = 0;
		char cid[32], why[512];
		double t0 = heal__now_ms();
		if (heal_code__read(h->r, addr, &hc))
			break;
		double t1 = heal__now_ms();
		h->t_read += t1 - t0;
		const char *co_file = hc.info.filename;
		hc.info.filename = file; /* the file key, as heal__on_crash hashes it */
		guard_code__identity(&hc.info, &id);
		hc.info.filename = co_file;
		snprintf(cid, sizeof(cid), "fnv64:%016llx", (unsigned long long)id);
		struct spec *s = NULL;
		for (size_t i = lo; i < hi && !s; i++)
			if (heal_spec__applies(&v[i], c.qualname, file, cid))
				s = &v[i];
		if (!s) {
			heal_code__free(&hc);
			break;
		}
		s->done = true;
		if (s->verdict == STORE_V_EXPIRED) {
			char when[32] = "?";
			store__format_time(s->expires, when, sizeof(when));
			heal__say(
				h,
				"expired: %s (%s %s in %s, %s:%d) expired %s: not applied, and its "
				"crash is not healed again; fix the source, or renew it (suture-audit "
				"renew %s)",
				s->name, s->guard, s->target, c.qualname, heal_names__base(file),
				s->line, when, s->name);
			h->st.expired++;
			heal_code__free(&hc);
			continue; /* the next patch of the chain cannot match either */
		}
		struct built b;
		memset(&b, 0, sizeof(b));
		/* The stored decision again, from the live original
		 * (rewrite/redecide.c): -ESTALE says what no longer matches. */
		struct guard_spec gs = { .guard = s->guard,
					 .anchor = s->anchor,
					 .window = s->window };
		struct rewrite_diag diag = { 0 };
		int bad = guard_spec__redecide(&hc.info, &gs, &b.d, &diag);
		if (bad) {
			snprintf(why, sizeof(why), "%s", diag.msg);
		} else {
			guard_fingerprint__format(b.d.fingerprint, b.fp, sizeof(b.fp));
			bad = heal__build_patch(&hc, &b, why, sizeof(why));
		}
		double t2 = heal__now_ms();
		h->t_synth += t2 - t1;
		if (bad) {
			heal__say(h, "stale: %s: %s; not applied", s->name, why);
			h->st.stale++;
			mark_stale(h, s, why);
			heal_code__free(&hc);
			break;
		}
		if (h->o.verbose) {
			heal__show_delta(h, &hc, &b);
			t2 = heal__now_ms(); /* printing is not the agent's time */
		}
		if (h->o.dry_run) {
			heal__say(h, "dry run: would load %s %s -> %s in %s (%s:%d)", s->guard,
				  b.d.target, b.d.fallback_text, c.qualname, heal_names__base(file),
				  s->line);
			guard_patch__release(&b.gp);
			heal_code__free(&hc);
			break;
		}
		/* Another guard of this function stored on top of this one? */
		bool more = false;
		for (size_t i = lo; i < hi && !more; i++)
			more = heal_spec__for(&v[i], c.qualname, file) &&
			       v[i].first_line == c.firstlineno;
		struct outgoing_patch w;
		int err = heal_outgoing__fill(&w, addr, &b.gp, why, sizeof(why));
		if (!err) { /* named: the agent lists it and can roll it back */
			snprintf(w.p.meta.name, sizeof(w.p.meta.name), "%s", s->name);
			snprintf(w.p.meta.guard, sizeof(w.p.meta.guard), "%s", s->guard);
			snprintf(w.p.meta.target, sizeof(w.p.meta.target), "%s", s->target);
			snprintf(w.p.meta.fallback, sizeof(w.p.meta.fallback), "%s", s->fallback);
			err = pend__push(h, s, c.qualname, file, c.firstlineno, step == 0);
			if (err)
				snprintf(why, sizeof(why), "out of memory");
			else if (h->rec && !h->live)
				pend__keep_payload(&h->pend[h->npend - 1], &w.p);
		}
		if (!err && (err = h->send->ops->post(h->send, &w.p, why, sizeof(why)))) {
			h->npend--;
			free(h->pend[h->npend].payload);
			if (h->rec)
				h->rec->cur_bad = true;
		}
		/* A live process (a sibling in a tree, say) may have crashed on
		 * the original a moment before: its report is then about code
		 * this load replaced (heal__on_crash says so, or resumes it). */
		if (!err && h->live)
			heal__note_patched(h, addr, s->anchor, &b.gp);
		heal_outgoing__free(&w);
		guard_patch__release(&b.gp);
		heal_code__free(&hc);
		if (err) {
			char line[1024];
			heal_loaded__failed_text(s->name, why, line, sizeof(line));
			heal__say(h, "%s", line);
			h->st.failed++;
			h->t_send += heal__now_ms() - t2;
			rc = err == -EPIPE ? -EPIPE : 0;
			break;
		}
		/* The answers come in order: the sender pipelines what it can;
		 * a patch another one of this function goes on top of must be
		 * installed before the code is read again. */
		unsigned failed = h->st.failed;
		h->t_send += heal__now_ms() - t2; /* collect counts its own */
		err = collect(h, more ? LOAD_DRAIN : LOAD_CHUNKED);
		if (err) {
			rc = err == -EPIPE ? -EPIPE : 0;
			break;
		}
		if (!more || h->st.failed != failed)
			break;
		addr = reread_code(h, root, func, c.qualname, c.firstlineno);
		if (!addr)
			chain_lost = true;
	}
	/* What is left for this function no longer matches its code. Patches
	 * made for another first line may belong to a sibling of the same
	 * qualified name not visited yet: heal__specs_sweep settles them. */
	for (size_t i = lo; i < hi; i++) {
		struct spec *s = &v[i];
		if (!heal_spec__for(s, c.qualname, file))
			continue;
		if (s->first_line != c.firstlineno) {
			s->seen = true;
			continue;
		}
		settle(h, s, chain_lost, rc);
	}
	return rc;
}

/* The boot image's section for this module: kept when its load was
 * clean (heal-priv.h). */
static void record_end(struct heal *h, const struct spec *v, size_t nv, const struct tree *t,
		       const struct heal_stats *st0, int rc)
{
	char file[PATH_MAX];
	heal__file_key(h, t->v[0].filename, file, sizeof(file));
	bool clean = rc == 0 && h->st.failed == st0->failed && h->st.stale == st0->stale &&
		     h->st.expired == st0->expired;
	for (size_t i = 0; i < nv && clean; i++)
		if (strcmp(v[i].file, file) == 0)
			clean = v[i].loaded;
	heal_image_rec__end(h->rec, file, clean);
}

int heal__load_tree_boot_release(struct heal *h, uint64_t root, int fd, struct wire_reader *rd,
				 uint64_t event_id, double *released_at)
{
	struct heal_boot_sender b;
	struct heal_sender *was = h->send;
	heal_sender__boot(&b, fd, rd, event_id);
	h->send = &b.base;
	heal__defer_begin(h);
	int rc = heal__load_tree(h, root);
	heal__deferred_flush(h);
	h->send = was;
	*released_at = b.released ? b.released_at : 0;
	heal_sender__boot_free(&b);
	return rc;
}

int heal__load_tree(struct heal *h, uint64_t root)
{
	struct spec *v = NULL;
	size_t nv = 0;
	struct tree t = { 0 };
	int rc = 0;

	double t0 = heal__now_ms();
	unsigned loaded0 = h->st.loaded;
	if (!h->o.program)
		return 0;
	h->t_walk = h->t_read = h->t_synth = h->t_send = 0;
	if (h->have_pre) { /* heal__preload: read while the module was not waiting */
		v = h->pre;
		nv = h->npre;
		h->pre = NULL;
		h->npre = 0;
		h->have_pre = false;
	} else if (heal__specs_load(h, &v, &nv)) {
		goto out;
	}
	if (nv == 0)
		goto out;
	heal_pages__drop(&h->pages);
	h->pages.on = true;
	double tw = heal__now_ms();
	if ((rc = heal__tree_walk(h, &t, root, 0)))
		goto out;
	h->t_walk = heal__now_ms() - tw;
	/* The root itself (a module body) is never patched. */
	h->npend = h->pend_read = h->pend_sent = 0;
	struct heal_stats st0 = h->st;
	bool rec = h->rec && !h->live && t.n;
	if (rec)
		heal_image_rec__begin(h->rec);
	for (size_t i = 1; i < t.n && rc == 0; i++)
		rc = heal__load_node(h, v, nv, root, 0, &t.v[i]);
	if (h->npend) {
		int err = collect(h, LOAD_LAST);
		if (err && !rc)
			rc = err;
	}
	heal__specs_sweep(h, v, nv, rc);
	if (rec)
		record_end(h, v, nv, &t, &st0, rc);
	if (h->o.verbose && h->st.loaded > loaded0)
		heal__note(
			h,
			"loaded %u patch(es) in %.2f ms (walking the module's code %.2f, reading the code %.2f, "
			"synthesis and gate %.2f, agent %.2f)",
			h->st.loaded - loaded0, heal__now_ms() - t0, h->t_walk, h->t_read,
			h->t_synth, h->t_send);
out:
	h->pages.on = false;
	heal__tree_free(&t);
	heal_specs__free(v, nv);
	return rc;
}
