/* inspect/dwarf.c: fill struct inspect_offsets from DWARF with libdwarf.
 *
 * One pass over the top-level DIEs of every unit finds the root types
 * named in the field table (a complete struct/union, or a typedef that
 * leads to one); each member path is then resolved by walking children and
 * following DW_AT_type through typedefs and qualifiers. Anonymous struct or
 * union members are searched through, as C does.
 */
#include "inspect/offsets.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dlfcn.h>
#include <libdwarf/dwarf.h>
#include <libdwarf/libdwarf.h>

/* libdwarf is loaded when DWARF is read, not with every command: a layout
 * comes from the cache (offsets.c) or the built-in table on every run but
 * the first with a new interpreter build, and mapping and relocating
 * libdwarf at each start of suture-run, suture-attach and suture-audit
 * cost 0.3 ms on a paravirtualized MMU (docs/performance.md, "start-up,
 * fifth pass"). The calls below go through this table. */
#define DWARF_FNS(X)               \
	X(dwarf_attr)              \
	X(dwarf_child)             \
	X(dwarf_dealloc_attribute) \
	X(dwarf_dealloc_die)       \
	X(dwarf_dealloc_error)     \
	X(dwarf_diename)           \
	X(dwarf_dieoffset)         \
	X(dwarf_errmsg)            \
	X(dwarf_finish)            \
	X(dwarf_formexprloc)       \
	X(dwarf_formudata)         \
	X(dwarf_global_formref)    \
	X(dwarf_hasattr)           \
	X(dwarf_init_b)            \
	X(dwarf_next_cu_header_d)  \
	X(dwarf_offdie_b)          \
	X(dwarf_siblingof_b)       \
	X(dwarf_tag)

static struct {
#define FN_PTR(name) __typeof__(name) *name;
	DWARF_FNS(FN_PTR)
#undef FN_PTR
} dw;

/* 0, or -ENODATA with err set when libdwarf cannot be loaded. */
static int dwarf_load(const char *path, char *err, size_t errlen)
{
	static int state; /* 0 not tried, 1 loaded, -1 failed */
	if (state == 0) {
		void *h = dlopen("libdwarf.so.1", RTLD_NOW | RTLD_LOCAL);
		state = h ? 1 : -1;
#define FN_SYM(name)                                               \
	if (state == 1 && !(*(void **)&dw.name = dlsym(h, #name))) \
		state = -1;
		DWARF_FNS(FN_SYM)
#undef FN_SYM
	}
	if (state == 1)
		return 0;
	snprintf(err, errlen, "%s: libdwarf.so.1 cannot be loaded", path);
	return -ENODATA;
}

#define MAX_ROOTS 64
#define MAX_HOPS 16

struct root {
	char name[48];
	Dwarf_Off off;
	int found;
};

struct walker {
	Dwarf_Debug dbg;
	struct root roots[MAX_ROOTS];
	size_t nroots, nfound;
};

static int die_tag(Dwarf_Die die)
{
	Dwarf_Half tag = 0;
	Dwarf_Error e = NULL;
	if (dw.dwarf_tag(die, &tag, &e) != DW_DLV_OK)
		return -1;
	return tag;
}

static int die_has(Dwarf_Die die, Dwarf_Half attr)
{
	Dwarf_Bool b = 0;
	Dwarf_Error e = NULL;
	return dw.dwarf_hasattr(die, attr, &b, &e) == DW_DLV_OK && b;
}

/* Unsigned constant attribute, or -1. Also accepts a location expression
 * of the form DW_OP_plus_uconst N (DWARF 2 member locations). */
static int64_t die_udata(Dwarf_Die die, Dwarf_Half attr)
{
	Dwarf_Attribute a = NULL;
	Dwarf_Error e = NULL;
	Dwarf_Unsigned u = 0;
	int64_t r = -1;
	if (dw.dwarf_attr(die, attr, &a, &e) != DW_DLV_OK)
		return -1;
	if (dw.dwarf_formudata(a, &u, &e) == DW_DLV_OK) {
		r = (int64_t)u;
	} else {
		Dwarf_Unsigned len = 0;
		Dwarf_Ptr p = NULL;
		if (dw.dwarf_formexprloc(a, &len, &p, &e) == DW_DLV_OK && len >= 2 &&
		    ((unsigned char *)p)[0] == DW_OP_plus_uconst) {
			const unsigned char *b = (const unsigned char *)p + 1;
			uint64_t v = 0;
			unsigned shift = 0;
			for (Dwarf_Unsigned i = 1; i < len && shift < 63; i++, b++) {
				v |= (uint64_t)(*b & 0x7f) << shift;
				shift += 7;
				if (!(*b & 0x80)) {
					r = (int64_t)v;
					break;
				}
			}
		}
	}
	dw.dwarf_dealloc_attribute(a);
	return r;
}

/* The DIE named by DW_AT_type, or NULL. */
static Dwarf_Die die_type(Dwarf_Debug dbg, Dwarf_Die die)
{
	Dwarf_Attribute a = NULL;
	Dwarf_Error e = NULL;
	Dwarf_Off off = 0;
	Dwarf_Die t = NULL;
	if (dw.dwarf_attr(die, DW_AT_type, &a, &e) != DW_DLV_OK)
		return NULL;
	int ok = dw.dwarf_global_formref(a, &off, &e) == DW_DLV_OK;
	dw.dwarf_dealloc_attribute(a);
	if (!ok || dw.dwarf_offdie_b(dbg, off, 1, &t, &e) != DW_DLV_OK)
		return NULL;
	return t;
}

/* Follow typedefs and qualifiers. Consumes die; returns a DIE to free. */
static Dwarf_Die strip(Dwarf_Debug dbg, Dwarf_Die die)
{
	for (int hop = 0; die && hop < MAX_HOPS; hop++) {
		int tag = die_tag(die);
		if (tag != DW_TAG_typedef && tag != DW_TAG_const_type &&
		    tag != DW_TAG_volatile_type && tag != DW_TAG_atomic_type &&
		    tag != DW_TAG_restrict_type)
			return die;
		Dwarf_Die next = die_type(dbg, die);
		dw.dwarf_dealloc_die(die);
		die = next;
	}
	if (die)
		dw.dwarf_dealloc_die(die);
	return NULL;
}

struct member_hit {
	int64_t byte_off; /* from the start of the searched aggregate */
	int64_t bit_pos;  /* bit position from the same start, bitfields only */
	int64_t bit_size;
	Dwarf_Die die; /* the member DIE, to free */
};

/* Find member `name` in aggregate `agg` (struct or union DIE), searching
 * anonymous members too. 1 found, 0 not. */
static int find_member(Dwarf_Debug dbg, Dwarf_Die agg, const char *name, size_t len, int depth,
		       struct member_hit *hit)
{
	Dwarf_Die child = NULL, next = NULL;
	Dwarf_Error e = NULL;
	if (depth > MAX_HOPS || dw.dwarf_child(agg, &child, &e) != DW_DLV_OK)
		return 0;
	while (child) {
		if (die_tag(child) == DW_TAG_member) {
			int64_t loc = die_udata(child, DW_AT_data_member_location);
			if (loc < 0)
				loc = 0; /* union members have no location */
			char *n = NULL;
			int named = dw.dwarf_diename(child, &n, &e) == DW_DLV_OK && n;
			if (named && strlen(n) == len && memcmp(n, name, len) == 0) {
				hit->byte_off = loc;
				hit->bit_size = die_udata(child, DW_AT_bit_size);
				hit->bit_pos = -1;
				int64_t dbo = die_udata(child, DW_AT_data_bit_offset);
				if (dbo >= 0) {
					hit->bit_pos = dbo;
					hit->byte_off = dbo / 8;
				} else if (hit->bit_size >= 0) {
					/* DWARF 2/3: DW_AT_bit_offset counts from the
					 * most significant bit of the storage unit. */
					int64_t bo = die_udata(child, DW_AT_bit_offset);
					int64_t bs = die_udata(child, DW_AT_byte_size);
					if (bo >= 0 && bs > 0)
						hit->bit_pos = loc * 8 + bs * 8 - bo -
							       hit->bit_size;
				}
				hit->die = child;
				return 1;
			}
			if (!named) {
				Dwarf_Die t = strip(dbg, die_type(dbg, child));
				if (t) {
					int tt = die_tag(t);
					int ok = (tt == DW_TAG_structure_type ||
						  tt == DW_TAG_union_type) &&
						 find_member(dbg, t, name, len, depth + 1, hit);
					dw.dwarf_dealloc_die(t);
					if (ok) {
						hit->byte_off += loc;
						if (hit->bit_pos >= 0)
							hit->bit_pos += loc * 8;
						dw.dwarf_dealloc_die(child);
						return 1;
					}
				}
			}
		}
		next = NULL;
		int r = dw.dwarf_siblingof_b(dbg, child, 1, &next, &e);
		dw.dwarf_dealloc_die(child);
		child = r == DW_DLV_OK ? next : NULL;
	}
	return 0;
}

static int64_t type_size(Dwarf_Debug dbg, Dwarf_Die t /* consumed */, int element)
{
	t = strip(dbg, t);
	if (!t)
		return -1;
	if (element && die_tag(t) == DW_TAG_array_type) {
		Dwarf_Die el = strip(dbg, die_type(dbg, t));
		dw.dwarf_dealloc_die(t);
		t = el;
		if (!t)
			return -1;
	}
	int64_t s = die_udata(t, DW_AT_byte_size);
	if (s < 0 && die_tag(t) == DW_TAG_pointer_type)
		s = 8;
	dw.dwarf_dealloc_die(t);
	return s;
}

/* Resolve one field against the root DIE at `off`. -1 when not found. */
static int64_t resolve(Dwarf_Debug dbg, Dwarf_Off off, const struct inspect_field *f)
{
	Dwarf_Die die = NULL;
	Dwarf_Error e = NULL;
	if (dw.dwarf_offdie_b(dbg, off, 1, &die, &e) != DW_DLV_OK)
		return -1;
	die = strip(dbg, die);
	if (!die)
		return -1;
	if (f->kind == INSPECT_FIELD_SIZEOF) {
		int64_t s = die_udata(die, DW_AT_byte_size);
		dw.dwarf_dealloc_die(die);
		return s;
	}
	int64_t base = 0, result = -1;
	const char *p = f->path;
	while (die) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		int tag = die_tag(die);
		struct member_hit hit = { 0 };
		if ((tag != DW_TAG_structure_type && tag != DW_TAG_union_type) ||
		    !find_member(dbg, die, p, len, 0, &hit)) {
			dw.dwarf_dealloc_die(die);
			return -1;
		}
		dw.dwarf_dealloc_die(die);
		die = NULL;
		if (!dot) {
			switch (f->kind) {
			case INSPECT_FIELD_MEMBER:
				result = base + hit.byte_off;
				break;
			case INSPECT_FIELD_BITPOS:
				result = hit.bit_pos >= 0 ? base * 8 + hit.bit_pos : -1;
				break;
			case INSPECT_FIELD_BITSIZE:
				result = hit.bit_size;
				break;
			case INSPECT_FIELD_MEMBSIZE:
				result = type_size(dbg, die_type(dbg, hit.die), 1);
				break;
			case INSPECT_FIELD_SIZEOF:
				break;
			}
			dw.dwarf_dealloc_die(hit.die);
			return result;
		}
		base += hit.byte_off;
		die = strip(dbg, die_type(dbg, hit.die));
		dw.dwarf_dealloc_die(hit.die);
		p = dot + 1;
	}
	return -1;
}

static void add_roots(struct walker *w)
{
	size_t n;
	const struct inspect_field *f = inspect_offsets__fields(&n);
	for (size_t i = 0; i < n; i++) {
		const char *p = f[i].root;
		while (*p) {
			const char *bar = strchr(p, '|');
			size_t len = bar ? (size_t)(bar - p) : strlen(p);
			int dup = 0;
			for (size_t j = 0; j < w->nroots; j++)
				if (strlen(w->roots[j].name) == len &&
				    memcmp(w->roots[j].name, p, len) == 0)
					dup = 1;
			if (!dup && w->nroots < MAX_ROOTS && len < sizeof(w->roots[0].name)) {
				memcpy(w->roots[w->nroots].name, p, len);
				w->roots[w->nroots].name[len] = 0;
				w->nroots++;
			}
			p += len + (bar ? 1 : 0);
		}
	}
}

/* A typedef counts only if it leads to a complete aggregate. */
static int complete_type(Dwarf_Debug dbg, Dwarf_Die die)
{
	int tag = die_tag(die);
	if (tag == DW_TAG_structure_type || tag == DW_TAG_union_type)
		return !die_has(die, DW_AT_declaration);
	if (tag != DW_TAG_typedef)
		return 0;
	Dwarf_Die t = strip(dbg, die_type(dbg, die));
	if (!t)
		return 0;
	int tt = die_tag(t);
	int ok = (tt == DW_TAG_structure_type || tt == DW_TAG_union_type) &&
		 !die_has(t, DW_AT_declaration);
	dw.dwarf_dealloc_die(t);
	return ok;
}

static void scan_unit(struct walker *w, Dwarf_Die cu)
{
	Dwarf_Die d = NULL, next = NULL;
	Dwarf_Error e = NULL;
	if (dw.dwarf_child(cu, &d, &e) != DW_DLV_OK)
		return;
	while (d && w->nfound < w->nroots) {
		int tag = die_tag(d);
		if (tag == DW_TAG_structure_type || tag == DW_TAG_typedef ||
		    tag == DW_TAG_union_type) {
			char *n = NULL;
			if (dw.dwarf_diename(d, &n, &e) == DW_DLV_OK && n) {
				for (size_t i = 0; i < w->nroots; i++) {
					if (w->roots[i].found || strcmp(w->roots[i].name, n))
						continue;
					if (complete_type(w->dbg, d)) {
						Dwarf_Off off = 0;
						if (dw.dwarf_dieoffset(d, &off, &e) == DW_DLV_OK) {
							w->roots[i].off = off;
							w->roots[i].found = 1;
							w->nfound++;
						}
					}
					break;
				}
			}
		}
		next = NULL;
		int r = dw.dwarf_siblingof_b(w->dbg, d, 1, &next, &e);
		dw.dwarf_dealloc_die(d);
		d = r == DW_DLV_OK ? next : NULL;
	}
	if (d)
		dw.dwarf_dealloc_die(d);
}

int inspect_offsets__from_dwarf(const char *path, struct inspect_offsets *o, char *err,
				size_t errlen)
{
	struct walker w;
	Dwarf_Error e = NULL;
	int fd, ret = 0;
	memset(&w, 0, sizeof(w));
	inspect_offsets__clear(o);
	if (errlen)
		err[0] = 0;
	if ((ret = dwarf_load(path, err, errlen)))
		return ret;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	int r = dw.dwarf_init_b(fd, DW_DLC_READ, DW_GROUPNUMBER_ANY, NULL, NULL, &w.dbg, &e);
	if (r != DW_DLV_OK) {
		ret = r == DW_DLV_NO_ENTRY ? -ENODATA : -EINVAL;
		snprintf(err, errlen, "%s: %s", path,
			 r == DW_DLV_NO_ENTRY ? "no DWARF" : dw.dwarf_errmsg(e));
		if (r == DW_DLV_ERROR)
			dw.dwarf_dealloc_error(NULL, e);
		goto out_fd;
	}
	add_roots(&w);
	for (;;) {
		Dwarf_Unsigned next_off = 0;
		Dwarf_Half cu_type = 0;
		Dwarf_Die cu = NULL;
		r = dw.dwarf_next_cu_header_d(w.dbg, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
					      NULL, &next_off, &cu_type, &e);
		if (r != DW_DLV_OK)
			break;
		if (w.nfound == w.nroots)
			continue; /* drain the iteration so libdwarf resets */
		if (dw.dwarf_siblingof_b(w.dbg, NULL, 1, &cu, &e) == DW_DLV_OK) {
			scan_unit(&w, cu);
			dw.dwarf_dealloc_die(cu);
		}
	}
	size_t n;
	const struct inspect_field *f = inspect_offsets__fields(&n);
	size_t resolved = 0;
	for (size_t i = 0; i < n; i++) {
		const char *p = f[i].root;
		int64_t v = -1;
		while (*p && v < 0) {
			const char *bar = strchr(p, '|');
			size_t len = bar ? (size_t)(bar - p) : strlen(p);
			for (size_t j = 0; j < w.nroots; j++)
				if (w.roots[j].found && strlen(w.roots[j].name) == len &&
				    memcmp(w.roots[j].name, p, len) == 0) {
					v = resolve(w.dbg, w.roots[j].off, &f[i]);
					break;
				}
			p += len + (bar ? 1 : 0);
		}
		memcpy((char *)o + f[i].slot, &v, sizeof(v));
		resolved += v >= 0;
	}
	if (!resolved) {
		ret = -ENODATA;
		snprintf(err, errlen, "%s: no CPython types in DWARF", path);
	}
	dw.dwarf_finish(w.dbg, &e);
out_fd:
	close(fd);
	return ret;
}
