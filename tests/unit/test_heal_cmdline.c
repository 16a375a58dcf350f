/* heal_cmdline__parse and heal_cmdline__module_file (heal/cmdline.c): what
 * suture-run runs from the words after its options. A wrong answer runs
 * the wrong thing or keeps patches under the wrong program. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "heal/heal.h"

static int parse(char **w, struct heal_cmdline *c)
{
	char err[256] = "";
	int rc = heal_cmdline__parse(w, c, err, sizeof(err));
	cr_assert(rc == 0 || err[0], "a refusal without a message");
	return rc;
}

Test(heal_cmdline, script_and_args)
{
	char *w[] = { "job.py", "-m", "x", NULL };
	struct heal_cmdline c;
	cr_assert_eq(parse(w, &c), 0);
	cr_assert_str_eq(c.script, "job.py");
	cr_assert_null(c.module);
	cr_assert_null(c.python);
	cr_assert_eq(c.args, w, "the script's own -m is its argument");
}

Test(heal_cmdline, module_from_suture_run)
{
	char *w[] = { "-m", "pkg.sub", "a", NULL };
	struct heal_cmdline c;
	cr_assert_eq(parse(w, &c), 0);
	cr_assert_str_eq(c.module, "pkg.sub");
	cr_assert_null(c.script);
	cr_assert_eq(c.args, w);
}

Test(heal_cmdline, interpreter_flags)
{
	char *w[] = { "python3.11", "-X", "utf8", "-u", "-OO", "-W",
		      "error",      "-m", "pkg",  "-v", NULL };
	struct heal_cmdline c;
	cr_assert_eq(parse(w, &c), 0);
	cr_assert_str_eq(c.python, "python3.11");
	cr_assert_str_eq(c.module, "pkg");
	cr_assert_eq(c.args, w + 1, "passed to the interpreter as typed");

	char *w2[] = { "/opt/py/bin/python3", "-Xdev", "-uB", "-mpkg", NULL };
	cr_assert_eq(parse(w2, &c), 0);
	cr_assert_str_eq(c.module, "pkg");

	char *w3[] = { "python3.11-dbg", "-X", "utf8", "job.py", "-u", NULL };
	cr_assert_eq(parse(w3, &c), 0);
	cr_assert_str_eq(c.script, "job.py");
	cr_assert_null(c.module);

	char *w4[] = { "python", "--check-hash-based-pycs", "always", "--", "-odd.py", NULL };
	cr_assert_eq(parse(w4, &c), 0);
	cr_assert_str_eq(c.script, "-odd.py");
}

Test(heal_cmdline, refusals)
{
	struct heal_cmdline c;
	char *none[] = { NULL };
	cr_assert_eq(parse(none, &c), -EINVAL);
	char *cmd[] = { "python3.11", "-c", "pass", NULL };
	cr_assert_eq(parse(cmd, &c), -EINVAL);
	char *cmd2[] = { "python3.11", "-uc", "pass", NULL };
	cr_assert_eq(parse(cmd2, &c), -EINVAL);
	char *in[] = { "python3.11", "-", NULL };
	cr_assert_eq(parse(in, &c), -EINVAL);
	char *bare[] = { "python3.11", "-u", NULL };
	cr_assert_eq(parse(bare, &c), -EINVAL);
	char *x[] = { "python3.11", "-X", NULL };
	cr_assert_eq(parse(x, &c), -EINVAL);
	char *m[] = { "python3.11", "-m", NULL };
	cr_assert_eq(parse(m, &c), -EINVAL);
	char *ver[] = { "python3.11", "-V", "job.py", NULL };
	cr_assert_eq(parse(ver, &c), -EINVAL);
}

Test(heal_cmdline, is_python)
{
	cr_assert(heal_cmdline__is_python("python"));
	cr_assert(heal_cmdline__is_python("python3.11d"));
	cr_assert(heal_cmdline__is_python("/usr/bin/python3.11-dbg"));
	cr_assert(!heal_cmdline__is_python("python_job.py"));
	cr_assert(!heal_cmdline__is_python("pythonic"));
	cr_assert(!heal_cmdline__is_python("/x/python3.11/job.py"));
}

static void touch(const char *dir, const char *rel)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f, "%s", p);
	fclose(f);
}

Test(heal_cmdline, module_file)
{
	char d[] = "/tmp/test_heal_cmdline.XXXXXX", p[512], out[1024];
	cr_assert_not_null(mkdtemp(d));
	snprintf(p, sizeof(p), "%s/a", d);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/a/pkg", d);
	mkdir(p, 0700);
	touch(d, "a/mod.py");
	touch(d, "a/pkg/__init__.py");
	touch(d, "a/pkg/__main__.py");
	touch(d, "a/pkg/sub.py");
	snprintf(p, sizeof(p), "%s/a", d);
	const char *dirs[] = { "", "/nonexistent", p, NULL };
	char want[1024];

	cr_assert_eq(heal_cmdline__module_file("mod", dirs, out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%s/a/mod.py", d);
	cr_assert_str_eq(out, want);
	cr_assert_eq(heal_cmdline__module_file("pkg", dirs, out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%s/a/pkg/__main__.py", d);
	cr_assert_str_eq(out, want);
	cr_assert_eq(heal_cmdline__module_file("pkg.sub", dirs, out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%s/a/pkg/sub.py", d);
	cr_assert_str_eq(out, want);
	cr_assert_eq(heal_cmdline__module_file("nothere", dirs, out, sizeof(out)), -ENOENT);
	cr_assert_eq(heal_cmdline__module_file("../a", dirs, out, sizeof(out)), -EINVAL);
	cr_assert_eq(heal_cmdline__module_file("a/mod", dirs, out, sizeof(out)), -EINVAL);
	cr_assert_eq(heal_cmdline__module_file("pkg.", dirs, out, sizeof(out)), -EINVAL);

	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	cr_assert_eq(system(cmd), 0);
}
