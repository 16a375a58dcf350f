/* inspect's object decoders over a mock address space laid out with the
 * build-time probe layout: exact repr() text for every supported type,
 * limits, and clean failure on garbage. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

#include "test_inspect_mock.h"

static struct mock m;

static void setup(void)
{
	mock_init(&m);
}
static void teardown(void)
{
	mock_fini(&m);
}

TestSuite(inspect_values, .init = setup, .fini = teardown);

static char *repr_lim(uint64_t addr, const struct inspect_limits *lim)
{
	static char out[8192];
	struct inspect_str s = { 0 };
	cr_assert_eq(inspect_value__repr(&m.reader, addr, lim, &s), 0);
	cr_assert_not_null(s.p);
	snprintf(out, sizeof(out), "%s", s.p);
	inspect_str__free(&s);
	return out;
}

static char *repr(uint64_t addr)
{
	return repr_lim(addr, NULL);
}

Test(inspect_values, singletons)
{
	cr_expect_str_eq(repr(m.types.none), "None");
	cr_expect_str_eq(repr(m.types.true_obj), "True");
	cr_expect_str_eq(repr(m.types.false_obj), "False");
	cr_expect_str_eq(repr(0), "<NULL>");
}

Test(inspect_values, small_ints)
{
	cr_expect_str_eq(repr(mock_long(&m, 0)), "0");
	cr_expect_str_eq(repr(mock_long(&m, 7)), "7");
	cr_expect_str_eq(repr(mock_long(&m, -42)), "-42");
	cr_expect_str_eq(repr(mock_long(&m, 1073741824)), "1073741824");
	cr_expect_str_eq(repr(mock_long(&m, INT64_MAX)), "9223372036854775807");
	cr_expect_str_eq(repr(mock_long(&m, -INT64_MAX)), "-9223372036854775807");
}

Test(inspect_values, big_ints)
{
	/* 2**100 = digits (30-bit): [0, 0, 0, 1 << 10] */
	uint32_t d[4] = { 0, 0, 0, 1u << 10 };
	cr_expect_str_eq(repr(mock_long_digits(&m, d, 4, 0)), "1267650600228229401496703205376");
	cr_expect_str_eq(repr(mock_long_digits(&m, d, 4, 1)), "-1267650600228229401496703205376");
	/* 10**18 exactly crosses a base-10**9 limb: 10**18 = 0xDE0B6B3A7640000 */
	uint64_t v = 1000000000000000000ull;
	uint32_t e[3] = { (uint32_t)(v & 0x3fffffff), (uint32_t)(v >> 30 & 0x3fffffff),
			  (uint32_t)(v >> 60) };
	cr_expect_str_eq(repr(mock_long_digits(&m, e, 3, 0)), "1000000000000000000");
	/* Too many digits: summarised, not decoded. */
	static uint32_t many[300];
	for (int i = 0; i < 300; i++)
		many[i] = 1;
	uint64_t big = mock_long_digits(&m, many, 300, 0);
	char want[128];
	snprintf(want, sizeof(want), "<int of 300 digits at 0x%llx>", (unsigned long long)big);
	cr_expect_str_eq(repr(big), want);
	/* A digit with bits above 30 is not an int CPython could make. */
	uint32_t bad[2] = { 1, 0x40000000 };
	uint64_t b = mock_long_digits(&m, bad, 2, 0);
	snprintf(want, sizeof(want), "<invalid int at 0x%llx>", (unsigned long long)b);
	cr_expect_str_eq(repr(b), want);
}

Test(inspect_values, floats_like_python_repr)
{
	cr_expect_str_eq(repr(mock_float(&m, 3.5)), "3.5");
	cr_expect_str_eq(repr(mock_float(&m, 0.1)), "0.1");
	cr_expect_str_eq(repr(mock_float(&m, 1.0)), "1.0");
	cr_expect_str_eq(repr(mock_float(&m, -0.0)), "-0.0");
	cr_expect_str_eq(repr(mock_float(&m, 1e16)), "1e+16");
	cr_expect_str_eq(repr(mock_float(&m, 123456789012345.0)), "123456789012345.0");
	cr_expect_str_eq(repr(mock_float(&m, 1e-5)), "1e-05");
	cr_expect_str_eq(repr(mock_float(&m, 0.0001)), "0.0001");
	cr_expect_str_eq(repr(mock_float(&m, 1.0 / 3)), "0.3333333333333333");
	cr_expect_str_eq(repr(mock_float(&m, 2.5e-300)), "2.5e-300");
	cr_expect_str_eq(repr(mock_float(&m, INFINITY)), "inf");
	cr_expect_str_eq(repr(mock_float(&m, -INFINITY)), "-inf");
	cr_expect_str_eq(repr(mock_float(&m, NAN)), "nan");
}

Test(inspect_values, strings_all_kinds)
{
	cr_expect_str_eq(repr(mock_str(&m, "abc")), "'abc'");
	cr_expect_str_eq(repr(mock_str(&m, "")), "''");
	cr_expect_str_eq(repr(mock_str(&m, "it's")), "\"it's\"");
	cr_expect_str_eq(repr(mock_str(&m, "'\"")), "'\\'\"'");
	cr_expect_str_eq(repr(mock_str(&m, "a\tb\nc\\")), "'a\\tb\\nc\\\\'");
	cr_expect_str_eq(repr(mock_str(&m, "\x01\x7f")), "'\\x01\\x7f'");
	cr_expect_str_eq(repr(mock_str(&m, "h\xc3\xa9llo")), "'h\xc3\xa9llo'"); /* latin-1 kind */
	cr_expect_str_eq(repr(mock_str(&m, "\xe2\x98\x83")), "'\xe2\x98\x83'"); /* UCS-2 */
	cr_expect_str_eq(repr(mock_str(&m, "\xf0\x9d\x84\x9e!")),
			 "'\xf0\x9d\x84\x9e!'"); /* UCS-4 */
	uint32_t sur[1] = { 0xdc80 };
	cr_expect_str_eq(repr(mock_str_cps(&m, sur, 1)), "'\\udc80'");
	char name[64];
	cr_expect_eq(inspect_str__read(&m.reader, mock_str(&m, "f\xc3\xbcnf_\xce\xb4"), name,
				       sizeof(name)),
		     0);
	cr_expect_str_eq(name, "f\xc3\xbcnf_\xce\xb4");
	cr_expect_eq(inspect_str__read(&m.reader, mock_long(&m, 3), name, sizeof(name)), -EINVAL);
}

/* inspect_str__read's one-read path for compact ASCII strings answers what
 * the general path (code points, re-encoded) did: whole up to 256
 * characters, the first 256 beyond, cut at the buffer; an ASCII flag the
 * bytes deny is decided by the general path (Latin-1 to UTF-8). */
Test(inspect_values, ascii_names_in_one_read)
{
	char name[512], s[301];
	cr_expect_eq(inspect_str__read(&m.reader, mock_str(&m, "Handler.get"), name, sizeof(name)),
		     0);
	cr_expect_str_eq(name, "Handler.get");
	cr_expect_eq(inspect_str__read(&m.reader, mock_str(&m, ""), name, sizeof(name)), 0);
	cr_expect_str_eq(name, "");
	memset(s, 'p', 300);
	s[300] = 0;
	cr_expect_eq(inspect_str__read(&m.reader, mock_str(&m, s), name, sizeof(name)), 0);
	cr_expect_eq(strlen(name), 256);
	char small[8];
	cr_expect_eq(inspect_str__read(&m.reader, mock_str(&m, "abcdefghij"), small, sizeof(small)),
		     0);
	cr_expect_str_eq(small, "abcdefg");
	uint64_t liar = mock_str(&m, "caf?");
	uint8_t e9 = 0xe9;
	mock_put(&m, liar, m.off.us_ascii_size + 3, &e9, 1);
	cr_expect_eq(inspect_str__read(&m.reader, liar, name, sizeof(name)), 0);
	cr_expect_str_eq(name, "caf\xc3\xa9");
}

Test(inspect_values, long_strings_are_cut)
{
	char s[501];
	memset(s, 'x', 500);
	s[500] = 0;
	struct inspect_limits lim = INSPECT_LIMITS_DEFAULT;
	lim.max_str = 10;
	cr_expect_str_eq(repr_lim(mock_str(&m, s), &lim), "'xxxxxxxxxx...'");
	lim.max_str = 1000;
	lim.max_out = 20;
	cr_expect_str_eq(repr_lim(mock_str(&m, s), &lim), "'xxxxxxxxxxxxxxxx...");
}

Test(inspect_values, bytes)
{
	cr_expect_str_eq(repr(mock_bytes(&m, "ab\x00\xff'", 5)), "b\"ab\\x00\\xff'\"");
	cr_expect_str_eq(repr(mock_bytes(&m, "", 0)), "b''");
	cr_expect_str_eq(repr(mock_bytes(&m, "a\nb\\", 4)), "b'a\\nb\\\\'");
}

Test(inspect_values, sequences)
{
	uint64_t one = mock_long(&m, 1), two = mock_long(&m, 2);
	uint64_t t1[1] = { one };
	cr_expect_str_eq(repr(mock_tuple(&m, t1, 1)), "(1,)");
	cr_expect_str_eq(repr(mock_tuple(&m, NULL, 0)), "()");
	uint64_t items[3] = { one, mock_str(&m, "x"), m.types.none };
	uint64_t inner = mock_tuple(&m, items, 3);
	uint64_t l[3] = { inner, two, mock_list(&m, NULL, 0) };
	cr_expect_str_eq(repr(mock_list(&m, l, 3)), "[(1, 'x', None), 2, []]");
}

Test(inspect_values, limits_items_and_depth)
{
	uint64_t items[40];
	for (int i = 0; i < 40; i++)
		items[i] = mock_long(&m, i);
	cr_expect_str_eq(repr(mock_list(&m, items, 40)),
			 "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, ...]");
	uint64_t a = mock_list(&m, items, 1);
	uint64_t b = mock_list(&m, &a, 1);
	uint64_t c = mock_list(&m, &b, 1);
	uint64_t d = mock_list(&m, &c, 1);
	cr_expect_str_eq(repr(d), "[[[[...]]]]");
	cr_expect_str_eq(repr(c), "[[[0]]]");
}

Test(inspect_values, dicts_every_kind)
{
	uint64_t k[3] = { mock_str(&m, "a"), mock_str(&m, "b"), mock_str(&m, "c") };
	uint64_t v[3] = { mock_long(&m, 1), m.types.none, mock_float(&m, 2.5) };
	cr_expect_str_eq(repr(mock_dict(&m, k, v, 3, 1, 0)), "{'a': 1, 'b': None, 'c': 2.5}");
	cr_expect_str_eq(repr(mock_dict(&m, k, v, 3, 1, 1)), "{'a': 1, 'b': None, 'c': 2.5}");
	uint64_t gk[2] = { mock_long(&m, 2), mock_str(&m, "k") };
	uint64_t gv[2] = { mock_bytes(&m, "z", 1), m.types.true_obj };
	cr_expect_str_eq(repr(mock_dict(&m, gk, gv, 2, 0, 0)), "{2: b'z', 'k': True}");
	/* A deleted entry (NULL key and value) is skipped. */
	uint64_t dk[3] = { k[0], 0, k[2] };
	uint64_t dv[3] = { v[0], 0, v[2] };
	cr_expect_str_eq(repr(mock_dict(&m, dk, dv, 3, 1, 0)), "{'a': 1, 'c': 2.5}");
	cr_expect_str_eq(repr(mock_dict(&m, NULL, NULL, 0, 1, 0)), "{}");
}

Test(inspect_values, sets)
{
	uint64_t k[3] = { mock_long(&m, 1), m.types.set_dummy, mock_long(&m, 3) };
	cr_expect_str_eq(repr(mock_set(&m, k, 3, 8, 0)), "{1, 3}");
	cr_expect_str_eq(repr(mock_set(&m, k, 0, 8, 0)), "set()");
	cr_expect_str_eq(repr(mock_set(&m, k, 1, 8, 1)), "frozenset({1})");
	cr_expect_str_eq(repr(mock_set(&m, k, 0, 8, 1)), "frozenset()");
}

Test(inspect_values, other_types_and_garbage)
{
	uint64_t t = mock_type(&m, "Widget");
	uint64_t o = mock_obj(&m, t, 32);
	char want[128];
	snprintf(want, sizeof(want), "<Widget at 0x%llx>", (unsigned long long)o);
	cr_expect_str_eq(repr(o), want);
	char tn[64];
	cr_expect_eq(inspect_value__type_name(&m.reader, o, tn, sizeof(tn)), 0);
	cr_expect_str_eq(tn, "Widget");
	/* Unmapped, misaligned, and a type pointer into nowhere. */
	cr_expect_str_eq(repr(0xdead0000), "<unreadable 0xdead0000>");
	cr_expect_str_eq(repr(MOCK_BASE + 4097), "<unreadable 0x10001001>");
	uint64_t g = mock_obj(&m, 0x12345678, 32);
	snprintf(want, sizeof(want), "<object at 0x%llx>", (unsigned long long)g);
	cr_expect_str_eq(repr(g), want);
	/* A list claiming 2**40 items whose array is garbage. */
	uint64_t l = mock_list(&m, NULL, 0);
	int64_t huge = (int64_t)1 << 41;
	mock_put(&m, l, m.off.ob_size, &huge, 8);
	snprintf(want, sizeof(want), "<invalid list at 0x%llx>", (unsigned long long)l);
	cr_expect_str_eq(repr(l), want);
	/* A str whose state says "not ready". */
	uint64_t s = mock_str(&m, "abc");
	mock_bits(&m, s, m.off.us_ready_bit, 1, 0);
	snprintf(want, sizeof(want), "<invalid str at 0x%llx>", (unsigned long long)s);
	cr_expect_str_eq(repr(s), want);
}

Test(inspect_values, self_referencing_list_is_bounded)
{
	uint64_t l = mock_list(&m, NULL, 0);
	uint64_t arr = mock_alloc(&m, 16);
	int64_t one = 2;
	mock_put(&m, l, m.off.ob_size, &one, 8);
	mock_put64(&m, l, m.off.list_item, arr);
	mock_put64(&m, arr, 0, l);
	mock_put64(&m, arr, 8, l);
	cr_expect_str_eq(repr(l),
			 "[[[[...], [...]], [[...], [...]]], [[[...], [...]], [[...], [...]]]]");
}

Test(inspect_values, dict_lookup_and_instance_attributes)
{
	uint64_t k[2] = { mock_str(&m, "threading"), mock_str(&m, "sys") };
	uint64_t v[2] = { mock_long(&m, 11), mock_long(&m, 22) };
	uint64_t d = mock_dict(&m, k, v, 2, 1, 0);
	uint64_t got = 0;
	cr_expect_eq(inspect_dict__get(&m.reader, d, "sys", &got), 0);
	cr_expect_eq(got, v[1]);
	cr_expect_eq(inspect_dict__get(&m.reader, d, "os", &got), -ENOENT);
	cr_expect_eq(inspect_dict__get(&m.reader, v[0], "sys", &got), -EINVAL);

	/* A heap-type instance with a managed dict: values array at obj[-4],
	 * keys shared in the type's ht_cached_keys (3.11). */
	uint64_t names[2] = { mock_str(&m, "_name"), mock_str(&m, "_ident") };
	uint64_t vals[2] = { mock_str(&m, "worker-1"), mock_long(&m, 7) };
	uint64_t split = mock_dict(&m, names, vals, 2, 1, 1);
	uint64_t keys, values;
	memcpy(&keys, mock_at(&m, split + (uint64_t)m.off.dict_keys), 8);
	memcpy(&values, mock_at(&m, split + (uint64_t)m.off.dict_values), 8);
	uint64_t type = mock_type(&m, "Thread");
	uint64_t flags = 1u << 4 | 1u << 9; /* MANAGED_DICT | HEAPTYPE */
	mock_put(&m, type, m.off.tp_flags, &flags, 8);
	mock_put64(&m, type, m.off.ht_cached_keys, keys);
	uint64_t pre = mock_alloc(&m, 32 + 64);
	uint64_t obj = pre + 32;
	mock_put64(&m, obj, -32, values);
	mock_put64(&m, obj, m.off.ob_type, type);
	cr_expect_eq(inspect_object__attr(&m.reader, obj, "_name", &got), 0);
	cr_expect_eq(got, vals[0]);
	cr_expect_eq(inspect_object__attr(&m.reader, obj, "_target", &got), -ENOENT);
	/* Materialized __dict__ instead (values NULL, dict at obj[-3]). */
	mock_put64(&m, obj, -32, 0);
	mock_put64(&m, obj, -24, d);
	cr_expect_eq(inspect_object__attr(&m.reader, obj, "threading", &got), 0);
	cr_expect_eq(got, v[0]);
	/* Not a managed-dict type. */
	cr_expect_eq(inspect_object__attr(&m.reader, v[0], "_name", &got), -ENOENT);

	uint64_t mag = 0;
	bool neg = false;
	cr_expect_eq(inspect_long__read(&m.reader, mock_long(&m, -140234567890123), &mag, &neg), 0);
	cr_expect_eq(mag, 140234567890123ull);
	cr_expect(neg);
	uint32_t big[4] = { 1, 1, 1, 1 };
	cr_expect_eq(inspect_long__read(&m.reader, mock_long_digits(&m, big, 4, 0), &mag, &neg),
		     -ERANGE);
}
