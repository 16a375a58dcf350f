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
	char perms[5];   /* "r-xp" */
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

/* Threads: stop every thread (PTRACE_SEIZE + PTRACE_INTERRUPT, looping over
 * /proc/PID/task until no new thread appears) and release them all. -EBUSY:
 * already traced by another process. */
int attach_proc__seize_all(struct attach_proc *proc);
int attach_proc__release_all(struct attach_proc *proc);
size_t attach_proc__thread_count(const struct attach_proc *proc);
pid_t attach_proc__thread(const struct attach_proc *proc, size_t i);

/* Call fn(args...) on stopped thread tid (one of the seized threads), with
 * every register, the extended state and the signal mask restored after.
 * ret receives rax. 0: the call ran; -errno: it could not be run. */
int attach_proc__call(struct attach_proc *proc, pid_t tid, uint64_t fn,
		      const uint64_t *args, unsigned nargs, uint64_t *ret);

#endif
