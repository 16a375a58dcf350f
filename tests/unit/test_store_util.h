/* Shared helpers for the store's unit tests (tests/unit/test_store_*.c). */
#ifndef TEST_STORE_UTIL_H
#define TEST_STORE_UTIL_H

#include "store/store.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char last_msg[4096];

static void capture(const char *msg, void *ctx)
{
	snprintf(ctx, sizeof(last_msg), "%s", msg);
}

/* store__open whose messages land in last_msg (the handle's own print
 * function: there is no process-wide one). */
static __attribute__((unused)) int open_capturing(const char *path, unsigned flags,
						  struct store **out)
{
	return store__open_print(path, flags, capture, last_msg, out);
}

/* A fresh 0700 directory; the store goes in <tmp>/s. */
static char *tmp_store(char *buf, size_t size)
{
	char tmpl[] = "/tmp/suture-store-test.XXXXXX";

	cr_assert_not_null(mkdtemp(tmpl));
	snprintf(buf, size, "%s/s", tmpl);
	last_msg[0] = '\0';
	return buf;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static void rm_tree(const char *store_dir)
{
	char parent[4096];

	snprintf(parent, sizeof(parent), "%s", store_dir);
	*strrchr(parent, '/') = '\0';
	nftw(parent, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A patch with every field set to something distinctive. */
static __attribute__((unused)) struct store_patch full_patch(const char *name)
{
	struct store_patch p = {
		.name = name,
		.guard = "key_guard",
		.module = "app.config",
		.qualname = "Loader.load.<locals>.get",
		.file = "/srv/app/config.py",
		.first_line = 40,
		.line = 47,
		.target = "cfg[\"timeout\"]",
		.fallback = "30",
		.consumer = "store timeout",
		.consumer_kind = "store",
		.placement = "value",
		.anchor_offset = 118,
		.anchor_window = "LOAD_FAST/LOAD_CONST/BINARY_SUBSCR:9f3a",
		.code_id = "sha256:0123456789abcdef",
		.program = "/srv/app/main.py",
		.python_version = "3.11.2",
		.build_id = "c561f3aa7232f2bd6ac6d56bd475f1c154a00486",
		.created = 1763700000,
		.ttl_days = 3,
		.hits = 42,
		.last_hit = 1763710000,
		.status = STORE_STATUS_ACTIVE,
		.stale_reason = NULL,
	};
	return p;
}

static __attribute__((unused)) char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0, got;

	if (!f)
		return NULL;
	do {
		if (n + 4096 > cap) {
			cap = (cap + 4096) * 2;
			buf = realloc(buf, cap);
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got);
	fclose(f);
	*len = n;
	return buf;
}

static __attribute__((unused)) void write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

#endif
