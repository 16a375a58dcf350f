/* rewrite/: the CPython 3.11 bytecode engine (code model, codecs, analysis).
 *
 * A code object comes in as a plain description filled by the caller
 * (struct rewrite_code_info: from a dump file, or read from a live process
 * by inspect/). rewrite_code__decode() turns it into a struct rewrite_code:
 * instructions (canonical opcode, EXTENDED_ARG folded, jump targets as
 * instruction indices), the exception table and the location table, all in
 * code units. rewrite_code__analyse() computes the stack depth before every
 * instruction, rewrite_code__verify() checks the invariants CPython relies
 * on, rewrite_code__encode() produces co_code, co_exceptiontable and
 * co_linetable again. Decoding and encoding an unmodified code object gives
 * byte-identical tables (tests/e2e/test_roundtrip.sh proves it on the whole
 * standard library).
 *
 * Guards (rewrite/guard*) never move an original instruction: they append
 * instructions with rewrite_code__append() (targets are instruction indices,
 * so jumps back into the original code are symbolic) and add exception
 * entries with rewrite_code__add_exc(); encode lays out the tail.
 *
 * Formats: docs/formats/bytecode.md, exception-table.md, location-table.md,
 * codedump.md. Opcode tables are generated at build time from the installed
 * CPython 3.11 headers and libpython (rewrite/gen_opcodes.c), never typed.
 *
 * Errors: functions return 0 or -errno; pointer returns give NULL and set
 * errno. -EINVAL: the input is malformed (the diagnostic says where and
 * why); -ENOMEM: allocation failed; -ERANGE: a value does not fit the wire
 * form (an oparg beyond 32 bits, a jump that cannot reach its target).
 * Every function taking a struct rewrite_diag * accepts NULL; when given,
 * it receives a one-line message naming the module, the code object and the
 * cause ("rewrite: code 'f' (a.py:3): jump at unit 12 lands inside the
 * instruction at unit 10"). Nothing here aborts or prints on its own.
 * No dependency on libpython at run time.
 */
#ifndef SUTURE_REWRITE_H
#define SUTURE_REWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---------------------------------------------------------------------- */
/* Diagnostics                                                            */

struct rewrite_diag {
	int err;       /* the -errno that was returned, 0 if none */
	int64_t where; /* code unit (or table byte) of the problem, -1 if none */
	char msg[256];
};

/* ---------------------------------------------------------------------- */
/* Opcodes (tables generated from CPython's headers at build time)        */

/* Every byte value 0..255 is accepted; unknown ones give NULL / false / -1. */
const char *rewrite_opcode__name(int op);      /* canonical or specialized */
int rewrite_opcode__by_name(const char *name); /* -1 if unknown */
/* Canonical opcode of op (CPython's _PyOpcode_Deopt), -1 if op is unknown.
 * Canonical opcodes map to themselves. */
int rewrite_opcode__deopt(int op);
/* Inline CACHE units after a canonical op (_PyOpcode_Caches). */
int rewrite_opcode__caches(int op);
bool rewrite_opcode__has_arg(int op);     /* op >= HAVE_ARGUMENT */
bool rewrite_opcode__is_jump(int op);     /* relative jump (hasjrel) */
bool rewrite_opcode__is_backward(int op); /* jumps backward */
/* The same jump in the other direction (JUMP_FORWARD <-> JUMP_BACKWARD,
 * POP_JUMP_FORWARD_IF_X <-> POP_JUMP_BACKWARD_IF_X), -1 if none. */
int rewrite_opcode__reverse_jump(int op);
/* Ends the flow: RETURN_VALUE, RAISE_VARARGS, RERAISE and unconditional
 * jumps (the next instruction is not reached by falling through). */
bool rewrite_opcode__is_terminator(int op);

/* What an instruction's arg indexes (from CPython's opcode module). */
enum rewrite_argkind {
	REWRITE_ARG_NONE = 0,
	REWRITE_ARG_PLAIN,   /* a count, a flag, a NB_* operator ... */
	REWRITE_ARG_CONST,   /* co_consts[arg] */
	REWRITE_ARG_NAME,    /* co_names[arg] (LOAD_GLOBAL: arg>>1) */
	REWRITE_ARG_LOCAL,   /* co_localsplusnames[arg] (fast locals) */
	REWRITE_ARG_FREE,    /* co_localsplusnames[arg] (cell/free) */
	REWRITE_ARG_JUMP,    /* relative jump, see rewrite_opcode__is_jump */
	REWRITE_ARG_COMPARE, /* cmp_op[arg] */
};
enum rewrite_argkind rewrite_opcode__argkind(int op);

/* Net stack effect of a canonical op, exactly as CPython's compile.c
 * stack_effect(op, arg, jump) for jump = 0 (fall through) or 1 (taken).
 * -EINVAL if op has no stack effect (unknown, specialized, CACHE). */
int rewrite_opcode__stack_effect(int op, uint32_t arg, int jump, int *effect);

/* ---------------------------------------------------------------------- */
/* Input: a code object described by the caller                           */

enum rewrite_localkind { /* co_localspluskinds bits (internal/pycore_code.h) */
			 REWRITE_LOCAL_LOCAL = 0x20,
			 REWRITE_LOCAL_CELL = 0x40,
			 REWRITE_LOCAL_FREE = 0x80,
};

struct rewrite_const {
	const char *type; /* Python type name: "int", "str", "code", "tuple" ... */
	const char *repr; /* repr() text (for "code": its qualname) */
};

/* All pointers are borrowed: the info (and what it points to) must outlive
 * every rewrite_code decoded from it. Strings may be NULL when unknown. */
struct rewrite_code_info {
	const uint8_t *code;     /* co_code, or co_code_adaptive (quickened) */
	size_t code_len;         /* bytes, even */
	const uint8_t *exctable; /* co_exceptiontable */
	size_t exctable_len;
	const uint8_t *linetable; /* co_linetable */
	size_t linetable_len;
	int firstlineno;
	int stacksize;
	uint32_t flags; /* co_flags (CO_GENERATOR = 0x20 ...) */
	int argcount, posonlyargcount, kwonlyargcount;
	int nlocalsplus; /* len(co_localsplusnames) */
	int nlocals;     /* co_nlocals */
	const char *filename, *name, *qualname;
	size_t nnames;
	const char *const *names;           /* co_names */
	const char *const *localsplusnames; /* nlocalsplus entries */
	const uint8_t *localspluskinds;     /* nlocalsplus entries */
	size_t nconsts;
	const struct rewrite_const *consts; /* co_consts */
};

/* ---------------------------------------------------------------------- */
/* The decoded model                                                      */

/* A source location; -1 in a field means "none" (CPython's None). */
struct rewrite_loc {
	int32_t line, end_line, col, end_col;
};

struct rewrite_instr {
	uint32_t offset;        /* code unit of the first EXTENDED_ARG (or the op) */
	uint32_t arg;           /* EXTENDED_ARG prefixes folded in */
	uint8_t opcode;         /* canonical */
	uint8_t nprefix;        /* EXTENDED_ARG units before the op */
	uint8_t nprefix_min;    /* the prefixes it was decoded or made with: a
			    * layout starts from these */
	uint8_t nlead;          /* of nprefix, the leading units written as NOP:
			    * prefixes a forward jump grew that its final
			    * arg does not need (growing moved its end to
			    * its target); 0 when decoded */
	uint8_t ncaches;        /* inline CACHE units after the op */
	uint8_t size;           /* nprefix + 1 + ncaches + npad code units */
	uint8_t npad;           /* NOP units after the caches (a replaced instruction
			    * shorter than the original); 0 when decoded.
			    * Jumps count from offset + size - npad. */
	int32_t target;         /* jump target as an instruction index, -1 if none */
	int32_t depth;          /* stack depth before it (rewrite_code__analyse), -1
			    * if not analysed or unreachable */
	struct rewrite_loc loc; /* location of the op's code unit */
};

/* One exception table entry, in code units; end is exclusive. On a raise
 * inside [start, end) the stack is popped to depth, lasti is pushed if
 * set, then the exception, and execution goes to target.
 * (Objects/exception_handling_notes.txt) */
struct rewrite_exc {
	uint32_t start, end, target, depth;
	bool lasti;
};

/* One location table entry: len code units starting at start. */
struct rewrite_lentry {
	uint32_t start, len;
	struct rewrite_loc loc;
};

struct rewrite_code; /* opaque */

/* Decode info into a model. Quickened bytes are accepted and deoptimized
 * (specialized ops mapped back, caches ignored). Fails with -EINVAL on
 * truncation, unknown opcodes, a CACHE where an instruction should start,
 * an instruction cut by the end of the code, a jump that lands outside
 * the code or inside an instruction, malformed table varints. The
 * structural checks that need the whole picture are in verify. */
int rewrite_code__decode(const struct rewrite_code_info *info, struct rewrite_code **out,
			 struct rewrite_diag *diag);
/* Accepts NULL. */
void rewrite_code__free(struct rewrite_code *code);

const struct rewrite_code_info *rewrite_code__info(const struct rewrite_code *code);
/* Whether the decoded bytes were quickened (specialized ops or non-zero
 * caches were seen). */
bool rewrite_code__was_quickened(const struct rewrite_code *code);

/* Instructions. The array is valid until the next append. */
size_t rewrite_code__ninstrs(const struct rewrite_code *code);
const struct rewrite_instr *rewrite_code__instrs(const struct rewrite_code *code);
/* Number of instructions present when decoded (the original ones). */
size_t rewrite_code__noriginal(const struct rewrite_code *code);
/* Index of the instruction containing code unit `unit`, -1 if none. */
int64_t rewrite_code__instr_at(const struct rewrite_code *code, uint32_t unit);
/* Total code units (as of the last decode or encode). */
uint32_t rewrite_code__nunits(const struct rewrite_code *code);

/* Whether instruction i is the SEND loop's back jump (yield from, await,
 * async for/with): a JUMP_BACKWARD_NO_INTERRUPT whose target is SEND. Nothing
 * raises there in the loop itself, but gen.throw()/coroutine.throw() into
 * a frame suspended in the loop, when the subiterator raises, pops the
 * subiterator, moves the frame's instruction pointer to this jump and
 * raises with the stack REWRITE_SEND_LOOP_DROP below the analysed depth (the
 * sent value and the subiterator gone: Objects/genobject.c, _gen_throw).
 * An exception entry covering it must not pop to more than that. */
#define REWRITE_SEND_LOOP_DROP 2
bool rewrite_code__send_loop_jump(const struct rewrite_code *code, size_t i);

/* Exception table, sorted by start. Valid until the next add. */
size_t rewrite_code__nexc(const struct rewrite_code *code);
const struct rewrite_exc *rewrite_code__excs(const struct rewrite_code *code);
/* The entry covering code unit `unit`, NULL if none (binary search). */
const struct rewrite_exc *rewrite_code__exc_at(const struct rewrite_code *code, uint32_t unit);

/* Location table as decoded (entries in order, contiguous from unit 0). */
size_t rewrite_code__nlentries(const struct rewrite_code *code);
const struct rewrite_lentry *rewrite_code__lentries(const struct rewrite_code *code);
/* Location of one code unit; -ENOENT if the table does not cover it. */
int rewrite_code__unit_loc(const struct rewrite_code *code, uint32_t unit, struct rewrite_loc *loc);

/* ---------------------------------------------------------------------- */
/* Analysis and verification                                              */

/* Stack depth before every reachable instruction (instr.depth), following
 * compile.c's stackdepth(): generators and coroutines start at depth 1,
 * taken jumps use stack_effect(jump=1), fall-through stack_effect(jump=0),
 * an exception handler is entered at entry.depth + lasti + 1 from any
 * reachable instruction its entry covers. max_depth is the maximum over
 * every depth reached, including after each instruction (what CPython
 * stores in co_stacksize). -EINVAL on a negative depth, two different
 * depths at one instruction, flow falling off the end, a covered
 * instruction whose depth is below its handler's depth. */
int rewrite_code__analyse(struct rewrite_code *code, int *max_depth, struct rewrite_diag *diag);

/* Structural checks (run analyse first, or it is run for you): every jump
 * lands on an instruction start; exception entries sorted, non-empty,
 * non-overlapping, within the code, targets on instruction starts, depths
 * consistent with the analysis; the location table covers the code
 * exactly; the max depth <= info->stacksize. -EINVAL with the first
 * problem in diag. */
int rewrite_code__verify(struct rewrite_code *code, struct rewrite_diag *diag);

/* ---------------------------------------------------------------------- */
/* Editing: append-only (guards never move an original instruction)       */

/* Append an instruction: canonical opcode, arg (ignored for jumps, computed
 * at encode), target instruction index for jumps (may be an index not yet
 * appended, checked at encode) or -1, and its location. nprefix is the
 * minimum number of EXTENDED_ARG prefixes (0 normally; more pads the
 * instruction to keep a size). Returns the new index or -errno. Offsets of
 * appended instructions are provisional (jumps counted without prefixes)
 * until the next encode, which lays everything out; the original
 * instructions never move. */
int64_t rewrite_code__append(struct rewrite_code *code, int opcode, uint32_t arg, int64_t target,
			     const struct rewrite_loc *loc, unsigned nprefix);
/* Replace an instruction in place (redirect guards): new opcode, arg,
 * target, keeping its location; nprefix is the minimum number of
 * EXTENDED_ARG prefixes (pass 0: the encoder adds what the arg needs). An
 * original instruction keeps its size: when the replacement is shorter, the
 * encoder writes NOP units after it (instr.npad; never executed after an
 * unconditional jump, and never a redundant EXTENDED_ARG 0, which trips
 * assert(oparg) in debug interpreters); when it is longer, encode fails
 * with -ERANGE (later original instructions would move). */
int rewrite_code__replace(struct rewrite_code *code, size_t index, int opcode, uint32_t arg,
			  int64_t target, unsigned nprefix);
/* Add an exception entry; entries must stay sorted and non-overlapping
 * (split enclosing ranges yourself with rewrite_code__set_excs). */
int rewrite_code__add_exc(struct rewrite_code *code, const struct rewrite_exc *e);
/* Replace the whole exception table (copied). */
int rewrite_code__set_excs(struct rewrite_code *code, const struct rewrite_exc *e, size_t n);

/* ---------------------------------------------------------------------- */
/* Encoding                                                               */

struct rewrite_bytes {
	uint8_t *data; /* malloc'ed, never NULL on success; rewrite_bytes__free() */
	size_t len;
};
void rewrite_bytes__free(struct rewrite_bytes *b); /* accepts NULL data */

/* Lay out the instructions (offsets, EXTENDED_ARG counts, relative jump
 * args; re-encoded until sizes settle: an instruction keeps its size
 * unless its arg no longer fits) and write canonical co_code (caches
 * zeroed), co_exceptiontable (from the entries, in code units) and
 * co_linetable (one entry per instruction, split in runs of at most 8
 * units, as compile.c's assemble_emit_location). Updates instr.offset,
 * instr.arg of jumps, instr.nprefix/npad/size, and flips a jump's opcode
 * to its reverse when its target lies the other way. -ERANGE if an
 * original instruction would move or a jump cannot reach its target. Any
 * output may be NULL (encode(code, NULL, NULL, NULL, diag) only lays out). */
int rewrite_code__encode(struct rewrite_code *code, struct rewrite_bytes *co_code,
			 struct rewrite_bytes *exctable, struct rewrite_bytes *linetable,
			 struct rewrite_diag *diag);

/* ---------------------------------------------------------------------- */
/* Wire forms, usable on their own                                        */

/* Deoptimize quickened bytes (co_code_adaptive) into canonical bytes like
 * CPython's _PyCode_GetCode(): specialized ops mapped back, caches zeroed.
 * out has len bytes and may equal in. -EINVAL on an odd length or an
 * unknown opcode. */
int rewrite_bytes__deopt(const uint8_t *in, size_t len, uint8_t *out);

/* Exception table (docs/formats/exception-table.md). Decode fails with
 * -EINVAL on truncation, a missing entry-start bit, a varint over 30 bits.
 * *out is malloc'ed (free()), *n entries. */
int rewrite_exctable__decode(const uint8_t *p, const uint8_t *end, struct rewrite_exc **out,
			     size_t *n, struct rewrite_diag *diag);
/* The entry covering code unit `unit`, scanning the bytes without
 * allocating: 1 found (*out filled), 0 none, -EINVAL malformed or
 * truncated. Self-contained in rewrite/exctable.c (the agent compiles it
 * in: AGENT_EXTRA_SRC += rewrite/exctable.c). */
int rewrite_exctable__find(const uint8_t *p, const uint8_t *end, uint32_t unit,
			   struct rewrite_exc *out);
int rewrite_exctable__encode(const struct rewrite_exc *e, size_t n, struct rewrite_bytes *out);
/* The same form one entry at a time, without allocating (rewrite/exctable.c,
 * compiled into the agent too). next reads the entry at *pp: 1 (*out filled,
 * *pp past it), 0 at the end, -EINVAL when truncated or malformed (as
 * decode), -ERANGE for an entry ending beyond 2^30 units; *pp is left alone
 * on failure. put_entry writes one entry into buf[cap]: the bytes written,
 * -ERANGE for an empty entry or a value beyond 2^30 (as encode), -ENOSPC
 * when cap is short (REWRITE_EXCTABLE_ENTRY_MAX always suffices). */
#define REWRITE_EXCTABLE_ENTRY_MAX 20
int rewrite_exctable__next(const uint8_t **pp, const uint8_t *end, struct rewrite_exc *out);
int rewrite_exctable__put_entry(uint8_t *buf, size_t cap, const struct rewrite_exc *e);

/* Location table (docs/formats/location-table.md); lines are absolute,
 * firstlineno is the base of the first delta. Entries of 1..8 units. */
int rewrite_linetable__decode(const uint8_t *p, const uint8_t *end, int firstlineno,
			      struct rewrite_lentry **out, size_t *n, struct rewrite_diag *diag);
int rewrite_linetable__encode(const struct rewrite_lentry *e, size_t n, int firstlineno,
			      struct rewrite_bytes *out);
/* The same form one entry at a time, without allocating
 * (rewrite/linetable.c, compiled into the agent too). The iterator lives on
 * the caller's stack: line is the start line the next delta counts from
 * (firstlineno, then the last entry's that had one; after the last entry,
 * where an appended entry's delta counts from), unit the next entry's first
 * code unit. next: 1 (*out filled), 0 at the end, -EINVAL when truncated or
 * malformed (as decode; the iterator stays at that entry). put_entry writes
 * an entry of 1..8 units located at *l in the form compile.c's
 * write_location_info_entry() picks, *prev being the running start line
 * (updated): the bytes written, -ERANGE for a length out of 1..8, columns
 * below -1, an end line before the start or a line delta beyond 31 bits,
 * -ENOSPC when cap is short (REWRITE_LINETABLE_ENTRY_MAX always suffices). */
#define REWRITE_LINETABLE_ENTRY_MAX 25
struct rewrite_linetable_iter {
	const uint8_t *p, *end;
	int64_t line;
	uint64_t unit;
};
void rewrite_linetable__iter_init(struct rewrite_linetable_iter *it, const uint8_t *p,
				  const uint8_t *end, int firstlineno);
int rewrite_linetable__next(struct rewrite_linetable_iter *it, struct rewrite_lentry *out);
int rewrite_linetable__put_entry(uint8_t *buf, size_t cap, const struct rewrite_loc *l,
				 uint32_t units, int64_t *prev);

/* One instruction (docs/formats/bytecode.md), without allocating
 * (rewrite/instr.c, compiled into the agent too). prefixes: the fewest
 * EXTENDED_ARG prefixes arg needs (0..3). put writes nprefix prefixes (at
 * least that many; the fourth and later carry 0), the op unit and ncaches
 * zero CACHE units into buf[cap]: the bytes written, -EINVAL for an op,
 * nprefix or ncaches beyond a byte, -ERANGE when nprefix is too few for
 * arg, -ENOSPC when cap is short. ncaches is the caller's
 * _PyOpcode_Caches[op] (rewrite_opcode__caches, or the interpreter's). */
unsigned rewrite_instr__prefixes(uint32_t arg);
int rewrite_instr__put(uint8_t *buf, size_t cap, int op, uint32_t arg, unsigned nprefix,
		       unsigned ncaches);

/* ---------------------------------------------------------------------- */
/* Disassembly                                                            */

enum rewrite_dis_flags {
	REWRITE_DIS_DEPTH = 1, /* show the stack depth column */
	REWRITE_DIS_LINES = 2, /* show line numbers */
};

/* Format one instruction as a single line (no newline), snprintf-style:
 * returns the length it needs, writes at most len bytes (NUL included).
 * "  12 L3    LOAD_GLOBAL        1 (NULL + print)  d=0" */
int rewrite_code__format_instr(const struct rewrite_code *code, size_t index, unsigned flags,
			       char *buf, size_t len);
/* Print a header, every instruction, the exception table and the
 * location table to out. */
int rewrite_code__dis(const struct rewrite_code *code, unsigned flags, FILE *out);

/* ---------------------------------------------------------------------- */
/* Code dumps (docs/formats/codedump.md, written by tests/fixtures/codedump.py) */

struct rewrite_dump_entry {
	struct rewrite_code_info info; /* strings point into the dump */
	const uint8_t *adaptive;       /* co_code_adaptive, NULL if not dumped */
	size_t adaptive_len;
	int64_t parent; /* index of the enclosing code, -1 */
};
struct rewrite_dump; /* opaque */

/* Read a dump file (whole, into memory) or parse bytes (copied). -EINVAL
 * on a bad magic, truncation, counts beyond the data, unterminated
 * strings. */
int rewrite_dump__open(const char *path, struct rewrite_dump **out, struct rewrite_diag *diag);
int rewrite_dump__parse(const uint8_t *p, const uint8_t *end, struct rewrite_dump **out,
			struct rewrite_diag *diag);
void rewrite_dump__close(struct rewrite_dump *dump); /* accepts NULL */
size_t rewrite_dump__count(const struct rewrite_dump *dump);
/* Entry i (0 <= i < count), valid until close. */
const struct rewrite_dump_entry *rewrite_dump__entry(const struct rewrite_dump *dump, size_t i);

#endif /* SUTURE_REWRITE_H */
