/* wire/: channel paths and whole reads/writes (docs/formats/channel.md). */
#include "wire/channel.h"
#include "wire/msg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <poll.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int wire_channel__path(const char *dir, pid_t pid, const char *ext, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s/agent-%d.%s", dir, (int)pid, ext);
	return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : 0;
}

int wire_channel__xdg(const char *p, const char *end, char *buf, size_t cap)
{
	static const char key[] = "XDG_RUNTIME_DIR=";
	while (p < end) {
		const char *nul = memchr(p, 0, (size_t)(end - p));
		const char *e = nul ? nul : end;
		size_t n = (size_t)(e - p);
		if (n > sizeof key - 1 && memcmp(p, key, sizeof key - 1) == 0) {
			n -= sizeof key - 1;
			if (n >= cap)
				return -ENAMETOOLONG;
			memcpy(buf, p + sizeof key - 1, n);
			buf[n] = 0;
			return 0;
		}
		p = e + 1;
	}
	return -ENOENT;
}

/* path resolved as the process whose root is rootfd sees it: symlinks
 * inside that tree stay inside it, magic links are refused. */
static int open_in_root(int rootfd, const char *path, uint64_t flags)
{
	struct open_how how = { .flags = flags | O_PATH | O_CLOEXEC,
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	int fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
	return fd < 0 ? -errno : fd;
}

static int why_set(char *why, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int why_set(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (cap)
		vsnprintf(why, cap, fmt, ap);
	va_end(ap);
	return -EPERM;
}

/* The rules of a channel directory, on its opened descriptor: a
 * directory (not a symlink), owned by uid, nothing for group or others. */
static int check_fd(int fd, uid_t uid, const char *name, char *why, size_t cap)
{
	struct stat st;
	if (fstat(fd, &st))
		return -errno;
	if (S_ISLNK(st.st_mode))
		return why_set(why, cap, "%s is a symlink", name);
	if (!S_ISDIR(st.st_mode))
		return why_set(why, cap, "%s is not a directory", name);
	if (st.st_uid != uid)
		return why_set(why, cap, "%s is owned by uid %u, not %u", name, (unsigned)st.st_uid,
			       (unsigned)uid);
	if (st.st_mode & 077)
		return why_set(why, cap, "%s is open to group or others (mode %03o)", name,
			       (unsigned)(st.st_mode & 0777));
	return 0;
}

/* parent/name, created 0700 when asked, checked. -ENOENT when missing. */
static int sub_dir(int parent, const char *pname, const char *name, uid_t uid, bool create,
		   char *dir, size_t cap, char *why, size_t wcap)
{
	int n = snprintf(dir, cap, "%s/%s", strcmp(pname, "/") ? pname : "", name);
	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	if (create && mkdirat(parent, name, 0700) && errno != EEXIST) {
		int rc = -errno;
		why_set(why, wcap, "cannot create %s: %s", dir, strerror(-rc));
		return rc;
	}
	struct open_how how = { .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS };
	int fd = (int)syscall(SYS_openat2, parent, name, &how, sizeof how);
	if (fd < 0) {
		/* ELOOP: RESOLVE_NO_SYMLINKS met a symlink at the name. */
		if (errno == ELOOP)
			return why_set(why, wcap, "%s is a symlink", dir);
		return -errno;
	}
	int rc = check_fd(fd, uid, dir, why, wcap);
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

/* The private fallbacks in /tmp once /tmp/suture-<uid> is taken by
 * someone else: /tmp/suture-<uid>.<random>, found again by ownership
 * (only uid or root can own one). The smallest name wins, so that two
 * agents creating one each at once, and every debugger, agree. */
static int scan_private(int tmpfd, uid_t uid, uid_t owner, bool create, char *dir, size_t cap)
{
	char prefix[32], best[64] = "";
	snprintf(prefix, sizeof prefix, "suture-%u.", (unsigned)uid);
	for (int round = 0; round < 2; round++) {
		int dfd = openat(tmpfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
		struct dirent *e;
		if (!d) {
			if (dfd >= 0)
				close(dfd);
			return -errno;
		}
		while ((e = readdir(d))) {
			char tmp[WIRE_PATH_MAX], w[8];
			if (strncmp(e->d_name, prefix, strlen(prefix)) ||
			    strlen(e->d_name) >= sizeof best ||
			    (best[0] && strcmp(e->d_name, best) >= 0))
				continue;
			int fd = sub_dir(tmpfd, "/tmp", e->d_name, owner, false, tmp, sizeof tmp, w,
					 0);
			if (fd >= 0) {
				close(fd);
				snprintf(best, sizeof best, "%s", e->d_name);
			}
		}
		closedir(d);
		if (best[0] || !create || round)
			break;
		uint64_t r;
		if (getrandom(&r, sizeof r, 0) != sizeof r)
			return -EIO;
		char name[64];
		snprintf(name, sizeof name, "%s%016llx", prefix, (unsigned long long)r);
		if (mkdirat(tmpfd, name, 0700))
			return -errno;
	}
	if (!best[0])
		return -ENOENT;
	char w[8];
	return sub_dir(tmpfd, "/tmp", best, owner, false, dir, cap, w, 0);
}

int wire_channel__place(int rootfd, uid_t uid, uid_t owner, const char *xdg, bool create,
			int *dirfd, char *dir, size_t cap, char *why, size_t wcap)
{
	char name[32], note[160] = "";
	int pfd, fd, rc;
	if (wcap)
		why[0] = 0;
	*dirfd = -1;
	if (xdg && xdg[0] == '/') {
		pfd = open_in_root(rootfd, xdg, O_DIRECTORY);
		if (pfd >= 0) {
			/* XDG Base Directory: owned by the user, 0700. */
			char label[WIRE_PATH_MAX];
			snprintf(label, sizeof label, "XDG_RUNTIME_DIR %s", xdg);
			rc = check_fd(pfd, owner, label, why, wcap);
			fd = rc ? rc
				: sub_dir(pfd, xdg, "suture", owner, create, dir, cap, why, wcap);
			close(pfd);
			if (fd == -ENOENT && wcap)
				snprintf(why, wcap, "no %s/suture", xdg);
			if (fd < 0)
				return fd;
			*dirfd = fd;
			return 0;
		}
		/* Set but absent in this root (an environment carried into a
		 * container): /tmp, and say so. */
		snprintf(note, sizeof note, "; XDG_RUNTIME_DIR %s: %s", xdg, strerror(-pfd));
	}
	pfd = open_in_root(rootfd, "/tmp", O_DIRECTORY);
	if (pfd < 0) {
		if (wcap)
			snprintf(why, wcap, "no /tmp in its root (%s)%s", strerror(-pfd), note);
		return pfd == -ENOENT ? -ENOENT : -EPERM;
	}
	snprintf(name, sizeof name, "suture-%u", (unsigned)uid);
	char squat[200] = "";
	fd = sub_dir(pfd, "/tmp", name, owner, create, dir, cap, squat, sizeof squat);
	if (fd == -EPERM) /* taken by someone else: a private one instead */
		fd = scan_private(pfd, uid, owner, create, dir, cap);
	close(pfd);
	if (fd < 0) {
		if (wcap && squat[0] && fd == -ENOENT)
			snprintf(why, wcap, "%s, and no private /tmp/%s.* yet%s", squat, name,
				 note);
		else if (wcap && squat[0])
			snprintf(why, wcap, "%s%s", squat, note);
		else if (wcap)
			snprintf(why, wcap, "no /tmp/%s%s", name, note);
		return fd;
	}
	if (wcap && squat[0])
		snprintf(why, wcap, "%s: passed over%s", squat, note);
	*dirfd = fd;
	return 0;
}

/* Seconds since the epoch at which pid started (field 22 of
 * /proc/PID/stat, clock ticks after boot, plus btime of /proc/stat), or
 * -ESRCH when it is gone or a zombie (a pid nobody serves from). */
static int proc_started(pid_t pid, time_t *start)
{
	char path[64], buf[1024];
	unsigned long long ticks = 0, btime = 0;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ESRCH;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -ESRCH;
	buf[n] = 0;
	const char *p = strrchr(buf, ')'); /* comm may hold spaces and parens */
	if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
		return -ESRCH;
	/* After ") ": field 3 (state); starttime is field 22. */
	if (sscanf(p + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d "
		   "%*d %llu",
		   &ticks) != 1)
		return -EINVAL;
	FILE *f = fopen("/proc/stat", "re");
	if (!f)
		return -errno;
	while (fgets(buf, sizeof buf, f))
		if (sscanf(buf, "btime %llu", &btime) == 1)
			break;
	fclose(f);
	long hz = sysconf(_SC_CLK_TCK);
	if (!btime || hz <= 0)
		return -EINVAL;
	*start = (time_t)(btime + ticks / (unsigned long long)hz);
	return 0;
}

/* One agent-<pid>.lock: removed with its sockets when stale. Staleness
 * is decided before the flock is tried, so that a live agent that is just
 * starting (open, then flock) never meets our lock instead of its own. */
static int sweep_one(const char *dir, pid_t pid)
{
	char path[WIRE_PATH_MAX];
	struct stat fst, pst;
	time_t start = 0;
	int rc = 0, fd;
	if (wire_channel__path(dir, pid, "lock", path, sizeof path) || lstat(path, &pst) ||
	    !S_ISREG(pst.st_mode))
		return 0;
	int alive = proc_started(pid, &start);
	if (alive == -EINVAL)
		return 0; /* cannot tell: keep */
	/* Whole seconds on both sides: a lock written in the second the
	 * process started is its own (its agent serves, is starting, or left
	 * it on detach). */
	if (alive == 0 && pst.st_mtime >= start - 1)
		return 0;
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return 0;
	/* Held: an agent serves from it after all. Replaced since the lstat:
	 * a new agent's. */
	if (flock(fd, LOCK_EX | LOCK_NB) || fstat(fd, &fst) || fst.st_ino != pst.st_ino ||
	    fst.st_dev != pst.st_dev)
		goto out;
	static const char *const exts[] = { "sock", "sock-new" };
	for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
		if (!wire_channel__path(dir, pid, exts[i], path, sizeof path))
			unlink(path);
	wire_channel__path(dir, pid, "lock", path, sizeof path);
	rc = unlink(path) == 0;
out:
	close(fd); /* drops the flock */
	return rc;
}

/* One tree-<pid>.sock (a debugger's tree socket, heal/tree.c): removed
 * when its pid is dead or was started after the socket was made (reused).
 * Nothing holds a lock on it: a live debugger's pid is alive and older. */
static int sweep_tree(const char *dir, pid_t pid)
{
	char path[WIRE_PATH_MAX];
	struct stat st;
	time_t start = 0;
	if (wire_channel__tree_path(dir, pid, path, sizeof path) || lstat(path, &st) ||
	    !S_ISSOCK(st.st_mode))
		return 0;
	int alive = proc_started(pid, &start);
	if (alive == -EINVAL || (alive == 0 && st.st_mtime >= start - 1))
		return 0;
	return unlink(path) == 0;
}

int wire_channel__tree_path(const char *dir, pid_t pid, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s/tree-%d.sock", dir, (int)pid);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int wire_channel__sweep(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int cleaned = 0;
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		int pid, len = 0;
		if (sscanf(e->d_name, "agent-%d.lock%n", &pid, &len) == 1 && pid > 0 &&
		    e->d_name[len] == 0)
			cleaned += sweep_one(dir, (pid_t)pid);
		else if (sscanf(e->d_name, "tree-%d.sock%n", &pid, &len) == 1 && pid > 0 &&
			 e->d_name[len] == 0)
			cleaned += sweep_tree(dir, (pid_t)pid);
	}
	closedir(d);
	return cleaned;
}

int wire_channel__write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int wire_channel__read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len) {
		ssize_t n = recv(fd, p, len, 0);
		if (n == 0)
			return -EPIPE;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Until fd has a byte to read, at most timeout_ms (-1: no limit). 0,
 * -ETIMEDOUT, or -errno of poll. */
static int wait_readable(int fd, int timeout_ms)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	int n = poll(&pf, 1, timeout_ms);
	return n < 0 ? -errno : n == 0 ? -ETIMEDOUT : 0;
}

int wire_channel__read_frame(int fd, int timeout_ms, struct wire_hdr *h, uint8_t **payload)
{
	uint8_t hdr[WIRE_HDR_SIZE];
	*payload = NULL;
	int rc = wait_readable(fd, timeout_ms);
	if (rc)
		return rc;
	rc = wire_channel__read_all(fd, hdr, sizeof hdr);
	if (rc)
		return rc == -EAGAIN ? -ETIMEDOUT : -EPIPE;
	if (wire_msg__decode_hdr(hdr, hdr + sizeof hdr, h))
		return -EPROTO;
	if (!h->len)
		return 0;
	uint8_t *p = malloc(h->len);
	if (!p)
		return -ENOMEM;
	if ((rc = wire_channel__read_all(fd, p, h->len))) {
		free(p);
		return rc == -EAGAIN ? -ETIMEDOUT : -EPIPE;
	}
	*payload = p;
	return 0;
}

/* What a receive asks for at most: a burst of small frames in one call,
 * few fresh pages (each costs a page fault the first time). */
#define READER_CHUNK 16384u

bool wire_reader__has_frame(const struct wire_reader *r)
{
	struct wire_hdr h;
	size_t have = r->len - r->off;
	return have >= WIRE_HDR_SIZE &&
	       wire_msg__decode_hdr(r->buf + r->off, r->buf + r->off + WIRE_HDR_SIZE, &h) == 0 &&
	       have - WIRE_HDR_SIZE >= h.len;
}

int wire_reader__next(struct wire_reader *r, int fd, int timeout_ms, struct wire_hdr *h,
		      uint8_t **payload)
{
	*payload = NULL;
	for (;;) {
		size_t have = r->len - r->off, need = WIRE_HDR_SIZE;
		if (have >= WIRE_HDR_SIZE) {
			const uint8_t *p = r->buf + r->off;
			if (wire_msg__decode_hdr(p, p + WIRE_HDR_SIZE, h))
				return -EPROTO;
			need += h->len;
			if (have >= need) {
				if (h->len) {
					if (!(*payload = malloc(h->len)))
						return -ENOMEM;
					memcpy(*payload, p + WIRE_HDR_SIZE, h->len);
				}
				r->off += need;
				return 0;
			}
		}
		/* Room for the rest of this frame, and for what follows. */
		if (r->off) {
			memmove(r->buf, r->buf + r->off, have);
			r->off = 0;
			r->len = have;
		}
		size_t want = need > READER_CHUNK ? need : READER_CHUNK;
		if (r->cap < want) {
			uint8_t *nb = realloc(r->buf, want);
			if (!nb)
				return -ENOMEM;
			r->buf = nb;
			r->cap = want;
		}
		/* The bound is for a frame's first byte; the rest of a frame
		 * that has begun comes without one (the peer is writing it). */
		int rc = have == 0 ? wait_readable(fd, timeout_ms) : 0;
		if (rc)
			return rc;
		ssize_t n = recv(fd, r->buf + r->len, r->cap - r->len, 0);
		if (n == 0)
			return -EPIPE;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -EPIPE;
		}
		r->len += (size_t)n;
	}
}

void wire_reader__free(struct wire_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}
