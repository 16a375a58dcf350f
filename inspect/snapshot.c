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

/* Decoded code objects, one per address seen in this snapshot (frames of
 * one recursion share theirs). Blocks never move once handed out. */
#define CODE_BLOCK 64
struct code_block {
	struct code_block *next;
	size_t n;
	struct inspect_code codes[CODE_BLOCK];
	bool ok[CODE_BLOCK];
};

/* A code object's local names and kinds, read once for all its frames
 * (a recursion or a pool of workers repeats them). */
struct local_names {
	struct local_names *next;
	const struct inspect_code *code;
	uint32_t n;
	char **name; /* NULL entry: unreadable, shown as <local N> */
	uint8_t *kind;
};

/* Type names by type object, read once (a dump shows few types). */
#define TYPE_CACHE 64
struct type_name {
	uint64_t type;
	char name[64];
};

struct inspect_snapshot {
	size_t nthreads, cap;
	struct inspect_snap_thread *threads;
	size_t nbreaks, bcap;
	struct inspect_thread *breaks;
	uint64_t gil_holder;
	int gil_known;
	struct code_block *codes;
	struct local_names *locals; /* decode only */
	struct type_name types[TYPE_CACHE];
	size_t ntypes;
};

size_t inspect_snapshot__nthreads(const struct inspect_snapshot *s)
{
	return s->nthreads;
}

const struct inspect_snap_thread *inspect_snapshot__thread(const struct inspect_snapshot *s,
							   size_t i)
{
	return i < s->nthreads ? &s->threads[i] : NULL;
}

size_t inspect_snapshot__nbreaks(const struct inspect_snapshot *s)
{
	return s->nbreaks;
}

const struct inspect_thread *inspect_snapshot__break(const struct inspect_snapshot *s, size_t i)
{
	return i < s->nbreaks ? &s->breaks[i] : NULL;
}

static const char *errtext(int err)
{
	switch (err) {
	case -EFAULT:
		return "unreadable";
	case -EINVAL:
		return "fails validation";
	default:
		return strerror(-err);
	}
}

void inspect_snap_thread__why(const struct inspect_snap_thread *t, char *buf, size_t cap)
{
	unsigned long long at = (unsigned long long)t->walk_at;
	if (t->raw.err)
		snprintf(buf, cap, "thread state 0x%llx: cframe 0x%llx %s: frames not shown",
			 (unsigned long long)t->raw.tstate, (unsigned long long)t->raw.cframe,
			 errtext(t->raw.err));
	else if (t->walk_err == -ELOOP)
		snprintf(buf, cap,
			 "frame chain ends early: it loops back to frame 0x%llx (corrupt)", at);
	else if (t->walk_err == -E2BIG)
		snprintf(buf, cap, "frame chain ends early: over %d frames, the rest not shown",
			 INSPECT_MAX_FRAMES);
	else if (t->walk_err)
		snprintf(buf, cap, "frame chain ends early: frame 0x%llx %s", at,
			 errtext(t->walk_err));
	else if (cap)
		buf[0] = 0;
}

void inspect_snap_break__why(const struct inspect_thread *b, char *buf, size_t cap)
{
	unsigned long long ts = (unsigned long long)b->tstate;
	long long id = (long long)b->interp_id;
	if (b->err == -ELOOP)
		snprintf(buf, cap,
			 "thread list of interpreter %lld loops back to thread state 0x%llx "
			 "(corrupt): each thread shown once",
			 id, ts);
	else if (b->err == -E2BIG)
		snprintf(buf, cap, "over 4096 thread states: the rest not shown");
	else if (b->err == -EINVAL)
		snprintf(buf, cap,
			 "thread list of interpreter %lld links to 0x%llx, no thread state of it "
			 "(corrupt): the threads after it not shown",
			 id, ts);
	else
		snprintf(buf, cap,
			 "thread list of interpreter %lld links to 0x%llx, %s: the threads after "
			 "it not shown",
			 id, ts, errtext(b->err));
}

static void thread_free(struct inspect_snap_thread *t)
{
	for (size_t j = 0; j < t->nframes; j++) {
		for (size_t k = 0; k < t->frames[j].nlocals; k++) {
			free(t->frames[j].locals[k].name);
			free(t->frames[j].locals[k].repr);
		}
		free(t->frames[j].locals);
	}
	free(t->frames);
}

int inspect_snapshot__keep_thread(struct inspect_snapshot *s, uint64_t native_id)
{
	size_t keep = s->nthreads;
	for (size_t i = 0; i < s->nthreads; i++)
		if (s->threads[i].raw.native_id == native_id)
			keep = i;
	if (keep == s->nthreads)
		return -ENOENT;
	for (size_t i = 0; i < s->nthreads; i++)
		if (i != keep)
			thread_free(&s->threads[i]);
	s->threads[0] = s->threads[keep];
	s->nthreads = 1;
	return 0;
}

void inspect_snapshot__free(struct inspect_snapshot *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nthreads; i++)
		thread_free(&s->threads[i]);
	free(s->threads);
	free(s->breaks);
	while (s->locals) {
		struct local_names *l = s->locals;
		s->locals = l->next;
		for (uint32_t i = 0; i < l->n; i++)
			free(l->name[i]);
		free(l->name);
		free(l->kind);
		free(l);
	}
	while (s->codes) {
		struct code_block *b = s->codes;
		s->codes = b->next;
		free(b);
	}
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
		return errno == ENOENT ? inspect__fail(ip, -ESRCH, "process exited during the dump")
				       : inspect__fail(ip, -errno, "%s: %s", path, strerror(errno));
	int err = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "State:", 6)) {
			const char *p = line + 6;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == 'T')
				err = inspect__fail(ip, -EAGAIN,
						    "process is stopped (SIGSTOP); "
						    "resume it with kill -CONT %d",
						    (int)ip->pid);
			else if (*p == 'Z' || *p == 'X')
				err = inspect__fail(ip, -ESRCH, "process exited during the dump");
		} else if (!strncmp(line, "TracerPid:", 10)) {
			long tracer = strtol(line + 10, NULL, 10);
			if (tracer != 0 && tracer != (long)getpid() && !err)
				err = inspect__fail(ip, -EBUSY, "already traced by pid %ld",
						    tracer);
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

/* Copy a thread's data-stack chunks in one read each: the frames it owns
 * live there, so the walk then costs no system call per frame. A chunk's
 * used part ends at tstate->datastack_top for the current chunk and at
 * data[chunk->top] for the previous ones (Python/pystate.c, push_chunk). */
#define MAX_CHUNKS 256
#define MAX_CHUNK_BYTES (4u << 20)

static void prefetch_stack(struct inspect_proc *ip, const struct inspect_thread *t)
{
	const struct inspect_offsets *o = &ip->off;
	uint64_t chunk = t->datastack_chunk, top = t->datastack_top;
	if (o->sc_previous < 0 || o->sc_top < 0 || o->sc_data < 0)
		return;
	for (int n = 0; chunk && n < MAX_CHUNKS; n++) {
		if (top < chunk + (uint64_t)o->sc_data || top - chunk > MAX_CHUNK_BYTES ||
		    inspect__prefetch(ip, chunk, (size_t)(top - chunk)))
			return;
		uint64_t prev = 0, ptop = 0;
		if (inspect__read_u64(&ip->reader, chunk + (uint64_t)o->sc_previous, &prev) ||
		    !prev || inspect__read_u64(&ip->reader, prev + (uint64_t)o->sc_top, &ptop) ||
		    ptop > MAX_CHUNK_BYTES / 8)
			return;
		chunk = prev;
		top = prev + (uint64_t)o->sc_data + 8 * ptop;
	}
}

static int addr_cmp(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;
	if (x[0] != y[0])
		return x[0] < y[0] ? -1 : 1;
	return x[1] < y[1] ? -1 : x[1] > y[1];
}

/* A walk that found a loop may have taken the loop's frames twice
 * (inspect_frames__next): keep the frames up to the first one seen
 * before, and say where the chain loops back to. */
static int trim_loop(struct inspect_snap_thread *st)
{
	size_t n = st->nframes, cut = n;
	uint64_t(*v)[2] = malloc((n ? n : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		v[i][0] = st->frames[i].raw.addr;
		v[i][1] = i;
	}
	qsort(v, n, sizeof(*v), addr_cmp);
	for (size_t i = 1; i < n; i++)
		if (v[i][0] == v[i - 1][0] && v[i][1] < cut)
			cut = (size_t)v[i][1]; /* a second sighting */
	free(v);
	st->nframes = cut;
	st->walk_at = cut ? st->frames[cut - 1].raw.previous : st->raw.current_frame;
	return 0;
}

static bool thread_listed(const struct inspect_snapshot *s, uint64_t tstate)
{
	for (size_t i = 0; i < s->nthreads; i++)
		if (s->threads[i].raw.tstate == tstate)
			return true;
	return false;
}

/* Stopped phase: copy thread states and frames. A bad thread state or
 * frame is marked where it is (inspect.h), never the end of the dump. */
static int copy_stacks(struct inspect_proc *ip, struct inspect_snapshot *s)
{
	struct inspect_thread_iter it;
	struct inspect_thread t;
	int r, err = inspect_threads__begin(ip, &it);
	if (err)
		return err;
	s->gil_known = inspect_proc__gil_holder(ip, &s->gil_holder) == 0;
	while ((r = inspect_threads__next(&it, &t)) == 1) {
		if (t.broken_link) {
			uint8_t probe;
			if (t.err == -EFAULT &&
			    attach_proc__read(ip->ap, ip->runtime, &probe, 1) == -ESRCH)
				return inspect__fail(ip, -ESRCH, "process exited during the dump");
			if ((err = grow((void **)&s->breaks, &s->bcap, s->nbreaks + 1,
					sizeof(*s->breaks))))
				return err;
			s->breaks[s->nbreaks++] = t;
			continue;
		}
		/* A thread-list cycle: its thread states come round again
		 * before the iterator tells. */
		if (thread_listed(s, t.tstate))
			continue;
		if ((err = grow((void **)&s->threads, &s->cap, s->nthreads + 1,
				sizeof(*s->threads))))
			return err;
		struct inspect_snap_thread *st = &s->threads[s->nthreads++];
		size_t fcap = 0;
		st->raw = t;
		st->holds_gil = s->gil_known && s->gil_holder == t.tstate;
		if (t.err)
			continue;
		struct inspect_frame_iter fit;
		struct inspect_frame f;
		prefetch_stack(ip, &t);
		inspect_frames__begin(ip, t.current_frame, &fit);
		while ((r = inspect_frames__next(&fit, &f)) == 1) {
			if ((err = grow((void **)&st->frames, &fcap, st->nframes + 1,
					sizeof(*st->frames))))
				return err;
			st->frames[st->nframes++].raw = f;
			/* Generator frames live in their generator object, outside
			 * the data stack: copy their locals now too. */
			if (f.owner != INSPECT_OWNED_BY_THREAD && f.nlocalsplus > 0) {
				uint32_t n = f.nlocalsplus < INSPECT_MAX_LOCALS_SHOWN
						     ? (uint32_t)f.nlocalsplus
						     : INSPECT_MAX_LOCALS_SHOWN;
				inspect__prefetch(ip, f.localsplus_addr, 8 * (size_t)n);
			}
		}
		if (r == -ESRCH)
			return inspect__fail(ip, -ESRCH, "process exited during the dump");
		st->walk_err = r;
		st->walk_at = st->nframes ? st->frames[st->nframes - 1].raw.previous
					  : t.current_frame;
		if (r == -ELOOP && (err = trim_loop(st)))
			return err;
	}
	if (r == -ESRCH || (r < 0 && attach_proc__read(ip->ap, ip->runtime, &t, 1) == -ESRCH))
		return inspect__fail(ip, -ESRCH, "process exited during the dump");
	return r < 0 ? r : 0;
}

/* After the decode: a target that exited meanwhile gave a partial view. */
static bool proc_gone(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = 0;
	const char *p = strrchr(buf, ')');
	return !p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X';
}

/* Names from Python's threading module: sys.modules['threading']._active
 * maps get_ident() to Thread objects, whose _name is an instance
 * attribute. Threads it does not know keep their comm. Best effort: any
 * unreadable step leaves the comm names. */
static void python_thread_names(struct inspect_proc *ip, struct inspect_snapshot *s)
{
	const struct inspect_reader *r = &ip->reader;
	const struct inspect_offsets *o = &ip->off;
	uint64_t modules, threading, md, active;
	enum { MAX_ACTIVE = 4096 };
	if (!s->nthreads || o->is_modules < 0 || o->mod_dict < 0 ||
	    inspect__read_u64(r, s->threads[0].raw.interp + (uint64_t)o->is_modules, &modules) ||
	    inspect_dict__get(r, modules, "threading", &threading) ||
	    inspect__read_u64(r, threading + (uint64_t)o->mod_dict, &md) ||
	    inspect_dict__get(r, md, "_active", &active))
		return;
	uint64_t *k = malloc(MAX_ACTIVE * sizeof(uint64_t)),
		 *v = malloc(MAX_ACTIVE * sizeof(uint64_t));
	size_t n = 0;
	if (k && v && inspect_dict__items(r, active, k, v, MAX_ACTIVE, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			uint64_t ident, nameobj;
			bool neg;
			if (inspect_long__read(r, k[i], &ident, &neg) || neg)
				continue;
			for (size_t j = 0; j < s->nthreads; j++) {
				struct inspect_snap_thread *t = &s->threads[j];
				char name[sizeof(t->name)];
				if (t->raw.thread_id == ident &&
				    inspect_object__attr(r, v[i], "_name", &nameobj) == 0 &&
				    inspect_str__read(r, nameobj, name, sizeof(name)) == 0)
					memcpy(t->name, name, sizeof(name));
			}
		}
	}
	free(k);
	free(v);
}

static void thread_name(struct inspect_proc *ip, struct inspect_snap_thread *t)
{
	char path[96];
	snprintf(t->comm, sizeof(t->comm), "?");
	snprintf(path, sizeof(path), "/proc/%d/task/%llu/comm", (int)ip->pid,
		 (unsigned long long)t->raw.native_id);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, t->comm, sizeof(t->comm) - 1);
		close(fd);
		if (n > 0) {
			t->comm[n] = 0;
			t->comm[strcspn(t->comm, "\n")] = 0;
		} else {
			snprintf(t->comm, sizeof(t->comm), "?");
		}
	}
	memcpy(t->name, t->comm, sizeof(t->name));
}

/* The decoded code object at addr: NULL if it is not a readable code
 * object; *oom set when allocation failed. Linear in distinct code objects
 * of this snapshot, which stay few (a stack repeats its functions). */
static const struct inspect_code *snap_code(struct inspect_proc *ip, struct inspect_snapshot *s,
					    uint64_t addr, bool *oom)
{
	for (struct code_block *b = s->codes; b; b = b->next)
		for (size_t i = 0; i < b->n; i++)
			if (b->codes[i].addr == addr)
				return b->ok[i] ? &b->codes[i] : NULL;
	struct code_block *b = s->codes;
	if (!b || b->n == CODE_BLOCK) {
		b = calloc(1, sizeof(*b));
		if (!b) {
			*oom = true;
			return NULL;
		}
		b->next = s->codes;
		s->codes = b;
	}
	size_t i = b->n++;
	b->ok[i] = inspect_code__read(&ip->reader, addr, &b->codes[i]) == 0;
	b->codes[i].addr = addr;
	return b->ok[i] ? &b->codes[i] : NULL;
}

/* The names and kinds of code's first n locals, read at its first frame. */
static struct local_names *local_names(struct inspect_proc *ip, struct inspect_snapshot *s,
				       const struct inspect_code *code, uint32_t n)
{
	struct local_names *l;
	for (l = s->locals; l; l = l->next)
		if (l->code == code && l->n >= n)
			return l;
	if (!(l = calloc(1, sizeof(*l))) || !(l->name = calloc(n, sizeof(*l->name))) ||
	    !(l->kind = calloc(n, 1))) {
		if (l)
			free(l->name);
		free(l);
		return NULL;
	}
	l->code = code;
	l->n = n;
	l->next = s->locals;
	s->locals = l;
	for (uint32_t i = 0; i < n; i++) {
		char name[128];
		if (inspect_code__local(&ip->reader, code, (int32_t)i, name, sizeof(name),
					&l->kind[i]) == 0 &&
		    !(l->name[i] = strdup(name)))
			return NULL;
	}
	return l;
}

static void type_name(struct inspect_proc *ip, struct inspect_snapshot *s, uint64_t v, char *buf,
		      size_t len)
{
	uint64_t type;
	snprintf(buf, len, "?");
	if (inspect__obj_type(&ip->reader, v, &type))
		return;
	for (size_t i = 0; i < s->ntypes; i++)
		if (s->types[i].type == type) {
			snprintf(buf, len, "%s", s->types[i].name);
			return;
		}
	if (inspect__type_name(&ip->reader, type, buf, len) == 0 && s->ntypes < TYPE_CACHE &&
	    strlen(buf) < sizeof(s->types[0].name)) {
		s->types[s->ntypes].type = type;
		snprintf(s->types[s->ntypes++].name, sizeof(s->types[0].name), "%s", buf);
	}
}

static int decode_locals(struct inspect_proc *ip, struct inspect_snapshot *s,
			 struct inspect_snap_frame *sf, const struct inspect_limits *lim)
{
	const struct inspect_reader *r = &ip->reader;
	uint64_t slots[INSPECT_MAX_LOCALS_SHOWN];
	uint32_t n = (uint32_t)sf->raw.nlocalsplus;
	if (n > INSPECT_MAX_LOCALS_SHOWN)
		n = INSPECT_MAX_LOCALS_SHOWN;
	if (!n || inspect_frame__slots(ip, &sf->raw, 0, n, slots))
		return 0;
	sf->locals = calloc(n, sizeof(*sf->locals));
	struct local_names *ln = sf->locals ? local_names(ip, s, sf->code, n) : NULL;
	if (!ln)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		char name[128];
		uint8_t kind = ln->kind[i];
		uint64_t v = slots[i];
		if (!v)
			continue; /* unbound */
		if (ln->name[i])
			snprintf(name, sizeof(name), "%s", ln->name[i]);
		else
			snprintf(name, sizeof(name), "<local %u>", i);
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
		struct inspect_str str = { 0 };
		int err = inspect_value__repr(r, v, lim, &str);
		if (err) {
			inspect_str__free(&str);
			return err;
		}
		l->repr = str.p;
		l->name = strdup(name);
		if (!l->name)
			return -ENOMEM;
		l->kind = kind;
		type_name(ip, s, v, l->type, sizeof(l->type));
		sf->nlocals++;
	}
	return 0;
}

int inspect_proc__snapshot(struct inspect_proc *ip, unsigned flags,
			   const struct inspect_limits *lim, struct inspect_snapshot **out,
			   struct inspect_snap_stats *stats)
{
	static const struct inspect_limits dflt = INSPECT_LIMITS_DEFAULT;
	struct inspect_snapshot *s = calloc(1, sizeof(*s));
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
			inspect__fail(ip, err, "cannot stop threads: %s",
				      attach_proc__error(ip->ap));
		goto fail;
	}
	double t_seized = now_ms();
	unsigned long reads_before_copy = ip->reads;
	err = copy_stacks(ip, s);
	unsigned long copy_reads = ip->reads - reads_before_copy;
	inspect__drop_prefetch(ip);
	double t_copied = now_ms();
	int rel = attach_proc__release_all(ip->ap);
	t_resume = now_ms();
	if (!err && rel) {
		if (rel == -ESRCH)
			err = inspect__fail(ip, -ESRCH, "process exited during the dump");
		else
			err = inspect__fail(ip, rel, "cannot resume threads: %s",
					    attach_proc__error(ip->ap));
	}
	if (err)
		goto fail;

	/* Running again: decode. Frame memory (and so local variable slots)
	 * still comes from the copies taken while stopped; the rest through a
	 * page cache that lives for this decode only. */
	unsigned nframes = 0;
	struct {
		uint64_t code;
		int32_t lasti;
		int line;
	} lines[16] = { { 0, 0, 0 } };
	if ((err = inspect__page_cache_on(ip)))
		goto fail;
	for (size_t i = 0; i < s->nthreads; i++) {
		struct inspect_snap_thread *t = &s->threads[i];
		thread_name(ip, t);
		for (size_t j = 0; j < t->nframes; j++, nframes++) {
			struct inspect_snap_frame *sf = &t->frames[j];
			bool oom = false;
			sf->code = snap_code(ip, s, sf->raw.code, &oom);
			sf->line = -1;
			if (oom) {
				err = -ENOMEM;
				goto fail;
			}
			if (!sf->code)
				continue;
			/* A recursion repeats (code, instruction): its line once. */
			size_t slot = (size_t)((sf->raw.code >> 4) ^ (uint32_t)sf->raw.lasti) % 16;
			if (lines[slot].code == sf->raw.code &&
			    lines[slot].lasti == sf->raw.lasti) {
				sf->line = lines[slot].line;
			} else {
				if (inspect_code__line(&ip->reader, sf->code, sf->raw.lasti,
						       &sf->line))
					sf->line = -1;
				lines[slot].code = sf->raw.code;
				lines[slot].lasti = sf->raw.lasti;
				lines[slot].line = sf->line;
			}
			if ((flags & INSPECT_SNAP_LOCALS) && (err = decode_locals(ip, s, sf, lim)))
				goto fail;
		}
	}
	python_thread_names(ip, s);
	inspect__drop_prefetch(ip);
	inspect__page_cache_off(ip);
	if (proc_gone(ip->pid)) {
		err = inspect__fail(ip, -ESRCH, "process exited during the dump");
		goto fail;
	}
	if (stats) {
		stats->stopped_ms = t_resume - t_stop;
		stats->seize_ms = t_seized - t_stop;
		stats->copy_ms = t_copied - t_seized;
		stats->release_ms = t_resume - t_copied;
		stats->total_ms = now_ms() - t0;
		stats->threads = (unsigned)s->nthreads;
		stats->frames = nframes;
		stats->reads = (unsigned)(ip->reads - reads0);
		stats->copy_reads = (unsigned)copy_reads;
	}
	*out = s;
	return 0;
fail:
	inspect__drop_prefetch(ip);
	inspect__page_cache_off(ip);
	inspect_snapshot__free(s);
	return err;
}
