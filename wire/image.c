/* wire/: the boot image's encoder and decoder (docs/formats/boot-image.md).
 *
 * Little-endian integers; a str or blob is a u32 length and that many
 * bytes (a str holds no NUL). The last 8 bytes are the FNV-1a 64 of all
 * the bytes before them: a torn or edited file is refused whole.
 */
#include "wire/image.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint64_t wire_image__fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* ---- encoding ---- */

static void put(struct wire_buf *b, const void *src, size_t n)
{
	wire_buf__put(b, src, n);
}

static void put_uint(struct wire_buf *b, uint64_t v, int size)
{
	uint8_t x[8];
	for (int i = 0; i < size; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	put(b, x, (size_t)size);
}

static void put_blob(struct wire_buf *b, const void *p, size_t n)
{
	if (n > WIRE_IMAGE_MAX) {
		b->err = -E2BIG;
		return;
	}
	put_uint(b, n, 4);
	put(b, p, n);
}

/* Where the header's section count is (after magic, version, four
 * fixed fields and the program). */
#define HDR_FIXED (8 + 4 + 4 + 8 + 8 + 8)

void wire_image__begin(struct wire_buf *b, const struct wire_image_hdr *h)
{
	put(b, WIRE_IMAGE_MAGIC, 8);
	put_uint(b, WIRE_IMAGE_VERSION, 4);
	put_uint(b, h->py_version, 4);
	put_uint(b, h->index_hash, 8);
	put_uint(b, h->build, 8);
	put_uint(b, (uint64_t)h->valid_until, 8);
	put_blob(b, h->program, strlen(h->program));
	put_uint(b, 0, 4); /* nsections: wire_image__end */
}

void wire_image__section(struct wire_buf *b, const char *file, uint32_t nentries)
{
	put_blob(b, file, strlen(file));
	put_uint(b, nentries, 4);
}

void wire_image__entry(struct wire_buf *b, const struct wire_image_entry *e)
{
	put_blob(b, e->qualname, strlen(e->qualname));
	put_uint(b, e->firstlineno, 4);
	put_uint(b, e->line, 4);
	put_uint(b, e->key, 8);
	put_blob(b, e->payload, e->payload_len);
}

void wire_image__raw(struct wire_buf *b, const void *p, size_t n)
{
	put(b, p, n);
}

int wire_image__end(struct wire_buf *b, uint32_t nsections)
{
	if (b->err)
		return b->err;
	if (b->len < HDR_FIXED + 8)
		return -EINVAL;
	uint32_t plen = 0;
	for (int i = 0; i < 4; i++)
		plen |= (uint32_t)b->data[HDR_FIXED + i] << (8 * i);
	size_t at = HDR_FIXED + 4 + plen;
	for (int i = 0; i < 4; i++)
		b->data[at + i] = (uint8_t)(nsections >> (8 * i));
	put_uint(b, wire_image__fnv(WIRE_IMAGE_FNV_SEED, b->data, b->len), 8);
	if (!b->err && b->len > WIRE_IMAGE_MAX)
		return -E2BIG;
	return b->err;
}

/* ---- decoding: a cursor that fails once and stays failed ---- */

struct cur {
	const uint8_t *p, *end;
	bool bad;
};

static const uint8_t *take(struct cur *c, size_t n)
{
	if (c->bad || (size_t)(c->end - c->p) < n) {
		c->bad = true;
		return NULL;
	}
	const uint8_t *at = c->p;
	c->p += n;
	return at;
}

static uint64_t get_uint(struct cur *c, int size)
{
	const uint8_t *x = take(c, (size_t)size);
	uint64_t v = 0;
	for (int i = 0; x && i < size; i++)
		v |= (uint64_t)x[i] << (8 * i);
	return v;
}

static const uint8_t *get_blob(struct cur *c, size_t *n)
{
	*n = (size_t)get_uint(c, 4);
	return take(c, *n);
}

/* A str of at most max bytes, no NUL, into dst (max + 1 bytes). */
static void get_str(struct cur *c, char *dst, size_t max)
{
	size_t n;
	const uint8_t *s = get_blob(c, &n);
	if (!s || n > max || memchr(s, 0, n)) {
		c->bad = true;
		dst[0] = 0;
		return;
	}
	memcpy(dst, s, n);
	dst[n] = 0;
}

static void get_section(struct cur *c, struct wire_image_section *s)
{
	get_str(c, s->file, WIRE_IMAGE_FILE_MAX);
	s->nentries = (uint32_t)get_uint(c, 4);
	if (s->nentries > WIRE_IMAGE_MAX_ENTRIES)
		c->bad = true;
	s->entries = c->p;
}

static void get_entry(struct cur *c, struct wire_image_entry *e)
{
	get_str(c, e->qualname, WIRE_IMAGE_QUALNAME_MAX);
	e->firstlineno = (uint32_t)get_uint(c, 4);
	e->line = (uint32_t)get_uint(c, 4);
	e->key = get_uint(c, 8);
	e->payload = get_blob(c, &e->payload_len);
}

int wire_image__open(const uint8_t *p, size_t len, struct wire_image *img)
{
	memset(img, 0, sizeof *img);
	if (len > WIRE_IMAGE_MAX)
		return -E2BIG;
	if (len < HDR_FIXED + 4 + 4 + 8 || memcmp(p, WIRE_IMAGE_MAGIC, 8))
		return -EINVAL;
	uint64_t sum = 0;
	for (int i = 0; i < 8; i++)
		sum |= (uint64_t)p[len - 8 + (size_t)i] << (8 * i);
	if (sum != wire_image__fnv(WIRE_IMAGE_FNV_SEED, p, len - 8))
		return -EINVAL;
	struct cur c = { p + 8, p + len - 8, false };
	if (get_uint(&c, 4) != WIRE_IMAGE_VERSION)
		return -EINVAL;
	struct wire_image_hdr *h = &img->hdr;
	h->py_version = (uint32_t)get_uint(&c, 4);
	h->index_hash = get_uint(&c, 8);
	h->build = get_uint(&c, 8);
	h->valid_until = (int64_t)get_uint(&c, 8);
	get_str(&c, h->program, sizeof h->program - 1);
	h->nsections = (uint32_t)get_uint(&c, 4);
	if (c.bad || h->nsections > WIRE_IMAGE_MAX_SECTIONS)
		return -EINVAL;
	img->sections = c.p;
	img->end = c.end;
	/* Every section and entry once: the walks below cannot fail later. */
	for (uint32_t i = 0; i < h->nsections && !c.bad; i++) {
		struct wire_image_section s;
		get_section(&c, &s);
		for (uint32_t k = 0; k < s.nentries && !c.bad; k++) {
			struct wire_image_entry e;
			struct wire_patch pt;
			get_entry(&c, &e);
			if (!c.bad &&
			    (!e.firstlineno || !e.qualname[0] ||
			     wire_msg__decode_patch_named(e.payload, e.payload + e.payload_len,
							  &pt)))
				c.bad = true;
		}
	}
	if (c.bad || c.p != c.end) {
		memset(img, 0, sizeof *img);
		return -EINVAL;
	}
	return 0;
}

int wire_image__next_section(const struct wire_image *img, const uint8_t **at,
			     struct wire_image_section *s, uint32_t *index)
{
	if (*at >= img->end)
		return 0;
	struct cur c = { *at, img->end, false };
	get_section(&c, s);
	/* Skip the entries to find the next section. */
	struct wire_image_entry e;
	for (uint32_t k = 0; k < s->nentries && !c.bad; k++)
		get_entry(&c, &e);
	if (c.bad)
		return 0;
	s->end = c.p;
	s->index = *at == img->sections ? 0 : *index + 1;
	*index = s->index;
	*at = c.p;
	return 1;
}

int wire_image__next_entry(const struct wire_image_section *s, const uint8_t **at,
			   struct wire_image_entry *e)
{
	if (*at >= s->end)
		return 0;
	struct cur c = { *at, s->end, false };
	get_entry(&c, e);
	if (c.bad)
		return 0;
	*at = c.p;
	return 1;
}
