/* The store's index: every field survives a round trip; corrupt, truncated,
 * foreign and future-version indexes are refused with a message naming the
 * file and the cause, and the file is left byte for byte as it was. */
#include "test_store_util.h"
#include "store/store-priv.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void assert_same(const struct store_patch *a, const struct store_patch *b)
{
	cr_assert_str_eq(a->name, b->name);
	cr_assert_str_eq(a->guard, b->guard);
	cr_assert_str_eq(a->module, b->module);
	cr_assert_str_eq(a->qualname, b->qualname);
	cr_assert_str_eq(a->file, b->file);
	cr_assert_eq(a->first_line, b->first_line);
	cr_assert_eq(a->line, b->line);
	cr_assert_str_eq(a->target, b->target);
	cr_assert_str_eq(a->fallback, b->fallback);
	if (a->consumer || b->consumer)
		cr_assert_str_eq(a->consumer, b->consumer);
	if (a->consumer_kind || b->consumer_kind)
		cr_assert_str_eq(a->consumer_kind, b->consumer_kind);
	if (a->placement || b->placement)
		cr_assert_str_eq(a->placement, b->placement);
	cr_assert_eq(a->anchor_offset, b->anchor_offset);
	cr_assert_str_eq(a->anchor_window, b->anchor_window);
	cr_assert_str_eq(a->code_id, b->code_id);
	cr_assert_str_eq(a->program, b->program);
	cr_assert_str_eq(a->python_version, b->python_version);
	if (a->build_id || b->build_id)
		cr_assert_str_eq(a->build_id, b->build_id);
	cr_assert_eq(a->created, b->created);
	cr_assert_eq(a->ttl_days, b->ttl_days);
	cr_assert_eq(a->hits, b->hits);
	cr_assert_eq(a->last_hit, b->last_hit);
	cr_assert_eq(a->status, b->status);
	if (a->stale_reason || b->stale_reason)
		cr_assert_str_eq(a->stale_reason, b->stale_reason);
}

Test(store_index, every_field_round_trips_through_disk)
{
	char dir[256];
	struct store_patch a = full_patch("app.config.Loader.load:47:key_guard");
	struct store_patch b = full_patch("b");
	struct store *s;
	const struct store_patch *got;

	tmp_store(dir, sizeof(dir));
	/* b: the other half of each optional field, and non-ASCII text. */
	b.guard = "str_coerce_guard";
	b.consumer = NULL;
	b.consumer_kind = NULL;
	b.placement = NULL;
	b.build_id = NULL;
	b.last_hit = 0;
	b.hits = STORE_HITS_MAX;
	b.status = STORE_STATUS_STALE;
	b.stale_reason = "code_id differs: café \"quoted\"\ttab";
	b.target = "'total: ' + n";
	b.anchor_offset = 0;
	b.ttl_days = STORE_MAX_TTL_DAYS;
	cr_assert_eq(open_capturing(dir, STORE_F_CREATE, &s), 0, "%s", last_msg);
	cr_assert_eq(store__add(s, &a), 0, "%s", last_msg);
	cr_assert_eq(store__add(s, &b), 0, "%s", last_msg);
	store__close(s);

	cr_assert_eq(open_capturing(dir, STORE_F_RDONLY, &s), 0, "%s", last_msg);
	cr_assert_eq(store__count(s), 2);
	cr_assert_not_null(got = store__find(s, a.name));
	assert_same(got, &a);
	cr_assert_not_null(got = store__find(s, "b"));
	assert_same(got, &b);
	cr_assert_null(store__find(s, "c"));
	cr_assert_eq(errno, ENOENT);
	store__close(s);
	rm_tree(dir);
}

/* The encoder writes the text itself: it must be byte for byte what
 * cJSON_Print gives for the same document (docs/formats/store.md). */
static void assert_cjson_form(const struct store_index *idx)
{
	size_t len;
	char *text = store_index__serialize(idx, &len);
	cr_assert_not_null(text);
	cr_assert_eq(strlen(text), len);
	cr_assert_eq(text[len - 1], '\n');
	cJSON *tree = cJSON_Parse(text);
	cr_assert_not_null(tree, "the encoder's text is not JSON: %s", text);
	char *ref = cJSON_Print(tree);
	cr_assert_not_null(ref);
	text[len - 1] = '\0';
	cr_assert_str_eq(text, ref);
	free(ref);
	cJSON_Delete(tree);
	free(text);
}

Test(store_index, encoder_writes_what_cjson_prints)
{
	struct store_index idx = { 0 };
	struct store_patch a = full_patch("app.config.Loader.load:47:key_guard");
	struct store_patch b = full_patch("b");

	assert_cjson_form(&idx); /* no patches: "patches": [] */
	b.consumer = NULL;
	b.consumer_kind = NULL;
	b.build_id = NULL;
	b.last_hit = 0;
	b.hits = STORE_HITS_MAX;
	b.status = STORE_STATUS_STALE;
	b.stale_reason = "back\\slash \"quoted\"\ttab caf\u00e9 \x01\x1f\b\f\n\r /";
	b.target = "d[\"k\"] + '\\'";
	b.anchor_offset = 0;
	b.ttl_days = STORE_MAX_TTL_DAYS;
	cr_assert_eq(store_index__put(&idx, &a), 0);
	cr_assert_eq(store_index__put(&idx, &b), 0);
	assert_cjson_form(&idx);
	store_index__free(&idx);
}

Test(store_index, defaults_fill_created_and_ttl)
{
	char dir[256];
	struct store_patch a = full_patch("a");
	struct store *s;
	int64_t before = store__now();

	tmp_store(dir, sizeof(dir));
	a.created = 0;
	a.ttl_days = 0;
	cr_assert_eq(open_capturing(dir, STORE_F_CREATE, &s), 0);
	cr_assert_eq(store__add(s, &a), 0);
	cr_assert_geq(store__find(s, "a")->created, before);
	cr_assert_leq(store__find(s, "a")->created, store__now());
	cr_assert_eq(store__find(s, "a")->ttl_days, STORE_DEFAULT_TTL_DAYS);
	store__close(s);
	rm_tree(dir);
}

Test(store_index, add_replaces_by_name)
{
	char dir[256];
	struct store_patch a = full_patch("a");
	struct store *s;

	tmp_store(dir, sizeof(dir));
	cr_assert_eq(open_capturing(dir, STORE_F_CREATE, &s), 0);
	cr_assert_eq(store__add(s, &a), 0);
	a.fallback = "60";
	cr_assert_eq(store__add(s, &a), 0);
	cr_assert_eq(store__count(s), 1);
	cr_assert_str_eq(store__find(s, "a")->fallback, "60");
	store__close(s);
	rm_tree(dir);
}

Test(store_index, invalid_patches_are_refused)
{
	char dir[256];
	struct store *s;
	struct store_patch p;

	tmp_store(dir, sizeof(dir));
	cr_assert_eq(open_capturing(dir, STORE_F_CREATE, &s), 0);
	p = full_patch("has space");
	cr_assert_eq(store__add(s, &p), -EINVAL);
	cr_assert(strstr(last_msg, "name: contains a space"), "%s", last_msg);
	p = full_patch("a");
	p.guard = "magic_guard";
	cr_assert_eq(store__add(s, &p), -EINVAL);
	cr_assert(strstr(last_msg, ": patch \"a\": guard: unknown kind \"magic_guard\""), "%s",
		  last_msg);
	p = full_patch("a");
	p.line = 0;
	cr_assert_eq(store__add(s, &p), -EINVAL);
	p = full_patch("a");
	p.code_id = NULL;
	cr_assert_eq(store__add(s, &p), -EINVAL);
	cr_assert(strstr(last_msg, "code_id: missing"), "%s", last_msg);
	p = full_patch("a");
	p.target = "\xff\xfe";
	cr_assert_eq(store__add(s, &p), -EINVAL);
	cr_assert(strstr(last_msg, "target: is not valid UTF-8"), "%s", last_msg);
	p = full_patch("a");
	p.fallback = "a\nb";
	cr_assert_eq(store__add(s, &p), -EINVAL);
	p = full_patch("a");
	p.placement = "anywhere";
	cr_assert_eq(store__add(s, &p), -EINVAL);
	cr_assert(strstr(last_msg, "placement: must be"), "%s", last_msg);
	p = full_patch("a");
	p.status = STORE_STATUS_EXPIRED;
	cr_assert_eq(store__add(s, &p), -EINVAL);
	p = full_patch("a");
	p.ttl_days = STORE_MAX_TTL_DAYS + 1;
	cr_assert_eq(store__add(s, &p), -EINVAL);
	cr_assert_eq(store__count(s), 0);
	store__close(s);
	rm_tree(dir);
}

Test(store_index, guard_kinds)
{
	/* The ten kinds of docs/formats/store.md, by name: the store takes
	 * them from rewrite/'s table, which must still have every one. */
	static const char *const kinds[] = {
		"null_guard",      "index_guard",           "key_guard",
		"subscript_guard", "chain_subscript_guard", "type_coercion_guard",
		"division_guard",  "str_coerce_guard",      "file_guard",
		"callable_guard",
	};
	for (size_t i = 0; i < 10; i++)
		cr_assert(store_guard__valid(kinds[i]), "%s", kinds[i]);
	cr_assert_not(store_guard__valid("key"));
	cr_assert_not(store_guard__valid("none"));
	cr_assert_not(store_guard__valid("probe"));
	cr_assert_not(store_guard__valid(NULL));
	cr_assert(store_consumer__valid("call-arg"));
	cr_assert_not(store_consumer__valid("call argument"));
	cr_assert_not(store_consumer__valid(NULL));
}

Test(store_index, time_text)
{
	char buf[32];
	int64_t t;

	cr_assert_eq(store__format_time(1763700000, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "2025-11-21T04:40:00Z");
	cr_assert_eq(store__parse_time(buf, &t), 0);
	cr_assert_eq(t, 1763700000);
	cr_assert_eq(store__parse_time("2026-02-30T00:00:00Z", &t), -EINVAL);
	cr_assert_eq(store__parse_time("2026-01-01 00:00:00Z", &t), -EINVAL);
	cr_assert_eq(store__parse_time("2026-01-01T00:00:00", &t), -EINVAL);
	cr_assert_eq(store__parse_time("2026-01-01T24:00:00Z", &t), -EINVAL);
	cr_assert_eq(store__format_time(0, buf, 10), -ERANGE);
}

/* The parser is arithmetic; the reference is what it replaced: timegm(),
 * then the value must format back to the same text (store__format_time).
 * Every day from 1969-12-28 to 2101-01-03 at a moving time of day, the
 * last representable second, and texts each refuses: the same answers. */
static int parse_time_ref(const char *text, int64_t *out)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
	char back[32];
	struct tm tm;
	if (strlen(text) != sizeof(shape) - 1)
		return -EINVAL;
	for (size_t i = 0; shape[i]; i++)
		if (shape[i] == 'd' ? (text[i] < '0' || text[i] > '9') : text[i] != shape[i])
			return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = atoi(text) - 1900;
	tm.tm_mon = atoi(text + 5) - 1;
	tm.tm_mday = atoi(text + 8);
	tm.tm_hour = atoi(text + 11);
	tm.tm_min = atoi(text + 14);
	tm.tm_sec = atoi(text + 17);
	time_t t = timegm(&tm);
	if (t == (time_t)-1 || store__format_time(t, back, sizeof(back)) < 0 ||
	    strcmp(back, text) != 0)
		return -EINVAL;
	*out = (int64_t)t;
	return 0;
}

static void same_answer(const char *text)
{
	int64_t a = -1, b = -1;
	int ra = store__parse_time(text, &a), rb = parse_time_ref(text, &b);
	cr_assert_eq(ra, rb, "%s: %d against %d", text, ra, rb);
	if (ra == 0)
		cr_assert_eq(a, b, "%s: %lld against %lld", text, (long long)a, (long long)b);
}

Test(store_index, time_parse_matches_timegm)
{
	char buf[64];
	unsigned k = 0;
	for (int64_t day = -4; day < 47500; day++, k += 7919) {
		int64_t t = day * 86400 + (int64_t)(k % 86400);
		struct tm tm;
		time_t tt = (time_t)t;
		cr_assert(gmtime_r(&tt, &tm));
		snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		same_answer(buf);
	}
	static const char *const texts[] = {
		"9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
		"2000-02-29T12:00:00Z", "2100-02-29T12:00:00Z", "1900-02-29T00:00:00Z",
		"2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
		"2026-00-10T00:00:00Z", "2026-13-10T00:00:00Z", "2026-01-00T00:00:00Z",
		"2026-01-32T00:00:00Z", "2026-01-01T23:60:00Z", "2026-01-01T23:59:60Z",
		"2026-01-01T24:00:00Z", "0000-01-01T00:00:00Z", "2026-1-01T00:00:00Z",
		"2026-01-01T00:00:00z", "2026-01-01T00:00:0aZ", "",
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(*texts); i++)
		same_answer(texts[i]);
}

Test(store_index, default_name)
{
	struct store_patch p = full_patch("x");
	char buf[64];

	cr_assert_eq(store_patch__default_name(&p, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "app.config.Loader.load.<locals>.get:47:key_guard");
	cr_assert_eq(store_patch__default_name(&p, buf, 10), -ENAMETOOLONG);
	p.qualname = "a b";
	cr_assert_eq(store_patch__default_name(&p, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "app.config.a_b:47:key_guard");
}

/* ---- corrupt indexes ---------------------------------------------------------- */

static const char good_prefix[] = "{\"format\": \"suture-store\", \"version\": 2, \"patches\": [";

/* Write text as the index of a fresh store, try to open it, and check the
 * error, the message and that the file is byte-identical afterwards. */
static void expect_refused(const char *text, size_t len, const char *cause)
{
	char dir[256], index[300];
	struct store_patch p = full_patch("a");
	struct store *s = NULL;
	size_t after_len;
	char *after;
	int r;

	tmp_store(dir, sizeof(dir));
	cr_assert_eq(mkdir(dir, 0700), 0);
	snprintf(index, sizeof(index), "%s/index.json", dir);
	write_file(index, text, len);
	r = open_capturing(dir, STORE_F_CREATE, &s);
	cr_assert_eq(r, -EBADMSG, "open gave %d for %s", r, cause);
	cr_assert_null(s);
	cr_assert(strncmp(last_msg, "store: ", 7) == 0, "%s", last_msg);
	cr_assert(strstr(last_msg, index), "message does not name the file: %s", last_msg);
	cr_assert(strstr(last_msg, cause), "expected \"%s\" in: %s", cause, last_msg);
	cr_assert(strstr(last_msg, "move it aside"), "%s", last_msg);
	after = read_file(index, &after_len);
	cr_assert_eq(after_len, len);
	cr_assert(memcmp(after, text, len) == 0, "the index was modified");
	free(after);
	(void)p;
	rm_tree(dir);
}

Test(store_corrupt, truncated)
{
	char dir[256], index[300];
	struct store_patch p = full_patch("a");
	struct store *s;
	size_t len;
	char *text;

	/* A real index cut at every tenth byte. */
	tmp_store(dir, sizeof(dir));
	cr_assert_eq(open_capturing(dir, STORE_F_CREATE, &s), 0);
	cr_assert_eq(store__add(s, &p), 0);
	store__close(s);
	snprintf(index, sizeof(index), "%s/index.json", dir);
	text = read_file(index, &len);
	rm_tree(dir);
	for (size_t cut = 1; cut < len - 2; cut += 10)
		expect_refused(text, cut, cut < len ? "" : "x");
	expect_refused(text, len - 3, "unexpected end of file (truncated?)");
	free(text);
}

Test(store_corrupt, empty_file)
{
	expect_refused("", 0, "empty file (truncated?)");
}

Test(store_corrupt, not_json)
{
	expect_refused("hello\nworld\n", 12, "line 1, column 1: invalid JSON");
	expect_refused("{\"format\": \"suture-store\",\n  oops}", 34, "line 2, column ");
	expect_refused("{} {}", 5, "data after the JSON value");
	expect_refused("{\"a\":\0}", 7, "NUL byte");
}

Test(store_corrupt, foreign_json)
{
	expect_refused("[1, 2, 3]", 9, "expected a JSON object at the top level");
	expect_refused("{\"patches\": []}", 15, "not a suture store index");
	expect_refused("{\"format\": \"other\", \"version\": 1, \"patches\": []}", 48,
		       "not a suture store index");
}

Test(store_corrupt, wrong_version)
{
	const char *v2 =
		"{\"format\": \"suture-store\", \"version\": 2, \"patches\": [], \"new\": 1}";
	const char *vs = "{\"format\": \"suture-store\", \"version\": \"1\", \"patches\": []}";

	const char *v0 = "{\"format\": \"suture-store\", \"version\": 0, \"patches\": []}";
	const char *v3 =
		"{\"format\": \"suture-store\", \"version\": 3, \"patches\": [], \"new\": 1}";
	const char *vf = "{\"format\": \"suture-store\", \"version\": 1.5, \"patches\": []}";

	expect_refused(v3, strlen(v3),
		       "format version 3 is not supported (this suture reads "
		       "versions 1 to 2)");
	expect_refused(v0, strlen(v0), "format version 0 is not supported");
	expect_refused(vf, strlen(vf), "format version 1.5 is not supported");
	expect_refused(v2, strlen(v2), "unknown field \"new\" at the top level");
	expect_refused(vs, strlen(vs), "\"version\": expected an integer");
}

Test(store_corrupt, top_level_shape)
{
	const char *a = "{\"format\": \"suture-store\", \"version\": 1}";
	const char *b = "{\"format\": \"suture-store\", \"version\": 1, \"patches\": {}}";
	const char *c = "{\"format\": \"suture-store\", \"version\": 1, \"patches\": [], \"x\": 1}";
	const char *d =
		"{\"format\": \"suture-store\", \"version\": 1, \"patches\": [], \"patches\": []}";

	expect_refused(a, strlen(a), "\"patches\": missing");
	expect_refused(b, strlen(b), "\"patches\": expected an array");
	expect_refused(c, strlen(c), "unknown field \"x\" at the top level");
	expect_refused(d, strlen(d), "duplicate field \"patches\"");
}

/* A valid patch object with one field's value replaced (or removed: NULL). */
static void expect_field_refused(const char *field, const char *value, const char *cause)
{
	struct store_index idx = { 0 };
	struct store_patch p = full_patch("a");
	char *text, *buf, key[64];
	char *at, *val_end;
	size_t len;

	cr_assert_eq(store_index__put(&idx, &p), 0);
	text = store_index__serialize(&idx, &len);
	store_index__free(&idx);
	snprintf(key, sizeof(key), "\"%s\":", field);
	cr_assert_not_null(at = strstr(text, key), "%s", field);
	val_end = strpbrk(at + strlen(key), ",\n");
	cr_assert_not_null(val_end);
	if (*val_end == ',')
		val_end++;
	buf = malloc(len + 256);
	if (value)
		snprintf(buf, len + 256, "%.*s%s%s", (int)(at - text + strlen(key)), text, value,
			 val_end[-1] == ',' ? val_end - 1 : val_end);
	else
		snprintf(buf, len + 256, "%.*s%s", (int)(at - text), text, val_end);
	expect_refused(buf, strlen(buf), cause);
	free(buf);
	free(text);
}

Test(store_corrupt, wrong_types)
{
	expect_field_refused("line", "\"47\"", "patches[0].line: expected an integer >= 1");
	expect_field_refused("line", "4.5", "patches[0].line: expected an integer >= 1");
	expect_field_refused("first_line", "0", "patches[0].first_line: expected an integer >= 1");
	expect_field_refused("hits", "-1", "patches[0].hits: expected an integer >= 0");
	expect_field_refused("hits", "1e300", "patches[0].hits: expected an integer >= 0");
	expect_field_refused("name", "7", "patches[0].name: expected a string");
	expect_field_refused("guard", "\"frob\"", "patches[0].guard: unknown kind \"frob\"");
	expect_field_refused("created", "1763700000", "patches[0].created: expected a UTC time");
	expect_field_refused("created", "\"yesterday\"", "patches[0].created: expected a UTC time");
	expect_field_refused("ttl_days", "0", "patches[0].ttl_days: expected an integer from 1");
	expect_field_refused("status", "\"expired\"",
			     "patches[0].status: expected \"active\" or \"stale\"");
	expect_field_refused("target", "\"\"", "patches[0].target: is empty");
	expect_field_refused("consumer", "[]", "patches[0].consumer: expected a string");
	expect_field_refused("placement", "\"inline\"", "patches[0].placement: expected \"value\"");
	expect_field_refused("consumer_kind", "\"frob\"",
			     "patches[0].consumer_kind: unknown token \"frob\"");
	expect_field_refused("consumer_kind", "7", "patches[0].consumer_kind: expected a string");
	expect_field_refused("consumer", "null",
			     "patches[0].consumer_kind: given without a consumer");
	expect_field_refused("code_id", NULL, "patches[0].code_id: missing");
	expect_field_refused("fallback", "\"a\\u0001b\"",
			     "patches[0].fallback: contains a control character");
}

Test(store_corrupt, patch_shape)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "%s 5]}", good_prefix);
	expect_refused(buf, strlen(buf), "patches[0]: expected an object");
	snprintf(buf, sizeof(buf), "%s {\"bogus\": 1}]}", good_prefix);
	expect_refused(buf, strlen(buf), "patches[0]: unknown field \"bogus\"");
	snprintf(buf, sizeof(buf), "%s {\"name\": \"a\", \"name\": \"a\"}]}", good_prefix);
	expect_refused(buf, strlen(buf), "patches[0]: duplicate field \"name\"");
}

Test(store_corrupt, duplicate_names)
{
	struct store_index idx = { 0 };
	struct store_patch p = full_patch("a");
	char *text, *dup, *first, *second;
	size_t len;

	cr_assert_eq(store_index__put(&idx, &p), 0);
	text = store_index__serialize(&idx, &len);
	store_index__free(&idx);
	/* [{...}] -> [{...}, {...}] */
	first = strchr(text, '[');
	second = strrchr(text, ']');
	dup = malloc(2 * len + 8);
	snprintf(dup, 2 * len + 8, "%.*s, %.*s", (int)(second - text), text,
		 (int)(len - (size_t)(first + 1 - text)), first + 1);
	expect_refused(dup, strlen(dup), "patches[1].name: \"a\" appears twice");
	free(dup);
	free(text);
}

Test(store_corrupt, writes_refused_while_corrupt)
{
	char dir[256], index[300];
	struct store_patch p = full_patch("a");
	struct store *s;
	static const char junk[] = "{\"format\": \"suture-store\", \"version\": 1, \"patches\": [";
	size_t len;
	char *after;

	/* The store was fine when opened, then the index broke: every change
	 * re-reads under the lock, so it must fail and leave the file alone. */
	tmp_store(dir, sizeof(dir));
	cr_assert_eq(open_capturing(dir, STORE_F_CREATE, &s), 0);
	cr_assert_eq(store__add(s, &p), 0);
	snprintf(index, sizeof(index), "%s/index.json", dir);
	write_file(index, junk, strlen(junk));
	p.name = "b";
	cr_assert_eq(store__add(s, &p), -EBADMSG);
	cr_assert(strstr(last_msg, "truncated?"), "%s", last_msg);
	cr_assert_eq(store__remove(s, "a"), -EBADMSG);
	cr_assert_eq(store__record_hit(s, "a", 1), -EBADMSG);
	cr_assert_eq(store__mark_stale(s, "a", NULL), -EBADMSG);
	cr_assert_eq(store__remove_all(s, NULL), -EBADMSG);
	after = read_file(index, &len);
	cr_assert_eq(len, strlen(junk));
	cr_assert(memcmp(after, junk, len) == 0);
	free(after);
	/* The handle keeps its last good view. */
	cr_assert_eq(store__count(s), 1);
	store__close(s);
	rm_tree(dir);
}

Test(store_corrupt, parse_never_reads_past_end)
{
	struct store_index idx;
	char err[256];
	/* Not NUL terminated: the parser must stop at end. */
	char buf[] = { '{', '"', 'f', 'o', 'r', 'm' };

	cr_assert_eq(store_index__parse(buf, buf + sizeof(buf), &idx, err, sizeof(err)), -EBADMSG);
	cr_assert_eq(idx.n, 0);
}

/* Handled crashes: stored, merged per (program, site, type), kept by
 * remove_all, round-trip; an index without any is written as before. */
Test(store_handled, add_merge_round_trip)
{
	char dir[256];
	struct store *s;
	struct store_patch p = full_patch("a");
	struct store_handled v[] = {
		{ "/srv/job.py", "__main__.work:29", "KeyError", 3, 1763710000 },
		{ "/srv/job.py", "__main__.work:29", "KeyError", 2, 1763710100 },
		{ "/srv/job.py", "__main__.work:29", "IndexError", 1, 1763710000 },
	};
	tmp_store(dir, sizeof(dir));
	cr_assert_eq(open_capturing(dir, STORE_F_CREATE, &s), 0);
	cr_assert_eq(store__add(s, &p), 0);
	cr_assert_eq(store__add_handled(s, v, 3, NULL), 0, "%s", last_msg);
	cr_assert_eq(store__handled_count(s), 2);
	const struct store_handled *e = store__handled_at(s, 0);
	cr_assert_str_eq(e->site, "__main__.work:29");
	cr_assert_eq(e->count, 5);
	cr_assert_eq(e->last_seen, 1763710100);
	size_t removed;
	cr_assert_eq(store__remove_all(s, &removed), 0);
	store__close(s);
	cr_assert_eq(open_capturing(dir, 0, &s), 0, "%s", last_msg);
	cr_assert_eq(store__count(s), 0);
	cr_assert_eq(store__handled_count(s), 2);
	cr_assert_eq(store__handled_at(s, 1)->count, 1);
	cr_assert_str_eq(store__handled_at(s, 1)->exc_type, "IndexError");
	/* Invalid entries are refused whole. */
	struct store_handled bad[] = {
		{ "/srv/job.py", "a site", "KeyError", 1, 1 },
		{ "/srv/job.py", "m.f:1", "KeyError", 0, 1 },
		{ "", "m.f:1", "KeyError", 1, 1 },
	};
	for (size_t i = 0; i < 3; i++)
		cr_assert_eq(store__add_handled(s, &bad[i], 1, NULL), -EINVAL, "bad %zu", i);
	cr_assert_eq(store__handled_count(s), 2);
	store__close(s);
	rm_tree(dir);

	struct store_index idx = { 0 };
	size_t len;
	cr_assert_eq(store_index__put(&idx, &p), 0);
	char *text = store_index__serialize(&idx, &len);
	cr_assert_null(strstr(text, "handled"));
	free(text);
	store_index__free(&idx);
}

Test(store_handled, hostile_entries_are_refused)
{
	static const char *const bad[][2] = {
		{ "\"handled\": {}", "\"handled\": expected an array" },
		{ "\"handled\": [1]", "handled[0]: expected an object" },
		{ "\"handled\": [{\"program\": \"/p\", \"site\": \"m.f:1\", \"type\": \"KeyError\", "
		  "\"count\": 1, \"last_seen\": \"2026-01-01T00:00:00Z\", \"x\": 1}]",
		  "handled[0]: unknown field \"x\"" },
		{ "\"handled\": [{\"program\": \"/p\", \"site\": \"m f:1\", \"type\": \"KeyError\", "
		  "\"count\": 1, \"last_seen\": \"2026-01-01T00:00:00Z\"}]",
		  "handled[0].site: contains a space" },
		{ "\"handled\": [{\"program\": \"/p\", \"site\": \"m.f:1\", \"type\": \"KeyError\", "
		  "\"count\": 0, \"last_seen\": \"2026-01-01T00:00:00Z\"}]",
		  "handled[0].count" },
		{ "\"handled\": [{\"program\": \"/p\", \"site\": \"m.f:1\", \"type\": \"KeyError\", "
		  "\"count\": 1, \"last_seen\": \"yesterday\"}]",
		  "handled[0].last_seen" },
		{ "\"handled\": [{\"program\": \"/p\", \"site\": \"m.f:1\", \"type\": \"KeyError\", "
		  "\"count\": 1}]",
		  "handled[0].last_seen" },
		{ "\"handled\": [{\"program\": \"/p\", \"site\": \"m.f:1\", \"type\": \"KeyError\", "
		  "\"count\": 1, \"last_seen\": \"2026-01-01T00:00:00Z\"}, {\"program\": \"/p\", "
		  "\"site\": \"m.f:1\", \"type\": \"KeyError\", \"count\": 2, \"last_seen\": "
		  "\"2026-01-01T00:00:00Z\"}]",
		  "appears twice" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[1024];
		snprintf(text, sizeof(text),
			 "{\"format\": \"suture-store\", \"version\": 2, \"patches\": [], %s}",
			 bad[i][0]);
		expect_refused(text, strlen(text), bad[i][1]);
	}
}
