/* Driver for tests/e2e/test_attach_call.sh: remote calls in a live process.
 *
 *   attach_call calls PID N     seize/call/release rounds until N calls were
 *                               made (getpid, getppid, strlen of a string
 *                               written into the target) on every thread;
 *                               checks each result; prints timing figures and
 *                               how many calls ran on threads blocked in each
 *                               kind of syscall.
 *   attach_call dlopen PID LIB  dlopen(LIB, RTLD_NOW) on the best thread;
 *                               prints the handle and whether LIB is mapped.
 *   attach_call stall PID TID US  usleep(US) on thread TID: prints "calling",
 *                               then "returned" when the call came back and
 *                               the process was released (test_attach_regs.sh
 *                               kills it in between).
 * Exit 0 only if every check held.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attach/attach.h"

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(size_t)(p * (double)(n - 1))];
}

/* First field of /proc/PID/task/TID/syscall: the syscall a stopped thread
 * is in, -1 if none. */
static long task_syscall(pid_t pid, pid_t tid)
{
	char path[96], buf[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", (int)pid, (int)tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -2;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -2;
	buf[n] = 0;
	if (!strncmp(buf, "running", 7))
		return -3;
	return strtol(buf, NULL, 10);
}

static long parent_of(pid_t pid)
{
	char path[64], buf[4096], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strstr(buf, "PPid:");
	return p ? strtol(p + 5, NULL, 10) : -1;
}

static int do_calls(pid_t pid, long want)
{
	struct attach_proc *p;
	struct attach_elf *libc;
	uint64_t f_getpid, f_getppid, ret;
	long calls = 0, rounds = 0, in_read = 0, in_sleep = 0, in_futex = 0, in_other = 0,
	     not_sys = 0;
	long ppid = parent_of(pid);
	double *seize_us, *call_us, *release_us, t0;
	size_t nseize = 0, ncall = 0, cap = (size_t)want + 64, i, nthreads = 0;
	int err;

	seize_us = calloc(cap, sizeof(double));
	release_us = calloc(cap, sizeof(double));
	call_us = calloc(cap, sizeof(double));
	if (!seize_us || !release_us || !call_us)
		return 1;
	err = attach_proc__open(pid, &p);
	if (err) {
		char msg[256];
		attach_explain_error(pid, err, msg, sizeof(msg));
		fprintf(stderr, "%s\n", msg);
		return 1;
	}
	if (attach_proc__find_elf(p, "libc.so", &libc) ||
	    attach_elf__symbol(libc, "getpid", &f_getpid, NULL) ||
	    attach_elf__symbol(libc, "getppid", &f_getppid, NULL)) {
		fprintf(stderr, "%s\n", attach_proc__error(p));
		return 1;
	}
	while (calls < want) {
		t0 = now_us();
		err = attach_proc__seize_all(p);
		if (err) {
			fprintf(stderr, "round %ld: %s\n", rounds, attach_proc__error(p));
			return 1;
		}
		if (nseize < cap)
			seize_us[nseize++] = now_us() - t0;
		nthreads = attach_proc__thread_count(p);
		for (i = 0; i < attach_proc__thread_count(p); i++) {
			pid_t tid = attach_proc__thread(p, i);
			long sc = task_syscall(pid, tid);
			struct attach_arg s = { .data = "a string written by the debugger",
						.len = 33 };
			/* x86-64 numbers: read 0, clock_nanosleep 230, select 23,
			 * poll 7, futex 202 */
			if (sc == 0)
				in_read++;
			else if (sc == 230 || sc == 35 || sc == 23 || sc == 7 || sc == 270 ||
				 sc == 271)
				in_sleep++;
			else if (sc == 202)
				in_futex++;
			else if (sc >= 0)
				in_other++;
			else
				not_sys++;
			t0 = now_us();
			err = attach_proc__call(p, tid, f_getpid, NULL, 0, &ret);
			if (ncall < cap)
				call_us[ncall++] = now_us() - t0;
			if (err || ret != (uint64_t)pid) {
				fprintf(stderr, "getpid on %d: err %d ret %lld: %s\n", tid, err,
					(long long)ret, attach_proc__error(p));
				return 1;
			}
			err = attach_proc__call(p, tid, f_getppid, NULL, 0, &ret);
			if (err || (long)ret != ppid) {
				fprintf(stderr, "getppid on %d: err %d ret %lld want %ld: %s\n",
					tid, err, (long long)ret, ppid, attach_proc__error(p));
				return 1;
			}
			err = attach_proc__call_sym(p, tid, "libc.so", "strlen", &s, 1, &ret);
			if (err || ret != 32) {
				fprintf(stderr, "strlen on %d: err %d ret %lld: %s\n", tid, err,
					(long long)ret, attach_proc__error(p));
				return 1;
			}
			calls += 3;
		}
		t0 = now_us();
		if (attach_proc__release_all(p)) {
			fprintf(stderr, "%s\n", attach_proc__error(p));
			return 1;
		}
		release_us[rounds < (long)cap ? rounds : 0] = now_us() - t0;
		rounds++;
		usleep(2000); /* let the target run between rounds */
	}
	printf("calls %ld rounds %ld threads %zu\n", calls, rounds, nthreads);
	printf("threads-at-call: read %ld sleep %ld futex %ld other-syscall %ld not-in-syscall %ld\n",
	       in_read, in_sleep, in_futex, in_other, not_sys);
	printf("seize-all us: median %.1f p90 %.1f max %.1f\n", pct(seize_us, nseize, 0.5),
	       pct(seize_us, nseize, 0.9), pct(seize_us, nseize, 1.0));
	printf("release-all us: median %.1f\n", pct(release_us, (size_t)rounds, 0.5));
	printf("getpid round trip us: median %.1f p90 %.1f max %.1f\n", pct(call_us, ncall, 0.5),
	       pct(call_us, ncall, 0.9), pct(call_us, ncall, 1.0));
	attach_proc__close(p);
	free(seize_us);
	free(release_us);
	free(call_us);
	return 0;
}

static int do_dlopen(pid_t pid, const char *lib)
{
	struct attach_proc *p;
	uint64_t handle = 0;
	pid_t tid;
	size_t i;
	int err, mapped = 0;
	double t0, t1, t2;

	if ((err = attach_proc__open(pid, &p))) {
		char msg[256];
		attach_explain_error(pid, err, msg, sizeof(msg));
		fprintf(stderr, "%s\n", msg);
		return 1;
	}
	t0 = now_us();
	if (attach_proc__seize_all(p) || attach_proc__pick_call_thread(p, &tid)) {
		fprintf(stderr, "%s\n", attach_proc__error(p));
		return 1;
	}
	struct attach_arg a[2] = { { .data = lib, .len = strlen(lib) + 1 }, { .value = RTLD_NOW } };
	t1 = now_us();
	err = attach_proc__call_sym(p, tid, "libc.so", "dlopen", a, 2, &handle);
	t2 = now_us();
	if (err) {
		fprintf(stderr, "%s\n", attach_proc__error(p));
		return 1;
	}
	attach_proc__release_all(p);
	printf("dlopen(%s) on thread %d (%s) = 0x%llx in %.0f us (stopped %.0f us)\n", lib, tid,
	       tid == pid ? "main" : "other", (unsigned long long)handle, t2 - t1, now_us() - t0);
	if (attach_proc__refresh_maps(p) == 0) {
		for (i = 0; i < attach_proc__map_count(p); i++) {
			const char *path = attach_proc__map(p, i)->path;
			const char *b = strrchr(path, '/');
			if (b && !strncmp(b + 1, lib, strlen(lib)))
				mapped = 1;
		}
	}
	printf("%s mapped: %s\n", lib, mapped ? "yes" : "no");
	attach_proc__close(p);
	return handle && mapped ? 0 : 1;
}

static int do_stall(pid_t pid, pid_t tid, long us)
{
	struct attach_proc *p;
	uint64_t ret = 0, arg = (uint64_t)us;
	int err;

	if ((err = attach_proc__open(pid, &p))) {
		fprintf(stderr, "open %d: %d\n", pid, err);
		return 1;
	}
	if ((err = attach_proc__seize_all(p))) {
		fprintf(stderr, "%s\n", attach_proc__error(p));
		return 1;
	}
	printf("calling\n");
	fflush(stdout);
	struct attach_arg a = { .value = arg };
	err = attach_proc__call_sym(p, tid, "libc.so", "usleep", &a, 1, &ret);
	if (err || ret != 0) {
		fprintf(stderr, "usleep on %d: err %d ret %lld: %s\n", tid, err, (long long)ret,
			attach_proc__error(p));
		return 1;
	}
	if (attach_proc__release_all(p)) {
		fprintf(stderr, "%s\n", attach_proc__error(p));
		return 1;
	}
	attach_proc__close(p);
	printf("returned\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "stall"))
		return do_stall((pid_t)atoi(argv[2]), (pid_t)atoi(argv[3]), atol(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "calls"))
		return do_calls((pid_t)atoi(argv[2]), atol(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "dlopen"))
		return do_dlopen((pid_t)atoi(argv[2]), argv[3]);
	fprintf(stderr, "usage: attach_call calls PID N | attach_call dlopen PID LIB | "
			"attach_call stall PID TID US\n");
	return 2;
}
