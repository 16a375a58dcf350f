/* store: where a program's store is when none is named (issue 16): found
 * from the program, not from the working directory, so that running
 * `suture-run ../app/job.py` from elsewhere, or a --watch started in
 * another shell directory, uses the store the next run reads.
 *
 * As git finds .git: from the program's directory up to "/", the first
 * ".suture" that is a real directory of ours (owned by the effective user
 * or root, not a symbolic link) is the store; one of another user is
 * passed over (anyone may create /tmp/.suture). Where there is none, the
 * store will be ".suture" beside the program's top package: up from the
 * program's directory while the directory is a package (has __init__.py),
 * so app/pkg/mod.py and app/pkg/sub/x.py share app/.suture. */
#include "store/store.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* dir's parent, in place; false at "/". */
static bool up(char *dir)
{
	char *slash = strrchr(dir, '/');
	if (!slash || (slash == dir && !dir[1]))
		return false;
	if (slash == dir)
		slash[1] = 0;
	else
		*slash = 0;
	return true;
}

static bool is_ours(const char *dir)
{
	char p[PATH_MAX];
	struct stat sb;
	if ((size_t)snprintf(p, sizeof(p), "%s%s" STORE_DEFAULT_DIR, dir,
			     strcmp(dir, "/") ? "/" : "") >= sizeof(p))
		return false;
	return lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode) &&
	       (sb.st_uid == geteuid() || sb.st_uid == 0);
}

static bool is_package(const char *dir)
{
	char p[PATH_MAX];
	struct stat sb;
	return (size_t)snprintf(p, sizeof(p), "%s/__init__.py", dir) < sizeof(p) &&
	       stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int join(const char *dir, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s%s" STORE_DEFAULT_DIR, dir, strcmp(dir, "/") ? "/" : "");
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int store__locate(const char *program, char *out, size_t cap, bool *exists)
{
	char start[PATH_MAX], d[PATH_MAX];
	*exists = false;
	if (program && program[0] == '/') {
		if ((size_t)snprintf(start, sizeof(start), "%s", program) >= sizeof(start))
			return -ENAMETOOLONG;
		up(start);
	} else if (!getcwd(start, sizeof(start))) {
		return -errno;
	}
	memcpy(d, start, sizeof(d));
	do {
		if (is_ours(d)) {
			*exists = true;
			return join(d, out, cap);
		}
	} while (up(d));
	memcpy(d, start, sizeof(d));
	while (is_package(d) && up(d))
		;
	return join(d, out, cap);
}
