/* attach/: a process seen from outside.
 *
 * Remote memory, mappings, ELF symbols with load bias, ptrace stop/resume of
 * every thread, and remote function calls. Nothing here knows about Python.
 *
 * Errors: functions return 0 or -errno; pointer returns give NULL and set
 * errno. Every failure also leaves a one-line message, naming the module,
 * the object and the cause ("attach: pid 4242: ptrace(SEIZE): Operation not
 * permitted"), readable with attach_proc__error(). A failure of the ptrace
 * machinery itself is distinct from a failure of a call inside the target:
 * attach_proc__call() returns 0 when the call ran, whatever it returned.
 */
#ifndef SUTURE_ATTACH_H
#define SUTURE_ATTACH_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>

struct attach_proc;

/* Open a process by pid: checks it exists and that we may read its memory.
 * Does not stop it. -ESRCH: no such process; -EPERM/-EACCES: not allowed. */
int attach_proc__open(pid_t pid, struct attach_proc **out);
/* Accepts NULL. Releases ptrace (if seized) first, restoring every thread. */
void attach_proc__close(struct attach_proc *proc);
pid_t attach_proc__pid(const struct attach_proc *proc);
/* The last error message for this handle ("" if none). */
const char *attach_proc__error(const struct attach_proc *proc);

/* Remote memory. read/write move exactly len bytes or fail (-EFAULT when the
 * range is not mapped, -ESRCH when the process is gone). */
int attach_proc__read(struct attach_proc *proc, uint64_t addr, void *buf, size_t len);
int attach_proc__write(struct attach_proc *proc, uint64_t addr, const void *buf, size_t len);

/* A NUL-terminated string at addr into buf[size]. Reads page by page, so a
 * string ending just before an unmapped page is fine. Returns its length;
 * -ERANGE when no NUL came within size - 1 bytes (buf then holds that
 * prefix, terminated); -EFAULT/-ESRCH as read. */
int attach_proc__read_str(struct attach_proc *proc, uint64_t addr, char *buf, size_t size);

struct attach_iov {
	uint64_t addr;
	void *buf;
	size_t len;
};
/* Batched read: one process_vm_readv for all pieces where possible. */
int attach_proc__readv(struct attach_proc *proc, const struct attach_iov *iov, size_t n);

/* Mappings from /proc/PID/maps, refreshed on demand. */
struct attach_map {
	uint64_t start, end, offset;
	char perms[5];    /* "r-xp" */
	const char *path; /* "" for anonymous; valid until the next refresh */
};
int attach_proc__refresh_maps(struct attach_proc *proc);
size_t attach_proc__map_count(const struct attach_proc *proc);
const struct attach_map *attach_proc__map(const struct attach_proc *proc, size_t i);

/* An ELF object mapped in the target (the executable, libpython, libc...).
 * Looked up by the basename prefix of its path ("libc.so", "python3.11") or
 * NULL for the main executable. The file is opened through
 * /proc/PID/map_files or /proc/PID/root so it is the target's own. */
struct attach_elf;
int attach_proc__find_elf(struct attach_proc *proc, const char *name_prefix,
			  struct attach_elf **out);
/* Load bias: runtime address = st_value + bias. */
uint64_t attach_elf__bias(const struct attach_elf *elf);
const char *attach_elf__path(const struct attach_elf *elf);
/* Build-id as lowercase hex ("" if none). */
const char *attach_elf__build_id(const struct attach_elf *elf);
/* Symbol lookup in .dynsym, then .symtab: runtime address and size.
 * -ENOENT when absent. */
int attach_elf__symbol(struct attach_elf *elf, const char *name, uint64_t *addr, uint64_t *size);
/* The file holding DWARF for this object: itself when it has .debug_info,
 * else /usr/lib/debug/.build-id/xx/rest.debug, else its .gnu_debuglink in
 * the usual directories. -ENOENT when none. The path is valid while elf is. */
int attach_elf__debug_file(struct attach_elf *elf, const char **path);

/* An unsigned integer object (4 or 8 bytes) exported by an ELF file on
 * disk (its .dynsym), read without running it: CPython 3.11+ exports its
 * version there as Py_Version (an unsigned long). -ENOENT when not
 * exported (or another size), -ENOEXEC when the file is not a
 * little-endian ELF (a script), -errno when it cannot be read. */
int attach_elf__file_uint(const char *path, const char *name, uint64_t *out);

/* Where the dynamic loader would find the first library an ELF file on disk
 * needs (DT_NEEDED) whose name starts with prefix: in its DT_RPATH when it
 * has no DT_RUNPATH, then $LD_LIBRARY_PATH, its DT_RUNPATH ($ORIGIN: the
 * real directory of path), then the usual system directories (the
 * loader's cache is not read). A shared-libpython interpreter's version is
 * read there (suture-run). 0 and the library's path in out; -ENOENT when
 * no such library is needed or it is not found; -ENOEXEC when path is not
 * a little-endian ELF64 file; -errno when it cannot be read. */
int attach_elf__file_needed(const char *path, const char *prefix, char *out, size_t cap);

/* Threads: stop every thread (PTRACE_SEIZE + PTRACE_INTERRUPT, looping over
 * /proc/PID/task until no new thread appears) and release them all. -EBUSY:
 * already traced by another process. */
int attach_proc__seize_all(struct attach_proc *proc);
int attach_proc__release_all(struct attach_proc *proc);
/* Seized threads; index 0 is the main thread (tid == pid) when it lives. */
size_t attach_proc__thread_count(const struct attach_proc *proc);
pid_t attach_proc__thread(const struct attach_proc *proc, size_t i);

/* Call fn(args...) on stopped thread tid (one of the seized threads), with
 * every register, the extended state and the signal mask restored after.
 * ret receives rax. 0: the call ran; -errno: it could not be run. */
int attach_proc__call(struct attach_proc *proc, pid_t tid, uint64_t fn, const uint64_t *args,
		      unsigned nargs, uint64_t *ret);

/* ---- Additions (additive; attach/README.md describes them) -------------- */

/* The process state letter from /proc/PID/stat ('R', 'S', 'T' stopped by job
 * control, 't' traced, 'Z' zombie...), read now, without ptrace. -ESRCH when
 * gone. Lets a caller report "stopped with SIGSTOP" before seizing. */
int attach_proc__state(struct attach_proc *proc, char *state);

/* Seize error codes, beyond the ones above:
 *   -ESRCH   the process does not exist or exited while being seized;
 *   -EPERM   not allowed: the message says whether Yama ptrace_scope or a
 *            missing CAP_SYS_PTRACE (other user, non-dumpable) is the cause;
 *   -EBUSY   already traced by another process (TracerPid in the message);
 *   -EAGAIN  the process is stopped by job control (SIGSTOP, state T); it is
 *            released again and stays stopped. Send SIGCONT first;
 *   -ETIMEDOUT a thread did not stop within 3 s (uninterruptible sleep).
 * Every failure path releases whatever was seized. */
int attach_proc__is_seized(const struct attach_proc *proc);
/* A one-line message for an error of attach_proc__open() (which has no
 * handle to carry one): for -EPERM it names the likely cause (Yama
 * ptrace_scope, another uid without CAP_SYS_PTRACE, not dumpable), for
 * -EBUSY the tracer's pid. */
void attach_explain_error(pid_t pid, int err, char *buf, size_t size);
/* Whether pid runs: false once it exited, even while it is a zombie not
 * yet reaped by its parent (kill(pid, 0) still succeeds then). */
bool attach_pid__alive(pid_t pid);

/* The absolute path of the script a Python interpreter pid runs, from
 * /proc/PID/cmdline (argv[0] is the interpreter; its options, -W and -X
 * with their values, are skipped) resolved against /proc/PID/cwd. No
 * ptrace. -ESRCH no such process; -ENOENT no script (python -c, -m, "-",
 * a REPL). buf gets at most cap - 1 bytes. */
/* The script of a python command line: the bytes of /proc/PID/cmdline in
 * [p, end) (NUL-separated, the last NUL possibly missing). CPython 3.11's
 * options are skipped (-W and -X take a value; --check-hash-based-pycs its
 * mode); -c, -m, "-" and "" have no script: -ENOENT. *arg points into the
 * input, *len bytes. Pure; tests/unit/test_attach_cmdline.c. */
int attach_cmdline__script(const char *p, const char *end, const char **arg, size_t *len);
int attach_pid__script(pid_t pid, char *buf, size_t cap);

/* The processes forked from root, children before grandchildren (from
 * /proc/PID/stat, no ptrace): at most cap pids into out, *n of them. 0,
 * -ENOMEM, or /proc's -errno. */
int attach_pid__descendants(pid_t root, pid_t *out, size_t cap, size_t *n);
/* Whether a and b run the same executable (/proc/PID/exe): a fork rather
 * than a program it ran. False when either cannot be read. */
bool attach_pid__same_exe(pid_t a, pid_t b);

/* An ELF symbol with its kind. STT_GNU_IFUNC symbols resolve to their
 * resolver, not to the implementation: attach_proc__call_sym handles that. */
struct attach_sym {
	uint64_t addr; /* runtime address (st_value + bias) */
	uint64_t size;
	unsigned char type; /* STT_FUNC, STT_OBJECT, STT_GNU_IFUNC... */
};
int attach_elf__symbol_info(struct attach_elf *elf, const char *name, struct attach_sym *out);
/* Accepts NULL. find_elf results are owned by the proc and freed with it;
 * this is only for callers that want to drop one early. */
void attach_elf__close(struct attach_elf *elf);

/* Remote calls.
 *
 * A call runs on one seized, stopped thread. The thread's general registers,
 * extended state (xsave) and signal mask are saved first and restored after,
 * whatever happens; async signals are blocked in the target for the duration
 * and every foreign signal that arrives meanwhile is re-delivered on release,
 * never swallowed. A thread interrupted inside a system call gets the kernel's
 * own restart rules on resume (the call resumes, no EINTR).
 *
 * Errors: -ESRCH the thread or process is gone; -EINVAL tid is not seized or
 * too many arguments (max 6); -EAGAIN the process is stopped by job control;
 * -EFAULT the called function crashed (SIGSEGV/SIGBUS/SIGILL/SIGFPE inside
 * it; the thread is restored and the fault suppressed); -ETIMEDOUT the call
 * did not return in time (the thread is interrupted and restored: the call is
 * abandoned mid-way, so a lock it took may stay taken; pick a thread that
 * holds none, see attach_proc__pick_call_thread); -ENOEXEC the thread runs
 * in 32-bit mode, or no return path could be placed; -E2BIG more than 64 KiB
 * of data arguments. */
struct attach_arg {
	uint64_t value;   /* the argument, when data is NULL */
	const void *data; /* else: len bytes copied onto the thread's stack below
			   * the red zone; the argument is the copy's address,
			   * valid for the duration of the call only */
	size_t len;
};
int attach_proc__call_args(struct attach_proc *proc, pid_t tid, uint64_t fn,
			   const struct attach_arg *args, unsigned nargs, uint64_t *ret);
/* Resolve sym in the mapped object whose basename starts with lib_prefix
 * ("libc.so"), then call it (an IFUNC is resolved in the target first).
 * -ENOENT: object or symbol not found. */
int attach_proc__call_sym(struct attach_proc *proc, pid_t tid, const char *lib_prefix,
			  const char *sym, const struct attach_arg *args, unsigned nargs,
			  uint64_t *ret);
/* Where calls return: the address of the self-restoring return stub once a
 * call placed it (see attach/call.c: if the debugger dies mid-call, the
 * target restores itself), 0 when calls return through a plain int3 (a
 * debugger dying mid-call then kills the target with SIGTRAP). */
uint64_t attach_proc__return_stub(const struct attach_proc *proc);
/* How a call's end is caught, best first (attach/call.c):
 *   ATTACH_RETURN_SIGNAL   the signalling stub, run under PTRACE_CONT: one
 *                          ptrace stop for the whole call; used when a
 *                          signal the process discards exists and the
 *                          process has no seccomp filter;
 *   ATTACH_RETURN_SYSCALL  the sigreturn stub, run under PTRACE_SYSCALL: two
 *                          stops per system call the callee makes;
 *   ATTACH_RETURN_TRAP     an int3 byte of the target's code; nothing is
 *                          written into its code pages, but a debugger dying
 *                          mid-call leaves the thread to a SIGTRAP.
 * set_return: the best way calls may use (each call falls back to the next
 * when its way is not available). Default ATTACH_RETURN_SIGNAL. */
enum attach_return { ATTACH_RETURN_SIGNAL, ATTACH_RETURN_SYSCALL, ATTACH_RETURN_TRAP };
void attach_proc__set_return(struct attach_proc *proc, enum attach_return best);
/* The way the last call that returned was caught, and the ptrace stops it
 * took from its start to its end (for --verbose and the tests). */
enum attach_return attach_proc__last_return(const struct attach_proc *proc, unsigned *stops);
/* Default 5000 ms. 0 means wait forever. */
void attach_proc__set_call_timeout(struct attach_proc *proc, unsigned ms);

/* The seized thread best suited for a call: blocked in a sleeping syscall
 * (read/poll/select/epoll/nanosleep/wait...) first, then any other syscall
 * except futex (futex may be a lock wait: malloc, loader), then futex, then a
 * thread not in a syscall. Ties go to the lowest index (the main thread). */
int attach_proc__pick_call_thread(struct attach_proc *proc, pid_t *tid);

/* Pure parsers, exposed for the fuzzers and tests. (p, end) is untrusted.
 * One line of /proc/PID/maps (no newline needed); path points into the line,
 * its length in *path_len (0 for anonymous). -EINVAL on malformed input. */
int attach_maps__parse_line(const char *p, const char *end, struct attach_map *out,
			    size_t *path_len);
/* ELF notes (SHT_NOTE/PT_NOTE contents, native endianness, 4-byte aligned):
 * the GNU build-id as lowercase hex into hex[hexsz]. -ENOENT none, -EINVAL
 * truncated/malformed, -ENOSPC hex too small. */
int attach_elf__parse_build_id(const uint8_t *p, const uint8_t *end, char *hex, size_t hexsz);
/* .gnu_debuglink contents: file name and CRC32. -EINVAL when malformed. */
int attach_elf__parse_debuglink(const uint8_t *p, const uint8_t *end, const char **name,
				size_t *name_len, uint32_t *crc);
/* CRC32 as used by .gnu_debuglink (zlib's), continued from crc. */
uint32_t attach_crc32(uint32_t crc, const void *buf, size_t len);

/* Zeroed memory for a cache of len bytes that a process's pages are read
 * into, in transparent huge pages where the machine gives them for
 * madvise() (cache.c says why); NULL when out of memory.
 * attach_cache__free gives it back. */
struct attach_cache_mem {
	void *base;
	size_t size;
};
void *attach_cache__alloc(size_t len, struct attach_cache_mem *m);
void attach_cache__free(struct attach_cache_mem *m);

#endif
