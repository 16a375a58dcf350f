/* wire/: the channel directory's ownership rules and paths
 * (docs/formats/channel.md): a directory that is a symlink, open to
 * others, or owned by someone else is refused by both sides. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "wire/channel.h"

static char base[64];

static void setup(void)
{
	snprintf(base, sizeof base, "/tmp/suture-unit-XXXXXX");
	cr_assert_not_null(mkdtemp(base));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", base);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(inject_channel, .init = setup, .fini = teardown);

Test(inject_channel, paths)
{
	char dir[WIRE_PATH_MAX], buf[WIRE_PATH_MAX];
	cr_assert_eq(wire_channel__dir(1000, dir, sizeof dir), 0);
	cr_assert_str_eq(dir, "/tmp/suture-1000");
	cr_assert_eq(wire_channel__path(dir, 4242, "sock", buf, sizeof buf), 0);
	cr_assert_str_eq(buf, "/tmp/suture-1000/agent-4242.sock");
	char small[8];
	cr_assert_eq(wire_channel__dir(1000, small, sizeof small), -ENAMETOOLONG);
}

Test(inject_channel, creates_private_dir)
{
	char dir[128];
	struct stat st;
	snprintf(dir, sizeof dir, "%s/ch", base);
	cr_assert_eq(wire_channel__ensure_dir(dir, getuid()), 0);
	cr_assert_eq(stat(dir, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700);
	cr_assert_eq(wire_channel__ensure_dir(dir, getuid()), 0, "existing dir reused");
	cr_assert_eq(wire_channel__check_dir(dir, getuid()), 0);
}

Test(inject_channel, refuses_open_symlinked_or_foreign_dirs)
{
	char dir[128], link[128];
	snprintf(dir, sizeof dir, "%s/open", base);
	cr_assert_eq(mkdir(dir, 0700), 0);
	cr_assert_eq(chmod(dir, 0755), 0);
	cr_assert_eq(wire_channel__ensure_dir(dir, getuid()), -EPERM, "group/other bits");
	cr_assert_eq(chmod(dir, 0700), 0);
	snprintf(link, sizeof link, "%s/link", base);
	cr_assert_eq(symlink(dir, link), 0);
	cr_assert_eq(wire_channel__check_dir(link, getuid()), -EPERM, "symlink");
	cr_assert_eq(wire_channel__check_dir(dir, getuid() + 1), -EPERM, "other owner");
	snprintf(dir, sizeof dir, "%s/missing", base);
	cr_assert_eq(wire_channel__check_dir(dir, getuid()), -ENOENT);
}
