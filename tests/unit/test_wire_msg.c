/* wire/: channel wire forms (docs/formats/channel.md): every message
 * round-trips, and every decoder refuses truncation, trailing bytes, lying
 * counts and over-deep nesting. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/msg.h"

static const uint8_t *payload(const struct wire_buf *b, struct wire_hdr *h)
{
	cr_assert_eq(wire_msg__decode_hdr(b->data, b->data + b->len, h), 0);
	cr_assert_eq(h->len + WIRE_HDR_SIZE, b->len);
	return b->data + WIRE_HDR_SIZE;
}

Test(inject_msg, header_rejects_bad_frames)
{
	struct wire_hdr h;
	uint8_t ok[8] = { 4, 0, 0, 0, WIRE_MSG_PING, 0, 0, 0 };
	cr_assert_eq(wire_msg__decode_hdr(ok, ok + 8, &h), 0);
	cr_assert_eq(h.len, 4);
	cr_assert_eq(wire_msg__decode_hdr(ok, ok + 7, &h), -EINVAL);
	uint8_t reserved[8] = { 4, 0, 0, 0, WIRE_MSG_PING, 0, 1, 0 };
	cr_assert_eq(wire_msg__decode_hdr(reserved, reserved + 8, &h), -EINVAL);
	uint8_t type0[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
	cr_assert_eq(wire_msg__decode_hdr(type0, type0 + 8, &h), -EINVAL);
	uint8_t huge[8] = { 0, 0, 0, 0x10, WIRE_MSG_PATCH, 0, 0, 0 };
	cr_assert_eq(wire_msg__decode_hdr(huge, huge + 8, &h), -EINVAL);
}

Test(inject_msg, crash_roundtrip_and_truncation)
{
	struct wire_buf b = { 0 };
	struct wire_crash c = { .event_id = 7,
				.tid = 4242,
				.thread_ident = 99,
				.code_addr = 0x7f0000001000ull,
				.frame_addr = 0x7f0000002000ull,
				.offset = 16,
				.line = 52 };
	struct wire_crash d;
	struct wire_hdr h;
	strcpy(c.exc_type, "KeyError");
	strcpy(c.message, "'missing'");
	strcpy(c.filename, "/app/job.py");
	strcpy(c.qualname, "Job.run");
	cr_assert_eq(wire_msg__encode_crash(&b, &c), 0);
	const uint8_t *p = payload(&b, &h);
	cr_assert_eq(h.type, WIRE_MSG_CRASH);
	cr_assert_eq(wire_msg__decode_crash(p, p + h.len, &d), 0);
	cr_assert_eq(d.event_id, 7);
	cr_assert_eq(d.code_addr, c.code_addr);
	cr_assert_eq(d.offset, 16);
	cr_assert_str_eq(d.exc_type, "KeyError");
	cr_assert_str_eq(d.qualname, "Job.run");
	for (uint32_t cut = 0; cut < h.len; cut++)
		cr_assert_eq(wire_msg__decode_crash(p, p + cut, &d), -EINVAL, "cut %u", cut);
	wire_buf__free(&b);
}

Test(inject_msg, long_strings_are_truncated_not_overflowed)
{
	struct wire_buf b = { 0 };
	struct wire_hdr h;
	char text[1000];
	char out[16];
	memset(text, 'x', sizeof text - 1);
	text[sizeof text - 1] = 0;
	cr_assert_eq(wire_msg__encode_error(&b, text), 0);
	const uint8_t *p = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_error(p, p + h.len, out, sizeof out), 0);
	cr_assert_eq(strlen(out), sizeof out - 1);
	wire_buf__free(&b);
}

Test(inject_msg, patch_roundtrip_with_nested_constants)
{
	static const uint8_t code[] = { 151, 0, 100, 1, 83, 0 };
	static const uint8_t exc[] = { 0x80, 1, 2, 3 };
	struct wire_const items[2] = {
		{ .kind = WIRE_CONST_BUILTIN, .data = (const uint8_t *)"KeyError", .len = 8 },
		{ .kind = WIRE_CONST_INT, .i = -5 },
	};
	struct wire_const consts[4] = {
		{ .kind = WIRE_CONST_NONE },
		{ .kind = WIRE_CONST_TUPLE, .items = items, .nitems = 2 },
		{ .kind = WIRE_CONST_STR, .data = (const uint8_t *)"new", .len = 3 },
		{ .kind = WIRE_CONST_FLOAT, .f = 2.5 },
	};
	const char *names[2] = { "get", "suture_marker" };
	struct wire_patch m = { .request_id = 3,
				.code_addr = 0x1234,
				.stacksize = 4,
				.code = code,
				.code_len = sizeof code,
				.exctable = exc,
				.exctable_len = sizeof exc,
				.consts = consts,
				.nconsts = 4,
				.names = names,
				.nnames = 2 };
	struct wire_buf b = { 0 };
	struct wire_hdr h;
	struct wire_patch d;
	struct wire_const c;
	cr_assert_eq(wire_msg__encode_patch(&b, &m), 0);
	const uint8_t *p = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_patch(p, p + h.len, &d), 0);
	cr_assert_eq(d.code_addr, 0x1234);
	cr_assert_eq(d.code_len, sizeof code);
	cr_assert_eq(memcmp(d.code, code, sizeof code), 0);
	cr_assert_eq(d.linetable_len, 0);
	cr_assert_eq(d.nconsts, 4);

	struct wire_const_iter it;
	int kinds[] = { WIRE_CONST_NONE, WIRE_CONST_TUPLE, WIRE_CONST_BUILTIN,
			WIRE_CONST_INT,  WIRE_CONST_STR,   WIRE_CONST_FLOAT };
	wire_const_iter__init(&it, &d);
	for (int i = 0; i < 6; i++) {
		cr_assert_eq(wire_const_iter__next(&it, &c), 1);
		cr_assert_eq(c.kind, kinds[i], "item %d", i);
		if (c.kind == WIRE_CONST_TUPLE)
			cr_assert_eq(c.nitems, 2);
		if (c.kind == WIRE_CONST_INT)
			cr_assert_eq(c.i, -5);
		if (c.kind == WIRE_CONST_FLOAT)
			cr_assert_float_eq(c.f, 2.5, 0);
	}
	cr_assert_eq(wire_const_iter__next(&it, &c), 0);

	struct wire_name_iter ni;
	const uint8_t *s;
	size_t len;
	wire_name_iter__init(&ni, &d);
	cr_assert_eq(wire_name_iter__next(&ni, &s, &len), 1);
	cr_assert_eq(len, 3);
	cr_assert_eq(wire_name_iter__next(&ni, &s, &len), 1);
	cr_assert_eq(memcmp(s, "suture_marker", len), 0);
	cr_assert_eq(wire_name_iter__next(&ni, &s, &len), 0);

	for (uint32_t cut = 0; cut < h.len; cut++)
		cr_assert_eq(wire_msg__decode_patch(p, p + cut, &d), -EINVAL, "cut %u", cut);
	wire_buf__free(&b);
}

Test(inject_msg, patch_refuses_lies)
{
	struct wire_buf b = { 0 };
	struct wire_hdr h;
	struct wire_patch d;
	static const uint8_t odd[] = { 1, 2, 3 };
	struct wire_patch m = { .code = odd, .code_len = 3 };
	cr_assert_eq(wire_msg__encode_patch(&b, &m), 0);
	const uint8_t *p = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_patch(p, p + h.len, &d), -EINVAL, "odd co_code");
	wire_buf__free(&b);

	/* A tuple nested deeper than the limit is refused by the encoder. */
	struct wire_const chain[WIRE_MAX_CONST_DEPTH + 2];
	for (int i = 0; i < WIRE_MAX_CONST_DEPTH + 1; i++)
		chain[i] = (struct wire_const){ .kind = WIRE_CONST_TUPLE,
						.items = &chain[i + 1],
						.nitems = 1 };
	chain[WIRE_MAX_CONST_DEPTH + 1] = (struct wire_const){ .kind = WIRE_CONST_NONE };
	static const uint8_t code[] = { 9, 0 };
	struct wire_patch deep = { .code = code, .code_len = 2, .consts = chain, .nconsts = 1 };
	struct wire_buf b2 = { 0 };
	cr_assert_eq(wire_msg__encode_patch(&b2, &deep), -EINVAL);
	wire_buf__free(&b2);

	/* A constant count beyond the bytes present. */
	uint8_t raw[64] = { 0 };
	size_t at = 8 + 8 + 4 + 4;
	raw[at] = 2; /* code blob len 2 */
	at += 4 + 2;
	at += 4 + 4; /* empty exctable, linetable */
	raw[at] = 0xff;
	raw[at + 1] = 0xff; /* nconsts 65535 */
	at += 4;
	cr_assert_eq(wire_msg__decode_patch(raw, raw + at + 4, &d), -EINVAL);
}

Test(inject_msg, small_messages_roundtrip)
{
	struct wire_buf b = { 0 };
	struct wire_hdr h;
	struct wire_hello hello = { .version = WIRE_PROTO_VERSION,
				    .timeout_ms = 300,
				    .flags = WIRE_HELLO_F_HITS },
			  hello2;
	cr_assert_eq(wire_msg__encode_hello(&b, &hello), 0);
	const uint8_t *p = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_hello(p, p + h.len, &hello2), 0);
	cr_assert_eq(hello2.timeout_ms, 300);
	cr_assert_eq(hello2.flags, WIRE_HELLO_F_HITS);
	/* A version 1 HELLO (no flags) and unknown flags (16: the first one past
	 * WIRE_HELLO_F_TREE) are refused. */
	cr_assert_eq(wire_msg__decode_hello(p, p + 8, &hello2), -EINVAL);
	uint8_t bad[12] = { 2, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0 };
	cr_assert_eq(wire_msg__decode_hello(bad, bad + 12, &hello2), -EINVAL);
	/* The application-paths flag without its string. */
	bad[8] = 2;
	cr_assert_eq(wire_msg__decode_hello(bad, bad + 12, &hello2), -EINVAL);
	cr_assert_eq(wire_msg__decode_hello(p, p + h.len + 0, &hello2), 0);
	wire_buf__reset(&b);

	struct wire_welcome w = { WIRE_PROTO_VERSION, 42, 0x30b02f0, WIRE_WATCH_JUMP_ABS, "jump" },
			    w2;
	cr_assert_eq(wire_msg__encode_welcome(&b, &w), 0);
	p = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_welcome(p, p + h.len, &w2), 0);
	cr_assert_eq(w2.pid, 42);
	cr_assert_str_eq(w2.detail, "jump");
	wire_buf__reset(&b);

	struct wire_patch_result r = { 9, -2, 1, 2, 3, 0x8877665544332211ull, "no such code" }, r2;
	cr_assert_eq(wire_msg__encode_patch_result(&b, &r), 0);
	p = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_patch_result(p, p + h.len, &r2), 0);
	cr_assert_eq(r2.status, -2);
	cr_assert_eq(r2.nparents, 2);
	cr_assert_eq(r2.key, 0x8877665544332211ull, "the boot image's key");
	cr_assert_str_eq(r2.message, "no such code");
	wire_buf__reset(&b);

	struct wire_resume rs = { 11, 56, 1 }, rs2;
	cr_assert_eq(wire_msg__encode_resume(&b, &rs), 0);
	p = payload(&b, &h);
	cr_assert_eq(h.type, WIRE_MSG_RESUME);
	cr_assert_eq(wire_msg__decode_resume(p, p + h.len, &rs2), 0);
	cr_assert_eq(rs2.fallback_unit, 56);
	cr_assert_eq(rs2.base_depth, 1);
	cr_assert_eq(wire_msg__decode_resume(p, p + h.len - 1, &rs2), -EINVAL);
	wire_buf__reset(&b);

	struct wire_resume_result rr = { 11, WIRE_RESUME_RAISED, "raised TypeError" }, rr2;
	cr_assert_eq(wire_msg__encode_resume_result(&b, &rr), 0);
	p = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_resume_result(p, p + h.len, &rr2), 0);
	cr_assert_eq(rr2.status, WIRE_RESUME_RAISED);
	cr_assert_str_eq(rr2.message, "raised TypeError");
	wire_buf__reset(&b);

	cr_assert_eq(wire_msg__encode_empty(&b, WIRE_MSG_DETACH), 0);
	p = payload(&b, &h);
	cr_assert_eq(h.len, 0);
	cr_assert_eq(wire_msg__decode_empty(p, p), 0);
	cr_assert_eq(wire_msg__decode_empty(p, p + 1), -EINVAL);
	wire_buf__free(&b);
}

Test(inject_msg, patch_named_roundtrip_and_refusals)
{
	struct wire_buf b = { 0 };
	static const uint8_t code[] = { 151, 0, 100, 0, 83, 0 };
	struct wire_patch p = { .request_id = 5,
				.code_addr = 0x1000,
				.stacksize = 3,
				.code = code,
				.code_len = sizeof code };
	struct wire_patch d;
	struct wire_hdr h;
	cr_assert_eq(wire_msg__encode_patch_named(&b, &p), -EINVAL, "a name is required");
	strcpy(p.meta.name, "app.load:12:null_guard");
	strcpy(p.meta.guard, "null_guard");
	strcpy(p.meta.target, "user.name");
	strcpy(p.meta.fallback, "None");
	cr_assert_eq(wire_msg__encode_patch_named(&b, &p), 0);
	const uint8_t *pl = payload(&b, &h);
	cr_assert_eq(h.type, WIRE_MSG_PATCH_NAMED);
	cr_assert_eq(wire_msg__decode_patch_named(pl, pl + h.len, &d), 0);
	cr_assert_str_eq(d.meta.name, "app.load:12:null_guard");
	cr_assert_str_eq(d.meta.guard, "null_guard");
	cr_assert_str_eq(d.meta.target, "user.name");
	cr_assert_str_eq(d.meta.fallback, "None");
	cr_assert_eq(d.code_addr, 0x1000);
	cr_assert_eq(d.code_len, sizeof code);
	for (uint32_t n = 0; n < h.len; n++)
		cr_assert_eq(wire_msg__decode_patch_named(pl, pl + n, &d), -EINVAL, "cut at %u", n);
	/* An empty name is refused on decode too. */
	uint8_t empty[4] = { 0, 0, 0, 0 };
	cr_assert_eq(wire_msg__decode_patch_named(empty, empty + 4, &d), -EINVAL);
	wire_buf__free(&b);
}

Test(inject_msg, list_result_roundtrip_and_lies)
{
	struct wire_buf b = { 0 };
	struct wire_list l = { 11 }, dl;
	struct wire_list_result r;
	struct wire_live_patch e = { .first_line = 10,
				     .flags = WIRE_LIVE_F_STACKED,
				     .orig_addr = 1,
				     .new_addr = 2,
				     .installed_ms = 1234567,
				     .nfunctions = 3,
				     .nparents = 1,
				     .nframes = 2,
				     .live_functions = 4,
				     .hits = 7,
				     .last_hit_ms = 1234999 },
			       got;
	struct wire_live_iter it;
	struct wire_hdr h;
	size_t at;
	cr_assert_eq(wire_msg__encode_list(&b, &l), 0);
	const uint8_t *pl = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_list(pl, pl + h.len, &dl), 0);
	cr_assert_eq(dl.request_id, 11);
	wire_buf__reset(&b);
	strcpy(e.meta.name, "m.f:3:key_guard");
	strcpy(e.qualname, "f");
	strcpy(e.filename, "/srv/m.py");
	wire_msg__list_result_begin(&b, 11, 2, &at);
	wire_msg__list_result_entry(&b, &e);
	e.new_addr = 3;
	wire_msg__list_result_entry(&b, &e);
	cr_assert_eq(wire_msg__list_result_end(&b, at), 0);
	pl = payload(&b, &h);
	cr_assert_eq(h.type, WIRE_MSG_LIST_RESULT);
	cr_assert_eq(wire_msg__decode_list_result(pl, pl + h.len, &r), 0);
	cr_assert_eq(r.count, 2);
	wire_live_iter__init(&it, &r);
	cr_assert_eq(wire_live_iter__next(&it, &got), 1);
	cr_assert_str_eq(got.meta.name, "m.f:3:key_guard");
	cr_assert_str_eq(got.filename, "/srv/m.py");
	cr_assert_eq(got.new_addr, 2);
	cr_assert_eq(got.live_functions, 4);
	cr_assert_eq(got.flags, WIRE_LIVE_F_STACKED);
	cr_assert_eq(got.hits, 7);
	cr_assert_eq(got.last_hit_ms, 1234999);
	cr_assert_eq(wire_live_iter__next(&it, &got), 1);
	cr_assert_eq(got.new_addr, 3);
	cr_assert_eq(wire_live_iter__next(&it, &got), 0);
	for (uint32_t n = 0; n < h.len; n++)
		cr_assert_eq(wire_msg__decode_list_result(pl, pl + n, &r), -EINVAL, "cut at %u", n);
	/* A count beyond the entries is a lie. */
	uint8_t lie[12] = { 11, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0 };
	cr_assert_eq(wire_msg__decode_list_result(lie, lie + 12, &r), -EINVAL);
	wire_buf__free(&b);
}

Test(inject_msg, rollback_roundtrip_and_refusals)
{
	struct wire_buf b = { 0 };
	struct wire_rollback m = { .request_id = 8 }, d;
	struct wire_rollback_result res = { .request_id = 8,
					    .status = -EBUSY,
					    .npatches = 1,
					    .nfunctions = 2,
					    .nframes = 1 },
				    dr;
	struct wire_hdr h;
	strcpy(m.name, "m.f:3:key_guard");
	cr_assert_eq(wire_msg__encode_rollback(&b, &m), 0);
	const uint8_t *pl = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_rollback(pl, pl + h.len, &d), 0);
	cr_assert_str_eq(d.name, "m.f:3:key_guard");
	cr_assert_eq(d.flags, 0);
	for (uint32_t n = 0; n < h.len; n++)
		cr_assert_eq(wire_msg__decode_rollback(pl, pl + n, &d), -EINVAL, "cut at %u", n);
	wire_buf__reset(&b);
	/* ALL with a name, a name-less single rollback, unknown flags: refused. */
	m.flags = WIRE_ROLLBACK_F_ALL;
	wire_msg__encode_rollback(&b, &m);
	pl = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_rollback(pl, pl + h.len, &d), -EINVAL);
	wire_buf__reset(&b);
	m.flags = 0;
	m.name[0] = 0;
	wire_msg__encode_rollback(&b, &m);
	pl = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_rollback(pl, pl + h.len, &d), -EINVAL);
	wire_buf__reset(&b);
	m.flags = WIRE_ROLLBACK_F_ALL | WIRE_ROLLBACK_F_DRY_RUN | 4;
	wire_msg__encode_rollback(&b, &m);
	pl = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_rollback(pl, pl + h.len, &d), -EINVAL);
	wire_buf__reset(&b);
	m.flags = WIRE_ROLLBACK_F_ALL | WIRE_ROLLBACK_F_DRY_RUN;
	wire_msg__encode_rollback(&b, &m);
	pl = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_rollback(pl, pl + h.len, &d), 0);
	wire_buf__reset(&b);
	strcpy(res.message, "busy");
	cr_assert_eq(wire_msg__encode_rollback_result(&b, &res), 0);
	pl = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_rollback_result(pl, pl + h.len, &dr), 0);
	cr_assert_eq(dr.status, -EBUSY);
	cr_assert_eq(dr.nfunctions, 2);
	cr_assert_str_eq(dr.message, "busy");
	wire_buf__reset(&b);
	res.status = 1; /* positive statuses do not exist */
	wire_msg__encode_rollback_result(&b, &res);
	pl = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_rollback_result(pl, pl + h.len, &dr), -EINVAL);
	wire_buf__free(&b);
}

Test(inject_msg, hello_control_is_hello_under_its_own_type)
{
	struct wire_buf b = { 0 };
	struct wire_hello m = { .version = WIRE_PROTO_VERSION, .timeout_ms = 250 }, d;
	struct wire_hdr h;
	cr_assert_eq(wire_msg__encode_hello_control(&b, &m), 0);
	const uint8_t *pl = payload(&b, &h);
	cr_assert_eq(h.type, WIRE_MSG_HELLO_CONTROL);
	cr_assert_eq(wire_msg__decode_hello(pl, pl + h.len, &d), 0);
	cr_assert_eq(d.version, WIRE_PROTO_VERSION);
	cr_assert_eq(d.timeout_ms, 250);
	uint8_t past[8] = { 0, 0, 0, 0, WIRE_MSG_LAST + 1, 0, 0, 0 };
	cr_assert_eq(wire_msg__decode_hdr(past, past + 8, &h), -EINVAL);
	uint8_t gap[8] = { 0, 0, 0, 0, WIRE_MSG_TREE_FILES_RESULT + 1, 0, 0, 0 };
	cr_assert_eq(wire_msg__decode_hdr(gap, gap + 8, &h), -EINVAL);
	wire_buf__free(&b);
}

Test(inject_msg, hits_roundtrip_and_lies)
{
	struct wire_buf b = { 0 };
	struct wire_hdr h;
	struct wire_hits m;
	struct wire_hits_iter it;
	struct wire_hit e = { .orig_addr = 0x7f0000001000, .count = 3, .last_ms = 1763710000123 },
			got;
	size_t at;
	strcpy(e.name, "m.f:3:key_guard");
	cr_assert_eq(wire_msg__hits_begin(&b, 2, &at), 0);
	wire_msg__hits_entry(&b, &e);
	e.name[0] = 0; /* a plain PATCH's entry has no name */
	e.count = 1;
	wire_msg__hits_entry(&b, &e);
	cr_assert_eq(wire_msg__hits_end(&b, at), 0);
	const uint8_t *pl = payload(&b, &h);
	cr_assert_eq(h.type, WIRE_MSG_HITS);
	cr_assert_eq(wire_msg__decode_hits(pl, pl + h.len, &m), 0);
	cr_assert_eq(m.count, 2);
	wire_hits_iter__init(&it, &m);
	cr_assert_eq(wire_hits_iter__next(&it, &got), 1);
	cr_assert_str_eq(got.name, "m.f:3:key_guard");
	cr_assert_eq(got.orig_addr, 0x7f0000001000);
	cr_assert_eq(got.count, 3);
	cr_assert_eq(got.last_ms, 1763710000123);
	cr_assert_eq(wire_hits_iter__next(&it, &got), 1);
	cr_assert_str_eq(got.name, "");
	cr_assert_eq(got.count, 1);
	cr_assert_eq(wire_hits_iter__next(&it, &got), 0);
	for (uint32_t n = 0; n < h.len; n++)
		cr_assert_eq(wire_msg__decode_hits(pl, pl + n, &m), -EINVAL, "cut at %u", n);
	/* A count beyond the entries, and an entry of zero firings, are lies. */
	uint8_t lie[4] = { 0xff, 0xff, 0, 0 };
	cr_assert_eq(wire_msg__decode_hits(lie, lie + 4, &m), -EINVAL);
	wire_buf__reset(&b);
	e.count = 0;
	wire_msg__hits_begin(&b, 1, &at);
	wire_msg__hits_entry(&b, &e);
	cr_assert_eq(wire_msg__hits_end(&b, at), 0);
	pl = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_hits(pl, pl + h.len, &m), -EINVAL);
	wire_buf__free(&b);
}

Test(inject_msg, hello_carries_application_paths)
{
	static struct wire_hello m, d;
	struct wire_buf b = { 0 };
	struct wire_hdr h;
	m.version = WIRE_PROTO_VERSION;
	m.flags = WIRE_HELLO_F_HITS | WIRE_HELLO_F_APP_PATHS;
	snprintf(m.app_paths, sizeof m.app_paths, "/srv/app:/opt/lib/site-packages/mine");
	cr_assert_eq(wire_msg__encode_hello(&b, &m), 0);
	const uint8_t *p = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_hello(p, p + h.len, &d), 0);
	cr_assert_eq(d.flags, m.flags);
	cr_assert_str_eq(d.app_paths, "/srv/app:/opt/lib/site-packages/mine");
	/* Cut anywhere inside the string: refused. */
	for (uint32_t n = 12; n < h.len; n++)
		cr_assert_eq(wire_msg__decode_hello(p, p + n, &d), -EINVAL, "cut at %u", n);
	/* A NUL inside the string: refused. */
	uint8_t *q = malloc(h.len);
	memcpy(q, p, h.len);
	q[h.len - 3] = 0;
	cr_assert_eq(wire_msg__decode_hello(q, q + h.len, &d), -EINVAL);
	free(q);
	/* Without the flag nothing follows the flags, and trailing bytes are refused. */
	m.flags = 0;
	wire_buf__reset(&b);
	cr_assert_eq(wire_msg__encode_hello(&b, &m), 0);
	p = payload(&b, &h);
	cr_assert_eq(h.len, 12);
	cr_assert_eq(wire_msg__decode_hello(p, p + h.len, &d), 0);
	cr_assert_str_eq(d.app_paths, "");
	wire_buf__free(&b);
}

Test(inject_msg, probe_messages_roundtrip_and_lies)
{
	struct wire_buf b = { 0 };
	struct wire_hdr h;
	static struct wire_probe_set set, set2;
	memset(&set, 0, sizeof set);
	set.request_id = 7;
	set.count = 5;
	set.rate = 100;
	set.line = 12;
	strcpy(set.file, "app.py");
	strcpy(set.format, "i={i}");
	strcpy(set.cond, "i == 3");
	cr_assert_eq(wire_msg__encode_probe_set(&b, &set), 0);
	const uint8_t *pl = payload(&b, &h);
	cr_assert_eq(h.type, WIRE_MSG_PROBE_SET);
	cr_assert_eq(wire_msg__decode_probe_set(pl, pl + h.len, &set2), 0);
	cr_assert_str_eq(set2.format, "i={i}");
	cr_assert_str_eq(set2.cond, "i == 3");
	cr_assert_eq(set2.line, 12);
	cr_assert_neq(wire_msg__decode_probe_set(pl, pl + h.len - 1, &set2), 0);
	wire_buf__reset(&b);

	struct wire_probe_hit hit = { .probe_id = 3, .line = 12, .dropped = 9, .nvalues = 2 }, got;
	hit.values[0] = "1";
	hit.values[1] = "'x'";
	cr_assert_eq(wire_msg__encode_probe_hit(&b, &hit), 0);
	pl = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_probe_hit(pl, pl + h.len, &got), 0);
	cr_assert_eq(got.nvalues, 2);
	cr_assert_eq(got.value_len[1], 3);
	cr_assert_eq(memcmp(got.values[1], "'x'", 3), 0);
	cr_assert_eq(got.dropped, 9);
	/* a count the bytes cannot hold */
	uint8_t *raw = (uint8_t *)pl;
	raw[4 + 4 + 8 + 8 + 8 + 8 + 4 + 8] = 200;
	cr_assert_eq(wire_msg__decode_probe_hit(pl, pl + h.len, &got), -EINVAL);
	wire_buf__reset(&b);

	struct wire_probe_result r = { .request_id = 7, .status = -ENOENT, .ncodes = 2 }, r2;
	r.codes[0] = 0x1000;
	r.codes[1] = 0x2000;
	strcpy(r.message, "no code at line 12");
	cr_assert_eq(wire_msg__encode_probe_result(&b, &r), 0);
	pl = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_probe_result(pl, pl + h.len, &r2), 0);
	cr_assert_eq(r2.codes[1], 0x2000);
	cr_assert_eq(r2.status, -ENOENT);
	cr_assert_str_eq(r2.message, "no code at line 12");
	wire_buf__free(&b);
}

Test(inject_msg, forked_roundtrip_and_lies)
{
	struct wire_buf b = { 0 };
	struct wire_forked m = { .pid = 4243, .ppid = 4242 }, d;
	struct wire_hdr h;
	cr_assert_eq(wire_msg__encode_forked(&b, &m), 0);
	const uint8_t *pl = payload(&b, &h);
	cr_assert_eq(h.type, WIRE_MSG_FORKED);
	cr_assert_eq(h.len, 8);
	cr_assert_eq(wire_msg__decode_forked(pl, pl + h.len, &d), 0);
	cr_assert_eq(d.pid, 4243);
	cr_assert_eq(d.ppid, 4242);
	cr_assert_eq(wire_msg__decode_forked(pl, pl + 7, &d), -EINVAL);
	uint8_t zero[8] = { 0, 0, 0, 0, 1, 0, 0, 0 };
	cr_assert_eq(wire_msg__decode_forked(zero, zero + 8, &d), -EINVAL);
	uint8_t big[8] = { 1, 0, 0, 0x80, 1, 0, 0, 0 };
	cr_assert_eq(wire_msg__decode_forked(big, big + 8, &d), -EINVAL);
	uint8_t longer[9] = { 1, 0, 0, 0, 1, 0, 0, 0, 0 };
	cr_assert_eq(wire_msg__decode_forked(longer, longer + 9, &d), -EINVAL);
	/* A HELLO may ask for it. */
	struct wire_hello hm = { .version = WIRE_PROTO_VERSION, .flags = WIRE_HELLO_F_TREE }, hd;
	wire_buf__reset(&b);
	cr_assert_eq(wire_msg__encode_hello(&b, &hm), 0);
	pl = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_hello(pl, pl + h.len, &hd), 0);
	cr_assert_eq(hd.flags, WIRE_HELLO_F_TREE);
	wire_buf__free(&b);
}

Test(inject_msg, tree_files_roundtrip_and_lies)
{
	struct wire_buf b = { 0 };
	struct wire_tree_files m = { .sock = "/tmp/suture-tree.abc/s",
				     .files = "/a.py\n/b.py",
				     .files_len = 11 },
			       d;
	struct wire_hdr h;
	uint32_t n;
	cr_assert_eq(wire_msg__encode_tree_files(&b, &m), 0);
	const uint8_t *pl = payload(&b, &h);
	cr_assert_eq(h.type, WIRE_MSG_TREE_FILES);
	cr_assert_eq(wire_msg__decode_tree_files(pl, pl + h.len, &d), 0);
	cr_assert_str_eq(d.sock, m.sock);
	cr_assert_eq(d.files_len, 11);
	cr_assert_eq(memcmp(d.files, "/a.py\n/b.py", 11), 0);
	cr_assert_eq(wire_msg__decode_tree_files(pl, pl + h.len - 1, &d), -EINVAL);
	/* A NUL in the files, files without a socket. */
	uint8_t *w = (uint8_t *)pl + h.len - 3;
	*w = 0;
	cr_assert_eq(wire_msg__decode_tree_files(pl, pl + h.len, &d), -EINVAL);
	wire_buf__reset(&b);
	struct wire_tree_files nosock = { .files = "/a.py", .files_len = 5 };
	cr_assert_eq(wire_msg__encode_tree_files(&b, &nosock), -EINVAL);
	wire_buf__reset(&b);
	uint8_t lie[] = { 0, 0, 0, 0, 5, 0, 0, 0, '/', 'a', '.', 'p', 'y' };
	cr_assert_eq(wire_msg__decode_tree_files(lie, lie + sizeof lie, &d), -EINVAL);
	cr_assert_eq(wire_msg__encode_tree_files_result(&b, 2), 0);
	pl = payload(&b, &h);
	cr_assert_eq(h.type, WIRE_MSG_TREE_FILES_RESULT);
	cr_assert_eq(wire_msg__decode_tree_files_result(pl, pl + h.len, &n), 0);
	cr_assert_eq(n, 2);
	wire_buf__free(&b);
}

Test(inject_msg, handled_roundtrip_and_lies)
{
	struct wire_buf b = { 0 };
	struct wire_hdr h;
	struct wire_handled m;
	struct wire_handled_iter it;
	struct wire_handled_entry e = { .count = 7, .last_ms = 1763710000123 }, got;
	size_t at;
	strcpy(e.site, "__main__.work:29");
	strcpy(e.exc_type, "KeyError");
	for (int type = WIRE_MSG_HANDLED; type <= WIRE_MSG_HANDLED_RESULT; type += 2) {
		wire_buf__reset(&b);
		cr_assert_eq(wire_msg__handled_begin(&b, type, 1, &at), 0);
		wire_msg__handled_entry(&b, &e);
		cr_assert_eq(wire_msg__handled_end(&b, at), 0);
		const uint8_t *pl = payload(&b, &h);
		cr_assert_eq(h.type, type);
		cr_assert_eq(wire_msg__decode_handled(pl, pl + h.len, &m), 0);
		cr_assert_eq(m.count, 1);
		wire_handled_iter__init(&it, &m);
		cr_assert_eq(wire_handled_iter__next(&it, &got), 1);
		cr_assert_str_eq(got.site, "__main__.work:29");
		cr_assert_str_eq(got.exc_type, "KeyError");
		cr_assert_eq(got.count, 7);
		cr_assert_eq(got.last_ms, 1763710000123);
		cr_assert_eq(wire_handled_iter__next(&it, &got), 0);
		for (uint32_t n = 0; n < h.len; n++)
			cr_assert_eq(wire_msg__decode_handled(pl, pl + n, &m), -EINVAL, "cut at %u",
				     n);
	}
	/* An empty result is fine; a lying count, zero counts, an empty site are not. */
	wire_buf__reset(&b);
	wire_msg__handled_begin(&b, WIRE_MSG_HANDLED_RESULT, 0, &at);
	cr_assert_eq(wire_msg__handled_end(&b, at), 0);
	const uint8_t *pl = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_handled(pl, pl + h.len, &m), 0);
	cr_assert_eq(m.count, 0);
	uint8_t lie[4] = { 0xff, 0xff, 0, 0 };
	cr_assert_eq(wire_msg__decode_handled(lie, lie + 4, &m), -EINVAL);
	struct wire_handled_entry bad[2] = { e, e };
	bad[0].count = 0;
	bad[1].site[0] = 0;
	for (int i = 0; i < 2; i++) {
		wire_buf__reset(&b);
		wire_msg__handled_begin(&b, WIRE_MSG_HANDLED, 1, &at);
		wire_msg__handled_entry(&b, &bad[i]);
		cr_assert_eq(wire_msg__handled_end(&b, at), 0);
		pl = payload(&b, &h);
		cr_assert_eq(wire_msg__decode_handled(pl, pl + h.len, &m), -EINVAL, "bad %d", i);
	}
	wire_buf__free(&b);
}

Test(inject_msg, hello_carries_heal_handled_sites)
{
	static struct wire_hello m, d;
	struct wire_buf b = { 0 };
	struct wire_hdr h;
	m.version = WIRE_PROTO_VERSION;
	m.flags = WIRE_HELLO_F_APP_PATHS | WIRE_HELLO_F_HANDLED;
	snprintf(m.app_paths, sizeof m.app_paths, "/srv/app");
	snprintf(m.heal_handled, sizeof m.heal_handled, "__main__.work:29\njob.f:3");
	cr_assert_eq(wire_msg__encode_hello(&b, &m), 0);
	const uint8_t *p = payload(&b, &h);
	cr_assert_eq(wire_msg__decode_hello(p, p + h.len, &d), 0);
	cr_assert_eq(d.flags, m.flags);
	cr_assert_str_eq(d.app_paths, "/srv/app");
	cr_assert_str_eq(d.heal_handled, "__main__.work:29\njob.f:3");
	for (uint32_t n = 12; n < h.len; n++)
		cr_assert_eq(wire_msg__decode_hello(p, p + n, &d), -EINVAL, "cut at %u", n);
	/* The flag alone: an empty list still follows (4 bytes of length). */
	m.flags = WIRE_HELLO_F_HANDLED;
	m.heal_handled[0] = 0;
	wire_buf__reset(&b);
	cr_assert_eq(wire_msg__encode_hello(&b, &m), 0);
	p = payload(&b, &h);
	cr_assert_eq(h.len, 16);
	cr_assert_eq(wire_msg__decode_hello(p, p + h.len, &d), 0);
	cr_assert_str_eq(d.heal_handled, "");
	wire_buf__free(&b);
}
