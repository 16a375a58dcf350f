/* attach/: remote calls in a child process: results, restored state (general
 * registers, vector registers, signal mask), interrupted syscalls that go on
 * without EINTR, crashes and timeouts inside the callee, foreign signals
 * re-delivered. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#include "attach/attach.h"
#include "test_attach_util.h"

/* Shared by address with the forked child (same layout after fork). */
static volatile pid_t t_sleeper, t_xmm, t_spin;
static atomic_long sleeps_ok, sleeps_bad, spins;
static volatile int xmm_bad;
static volatile sig_atomic_t rt_seen;

static void *sleeper(void *a)
{
	(void)a;
	t_sleeper = (pid_t)syscall(SYS_gettid);
	for (;;) {
		struct timespec d = { 0, 20 * 1000 * 1000 }, t0, t1;
		long ns;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		/* A relative nanosleep: interrupted, it returns
		 * -ERESTART_RESTARTBLOCK to the kernel's signal path. Wrong
		 * restart handling shows as EINTR or a short sleep. */
		int r = nanosleep(&d, NULL);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ns = (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec);
		if (r == 0 && ns >= 20 * 1000 * 1000)
			atomic_fetch_add(&sleeps_ok, 1);
		else
			atomic_fetch_add(&sleeps_bad, 1);
	}
	return NULL;
}

/* Holds a pattern in %xmm0 and checks it forever: a remote call on this
 * thread (strtod returns in %xmm0) must give it back. */
static void *xmm_keeper(void *a)
{
	uint64_t pat = 0x5a5aa5a5deadbeefull;
	(void)a;
	t_xmm = (pid_t)syscall(SYS_gettid);
	__asm__ volatile("movq %[p], %%xmm0\n\t"
			 "1: movq %%xmm0, %%rax\n\t"
			 "cmpq %[p], %%rax\n\t"
			 "je 1b\n\t"
			 :
			 : [p] "r"(pat)
			 : "rax", "xmm0", "cc");
	xmm_bad = 1;
	for (;;)
		pause();
	return NULL;
}

static void *spinner(void *a)
{
	(void)a;
	t_spin = (pid_t)syscall(SYS_gettid);
	for (;;)
		atomic_fetch_add(&spins, 1);
	return NULL;
}

static void on_rt(int s)
{
	(void)s;
	rt_seen++;
}

/* Main thread: blocked in read(); every byte read is answered with a
 * report. read() returning EINTR or garbage ends the child with 5. */
static int child_calls(int in, int out)
{
	pthread_t th;
	struct sigaction sa = { .sa_handler = on_rt }; /* no SA_RESTART: EINTR-prone */
	char b;

	sigaction(SIGRTMIN + 1, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	pthread_create(&th, NULL, sleeper, NULL);
	pthread_create(&th, NULL, xmm_keeper, NULL);
	pthread_create(&th, NULL, spinner, NULL);
	while (!t_sleeper || !t_xmm || !t_spin)
		usleep(1000);
	if (write(out, "R", 1) != 1)
		return 2;
	for (;;) {
		ssize_t n = read(in, &b, 1);
		if (n < 0 && errno == EINTR && rt_seen)
			continue; /* a handler ran: EINTR is legitimate then */
		if (n != 1 || b != '?')
			return 5;
		long r[4] = { atomic_load(&sleeps_ok), atomic_load(&sleeps_bad), xmm_bad, rt_seen };
		if (write(out, r, sizeof(r)) != sizeof(r))
			return 4;
	}
}

static void report(struct child *c, long r[4])
{
	cr_assert_eq(write(c->wr, "?", 1), 1);
	cr_assert_eq(read(c->rd, r, 4 * sizeof(long)), (ssize_t)(4 * sizeof(long)));
}

static pid_t remote_tid(struct attach_proc *p, volatile pid_t *where)
{
	pid_t t = 0;
	cr_assert_eq(attach_proc__read(p, (uint64_t)(uintptr_t)where, &t, sizeof(t)), 0);
	return t;
}

static void calls_on_every_thread(enum attach_return how);

/* The signalling stub (the default): one ptrace stop per call. */
Test(attach_call, getpid_strlen_on_every_thread_target_unharmed)
{
	calls_on_every_thread(ATTACH_RETURN_SIGNAL);
}

/* The same through the sigreturn stub under PTRACE_SYSCALL. */
Test(attach_call, syscall_stub_path_target_unharmed)
{
	calls_on_every_thread(ATTACH_RETURN_SYSCALL);
}

/* The same through the int3 return path (no write into code pages). */
Test(attach_call, int3_return_path_target_unharmed)
{
	calls_on_every_thread(ATTACH_RETURN_TRAP);
}

static void calls_on_every_thread(enum attach_return how)
{
	struct child c = child_start(child_calls);
	struct attach_proc *p;
	struct attach_elf *libc;
	uint64_t getpid_fn, ret;
	long r[4];
	size_t i;
	int round;

	cr_assert(c.pid > 0);
	cr_assert_eq(attach_proc__open(c.pid, &p), 0);
	attach_proc__set_return(p, how);
	cr_assert_eq(attach_proc__find_elf(p, "libc.so", &libc), 0);
	cr_assert_eq(attach_elf__symbol(libc, "getpid", &getpid_fn, NULL), 0);
	for (round = 0; round < 30; round++) {
		cr_assert_eq(attach_proc__seize_all(p), 0, "%s", attach_proc__error(p));
		cr_assert_eq(attach_proc__thread_count(p), 4);
		for (i = 0; i < attach_proc__thread_count(p); i++) {
			pid_t tid = attach_proc__thread(p, i);
			struct attach_arg s = { .data = "sixteen chars...", .len = 17 };
			unsigned stops;
			cr_assert_eq(attach_proc__call(p, tid, getpid_fn, NULL, 0, &ret), 0, "%s",
				     attach_proc__error(p));
			cr_assert_eq(ret, (uint64_t)c.pid);
			cr_assert_eq(attach_proc__last_return(p, &stops), how);
			/* The signalling stub and the int3: the end is the only
			 * stop; the sigreturn stub: getpid's two syscall stops and
			 * the sigreturn's entry. */
			cr_assert_eq(stops, how == ATTACH_RETURN_SYSCALL ? 3u : 1u, "%u stops",
				     stops);
			cr_assert_eq(attach_proc__call_sym(p, tid, "libc.so", "strlen", &s, 1,
							   &ret),
				     0, "%s", attach_proc__error(p));
			cr_assert_eq(ret, 16);
			/* strtod returns in %xmm0: clobbers the keeper's pattern
			 * unless the extended state is restored. */
			struct attach_arg d[2] = { { .data = "2.5", .len = 4 }, { .value = 0 } };
			cr_assert_eq(attach_proc__call_sym(p, tid, "libc.so", "strtod", d, 2, &ret),
				     0, "%s", attach_proc__error(p));
		}
		cr_assert_eq(attach_proc__release_all(p), 0);
		usleep(3000);
	}
	cr_assert_eq(attach_proc__return_stub(p) != 0, how != ATTACH_RETURN_TRAP);
	usleep(60000);
	report(&c, r);
	cr_assert_eq(r[1], 0, "%ld sleeps woke early or with EINTR", r[1]);
	cr_assert_gt(r[0], 0);
	cr_assert_eq(r[2], 0, "xmm0 was not restored");
	attach_proc__close(p);
	cr_assert_eq(child_end(&c) & 0x7f, SIGKILL, "child died on its own");
}

Test(attach_call, pick_prefers_sleeping_syscall)
{
	struct child c = child_start(child_calls);
	struct attach_proc *p;
	pid_t tid;

	cr_assert(c.pid > 0);
	cr_assert_eq(attach_proc__open(c.pid, &p), 0);
	cr_assert_eq(attach_proc__seize_all(p), 0);
	cr_assert_eq(attach_proc__pick_call_thread(p, &tid), 0);
	/* main (read) or the sleeper (nanosleep); never the spinners. */
	cr_assert(tid == c.pid || tid == remote_tid(p, &t_sleeper), "picked %d", tid);
	cr_assert_neq(tid, remote_tid(p, &t_spin));
	cr_assert_neq(tid, remote_tid(p, &t_xmm));
	attach_proc__close(p); /* releases */
	child_end(&c);
}

Test(attach_call, crash_in_callee_is_efault_and_thread_restored)
{
	struct child c = child_start(child_calls);
	struct attach_proc *p;
	uint64_t ret, arg = 0;
	long r[4];

	cr_assert(c.pid > 0);
	cr_assert_eq(attach_proc__open(c.pid, &p), 0);
	attach_proc__set_return(p, ATTACH_RETURN_SYSCALL);
	cr_assert_eq(attach_proc__seize_all(p), 0);
	/* A first call leaves main (blocked in read) at a syscall-entry-stop:
	 * the crash below then restores into a signal stop, which must turn
	 * the pending syscall entry back into a restart. */
	cr_assert_eq(attach_proc__call_sym(p, c.pid, "libc.so", "getpid", NULL, 0, &ret), 0);
	/* Jump to an unmapped address: SIGSEGV inside "the callee". */
	cr_assert_eq(attach_proc__call(p, c.pid, 0x10, NULL, 0, &ret), -EFAULT);
	cr_assert(strstr(attach_proc__error(p), "crashed"), "%s", attach_proc__error(p));
	/* strlen(NULL): a fault inside libc. */
	cr_assert_eq(attach_proc__call_sym(p, c.pid, "libc.so", "strlen",
					   &(struct attach_arg){ .value = arg }, 1, &ret),
		     -EFAULT);
	/* The thread is usable again. */
	cr_assert_eq(attach_proc__call_sym(p, c.pid, "libc.so", "getpid", NULL, 0, &ret), 0);
	cr_assert_eq(ret, (uint64_t)c.pid);
	cr_assert_eq(attach_proc__release_all(p), 0);
	report(&c, r);
	cr_assert_eq(r[2], 0);
	attach_proc__close(p);
	cr_assert_eq(child_end(&c) & 0x7f, SIGKILL);
}

Test(attach_call, timeout_abandons_and_restores)
{
	struct child c = child_start(child_calls);
	struct attach_proc *p;
	uint64_t ret;
	long r[4];

	cr_assert(c.pid > 0);
	cr_assert_eq(attach_proc__open(c.pid, &p), 0);
	cr_assert_eq(attach_proc__seize_all(p), 0);
	attach_proc__set_call_timeout(p, 200);
	cr_assert_eq(attach_proc__call_sym(p, c.pid, "libc.so", "getppid", NULL, 0, &ret), 0);
	/* pause() with every async signal blocked never returns. */
	cr_assert_eq(attach_proc__call_sym(p, c.pid, "libc.so", "pause", NULL, 0, &ret),
		     -ETIMEDOUT);
	cr_assert(strstr(attach_proc__error(p), "did not return"), "%s", attach_proc__error(p));
	cr_assert_eq(attach_proc__call_sym(p, c.pid, "libc.so", "getppid", NULL, 0, &ret), 0);
	cr_assert_eq(ret, (uint64_t)getpid());
	cr_assert_eq(attach_proc__release_all(p), 0);
	report(&c, r); /* main's read() works: it was restored */
	cr_assert_eq(r[2], 0);
	attach_proc__close(p);
	cr_assert_eq(child_end(&c) & 0x7f, SIGKILL);
}

/* Signals sent to the process and to the calling thread during a call are
 * delivered after the release, not swallowed. */
static void foreign_signals(enum attach_return how);

Test(attach_call, foreign_signals_during_call_are_redelivered)
{
	foreign_signals(ATTACH_RETURN_SIGNAL);
}

Test(attach_call, foreign_signals_redelivered_syscall_stub_path)
{
	foreign_signals(ATTACH_RETURN_SYSCALL);
}

Test(attach_call, foreign_signals_redelivered_int3_path)
{
	foreign_signals(ATTACH_RETURN_TRAP);
}

static void foreign_signals(enum attach_return how)
{
	struct child c = child_start(child_calls);
	struct attach_proc *p;
	uint64_t ret;
	long r[4];
	pid_t sender;
	pid_t target = c.pid;

	cr_assert(c.pid > 0);
	cr_assert_eq(attach_proc__open(c.pid, &p), 0);
	attach_proc__set_return(p, how);
	cr_assert_eq(attach_proc__seize_all(p), 0);
	sender = test_fork();
	if (sender == 0) {
		usleep(50000);
		kill(target, SIGRTMIN + 1);                        /* process-directed */
		syscall(SYS_tgkill, target, target, SIGRTMIN + 1); /* to the calling thread */
		/* The signalling stub's own signal from someone else, while it
		 * is unblocked for the call: not the call's end (its pc is
		 * not the stub's), kept and sent again like any other. */
		syscall(SYS_tgkill, target, target, SIGURG);
		/* A synchronous-type signal is never blocked by the call: it
		 * stops the call as a foreign signal-delivery-stop. */
		syscall(SYS_tgkill, target, target, SIGBUS);
		_exit(0);
	}
	/* usleep(300 ms) in the main thread while the sender fires. */
	cr_assert_eq(attach_proc__call_sym(p, c.pid, "libc.so", "usleep",
					   &(struct attach_arg){ .value = 300000 }, 1, &ret),
		     0, "%s", attach_proc__error(p));
	cr_assert_eq(ret, 0, "usleep returned %lld (signals must be blocked during the call)",
		     (long long)ret);
	cr_assert_eq(attach_proc__last_return(p, NULL), how);
	waitpid(sender, NULL, 0);
	cr_assert_eq(attach_proc__release_all(p), 0);
	usleep(20000);
	report(&c, r);
	cr_assert_eq(r[3], 3, "%ld of 3 signals delivered", r[3]);
	attach_proc__close(p);
	cr_assert_eq(child_end(&c) & 0x7f, SIGKILL);
}

/* A program that handles every signal the signalling stub could raise:
 * calls fall back to the sigreturn stub (a signal with a handler would
 * run it if the debugger died mid-call). */
static int child_catches_all(int in, int out)
{
	static const int sigs[] = { SIGURG, SIGWINCH, SIGCHLD, SIGPIPE, SIGXFSZ };
	struct sigaction sa = { .sa_handler = on_rt };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	return child_calls(in, out);
}

Test(attach_call, no_quiet_signal_falls_back_to_the_syscall_stub)
{
	struct child c = child_start(child_catches_all);
	struct attach_proc *p;
	uint64_t ret;
	long r[4];

	cr_assert(c.pid > 0);
	cr_assert_eq(attach_proc__open(c.pid, &p), 0);
	cr_assert_eq(attach_proc__seize_all(p), 0);
	cr_assert_eq(attach_proc__call_sym(p, c.pid, "libc.so", "getpid", NULL, 0, &ret), 0);
	cr_assert_eq(ret, (uint64_t)c.pid);
	cr_assert_eq(attach_proc__last_return(p, NULL), ATTACH_RETURN_SYSCALL);
	cr_assert_eq(attach_proc__release_all(p), 0);
	report(&c, r);
	cr_assert_eq(r[3], 0, "a handler ran");
	attach_proc__close(p);
	cr_assert_eq(child_end(&c) & 0x7f, SIGKILL);
}

/* The figure the signalling stub exists for: a dlopen is one ptrace stop
 * instead of two per system call of the loader. */
Test(attach_call, dlopen_is_one_stop)
{
	static const char *const libs[] = { "libuuid.so.1", "libz.so.1", "libcjson.so.1" };
	enum attach_return how[2] = { ATTACH_RETURN_SYSCALL, ATTACH_RETURN_SIGNAL };
	unsigned stops[2] = { 0, 0 };
	int used = 0;

	for (int k = 0; k < 2; k++) {
		struct child c = child_start(child_calls);
		struct attach_proc *p;
		uint64_t ret = 0;
		const char *lib = NULL;

		cr_assert(c.pid > 0);
		cr_assert_eq(attach_proc__open(c.pid, &p), 0);
		attach_proc__set_return(p, how[k]);
		cr_assert_eq(attach_proc__seize_all(p), 0);
		/* A library on the machine that the child has not mapped. */
		for (size_t i = used; !lib && i < sizeof(libs) / sizeof(libs[0]); i++) {
			struct attach_elf *e;
			char path[128];
			snprintf(path, sizeof(path), "/lib/x86_64-linux-gnu/%s", libs[i]);
			if (access(path, R_OK) == 0 && attach_proc__find_elf(p, libs[i], &e)) {
				lib = libs[i];
				used = (int)i;
			}
		}
		cr_assert(lib, "none of libuuid, libz, libcjson to load");
		struct attach_arg a[2] = { { .data = lib, .len = strlen(lib) + 1 },
					   { .value = 2 /* RTLD_NOW */ } };
		cr_assert_eq(attach_proc__call_sym(p, c.pid, "libc.so", "dlopen", a, 2, &ret), 0,
			     "%s", attach_proc__error(p));
		cr_assert_neq(ret, 0, "dlopen(%s) failed in the child", lib);
		cr_assert_eq(attach_proc__last_return(p, &stops[k]), how[k]);
		cr_assert_eq(attach_proc__release_all(p), 0);
		attach_proc__close(p);
		child_end(&c);
	}
	cr_assert_eq(stops[1], 1, "signalling stub: %u stops", stops[1]);
	cr_assert_gt(stops[0], 10, "sigreturn stub: %u stops", stops[0]);
	cr_log_info("dlopen: %u ptrace stops under PTRACE_SYSCALL, %u with the signalling stub",
		    stops[0], stops[1]);
}

Test(attach_call, argument_errors)
{
	struct child c = child_start(child_calls);
	struct attach_proc *p;
	uint64_t ret, args[7] = { 0 };

	cr_assert(c.pid > 0);
	cr_assert_eq(attach_proc__open(c.pid, &p), 0);
	cr_assert_eq(attach_proc__call(p, c.pid, 0x1000, NULL, 0, &ret), -EINVAL); /* not seized */
	cr_assert_eq(attach_proc__seize_all(p), 0);
	cr_assert_eq(attach_proc__call(p, c.pid, 0x1000, args, 7, &ret), -EINVAL);
	cr_assert_eq(attach_proc__call(p, 1, 0x1000, NULL, 0, &ret), -EINVAL);
	cr_assert_eq(attach_proc__call_sym(p, c.pid, "libc.so", "no_such_fn", NULL, 0, &ret),
		     -ENOENT);
	cr_assert_eq(attach_proc__call_sym(p, c.pid, "libnope.so", "getpid", NULL, 0, &ret),
		     -ENOENT);
	attach_proc__close(p);
	child_end(&c);
}

/* The debugger is SIGKILLed in the middle of a call: the thread returns into
 * the stub, whose rt_sigreturn gives it back its registers, vector state and
 * signal mask. The target goes on unharmed. */
static void die_mid_call(struct child *c, volatile pid_t *which, enum attach_return how)
{
	int sync[2];
	pid_t dbg, target = c->pid;
	char b;
	long r[4];

	cr_assert_eq(pipe(sync), 0);
	dbg = test_fork();
	if (dbg == 0) {
		struct attach_proc *p;
		uint64_t ret;
		pid_t tid = target;
		if (attach_proc__open(target, &p))
			_exit(1);
		attach_proc__set_return(p, how);
		if (attach_proc__seize_all(p))
			_exit(1);
		if (which && attach_proc__read(p, (uint64_t)(uintptr_t)which, &tid, sizeof(tid)))
			_exit(1);
		/* place the stub with a short call first */
		if (attach_proc__call_sym(p, tid, "libc.so", "getpid", NULL, 0, &ret) ||
		    !attach_proc__return_stub(p) || attach_proc__last_return(p, NULL) != how)
			_exit(2);
		if (write(sync[1], "S", 1) != 1)
			_exit(1);
		attach_proc__call_sym(p, tid, "libc.so", "usleep",
				      &(struct attach_arg){ .value = 400000 }, 1, &ret);
		_exit(3); /* not reached: killed during the call */
	}
	cr_assert_eq(read(sync[0], &b, 1), 1, "debugger could not place the stub");
	usleep(100000);
	kill(dbg, SIGKILL);
	waitpid(dbg, NULL, 0);
	usleep(500000); /* the orphaned call finishes and sigreturns */
	report(c, r);
	cr_assert_eq(r[2], 0, "xmm0 was not restored by the sigreturn");
	cr_assert_eq(r[1], 0, "a sleep was cut short");
	cr_assert_eq(tracer_of(c->pid, c->pid), 0);
	close(sync[0]);
	close(sync[1]);
}

Test(attach_call, debugger_killed_mid_call_main_thread_in_read)
{
	struct child c = child_start(child_calls);
	cr_assert(c.pid > 0);
	die_mid_call(&c, NULL, ATTACH_RETURN_SIGNAL);
	cr_assert_eq(child_end(&c) & 0x7f, SIGKILL, "child died on its own");
}

Test(attach_call, debugger_killed_mid_call_syscall_stub)
{
	struct child c = child_start(child_calls);
	cr_assert(c.pid > 0);
	die_mid_call(&c, NULL, ATTACH_RETURN_SYSCALL);
	cr_assert_eq(child_end(&c) & 0x7f, SIGKILL, "child died on its own");
}

Test(attach_call, debugger_killed_mid_call_thread_with_live_xmm)
{
	struct child c = child_start(child_calls);
	cr_assert(c.pid > 0);
	die_mid_call(&c, &t_xmm, ATTACH_RETURN_SIGNAL);
	cr_assert_eq(child_end(&c) & 0x7f, SIGKILL, "child died on its own");
}

/* A 32-bit process: seized and released fine, calls refused (the 64-bit
 * calling convention would be garbage there), the target untouched. */
Test(attach_call, compat_32bit_process_refused)
{
	char dir[] = "/tmp/attach-m32-XXXXXX", cmd[512], prog[256];
	struct attach_proc *p;
	struct attach_elf *exe;
	uint64_t ret;
	pid_t pid;
	ssize_t n;
	int ep[2], err = 0, i;

	cr_assert(mkdtemp(dir));
	snprintf(prog, sizeof(prog), "%s/m32", dir);
	snprintf(cmd, sizeof(cmd),
		 "cd %s && printf '.globl _start\\n_start:\\n1: pause\\n jmp 1b\\n' > m.S &&"
		 " cc -m32 -nostdlib -static -o m32 m.S 2>/dev/null",
		 dir);
	if (system(cmd) != 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		cr_assert_eq(system(cmd), 0);
		cr_skip_test("no 32-bit toolchain");
	}
	/* A kernel built without IA32 emulation refuses the exec (ENOEXEC):
	 * the child reports exec's errno through a close-on-exec pipe, which a
	 * successful exec closes without a byte. */
	cr_assert_eq(pipe2(ep, O_CLOEXEC), 0);
	pid = test_fork();
	if (pid == 0) {
		close(ep[0]);
		execl(prog, prog, (char *)NULL);
		err = errno;
		if (write(ep[1], &err, sizeof(err)) != (ssize_t)sizeof(err))
			_exit(126);
		_exit(127);
	}
	close(ep[1]);
	n = read(ep[0], &err, sizeof(err));
	close(ep[0]);
	if (n != 0) {
		waitpid(pid, NULL, 0);
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		cr_assert_eq(system(cmd), 0);
		cr_assert_eq(n, (ssize_t)sizeof(err), "exec probe: short report from the child");
		if (err == ENOEXEC)
			cr_skip_test(
				"this kernel cannot run 32-bit programs (exec: %s; no IA32 emulation)",
				strerror(err));
		cr_assert_fail("exec of the 32-bit program failed: %s", strerror(err));
	}
	for (i = 0; i < 1000; i++) { /* until /proc shows the new image */
		char exe[256] = "", lnk[64];
		snprintf(lnk, sizeof(lnk), "/proc/%d/exe", (int)pid);
		if (readlink(lnk, exe, sizeof(exe) - 1) > 0 && !strcmp(exe, prog))
			break;
		usleep(1000);
	}
	cr_assert_eq(attach_proc__open(pid, &p), 0);
	cr_assert_eq(attach_proc__find_elf(p, NULL, &exe), 0, "%s", attach_proc__error(p));
	cr_assert_eq(strlen(attach_elf__build_id(exe)), 40);
	cr_assert_eq(attach_proc__seize_all(p), 0, "%s", attach_proc__error(p));
	cr_assert_eq(attach_proc__call(p, pid, 0x1000, NULL, 0, &ret), -ENOEXEC, "%s",
		     attach_proc__error(p));
	cr_assert(strstr(attach_proc__error(p), "32-bit"), "%s", attach_proc__error(p));
	cr_assert_eq(attach_proc__release_all(p), 0);
	attach_proc__close(p);
	usleep(20000);
	cr_assert_eq(proc_state(pid, pid), 'R', "the target still runs");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}
