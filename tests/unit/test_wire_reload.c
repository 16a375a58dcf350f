/* wire/: the reload messages (docs/formats/channel.md, "Reload", "Held
 * crashes"): RELOAD, RELOAD_RESULT, HELD_CHANGED and RESTART round-trip; truncation, trailing bytes, lying counts,
 * unknown kinds, a positive status, an empty, cut or NUL-holding path are
 * refused. */
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

static struct wire_reload m, d; /* 4 KiB paths each */

Test(wire_reload, reload_roundtrip_and_refusals)
{
	struct wire_buf b = { 0 };
	struct wire_hdr h;
	const char *src = "def f(x):\n    return x * 3\n";
	memset(&m, 0, sizeof m);
	m.request_id = 9;
	strcpy(m.path, "/app/helpers.py");
	m.source = (const uint8_t *)src;
	m.source_len = strlen(src);
	cr_assert_eq(wire_msg__encode_reload(&b, &m), 0);
	const uint8_t *p = payload(&b, &h);
	cr_assert_eq(h.type, WIRE_MSG_RELOAD);
	cr_assert_eq(wire_msg__decode_reload(p, p + h.len, &d), 0);
	cr_assert_eq(d.request_id, 9);
	cr_assert_str_eq(d.path, "/app/helpers.py");
	cr_assert_eq(d.source_len, strlen(src));
	cr_assert_eq(memcmp(d.source, src, d.source_len), 0);
	for (uint32_t cut = 0; cut < h.len; cut++)
		cr_assert_eq(wire_msg__decode_reload(p, p + cut, &d), -EINVAL, "cut %u", cut);
	/* Trailing bytes, reserved flags, a NUL inside the path. */
	uint8_t *q = malloc(h.len + 1);
	memcpy(q, p, h.len);
	q[h.len] = 0;
	cr_assert_eq(wire_msg__decode_reload(q, q + h.len + 1, &d), -EINVAL);
	q[8] = 1;
	cr_assert_eq(wire_msg__decode_reload(q, q + h.len, &d), -EINVAL);
	q[8] = 0;
	q[16 + 4] = 0; /* the path's second byte */
	cr_assert_eq(wire_msg__decode_reload(q, q + h.len, &d), -EINVAL);
	free(q);
	/* An empty path is not encoded. */
	wire_buf__reset(&b);
	m.path[0] = 0;
	cr_assert_eq(wire_msg__encode_reload(&b, &m), -EINVAL);
	wire_buf__free(&b);
}

Test(wire_reload, result_roundtrip_and_refusals)
{
	struct wire_buf b = { 0 };
	struct wire_hdr h;
	struct wire_reload_result r = { .request_id = 4, .moved = 2 }, rd;
	struct wire_reload_entry e[2] = {
		{ .kind = WIRE_RELOAD_RELOADED, .line = 6, .nfunctions = 3 },
		{ .kind = WIRE_RELOAD_REFUSED, .line = 30 },
	};
	struct wire_reload_entry got;
	struct wire_reload_iter it;
	size_t at;
	strcpy(r.message, "1 reloaded, 1 refused, 0 added, 2 moved");
	strcpy(r.name, "reload:helpers#1");
	strcpy(e[0].qualname, "score");
	strcpy(e[1].qualname, "make_offset");
	strcpy(e[1].detail, "its free variables changed (k -> j, k)");
	r.count = 2;
	cr_assert_eq(wire_msg__reload_result_begin(&b, &r, &at), 0);
	wire_msg__reload_result_entry(&b, &e[0]);
	wire_msg__reload_result_entry(&b, &e[1]);
	cr_assert_eq(wire_msg__reload_result_end(&b, at), 0);
	const uint8_t *p = payload(&b, &h);
	cr_assert_eq(h.type, WIRE_MSG_RELOAD_RESULT);
	cr_assert_eq(wire_msg__decode_reload_result(p, p + h.len, &rd), 0);
	cr_assert_eq(rd.count, 2);
	cr_assert_eq(rd.moved, 2);
	cr_assert_str_eq(rd.name, "reload:helpers#1");
	wire_reload_iter__init(&it, &rd);
	cr_assert_eq(wire_reload_iter__next(&it, &got), 1);
	cr_assert_str_eq(got.qualname, "score");
	cr_assert_eq(got.nfunctions, 3);
	cr_assert_eq(wire_reload_iter__next(&it, &got), 1);
	cr_assert_str_eq(got.detail, "its free variables changed (k -> j, k)");
	cr_assert_eq(wire_reload_iter__next(&it, &got), 0);
	for (uint32_t cut = 0; cut < h.len; cut++)
		cr_assert_eq(wire_msg__decode_reload_result(p, p + cut, &rd), -EINVAL, "cut %u",
			     cut);
	/* A lying count, an unknown kind, a positive status. */
	uint8_t *q = malloc(h.len);
	memcpy(q, p, h.len);
	size_t count_at = 8 + 4 + 4 + 4 + strlen(r.message) + 4 + strlen(r.name);
	q[count_at] = 3;
	cr_assert_eq(wire_msg__decode_reload_result(q, q + h.len, &rd), -EINVAL);
	q[count_at] = 2;
	q[count_at + 4] = 9;
	cr_assert_eq(wire_msg__decode_reload_result(q, q + h.len, &rd), -EINVAL);
	q[count_at + 4] = WIRE_RELOAD_RELOADED;
	cr_assert_eq(wire_msg__decode_reload_result(q, q + h.len, &rd), 0);
	q[8] = 1;
	cr_assert_eq(wire_msg__decode_reload_result(q, q + h.len, &rd), -EINVAL);
	free(q);
	wire_buf__free(&b);
}

static struct wire_restart rs, rsd; /* 256 KiB each */

Test(wire_reload, held_changed_and_restart)
{
	struct wire_buf b = { 0 };
	struct wire_hdr h;
	struct wire_held_changed hc = { .event_id = 3, .code_addr = 0x7f0000001000ull }, hd;
	strcpy(hc.reload, "reload:job.py#1");
	cr_assert_eq(wire_msg__encode_held_changed(&b, &hc), 0);
	const uint8_t *p = payload(&b, &h);
	cr_assert_eq(h.type, WIRE_MSG_HELD_CHANGED);
	cr_assert_eq(wire_msg__decode_held_changed(p, p + h.len, &hd), 0);
	cr_assert_eq(hd.code_addr, hc.code_addr);
	cr_assert_str_eq(hd.reload, "reload:job.py#1");
	for (uint32_t cut = 0; cut < h.len; cut++)
		cr_assert_eq(wire_msg__decode_held_changed(p, p + cut, &hd), -EINVAL);

	wire_buf__reset(&b);
	rs.event_id = 3;
	rs.code_addr = 0x7f0000002000ull;
	rs.unit = 40;
	rs.base_depth = 1;
	rs.nmap = 4;
	rs.map[0] = 0;
	rs.map[1] = 1;
	rs.map[2] = 2;
	rs.map[3] = -1;
	cr_assert_eq(wire_msg__encode_restart(&b, &rs), 0);
	p = payload(&b, &h);
	cr_assert_eq(h.type, WIRE_MSG_RESTART);
	cr_assert_eq(wire_msg__decode_restart(p, p + h.len, &rsd), 0);
	cr_assert_eq(rsd.unit, 40);
	cr_assert_eq(rsd.base_depth, 1);
	cr_assert_eq(rsd.nmap, 4);
	cr_assert_eq(rsd.map[3], -1);
	cr_assert_eq(rsd.map[2], 2);
	for (uint32_t cut = 0; cut < h.len; cut++)
		cr_assert_eq(wire_msg__decode_restart(p, p + cut, &rsd), -EINVAL);
	/* A map entry below -1, a lying count, a unit past 2^24. */
	uint8_t *q = malloc(h.len);
	memcpy(q, p, h.len);
	q[h.len - 4] = 0xfe; /* map[3] = -2 */
	cr_assert_eq(wire_msg__decode_restart(q, q + h.len, &rsd), -EINVAL);
	memcpy(q, p, h.len);
	q[24] = 5; /* nmap */
	cr_assert_eq(wire_msg__decode_restart(q, q + h.len, &rsd), -EINVAL);
	memcpy(q, p, h.len);
	q[19] = 1; /* unit's top byte */
	cr_assert_eq(wire_msg__decode_restart(q, q + h.len, &rsd), -EINVAL);
	free(q);
	/* Too many locals are not encoded. */
	wire_buf__reset(&b);
	rs.nmap = WIRE_RESTART_MAX_LOCALS + 1;
	cr_assert_eq(wire_msg__encode_restart(&b, &rs), -EINVAL);
	wire_buf__free(&b);
}
