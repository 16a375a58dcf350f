/* STORE_F_LAZY (suture-run's hit counts): the open reads no index, the
 * change reads it under the lock and lands on what is on disk; a corrupt
 * index is still refused by the change and left as it was. */
#include "tests/unit/test_store_util.h"

#include <errno.h>

static struct store *fresh(char *dir, size_t size)
{
	struct store *s;

	tmp_store(dir, size);
	cr_assert_eq(open_capturing(dir, STORE_F_CREATE, &s), 0, "%s", last_msg);
	return s;
}

Test(store_lazy, hits_land_on_the_stored_index)
{
	char dir[256];
	struct store *s = fresh(dir, sizeof(dir));
	struct store_patch p[2] = { full_patch("a"), full_patch("b") };
	const char *names[] = { "a", "b", "a" };
	size_t missing = 9;

	cr_assert_eq(store__add_many(s, p, 2), 0);
	store__close(s);

	cr_assert_eq(open_capturing(dir, STORE_F_LAZY, &s), 0, "%s", last_msg);
	cr_assert_eq(store__count(s), 0, "a lazy open reads no index");
	cr_assert_eq(store__record_hits(s, names, 3, 2000000100, &missing), 0, "%s", last_msg);
	cr_assert_eq(missing, 0);
	cr_assert_eq(store__count(s), 2, "the change read the index");
	store__close(s);

	cr_assert_eq(open_capturing(dir, STORE_F_RDONLY, &s), 0, "%s", last_msg);
	cr_assert_eq(store__count(s), 2, "no patch lost");
	cr_assert_eq(store__find(s, "a")->hits, 44);
	cr_assert_eq(store__find(s, "b")->hits, 43);
	cr_assert_eq(store__find(s, "a")->last_hit, 2000000100);
	store__close(s);
	rm_tree(dir);
}

Test(store_lazy, corrupt_index_refused_by_the_change_and_kept)
{
	char dir[256], path[512], back[64] = "";
	struct store *s = fresh(dir, sizeof(dir));
	const char *names[] = { "a" };
	static const char junk[] = "{ not json";

	store__close(s);
	snprintf(path, sizeof(path), "%s/index.json", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(junk, f);
	fclose(f);

	cr_assert_eq(open_capturing(dir, STORE_F_LAZY, &s), 0, "the lazy open does not look: %s",
		     last_msg);
	cr_assert_neq(store__record_hits(s, names, 1, 2000000100, NULL), 0,
		      "a corrupt index is refused");
	store__close(s);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(back, sizeof(back), f));
	fclose(f);
	cr_assert_str_eq(back, junk, "the corrupt index is kept for inspection");
	rm_tree(dir);
}
