/* heal/names.c: the store's keys for files and modules: the file a code
 * object names, resolved from the target's working directory, and the
 * module a file is. (Patch names are chosen by the store under its lock:
 * tests/unit/test_store_safety.c.) */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heal/heal-priv.h"

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
