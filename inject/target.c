/* inject/: a target seen through its namespaces (docs/design.md §11,
 * "Targets in other namespaces").
 *
 * The agent names its channel after itself as it sees itself: its pid in
 * its own pid namespace, its uid in its own user namespace, a directory
 * inside its own root. The debugger therefore reads the target's NSpid
 * (/proc/PID/status: the last field is the innermost namespace), maps its
 * uid through /proc/PID/uid_map, and resolves the directory under
 * /proc/PID/root with openat2(RESOLVE_IN_ROOT), so that a symlink inside
 * the target's tree resolves in the target's tree, never in ours. The
 * socket is then reached as /proc/self/fd/DIRFD/agent-NSPID.sock.
 *
 * A target in another user namespace sees a host root as the overflow uid
 * (65534), which its agent refuses like any other user. A child of the
 * debugger joins the target's user namespace (setns needs CAP_SYS_ADMIN
 * over it: root, or the user who created it), takes the target's own uid
 * and gid there (kernel uid = the target's), connects, and passes the
 * connected descriptor back over SCM_RIGHTS; the agent's peer check is
 * unchanged and still refuses everyone else.
 */
#include "inject/inject-priv.h"
#include "wire/channel.h"

#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Whether /proc/self/ns/NAME and /proc/PID/ns/NAME are one namespace.
 * 1 same, 0 other, -errno when PID's cannot be read. */
static int same_ns(pid_t pid, const char *name)
{
	char path[64];
	struct stat a, b;
	snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)pid, name);
	if (stat(path, &b))
		return errno == ENOENT ? -ESRCH : -errno;
	snprintf(path, sizeof path, "/proc/self/ns/%s", name);
	if (stat(path, &a))
		return -errno;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* "Uid:", "Gid:" (first field: real) and "NSpid:" (last field) of
 * /proc/PID/status, as we see them. */
static int read_status(pid_t pid, uid_t *uid, gid_t *gid, pid_t *nspid)
{
	char path[64], line[512];
	int got = 0;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	*nspid = pid; /* kernels without NSpid: no pid namespaces seen */
	while (fgets(line, sizeof line, f)) {
		unsigned v;
		if (sscanf(line, "Uid: %u", &v) == 1) {
			*uid = (uid_t)v;
			got |= 1;
		} else if (sscanf(line, "Gid: %u", &v) == 1) {
			*gid = (gid_t)v;
			got |= 2;
		} else if (strncmp(line, "NSpid:", 6) == 0) {
			char *last = NULL, *save = NULL;
			for (char *t = strtok_r(line + 6, " \t\n", &save); t;
			     t = strtok_r(NULL, " \t\n", &save))
				last = t;
			if (last)
				*nspid = (pid_t)strtol(last, NULL, 10);
		}
	}
	fclose(f);
	return got == 3 && *nspid > 0 ? 0 : -EINVAL;
}

/* id as seen inside PID's user namespace, from /proc/PID/{uid,gid}_map
 * ("inside outside count", outside relative to our namespace when it is
 * not PID's). -ERANGE: id is not mapped there. */
int inject__map_id(pid_t pid, const char *map, unsigned id, unsigned *inside)
{
	char path[64], line[128];
	int rc = -ERANGE;
	snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, map);
	FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	while (fgets(line, sizeof line, f)) {
		unsigned long in, out, count;
		if (sscanf(line, "%lu %lu %lu", &in, &out, &count) == 3 && id >= out &&
		    id - out < count) {
			*inside = (unsigned)(in + (id - out));
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

/* XDG_RUNTIME_DIR from the target's initial environment (/proc/PID/environ:
 * the block the kernel gave it; the agent reads its own the same way). */
static void read_xdg(pid_t pid, char *buf, size_t cap, bool *has)
{
	char path[64];
	*has = false;
	snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	size_t len = 0, size = 0;
	char *env = NULL;
	for (;;) {
		if (len == size) {
			char *n = size < (1u << 20) ? realloc(env, size = size ? 2 * size : 4096)
						    : NULL;
			if (!n)
				break;
			env = n;
		}
		ssize_t r = read(fd, env + len, size - len);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	*has = env && wire_channel__xdg(env, env + len, buf, cap) == 0;
	free(env);
}

void inject__target_close(struct inject_target *t)
{
	if (t->rootfd >= 0)
		close(t->rootfd);
	t->rootfd = -1;
}

int inject__target_open(pid_t pid, struct inject_target *t, char *err, size_t cap)
{
	int rc;
	memset(t, 0, sizeof *t);
	t->pid = pid;
	t->rootfd = -1;
	if ((rc = read_status(pid, &t->uid, &t->gid, &t->nspid))) {
		snprintf(err, cap, "inject: pid %d: %s", (int)pid,
			 rc == -ESRCH ? "no such process" : "unreadable /proc/PID/status");
		return rc == -EINVAL ? -ESRCH : rc;
	}
	int su = same_ns(pid, "user"), sp = same_ns(pid, "pid"), sm = same_ns(pid, "mnt");
	if (su < 0 || sp < 0 || sm < 0) {
		rc = su < 0 ? su : sp < 0 ? sp : sm;
		snprintf(err, cap, "inject: pid %d: cannot read its namespaces (/proc/%d/ns): %s",
			 (int)pid, (int)pid, strerror(-rc));
		return rc;
	}
	t->other_user = !su;
	t->other_pid = !sp;
	t->other_mnt = !sm;
	unsigned v;
	if ((rc = inject__map_id(pid, "uid_map", t->uid, &v)) ||
	    (t->nsuid = v, rc = inject__map_id(pid, "gid_map", t->gid, &v))) {
		snprintf(err, cap,
			 "inject: pid %d: user namespace: its uid %u or gid %u is not mapped (%s)",
			 (int)pid, (unsigned)t->uid, (unsigned)t->gid, strerror(-rc));
		return rc;
	}
	t->nsgid = v;
	/* Our effective uid as the target's namespace sees it: its agent
	 * accepts its own uid and 0 there; anything else needs the join. */
	t->join_user = t->other_user &&
		       (inject__map_id(pid, "uid_map", geteuid(), &v) || (v != t->nsuid && v != 0));
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/root", (int)pid);
	t->rootfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (t->rootfd < 0) {
		rc = errno == ENOENT ? -ESRCH : -errno;
		snprintf(err, cap, "inject: pid %d: mount namespace: cannot open %s: %s", (int)pid,
			 path, strerror(-rc));
		return rc;
	}
	read_xdg(pid, t->xdg, sizeof t->xdg, &t->has_xdg);
	return 0;
}

/* setns into the target's user namespace, then its uid and gid there.
 * Runs in a forked child of a possibly threaded debugger: system calls
 * only. Supplementary groups are dropped where the namespace allows it. */
static int join_user(const struct inject_target *t, int nsfd)
{
	if (setns(nsfd, CLONE_NEWUSER))
		return -errno;
	(void)setgroups(0, NULL); /* "deny" in /proc/PID/setgroups: keep ours */
	if (setresgid(t->nsgid, t->nsgid, t->nsgid) || setresuid(t->nsuid, t->nsuid, t->nsuid))
		return -errno;
	return 0;
}

int inject__target_check_user(const struct inject_target *t, char *err, size_t cap)
{
	if (!t->join_user)
		return 0;
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/ns/user", (int)t->pid);
	int nsfd = open(path, O_RDONLY | O_CLOEXEC), rc, st;
	if (nsfd < 0) {
		rc = -errno;
		goto out;
	}
	pid_t c = fork();
	if (c < 0) {
		rc = -errno;
		close(nsfd);
		goto out;
	}
	if (c == 0)
		_exit(-join_user(t, nsfd));
	close(nsfd);
	while (waitpid(c, &st, 0) < 0 && errno == EINTR)
		;
	rc = WIFEXITED(st) ? -WEXITSTATUS(st) : -ECHILD;
out:
	if (rc)
		snprintf(
			err, cap,
			"inject: pid %d: user namespace: cannot join it as its uid %u (%s); its agent "
			"would refuse our uid %u, not mapped there",
			(int)t->pid, (unsigned)t->nsuid, strerror(-rc), (unsigned)geteuid());
	return rc;
}

/* connect() to path, in a child inside the target's user namespace when
 * needed; the connected descriptor comes back over SCM_RIGHTS. */
static int connect_as(const struct inject_target *t, const char *path, int *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (!t->join_user) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
			int rc = -errno;
			close(fd);
			return rc;
		}
		*out = fd;
		return 0;
	}
	char nspath[64];
	int sp[2], nsfd, st, rc;
	snprintf(nspath, sizeof nspath, "/proc/%d/ns/user", (int)t->pid);
	if ((nsfd = open(nspath, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp)) {
		rc = -errno;
		close(nsfd);
		return rc;
	}
	pid_t c = fork();
	if (c < 0) {
		rc = -errno;
		goto out;
	}
	if (c == 0) {
		int fd = -1, r = join_user(t, nsfd);
		if (!r && (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
			r = -errno;
		if (!r && connect(fd, (struct sockaddr *)&sa, sizeof sa))
			r = -errno;
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} u;
		struct iovec iov = { .iov_base = &r, .iov_len = sizeof r };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
		if (!r) {
			m.msg_control = u.buf;
			m.msg_controllen = sizeof u.buf;
			struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &fd, sizeof fd);
		}
		_exit(sendmsg(sp[1], &m, 0) < 0);
	}
	{
		int r = -EIO;
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} u;
		struct iovec iov = { .iov_base = &r, .iov_len = sizeof r };
		struct msghdr m = { .msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = u.buf,
				    .msg_controllen = sizeof u.buf };
		close(sp[1]);
		sp[1] = -1;
		ssize_t n = recvmsg(sp[0], &m, MSG_CMSG_CLOEXEC);
		struct cmsghdr *cm = n == (ssize_t)sizeof r ? CMSG_FIRSTHDR(&m) : NULL;
		rc = n == (ssize_t)sizeof r ? r : -EIO;
		if (cm && cm->cmsg_type == SCM_RIGHTS)
			memcpy(out, CMSG_DATA(cm), sizeof *out);
		else if (!rc)
			rc = -EIO;
		while (waitpid(c, &st, 0) < 0 && errno == EINTR)
			;
	}
out:
	close(nsfd);
	close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	return rc;
}

int inject__target_connect(const struct inject_target *t, int *out, char *err, size_t cap)
{
	char dir[WIRE_PATH_MAX], why[256] = "", path[WIRE_PATH_MAX];
	struct ucred cred;
	socklen_t len = sizeof cred;
	int dirfd = -1, fd = -1;
	int rc = wire_channel__place(t->rootfd, t->nsuid, t->uid, t->has_xdg ? t->xdg : NULL, false,
				     &dirfd, dir, sizeof dir, why, sizeof why);
	if (rc) {
		if (rc == -ENOENT)
			snprintf(err, cap, "inject: pid %d: no agent channel (%s)", (int)t->pid,
				 why[0] ? why : "no channel directory");
		else
			snprintf(err, cap, "inject: pid %d: channel refused: %s", (int)t->pid, why);
		return rc;
	}
	/* Files of agents killed before they could remove them. Their names
	 * carry pids of the target's pid namespace: judged only when it is
	 * ours (the agent sweeps its own directory when it starts). */
	if (!t->other_pid) {
		snprintf(path, sizeof path, "/proc/self/fd/%d", dirfd);
		wire_channel__sweep(path);
	}
	char name[32];
	snprintf(name, sizeof name, "agent-%d.sock", (int)t->nspid);
	snprintf(path, sizeof path, "/proc/self/fd/%d/%s", dirfd, name);
	/* No socket yet (a debugger waiting for the agent polls here): say
	 * so without forking into the user namespace. */
	if (t->join_user && faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW))
		rc = -errno;
	else
		rc = connect_as(t, path, &fd);
	close(dirfd);
	if (rc) {
		snprintf(err, cap, "inject: pid %d: connect %s/agent-%d.sock%s: %s", (int)t->pid,
			 dir, (int)t->nspid, t->other_mnt ? " (in its mount namespace)" : "",
			 strerror(-rc));
		return rc;
	}
	/* SO_PEERCRED gives the agent's pid in our namespace: the target. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) || cred.pid != t->pid) {
		snprintf(err, cap,
			 "inject: pid %d: %s/agent-%d.sock is served by pid %d, not the target",
			 (int)t->pid, dir, (int)t->nspid, (int)cred.pid);
		close(fd);
		return -EPERM;
	}
	*out = fd;
	return 0;
}

int inject__target_place(const struct inject_target *t, char *why, size_t cap)
{
	char dir[WIRE_PATH_MAX];
	int dirfd = -1;
	int rc = wire_channel__place(t->rootfd, t->nsuid, t->uid, t->has_xdg ? t->xdg : NULL, false,
				     &dirfd, dir, sizeof dir, why, cap);
	if (dirfd >= 0)
		close(dirfd);
	return rc;
}

int inject__target_sock_path(const struct inject_target *t, char *buf, size_t cap)
{
	char dir[WIRE_PATH_MAX], why[256];
	int dirfd = -1;
	int rc = wire_channel__place(t->rootfd, t->nsuid, t->uid, t->has_xdg ? t->xdg : NULL, false,
				     &dirfd, dir, sizeof dir, why, sizeof why);
	if (rc)
		return rc;
	close(dirfd);
	int n = t->other_mnt ? snprintf(buf, cap, "/proc/%d/root%s/agent-%d.sock", (int)t->pid, dir,
					(int)t->nspid)
			     : snprintf(buf, cap, "%s/agent-%d.sock", dir, (int)t->nspid);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* The agent is loaded from a memfd as /proc/self/fd/N: the target's root
 * must have a procfs at /proc. */
int inject__target_check_proc(const struct inject_target *t, char *err, size_t cap)
{
	struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	struct statfs sf;
	int fd = (int)syscall(SYS_openat2, t->rootfd, "proc", &how, sizeof how);
	int rc = fd < 0                          ? -errno
		 : fstatfs(fd, &sf)              ? -errno
		 : sf.f_type != PROC_SUPER_MAGIC ? -ENOENT
						 : 0;
	if (fd >= 0)
		close(fd);
	if (rc)
		snprintf(
			err, cap,
			"inject: pid %d: mount namespace: no procfs at /proc in its root (%s): the "
			"agent is loaded as /proc/self/fd/N",
			(int)t->pid, rc == -ENOENT ? "not mounted" : strerror(-rc));
	return rc;
}
