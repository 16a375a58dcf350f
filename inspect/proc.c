/* inspect/proc.c: open a live CPython 3.11, resolve its layout, walk its
 * interpreters, thread states and frames.
 *
 * docs/design.md §2: _PyRuntime from .dynsym plus the load bias,
 * Py_Version checked, offsets from DWARF (own .debug_info, build-id file,
 * .gnu_debuglink, build-time probe), validated before trusted.
 */
#include "inspect/inspect-priv.h"
#include "attach/attach.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Remote pointers are read as 8 bytes into uint64_t: x86-64 only. */
_Static_assert(sizeof(void *) == 8, "inspect reads 64-bit targets from a 64-bit host");

#define MAX_THREADS 4096
#define MAX_INTERPS 256

int inspect__fail(struct inspect_proc *ip, int err, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(ip->err, sizeof(ip->err), "inspect: pid %d: ", (int)ip->pid);
	if (n < 0 || (size_t)n >= sizeof(ip->err))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(ip->err + n, sizeof(ip->err) - (size_t)n, fmt, ap);
	va_end(ap);
	return err;
}

#define INSPECT_PREFETCH_MAX (64u << 20)

static int proc_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	struct inspect_proc *ip = ctx;
	size_t last = ip->last_region < ip->nregions ? ip->last_region : 0;
	for (size_t k = 0; k < ip->nregions; k++) {
		/* The region of the last hit first (swapped with the first):
		 * a frame walk stays in one. */
		size_t i = k == 0 ? last : k == last ? 0 : k;
		const struct inspect_region *g = &ip->regions[i];
		if (addr >= g->addr && addr - g->addr <= g->len &&
		    len <= g->len - (addr - g->addr)) {
			memcpy(buf, g->buf + (addr - g->addr), len);
			ip->last_region = i;
			return 0;
		}
	}
	if (ip->pages && len <= INSPECT_PAGE) {
		/* At most two pages; a page that cannot be read whole (the end of
		 * a mapping) falls back to the exact read below. */
		uint8_t *out = buf;
		uint64_t a = addr;
		size_t left = len;
		while (left) {
			uint64_t pa = a & ~(uint64_t)(INSPECT_PAGE - 1);
			struct inspect_page *pg = &ip->pages[(pa / INSPECT_PAGE) % INSPECT_NPAGES];
			if (pg->addr != pa + 1) {
				ip->reads++;
				if (attach_proc__read(ip->ap, pa, pg->data, INSPECT_PAGE)) {
					pg->addr = 0;
					break;
				}
				pg->addr = pa + 1;
			}
			size_t off = (size_t)(a - pa), n = INSPECT_PAGE - off;
			if (n > left)
				n = left;
			memcpy(out, pg->data + off, n);
			out += n;
			a += n;
			left -= n;
		}
		if (!left)
			return 0;
	}
	ip->reads++;
	return attach_proc__read(ip->ap, addr, buf, len);
}

int inspect__page_cache_on(struct inspect_proc *ip)
{
	if (!ip->pages)
		ip->pages = attach_cache__alloc(INSPECT_NPAGES * sizeof(*ip->pages),
						&ip->pages_mem);
	return ip->pages ? 0 : -ENOMEM;
}

void inspect__page_cache_off(struct inspect_proc *ip)
{
	attach_cache__free(&ip->pages_mem);
	ip->pages = NULL;
}

/* Symbols the value decoders recognise; each is optional. */
static void find_types(struct inspect_proc *ip)
{
	static const struct {
		const char *sym;
		size_t slot;
	} syms[] = {
		{ "_Py_NoneStruct", offsetof(struct inspect_types, none) },
		{ "_Py_TrueStruct", offsetof(struct inspect_types, true_obj) },
		{ "_Py_FalseStruct", offsetof(struct inspect_types, false_obj) },
		{ "_Py_EllipsisObject", offsetof(struct inspect_types, ellipsis) },
		{ "PyLong_Type", offsetof(struct inspect_types, type_long) },
		{ "PyBool_Type", offsetof(struct inspect_types, type_bool) },
		{ "PyFloat_Type", offsetof(struct inspect_types, type_float) },
		{ "PyUnicode_Type", offsetof(struct inspect_types, type_str) },
		{ "PyBytes_Type", offsetof(struct inspect_types, type_bytes) },
		{ "PyTuple_Type", offsetof(struct inspect_types, type_tuple) },
		{ "PyList_Type", offsetof(struct inspect_types, type_list) },
		{ "PyDict_Type", offsetof(struct inspect_types, type_dict) },
		{ "PySet_Type", offsetof(struct inspect_types, type_set) },
		{ "PyFrozenSet_Type", offsetof(struct inspect_types, type_frozenset) },
		{ "PyCode_Type", offsetof(struct inspect_types, type_code) },
		{ "PyCell_Type", offsetof(struct inspect_types, type_cell) },
		{ "PyGen_Type", offsetof(struct inspect_types, type_gen) },
		{ "PyCoro_Type", offsetof(struct inspect_types, type_coro) },
		{ "PyAsyncGen_Type", offsetof(struct inspect_types, type_asyncgen) },
		{ "PyFunction_Type", offsetof(struct inspect_types, type_func) },
		{ "PyComplex_Type", offsetof(struct inspect_types, type_complex) },
		{ "PyType_Type", offsetof(struct inspect_types, type_type) },
		{ "PyMemberDescr_Type", offsetof(struct inspect_types, type_member_descr) },
	};
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		uint64_t addr = 0, size = 0;
		if (attach_elf__symbol(ip->elf, syms[i].sym, &addr, &size))
			addr = 0;
		memcpy((char *)&ip->types + syms[i].slot, &addr, sizeof(addr));
	}
	/* _PySet_Dummy is a pointer variable holding the dummy key's address. */
	uint64_t p = 0, size = 0, v = 0;
	if (!attach_elf__symbol(ip->elf, "_PySet_Dummy", &p, &size) &&
	    !attach_proc__read(ip->ap, p, &v, sizeof(v)))
		ip->types.set_dummy = v;
}

/* Which of docs/design.md §2's sources attach_elf__debug_file() picked: the object
 * itself (same file, maybe through /proc/PID/map_files), a build-id file,
 * or else the .gnu_debuglink target. */
static enum inspect_source classify(struct inspect_proc *ip, const char *dbg_path)
{
	char own[4200];
	struct stat a, b;
	if (strstr(dbg_path, "/.build-id/"))
		return INSPECT_SRC_BUILD_ID;
	snprintf(own, sizeof(own), "/proc/%d/root%s", (int)ip->pid, attach_elf__path(ip->elf));
	if (strcmp(dbg_path, attach_elf__path(ip->elf)) == 0 || strstr(dbg_path, "/map_files/") ||
	    (stat(own, &a) == 0 && stat(dbg_path, &b) == 0 && a.st_dev == b.st_dev &&
	     a.st_ino == b.st_ino))
		return INSPECT_SRC_OWN;
	return INSPECT_SRC_DEBUGLINK;
}

static void say(const struct inspect_opts *opts, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void say(const struct inspect_opts *opts, const char *fmt, ...)
{
	va_list ap;
	if (!opts || !opts->verbose)
		return;
	va_start(ap, fmt);
	vfprintf(opts->verbose, fmt, ap);
	va_end(ap);
	fputc('\n', opts->verbose);
}

static int resolve_layout(struct inspect_proc *ip, const struct inspect_opts *opts)
{
	const char *build_id = attach_elf__build_id(ip->elf);
	char cache_dir[4096] = "";
	const char *missing = NULL;
	char err[512] = "";
	int have_cache = !(opts && opts->no_cache) && build_id[0] &&
			 (opts && opts->cache_dir
				  ? snprintf(cache_dir, sizeof(cache_dir), "%s", opts->cache_dir) >
					    0
				  : inspect_offsets__cache_dir(cache_dir, sizeof(cache_dir)) == 0);

	int cr = have_cache
			 ? inspect_offsets__cache_load(cache_dir, build_id, &ip->off, &ip->source)
			 : -ENOENT;
	if (cr == -EBADMSG)
		say(opts, "inspect: pid %d: layout cache entry for %s is damaged or stale: ignored",
		    (int)ip->pid, build_id);
	if (cr == 0) {
		snprintf(ip->source_path, sizeof(ip->source_path), "%s/offsets-%s.bin", cache_dir,
			 build_id);
		say(opts, "inspect: pid %d: layout from cache %s (first resolved from the %s)",
		    (int)ip->pid, ip->source_path, inspect_source__name(ip->source));
		return 0;
	}
	const char *dbg = NULL;
	int r = attach_elf__debug_file(ip->elf, &dbg);
	if (r == 0 && dbg) {
		enum inspect_source src = classify(ip, dbg);
		r = inspect_offsets__from_dwarf(dbg, &ip->off, err, sizeof(err));
		if (r == 0 && inspect_offsets__check(&ip->off, &missing) == 0) {
			ip->source = src;
			snprintf(ip->source_path, sizeof(ip->source_path), "%s", dbg);
			say(opts, "inspect: pid %d: layout from %s: %s", (int)ip->pid,
			    inspect_source__name(src), dbg);
		} else {
			say(opts, "inspect: pid %d: %s: unusable DWARF (%s)", (int)ip->pid, dbg,
			    r ? err : missing);
		}
	} else {
		say(opts,
		    "inspect: pid %d: no DWARF for %s (no .debug_info, build-id or debuglink file)",
		    (int)ip->pid, attach_elf__path(ip->elf));
	}
	if (ip->source == INSPECT_SRC_NONE) {
		/* The probe describes the installed 3.11 headers; 3.11 keeps these
		 * layouts across micro releases, and only 3.11 gets this far. */
		uint32_t pv = inspect_offsets__probe_version();
		if ((pv >> 16) != (ip->version >> 16))
			return inspect__fail(ip, -ENODATA,
					     "no DWARF for %s and the probe table is for %u.%u",
					     attach_elf__path(ip->elf), pv >> 24,
					     (pv >> 16) & 0xff);
		inspect_offsets__from_probe(&ip->off);
		ip->source = INSPECT_SRC_PROBE;
		snprintf(ip->source_path, sizeof(ip->source_path), "probe (headers %u.%u.%u)",
			 pv >> 24, (pv >> 16) & 0xff, (pv >> 8) & 0xff);
		say(opts, "inspect: pid %d: layout from %s (headers %u.%u.%u)", (int)ip->pid,
		    inspect_source__name(ip->source), pv >> 24, (pv >> 16) & 0xff,
		    (pv >> 8) & 0xff);
	}
	if (inspect_offsets__check(&ip->off, &missing))
		return inspect__fail(ip, -ENODATA, "layout incomplete: no %s", missing);
	/* The probe table is built in: caching it would only hide DWARF that
	 * gets installed later. */
	if (have_cache && ip->source != INSPECT_SRC_PROBE) {
		int e = inspect_offsets__cache_store(cache_dir, build_id, &ip->off, ip->source);
		if (e)
			say(opts, "inspect: pid %d: layout cache %s not written: %s", (int)ip->pid,
			    cache_dir, strerror(-e));
	}
	return 0;
}

static int map_attach_err(int err)
{
	return err == -EACCES ? -EPERM : err;
}

int inspect_proc__open(pid_t pid, const struct inspect_opts *opts, struct inspect_proc **out,
		       char *errbuf, size_t errlen)
{
	struct inspect_proc *ip = calloc(1, sizeof(*ip));
	uint64_t size = 0, vaddr = 0;
	int err;
	*out = NULL;
	if (!ip) {
		snprintf(errbuf, errlen, "inspect: pid %d: out of memory", (int)pid);
		return -ENOMEM;
	}
	ip->pid = pid;
	err = attach_proc__open(pid, &ip->ap);
	if (err) {
		if (err == -ESRCH)
			inspect__fail(ip, err, "no such process");
		else if (err == -EPERM || err == -EACCES)
			inspect__fail(ip, -EPERM, "permission denied (%s)",
				      ip->ap ? attach_proc__error(ip->ap)
					     : "cannot read its memory");
		else
			inspect__fail(ip, err, "cannot open: %s", strerror(-err));
		err = map_attach_err(err);
		goto fail;
	}
	/* _PyRuntime lives in libpython when there is one, else in the
	 * executable (Debian's static python3.11). */
	if (attach_proc__find_elf(ip->ap, "libpython3", &ip->elf) ||
	    attach_elf__symbol(ip->elf, "_PyRuntime", &ip->runtime, &size)) {
		ip->elf = NULL;
		err = attach_proc__find_elf(ip->ap, NULL, &ip->elf);
		if (err == -ESRCH) {
			inspect__fail(ip, err, "no such process");
			goto fail;
		}
		if (err == -EPERM || err == -EACCES) {
			err = inspect__fail(ip, -EPERM, "permission denied (%s)",
					    attach_proc__error(ip->ap));
			goto fail;
		}
		if (err || attach_elf__symbol(ip->elf, "_PyRuntime", &ip->runtime, &size)) {
			err = inspect__fail(ip, -ENOEXEC,
					    "not a Python process (no _PyRuntime symbol)");
			goto fail;
		}
	}
	if (attach_elf__symbol(ip->elf, "Py_Version", &vaddr, &size)) {
		err = inspect__fail(ip, -EPROTONOSUPPORT,
				    "Python older than 3.11 (no Py_Version in %s)",
				    attach_elf__path(ip->elf));
		goto fail;
	}
	err = attach_proc__read(ip->ap, vaddr, &ip->version, sizeof(ip->version));
	if (err) {
		inspect__fail(ip, err, "cannot read Py_Version: %s", strerror(-err));
		err = map_attach_err(err);
		goto fail;
	}
	if ((ip->version >> 16) != 0x030b) {
		err = inspect__fail(ip, -EPROTONOSUPPORT,
				    "Python %u.%u.%u is not supported (3.11 only)",
				    ip->version >> 24, (ip->version >> 16) & 0xff,
				    (ip->version >> 8) & 0xff);
		goto fail;
	}
	err = resolve_layout(ip, opts);
	if (err)
		goto fail;
	find_types(ip);
	if (!ip->types.type_code || !ip->types.type_str) {
		err = inspect__fail(ip, -ENOEXEC, "no PyCode_Type/PyUnicode_Type symbols in %s",
				    attach_elf__path(ip->elf));
		goto fail;
	}
	ip->reader.read = proc_read;
	ip->reader.ctx = ip;
	ip->reader.off = &ip->off;
	ip->reader.types = &ip->types;
	*out = ip;
	return 0;
fail:
	snprintf(errbuf, errlen, "%s", ip->err);
	inspect_proc__close(ip);
	return err;
}

int inspect__prefetch(struct inspect_proc *ip, uint64_t addr, size_t len)
{
	if (len == 0)
		return 0;
	if (len > INSPECT_PREFETCH_MAX - ip->region_bytes)
		return -E2BIG;
	if (ip->nregions == ip->cap_regions) {
		size_t n = ip->cap_regions ? 2 * ip->cap_regions : 16;
		struct inspect_region *r = realloc(ip->regions, n * sizeof(*r));
		if (!r)
			return -ENOMEM;
		ip->regions = r;
		ip->cap_regions = n;
	}
	uint8_t *buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	ip->reads++;
	int err = attach_proc__read(ip->ap, addr, buf, len);
	if (err) {
		free(buf);
		return err;
	}
	ip->regions[ip->nregions++] = (struct inspect_region){ addr, len, buf };
	ip->region_bytes += len;
	return 0;
}

void inspect__drop_prefetch(struct inspect_proc *ip)
{
	for (size_t i = 0; i < ip->nregions; i++)
		free(ip->regions[i].buf);
	ip->nregions = 0;
	ip->region_bytes = 0;
}

void inspect_proc__close(struct inspect_proc *ip)
{
	if (!ip)
		return;
	inspect__drop_prefetch(ip);
	inspect__page_cache_off(ip);
	free(ip->regions);
	attach_proc__close(ip->ap);
	free(ip);
}

pid_t inspect_proc__pid(const struct inspect_proc *ip)
{
	return ip->pid;
}
const char *inspect_proc__error(const struct inspect_proc *ip)
{
	return ip->err;
}
struct attach_proc *inspect_proc__attach(struct inspect_proc *ip)
{
	return ip->ap;
}
const struct inspect_offsets *inspect_proc__offsets(const struct inspect_proc *ip)
{
	return &ip->off;
}
const struct inspect_reader *inspect_proc__reader(const struct inspect_proc *ip)
{
	return &ip->reader;
}
uint64_t inspect_proc__runtime(const struct inspect_proc *ip)
{
	return ip->runtime;
}
uint32_t inspect_proc__version(const struct inspect_proc *ip)
{
	return ip->version;
}
const char *inspect_proc__python_path(const struct inspect_proc *ip)
{
	return attach_elf__path(ip->elf);
}

enum inspect_source inspect_proc__source(const struct inspect_proc *ip, const char **path)
{
	if (path)
		*path = ip->source_path;
	return ip->source;
}

/* ---- threads ---- */

int inspect_threads__begin(struct inspect_proc *ip, struct inspect_thread_iter *it)
{
	memset(it, 0, sizeof(*it));
	it->ip = ip;
	int err = inspect__read_u64(&ip->reader, ip->runtime + (uint64_t)ip->off.rt_interp_head,
				    &it->interp);
	if (err)
		return inspect__fail(ip, err, "cannot read _PyRuntime.interpreters.head: %s",
				     strerror(-err));
	if (it->interp &&
	    (err = inspect__read_u64(&ip->reader, it->interp + (uint64_t)ip->off.is_threads_head,
				     &it->next_tstate)))
		return inspect__fail(ip, err, "cannot read interpreter 0x%llx: %s",
				     (unsigned long long)it->interp, strerror(-err));
	return 0;
}

/* Brent's cycle detection (no allocation): addr is compared with a mark
 * that moves to the current address whenever the steps since it reach a
 * span that doubles each time, so a cycle is met within twice its length
 * plus its tail. True when addr is the mark: the chain loops. */
static bool loop_seen(uint64_t *mark, unsigned *span, unsigned *steps, uint64_t addr)
{
	if (addr == *mark)
		return true;
	if (++*steps >= *span) {
		*mark = addr;
		*span = *span ? *span * 2 : 1;
		*steps = 0;
	}
	return false;
}

/* The entry for a bad link to ts (inspect.h): the rest of this
 * interpreter's list is not read. */
static int thread_broken(struct inspect_thread_iter *it, struct inspect_thread *t, uint64_t ts,
			 int err)
{
	memset(t, 0, sizeof(*t));
	t->tstate = ts;
	t->interp = it->interp;
	if (inspect__read(&it->ip->reader, it->interp + (uint64_t)it->ip->off.is_id, &t->interp_id,
			  8))
		t->interp_id = -1;
	t->err = err;
	t->broken_link = true;
	it->next_tstate = 0;
	if (err == -E2BIG)
		it->interp = 0; /* nothing more at all */
	return 1;
}

int inspect_threads__next(struct inspect_thread_iter *it, struct inspect_thread *t)
{
	struct inspect_proc *ip = it->ip;
	const struct inspect_offsets *o = &ip->off;
	uint8_t buf[1024];
	int err;
	while (it->interp && !it->next_tstate) {
		/* Next interpreter. */
		if (++it->ninterps > MAX_INTERPS)
			return inspect__fail(ip, -ELOOP, "more than %d interpreters", MAX_INTERPS);
		if ((err = inspect__read_u64(&ip->reader, it->interp + (uint64_t)o->is_next,
					     &it->interp)))
			return inspect__fail(ip, err, "cannot read interpreter list: %s",
					     strerror(-err));
		if (it->interp &&
		    (err = inspect__read_u64(&ip->reader, it->interp + (uint64_t)o->is_threads_head,
					     &it->next_tstate)))
			return inspect__fail(ip, err, "cannot read interpreter 0x%llx: %s",
					     (unsigned long long)it->interp, strerror(-err));
		it->loop_mark = 0;
		it->loop_span = it->loop_steps = 0;
	}
	if (!it->interp)
		return 0;
	size_t len = (size_t)o->ts_size;
	if (len > sizeof(buf) || len < (size_t)o->ts_native_thread_id + 8)
		return inspect__fail(ip, -EINVAL, "implausible PyThreadState size %zu", len);
	uint64_t ts = it->next_tstate;
	if (loop_seen(&it->loop_mark, &it->loop_span, &it->loop_steps, ts))
		return thread_broken(it, t, ts, -ELOOP);
	if (++it->nthreads > MAX_THREADS)
		return thread_broken(it, t, ts, -E2BIG);
	if ((err = inspect__read(&ip->reader, ts, buf, len)))
		return thread_broken(it, t, ts, err);
	uint64_t interp, cframe;
	memcpy(&interp, buf + o->ts_interp, 8);
	if (interp != it->interp)
		return thread_broken(it, t, ts, -EINVAL);
	memset(t, 0, sizeof(*t));
	t->tstate = ts;
	memcpy(&it->next_tstate, buf + o->ts_next, 8);
	memcpy(&cframe, buf + o->ts_cframe, 8);
	memcpy(&t->thread_id, buf + o->ts_thread_id, 8);
	memcpy(&t->native_id, buf + o->ts_native_thread_id, 8);
	if (o->ts_datastack_chunk >= 0 && o->ts_datastack_top >= 0 &&
	    (size_t)o->ts_datastack_chunk + 8 <= len && (size_t)o->ts_datastack_top + 8 <= len) {
		memcpy(&t->datastack_chunk, buf + o->ts_datastack_chunk, 8);
		memcpy(&t->datastack_top, buf + o->ts_datastack_top, 8);
	}
	t->interp = interp;
	t->cframe = cframe;
	if (inspect__read(&ip->reader, interp + (uint64_t)o->is_id, &t->interp_id, 8))
		t->interp_id = -1;
	if (cframe && (err = inspect__read_u64(&ip->reader, cframe + (uint64_t)o->cf_current_frame,
					       &t->current_frame))) {
		t->current_frame = 0;
		t->err = err;
	}
	return 1;
}

int inspect_proc__gil_holder(struct inspect_proc *ip, uint64_t *tstate)
{
	const struct inspect_offsets *o = &ip->off;
	int32_t locked = 0;
	*tstate = 0;
	if (o->rt_gil_locked < 0 || o->rt_gil_holder < 0)
		return -ENODATA;
	int err = inspect__read(&ip->reader, ip->runtime + (uint64_t)o->rt_gil_locked, &locked, 4);
	if (!err && locked)
		err = inspect__read_u64(&ip->reader, ip->runtime + (uint64_t)o->rt_gil_holder,
					tstate);
	return err;
}

/* ---- frames ---- */

static int read_code_header(struct inspect_proc *ip, uint64_t code, int64_t *nunits,
			    int32_t *nlocalsplus)
{
	const struct inspect_offsets *o = &ip->off;
	uint8_t ch[256];
	uint64_t type;
	int64_t cend = o->co_nlocalsplus + 4;
	if (o->ob_size + 8 > cend)
		cend = o->ob_size + 8;
	if (o->ob_type + 8 > cend)
		cend = o->ob_type + 8;
	if ((size_t)cend > sizeof(ch))
		return -EINVAL;
	int err = inspect__read(&ip->reader, code, ch, (size_t)cend);
	if (err)
		return err;
	memcpy(&type, ch + o->ob_type, 8);
	memcpy(nunits, ch + o->ob_size, 8);
	memcpy(nlocalsplus, ch + o->co_nlocalsplus, 4);
	if (type != ip->types.type_code || *nunits <= 0 || *nunits > (1 << 24) ||
	    *nlocalsplus < 0 || *nlocalsplus > (1 << 16))
		return -EINVAL;
	return 0;
}

static int frame_read(struct inspect_proc *ip, uint64_t addr, struct inspect_frame *f,
		      struct inspect_frame_iter *it)
{
	const struct inspect_offsets *o = &ip->off;
	const struct inspect_reader *r = &ip->reader;
	uint8_t buf[512];
	size_t hdr = (size_t)o->fr_localsplus;
	int err;
	if (hdr > sizeof(buf))
		return -EINVAL;
	memset(f, 0, sizeof(*f));
	f->addr = addr;
	/* Header, then exactly the slots the code object says it has: frames
	 * end where the data stack ends, reading past them may fault. */
	if ((err = inspect__read(r, addr, buf, hdr)))
		return err;
	memcpy(&f->code, buf + o->fr_code, 8);
	memcpy(&f->func, buf + o->fr_func, 8);
	memcpy(&f->globals, buf + o->fr_globals, 8);
	memcpy(&f->builtins, buf + o->fr_builtins, 8);
	memcpy(&f->locals, buf + o->fr_locals, 8);
	memcpy(&f->frame_obj, buf + o->fr_frame_obj, 8);
	memcpy(&f->previous, buf + o->fr_previous, 8);
	memcpy(&f->prev_instr, buf + o->fr_prev_instr, 8);
	memcpy(&f->stacktop, buf + o->fr_stacktop, 4);
	f->is_entry = buf[o->fr_is_entry];
	f->owner = buf[o->fr_owner];
	f->localsplus_addr = addr + (uint64_t)o->fr_localsplus;
	if (f->owner > 2 || f->is_entry > 1)
		return -EINVAL;
	/* The code object: its type, size and local count (checked once a walk). */
	int64_t nunits = -1;
	size_t slot = (size_t)(f->code >> 4) % 8;
	if (it && it->codes[slot].addr == f->code && f->code) {
		nunits = it->codes[slot].nunits;
		f->nlocalsplus = it->codes[slot].nlocalsplus;
	} else if ((err = read_code_header(ip, f->code, &nunits, &f->nlocalsplus))) {
		return err;
	} else if (it) {
		it->codes[slot].addr = f->code;
		it->codes[slot].nunits = nunits;
		it->codes[slot].nlocalsplus = f->nlocalsplus;
	}
	/* prev_instr points into co_code_adaptive; one unit before it when
	 * the frame has not started. */
	uint64_t first = f->code + (uint64_t)o->co_code_adaptive;
	int64_t delta = (int64_t)(f->prev_instr - first);
	if (delta < -2 || delta >= nunits * 2 || (delta & 1))
		return -EINVAL;
	f->lasti = (int32_t)(delta / 2);
	if (f->stacktop < -1 || f->stacktop > (1 << 20))
		return -EINVAL;
	return 0;
}

int inspect_frame__slots(struct inspect_proc *ip, const struct inspect_frame *f, uint32_t first,
			 uint32_t n, uint64_t *slots)
{
	if (f->nlocalsplus < 0 || first > (uint32_t)f->nlocalsplus ||
	    n > (uint32_t)f->nlocalsplus - first)
		return -EINVAL;
	return inspect__read(&ip->reader, f->localsplus_addr + 8 * (uint64_t)first, slots,
			     8 * (size_t)n);
}

int inspect_frame__read(struct inspect_proc *ip, uint64_t addr, struct inspect_frame *f)
{
	return frame_read(ip, addr, f, NULL);
}

int inspect_gen__frame(struct inspect_proc *ip, uint64_t gen, struct inspect_frame *f)
{
	const struct inspect_offsets *o = &ip->off;
	const struct inspect_types *t = &ip->types;
	uint64_t type;
	int8_t state;
	if (o->gen_iframe < 0 || o->gen_frame_state < 0)
		return -ENODATA;
	int err = inspect__read_u64(&ip->reader, gen + (uint64_t)o->ob_type, &type);
	if (err)
		return err;
	if (!type || (type != t->type_gen && type != t->type_coro && type != t->type_asyncgen))
		return -EINVAL;
	if ((err = inspect__read(&ip->reader, gen + (uint64_t)o->gen_frame_state, &state, 1)))
		return err;
	/* pycore_frame.h: CREATED -2, SUSPENDED -1, EXECUTING 0, COMPLETED 1, CLEARED 4. */
	if (state >= 1)
		return -ENOENT;
	if (state < -2)
		return -EINVAL;
	return frame_read(ip, gen + (uint64_t)o->gen_iframe, f, NULL);
}

int inspect_frames__begin(struct inspect_proc *ip, uint64_t first_frame,
			  struct inspect_frame_iter *it)
{
	memset(it, 0, sizeof(*it));
	it->ip = ip;
	it->next = first_frame;
	return 0;
}

int inspect_frames__next(struct inspect_frame_iter *it, struct inspect_frame *f)
{
	if (it->pending)
		return it->pending;
	if (!it->next)
		return 0;
	if (loop_seen(&it->loop_mark, &it->loop_span, &it->loop_steps, it->next))
		return it->pending = -ELOOP;
	if (++it->count > INSPECT_MAX_FRAMES)
		return it->pending = -E2BIG;
	int err = frame_read(it->ip, it->next, f, it);
	if (err)
		return it->pending = err;
	/* A previous pointer equal to the frame itself: this frame is sound,
	 * its link is not. */
	if (f->previous == f->addr)
		it->pending = -ELOOP;
	it->next = f->previous;
	return 1;
}
