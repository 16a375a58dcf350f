/* inspect/offsets.c: the field table, checks and the per-build-id cache. */
#include "inspect/offsets.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SLOT(f) offsetof(struct inspect_offsets, f)
#define M INSPECT_FIELD_MEMBER
#define SZ INSPECT_FIELD_SIZEOF
#define BP INSPECT_FIELD_BITPOS
#define BS INSPECT_FIELD_BITSIZE
#define MS INSPECT_FIELD_MEMBSIZE

/* Root names are struct tags or typedef names as they appear in DWARF;
 * several spellings are tried in order. Paths follow members through
 * nested structs, typedefs and anonymous members. */
static const struct inspect_field fields[] = {
	{ "pyruntimestate|_PyRuntimeState", "interpreters.head", M, SLOT(rt_interp_head), 1 },
	{ "pyruntimestate|_PyRuntimeState", "ceval.gil.locked", M, SLOT(rt_gil_locked), 0 },
	{ "pyruntimestate|_PyRuntimeState", "ceval.gil.last_holder", M, SLOT(rt_gil_holder), 0 },
	{ "pyruntimestate|_PyRuntimeState", "_finalizing", M, SLOT(rt_finalizing), 0 },
	{ "_is|PyInterpreterState", "next", M, SLOT(is_next), 1 },
	{ "_is|PyInterpreterState", "threads.head", M, SLOT(is_threads_head), 1 },
	{ "_is|PyInterpreterState", "id", M, SLOT(is_id), 1 },
	{ "_is|PyInterpreterState", "modules", M, SLOT(is_modules), 0 },
	{ "_ts|PyThreadState", "next", M, SLOT(ts_next), 1 },
	{ "_ts|PyThreadState", "interp", M, SLOT(ts_interp), 1 },
	{ "_ts|PyThreadState", "cframe", M, SLOT(ts_cframe), 1 },
	{ "_ts|PyThreadState", "thread_id", M, SLOT(ts_thread_id), 1 },
	{ "_ts|PyThreadState", "native_thread_id", M, SLOT(ts_native_thread_id), 1 },
	{ "_ts|PyThreadState", "", SZ, SLOT(ts_size), 1 },
	{ "_ts|PyThreadState", "datastack_chunk", M, SLOT(ts_datastack_chunk), 0 },
	{ "_ts|PyThreadState", "datastack_top", M, SLOT(ts_datastack_top), 0 },
	{ "_stack_chunk|_PyStackChunk", "previous", M, SLOT(sc_previous), 0 },
	{ "_stack_chunk|_PyStackChunk", "size", M, SLOT(sc_size), 0 },
	{ "_stack_chunk|_PyStackChunk", "top", M, SLOT(sc_top), 0 },
	{ "_stack_chunk|_PyStackChunk", "data", M, SLOT(sc_data), 0 },
	{ "_PyCFrame", "current_frame", M, SLOT(cf_current_frame), 1 },
	{ "_PyInterpreterFrame", "f_func", M, SLOT(fr_func), 1 },
	{ "_PyInterpreterFrame", "f_globals", M, SLOT(fr_globals), 1 },
	{ "_PyInterpreterFrame", "f_builtins", M, SLOT(fr_builtins), 1 },
	{ "_PyInterpreterFrame", "f_locals", M, SLOT(fr_locals), 1 },
	{ "_PyInterpreterFrame", "f_code", M, SLOT(fr_code), 1 },
	{ "_PyInterpreterFrame", "frame_obj", M, SLOT(fr_frame_obj), 1 },
	{ "_PyInterpreterFrame", "previous", M, SLOT(fr_previous), 1 },
	{ "_PyInterpreterFrame", "prev_instr", M, SLOT(fr_prev_instr), 1 },
	{ "_PyInterpreterFrame", "stacktop", M, SLOT(fr_stacktop), 1 },
	{ "_PyInterpreterFrame", "is_entry", M, SLOT(fr_is_entry), 1 },
	{ "_PyInterpreterFrame", "owner", M, SLOT(fr_owner), 1 },
	{ "_PyInterpreterFrame", "localsplus", M, SLOT(fr_localsplus), 1 },
	{ "PyCodeObject", "co_consts", M, SLOT(co_consts), 1 },
	{ "PyCodeObject", "co_names", M, SLOT(co_names), 1 },
	{ "PyCodeObject", "co_exceptiontable", M, SLOT(co_exceptiontable), 1 },
	{ "PyCodeObject", "co_flags", M, SLOT(co_flags), 1 },
	{ "PyCodeObject", "co_argcount", M, SLOT(co_argcount), 1 },
	{ "PyCodeObject", "co_posonlyargcount", M, SLOT(co_posonlyargcount), 1 },
	{ "PyCodeObject", "co_kwonlyargcount", M, SLOT(co_kwonlyargcount), 1 },
	{ "PyCodeObject", "co_stacksize", M, SLOT(co_stacksize), 1 },
	{ "PyCodeObject", "co_firstlineno", M, SLOT(co_firstlineno), 1 },
	{ "PyCodeObject", "co_nlocalsplus", M, SLOT(co_nlocalsplus), 1 },
	{ "PyCodeObject", "co_nlocals", M, SLOT(co_nlocals), 1 },
	{ "PyCodeObject", "co_nplaincellvars", M, SLOT(co_nplaincellvars), 1 },
	{ "PyCodeObject", "co_ncellvars", M, SLOT(co_ncellvars), 1 },
	{ "PyCodeObject", "co_nfreevars", M, SLOT(co_nfreevars), 1 },
	{ "PyCodeObject", "co_localsplusnames", M, SLOT(co_localsplusnames), 1 },
	{ "PyCodeObject", "co_localspluskinds", M, SLOT(co_localspluskinds), 1 },
	{ "PyCodeObject", "co_filename", M, SLOT(co_filename), 1 },
	{ "PyCodeObject", "co_name", M, SLOT(co_name), 1 },
	{ "PyCodeObject", "co_qualname", M, SLOT(co_qualname), 1 },
	{ "PyCodeObject", "co_linetable", M, SLOT(co_linetable), 1 },
	{ "PyCodeObject", "co_code_adaptive", M, SLOT(co_code_adaptive), 1 },
	{ "_object|PyObject", "ob_refcnt", M, SLOT(ob_refcnt), 1 },
	{ "_object|PyObject", "ob_type", M, SLOT(ob_type), 1 },
	{ "PyVarObject", "ob_size", M, SLOT(ob_size), 1 },
	{ "_typeobject|PyTypeObject", "tp_name", M, SLOT(tp_name), 1 },
	{ "_typeobject|PyTypeObject", "tp_flags", M, SLOT(tp_flags), 1 },
	{ "_typeobject|PyTypeObject", "tp_basicsize", M, SLOT(tp_basicsize), 0 },
	{ "_typeobject|PyTypeObject", "tp_dict", M, SLOT(tp_dict), 0 },
	{ "_typeobject|PyTypeObject", "tp_base", M, SLOT(tp_base), 0 },
	{ "PyMemberDescrObject", "d_member", M, SLOT(md_member), 0 },
	{ "PyMemberDef", "name", M, SLOT(mdef_name), 0 },
	{ "PyMemberDef", "type", M, SLOT(mdef_type), 0 },
	{ "PyMemberDef", "offset", M, SLOT(mdef_offset), 0 },
	{ "PyASCIIObject", "length", M, SLOT(us_length), 1 },
	{ "PyASCIIObject", "state", M, SLOT(us_state), 1 },
	{ "PyASCIIObject", "state.kind", BP, SLOT(us_kind_bit), 1 },
	{ "PyASCIIObject", "state.kind", BS, SLOT(us_kind_bits), 1 },
	{ "PyASCIIObject", "state.compact", BP, SLOT(us_compact_bit), 1 },
	{ "PyASCIIObject", "state.ascii", BP, SLOT(us_ascii_bit), 1 },
	{ "PyASCIIObject", "state.ready", BP, SLOT(us_ready_bit), 1 },
	{ "PyASCIIObject", "", SZ, SLOT(us_ascii_size), 1 },
	{ "PyCompactUnicodeObject", "", SZ, SLOT(us_compact_size), 1 },
	{ "PyUnicodeObject", "data.any", M, SLOT(us_data_any), 1 },
	{ "_longobject|PyLongObject", "ob_digit", M, SLOT(long_digit), 0 },
	{ "_longobject|PyLongObject", "ob_digit", MS, SLOT(long_digit_size), 0 },
	{ "PyFloatObject", "ob_fval", M, SLOT(float_fval), 0 },
	{ "PyBytesObject", "ob_sval", M, SLOT(bytes_sval), 0 },
	{ "PyTupleObject", "ob_item", M, SLOT(tuple_item), 1 },
	{ "PyListObject", "ob_item", M, SLOT(list_item), 0 },
	{ "PyListObject", "allocated", M, SLOT(list_allocated), 0 },
	{ "PyDictObject", "ma_used", M, SLOT(dict_used), 0 },
	{ "PyDictObject", "ma_keys", M, SLOT(dict_keys), 0 },
	{ "PyDictObject", "ma_values", M, SLOT(dict_values), 0 },
	{ "_dictkeysobject|PyDictKeysObject", "dk_log2_size", M, SLOT(dk_log2_size), 0 },
	{ "_dictkeysobject|PyDictKeysObject", "dk_log2_index_bytes", M, SLOT(dk_log2_index_bytes),
	  0 },
	{ "_dictkeysobject|PyDictKeysObject", "dk_kind", M, SLOT(dk_kind), 0 },
	{ "_dictkeysobject|PyDictKeysObject", "dk_nentries", M, SLOT(dk_nentries), 0 },
	{ "_dictkeysobject|PyDictKeysObject", "dk_indices", M, SLOT(dk_indices), 0 },
	{ "PyDictKeyEntry", "", SZ, SLOT(dke_size), 0 },
	{ "PyDictKeyEntry", "me_key", M, SLOT(dke_key), 0 },
	{ "PyDictKeyEntry", "me_value", M, SLOT(dke_value), 0 },
	{ "PyDictUnicodeEntry", "", SZ, SLOT(dku_size), 0 },
	{ "PyDictUnicodeEntry", "me_key", M, SLOT(dku_key), 0 },
	{ "PyDictUnicodeEntry", "me_value", M, SLOT(dku_value), 0 },
	{ "_dictvalues|PyDictValues", "values", M, SLOT(dv_values), 0 },
	{ "PySetObject", "used", M, SLOT(set_used), 0 },
	{ "PySetObject", "mask", M, SLOT(set_mask), 0 },
	{ "PySetObject", "table", M, SLOT(set_table), 0 },
	{ "setentry", "", SZ, SLOT(se_size), 0 },
	{ "setentry", "key", M, SLOT(se_key), 0 },
	{ "PyGenObject", "gi_code", M, SLOT(gen_code), 0 },
	{ "PyGenObject", "gi_frame_state", M, SLOT(gen_frame_state), 0 },
	{ "PyGenObject", "gi_iframe", M, SLOT(gen_iframe), 0 },
	{ "_frame|PyFrameObject", "f_frame", M, SLOT(fo_frame), 0 },
	{ "_frame|PyFrameObject", "f_back", M, SLOT(fo_back), 0 },
	{ "PyCellObject", "ob_ref", M, SLOT(cell_ref), 0 },
	{ "PyModuleObject", "md_dict", M, SLOT(mod_dict), 0 },
	{ "PyFunctionObject", "func_qualname", M, SLOT(func_qualname), 0 },
	{ "PyFunctionObject", "func_code", M, SLOT(func_code), 0 },
	{ "PyFunctionObject", "func_dict", M, SLOT(func_dict), 0 },
	{ "_heaptypeobject|PyHeapTypeObject", "ht_cached_keys", M, SLOT(ht_cached_keys), 0 },
};

#undef M
#undef SZ
#undef BP
#undef BS
#undef MS

const struct inspect_field *inspect_offsets__fields(size_t *n)
{
	*n = sizeof(fields) / sizeof(fields[0]);
	return fields;
}

const char *inspect_offsets__slot_name(size_t slot)
{
	/* Name a slot by its table row, for messages. */
	static char buf[8][128];
	static unsigned next;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (fields[i].slot != slot)
			continue;
		char *b = buf[next++ % 8];
		const char *bar = strchr(fields[i].root, '|');
		int rl = bar ? (int)(bar - fields[i].root) : (int)strlen(fields[i].root);
		snprintf(b, sizeof(buf[0]), "%.*s%s%s", rl, fields[i].root,
			 fields[i].path[0] ? "." : " (size)", fields[i].path);
		return b;
	}
	return "?";
}

const char *inspect_source__name(enum inspect_source src)
{
	switch (src) {
	case INSPECT_SRC_OWN:
		return "own .debug_info";
	case INSPECT_SRC_BUILD_ID:
		return "build-id debug file";
	case INSPECT_SRC_DEBUGLINK:
		return ".gnu_debuglink file";
	case INSPECT_SRC_PROBE:
		return "build-time probe table";
	case INSPECT_SRC_NONE:
		break;
	}
	return "none";
}

void inspect_offsets__clear(struct inspect_offsets *o)
{
	int64_t *v = (int64_t *)o;
	for (size_t i = 0; i < sizeof(*o) / sizeof(int64_t); i++)
		v[i] = -1;
}

_Static_assert(sizeof(struct inspect_offsets) % sizeof(int64_t) == 0,
	       "inspect_offsets is an array of int64_t slots");

int64_t inspect_offsets__get(const struct inspect_offsets *o, size_t slot)
{
	int64_t v;
	memcpy(&v, (const char *)o + slot, sizeof(v));
	return v;
}

int inspect_offsets__check(const struct inspect_offsets *o, const char **missing)
{
	size_t n;
	const struct inspect_field *f = inspect_offsets__fields(&n);
	for (size_t i = 0; i < n; i++) {
		int64_t v = inspect_offsets__get(o, f[i].slot);
		/* Plausible: every 3.11 struct we read is well under 1 MiB
		 * (PyInterpreterState is the largest). */
		if ((f[i].required && v < 0) || v > (1 << 20)) {
			if (missing)
				*missing = inspect_offsets__slot_name(f[i].slot);
			return -ENODATA;
		}
	}
	/* Facts the decoders rely on: str kind is 3 bits, digits are 2 or 4 bytes. */
	if (o->us_kind_bits != 3) {
		if (missing)
			*missing = "PyASCIIObject.state.kind (width)";
		return -ENODATA;
	}
	if (o->long_digit_size != -1 && o->long_digit_size != 2 && o->long_digit_size != 4) {
		if (missing)
			*missing = "PyLongObject.ob_digit (digit size)";
		return -ENODATA;
	}
	return 0;
}

/* ---- cache ---- */

#define CACHE_MAGIC 0x31317374696e7573ULL /* "suti11" */

struct cache_header {
	uint64_t magic;
	uint64_t fields_fp; /* fingerprint of the field table */
	char build_id[128];
	uint32_t source;
	uint32_t nslots;
	uint64_t checksum; /* FNV-1a over this header (checksum 0) and the slots */
};

static uint64_t fnv1a(uint64_t h, const void *p, size_t n);

static uint64_t entry_checksum(const struct cache_header *h, const struct inspect_offsets *o)
{
	struct cache_header c = *h;
	c.checksum = 0;
	return fnv1a(fnv1a(0xcbf29ce484222325ULL, &c, sizeof(c)), o, sizeof(*o));
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t fields_fingerprint(void)
{
	size_t n;
	const struct inspect_field *f = inspect_offsets__fields(&n);
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h = fnv1a(h, f[i].root, strlen(f[i].root) + 1);
		h = fnv1a(h, f[i].path, strlen(f[i].path) + 1);
		uint64_t k = (uint64_t)f[i].kind << 32 | f[i].slot;
		h = fnv1a(h, &k, sizeof(k));
	}
	/* v3: tp_dict, tp_base, func_dict and the member descriptor rows (methods
	 * and decorated functions at attach). */
	h = fnv1a(h, "v3", 2);
	return h;
}

int inspect_offsets__cache_dir(char *buf, size_t len)
{
	const char *x = getenv("XDG_CACHE_HOME");
	int n;
	if (x && x[0] == '/')
		n = snprintf(buf, len, "%s/suture", x);
	else {
		const char *home = getenv("HOME");
		if (!home || home[0] != '/')
			return -ENOENT;
		n = snprintf(buf, len, "%s/.cache/suture", home);
	}
	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

static int valid_build_id(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n >= sizeof(((struct cache_header *)0)->build_id))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return 0;
	return 1;
}

static int cache_path(const char *dir, const char *build_id, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/offsets-%s.bin", dir, build_id);
	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

int inspect_offsets__cache_load(const char *dir, const char *build_id, struct inspect_offsets *o,
				enum inspect_source *src)
{
	char path[4096];
	struct cache_header h;
	struct inspect_offsets tmp;
	int err;
	if (!valid_build_id(build_id))
		return -EINVAL;
	err = cache_path(dir, build_id, path, sizeof(path));
	if (err)
		return err;
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	size_t got = fread(&h, 1, sizeof(h), f);
	size_t got2 = got == sizeof(h) ? fread(&tmp, 1, sizeof(tmp), f) : 0;
	int extra = fgetc(f);
	fclose(f);
	if (got != sizeof(h) || got2 != sizeof(tmp) || extra != EOF)
		return -EBADMSG;
	if (h.magic != CACHE_MAGIC || h.fields_fp != fields_fingerprint() ||
	    h.nslots != sizeof(tmp) / sizeof(int64_t) ||
	    memchr(h.build_id, 0, sizeof(h.build_id)) == NULL ||
	    strcmp(h.build_id, build_id) != 0 || h.source < INSPECT_SRC_OWN ||
	    h.source > INSPECT_SRC_PROBE || h.checksum != entry_checksum(&h, &tmp))
		return -EBADMSG;
	if (inspect_offsets__check(&tmp, NULL))
		return -EBADMSG;
	*o = tmp;
	if (src)
		*src = (enum inspect_source)h.source;
	return 0;
}

static int mkdir_p(const char *dir)
{
	char buf[4096];
	size_t n = strlen(dir);
	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != 0)
			continue;
		char c = buf[i];
		buf[i] = 0;
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -errno;
		buf[i] = c;
	}
	return 0;
}

int inspect_offsets__cache_store(const char *dir, const char *build_id,
				 const struct inspect_offsets *o, enum inspect_source src)
{
	char path[4096], tmp[4200];
	struct cache_header h;
	int err, fd = -1;
	if (!valid_build_id(build_id))
		return -EINVAL;
	err = mkdir_p(dir);
	if (err)
		return err;
	err = cache_path(dir, build_id, path, sizeof(path));
	if (err)
		return err;
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	memset(&h, 0, sizeof(h));
	h.magic = CACHE_MAGIC;
	h.fields_fp = fields_fingerprint();
	snprintf(h.build_id, sizeof(h.build_id), "%s", build_id);
	h.source = src;
	h.nslots = sizeof(*o) / sizeof(int64_t);
	h.checksum = entry_checksum(&h, o);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, &h, sizeof(h)) != (ssize_t)sizeof(h) ||
	    write(fd, o, sizeof(*o)) != (ssize_t)sizeof(*o) || fsync(fd)) {
		err = errno ? -errno : -EIO;
		goto fail;
	}
	if (close(fd)) {
		fd = -1;
		err = -errno;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path)) {
		err = -errno;
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return err;
}
