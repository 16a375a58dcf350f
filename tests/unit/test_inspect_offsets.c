/* Layout resolution: every DWARF source on this machine and the build-time
 * probe table give complete layouts that agree field by field; the cache
 * round-trips and rejects damage. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inspect/offsets.h"

/* Debian's python3.11-dbg ships the DWARF of /usr/bin/python3.11 (build-id
 * file) and its own debug build with .debug_info; pyenv's 3.11.7 has a
 * shared libpython with .debug_info. tools/deps.sh installs the first two. */
#define DEBIAN_BUILD_ID "/usr/lib/debug/.build-id/c5/61f3aa7232f2bd6ac6d56bd475f1c154a00486.debug"
#define DEBIAN_DBG "/usr/bin/python3.11d"
#define PYENV_LIB "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0"

static void load(const char *path, struct inspect_offsets *o)
{
	char err[256];
	int r = inspect_offsets__from_dwarf(path, o, err, sizeof(err));
	cr_assert_eq(r, 0, "%s: %d %s", path, r, err);
	const char *missing = NULL;
	cr_assert_eq(inspect_offsets__check(o, &missing), 0, "%s: missing %s", path, missing);
}

static void agree(const struct inspect_offsets *a, const char *an, const struct inspect_offsets *b,
		  const char *bn)
{
	size_t n;
	const struct inspect_field *f = inspect_offsets__fields(&n);
	size_t shared = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t x = inspect_offsets__get(a, f[i].slot),
			y = inspect_offsets__get(b, f[i].slot);
		if (x < 0 || y < 0)
			continue;
		shared++;
		cr_expect_eq(x, y, "%s: %s says %lld, %s says %lld",
			     inspect_offsets__slot_name(f[i].slot), an, (long long)x, bn,
			     (long long)y);
	}
	cr_expect_geq(shared, n - 2, "only %zu of %zu fields shared", shared, n);
}

Test(inspect_offsets, all_sources_agree_with_the_probe_table)
{
	struct inspect_offsets probe, buildid, own_dbg;
	inspect_offsets__from_probe(&probe);
	cr_assert_eq(inspect_offsets__check(&probe, NULL), 0);
	cr_expect_eq(inspect_offsets__probe_version() >> 16, 0x030bu);
	load(DEBIAN_BUILD_ID, &buildid);
	load(DEBIAN_DBG, &own_dbg);
	agree(&buildid, "build-id file", &probe, "probe");
	agree(&own_dbg, "python3.11d", &probe, "probe");
}

Test(inspect_offsets, pyenv_libpython_agrees_with_the_probe_table)
{
	struct inspect_offsets probe, pyenv;
	if (access(PYENV_LIB, R_OK) != 0)
		cr_skip_test("no %s on this machine", PYENV_LIB);
	inspect_offsets__from_probe(&probe);
	load(PYENV_LIB, &pyenv);
	agree(&pyenv, "pyenv 3.11.7", &probe, "probe");
}

/* A .gnu_debuglink target is a debug-only file (objcopy --only-keep-debug,
 * as Debian's build-id files are); make one from the debug build. */
Test(inspect_offsets, debug_only_file_agrees, .timeout = 120)
{
	char dir[] = "/tmp/suture-dbgonly-XXXXXX", path[128], cmd[512];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/python3.11d.debug", dir);
	snprintf(cmd, sizeof(cmd), "objcopy --only-keep-debug %s %s", DEBIAN_DBG, path);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	struct inspect_offsets link, probe;
	load(path, &link);
	inspect_offsets__from_probe(&probe);
	agree(&link, "debug-only file", &probe, "probe");
	unlink(path);
	rmdir(dir);
}

Test(inspect_offsets, known_facts_of_3_11)
{
	struct inspect_offsets o;
	inspect_offsets__from_probe(&o);
	/* Values any 3.11 x86-64 build has (checked against the headers). */
	cr_expect_eq(o.ob_type, 8);
	cr_expect_eq(o.ob_size, 16);
	cr_expect_eq(o.us_kind_bits, 3);
	cr_expect_eq(o.long_digit_size, 4);
	cr_expect_eq(o.dke_size, 24);
	cr_expect_eq(o.dku_size, 16);
	cr_expect_eq(o.se_size, 16);
	cr_expect_eq(o.us_ascii_size, 48);
	cr_expect_eq(o.us_compact_size, 72);
	cr_expect_gt(o.fr_localsplus, o.fr_owner);
}

Test(inspect_offsets, bad_files)
{
	struct inspect_offsets o;
	char err[256];
	cr_expect_eq(inspect_offsets__from_dwarf("/nonexistent/x", &o, err, sizeof(err)), -ENOENT);
	cr_expect_neq(inspect_offsets__from_dwarf("/etc/hostname", &o, err, sizeof(err)), 0);
	/* An ELF without DWARF (Debian strips /usr/bin). */
	int r = inspect_offsets__from_dwarf("/usr/bin/true", &o, err, sizeof(err));
	cr_expect(r == -ENODATA || r == -EINVAL, "r=%d %s", r, err);
	/* A DWARF file of another program has none of the types. */
	const char *missing = NULL;
	inspect_offsets__clear(&o);
	cr_expect_eq(inspect_offsets__check(&o, &missing), -ENODATA);
	cr_expect_not_null(missing);
}

Test(inspect_offsets, cache_round_trip_and_damage)
{
	char dir[] = "/tmp/suture-offsets-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char sub[128];
	snprintf(sub, sizeof(sub), "%s/a/b", dir);
	struct inspect_offsets o, back;
	enum inspect_source src = INSPECT_SRC_NONE;
	inspect_offsets__from_probe(&o);
	const char *id = "c561f3aa7232f2bd6ac6d56bd475f1c154a00486";
	cr_expect_eq(inspect_offsets__cache_load(sub, id, &back, &src), -ENOENT);
	cr_assert_eq(inspect_offsets__cache_store(sub, id, &o, INSPECT_SRC_BUILD_ID), 0);
	cr_assert_eq(inspect_offsets__cache_load(sub, id, &back, &src), 0);
	cr_expect_eq(memcmp(&o, &back, sizeof(o)), 0);
	cr_expect_eq(src, INSPECT_SRC_BUILD_ID);
	cr_expect_eq(inspect_offsets__cache_load(sub, "00ff", &back, &src), -ENOENT);
	cr_expect_eq(inspect_offsets__cache_load(sub, "../../etc/passwd", &back, &src), -EINVAL);
	cr_expect_eq(inspect_offsets__cache_store(sub, "", &o, INSPECT_SRC_OWN), -EINVAL);

	/* Flip one byte anywhere: the entry is refused. */
	char path[256];
	snprintf(path, sizeof(path), "%s/offsets-%s.bin", sub, id);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 077, 0, "cache entry readable by others");
	for (off_t at = 0; at < st.st_size; at += 97) {
		FILE *f = fopen(path, "r+b");
		cr_assert_not_null(f);
		fseek(f, at, SEEK_SET);
		int c = fgetc(f);
		fseek(f, at, SEEK_SET);
		fputc(c ^ 0x5a, f);
		fclose(f);
		cr_expect_eq(inspect_offsets__cache_load(sub, id, &back, &src), -EBADMSG,
			     "byte %lld", (long long)at);
		f = fopen(path, "r+b");
		fseek(f, at, SEEK_SET);
		fputc(c, f);
		fclose(f);
	}
	/* Truncated. */
	cr_assert_eq(truncate(path, st.st_size - 1), 0);
	cr_expect_eq(inspect_offsets__cache_load(sub, id, &back, &src), -EBADMSG);
	unlink(path);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_expect_eq(system(cmd), 0);
}
