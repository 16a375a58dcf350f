/* store/: boot image files (docs/formats/boot-image.md, store/image.c):
 * the index hash leaves out exactly the counters programs update as they
 * run; an image is read and written under the store's safety rules, and
 * never written for an index that changed since the loads began. */
#include "test_store_util.h"

#include <errno.h>
#include <sys/stat.h>

static uint64_t hash_of(const char *text)
{
	return store__index_bytes_hash(text, strlen(text));
}

Test(store_image, index_hash_leaves_out_the_counters_only)
{
	const char *base = "{\n\t\"patches\":\t[{\n\t\t\t\"name\":\t\"a\",\n"
			   "\t\t\t\"hits\":\t3,\n\t\t\t\"last_hit\":\t\"2026-12-07T20:45:15Z\",\n"
			   "\t\t\t\"status\":\t\"active\"\n\t\t}],\n\t\"handled\":\t[{\n"
			   "\t\t\t\"site\":\t\"m.f:3\",\n\t\t\t\"count\":\t7,\n"
			   "\t\t\t\"last_seen\":\t\"2026-12-07T20:45:15Z\"\n\t\t}]\n}\n";
	const char *counted = "{\n\t\"patches\":\t[{\n\t\t\t\"name\":\t\"a\",\n"
			      "\t\t\t\"hits\":\t4096,\n\t\t\t\"last_hit\":\tnull,\n"
			      "\t\t\t\"status\":\t\"active\"\n\t\t}],\n\t\"handled\":\t[{\n"
			      "\t\t\t\"site\":\t\"m.f:3\",\n\t\t\t\"count\":\t8,\n"
			      "\t\t\t\"last_seen\":\t\"2027-01-01T00:00:00Z\"\n\t\t}]\n}\n";
	cr_assert_eq(hash_of(base), hash_of(counted), "only counters changed");
	/* Anything else counts: a status, a name, a site. */
	const char *changed[] = {
		"{\n\t\"patches\":\t[{\n\t\t\t\"name\":\t\"a\",\n"
		"\t\t\t\"hits\":\t3,\n\t\t\t\"last_hit\":\t\"2026-12-07T20:45:15Z\",\n"
		"\t\t\t\"status\":\t\"stale\"\n\t\t}],\n\t\"handled\":\t[{\n"
		"\t\t\t\"site\":\t\"m.f:3\",\n\t\t\t\"count\":\t7,\n"
		"\t\t\t\"last_seen\":\t\"2026-12-07T20:45:15Z\"\n\t\t}]\n}\n",
		/* a counter written another way is hashed like anything else */
		"{\n\t\"patches\":\t[{\n\t\t\t\"name\":\t\"a\",\n"
		"\t\t\t\"hits\": 3,\n\t\t\t\"last_hit\":\t\"2026-12-07T20:45:15Z\",\n"
		"\t\t\t\"status\":\t\"active\"\n\t\t}],\n\t\"handled\":\t[{\n"
		"\t\t\t\"site\":\t\"m.f:3\",\n\t\t\t\"count\":\t7,\n"
		"\t\t\t\"last_seen\":\t\"2026-12-07T20:45:15Z\"\n\t\t}]\n}\n",
		/* two fields on one line: hashed */
		"{\n\t\"patches\":\t[{\n\t\t\t\"name\":\t\"a\",\n"
		"\t\t\t\"hits\":\t3, \"status\":\t\"stale\",\n\t\t\t\"last_hit\":\t\"2026-12-07T20:45:15Z\",\n"
		"\t\t\t\"status\":\t\"active\"\n\t\t}],\n\t\"handled\":\t[{\n"
		"\t\t\t\"site\":\t\"m.f:3\",\n\t\t\t\"count\":\t7,\n"
		"\t\t\t\"last_seen\":\t\"2026-12-07T20:45:15Z\"\n\t\t}]\n}\n",
	};
	for (size_t i = 0; i < sizeof changed / sizeof changed[0]; i++)
		cr_assert_neq(hash_of(base), hash_of(changed[i]), "case %zu", i);
	/* A counter line at the top level (no tab) is no counter. */
	cr_assert_neq(hash_of("\"hits\":\t3\n"), hash_of("\"hits\":\t4\n"));
	cr_assert_eq(hash_of("\t\"hits\":\t3\n"), hash_of("\t\"hits\":\t4\n"));
	cr_assert_neq(hash_of("\t\"hits\":\t3x\n"), hash_of("\t\"hits\":\t4x\n"));
}

/* A store with one patch: its hash, from the store's own parse. */
static uint64_t store_with_patch(const char *dir, const char *name)
{
	struct store *s;
	cr_assert_eq(open_capturing(dir, STORE_F_CREATE, &s), 0, "%s", last_msg);
	struct store_patch p = full_patch(name);
	cr_assert_eq(store__add(s, &p), 0, "%s", store__error(s));
	store__close(s);
	cr_assert_eq(open_capturing(dir, 0, &s), 0, "%s", last_msg);
	uint64_t h = store__index_hash(s);
	store__close(s);
	cr_assert_neq(h, 0);
	return h;
}

Test(store_image, write_then_read)
{
	char dir[256], name[64], path[400];
	tmp_store(dir, sizeof dir);
	uint64_t h = store_with_patch(dir, "a");
	store_image__name("/srv/app/main.py", name, sizeof name);
	cr_assert_eq(strncmp(name, "boot-", 5), 0);
	struct store_image im;
	cr_assert_eq(store_image__read(dir, name, &im), -ENOENT, "no image yet");

	const uint8_t data[] = "image bytes";
	cr_assert_eq(store_image__write(dir, name, h, data, sizeof data), 0);
	snprintf(path, sizeof path, "%s/%s", dir, name);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(store_image__read(dir, name, &im), 0);
	cr_assert_eq(im.len, sizeof data);
	cr_assert_eq(memcmp(im.data, data, sizeof data), 0);
	cr_assert_eq(im.index_hash, h, "the index hash as the store's open gives it");
	cr_assert_geq(im.fd, 0);
	store_image__free(&im);
	cr_assert_eq(im.fd, -1);

	/* The index changed since: not written. */
	struct store *s;
	cr_assert_eq(open_capturing(dir, 0, &s), 0, "%s", last_msg);
	struct store_patch p = full_patch("b");
	cr_assert_eq(store__add(s, &p), 0);
	store__close(s);
	const uint8_t other[] = "other";
	cr_assert_eq(store_image__write(dir, name, h, other, sizeof other), -ESTALE);
	cr_assert_eq(store_image__read(dir, name, &im), 0);
	cr_assert_eq(memcmp(im.data, data, sizeof data), 0, "the old image stays");
	cr_assert_neq(im.index_hash, h);
	store_image__free(&im);
	rm_tree(dir);
}

Test(store_image, hits_do_not_change_the_hash)
{
	char dir[256];
	tmp_store(dir, sizeof dir);
	uint64_t h = store_with_patch(dir, "a");
	struct store *s;
	cr_assert_eq(open_capturing(dir, 0, &s), 0, "%s", last_msg);
	uint64_t before = store__find(s, "a")->hits;
	const char *names[] = { "a" };
	cr_assert_eq(store__record_hits(s, names, 1, 1900000000, NULL), 0, "%s", store__error(s));
	store__close(s);
	cr_assert_eq(open_capturing(dir, 0, &s), 0, "%s", last_msg);
	cr_assert_eq(store__find(s, "a")->hits, before + 1);
	cr_assert_eq(store__index_hash(s), h);
	cr_assert_eq(store__mark_stale(s, "a", "changed"), 0);
	store__close(s);
	cr_assert_eq(open_capturing(dir, 0, &s), 0, "%s", last_msg);
	cr_assert_neq(store__index_hash(s), h, "a stale mark is no counter");
	store__close(s);
	rm_tree(dir);
}

Test(store_image, safety_rules)
{
	char dir[256], name[64], path[400], target[300];
	tmp_store(dir, sizeof dir);
	uint64_t h = store_with_patch(dir, "a");
	store_image__name("/srv/app/main.py", name, sizeof name);
	snprintf(path, sizeof path, "%s/%s", dir, name);
	snprintf(target, sizeof target, "%s/../elsewhere", dir);
	struct store_image im;

	/* A symbolic link where the image goes: never read through. */
	FILE *f = fopen(target, "w");
	cr_assert_not_null(f);
	fputs("x", f);
	fclose(f);
	cr_assert_eq(symlink(target, path), 0);
	cr_assert_eq(store_image__read(dir, name, &im), -EPERM);
	/* ... and written over by rename, never through. */
	const uint8_t data[] = "ok";
	cr_assert_eq(store_image__write(dir, name, h, data, sizeof data), 0);
	struct stat st;
	cr_assert_eq(lstat(path, &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	f = fopen(target, "r");
	cr_assert_eq(fgetc(f), 'x', "the link's target is untouched");
	fclose(f);

	/* Writable by others: refused. */
	cr_assert_eq(chmod(path, 0666), 0);
	cr_assert_eq(store_image__read(dir, name, &im), -EPERM);
	cr_assert_eq(chmod(path, 0600), 0);
	cr_assert_eq(store_image__read(dir, name, &im), 0);
	store_image__free(&im);
	rm_tree(dir);
}
