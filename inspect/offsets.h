/* inspect/offsets.h: the layout of a CPython 3.11 build, as data.
 *
 * Every field is a byte offset (or a size, or a bit position) read from
 * DWARF: the target's own .debug_info, a build-id debug file, a
 * .gnu_debuglink file, or the table generated at build time from a probe
 * compiled against the installed 3.11 headers (inspect/probe/probe.c).
 * -1 means "not found"; inspect_offsets__check() says whether the fields
 * the walker needs are all present. The struct is plain data so it can be
 * cached per build-id and compared between sources.
 *
 * docs/formats/interpreter-structs.md lists each field and why it is read.
 */
#ifndef SUTURE_INSPECT_OFFSETS_H
#define SUTURE_INSPECT_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

struct inspect_offsets {
	/* _PyRuntimeState */
	int64_t rt_interp_head, rt_gil_locked, rt_gil_holder, rt_finalizing;
	/* PyInterpreterState (struct _is) */
	int64_t is_next, is_threads_head, is_id, is_modules;
	/* PyThreadState (struct _ts) */
	int64_t ts_next, ts_interp, ts_cframe, ts_thread_id, ts_native_thread_id, ts_size,
		ts_datastack_chunk, ts_datastack_top;
	/* _PyStackChunk: where thread-owned frames live (read in bulk) */
	int64_t sc_previous, sc_size, sc_top, sc_data;
	/* _PyCFrame */
	int64_t cf_current_frame;
	/* _PyInterpreterFrame */
	int64_t fr_func, fr_globals, fr_builtins, fr_locals, fr_code, fr_frame_obj, fr_previous,
		fr_prev_instr, fr_stacktop, fr_is_entry, fr_owner, fr_localsplus;
	/* PyCodeObject */
	int64_t co_consts, co_names, co_exceptiontable, co_flags, co_argcount, co_posonlyargcount,
		co_kwonlyargcount, co_stacksize, co_firstlineno, co_nlocalsplus, co_nlocals,
		co_nplaincellvars, co_ncellvars, co_nfreevars, co_localsplusnames,
		co_localspluskinds, co_filename, co_name, co_qualname, co_linetable,
		co_code_adaptive;
	/* PyObject, PyVarObject, PyTypeObject */
	int64_t ob_refcnt, ob_type, ob_size, tp_name, tp_flags, tp_basicsize, tp_dict, tp_base;
	/* PyMemberDescrObject, PyMemberDef: where a T_OBJECT member of a C
	 * type lives (staticmethod.__func__, property.fget), as the type's own
	 * member descriptors say */
	int64_t md_member, mdef_name, mdef_type, mdef_offset;
	/* str: PyASCIIObject, PyCompactUnicodeObject, PyUnicodeObject */
	int64_t us_length, us_state, us_kind_bit, us_kind_bits, us_compact_bit, us_ascii_bit,
		us_ready_bit, us_ascii_size, us_compact_size, us_data_any;
	/* int, float, bytes, tuple, list */
	int64_t long_digit, long_digit_size, float_fval, bytes_sval, tuple_item, list_item,
		list_allocated;
	/* dict (3.11 keys layout) */
	int64_t dict_used, dict_keys, dict_values, dk_log2_size, dk_log2_index_bytes, dk_kind,
		dk_nentries, dk_indices, dke_size, dke_key, dke_value, dku_size, dku_key, dku_value,
		dv_values;
	/* set */
	int64_t set_used, set_mask, set_table, se_size, se_key;
	/* generators and coroutines, frame objects, cells, modules, functions */
	int64_t gen_code, gen_frame_state, gen_iframe, fo_frame, fo_back, cell_ref, mod_dict,
		func_qualname, func_code, func_dict, ht_cached_keys;
};

/* One row of the field table: root type name (struct tag or typedef),
 * member path ("interpreters.head"), what to take, where to store it. */
enum inspect_field_kind {
	INSPECT_FIELD_MEMBER,   /* byte offset of the member */
	INSPECT_FIELD_SIZEOF,   /* byte size of the root type (path "") */
	INSPECT_FIELD_BITPOS,   /* bit position of a bitfield from the root's start */
	INSPECT_FIELD_BITSIZE,  /* width of a bitfield in bits */
	INSPECT_FIELD_MEMBSIZE, /* byte size of the member's type (array element for arrays) */
};
struct inspect_field {
	const char *root; /* e.g. "_PyRuntimeState"; alternatives split by '|' */
	const char *path;
	enum inspect_field_kind kind;
	size_t slot;  /* offsetof(struct inspect_offsets, ...) */
	int required; /* the walker cannot run without it */
};
const struct inspect_field *inspect_offsets__fields(size_t *n);
const char *inspect_offsets__slot_name(size_t slot);

/* Where a layout came from. */
enum inspect_source {
	INSPECT_SRC_NONE = 0,
	INSPECT_SRC_OWN,       /* the object's own .debug_info */
	INSPECT_SRC_BUILD_ID,  /* /usr/lib/debug/.build-id/xx/rest.debug */
	INSPECT_SRC_DEBUGLINK, /* .gnu_debuglink */
	INSPECT_SRC_PROBE,     /* table generated at build time from the headers */
};
const char *inspect_source__name(enum inspect_source src);

/* All fields to -1. */
void inspect_offsets__clear(struct inspect_offsets *o);
int64_t inspect_offsets__get(const struct inspect_offsets *o, size_t slot);

/* 0 when every required field is present and plausible; else -ENODATA and,
 * if missing != NULL, the name of the first missing field. */
int inspect_offsets__check(const struct inspect_offsets *o, const char **missing);

/* Fill o from the DWARF in path (an ELF file with .debug_info). Fields not
 * found stay -1. -ENOENT: no such file; -ENODATA: no DWARF or none of the
 * types; -EINVAL: libdwarf rejected the file. err gets a one-line cause. */
int inspect_offsets__from_dwarf(const char *path, struct inspect_offsets *o, char *err,
				size_t errlen);

/* The table generated at build time from inspect/probe/probe.c, compiled
 * with -g against the installed python3.11 headers. */
void inspect_offsets__from_probe(struct inspect_offsets *o);
/* The headers' PY_VERSION_HEX the probe was built with. */
uint32_t inspect_offsets__probe_version(void);

/* Per build-id cache (dir: $XDG_CACHE_HOME/suture, else ~/.cache/suture,
 * or the dir given). Entries are checked on load: magic, field-table
 * fingerprint, build-id, checksum; a bad entry is -EBADMSG and ignored.
 * Writes are atomic (temp file, fsync, rename). -ENOENT: no entry. */
int inspect_offsets__cache_load(const char *dir, const char *build_id, struct inspect_offsets *o,
				enum inspect_source *src);
int inspect_offsets__cache_store(const char *dir, const char *build_id,
				 const struct inspect_offsets *o, enum inspect_source src);
/* The default cache directory, written into buf. -ENOENT if no HOME. */
int inspect_offsets__cache_dir(char *buf, size_t len);

#endif
