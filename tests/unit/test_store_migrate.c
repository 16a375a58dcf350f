/* Format versions of the index (docs/formats/store.md): a version 1 index,
 * as the release before consumer tokens wrote it, loads with each
 * patch's consumer_kind derived from its consumer text, is left as it is
 * until something changes the store, and is then written as version 2; a
 * version 2 index round-trips byte for byte. */
#include "test_store_util.h"
#include "store/store-priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* tests/fixtures/store/index-v1.json: patch name, its consumer text, the
 * token a version 2 reader must derive (NULL: no consumer). */
static const struct {
	const char *name, *consumer, *kind;
} v1_patches[] = {
	{ "p1", "store timeout", "store" },
	{ "p2", "store attribute .name", "store-attr" },
	{ "p3", "store item", "store-item" },
	{ "p4", "return", "return" },
	{ "p5", "yield", "yield" },
	{ "p6", "call argument", "call-arg" },
	{ "p7", "expression statement", "discard" },
	{ "p8", "for loop (skipped)", "for-loop" },
	{ "p9", "unpacking assignment", "unpack" },
	{ "p10", "none (the store is skipped)", "skipped" },
	{ "p11", "none (the delete is skipped)", "skipped" },
	{ "p12", "the instruction's own consumer", "helper" },
	{ "p13", "BUILD_LIST", "build" },
	{ "p14", "COMPARE_OP", "compare" },
	{ "p15", "IS_OP", "identity" },
	{ "p16", "CONTAINS_OP", "opcode" },
	{ "p17", NULL, NULL },
	{ "p18", "argument", "call-arg" },
	{ "p19", "operand", "helper" },
	{ "p20", "container", "build" },
	{ "p21", "compare (is / ==)", "compare" },
	{ "p22", "statement", "statement" },
	{ "p23", "something else entirely", "unknown" },
};
#define NV1 (sizeof(v1_patches) / sizeof(v1_patches[0]))

/* A store whose index.json is the v1 fixture. */
static void v1_store(char *dir, size_t size, char *index, size_t isize)
{
	const char *root = getenv("SUTURE_ROOT");
	char path[512];
	size_t len;
	char *text;

	snprintf(path, sizeof(path), "%s/tests/fixtures/store/index-v1.json", root ? root : ".");
	cr_assert_not_null(text = read_file(path, &len), "no fixture %s", path);
	tmp_store(dir, size);
	cr_assert_eq(mkdir(dir, 0700), 0);
	snprintf(index, isize, "%s/index.json", dir);
	write_file(index, text, len);
	free(text);
}

static void assert_v1_tokens(const struct store *s)
{
	cr_assert_eq(store__count(s), NV1);
	for (size_t i = 0; i < NV1; i++) {
		const struct store_patch *p = store__find(s, v1_patches[i].name);

		cr_assert_not_null(p, "%s", v1_patches[i].name);
		if (!v1_patches[i].consumer) {
			cr_assert_null(p->consumer, "%s", p->name);
			cr_assert_null(p->consumer_kind, "%s", p->name);
			continue;
		}
		cr_assert_str_eq(p->consumer, v1_patches[i].consumer, "%s", p->name);
		cr_assert_not_null(p->consumer_kind, "%s", p->name);
		cr_assert_str_eq(p->consumer_kind, v1_patches[i].kind, "%s: \"%s\"", p->name,
				 p->consumer);
	}
}

Test(store_migrate, v1_index_loads_with_derived_tokens)
{
	char dir[256], index[300];
	struct store *s;
	const struct store_patch *p;
	size_t before_len, after_len;
	char *before, *after;

	v1_store(dir, sizeof(dir), index, sizeof(index));
	before = read_file(index, &before_len);
	cr_assert_eq(open_capturing(dir, STORE_F_RDONLY, &s), 0, "%s", last_msg);
	assert_v1_tokens(s);
	/* The other fields come through unchanged. */
	cr_assert_not_null(p = store__find(s, "p23"));
	cr_assert_str_eq(p->guard, "key_guard");
	cr_assert_eq(p->line, 33);
	cr_assert_eq(p->anchor_offset, 46);
	cr_assert_str_eq(p->anchor_window, "fnv64:0000000000000017");
	cr_assert_eq(p->hits, 3);
	cr_assert_eq(p->status, STORE_STATUS_STALE);
	cr_assert_str_eq(p->stale_reason, "code_id differs");
	cr_assert_null(p->placement);
	cr_assert_str_eq(store__find(s, "p12")->placement, "redirect");
	store__close(s);
	/* Reading migrates in memory only: the file is as it was. */
	after = read_file(index, &after_len);
	cr_assert_eq(after_len, before_len);
	cr_assert(memcmp(after, before, before_len) == 0, "a read rewrote the v1 index");
	free(before);
	free(after);
	rm_tree(dir);
}

Test(store_migrate, first_change_writes_version_2)
{
	char dir[256], index[300];
	struct store *s;
	size_t len;
	char *text;

	v1_store(dir, sizeof(dir), index, sizeof(index));
	cr_assert_eq(open_capturing(dir, 0, &s), 0, "%s", last_msg);
	cr_assert_eq(store__record_hit(s, "p1", 1764000000), 0, "%s", last_msg);
	store__close(s);
	text = read_file(index, &len);
	cr_assert_not_null(strstr(text, "\"version\":\t2,"), "%.*s", 80, text);
	cr_assert_not_null(strstr(text, "\"consumer_kind\":\t\"call-arg\""));
	free(text);
	cr_assert_eq(open_capturing(dir, STORE_F_RDONLY, &s), 0, "%s", last_msg);
	assert_v1_tokens(s);
	cr_assert_eq(store__find(s, "p1")->hits, 1);
	store__close(s);
	rm_tree(dir);
}

Test(store_migrate, version_2_round_trips)
{
	char dir[256], index[300];
	struct store_patch a = full_patch("a"), b = full_patch("b"), c = full_patch("c");
	struct store_index idx = { 0 };
	struct store *s;
	char *first, *second;
	size_t len1, len2;

	tmp_store(dir, sizeof(dir));
	/* A token given with the text is kept as given; a text alone gets
	 * the token it names; neither stays null. */
	a.consumer = "store timeout";
	a.consumer_kind = "store";
	b.consumer = "call argument";
	b.consumer_kind = NULL;
	c.consumer = NULL;
	c.consumer_kind = NULL;
	cr_assert_eq(open_capturing(dir, STORE_F_CREATE, &s), 0, "%s", last_msg);
	cr_assert_eq(store__add(s, &a), 0, "%s", last_msg);
	cr_assert_eq(store__add(s, &b), 0, "%s", last_msg);
	cr_assert_eq(store__add(s, &c), 0, "%s", last_msg);
	a.name = "bad";
	a.consumer_kind = "returns";
	cr_assert_eq(store__add(s, &a), -EINVAL);
	cr_assert(strstr(last_msg, "consumer_kind: unknown token \"returns\""), "%s", last_msg);
	a.consumer_kind = "store";
	a.consumer = NULL;
	cr_assert_eq(store__add(s, &a), -EINVAL);
	cr_assert(strstr(last_msg, "consumer_kind: given without a consumer"), "%s", last_msg);
	store__close(s);

	cr_assert_eq(open_capturing(dir, STORE_F_RDONLY, &s), 0, "%s", last_msg);
	cr_assert_str_eq(store__find(s, "a")->consumer_kind, "store");
	cr_assert_str_eq(store__find(s, "b")->consumer_kind, "call-arg");
	cr_assert_null(store__find(s, "c")->consumer_kind);
	store__close(s);

	/* Bytes: what was written parses and serializes to the same bytes. */
	snprintf(index, sizeof(index), "%s/index.json", dir);
	first = read_file(index, &len1);
	cr_assert_eq(store_index__parse(first, first + len1, &idx, last_msg, sizeof(last_msg)), 0,
		     "%s", last_msg);
	second = store_index__serialize(&idx, &len2);
	cr_assert_not_null(second);
	cr_assert_eq(len2, len1);
	cr_assert(memcmp(first, second, len1) == 0, "re-serialized index differs");
	store_index__free(&idx);
	free(first);
	free(second);
	rm_tree(dir);
}

/* Each version has exactly its own keys. */
Test(store_migrate, keys_per_version)
{
	static const char v1_with_kind[] =
		"{\"format\": \"suture-store\", \"version\": 1, \"patches\": [{\"consumer_kind\": "
		"\"store\"}]}";
	struct store_index idx = { 0 };
	struct store_patch p = full_patch("a");
	char err[STORE_ERR_MAX], *text, *at;
	size_t len;

	cr_assert_eq(store_index__parse(v1_with_kind, v1_with_kind + strlen(v1_with_kind), &idx,
					err, sizeof(err)),
		     -EBADMSG);
	cr_assert(strstr(err, "patches[0]: unknown field \"consumer_kind\""), "%s", err);
	/* Version 2 without the key. */
	cr_assert_eq(store_index__put(&idx, &p), 0);
	text = store_index__serialize(&idx, &len);
	store_index__free(&idx);
	cr_assert_not_null(at = strstr(text, "\t\t\t\"consumer_kind\":\t\"store\",\n"));
	memmove(at, at + strlen("\t\t\t\"consumer_kind\":\t\"store\",\n"),
		strlen(at + strlen("\t\t\t\"consumer_kind\":\t\"store\",\n")) + 1);
	cr_assert_eq(store_index__parse(text, text + strlen(text), &idx, err, sizeof(err)),
		     -EBADMSG);
	cr_assert(strstr(err, "patches[0].consumer_kind: missing"), "%s", err);
	free(text);
}
