/* inspect/snapshot.c: a consistent picture of every thread's Python stack.
 *
 * Threads are stopped (attach_proc__seize_all) only while the thread states
 * and frames are copied: a handful of reads a frame. Names, line numbers
 * and local values are decoded after every thread runs again, from the
 * copied pointers; what changed in between is decoded defensively like
 * any other remote bytes.
 */
#include "inspect/inspect-priv.h"
#include "attach/attach.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct inspect_snapshot {
	size_t nthreads, cap;
	struct inspect_snap_thread *threads;
	uint64_t gil_holder;
	int gil_known;
};

size_t inspect_snapshot__nthreads(const struct inspect_snapshot *s) { return s->nthreads; }

const struct inspect_snap_thread *inspect_snapshot__thread(const struct inspect_snapshot *s, size_t i)
{
	return i < s->nthreads ? &s->threads[i] : NULL;
}

void inspect_snapshot__free(struct inspect_snapshot *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nthreads; i++) {
		struct inspect_snap_thread *t = &s->threads[i];
		for (size_t j = 0; j < t->nframes; j++) {
			for (size_t k = 0; k < t->frames[j].nlocals; k++) {
				free(t->frames[j].locals[k].name);
				free(t->frames[j].locals[k].repr);
			}
			free(t->frames[j].locals);
		}
		free(t->frames);
	}
	free(s->threads);
	free(s);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Refuse targets we must not touch: already traced, or stopped by job
 * control (seizing would not harm it, but the dump would hang or lie). */
static int check_state(struct inspect_proc *ip)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)ip->pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? inspect__fail(ip, -ESRCH, "no such process")
				       : inspect__fail(ip, -errno, "%s: %s", path, strerror(errno));
	int err = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "State:", 6)) {
			const char *p = line + 6;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == 'T')
				err = inspect__fail(ip, -EAGAIN, "process is stopped (SIGSTOP); "
						    "resume it with kill -CONT %d", (int)ip->pid);
			else if (*p == 'Z' || *p == 'X')
				err = inspect__fail(ip, -ESRCH, "process has exited (zombie)");
		} else if (!strncmp(line, "TracerPid:", 10)) {
			long tracer = strtol(line + 10, NULL, 10);
			if (tracer != 0 && tracer != (long)getpid() && !err)
				err = inspect__fail(ip, -EBUSY, "already traced by pid %ld", tracer);
		}
	}
	fclose(f);
	return err;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap * 2 : 8;
	while (n < need)
		n *= 2;
	void *q = realloc(*p, n * elem);
	if (!q)
		return -ENOMEM;
	memset((char *)q + *cap * elem, 0, (n - *cap) * elem);
	*p = q;
	*cap = n;
	return 0;
}

/* Stopped phase: copy thread states and frames. */
static int copy_stacks(struct inspect_proc *ip, struct inspect_snapshot *s)
{
	struct inspect_thread_iter it;
	struct inspect_thread t;
	int r, err = inspect_threads__begin(ip, &it);
	if (err)
		return err;
	s->gil_known = inspect_proc__gil_holder(ip, &s->gil_holder) == 0;
	while ((r = inspect_threads__next(&it, &t)) == 1) {
		if ((err = grow((void **)&s->threads, &s->cap, s->nthreads + 1, sizeof(*s->threads))))
			return err;
		struct inspect_snap_thread *st = &s->threads[s->nthreads++];
		size_t fcap = 0;
		st->raw = t;
		st->holds_gil = s->gil_known && s->gil_holder == t.tstate;
		struct inspect_frame_iter fit;
		struct inspect_frame f;
		inspect_frames__begin(ip, t.current_frame, &fit);
		while ((r = inspect_frames__next(&fit, &f)) == 1) {
			if ((err = grow((void **)&st->frames, &fcap, st->nframes + 1, sizeof(*st->frames))))
				return err;
			st->frames[st->nframes++].raw = f;
		}
		if (r == -ESRCH)
			return inspect__fail(ip, -ESRCH, "process exited during the dump");
		st->walk_err = r;
	}
	if (r == -ESRCH || (r < 0 && attach_proc__read(ip->ap, ip->runtime, &t, 1) == -ESRCH))
		return inspect__fail(ip, -ESRCH, "process exited during the dump");
	return r < 0 ? r : 0;
}

static void thread_name(struct inspect_proc *ip, struct inspect_snap_thread *t)
{
	char path[96];
	snprintf(t->name, sizeof(t->name), "?");
	snprintf(path, sizeof(path), "/proc/%d/task/%llu/comm", (int)ip->pid,
		 (unsigned long long)t->raw.native_id);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, t->name, sizeof(t->name) - 1);
	close(fd);
	if (n <= 0) {
		snprintf(t->name, sizeof(t->name), "?");
		return;
	}
	t->name[n] = 0;
	t->name[strcspn(t->name, "\n")] = 0;
}

/* Per-snapshot cache of decoded code objects: frames of one recursion
 * share their code. Keyed by address; lives only for this dump. */
struct code_cache {
	struct inspect_code *codes;
	int *ok;
	size_t n, cap;
};

static const struct inspect_code *cached_code(struct inspect_proc *ip, struct code_cache *cc,
					       uint64_t addr, int *ok)
{
	for (size_t i = cc->n; i-- > 0;)
		if (cc->codes[i].addr == addr) {
			*ok = cc->ok[i];
			return &cc->codes[i];
		}
	size_t cap = cc->cap;
	if (grow((void **)&cc->codes, &cap, cc->n + 1, sizeof(*cc->codes)) ||
	    grow((void **)&cc->ok, &cc->cap, cc->n + 1, sizeof(*cc->ok)))
		return NULL;
	cc->ok[cc->n] = inspect_code__read(&ip->reader, addr, &cc->codes[cc->n]) == 0;
	cc->codes[cc->n].addr = addr;
	*ok = cc->ok[cc->n];
	return &cc->codes[cc->n++];
}

static int decode_locals(struct inspect_proc *ip, struct inspect_snap_frame *sf,
			 const struct inspect_limits *lim)
{
	const struct inspect_reader *r = &ip->reader;
	size_t n = sf->raw.nslots;
	if (!n)
		return 0;
	sf->locals = calloc(n, sizeof(*sf->locals));
	if (!sf->locals)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char name[128];
		uint8_t kind = 0;
		uint64_t v = sf->raw.slots[i];
		if (!v)
			continue; /* unbound */
		if (inspect_code__local(r, &sf->code, (int32_t)i, name, sizeof(name), &kind))
			snprintf(name, sizeof(name), "<local %zu>", i);
		/* Cells (made by MAKE_CELL, or copied in by COPY_FREE_VARS) hold
		 * the value; an empty cell is an unbound variable. */
		if ((kind & (INSPECT_FAST_CELL | INSPECT_FAST_FREE)) && ip->off.cell_ref >= 0) {
			uint64_t type = 0;
			if (!inspect__read_u64(r, v + (uint64_t)ip->off.ob_type, &type) &&
			    type == ip->types.type_cell) {
				if (inspect__read_u64(r, v + (uint64_t)ip->off.cell_ref, &v) || !v)
					continue;
			}
		}
		struct inspect_snap_local *l = &sf->locals[sf->nlocals];
		struct inspect_str s = {0};
		int err = inspect_value__repr(r, v, lim, &s);
		if (err) {
			inspect_str__free(&s);
			return err;
		}
		l->repr = s.p;
		l->name = strdup(name);
		if (!l->name)
			return -ENOMEM;
		l->kind = kind;
		inspect_value__type_name(r, v, l->type, sizeof(l->type));
		sf->nlocals++;
	}
	return 0;
}

int inspect_proc__snapshot(struct inspect_proc *ip, unsigned flags,
			   const struct inspect_limits *lim,
			   struct inspect_snapshot **out, struct inspect_snap_stats *stats)
{
	static const struct inspect_limits dflt = INSPECT_LIMITS_DEFAULT;
	struct inspect_snapshot *s = calloc(1, sizeof(*s));
	struct code_cache cc = {0};
	double t0 = now_ms(), t_stop = 0, t_resume = 0;
	unsigned long reads0 = ip->reads;
	int err;
	*out = NULL;
	if (!lim)
		lim = &dflt;
	if (!s)
		return -ENOMEM;
	if ((err = check_state(ip)))
		goto fail;
	t_stop = now_ms();
	err = attach_proc__seize_all(ip->ap);
	if (err) {
		if (err == -ESRCH)
			inspect__fail(ip, err, "process exited during the dump");
		else if (err == -EBUSY)
			inspect__fail(ip, err, "already traced by another process");
		else if (err == -EPERM || err == -EACCES)
			inspect__fail(ip, err = -EPERM, "ptrace not permitted (%s)",
				      attach_proc__error(ip->ap));
		else
			inspect__fail(ip, err, "cannot stop threads: %s", attach_proc__error(ip->ap));
		goto fail;
	}
	err = copy_stacks(ip, s);
	int rel = attach_proc__release_all(ip->ap);
	t_resume = now_ms();
	if (!err && rel) {
		if (rel == -ESRCH)
			err = inspect__fail(ip, -ESRCH, "process exited during the dump");
		else
			err = inspect__fail(ip, rel, "cannot resume threads: %s", attach_proc__error(ip->ap));
	}
	if (err)
		goto fail;

	/* Running again: decode. */
	unsigned nframes = 0;
	for (size_t i = 0; i < s->nthreads; i++) {
		struct inspect_snap_thread *t = &s->threads[i];
		thread_name(ip, t);
		for (size_t j = 0; j < t->nframes; j++, nframes++) {
			struct inspect_snap_frame *sf = &t->frames[j];
			int ok = 0;
			const struct inspect_code *c = cached_code(ip, &cc, sf->raw.code, &ok);
			if (!c) {
				err = -ENOMEM;
				goto fail;
			}
			sf->line = -1;
			sf->code_ok = ok;
			if (!ok)
				continue;
			sf->code = *c;
			if (inspect_code__line(&ip->reader, c, sf->raw.lasti, &sf->line))
				sf->line = -1;
			if ((flags & INSPECT_SNAP_LOCALS) && (err = decode_locals(ip, sf, lim)))
				goto fail;
		}
	}
	free(cc.codes);
	free(cc.ok);
	if (stats) {
		stats->stopped_ms = t_resume - t_stop;
		stats->total_ms = now_ms() - t0;
		stats->threads = (unsigned)s->nthreads;
		stats->frames = nframes;
		stats->reads = (unsigned)(ip->reads - reads0);
	}
	*out = s;
	return 0;
fail:
	free(cc.codes);
	free(cc.ok);
	inspect_snapshot__free(s);
	return err;
}
