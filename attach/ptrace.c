/* attach/: stopping and releasing every thread of a process.
 *
 * PTRACE_SEIZE does not stop a thread and does not send it a signal (unlike
 * PTRACE_ATTACH's SIGSTOP, which a process could observe). PTRACE_INTERRUPT
 * then asks for a stop; the thread reports one of (ptrace(2), "Stopped
 * states"):
 *   - an interrupt stop: PTRACE_EVENT_STOP with SIGTRAP;
 *   - a group-stop: PTRACE_EVENT_STOP with SIGSTOP/SIGTSTP/SIGTTIN/SIGTTOU,
 *     when the process is stopped by job control;
 *   - a signal-delivery-stop (no event): a signal was being delivered when the
 *     interrupt arrived. Any ptrace stop consumes the pending interrupt
 *     (kernel/signal.c ptrace_stop(): "any trap clears pending STOP trap"),
 *     so this is the stop; the signal is kept with its siginfo and injected
 *     again when the thread is released, never lost.
 * A thread created while we seize is found on the next pass over
 * /proc/PID/task; when a pass finds no new thread while all known ones are
 * stopped, no thread is left running (only a running thread can clone).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attach/attach-priv.h"

#define SEIZE_STOP_TIMEOUT_MS 3000
/* How often a thread that has not stopped yet is checked for having exited. */
#define SEIZE_SLICE_MS 20
#define SEIZE_MAX_PASSES 1000

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int attach__wait(pid_t tid, int *status, unsigned timeout_ms)
{
	uint64_t start = now_ns(), el;
	struct timespec nap;
	pid_t r;
	unsigned spins = 0;

	for (;;) {
		r = waitpid(tid, status, __WALL | (timeout_ms ? WNOHANG : 0));
		if (r == tid)
			return 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		/* Nothing yet. Yield first (a stop usually comes within a few
		 * microseconds, and yielding lets the tracee run on a busy
		 * core), then sleep in growing steps up to 1 ms. */
		el = now_ns() - start;
		if (el >= (uint64_t)timeout_ms * 1000000u)
			return -ETIMEDOUT;
		if (++spins < 64) {
			sched_yield();
			continue;
		}
		/* A thread of a process that exited stays a zombie, never
		 * reported, while its group has other traced threads we have
		 * not reaped: ask /proc now and then rather than wait it out. */
		if (spins % 32 == 0 && !attach__alive(tid))
			return -ESRCH;
		nap.tv_sec = 0;
		nap.tv_nsec = (long)(el / 16 < 1000000 ? el / 16 + 10000 : 1000000);
		nanosleep(&nap, NULL);
	}
}

int attach__read_status(pid_t pid, pid_t tid, char *buf, size_t cap)
{
	char path[64];
	ssize_t n;
	int fd;

	if (tid)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	else
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	buf[n] = 0;
	return 0;
}

/* A numeric field ("TracerPid:", "Uid:") of /proc/PID[/task/TID]/status. */
static long status_field(pid_t pid, pid_t tid, const char *key)
{
	char buf[4096];
	const char *p;

	if (attach__read_status(pid, tid, buf, sizeof(buf)))
		return -1;
	p = strstr(buf, key);
	if (!p)
		return -1;
	return strtol(p + strlen(key), NULL, 10);
}

long attach__tracer(pid_t pid)
{
	return status_field(pid, 0, "TracerPid:");
}

static bool have_cap_sys_ptrace(void)
{
	char buf[4096];
	const char *p;
	ssize_t n;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	p = strstr(buf, "CapEff:");
	return p && (strtoull(p + 7, NULL, 16) >> 19 & 1); /* CAP_SYS_PTRACE = 19 */
}

void attach_explain_error(pid_t pid, int err, char *buf, size_t size)
{
	long tracer, uid, scope = -1;
	char s[16];
	int fd;
	ssize_t n;

	if (err == -ESRCH) {
		snprintf(buf, size, "attach: pid %d: no such process", (int)pid);
		return;
	}
	if (err != -EPERM && err != -EACCES && err != -EBUSY) {
		snprintf(buf, size, "attach: pid %d: %s", (int)pid, strerror(-err));
		return;
	}
	tracer = status_field(pid, 0, "TracerPid:");
	if (tracer > 0 && tracer != getpid()) {
		snprintf(buf, size, "attach: pid %d: already traced by pid %ld (a debugger?)",
			 (int)pid, tracer);
		return;
	}
	fd = open("/proc/sys/kernel/yama/ptrace_scope", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, s, sizeof(s) - 1);
		close(fd);
		if (n > 0) {
			s[n] = 0;
			scope = strtol(s, NULL, 10);
		}
	}
	uid = status_field(pid, 0, "Uid:");
	if (scope == 3) {
		snprintf(
			buf, size,
			"attach: pid %d: not permitted: Yama ptrace_scope=3 forbids all ptrace attach",
			(int)pid);
	} else if (scope >= 1 && !have_cap_sys_ptrace()) {
		snprintf(
			buf, size,
			"attach: pid %d: not permitted: Yama ptrace_scope=%ld allows %s; run with CAP_SYS_PTRACE (e.g. as root) or set kernel.yama.ptrace_scope=0",
			(int)pid, scope, scope == 1 ? "only descendants" : "only CAP_SYS_PTRACE");
	} else if (uid >= 0 && uid != (long)getuid() && !have_cap_sys_ptrace()) {
		snprintf(
			buf, size,
			"attach: pid %d: not permitted: it runs as uid %ld, we are uid %ld without CAP_SYS_PTRACE",
			(int)pid, uid, (long)getuid());
	} else if (!have_cap_sys_ptrace()) {
		snprintf(
			buf, size,
			"attach: pid %d: not permitted: not dumpable (setuid/setcap or prctl) and we lack CAP_SYS_PTRACE",
			(int)pid);
	} else {
		snprintf(buf, size,
			 "attach: pid %d: not permitted (LSM policy?) despite CAP_SYS_PTRACE",
			 (int)pid);
	}
}

void attach__requeue_signal(pid_t pid, pid_t tid, const siginfo_t *si, int sig)
{
	siginfo_t copy = *si;

	/* rt_tgsigqueueinfo keeps the siginfo, but refuses kernel-made or
	 * kill()-made si_codes (>= 0) coming from another process: then the
	 * signal goes again with tgkill (same number, our pid as sender). */
	if (si->si_signo != sig || syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, &copy) < 0)
		syscall(SYS_tgkill, pid, tid, sig);
}

struct attach_thread *attach__thread_find(struct attach_proc *proc, pid_t tid)
{
	size_t i;

	for (i = 0; i < proc->nthreads; i++)
		if (proc->threads[i].tid == tid)
			return &proc->threads[i];
	return NULL;
}

static void thread_remove(struct attach_proc *proc, pid_t tid)
{
	struct attach_thread *t = attach__thread_find(proc, tid);
	size_t i;

	if (!t)
		return;
	i = (size_t)(t - proc->threads);
	memmove(t, t + 1, (proc->nthreads - i - 1) * sizeof(*t));
	proc->nthreads--;
}

static int thread_add(struct attach_proc *proc, pid_t tid)
{
	struct attach_thread *t;
	size_t cap;

	if (proc->nthreads == proc->cap_threads) {
		cap = proc->cap_threads ? proc->cap_threads * 2 : 16;
		t = realloc(proc->threads, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		proc->threads = t;
		proc->cap_threads = cap;
	}
	t = &proc->threads[proc->nthreads++];
	memset(t, 0, sizeof(*t));
	t->tid = tid;
	return 0;
}

/* Decode a wait status of a seized thread into its stop kind. Returns 0 when
 * stopped, -ESRCH when the thread is gone. */
static int record_stop(struct attach_thread *t, int status)
{
	int sig, event;

	if (WIFEXITED(status) || WIFSIGNALED(status))
		return -ESRCH;
	if (!WIFSTOPPED(status))
		return -EINVAL;
	sig = WSTOPSIG(status);
	event = status >> 16;
	if (event == PTRACE_EVENT_STOP) {
		t->stop = (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)
				  ? ATTACH_STOP_GROUP
				  : ATTACH_STOP_INTERRUPT;
		return 0;
	}
	if (event == 0) {
		t->stop = ATTACH_STOP_SIGNAL;
		t->pending_sig = sig;
		if (ptrace(PTRACE_GETSIGINFO, t->tid, NULL, &t->pending_info) < 0)
			memset(&t->pending_info, 0, sizeof(t->pending_info));
		return 0;
	}
	/* No options were set, so no other event can come; be safe. */
	t->stop = ATTACH_STOP_INTERRUPT;
	return 0;
}

static int thread_state(pid_t pid, pid_t tid, char *state)
{
	char path[64], buf[512];
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ESRCH;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ESRCH;
	buf[n] = 0;
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2])
		return -EINVAL;
	*state = p[2];
	return 0;
}

/* Seize and interrupt one thread, adding it to the table. 1: added, 0:
 * skipped (gone or zombie), <0: error with message. */
static int seize_one(struct attach_proc *proc, pid_t tid)
{
	char state, msg[sizeof(proc->err)];
	long tracer;
	int err;

	if (thread_state(proc->pid, tid, &state) || state == 'Z' || state == 'X')
		return 0;
	/* TRACESYSGOOD: syscall-stops (only ever requested during a remote
	 * call) report SIGTRAP | 0x80, never confused with a real SIGTRAP. */
	if (ptrace(PTRACE_SEIZE, tid, NULL, (void *)(uintptr_t)PTRACE_O_TRACESYSGOOD) < 0) {
		err = -errno;
		if (err == -ESRCH)
			return attach__alive(proc->pid)
				       ? 0
				       : attach__fail(proc, -ESRCH,
						      "process exited while being seized");
		if (err == -EPERM) {
			/* A thread that is exiting refuses attach with EPERM
			 * (kernel/ptrace.c: exit_state set): not a permission
			 * problem when the thread is gone or a zombie now. */
			if (tid != proc->pid &&
			    (thread_state(proc->pid, tid, &state) || state == 'Z' || state == 'X'))
				return 0;
			if (!attach__alive(proc->pid))
				return attach__fail(proc, -ESRCH,
						    "process exited while being seized");
			tracer = status_field(proc->pid, tid, "TracerPid:");
			if (tracer > 0 && tracer != getpid())
				return attach__fail(proc, -EBUSY,
						    "already traced by pid %ld (a debugger?)",
						    tracer);
			attach_explain_error(proc->pid, err, msg, sizeof(msg));
			snprintf(proc->err, sizeof(proc->err), "%s", msg);
			return -EPERM;
		}
		return attach__fail(proc, err, "ptrace(SEIZE, %d): %s", (int)tid, strerror(-err));
	}
	err = thread_add(proc, tid);
	if (err) {
		ptrace(PTRACE_DETACH, tid, NULL, NULL); /* not stopped yet: ESRCH, fine */
		return attach__fail(proc, err, "out of memory");
	}
	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) < 0) {
		err = -errno;
		if (err == -ESRCH) {
			/* Exited between SEIZE and INTERRUPT: reap its report. */
			int st;
			attach__wait(tid, &st, 100);
			thread_remove(proc, tid);
			return attach__alive(proc->pid)
				       ? 0
				       : attach__fail(proc, -ESRCH,
						      "process exited while being seized");
		}
		return attach__fail(proc, err, "ptrace(INTERRUPT, %d): %s", (int)tid,
				    strerror(-err));
	}
	return 1;
}

static int wait_stopped(struct attach_proc *proc)
{
	size_t i;
	int status, err;

	for (i = 0; i < proc->nthreads;) {
		struct attach_thread *t = &proc->threads[i];
		if (t->stop != ATTACH_STOP_NONE) {
			i++;
			continue;
		}
		/* Wait in slices: a thread that exits while being seized may
		 * linger as a zombie that never reports a stop (a group
		 * leader waiting for its other threads), so look at its state
		 * between slices instead of waiting out the whole bound. */
		for (unsigned waited = 0;;) {
			err = attach__wait(t->tid, &status, SEIZE_SLICE_MS);
			if (err != -ETIMEDOUT)
				break;
			if (!attach__alive(t->tid)) {
				err = -ESRCH;
				break;
			}
			waited += SEIZE_SLICE_MS;
			if (waited >= SEIZE_STOP_TIMEOUT_MS)
				break;
		}
		if (err == 0)
			err = record_stop(t, status);
		if (err == -ESRCH || err == -ECHILD) {
			pid_t tid = t->tid;
			thread_remove(proc, tid);
			if (!attach__alive(proc->pid))
				return attach__fail(proc, -ESRCH,
						    "process exited while being seized");
			continue;
		}
		if (err == -ETIMEDOUT)
			return attach__fail(
				proc, -ETIMEDOUT,
				"thread %d did not stop within %d ms (uninterruptible sleep?)",
				(int)t->tid, SEIZE_STOP_TIMEOUT_MS);
		if (err)
			return attach__fail(proc, err, "waitpid(%d): %s", (int)t->tid,
					    strerror(-err));
		i++;
	}
	return 0;
}

/* One pass over /proc/PID/task; returns the number of new threads seized. */
static int seize_pass(struct attach_proc *proc)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	long tid;
	int added = 0, r;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)proc->pid);
	d = opendir(path);
	if (!d)
		return attach__fail(proc, -ESRCH, "process exited");
	while ((de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		tid = strtol(de->d_name, NULL, 10);
		if (tid <= 0 || attach__thread_find(proc, (pid_t)tid))
			continue;
		r = seize_one(proc, (pid_t)tid);
		if (r < 0) {
			closedir(d);
			return r;
		}
		added += r;
	}
	closedir(d);
	return added;
}

int attach_proc__seize_all(struct attach_proc *proc)
{
	char state;
	long tracer;
	size_t i;
	int r, pass;

	if (proc->seized)
		return 0;
	r = attach_proc__state(proc, &state);
	if (r)
		return r;
	if (state == 'Z' || state == 'X')
		return attach__fail(proc, -ESRCH, "process exited (zombie)");
	tracer = status_field(proc->pid, 0, "TracerPid:");
	if (tracer > 0 && tracer != getpid())
		return attach__fail(proc, -EBUSY, "already traced by pid %ld (a debugger?)",
				    tracer);

	proc->seized = true; /* from here on every failure releases */
	proc->maps_fresh = false;
	for (pass = 0; pass < SEIZE_MAX_PASSES; pass++) {
		r = seize_pass(proc);
		if (r < 0)
			goto fail;
		if (r == 0 && (pass > 0 || proc->nthreads == 0))
			break;
		r = wait_stopped(proc);
		if (r < 0)
			goto fail;
	}
	if (pass == SEIZE_MAX_PASSES) {
		r = attach__fail(proc, -EAGAIN, "threads keep appearing (%d passes)", pass);
		goto fail;
	}
	if (proc->nthreads == 0) {
		r = attach__fail(proc, -ESRCH, "process exited while being seized");
		goto fail;
	}
	/* The main thread first, when it is alive: callers may rely on it. */
	for (i = 1; i < proc->nthreads; i++) {
		if (proc->threads[i].tid == proc->pid) {
			struct attach_thread tmp = proc->threads[0];
			proc->threads[0] = proc->threads[i];
			proc->threads[i] = tmp;
			break;
		}
	}
	for (i = 0; i < proc->nthreads; i++) {
		if (proc->threads[i].stop == ATTACH_STOP_GROUP) {
			r = attach__fail(
				proc, -EAGAIN,
				"stopped by job control (SIGSTOP, state T); left stopped, send SIGCONT first");
			goto fail;
		}
	}
	return 0;
fail : {
	char keep[sizeof(proc->err)];
	memcpy(keep, proc->err, sizeof(keep));
	attach_proc__release_all(proc);
	memcpy(proc->err, keep, sizeof(keep));
}
	return r;
}

static int release_one(struct attach_proc *proc, struct attach_thread *t)
{
	int e, st;

	if (t->stop == ATTACH_STOP_NONE) {
		/* Seized but its stop never came (failure path): it must be
		 * stopped before it can be detached. */
		if (attach__wait(t->tid, &st, SEIZE_STOP_TIMEOUT_MS) || record_stop(t, st))
			return 0; /* gone; or stuck: our exit will detach it */
	}
	if (t->pending_sig && t->stop == ATTACH_STOP_SIGNAL &&
	    t->pending_info.si_signo == t->pending_sig)
		ptrace(PTRACE_SETSIGINFO, t->tid, NULL, &t->pending_info);
	/* DETACH's data injects the signal from a signal-delivery-stop;
	 * from other stops the kernel ignores it, so queue it instead. */
	if (ptrace(PTRACE_DETACH, t->tid, NULL,
		   (void *)(uintptr_t)(t->stop == ATTACH_STOP_SIGNAL ? t->pending_sig : 0)) < 0) {
		e = -errno;
		if (e == -ESRCH) {
			/* Killed meanwhile: as its tracer we must reap it, or
			 * the group leader's exit is never reported. */
			attach__wait(t->tid, &st, 1000);
			return 0;
		}
		return attach__fail(proc, e, "ptrace(DETACH, %d): %s", (int)t->tid, strerror(-e));
	}
	if (t->pending_sig && t->stop != ATTACH_STOP_SIGNAL)
		attach__requeue_signal(proc->pid, t->tid, &t->pending_info, t->pending_sig);
	return 0;
}

int attach_proc__release_all(struct attach_proc *proc)
{
	struct attach_thread *t;
	size_t i;
	int err = 0, e, pass;

	if (!proc->seized)
		return 0;
	/* Threads blocked in a syscall first (they go back to sleep), the
	 * ones that were running last: on a small machine a released busy
	 * thread takes the CPU from us and delays the remaining detaches. */
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < proc->nthreads; i++) {
			t = &proc->threads[i];
			if (t->tid == 0)
				continue;
			if (pass == 0 && t->stop != ATTACH_STOP_NONE &&
			    attach_arch__peek_syscall(t->tid) < 0)
				continue;
			e = release_one(proc, t);
			if (e && !err)
				err = e;
			t->tid = 0;
		}
	}
	proc->nthreads = 0;
	proc->seized = false;
	proc->maps_fresh = false;
	return err;
}

int attach_proc__is_seized(const struct attach_proc *proc)
{
	return proc->seized;
}

size_t attach_proc__thread_count(const struct attach_proc *proc)
{
	return proc->nthreads;
}

pid_t attach_proc__thread(const struct attach_proc *proc, size_t i)
{
	return i < proc->nthreads ? proc->threads[i].tid : 0;
}
