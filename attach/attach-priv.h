/* attach/: private structures shared by the module's files. */
#ifndef SUTURE_ATTACH_PRIV_H
#define SUTURE_ATTACH_PRIV_H

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>

#include "attach/attach.h"
#include "attach/arch.h"

/* How a seized thread is stopped. */
enum attach_stop {
	ATTACH_STOP_NONE = 0,  /* not stopped (never seen while seized) */
	ATTACH_STOP_INTERRUPT, /* PTRACE_EVENT_STOP after PTRACE_INTERRUPT */
	ATTACH_STOP_GROUP,     /* PTRACE_EVENT_STOP for a job-control stop */
	ATTACH_STOP_SIGNAL,    /* signal-delivery-stop: pending_sig to re-inject */
	ATTACH_STOP_SYSCALL,   /* syscall-entry-stop, where a remote call ends */
};

struct attach_thread {
	pid_t tid;
	enum attach_stop stop;
	/* Signal to deliver when the thread is resumed (0 = none) and its
	 * siginfo, restored with PTRACE_SETSIGINFO before the resume so the
	 * handler sees the original sender. */
	int pending_sig;
	siginfo_t pending_info;
};

struct attach_elf {
	struct attach_proc *proc;
	struct attach_elf *next; /* proc's list */
	char *path;              /* as in /proc/PID/maps */
	char *open_path;         /* what we opened: /proc/PID/map_files/... or root */
	int fd;
	void *elf; /* Elf * (libelf), kept opaque here */
	uint64_t bias;
	uint64_t map_start; /* lowest mapping the bias was computed from */
	char build_id[2 * 64 + 1];
	char *debug_path; /* cached attach_elf__debug_file() result */
	int debug_err;    /* 0 = not looked up yet, 1 = found, <0 = error */
	/* Symbols by name, built at the first lookup: [0] .dynsym, [1] .symtab
	 * (attach/elf.c). A process's tools look up a few dozen names in
	 * tables of thousands; one sort beats a scan a name. */
	struct attach_symidx {
		bool built;
		bool no_gnu_hash; /* .dynsym has no usable .gnu.hash: sort */
		/* Kept by hand: clang-format 14 writes "} * v". */
		/* clang-format off */
		struct attach_symref {
			const char *name;
			void *data;  /* Elf_Data * of the table */
			uint32_t i;  /* index in it */
			bool hidden; /* a non-default version (versym bit 15) */
		} *v;
		/* clang-format on */
		size_t n;
		size_t link; /* the tables' string section: sh_link */
	} syms[2];
};

struct attach_proc {
	pid_t pid;
	int mem_fd; /* /proc/PID/mem, -1 if it could not be opened */
	bool mem_writable;
	bool no_vm_readv; /* process_vm_readv unavailable: use mem_fd */
	char err[256];

	/* maps */
	struct attach_map *maps;
	size_t nmaps;
	char *maps_text; /* the raw file; map paths point into it */

	/* threads */
	struct attach_thread *threads;
	size_t nthreads, cap_threads;
	bool seized;
	/* The maps were read while every thread was stopped and no remote call
	 * ran since: they cannot have changed, find_elf may skip a re-read. */
	bool maps_fresh;

	/* remote calls */
	unsigned call_timeout_ms;
	uint64_t trap_addr; /* an int3 byte in an executable mapping */
	/* The return stubs (attach/arch.h), written into the slack after the
	 * end of an executable segment: the sigreturn stub at stub_addr, the
	 * signalling stub at stub_addr + ATTACH_SIGSTUB_OFF, raising
	 * stub_sig (0: no signal was quiet when they were placed, so the
	 * signalling stub is never used); stub_addr 0 if none could be
	 * placed. The bytes they replaced are put back by attach_proc__close. */
	enum attach_return ret_most; /* attach_proc__set_return */
	uint64_t stub_addr;
	unsigned char stub_orig[64];
	size_t stub_len;
	int stub_sig;
	enum attach_return last_return; /* of the last call that returned */
	unsigned last_stops;
	struct attach_elf *elfs;
};

/* Sets proc->err ("attach: pid N: ...") and returns err (a -errno). */
int attach__fail(struct attach_proc *proc, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Where the signalling stub sits after the sigreturn stub. */
#define ATTACH_SIGSTUB_OFF 16

struct attach_thread *attach__thread_find(struct attach_proc *proc, pid_t tid);
/* Wait for tid to report a stop, at most timeout_ms (0 = forever).
 * Returns 0 with *status, -ETIMEDOUT, or -errno from waitpid. */
int attach__wait(pid_t tid, int *status, unsigned timeout_ms);
/* Queue sig for tid again, with its siginfo when the kernel allows it. */
void attach__requeue_signal(pid_t pid, pid_t tid, const siginfo_t *si, int sig);
/* Unused bytes at the end of the last page of an executable segment of elf
 * (mapped, executable, not part of any section the program uses). */
int attach__exec_slack(struct attach_elf *elf, uint64_t *addr, uint64_t *len);
/* TracerPid of the process (0: none, -1: unreadable). */
long attach__tracer(pid_t pid);
/* Put back the bytes the return stub replaced (at close). */
void attach__stub_remove(struct attach_proc *proc);
/* Whether the process (thread group) still exists and is not a zombie. */
bool attach__alive(pid_t pid);

#endif
