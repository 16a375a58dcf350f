/* heal: the store's naming policy, as pure functions of their inputs
 * (tests/unit/test_heal_names.c): file keys and module names. The name a
 * patch is stored under is chosen by the store, under its lock
 * (store__add_unique). */
#include "heal/heal-priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void heal_names__copy(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (!cap)
		return;
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

const char *heal_names__base(const char *path)
{
	const char *b = strrchr(path, '/');
	return b ? b + 1 : path;
}

void heal_names__join(const char *cwd, const char *file, char *out, size_t cap)
{
	if (!file[0] || file[0] == '<' || file[0] == '/' || !cwd[0])
		heal_names__copy(out, cap, file);
	else
		snprintf(out, cap, "%s/%s", cwd, file);
}

/* co_filename as an absolute, resolved path (relative names are relative
 * to the target's working directory); "<...>" names stay as they are. */
void heal_names__file_key(const char *cwd, const char *file, char *out, size_t cap)
{
	char joined[PATH_MAX * 2], real[PATH_MAX];
	if (!file[0] || file[0] == '<') {
		heal_names__copy(out, cap, file);
		return;
	}
	heal_names__join(cwd, file, joined, sizeof(joined));
	heal_names__copy(out, cap, realpath(joined, real) ? real : joined);
}

void heal_names__module(const char *program, const char *absfile, char *out, size_t cap)
{
	if (program && strcmp(absfile, program) == 0) {
		snprintf(out, cap, "__main__");
		return;
	}
	const char *base = heal_names__base(absfile);
	char name[256];
	heal_names__copy(name, sizeof(name), base);
	char *dot = strrchr(name, '.');
	if (dot)
		*dot = 0;
	if (strcmp(name, "__init__") == 0 && base != absfile) {
		/* a package: its directory's name */
		size_t dl = (size_t)(base - 1 - absfile);
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%.*s", (int)dl, absfile);
		heal_names__copy(name, sizeof(name), heal_names__base(dir));
	}
	snprintf(out, cap, "%s", name[0] ? name : "?");
}
