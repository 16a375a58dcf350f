/* The store on disk: directory checks, reading the index, transactions under
 * flock, atomic replacement, queries. Format: docs/formats/store.md.
 *
 * One file over 800 lines: the directory and file checks, the lock and
 * the transactions share the checked directory descriptors and the
 * handle's message buffer; the safety rules read in one place.
 */
#include "store/store-priv.h"
#include "rewrite/guard.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define INDEX_NAME "index.json"
#define LOCK_NAME "lock"
/* "." + name + TMP_INFIX + 16 random hex digits: store_file__replace(). */
#define TMP_INFIX ".tmp."
#define TMP_PREFIX "." INDEX_NAME TMP_INFIX
/* How long a writer waits for another one before giving up. */
#define LOCK_TIMEOUT_MS 30000

struct store {
	char *dir;        /* as given, for messages and paths */
	char *index_path; /* dir/index.json, for messages */
	char *lock_path;
	int dirfd;  /* every file is opened relative to this */
	int lockfd; /* -1 until the first change */
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
	/* The FNV-1a 64 of the bytes store__open or store__reload parsed
	 * (0: none), and of the last bytes read_index parsed: a boot image
	 * says which index it was derived from by it. */
	uint64_t idx_hash, read_hash;
	char err[STORE_ERR_MAX];
	/* Where messages go (store__open_print): the caller's. */
	store_print_fn print;
	void *print_ctx;
};

static struct file_id file_id_of(const struct stat *st)
{
	return (struct file_id){ .valid = true,
				 .dev = st->st_dev,
				 .ino = st->st_ino,
				 .size = st->st_size,
				 .mtim = st->st_mtim,
				 .ctim = st->st_ctim };
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
	for (size_t i = 0; i < idx->nh; i++)
		if (store_index__put_handled(out, &idx->h[i]) < 0) {
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

uint64_t store__index_hash(const struct store *s)
{
	return s ? s->idx_hash : 0;
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
		return fail(s, -EPERM, obj,
			    "owned by uid %u, not by you (uid %u): refusing a "
			    "store another user controls",
			    (unsigned)st->st_uid, (unsigned)me);
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return fail(s, -EPERM, obj,
			    "%s writable (mode %04o): refusing a store other "
			    "users can change; run: chmod go-w %s",
			    (st->st_mode & S_IWOTH) ? "world" : "group",
			    (unsigned)(st->st_mode & 07777), dirpath ? dirpath : obj);
	return 0;
}

/* ---- files and directories ------------------------------------------------------- */

/* The store is a directory other users may be able to reach: the working
 * directory of a program run by root can be writable by someone else. So
 * nothing is ever looked up by path twice: each directory and file is opened
 * relative to the descriptor of its checked parent, the last component never
 * through a symbolic link, and every check is made on the descriptor opened
 * (docs/formats/store.md, "Safety rules"). */

int store__fd(const struct store *s)
{
	return s->dirfd;
}

/* name in pfd is not a directory (openat said ENOTDIR or ELOOP): say
 * whether it is a symbolic link (-EPERM, with its target) or something
 * else (-ENOTDIR). */
static int refuse_non_dir(struct store *s, int pfd, const char *name, const char *path)
{
	char target[256];
	struct stat st;
	ssize_t n;

	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISLNK(st.st_mode))
		return fail(s, -ENOTDIR, path, "not a directory");
	n = readlinkat(pfd, name, target, sizeof(target) - 1);
	target[n < 0 ? 0 : n] = '\0';
	return fail(s, -EPERM, path,
		    "is a symbolic link%s%.200s%s: refusing it (a link could "
		    "lead to another user's directory); give the real directory instead",
		    n > 0 ? " (to " : "", target, n > 0 ? ")" : "");
}

int store_dir__open(struct store *s, int pfd, const char *name, const char *path, bool create,
		    int *out)
{
	bool created = false;
	struct stat st;
	int fd, r;

	*out = -1;
	if (create) {
		if (mkdirat(pfd, name, 0700) == 0)
			created = true;
		else if (errno != EEXIST)
			return fail(s, -errno, path, "cannot create the directory: %s",
				    strerror(errno));
	}
	fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		if (r == -ENOTDIR || r == -ELOOP)
			return refuse_non_dir(s, pfd, name, path);
		if (r == -ENOENT)
			return r; /* the caller says what is missing */
		return fail(s, r, path, "open: %s", strerror(-r));
	}
	if (fstat(fd, &st) < 0) {
		r = fail(s, -errno, path, "fstat: %s", strerror(errno));
		goto err;
	}
	/* umask may have taken bits away; make it exactly 0700. Only if it is
	 * still ours: a directory swapped in since the mkdir is refused below. */
	if (created && st.st_uid == geteuid()) {
		if (fchmod(fd, 0700) < 0) {
			r = fail(s, -errno, path, "chmod: %s", strerror(errno));
			goto err;
		}
		st.st_mode = (st.st_mode & ~(mode_t)07777) | 0700;
	}
	if ((r = check_owner_mode(s, &st, path, path)))
		goto err;
	*out = fd;
	return 0;
err:
	close(fd);
	return r;
}

int store_file__open(struct store *s, int dirfd, const char *name, const char *path, int *out,
		     struct stat *st)
{
	int fd, r;

	*out = -1;
	/* O_NONBLOCK: a FIFO planted there must not hang the reader. */
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return -ENOENT;
		if (errno == ELOOP)
			return fail(s, -EPERM, path, "is a symbolic link: refusing it");
		return fail(s, -errno, path, "open: %s", strerror(errno));
	}
	if (fstat(fd, st) < 0) {
		r = fail(s, -errno, path, "fstat: %s", strerror(errno));
		goto err;
	}
	if (!S_ISREG(st->st_mode)) {
		r = fail(s, -EBADMSG, path, "not a regular file");
		goto err;
	}
	if ((r = check_owner_mode(s, st, path, path)))
		goto err;
	*out = fd;
	return 0;
err:
	close(fd);
	return r;
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

/* Create a new temporary file for name in dirfd: "." name ".tmp." and 16
 * hex digits from getrandom(), O_CREAT | O_EXCL | O_NOFOLLOW, so nothing
 * planted at a name guessed in advance (a hard link to a file to
 * overwrite, a symbolic link) is ever opened. Its name goes to tmp. */
static int create_temp(struct store *s, int dirfd, const char *dirpath, const char *name, char *tmp,
		       size_t size, int *out)
{
	uint64_t rnd;
	ssize_t n;
	int fd = -1, n_tries = 0, len;

	*out = -1;
	do {
		do
			n = getrandom(&rnd, sizeof(rnd), 0);
		while (n < 0 && errno == EINTR);
		if (n != (ssize_t)sizeof(rnd))
			return fail(s, n < 0 ? -errno : -EIO, dirpath, "getrandom: %s",
				    n < 0 ? strerror(errno) : "short read");
		len = snprintf(tmp, size, ".%s" TMP_INFIX "%016llx", name, (unsigned long long)rnd);
		if (len < 0 || (size_t)len >= size)
			return fail(s, -ENAMETOOLONG, dirpath, "%s: name too long", name);
		fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	} while (fd < 0 && errno == EEXIST && ++n_tries < 16);
	if (fd < 0)
		return fail(s, -errno, dirpath, "cannot create a temporary file: %s",
			    strerror(errno));
	*out = fd;
	return 0;
}

/* O_EXCL made it new: a regular file of ours with one link (and, once
 * set, mode 0600; mode 0: not checked). Checked on the descriptor all the
 * same: the docs promise it. */
static int check_new_file(struct store *s, const struct stat *st, const char *dirpath,
			  const char *tmp, mode_t mode)
{
	if (S_ISREG(st->st_mode) && st->st_uid == geteuid() && st->st_nlink == 1 &&
	    (!mode || (st->st_mode & 07777) == mode))
		return 0;
	return fail(s, -EPERM, dirpath,
		    "%s: not the file just created (uid %u, %lu links, "
		    "mode %04o): refusing to write it",
		    tmp, (unsigned)st->st_uid, (unsigned long)st->st_nlink,
		    (unsigned)(st->st_mode & 07777));
}

int store_file__replace(struct store *s, int dirfd, const char *dirpath, const char *name,
			const char *data, size_t len, struct stat *st)
{
	char tmp[NAME_MAX + 1];
	char *path = join(dirpath, name);
	struct stat mine;
	int fd = -1, r;

	if (!path)
		return fail(s, -ENOMEM, dirpath, "out of memory");
	if ((r = create_temp(s, dirfd, dirpath, name, tmp, sizeof(tmp), &fd)))
		goto out;
	/* O_EXCL made it new: a regular file of ours with one link. Checked on
	 * the descriptor anyway, and the mode set whatever the umask was. */
	if (fstat(fd, &mine) < 0) {
		r = fail(s, -errno, dirpath, "%s: fstat: %s", tmp, strerror(errno));
		goto unlink;
	}
	if ((r = check_new_file(s, &mine, dirpath, tmp, 0)))
		goto unlink;
	if (fchmod(fd, 0600) < 0) {
		r = fail(s, -errno, dirpath, "%s: chmod: %s", tmp, strerror(errno));
		goto unlink;
	}
	if ((r = write_all(fd, data, len)) || (fsync(fd) < 0 && (r = -errno)) ||
	    (fstat(fd, &mine) < 0 && (r = -errno))) {
		fail(s, r, dirpath, "writing %s: %s", tmp, strerror(-r));
		goto unlink;
	}
	if ((r = check_new_file(s, &mine, dirpath, tmp, 0600)))
		goto unlink;
	r = close(fd);
	fd = -1;
	if (r < 0) {
		r = fail(s, -errno, dirpath, "writing %s: %s", tmp, strerror(errno));
		goto unlink;
	}
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		r = fail(s, -errno, path, "rename: %s", strerror(errno));
		goto unlink;
	}
	if (st)
		*st = mine;
	if (fsync(dirfd) < 0) {
		r = fail(s, -errno, dirpath, "fsync: %s", strerror(errno));
		goto out;
	}
	r = 0;
	goto out;
unlink:
	if (fd >= 0)
		close(fd);
	unlinkat(dirfd, tmp, 0);
out:
	free(path);
	return r;
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

	struct file_id prev = s->idx_id; /* id may be &s->idx_id */
	memset(out, 0, sizeof(*out));
	memset(id, 0, sizeof(*id));
	r = store_file__open(s, s->dirfd, INDEX_NAME, s->index_path, &fd, &st);
	if (r)
		return r == -ENOENT ? 0 : r;
	*id = file_id_of(&st);
	if (file_id__same(id, &prev)) {
		if ((r = index_dup(&s->idx, out)))
			r = fail(s, r, s->index_path, "out of memory");
		goto out;
	}
	if ((size_t)st.st_size > STORE_INDEX_MAX) {
		r = fail(s, -EFBIG, s->index_path,
			 "%lld bytes, more than the %u a store index "
			 "may have",
			 (long long)st.st_size, STORE_INDEX_MAX);
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
	else
		s->read_hash = store__index_bytes_hash(buf, got);
	if (r == -ENOMEM)
		r = fail(s, r, s->index_path, "out of memory");
	else if (r)
		r = fail(s, r, s->index_path,
			 "%s; the file is kept as it is: move it aside "
			 "(mv %s %s.bad) to start an empty store",
			 cause, s->index_path, s->index_path);
out:
	free(buf);
	close(fd);
	return r;
}

/* The store directory s->dir: its parent is opened as the caller names it
 * (its owner's business), the store itself with store_dir__open(), never
 * through a symbolic link. */
static int open_store_dir(struct store *s, bool create)
{
	const char *slash = strrchr(s->dir, '/'), *name = s->dir;
	char *parent = NULL;
	int pfd, r;

	if (!slash) {
		pfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		name = slash[1] ? slash + 1 : "."; /* "/" itself */
		if (!(parent = strndup(s->dir, slash == s->dir ? 1 : (size_t)(slash - s->dir))))
			return fail(s, -ENOMEM, s->dir, "out of memory");
		pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (pfd < 0) {
		r = -errno;
		if (create)
			fail(s, r, s->dir, "cannot create the directory: %s", strerror(-r));
		else if (r == -ENOENT)
			fail(s, r, s->dir, "no such store (nothing was healed here?)");
		else
			fail(s, r, s->dir, "open %s: %s", parent ? parent : ".", strerror(-r));
		goto out;
	}
	r = store_dir__open(s, pfd, name, s->dir, create, &s->dirfd);
	if (r == -ENOENT)
		fail(s, r, s->dir, "no such store (nothing was healed here?)");
	close(pfd);
out:
	free(parent);
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
	int r;

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
	if (!(s->index_path = join(path, INDEX_NAME)) || !(s->lock_path = join(path, LOCK_NAME))) {
		r = fail(s, -ENOMEM, path, "out of memory");
		goto err;
	}
	if ((r = open_store_dir(s, (flags & STORE_F_CREATE) && !(flags & STORE_F_RDONLY))))
		goto err;
	if (!(flags & STORE_F_LAZY) && (r = read_index(s, &s->idx, &s->idx_id)))
		goto err;
	s->idx_hash = s->idx_id.valid ? s->read_hash : 0;
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
	if (!file_id__same(&id, &s->idx_id)) /* else the bytes are those hashed before */
		s->idx_hash = id.valid ? s->read_hash : 0;
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
				   O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
		if (s->lockfd < 0) {
			if (errno == ELOOP)
				return fail(s, -EPERM, s->lock_path,
					    "is a symbolic link: refusing it");
			return fail(s, -errno, s->lock_path, "open: %s", strerror(errno));
		}
		if (fstat(s->lockfd, &st) < 0)
			r = fail(s, -errno, s->lock_path, "fstat: %s", strerror(errno));
		else if (!S_ISREG(st.st_mode))
			r = fail(s, -EPERM, s->lock_path, "not a regular file: refusing it");
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
			return fail(s, -ETIMEDOUT, s->lock_path,
				    "another process has held the "
				    "store lock for %d s",
				    LOCK_TIMEOUT_MS / 1000);
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

/* Replace index.json by the encoding of idx (store_file__replace()).
 * *id: the file written. */
static int write_index(struct store *s, const struct store_index *idx, struct file_id *id)
{
	size_t len;
	char *text = store_index__serialize(idx, &len);
	struct stat st, now;
	int r;

	memset(id, 0, sizeof(*id));
	if (!text)
		return fail(s, -ENOMEM, s->index_path, "out of memory");
	r = store_file__replace(s, s->dirfd, s->dir, INDEX_NAME, text, len, &st);
	free(text);
	if (r)
		return r;
	/* rename() changes the ctime: taken again. Under the lock nobody
	 * replaced it since: its identity as renamed. */
	if (fstatat(s->dirfd, INDEX_NAME, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	    now.st_ino == st.st_ino && now.st_dev == st.st_dev)
		*id = file_id_of(&now);
	return 0;
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
		s->idx_id.valid = false; /* what is on disk now is unknown */
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
	char *name; /* store__add_unique(): the name chosen (size bytes), else NULL */
	size_t size;
};

/* FNV-1a of program and Python version: the "@<hash>" a name gets when
 * another program or Python has it. Deterministic, so healing the same
 * program again finds (and replaces) its own patch. */
static uint32_t identity_hash(const struct store_patch *p)
{
	uint64_t h = 1469598103934665603ull;

	for (const char *c = p->program; *c; c++)
		h = (h ^ (uint8_t)*c) * 1099511628211ull;
	for (const char *c = p->python_version; *c; c++)
		h = (h ^ (uint8_t)*c) * 1099511628211ull;
	return (uint32_t)h;
}

static bool same_program(const struct store_patch *a, const struct store_patch *b)
{
	return strcmp(a->program, b->program) == 0 &&
	       strcmp(a->python_version, b->python_version) == 0;
}

/* Append text to name (a buffer of STORE_NAME_MAX + 1 bytes). */
static int name_append(struct store *s, char *name, const char *fmt, unsigned long long v)
{
	size_t n = strlen(name);
	int w = snprintf(name + n, STORE_NAME_MAX + 1 - n, fmt, v);

	if (w < 0 || (size_t)w >= STORE_NAME_MAX + 1 - n)
		return fail(s, -ENAMETOOLONG, s->dir,
			    "patch \"%.200s\": the name made distinct is "
			    "longer than %d bytes",
			    name, STORE_NAME_MAX);
	return 0;
}

/* The name p gets in idx, store__add_unique()'s rules, into name. */
static int choose_name(struct store *s, const struct store_index *idx, const struct store_patch *p,
		       char *name)
{
	long at = store_index__find(idx, p->name);
	const struct store_patch *old = at < 0 ? NULL : &idx->v[at];
	int r;

	snprintf(name, STORE_NAME_MAX + 1, "%s", p->name);
	/* Another guard of the same kind on the same line of this function
	 * (d["a"] + d["b"]) is a second patch, not a replacement: named apart
	 * by its anchor. An active patch at the same anchor, or a stale one,
	 * is replaced (the site healed again). */
	if (old && same_program(old, p) && old->status == STORE_STATUS_ACTIVE &&
	    old->anchor_offset != p->anchor_offset) {
		if ((r = name_append(s, name, "#%llu", p->anchor_offset)))
			return r;
		at = store_index__find(idx, name);
		old = at < 0 ? NULL : &idx->v[at];
	}
	/* Another program (two scripts' __main__.load) or another Python has
	 * the name: keep both, ours named apart. */
	if (old && !same_program(old, p))
		return name_append(s, name, "@%08llx", identity_hash(p));
	return 0;
}

static int change_add(struct store *s, struct store_index *idx, void *arg)
{
	struct add_arg *a = arg;

	if (a->name) {
		char name[STORE_NAME_MAX + 1];
		struct store_patch p = a->p[0];
		int r;

		if ((r = choose_name(s, idx, &p, name)))
			return r;
		if (strlen(name) >= a->size)
			return fail(s, -ENAMETOOLONG, s->dir,
				    "patch \"%.200s\": no room for its "
				    "name (%zu bytes)",
				    name, a->size);
		p.name = name;
		if (store_index__put(idx, &p))
			return fail(s, -ENOMEM, s->index_path, "out of memory");
		/* p.name may be the caller's buffer: copied only now. */
		memcpy(a->name, name, strlen(name) + 1);
		return 1;
	}
	for (size_t i = 0; i < a->n; i++)
		if (store_index__put(idx, &a->p[i]))
			return fail(s, -ENOMEM, s->index_path, "out of memory");
	return 1;
}

/* Fill in created and ttl_days, validate, and add in one transaction. */
static int add(struct store *s, const struct store_patch *p, size_t n, char *name, size_t size)
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
			r = fail(s, -EINVAL, s->dir, "patch %s%.200s%s: %s", p[i].name ? "\"" : "",
				 p[i].name ? p[i].name : "#", p[i].name ? "\"" : "", cause);
			goto out;
		}
	}
	a = (struct add_arg){ .p = filled, .n = n, .name = name, .size = size };
	r = transact(s, change_add, &a);
out:
	free(filled);
	return r;
}

int store__add_many(struct store *s, const struct store_patch *p, size_t n)
{
	return add(s, p, n, NULL, 0);
}

int store__add(struct store *s, const struct store_patch *p)
{
	return add(s, p, 1, NULL, 0);
}

int store__add_unique(struct store *s, const struct store_patch *p, char *name, size_t size)
{
	return add(s, p, 1, name, size);
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
	store_index__free_patches(idx); /* the handled crashes are no patches */
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

int store__record_hits(struct store *s, const char *const *names, size_t n, int64_t now,
		       size_t *missing)
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

int store__add_hits(struct store *s, const struct store_hit_count *v, size_t n, size_t *missing)
{
	struct counts_arg a = { v, n, 0 };
	int r = transact(s, change_counts, &a);

	if (missing)
		*missing = a.missing;
	return r;
}

struct handled_arg {
	const struct store_handled *v;
	size_t n, dropped;
};

static int change_handled(struct store *s, struct store_index *idx, void *arg)
{
	struct handled_arg *a = arg;
	int changed = 0;
	for (size_t i = 0; i < a->n; i++) {
		int r = store_index__put_handled(idx, &a->v[i]);
		if (r < 0)
			return fail(s, r, s->index_path, "out of memory");
		if (r)
			a->dropped++;
		else
			changed = 1;
	}
	return changed;
}

int store__add_handled(struct store *s, const struct store_handled *v, size_t n, size_t *dropped)
{
	char cause[STORE_ERR_MAX];
	struct handled_arg a = { v, n, 0 };
	for (size_t i = 0; i < n; i++)
		if (store_handled__validate(&v[i], cause, sizeof(cause)))
			return fail(s, -EINVAL, s->dir, "handled crash %zu: %s", i, cause);
	int r = n ? transact(s, change_handled, &a) : 0;
	if (dropped)
		*dropped = a.dropped;
	return r;
}

size_t store__handled_count(const struct store *s)
{
	return s->idx.nh;
}

const struct store_handled *store__handled_at(const struct store *s, size_t i)
{
	return i < s->idx.nh ? &s->idx.h[i] : NULL;
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
	struct store_patch probe = { 0 };
	struct status_arg a = { name, STORE_STATUS_STALE, reason };

	/* Validate the reason as the index would. */
	if (reason) {
		probe.stale_reason = reason;
		probe.name = "x";
		probe.guard = guard_kind__name(GUARD_KIND_FIRST);
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

struct renew_arg {
	const char *name;
	uint32_t ttl_days;
	int64_t now;
};

/* created stays (the patch's age is true): the TTL grows so that the
 * patch expires ttl_days (or its own TTL) from now, rounded up to a day. */
static int change_ttl(struct store *s, struct store_index *idx, void *arg)
{
	struct renew_arg *a = arg;
	long at = store_index__find(idx, a->name);

	if (at < 0)
		return no_such_patch(s, a->name);
	struct store_patch *p = &idx->v[at];
	uint32_t ttl = a->ttl_days ? a->ttl_days : p->ttl_days;
	int64_t age = a->now > p->created ? a->now - p->created : 0;
	int64_t days = (age + 86399) / 86400 + (int64_t)ttl;
	if (days > STORE_MAX_TTL_DAYS)
		return fail(
			s, -EINVAL, s->dir,
			"patch \"%.200s\": renewed for %u days it would live %lld days, over %d",
			a->name, ttl, (long long)days, STORE_MAX_TTL_DAYS);
	p->ttl_days = (uint32_t)days;
	return 1;
}

int store__renew(struct store *s, const char *name, uint32_t ttl_days, int64_t now)
{
	struct renew_arg a = { name, ttl_days, now ? now : store__now() };

	if (ttl_days > STORE_MAX_TTL_DAYS)
		return fail(s, -EINVAL, s->dir, "a TTL of %u days is over %d", ttl_days,
			    STORE_MAX_TTL_DAYS);
	return transact(s, change_ttl, &a);
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

enum store_verdict store_patch__verdict(const struct store_patch *p, const struct store_query *q)
{
	int64_t now = q && q->now ? q->now : store__now();

	switch (store_patch__status(p, now)) {
	case STORE_STATUS_STALE:
		return STORE_V_STALE;
	case STORE_STATUS_EXPIRED:
		return STORE_V_EXPIRED;
	case STORE_STATUS_ACTIVE:
		break;
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
	case STORE_OK:
		return "applicable";
	case STORE_V_STALE:
		return "stale (the source changed)";
	case STORE_V_EXPIRED:
		return "expired";
	case STORE_V_OTHER_PYTHON:
		return "made for another Python build";
	}
	return "unknown";
}

void store_iter__init(struct store_iter *it, const struct store *s, const struct store_query *q)
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
