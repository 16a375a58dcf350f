/* A fake remote address space for inspect's decoders: objects are laid out
 * with the build-time probe layout (the installed 3.11 headers) in a buffer
 * that pretends to live at MOCK_BASE. Shared by test_inspect_* files. */
#ifndef TEST_INSPECT_MOCK_H
#define TEST_INSPECT_MOCK_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "inspect/inspect.h"

#define MOCK_BASE 0x10000000ull
#define MOCK_SIZE (4u << 20)

struct mock {
	uint8_t *mem;
	size_t used;
	struct inspect_offsets off;
	struct inspect_types types;
	struct inspect_reader reader;
	unsigned reads;
};

static inline int mock_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	struct mock *m = ctx;
	m->reads++;
	if (addr < MOCK_BASE || addr + len > MOCK_BASE + m->used || addr + len < addr)
		return -EFAULT;
	memcpy(buf, m->mem + (addr - MOCK_BASE), len);
	return 0;
}

static uint8_t *mock_at(struct mock *m, uint64_t addr)
{
	return m->mem + (addr - MOCK_BASE);
}

static inline uint64_t mock_alloc(struct mock *m, size_t n)
{
	size_t at = (m->used + 15) & ~(size_t)15;
	if (at + n > MOCK_SIZE)
		abort();
	m->used = at + n;
	memset(m->mem + at, 0, n);
	return MOCK_BASE + at;
}

static inline void mock_put(struct mock *m, uint64_t addr, int64_t off, const void *v, size_t n)
{
	memcpy(mock_at(m, addr + (uint64_t)off), v, n);
}
static inline void mock_put64(struct mock *m, uint64_t addr, int64_t off, uint64_t v)
{
	mock_put(m, addr, off, &v, 8);
}

static inline uint64_t mock_cstr(struct mock *m, const char *s)
{
	uint64_t a = mock_alloc(m, strlen(s) + 1);
	memcpy(mock_at(m, a), s, strlen(s) + 1);
	return a;
}

static inline uint64_t mock_type(struct mock *m, const char *name)
{
	uint64_t t = mock_alloc(m, 1024);
	mock_put64(m, t, m->off.tp_name, mock_cstr(m, name));
	return t;
}

static inline uint64_t mock_obj(struct mock *m, uint64_t type, size_t size)
{
	uint64_t o = mock_alloc(m, size);
	mock_put64(m, o, m->off.ob_refcnt, 1);
	mock_put64(m, o, m->off.ob_type, type);
	return o;
}

static inline void mock_init(struct mock *m)
{
	memset(m, 0, sizeof(*m));
	m->mem = calloc(1, MOCK_SIZE);
	inspect_offsets__from_probe(&m->off);
	m->used = 4096; /* keep the first page unused */
	struct inspect_types *t = &m->types;
	t->type_long = mock_type(m, "int");
	t->type_bool = mock_type(m, "bool");
	t->type_float = mock_type(m, "float");
	t->type_str = mock_type(m, "str");
	t->type_bytes = mock_type(m, "bytes");
	t->type_tuple = mock_type(m, "tuple");
	t->type_list = mock_type(m, "list");
	t->type_dict = mock_type(m, "dict");
	t->type_set = mock_type(m, "set");
	t->type_frozenset = mock_type(m, "frozenset");
	t->type_code = mock_type(m, "code");
	t->type_cell = mock_type(m, "cell");
	t->type_func = mock_type(m, "function");
	uint64_t nonetype = mock_type(m, "NoneType");
	t->none = mock_obj(m, nonetype, 16);
	t->true_obj = mock_obj(m, t->type_bool, 32);
	t->false_obj = mock_obj(m, t->type_bool, 32);
	t->set_dummy = mock_obj(m, mock_type(m, "set_dummy"), 16);
	m->reader.read = mock_read;
	m->reader.ctx = m;
	m->reader.off = &m->off;
	m->reader.types = &m->types;
}

static inline void mock_fini(struct mock *m)
{
	free(m->mem);
}

/* Set a bitfield given its bit position from the object's start. */
static inline void mock_bits(struct mock *m, uint64_t obj, int64_t bitpos, unsigned nbits,
			     uint32_t v)
{
	uint8_t *p = mock_at(m, obj);
	for (unsigned i = 0; i < nbits; i++) {
		int64_t b = bitpos + i;
		if (v >> i & 1)
			p[b / 8] |= (uint8_t)(1u << (b % 8));
		else
			p[b / 8] &= (uint8_t) ~(1u << (b % 8));
	}
}

/* A compact str of the given kind (1, 2, 4) from code points. */
static inline uint64_t mock_str_cps(struct mock *m, const uint32_t *cps, size_t n)
{
	uint32_t max = 0;
	for (size_t i = 0; i < n; i++)
		max = cps[i] > max ? cps[i] : max;
	unsigned kind = max < 0x100 ? 1 : max < 0x10000 ? 2 : 4;
	int ascii = max < 0x80;
	size_t hdr = (size_t)(ascii ? m->off.us_ascii_size : m->off.us_compact_size);
	uint64_t o = mock_obj(m, m->types.type_str, hdr + (n + 1) * kind);
	int64_t len = (int64_t)n;
	mock_put(m, o, m->off.us_length, &len, 8);
	mock_bits(m, o, m->off.us_kind_bit, 3, kind);
	mock_bits(m, o, m->off.us_compact_bit, 1, 1);
	mock_bits(m, o, m->off.us_ascii_bit, 1, (uint32_t)ascii);
	mock_bits(m, o, m->off.us_ready_bit, 1, 1);
	for (size_t i = 0; i < n; i++)
		mock_put(m, o, (int64_t)(hdr + i * kind), &cps[i], kind); /* little endian */
	return o;
}

/* From UTF-8. */
static inline uint64_t mock_str(struct mock *m, const char *s)
{
	uint32_t cps[4096];
	size_t n = 0;
	const unsigned char *p = (const unsigned char *)s;
	while (*p && n < 4096) {
		uint32_t c = *p;
		int extra = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
		if (extra)
			c &= (0x3f >> extra);
		p++;
		for (int i = 0; i < extra; i++)
			c = c << 6 | (*p++ & 0x3f);
		cps[n++] = c;
	}
	return mock_str_cps(m, cps, n);
}

/* An int from a signed 64-bit value (30-bit digits). */
static inline uint64_t mock_long_digits(struct mock *m, const uint32_t *d, size_t nd, int neg)
{
	uint64_t o = mock_obj(m, m->types.type_long, (size_t)m->off.long_digit + 4 * (nd + 1));
	int64_t size = neg ? -(int64_t)nd : (int64_t)nd;
	mock_put(m, o, m->off.ob_size, &size, 8);
	for (size_t i = 0; i < nd; i++)
		mock_put(m, o, m->off.long_digit + 4 * (int64_t)i, &d[i], 4);
	return o;
}

static inline uint64_t mock_long(struct mock *m, int64_t v)
{
	uint32_t d[3];
	size_t nd = 0;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	while (u) {
		d[nd++] = (uint32_t)(u & 0x3fffffff);
		u >>= 30;
	}
	return mock_long_digits(m, d, nd, v < 0);
}

static inline uint64_t mock_float(struct mock *m, double v)
{
	uint64_t o = mock_obj(m, m->types.type_float, (size_t)m->off.float_fval + 8);
	mock_put(m, o, m->off.float_fval, &v, 8);
	return o;
}

static inline uint64_t mock_bytes(struct mock *m, const void *b, size_t n)
{
	uint64_t o = mock_obj(m, m->types.type_bytes, (size_t)m->off.bytes_sval + n + 1);
	int64_t size = (int64_t)n;
	mock_put(m, o, m->off.ob_size, &size, 8);
	mock_put(m, o, m->off.bytes_sval, b, n);
	return o;
}

static inline uint64_t mock_tuple(struct mock *m, const uint64_t *items, size_t n)
{
	uint64_t o = mock_obj(m, m->types.type_tuple, (size_t)m->off.tuple_item + 8 * n + 8);
	int64_t size = (int64_t)n;
	mock_put(m, o, m->off.ob_size, &size, 8);
	mock_put(m, o, m->off.tuple_item, items, 8 * n);
	return o;
}

static inline uint64_t mock_list(struct mock *m, const uint64_t *items, size_t n)
{
	uint64_t o = mock_obj(m, m->types.type_list, 64);
	uint64_t arr = mock_alloc(m, 8 * n + 8);
	int64_t size = (int64_t)n;
	mock_put(m, o, m->off.ob_size, &size, 8);
	mock_put64(m, o, m->off.list_item, arr);
	memcpy(mock_at(m, arr), items, 8 * n);
	return o;
}

/* A dict: kind 0 (general) or 1 (unicode keys); split: values array apart. */
static inline uint64_t mock_dict(struct mock *m, const uint64_t *k, const uint64_t *v, size_t n,
				 int kind, int split)
{
	uint8_t log2 = 3;
	while (((size_t)1 << log2) * 2 < n * 3 + 1)
		log2++;
	uint8_t log2_index_bytes = (uint8_t)(log2 + (log2 < 8 ? 0 : log2 < 16 ? 1 : 2));
	int64_t esize = kind == 0 ? m->off.dke_size : m->off.dku_size;
	int64_t koff = kind == 0 ? m->off.dke_key : m->off.dku_key;
	int64_t voff = kind == 0 ? m->off.dke_value : m->off.dku_value;
	uint64_t keys = mock_alloc(m, (size_t)m->off.dk_indices + ((size_t)1 << log2_index_bytes) +
					      (size_t)esize * (n + 1));
	uint8_t kd = (uint8_t)(split ? 2 : kind);
	int64_t nent = (int64_t)n;
	mock_put(m, keys, m->off.dk_log2_size, &log2, 1);
	mock_put(m, keys, m->off.dk_log2_index_bytes, &log2_index_bytes, 1);
	mock_put(m, keys, m->off.dk_kind, &kd, 1);
	mock_put(m, keys, m->off.dk_nentries, &nent, 8);
	uint64_t entries = keys + (uint64_t)m->off.dk_indices + ((uint64_t)1 << log2_index_bytes);
	uint64_t values = split ? mock_alloc(m, 8 * n + 8) : 0;
	int64_t used = 0;
	for (size_t i = 0; i < n; i++) {
		mock_put64(m, entries + i * (uint64_t)esize, koff, k[i]);
		if (split)
			mock_put64(m, values, m->off.dv_values + 8 * (int64_t)i, v[i]);
		else
			mock_put64(m, entries + i * (uint64_t)esize, voff, v[i]);
		used += k[i] && v[i];
	}
	uint64_t d = mock_obj(m, m->types.type_dict, 64);
	mock_put(m, d, m->off.dict_used, &used, 8);
	mock_put64(m, d, m->off.dict_keys, keys);
	mock_put64(m, d, m->off.dict_values, values);
	return d;
}

static inline uint64_t mock_set(struct mock *m, const uint64_t *k, size_t n, size_t slots,
				int frozen)
{
	uint64_t table = mock_alloc(m, (size_t)m->off.se_size * slots);
	for (size_t i = 0; i < n; i++)
		mock_put64(m, table + (i * 3 % slots) * (uint64_t)m->off.se_size, m->off.se_key,
			   k[i]);
	uint64_t s = mock_obj(m, frozen ? m->types.type_frozenset : m->types.type_set, 256);
	int64_t used = 0, mask = (int64_t)slots - 1;
	for (size_t i = 0; i < n; i++)
		used += k[i] != m->types.set_dummy;
	mock_put(m, s, m->off.set_used, &used, 8);
	mock_put(m, s, m->off.set_mask, &mask, 8);
	mock_put64(m, s, m->off.set_table, table);
	return s;
}

#endif
