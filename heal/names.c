/* heal: the store's naming policy, as pure functions of their inputs
 * (tests/unit/test_heal_names.c): file keys, module names, and the name a
 * patch is stored under. */
#include "heal/heal-priv.h"

#include <errno.h>
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

/* Append a suffix to the name in buf[cap]; -ENAMETOOLONG when it does not
 * fit (a cut name could be another patch's). */
static int append(char *buf, size_t cap, const char *suffix)
{
	size_t n = strlen(buf), k = strlen(suffix);
	if (n + k >= cap)
		return -ENAMETOOLONG;
	memcpy(buf + n, suffix, k + 1);
	return 0;
}

int heal_names__patch(const struct store_patch *p, heal_names_find_fn find, void *ctx,
		      char *name, size_t cap)
{
	char suffix[32];
	int err = store_patch__default_name(p, name, cap);
	if (err)
		return err;
	/* The default name says module, function, line and guard; another
	 * program (two scripts' __main__.load) or another Python may have a
	 * patch of that name: keep both, ours named apart (deterministically,
	 * so healing this program again replaces its own). */
	const struct store_patch *old = find(ctx, name);
	/* Another guard of the same kind on the same line of this function
	 * (d["a"] + d["b"]) is a second patch, not a replacement: named
	 * apart by its anchor. An active patch at the same anchor, or a stale
	 * one, is replaced (the site healed again). */
	if (old && strcmp(old->program, p->program) == 0 &&
	    strcmp(old->python_version, p->python_version) == 0 &&
	    old->status == STORE_STATUS_ACTIVE && old->anchor_offset != p->anchor_offset) {
		snprintf(suffix, sizeof(suffix), "#%u", p->anchor_offset);
		if ((err = append(name, cap, suffix)))
			return err;
		old = find(ctx, name);
	}
	if (old && (strcmp(old->program, p->program) != 0 ||
		    strcmp(old->python_version, p->python_version) != 0)) {
		uint64_t hsh = 1469598103934665603ull;   /* FNV-1a, 64 bits */
		for (const char *c = p->program; *c; c++)
			hsh = (hsh ^ (uint8_t)*c) * 1099511628211ull;
		for (const char *c = p->python_version; *c; c++)
			hsh = (hsh ^ (uint8_t)*c) * 1099511628211ull;
		snprintf(suffix, sizeof(suffix), "@%08llx", (unsigned long long)(hsh & 0xffffffffu));
		if ((err = append(name, cap, suffix)))
			return err;
	}
	return 0;
}
