/* inspect/class.c: classes read from outside: whether an object is a
 * class, its namespace (tp_dict), and the callables kept inside the C
 * objects a class body makes of its functions (staticmethod, classmethod,
 * property).
 *
 * Those three are C structs private to Objects/funcobject.c and
 * Objects/descrobject.c: no header declares them, so neither the probe
 * table nor every DWARF source can give their layout. Their types say it
 * themselves: tp_members lists each slot ({"__func__", T_OBJECT,
 * offsetof(staticmethod, sm_callable)}), and PyType_Ready turns each row
 * into a member descriptor in the type's tp_dict whose d_member points at
 * the PyMemberDef. Reading that row gives the offset for the running
 * build. Layouts: docs/formats/interpreter-structs.md.
 */
#include "inspect/inspect-priv.h"

#include <errno.h>
#include <string.h>

/* PyMemberDef.type values of an object slot (Include/structmember.h). */
#define MEMBER_T_OBJECT 6
#define MEMBER_T_OBJECT_EX 16

#define MAX_BASICSIZE ((int64_t)1 << 20)

int inspect_type__check(const struct inspect_reader *r, uint64_t addr, uint64_t *flags)
{
	uint64_t meta, mflags, own;
	int err = inspect__obj_type(r, addr, &meta);
	if (err)
		return err;
	/* type(type) is type; a metaclass inherits Py_TPFLAGS_TYPE_SUBCLASS. */
	if (!(r->types->type_type && meta == r->types->type_type)) {
		if ((err = inspect__type_flags(r, meta, &mflags)))
			return err;
		if (!(mflags & INSPECT_TPFLAGS_TYPE_SUBCLASS))
			return -EINVAL;
	}
	if ((err = inspect__type_flags(r, addr, &own)))
		return err;
	if (!(own & INSPECT_TPFLAGS_READY))
		return -EINVAL;
	if (flags)
		*flags = own;
	return 0;
}

int inspect_type__dict(const struct inspect_reader *r, uint64_t type, uint64_t *dict)
{
	uint64_t d, dtype;
	if (r->off->tp_dict < 0)
		return -ENODATA;
	int err = inspect_type__check(r, type, NULL);
	if (err)
		return err == -EFAULT ? -EFAULT : -EINVAL;
	if (inspect__read_u64(r, type + (uint64_t)r->off->tp_dict, &d))
		return -EFAULT;
	if (!d || !r->types->type_dict || inspect__obj_type(r, d, &dtype) ||
	    dtype != r->types->type_dict)
		return -EINVAL;
	*dict = d;
	return 0;
}

/* The offset a T_OBJECT member descriptor gives, checked against the type
 * that defines it. */
static int member_offset(const struct inspect_reader *r, uint64_t defining, uint64_t descr,
			 const char *name, int64_t *offset)
{
	const struct inspect_offsets *o = r->off;
	uint64_t dtype, def, namep;
	int32_t kind;
	int64_t off, basicsize;
	char got[64];
	if (!r->types->type_member_descr || inspect__obj_type(r, descr, &dtype) ||
	    dtype != r->types->type_member_descr ||
	    inspect__read_u64(r, descr + (uint64_t)o->md_member, &def) ||
	    inspect__read_u64(r, def + (uint64_t)o->mdef_name, &namep) ||
	    inspect__read(r, def + (uint64_t)o->mdef_type, &kind, sizeof(kind)) ||
	    inspect__read(r, def + (uint64_t)o->mdef_offset, &off, sizeof(off)) ||
	    inspect__read(r, defining + (uint64_t)o->tp_basicsize, &basicsize, sizeof(basicsize)))
		return -EINVAL;
	/* The row must be the one asked for, an object slot, aligned, after
	 * the PyObject header and inside the instance. */
	if (inspect__cstr(r, namep, got, sizeof(got)) || strcmp(got, name) != 0 ||
	    (kind != MEMBER_T_OBJECT && kind != MEMBER_T_OBJECT_EX) || off % 8 != 0 ||
	    off < o->ob_type + 8 || basicsize <= 0 || basicsize > MAX_BASICSIZE ||
	    off + 8 > basicsize)
		return -EINVAL;
	*offset = off;
	return 0;
}

int inspect_object__member(const struct inspect_reader *r, uint64_t obj, const char *name,
			   uint64_t *value)
{
	const struct inspect_offsets *o = r->off;
	uint64_t type;
	if (o->tp_dict < 0 || o->tp_basicsize < 0 || o->md_member < 0 || o->mdef_name < 0 ||
	    o->mdef_type < 0 || o->mdef_offset < 0)
		return -ENODATA;
	if (inspect__obj_type(r, obj, &type))
		return -EINVAL;
	for (unsigned depth = 0; type && depth < INSPECT_MAX_BASES; depth++) {
		uint64_t dict, descr;
		int64_t off;
		if (inspect_type__dict(r, type, &dict))
			return -EINVAL;
		int err = inspect_dict__get(r, dict, name, &descr);
		if (err == 0) {
			if (member_offset(r, type, descr, name, &off) ||
			    inspect__read_u64(r, obj + (uint64_t)off, value))
				return -EINVAL;
			return 0;
		}
		if (err != -ENOENT)
			return -EINVAL;
		if (o->tp_base < 0 || inspect__read_u64(r, type + (uint64_t)o->tp_base, &type))
			return -ENOENT;
	}
	return -ENOENT;
}
