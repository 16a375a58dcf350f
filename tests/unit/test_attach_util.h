/* Helpers shared by the attach unit tests: child processes the test starts
 * itself, with a "ready" handshake over a pipe, ended by pid. */
#ifndef TEST_ATTACH_UTIL_H
#define TEST_ATTACH_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* fork() for a test's own child processes: the child is killed when the
 * test process ends, so a failed assertion (which ends the test before its
 * cleanup runs) never leaves a busy child behind. */
static inline pid_t test_fork(void)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
	}
	return pid;
}

struct child {
	pid_t pid;
	int rd; /* child -> parent */
	int wr; /* parent -> child */
};

/* Runs fn(in, out) in a forked child; fn writes 'R' to out when ready, and
 * its return value is the exit status. Waits for the 'R'. */
static inline struct child child_start(int (*fn)(int in, int out))
{
	int up[2], down[2];
	struct child c = { -1, -1, -1 };
	char b = 0;

	if (pipe(up) || pipe(down))
		return c;
	c.pid = test_fork();
	if (c.pid == 0) {
		close(up[0]);
		close(down[1]);
		_exit(fn(down[0], up[1]));
	}
	close(up[1]);
	close(down[0]);
	c.rd = up[0];
	c.wr = down[1];
	if (read(c.rd, &b, 1) != 1 || b != 'R') {
		kill(c.pid, SIGKILL);
		waitpid(c.pid, NULL, 0);
		c.pid = -1;
	}
	return c;
}

/* Ends the child (by pid) if still running; returns its wait status. */
static inline int child_end(struct child *c)
{
	int st = -1;

	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, &st, 0);
		c->pid = -1;
	}
	if (c->rd >= 0)
		close(c->rd);
	if (c->wr >= 0)
		close(c->wr);
	c->rd = c->wr = -1;
	return st;
}

/* Waits for the child's exit (timeout ms); returns the status or -1. */
static inline int child_wait(struct child *c, int ms)
{
	int st, i;

	for (i = 0; i < ms; i++) {
		pid_t r = waitpid(c->pid, &st, WNOHANG);
		if (r == c->pid) {
			c->pid = -1;
			return st;
		}
		usleep(1000);
	}
	return -1;
}

static inline char proc_state(pid_t pid, pid_t tid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] ? p[2] : 0;
}

static inline long tracer_of(pid_t pid, pid_t tid)
{
	char path[64], buf[4096], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strstr(buf, "TracerPid:");
	return p ? strtol(p + 10, NULL, 10) : -1;
}

#endif
