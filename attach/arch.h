/* attach/: the per-architecture interface behind remote calls.
 *
 * Everything that depends on the register file, the calling convention or
 * syscall numbers lives in one file per arch (attach/arch-<arch>.c) behind
 * these functions; an unknown arch is a compile error, never a silent guess.
 */
#ifndef SUTURE_ATTACH_ARCH_H
#define SUTURE_ATTACH_ARCH_H

#include <stdint.h>
#include <sys/types.h>

#if defined(__x86_64__)
#define ATTACH_ARCH_NAME "x86_64"
/* System V AMD64 ABI 3.2.2: 128 bytes below %rsp belong to the function
 * (leaf code keeps locals there without moving %rsp); %rsp + 8 is 16-byte
 * aligned at function entry. */
#define ATTACH_ARCH_REDZONE 128
#define ATTACH_ARCH_STACK_ALIGN 16
#define ATTACH_ARCH_MAX_ARGS 6
/* int3: one byte, so any 0xcc byte in executable memory is a breakpoint. */
#define ATTACH_ARCH_TRAP_BYTE 0xcc
#else
#error "attach: unsupported architecture; only x86-64 is implemented (attach/arch-x86_64.c)"
#endif

/* Where a thread is stopped, for saving and restoring its state:
 *  EXIT  on its way back to user mode, inside get_signal() (interrupt stop,
 *        signal-delivery-stop, group-stop): an interrupted syscall shows as
 *        rax = -ERESTART*, and the kernel applies the restart rules itself
 *        when the thread resumes;
 *  ENTRY at a syscall-entry-stop: the kernel runs syscall orig_rax (skipped
 *        when -1) with the registers as they are when the thread resumes. */
enum attach_arch_at { ATTACH_AT_EXIT = 0, ATTACH_AT_ENTRY = 1 };

/* A thread's saved state: general registers, extended state and the signal
 * mask, and where it was taken. Opaque; allocated by save, freed by free. */
struct attach_arch_state;

/* PTRACE_GETREGS + GETREGSET(xstate) + GETSIGMASK on a stopped tracee. */
int attach_arch__save(pid_t tid, enum attach_arch_at at, struct attach_arch_state **out);
/* Puts the saved state back into a thread now stopped at `now`, translated
 * so that resuming it is equivalent to resuming the original stop (the same
 * syscall restarted, skipped or re-entered). */
int attach_arch__restore(pid_t tid, const struct attach_arch_state *st, enum attach_arch_at now);
void attach_arch__free(struct attach_arch_state *st);

/* Whether the thread runs in the native 64-bit mode this file calls in
 * (not a 32-bit compat task). */
int attach_arch__native(const struct attach_arch_state *st);
/* The saved stack pointer and program counter. */
uint64_t attach_arch__sp(const struct attach_arch_state *st);
uint64_t attach_arch__pc(const struct attach_arch_state *st);
/* The syscall the thread was stopped in, or -1 when not in one. */
long attach_arch__syscall(const struct attach_arch_state *st);
/* The syscall a stopped tracee is in (one PTRACE_PEEKUSER), -1 if none. */
long attach_arch__peek_syscall(pid_t tid);
/* Rank of a syscall for hosting a remote call: 3 sleeping (read, poll,
 * nanosleep, wait...), 2 other, 1 futex (maybe a lock), 0 none. */
int attach_arch__syscall_rank(long nr);

/* Registers for a call of fn(args) from the saved state: pc = fn, sp = sp
 * (already holding the return address), arguments in the ABI registers, no
 * syscall to restart, flags sane. Writes them with PTRACE_SETREGS. */
int attach_arch__set_call(pid_t tid, const struct attach_arch_state *st, uint64_t fn,
			  const uint64_t *args, unsigned nargs, uint64_t sp);
/* After a stop: return value, pc and sp. */
int attach_arch__get_result(pid_t tid, uint64_t *ret, uint64_t *pc, uint64_t *sp);
/* The pc a trap at trap_addr reports (x86: after the int3). */
uint64_t attach_arch__trap_pc(uint64_t trap_addr);

/* The self-restoring return path. The call returns into a stub that stashes
 * the return value in the slot the return address came from and invokes
 * rt_sigreturn on a signal frame built from the saved state. With the
 * debugger alive, the thread is stopped at that syscall's entry and restored
 * by ptrace (the sigreturn is never run); if the debugger died meanwhile, the
 * sigreturn restores registers, extended state and signal mask by itself
 * and the target goes on as if nothing happened. */
/* The stub's code; *len bytes, the syscall ends at the end. */
const unsigned char *attach_arch__stub(size_t *len);
/* The signalling stub: stashes the return value like the stub, sends
 * signal sig to its own thread (getpid, gettid, tgkill), then invokes
 * rt_sigreturn. Run under PTRACE_CONT, the call's end is the signal's
 * delivery stop, the only stop of the whole call; with sig chosen so
 * that the process discards it (ignored, or ignored by default and not
 * caught), a debugger that died meanwhile leaves a signal nobody sees and
 * the same self-restoring sigreturn. Writes at most cap bytes to out, sets
 * *len; -ENOSPC if cap is too small. */
int attach_arch__signal_stub(int sig, unsigned char *out, size_t cap, size_t *len);
/* The pc the signalling stub's signal stops at, for a stub at stub. */
uint64_t attach_arch__signal_stub_pc(uint64_t stub);
/* Bytes needed below `below` for the frame (upper bound). */
size_t attach_arch__frame_max(const struct attach_arch_state *st);
/* Lays out the frame in img, which stands for the target memory
 * [*frame_addr, below): the return address (ret) at *frame_addr, which is
 * also the sp for the call (8 mod 16, as after a call instruction). */
int attach_arch__frame(const struct attach_arch_state *st, uint64_t below, uint64_t ret,
		       unsigned char *img, uint64_t *frame_addr);
/* At a syscall-entry-stop: 1 if it is the stub's rt_sigreturn for the frame
 * at frame_addr, 0 if some other syscall, -errno on failure. */
int attach_arch__is_stub_return(pid_t tid, uint64_t stub, uint64_t frame_addr);

#endif
