/* heal: what suture-run runs, from the words a user types after its own
 * options (issue 16): "script.py args", "-m pkg args" (suture-run's -m),
 * or a whole interpreter command line "python3.11 [-X dev|-u|-O ...]
 * (script.py | -m pkg) args", passed to the interpreter as typed (the
 * command puts its own "-m NAME" in front of the words).
 *
 * The interpreter's options are CPython 3.11's (Python/getopt.c, the
 * string "bBc:dEhiIJm:OPqRsStuvVW:xX:?"): in one word "-abc" each letter
 * is an option; -W and -X take the rest of the word or the next one; -c
 * and -m end the options, taking the rest of the word or the next one; "--"
 * ends them with the script next; "--check-hash-based-pycs MODE" is the
 * one long option that takes a value. Pure but for heal_cmdline__module_file,
 * which looks at the file system. tests/unit/test_heal_cmdline.c. */
#include "heal/heal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

bool heal_cmdline__is_python(const char *word)
{
	const char *b = strrchr(word, '/');
	b = b ? b + 1 : word;
	if (strncmp(b, "python", 6) != 0)
		return false;
	/* python, python3, python3.11, python3.11d, python3.11-dbg */
	const char *p = b + 6;
	while ((*p >= '0' && *p <= '9') || *p == '.')
		p++;
	return !*p || strcmp(p, "d") == 0 || strcmp(p, "-dbg") == 0;
}

/* The interpreter's words after its name: options, then the script or -m. */
static int parse_python(char **w, struct heal_cmdline *out, char *err, size_t cap)
{
	for (size_t i = 0; w[i]; i++) {
		const char *a = w[i];
		if (a[0] != '-' || !a[1]) {
			if (strcmp(a, "-") == 0) {
				snprintf(err, cap,
					 "a script from standard input ('-') cannot be healed: "
					 "give a script file or -m module");
				return -EINVAL;
			}
			out->script = a;
			return 0;
		}
		if (strcmp(a, "--") == 0) {
			if (!w[i + 1] || !*w[i + 1]) {
				snprintf(err, cap, "no script after '--'");
				return -EINVAL;
			}
			out->script = w[i + 1];
			return 0;
		}
		if (a[1] == '-') {
			if (strcmp(a, "--check-hash-based-pycs") == 0 && w[i + 1])
				i++;
			else if (strcmp(a, "--help") == 0 || strcmp(a, "--version") == 0)
				break; /* the interpreter would run nothing */
			continue;
		}
		for (size_t k = 1; a[k]; k++) {
			char c = a[k];
			if (c == 'c') {
				snprintf(err, cap,
					 "-c runs no file whose code can be healed: "
					 "give a script file or -m module");
				return -EINVAL;
			}
			if (c == 'm') {
				const char *name = a[k + 1] ? a + k + 1 : w[i + 1];
				if (!name || !*name) {
					snprintf(err, cap, "-m needs a module name");
					return -EINVAL;
				}
				out->module = name;
				return 0;
			}
			if (c == 'W' || c == 'X') {
				if (!a[k + 1]) {
					if (!w[i + 1]) {
						snprintf(err, cap, "-%c needs a value", c);
						return -EINVAL;
					}
					i++;
				}
				break;
			}
			if (c == 'h' || c == '?' || c == 'V')
				goto none; /* help or version: no program */
		}
	}
none:
	snprintf(err, cap, "no script or -m module after %s",
		 out->python ? out->python : "the options");
	return -EINVAL;
}

int heal_cmdline__parse(char **words, struct heal_cmdline *out, char *err, size_t cap)
{
	memset(out, 0, sizeof(*out));
	if (!words[0]) {
		snprintf(err, cap, "no script given");
		return -EINVAL;
	}
	if (heal_cmdline__is_python(words[0])) {
		out->python = words[0];
		out->args = words + 1;
		return parse_python(words + 1, out, err, cap);
	}
	out->args = words;
	if (words[0][0] == '-' && words[0][1]) /* the interpreter's options */
		return parse_python(words, out, err, cap);
	out->script = words[0];
	return 0;
}

/* A regular file or a directory at path. */
static int kind_of(const char *path)
{
	struct stat sb;
	if (stat(path, &sb))
		return 0;
	return S_ISREG(sb.st_mode) ? 'f' : S_ISDIR(sb.st_mode) ? 'd' : 0;
}

int heal_cmdline__module_file(const char *name, const char *const *dirs, char *out, size_t cap)
{
	char rel[1024], path[4096];
	size_t n = strlen(name);
	if (!n || n >= sizeof(rel) || name[0] == '.' || name[n - 1] == '.' || strstr(name, ".."))
		return -EINVAL;
	for (size_t i = 0; i <= n; i++) {
		if (name[i] == '/')
			return -EINVAL;
		rel[i] = name[i] == '.' ? '/' : name[i];
	}
	for (size_t d = 0; dirs[d]; d++) {
		if (!*dirs[d])
			continue;
		/* A package runs its __main__, a module its own file (runpy). */
		int w = snprintf(path, sizeof(path), "%s/%s", dirs[d], rel);
		if (w < 0 || (size_t)w >= sizeof(path) - sizeof("/__main__.py"))
			continue;
		if (kind_of(path) == 'd') {
			strcat(path, "/__main__.py");
			if (kind_of(path) != 'f')
				continue;
		} else {
			strcat(path, ".py");
			if (kind_of(path) != 'f')
				continue;
		}
		if ((size_t)snprintf(out, cap, "%s", path) >= cap)
			return -ENAMETOOLONG;
		return 0;
	}
	return -ENOENT;
}
