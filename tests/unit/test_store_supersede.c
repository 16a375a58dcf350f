/* store/: a patch superseded by a reload (store__mark_superseded,
 * store_patch__superseded_by; docs/formats/store.md "Superseded patches"):
 * stored as stale with a reason that names the reload, read back as such
 * after a reopen, never applicable; a plain stale patch is not superseded;
 * the file stays format version 2. */
#include <errno.h>

#include "test_store_util.h"

Test(store_supersede, marked_read_back_never_applied)
{
	char dir[256];
	struct store *s = NULL;
	struct store_patch a = full_patch("app.config.Loader.load:47:key_guard");
	struct store_patch b = full_patch("app.config.Loader.load:48:key_guard");
	b.line = 48;
	tmp_store(dir, sizeof dir);
	cr_assert_eq(open_capturing(dir, STORE_F_CREATE, &s), 0);
	cr_assert_eq(store__add(s, &a), 0);
	cr_assert_eq(store__add(s, &b), 0);
	cr_assert_eq(store__mark_superseded(s, a.name, "reload:config.py#1 (pid 42, now)"), 0);
	cr_assert_eq(store__mark_stale(s, b.name, "code changed"), 0);
	cr_assert_eq(store__mark_superseded(s, "no.such:1:key_guard", "reload:x#1"), -ENOENT);
	store__close(s);

	cr_assert_eq(open_capturing(dir, STORE_F_RDONLY, &s), 0);
	const struct store_patch *p = store__find(s, a.name);
	cr_assert_not_null(p);
	cr_assert_eq(p->status, STORE_STATUS_STALE);
	cr_assert_str_eq(store_patch__superseded_by(p), "reload:config.py#1 (pid 42, now)");
	struct store_query q = { .program = a.program,
				 .python_version = a.python_version,
				 .flags = STORE_Q_APPLICABLE };
	cr_assert_eq(store_patch__verdict(p, &q), STORE_V_STALE);
	p = store__find(s, b.name);
	cr_assert_not_null(p);
	cr_assert_null(store_patch__superseded_by(p));
	store__close(s);

	/* Still version 2: an older reader of this format reads it. */
	char idx[512], text[8192];
	snprintf(idx, sizeof idx, "%s/index.json", dir);
	FILE *f = fopen(idx, "r");
	cr_assert_not_null(f);
	size_t n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = 0;
	cr_assert_not_null(strstr(text, "\"version\":\t2"));
	cr_assert_not_null(
		strstr(text, "\"stale_reason\":\t\"superseded by reload reload:config.py#1"));
	rm_tree(dir);
}
