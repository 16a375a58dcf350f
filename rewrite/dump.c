/* rewrite/dump.c: reader of codedump files (docs/formats/codedump.md),
 * written by tests/fixtures/codedump.py. A dump is untrusted input: every
 * count and length is checked against the bytes left. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rewrite/rewrite-priv.h"

#define DUMP_MAGIC "SUTCODE\0"
#define DUMP_VERSION 1

struct rewrite_dump {
	uint8_t *data;
	size_t len;
	struct rewrite_dump_entry *entries;
	size_t n;
	/* Two allocations per entry (names block, consts), freed on close. */
	void **arrays;
};

struct cur {
	const uint8_t *p, *end;
};

static int get_u32(struct cur *c, uint32_t *v)
{
	if (c->end - c->p < 4)
		return -EINVAL;
	*v = (uint32_t)c->p[0] | (uint32_t)c->p[1] << 8 | (uint32_t)c->p[2] << 16 |
	     (uint32_t)c->p[3] << 24;
	c->p += 4;
	return 0;
}

static int get_i32(struct cur *c, int *v)
{
	uint32_t u;
	int err = get_u32(c, &u);
	if (!err)
		*v = (int)(int32_t)u;
	return err;
}

/* len, bytes, NUL */
static int get_str(struct cur *c, const char **s)
{
	uint32_t len;
	if (get_u32(c, &len) || (size_t)(c->end - c->p) < (size_t)len + 1 || c->p[len] != 0)
		return -EINVAL;
	*s = (const char *)c->p;
	c->p += (size_t)len + 1;
	return 0;
}

static int get_blob(struct cur *c, const uint8_t **b, size_t *len, bool optional)
{
	uint32_t l;
	if (get_u32(c, &l))
		return -EINVAL;
	if (l == UINT32_MAX && optional) {
		*b = NULL;
		*len = 0;
		return 0;
	}
	if ((size_t)(c->end - c->p) < l)
		return -EINVAL;
	*b = c->p;
	*len = l;
	c->p += l;
	return 0;
}

static int parse_entry(struct cur *c, struct rewrite_dump_entry *e, void **slots, size_t index)
{
	struct rewrite_code_info *in = &e->info;
	int parent, nlp;
	uint32_t flags, nnames, nconsts;
	if (get_i32(c, &parent) || parent < -1 || (parent >= 0 && (size_t)parent >= index) ||
	    get_str(c, &in->filename) || get_str(c, &in->name) || get_str(c, &in->qualname) ||
	    get_i32(c, &in->firstlineno) || get_i32(c, &in->stacksize) || get_u32(c, &flags) ||
	    get_i32(c, &in->argcount) || get_i32(c, &in->posonlyargcount) ||
	    get_i32(c, &in->kwonlyargcount) || get_i32(c, &in->nlocals) || get_i32(c, &nlp) ||
	    nlp < 0 || get_blob(c, &in->code, &in->code_len, false) ||
	    get_blob(c, &e->adaptive, &e->adaptive_len, true) ||
	    get_blob(c, &in->exctable, &in->exctable_len, false) ||
	    get_blob(c, &in->linetable, &in->linetable_len, false) || get_u32(c, &nnames))
		return -EINVAL;
	e->parent = parent;
	in->flags = flags;
	in->nlocalsplus = nlp;
	/* Each name takes at least 5 bytes, each const 10: bound the counts by
	 * what is left before allocating. */
	size_t left = (size_t)(c->end - c->p);
	if (nnames > left / 5 || (size_t)nlp > left / 6)
		return -EINVAL;
	size_t bytes = (size_t)nnames * sizeof(char *) + (size_t)nlp * (sizeof(char *) + 1);
	uint8_t *mem = malloc(bytes ? bytes : 1);
	if (!mem)
		return -ENOMEM;
	slots[0] = mem;
	const char **names = (const char **)mem;
	const char **lpn = names + nnames;
	uint8_t *kinds = (uint8_t *)(lpn + nlp);
	for (uint32_t i = 0; i < nnames; i++)
		if (get_str(c, &names[i]))
			return -EINVAL;
	for (int i = 0; i < nlp; i++) {
		if (get_str(c, &lpn[i]) || c->p >= c->end)
			return -EINVAL;
		kinds[i] = *c->p++;
	}
	if (get_u32(c, &nconsts) || nconsts > (size_t)(c->end - c->p) / 10)
		return -EINVAL;
	struct rewrite_const *consts = malloc((nconsts ? nconsts : 1) * sizeof(*consts));
	if (!consts)
		return -ENOMEM;
	slots[1] = consts;
	for (uint32_t i = 0; i < nconsts; i++)
		if (get_str(c, &consts[i].type) || get_str(c, &consts[i].repr))
			return -EINVAL;
	in->nnames = nnames;
	in->names = names;
	in->localsplusnames = lpn;
	in->localspluskinds = kinds;
	in->nconsts = nconsts;
	in->consts = consts;
	return 0;
}

/* Takes ownership of data (malloc'ed). */
static int parse_owned(uint8_t *data, size_t len, struct rewrite_dump **out,
		       struct rewrite_diag *diag)
{
	*out = NULL;
	if (len < 16 || memcmp(data, DUMP_MAGIC, 8) != 0) {
		free(data);
		return rw_fail(diag, NULL, -EINVAL, 0, "codedump: bad magic");
	}
	struct rewrite_dump *d = calloc(1, sizeof(*d));
	if (!d) {
		free(data);
		return rw_fail(diag, NULL, -ENOMEM, -1, "codedump: out of memory");
	}
	d->data = data;
	d->len = len;
	struct cur c = { d->data + 8, d->data + d->len };
	uint32_t version = 0, count = 0;
	int err;
	get_u32(&c, &version);
	get_u32(&c, &count);
	if (version != DUMP_VERSION) {
		err = rw_fail(diag, NULL, -EINVAL, 8, "codedump: version %u, expected %u", version,
			      DUMP_VERSION);
		goto fail;
	}
	if (count > (size_t)(c.end - c.p) / 4) {
		err = rw_fail(diag, NULL, -EINVAL, 12, "codedump: %u records cannot fit", count);
		goto fail;
	}
	d->entries = calloc(count ? count : 1, sizeof(*d->entries));
	d->arrays = calloc(count ? 2 * (size_t)count : 1, sizeof(void *));
	if (!d->entries || !d->arrays) {
		err = rw_fail(diag, NULL, -ENOMEM, -1, "codedump: out of memory");
		goto fail;
	}
	for (uint32_t i = 0; i < count; i++) {
		uint32_t size;
		size_t at = (size_t)(c.p - d->data);
		if (get_u32(&c, &size) || size > (size_t)(c.end - c.p)) {
			err = rw_fail(diag, NULL, -EINVAL, at, "codedump: record %u truncated", i);
			goto fail;
		}
		struct cur r = { c.p, c.p + size };
		err = parse_entry(&r, &d->entries[i], &d->arrays[2 * (size_t)i], i);
		d->n = i + 1;
		if (err || r.p != r.end) {
			err = rw_fail(diag, NULL, err ? err : -EINVAL, at,
				      "codedump: record %u malformed", i);
			goto fail;
		}
		c.p += size;
	}
	if (c.p != c.end) {
		err = rw_fail(diag, NULL, -EINVAL, c.p - d->data, "codedump: trailing bytes");
		goto fail;
	}
	*out = d;
	return 0;
fail:
	rewrite_dump__close(d);
	return err;
}

int rewrite_dump__parse(const uint8_t *p, const uint8_t *end, struct rewrite_dump **out,
			struct rewrite_diag *diag)
{
	*out = NULL;
	if (end < p)
		return rw_fail(diag, NULL, -EINVAL, 0, "codedump: bad range");
	size_t len = (size_t)(end - p);
	uint8_t *data = malloc(len ? len : 1);
	if (!data)
		return rw_fail(diag, NULL, -ENOMEM, -1, "codedump: out of memory");
	if (len)
		memcpy(data, p, len);
	return parse_owned(data, len, out, diag);
}

int rewrite_dump__open(const char *path, struct rewrite_dump **out, struct rewrite_diag *diag)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return rw_fail(diag, NULL, -errno, -1, "codedump: %s: %s", path, strerror(errno));
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	int err = 0;
	for (;;) {
		if (len == cap) {
			size_t nc = cap ? 2 * cap : 1 << 20;
			uint8_t *nb = realloc(buf, nc);
			if (!nb) {
				err = rw_fail(diag, NULL, -ENOMEM, -1,
					      "codedump: %s: out of memory", path);
				fclose(f);
				goto out;
			}
			buf = nb;
			cap = nc;
		}
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0) {
			if (ferror(f))
				err = rw_fail(diag, NULL, -EIO, -1, "codedump: %s: read error",
					      path);
			break;
		}
	}
	fclose(f);
	if (!err)
		return parse_owned(buf, len, out, diag);
out:
	free(buf);
	return err;
}

void rewrite_dump__close(struct rewrite_dump *d)
{
	if (!d)
		return;
	if (d->arrays)
		for (size_t i = 0; i < 2 * d->n; i++)
			free(d->arrays[i]);
	free(d->arrays);
	free(d->entries);
	free(d->data);
	free(d);
}

size_t rewrite_dump__count(const struct rewrite_dump *d)
{
	return d->n;
}

const struct rewrite_dump_entry *rewrite_dump__entry(const struct rewrite_dump *d, size_t i)
{
	return i < d->n ? &d->entries[i] : NULL;
}
