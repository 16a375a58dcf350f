/* attach/: x86-64 registers, calling convention and syscall numbers.
 *
 * The only file that knows struct user_regs_struct. See attach/arch.h for the
 * contract of each function.
 */
#include "attach/arch.h"

#if defined(__x86_64__)

#include <elf.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif

/* The kernel's xstate regset is fpu_user_cfg.max_size bytes: 2696 with
 * AVX-512, 11008 with AMX tiles. GETREGSET shrinks iov_len to the real size. */
#define XSTATE_MAX 16384

/* RFLAGS bits (Intel SDM vol. 1, 3.4.3). */
#define X86_EFLAGS_TF 0x100u
#define X86_EFLAGS_DF 0x400u

_Static_assert(sizeof(((struct user_regs_struct *)0)->rip) == 8, "64-bit user_regs_struct");
_Static_assert(ATTACH_ARCH_MAX_ARGS == 6, "six integer argument registers");

struct attach_arch_state {
	struct user_regs_struct regs;
	uint64_t sigmask; /* kernel sigset_t: 64 bits on x86-64 */
	size_t xlen;      /* bytes of xstate (or fpregs when !xsave) */
	int xsave;        /* 1: NT_X86_XSTATE, 0: PTRACE_GETFPREGS */
	unsigned char xstate[]; /* 64-byte alignment not needed: the kernel copies */
};

int attach_arch__save(pid_t tid, struct attach_arch_state **out)
{
	struct attach_arch_state *st;
	struct iovec iov;
	int err;

	*out = NULL;
	st = calloc(1, sizeof(*st) + XSTATE_MAX);
	if (!st)
		return -ENOMEM;
	if (ptrace(PTRACE_GETREGS, tid, NULL, &st->regs) < 0)
		goto fail;
	iov.iov_base = st->xstate;
	iov.iov_len = XSTATE_MAX;
	if (ptrace(PTRACE_GETREGSET, tid, (void *)(uintptr_t)NT_X86_XSTATE, &iov) == 0) {
		st->xsave = 1;
		st->xlen = iov.iov_len;
	} else {
		/* No XSAVE (very old CPU or kernel): the legacy FXSAVE area. */
		_Static_assert(sizeof(struct user_fpregs_struct) <= XSTATE_MAX, "fpregs fit");
		if (ptrace(PTRACE_GETFPREGS, tid, NULL, st->xstate) < 0)
			goto fail;
		st->xsave = 0;
		st->xlen = sizeof(struct user_fpregs_struct);
	}
	if (ptrace(PTRACE_GETSIGMASK, tid, (void *)sizeof(st->sigmask), &st->sigmask) < 0)
		goto fail;
	*out = st;
	return 0;
fail:
	err = -errno;
	free(st);
	return err;
}

int attach_arch__restore(pid_t tid, const struct attach_arch_state *st)
{
	struct iovec iov;
	int err = 0;

	/* Order: mask first (no signal can slip in between the others anyway,
	 * the thread is stopped), then FP state, then the general registers.
	 * Every step is attempted even if one fails, so the thread gets back as
	 * much of its own state as possible; the first error is returned. */
	if (ptrace(PTRACE_SETSIGMASK, tid, (void *)sizeof(st->sigmask), &st->sigmask) < 0)
		err = -errno;
	if (st->xsave) {
		iov.iov_base = (void *)st->xstate;
		iov.iov_len = st->xlen;
		if (ptrace(PTRACE_SETREGSET, tid, (void *)(uintptr_t)NT_X86_XSTATE, &iov) < 0 && !err)
			err = -errno;
	} else if (ptrace(PTRACE_SETFPREGS, tid, NULL, (void *)st->xstate) < 0 && !err) {
		err = -errno;
	}
	/* orig_rax goes back too: a thread stopped inside an interrupted
	 * syscall then gets the kernel's own restart handling when resumed (it
	 * is stopped in get_signal(), before arch_do_signal_or_restart()). */
	if (ptrace(PTRACE_SETREGS, tid, NULL, (void *)&st->regs) < 0 && !err)
		err = -errno;
	return err;
}

void attach_arch__free(struct attach_arch_state *st)
{
	free(st);
}

uint64_t attach_arch__sp(const struct attach_arch_state *st)
{
	return st->regs.rsp;
}

uint64_t attach_arch__pc(const struct attach_arch_state *st)
{
	return st->regs.rip;
}

long attach_arch__syscall(const struct attach_arch_state *st)
{
	/* orig_rax holds the syscall number while the thread is stopped on a
	 * syscall's exit path, -1 after an interrupt or exception entry. */
	return (long)st->regs.orig_rax;
}

int attach_arch__syscall_rank(long nr)
{
	switch (nr) {
	case SYS_read: case SYS_pread64: case SYS_readv: case SYS_preadv:
	case SYS_poll: case SYS_ppoll: case SYS_select: case SYS_pselect6:
	case SYS_epoll_wait: case SYS_epoll_pwait:
	case SYS_nanosleep: case SYS_clock_nanosleep: case SYS_pause:
	case SYS_wait4: case SYS_waitid: case SYS_accept: case SYS_accept4:
	case SYS_recvfrom: case SYS_recvmsg: case SYS_rt_sigsuspend:
	case SYS_rt_sigtimedwait:
		return 3;
	case SYS_futex:
		return 1;
	default:
		return nr >= 0 ? 2 : 0;
	}
}

int attach_arch__set_call(pid_t tid, const struct attach_arch_state *st, uint64_t fn,
			  const uint64_t *args, unsigned nargs, uint64_t sp)
{
	struct user_regs_struct r = st->regs;

	if (nargs > ATTACH_ARCH_MAX_ARGS)
		return -EINVAL;
	r.rdi = nargs > 0 ? args[0] : 0;
	r.rsi = nargs > 1 ? args[1] : 0;
	r.rdx = nargs > 2 ? args[2] : 0;
	r.rcx = nargs > 3 ? args[3] : 0;
	r.r8 = nargs > 4 ? args[4] : 0;
	r.r9 = nargs > 5 ? args[5] : 0;
	r.rax = 0; /* %al = vector registers used by a variadic call */
	r.rip = fn;
	r.rsp = sp;
	/* No syscall restart may be applied to our registers on resume. */
	r.orig_rax = (unsigned long long)-1;
	/* The ABI wants DF clear at entry; TF would single-step the call. */
	r.eflags &= ~(unsigned long long)(X86_EFLAGS_TF | X86_EFLAGS_DF);
	if (ptrace(PTRACE_SETREGS, tid, NULL, &r) < 0)
		return -errno;
	return 0;
}

int attach_arch__get_result(pid_t tid, uint64_t *ret, uint64_t *pc, uint64_t *sp)
{
	struct user_regs_struct r;

	if (ptrace(PTRACE_GETREGS, tid, NULL, &r) < 0)
		return -errno;
	*ret = r.rax;
	*pc = r.rip;
	*sp = r.rsp;
	return 0;
}

uint64_t attach_arch__trap_pc(uint64_t trap_addr)
{
	return trap_addr + 1; /* int3 is a trap: rip points past it */
}

#endif /* __x86_64__ */
