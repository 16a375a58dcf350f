/* The store on disk: directory checks, reading the index, transactions under
 * flock, atomic replacement, queries. Format: docs/formats/store.md. */
#include "store/store-priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define INDEX_NAME "index.json"
#define LOCK_NAME "lock"
#define TMP_PREFIX ".index.json.tmp."
/* How long a writer waits for another one before giving up. */
#define LOCK_TIMEOUT_MS 30000

struct store {
	char *dir;          /* as given, for messages and paths */
	char *index_path;   /* dir/index.json, for messages */
	char *lock_path;
	int dirfd;          /* every file is opened relative to this */
	int lockfd;         /* -1 until the first change */
	unsigned flags;
	struct store_index idx;
	/* Which index.json idx was read from (or written as): a transaction
	 * that finds the same file under the lock copies idx instead of
	 * parsing it again. The file is only ever replaced by rename. */
	struct file_id {
		bool valid;
		dev_t dev;
		ino_t ino;
		off_t size;
		struct timespec mtim, ctim;
	} idx_id;
	char err[STORE_ERR_MAX];
	/* Where messages go (store__open_print): the caller's. */
	store_print_fn print;
	void *print_ctx;
};

static struct file_id file_id_of(const struct stat *st)
{
	return (struct file_id){ .valid = true, .dev = st->st_dev, .ino = st->st_ino,
				 .size = st->st_size, .mtim = st->st_mtim, .ctim = st->st_ctim };
}

static bool file_id__same(const struct file_id *a, const struct file_id *b)
{
	return a->valid && b->valid && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
	       a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec;
}

/* A deep copy of idx into *out (empty first); -ENOMEM. */
static int index_dup(const struct store_index *idx, struct store_index *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < idx->n; i++)
		if (store_index__put(out, &idx->v[i])) {
			store_index__free(out);
			return -ENOMEM;
		}
	return 0;
}

/* ---- messages -------------------------------------------------------------- */

static void print_default(const char *msg, void *ctx)
{
	(void)ctx;
	fprintf(stderr, "%s\n", msg);
}

/* Report "store: <object>: <cause>" through s's print function and keep
 * it in s->err. Returns err so callers can "return fail(...)". */
static int fail(struct store *s, int err, const char *obj, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(struct store *s, int err, const char *obj, const char *fmt, ...)
{
	char *cause = NULL, *msg = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&cause, fmt, ap);
	va_end(ap);
	if (n < 0 || asprintf(&msg, "store: %s: %s", obj, cause) < 0) {
		msg = NULL;
		snprintf(s->err, sizeof(s->err), "store: %s: out of memory", obj);
		s->print(s->err, s->print_ctx);
		goto out;
	}
	snprintf(s->err, sizeof(s->err), "%s", msg);
	s->print(msg, s->print_ctx);
out:
	if (n >= 0)
		free(cause);
	free(msg);
	return err;
}

const char *store__error(const struct store *s)
{
	return s ? s->err : "";
}

const char *store__path(const struct store *s)
{
	return s->dir;
}

const char *store__index_path(const struct store *s)
{
	return s->index_path;
}

int64_t store__now(void)
{
	return (int64_t)time(NULL);
}

/* ---- opening ------------------------------------------------------------------ */

static char *join(const char *dir, const char *name)
{
	char *out;

	if (asprintf(&out, "%s/%s", dir, name) < 0)
		return NULL;
	return out;
}

/* Only the caller's user (or root) may be able to change what the store
 * says: a patch swallows exceptions in the caller's programs. */
static int check_owner_mode(struct store *s, const struct stat *st, const char *obj,
			    const char *dirpath)
{
	uid_t me = geteuid();

	if (st->st_uid != me && st->st_uid != 0)
		return fail(s, -EPERM, obj, "owned by uid %u, not by you (uid %u): refusing a "
			    "store another user controls", (unsigned)st->st_uid, (unsigned)me);
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return fail(s, -EPERM, obj, "%s writable (mode %04o): refusing a store other "
			    "users can change; run: chmod go-w %s",
			    (st->st_mode & S_IWOTH) ? "world" : "group",
			    (unsigned)(st->st_mode & 07777), dirpath ? dirpath : obj);
	return 0;
}

static void index_clear(struct store *s)
{
	store_index__free(&s->idx);
}

/* Read and decode the index into *out (empty if there is none); *id says
 * which file that was (invalid: none). When it is the file s->idx came
 * from, s->idx is copied instead (the caller holds the lock, or only
 * reads). */
static int read_index(struct store *s, struct store_index *out, struct file_id *id)
{
	char cause[STORE_ERR_MAX];
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, r;

	struct file_id prev = s->idx_id;   /* id may be &s->idx_id */
	memset(out, 0, sizeof(*out));
	memset(id, 0, sizeof(*id));
	fd = openat(s->dirfd, INDEX_NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno == ELOOP)
			return fail(s, -EPERM, s->index_path, "is a symbolic link: refusing it");
		return fail(s, -errno, s->index_path, "open: %s", strerror(errno));
	}
	if (fstat(fd, &st) < 0) {
		r = fail(s, -errno, s->index_path, "fstat: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = fail(s, -EBADMSG, s->index_path, "not a regular file");
		goto out;
	}
	if ((r = check_owner_mode(s, &st, s->index_path, s->index_path)))
		goto out;
	*id = file_id_of(&st);
	if (file_id__same(id, &prev)) {
		if ((r = index_dup(&s->idx, out)))
			r = fail(s, r, s->index_path, "out of memory");
		goto out;
	}
	if ((size_t)st.st_size > STORE_INDEX_MAX) {
		r = fail(s, -EFBIG, s->index_path, "%lld bytes, more than the %u a store index "
			 "may have", (long long)st.st_size, STORE_INDEX_MAX);
		goto out;
	}
	if (!(buf = malloc((size_t)st.st_size + 1))) {
		r = fail(s, -ENOMEM, s->index_path, "out of memory");
		goto out;
	}
	/* The file is replaced by rename, never written in place: its size
	 * cannot change under us, but read until EOF anyway. */
	while (got <= (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = fail(s, -errno, s->index_path, "read: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got > (size_t)st.st_size) {
		r = fail(s, -EBADMSG, s->index_path, "changed while being read");
		goto out;
	}
	r = store_index__parse(buf, buf + got, out, cause, sizeof(cause));
	if (r)
		memset(id, 0, sizeof(*id));
	if (r == -ENOMEM)
		r = fail(s, r, s->index_path, "out of memory");
	else if (r)
		r = fail(s, r, s->index_path, "%s; the file is kept as it is: move it aside "
			 "(mv %s %s.bad) to start an empty store", cause, s->index_path,
			 s->index_path);
out:
	free(buf);
	close(fd);
	return r;
}

int store__open(const char *path, unsigned flags, struct store **out)
{
	return store__open_print(path, flags, NULL, NULL, out);
}

int store__open_print(const char *path, unsigned flags, store_print_fn fn, void *ctx,
		      struct store **out)
{
	struct store *s;
	struct stat st;
	int r, created = 0;

	*out = NULL;
	if (!path || !*path)
		path = getenv(STORE_ENV);
	if (!path || !*path)
		path = STORE_DEFAULT_DIR;
	if (!fn) {
		fn = print_default;
		ctx = NULL;
	}
	if (!(s = calloc(1, sizeof(*s)))) {
		char msg[STORE_ERR_MAX];
		snprintf(msg, sizeof(msg), "store: %s: out of memory", path);
		fn(msg, ctx);
		return -ENOMEM;
	}
	s->print = fn;
	s->print_ctx = ctx;
	s->dirfd = -1;
	s->lockfd = -1;
	s->flags = flags;
	if (!(s->dir = strdup(path))) {
		r = fail(s, -ENOMEM, path, "out of memory");
		goto err;
	}
	/* "x/.suture/" and "x/.suture" are one store: keep messages tidy. */
	for (size_t n = strlen(s->dir); n > 1 && s->dir[n - 1] == '/'; n--)
		s->dir[n - 1] = '\0';
	path = s->dir;
	if (!(s->index_path = join(path, INDEX_NAME)) ||
	    !(s->lock_path = join(path, LOCK_NAME))) {
		r = fail(s, -ENOMEM, path, "out of memory");
		goto err;
	}
	if ((flags & STORE_F_CREATE) && !(flags & STORE_F_RDONLY)) {
		if (mkdir(path, 0700) == 0)
			created = 1;
		else if (errno != EEXIST) {
			r = fail(s, -errno, path, "cannot create the store directory: %s",
				 strerror(errno));
			goto err;
		}
	}
	s->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		r = -errno;
		if (r == -ENOENT)
			fail(s, r, path, "no such store (nothing was healed here?)");
		else if (r == -ENOTDIR)
			fail(s, r, path, "not a directory");
		else
			fail(s, r, path, "open: %s", strerror(-r));
		goto err;
	}
	/* umask may have taken bits away; make it exactly 0700. */
	if (created && fchmod(s->dirfd, 0700) < 0) {
		r = fail(s, -errno, path, "chmod: %s", strerror(errno));
		goto err;
	}
	if (fstat(s->dirfd, &st) < 0) {
		r = fail(s, -errno, path, "fstat: %s", strerror(errno));
		goto err;
	}
	if ((r = check_owner_mode(s, &st, path, path)))
		goto err;
	if (!(flags & STORE_F_LAZY) && (r = read_index(s, &s->idx, &s->idx_id)))
		goto err;
	*out = s;
	return 0;
err:
	store__close(s);
	return r;
}

void store__close(struct store *s)
{
	if (!s)
		return;
	index_clear(s);
	if (s->lockfd >= 0)
		close(s->lockfd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->lock_path);
	free(s->index_path);
	free(s->dir);
	free(s);
}

int store__reload(struct store *s)
{
	struct store_index fresh;
	struct file_id id;
	int r;

	if ((r = read_index(s, &fresh, &id)))
		return r;
	index_clear(s);
	s->idx = fresh;
	s->idx_id = id;
	return 0;
}

/* ---- transactions ---------------------------------------------------------------- */

static int lock_store(struct store *s)
{
	struct stat st;
	long waited = 0, step = 1;
	int r;

	if (s->lockfd < 0) {
		s->lockfd = openat(s->dirfd, LOCK_NAME,
				   O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (s->lockfd < 0) {
			if (errno == ELOOP)
				return fail(s, -EPERM, s->lock_path, "is a symbolic link: refusing it");
			return fail(s, -errno, s->lock_path, "open: %s", strerror(errno));
		}
		if (fstat(s->lockfd, &st) < 0)
			r = fail(s, -errno, s->lock_path, "fstat: %s", strerror(errno));
		else
			r = check_owner_mode(s, &st, s->lock_path, s->lock_path);
		if (r) {
			close(s->lockfd);
			s->lockfd = -1;
			return r;
		}
	}
	/* Poll rather than block, so a hung writer gives a clear error. */
	while (flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
		struct timespec ts;

		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK)
			return fail(s, -errno, s->lock_path, "flock: %s", strerror(errno));
		if (waited >= LOCK_TIMEOUT_MS)
			return fail(s, -ETIMEDOUT, s->lock_path, "another process has held the "
				    "store lock for %d s", LOCK_TIMEOUT_MS / 1000);
		ts.tv_sec = 0;
		ts.tv_nsec = step * 1000000L;
		nanosleep(&ts, NULL);
		waited += step;
		if (step < 16)
			step *= 2;
	}
	return 0;
}

static void unlock_store(struct store *s)
{
	flock(s->lockfd, LOCK_UN);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Replace index.json by the encoding of idx: temp file in the same directory,
 * fsync, rename over, fsync the directory. *id: the file written. */
static int write_index(struct store *s, const struct store_index *idx, struct file_id *id)
{
	char tmp[64];
	size_t len;
	char *text = store_index__serialize(idx, &len);
	int fd = -1, r;
	unsigned tries = 0;

	if (!text)
		return fail(s, -ENOMEM, s->index_path, "out of memory");
	for (;;) {
		snprintf(tmp, sizeof(tmp), TMP_PREFIX "%d.%ld.%u", (int)getpid(),
			 (long)random(), tries);
		fd = openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    0600);
		if (fd >= 0 || errno != EEXIST || ++tries > 100)
			break;
	}
	if (fd < 0) {
		r = fail(s, -errno, s->dir, "cannot create a temporary file: %s", strerror(errno));
		goto out;
	}
	struct stat st;
	memset(id, 0, sizeof(*id));
	if ((r = write_all(fd, text, len)) ||
	    (fchmod(fd, 0600) < 0 && (r = -errno)) ||
	    (fsync(fd) < 0 && (r = -errno)) ||
	    (fstat(fd, &st) < 0 && (r = -errno))) {
		fail(s, r, s->dir, "writing %s: %s", tmp, strerror(-r));
		goto unlink;
	}
	/* rename() changes the ctime: taken again below. */
	*id = file_id_of(&st);
	if (close(fd) < 0) {
		fd = -1;
		r = fail(s, -errno, s->dir, "writing %s: %s", tmp, strerror(errno));
		goto unlink;
	}
	fd = -1;
	if (renameat(s->dirfd, tmp, s->dirfd, INDEX_NAME) < 0) {
		r = fail(s, -errno, s->index_path, "rename: %s", strerror(errno));
		goto unlink;
	}
	if (fsync(s->dirfd) < 0) {
		r = fail(s, -errno, s->dir, "fsync: %s", strerror(errno));
		goto out;
	}
	/* Under the lock nobody replaced it since: its identity as renamed. */
	if (fstatat(s->dirfd, INDEX_NAME, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == id->ino)
		*id = file_id_of(&st);
	else
		memset(id, 0, sizeof(*id));
	r = 0;
	goto out;
unlink:
	if (fd >= 0)
		close(fd);
	unlinkat(s->dirfd, tmp, 0);
out:
	free(text);
	return r;
}

/* Under the lock no writer is between creating and renaming its temporary
 * file, so any temporary file there was left by a writer that died: remove
 * it. Best effort: a failure here changes nothing else. */
static void remove_dead_temps(struct store *s)
{
	int fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *e;
	DIR *d;

	if (fd < 0)
		return;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return;
	}
	while ((e = readdir(d)))
		if (strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0)
			unlinkat(s->dirfd, e->d_name, 0);
	closedir(d);
}

/* Run change(idx, arg) on a fresh copy of the index under the lock, and
 * write the result if change returns > 0 (0: nothing to write). On success
 * the handle sees the new index. */
typedef int (*change_fn)(struct store *s, struct store_index *idx, void *arg);

static int transact(struct store *s, change_fn change, void *arg)
{
	struct store_index fresh;
	struct file_id id;
	int r;

	if (s->flags & STORE_F_RDONLY)
		return fail(s, -EROFS, s->dir, "opened read-only");
	if ((r = lock_store(s)))
		return r;
	if ((r = read_index(s, &fresh, &id)))
		goto unlock;
	if ((r = change(s, &fresh, arg)) < 0) {
		store_index__free(&fresh);
		goto unlock;
	}
	if (r > 0)
		remove_dead_temps(s);
	if (r > 0 && (r = write_index(s, &fresh, &id))) {
		store_index__free(&fresh);
		s->idx_id.valid = false;   /* what is on disk now is unknown */
		goto unlock;
	}
	index_clear(s);
	s->idx = fresh;
	s->idx_id = id;
	r = 0;
unlock:
	unlock_store(s);
	return r;
}

/* ---- changes ---------------------------------------------------------------------- */

struct add_arg {
	const struct store_patch *p;
	size_t n;
};

static int change_add(struct store *s, struct store_index *idx, void *arg)
{
	struct add_arg *a = arg;

	for (size_t i = 0; i < a->n; i++)
		if (store_index__put(idx, &a->p[i]))
			return fail(s, -ENOMEM, s->index_path, "out of memory");
	return 1;
}

int store__add_many(struct store *s, const struct store_patch *p, size_t n)
{
	char cause[STORE_ERR_MAX];
	struct store_patch *filled;
	struct add_arg a;
	int64_t now = store__now();
	int r;

	if (!(filled = calloc(n ? n : 1, sizeof(*filled))))
		return fail(s, -ENOMEM, s->dir, "out of memory");
	for (size_t i = 0; i < n; i++) {
		filled[i] = p[i];
		if (!filled[i].created)
			filled[i].created = now;
		if (!filled[i].ttl_days)
			filled[i].ttl_days = STORE_DEFAULT_TTL_DAYS;
		if (store_patch__validate(&filled[i], cause, sizeof(cause))) {
			r = fail(s, -EINVAL, s->dir, "patch %s%.200s%s: %s",
				 p[i].name ? "\"" : "", p[i].name ? p[i].name : "#", p[i].name ? "\"" : "",
				 cause);
			goto out;
		}
	}
	a.p = filled;
	a.n = n;
	r = transact(s, change_add, &a);
out:
	free(filled);
	return r;
}

int store__add(struct store *s, const struct store_patch *p)
{
	return store__add_many(s, p, 1);
}

static int no_such_patch(struct store *s, const char *name)
{
	return fail(s, -ENOENT, s->dir, "no patch named \"%.200s\"", name);
}

static int change_remove(struct store *s, struct store_index *idx, void *arg)
{
	const char *name = arg;
	long at = store_index__find(idx, name);

	if (at < 0)
		return no_such_patch(s, name);
	store_index__drop(idx, (size_t)at);
	return 1;
}

int store__remove(struct store *s, const char *name)
{
	return transact(s, change_remove, (void *)name);
}

static int change_remove_all(struct store *s, struct store_index *idx, void *arg)
{
	size_t *removed = arg;

	(void)s;
	*removed = idx->n;
	store_index__free(idx);
	return 1;
}

int store__remove_all(struct store *s, size_t *removed)
{
	size_t n = 0;
	int r = transact(s, change_remove_all, &n);

	if (removed)
		*removed = r ? 0 : n;
	return r;
}

struct hits_arg {
	const char *const *names;
	size_t n;
	int64_t now;
	size_t missing;
	int strict;
};

static int change_hits(struct store *s, struct store_index *idx, void *arg)
{
	struct hits_arg *a = arg;
	int changed = 0;

	for (size_t i = 0; i < a->n; i++) {
		long at = store_index__find(idx, a->names[i]);

		if (at < 0) {
			if (a->strict)
				return no_such_patch(s, a->names[i]);
			a->missing++;
			continue;
		}
		if (idx->v[at].hits < STORE_HITS_MAX)
			idx->v[at].hits++;
		idx->v[at].last_hit = a->now;
		changed = 1;
	}
	return changed;
}

int store__record_hit(struct store *s, const char *name, int64_t now)
{
	struct hits_arg a = { &name, 1, now, 0, 1 };

	return transact(s, change_hits, &a);
}

int store__record_hits(struct store *s, const char *const *names, size_t n,
		       int64_t now, size_t *missing)
{
	struct hits_arg a = { names, n, now, 0, 0 };
	int r = transact(s, change_hits, &a);

	if (missing)
		*missing = a.missing;
	return r;
}

struct counts_arg {
	const struct store_hit_count *v;
	size_t n;
	size_t missing;
};

static int change_counts(struct store *s, struct store_index *idx, void *arg)
{
	struct counts_arg *a = arg;
	int changed = 0;

	(void)s;
	for (size_t i = 0; i < a->n; i++) {
		if (!a->v[i].count)
			continue;
		long at = store_index__find(idx, a->v[i].name);

		if (at < 0) {
			a->missing++;
			continue;
		}
		struct store_patch *p = &idx->v[at];
		p->hits = a->v[i].count >= STORE_HITS_MAX - p->hits ? STORE_HITS_MAX
								      : p->hits + a->v[i].count;
		if (a->v[i].last > p->last_hit)
			p->last_hit = a->v[i].last;
		changed = 1;
	}
	return changed;
}

int store__add_hits(struct store *s, const struct store_hit_count *v, size_t n,
		    size_t *missing)
{
	struct counts_arg a = { v, n, 0 };
	int r = transact(s, change_counts, &a);

	if (missing)
		*missing = a.missing;
	return r;
}

struct status_arg {
	const char *name;
	enum store_status status;
	const char *reason;
};

static int change_status(struct store *s, struct store_index *idx, void *arg)
{
	struct status_arg *a = arg;
	long at = store_index__find(idx, a->name);

	if (at < 0)
		return no_such_patch(s, a->name);
	idx->v[at].status = a->status;
	if (store_str__set(&idx->v[at].stale_reason, a->reason))
		return fail(s, -ENOMEM, s->index_path, "out of memory");
	return 1;
}

int store__mark_stale(struct store *s, const char *name, const char *reason)
{
	char cause[STORE_ERR_MAX];
	struct store_patch probe = {0};
	struct status_arg a = { name, STORE_STATUS_STALE, reason };

	/* Validate the reason as the index would. */
	if (reason) {
		probe.stale_reason = reason;
		probe.name = "x";
		probe.guard = store_guard_kinds[0];
		probe.module = probe.qualname = probe.file = probe.target = probe.fallback = "x";
		probe.anchor_window = probe.code_id = probe.program = probe.python_version = "x";
		probe.first_line = probe.line = 1;
		probe.created = 1;
		probe.ttl_days = 1;
		if (store_patch__validate(&probe, cause, sizeof(cause)))
			return fail(s, -EINVAL, s->dir, "patch \"%.200s\": %s", name, cause);
	}
	return transact(s, change_status, &a);
}

int store__mark_active(struct store *s, const char *name)
{
	struct status_arg a = { name, STORE_STATUS_ACTIVE, NULL };

	return transact(s, change_status, &a);
}

/* ---- queries ---------------------------------------------------------------------- */

size_t store__count(const struct store *s)
{
	return s->idx.n;
}

const struct store_patch *store__find(const struct store *s, const char *name)
{
	long at = name ? store_index__find(&s->idx, name) : -1;

	if (at < 0) {
		errno = ENOENT;
		return NULL;
	}
	return &s->idx.v[at];
}

int64_t store_patch__expires(const struct store_patch *p)
{
	return p->created + (int64_t)p->ttl_days * 86400;
}

enum store_status store_patch__status(const struct store_patch *p, int64_t now)
{
	if (p->status == STORE_STATUS_STALE)
		return STORE_STATUS_STALE;
	if (now >= store_patch__expires(p))
		return STORE_STATUS_EXPIRED;
	return STORE_STATUS_ACTIVE;
}

enum store_verdict store_patch__verdict(const struct store_patch *p,
					 const struct store_query *q)
{
	int64_t now = q && q->now ? q->now : store__now();

	switch (store_patch__status(p, now)) {
	case STORE_STATUS_STALE: return STORE_V_STALE;
	case STORE_STATUS_EXPIRED: return STORE_V_EXPIRED;
	case STORE_STATUS_ACTIVE: break;
	}
	if (q && q->python_version && strcmp(q->python_version, p->python_version) != 0)
		return STORE_V_OTHER_PYTHON;
	if (q && q->build_id && p->build_id && strcmp(q->build_id, p->build_id) != 0)
		return STORE_V_OTHER_PYTHON;
	return STORE_OK;
}

const char *store_verdict__str(enum store_verdict v)
{
	switch (v) {
	case STORE_OK: return "applicable";
	case STORE_V_STALE: return "stale (the source changed)";
	case STORE_V_EXPIRED: return "expired";
	case STORE_V_OTHER_PYTHON: return "made for another Python build";
	}
	return "unknown";
}

void store_iter__init(struct store_iter *it, const struct store *s,
		      const struct store_query *q)
{
	memset(it, 0, sizeof(*it));
	it->s = s;
	if (q)
		it->q = *q;
	if (!it->q.now)
		it->q.now = store__now();
}

const struct store_patch *store_iter__next(struct store_iter *it)
{
	const struct store_query *q = &it->q;

	while (it->next < it->s->idx.n) {
		const struct store_patch *p = &it->s->idx.v[it->next++];

		if (q->program && strcmp(q->program, p->program) != 0)
			continue;
		if (q->module && strcmp(q->module, p->module) != 0)
			continue;
		if (q->qualname && strcmp(q->qualname, p->qualname) != 0)
			continue;
		if ((q->flags & STORE_Q_APPLICABLE) && store_patch__verdict(p, q) != STORE_OK)
			continue;
		return p;
	}
	return NULL;
}

int store_patch__default_name(const struct store_patch *p, char *buf, size_t size)
{
	int n;

	if (!p->module || !p->qualname || !p->guard)
		return -EINVAL;
	n = snprintf(buf, size, "%s.%s:%d:%s", p->module, p->qualname, p->line, p->guard);
	if (n < 0 || (size_t)n >= size || n > STORE_NAME_MAX)
		return -ENAMETOOLONG;
	for (char *c = buf; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f)
			*c = '_';
	return 0;
}
