/* heal/names.c: the store's naming policy. Two crashes at the same
 * module.qualname:line:guard must end up as two patches when they are two
 * sites (anchor apart) or two programs/Pythons (@hash apart), and as one
 * when the same site is healed again; names stored on disk must not
 * change between versions (the @hash value is pinned). */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heal/heal-priv.h"

/* A store seen through heal_names_find_fn: a small table. */
struct table {
	struct store_patch v[4];
	size_t n;
};

static const struct store_patch *find(void *ctx, const char *name)
{
	const struct table *t = ctx;
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].name, name) == 0)
			return &t->v[i];
	return NULL;
}

static struct store_patch patch(const char *program, const char *pyver, uint32_t anchor)
{
	return (struct store_patch){
		.guard = "key_guard", .module = "app", .qualname = "Loader.load", .line = 12,
		.program = program, .python_version = pyver, .anchor_offset = anchor,
		.status = STORE_STATUS_ACTIVE,
	};
}

static void stored(struct table *t, const char *name, struct store_patch p)
{
	p.name = name;
	t->v[t->n++] = p;
}

static void name_of(struct table *t, struct store_patch p, char *out, size_t cap)
{
	cr_assert_eq(heal_names__patch(&p, find, t, out, cap), 0);
}

Test(heal_names, first_patch_gets_the_default_name)
{
	struct table t = { 0 };
	char name[STORE_NAME_MAX + 1];
	name_of(&t, patch("/srv/app.py", "3.11.2", 40), name, sizeof(name));
	cr_assert_str_eq(name, "app.Loader.load:12:key_guard");
}

Test(heal_names, same_site_healed_again_replaces_its_patch)
{
	struct table t = { 0 };
	char name[STORE_NAME_MAX + 1];
	stored(&t, "app.Loader.load:12:key_guard", patch("/srv/app.py", "3.11.2", 40));
	name_of(&t, patch("/srv/app.py", "3.11.2", 40), name, sizeof(name));
	cr_assert_str_eq(name, "app.Loader.load:12:key_guard");
}

Test(heal_names, second_guard_on_the_same_line_is_named_by_its_anchor)
{
	/* d["a"] + d["b"]: two key guards on line 12, anchors 40 and 52. */
	struct table t = { 0 };
	char name[STORE_NAME_MAX + 1];
	stored(&t, "app.Loader.load:12:key_guard", patch("/srv/app.py", "3.11.2", 40));
	name_of(&t, patch("/srv/app.py", "3.11.2", 52), name, sizeof(name));
	cr_assert_str_eq(name, "app.Loader.load:12:key_guard#52");
	/* ... and healing that second site again replaces it. */
	stored(&t, "app.Loader.load:12:key_guard#52", patch("/srv/app.py", "3.11.2", 52));
	name_of(&t, patch("/srv/app.py", "3.11.2", 52), name, sizeof(name));
	cr_assert_str_eq(name, "app.Loader.load:12:key_guard#52");
}

Test(heal_names, a_stale_patch_at_another_anchor_is_replaced)
{
	struct table t = { 0 };
	char name[STORE_NAME_MAX + 1];
	struct store_patch old = patch("/srv/app.py", "3.11.2", 40);
	old.status = STORE_STATUS_STALE;
	stored(&t, "app.Loader.load:12:key_guard", old);
	name_of(&t, patch("/srv/app.py", "3.11.2", 44), name, sizeof(name));
	cr_assert_str_eq(name, "app.Loader.load:12:key_guard");
}

Test(heal_names, another_program_or_python_is_kept_apart_by_hash)
{
	struct table t = { 0 };
	char name[STORE_NAME_MAX + 1], other_py[STORE_NAME_MAX + 1];
	/* Two scripts' __main__: the same default name. */
	stored(&t, "app.Loader.load:12:key_guard", patch("/srv/other.py", "3.11.2", 40));
	name_of(&t, patch("/srv/app.py", "3.11.2", 40), name, sizeof(name));
	/* FNV-1a 64 of "/srv/app.py" "3.11.2", low 32 bits: stored names
	 * must stay what earlier versions wrote. */
	cr_assert_str_eq(name, "app.Loader.load:12:key_guard@f71bc29d");
	name_of(&t, patch("/srv/app.py", "3.11.4", 40), other_py, sizeof(other_py));
	cr_assert_str_eq(other_py, "app.Loader.load:12:key_guard@f71bb86b");
	cr_assert_str_neq(name, other_py);
	/* The same program under another Python than the stored one. */
	struct table u = { 0 };
	stored(&u, "app.Loader.load:12:key_guard", patch("/srv/app.py", "3.11.4", 40));
	name_of(&u, patch("/srv/app.py", "3.11.2", 40), name, sizeof(name));
	cr_assert_str_eq(name, "app.Loader.load:12:key_guard@f71bc29d");
}

Test(heal_names, anchor_name_taken_by_another_program_gets_both_suffixes)
{
	struct table t = { 0 };
	char name[STORE_NAME_MAX + 1];
	stored(&t, "app.Loader.load:12:key_guard", patch("/srv/app.py", "3.11.2", 40));
	stored(&t, "app.Loader.load:12:key_guard#52", patch("/srv/other.py", "3.11.2", 52));
	name_of(&t, patch("/srv/app.py", "3.11.2", 52), name, sizeof(name));
	cr_assert_str_eq(name, "app.Loader.load:12:key_guard#52@f71bc29d");
}

Test(heal_names, a_suffix_that_does_not_fit_is_refused_not_cut)
{
	struct table t = { 0 };
	char name[32];
	stored(&t, "app.Loader.load:12:key_guard", patch("/srv/other.py", "3.11.2", 40));
	struct store_patch p = patch("/srv/app.py", "3.11.2", 40);
	/* 28 characters fit in 32; with "@xxxxxxxx" they would not, and a
	 * name cut short could be another patch's. */
	cr_assert_eq(heal_names__patch(&p, find, &t, name, sizeof(name)), -ENAMETOOLONG);
	cr_assert_eq(heal_names__patch(&p, find, &t, name, 20), -ENAMETOOLONG);
}

Test(heal_names, module_of_a_file)
{
	char m[256];
	heal_names__module("/srv/app.py", "/srv/app.py", m, sizeof(m));
	cr_assert_str_eq(m, "__main__");
	heal_names__module("/srv/app.py", "/srv/lib/config.py", m, sizeof(m));
	cr_assert_str_eq(m, "config");
	heal_names__module(NULL, "/srv/app.py", m, sizeof(m));
	cr_assert_str_eq(m, "app");
	heal_names__module(NULL, "/srv/lib/pkg/__init__.py", m, sizeof(m));
	cr_assert_str_eq(m, "pkg");
	heal_names__module(NULL, "__init__.py", m, sizeof(m));
	cr_assert_str_eq(m, "__init__");
	heal_names__module(NULL, "/srv/tool", m, sizeof(m));
	cr_assert_str_eq(m, "tool");
	heal_names__module(NULL, "/srv/.py", m, sizeof(m));
	cr_assert_str_eq(m, "?");
	heal_names__module(NULL, "/srv/a.b.py", m, sizeof(m));
	cr_assert_str_eq(m, "a.b");
}

Test(heal_names, join_and_base)
{
	char out[PATH_MAX];
	heal_names__join("/home/u", "app.py", out, sizeof(out));
	cr_assert_str_eq(out, "/home/u/app.py");
	heal_names__join("/home/u", "/srv/app.py", out, sizeof(out));
	cr_assert_str_eq(out, "/srv/app.py");
	heal_names__join("/home/u", "<string>", out, sizeof(out));
	cr_assert_str_eq(out, "<string>");
	heal_names__join("", "app.py", out, sizeof(out));
	cr_assert_str_eq(out, "app.py");
	heal_names__join("/home/u", "", out, sizeof(out));
	cr_assert_str_eq(out, "");
	cr_assert_str_eq(heal_names__base("/a/b/c.py"), "c.py");
	cr_assert_str_eq(heal_names__base("c.py"), "c.py");
	cr_assert_str_eq(heal_names__base("/a/b/"), "");
	char small[4];
	heal_names__copy(small, sizeof(small), "abcdef");
	cr_assert_str_eq(small, "abc");
}

Test(heal_names, file_key_resolves_what_exists)
{
	char dir[] = "/tmp/suture-heal-names.XXXXXX", path[PATH_MAX], link[PATH_MAX];
	char key[PATH_MAX], real[PATH_MAX];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/real.py", dir);
	snprintf(link, sizeof(link), "%s/link.py", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fclose(f);
	cr_assert_eq(symlink("real.py", link), 0);
	cr_assert_not_null(realpath(path, real));

	/* Relative to the target's cwd, through the symlink. */
	heal_names__file_key(dir, "link.py", key, sizeof(key));
	cr_assert_str_eq(key, real);
	heal_names__file_key("/nonexistent", link, key, sizeof(key));
	cr_assert_str_eq(key, real);
	/* Gone or never there: the joined path as it is. */
	heal_names__file_key("/nonexistent", "x.py", key, sizeof(key));
	cr_assert_str_eq(key, "/nonexistent/x.py");
	heal_names__file_key(dir, "<frozen importlib._bootstrap>", key, sizeof(key));
	cr_assert_str_eq(key, "<frozen importlib._bootstrap>");

	unlink(link);
	unlink(path);
	rmdir(dir);
}
