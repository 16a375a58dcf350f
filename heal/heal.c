/* heal: crash -> guard -> patch -> store, and stored spec -> patch. This
 * file holds the pipeline object itself (open, close, messages, the store,
 * guard firings); README.md lists the others.
 *
 * Everything the analysis needs is read from the target by inspect/ (the
 * agent never sends code): the failing code object's bytes, tables, names
 * and constants. rewrite/ decides and synthesizes; the diff gate must accept
 * the patch before it is sent; the agent builds the code object from the
 * PATCH parts and installs it on every function sharing the original.
 *
 * The store keeps decisions, never code (docs/formats/store.md). On load the
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
#include "heal/heal-priv.h"
#include "attach/attach.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const struct heal_patched *heal__was_patched(const struct heal *h, uint64_t addr)
{
	for (size_t i = 0; i < h->npatched; i++)
		if (h->patched[i].code_addr == addr)
			return &h->patched[i];
	return NULL;
}

void heal__note_patched(struct heal *h, uint64_t addr, uint32_t offset,
			const struct guard_patch *gp)
{
	if (h->npatched == h->cappatched) {
		size_t nc = h->cappatched ? 2 * h->cappatched : 32;
		struct heal_patched *v = realloc(h->patched, nc * sizeof(*v));
		if (!v)
			return; /* only a nicer message and a late resume are lost */
		h->patched = v;
		h->cappatched = nc;
	}
	h->patched[h->npatched++] = (struct heal_patched){
		.code_addr = addr,
		.offset = offset,
		.fallback_unit = gp->fallback_unit,
		.base_depth = (uint32_t)gp->base_depth,
		.stored = NULL,
	};
}

double heal__now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void heal__defer_begin(struct heal *h)
{
	if (!h->deferred)
		h->deferred = open_memstream(&h->deferred_buf, &h->deferred_len);
}

void heal__deferred_flush(struct heal *h)
{
	if (!h->deferred)
		return;
	fclose(h->deferred);
	h->deferred = NULL;
	if (h->deferred_len) {
		fwrite(h->deferred_buf, 1, h->deferred_len, h->log);
		fflush(h->log);
	}
	free(h->deferred_buf);
	h->deferred_buf = NULL;
	h->deferred_len = 0;
}

void heal__say(struct heal *h, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	memcpy(h->last, line, sizeof(h->last));
	/* One write per line: several tools may share the terminal. */
	FILE *out = h->deferred ? h->deferred : h->log;
	if (h->tag)
		fprintf(out, "[suture] pid %d: %s\n", (int)h->pid, line);
	else
		fprintf(out, "[suture] %s\n", line);
	if (out == h->log)
		fflush(h->log);
}

void heal__note(struct heal *h, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	if (!h->o.quiet) {
		va_start(ap, fmt);
		vsnprintf(line, sizeof(line), fmt, ap);
		va_end(ap);
		heal__say(h, "%s", line);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	memcpy(h->last, line, sizeof(h->last));
}

void heal__set_tag(struct heal *h, bool on)
{
	if (h)
		h->tag = on;
}

void heal_stats__add(struct heal_stats *to, const struct heal_stats *more)
{
	to->crashes += more->crashes;
	to->applied += more->applied;
	to->resumed += more->resumed;
	to->would_apply += more->would_apply;
	to->refused += more->refused;
	to->failed += more->failed;
	to->stale += more->stale;
	to->expired += more->expired;
}

void heal__add_stats(struct heal *h, const struct heal_stats *more)
{
	heal_stats__add(&h->st, more);
}

int heal__open(struct inspect_proc *ip, struct inject_session *s, const struct heal_opts *o,
	       struct heal **out)
{
	struct heal *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->ip = ip;
	heal_pages__init(&h->pages, inspect_proc__reader(ip), &h->cached);
	h->r = &h->cached;
	h->s = s;
	heal_sender__session(&h->sess, s);
	h->send = &h->sess.base;
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
static void take_handled(struct heal *h);

void heal__set_session(struct heal *h, struct inject_session *s)
{
	if (h->s && h->s != s) {
		take_hits(h); /* what the old session received is ours to store */
		take_handled(h);
	}
	h->s = s;
	heal_sender__session(&h->sess, s);
}

void heal__close(struct heal *h)
{
	if (h) {
		heal__flush(h);
		for (size_t i = 0; i < h->nhits; i++)
			free(h->hits[i].name);
		free(h->hits);
		for (size_t i = 0; i < h->nhandled; i++) {
			free(h->handled[i].site);
			free(h->handled[i].exc_type);
		}
		free(h->handled);
		for (size_t i = 0; i < h->nhandled_seen; i++)
			free(h->handled_seen[i]);
		free(h->handled_seen);
		for (size_t i = 0; i < h->npatched; i++)
			free(h->patched[i].stored);
		free(h->patched);
		heal_pages__free(&h->pages);
		heal__deferred_flush(h);
		free(h->pend);
		heal_specs__free(h->pre, h->npre);
	}
	free(h);
}

int heal__open_reports(pid_t pid, struct inject_session *s, const struct heal_opts *o,
		       struct heal **out)
{
	struct heal *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->s = s;
	heal_sender__session(&h->sess, s);
	h->send = &h->sess.base;
	h->o = *o;
	h->log = o->log ? o->log : stderr;
	h->pid = pid;
	if (o->program) {
		snprintf(h->program, sizeof(h->program), "%s", o->program);
		h->o.program = h->program;
	}
	char link[64];
	snprintf(link, sizeof(link), "/proc/%d/cwd", (int)pid);
	ssize_t n = readlink(link, h->cwd, sizeof(h->cwd) - 1);
	h->cwd[n > 0 ? n : 0] = 0;
	*out = h;
	return 0;
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
	if (h->o.quiet)
		return;
	if (h->st.would_apply)
		at += (size_t)snprintf(extra + at, sizeof(extra) - at, ", would apply: %u",
				       h->st.would_apply);
	if (h->st.refused && at < sizeof(extra))
		at += (size_t)snprintf(extra + at, sizeof(extra) - at, ", refused: %u",
				       h->st.refused);
	if (h->st.stale && at < sizeof(extra))
		at += (size_t)snprintf(extra + at, sizeof(extra) - at, ", stale: %u", h->st.stale);
	if (h->st.expired && at < sizeof(extra))
		at += (size_t)snprintf(extra + at, sizeof(extra) - at, ", expired: %u",
				       h->st.expired);
	if (h->st.failed && at < sizeof(extra))
		snprintf(extra + at, sizeof(extra) - at, ", failed: %u", h->st.failed);
	fprintf(out, "[suture] patches applied: %u, already healed: %u%s\n", h->st.applied,
		h->st.loaded, extra);
	fflush(out);
}

void heal__file_key(struct heal *h, const char *file, char *out, size_t cap)
{
	/* Every code object of a module has the same co_filename. */
	if (h->key_of[0] && strcmp(h->key_of, file) == 0) {
		heal_names__copy(out, cap, h->key);
		return;
	}
	heal_names__file_key(h->cwd, file, out, cap);
	if (!file[0] || file[0] == '<')
		return;
	heal_names__copy(h->key_of, sizeof(h->key_of), file);
	heal_names__copy(h->key, sizeof(h->key), out);
}

/* store/ messages become [suture] lines (a missing store is no news). The
 * handles that print here are opened and closed inside one call of ours. */
static void store_said(const char *msg, void *ctx)
{
	struct heal *h = ctx;
	snprintf(h->err, sizeof(h->err), "%s", msg);
}

int heal__open_store(struct heal *h, unsigned flags, struct store **out)
{
	h->err[0] = 0;
	int err = store__open_print(h->o.store_dir, flags, store_said, h, out);
	if (err && err != -ENOENT)
		heal__say(h, "%s", h->err[0] ? h->err : strerror(-err));
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
			continue; /* an unnamed PATCH, or nothing is stored for this run */
		if (h->o.verbose)
			heal__note(h, "guard fired: %s, %llu time(s)", name,
				   (unsigned long long)v[i].count);
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

/* The first report of a (site, type) in this session is a line (and a
 * "handled" event): the application's catch-all handled a crash there. */
static void announce_handled(struct heal *h, const struct wire_handled_entry *e)
{
	char key[WIRE_SITE_MAX + 160];
	snprintf(key, sizeof(key), "%s %s", e->site, e->exc_type);
	for (size_t i = 0; i < h->nhandled_seen; i++)
		if (strcmp(h->handled_seen[i], key) == 0)
			return;
	char **v = realloc(h->handled_seen, (h->nhandled_seen + 1) * sizeof(*v));
	if (!v)
		return;
	h->handled_seen = v;
	if (!(v[h->nhandled_seen] = strdup(key)))
		return;
	h->nhandled_seen++;
	heal__say(h,
		  "handled crash: %s at %s, caught by the application's own catch-all "
		  "(not patched; --heal-handled %s heals it)",
		  e->exc_type, e->site, e->site);
	heal_event__emit(h->o.events, h->pid, "handled", "s:exc_type", e->exc_type, "s:site",
			 e->site, "i:count", (long long)e->count, NULL);
}

/* The handled crashes the session received (HANDLED frames), added to
 * h->handled for the store. */
static void take_handled(struct heal *h)
{
	struct wire_handled_entry *v = NULL;
	size_t n = 0;
	if (!h->s || inject_session__take_handled(h->s, &v, &n) || !n)
		return;
	for (size_t i = 0; i < n; i++) {
		announce_handled(h, &v[i]);
		size_t k = 0;
		while (k < h->nhandled && (strcmp(h->handled[k].site, v[i].site) != 0 ||
					   strcmp(h->handled[k].exc_type, v[i].exc_type) != 0))
			k++;
		if (k == h->nhandled) {
			struct heal_handled *nv = realloc(h->handled, (k + 1) * sizeof(*nv));
			if (!nv)
				break;
			h->handled = nv;
			char *site = strdup(v[i].site), *type = strdup(v[i].exc_type);
			if (!site || !type) {
				free(site);
				free(type);
				break;
			}
			h->handled[h->nhandled++] = (struct heal_handled){ site, type, 0, 0 };
		}
		h->handled[k].count += v[i].count;
		int64_t last = (int64_t)(v[i].last_ms / 1000);
		if (last > h->handled[k].last)
			h->handled[k].last = last;
	}
	free(v);
}

static void flush_handled(struct heal *h)
{
	struct store *st = NULL;
	take_handled(h);
	if (!h->nhandled)
		return;
	if (h->o.program && !h->o.dry_run && !h->o.no_store) {
		struct store_handled *v = calloc(h->nhandled, sizeof(*v));
		if (!v)
			return; /* kept for the next flush */
		for (size_t i = 0; i < h->nhandled; i++)
			v[i] = (struct store_handled){ h->o.program, h->handled[i].site,
						       h->handled[i].exc_type, h->handled[i].count,
						       h->handled[i].last };
		h->err[0] = 0;
		if (h->hit_st) {
			if (store__add_handled(h->hit_st, v, h->nhandled, NULL))
				heal__say(h, "%s", store__error(h->hit_st));
		} else if (heal__open_store(h, STORE_F_LAZY | STORE_F_CREATE, &st) == 0) {
			if (store__add_handled(st, v, h->nhandled, NULL) && h->err[0])
				heal__say(h, "%s", h->err);
			store__close(st);
		}
		free(v);
	}
	for (size_t i = 0; i < h->nhandled; i++) {
		free(h->handled[i].site);
		free(h->handled[i].exc_type);
	}
	h->nhandled = 0;
}

bool heal__opted_in(struct heal *h, const struct wire_crash *ev, char *site, size_t cap)
{
	char file[PATH_MAX], mod[256];
	const char *list = h->o.heal_handled;
	if (!list || !*list)
		return false;
	heal__file_key(h, ev->filename, file, sizeof(file));
	heal_names__module(h->program[0] ? h->program : NULL, file, mod, sizeof(mod));
	snprintf(site, cap, "%s.%s:%u", mod, ev->qualname, ev->line);
	/* The program's sites may also be named by its file's stem. */
	char alt[WIRE_SITE_MAX + 1024] = "";
	if (strcmp(mod, "__main__") == 0) {
		heal_names__module(NULL, file, mod, sizeof(mod));
		snprintf(alt, sizeof(alt), "%s.%s:%u", mod, ev->qualname, ev->line);
	}
	size_t n = strlen(site), na = strlen(alt);
	for (const char *p = list; *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if ((len == n && !strncmp(p, site, n)) || (na && len == na && !strncmp(p, alt, na)))
			return true;
		p += len + (nl ? 1 : 0);
	}
	return false;
}

void heal__flush(struct heal *h)
{
	struct store *st = NULL;
	if (!h)
		return;
	flush_handled(h);
	take_hits(h);
	if (!h->nhits)
		return;
	struct store_hit_count *v = calloc(h->nhits, sizeof(*v));
	if (!v)
		return; /* kept for the next flush */
	for (size_t i = 0; i < h->nhits; i++)
		v[i] = (struct store_hit_count){ h->hits[i].name, h->hits[i].count,
						 h->hits[i].last };
	h->err[0] = 0;
	if (h->hit_st) {
		/* The caller's handle, quiet: its message is kept. */
		if (store__add_hits(h->hit_st, v, h->nhits, NULL))
			heal__say(h, "%s", store__error(h->hit_st));
	} else if (heal__open_store(h, STORE_F_LAZY, &st) == 0) {
		/* Lazy: the transaction reads the index under the lock anyway. */
		if (store__add_hits(st, v, h->nhits, NULL) && h->err[0])
			heal__say(h, "%s", h->err);
		store__close(st);
	}
	free(v);
	for (size_t i = 0; i < h->nhits; i++)
		free(h->hits[i].name);
	h->nhits = 0;
}

/* /proc/PID/<what>, whole (up to cap - 1 bytes, NUL-terminated): its length. */
static ssize_t read_proc(pid_t pid, const char *what, char *buf, size_t cap)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, cap - 1);
	close(fd);
	if (n >= 0)
		buf[n] = 0;
	return n;
}

/* A `python -m NAME` target: the file runpy runs, found as suture-run finds
 * it (heal/cmdline.c: the target's working directory, then its
 * PYTHONPATH), else "-m NAME", the key suture-run uses for it too. */
static int program_of_module(pid_t pid, char *buf, size_t cap)
{
	static char cmd[8192], env[65536];
	char *words[256], cwd[PATH_MAX], file[PATH_MAX], err[256];
	struct heal_cmdline cl;
	size_t nw = 0;
	ssize_t n = read_proc(pid, "cmdline", cmd, sizeof(cmd));
	if (n <= 0)
		return -ENOENT;
	for (char *a = cmd; a < cmd + n && nw < 255; a += strlen(a) + 1)
		words[nw++] = a;
	words[nw] = NULL;
	if (!heal_cmdline__is_python(words[0]) ||
	    heal_cmdline__parse(words, &cl, err, sizeof(err)) || !cl.module)
		return -ENOENT;
	char link[64];
	snprintf(link, sizeof(link), "/proc/%d/cwd", (int)pid);
	ssize_t l = readlink(link, cwd, sizeof(cwd) - 1);
	cwd[l > 0 ? l : 0] = 0;
	const char *dirs[64] = { cwd };
	size_t nd = 1;
	ssize_t ne = read_proc(pid, "environ", env, sizeof(env));
	for (char *e = env; ne > 0 && e < env + ne; e += strlen(e) + 1) {
		if (strncmp(e, "PYTHONPATH=", 11))
			continue;
		for (char *save = NULL, *t = strtok_r(e + 11, ":", &save); t && nd < 63;
		     t = strtok_r(NULL, ":", &save))
			dirs[nd++] = t;
		break;
	}
	dirs[nd] = NULL;
	if (heal_cmdline__module_file(cl.module, dirs, file, sizeof(file)) == 0 &&
	    realpath(file, buf) && strlen(buf) < cap)
		return 0;
	snprintf(buf, cap, "-m %s", cl.module);
	return 0;
}

int heal_program__of_pid(pid_t pid, char *buf, size_t cap)
{
	int rc = attach_pid__script(pid, buf, cap);
	return rc == -ENOENT ? program_of_module(pid, buf, cap) : rc;
}
