/* attach/: x86-64 registers, calling convention and syscall numbers.
 *
 * The only file that knows struct user_regs_struct. See attach/arch.h for the
 * contract of each function.
 */
#include "attach/arch.h"

#if defined(__x86_64__)

#include <elf.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <signal.h>
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

/* Kernel-internal errno values an interrupted syscall leaves in rax
 * (include/linux/errno.h); stable ABI as seen through ptrace. */
#define ERESTARTSYS 512
#define ERESTARTNOINTR 513
#define ERESTARTNOHAND 514
#define ERESTART_RESTARTBLOCK 516

struct attach_arch_state {
	struct user_regs_struct regs;
	enum attach_arch_at at;
	uint64_t sigmask;       /* kernel sigset_t: 64 bits on x86-64 */
	size_t xlen;            /* bytes of xstate (or fpregs when !xsave) */
	int xsave;              /* 1: NT_X86_XSTATE, 0: PTRACE_GETFPREGS */
	unsigned char xstate[]; /* 64-byte alignment not needed: the kernel copies */
};

int attach_arch__save(pid_t tid, enum attach_arch_at at, struct attach_arch_state **out)
{
	struct attach_arch_state *st;
	struct iovec iov;
	int err;

	*out = NULL;
	st = calloc(1, sizeof(*st) + XSTATE_MAX);
	if (!st)
		return -ENOMEM;
	st->at = at;
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

static bool restartable(long rax)
{
	return rax == -ERESTARTSYS || rax == -ERESTARTNOINTR || rax == -ERESTARTNOHAND;
}

/* The registers that, written into a thread stopped at `now`, resume it
 * as the saved state would have resumed. */
static struct user_regs_struct regs_for(const struct attach_arch_state *st, enum attach_arch_at now)
{
	struct user_regs_struct r = st->regs;
	long orig = (long)r.orig_rax, rax = (long)r.rax;

	if (st->at == ATTACH_AT_EXIT && now == ATTACH_AT_ENTRY) {
		/* Do at syscall entry what the kernel would have done on the
		 * way out: re-enter the interrupted syscall (its arguments are
		 * intact: the kernel preserves all but rax, rcx, r11), or
		 * continue it through restart_syscall, or skip (rax kept). */
		if (orig >= 0 && restartable(rax))
			r.orig_rax = (unsigned long long)orig;
		else if (orig >= 0 && rax == -ERESTART_RESTARTBLOCK)
			r.orig_rax = SYS_restart_syscall;
		else
			r.orig_rax = (unsigned long long)-1;
	} else if (st->at == ATTACH_AT_ENTRY && now == ATTACH_AT_EXIT && orig >= 0 &&
		   !restartable(rax) && rax != -ERESTART_RESTARTBLOCK) {
		/* The thread was about to enter syscall orig: make the
		 * kernel's restart rule re-execute the syscall instruction.
		 * (A state we translated from a way-out stop still holds its
		 * original -ERESTART* value: that one is kept, so a signal
		 * handler decides between restart and EINTR as it would.) */
		r.rax = (unsigned long long)-ERESTARTNOINTR;
	}
	return r;
}

int attach_arch__restore(pid_t tid, const struct attach_arch_state *st, enum attach_arch_at now)
{
	struct user_regs_struct r = regs_for(st, now);
	struct iovec iov;
	int err = 0;

	/* Mask first, then FP state, then the general registers last, so a
	 * debugger that dies in between leaves the thread with its own
	 * registers or with the call's (whose frame restores everything).
	 * Every step is attempted even if one fails; the first error wins. */
	if (ptrace(PTRACE_SETSIGMASK, tid, (void *)sizeof(st->sigmask), &st->sigmask) < 0)
		err = -errno;
	if (st->xsave) {
		iov.iov_base = (void *)st->xstate;
		iov.iov_len = st->xlen;
		if (ptrace(PTRACE_SETREGSET, tid, (void *)(uintptr_t)NT_X86_XSTATE, &iov) < 0 &&
		    !err)
			err = -errno;
	} else if (ptrace(PTRACE_SETFPREGS, tid, NULL, (void *)st->xstate) < 0 && !err) {
		err = -errno;
	}
	/* orig_rax goes back too: a thread stopped on its way out of an
	 * interrupted syscall then gets the kernel's own restart handling when
	 * resumed (arch_do_signal_or_restart() runs after get_signal()). */
	if (ptrace(PTRACE_SETREGS, tid, NULL, &r) < 0 && !err)
		err = -errno;
	return err;
}

void attach_arch__free(struct attach_arch_state *st)
{
	free(st);
}

int attach_arch__native(const struct attach_arch_state *st)
{
	return st->regs.cs == 0x33; /* __USER_CS; 0x23 is the 32-bit __USER32_CS */
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

long attach_arch__peek_syscall(pid_t tid)
{
	long v;

	errno = 0;
	v = ptrace(PTRACE_PEEKUSER, tid, (void *)offsetof(struct user_regs_struct, orig_rax), NULL);
	return errno ? -1 : v;
}

int attach_arch__syscall_rank(long nr)
{
	switch (nr) {
	/* clang-format off */
	case SYS_read: case SYS_pread64: case SYS_readv: case SYS_preadv:
	case SYS_poll: case SYS_ppoll: case SYS_select: case SYS_pselect6:
	case SYS_epoll_wait: case SYS_epoll_pwait:
	case SYS_nanosleep: case SYS_clock_nanosleep: case SYS_pause:
	case SYS_wait4: case SYS_waitid: case SYS_accept: case SYS_accept4:
	case SYS_recvfrom: case SYS_recvmsg: case SYS_rt_sigsuspend:
	case SYS_rt_sigtimedwait: case SYS_restart_syscall:
		return 3;
	/* clang-format on */
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

/* ---- The self-restoring frame ------------------------------------------ */

/* mov %rax,-0x8(%rsp); mov $SYS_rt_sigreturn,%eax; syscall */
static const unsigned char stub_code[] = {
	0x48, 0x89, 0x44, 0x24, 0xf8, 0xb8, SYS_rt_sigreturn, 0x00, 0x00, 0x00, 0x0f, 0x05,
};
_Static_assert(SYS_rt_sigreturn == 15, "x86-64 rt_sigreturn");

/* The kernel's struct ucontext (include/uapi/asm-generic/ucontext.h) with
 * x86-64's struct sigcontext, which glibc's <bits/sigcontext.h> mirrors
 * (its __pad0 is the kernel's ss). glibc's ucontext_t differs (bigger
 * sigset, fp area inside): not usable here. */
struct kucontext {
	uint64_t uc_flags;
	uint64_t uc_link;
	stack_t uc_stack;
	struct sigcontext uc_mcontext;
	uint64_t uc_sigmask;
};
_Static_assert(sizeof(struct sigcontext) == 256, "x86-64 sigcontext");
_Static_assert(offsetof(struct kucontext, uc_mcontext) == 40, "uc_mcontext offset");
_Static_assert(offsetof(struct kucontext, uc_sigmask) == 296, "uc_sigmask offset");

/* arch/x86/include/uapi/asm/ucontext.h */
#define UC_FP_XSTATE 0x1
#define UC_SIGCONTEXT_SS 0x2
#define UC_STRICT_RESTORE_SS 0x4
/* rt_sigframe: pretcode, ucontext, siginfo (arch/x86/include/asm/sigframe.h) */
#define FRAME_SIZE (8 + sizeof(struct kucontext) + 128)
#define FXSAVE_SW_OFFSET 464 /* fxregs_state.sw_reserved */

const unsigned char *attach_arch__stub(size_t *len)
{
	*len = sizeof(stub_code);
	return stub_code;
}

/* mov [rsp-8], rax; getpid; mov edi, eax; gettid; mov esi, eax;
 * mov edx, SIG; tgkill; <the signal stops here> rt_sigreturn. The
 * numbers travel as mov eax, imm32; the syscalls' clobbers (rax, rcx,
 * r11, rdi, rsi, rdx) are all undone by the sigreturn or by the
 * debugger's restore. getpid and gettid answer in the thread's own pid
 * namespace, which is where tgkill looks. */
static const unsigned char sigstub_head[] = {
	0x48, 0x89,       0x44, 0x24, 0xf8, /* mov [rsp-8], rax */
	0xb8, SYS_getpid, 0x00, 0x00, 0x00, /* mov eax, SYS_getpid */
	0x0f, 0x05,                         /* syscall */
	0x89, 0xc7,                         /* mov edi, eax */
	0xb8, SYS_gettid, 0x00, 0x00, 0x00, /* mov eax, SYS_gettid */
	0x0f, 0x05,                         /* syscall */
	0x89, 0xc6,                         /* mov esi, eax */
	0xba,                               /* mov edx, imm32: the signal */
};
static const unsigned char sigstub_tail[] = {
	0xb8, SYS_tgkill,
	0x00, 0x00,
	0x00,       /* mov eax, SYS_tgkill */
	0x0f, 0x05, /* syscall */
	0xb8, SYS_rt_sigreturn,
	0x00, 0x00,
	0x00,       /* mov eax, SYS_rt_sigreturn */
	0x0f, 0x05, /* syscall */
};
_Static_assert(SYS_getpid == 39 && SYS_gettid == 186 && SYS_tgkill == 234,
	       "x86-64 syscall numbers fit one byte");
#define SIGSTUB_LEN (sizeof(sigstub_head) + 4 + sizeof(sigstub_tail))
#define SIGSTUB_STOP (sizeof(sigstub_head) + 4 + 7) /* after tgkill's syscall */

int attach_arch__signal_stub(int sig, unsigned char *out, size_t cap, size_t *len)
{
	uint32_t s = (uint32_t)sig;
	if (cap < SIGSTUB_LEN)
		return -ENOSPC;
	memcpy(out, sigstub_head, sizeof(sigstub_head));
	memcpy(out + sizeof(sigstub_head), &s, 4);
	memcpy(out + sizeof(sigstub_head) + 4, sigstub_tail, sizeof(sigstub_tail));
	*len = SIGSTUB_LEN;
	return 0;
}

uint64_t attach_arch__signal_stub_pc(uint64_t stub)
{
	return stub + SIGSTUB_STOP;
}

size_t attach_arch__frame_max(const struct attach_arch_state *st)
{
	return FRAME_SIZE + 16 + st->xlen + 4 + 64;
}

int attach_arch__frame(const struct attach_arch_state *st, uint64_t below, uint64_t ret,
		       unsigned char *img, uint64_t *frame_addr)
{
	struct user_regs_struct r = st->regs;
	struct _fpx_sw_bytes sw;
	struct kucontext uc;
	struct sigcontext *sc = &uc.uc_mcontext;
	uint64_t fp, fr;
	uint32_t magic2 = FP_XSTATE_MAGIC2;
	long orig = (long)r.orig_rax, rax = (long)r.rax;

	/* XRSTOR wants the image 64-byte aligned; FXRSTOR 16. */
	fp = (below - st->xlen - sizeof(magic2)) & ~(uint64_t)63;
	fr = ((fp - FRAME_SIZE - 8) & ~(uint64_t)15) + 8;
	memset(img, 0, below - fr);

	/* rt_sigreturn sets orig_rax = -1, so no restart happens after it:
	 * apply the rules here (CRIU does the same before its sigreturn). A
	 * restart block cannot survive sigreturn (it resets restart_block), so
	 * -ERESTART_RESTARTBLOCK becomes -EINTR. */
	if (orig >= 0 && (st->at == ATTACH_AT_ENTRY || restartable(rax))) {
		r.rax = (unsigned long long)orig;
		r.rip -= 2; /* back onto the syscall instruction */
	} else if (orig >= 0 && rax == -ERESTART_RESTARTBLOCK) {
		r.rax = (unsigned long long)-EINTR;
	}
	memset(&uc, 0, sizeof(uc));
	uc.uc_flags = UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
	/* restore_altstack() would install uc_stack; flags that sigaltstack()
	 * rejects with EINVAL (the kernel ignores that error there) leave the
	 * thread's own alternate stack untouched. */
	uc.uc_stack.ss_flags = 0x40;
	sc->r8 = r.r8;
	sc->r9 = r.r9;
	sc->r10 = r.r10;
	sc->r11 = r.r11;
	sc->r12 = r.r12;
	sc->r13 = r.r13;
	sc->r14 = r.r14;
	sc->r15 = r.r15;
	sc->rdi = r.rdi;
	sc->rsi = r.rsi;
	sc->rbp = r.rbp;
	sc->rbx = r.rbx;
	sc->rdx = r.rdx;
	sc->rax = r.rax;
	sc->rcx = r.rcx;
	sc->rsp = r.rsp;
	sc->rip = r.rip;
	sc->eflags = r.eflags;
	sc->cs = (unsigned short)r.cs;
	sc->__pad0 = (unsigned short)r.ss;
	sc->__fpstate_word = fp;
	uc.uc_sigmask = st->sigmask;

	memcpy(img, &ret, sizeof(ret));
	memcpy(img + 8, &uc, sizeof(uc));
	memcpy(img + (fp - fr), st->xstate, st->xlen);
	/* PTRACE_GETREGSET fills sw_reserved with the kernel's own signal-frame
	 * bytes (magic1, sizes); the second magic follows the xstate. Without
	 * them the kernel restores the legacy FXSAVE part only. */
	if (st->xsave && st->xlen >= FXSAVE_SW_OFFSET + sizeof(sw)) {
		memcpy(&sw, st->xstate + FXSAVE_SW_OFFSET, sizeof(sw));
		if (sw.magic1 == FP_XSTATE_MAGIC1 && sw.xstate_size <= st->xlen)
			memcpy(img + (fp - fr) + sw.xstate_size, &magic2, sizeof(magic2));
	}
	*frame_addr = fr;
	return 0;
}

int attach_arch__is_stub_return(pid_t tid, uint64_t stub, uint64_t frame_addr)
{
	struct __ptrace_syscall_info si;

	memset(&si, 0, sizeof(si));
	if (ptrace(PTRACE_GET_SYSCALL_INFO, tid, (void *)sizeof(si), &si) < 0)
		return -errno;
	return si.op == PTRACE_SYSCALL_INFO_ENTRY && si.entry.nr == SYS_rt_sigreturn &&
	       si.instruction_pointer == stub + sizeof(stub_code) &&
	       si.stack_pointer == frame_addr + 8;
}

#endif /* __x86_64__ */
