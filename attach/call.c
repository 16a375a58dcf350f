/* attach/: calling a function inside the target, on one stopped thread.
 *
 * The thread's state (general registers, xsave area, signal mask) is saved,
 * the call is set up on its own stack below the red zone, it runs until it
 * returns, and the state is put back. Sequence and why:
 *
 *  1. The return address is a stub (attach/arch.h) placed in the slack
 *     after the end of libc's (else the executable's) executable segment:
 *     bytes in the last mapped page that no code uses. Two stubs sit there
 *     side by side; both stash rax and end in rt_sigreturn on a signal
 *     frame we build above the return address from the saved state
 *     (registers with the syscall-restart rules applied, xsave image,
 *     signal mask).
 *     - The signalling stub, preferred: before its sigreturn it sends its
 *       own thread a signal the process discards (SIGURG, SIGWINCH or
 *       SIGCHLD left to their default, or one the program ignores, like
 *       CPython's SIGPIPE; never one with a handler), which is left
 *       unblocked for the call. The call runs under PTRACE_CONT: its end
 *       is that signal's delivery stop (signal, pc, sp), the only ptrace
 *       stop of the whole call; the return value is read from the stash
 *       and the thread restored there by ptrace, the signal suppressed.
 *       A dlopen under PTRACE_SYSCALL makes about 30 stops, each a round
 *       trip through the scheduler: this is what keeps the target's stop
 *       short on a loaded machine. Not used when no signal is quiet or the
 *       process has a seccomp filter (its tgkill could be refused, and a
 *       call whose end cannot be seen must not be taken for one that hangs).
 *     - The sigreturn stub: the call runs under PTRACE_SYSCALL; the stub's
 *       rt_sigreturn is recognized at its syscall-entry-stop (nr, pc, sp),
 *       the return value is read from the stash, and the thread is restored
 *       by ptrace with the sigreturn skipped or turned into the interrupted
 *       syscall (attach_arch__restore), so no EINTR ever surfaces.
 *     - Debugger killed mid-call (even SIGKILL): the kernel detaches, the
 *       callee returns into the stub, (the signal, untraced now, is
 *       discarded by the kernel as it is sent) and rt_sigreturn restores
 *       everything: the target goes on. Only a restart-block syscall
 *       (relative nanosleep, futex with timeout) then sees EINTR, since
 *       sigreturn clears the restart block; CPython retries on EINTR (PEP
 *       475).
 *     This is tested by killing a debugger during a call.
 *     Fallback when no slack exists anywhere: return into an int3 byte found
 *     in an executable mapping (exact, self-identifying SIGTRAP with pc =
 *     trap + 1 and sp = our sp + 8; preferred to "return to address 0 and
 *     catch SIGSEGV", which depends on page 0 being unmapped and could be
 *     confused with a NULL call in the callee). There a dying debugger
 *     leaves the thread to a SIGTRAP that kills the target.
 *  2. Async signals are blocked in the thread (PTRACE_SETSIGMASK) so none
 *     runs a handler on top of our call; they stay pending in the kernel and
 *     are delivered normally once the original mask is back. Synchronous
 *     faults stay unblocked so a crash in the callee stops at once.
 *  3. orig_rax = -1: the thread may have been stopped inside a syscall;
 *     without it the kernel would apply the syscall-restart fixup (rip -= 2)
 *     to our call's registers when it resumes.
 *  4. Signals other than ours that stop the thread during the call are
 *     recorded with their siginfo and suppressed for now; they are injected
 *     again when the thread is released, never swallowed.
 *  5. During the call the debugger blocks SIGINT, SIGTERM, SIGHUP, SIGQUIT
 *     and SIGPIPE in itself, so a ^C waits until the target has its own
 *     registers back.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attach/attach-priv.h"

#define CALL_DATA_MAX 65536 /* bytes of stack data per call */
#define TRAP_SCAN_MAX (1u << 20)

static bool is_fault_signal(int sig)
{
	return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE ||
	       sig == SIGTRAP || sig == SIGSYS;
}

/* Kernel 64-bit sigset: bit (sig - 1). */
static uint64_t sigbit(int sig)
{
	return 1ull << (sig - 1);
}

static int find_trap(struct attach_proc *proc, uint64_t *out)
{
	static const char *prefer[] = { "libc.so", NULL };
	unsigned char buf[16384], b;
	const struct attach_map *m;
	size_t i, k, pass;
	uint64_t a, len;

	if (proc->trap_addr && attach_proc__read(proc, proc->trap_addr, &b, 1) == 0 &&
	    b == ATTACH_ARCH_TRAP_BYTE) {
		*out = proc->trap_addr;
		return 0;
	}
	proc->trap_addr = 0;
	if (attach_proc__refresh_maps(proc))
		return -ESRCH;
	/* Pass 0: libc; pass 1: any executable file mapping. */
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < proc->nmaps; i++) {
			m = &proc->maps[i];
			if (m->perms[2] != 'x' || m->path[0] != '/')
				continue;
			if (pass == 0) {
				const char *bn = strrchr(m->path, '/') + 1;
				if (strncmp(bn, prefer[0], strlen(prefer[0])))
					continue;
			}
			for (a = m->start; a < m->end && a - m->start < TRAP_SCAN_MAX; a += len) {
				len = m->end - a < sizeof(buf) ? m->end - a : sizeof(buf);
				if (attach_proc__read(proc, a, buf, len))
					break;
				for (k = 0; k < len; k++) {
					if (buf[k] == ATTACH_ARCH_TRAP_BYTE) {
						proc->trap_addr = a + k;
						*out = proc->trap_addr;
						return 0;
					}
				}
			}
		}
	}
	return -ENOENT;
}

struct foreign {
	int sig;
	siginfo_t info;
};

static void note_foreign(struct attach_thread *t, struct foreign *extra, size_t *nextra, size_t cap,
			 int sig)
{
	siginfo_t si;

	if (ptrace(PTRACE_GETSIGINFO, t->tid, NULL, &si) < 0) {
		memset(&si, 0, sizeof(si));
		si.si_signo = sig;
		si.si_code = SI_TKILL;
	}
	if (!t->pending_sig) {
		t->pending_sig = sig;
		t->pending_info = si;
	} else if (*nextra < cap) {
		extra[*nextra].sig = sig;
		extra[*nextra].info = si;
		(*nextra)++;
	}
}

/* Signals whose delivery to an untraced thread does nothing: ignored
 * by default and not caught, or ignored by the program. */
static const int quiet_candidates[] = { SIGURG, SIGWINCH, SIGCHLD, SIGPIPE, SIGXFSZ };

static bool default_ignored(int sig)
{
	return sig == SIGURG || sig == SIGWINCH || sig == SIGCHLD;
}

/* The signal the signalling stub may raise in pid now: `prefer` when it
 * is still quiet, else the first quiet candidate; 0 when none is, or when
 * the process has a seccomp filter (/proc/PID/status). */
static int quiet_signal(pid_t pid, int prefer)
{
	char path[64], buf[4096];
	const char *p;
	uint64_t ign, cgt;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	if (!(p = strstr(buf, "\nSeccomp:")) || strtol(p + 9, NULL, 10) != 0)
		return 0;
	if (!(p = strstr(buf, "\nSigIgn:")))
		return 0;
	ign = strtoull(p + 8, NULL, 16);
	if (!(p = strstr(buf, "\nSigCgt:")))
		return 0;
	cgt = strtoull(p + 8, NULL, 16);
#define QUIET(s) (!(cgt & sigbit(s)) && ((ign & sigbit(s)) || default_ignored(s)))
	if (prefer && QUIET(prefer))
		return prefer;
	for (size_t i = 0; i < sizeof(quiet_candidates) / sizeof(quiet_candidates[0]); i++)
		if (QUIET(quiet_candidates[i]))
			return quiet_candidates[i];
#undef QUIET
	return 0;
}

/* The two stubs' bytes for signal sig: the sigreturn stub, int3 padding,
 * the signalling stub at ATTACH_SIGSTUB_OFF. */
static int stubs_code(int sig, unsigned char *out, size_t cap, size_t *len)
{
	size_t n, m;
	const unsigned char *code = attach_arch__stub(&n);
	if (n > ATTACH_SIGSTUB_OFF || cap < ATTACH_SIGSTUB_OFF)
		return -ENOSPC;
	memcpy(out, code, n);
	memset(out + n, ATTACH_ARCH_TRAP_BYTE, ATTACH_SIGSTUB_OFF - n);
	if (attach_arch__signal_stub(sig, out + ATTACH_SIGSTUB_OFF, cap - ATTACH_SIGSTUB_OFF, &m))
		return -ENOSPC;
	*len = ATTACH_SIGSTUB_OFF + m;
	return 0;
}

/* Place the return stubs (attach/arch.h) in the slack after an executable
 * segment of libc or the executable: bytes no code uses, in the target's
 * private copy of that page. -ENOENT when there is no room anywhere. */
static int ensure_stub(struct attach_proc *proc, uint64_t *out)
{
	static const char *const owners[] = { "libc.so", NULL };
	unsigned char code[sizeof(proc->stub_orig)], cur[sizeof(proc->stub_orig)];
	struct attach_elf *elf;
	uint64_t at, len;
	size_t n, i;

	if (proc->stub_addr) {
		if (stubs_code(proc->stub_sig, code, sizeof(code), &n) == 0 &&
		    attach_proc__read(proc, proc->stub_addr, cur, n) == 0 &&
		    !memcmp(cur, code, n)) {
			*out = proc->stub_addr;
			return 0;
		}
		proc->stub_addr = 0; /* unmapped or changed: place it again */
	}
	proc->stub_sig = quiet_signal(proc->pid, 0);
	if (stubs_code(proc->stub_sig, code, sizeof(code), &n))
		return -ENOENT;
	for (i = 0; i < sizeof(owners) / sizeof(owners[0]); i++) {
		if (attach_proc__find_elf(proc, owners[i], &elf) ||
		    attach__exec_slack(elf, &at, &len))
			continue;
		uint64_t a = (at + 15) & ~(uint64_t)15;
		if (a + n > at + len)
			continue;
		if (attach_proc__read(proc, a, proc->stub_orig, n) ||
		    attach_proc__write(proc, a, code, n) || attach_proc__read(proc, a, cur, n) ||
		    memcmp(cur, code, n))
			continue;
		proc->stub_addr = a;
		proc->stub_len = n;
		*out = a;
		return 0;
	}
	proc->err[0] = 0;
	return -ENOENT;
}

void attach__stub_remove(struct attach_proc *proc)
{
	/* Not while another tracer (a second suture session) may be in the
	 * middle of a call returning through the same stub: then the bytes,
	 * unused by the program anyway, stay. */
	if (proc->stub_addr && proc->stub_len && !proc->seized && attach__alive(proc->pid) &&
	    attach__tracer(proc->pid) == 0)
		attach_proc__write(proc, proc->stub_addr, proc->stub_orig, proc->stub_len);
	proc->stub_addr = 0;
}

int attach_proc__call_args(struct attach_proc *proc, pid_t tid, uint64_t fn,
			   const struct attach_arg *args, unsigned nargs, uint64_t *ret)
{
	struct attach_arch_state *st = NULL;
	struct attach_thread *t;
	struct foreign extra[8];
	size_t nextra = 0, i, total = 0, imglen;
	uint64_t argv[ATTACH_ARCH_MAX_ARGS], sp, top, below, frame, stub = 0, trap = 0, retaddr;
	uint64_t rax = 0, pc, rsp, mask;
	unsigned stops = 0;
	int sig_end = 0; /* the signalling stub's signal, when it ends the call */
	unsigned char *img = NULL;
	enum __ptrace_request resume;
	enum attach_arch_at now = ATTACH_AT_EXIT;
	sigset_t block, old;
	siginfo_t si;
	struct timespec t0, t1;
	unsigned left;
	int err, status, sig, event, r;

	if (ret)
		*ret = 0;
	proc->err[0] = 0;
	t = proc->seized ? attach__thread_find(proc, tid) : NULL;
	if (!t)
		return attach__fail(proc, -EINVAL, "call: thread %d is not seized", (int)tid);
	if (nargs > ATTACH_ARCH_MAX_ARGS)
		return attach__fail(proc, -EINVAL, "call: %u arguments, at most %d", nargs,
				    ATTACH_ARCH_MAX_ARGS);
	if (t->stop == ATTACH_STOP_GROUP)
		return attach__fail(proc, -EAGAIN, "call: stopped by job control (SIGSTOP)");
	for (i = 0; i < nargs; i++) {
		if (args[i].data && args[i].len > CALL_DATA_MAX - total)
			return attach__fail(proc, -E2BIG, "call: more than %d bytes of data",
					    CALL_DATA_MAX);
		if (args[i].data)
			total += (args[i].len + 15) & ~(size_t)15;
	}
	err = attach_arch__save(tid,
				t->stop == ATTACH_STOP_SYSCALL ? ATTACH_AT_ENTRY : ATTACH_AT_EXIT,
				&st);
	if (err)
		return attach__fail(proc, err, "call: save registers of %d: %s", (int)tid,
				    strerror(-err));
	if (!attach_arch__native(st)) {
		attach_arch__free(st);
		return attach__fail(proc, -ENOEXEC,
				    "call: thread %d runs in 32-bit mode; only native %s calls",
				    (int)tid, ATTACH_ARCH_NAME);
	}
	/* The return: the self-restoring stubs (the signalling one when its
	 * signal is still quiet), else a plain int3. */
	if (proc->ret_most == ATTACH_RETURN_TRAP || ensure_stub(proc, &stub)) {
		stub = 0;
		err = find_trap(proc, &trap);
		if (err) {
			attach_arch__free(st);
			return attach__fail(
				proc, err == -ESRCH ? -ESRCH : -ENOEXEC,
				"call: no place for a return stub and no int3 byte in any executable mapping");
		}
	} else if (proc->ret_most == ATTACH_RETURN_SIGNAL && proc->stub_sig &&
		   quiet_signal(proc->pid, proc->stub_sig) == proc->stub_sig)
		sig_end = proc->stub_sig;
	retaddr = !stub ? trap : sig_end ? stub + ATTACH_SIGSTUB_OFF : stub;

	/* Stack, from the red zone down: data arguments (16-aligned), then
	 * the signal frame whose first word is the return address; the call's
	 * sp points at it, so sp + 8 is 16-aligned at the callee's entry. */
	top = (attach_arch__sp(st) - ATTACH_ARCH_REDZONE) & ~(uint64_t)63;
	below = top;
	for (i = 0; i < nargs; i++) {
		argv[i] = args[i].value;
		if (!args[i].data)
			continue;
		below -= (args[i].len + 15) & ~(uint64_t)15;
		err = attach_proc__write(proc, below, args[i].data, args[i].len);
		if (err)
			goto out_free; /* nothing changed in the thread yet */
		argv[i] = below;
	}
	img = malloc(attach_arch__frame_max(st));
	if (!img) {
		err = attach__fail(proc, -ENOMEM, "call: out of memory");
		goto out_free;
	}
	attach_arch__frame(st, below, retaddr, img, &frame);
	imglen = below - frame;
	err = attach_proc__write(proc, frame, img, imglen);
	if (err)
		goto out_free;
	sp = frame;
	resume = stub && !sig_end ? PTRACE_SYSCALL : PTRACE_CONT;

	/* Debugger side: no ^C/kill between here and the restore. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &block, &old);

	/* Target side: every signal blocked except synchronous faults. */
	mask = ~0ull;
	mask &= ~(sigbit(SIGSEGV) | sigbit(SIGBUS) | sigbit(SIGILL) | sigbit(SIGFPE) |
		  sigbit(SIGTRAP) | sigbit(SIGSYS));
	if (sig_end)
		mask &= ~sigbit(sig_end);
	if (ptrace(PTRACE_SETSIGMASK, tid, (void *)sizeof(mask), &mask) < 0) {
		err = -errno;
		goto out_restore;
	}
	err = attach_arch__set_call(tid, st, fn, argv, nargs, sp);
	if (err)
		goto out_restore;
	if (ptrace(resume, tid, NULL, NULL) < 0) {
		err = -errno;
		goto out_restore;
	}
	t->stop = ATTACH_STOP_NONE;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		left = 0;
		if (proc->call_timeout_ms) {
			uint64_t el;
			clock_gettime(CLOCK_MONOTONIC, &t1);
			el = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000 +
			     (uint64_t)((t1.tv_nsec - t0.tv_nsec) / 1000000);
			left = el >= proc->call_timeout_ms ? 1
							   : proc->call_timeout_ms - (unsigned)el;
		}
		err = attach__wait(tid, &status, left);
		if (err == -ETIMEDOUT) {
			/* Abandon the call: stop the thread on its way out of
			 * the kernel (an interrupt or signal stop, not a
			 * syscall-stop), wherever it is. */
			ptrace(PTRACE_INTERRUPT, tid, NULL, NULL);
			for (;;) {
				if (attach__wait(tid, &status, 2000) || !WIFSTOPPED(status)) {
					err = -ESRCH;
					goto out_gone;
				}
				if (WSTOPSIG(status) != (SIGTRAP | 0x80))
					break;
				/* A syscall-stop consumed the interrupt (any
				 * ptrace stop does): ask again, then go on. */
				ptrace(PTRACE_INTERRUPT, tid, NULL, NULL);
				ptrace(PTRACE_CONT, tid, NULL, NULL);
			}
			if ((status >> 16) == 0 && !is_fault_signal(WSTOPSIG(status)))
				note_foreign(t, extra, &nextra, 8, WSTOPSIG(status));
			t->stop = (status >> 16) == 0 ? ATTACH_STOP_SIGNAL : ATTACH_STOP_INTERRUPT;
			attach__fail(
				proc, -ETIMEDOUT,
				"call: 0x%llx on thread %d did not return within %u ms; abandoned",
				(unsigned long long)fn, (int)tid, proc->call_timeout_ms);
			err = -ETIMEDOUT;
			goto out_restore_msg;
		}
		if (err)
			goto out_gone;
		if (!WIFSTOPPED(status)) {
			err = -ESRCH;
			goto out_gone;
		}
		stops++;
		sig = WSTOPSIG(status);
		event = status >> 16;
		if (sig == (SIGTRAP | 0x80)) {
			/* A syscall-stop: the callee's own syscalls pass; the
			 * stub's rt_sigreturn is the end of the call. */
			r = attach_arch__is_stub_return(tid, stub, frame);
			if (r < 0) {
				err = r;
				goto out_gone;
			}
			if (r == 1) {
				err = attach_proc__read(proc, frame, &rax, sizeof(rax));
				if (err) {
					err = attach__fail(proc, err,
							   "call: read the return value");
					t->stop = ATTACH_STOP_SYSCALL;
					now = ATTACH_AT_ENTRY;
					goto out_restore_msg;
				}
				now = ATTACH_AT_ENTRY;
				break;
			}
			if (ptrace(resume, tid, NULL, NULL) < 0) {
				err = -errno;
				goto out_gone;
			}
			continue;
		}
		if (event != 0) {
			/* A group-stop (SIGSTOP from outside, already seen as a
			 * signal-delivery-stop and recorded) or a stray event:
			 * keep the call going. */
			if (ptrace(resume, tid, NULL, NULL) < 0) {
				err = -errno;
				goto out_gone;
			}
			continue;
		}
		err = attach_arch__get_result(tid, &rax, &pc, &rsp);
		if (err)
			goto out_gone;
		if (!stub && sig == SIGTRAP && pc == attach_arch__trap_pc(trap) && rsp == sp + 8)
			break;
		if (sig_end && sig == sig_end && pc == attach_arch__signal_stub_pc(retaddr) &&
		    rsp == sp + 8) {
			/* The signalling stub's signal: suppressed by the restore
			 * (the thread is released without it). */
			err = attach_proc__read(proc, frame, &rax, sizeof(rax));
			if (err) {
				err = attach__fail(proc, err, "call: read the return value");
				t->stop = ATTACH_STOP_SIGNAL;
				goto out_restore_msg;
			}
			break;
		}
		if (ptrace(PTRACE_GETSIGINFO, tid, NULL, &si) < 0)
			memset(&si, 0, sizeof(si));
		if (is_fault_signal(sig) && si.si_code > 0) {
			/* A fault raised by the CPU inside the callee (si_code > 0:
			 * kernel-made, not kill/tgkill/sigqueue). Suppressed. */
			t->stop = ATTACH_STOP_SIGNAL;
			attach__fail(
				proc, -EFAULT,
				"call: 0x%llx on thread %d crashed: %s at pc 0x%llx (addr %p); thread restored",
				(unsigned long long)fn, (int)tid, strsignal(sig),
				(unsigned long long)pc, si.si_addr);
			err = -EFAULT;
			goto out_restore_msg;
		}
		note_foreign(t, extra, &nextra, 8, sig);
		if (ptrace(resume, tid, NULL, NULL) < 0) {
			err = -errno;
			goto out_gone;
		}
	}
	/* Done: in the stub's syscall-entry-stop, or in the signalling stub's
	 * or the int3's signal-delivery-stop. */
	t->stop = now == ATTACH_AT_ENTRY ? ATTACH_STOP_SYSCALL : ATTACH_STOP_SIGNAL;
	proc->last_return = !stub     ? ATTACH_RETURN_TRAP
			    : sig_end ? ATTACH_RETURN_SIGNAL
				      : ATTACH_RETURN_SYSCALL;
	proc->last_stops = stops;
	if (ret)
		*ret = rax;
	err = attach_arch__restore(tid, st, now);
	if (err)
		attach__fail(proc, err, "call: restore registers of %d: %s", (int)tid,
			     strerror(-err));
	goto out_unblock;

out_restore:
	attach__fail(proc, err, "call: set up 0x%llx on thread %d: %s", (unsigned long long)fn,
		     (int)tid, strerror(-err));
out_restore_msg:
	/* Never resumed (setup failed): still in its original stop. */
	if (attach_arch__restore(tid, st, t->stop == ATTACH_STOP_SYSCALL ? ATTACH_AT_ENTRY : now) ==
		    0 &&
	    t->stop == ATTACH_STOP_NONE)
		t->stop = ATTACH_STOP_INTERRUPT;
	goto out_unblock;
out_gone:
	err = -ESRCH;
	attach__fail(proc, err, "call: thread %d exited during the call%s", (int)tid,
		     attach__alive(proc->pid) ? "" : " (the process is gone)");
	{
		size_t k;
		for (k = 0; k < proc->nthreads; k++) {
			if (proc->threads[k].tid == tid) {
				memmove(&proc->threads[k], &proc->threads[k + 1],
					(proc->nthreads - k - 1) * sizeof(proc->threads[0]));
				proc->nthreads--;
				break;
			}
		}
	}
out_unblock:
	proc->maps_fresh = false; /* the callee may have mapped or unmapped */
	/* Further foreign signals: queued again; they stay pending (the
	 * thread is stopped) and follow the first one on release. */
	for (i = 0; i < nextra; i++)
		attach__requeue_signal(proc->pid, tid, &extra[i].info, extra[i].sig);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
out_free:
	if (err && err != -ESRCH && !proc->err[0])
		attach__fail(proc, err, "call: %s", strerror(-err));
	free(img);
	attach_arch__free(st);
	return err;
}

uint64_t attach_proc__return_stub(const struct attach_proc *proc)
{
	return proc->ret_most == ATTACH_RETURN_TRAP ? 0 : proc->stub_addr;
}

void attach_proc__set_return(struct attach_proc *proc, enum attach_return best)
{
	proc->ret_most = best;
}

enum attach_return attach_proc__last_return(const struct attach_proc *proc, unsigned *stops)
{
	if (stops)
		*stops = proc->last_stops;
	return proc->last_return;
}

int attach_proc__call(struct attach_proc *proc, pid_t tid, uint64_t fn, const uint64_t *args,
		      unsigned nargs, uint64_t *ret)
{
	struct attach_arg a[ATTACH_ARCH_MAX_ARGS];
	unsigned i;

	if (nargs > ATTACH_ARCH_MAX_ARGS)
		return attach__fail(proc, -EINVAL, "call: %u arguments, at most %d", nargs,
				    ATTACH_ARCH_MAX_ARGS);
	for (i = 0; i < nargs; i++) {
		a[i].value = args[i];
		a[i].data = NULL;
		a[i].len = 0;
	}
	return attach_proc__call_args(proc, tid, fn, a, nargs, ret);
}

int attach_proc__call_sym(struct attach_proc *proc, pid_t tid, const char *lib_prefix,
			  const char *sym, const struct attach_arg *args, unsigned nargs,
			  uint64_t *ret)
{
	struct attach_elf *elf;
	struct attach_sym s;
	uint64_t fn;
	int err;

	err = attach_proc__find_elf(proc, lib_prefix, &elf);
	if (err)
		return err;
	err = attach_elf__symbol_info(elf, sym, &s);
	if (err)
		return err;
	fn = s.addr;
	if (s.type == STT_GNU_IFUNC) {
		/* The symbol is a resolver returning the implementation chosen
		 * for this CPU (what the dynamic linker would have stored). */
		err = attach_proc__call_args(proc, tid, s.addr, NULL, 0, &fn);
		if (err)
			return err;
		if (!fn)
			return attach__fail(proc, -ENOENT, "call: IFUNC %s resolved to NULL", sym);
	}
	return attach_proc__call_args(proc, tid, fn, args, nargs, ret);
}

int attach_proc__pick_call_thread(struct attach_proc *proc, pid_t *tid)
{
	struct attach_arch_state *st;
	size_t i;
	int best = -1, rank;

	*tid = 0;
	if (!proc->seized || !proc->nthreads)
		return attach__fail(proc, -EINVAL, "pick thread: not seized");
	for (i = 0; i < proc->nthreads; i++) {
		if (proc->threads[i].stop == ATTACH_STOP_GROUP ||
		    proc->threads[i].stop == ATTACH_STOP_NONE)
			continue;
		if (attach_arch__save(proc->threads[i].tid,
				      proc->threads[i].stop == ATTACH_STOP_SYSCALL ? ATTACH_AT_ENTRY
										   : ATTACH_AT_EXIT,
				      &st))
			continue;
		rank = attach_arch__syscall_rank(attach_arch__syscall(st));
		attach_arch__free(st);
		if (rank > best) {
			best = rank;
			*tid = proc->threads[i].tid;
		}
	}
	if (best < 0)
		return attach__fail(proc, -ESRCH, "pick thread: no stopped thread");
	return 0;
}
