/* attach/: opening a process and moving bytes in and out of its memory.
 *
 * process_vm_readv/writev move many pieces in one syscall without stopping
 * the target; /proc/PID/mem is the fallback (kernels without the syscalls,
 * and writes into read-only mappings such as code, which only the mem file
 * may do: it writes with FOLL_FORCE, like ptrace POKE).
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attach/attach-priv.h"

#define ATTACH_IOV_BATCH 1024 /* UIO_MAXIOV */

int attach__fail(struct attach_proc *proc, int err, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!proc)
		return err;
	n = snprintf(proc->err, sizeof(proc->err), "attach: pid %d: ", (int)proc->pid);
	if (n < 0 || (size_t)n >= sizeof(proc->err))
		return err;
	va_start(ap, fmt);
	vsnprintf(proc->err + n, sizeof(proc->err) - (size_t)n, fmt, ap);
	va_end(ap);
	return err;
}

bool attach__alive(pid_t pid)
{
	char state;
	char path[64], buf[512];
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	p = strrchr(buf, ')'); /* comm may hold spaces and parens */
	if (!p || p[1] != ' ')
		return false;
	state = p[2];
	return state != 'Z' && state != 'X' && state != 0;
}

bool attach_pid__alive(pid_t pid)
{
	return attach__alive(pid);
}

int attach_proc__state(struct attach_proc *proc, char *state)
{
	char path[64], buf[512];
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)proc->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return attach__fail(proc, -ESRCH, "no such process");
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return attach__fail(proc, -ESRCH, "process exited");
	buf[n] = 0;
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2])
		return attach__fail(proc, -EINVAL, "unreadable /proc/%d/stat", (int)proc->pid);
	*state = p[2];
	return 0;
}

int attach_proc__open(pid_t pid, struct attach_proc **out)
{
	struct attach_proc *proc;
	char path[64];
	int err;

	*out = NULL;
	if (pid <= 0)
		return -ESRCH;
	proc = calloc(1, sizeof(*proc));
	if (!proc)
		return -ENOMEM;
	proc->pid = pid;
	proc->mem_fd = -1;
	proc->call_timeout_ms = 5000;

	/* Exists? kill(0) also answers for processes of other users (EPERM). */
	if (kill(pid, 0) < 0 && errno == ESRCH) {
		err = -ESRCH;
		goto fail;
	}
	if (!attach__alive(pid)) {
		err = -ESRCH;
		goto fail;
	}
	/* Readable? Opening the mem file runs the same access check as
	 * PTRACE_ATTACH (uid, dumpable, CAP_SYS_PTRACE, Yama). */
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	proc->mem_fd = open(path, O_RDWR | O_CLOEXEC);
	if (proc->mem_fd >= 0) {
		proc->mem_writable = true;
	} else {
		proc->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (proc->mem_fd < 0) {
			err = errno == ENOENT ? -ESRCH : -errno;
			if (err == -EACCES)
				err = -EPERM;
			goto fail;
		}
	}
	*out = proc;
	return 0;
fail:
	free(proc);
	return err;
}

void attach_proc__close(struct attach_proc *proc)
{
	struct attach_elf *e, *next;

	if (!proc)
		return;
	if (proc->seized)
		attach_proc__release_all(proc);
	attach__stub_remove(proc);
	for (e = proc->elfs; e; e = next) {
		next = e->next;
		e->proc = NULL; /* already unlinked: the whole list goes */
		attach_elf__close(e);
	}
	if (proc->mem_fd >= 0)
		close(proc->mem_fd);
	free(proc->threads);
	free(proc->maps);
	free(proc->maps_text);
	free(proc);
}

pid_t attach_proc__pid(const struct attach_proc *proc)
{
	return proc->pid;
}

const char *attach_proc__error(const struct attach_proc *proc)
{
	return proc ? proc->err : "";
}

void attach_proc__set_call_timeout(struct attach_proc *proc, unsigned ms)
{
	proc->call_timeout_ms = ms;
}

/* An error from a memory syscall: distinguish "gone" from "not mapped". */
static int mem_errno(struct attach_proc *proc, int e)
{
	if (e == ESRCH || !attach__alive(proc->pid))
		return -ESRCH;
	if (e == EIO || e == ENOMEM)
		return -EFAULT; /* mem file: EIO for unmapped; vm_readv: EFAULT/ENOMEM */
	return -e;
}

static int mem_file_io(struct attach_proc *proc, uint64_t addr, void *buf, size_t len, bool wr)
{
	size_t done = 0;
	ssize_t n;

	if (proc->mem_fd < 0 || (wr && !proc->mem_writable))
		return -EPERM;
	if (addr > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - addr)
		return -EFAULT; /* beyond what pread's off_t can name */
	while (done < len) {
		if (wr)
			n = pwrite(proc->mem_fd, (const char *)buf + done, len - done,
				   (off_t)(addr + done));
		else
			n = pread(proc->mem_fd, (char *)buf + done, len - done,
				  (off_t)(addr + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return mem_errno(proc, errno);
		if (n == 0)
			return -EFAULT;
		done += (size_t)n;
	}
	return 0;
}

int attach_proc__read(struct attach_proc *proc, uint64_t addr, void *buf, size_t len)
{
	struct attach_iov v = { .addr = addr, .buf = buf, .len = len };

	return attach_proc__readv(proc, &v, 1);
}

int attach_proc__readv(struct attach_proc *proc, const struct attach_iov *iov, size_t n)
{
	struct iovec local[ATTACH_IOV_BATCH], remote[ATTACH_IOV_BATCH];
	size_t i = 0, k, want;
	ssize_t got;
	int err;

	while (i < n && !proc->no_vm_readv) {
		want = 0;
		for (k = 0; k < ATTACH_IOV_BATCH && i + k < n; k++) {
			local[k].iov_base = iov[i + k].buf;
			local[k].iov_len = iov[i + k].len;
			remote[k].iov_base = (void *)(uintptr_t)iov[i + k].addr;
			remote[k].iov_len = iov[i + k].len;
			want += iov[i + k].len;
		}
		got = process_vm_readv(proc->pid, local, k, remote, k, 0);
		if (got >= 0 && (size_t)got == want) {
			i += k;
			continue;
		}
		if (got < 0 && errno == ENOSYS) {
			proc->no_vm_readv = true;
			break;
		}
		if (got < 0 && errno == ESRCH)
			return attach__fail(proc, -ESRCH, "process exited");
		/* Partial or failed: it stops at the first piece it could not
		 * move. Redo this batch piece by piece through the mem file so
		 * the answer is exact (the mem file also reads pages that
		 * vm_readv refuses, e.g. VM_IO mappings). */
		for (k = 0; k < ATTACH_IOV_BATCH && i < n; k++, i++) {
			err = mem_file_io(proc, iov[i].addr, iov[i].buf, iov[i].len, false);
			if (err)
				return attach__fail(proc, err, "read %zu bytes at 0x%llx: %s",
						    iov[i].len, (unsigned long long)iov[i].addr,
						    strerror(-err));
		}
	}
	for (; i < n; i++) {
		err = mem_file_io(proc, iov[i].addr, iov[i].buf, iov[i].len, false);
		if (err)
			return attach__fail(proc, err, "read %zu bytes at 0x%llx: %s", iov[i].len,
					    (unsigned long long)iov[i].addr, strerror(-err));
	}
	return 0;
}

int attach_proc__write(struct attach_proc *proc, uint64_t addr, const void *buf, size_t len)
{
	struct iovec local = { .iov_base = (void *)buf, .iov_len = len };
	struct iovec remote = { .iov_base = (void *)(uintptr_t)addr, .iov_len = len };
	ssize_t got;
	int err;

	if (len == 0)
		return 0;
	if (!proc->no_vm_readv) {
		got = process_vm_writev(proc->pid, &local, 1, &remote, 1, 0);
		if (got >= 0 && (size_t)got == len)
			return 0;
		if (got < 0 && errno == ESRCH)
			return attach__fail(proc, -ESRCH, "process exited");
		/* EFAULT also means "read-only mapping": the mem file writes
		 * those (FOLL_FORCE). Rewriting the prefix already written is
		 * harmless: same bytes. */
	}
	err = mem_file_io(proc, addr, (void *)buf, len, true);
	if (err)
		return attach__fail(proc, err, "write %zu bytes at 0x%llx: %s", len,
				    (unsigned long long)addr, strerror(-err));
	return 0;
}

int attach_proc__read_str(struct attach_proc *proc, uint64_t addr, char *buf, size_t size)
{
	const uint64_t page = 4096;
	size_t done = 0, chunk;
	const char *nul;
	int err;

	if (!size)
		return -ERANGE;
	while (done < size - 1) {
		/* never cross a page boundary in one read */
		chunk = (size_t)(page - ((addr + done) & (page - 1)));
		if (chunk > size - 1 - done)
			chunk = size - 1 - done;
		err = attach_proc__read(proc, addr + done, buf + done, chunk);
		if (err) {
			buf[done] = 0;
			return err;
		}
		nul = memchr(buf + done, 0, chunk);
		if (nul)
			return (int)(nul - buf);
		done += chunk;
	}
	buf[size - 1] = 0;
	return attach__fail(proc, -ERANGE, "string at 0x%llx longer than %zu bytes",
			    (unsigned long long)addr, size - 1);
}

/* The next argument at *at: [a, a + n); *at moves past its NUL (or to end
 * when the last one has none). false when there is none. */
static bool next_arg(const char **at, const char *end, const char **a, size_t *n)
{
	if (*at >= end)
		return false;
	const char *nul = memchr(*at, 0, (size_t)(end - *at));
	*a = *at;
	*n = (size_t)((nul ? nul : end) - *at);
	*at = nul ? nul + 1 : end;
	return true;
}

/* CPython 3.11's options (Python/getopt.c, "bBc:dEhiIJm:OPqRsStuvVW:xX:?"):
 * -c and -m end the options without a script file; -W and -X take a
 * value, the rest of the argument or the next one. Long options are
 * --help, --version (no program runs), --check-hash-based-pycs MODE. */
int attach_cmdline__script(const char *p, const char *end, const char **arg, size_t *len)
{
	const char *at = p, *a;
	size_t n;
	if (!next_arg(&at, end, &a, &n)) /* argv[0], the interpreter */
		return -ENOENT;
	while (next_arg(&at, end, &a, &n)) {
		if (n == 0 || (n == 1 && a[0] == '-'))
			return -ENOENT; /* "" is no file; "-" is stdin */
		if (a[0] != '-') {
			*arg = a;
			*len = n;
			return 0;
		}
		if (n == 2 && a[1] == '-') { /* "--": the script follows */
			if (!next_arg(&at, end, &a, &n) || n == 0)
				return -ENOENT;
			*arg = a;
			*len = n;
			return 0;
		}
		if (a[1] == '-') {
			static const char pycs[] = "--check-hash-based-pycs";
			if (n == sizeof(pycs) - 1 && memcmp(a, pycs, n) == 0)
				next_arg(&at, end, &a, &n); /* its mode */
			continue;
		}
		for (size_t i = 1; i < n; i++) {
			if (a[i] == 'c' || a[i] == 'm')
				return -ENOENT;
			if (a[i] == 'W' || a[i] == 'X') {
				if (i + 1 == n) /* the value is the next argument */
					next_arg(&at, end, &a, &n);
				break;
			}
		}
	}
	return -ENOENT;
}

int attach_pid__script(pid_t pid, char *buf, size_t cap)
{
	char path[64], cmd[8192], cwd[PATH_MAX];
	const char *a;
	size_t n;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -ESRCH;
	size_t got = fread(cmd, 1, sizeof(cmd), f);
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/cwd", (int)pid);
	ssize_t l = readlink(path, cwd, sizeof(cwd) - 1);
	cwd[l > 0 ? l : 0] = 0;
	int err = attach_cmdline__script(cmd, cmd + got, &a, &n);
	if (err)
		return err;
	/* Relative to the target's working directory, then resolved. */
	char joined[PATH_MAX * 2], real[PATH_MAX];
	if (a[0] == '/' || !cwd[0])
		snprintf(joined, sizeof(joined), "%.*s", (int)n, a);
	else
		snprintf(joined, sizeof(joined), "%s/%.*s", cwd, (int)n, a);
	snprintf(buf, cap, "%s", realpath(joined, real) ? real : joined);
	return 0;
}

/* /proc/PID/maps, whole, each line through attach_maps__parse_line (maps.c). */
int attach_proc__refresh_maps(struct attach_proc *proc)
{
	char path[64];
	char *text = NULL, *line, *nl, *t;
	struct attach_map *maps = NULL, *m;
	size_t len = 0, cap = 0, n = 0, mcap = 0, plen;
	ssize_t got;
	int fd, err;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)proc->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno == ENOENT ? -ESRCH : -errno;
		return attach__fail(proc, err, "open %s: %s", path, strerror(-err));
	}
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 65536;
			t = realloc(text, cap + 1);
			if (!t) {
				err = -ENOMEM;
				goto fail;
			}
			text = t;
		}
		got = read(fd, text + len, cap - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			err = -errno;
			goto fail;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	close(fd);
	fd = -1;
	if (len == 0 && !attach__alive(proc->pid)) {
		err = -ESRCH;
		goto fail;
	}
	text[len] = 0;
	for (line = text; line < text + len; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(text + len - line));
		if (!nl)
			nl = text + len;
		if (n == mcap) {
			mcap = mcap ? mcap * 2 : 256;
			m = realloc(maps, mcap * sizeof(*maps));
			if (!m) {
				err = -ENOMEM;
				goto fail;
			}
			maps = m;
		}
		if (attach_maps__parse_line(line, nl, &maps[n], &plen)) {
			err = -EINVAL;
			goto fail;
		}
		if (plen) /* terminate the path in place: the newline */
			((char *)maps[n].path)[plen] = 0;
		n++;
	}
	free(proc->maps);
	free(proc->maps_text);
	proc->maps = maps;
	proc->maps_text = text;
	proc->nmaps = n;
	proc->maps_fresh = proc->seized;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	free(maps);
	free(text);
	return attach__fail(proc, err, "reading /proc/%d/maps: %s", (int)proc->pid, strerror(-err));
}

size_t attach_proc__map_count(const struct attach_proc *proc)
{
	return proc->nmaps;
}

const struct attach_map *attach_proc__map(const struct attach_proc *proc, size_t i)
{
	return i < proc->nmaps ? &proc->maps[i] : NULL;
}
