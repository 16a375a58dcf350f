/* store/: code files for `suture-audit explain` (docs/formats/store.md,
 * "Code files"): a saved code object loads back field for field, the
 * file name comes only from a well-formed code id, and a damaged file is
 * -EBADMSG, a missing one -ENOENT. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/code.h"
#include "store/store.h"

static char dir[] = "/tmp/suture-store-code.XXXXXX";
static const char *ID = "fnv64:0123456789abcdef";
static struct store *st;

static void setup(void)
{
	strcpy(dir, "/tmp/suture-store-code.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(store__open(dir, 0, &st), 0);
}

static void teardown(void)
{
	char cmd[128];
	store__close(st);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

static const uint8_t code[] = { 151, 0, 124, 0, 106, 0, 0, 0, 83, 0 };
static const uint8_t exct[] = { 0x82, 0x04, 0x06 };
static const uint8_t lines[] = { 0xf0, 0x03, 0x01 };
static const char *const names[] = { "name" };
static const char *const lp[] = { "user", "x" };
static const uint8_t kinds[] = { 0x26, 0x20 };
static const struct rewrite_const consts[] = { { "NoneType", "None" }, { "str", "'a \"q\"'" } };

static struct rewrite_code_info sample(void)
{
	return (struct rewrite_code_info){
		.code = code,
		.code_len = sizeof code,
		.exctable = exct,
		.exctable_len = sizeof exct,
		.linetable = lines,
		.linetable_len = sizeof lines,
		.firstlineno = 21,
		.stacksize = 1,
		.flags = 3,
		.argcount = 1,
		.nlocalsplus = 2,
		.nlocals = 2,
		.filename = "/srv/app.py",
		.name = "greet",
		.qualname = "greet",
		.nnames = 1,
		.names = names,
		.localsplusnames = lp,
		.localspluskinds = kinds,
		.nconsts = 2,
		.consts = consts,
	};
}

TestSuite(store_code, .init = setup, .fini = teardown);

Test(store_code, roundtrip)
{
	struct rewrite_code_info in = sample();
	struct store_code c;
	cr_assert_eq(store_code__save(st, ID, &in), 0);
	cr_assert_eq(store_code__load(st, ID, &c), 0);
	cr_assert_eq(c.info.code_len, sizeof code);
	cr_assert_eq(memcmp(c.info.code, code, sizeof code), 0);
	cr_assert_eq(c.info.exctable_len, sizeof exct);
	cr_assert_eq(memcmp(c.info.exctable, exct, sizeof exct), 0, "exception table bytes differ");
	cr_assert_eq(c.info.linetable_len, sizeof lines);
	cr_assert_eq(memcmp(c.info.linetable, lines, sizeof lines), 0);
	cr_assert_eq(c.info.stacksize, 1);
	cr_assert_eq(c.info.argcount, 1);
	cr_assert_eq(c.info.nlocals, 2);
	cr_assert_str_eq(c.info.name, "greet");
	cr_assert_eq(c.info.firstlineno, 21);
	cr_assert_eq(c.info.flags, 3);
	cr_assert_str_eq(c.info.qualname, "greet");
	cr_assert_str_eq(c.info.filename, "/srv/app.py");
	cr_assert_eq(c.info.nnames, 1);
	cr_assert_str_eq(c.info.names[0], "name");
	cr_assert_eq(c.info.nlocalsplus, 2);
	cr_assert_str_eq(c.info.localsplusnames[1], "x");
	cr_assert_str_eq(c.info.localsplusnames[0], "user");
	cr_assert_eq(c.info.localspluskinds[0], 0x26);
	cr_assert_eq(c.info.localspluskinds[1], 0x20);
	cr_assert_eq(c.info.nconsts, 2);
	cr_assert_str_eq(c.info.consts[0].type, "NoneType");
	cr_assert_str_eq(c.info.consts[0].repr, "None");
	cr_assert_str_eq(c.info.consts[1].type, "str");
	cr_assert_str_eq(c.info.consts[1].repr, "'a \"q\"'");
	store_code__free(&c);
	store_code__free(&c); /* idempotent */
	char path[512];
	struct stat st;
	cr_assert_eq(store_code__path(dir, ID, path, sizeof path), 0);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
}

Test(store_code, ids_and_missing)
{
	char path[512];
	struct store_code c;
	cr_assert_eq(store_code__path(dir, "fnv64:../../etc/pass", path, sizeof path), -EINVAL);
	cr_assert_eq(store_code__path(dir, "sha1:0123456789abcdef", path, sizeof path), -EINVAL);
	cr_assert_eq(store_code__path(dir, "fnv64:0123456789ABCDEF", path, sizeof path), -EINVAL);
	cr_assert_eq(store_code__load(st, ID, &c), -ENOENT);
}

static void write_file(const char *text)
{
	char path[512];
	cr_assert_eq(store_code__path(dir, ID, path, sizeof path), 0);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	cr_assert_eq(chmod(path, 0600), 0); /* whatever the umask: not refused for its mode */
}

Test(store_code, damaged_files_are_refused)
{
	struct rewrite_code_info in = sample();
	struct store_code c;
	cr_assert_eq(store_code__save(st, ID, &in), 0); /* creates code/ */
	const char *bad[] = {
		"",
		"{",
		"[]",
		"{\"format\":2}",
		/* another code id inside */
		"{\"format\":1,\"code_id\":\"fnv64:ffffffffffffffff\"}",
		/* odd hex */
		"{\"format\":1,\"code_id\":\"fnv64:0123456789abcdef\",\"filename\":\"f\",\"name\":\"n\","
		"\"qualname\":\"q\",\"firstlineno\":1,\"stacksize\":1,\"flags\":0,\"argcount\":0,"
		"\"posonlyargcount\":0,\"kwonlyargcount\":0,\"nlocals\":0,\"code\":\"970\","
		"\"exceptiontable\":\"\",\"linetable\":\"\",\"names\":[],\"localsplus\":[],\"consts\":[]}",
		/* a non-string name */
		"{\"format\":1,\"code_id\":\"fnv64:0123456789abcdef\",\"filename\":\"f\",\"name\":\"n\","
		"\"qualname\":\"q\",\"firstlineno\":1,\"stacksize\":1,\"flags\":0,\"argcount\":0,"
		"\"posonlyargcount\":0,\"kwonlyargcount\":0,\"nlocals\":0,\"code\":\"9700\","
		"\"exceptiontable\":\"\",\"linetable\":\"\",\"names\":[1],\"localsplus\":[],\"consts\":[]}",
		/* a const that is not a pair */
		"{\"format\":1,\"code_id\":\"fnv64:0123456789abcdef\",\"filename\":\"f\",\"name\":\"n\","
		"\"qualname\":\"q\",\"firstlineno\":1,\"stacksize\":1,\"flags\":0,\"argcount\":0,"
		"\"posonlyargcount\":0,\"kwonlyargcount\":0,\"nlocals\":0,\"code\":\"9700\","
		"\"exceptiontable\":\"\",\"linetable\":\"\",\"names\":[],\"localsplus\":[],\"consts\":[[\"int\"]]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_file(bad[i]);
		cr_assert_eq(store_code__load(st, ID, &c), -EBADMSG, "case %zu", i);
	}
	/* The smallest valid file loads. */
	write_file(
		"{\"format\":1,\"code_id\":\"fnv64:0123456789abcdef\",\"filename\":\"f\",\"name\":\"n\","
		"\"qualname\":\"q\",\"firstlineno\":1,\"stacksize\":1,\"flags\":0,\"argcount\":0,"
		"\"posonlyargcount\":0,\"kwonlyargcount\":0,\"nlocals\":0,\"code\":\"9700\","
		"\"exceptiontable\":\"\",\"linetable\":\"\",\"names\":[],\"localsplus\":[],\"consts\":[]}");
	cr_assert_eq(store_code__load(st, ID, &c), 0);
	cr_assert_eq(c.info.code_len, 2);
	store_code__free(&c);
}
