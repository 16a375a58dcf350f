/* inspect/value.c: bounded repr() of objects in another process.
 *
 * Every read goes through the caller's reader; every length, count and
 * pointer read from the target is checked against limits before use. A
 * value that cannot be decoded becomes descriptive text, never an error:
 * only running out of memory fails. Layouts: docs/formats/interpreter-structs.md.
 *
 * One file over 800 lines: one bounded reader per CPython type (str,
 * bytes, int, float, containers, instances), all under the same limits.
 */
#include "inspect/inspect-priv.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds on what a sane 3.11 object can claim, before any limit of ours. */
#define MAX_SANE_LEN ((int64_t)1 << 40)
#define MAX_SCAN 4096 /* dict/set slots examined at most */
#define TP_NAME_MAX 128

/* tp_flags bits (Include/object.h) used to tell subclasses apart. */
#define TPFLAGS_UNICODE_SUBCLASS (1UL << 28)

int inspect__read(const struct inspect_reader *r, uint64_t addr, void *buf, size_t len)
{
	if (len == 0)
		return 0;
	if (addr < INSPECT_MIN_ADDR || addr + len < addr)
		return -EFAULT;
	return r->read(r->ctx, addr, buf, len);
}

int inspect__read_u64(const struct inspect_reader *r, uint64_t addr, uint64_t *v)
{
	return inspect__read(r, addr, v, sizeof(*v));
}

/* ---- output strings ---- */

void inspect_str__free(struct inspect_str *s)
{
	if (!s)
		return;
	free(s->p);
	s->p = NULL;
	s->len = s->cap = 0;
	s->truncated = false;
}

static int str_reserve(struct inspect_str *s, size_t need)
{
	if (s->len + need + 1 <= s->cap)
		return 0;
	size_t cap = s->cap ? s->cap : 64;
	while (cap < s->len + need + 1)
		cap *= 2;
	char *p = realloc(s->p, cap);
	if (!p)
		return -ENOMEM;
	s->p = p;
	s->cap = cap;
	return 0;
}

/* Append, stopping at limit bytes in total; past it, mark truncated and
 * end with "...". */
int inspect_str__putn(struct inspect_str *s, const char *p, size_t n, size_t limit)
{
	if (s->truncated)
		return 0;
	if (limit < 4)
		limit = 4;
	if (s->len + n > limit - 3) {
		size_t room = s->len < limit - 3 ? limit - 3 - s->len : 0;
		/* Cut on a UTF-8 boundary. */
		while (room > 0 && room < n && ((unsigned char)p[room] & 0xc0) == 0x80)
			room--;
		if (str_reserve(s, room + 3))
			return -ENOMEM;
		memcpy(s->p + s->len, p, room);
		memcpy(s->p + s->len + room, "...", 3);
		s->len += room + 3;
		s->p[s->len] = 0;
		s->truncated = true;
		return 0;
	}
	if (str_reserve(s, n))
		return -ENOMEM;
	memcpy(s->p + s->len, p, n);
	s->len += n;
	s->p[s->len] = 0;
	return 0;
}

static int puts_(struct inspect_str *s, const char *p, size_t limit)
{
	return inspect_str__putn(s, p, strlen(p), limit);
}

int inspect_str__printf(struct inspect_str *s, size_t limit, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	return inspect_str__putn(s, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1,
				 limit);
}

int inspect_str__put_utf8(struct inspect_str *s, uint32_t cp, size_t limit)
{
	char b[4];
	size_t n;
	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | cp >> 6);
		b[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | cp >> 12);
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (char)(0xf0 | cp >> 18);
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return inspect_str__putn(s, b, n, limit);
}

/* ---- object basics ---- */

int inspect__obj_type(const struct inspect_reader *r, uint64_t addr, uint64_t *type)
{
	if (r->off->ob_type < 0)
		return -EINVAL;
	int err = inspect__read_u64(r, addr + (uint64_t)r->off->ob_type, type);
	if (!err && *type < INSPECT_MIN_ADDR)
		err = -EINVAL;
	return err;
}

static int obj_size(const struct inspect_reader *r, uint64_t addr, int64_t *size)
{
	if (r->off->ob_size < 0)
		return -EINVAL;
	return inspect__read(r, addr + (uint64_t)r->off->ob_size, size, sizeof(*size));
}

int inspect__cstr(const struct inspect_reader *r, uint64_t p, char *buf, size_t len)
{
	char tmp[TP_NAME_MAX];
	if (len == 0)
		return -EINVAL;
	snprintf(buf, len, "?");
	/* A C string of unknown length: read what can be read, shrinking the
	 * window when it crosses into an unmapped page. */
	size_t n = sizeof(tmp) - 1;
	while (n > 0 && inspect__read(r, p, tmp, n)) {
		size_t to_page = (size_t)(((p | 4095) + 1) - p);
		n = n > to_page ? to_page : n / 2;
	}
	if (n == 0)
		return -EFAULT;
	tmp[n] = 0;
	size_t i = 0;
	for (; tmp[i] && i + 1 < len; i++) {
		unsigned char c = (unsigned char)tmp[i];
		if (c < 0x20 || c >= 0x7f)
			return snprintf(buf, len, "?"), -EINVAL;
		buf[i] = (char)c;
	}
	buf[i] = 0;
	return i ? 0 : -EINVAL;
}

int inspect__type_name(const struct inspect_reader *r, uint64_t type, char *buf, size_t len)
{
	uint64_t p;
	if (len == 0)
		return -EINVAL;
	snprintf(buf, len, "?");
	if (r->off->tp_name < 0 || inspect__read_u64(r, type + (uint64_t)r->off->tp_name, &p))
		return -EFAULT;
	return inspect__cstr(r, p, buf, len);
}

int inspect_value__type_name(const struct inspect_reader *r, uint64_t addr, char *buf, size_t len)
{
	uint64_t type;
	if (len)
		snprintf(buf, len, "?");
	int err = inspect__obj_type(r, addr, &type);
	if (err)
		return err;
	return inspect__type_name(r, type, buf, len);
}

int inspect__type_flags(const struct inspect_reader *r, uint64_t type, uint64_t *flags)
{
	if (r->off->tp_flags < 0)
		return -EINVAL;
	return inspect__read_u64(r, type + (uint64_t)r->off->tp_flags, flags);
}

/* ---- str ---- */

struct ustr {
	int64_t length;
	unsigned kind; /* 1, 2 or 4 bytes a character */
	bool ascii;    /* compact ASCII: kind 1, every byte below 0x80 */
	uint64_t data;
};

static int ustr_open(const struct inspect_reader *r, uint64_t addr, struct ustr *u)
{
	const struct inspect_offsets *o = r->off;
	uint32_t state;
	int err = inspect__read(r, addr + (uint64_t)o->us_length, &u->length, sizeof(u->length));
	if (!err)
		err = inspect__read(r, addr + (uint64_t)o->us_state, &state, sizeof(state));
	if (err)
		return err;
	int base = (int)o->us_state * 8;
	if (o->us_kind_bit < base || o->us_kind_bit - base > 29 || o->us_compact_bit - base > 31 ||
	    o->us_ascii_bit - base > 31 || o->us_ready_bit - base > 31 ||
	    o->us_compact_bit < base || o->us_ascii_bit < base || o->us_ready_bit < base)
		return -EINVAL;
	u->kind = (state >> (o->us_kind_bit - base)) & 7;
	unsigned compact = (state >> (o->us_compact_bit - base)) & 1;
	unsigned ascii = (state >> (o->us_ascii_bit - base)) & 1;
	unsigned ready = (state >> (o->us_ready_bit - base)) & 1;
	if (!ready || (u->kind != 1 && u->kind != 2 && u->kind != 4) || (ascii && u->kind != 1) ||
	    u->length < 0 || u->length > MAX_SANE_LEN)
		return -EINVAL;
	u->ascii = compact && ascii;
	if (compact)
		u->data = addr + (uint64_t)(ascii ? o->us_ascii_size : o->us_compact_size);
	else if (inspect__read_u64(r, addr + (uint64_t)o->us_data_any, &u->data))
		return -EFAULT;
	return 0;
}

/* Read up to max code points into cps (caller's array of max entries). */
static int ustr_chars(const struct inspect_reader *r, const struct ustr *u, uint32_t *cps,
		      size_t max, size_t *n)
{
	size_t cnt = (uint64_t)u->length < max ? (size_t)u->length : max;
	unsigned char buf[1024];
	size_t done = 0;
	while (done < cnt) {
		size_t chunk = cnt - done;
		if (chunk * u->kind > sizeof(buf))
			chunk = sizeof(buf) / u->kind;
		int err = inspect__read(r, u->data + done * u->kind, buf, chunk * u->kind);
		if (err)
			return err;
		for (size_t i = 0; i < chunk; i++) {
			uint32_t c;
			if (u->kind == 1)
				c = buf[i];
			else if (u->kind == 2)
				c = (uint32_t)buf[2 * i] | (uint32_t)buf[2 * i + 1] << 8;
			else
				c = (uint32_t)buf[4 * i] | (uint32_t)buf[4 * i + 1] << 8 |
				    (uint32_t)buf[4 * i + 2] << 16 | (uint32_t)buf[4 * i + 3] << 24;
			cps[done + i] = c;
		}
		done += chunk;
	}
	*n = cnt;
	return 0;
}

static int is_str(const struct inspect_reader *r, uint64_t type)
{
	uint64_t flags;
	if (r->types->type_str && type == r->types->type_str)
		return 1;
	return inspect__type_flags(r, type, &flags) == 0 && (flags & TPFLAGS_UNICODE_SUBCLASS);
}

int inspect_str__read(const struct inspect_reader *r, uint64_t addr, char *buf, size_t len)
{
	struct ustr u;
	uint64_t type;
	uint32_t cps[256];
	size_t n = 0;
	if (len == 0)
		return -EINVAL;
	buf[0] = 0;
	int err = inspect__obj_type(r, addr, &type);
	if (err)
		return err;
	if (!is_str(r, type))
		return -EINVAL;
	err = ustr_open(r, addr, &u);
	if (err)
		return err;
	/* Names and file names are ASCII, as a rule: their bytes are the
	 * answer, in one read (what the general path below would make of
	 * them, without its code points and its buffer). */
	if (u.ascii && (uint64_t)u.length < len &&
	    (uint64_t)u.length <= sizeof(cps) / sizeof(cps[0])) {
		err = inspect__read(r, u.data, buf, (size_t)u.length);
		if (err)
			return err;
		size_t i = 0;
		while (i < (size_t)u.length && !((unsigned char)buf[i] & 0x80))
			i++;
		buf[i] = 0;
		if (i == (size_t)u.length)
			return 0;
		buf[0] = 0; /* a byte the flag denies: the general path decides */
	}
	err = ustr_chars(r, &u, cps, sizeof(cps) / sizeof(cps[0]), &n);
	if (err)
		return err;
	struct inspect_str s = { 0 };
	for (size_t i = 0; i < n && !err; i++) {
		uint32_t c = cps[i];
		if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			c = 0xfffd;
		err = inspect_str__put_utf8(&s, c, len - 1 + 3);
	}
	if (!err && s.p) {
		/* Drop the "..." marker: callers get a plain prefix. */
		size_t l = s.len;
		if (s.truncated)
			l -= 3;
		if (l > len - 1)
			l = len - 1;
		while (l > 0 && l < s.len && ((unsigned char)s.p[l] & 0xc0) == 0x80)
			l--;
		memcpy(buf, s.p, l);
		buf[l] = 0;
	}
	inspect_str__free(&s);
	return err;
}

/* Python's repr rules for str: prefer single quotes; escape the quote,
 * backslash, \t \n \r, C0/C1 controls, DEL, soft hyphen and surrogates;
 * other code points are shown as themselves (CPython asks unicodedata for
 * printability; the common non-printables are covered here). */
static int repr_cp(struct inspect_str *s, uint32_t c, char quote, size_t limit)
{
	switch (c) {
	case '\\':
		return puts_(s, "\\\\", limit);
	case '\t':
		return puts_(s, "\\t", limit);
	case '\n':
		return puts_(s, "\\n", limit);
	case '\r':
		return puts_(s, "\\r", limit);
	}
	if (c == (uint32_t)quote)
		return inspect_str__printf(s, limit, "\\%c", quote);
	if (c < 0x20 || (c >= 0x7f && c <= 0xa0) || c == 0xad)
		return inspect_str__printf(s, limit, "\\x%02x", c);
	if ((c >= 0xd800 && c <= 0xdfff) || (c >= 0x2028 && c <= 0x2029) || c == 0xfeff)
		return inspect_str__printf(s, limit, "\\u%04x", c);
	if (c > 0x10ffff)
		return inspect_str__printf(s, limit, "\\U%08x", c);
	return inspect_str__put_utf8(s, c, limit);
}

static int repr_str(const struct inspect_reader *r, uint64_t addr, const struct inspect_limits *lim,
		    struct inspect_str *out)
{
	struct ustr u;
	uint32_t *cps;
	size_t n = 0;
	int err = ustr_open(r, addr, &u);
	if (err)
		return inspect_str__printf(out, lim->max_out, "<invalid str at 0x%llx>",
					   (unsigned long long)addr);
	size_t max = lim->max_str ? lim->max_str : 1;
	cps = malloc(max * sizeof(*cps));
	if (!cps)
		return -ENOMEM;
	err = ustr_chars(r, &u, cps, max, &n);
	if (err) {
		free(cps);
		return inspect_str__printf(out, lim->max_out, "<unreadable str at 0x%llx>",
					   (unsigned long long)addr);
	}
	int sq = 0, dq = 0;
	for (size_t i = 0; i < n; i++) {
		sq |= cps[i] == '\'';
		dq |= cps[i] == '"';
	}
	char quote = (sq && !dq) ? '"' : '\'';
	err = inspect_str__putn(out, &quote, 1, lim->max_out);
	for (size_t i = 0; i < n && !err && !out->truncated; i++)
		err = repr_cp(out, cps[i], quote, lim->max_out);
	if (!err && (uint64_t)u.length > n)
		err = puts_(out, "...", lim->max_out);
	if (!err)
		err = inspect_str__putn(out, &quote, 1, lim->max_out);
	free(cps);
	return err;
}

/* ---- int ---- */

static int repr_long(const struct inspect_reader *r, uint64_t addr,
		     const struct inspect_limits *lim, struct inspect_str *out)
{
	const struct inspect_offsets *o = r->off;
	int64_t size;
	unsigned shift = o->long_digit_size == 2 ? 15 : 30;
	unsigned dsz = o->long_digit_size == 2 ? 2 : 4;
	if (o->long_digit < 0 || obj_size(r, addr, &size))
		goto bad;
	if (size == 0)
		return puts_(out, "0", lim->max_out);
	int neg = size < 0;
	uint64_t nd = neg ? (uint64_t)0 - (uint64_t)size : (uint64_t)size;
	if (nd > lim->max_digits || nd > (1u << 20))
		return inspect_str__printf(out, lim->max_out, "<int of %llu digits at 0x%llx>",
					   (unsigned long long)nd, (unsigned long long)addr);
	uint32_t *d = malloc(nd * sizeof(uint32_t));
	unsigned char *raw = malloc(nd * dsz);
	/* Base 10^9 limbs, least significant first (as long_to_decimal_string). */
	size_t cap = nd * 2 + 2, n10 = 0;
	uint32_t *dec = malloc(cap * sizeof(uint32_t));
	int err = 0;
	if (!d || !raw || !dec) {
		err = -ENOMEM;
		goto out;
	}
	if (inspect__read(r, addr + (uint64_t)o->long_digit, raw, nd * dsz)) {
		err = inspect_str__printf(out, lim->max_out, "<unreadable int at 0x%llx>",
					  (unsigned long long)addr);
		goto out;
	}
	for (uint64_t i = 0; i < nd; i++) {
		d[i] = dsz == 2 ? (uint32_t)raw[2 * i] | (uint32_t)raw[2 * i + 1] << 8
				: (uint32_t)raw[4 * i] | (uint32_t)raw[4 * i + 1] << 8 |
					  (uint32_t)raw[4 * i + 2] << 16 |
					  (uint32_t)raw[4 * i + 3] << 24;
		if (d[i] >> shift) {
			err = inspect_str__printf(out, lim->max_out, "<invalid int at 0x%llx>",
						  (unsigned long long)addr);
			goto out;
		}
	}
	for (uint64_t i = nd; i-- > 0;) {
		uint64_t hi = d[i];
		for (size_t j = 0; j < n10; j++) {
			uint64_t z = (uint64_t)dec[j] << shift | hi;
			hi = z / 1000000000u;
			dec[j] = (uint32_t)(z - hi * 1000000000u);
		}
		while (hi) {
			if (n10 == cap) {
				err = -EOVERFLOW;
				goto out;
			}
			dec[n10++] = (uint32_t)(hi % 1000000000u);
			hi /= 1000000000u;
		}
	}
	if (n10 == 0)
		dec[n10++] = 0;
	if (neg)
		err = puts_(out, "-", lim->max_out);
	if (!err)
		err = inspect_str__printf(out, lim->max_out, "%u", dec[n10 - 1]);
	for (size_t j = n10 - 1; j-- > 0 && !err && !out->truncated;)
		err = inspect_str__printf(out, lim->max_out, "%09u", dec[j]);
out:
	free(d);
	free(raw);
	free(dec);
	return err;
bad:
	return inspect_str__printf(out, lim->max_out, "<invalid int at 0x%llx>",
				   (unsigned long long)addr);
}

/* ---- float: repr() is the shortest string that reads back the same ---- */

static int repr_double(double v, struct inspect_str *out, size_t limit)
{
	char buf[64];
	if (isnan(v))
		return puts_(out, "nan", limit);
	if (isinf(v))
		return puts_(out, v < 0 ? "-inf" : "inf", limit);
	int prec;
	for (prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	/* buf is "[-]d.ddde[+-]XX": split digits and exponent. */
	char digits[32];
	size_t nd = 0;
	const char *p = buf;
	int neg = *p == '-';
	if (neg)
		p++;
	for (; *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9' && nd < sizeof(digits) - 1)
			digits[nd++] = *p;
	digits[nd] = 0;
	int exp = *p == 'e' ? atoi(p + 1) : 0;
	while (nd > 1 && digits[nd - 1] == '0')
		digits[--nd] = 0;
	struct inspect_str t = { 0 };
	int err = 0;
	size_t L = sizeof(buf);
	if (neg)
		err = inspect_str__putn(&t, "-", 1, L);
	if (exp < -4 || exp >= 16) {
		/* Python: d[.ddd]e+XX with at least two exponent digits. */
		if (!err)
			err = inspect_str__putn(&t, digits, 1, L);
		if (!err && nd > 1) {
			err = inspect_str__putn(&t, ".", 1, L);
			if (!err)
				err = inspect_str__putn(&t, digits + 1, nd - 1, L);
		}
		if (!err)
			err = inspect_str__printf(&t, L, "e%c%02d", exp < 0 ? '-' : '+',
						  exp < 0 ? -exp : exp);
	} else if (exp < 0) {
		if (!err)
			err = inspect_str__putn(&t, "0.", 2, L);
		for (int i = 0; i < -exp - 1 && !err; i++)
			err = inspect_str__putn(&t, "0", 1, L);
		if (!err)
			err = inspect_str__putn(&t, digits, nd, L);
	} else {
		size_t intlen = (size_t)exp + 1;
		for (size_t i = 0; i < intlen && !err; i++)
			err = inspect_str__putn(&t, i < nd ? &digits[i] : "0", 1, L);
		if (!err)
			err = inspect_str__putn(&t, ".", 1, L);
		if (!err)
			err = nd > intlen ? inspect_str__putn(&t, digits + intlen, nd - intlen, L)
					  : inspect_str__putn(&t, "0", 1, L);
	}
	if (!err)
		err = inspect_str__putn(out, t.p, t.len, limit);
	inspect_str__free(&t);
	return err;
}

/* ---- bytes ---- */

static int repr_bytes(const struct inspect_reader *r, uint64_t addr,
		      const struct inspect_limits *lim, struct inspect_str *out)
{
	int64_t size;
	if (r->off->bytes_sval < 0 || obj_size(r, addr, &size) || size < 0 || size > MAX_SANE_LEN)
		return inspect_str__printf(out, lim->max_out, "<invalid bytes at 0x%llx>",
					   (unsigned long long)addr);
	size_t n = (uint64_t)size < lim->max_str ? (size_t)size : lim->max_str;
	unsigned char *b = malloc(n ? n : 1);
	if (!b)
		return -ENOMEM;
	int err = 0;
	if (inspect__read(r, addr + (uint64_t)r->off->bytes_sval, b, n)) {
		err = inspect_str__printf(out, lim->max_out, "<unreadable bytes at 0x%llx>",
					  (unsigned long long)addr);
		goto out;
	}
	int sq = memchr(b, '\'', n) != NULL, dq = memchr(b, '"', n) != NULL;
	char quote = (sq && !dq) ? '"' : '\'';
	err = inspect_str__printf(out, lim->max_out, "b%c", quote);
	for (size_t i = 0; i < n && !err && !out->truncated; i++) {
		unsigned char c = b[i];
		if (c == '\\')
			err = puts_(out, "\\\\", lim->max_out);
		else if (c == (unsigned char)quote)
			err = inspect_str__printf(out, lim->max_out, "\\%c", quote);
		else if (c == '\t')
			err = puts_(out, "\\t", lim->max_out);
		else if (c == '\n')
			err = puts_(out, "\\n", lim->max_out);
		else if (c == '\r')
			err = puts_(out, "\\r", lim->max_out);
		else if (c < 0x20 || c >= 0x7f)
			err = inspect_str__printf(out, lim->max_out, "\\x%02x", c);
		else
			err = inspect_str__putn(out, (const char *)&c, 1, lim->max_out);
	}
	if (!err && (uint64_t)size > n)
		err = puts_(out, "...", lim->max_out);
	if (!err)
		err = inspect_str__putn(out, &quote, 1, lim->max_out);
out:
	free(b);
	return err;
}

/* ---- containers ---- */

static int repr_any(const struct inspect_reader *r, uint64_t addr, const struct inspect_limits *lim,
		    unsigned depth, struct inspect_str *out);

/* Items of a tuple or list: n pointers at items_addr. */
static int repr_seq(const struct inspect_reader *r, uint64_t addr, uint64_t items_addr, int64_t n,
		    const char *open, const char *close, int tuple,
		    const struct inspect_limits *lim, unsigned depth, struct inspect_str *out)
{
	int err = puts_(out, open, lim->max_out);
	if (err)
		return err;
	if (n > 0 && depth + 1 > lim->max_depth)
		return inspect_str__printf(out, lim->max_out, "...%s", close);
	size_t shown = (uint64_t)n < lim->max_items ? (size_t)n : lim->max_items;
	uint64_t *items = malloc((shown ? shown : 1) * sizeof(uint64_t));
	if (!items)
		return -ENOMEM;
	if (inspect__read(r, items_addr, items, shown * sizeof(uint64_t))) {
		free(items);
		return inspect_str__printf(out, lim->max_out, "<unreadable items of 0x%llx>%s",
					   (unsigned long long)addr, close);
	}
	for (size_t i = 0; i < shown && !err && !out->truncated; i++) {
		if (i)
			err = puts_(out, ", ", lim->max_out);
		if (!err)
			err = repr_any(r, items[i], lim, depth + 1, out);
	}
	free(items);
	if (!err && (uint64_t)n > shown)
		err = puts_(out, ", ...", lim->max_out);
	if (!err && tuple && n == 1)
		err = puts_(out, ",", lim->max_out);
	if (!err)
		err = puts_(out, close, lim->max_out);
	return err;
}

/* 3.11 dicts (Objects/dictobject.c, Include/internal/pycore_dict.h): keys
 * kind DICT_KEYS_GENERAL 0 (hash, key, value), UNICODE 1 and SPLIT 2 (key,
 * value); 1 << dk_log2_index_bytes bytes of indices, then the entries in
 * insertion order. A split table keeps values apart, in ma_values. */
struct dict_view {
	int64_t used, nentries;
	uint64_t entries, values;
	int64_t esize, koff, voff;
};

static int dict_keys_view(const struct inspect_reader *r, uint64_t keys, struct dict_view *v)
{
	const struct inspect_offsets *o = r->off;
	uint8_t log2_size, log2_index_bytes, kind;
	if (o->dk_indices < 0 || o->dke_size <= 0 || o->dku_size <= 0 ||
	    inspect__read(r, keys + (uint64_t)o->dk_log2_size, &log2_size, 1) ||
	    inspect__read(r, keys + (uint64_t)o->dk_log2_index_bytes, &log2_index_bytes, 1) ||
	    inspect__read(r, keys + (uint64_t)o->dk_kind, &kind, 1) ||
	    inspect__read(r, keys + (uint64_t)o->dk_nentries, &v->nentries, sizeof(v->nentries)))
		return -EINVAL;
	if (log2_size > 40 || log2_index_bytes > 43 || log2_index_bytes < log2_size || kind > 2 ||
	    v->nentries < 0 || v->nentries > ((int64_t)1 << log2_size))
		return -EINVAL;
	v->entries = keys + (uint64_t)o->dk_indices + ((uint64_t)1 << log2_index_bytes);
	v->esize = kind == 0 ? o->dke_size : o->dku_size;
	v->koff = kind == 0 ? o->dke_key : o->dku_key;
	v->voff = kind == 0 ? o->dke_value : o->dku_value;
	if (v->koff < 0 || v->voff < 0 || v->koff + 8 > v->esize || v->voff + 8 > v->esize ||
	    v->esize > 64)
		return -EINVAL;
	return 0;
}

/* Entries [0, scan) of a view: keys, and values from the entries or from
 * a split values array. */
static int view_items(const struct inspect_reader *r, const struct dict_view *v, uint64_t *keys,
		      uint64_t *values, size_t max, size_t *n)
{
	size_t scan = v->nentries < MAX_SCAN ? (size_t)v->nentries : MAX_SCAN;
	unsigned char *eb = malloc(scan * (size_t)v->esize + 1);
	uint64_t *vals = v->values ? malloc(scan * sizeof(uint64_t) + 1) : NULL;
	int err = 0;
	*n = 0;
	if (!eb || (v->values && !vals)) {
		err = -ENOMEM;
		goto out;
	}
	if (inspect__read(r, v->entries, eb, scan * (size_t)v->esize) ||
	    (v->values && inspect__read(r, v->values, vals, scan * sizeof(uint64_t)))) {
		err = -EINVAL;
		goto out;
	}
	for (size_t i = 0; i < scan && *n < max; i++) {
		uint64_t k, val;
		memcpy(&k, eb + i * (size_t)v->esize + v->koff, 8);
		if (v->values)
			val = vals[i];
		else
			memcpy(&val, eb + i * (size_t)v->esize + v->voff, 8);
		if (!k || !val)
			continue; /* deleted, or not set in this split instance */
		keys[*n] = k;
		values[*n] = val;
		(*n)++;
	}
out:
	free(eb);
	free(vals);
	return err;
}

int inspect_dict__items(const struct inspect_reader *r, uint64_t dict, uint64_t *keys,
			uint64_t *values, size_t max, size_t *n)
{
	const struct inspect_offsets *o = r->off;
	struct dict_view v;
	uint64_t dk, type;
	*n = 0;
	if (o->dict_used < 0 || inspect__obj_type(r, dict, &type) || !r->types->type_dict ||
	    type != r->types->type_dict ||
	    inspect__read(r, dict + (uint64_t)o->dict_used, &v.used, sizeof(v.used)) ||
	    inspect__read_u64(r, dict + (uint64_t)o->dict_keys, &dk) ||
	    inspect__read_u64(r, dict + (uint64_t)o->dict_values, &v.values) ||
	    dict_keys_view(r, dk, &v) || v.used < 0 || v.used > v.nentries)
		return -EINVAL;
	if (v.values)
		v.values += (uint64_t)(o->dv_values < 0 ? 0 : o->dv_values);
	return view_items(r, &v, keys, values, max, n);
}

static int str_equals(const struct inspect_reader *r, uint64_t addr, const char *want)
{
	char buf[128];
	return strlen(want) < sizeof(buf) - 1 &&
	       inspect_str__read(r, addr, buf, sizeof(buf)) == 0 && strcmp(buf, want) == 0;
}

int inspect_dict__get(const struct inspect_reader *r, uint64_t dict, const char *key,
		      uint64_t *value)
{
	uint64_t *k = malloc(MAX_SCAN * sizeof(uint64_t)), *v = malloc(MAX_SCAN * sizeof(uint64_t));
	size_t n = 0;
	int err = (!k || !v) ? -ENOMEM : inspect_dict__items(r, dict, k, v, MAX_SCAN, &n);
	if (!err) {
		err = -ENOENT;
		for (size_t i = 0; i < n; i++)
			if (str_equals(r, k[i], key)) {
				*value = v[i];
				err = 0;
				break;
			}
	}
	free(k);
	free(v);
	return err;
}

#define TPFLAGS_MANAGED_DICT (1UL << 4)

int inspect_object__attr(const struct inspect_reader *r, uint64_t obj, const char *name,
			 uint64_t *value)
{
	const struct inspect_offsets *o = r->off;
	uint64_t type, flags, values = 0, dict = 0;
	if (inspect__obj_type(r, obj, &type) || inspect__type_flags(r, type, &flags))
		return -EINVAL;
	if (!(flags & TPFLAGS_MANAGED_DICT) || obj < 4 * 8 + INSPECT_MIN_ADDR)
		return -ENOENT;
	/* 3.11 (pycore_object.h): values pointer at obj[-4], dict at obj[-3]. */
	if (inspect__read_u64(r, obj - 32, &values) || inspect__read_u64(r, obj - 24, &dict))
		return -EFAULT;
	if (values) {
		struct dict_view v;
		uint64_t keys;
		if (o->ht_cached_keys < 0 ||
		    inspect__read_u64(r, type + (uint64_t)o->ht_cached_keys, &keys) ||
		    dict_keys_view(r, keys, &v))
			return -EINVAL;
		v.used = v.nentries;
		v.values = values + (uint64_t)(o->dv_values < 0 ? 0 : o->dv_values);
		uint64_t ks[64], vs[64];
		size_t n;
		int err = view_items(r, &v, ks, vs, 64, &n);
		if (err)
			return err;
		for (size_t i = 0; i < n; i++)
			if (str_equals(r, ks[i], name)) {
				*value = vs[i];
				return 0;
			}
		return -ENOENT;
	}
	return dict ? inspect_dict__get(r, dict, name, value) : -ENOENT;
}

int inspect_long__read(const struct inspect_reader *r, uint64_t addr, uint64_t *mag, bool *neg)
{
	const struct inspect_offsets *o = r->off;
	uint64_t type;
	int64_t size;
	uint32_t d[3] = { 0, 0, 0 };
	if (inspect__obj_type(r, addr, &type) || !r->types->type_long ||
	    type != r->types->type_long || o->long_digit < 0 || o->long_digit_size != 4 ||
	    obj_size(r, addr, &size))
		return -EINVAL;
	uint64_t nd = size < 0 ? (uint64_t)0 - (uint64_t)size : (uint64_t)size;
	if (nd > 3)
		return -ERANGE;
	if (inspect__read(r, addr + (uint64_t)o->long_digit, d, nd * 4))
		return -EFAULT;
	if ((d[0] | d[1]) >> 30 || d[2] > 15)
		return nd == 3 && d[2] > 15 ? -ERANGE : -EINVAL;
	*mag = (uint64_t)d[0] | (uint64_t)d[1] << 30 | (uint64_t)d[2] << 60;
	*neg = size < 0;
	return 0;
}

static int repr_dict(const struct inspect_reader *r, uint64_t addr,
		     const struct inspect_limits *lim, unsigned depth, struct inspect_str *out)
{
	const struct inspect_offsets *o = r->off;
	int64_t used;
	if (o->dict_used < 0 ||
	    inspect__read(r, addr + (uint64_t)o->dict_used, &used, sizeof(used)) || used < 0)
		goto bad;
	if (used == 0)
		return puts_(out, "{}", lim->max_out);
	if (depth + 1 > lim->max_depth)
		return puts_(out, "{...}", lim->max_out);
	size_t max = (size_t)lim->max_items + 1, n = 0;
	uint64_t *k = malloc(max * sizeof(uint64_t)), *v = malloc(max * sizeof(uint64_t));
	int err = 0;
	if (!k || !v) {
		err = -ENOMEM;
		goto out;
	}
	if (inspect_dict__items(r, addr, k, v, max, &n)) {
		free(k);
		free(v);
		goto bad;
	}
	err = puts_(out, "{", lim->max_out);
	for (size_t i = 0; i < n && i < lim->max_items && !err && !out->truncated; i++) {
		if (i)
			err = puts_(out, ", ", lim->max_out);
		if (!err)
			err = repr_any(r, k[i], lim, depth + 1, out);
		if (!err)
			err = puts_(out, ": ", lim->max_out);
		if (!err)
			err = repr_any(r, v[i], lim, depth + 1, out);
	}
	if (!err && n > lim->max_items)
		err = puts_(out, ", ...", lim->max_out);
	if (!err && n == 0)
		err = puts_(out, "...", lim->max_out);
	if (!err)
		err = puts_(out, "}", lim->max_out);
out:
	free(k);
	free(v);
	return err;
bad:
	return inspect_str__printf(out, lim->max_out, "<invalid dict at 0x%llx>",
				   (unsigned long long)addr);
}

static int repr_set(const struct inspect_reader *r, uint64_t addr, int frozen,
		    const struct inspect_limits *lim, unsigned depth, struct inspect_str *out)
{
	const struct inspect_offsets *o = r->off;
	int64_t used, mask;
	uint64_t table;
	if (o->set_used < 0 || o->se_size <= 0 || o->se_key < 0 || o->se_key + 8 > o->se_size ||
	    o->se_size > 64 ||
	    inspect__read(r, addr + (uint64_t)o->set_used, &used, sizeof(used)) ||
	    inspect__read(r, addr + (uint64_t)o->set_mask, &mask, sizeof(mask)) ||
	    inspect__read_u64(r, addr + (uint64_t)o->set_table, &table) || used < 0 || mask < 0 ||
	    mask > ((int64_t)1 << 40) || (mask & (mask + 1)) || used > mask + 1)
		return inspect_str__printf(out, lim->max_out, "<invalid %s at 0x%llx>",
					   frozen ? "frozenset" : "set", (unsigned long long)addr);
	if (used == 0)
		return puts_(out, frozen ? "frozenset()" : "set()", lim->max_out);
	int err = puts_(out, frozen ? "frozenset({" : "{", lim->max_out);
	if (err)
		return err;
	if (depth + 1 > lim->max_depth)
		return puts_(out, frozen ? "...})" : "...}", lim->max_out);
	size_t scan = mask + 1 < MAX_SCAN ? (size_t)mask + 1 : MAX_SCAN;
	unsigned char *tb = malloc(scan * (size_t)o->se_size);
	if (!tb)
		return -ENOMEM;
	if (inspect__read(r, table, tb, scan * (size_t)o->se_size)) {
		free(tb);
		return inspect_str__printf(out, lim->max_out, "<unreadable table>%s",
					   frozen ? "})" : "}");
	}
	size_t shown = 0;
	for (size_t i = 0; i < scan && !err && !out->truncated; i++) {
		uint64_t k;
		memcpy(&k, tb + i * (size_t)o->se_size + o->se_key, 8);
		if (!k || k == r->types->set_dummy)
			continue;
		if (shown == lim->max_items) {
			err = puts_(out, ", ...", lim->max_out);
			break;
		}
		if (shown++)
			err = puts_(out, ", ", lim->max_out);
		if (!err)
			err = repr_any(r, k, lim, depth + 1, out);
	}
	free(tb);
	if (!err)
		err = puts_(out, frozen ? "})" : "}", lim->max_out);
	return err;
}

static int repr_other(const struct inspect_reader *r, uint64_t addr, uint64_t type,
		      const struct inspect_limits *lim, struct inspect_str *out)
{
	char name[TP_NAME_MAX];
	if (inspect__type_name(r, type, name, sizeof(name)))
		return inspect_str__printf(out, lim->max_out, "<object at 0x%llx>",
					   (unsigned long long)addr);
	return inspect_str__printf(out, lim->max_out, "<%s at 0x%llx>", name,
				   (unsigned long long)addr);
}

static int repr_any(const struct inspect_reader *r, uint64_t addr, const struct inspect_limits *lim,
		    unsigned depth, struct inspect_str *out)
{
	const struct inspect_types *t = r->types;
	const struct inspect_offsets *o = r->off;
	uint64_t type;
	if (out->truncated)
		return 0;
	if (addr == 0)
		return puts_(out, "<NULL>", lim->max_out);
	if (t->none && addr == t->none)
		return puts_(out, "None", lim->max_out);
	if (t->true_obj && addr == t->true_obj)
		return puts_(out, "True", lim->max_out);
	if (t->false_obj && addr == t->false_obj)
		return puts_(out, "False", lim->max_out);
	if (t->ellipsis && addr == t->ellipsis)
		return puts_(out, "Ellipsis", lim->max_out);
	if ((addr & 7) || inspect__obj_type(r, addr, &type))
		return inspect_str__printf(out, lim->max_out, "<unreadable 0x%llx>",
					   (unsigned long long)addr);
	if (type == t->type_long && t->type_long)
		return repr_long(r, addr, lim, out);
	if (type == t->type_str && t->type_str)
		return repr_str(r, addr, lim, out);
	if (type == t->type_float && t->type_float && o->float_fval >= 0) {
		double v;
		if (inspect__read(r, addr + (uint64_t)o->float_fval, &v, sizeof(v)))
			return inspect_str__printf(out, lim->max_out,
						   "<unreadable float at 0x%llx>",
						   (unsigned long long)addr);
		return repr_double(v, out, lim->max_out);
	}
	if (type == t->type_bytes && t->type_bytes)
		return repr_bytes(r, addr, lim, out);
	if (type == t->type_tuple && t->type_tuple) {
		int64_t n;
		if (obj_size(r, addr, &n) || n < 0 || n > MAX_SANE_LEN)
			return inspect_str__printf(out, lim->max_out, "<invalid tuple at 0x%llx>",
						   (unsigned long long)addr);
		return repr_seq(r, addr, addr + (uint64_t)o->tuple_item, n, "(", ")", 1, lim, depth,
				out);
	}
	if (type == t->type_list && t->type_list && o->list_item >= 0) {
		int64_t n;
		uint64_t items;
		if (obj_size(r, addr, &n) || n < 0 || n > MAX_SANE_LEN ||
		    inspect__read_u64(r, addr + (uint64_t)o->list_item, &items) ||
		    (n > 0 && !items))
			return inspect_str__printf(out, lim->max_out, "<invalid list at 0x%llx>",
						   (unsigned long long)addr);
		return repr_seq(r, addr, items, n, "[", "]", 0, lim, depth, out);
	}
	if (type == t->type_dict && t->type_dict)
		return repr_dict(r, addr, lim, depth, out);
	if ((type == t->type_set && t->type_set) ||
	    (type == t->type_frozenset && t->type_frozenset))
		return repr_set(r, addr, type == t->type_frozenset, lim, depth, out);
	if (type == t->type_code && t->type_code) {
		char name[128];
		uint64_t n;
		if (!inspect__read_u64(r, addr + (uint64_t)o->co_name, &n) &&
		    !inspect_str__read(r, n, name, sizeof(name)))
			return inspect_str__printf(out, lim->max_out, "<code object %s at 0x%llx>",
						   name, (unsigned long long)addr);
	}
	if (type == t->type_func && t->type_func && o->func_qualname >= 0) {
		char name[128];
		uint64_t n;
		if (!inspect__read_u64(r, addr + (uint64_t)o->func_qualname, &n) &&
		    !inspect_str__read(r, n, name, sizeof(name)))
			return inspect_str__printf(out, lim->max_out, "<function %s at 0x%llx>",
						   name, (unsigned long long)addr);
	}
	return repr_other(r, addr, type, lim, out);
}

int inspect_value__repr(const struct inspect_reader *r, uint64_t addr,
			const struct inspect_limits *lim, struct inspect_str *out)
{
	static const struct inspect_limits dflt = INSPECT_LIMITS_DEFAULT;
	if (!lim)
		lim = &dflt;
	int err = repr_any(r, addr, lim, 0, out);
	if (!err && !out->p)
		err = inspect_str__putn(out, "", 0, lim->max_out);
	return err;
}
