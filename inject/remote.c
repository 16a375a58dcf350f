/* inject/: getting the agent to run inside a target (docs/design.md §4).
 *
 * Through attach/: seize every thread, pick the one best suited for a call
 * (blocked in a sleeping syscall, no allocator or loader lock held), call
 * dlopen(path, RTLD_NOW) in the target's own libc on it, release. The
 * agent's constructor only starts a thread, so nothing Python runs on the
 * hijacked thread, and the target is stopped for about a millisecond.
 * A library mapped already (an earlier injection, detached since) runs no
 * constructor on a second dlopen: suture_agent_start() is called instead.
 */
#include "inject/inject-priv.h"
#include "attach/attach.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SUTURE_PREFIX
#define SUTURE_PREFIX "/usr/local"
#endif

int inject__agent_path(const char *explicit_path, char *buf, size_t cap)
{
	char exe[PATH_MAX - 64], cand[PATH_MAX];
	const char *env = getenv("SUTURE_AGENT");
	const char *tries[3] = { explicit_path, env, NULL };
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = 0;
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = 0;
			snprintf(cand, sizeof cand, "%s/../lib/libsuture_agent.so", exe);
			tries[2] = cand;
		}
	}
	for (int i = 0; i < 3; i++) {
		if (!tries[i] || !*tries[i])
			continue;
		if (realpath(tries[i], buf) && strlen(buf) < cap && access(buf, R_OK) == 0)
			return 0;
		if (i < 2)
			return -ENOENT; /* asked for a path that is not there */
	}
	snprintf(cand, sizeof cand, "%s/lib/suture/libsuture_agent.so", SUTURE_PREFIX);
	if (realpath(cand, buf) && strlen(buf) < cap)
		return 0;
	return -ENOENT;
}

/* Whether pid maps a file whose name starts with libsuture_agent. */
static int agent_mapped(pid_t pid)
{
	char path[64], line[1024];
	int found = 0;
	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	while (!found && fgets(line, sizeof line, f))
		found = strstr(line, "/libsuture_agent") || strstr(line, "/memfd:libsuture_agent");
	fclose(f);
	return found;
}

/* The watcher replaces PyTraceBack_Here: the target must export it, from
 * its executable (Debian's static python3.11) or libpython3.11. */
static int is_python(struct attach_proc *proc)
{
	struct attach_elf *elf;
	uint64_t addr, size;
	if (attach_proc__find_elf(proc, NULL, &elf) == 0 &&
	    attach_elf__symbol(elf, "PyTraceBack_Here", &addr, &size) == 0)
		return 1;
	return attach_proc__find_elf(proc, "libpython3.11", &elf) == 0 &&
	       attach_elf__symbol(elf, "PyTraceBack_Here", &addr, &size) == 0;
}

/* Copy the library at lib into a memfd of the target (made there by a
 * remote memfd_create, taken here with pidfd_getfd, filled and sealed),
 * then dlopen("/proc/self/fd/N") in the target (the agent closes N): no path
 * of ours needs to exist in its mount namespace, and no file is left
 * anywhere. The mapping shows as /memfd:libsuture_agent.so (deleted).
 * 0; -ENOEXEC with err set when a call in the target failed; else the
 * ptrace machinery's error (attach_proc__error). */
static int load_memfd(struct attach_proc *proc, pid_t tid, const char *lib, char *err, size_t cap)
{
	pid_t pid = attach_proc__pid(proc);
	struct attach_arg margs[2] = {
		{ .data = "libsuture_agent.so", .len = sizeof "libsuture_agent.so" },
		{ .value = MFD_CLOEXEC | MFD_ALLOW_SEALING },
	};
	uint64_t ret = 0;
	int rc = attach_proc__call_sym(proc, tid, "libc.so", "memfd_create", margs, 2, &ret);
	if (rc)
		return rc;
	int tfd = (int)ret, pidfd = -1, mfd = -1, src = -1;
	if (tfd < 0) {
		snprintf(err, cap, "inject: pid %d: memfd_create failed in the target", (int)pid);
		return -ENOEXEC;
	}
	char buf[65536];
	ssize_t n = 0;
	if ((pidfd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0 ||
	    (mfd = (int)syscall(SYS_pidfd_getfd, pidfd, tfd, 0)) < 0 ||
	    (src = open(lib, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, cap, "inject: pid %d: %s: %s", (int)pid,
			 pidfd < 0 ? "pidfd_open"
			 : mfd < 0 ? "pidfd_getfd of its memfd"
				   : lib,
			 strerror(errno));
		rc = -ENOEXEC;
		goto close_remote;
	}
	while ((n = read(src, buf, sizeof buf)) > 0)
		if (write(mfd, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	/* Sealed: nothing changes the library under the target's mapping. */
	if (n < 0 ||
	    fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)) {
		snprintf(err, cap, "inject: pid %d: filling its memfd with %s: %s", (int)pid, lib,
			 strerror(errno));
		rc = -ENOEXEC;
		goto close_remote;
	}
	char path[32];
	snprintf(path, sizeof path, "/proc/self/fd/%d", tfd);
	struct attach_arg args[2] = {
		{ .data = path, .len = strlen(path) + 1 },
		/* Global, as an LD_PRELOAD agent is: a debugger that cannot
		 * read the memfd's ELF later finds suture_agent_start with
		 * dlsym(RTLD_DEFAULT) (start_by_dlsym). */
		{ .value = RTLD_NOW | RTLD_GLOBAL },
	};
	rc = attach_proc__call_sym(proc, tid, "libc.so", "dlopen", args, 2, &ret);
	if (rc == 0 && ret == 0) {
		/* dlerror() points into the target; read its message. */
		uint64_t msg = 0;
		char text[200] = "";
		if (attach_proc__call_sym(proc, tid, "libc.so", "dlerror", NULL, 0, &msg) == 0 &&
		    msg && attach_proc__read(proc, msg, text, sizeof text - 1) == 0)
			text[sizeof text - 1] = 0;
		snprintf(err, cap,
			 "inject: pid %d: dlopen(%s, a memfd holding %s) failed in the target: %s",
			 (int)pid, path, lib, text[0] ? text : "?");
		rc = -ENOEXEC;
	}
close_remote:
	if (src >= 0)
		close(src);
	if (mfd >= 0)
		close(mfd);
	if (pidfd >= 0)
		close(pidfd);
	/* Loaded: the agent closes the descriptor itself, on its own thread
	 * once the process runs again (agent/server.c, close_own_memfd), which
	 * spares one remote call while every thread is stopped. Not loaded:
	 * nothing in the target knows it, so it is closed here. */
	if (rc == 0)
		return 0;
	struct attach_arg cargs[1] = { { .value = (uint64_t)tfd } };
	attach_proc__call_sym(proc, tid, "libc.so", "close", cargs, 1, &ret);
	return rc;
}

/* suture_agent_start() found by the target's own dlsym(RTLD_DEFAULT), for
 * a debugger that cannot open the memfd the agent was loaded from
 * (/proc/PID/map_files needs CAP_CHECKPOINT_RESTORE; the memfd has no
 * path). */
static int start_by_dlsym(struct attach_proc *proc, pid_t tid, uint64_t *ret)
{
	static const char sym[] = "suture_agent_start";
	struct attach_arg args[2] = { { .value = 0 /* RTLD_DEFAULT */ },
				      { .data = sym, .len = sizeof sym } };
	uint64_t fn = 0;
	int rc = attach_proc__call_sym(proc, tid, "libc.so", "dlsym", args, 2, &fn);
	if (rc)
		return rc;
	if (!fn)
		return -ENOENT;
	return attach_proc__call_args(proc, tid, fn, NULL, 0, ret);
}

static int load_once(pid_t pid, const char *agent_path, enum inject_how *how, uint64_t *stopped_ns,
		     char *err, size_t cap)
{
	uint64_t t0 = 0;
	struct attach_proc *proc = NULL;
	char lib[PATH_MAX];
	uint64_t ret = 0;
	pid_t tid;
	int rc;
	int mapped = agent_mapped(pid);

	if (!mapped && (rc = inject__agent_path(agent_path, lib, sizeof lib))) {
		snprintf(err, cap, "inject: pid %d: libsuture_agent.so not found (%s)", (int)pid,
			 agent_path ? agent_path : "set SUTURE_AGENT");
		return rc;
	}
	if ((rc = attach_proc__open(pid, &proc))) {
		char why[256];
		attach_explain_error(pid, rc, why, sizeof why);
		snprintf(err, cap, "%s", why); /* "attach: pid N: ..." */
		return rc;
	}
	if (!is_python(proc)) {
		snprintf(err, cap,
			 "inject: pid %d: not a CPython 3.11 process (no PyTraceBack_Here "
			 "in its executable or a libpython3.11)",
			 (int)pid);
		rc = -ENOEXEC;
		goto out;
	}
	t0 = inject__now_ns();
	if ((rc = attach_proc__seize_all(proc)) || (rc = attach_proc__pick_call_thread(proc, &tid)))
		goto fail;
	if (mapped) {
		*how = INJECT_HOW_RESTARTED;
		rc = attach_proc__call_sym(proc, tid, "libsuture_agent", "suture_agent_start", NULL,
					   0, &ret);
		if (rc == -ENOENT || rc == -EACCES || rc == -EPERM)
			rc = start_by_dlsym(proc, tid, &ret);
		if (rc == 0 && (int)ret == -EAGAIN) {
			/* Busy (a lock held or the last agent thread not
			 * gone yet, by threads we stopped): released, retried. */
			snprintf(err, cap, "inject: pid %d: suture_agent_start() stayed busy",
				 (int)pid);
			rc = -EAGAIN;
			goto out;
		}
		if (rc == 0 && (int)ret != 0) {
			snprintf(err, cap, "inject: pid %d: suture_agent_start() failed: %s",
				 (int)pid, strerror(-(int)ret));
			rc = (int)ret;
			goto out;
		}
	} else {
		*how = INJECT_HOW_DLOPEN;
		if ((rc = load_memfd(proc, tid, lib, err, cap)) == -ENOEXEC)
			goto out; /* err says what failed in the target */
	}
	if (rc)
		goto fail;
	attach_proc__close(proc); /* releases every thread */
	*stopped_ns = inject__now_ns() - t0;
	return 0;
fail:
	snprintf(err, cap, "%s", attach_proc__error(proc)); /* "attach: pid N: ..." */
out:
	attach_proc__close(proc);
	return rc;
}

/* suture_agent_start() waits for nothing while the process is stopped: it
 * answers -EAGAIN instead; the threads then run for a moment and the call
 * is made again, for up to 5 s. */
int inject__load_agent(pid_t pid, const char *agent_path, enum inject_how *how,
		       uint64_t *stopped_ns, char *err, size_t cap)
{
	uint64_t deadline = inject__now_ns() + 5000000000ull;
	for (;;) {
		int rc = load_once(pid, agent_path, how, stopped_ns, err, cap);
		if (rc != -EAGAIN || *how != INJECT_HOW_RESTARTED || inject__now_ns() > deadline)
			return rc;
		usleep(10000);
	}
}
