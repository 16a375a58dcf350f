/* attach/: seizing and releasing every thread; the error cases. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ptrace.h>

#include "attach/attach.h"
#include "test_attach_util.h"

static atomic_long counters[4];

static void *spin(void *arg)
{
	long i = (long)arg;
	for (;;) {
		atomic_fetch_add(&counters[i], 1);
		if (i % 2)
			usleep(100);
	}
	return NULL;
}

/* 4 workers (2 spinning, 2 sleeping) plus main blocked in read. */
static int child_threads(int in, int out)
{
	pthread_t th;
	char b;
	long i;

	for (i = 0; i < 4; i++)
		pthread_create(&th, NULL, spin, (void *)i);
	if (write(out, "R", 1) != 1)
		return 2;
	for (;;) {
		if (read(in, &b, 1) != 1)
			return 3;
		/* Answer with the sum of the counters: proves we run. */
		long s = 0;
		for (i = 0; i < 4; i++)
			s += atomic_load(&counters[i]);
		if (write(out, &s, sizeof(s)) != sizeof(s))
			return 4;
	}
}

static long ask(struct child *c)
{
	long s = -1;
	cr_assert_eq(write(c->wr, "?", 1), 1);
	cr_assert_eq(read(c->rd, &s, sizeof(s)), (ssize_t)sizeof(s));
	return s;
}

/* The live tasks of pid: one that is exiting (a joined thread the kernel
 * has not reaped yet: zombie or dead, or gone before its state was read)
 * cannot be seized and is no thread to stop. */
static size_t count_tasks(pid_t pid)
{
	char path[64];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char st = proc_state(pid, (pid_t)atoi(de->d_name));
		n += st && st != 'Z' && st != 'X';
	}
	if (d)
		closedir(d);
	return n;
}

Test(attach_seize, seize_release_multithreaded)
{
	struct child c = child_start(child_threads);
	struct attach_proc *p;
	long before, after;
	size_t i;
	int round;

	cr_assert(c.pid > 0);
	usleep(20000);
	cr_assert_eq(attach_proc__open(c.pid, &p), 0);
	for (round = 0; round < 20; round++) {
		cr_assert_eq(attach_proc__seize_all(p), 0, "%s", attach_proc__error(p));
		cr_assert(attach_proc__is_seized(p));
		cr_assert_eq(attach_proc__thread_count(p), 5);
		cr_assert_eq(attach_proc__thread(p, 0), c.pid); /* main listed */
		for (i = 0; i < attach_proc__thread_count(p); i++) {
			pid_t t = attach_proc__thread(p, i);
			cr_assert_eq(tracer_of(c.pid, t), getpid());
			cr_assert_eq(proc_state(c.pid, t), 't', "thread %d state %c", t,
				     proc_state(c.pid, t));
		}
		/* Stopped: nothing moves. */
		before = atomic_load(&counters[0]);
		cr_assert_eq(attach_proc__seize_all(p), 0); /* idempotent */
		cr_assert_eq(attach_proc__release_all(p), 0);
		cr_assert_not(attach_proc__is_seized(p));
		for (i = 0; i < 5; i++)
			cr_assert_eq(tracer_of(c.pid, attach_proc__thread(p, i) ?: c.pid), 0);
		(void)before;
	}
	before = ask(&c);
	usleep(20000);
	after = ask(&c);
	cr_assert_gt(after, before, "child keeps running after release");
	attach_proc__close(p);
	child_end(&c);
}

static void *churn_thread(void *arg)
{
	(void)arg;
	return NULL;
}

/* Creates and joins threads without pause: seize must still catch all. */
static int child_churn(int in, int out)
{
	pthread_t th;
	(void)in;
	if (write(out, "R", 1) != 1)
		return 2;
	for (;;) {
		if (pthread_create(&th, NULL, churn_thread, NULL) == 0)
			pthread_join(th, NULL);
	}
}

Test(attach_seize, catches_threads_created_meanwhile)
{
	struct child c = child_start(child_churn);
	struct attach_proc *p;
	int round;
	size_t i;

	cr_assert(c.pid > 0);
	cr_assert_eq(attach_proc__open(c.pid, &p), 0);
	for (round = 0; round < 50; round++) {
		cr_assert_eq(attach_proc__seize_all(p), 0, "%s", attach_proc__error(p));
		/* Every task that exists now is one of ours and stopped. */
		size_t live = count_tasks(c.pid);
		cr_assert_eq(live, attach_proc__thread_count(p), "%zu live tasks, %zu seized", live,
			     attach_proc__thread_count(p));
		for (i = 0; i < attach_proc__thread_count(p); i++) {
			char s = proc_state(c.pid, attach_proc__thread(p, i));
			cr_assert(s == 't', "state %c", s);
		}
		cr_assert_eq(attach_proc__release_all(p), 0);
	}
	attach_proc__close(p);
	child_end(&c);
}

Test(attach_seize, already_traced_is_ebusy)
{
	struct child c = child_start(child_threads);
	struct attach_proc *p;
	int sync[2];
	pid_t tracer;
	char b;

	cr_assert(c.pid > 0);
	cr_assert_eq(pipe(sync), 0);
	tracer = test_fork();
	if (tracer == 0) {
		if (ptrace(PTRACE_SEIZE, c.pid, NULL, NULL) < 0)
			_exit(1);
		if (write(sync[1], "S", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	cr_assert_eq(read(sync[0], &b, 1), 1);
	cr_assert_eq(attach_proc__open(c.pid, &p), 0);
	cr_assert_eq(attach_proc__seize_all(p), -EBUSY);
	cr_assert(strstr(attach_proc__error(p), "already traced by pid"), "%s",
		  attach_proc__error(p));
	cr_assert_not(attach_proc__is_seized(p));
	{
		char want[32];
		snprintf(want, sizeof(want), "pid %d", (int)tracer);
		cr_assert(strstr(attach_proc__error(p), want), "%s", attach_proc__error(p));
	}
	attach_proc__close(p);
	kill(tracer, SIGKILL);
	waitpid(tracer, NULL, 0);
	/* The target was never harmed: it still answers. */
	cr_assert_geq(ask(&c), 0);
	child_end(&c);
	close(sync[0]);
	close(sync[1]);
}

Test(attach_seize, sigstopped_is_eagain_and_stays_stopped)
{
	struct child c = child_start(child_threads);
	struct attach_proc *p;
	char state = 0;
	int i;

	cr_assert(c.pid > 0);
	kill(c.pid, SIGSTOP);
	for (i = 0; i < 1000 && proc_state(c.pid, c.pid) != 'T'; i++)
		usleep(1000);
	cr_assert_eq(attach_proc__open(c.pid, &p), 0);
	cr_assert_eq(attach_proc__state(p, &state), 0);
	cr_assert_eq(state, 'T');
	cr_assert_eq(attach_proc__seize_all(p), -EAGAIN);
	cr_assert(strstr(attach_proc__error(p), "SIGSTOP"), "%s", attach_proc__error(p));
	cr_assert_not(attach_proc__is_seized(p));
	usleep(10000);
	cr_assert_eq(proc_state(c.pid, c.pid), 'T', "still stopped after release");
	cr_assert_eq(tracer_of(c.pid, c.pid), 0);
	kill(c.pid, SIGCONT);
	cr_assert_geq(ask(&c), 0);
	attach_proc__close(p);
	child_end(&c);
}

static volatile sig_atomic_t usr1_seen;
static void on_usr1(int s)
{
	(void)s;
	usr1_seen++;
}

static int child_signals(int in, int out)
{
	char b;
	signal(SIGRTMIN + 1, on_usr1); /* real-time: queued, never merged */
	if (write(out, "R", 1) != 1)
		return 2;
	for (;;) {
		if (read(in, &b, 1) != 1) {
			if (errno == EINTR)
				continue;
			return 3;
		}
		long s = usr1_seen;
		if (write(out, &s, sizeof(s)) != sizeof(s))
			return 4;
	}
}

/* A signal sent while the process is seized is not lost. */
Test(attach_seize, signal_while_seized_is_delivered)
{
	struct child c = child_start(child_signals);
	struct attach_proc *p;
	int i;

	cr_assert(c.pid > 0);
	cr_assert_eq(attach_proc__open(c.pid, &p), 0);
	for (i = 0; i < 20; i++) {
		cr_assert_eq(attach_proc__seize_all(p), 0, "%s", attach_proc__error(p));
		kill(c.pid, SIGRTMIN + 1);
		cr_assert_eq(attach_proc__release_all(p), 0);
		/* And one racing the seize itself. */
		kill(c.pid, SIGRTMIN + 1);
		cr_assert_eq(attach_proc__seize_all(p), 0, "%s", attach_proc__error(p));
		cr_assert_eq(attach_proc__release_all(p), 0);
	}
	usleep(20000);
	{
		long n = ask(&c);
		cr_assert_eq(n, 40, "%ld signals seen", n);
	}
	attach_proc__close(p);
	child_end(&c);
}

Test(attach_seize, exited_process_is_esrch)
{
	struct child c = child_start(child_threads);
	struct attach_proc *p;

	cr_assert(c.pid > 0);
	cr_assert_eq(attach_proc__open(c.pid, &p), 0);
	kill(c.pid, SIGKILL);
	waitpid(c.pid, NULL, 0);
	c.pid = -1;
	cr_assert_eq(attach_proc__seize_all(p), -ESRCH);
	cr_assert(strstr(attach_proc__error(p), "attach: pid"), "%s", attach_proc__error(p));
	cr_assert_eq(attach_proc__refresh_maps(p), -ESRCH);
	{
		char b;
		cr_assert_eq(attach_proc__read(p, 0x1000, &b, 1), -ESRCH);
	}
	attach_proc__close(p);
	child_end(&c);
}

/* Another uid without CAP_SYS_PTRACE may not attach: -EPERM, and the
 * message names the cause. Checked from a forked helper that drops root. */
Test(attach_seize, other_user_is_eperm_with_cause)
{
	struct child c = child_start(child_threads);
	int st, fds[2];
	pid_t helper, target = c.pid;
	char msg[256] = { 0 };

	cr_assert(c.pid > 0);
	cr_assert_eq(pipe(fds), 0);
	helper = test_fork();
	if (helper == 0) {
		struct attach_proc *p = NULL;
		int err;
		if (setgid(65534) || setuid(65534))
			_exit(10);
		err = attach_proc__open(target, &p);
		attach_explain_error(target, err, msg, sizeof(msg));
		if (write(fds[1], msg, strlen(msg)) < 0)
			_exit(11);
		_exit(err == -EPERM ? 0 : 12);
	}
	close(fds[1]);
	cr_assert_gt(read(fds[0], msg, sizeof(msg) - 1), 0);
	waitpid(helper, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "helper status %x: %s", st, msg);
	cr_assert(strstr(msg, "not permitted") && strstr(msg, "CAP_SYS_PTRACE"), "%s", msg);
	close(fds[0]);
	child_end(&c);
}

static int child_exits_soon(int in, int out)
{
	pthread_t th;
	char b;
	long i;
	for (i = 0; i < 4; i++)
		pthread_create(&th, NULL, spin, (void *)i);
	if (write(out, "R", 1) != 1)
		return 2;
	if (read(in, &b, 1) != 1) /* the parent has opened us: start the clock */
		return 3;
	usleep(20000 + (b & 7) * 3000);
	_exit(0); /* every thread goes, possibly in the middle of a seize */
}

/* A process that exits while being seized, released or called into: only
 * 0 or -ESRCH, never a hang or another error. */
Test(attach_seize, exit_during_seize_is_esrch)
{
	int round;

	for (round = 0; round < 10; round++) {
		struct child c = child_start(child_exits_soon);
		struct attach_proc *p;
		uint64_t ret;
		int err = 0, n = 0;

		cr_assert(c.pid > 0);
		cr_assert_eq(attach_proc__open(c.pid, &p), 0);
		cr_assert_eq(write(c.wr, &(char){ (char)round }, 1), 1);
		while (err == 0 && n++ < 100000) {
			err = attach_proc__seize_all(p);
			if (err == 0) {
				int e = attach_proc__call_sym(p, attach_proc__thread(p, 0),
							      "libc.so", "getpid", NULL, 0, &ret);
				cr_assert(e == 0 || e == -ESRCH || e == -ENOENT, "call: %d %s", e,
					  attach_proc__error(p));
				err = attach_proc__release_all(p);
				cr_assert(err == 0 || err == -ESRCH, "release: %d %s", err,
					  attach_proc__error(p));
			}
		}
		cr_assert_eq(err, -ESRCH, "seize: %d %s", err, attach_proc__error(p));
		cr_assert(strstr(attach_proc__error(p), "exit") ||
				  strstr(attach_proc__error(p), "no such"),
			  "%s", attach_proc__error(p));
		attach_proc__close(p);
		child_end(&c);
	}
}
