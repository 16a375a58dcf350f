/* heal: a crash, from the agent's report to the stored patch.
 *
 * Everything the analysis needs is read from the target by inspect/ (the
 * agent never sends code): the failing code object's bytes, tables, names
 * and constants. rewrite/ decides and synthesizes; the diff gate must accept
 * the patch before it is sent; the agent builds the code object from the
 * PATCH parts and installs it on every function sharing the original, then
 * resumes the crashing call in flight where it can. The decision is stored
 * as a spec, never as code (docs/formats/store.md).
 */
#include "heal/heal-priv.h"
#include "store/code.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The agent nests at most 8 continuations per thread and refuses the
 * resume past that (the crash is still patched and stored here); a bound
 * of our own, above it, keeps our stack flat whatever an agent reports. */
#define HEAL_MAX_NEST 16

/* ------------------------------------------------------------------ */
/* Synthesis shared by crashes and loads                                */

/* Synthesize d's guard on hc and pass it through the diff gate, which
 * verifies the patched code (guard__synthesize_for_gate). */
int heal__build_patch(const struct heal_code *hc, struct built *b, char *why, size_t cap)
{
	struct rewrite_diag diag = { 0 };
	struct rewrite_code_info pi;
	struct rewrite_const *pconsts = NULL;
	int err;
	if ((err = guard__synthesize_for_gate(&hc->info, &b->d, &b->gp, &diag))) {
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

void heal__show_delta(struct heal *h, const struct heal_code *hc, const struct built *b)
{
	char dl[256];
	guard_delta__format(&b->delta, dl, sizeof(dl));
	heal__say(h, "bytecode delta of %s: %s", hc->qualname, dl);
	/* Under its heading, kept with it during a boot load. */
	FILE *out = h->deferred ? h->deferred : h->log;
	guard_patch__dis(&hc->info, &b->gp, b->d.anchor_unit, 4, out);
	fflush(out);
}

/* The original code's parts, as data, for `suture-audit explain` to show
 * the bytecode side by side (store/code.h; never executed or installed).
 * Canonical bytes: the live ones may be quickened. A failure costs only
 * the side-by-side view. */
static void save_code(struct heal *h, struct store *st, const struct heal_code *hc,
		      const char *code_id)
{
	struct rewrite_code_info ci = hc->info;
	uint8_t *canon = malloc(ci.code_len ? ci.code_len : 1);
	int err = canon ? rewrite_bytes__deopt(ci.code, ci.code_len, canon) : -ENOMEM;
	if (!err) {
		ci.code = canon;
		err = store_code__save(st, code_id, &ci);
	}
	if (err && store__error(st)[0]) /* the store's own message names the cause */
		heal__say(h, "%s (no code file for explain)", store__error(st));
	else if (err)
		heal__say(h, "store: %s: no code file for explain: %s", store__path(st),
			  strerror(-err));
	free(canon);
}

static void store_silent(const char *msg, void *ctx)
{
	(void)msg;
	(void)ctx;
}

/* The stored patch of this program for this very site (same file, code
 * identity and anchor) when it is past its TTL: such a crash is not healed
 * again with a fresh TTL, it is reported (docs/guards.md "Expiry"); the
 * user renews the patch (suture-audit renew) or fixes the source. */
static bool expired_here(struct heal *h, const struct heal_code *hc, const struct built *b,
			 const char *file, char *name, size_t cap, char *when, size_t wcap)
{
	struct store *st = NULL;
	bool found = false;
	if (!h->o.program ||
	    store__open_print(h->o.store_dir, STORE_F_RDONLY, store_silent, NULL, &st))
		return false;
	struct store_query q = { .program = h->o.program, .qualname = hc->qualname };
	struct store_iter it;
	int64_t now = store__now();
	store_iter__init(&it, st, &q);
	for (const struct store_patch *p; !found && (p = store_iter__next(&it));) {
		if (strcmp(p->file, file) || strcmp(p->code_id, b->code_id) ||
		    strcmp(p->anchor_window, b->fp) || strcmp(p->python_version, h->pyver) ||
		    store_patch__status(p, now) != STORE_STATUS_EXPIRED)
			continue;
		snprintf(name, cap, "%s", p->name);
		store__format_time(store_patch__expires(p), when, wcap);
		found = true;
	}
	store__close(st);
	return found;
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
	heal_names__module(h->o.program, file, module, sizeof(module));
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
		.consumer_kind = b->d.consumer[0] ? guard_consumer__name(b->d.consumer_kind) : NULL,
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
	struct stat sb;
	bool is_new = h->o.store_found && h->o.store_dir && lstat(h->o.store_dir, &sb) != 0 &&
		      errno == ENOENT;
	if (heal__open_store(h, STORE_F_CREATE, &st))
		return;
	if (is_new)
		heal__note(h,
			   "new store %s, found from the program (the first .suture up from its "
			   "directory, else beside its top package); --store or $SUTURE_STORE "
			   "choose another",
			   store__path(st));
	if (resumed) {
		p.hits = 1;
		p.last_hit = store__now();
	}
	/* The store names it apart from another program's, Python's or
	 * anchor's patch of that name, under its lock (store__add_unique). */
	if (store__add_unique(st, &p, name, sizeof(name)) == 0) {
		heal__note(h, "stored patch %s in %s", name, store__path(st));
		heal_event__emit(h->o.events, h->pid, "stored", "s:name", name, "s:store",
				 store__path(st), "s:function", hc->qualname, "s:file", file,
				 "i:line", (long long)p.line, NULL);
		/* Its firings come under the name the agent got (patch_meta). */
		if (h->npatched && h->patched[h->npatched - 1].code_addr == code_addr &&
		    !h->patched[h->npatched - 1].stored)
			h->patched[h->npatched - 1].stored = strdup(name);
		save_code(h, st, hc, b->code_id);
	} else {
		heal__say(h, "%s", h->err);
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
	heal_names__module(h->o.program, file, module, sizeof(module));
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
		heal__say(
			h,
			"the resumed call of %s crashed again in %s, %u resumed calls deep: not healed "
			"(that crash goes on)",
			qualname, in->qualname, h->nest);
		return inject_session__release(h->s, in) == -EPIPE ? -EPIPE : 0;
	}
	heal__note(h, "the resumed call of %s crashed again, in %s: healing it in flight too",
		   qualname, in->qualname);
	bool pages_on = h->pages.on;
	h->nest++;
	int rc = heal__on_crash(h, in, NULL);
	h->nest--;
	/* The target changed meanwhile: read it afresh. */
	heal_pages__drop(&h->pages);
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
	double t0 = heal__now_ms();
	int err = inject_session__resume(h->s, ev, fallback_unit, base_depth, &rr, &in);
	while (err == INJECT_RESUME_NESTED) {
		/* The continuation crashed again (later in the call, or in a
		 * function it calls): that thread is parked on the new crash
		 * and answers ev only once it is dealt with. */
		err = heal_nested(h, qualname, &in);
		if (err == 0)
			err = inject_session__resume_wait(h->s, ev, &rr, &in);
	}
	double ms = heal__now_ms() - t0;
	if (err == -EPIPE) {
		*released = true;
		return -EPIPE;
	}
	if (err == 0 && rr.status == WIRE_RESUMED) {
		*released = true;
		*oc = HEAL_RESUMED;
		heal__note(
			h,
			"resumed in flight: %s went on from the fallback; its caller got the result "
			"(the call returned %.2f ms later)",
			qualname, ms);
		heal_event__emit(h->o.events, h->pid, "resumed", "s:function", qualname, "f:ms", ms,
				 NULL);
	} else if (err == 0 && rr.status == WIRE_RESUME_RAISED) {
		*released = true;
		heal__say(h, "resumed in flight, but the rest of %s raised: that exception goes on",
			  qualname);
		heal_event__emit(h->o.events, h->pid, "resume_raised", "s:function", qualname,
				 NULL);
	} else {
		const char *why = err ? inject_session__error(h->s) : rr.message;
		heal__say(h,
			  "not resumed in flight (%s): this crash goes on, later calls are healed",
			  why);
		heal_event__emit(h->o.events, h->pid, "not_resumed", "s:function", qualname,
				 "s:reason", why, NULL);
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
	double t0 = heal__now_ms();
	bool released = false;

	memset(&b, 0, sizeof(b));
	h->st.crashes++;
	heal_pages__drop(&h->pages);
	h->pages.on = true;
	heal__file_key(h, ev->filename, file, sizeof(file));
	char site[WIRE_SITE_MAX + 1024];
	/* A site opted in: the agent reports what the application's own
	 * catch-all would have handled there; the line says why it is one. */
	bool opted = heal__opted_in(h, ev, site, sizeof(site));
	heal__note(h, "crash seen: %s%s%.160s in %s (%s:%u)%s%s", ev->exc_type,
		   ev->message[0] ? ": " : "", ev->message, ev->qualname,
		   heal_names__base(ev->filename), ev->line,
		   opted ? ", handled by the application's catch-all but healed: --heal-handled "
			 : "",
		   opted ? site : "");
	heal_event__emit(h->o.events, h->pid, "crash", "s:exc_type", ev->exc_type, "s:message",
			 ev->message, "s:function", ev->qualname, "s:file", file, "i:line",
			 (long long)ev->line, NULL);

	const struct heal_patched *pp = heal__was_patched(h, ev->code_addr);
	if (pp && pp->offset == ev->offset && pp->fallback_unit && !h->o.no_resume) {
		/* A frame suspended while its function was patched, which could
		 * not take the new code (entered from C, or the guard needs more
		 * stack than the frame has), reached the guarded instruction:
		 * the installed patch lets its call go on in flight. */
		heal__say(h,
			  "already patched: this frame of %s kept the original code (it could not "
			  "take the new one while suspended)",
			  ev->qualname);
		enum heal_outcome late = HEAL_NONE;
		rc = resume_call(h, ev, ev->qualname, pp->fallback_unit, pp->base_depth, &released,
				 &late);
		if (late == HEAL_RESUMED)
			h->st.resumed++; /* the patch was counted when it was applied */
		oc = HEAL_NONE;
		goto out;
	}
	if (pp) {
		heal__say(
			h,
			"already patched: %s was replaced a moment ago; this crash started before",
			ev->qualname);
		oc = HEAL_NONE;
		goto out;
	}
	if ((err = heal_code__read(h->r, ev->code_addr, &hc))) {
		heal__say(h, "failed: the code of %s could not be read from the process (%s)",
			  ev->qualname, strerror(-err));
		goto out;
	}
	if (!(hc.flags & CO_OPTIMIZED)) {
		/* A module or class body runs once: a guard could never be
		 * used, and re-running the program would crash the same way. */
		heal__say(h, "not patched: the crash is at module level (%s, %s:%u): reported only",
			  hc.qualname, heal_names__base(ev->filename), ev->line);
		heal_event__emit(h->o.events, h->pid, "refused", "s:reason",
				 "the crash is at module level", "s:exc_type", ev->exc_type,
				 "s:function", hc.qualname, "s:file", file, "i:line",
				 (long long)ev->line, NULL);
		oc = HEAL_MODULE_LEVEL;
		goto out_code;
	}
	struct guard_crash c = {
		.unit = ev->offset / 2,
		.exc_type = ev->exc_type,
		.message = ev->message,
		.in_callee = false, /* the agent reports the frame the exception starts in */
		.stdlib = -1,
	};
	struct rewrite_diag diag = { 0 };
	if ((err = guard__analyse(&hc.info, &c, &b.d, &diag))) {
		heal__say(h, "failed: analysis of %s: %s", hc.qualname,
			  diag.msg[0] ? diag.msg : strerror(-err));
		goto out_code;
	}
	if (b.d.kind == GUARD_NONE) {
		heal__say(h, "refused: %s (%s in %s, %s:%u)", b.d.reason, ev->exc_type, hc.qualname,
			  heal_names__base(ev->filename), ev->line);
		heal_event__emit(h->o.events, h->pid, "refused", "s:reason", b.d.reason,
				 "s:exc_type", ev->exc_type, "s:function", hc.qualname, "s:file",
				 file, "i:line", (long long)ev->line, NULL);
		oc = HEAL_REFUSED;
		goto out_code;
	}
	if (heal__build_patch(&hc, &b, why, sizeof(why))) {
		heal__say(h, "failed: %s (%s in %s)", why, guard_kind__name(b.d.kind), hc.qualname);
		goto out_code;
	}
	uint64_t id = 0;
	/* The identity names the file by its key (resolved against the
	 * target's working directory), not by co_filename as the program was
	 * started: `python app.py` in app/ and `python ../app/app.py`
	 * elsewhere are one program with one stored patch. */
	const char *co_file = hc.info.filename;
	hc.info.filename = file;
	guard_code__identity(&hc.info, &id);
	hc.info.filename = co_file;
	snprintf(b.code_id, sizeof(b.code_id), "fnv64:%016llx", (unsigned long long)id);
	snprintf(b.fp, sizeof(b.fp), "fnv64:%016llx", (unsigned long long)b.d.fingerprint);
	char old_name[STORE_NAME_MAX + 1], when[32] = "?";
	if (expired_here(h, &hc, &b, file, old_name, sizeof(old_name), when, sizeof(when))) {
		heal__say(h,
			  "not healed: %s (%s in %s, %s:%u) expired %s; renew it to apply it again "
			  "(suture-audit renew %s) or fix the source",
			  old_name, ev->exc_type, hc.qualname, heal_names__base(ev->filename),
			  ev->line, when, old_name);
		heal_event__emit(h->o.events, h->pid, "refused", "s:reason", "expired", "s:patch",
				 old_name, "s:expired", when, "s:exc_type", ev->exc_type,
				 "s:function", hc.qualname, "s:file", file, "i:line",
				 (long long)ev->line, NULL);
		oc = HEAL_REFUSED;
		goto out_patch;
	}
	if (h->o.verbose)
		heal__show_delta(h, &hc, &b);
	if (h->o.dry_run) {
		heal__say(h, "dry run: would apply %s %s -> %s (%s) in %s (%s:%u)",
			  guard_kind__name(b.d.kind), b.d.target, b.d.fallback_text, b.d.consumer,
			  hc.qualname, heal_names__base(ev->filename), ev->line);
		heal_event__emit(h->o.events, h->pid, "would_apply", "s:guard",
				 guard_kind__name(b.d.kind), "s:target", b.d.target, "s:fallback",
				 b.d.fallback_text, "s:consumer", b.d.consumer, "s:function",
				 hc.qualname, "s:file", file, "i:line", (long long)ev->line, NULL);
		oc = HEAL_WOULD_APPLY;
		goto out_patch;
	}
	struct wire_patch_result res;
	struct wire_patch_meta meta;
	patch_meta(h, &hc, &b, file, (int)ev->line, &meta);
	err = heal__send_one(h, ev->code_addr, &b.gp, &meta, why, sizeof(why), &res);
	if (err == -EPIPE) {
		rc = -EPIPE;
		heal__say(h, "failed: %s", why);
		goto out_patch;
	}
	if (err) {
		heal__say(h, "failed: %s (%s in %s)", why, guard_kind__name(b.d.kind), hc.qualname);
		goto out_patch;
	}
	double t1 = heal__now_ms();
	heal__note_patched(h, ev->code_addr, ev->offset, &b.gp);
	heal__note(
		h,
		"guard applied: %s %s -> %s (%s) in %s (%s:%u); installed in %u function%s in %.2f ms",
		guard_kind__name(b.d.kind), b.d.target, b.d.fallback_text, b.d.consumer,
		hc.qualname, heal_names__base(ev->filename), ev->line, res.nfunctions,
		res.nfunctions == 1 ? "" : "s", t1 - t0);
	heal_event__emit(h->o.events, h->pid, "guard_applied", "s:guard",
			 guard_kind__name(b.d.kind), "s:target", b.d.target, "s:fallback",
			 b.d.fallback_text, "s:consumer", b.d.consumer, "s:function", hc.qualname,
			 "s:file", file, "i:line", (long long)ev->line, "i:functions",
			 (long long)res.nfunctions, "f:ms", t1 - t0, NULL);
	oc = HEAL_APPLIED;
	/* In flight: the failing call continues from the fallback and its
	 * caller gets the result (a redirect guard: from the loads of its
	 * operands, when they can run again). Otherwise the exception goes
	 * on. */
	if (!h->o.no_resume && b.gp.fallback_unit) {
		rc = resume_call(h, ev, hc.qualname, b.gp.fallback_unit, (uint32_t)b.gp.base_depth,
				 &released, &oc);
	} else if (!h->o.no_resume && b.gp.no_resume) {
		/* A redirect guard whose operands cannot be produced again. */
		heal__say(h,
			  "not resumed in flight (%s): this crash goes on, later calls are healed",
			  b.gp.no_resume);
		heal_event__emit(h->o.events, h->pid, "not_resumed", "s:function", hc.qualname,
				 "s:reason", b.gp.no_resume, NULL);
	}
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
	case HEAL_APPLIED:
		h->st.applied++;
		break;
	case HEAL_RESUMED:
		h->st.applied++;
		h->st.resumed++;
		break;
	case HEAL_WOULD_APPLY:
		h->st.would_apply++;
		break;
	case HEAL_REFUSED:
	case HEAL_MODULE_LEVEL:
		h->st.refused++;
		break;
	case HEAL_FAILED:
		h->st.failed++;
		heal_event__emit(h->o.events, h->pid, "failed", "s:message", h->last, "s:function",
				 ev->qualname, "s:file", file, "i:line", (long long)ev->line, NULL);
		break;
	case HEAL_NONE:
		break;
	}
	h->pages.on = false;
	if (!released && rc != -EPIPE && inject_session__release(h->s, ev) == -EPIPE)
		rc = -EPIPE;
	if (outcome)
		*outcome = oc;
	return rc;
}
