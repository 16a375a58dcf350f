/* inspect/: a live CPython 3.11 read from outside.
 *
 * inspect_proc__open() finds _PyRuntime (exported in .dynsym of libpython
 * or of a static python executable; load bias from attach/), checks
 * Py_Version is 3.11 and resolves the layout (struct inspect_offsets) from
 * DWARF in docs/design.md §2's order, cached per build-id. From there:
 *
 *   - live walking, allocation-free, iterators on the caller's stack:
 *     inspect_threads__begin/next (interpreters and thread states),
 *     inspect_frames__begin/next (a thread's _PyInterpreterFrame chain);
 *   - code objects: inspect_code__read (names, counts, raw table addresses),
 *     inspect_code__line (line of a code unit through co_linetable),
 *     inspect_bytes__read / inspect_tuple__read for raw pieces;
 *   - values: inspect_value__repr (bounded repr of common types);
 *   - snapshots: inspect_proc__snapshot stops every thread only while the
 *     stacks are copied, then decodes names, lines and locals after the
 *     threads run again (inspect/dump.c prints it as text or JSON).
 *
 * Nothing read from the target is trusted: every decoder is bounded and
 * fails cleanly (-EFAULT unreadable, -EINVAL implausible) on garbage.
 *
 * Errors: 0 or -errno. inspect_proc__open() distinguishes the cases the
 * command line maps to exit codes:
 *   -ESRCH            no such process (or it exited)
 *   -EPERM / -EACCES  not allowed to read or trace it
 *   -ENOEXEC          not a Python process (no _PyRuntime)
 *   -EPROTONOSUPPORT  a Python that is not 3.11 (or Py_Version missing)
 *   -ENODATA          no usable layout (no DWARF and no probe table match)
 * inspect_proc__snapshot() adds:
 *   -EBUSY            already traced by another process
 *   -EAGAIN           the target is stopped (SIGSTOP / job control)
 *   -ESRCH            the target exited during the dump
 * The one-line message (module, pid, cause) is in inspect_proc__error()
 * or, for open, in the caller's err buffer.
 */
#ifndef SUTURE_INSPECT_H
#define SUTURE_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "inspect/offsets.h"

struct attach_proc;

/* ---- remote reading, shared by every decoder ---- */

/* Read exactly len bytes at addr: 0, or -errno (-EFAULT unmapped). */
typedef int (*inspect_read_fn)(void *ctx, uint64_t addr, void *buf, size_t len);

/* Addresses of the objects and types decoders recognise (0 = unknown). */
struct inspect_types {
	uint64_t none, true_obj, false_obj, ellipsis, set_dummy;
	uint64_t type_long, type_bool, type_float, type_str, type_bytes, type_tuple, type_list,
		type_dict, type_set, type_frozenset, type_code, type_cell, type_gen, type_coro,
		type_asyncgen, type_func, type_complex,
		type_type,         /* PyType_Type: the type of classes */
		type_member_descr; /* PyMemberDescr_Type: a T_OBJECT member's descriptor */
};

struct inspect_reader {
	inspect_read_fn read;
	void *ctx;
	const struct inspect_offsets *off;
	const struct inspect_types *types;
};

/* ---- values ---- */

struct inspect_limits {
	unsigned max_depth;  /* container nesting shown (default 3) */
	unsigned max_items;  /* elements per container (default 16) */
	unsigned max_str;    /* characters of a str/bytes (default 200) */
	unsigned max_digits; /* 30-bit digits of an int (default 256) */
	unsigned max_out;    /* bytes of one repr (default 4096) */
};
/* clang-format off */
#define INSPECT_LIMITS_DEFAULT { 3, 16, 200, 256, 4096 }
/* clang-format on */

/* A growable output string. Free with inspect_str__free. */
struct inspect_str {
	char *p;
	size_t len, cap;
	bool truncated; /* hit the limit: output ends with "..." */
};
void inspect_str__free(struct inspect_str *s);

/* repr() of the object at addr, appended to out: None, True/False, int
 * (any size up to max_digits), float (shortest round-trip, like repr), str
 * (all kinds, Python's quoting), bytes, tuple, list, dict, set, frozenset;
 * anything else as "<tp_name at 0x...>". Garbage gives "<unreadable
 * 0x...>" or "<invalid TYPE at 0x...>" text and returns 0; only an
 * allocation failure (-ENOMEM) is an error. */
int inspect_value__repr(const struct inspect_reader *r, uint64_t addr,
			const struct inspect_limits *lim, struct inspect_str *out);
/* The tp_name of the object's type into buf ("?" if unreadable). */
int inspect_value__type_name(const struct inspect_reader *r, uint64_t addr, char *buf, size_t len);
/* A str object's UTF-8 text (bounded by len-1 bytes, NUL-terminated).
 * -EINVAL: not a str; -EFAULT: unreadable. */
int inspect_str__read(const struct inspect_reader *r, uint64_t addr, char *buf, size_t len);

/* Live (key, value) pairs of a dict, in insertion order, at most max;
 * split tables included. -EINVAL: not a dict or implausible. */
int inspect_dict__items(const struct inspect_reader *r, uint64_t dict, uint64_t *keys,
			uint64_t *values, size_t max, size_t *n);
/* The value of str key `key` in a dict; -ENOENT when absent. */
int inspect_dict__get(const struct inspect_reader *r, uint64_t dict, const char *key,
		      uint64_t *value);
/* Instance attribute `name` of obj, from its managed dict (3.11: values
 * before the object, keys shared in the heap type) or its __dict__. */
int inspect_object__attr(const struct inspect_reader *r, uint64_t obj, const char *name,
			 uint64_t *value);
/* An int that fits in 64 bits (unsigned or signed by *neg). -ERANGE: bigger. */
int inspect_long__read(const struct inspect_reader *r, uint64_t addr, uint64_t *mag, bool *neg);

/* ---- classes ---- */

/* tp_flags bits (Include/object.h). */
#define INSPECT_TPFLAGS_HEAPTYPE (1ULL << 9) /* a class made by a class statement */
#define INSPECT_TPFLAGS_READY (1ULL << 12)
#define INSPECT_TPFLAGS_TYPE_SUBCLASS (1ULL << 31) /* set on type and every metaclass */
#define INSPECT_MAX_BASES 16                       /* tp_base chain followed at most */

/* Whether the object at addr is a class: its type is type itself
 * (PyType_Type) or a metaclass (its tp_flags has Py_TPFLAGS_TYPE_SUBCLASS),
 * and it is ready. 0 and its own tp_flags in *flags (may be NULL);
 * -EINVAL: not a class; -EFAULT: unreadable. */
int inspect_type__check(const struct inspect_reader *r, uint64_t addr, uint64_t *flags);
/* A class's own namespace (tp_dict, what Cls.__dict__ shows: methods,
 * nested classes), checked to be a dict. -EINVAL: not a class or no dict;
 * -ENODATA: the layout has no tp_dict. */
int inspect_type__dict(const struct inspect_reader *r, uint64_t type, uint64_t *dict);
/* The object in obj's slot described by the T_OBJECT member descriptor
 * `name` of obj's type (found in the type's tp_dict, else its tp_base
 * chain): staticmethod and classmethod "__func__", property "fget", "fset",
 * "fdel". The offset comes from the interpreter's own PyMemberDef, so no C
 * struct of those objects is assumed; it must lie after the object header
 * and inside tp_basicsize of the type defining it. 0 and *value (0 when
 * the slot is empty); -ENOENT: no such member; -EINVAL: obj unreadable, or
 * the descriptor is not a plausible T_OBJECT member; -ENODATA: the layout
 * lacks the fields. */
int inspect_object__member(const struct inspect_reader *r, uint64_t obj, const char *name,
			   uint64_t *value);

/* ---- line numbers (co_linetable, Objects/locations.md) ---- */

/* Line of code unit `unit` given co_linetable bytes [p, end) and
 * co_firstlineno: 0 and *line (-1 if the unit has no line), or -EINVAL
 * when the table is malformed or does not reach the unit. A negative unit
 * (a frame that has not started) gives firstlineno, as CPython does. */
int inspect_linetable__line(const uint8_t *p, const uint8_t *end, int firstlineno, int32_t unit,
			    int *line);

/* ---- a process ---- */

struct inspect_proc;

struct inspect_opts {
	const char *cache_dir; /* NULL: $XDG_CACHE_HOME/suture or ~/.cache/suture */
	bool no_cache;         /* neither read nor write the layout cache */
	FILE *verbose;         /* where to say which layout source was used, or NULL */
};

int inspect_proc__open(pid_t pid, const struct inspect_opts *opts, struct inspect_proc **out,
		       char *err, size_t errlen);
/* Accepts NULL. Also closes the attach handle it opened. */
void inspect_proc__close(struct inspect_proc *ip);
pid_t inspect_proc__pid(const struct inspect_proc *ip);
const char *inspect_proc__error(const struct inspect_proc *ip);
struct attach_proc *inspect_proc__attach(struct inspect_proc *ip);
const struct inspect_offsets *inspect_proc__offsets(const struct inspect_proc *ip);
/* Which source the layout came from, the file read (or "cache: PATH"). */
enum inspect_source inspect_proc__source(const struct inspect_proc *ip, const char **path);
/* A reader over the process memory, for the decoders above. */
const struct inspect_reader *inspect_proc__reader(const struct inspect_proc *ip);
uint64_t inspect_proc__runtime(const struct inspect_proc *ip); /* &_PyRuntime */
uint32_t inspect_proc__version(const struct inspect_proc *ip); /* Py_Version */
/* The ELF (executable or libpython) that holds _PyRuntime. */
const char *inspect_proc__python_path(const struct inspect_proc *ip);

/* ---- threads (live; the caller decides whether threads are stopped) ---- */

struct inspect_thread {
	uint64_t tstate, interp;
	int64_t interp_id;
	uint64_t thread_id;                      /* pthread_t (threading.get_ident()) */
	uint64_t native_id;                      /* kernel tid */
	uint64_t cframe;                         /* tstate->cframe */
	uint64_t current_frame;                  /* tstate->cframe->current_frame, 0 if none */
	uint64_t datastack_chunk, datastack_top; /* where its frames live */
	/* 0, or why this entry is not a sound thread state (its frames are
	 * then not walked: current_frame is 0). With broken_link false, the
	 * thread state was read and only its cframe is unreadable (-EFAULT).
	 * With broken_link true the link to it is bad and tstate is where it
	 * led: -EFAULT unreadable, -EINVAL no thread state of this
	 * interpreter (tstate->interp differs), -ELOOP the list loops back
	 * (tstate was listed before), -E2BIG more than 4096 threads; nothing
	 * after it in that interpreter's list is read (and nothing at all
	 * after -E2BIG). */
	int err;
	bool broken_link;
};
struct inspect_thread_iter {
	struct inspect_proc *ip;
	uint64_t interp, next_tstate;
	unsigned ninterps, nthreads;
	/* Brent's cycle detection on this interpreter's list: no allocation. */
	uint64_t loop_mark;
	unsigned loop_span, loop_steps;
};
int inspect_threads__begin(struct inspect_proc *ip, struct inspect_thread_iter *it);
/* 1: *t filled (see err and broken_link: a bad thread state is an entry,
 * never the end of the walk); 0: no more; -errno only when the
 * interpreters themselves are unreadable or more than 256. A thread-list
 * cycle is found within twice its length plus its tail: the thread states
 * of the cycle may be returned twice before the -ELOOP entry. */
int inspect_threads__next(struct inspect_thread_iter *it, struct inspect_thread *t);
/* The thread state holding the GIL, 0 if it is free. */
int inspect_proc__gil_holder(struct inspect_proc *ip, uint64_t *tstate);

/* ---- frames ---- */

enum {
	INSPECT_OWNED_BY_THREAD = 0,
	INSPECT_OWNED_BY_GENERATOR = 1,
	INSPECT_OWNED_BY_FRAME_OBJECT = 2
};

#define INSPECT_MAX_FRAMES 100000 /* a longer chain is taken as corrupt */

struct inspect_frame {
	uint64_t addr; /* the _PyInterpreterFrame */
	uint64_t code, func, globals, builtins, locals, frame_obj, previous;
	uint64_t prev_instr;
	int32_t lasti;    /* code unit of prev_instr; -1 not started */
	int32_t stacktop; /* slots of localsplus in use; -1 if running */
	uint8_t is_entry, owner;
	int32_t nlocalsplus;      /* from the code object */
	uint64_t localsplus_addr; /* localsplus[0] */
};
struct inspect_frame_iter {
	struct inspect_proc *ip;
	uint64_t next;
	unsigned count;
	int pending; /* returned by the next call: the chain's end was seen */
	/* Brent's cycle detection: no allocation. */
	uint64_t loop_mark;
	unsigned loop_span, loop_steps;
	/* Checked code objects seen in this walk (recursion repeats them). */
	struct {
		uint64_t addr;
		int64_t nunits;
		int32_t nlocalsplus;
	} codes[8];
};
int inspect_frames__begin(struct inspect_proc *ip, uint64_t first_frame,
			  struct inspect_frame_iter *it);
/* 1: *f filled (its f_code checked to be a code object); 0: end of chain;
 * -EINVAL: a frame fails validation; -EFAULT unreadable; -ELOOP: the
 * chain loops back (a frame whose previous is itself is returned first;
 * a longer cycle is found within twice its length plus its tail, so its
 * frames may be returned twice before); -E2BIG: longer than
 * INSPECT_MAX_FRAMES. The frames returned before an error stay valid. */
int inspect_frames__next(struct inspect_frame_iter *it, struct inspect_frame *f);
/* Read one frame at addr (also for generator frames: gen + off->gen_iframe). */
int inspect_frame__read(struct inspect_proc *ip, uint64_t addr, struct inspect_frame *f);
/* The frame inside a generator, coroutine or async generator object that
 * has not finished (3.11 gi_frame_state < FRAME_COMPLETED): suspended ones
 * are in no thread's chain. -EINVAL: not such an object; -ENOENT: finished. */
int inspect_gen__frame(struct inspect_proc *ip, uint64_t gen, struct inspect_frame *f);
/* localsplus[first .. first+n) into slots (object addresses, 0 = unbound);
 * the range must lie within nlocalsplus. */
int inspect_frame__slots(struct inspect_proc *ip, const struct inspect_frame *f, uint32_t first,
			 uint32_t n, uint64_t *slots);

/* ---- code objects ---- */

/* co_flags bits (Include/cpython/code.h) and localsplus kinds. */
enum {
	INSPECT_CO_GENERATOR = 0x20,
	INSPECT_CO_COROUTINE = 0x80,
	INSPECT_CO_ASYNC_GENERATOR = 0x200
};
enum { INSPECT_FAST_LOCAL = 0x20, INSPECT_FAST_CELL = 0x40, INSPECT_FAST_FREE = 0x80 };

struct inspect_code {
	uint64_t addr;
	char name[128], qualname[256], filename[512];
	int32_t firstlineno, argcount, posonlyargcount, kwonlyargcount, stacksize, flags,
		nlocalsplus, nlocals, nplaincellvars, ncellvars, nfreevars;
	uint32_t ncodeunits;    /* Py_SIZE(code) */
	uint64_t code_adaptive; /* address of the (quickened) code units */
	uint64_t consts, names, exctable, linetable, localsplusnames, localspluskinds, filename_obj,
		name_obj, qualname_obj;
};
/* Reads the header and the three names. -EINVAL: not a code object. */
int inspect_code__read(const struct inspect_reader *r, uint64_t addr, struct inspect_code *c);
/* Line of code unit `unit` (reads co_linetable). */
int inspect_code__line(const struct inspect_reader *r, const struct inspect_code *c, int32_t unit,
		       int *line);
/* Name and kind of localsplus slot i. */
int inspect_code__local(const struct inspect_reader *r, const struct inspect_code *c, int32_t i,
			char *name, size_t len, uint8_t *kind);
/* The code units as they are in memory (quickened): malloc'd, 2*ncodeunits bytes. */
int inspect_code__units(const struct inspect_reader *r, const struct inspect_code *c, uint8_t **buf,
			size_t *len);
/* A bytes object's contents, malloc'd (co_linetable, co_exceptiontable,
 * co_localspluskinds). At most max bytes, else -E2BIG. */
int inspect_bytes__read(const struct inspect_reader *r, uint64_t addr, size_t max, uint8_t **buf,
			size_t *len);
/* A tuple's item addresses, malloc'd (co_consts, co_names). */
int inspect_tuple__read(const struct inspect_reader *r, uint64_t addr, size_t max, uint64_t **items,
			size_t *n);

/* ---- snapshots (the dump) ---- */

struct inspect_snapshot;

enum {
	INSPECT_SNAP_LOCALS = 1, /* decode local variables */
};
struct inspect_snap_stats {
	double stopped_ms;                    /* from the first stop to the last resume */
	double seize_ms, copy_ms, release_ms; /* its three parts */
	double total_ms;
	unsigned threads, frames, reads;
	unsigned copy_reads; /* remote reads while threads were stopped */
};
int inspect_proc__snapshot(struct inspect_proc *ip, unsigned flags,
			   const struct inspect_limits *lim, struct inspect_snapshot **out,
			   struct inspect_snap_stats *stats);
void inspect_snapshot__free(struct inspect_snapshot *s);
/* Drop every thread but the one whose kernel tid is native_id (a probe's
 * snapshot shows the thread that hit it). 0, or -ENOENT (nothing dropped). */
int inspect_snapshot__keep_thread(struct inspect_snapshot *s, uint64_t native_id);

/* Read access to a snapshot (arrays owned by it). */
struct inspect_snap_local {
	char *name;
	char *repr;
	char type[64];
	uint8_t kind;
};
#define INSPECT_MAX_LOCALS_SHOWN 256 /* localsplus slots decoded a frame */

struct inspect_snap_frame {
	struct inspect_frame raw;
	const struct inspect_code *code; /* NULL when unreadable; shared by frames */
	int line;                        /* -1 unknown */
	size_t nlocals;
	struct inspect_snap_local *locals;
};
struct inspect_snap_thread {
	struct inspect_thread raw; /* raw.err: its thread state is marked bad */
	char name[64];             /* threading's name when found, else comm */
	char comm[64];             /* /proc/PID/task/TID/comm */
	bool holds_gil;
	/* 0, or why the frame walk stopped early (inspect_frames__next's
	 * errors), at walk_at: the frame address it could not take. The
	 * frames before it are kept, each frame of a loop once. */
	int walk_err;
	uint64_t walk_at;
	size_t nframes;
	struct inspect_snap_frame *frames; /* innermost first */
};
size_t inspect_snapshot__nthreads(const struct inspect_snapshot *s);
const struct inspect_snap_thread *inspect_snapshot__thread(const struct inspect_snapshot *s,
							   size_t i);
/* Where a thread list broke (inspect_thread.broken_link entries): the
 * threads listed before it are in the snapshot, those after it are not. */
size_t inspect_snapshot__nbreaks(const struct inspect_snapshot *s);
const struct inspect_thread *inspect_snapshot__break(const struct inspect_snapshot *s, size_t i);
/* One line (no newline) saying what went wrong with thread t's state or
 * frame walk, or with a list break b, for the dump; "" when nothing. */
void inspect_snap_thread__why(const struct inspect_snap_thread *t, char *buf, size_t cap);
void inspect_snap_break__why(const struct inspect_thread *b, char *buf, size_t cap);

/* Print py-spy style text, or one JSON document. */
int inspect_snapshot__print(const struct inspect_snapshot *s, struct inspect_proc *ip, FILE *out);
int inspect_snapshot__print_json(const struct inspect_snapshot *s, struct inspect_proc *ip,
				 FILE *out);

#endif
