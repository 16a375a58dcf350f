/* heal: a running program's identity, the absolute path of its main
 * script, read from /proc/PID/cmdline and /proc/PID/cwd. The store keeps
 * patches per program (docs/formats/store.md). */
#include "heal/heal-priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
int heal_program__script(const char *p, const char *end, const char **arg, size_t *len)
{
	const char *at = p, *a;
	size_t n;
	if (!next_arg(&at, end, &a, &n))   /* argv[0], the interpreter */
		return -ENOENT;
	while (next_arg(&at, end, &a, &n)) {
		if (n == 0 || (n == 1 && a[0] == '-'))
			return -ENOENT;   /* "" is no file; "-" is stdin */
		if (a[0] != '-') {
			*arg = a;
			*len = n;
			return 0;
		}
		if (n == 2 && a[1] == '-') {   /* "--": the script follows */
			if (!next_arg(&at, end, &a, &n) || n == 0)
				return -ENOENT;
			*arg = a;
			*len = n;
			return 0;
		}
		if (a[1] == '-') {
			static const char pycs[] = "--check-hash-based-pycs";
			if (n == sizeof(pycs) - 1 && memcmp(a, pycs, n) == 0)
				next_arg(&at, end, &a, &n);   /* its mode */
			continue;
		}
		for (size_t i = 1; i < n; i++) {
			if (a[i] == 'c' || a[i] == 'm')
				return -ENOENT;
			if (a[i] == 'W' || a[i] == 'X') {
				if (i + 1 == n)   /* the value is the next argument */
					next_arg(&at, end, &a, &n);
				break;
			}
		}
	}
	return -ENOENT;
}

int heal_program__of_pid(pid_t pid, char *buf, size_t cap)
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
	int err = heal_program__script(cmd, cmd + got, &a, &n);
	if (err)
		return err;
	char script[PATH_MAX], joined[PATH_MAX * 2], real[PATH_MAX];
	snprintf(script, sizeof(script), "%.*s", (int)n, a);
	heal_names__join(cwd, script, joined, sizeof(joined));
	heal_names__copy(buf, cap, realpath(joined, real) ? real : joined);
	return 0;
}
