/* The store's index: JSON decode, validation and encode.
 * Format: docs/formats/store.md. The decoder trusts nothing: every field is
 * checked for presence, type, range and encoding, unknown fields and
 * duplicates are errors (an index we would rewrite without them would lose
 * data), and a failure names the field.
 *
 * One file over 800 lines: the decoder and the encoder of one format,
 * field by field, kept side by side so a field cannot change in one alone.
 */
#include "store/store-priv.h"
#include "rewrite/guard.h" /* the guard vocabulary: rewrite/guards.c, pure data */

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FORMAT_NAME "suture-store"

int store_guard__valid(const char *kind)
{
	return guard_kind__info(guard_kind__by_name(kind)) != NULL;
}

int store_placement__valid(const char *text)
{
	return guard_placement__by_name(text) >= 0;
}

int store_consumer__valid(const char *token)
{
	return guard_consumer__by_name(token) >= 0;
}

const char *store_status__str(enum store_status st)
{
	switch (st) {
	case STORE_STATUS_ACTIVE:
		return "active";
	case STORE_STATUS_STALE:
		return "stale";
	case STORE_STATUS_EXPIRED:
		return "expired";
	}
	return "unknown";
}

static void seterr(char *err, size_t errsz, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errsz)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

/* ---- time ------------------------------------------------------------ */

int store__format_time(int64_t t, char *buf, size_t size)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (!gmtime_r(&tt, &tm))
		return -ERANGE;
	if (tm.tm_year + 1900 < 1970 || tm.tm_year + 1900 > 9999)
		return -ERANGE;
	if (strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return -ERANGE;
	return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (the civil-from-days arithmetic of H. Hinnant's "chrono-Compatible
 * Low-Level Date Algorithms", days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int digits(const char *s, int n)
{
	int v = 0;
	while (n--)
		v = v * 10 + (*s++ - '0');
	return v;
}

/* Exactly "YYYY-MM-DDTHH:MM:SSZ", a real UTC date and time from 1970 on:
 * what store__format_time writes, and nothing else (2026-02-30, 24:00:00
 * and leap seconds are refused). Arithmetic, not timegm() and a round
 * trip through strftime(), which loads the time zone: this runs twice
 * for every stored patch each time suture-run starts (docs/performance.md,
 * "start-up, sixth pass"). */
int store__parse_time(const char *text, int64_t *out)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (!text || strlen(text) != sizeof(shape) - 1)
		return -EINVAL;
	for (size_t i = 0; shape[i]; i++) {
		if (shape[i] == 'd' ? (text[i] < '0' || text[i] > '9') : text[i] != shape[i])
			return -EINVAL;
	}
	int y = digits(text, 4), mo = digits(text + 5, 2), d = digits(text + 8, 2);
	int h = digits(text + 11, 2), mi = digits(text + 14, 2), sec = digits(text + 17, 2);
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) ||
	    h > 23 || mi > 59 || sec > 59)
		return -EINVAL;
	*out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
	return 0;
}

/* ---- validation -------------------------------------------------------- */

/* Well-formed UTF-8 (no overlongs, no surrogates), no NUL, no other C0
 * control byte except tab. Returns a static description of the flaw or NULL. */
static const char *text_flaw(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s);

	if (len > STORE_STR_MAX)
		return "too long";
	while (*p) {
		unsigned c = *p, need;
		uint32_t cp;

		if (c < 0x80) {
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return "contains a control character";
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else
			return "is not valid UTF-8";
		p++;
		for (unsigned i = 0; i < need; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return "is not valid UTF-8";
			cp = (cp << 6) | (*p & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return "is not valid UTF-8";
	}
	return NULL;
}

static const char *name_flaw(const char *s)
{
	const char *flaw = text_flaw(s);

	if (flaw)
		return flaw;
	if (!*s)
		return "is empty";
	if (strlen(s) > STORE_NAME_MAX)
		return "too long";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ')
			return "contains a space or control character";
	return NULL;
}

static int check_text(const char *field, const char *s, int required, char *err, size_t errsz)
{
	const char *flaw;

	if (!s) {
		if (!required)
			return 0;
		seterr(err, errsz, "%s: missing", field);
		return -EINVAL;
	}
	if (required && !*s) {
		seterr(err, errsz, "%s: is empty", field);
		return -EINVAL;
	}
	if ((flaw = text_flaw(s))) {
		seterr(err, errsz, "%s: %s", field, flaw);
		return -EINVAL;
	}
	return 0;
}

int store_patch__validate(const struct store_patch *p, char *err, size_t errsz)
{
	const char *flaw;
	char buf[32];
	int r;

	if (!p->name) {
		seterr(err, errsz, "name: missing");
		return -EINVAL;
	}
	if ((flaw = name_flaw(p->name))) {
		seterr(err, errsz, "name: %s", flaw);
		return -EINVAL;
	}
	if (!store_guard__valid(p->guard)) {
		seterr(err, errsz, "guard: %s%s%s", p->guard ? "unknown kind \"" : "missing",
		       p->guard && !text_flaw(p->guard) ? p->guard : "", p->guard ? "\"" : "");
		return -EINVAL;
	}
	if ((r = check_text("module", p->module, 1, err, errsz)) ||
	    (r = check_text("qualname", p->qualname, 1, err, errsz)) ||
	    (r = check_text("file", p->file, 1, err, errsz)) ||
	    (r = check_text("target", p->target, 1, err, errsz)) ||
	    (r = check_text("fallback", p->fallback, 1, err, errsz)) ||
	    (r = check_text("consumer", p->consumer, 0, err, errsz)) ||
	    (r = check_text("consumer_kind", p->consumer_kind, 0, err, errsz)) ||
	    (r = check_text("placement", p->placement, 0, err, errsz)) ||
	    (r = check_text("anchor_window", p->anchor_window, 1, err, errsz)) ||
	    (r = check_text("code_id", p->code_id, 1, err, errsz)) ||
	    (r = check_text("program", p->program, 1, err, errsz)) ||
	    (r = check_text("python_version", p->python_version, 1, err, errsz)) ||
	    (r = check_text("build_id", p->build_id, 0, err, errsz)) ||
	    (r = check_text("stale_reason", p->stale_reason, 0, err, errsz)))
		return r;
	if (p->placement && !store_placement__valid(p->placement)) {
		seterr(err, errsz, "placement: must be value, statement, skip or redirect");
		return -EINVAL;
	}
	if (p->consumer_kind && !store_consumer__valid(p->consumer_kind)) {
		seterr(err, errsz, "consumer_kind: unknown token \"%s\"", p->consumer_kind);
		return -EINVAL;
	}
	if (p->consumer_kind && !p->consumer) {
		seterr(err, errsz, "consumer_kind: given without a consumer");
		return -EINVAL;
	}
	if (p->first_line < 1 || p->line < 1) {
		seterr(err, errsz, "%s: must be >= 1", p->first_line < 1 ? "first_line" : "line");
		return -EINVAL;
	}
	if (p->anchor_offset > INT32_MAX) {
		seterr(err, errsz, "anchor_offset: out of range");
		return -EINVAL;
	}
	if (store__format_time(p->created, buf, sizeof(buf)) < 0 || p->created <= 0) {
		seterr(err, errsz, "created: out of range");
		return -EINVAL;
	}
	if (p->last_hit &&
	    (store__format_time(p->last_hit, buf, sizeof(buf)) < 0 || p->last_hit < 0)) {
		seterr(err, errsz, "last_hit: out of range");
		return -EINVAL;
	}
	if (p->ttl_days < 1 || p->ttl_days > STORE_MAX_TTL_DAYS) {
		seterr(err, errsz, "ttl_days: must be 1 to %d", STORE_MAX_TTL_DAYS);
		return -EINVAL;
	}
	if (p->hits > STORE_HITS_MAX) {
		seterr(err, errsz, "hits: out of range");
		return -EINVAL;
	}
	if (p->status != STORE_STATUS_ACTIVE && p->status != STORE_STATUS_STALE) {
		seterr(err, errsz, "status: must be active or stale");
		return -EINVAL;
	}
	return 0;
}

/* ---- the in-memory index ----------------------------------------------- */

/* Field descriptions drive both the decoder and the encoder, in index order. */
enum ftype {
	F_NAME,
	F_TEXT,
	F_OPT_TEXT,
	F_LINE,
	F_U32,
	F_TIME,
	F_OPT_TIME,
	F_TTL,
	F_HITS,
	F_STATUS
};
struct field {
	const char *key;
	enum ftype type;
	size_t off;
};
#define FLD(k, t)                                      \
	{                                              \
#k, t, offsetof(struct store_patch, k) \
	}
static const struct field fields[] = {
	FLD(name, F_NAME),
	FLD(guard, F_TEXT),
	FLD(module, F_TEXT),
	FLD(qualname, F_TEXT),
	FLD(file, F_TEXT),
	FLD(first_line, F_LINE),
	FLD(line, F_LINE),
	FLD(target, F_TEXT),
	FLD(fallback, F_TEXT),
	FLD(consumer, F_OPT_TEXT),
	FLD(consumer_kind, F_OPT_TEXT),
	FLD(placement, F_OPT_TEXT),
	FLD(anchor_offset, F_U32),
	FLD(anchor_window, F_TEXT),
	FLD(code_id, F_TEXT),
	FLD(program, F_TEXT),
	FLD(python_version, F_TEXT),
	FLD(build_id, F_OPT_TEXT),
	FLD(created, F_TIME),
	FLD(ttl_days, F_TTL),
	FLD(hits, F_HITS),
	FLD(last_hit, F_OPT_TIME),
	FLD(status, F_STATUS),
	FLD(stale_reason, F_OPT_TEXT),
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))
/* Keys a version 1 index does not have (docs/formats/store.md). */
static bool since_v2(const struct field *f)
{
	return strcmp(f->key, "consumer_kind") == 0;
}

/* A consumer text without its token gets the token the text names: how a
 * version 1 patch (and a caller that gives only the text) is migrated. */
static int derive_consumer_kind(struct store_patch *p)
{
	if (p->consumer_kind || !p->consumer)
		return 0;
	return store_str__set(&p->consumer_kind,
			      guard_consumer__name(guard_consumer__of_text(p->consumer)));
}

int store_str__set(const char **slot, const char *s)
{
	char *copy = NULL;

	if (s && !(copy = strdup(s)))
		return -ENOMEM;
	free((char *)*slot);
	*slot = copy;
	return 0;
}

static int is_string_field(const struct field *f)
{
	return f->type == F_NAME || f->type == F_TEXT || f->type == F_OPT_TEXT;
}

static const char **string_slot(struct store_patch *p, const struct field *f)
{
	return (const char **)((char *)p + f->off);
}

static void patch_free(struct store_patch *p)
{
	for (size_t k = 0; k < NFIELDS; k++)
		if (is_string_field(&fields[k]))
			free((char *)*string_slot(p, &fields[k]));
	memset(p, 0, sizeof(*p));
}

/* Deep copy of src into *dst (which holds no strings). */
static int patch_copy(struct store_patch *dst, const struct store_patch *src)
{
	*dst = *src;
	for (size_t k = 0; k < NFIELDS; k++)
		if (is_string_field(&fields[k]))
			*string_slot(dst, &fields[k]) = NULL;
	for (size_t k = 0; k < NFIELDS; k++) {
		const struct field *f = &fields[k];

		if (is_string_field(f) &&
		    store_str__set(string_slot(dst, f),
				   *string_slot((struct store_patch *)src, f))) {
			patch_free(dst);
			return -ENOMEM;
		}
	}
	return 0;
}

static void handled_free(struct store_handled *e)
{
	free((char *)e->program);
	free((char *)e->site);
	free((char *)e->exc_type);
	memset(e, 0, sizeof(*e));
}

void store_index__free_patches(struct store_index *idx)
{
	for (size_t i = 0; i < idx->n; i++)
		patch_free(&idx->v[i]);
	free(idx->v);
	idx->v = NULL;
	idx->n = idx->cap = 0;
}

void store_index__free(struct store_index *idx)
{
	if (!idx)
		return;
	store_index__free_patches(idx);
	for (size_t i = 0; i < idx->nh; i++)
		handled_free(&idx->h[i]);
	free(idx->h);
	memset(idx, 0, sizeof(*idx));
}

static long handled_find(const struct store_index *idx, const struct store_handled *e)
{
	for (size_t i = 0; i < idx->nh; i++)
		if (!strcmp(idx->h[i].site, e->site) && !strcmp(idx->h[i].exc_type, e->exc_type) &&
		    !strcmp(idx->h[i].program, e->program))
			return (long)i;
	return -1;
}

int store_index__put_handled(struct store_index *idx, const struct store_handled *e)
{
	long at = handled_find(idx, e);
	if (at >= 0) {
		struct store_handled *o = &idx->h[at];
		o->count = e->count >= STORE_HITS_MAX - o->count ? STORE_HITS_MAX
								 : o->count + e->count;
		if (e->last_seen > o->last_seen)
			o->last_seen = e->last_seen;
		return 0;
	}
	if (idx->nh >= STORE_HANDLED_MAX)
		return 1;
	if (idx->nh == idx->caph) {
		size_t cap = idx->caph ? idx->caph * 2 : 16;
		struct store_handled *v = realloc(idx->h, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		idx->h = v;
		idx->caph = cap;
	}
	struct store_handled c = { strdup(e->program), strdup(e->site), strdup(e->exc_type),
				   e->count > STORE_HITS_MAX ? STORE_HITS_MAX : e->count,
				   e->last_seen };
	if (!c.program || !c.site || !c.exc_type) {
		handled_free(&c);
		return -ENOMEM;
	}
	idx->h[idx->nh++] = c;
	return 0;
}

int store_handled__validate(const struct store_handled *e, char *err, size_t errsz)
{
	const char *flaw;
	int r;
	if ((r = check_text("program", e->program, 1, err, errsz)) ||
	    (r = check_text("type", e->exc_type, 1, err, errsz)))
		return r;
	if (!e->site || (flaw = name_flaw(e->site))) {
		seterr(err, errsz, "site: %s", e->site ? flaw : "missing");
		return -EINVAL;
	}
	if (strlen(e->exc_type) > 255) {
		seterr(err, errsz, "type: too long");
		return -EINVAL;
	}
	if (e->count < 1 || e->count > STORE_HITS_MAX) {
		seterr(err, errsz, "count: out of range");
		return -EINVAL;
	}
	char buf[32];
	if (e->last_seen < 0 || store__format_time(e->last_seen, buf, sizeof(buf))) {
		seterr(err, errsz, "last_seen: out of range");
		return -EINVAL;
	}
	return 0;
}

long store_index__find(const struct store_index *idx, const char *name)
{
	for (size_t i = 0; i < idx->n; i++)
		if (strcmp(idx->v[i].name, name) == 0)
			return (long)i;
	return -1;
}

void store_index__drop(struct store_index *idx, size_t i)
{
	patch_free(&idx->v[i]);
	memmove(&idx->v[i], &idx->v[i + 1], (idx->n - i - 1) * sizeof(idx->v[0]));
	idx->n--;
}

int store_index__put(struct store_index *idx, const struct store_patch *p)
{
	struct store_patch copy;
	long at = store_index__find(idx, p->name);

	if (patch_copy(&copy, p) || derive_consumer_kind(&copy)) {
		patch_free(&copy);
		return -ENOMEM;
	}
	if (at >= 0) {
		patch_free(&idx->v[at]);
		idx->v[at] = copy;
		return 0;
	}
	if (idx->n == idx->cap) {
		size_t cap = idx->cap ? idx->cap * 2 : 16;
		struct store_patch *v = realloc(idx->v, cap * sizeof(*v));

		if (!v) {
			patch_free(&copy);
			return -ENOMEM;
		}
		idx->v = v;
		idx->cap = cap;
	}
	idx->v[idx->n++] = copy;
	return 0;
}

/* ---- decode -------------------------------------------------------------- */

/* hint: where the key usually is (the encoder writes them in table order). */
static const struct field *field_of(const char *key, size_t hint)
{
	if (hint < NFIELDS && strcmp(fields[hint].key, key) == 0)
		return &fields[hint];
	for (size_t i = 0; i < NFIELDS; i++)
		if (strcmp(fields[i].key, key) == 0)
			return &fields[i];
	return NULL;
}

/* An exact integer in [lo, hi]. */
static int json_int(const cJSON *j, double lo, double hi, int64_t *out)
{
	double d;

	if (!cJSON_IsNumber(j))
		return -1;
	d = j->valuedouble;
	if (!isfinite(d) || d < lo || d > hi || (double)(int64_t)d != d)
		return -1;
	*out = (int64_t)d;
	return 0;
}

static int decode_field(const struct field *f, cJSON *j, struct store_patch *p, const char *where,
			char *err, size_t errsz)
{
	char *base = (char *)p;
	const char **slot = (const char **)(base + f->off);
	const char *flaw;
	int64_t v;

	switch (f->type) {
	case F_OPT_TEXT:
		if (cJSON_IsNull(j))
			return 0;
		/* fall through */
	case F_NAME:
	case F_TEXT:
		if (!cJSON_IsString(j)) {
			seterr(err, errsz, "%s.%s: expected a string", where, f->key);
			return -EBADMSG;
		}
		flaw = f->type == F_NAME ? name_flaw(j->valuestring) : text_flaw(j->valuestring);
		if (flaw) {
			seterr(err, errsz, "%s.%s: %s", where, f->key, flaw);
			return -EBADMSG;
		}
		if (f->type == F_TEXT && !*j->valuestring) {
			seterr(err, errsz, "%s.%s: is empty", where, f->key);
			return -EBADMSG;
		}
		/* Take the string from the tree instead of copying it; cJSON_Delete()
		 * skips a NULL valuestring. Both use the default malloc hooks. */
		free((char *)*slot);
		*slot = j->valuestring;
		j->valuestring = NULL;
		return 0;
	case F_LINE:
		if (json_int(j, 1, INT32_MAX, &v)) {
			seterr(err, errsz, "%s.%s: expected an integer >= 1", where, f->key);
			return -EBADMSG;
		}
		*(int *)(base + f->off) = (int)v;
		return 0;
	case F_U32:
		if (json_int(j, 0, INT32_MAX, &v)) {
			seterr(err, errsz, "%s.%s: expected an integer >= 0", where, f->key);
			return -EBADMSG;
		}
		*(uint32_t *)(base + f->off) = (uint32_t)v;
		return 0;
	case F_TTL:
		if (json_int(j, 1, STORE_MAX_TTL_DAYS, &v)) {
			seterr(err, errsz, "%s.%s: expected an integer from 1 to %d", where, f->key,
			       STORE_MAX_TTL_DAYS);
			return -EBADMSG;
		}
		*(uint32_t *)(base + f->off) = (uint32_t)v;
		return 0;
	case F_HITS:
		if (json_int(j, 0, (double)STORE_HITS_MAX, &v)) {
			seterr(err, errsz, "%s.%s: expected an integer >= 0", where, f->key);
			return -EBADMSG;
		}
		*(uint64_t *)(base + f->off) = (uint64_t)v;
		return 0;
	case F_OPT_TIME:
		if (cJSON_IsNull(j))
			return 0;
		/* fall through */
	case F_TIME:
		if (!cJSON_IsString(j) || store__parse_time(j->valuestring, &v) < 0 || v <= 0) {
			seterr(err, errsz, "%s.%s: expected a UTC time \"YYYY-MM-DDTHH:MM:SSZ\"",
			       where, f->key);
			return -EBADMSG;
		}
		*(int64_t *)(base + f->off) = v;
		return 0;
	case F_STATUS:
		if (cJSON_IsString(j) && strcmp(j->valuestring, "active") == 0)
			p->status = STORE_STATUS_ACTIVE;
		else if (cJSON_IsString(j) && strcmp(j->valuestring, "stale") == 0)
			p->status = STORE_STATUS_STALE;
		else {
			seterr(err, errsz, "%s.%s: expected \"active\" or \"stale\"", where,
			       f->key);
			return -EBADMSG;
		}
		return 0;
	}
	return -EBADMSG;
}

static int decode_patch(cJSON *obj, size_t i, int version, struct store_patch *p, char *err,
			size_t errsz)
{
	unsigned char seen[NFIELDS] = { 0 };
	size_t k = 0;
	char where[48];
	cJSON *j;
	int r;

	snprintf(where, sizeof(where), "patches[%zu]", i);
	memset(p, 0, sizeof(*p));
	if (!cJSON_IsObject(obj)) {
		seterr(err, errsz, "%s: expected an object", where);
		return -EBADMSG;
	}
	cJSON_ArrayForEach(j, obj)
	{
		const struct field *f = field_of(j->string, k++);

		if (!f || (version < 2 && since_v2(f))) {
			seterr(err, errsz, "%s: unknown field \"%.64s\"", where,
			       text_flaw(j->string) ? "?" : j->string);
			goto fail;
		}
		if (seen[f - fields]++) {
			seterr(err, errsz, "%s: duplicate field \"%s\"", where, f->key);
			goto fail;
		}
		if ((r = decode_field(f, j, p, where, err, errsz))) {
			if (r == -ENOMEM)
				seterr(err, errsz, "out of memory");
			patch_free(p);
			return r;
		}
	}
	for (size_t k = 0; k < NFIELDS; k++) {
		if (!seen[k] && !(version < 2 && since_v2(&fields[k]))) {
			seterr(err, errsz, "%s.%s: missing", where, fields[k].key);
			goto fail;
		}
	}
	if (!store_guard__valid(p->guard)) {
		seterr(err, errsz, "%s.guard: unknown kind \"%.64s\"", where, p->guard);
		goto fail;
	}
	if (p->placement && !store_placement__valid(p->placement)) {
		seterr(err, errsz,
		       "%s.placement: expected \"value\", \"statement\", \"skip\", "
		       "\"redirect\" or null",
		       where);
		goto fail;
	}
	if (p->consumer_kind && !store_consumer__valid(p->consumer_kind)) {
		seterr(err, errsz, "%s.consumer_kind: unknown token \"%.64s\"", where,
		       p->consumer_kind);
		goto fail;
	}
	if (p->consumer_kind && !p->consumer) {
		seterr(err, errsz, "%s.consumer_kind: given without a consumer", where);
		goto fail;
	}
	if (derive_consumer_kind(p)) {
		seterr(err, errsz, "out of memory");
		patch_free(p);
		return -ENOMEM;
	}
	return 0;
fail:
	patch_free(p);
	return -EBADMSG;
}

/* FNV-1a. */
static size_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return (size_t)h;
}

/* Does [p, end) end inside a string or an unclosed array/object? cJSON's
 * error position is not where a truncated file ends, so look ourselves. */
static int looks_truncated(const char *p, const char *end)
{
	long depth = 0;
	int in_str = 0, esc = 0;

	for (; p < end; p++) {
		if (in_str) {
			if (esc)
				esc = 0;
			else if (*p == '\\')
				esc = 1;
			else if (*p == '"')
				in_str = 0;
		} else if (*p == '"') {
			in_str = 1;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if (*p == '}' || *p == ']') {
			depth--;
		}
	}
	return in_str || depth > 0;
}

static void line_col(const char *start, const char *at, size_t *line, size_t *col)
{
	*line = 1;
	*col = 1;
	for (const char *q = start; q < at; q++) {
		if (*q == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

/* "handled": an array (absent in older indexes: none) of objects with
 * exactly the keys program, site, type, count, last_seen; one entry per
 * (program, site, type), at most STORE_HANDLED_MAX. */
static int decode_handled(cJSON *arr, struct store_index *idx, char *err, size_t errsz)
{
	static const char *const keys[] = { "program", "site", "type", "count", "last_seen" };
	char cause[256];
	size_t i = 0;
	cJSON *o;
	if (!cJSON_IsArray(arr)) {
		seterr(err, errsz, "\"handled\": expected an array");
		return -EBADMSG;
	}
	if ((size_t)cJSON_GetArraySize(arr) > STORE_HANDLED_MAX) {
		seterr(err, errsz, "\"handled\": more than %d entries", STORE_HANDLED_MAX);
		return -EBADMSG;
	}
	cJSON_ArrayForEach(o, arr)
	{
		struct store_handled e = { 0 };
		const cJSON *v[5] = { 0 };
		int64_t count;
		if (!cJSON_IsObject(o)) {
			seterr(err, errsz, "handled[%zu]: expected an object", i);
			return -EBADMSG;
		}
		for (cJSON *k = o->child; k; k = k->next) {
			size_t f = 0;
			while (f < 5 && strcmp(k->string, keys[f]) != 0)
				f++;
			if (f == 5 || v[f]) {
				seterr(err, errsz, "handled[%zu]: %s field \"%.64s\"", i,
				       f == 5 ? "unknown" : "duplicate",
				       text_flaw(k->string) ? "?" : k->string);
				return -EBADMSG;
			}
			v[f] = k;
		}
		for (size_t f = 0; f < 3; f++)
			if (!cJSON_IsString(v[f])) {
				seterr(err, errsz, "handled[%zu].%s: expected a string", i,
				       keys[f]);
				return -EBADMSG;
			}
		e.program = v[0]->valuestring;
		e.site = v[1]->valuestring;
		e.exc_type = v[2]->valuestring;
		if (json_int(v[3], 1, (double)STORE_HITS_MAX, &count)) {
			seterr(err, errsz, "handled[%zu].count: expected an integer from 1 to %llu",
			       i, (unsigned long long)STORE_HITS_MAX);
			return -EBADMSG;
		}
		e.count = (uint64_t)count;
		if (!cJSON_IsString(v[4]) || store__parse_time(v[4]->valuestring, &e.last_seen)) {
			seterr(err, errsz, "handled[%zu].last_seen: expected a time", i);
			return -EBADMSG;
		}
		if (store_handled__validate(&e, cause, sizeof(cause))) {
			seterr(err, errsz, "handled[%zu].%s", i, cause);
			return -EBADMSG;
		}
		if (handled_find(idx, &e) >= 0) {
			seterr(err, errsz, "handled[%zu]: site \"%s\" of %s appears twice", i,
			       e.site, e.exc_type);
			return -EBADMSG;
		}
		int r = store_index__put_handled(idx, &e);
		if (r < 0) {
			seterr(err, errsz, "out of memory");
			return r;
		}
		i++;
	}
	return 0;
}

int store_index__parse(const char *p, const char *end, struct store_index *out, char *err,
		       size_t errsz)
{
	struct store_index idx = { 0 };
	const char *stop = NULL;
	cJSON *j, *patches = NULL, *handled = NULL;
	cJSON *root = NULL;
	size_t len = (size_t)(end - p), line, col, i = 0, n, nslots;
	size_t *slots = NULL;
	int have_format = 0, have_version = 0, version, r = -EBADMSG;

	memset(out, 0, sizeof(*out));
	if (len == 0) {
		seterr(err, errsz, "empty file (truncated?)");
		return -EBADMSG;
	}
	if (memchr(p, '\0', len)) {
		line_col(p, memchr(p, '\0', len), &line, &col);
		seterr(err, errsz, "line %zu, column %zu: NUL byte (not a text file)", line, col);
		return -EBADMSG;
	}
	root = cJSON_ParseWithLengthOpts(p, len, &stop, 0);
	if (!root) {
		if (!stop || stop < p || stop > end || looks_truncated(p, end))
			stop = end;
		line_col(p, stop, &line, &col);
		seterr(err, errsz, "line %zu, column %zu: %s", line, col,
		       stop >= end ? "unexpected end of file (truncated?)" : "invalid JSON");
		return -EBADMSG;
	}
	for (const char *q = stop; q && q < end; q++) {
		if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
			line_col(p, q, &line, &col);
			seterr(err, errsz, "line %zu, column %zu: data after the JSON value", line,
			       col);
			goto out;
		}
	}
	if (!cJSON_IsObject(root)) {
		seterr(err, errsz, "expected a JSON object at the top level");
		goto out;
	}
	/* Identify the file first: a foreign JSON file or a future version must
	 * say so, not complain about some field. */
	j = cJSON_GetObjectItemCaseSensitive(root, "format");
	if (!cJSON_IsString(j) || strcmp(j->valuestring, FORMAT_NAME) != 0) {
		seterr(err, errsz, "not a suture store index (no \"format\": \"" FORMAT_NAME "\")");
		goto out;
	}
	j = cJSON_GetObjectItemCaseSensitive(root, "version");
	if (!cJSON_IsNumber(j)) {
		seterr(err, errsz, "\"version\": expected an integer");
		goto out;
	}
	if (j->valuedouble < STORE_FORMAT_VERSION_MIN || j->valuedouble > STORE_FORMAT_VERSION ||
	    j->valuedouble != (int)j->valuedouble) {
		seterr(err, errsz,
		       "format version %g is not supported (this suture reads versions "
		       "%d to %d)",
		       j->valuedouble, STORE_FORMAT_VERSION_MIN, STORE_FORMAT_VERSION);
		goto out;
	}
	version = (int)j->valuedouble;
	cJSON_ArrayForEach(j, root)
	{
		if (strcmp(j->string, "format") == 0 && !have_format++)
			continue;
		if (strcmp(j->string, "version") == 0 && !have_version++)
			continue;
		if (strcmp(j->string, "patches") == 0 && !patches) {
			patches = j;
			continue;
		}
		if (strcmp(j->string, "handled") == 0 && !handled) {
			handled = j;
			continue;
		}
		seterr(err, errsz, "%s field \"%.64s\" at the top level",
		       field_of(j->string, 0) || !strcmp(j->string, "format") ||
				       !strcmp(j->string, "version") ||
				       !strcmp(j->string, "patches") ||
				       !strcmp(j->string, "handled")
			       ? "duplicate"
			       : "unknown",
		       text_flaw(j->string) ? "?" : j->string);
		goto out;
	}
	if (!cJSON_IsArray(patches)) {
		seterr(err, errsz, "\"patches\": %s", patches ? "expected an array" : "missing");
		goto out;
	}
	n = (size_t)cJSON_GetArraySize(patches);
	if (n && !(idx.v = calloc(n, sizeof(*idx.v)))) {
		seterr(err, errsz, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	idx.cap = n;
	/* Names must be unique: a hash set of indexes, twice the size. */
	nslots = 2 * n + 1;
	if (!(slots = calloc(nslots, sizeof(*slots)))) {
		seterr(err, errsz, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	cJSON_ArrayForEach(j, patches)
	{
		size_t h;

		if (i >= n) /* cannot happen: n counted the same list */
			break;
		if ((r = decode_patch(j, i, version, &idx.v[i], err, errsz)))
			goto out;
		idx.n = i + 1;
		for (h = name_hash(idx.v[i].name) % nslots; slots[h]; h = (h + 1) % nslots) {
			if (strcmp(idx.v[slots[h] - 1].name, idx.v[i].name) == 0) {
				seterr(err, errsz, "patches[%zu].name: \"%s\" appears twice", i,
				       idx.v[i].name);
				r = -EBADMSG;
				goto out;
			}
		}
		slots[h] = i + 1;
		i++;
	}
	if (handled && (r = decode_handled(handled, &idx, err, errsz)))
		goto out;
	*out = idx;
	memset(&idx, 0, sizeof(idx));
	r = 0;
out:
	if (r && r != -ENOMEM)
		r = -EBADMSG;
	free(slots);
	store_index__free(&idx);
	cJSON_Delete(root);
	return r;
}

/* ---- encode -------------------------------------------------------------- */

/* The encoder writes the text itself, byte for byte what cJSON_Print
 * gives for the same tree (tabs, "key":<tab>value, arrays as "[{", "}, {",
 * "}]"; test_store_index checks it against cJSON): building a cJSON tree
 * of every field and printing it cost ten times as much, paid by every
 * run that records hits. */
struct out {
	char *p;
	size_t n, cap;
	bool oom;
};

static void out_put(struct out *o, const char *s, size_t n)
{
	if (o->oom)
		return;
	if (o->n + n + 2 > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		while (o->n + n + 2 > cap)
			cap *= 2;
		char *p = realloc(o->p, cap);
		if (!p) {
			o->oom = true;
			return;
		}
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->n, s, n);
	o->n += n;
}

static void out_str(struct out *o, const char *s)
{
	out_put(o, s, strlen(s));
}

/* A JSON string as cJSON escapes it: quote, backslash, \b \f \n \r \t,
 * other control characters as \u00xx; everything else as is. */
static void out_quoted(struct out *o, const char *s)
{
	const char *run = s;
	out_put(o, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		const char *esc = NULL;
		char u[8];
		switch (c) {
		case '"':
			esc = "\\\"";
			break;
		case '\\':
			esc = "\\\\";
			break;
		case '\b':
			esc = "\\b";
			break;
		case '\f':
			esc = "\\f";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		case '\t':
			esc = "\\t";
			break;
		default:
			if (c < 32) {
				snprintf(u, sizeof(u), "\\u%04x", c);
				esc = u;
			}
		}
		if (!esc)
			continue;
		out_put(o, run, (size_t)(s - run));
		out_str(o, esc);
		run = s + 1;
	}
	out_put(o, run, (size_t)(s - run));
	out_put(o, "\"", 1);
}

static void encode_field(const struct field *f, const struct store_patch *p, struct out *o)
{
	const char *base = (const char *)p;
	const char *s;
	char buf[32];
	int64_t t;

	out_str(o, "\t\t\t\"");
	out_str(o, f->key);
	out_str(o, "\":\t");
	switch (f->type) {
	case F_NAME:
	case F_TEXT:
		out_quoted(o, *(const char *const *)(base + f->off));
		break;
	case F_OPT_TEXT:
		s = *(const char *const *)(base + f->off);
		if (s)
			out_quoted(o, s);
		else
			out_str(o, "null");
		break;
	case F_LINE:
		snprintf(buf, sizeof(buf), "%d", *(const int *)(base + f->off));
		out_str(o, buf);
		break;
	case F_U32:
	case F_TTL:
		snprintf(buf, sizeof(buf), "%" PRIu32, *(const uint32_t *)(base + f->off));
		out_str(o, buf);
		break;
	case F_HITS: /* at most STORE_HITS_MAX: 15 digits, printed whole by cJSON too */
		snprintf(buf, sizeof(buf), "%" PRIu64, *(const uint64_t *)(base + f->off));
		out_str(o, buf);
		break;
	case F_TIME:
	case F_OPT_TIME:
		t = *(const int64_t *)(base + f->off);
		if (f->type == F_OPT_TIME && t == 0)
			out_str(o, "null");
		else if (store__format_time(t, buf, sizeof(buf)) == 0)
			out_quoted(o, buf);
		else
			o->oom = true; /* validated patches always format */
		break;
	case F_STATUS:
		out_quoted(o, store_status__str(p->status));
		break;
	}
}

char *store_index__serialize(const struct store_index *idx, size_t *len)
{
	struct out o = { 0 };
	char buf[32];

	out_str(&o, "{\n\t\"format\":\t");
	out_quoted(&o, FORMAT_NAME);
	snprintf(buf, sizeof(buf), ",\n\t\"version\":\t%d,\n", STORE_FORMAT_VERSION);
	out_str(&o, buf);
	out_str(&o, "\t\"patches\":\t[");
	for (size_t i = 0; i < idx->n; i++) {
		out_str(&o, i ? ", {\n" : "{\n");
		for (size_t k = 0; k < NFIELDS; k++) {
			encode_field(&fields[k], &idx->v[i], &o);
			out_str(&o, k + 1 < NFIELDS ? ",\n" : "\n");
		}
		out_str(&o, "\t\t}");
	}
	out_str(&o, "]");
	/* Only when there are some: an index without handled crashes is
	 * written as before. */
	if (idx->nh) {
		out_str(&o, ",\n\t\"handled\":\t[");
		for (size_t i = 0; i < idx->nh; i++) {
			const struct store_handled *e = &idx->h[i];
			out_str(&o, i ? ", {\n" : "{\n");
			out_str(&o, "\t\t\t\"program\":\t");
			out_quoted(&o, e->program);
			out_str(&o, ",\n\t\t\t\"site\":\t");
			out_quoted(&o, e->site);
			out_str(&o, ",\n\t\t\t\"type\":\t");
			out_quoted(&o, e->exc_type);
			snprintf(buf, sizeof(buf), "%" PRIu64, e->count);
			out_str(&o, ",\n\t\t\t\"count\":\t");
			out_str(&o, buf);
			out_str(&o, ",\n\t\t\t\"last_seen\":\t");
			if (store__format_time(e->last_seen, buf, sizeof(buf)) == 0)
				out_quoted(&o, buf);
			else
				o.oom = true; /* validated entries always format */
			out_str(&o, "\n\t\t}");
		}
		out_str(&o, "]");
	}
	out_str(&o, "\n}\n");
	if (o.oom) {
		free(o.p);
		return NULL;
	}
	o.p[o.n] = '\0';
	if (len)
		*len = o.n;
	return o.p;
}
