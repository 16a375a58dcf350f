/* attach: a process's descendants, read from /proc (no ptrace).
 *
 * Each /proc/PID/stat gives the parent's pid (field 4, after the command
 * name in parentheses, which may itself hold spaces and parentheses: the
 * last ')' ends it, proc(5)). The tree is walked breadth first from the
 * root, so a parent comes before its children; a process forked meanwhile
 * may be missed (its parent's agent reports it: docs/design.md §15).
 */
#include "attach/attach.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PIDTREE_MAX 4096 /* processes scanned */

static pid_t ppid_of(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	int ppid;
	if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
		return -1;
	return ppid;
}

int attach_pid__descendants(pid_t root, pid_t *out, size_t cap, size_t *n)
{
	pid_t(*pp)[2] = calloc(PIDTREE_MAX, sizeof *pp);
	size_t np = 0;
	*n = 0;
	if (!pp)
		return -ENOMEM;
	DIR *d = opendir("/proc");
	if (!d) {
		int e = -errno;
		free(pp);
		return e;
	}
	for (struct dirent *e; (e = readdir(d)) && np < PIDTREE_MAX;) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		pid_t ppid;
		if (*end || pid <= 0 || pid > INT_MAX || (ppid = ppid_of((pid_t)pid)) <= 0)
			continue;
		pp[np][0] = (pid_t)pid;
		pp[np][1] = ppid;
		np++;
	}
	closedir(d);
	/* out doubles as the queue: out[qi] is the parent being expanded. */
	for (size_t qi = 0; qi <= *n; qi++) {
		pid_t parent = qi == 0 ? root : out[qi - 1];
		for (size_t i = 0; i < np && *n < cap; i++)
			if (pp[i][1] == parent)
				out[(*n)++] = pp[i][0];
	}
	free(pp);
	return 0;
}

bool attach_pid__same_exe(pid_t a, pid_t b)
{
	char pa[64], pb[64], ea[PATH_MAX], eb[PATH_MAX];
	snprintf(pa, sizeof pa, "/proc/%d/exe", (int)a);
	snprintf(pb, sizeof pb, "/proc/%d/exe", (int)b);
	ssize_t na = readlink(pa, ea, sizeof ea - 1), nb = readlink(pb, eb, sizeof eb - 1);
	if (na <= 0 || nb <= 0)
		return false;
	ea[na] = eb[nb] = 0;
	return strcmp(ea, eb) == 0;
}
