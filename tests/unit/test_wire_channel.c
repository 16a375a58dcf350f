/* wire/: where the channel lives (wire_channel__place, docs/formats/
 * channel.md "Where"): XDG_RUNTIME_DIR first, /tmp/suture-<uid>, a private
 * fallback when that name is squatted; a directory that is a symlink, open
 * to others, or owned by someone else is refused by both sides. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wire/channel.h"
#include "wire/msg.h"

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

/* place() in a root of our own: base/ stands for "/" of a process. */
static int place(uid_t uid, const char *xdg, bool create, char *dir, char *why)
{
	int root = open(base, O_PATH | O_DIRECTORY), fd = -1;
	cr_assert_geq(root, 0);
	int rc = wire_channel__place(root, uid, uid, xdg, create, &fd, dir, WIRE_PATH_MAX, why,
				     256);
	close(root);
	if (fd >= 0)
		close(fd);
	cr_assert((rc == 0) == (fd >= 0), "a descriptor exactly on success");
	return rc;
}

static void mk(const char *rel, mode_t mode)
{
	char p[256];
	snprintf(p, sizeof p, "%s/%s", base, rel);
	cr_assert_eq(mkdir(p, mode), 0, "mkdir %s", p);
	cr_assert_eq(chmod(p, mode), 0);
}

Test(inject_channel, paths)
{
	char buf[WIRE_PATH_MAX];
	cr_assert_eq(wire_channel__path("/tmp/suture-1000", 4242, "sock", buf, sizeof buf), 0);
	cr_assert_str_eq(buf, "/tmp/suture-1000/agent-4242.sock");
	char small[8];
	cr_assert_eq(wire_channel__path("/tmp/suture-1000", 1, "sock", small, sizeof small),
		     -ENAMETOOLONG);
}

Test(inject_channel, tmp_dir_created_private_and_found_again)
{
	char dir[WIRE_PATH_MAX], why[256], want[64], p[256];
	struct stat st;
	uid_t me = getuid();
	mk("tmp", 01777);
	cr_assert_eq(place(me, NULL, false, dir, why), -ENOENT, "nothing yet, not created");
	cr_assert_eq(place(me, NULL, true, dir, why), 0, "%s", why);
	snprintf(want, sizeof want, "/tmp/suture-%u", (unsigned)me);
	cr_assert_str_eq(dir, want, "the path as the process sees it");
	snprintf(p, sizeof p, "%s%s", base, want);
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700);
	cr_assert_eq(place(me, NULL, false, dir, why), 0, "found by the debugger's side");
	cr_assert_str_eq(dir, want);
}

Test(inject_channel, xdg_runtime_dir_first_and_checked)
{
	char dir[WIRE_PATH_MAX], why[256];
	uid_t me = getuid();
	mk("tmp", 01777);
	mk("run", 0755);
	mk("run/user", 0755);
	mk("run/user/x", 0700);
	cr_assert_eq(place(me, "/run/user/x", true, dir, why), 0, "%s", why);
	cr_assert_str_eq(dir, "/run/user/x/suture");
	/* Open to others: refused, and why says so. */
	char p[256];
	snprintf(p, sizeof p, "%s/run/user/x", base);
	cr_assert_eq(chmod(p, 0755), 0);
	cr_assert_eq(place(me, "/run/user/x", true, dir, why), -EPERM);
	cr_assert(strstr(why, "XDG_RUNTIME_DIR /run/user/x is open to group or others"), "%s", why);
	/* Someone else's: refused. */
	cr_assert_eq(chmod(p, 0700), 0);
	cr_assert_eq(place(me + 1, "/run/user/x", true, dir, why), -EPERM);
	cr_assert(strstr(why, "is owned by uid"), "%s", why);
	/* Set but absent in this root (carried into a container): /tmp. */
	cr_assert_eq(place(me, "/run/user/none", true, dir, why), 0, "%s", why);
	cr_assert(strncmp(dir, "/tmp/suture-", 12) == 0, "%s", dir);
}

Test(inject_channel, squatted_tmp_name_is_passed_over)
{
	char dir[WIRE_PATH_MAX], dir2[WIRE_PATH_MAX], why[256], name[64];
	uid_t me = getuid();
	mk("tmp", 01777);
	/* A directory of that name, but open to others (as if another user
	 * made it for us): passed over for a private one, found again. */
	snprintf(name, sizeof name, "tmp/suture-%u", (unsigned)me);
	mk(name, 0777);
	cr_assert_eq(place(me, NULL, false, dir, why), -ENOENT, "not created: %s", why);
	cr_assert(strstr(why, "open to group or others"), "%s", why);
	cr_assert_eq(place(me, NULL, true, dir, why), 0, "%s", why);
	cr_assert(strstr(why, "passed over"), "%s", why);
	snprintf(name, sizeof name, "/tmp/suture-%u.", (unsigned)me);
	cr_assert(strncmp(dir, name, strlen(name)) == 0, "%s", dir);
	cr_assert_eq(place(me, NULL, false, dir2, why), 0, "%s", why);
	cr_assert_str_eq(dir, dir2, "both sides agree");
	cr_assert_eq(place(me, NULL, true, dir2, why), 0, "%s", why);
	cr_assert_str_eq(dir, dir2, "an agent started later uses the same one");
}

Test(inject_channel, symlink_refused)
{
	char dir[WIRE_PATH_MAX], why[256], p[256], t[256];
	uid_t me = getuid();
	mk("tmp", 01777);
	mk("elsewhere", 0700);
	snprintf(t, sizeof t, "%s/elsewhere", base);
	snprintf(p, sizeof p, "%s/tmp/suture-%u", base, (unsigned)me);
	cr_assert_eq(symlink(t, p), 0);
	/* Passed over, like any name someone else made: never followed. */
	cr_assert_eq(place(me, NULL, false, dir, why), -ENOENT);
	cr_assert(strstr(why, "is a symlink"), "%s", why);
	cr_assert_eq(place(me, NULL, true, dir, why), 0, "%s", why);
	cr_assert(strstr(dir, ".") != NULL, "a private one: %s", dir);
}

Test(inject_channel, xdg_from_environ_block)
{
	static const char env[] = "A=1\0XDG_RUNTIME_DIR=/run/user/7\0B=2";
	char buf[64];
	cr_assert_eq(wire_channel__xdg(env, env + sizeof env - 1, buf, sizeof buf), 0);
	cr_assert_str_eq(buf, "/run/user/7");
	cr_assert_eq(wire_channel__xdg(env, env + 3, buf, sizeof buf), -ENOENT);
	char small[4];
	cr_assert_eq(wire_channel__xdg(env, env + sizeof env - 1, small, sizeof small),
		     -ENAMETOOLONG);
	/* Truncated inside the value: no NUL, still bounded by end. */
	cr_assert_eq(wire_channel__xdg(env, env + 24, buf, sizeof buf), 0);
	cr_assert_str_eq(buf, "/run");
}

Test(inject_channel, foreign_owner_passed_over)
{
	char dir[WIRE_PATH_MAX], why[256], name[160];
	uid_t me = getuid();
	mk("tmp", 01777);
	/* /tmp/suture-<me+1> made by us: not uid me+1's, so not its channel. */
	snprintf(name, sizeof name, "%s/tmp/suture-%u", base, (unsigned)me + 1);
	cr_assert_eq(mkdir(name, 0700), 0);
	cr_assert_eq(place(me + 1, NULL, false, dir, why), -ENOENT);
	cr_assert(strstr(why, "is owned by uid"), "%s", why);
}

/* wire_reader: frames handed out whole from what one receive took, with
 * wire_channel__read_frame's answers (docs/formats/channel.md). */
static size_t frame(uint8_t *out, uint16_t type, const void *payload, uint32_t len)
{
	out[0] = (uint8_t)len;
	out[1] = (uint8_t)(len >> 8);
	out[2] = (uint8_t)(len >> 16);
	out[3] = (uint8_t)(len >> 24);
	out[4] = (uint8_t)type;
	out[5] = (uint8_t)(type >> 8);
	out[6] = out[7] = 0;
	memcpy(out + 8, payload, len);
	return 8 + len;
}

Test(inject_channel, reader_hands_out_a_burst_from_one_receive)
{
	int sv[2];
	uint8_t buf[256], *pl;
	size_t n = 0;
	struct wire_hdr h;
	struct wire_reader r = { 0 };
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	n += frame(buf + n, WIRE_MSG_RELEASE, "abc", 3);
	n += frame(buf + n, WIRE_MSG_PATCH_RESULT, "", 0);
	n += frame(buf + n, WIRE_MSG_RELEASE, "xyzw", 4);
	cr_assert_eq(write(sv[0], buf, n), (ssize_t)n);
	cr_assert_eq(wire_reader__next(&r, sv[1], 1000, &h, &pl), 0);
	cr_assert(h.type == WIRE_MSG_RELEASE && h.len == 3 && memcmp(pl, "abc", 3) == 0);
	free(pl);
	/* The other two came with the first receive. */
	cr_assert(wire_reader__has_frame(&r));
	cr_assert_eq(wire_reader__next(&r, sv[1], 0, &h, &pl), 0);
	cr_assert(h.type == WIRE_MSG_PATCH_RESULT && h.len == 0 && pl == NULL);
	cr_assert_eq(wire_reader__next(&r, sv[1], 0, &h, &pl), 0);
	cr_assert(h.len == 4 && memcmp(pl, "xyzw", 4) == 0);
	free(pl);
	cr_assert_not(wire_reader__has_frame(&r));
	cr_assert_eq(wire_reader__next(&r, sv[1], 0, &h, &pl), -ETIMEDOUT);
	/* A frame split across writes, bigger than one receive's chunk. */
	static uint8_t big[8 + 40000];
	uint8_t body[40000];
	memset(body, 7, sizeof body);
	size_t bn = frame(big, WIRE_MSG_RELEASE, body, sizeof body);
	cr_assert_eq(write(sv[0], big, 5), 5);
	pid_t pid = fork();
	if (pid == 0) {
		usleep(20000);
		_exit(write(sv[0], big + 5, bn - 5) == (ssize_t)(bn - 5) ? 0 : 1);
	}
	cr_assert_eq(wire_reader__next(&r, sv[1], 1000, &h, &pl), 0);
	cr_assert(h.len == sizeof body && memcmp(pl, body, sizeof body) == 0);
	free(pl);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	/* A header the decoder refuses; then the peer gone inside a frame. */
	uint8_t bad[8] = { 1, 0, 0, 0, 0xff, 0xff, 0, 0 };
	cr_assert_eq(write(sv[0], bad, 8), 8);
	cr_assert_eq(wire_reader__next(&r, sv[1], 1000, &h, &pl), -EPROTO);
	wire_reader__free(&r);
	n = frame(buf, WIRE_MSG_RELEASE, "abcdef", 6);
	cr_assert_eq(write(sv[0], buf, n - 2), (ssize_t)(n - 2));
	close(sv[0]);
	cr_assert_eq(wire_reader__next(&r, sv[1], 1000, &h, &pl), -EPIPE);
	wire_reader__free(&r);
	close(sv[1]);
}

/* A debugger killed with SIGKILL leaves tree-<pid>.sock: the sweep removes
 * it when the pid is dead, keeps a live debugger's. */
static void bind_at(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "bind %s", path);
	close(fd);
}

Test(inject_channel, tree_socket_of_a_dead_pid_is_swept)
{
	char dead[WIRE_PATH_MAX], live[WIRE_PATH_MAX];
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	cr_assert_eq(wire_channel__tree_path(base, pid, dead, sizeof dead), 0);
	cr_assert_eq(wire_channel__tree_path(base, getpid(), live, sizeof live), 0);
	bind_at(dead);
	bind_at(live);
	cr_assert_eq(wire_channel__sweep(base), 1);
	cr_assert_eq(access(dead, F_OK), -1, "a dead pid's tree socket stays");
	cr_assert_eq(access(live, F_OK), 0, "a live pid's tree socket was removed");
	char small[16];
	cr_assert_eq(wire_channel__tree_path(base, 1, small, sizeof small), -ENAMETOOLONG);
}
