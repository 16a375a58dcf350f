/* store/config.c: config.json's application paths, read through the
 * store's file checks (docs/formats/store.md, "config.json"). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "test_store_util.h"

static struct store *with_config(char *dir, size_t size, const char *text)
{
	char path[512];
	struct store *s;

	tmp_store(dir, size);
	cr_assert_eq(open_capturing(dir, STORE_F_CREATE, &s), 0, "%s", last_msg);
	if (text) {
		snprintf(path, sizeof(path), "%s/config.json", dir);
		FILE *f = fopen(path, "w");
		cr_assert_not_null(f);
		fputs(text, f);
		fclose(f);
		chmod(path, 0600);
	}
	return s;
}

static int paths_of(struct store *s, char *out, size_t cap, char *err)
{
	return store_config__app_paths(s, out, cap, err, 256);
}

Test(store_config, absent_file_adds_nothing)
{
	char dir[256], out[256], err[256];
	struct store *s = with_config(dir, sizeof(dir), NULL);
	cr_assert_eq(paths_of(s, out, sizeof(out), err), 0);
	cr_assert_str_eq(out, "");
	store__close(s);
	rm_tree(dir);
}

Test(store_config, paths_are_joined)
{
	char dir[256], out[256], err[256];
	struct store *s = with_config(dir, sizeof(dir),
				      "{\"app_paths\": [\"/srv/app\", \"/opt/mine\"]}");
	cr_assert_eq(paths_of(s, out, sizeof(out), err), 0, "%s", err);
	cr_assert_str_eq(out, "/srv/app:/opt/mine");
	store__close(s);
	rm_tree(dir);
}

Test(store_config, malformed_files_are_refused_with_a_reason)
{
	static const char *const bad[] = {
		"{\"app_paths\": [\"relative/dir\"]}",
		"{\"app_paths\": [\"/a:b\"]}",
		"{\"app_paths\": \"/srv/app\"}",
		"{\"app_path\": [\"/srv/app\"]}",
		"[\"/srv/app\"]",
		"{\"app_paths\": [1]}",
		"not json",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char dir[256], out[256], err[256];
		struct store *s = with_config(dir, sizeof(dir), bad[i]);
		cr_assert_eq(paths_of(s, out, sizeof(out), err), -EBADMSG, "%s", bad[i]);
		cr_assert(strstr(err, "config.json"), "%s", err);
		cr_assert_str_eq(out, "");
		store__close(s);
		rm_tree(dir);
	}
}

Test(store_config, a_file_others_can_write_or_a_link_is_refused)
{
	char dir[256], out[256], err[256], path[512], target[512];
	struct store *s = with_config(dir, sizeof(dir), "{\"app_paths\": [\"/srv/app\"]}");
	snprintf(path, sizeof(path), "%s/config.json", dir);
	cr_assert_eq(chmod(path, 0666), 0);
	cr_assert_eq(paths_of(s, out, sizeof(out), err), -EPERM, "%s", err);
	snprintf(target, sizeof(target), "%s.real", dir);
	cr_assert_eq(rename(path, target), 0);
	cr_assert_eq(chmod(target, 0600), 0);
	cr_assert_eq(symlink(target, path), 0);
	cr_assert_eq(paths_of(s, out, sizeof(out), err), -EPERM, "%s", err);
	store__close(s);
	unlink(target);
	rm_tree(dir);
}

Test(store_config, heal_handled_sites)
{
	char dir[256], out[256], err[256];
	struct store *s = with_config(
		dir, sizeof(dir),
		"{\"app_paths\": [\"/srv/app\"], \"heal_handled\": [\"__main__.work:29\", \"job.f:3\"]}");
	cr_assert_eq(store_config__heal_handled(s, out, sizeof(out), err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_str_eq(out, "__main__.work:29\njob.f:3");
	cr_assert_eq(paths_of(s, out, sizeof(out), err), 0, "%s", err);
	cr_assert_str_eq(out, "/srv/app");
	store__close(s);
	rm_tree(dir);
	static const char *const bad[] = {
		"{\"heal_handled\": [\"job.work\"]}",   "{\"heal_handled\": [\"job.work:x\"]}",
		"{\"heal_handled\": [\"job work:3\"]}", "{\"heal_handled\": [\":3\"]}",
		"{\"heal_handled\": \"job.f:3\"}",      "{\"heal_handled\": [3]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = with_config(dir, sizeof(dir), bad[i]);
		cr_assert_eq(store_config__heal_handled(s, out, sizeof(out), err, sizeof(err)),
			     -EBADMSG, "%s", bad[i]);
		cr_assert(strstr(err, "heal_handled"), "%s", err);
		store__close(s);
		rm_tree(dir);
	}
}
