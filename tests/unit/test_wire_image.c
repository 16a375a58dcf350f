/* wire/: the boot image (docs/formats/boot-image.md): what the encoder
 * writes the decoder gives back, section by section and entry by entry;
 * the decoder refuses every damaged or out-of-bounds image whole. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/image.h"

/* A PATCH_NAMED payload (the frame without its header). */
static void patch_payload(struct wire_buf *out, const char *name, uint8_t op)
{
	struct wire_buf b = { 0 };
	uint8_t code[4] = { op, 0, 83, 0 };
	struct wire_patch p = { .request_id = 1, .stacksize = 3, .code = code, .code_len = 4 };
	snprintf(p.meta.name, sizeof p.meta.name, "%s", name);
	snprintf(p.meta.guard, sizeof p.meta.guard, "key_guard");
	cr_assert_eq(wire_msg__encode_patch_named(&b, &p), 0);
	wire_buf__reset(out);
	wire_image__raw(out, b.data + WIRE_HDR_SIZE, b.len - WIRE_HDR_SIZE);
	wire_buf__free(&b);
}

/* Two sections: a.py with two entries (the second stacked on the first),
 * b.py with none. */
static void build(struct wire_buf *img)
{
	struct wire_buf p1 = { 0 }, p2 = { 0 };
	patch_payload(&p1, "__main__.f:2:key_guard", 151);
	patch_payload(&p2, "__main__.f:3:none_guard", 100);
	struct wire_image_hdr h = { .py_version = 0x030b02f0,
				    .index_hash = 0x1122334455667788ull,
				    .build = 42,
				    .valid_until = 1900000000 };
	snprintf(h.program, sizeof h.program, "/srv/app.py");
	wire_image__begin(img, &h);
	wire_image__section(img, "/srv/a.py", 2);
	struct wire_image_entry e = { .qualname = "C.f",
				      .firstlineno = 1,
				      .line = 2,
				      .key = 0xabcdefull,
				      .payload = p1.data,
				      .payload_len = p1.len };
	wire_image__entry(img, &e);
	e.line = 3;
	e.key = 0;
	e.payload = p2.data;
	e.payload_len = p2.len;
	wire_image__entry(img, &e);
	wire_image__section(img, "/srv/b.py", 0);
	cr_assert_eq(wire_image__end(img, 2), 0);
	wire_buf__free(&p1);
	wire_buf__free(&p2);
}

Test(wire_image, roundtrip)
{
	struct wire_buf b = { 0 };
	build(&b);
	struct wire_image img;
	cr_assert_eq(wire_image__open(b.data, b.len, &img), 0);
	cr_assert_eq(img.hdr.py_version, 0x030b02f0);
	cr_assert_eq(img.hdr.index_hash, 0x1122334455667788ull);
	cr_assert_eq(img.hdr.build, 42);
	cr_assert_eq(img.hdr.valid_until, 1900000000);
	cr_assert_str_eq(img.hdr.program, "/srv/app.py");
	cr_assert_eq(img.hdr.nsections, 2);

	const uint8_t *at = img.sections;
	uint32_t idx = 0;
	struct wire_image_section s;
	cr_assert_eq(wire_image__next_section(&img, &at, &s, &idx), 1);
	cr_assert_str_eq(s.file, "/srv/a.py");
	cr_assert_eq(s.index, 0);
	cr_assert_eq(s.nentries, 2);
	const uint8_t *e_at = s.entries;
	struct wire_image_entry e;
	struct wire_patch p;
	cr_assert_eq(wire_image__next_entry(&s, &e_at, &e), 1);
	cr_assert_str_eq(e.qualname, "C.f");
	cr_assert_eq(e.firstlineno, 1);
	cr_assert_eq(e.line, 2);
	cr_assert_eq(e.key, 0xabcdefull);
	cr_assert_eq(wire_msg__decode_patch_named(e.payload, e.payload + e.payload_len, &p), 0);
	cr_assert_str_eq(p.meta.name, "__main__.f:2:key_guard");
	cr_assert_eq(p.code[0], 151);
	cr_assert_eq(wire_image__next_entry(&s, &e_at, &e), 1);
	cr_assert_eq(e.key, 0, "stacked on the entry before");
	cr_assert_eq(e.line, 3);
	cr_assert_eq(wire_image__next_entry(&s, &e_at, &e), 0);

	cr_assert_eq(wire_image__next_section(&img, &at, &s, &idx), 1);
	cr_assert_str_eq(s.file, "/srv/b.py");
	cr_assert_eq(s.index, 1);
	cr_assert_eq(s.nentries, 0);
	e_at = s.entries;
	cr_assert_eq(wire_image__next_entry(&s, &e_at, &e), 0);
	cr_assert_eq(wire_image__next_section(&img, &at, &s, &idx), 0);
	wire_buf__free(&b);
}

Test(wire_image, every_byte_is_checked)
{
	struct wire_buf b = { 0 };
	build(&b);
	struct wire_image img;
	/* Any one byte changed: the checksum (or the field) refuses it. */
	for (size_t i = 0; i < b.len; i++) {
		b.data[i] ^= 0x20;
		cr_assert_eq(wire_image__open(b.data, b.len, &img), -EINVAL, "byte %zu", i);
		b.data[i] ^= 0x20;
	}
	/* Any truncation. */
	for (size_t n = 0; n < b.len; n++)
		cr_assert_neq(wire_image__open(b.data, n, &img), 0, "%zu bytes", n);
	cr_assert_eq(wire_image__open(b.data, b.len, &img), 0);
	wire_buf__free(&b);
}

/* Re-seal a changed image (a checksum that fits), to reach the checks
 * behind the checksum. */
static void reseal(struct wire_buf *b)
{
	uint64_t sum = wire_image__fnv(WIRE_IMAGE_FNV_SEED, b->data, b->len - 8);
	for (int i = 0; i < 8; i++)
		b->data[b->len - 8 + (size_t)i] = (uint8_t)(sum >> (8 * i));
}

Test(wire_image, sealed_lies_are_refused)
{
	struct wire_image img;
	struct wire_buf b = { 0 };
	build(&b);
	/* The version. */
	b.data[8] = 2;
	reseal(&b);
	cr_assert_eq(wire_image__open(b.data, b.len, &img), -EINVAL);
	wire_buf__free(&b);

	/* A section count larger than what follows. */
	build(&b);
	size_t at = 8 + 4 + 4 + 8 + 8 + 8 + 4 + strlen("/srv/app.py");
	b.data[at] = 3;
	reseal(&b);
	cr_assert_eq(wire_image__open(b.data, b.len, &img), -EINVAL);
	/* ... and over the bound. */
	b.data[at] = 0xff;
	b.data[at + 1] = 0xff;
	reseal(&b);
	cr_assert_eq(wire_image__open(b.data, b.len, &img), -EINVAL);
	wire_buf__free(&b);

	/* An entry whose payload is not a PATCH_NAMED, a first line of 0, an
	 * empty qualified name, a NUL in a name. */
	struct wire_image_hdr h = { .build = 1 };
	snprintf(h.program, sizeof h.program, "p");
	uint8_t junk[3] = { 1, 2, 3 };
	struct wire_buf pl = { 0 };
	patch_payload(&pl, "n", 1);
	struct {
		const char *q;
		uint32_t first;
		const uint8_t *p;
		size_t n;
	} bad[] = { { "f", 1, junk, sizeof junk }, { "f", 0, NULL, 0 }, { "", 1, NULL, 0 } };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct wire_buf x = { 0 };
		wire_image__begin(&x, &h);
		wire_image__section(&x, "/a.py", 1);
		struct wire_image_entry e = { .firstlineno = bad[i].first,
					      .payload = bad[i].p ? bad[i].p : pl.data,
					      .payload_len = bad[i].p ? bad[i].n : pl.len };
		snprintf(e.qualname, sizeof e.qualname, "%s", bad[i].q);
		wire_image__entry(&x, &e);
		cr_assert_eq(wire_image__end(&x, 1), 0);
		cr_assert_eq(wire_image__open(x.data, x.len, &img), -EINVAL, "case %zu", i);
		wire_buf__free(&x);
	}
	struct wire_buf x = { 0 };
	wire_image__begin(&x, &h);
	const char nul[] = { '/', 'a', 0, 'b' };
	uint8_t len4[4] = { 4, 0, 0, 0 };
	wire_image__raw(&x, len4, 4);
	wire_image__raw(&x, nul, 4);
	uint8_t zero[4] = { 0 };
	wire_image__raw(&x, zero, 4);
	cr_assert_eq(wire_image__end(&x, 1), 0);
	cr_assert_eq(wire_image__open(x.data, x.len, &img), -EINVAL, "a NUL in a file name");
	wire_buf__free(&x);
	wire_buf__free(&pl);
}

Test(wire_image, size_bound)
{
	struct wire_image img;
	static const uint8_t small[8] = { 0 };
	cr_assert_eq(wire_image__open(small, WIRE_IMAGE_MAX + 1ull, &img), -E2BIG);
	cr_assert_eq(wire_image__open(small, sizeof small, &img), -EINVAL);
}
