/* inspect/code.c: code objects read from another process, and the 3.11
 * location table (Objects/locations.md; docs/formats/location-table.md).
 */
#include "inspect/inspect-priv.h"
#include "rewrite/rewrite.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The location table is decoded by rewrite/ (the one decoder of that wire
 * form in suture); the lookup walks its entries, which are contiguous from
 * unit 0. */
int inspect_linetable__line(const uint8_t *p, const uint8_t *end, int firstlineno, int32_t unit,
			    int *line)
{
	struct rewrite_lentry *e = NULL;
	size_t n = 0;
	if (unit < 0) {
		*line = firstlineno;
		return 0;
	}
	int err = rewrite_linetable__decode(p, end, firstlineno, &e, &n, NULL);
	if (err)
		return err;
	err = -EINVAL;
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if ((uint32_t)unit < e[mid].start)
			hi = mid;
		else if ((uint32_t)unit - e[mid].start >= e[mid].len)
			lo = mid + 1;
		else {
			*line = e[mid].loc.line;
			err = 0;
			break;
		}
	}
	free(e);
	return err;
}

static int32_t get_i32(const uint8_t *b, size_t blen, int64_t off)
{
	int32_t v = 0;
	if (off >= 0 && (uint64_t)off + 4 <= blen)
		memcpy(&v, b + off, 4);
	return v;
}

static uint64_t get_u64(const uint8_t *b, size_t blen, int64_t off)
{
	uint64_t v = 0;
	if (off >= 0 && (uint64_t)off + 8 <= blen)
		memcpy(&v, b + off, 8);
	return v;
}

int inspect_code__read(const struct inspect_reader *r, uint64_t addr, struct inspect_code *c)
{
	const struct inspect_offsets *o = r->off;
	uint8_t hdr[512];
	size_t hlen = (size_t)o->co_code_adaptive;
	memset(c, 0, sizeof(*c));
	c->addr = addr;
	if (o->co_code_adaptive <= 0 || hlen > sizeof(hdr))
		return -EINVAL;
	int err = inspect__read(r, addr, hdr, hlen);
	if (err)
		return err;
	uint64_t type = get_u64(hdr, hlen, o->ob_type);
	if (!r->types->type_code || type != r->types->type_code)
		return -EINVAL;
	int64_t size = (int64_t)get_u64(hdr, hlen, o->ob_size);
	c->firstlineno = get_i32(hdr, hlen, o->co_firstlineno);
	c->argcount = get_i32(hdr, hlen, o->co_argcount);
	c->posonlyargcount = get_i32(hdr, hlen, o->co_posonlyargcount);
	c->kwonlyargcount = get_i32(hdr, hlen, o->co_kwonlyargcount);
	c->stacksize = get_i32(hdr, hlen, o->co_stacksize);
	c->flags = get_i32(hdr, hlen, o->co_flags);
	c->nlocalsplus = get_i32(hdr, hlen, o->co_nlocalsplus);
	c->nlocals = get_i32(hdr, hlen, o->co_nlocals);
	c->nplaincellvars = get_i32(hdr, hlen, o->co_nplaincellvars);
	c->ncellvars = get_i32(hdr, hlen, o->co_ncellvars);
	c->nfreevars = get_i32(hdr, hlen, o->co_nfreevars);
	/* Sanity: CPython caps these far below; a bad read shows here. */
	if (size <= 0 || size > (1 << 24) || c->nlocalsplus < 0 || c->nlocalsplus > (1 << 16) ||
	    c->stacksize < 0 || c->stacksize > (1 << 20) || c->nlocals < 0 ||
	    c->nlocals > c->nlocalsplus || c->argcount < 0 || c->argcount > c->nlocalsplus)
		return -EINVAL;
	c->ncodeunits = (uint32_t)size;
	c->code_adaptive = addr + (uint64_t)o->co_code_adaptive;
	c->consts = get_u64(hdr, hlen, o->co_consts);
	c->names = get_u64(hdr, hlen, o->co_names);
	c->exctable = get_u64(hdr, hlen, o->co_exceptiontable);
	c->linetable = get_u64(hdr, hlen, o->co_linetable);
	c->localsplusnames = get_u64(hdr, hlen, o->co_localsplusnames);
	c->localspluskinds = get_u64(hdr, hlen, o->co_localspluskinds);
	c->filename_obj = get_u64(hdr, hlen, o->co_filename);
	c->name_obj = get_u64(hdr, hlen, o->co_name);
	c->qualname_obj = get_u64(hdr, hlen, o->co_qualname);
	if (inspect_str__read(r, c->name_obj, c->name, sizeof(c->name)) ||
	    inspect_str__read(r, c->qualname_obj, c->qualname, sizeof(c->qualname)) ||
	    inspect_str__read(r, c->filename_obj, c->filename, sizeof(c->filename)))
		return -EINVAL;
	return 0;
}

int inspect_bytes__read(const struct inspect_reader *r, uint64_t addr, size_t max, uint8_t **buf,
			size_t *len)
{
	const struct inspect_offsets *o = r->off;
	uint64_t type;
	int64_t size;
	*buf = NULL;
	*len = 0;
	if (o->bytes_sval < 0)
		return -EINVAL;
	int err = inspect__read_u64(r, addr + (uint64_t)o->ob_type, &type);
	if (!err)
		err = inspect__read(r, addr + (uint64_t)o->ob_size, &size, sizeof(size));
	if (err)
		return err;
	if (!r->types->type_bytes || type != r->types->type_bytes || size < 0)
		return -EINVAL;
	if ((uint64_t)size > max)
		return -E2BIG;
	uint8_t *b = malloc((size_t)size + 1);
	if (!b)
		return -ENOMEM;
	err = inspect__read(r, addr + (uint64_t)o->bytes_sval, b, (size_t)size);
	if (err) {
		free(b);
		return err;
	}
	*buf = b;
	*len = (size_t)size;
	return 0;
}

int inspect_tuple__read(const struct inspect_reader *r, uint64_t addr, size_t max, uint64_t **items,
			size_t *n)
{
	const struct inspect_offsets *o = r->off;
	uint64_t type;
	int64_t size;
	*items = NULL;
	*n = 0;
	int err = inspect__read_u64(r, addr + (uint64_t)o->ob_type, &type);
	if (!err)
		err = inspect__read(r, addr + (uint64_t)o->ob_size, &size, sizeof(size));
	if (err)
		return err;
	if (!r->types->type_tuple || type != r->types->type_tuple || size < 0)
		return -EINVAL;
	if ((uint64_t)size > max)
		return -E2BIG;
	uint64_t *v = malloc(((size_t)size + 1) * sizeof(uint64_t));
	if (!v)
		return -ENOMEM;
	err = inspect__read(r, addr + (uint64_t)o->tuple_item, v, (size_t)size * sizeof(uint64_t));
	if (err) {
		free(v);
		return err;
	}
	*items = v;
	*n = (size_t)size;
	return 0;
}

/* co_linetable is small (a few bytes per instruction); 1 MiB is far above
 * anything the compiler emits for one code object. */
#define MAX_TABLE (1u << 20)

int inspect_code__line(const struct inspect_reader *r, const struct inspect_code *c, int32_t unit,
		       int *line)
{
	uint8_t *t;
	size_t n;
	if (unit < 0) {
		*line = c->firstlineno;
		return 0;
	}
	int err = inspect_bytes__read(r, c->linetable, MAX_TABLE, &t, &n);
	if (err)
		return err;
	err = inspect_linetable__line(t, t + n, c->firstlineno, unit, line);
	free(t);
	return err;
}

int inspect_code__local(const struct inspect_reader *r, const struct inspect_code *c, int32_t i,
			char *name, size_t len, uint8_t *kind)
{
	const struct inspect_offsets *o = r->off;
	uint64_t nameobj;
	if (i < 0 || i >= c->nlocalsplus)
		return -EINVAL;
	int err = inspect__read_u64(r,
				    c->localsplusnames + (uint64_t)o->tuple_item + 8 * (uint64_t)i,
				    &nameobj);
	if (!err && kind)
		err = inspect__read(r, c->localspluskinds + (uint64_t)o->bytes_sval + (uint64_t)i,
				    kind, 1);
	if (!err)
		err = inspect_str__read(r, nameobj, name, len);
	return err;
}

int inspect_code__units(const struct inspect_reader *r, const struct inspect_code *c, uint8_t **buf,
			size_t *len)
{
	size_t n = (size_t)c->ncodeunits * 2;
	uint8_t *b = malloc(n ? n : 1);
	*buf = NULL;
	*len = 0;
	if (!b)
		return -ENOMEM;
	int err = inspect__read(r, c->code_adaptive, b, n);
	if (err) {
		free(b);
		return err;
	}
	*buf = b;
	*len = n;
	return 0;
}
