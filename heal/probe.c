/* heal: live probes, the debugger's side (suture-attach --log/--snapshot,
 * docs/design.md §12, docs/formats/channel.md "Probes").
 *
 *   1. the format and the condition are parsed here first (probe/): a
 *      syntax error or a call is refused before the target is touched;
 *   2. attach (inspect/ reads, inject/ loads or reuses the agent);
 *   3. PROBE_SET: the agent parses them again, finds the live code objects
 *      whose body has an instruction on FILE:LINE (or answers with the
 *      nearest lines that have code), and gives the probe an id;
 *   4. for each code object: read it, synthesize the logpoint
 *      (guard__synthesize_logpoint), pass the diff gate, PATCH_NAMED
 *      "probe:<id>" (installed like a guard: every function sharing the
 *      code, enclosing code, suspended frames);
 *   5. PROBE_ARM, then print one line per PROBE_HIT until --count lines,
 *      --timeout, a signal, or the target's exit;
 *   6. PROBE_CLEAR: the agent rolls the patches back (co_code and
 *      co_consts of every function equal the original again). If we die
 *      instead, the agent does the same when it sees our socket close.
 * A process tree is probed whole (docs/design.md §15): steps 2-4 in the
 * root and each descendant running its executable (one session each; a
 * descendant that cannot take the probe is a line, the root's refusal the
 * command's), then 5 in all of them (hits read by one poll over the
 * sessions, "[pid N] " before each line when more than one process is
 * probed, --count over the tree, the first snapshot of the tree), then 6
 * in each.
 * The frames of the probe protocol are read here with
 * wire_channel__read_frame on the session's descriptor; crash reports
 * that arrive meanwhile are released at once (a probe session heals
 * nothing).
 */
#include "attach/attach.h"
#include "heal/heal-priv.h"
#include "inspect/inspect.h"
#include "probe/probe.h"
#include "wire/channel.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	g_stop = sig;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One process of the tree the probe is set in: its own agent session,
 * reader and probe id (each agent numbers its probes). */
struct pmember {
	pid_t pid;
	struct inspect_proc *ip;
	struct inject_session *s;
	int fd;
	uint64_t next_req;
	uint32_t id;
	bool set; /* the agent holds the probe: CLEAR it on the way out */
	unsigned installed, unreachable;
};

/* The whole probe: the parsed texts (kept for rendering the lines), the
 * processes, and what was printed over all of them. */
struct pstate {
	const struct heal_probe_opts *o;
	struct probe_format fmt;
	struct pmember *m;
	size_t n;
	bool tag; /* more than one process probed: lines say which */
	uint64_t lines, dropped;
	bool snapped;
	int snap_rc;
};

int heal_probe__check(const struct heal_probe_opts *o, char *why, size_t cap)
{
	static struct probe_format f;
	static struct probe_expr e;
	struct probe_err err;
	int rc;
	if (o->format && (rc = probe_format__parse(o->format, strlen(o->format), &f, &err))) {
		snprintf(why, cap, "--log: %s (at byte %u)", err.msg, err.at);
		return rc;
	}
	if (o->cond && (rc = probe_expr__parse(o->cond, 0, strlen(o->cond), &e, &err))) {
		snprintf(why, cap, "--if: %s (at byte %u)", err.msg, err.at);
		return rc;
	}
	if (o->line <= 0 || !o->file || !o->file[0]) {
		snprintf(why, cap, "FILE:LINE expected");
		return -EINVAL;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Output                                                              */

static void json_str(FILE *out, const char *s, size_t n)
{
	fputc('"', out);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", out);
		else if (c == '\t')
			fputs("\\t", out);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

/* The format with the values in place of its fields. */
static void put_text(FILE *out, const struct pstate *ps, const struct wire_probe_hit *m, bool json)
{
	const char *src = ps->o->format;
	for (int i = 0; i < ps->fmt.nparts; i++) {
		const struct probe_part *p = &ps->fmt.parts[i];
		const char *t = p->expr < 0 ? src + p->off : NULL;
		size_t n = p->len;
		if (p->expr >= 0) {
			if ((uint32_t)p->expr >= m->nvalues)
				continue;
			t = m->values[p->expr];
			n = m->value_len[p->expr];
		}
		if (json) {
			/* inside a JSON string: escape without quotes */
			for (size_t k = 0; k < n; k++) {
				unsigned char c = (unsigned char)t[k];
				if (c == '"' || c == '\\')
					fprintf(out, "\\%c", c);
				else if (c < 0x20)
					fprintf(out, "\\u%04x", c);
				else
					fputc(c, out);
			}
		} else {
			fwrite(t, 1, n, out);
		}
	}
}

static void print_hit(struct pstate *ps, const struct pmember *mb, const struct wire_probe_hit *m)
{
	FILE *out = ps->o->out ? ps->o->out : stdout;
	if (m->dropped) {
		ps->dropped += m->dropped;
		if (ps->tag)
			fprintf(stderr,
				"[suture] probe: pid %d: %llu line(s) dropped by the rate limit\n",
				(int)mb->pid, (unsigned long long)m->dropped);
		else
			fprintf(stderr, "[suture] probe: %llu line(s) dropped by the rate limit\n",
				(unsigned long long)m->dropped);
	}
	if (!ps->o->json) {
		if (ps->tag)
			fprintf(out, "[pid %d] ", (int)mb->pid);
		put_text(out, ps, m, false);
		fputc('\n', out);
	} else {
		struct timespec ts = { (time_t)(m->time_ns / 1000000000u),
				       (long)(m->time_ns % 1000000000u) };
		struct tm tm;
		char when[40];
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(out,
			"{\"time\": \"%s.%06ldZ\", \"pid\": %d, \"thread\": %llu, \"tid\": %llu, ",
			when, ts.tv_nsec / 1000, (int)mb->pid, (unsigned long long)m->thread_ident,
			(unsigned long long)m->tid);
		fputs("\"file\": ", out);
		json_str(out, ps->o->file, strlen(ps->o->file));
		fprintf(out, ", \"line\": %u, \"values\": {", m->line);
		for (int i = 0; i < ps->fmt.nexprs && (uint32_t)i < m->nvalues; i++) {
			const struct probe_expr *x = &ps->fmt.exprs[i];
			const char *src = ps->o->format + x->off;
			size_t n = x->len;
			while (n && (*src == ' ' || *src == '\t'))
				src++, n--;
			while (n && (src[n - 1] == ' ' || src[n - 1] == '\t'))
				n--;
			if (i)
				fputs(", ", out);
			json_str(out, src, n);
			fputs(": ", out);
			json_str(out, m->values[i], m->value_len[i]);
		}
		fputs("}, \"text\": \"", out);
		put_text(out, ps, m, true);
		fputs("\"}\n", out);
	}
	fflush(out);
	ps->lines++;
}

/* ------------------------------------------------------------------ */
/* The protocol                                                        */

static int send_frame(struct pmember *mb, struct wire_buf *b)
{
	int rc = b->err ? b->err : wire_channel__write_all(mb->fd, b->data, b->len);
	wire_buf__free(b);
	return rc;
}

static int on_snapshot(struct pstate *ps, struct pmember *mb, const struct wire_probe_hit *m);

/* One frame from mb's agent: a HIT is printed, a CRASH released, a
 * PROBE_RESULT for want (when want != 0) copied to *res and 1 returned.
 * 0 when handled, -ETIMEDOUT, -EPIPE, -EPROTO. */
static int read_one(struct pstate *ps, struct pmember *mb, int timeout_ms, uint64_t want,
		    struct wire_probe_result *res)
{
	struct wire_hdr h;
	uint8_t *pl = NULL;
	int rc = wire_channel__read_frame(mb->fd, timeout_ms, &h, &pl);
	if (rc)
		return rc == -EINTR ? -ETIMEDOUT : rc;
	const uint8_t *p = pl, *end = pl + h.len;
	switch (h.type) {
	case WIRE_MSG_PROBE_HIT: {
		struct wire_probe_hit m;
		if ((rc = wire_msg__decode_probe_hit(p, end, &m)))
			break;
		if (m.probe_id != mb->id)
			break;
		if (m.flags & WIRE_PROBE_F_PARKED) {
			rc = on_snapshot(ps, mb, &m);
			break;
		}
		if (!ps->o->count || ps->lines < ps->o->count)
			print_hit(ps, mb, &m);
		break;
	}
	case WIRE_MSG_PROBE_RESULT: {
		struct wire_probe_result r;
		if ((rc = wire_msg__decode_probe_result(p, end, &r)))
			break;
		if (want && r.request_id == want) {
			*res = r;
			rc = 1;
		}
		break;
	}
	case WIRE_MSG_CRASH: {
		struct wire_crash ev;
		if ((rc = wire_msg__decode_crash(p, end, &ev)) == 0)
			rc = inject_session__release(mb->s, &ev);
		break;
	}
	case WIRE_MSG_HITS:
		break;
	case WIRE_MSG_ERROR: {
		char text[256];
		if (wire_msg__decode_error(p, end, text, sizeof text) == 0)
			fprintf(stderr, "suture-attach: agent: %s\n", text);
		rc = -EPROTO;
		break;
	}
	default:
		rc = -EPROTO;
	}
	free(pl);
	if (rc == -EINVAL)
		rc = -EPROTO;
	return rc;
}

/* Send b (a request with id req) and wait for its PROBE_RESULT. */
static int request(struct pstate *ps, struct pmember *mb, struct wire_buf *b, uint64_t req,
		   struct wire_probe_result *res)
{
	int rc = send_frame(mb, b);
	if (rc)
		return rc;
	double until = now_s() + 30.0;
	while ((rc = read_one(ps, mb, 1000, req, res)) != 1) {
		if (rc == -ETIMEDOUT && now_s() < until)
			continue;
		if (rc && rc != -ETIMEDOUT)
			return rc;
		if (rc == -ETIMEDOUT)
			return rc;
	}
	return 0;
}

static int ctl(struct pstate *ps, struct pmember *mb, enum wire_msg_type type,
	       struct wire_probe_result *res)
{
	struct wire_buf b = { 0 };
	struct wire_probe_ctl m = { .request_id = ++mb->next_req, .probe_id = mb->id };
	wire_msg__encode_probe_ctl(&b, type, &m);
	return request(ps, mb, &b, m.request_id, res);
}

/* --snapshot: the thread waits in mb's agent; read its stack now. Only
 * the first hit of the tree is printed: a thread another process parked
 * meanwhile is let go at once. */
static int on_snapshot(struct pstate *ps, struct pmember *mb, const struct wire_probe_hit *m)
{
	struct inspect_snapshot *snap = NULL;
	FILE *out = ps->o->out ? ps->o->out : stdout;
	int rc = 0;
	if (!ps->snapped) {
		if (ps->tag)
			fprintf(stderr, "[suture] snapshot in pid %d\n", (int)mb->pid);
		rc = inspect_proc__snapshot(mb->ip, INSPECT_SNAP_LOCALS, NULL, &snap, NULL);
		if (rc == 0 && (rc = inspect_snapshot__keep_thread(snap, m->tid)) == 0)
			rc = ps->o->json ? inspect_snapshot__print_json(snap, mb->ip, out)
					 : inspect_snapshot__print(snap, mb->ip, out);
		fflush(out);
		inspect_snapshot__free(snap);
		ps->snapped = true;
		ps->snap_rc = rc;
		if (rc)
			fprintf(stderr,
				"suture-attach: pid %d: cannot read the thread's stack: %s\n",
				(int)mb->pid, inspect_proc__error(mb->ip));
	}
	struct wire_buf b = { 0 };
	wire_msg__encode_probe_release(&b, m->event_id);
	return send_frame(mb, &b);
}

/* Read, synthesize, gate and install the logpoint in the code at addr. */
static int install_code(struct pstate *ps, struct pmember *mb, uint64_t addr, char *why, size_t cap)
{
	struct heal_code hc;
	struct guard_patch gp;
	struct rewrite_diag diag = { 0 };
	struct rewrite_code_info pi;
	struct rewrite_const *pconsts = NULL;
	struct guard_delta delta;
	struct outgoing_patch w;
	struct wire_patch_result res;
	memset(&hc, 0, sizeof hc);
	memset(&gp, 0, sizeof gp);
	memset(&w, 0, sizeof w);
	int rc = heal_code__read(inspect_proc__reader(mb->ip), addr, &hc);
	if (rc) {
		snprintf(why, cap, "cannot read code object %#llx: %s", (unsigned long long)addr,
			 strerror(-rc));
		return rc;
	}
	rc = guard__synthesize_logpoint(&hc.info, ps->o->line, mb->id, "probe_hit", &gp, &diag);
	if (rc) {
		snprintf(why, cap, "%.200s:%d in %.120s: %.200s", ps->o->file, ps->o->line,
			 hc.qualname, diag.msg[0] ? diag.msg : strerror(-rc));
		goto out;
	}
	if ((rc = guard_patch__info(&hc.info, &gp, &pi, &pconsts)) == 0) {
		memset(&diag, 0, sizeof diag);
		rc = guard_diffgate__check(&hc.info, &pi, &delta, &diag);
		free(pconsts);
		if (rc) {
			snprintf(why, cap, "the diff gate rejected the probe in %.120s: %.200s",
				 hc.qualname, diag.msg);
			goto out;
		}
	}
	if ((rc = heal_outgoing__fill(&w, addr, &gp, why, cap)))
		goto out;
	snprintf(w.p.meta.name, sizeof w.p.meta.name, "probe:%u", mb->id);
	snprintf(w.p.meta.guard, sizeof w.p.meta.guard, "probe");
	snprintf(w.p.meta.target, sizeof w.p.meta.target, "%s:%d", ps->o->file, ps->o->line);
	rc = inject_session__send_patch(mb->s, &w.p, &res);
	if (rc) {
		snprintf(why, cap, "%s", inject_session__error(mb->s));
	} else if (res.status) {
		rc = res.status;
		snprintf(why, cap, "%.120s: %.200s", hc.qualname, res.message);
	} else if (ps->o->verbose) {
		char dl[256];
		guard_delta__format(&delta, dl, sizeof dl);
		fprintf(stderr, "[suture] probe in %s: %s; %s\n", hc.qualname, dl, res.message);
	}
out:
	heal_outgoing__free(&w);
	guard_patch__release(&gp);
	heal_code__free(&hc);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The processes                                                       */

/* Attach to mb->pid, PROBE_SET, then the logpoint into each code object
 * holding the line. 0, or -errno with a one-line message in err; the
 * probe stays in the agent (mb->set) until member__close. */
static int member__set(struct pstate *ps, struct pmember *mb, char *err, size_t errlen)
{
	const struct heal_probe_opts *o = ps->o;
	static struct wire_probe_set m;
	static struct wire_probe_result res;
	struct wire_buf b = { 0 };
	int pid = (int)mb->pid, rc;

	if ((rc = inspect_proc__open(mb->pid, NULL, &mb->ip, err, errlen)))
		return rc;
	struct inject_opts io = { .agent_path = o->agent_path };
	if ((rc = inject_session__open(mb->pid, &io, &mb->s, err, errlen))) {
		if (rc == -ESRCH)
			snprintf(err, errlen, "inject: pid %d: process exited during the attach",
				 pid);
		return rc;
	}
	mb->fd = inject_session__fd(mb->s);

	memset(&m, 0, sizeof m);
	m.request_id = ++mb->next_req;
	m.flags = o->snapshot ? WIRE_PROBE_F_SNAPSHOT : 0;
	m.count = o->snapshot ? 1 : o->count;
	m.rate = o->rate;
	m.line = (uint32_t)o->line;
	snprintf(m.file, sizeof m.file, "%s", o->file);
	snprintf(m.format, sizeof m.format, "%s", o->format ? o->format : "");
	snprintf(m.cond, sizeof m.cond, "%s", o->cond ? o->cond : "");
	wire_msg__encode_probe_set(&b, &m);
	if ((rc = request(ps, mb, &b, m.request_id, &res))) {
		snprintf(err, errlen, "heal: pid %d: the agent did not answer the probe (%s)", pid,
			 strerror(-rc));
		return rc;
	}
	if (res.status) {
		snprintf(err, errlen, "heal: pid %d: %s", pid, res.message);
		return res.status;
	}
	mb->set = true;
	mb->id = res.probe_id;
	char why[1024] = "";
	for (uint32_t i = 0; i < res.ncodes; i++) {
		rc = install_code(ps, mb, res.codes[i], why, sizeof why);
		if (rc == -EPIPE) {
			snprintf(err, errlen, "heal: pid %d: the process exited", pid);
			return rc;
		}
		if (rc == 0)
			mb->installed++;
		else if (rc == -ENOENT)
			mb->unreachable++; /* no function holds it (a module body): running frames only */
		else if (o->verbose)
			fprintf(stderr, "[suture] probe: pid %d: %s\n", pid, why);
	}
	if (!mb->installed && !mb->unreachable) {
		snprintf(err, errlen, "heal: pid %d: cannot probe %s:%d: %s", pid, o->file, o->line,
			 why);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* PROBE_ARM: from now on mb's hits come. */
static int member__arm(struct pstate *ps, struct pmember *mb, char *err, size_t errlen)
{
	const struct heal_probe_opts *o = ps->o;
	struct wire_probe_result res;
	int pid = (int)mb->pid, rc;
	memset(&res, 0, sizeof res);
	if ((rc = ctl(ps, mb, WIRE_MSG_PROBE_ARM, &res)) || (rc = res.status)) {
		snprintf(err, errlen, "heal: pid %d: cannot arm the probe: %s", pid,
			 res.status ? res.message : strerror(-rc));
		return rc;
	}
	if (!mb->installed && !res.hits) {
		snprintf(err, errlen,
			 "heal: pid %d: cannot probe %s:%d: no function holds that code and no "
			 "frame runs it",
			 pid, o->file, o->line);
		return -EOPNOTSUPP;
	}
	fprintf(stderr,
		"[suture] probe %s:%d set in pid %d (%u code object%s, %llu running frame%s)\n",
		o->file, o->line, pid, mb->installed, mb->installed == 1 ? "" : "s",
		(unsigned long long)res.hits, res.hits == 1 ? "" : "s");
	/* Crash reports queued by the session while patches went out; later
	 * ones come to read_one. Nothing is read here: a PROBE_HIT may follow
	 * PROBE_RESULT at once, and the session's reader would drop it (the
	 * first line of a --count run was lost so, and the run then waited
	 * for the target's exit). */
	struct wire_crash ev;
	while (inject_session__queued_event(mb->s, &ev) == 0)
		inject_session__release(mb->s, &ev);
	return 0;
}

/* PROBE_CLEAR (the agent rolls the patches back), then leave the process
 * as it was found: an agent we injected is detached again. */
static void member__close(struct pstate *ps, struct pmember *mb, uint64_t *dropped)
{
	struct wire_probe_result res;
	if (mb->set && mb->s) {
		int rc = ctl(ps, mb, WIRE_MSG_PROBE_CLEAR, &res);
		if (rc == 0 && res.status == 0) {
			*dropped += res.dropped;
			if (ps->o->verbose)
				fprintf(stderr,
					"[suture] probe removed from pid %d: %llu line(s) "
					"reported\n",
					(int)mb->pid, (unsigned long long)res.hits);
		} else if (rc != -EPIPE) {
			fprintf(stderr,
				"suture-attach: pid %d: the probe could not be removed cleanly: %s\n",
				(int)mb->pid, rc ? strerror(-rc) : res.message);
		}
	}
	if (mb->s && inject_session__how(mb->s) != INJECT_HOW_CONNECTED)
		inject_session__detach(mb->s);
	inject_session__close(mb->s);
	inspect_proc__close(mb->ip);
	memset(mb, 0, sizeof *mb);
	mb->fd = -1;
}

/* Member i leaves the probe (skipped, or exited): closed, and the array
 * keeps its order. */
static void member__drop(struct pstate *ps, size_t i, uint64_t *dropped)
{
	member__close(ps, &ps->m[i], dropped);
	memmove(&ps->m[i], &ps->m[i + 1], (ps->n - i - 1) * sizeof ps->m[0]);
	ps->n--;
}

/* A descendant that cannot take the probe is one line; the root's probe
 * stands. One that exited meanwhile is not worth a line. */
static void member__skip(struct pstate *ps, size_t i, int rc, const char *why, uint64_t *dropped)
{
	if (rc != -ESRCH && attach_pid__alive(ps->m[i].pid))
		fprintf(stderr, "[suture] not probed: %s\n", why);
	member__drop(ps, i, dropped);
}

int heal_probe__run(pid_t pid, const struct heal_probe_opts *o, char *err, size_t errlen)
{
	static struct pstate ps;
	int status = 0, rc;
	uint64_t dropped = 0;
	struct pollfd *pf = NULL;
	struct sigaction sa = { .sa_handler = on_signal }, old[3];
	const int sigs[3] = { SIGINT, SIGTERM, SIGHUP };
	char why[1024];

	memset(&ps, 0, sizeof ps);
	ps.o = o;
	err[0] = 0;
	if ((status = heal_probe__check(o, err, errlen)))
		return status;
	if (o->format) {
		struct probe_err perr;
		probe_format__parse(o->format, strlen(o->format), &ps.fmt, &perr);
	}
	g_stop = 0;
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < 3; i++)
		sigaction(sigs[i], &sa, &old[i]);

	/* The process tree (docs/design.md §15): pid, then the processes
	 * forked from it that run its executable, parents first. */
	enum { MAXKIDS = 256 };
	pid_t kids[MAXKIDS];
	size_t nkids = 0;
	if (attach_pid__descendants(pid, kids, MAXKIDS, &nkids) < 0)
		nkids = 0;
	ps.m = calloc(1 + nkids, sizeof *ps.m);
	pf = calloc(1 + nkids, sizeof *pf);
	if (!ps.m || !pf) {
		status = -ENOMEM;
		snprintf(err, errlen, "heal: pid %d: out of memory", (int)pid);
		goto out;
	}
	ps.m[ps.n++] = (struct pmember){ .pid = pid, .fd = -1 };
	for (size_t k = 0; k < nkids; k++)
		if (attach_pid__same_exe(pid, kids[k]))
			ps.m[ps.n++] = (struct pmember){ .pid = kids[k], .fd = -1 };

	/* Set everywhere, then arm everywhere: whether lines name their pid
	 * is known before the first one comes. The root's refusal is the
	 * command's; a descendant's is a line. */
	if ((status = member__set(&ps, &ps.m[0], err, errlen)))
		goto out;
	for (size_t i = 1; i < ps.n && !g_stop;) {
		why[0] = 0;
		if ((rc = member__set(&ps, &ps.m[i], why, sizeof why)))
			member__skip(&ps, i, rc, why, &dropped);
		else
			i++;
	}
	ps.tag = ps.n > 1;
	if ((status = member__arm(&ps, &ps.m[0], err, errlen)))
		goto out;
	for (size_t i = 1; i < ps.n && !g_stop;) {
		why[0] = 0;
		if ((rc = member__arm(&ps, &ps.m[i], why, sizeof why)))
			member__skip(&ps, i, rc, why, &dropped);
		else
			i++;
	}

	double deadline = o->timeout_s > 0 ? now_s() + o->timeout_s : 0;
	while (!g_stop && ps.n) {
		if (o->snapshot ? ps.snapped : (o->count && ps.lines >= o->count))
			break;
		int wait_ms = 200;
		if (deadline) {
			double left = deadline - now_s();
			if (left <= 0) {
				if (o->snapshot)
					status = -ETIMEDOUT;
				if (o->snapshot || !o->quiet)
					fprintf(stderr,
						"[suture] timeout: probe removed after %g s\n",
						o->timeout_s);
				break;
			}
			if (left * 1e3 < wait_ms)
				wait_ms = (int)(left * 1e3) + 1;
		}
		for (size_t i = 0; i < ps.n; i++)
			pf[i] = (struct pollfd){ .fd = ps.m[i].fd, .events = POLLIN };
		int np = poll(pf, ps.n, wait_ms);
		if (np < 0 && errno != EINTR) {
			status = -errno;
			snprintf(err, errlen, "heal: pid %d: poll: %s", (int)pid, strerror(errno));
			goto out;
		}
		/* Last first: dropping member i moves only those after it. */
		for (size_t i = ps.n; np > 0 && i-- > 0;) {
			if (!pf[i].revents)
				continue;
			rc = read_one(&ps, &ps.m[i], 0, 0, NULL);
			if (rc == -ETIMEDOUT || rc == 0)
				continue;
			if (rc == -EPIPE) {
				if (!o->quiet)
					fprintf(stderr, "[suture] pid %d exited\n",
						(int)ps.m[i].pid);
				ps.m[i].set = false;
				member__drop(&ps, i, &dropped);
				continue;
			}
			status = rc;
			snprintf(err, errlen, "heal: pid %d: probe channel: %s", (int)ps.m[i].pid,
				 strerror(-rc));
			goto out;
		}
	}
	if (g_stop && !o->quiet)
		fprintf(stderr, "[suture] %s: probe removed\n", strsignal(g_stop));
	if (o->snapshot && ps.snapped && ps.snap_rc && !status)
		status = ps.snap_rc;
out:
	while (ps.n)
		member__drop(&ps, ps.n - 1, &dropped);
	if (dropped)
		fprintf(stderr, "[suture] probe: %llu line(s) dropped by the rate limit in all\n",
			(unsigned long long)dropped);
	free(ps.m);
	free(pf);
	/* After a stop by a signal the caller is on its way out: the three
	 * stay blocked while and after the caller's handlers come back, so a
	 * second Ctrl-C cannot turn our status into a death by signal (as
	 * heal_watch__run). */
	if (g_stop) {
		sigset_t stops;
		sigemptyset(&stops);
		for (int i = 0; i < 3; i++)
			sigaddset(&stops, sigs[i]);
		sigprocmask(SIG_BLOCK, &stops, NULL);
	}
	for (int i = 0; i < 3; i++)
		sigaction(sigs[i], &old[i], NULL);
	return status;
}
