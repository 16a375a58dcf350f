/* heal: suture-attach --watch --hold (docs/design.md §14).
 *
 * Instead of guarding, every crash of application code is held: the agent
 * parks the thread inside the crashing function, without a bound and
 * without the GIL, and we print where it is and the command to run once
 * the source is fixed. The file's text is read now, while it still is the
 * text the frame's code was compiled from.
 *
 * When a reload (another suture-attach, --reload) gives the held function
 * new code, the agent says so (HELD_CHANGED) and we work out the restart
 * from outside, as for a guard's resume: the failing instruction's line,
 * the first instruction of that line's run (the statement's start), the
 * stack depth there (rewrite/'s analysis: the loop iterators and with-exit
 * callables live under the statement), the line in the edited text
 * (linemap.c), the first statement start on that line in the new code at
 * the same depth, and the locals mapped by name. The agent then runs the
 * new code from there with the frame's locals and those stack items, and
 * gives the result to the caller (RESTART). Whatever cannot be mapped is
 * said in one line and the crash stays held: fix, reload again, or ^C.
 */
#include "heal/heal-priv.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char *slurp(const char *path, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	size_t n = 0;
	if (fd < 0)
		return NULL;
	if (!fstat(fd, &st) && S_ISREG(st.st_mode) && st.st_size < (64 << 20) &&
	    (buf = malloc((size_t)st.st_size + 1))) {
		while (n < (size_t)st.st_size) {
			ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
			if (r <= 0)
				break;
			n += (size_t)r;
		}
		buf[n] = 0;
	}
	close(fd);
	*len = n;
	return buf;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int heal_hold__on_crash(struct heal *h, struct heal_holds *hs, const struct wire_crash *ev)
{
	char real[PATH_MAX];
	const char *file = realpath(ev->filename, real) ? real : ev->filename;
	/* The same crash again after a restart failed: its text is the one
	 * the frame still runs (the file holds the edit by now). */
	for (size_t i = 0; i < hs->n; i++)
		if (hs->v[i].reparked && hs->v[i].ev.tid == ev->tid &&
		    hs->v[i].ev.frame_addr == ev->frame_addr) {
			hs->v[i].ev = *ev;
			hs->v[i].reparked = false;
			heal__say(h,
				  "held again: %s in %s (%s:%u): fix the source, then: "
				  "suture-attach --pid %d --reload %s",
				  ev->exc_type, ev->qualname, heal_names__base(ev->filename),
				  ev->line, (int)h->pid, file);
			return 0;
		}
	struct heal_held *v = realloc(hs->v, (hs->n + 1) * sizeof *v);
	if (!v)
		return -ENOMEM;
	hs->v = v;
	struct heal_held *e = &hs->v[hs->n++];
	memset(e, 0, sizeof *e);
	e->ev = *ev;
	e->src = slurp(ev->filename, &e->src_len);
	heal__say(h,
		  "held: %s: %s in %s (%s:%u); fix the source, then: suture-attach --pid %d "
		  "--reload %s (^C releases it)",
		  ev->exc_type, ev->message, ev->qualname, heal_names__base(ev->filename), ev->line,
		  (int)h->pid, file);
	return 0;
}

static void drop(struct heal_holds *hs, size_t i)
{
	free(hs->v[i].src);
	memmove(&hs->v[i], &hs->v[i + 1], (hs->n - i - 1) * sizeof hs->v[0]);
	hs->n--;
}

void heal_hold__free(struct heal_holds *hs)
{
	while (hs->n)
		drop(hs, hs->n - 1);
	free(hs->v);
	hs->v = NULL;
}

/* Decode and analyse a code object read from the target. */
static int model(const struct heal_code *hc, struct rewrite_code **out, char *why, size_t cap)
{
	struct rewrite_diag d = { 0 };
	int max, err = rewrite_code__decode(&hc->info, out, &d);
	if (!err)
		err = rewrite_code__analyse(*out, &max, &d);
	if (err)
		snprintf(why, cap, "%.100s: %.140s", hc->qualname,
			 d.msg[0] ? d.msg : strerror(-err));
	return err;
}

/* The restart of e in the new code nhc: r filled, or a reason. */
static int plan(const struct heal_held *e, const struct heal_code *ohc, const struct heal_code *nhc,
		struct wire_restart *r, int *new_line, char *why, size_t cap)
{
	struct rewrite_code *oc = NULL, *nc = NULL;
	int err;
	if ((err = model(ohc, &oc, why, cap)) || (err = model(nhc, &nc, why, cap)))
		goto out;
	err = -EINVAL;
	const struct rewrite_instr *oi = rewrite_code__instrs(oc);
	int64_t k = rewrite_code__instr_at(oc, e->ev.offset / 2);
	if (k < 0 || oi[k].depth < 0) {
		snprintf(why, cap, "the failing instruction is not in the old code");
		goto out;
	}
	int line = oi[k].loc.line;
	/* The statement starts where the failing line's run does. */
	while (k > 0 && oi[k - 1].loc.line == line && oi[k - 1].depth >= 0)
		k--;
	int32_t depth = oi[k].depth;
	if (!e->src) {
		snprintf(why, cap, "%.200s could not be read when the crash was held",
			 e->ev.filename);
		goto out;
	}
	size_t now_len;
	char *now = slurp(e->ev.filename, &now_len);
	int nl = now ? heal_linemap__map(e->src, e->src_len, now, now_len, line) : -1;
	free(now);
	if (nl < 0) {
		snprintf(why, cap, "line %d is gone from the edited file", line);
		goto out;
	}
	*new_line = nl;
	const struct rewrite_instr *ni = rewrite_code__instrs(nc);
	size_t nn = rewrite_code__noriginal(nc);
	int64_t at = -1;
	for (size_t j = 0; j < nn && at < 0; j++)
		if (ni[j].loc.line == nl && (j == 0 || ni[j - 1].loc.line != nl) &&
		    ni[j].depth == depth)
			at = (int64_t)j;
	if (at < 0) {
		snprintf(why, cap,
			 "line %d of the new code starts no statement at the failing one's block "
			 "depth (%d live stack item(s): a loop or with block changed)",
			 nl, depth);
		goto out;
	}
	const struct rewrite_code_info *oin = &ohc->info, *nin = &nhc->info;
	memset(r, 0, offsetof(struct wire_restart, map));
	r->event_id = e->ev.event_id;
	r->code_addr = nhc->addr;
	r->unit = ni[at].offset;
	r->base_depth = (uint32_t)depth;
	r->nmap = (uint32_t)nin->nlocalsplus;
	for (int i = 0; i < nin->nlocalsplus; i++) {
		r->map[i] = -1;
		for (int j = 0; j < oin->nlocalsplus; j++)
			if (nin->localsplusnames[i] && oin->localsplusnames[j] &&
			    !strcmp(nin->localsplusnames[i], oin->localsplusnames[j]))
				r->map[i] = j;
		uint8_t want = nin->localspluskinds[i] & (REWRITE_LOCAL_CELL | REWRITE_LOCAL_FREE);
		uint8_t have = r->map[i] >= 0 ? oin->localspluskinds[r->map[i]] &
							(REWRITE_LOCAL_CELL | REWRITE_LOCAL_FREE)
					      : 0;
		if (want != have) {
			snprintf(why, cap, "local '%s' became or stopped being a closure cell",
				 nin->localsplusnames[i] ? nin->localsplusnames[i] : "?");
			goto out;
		}
	}
	err = 0;
out:
	rewrite_code__free(oc);
	rewrite_code__free(nc);
	return err;
}

int heal_hold__on_changed(struct heal *h, struct heal_holds *hs, const struct wire_crash *chg)
{
	size_t i = 0;
	while (i < hs->n && hs->v[i].ev.event_id != chg->event_id)
		i++;
	if (i == hs->n)
		return 0; /* not ours any more (released) */
	struct heal_held *e = &hs->v[i];
	struct heal_code ohc = { 0 }, nhc = { 0 };
	struct wire_restart *r = malloc(sizeof *r);
	struct wire_resume_result res;
	char why[256] = "";
	int new_line = 0, err;
	double t0 = now_ms();

	heal_pages__drop(&h->pages); /* the reload changed the target */
	if (!r) {
		snprintf(why, sizeof why, "out of memory");
	} else if ((err = heal_code__read(h->r, e->ev.code_addr, &ohc)) ||
		   (err = heal_code__read(h->r, chg->code_addr, &nhc))) {
		snprintf(why, sizeof why, "cannot read the code objects: %s", strerror(-err));
	} else {
		plan(e, &ohc, &nhc, r, &new_line, why, sizeof why);
	}
	heal_code__free(&ohc);
	heal_code__free(&nhc);
	heal_pages__drop(&h->pages);
	if (why[0]) {
		heal__say(h,
			  "cannot restart %s after %s: %s; still held: fix and reload again, "
			  "or ^C to release it",
			  e->ev.qualname, chg->message, why);
		free(r);
		return 0;
	}
	struct wire_crash nested;
	err = inject_session__restart(h->s, &e->ev, r, &res, &nested);
	free(r);
	if (err == INJECT_RESUME_NESTED) {
		/* The restarted call crashed again further on: that crash is
		 * held in its turn (its frame is the continuation's), this one's
		 * answer comes when the call is over. */
		heal__note(h,
			   "restarted: %s at line %d of the new code (was %u), with its locals; "
			   "it crashed again [%.2f ms]",
			   e->ev.qualname, new_line, e->ev.line, now_ms() - t0);
		drop(hs, i);
		return heal_hold__on_crash(h, hs, &nested);
	}
	if (err)
		return err == -EPIPE ? -EPIPE : 0;
	if (res.status == WIRE_RESUMED) {
		heal__note(h,
			   "restarted: %s at line %d of the new code (was %u), with its locals; "
			   "its caller got the result [%.2f ms]",
			   e->ev.qualname, new_line, e->ev.line, now_ms() - t0);
		drop(hs, i);
	} else if (res.status == WIRE_RESUME_RAISED) {
		heal__note(h, "restarted: %s at line %d of the new code; %s: it goes on",
			   e->ev.qualname, new_line, res.message);
		drop(hs, i);
	} else {
		heal__say(h, "not restarted: %s: %s; still held", e->ev.qualname, res.message);
		e->reparked = true;
	}
	return 0;
}
