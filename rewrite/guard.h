/* rewrite/guard.h: crash analysis, guard synthesis, the semantic diff gate
 * and crash-site fingerprints (docs/design.md §7, docs/formats/guards.md).
 *
 * The healing pipeline, for one crash:
 *
 *   guard__analyse(info, &crash, &d)      which guard, target text, fallback,
 *                                         placement, or why none (d.kind == GUARD_NONE)
 *   guard__synthesize(info, &d, &patch)   the patched co_code, co_exceptiontable,
 *                                         co_linetable, co_stacksize and the
 *                                         constants to append (docs/formats/patch.md)
 *   guard_patch__info(info, &patch, ...)  describe the patched code object
 *   guard_diffgate__check(info, &pi, ...) accept it only if every original
 *                                         instruction is where it was
 *
 * A guard never moves an original instruction: the patched code is the
 * original bytes, unchanged (a redirect guard replaces exactly one
 * instruction by a jump plus NOP padding of the same size), plus blocks
 * appended at the end,
 * plus new exception-table entries. Analysis always runs on canonical
 * bytes: quickened co_code_adaptive is deoptimized by the decoder.
 *
 * Errors: 0 or -errno (see rewrite.h): -EINVAL malformed input (diag says
 * why), -ENOMEM, -ERANGE a jump or oparg does not fit. A refusal is not an
 * error: guard__analyse returns 0 with d.kind == GUARD_NONE and the reason.
 */
#ifndef SUTURE_REWRITE_GUARD_H
#define SUTURE_REWRITE_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rewrite/rewrite.h"

enum guard_kind {
	GUARD_NONE = 0,        /* refused: see guard_decision.refusal */
	GUARD_NULL,            /* null_guard: attribute or method on None */
	GUARD_INDEX,           /* index_guard: subscript out of range */
	GUARD_KEY,             /* key_guard: missing mapping key */
	GUARD_SUBSCRIPT,       /* subscript_guard: subscripting None */
	GUARD_CHAIN_SUBSCRIPT, /* chain_subscript_guard: d["a"]["b"], a link None/missing */
	GUARD_TYPE_COERCION,   /* type_coercion_guard: int(x) / float(x) */
	GUARD_DIVISION,        /* division_guard: / // % by zero */
	GUARD_STR_COERCE,      /* str_coerce_guard: str + non-str (redirect) */
	GUARD_FILE,            /* file_guard: open(path) on a missing file (redirect) */
	GUARD_CALLABLE,        /* callable_guard: calling None */
	GUARD_PROBE,           /* test only: a handler that matches a private type */
};
#define GUARD_KIND_COUNT (GUARD_PROBE + 1)

/* "null_guard" ...; "none" for GUARD_NONE, "probe" for GUARD_PROBE. */
const char *guard_kind__name(enum guard_kind kind);
/* The kind named name, GUARD_NONE if unknown ("none" and "probe" too). */
enum guard_kind guard_kind__by_name(const char *name);

enum guard_refusal {
	GUARD_OK = 0,
	GUARD_REFUSE_RAISE,     /* an explicit raise statement */
	GUARD_REFUSE_ASSERT,    /* an assert statement */
	GUARD_REFUSE_RERAISE,   /* re-raised by the program's own except/finally/with */
	GUARD_REFUSE_CUSTOM,    /* not a builtin exception type */
	GUARD_REFUSE_STDLIB,    /* the code belongs to the standard library */
	GUARD_REFUSE_CALLEE,    /* raised by code this instruction called */
	GUARD_REFUSE_UNHANDLED, /* not one of the structural crashes suture heals */
	GUARD_REFUSE_PLACEMENT, /* no place where the fallback is safe */
};
const char *guard_refusal__name(enum guard_refusal r);

/* The value a guard produces. */
enum guard_fallback {
	GUARD_FB_NOTHING = 0, /* the statement is skipped: nothing is produced */
	GUARD_FB_NONE,        /* None */
	GUARD_FB_INT0,        /* 0 */
	GUARD_FB_FLOAT0,      /* 0.0 */
	GUARD_FB_STR_CONCAT,  /* str(a) + str(b) (helper str_coerce) */
	GUARD_FB_EMPTY_FILE,  /* io.StringIO() / io.BytesIO() (helper open_or_empty) */
};

enum guard_placement {
	GUARD_PLACE_VALUE = 0, /* the failing operation's value is replaced in place */
	GUARD_PLACE_STATEMENT, /* the statement's value (x = e, return e) is the fallback */
	GUARD_PLACE_SKIP,      /* the statement is skipped (x op= e, e;, a loop over None) */
	GUARD_PLACE_REDIRECT,  /* the instruction calls a runtime helper instead */
};
#define GUARD_PLACEMENT_COUNT (GUARD_PLACE_REDIRECT + 1)
/* "value", "statement", "skip", "redirect" (the store's tokens). */
const char *guard_placement__name(enum guard_placement p);
/* The placement named name (>= 0), or -EINVAL. */
int guard_placement__by_name(const char *name);

/* What consumes the value the failing operation would have produced: the
 * first instruction on the value's path that accepts the fallback, which
 * is what makes the fallback safe there (docs/formats/guards.md, "Consumers").
 * guard_decision.consumer_kind; stored as its token next to the free
 * text (docs/formats/store.md). Tokens are stable: never renamed. */
enum guard_consumer {
	GUARD_CONSUMER_UNKNOWN = 0, /* "unknown": not recorded or not recognised */
	GUARD_CONSUMER_STORE,       /* "store": x = ... (STORE_FAST/NAME/GLOBAL/DEREF) */
	GUARD_CONSUMER_STORE_ATTR,  /* "store-attr": o.x = ... */
	GUARD_CONSUMER_STORE_ITEM,  /* "store-item": c[k] = ... */
	GUARD_CONSUMER_RETURN,      /* "return" */
	GUARD_CONSUMER_YIELD,       /* "yield" */
	GUARD_CONSUMER_CALL_ARG,    /* "call-arg": an argument of a call */
	GUARD_CONSUMER_DISCARD,     /* "discard": an expression statement's POP_TOP */
	GUARD_CONSUMER_FOR_LOOP,    /* "for-loop": the iterable of a loop, skipped */
	GUARD_CONSUMER_UNPACK,      /* "unpack": a, b = ... */
	GUARD_CONSUMER_SKIPPED,     /* "skipped": the failing store/delete itself */
	GUARD_CONSUMER_HELPER,      /* "helper": a redirect guard's own consumer */
	GUARD_CONSUMER_BUILD,       /* "build": BUILD_LIST/TUPLE/SET/MAP/CONST_KEY_MAP */
	GUARD_CONSUMER_COMPARE,     /* "compare": COMPARE_OP */
	GUARD_CONSUMER_IDENTITY,    /* "identity": IS_OP */
	GUARD_CONSUMER_STATEMENT,   /* "statement": written by older analysers only */
	GUARD_CONSUMER_OPCODE,      /* "opcode": another instruction, named by the text */
};
#define GUARD_CONSUMER_COUNT (GUARD_CONSUMER_OPCODE + 1)
/* The token ("store", "call-arg" ...); "?" out of range. */
const char *guard_consumer__name(enum guard_consumer c);
/* The consumer whose token is name (>= 0), or -EINVAL. */
int guard_consumer__by_name(const char *name);
/* The consumer a free text names: the texts rewrite/ writes into
 * guard_decision.consumer ("store x", "call argument", "BUILD_LIST" ...)
 * and the older forms suture-audit recognised, by the same prefixes; an
 * opcode name otherwise is GUARD_CONSUMER_OPCODE, anything else (or NULL)
 * GUARD_CONSUMER_UNKNOWN. Migrates stores written before the token
 * existed (docs/formats/store.md, version 1). */
enum guard_consumer guard_consumer__of_text(const char *text);
/* The sentence suture-audit explain gives for the consumer; NULL for
 * UNKNOWN and OPCODE (the caller names the text instead). */
const char *guard_consumer__explain(enum guard_consumer c);

/* What the debugger knows about the crash. */
struct guard_crash {
	uint32_t unit;        /* code unit of the failing instruction: frame
				 * prev_instr - first_instr, or tb_lasti / 2; any
				 * unit of the instruction (prefix, op, cache) */
	const char *exc_type; /* builtin name ("KeyError") or module-qualified
				 * name of another type ("app.BadInput") */
	const char *message;  /* str(exception), NULL if unknown */
	bool in_callee;       /* the traceback goes on below this frame: the
				 * exception came out of Python code this
				 * instruction called */
	int stdlib;           /* 1: the code is in the standard library, 0: not,
				 * -1: decide from info->filename (guard__is_stdlib_path) */
};

/* A range of original instructions (indices, inclusive) one handler entry
 * covers. */
struct guard_cover {
	int32_t first, last;
};
#define GUARD_MAX_COVER 8

struct guard_decision {
	enum guard_kind kind; /* GUARD_NONE: refused */
	enum guard_refusal refusal;
	char reason[224]; /* why refused, or what the guard does */
	char exc_type[64];
	char target[128];             /* text users read: profile.name, cfg["timeout"] */
	char subject[96];             /* the operand at fault: profile, cfg, count */
	enum guard_fallback fallback; /* what the failing operation yields */
	char fallback_text[48];       /* "None", "0", "0.0", "str(a) + str(b)" ... */
	enum guard_placement placement;
	char consumer[64];                 /* where the value goes: "store x", "return" ... */
	enum guard_consumer consumer_kind; /* the same as a token */
	uint32_t anchor_unit;              /* first unit of the failing instruction */
	int32_t anchor;                    /* its index in the decoded original */
	/* The plan, in instruction indices of the decoded original. */
	size_t ncover;
	struct guard_cover cover[GUARD_MAX_COVER];
	int32_t resume;       /* execution continues at this instruction */
	int32_t base_depth;   /* the handler's stack depth */
	bool push_fallback;   /* the block pushes the fallback before resuming */
	uint32_t unpack;      /* > 0: it pushes a tuple of that many None
					 * (a, b = e: every target gets None) */
	uint64_t fingerprint; /* guard_fingerprint__compute().hash */
};

/* Decide the guard for one crash. 0 with a decision (possibly a refusal),
 * -EINVAL if the code cannot be decoded or analysed or crash->unit is
 * outside it. */
int guard__analyse(const struct rewrite_code_info *info, const struct guard_crash *crash,
		   struct guard_decision *out, struct rewrite_diag *diag);

/* ---------------------------------------------------------------------- */
/* The guard kinds as data (rewrite/guards.c, docs/formats/guards.md)              */

/* A crash the classifier turns into a kind: what re-decision tries. */
struct guard_sample {
	const char *exc_type; /* builtin type name, as the fingerprint hashes it */
	const char *message;  /* str(exception), in a form the classifier accepts */
};

#define GUARD_KIND_MAX_EXC 3
#define GUARD_KIND_MAX_SAMPLES 3
/* Bits of guard_kind_info.placements. */
#define GUARD_PLACES_HANDLER \
	((1u << GUARD_PLACE_VALUE) | (1u << GUARD_PLACE_STATEMENT) | (1u << GUARD_PLACE_SKIP))
#define GUARD_PLACES_REDIRECT (1u << GUARD_PLACE_REDIRECT)

struct guard_kind_info {
	enum guard_kind kind;
	const char *name; /* "key_guard": the store's token, the agent's too */
	bool redirect;    /* the instruction calls a helper instead (else an
				    * exception handler is appended) */
	size_t nexc;
	const char *exc[GUARD_KIND_MAX_EXC]; /* the types it answers; a handler
				    * guard's CHECK_EXC_MATCH takes exactly these */
	const char *helper;                  /* handler: its precise filter; redirect: the
				    * helper called (agent/helpers.h) */
	const char *helper_inplace;          /* redirect of x += y, else NULL */
	unsigned placements;                 /* 1u << guard_placement it may be decided with */
	size_t nsamples;
	struct guard_sample samples[GUARD_KIND_MAX_SAMPLES];
	/* What suture-audit explain says. */
	const char *answers; /* "KeyError", "TypeError (object is not subscriptable)" */
	const char *when;    /* "the key is missing from the mapping" */
	const char *fix;     /* how to fix the source */
};

/* The description of a guard kind; NULL for GUARD_NONE, GUARD_PROBE and
 * values out of range. Static data. */
const struct guard_kind_info *guard_kind__info(enum guard_kind kind);
/* Iteration over the healing kinds: for (k = GUARD_KIND_FIRST; k <= GUARD_KIND_LAST; k++). */
#define GUARD_KIND_FIRST GUARD_NULL
#define GUARD_KIND_LAST GUARD_CALLABLE

/* "fnv64:<16 hex>": how a fingerprint or code identity is written in a
 * spec (docs/formats/store.md). buf needs 23 bytes. */
void guard_fingerprint__format(uint64_t hash, char *buf, size_t len);

/* ---------------------------------------------------------------------- */
/* Re-decision: a stored spec on a live code object                       */

/* What a store keeps of a decision (docs/formats/store.md): the kind, the
 * anchor and the fingerprint; the exception type is not stored. */
struct guard_spec {
	const char *guard;  /* kind name, "key_guard" */
	uint32_t anchor;    /* unit of the guarded instruction */
	const char *window; /* "fnv64:<16 hex>" fingerprint; NULL or "": any */
};

/* The decision the spec makes on info, found again: each sample crash of
 * the kind (guard_kind_info.samples) is analysed at the anchor, and the
 * first that decides the same kind with the stored fingerprint (which
 * hashes the exception type) wins. 0 with *d; -ESTALE when none does
 * (diag says "no key_guard decided at unit 12 any more"); -EINVAL for an
 * unknown kind name. */
int guard_spec__redecide(const struct rewrite_code_info *info, const struct guard_spec *spec,
			 struct guard_decision *d, struct rewrite_diag *diag);

/* Whether a source path belongs to CPython's standard library
 * (".../lib/python3.11/..." outside site-packages/dist-packages, or
 * "<frozen ...>"). */
bool guard__is_stdlib_path(const char *filename);

/* ---------------------------------------------------------------------- */
/* Patches (docs/formats/patch.md)                                        */

/* A constant the patch appends to co_consts, described symbolically: the
 * builder of the code object makes the Python object. */
enum guard_const_kind {
	GUARD_CONST_NONE = 0,   /* None */
	GUARD_CONST_INT,        /* int: value.i */
	GUARD_CONST_FLOAT,      /* float: value.f */
	GUARD_CONST_EXC_TYPE,   /* a builtin exception type: names[0] */
	GUARD_CONST_EXC_TUPLE,  /* a tuple of builtin exception types: names[0..n) */
	GUARD_CONST_HELPER,     /* a runtime helper (agent/helpers.h): names[0] */
	GUARD_CONST_PROBE_EXC,  /* a private exception type nothing raises (tests) */
	GUARD_CONST_NONE_TUPLE, /* a tuple of value.i None */
};
const char *guard_const_kind__name(enum guard_const_kind k);

#define GUARD_CONST_NAMES 4
struct guard_const {
	enum guard_const_kind kind;
	int64_t i;
	double f;
	size_t nnames;
	const char *names[GUARD_CONST_NAMES]; /* static strings */
};

#define GUARD_MAX_CONSTS 8
struct guard_patch {
	enum guard_kind kind;
	struct rewrite_bytes code;      /* new co_code (canonical, caches zeroed) */
	struct rewrite_bytes exctable;  /* new co_exceptiontable */
	struct rewrite_bytes linetable; /* new co_linetable */
	int stacksize;                  /* new co_stacksize */
	size_t nconsts_before;          /* constant i goes to co_consts[nconsts_before + i] */
	size_t nconsts;
	struct guard_const consts[GUARD_MAX_CONSTS];
	uint32_t orig_units;    /* units of the original code; the rest is appended */
	uint32_t block_unit;    /* first unit of the (first) appended block */
	uint32_t fallback_unit; /* where the block, with the stack at base_depth,
					  * produces the fallback and resumes (for in-flight
					  * resume; 0 for probe patches). A redirect guard:
					  * the first load of the failing instruction's
					  * operands, run again by the continuation; 0 when
					  * that cannot be done (no_resume says why) */
	const char *no_resume;  /* static: why the failing call cannot be resumed */
	int32_t base_depth;
	uint32_t resume_unit;  /* where the block jumps back to */
	int64_t replaced_unit; /* redirect: the replaced instruction, else -1 */
	size_t nentries;       /* guard entries added (split pieces not counted) */
};

/* Build the patch for a decision (kind != GUARD_NONE). out is overwritten;
 * release it with guard_patch__release(). */
int guard__synthesize(const struct rewrite_code_info *info, const struct guard_decision *d,
		      struct guard_patch *out, struct rewrite_diag *diag);

/* The same for a caller that passes the patch through the diff gate next
 * (guard_diffgate__check), whose last step is the same verification of
 * the patched code (rewrite_code__verify): here it is not run twice. A
 * patch from this call must not be installed without the gate's yes.
 * heal/'s loads and crashes: the verification was 12% of a boot load's
 * instructions (docs/performance.md, "start-up, sixth pass"). */
int guard__synthesize_for_gate(const struct rewrite_code_info *info, const struct guard_decision *d,
			       struct guard_patch *out, struct rewrite_diag *diag);

/* The fidelity probe: a handler guard at every reachable instruction that
 * can raise (not LOAD_CONST, STORE_FAST, RETURN_VALUE...: guard.c,
 * probe_never_raises) whose filter is a private exception type
 * (GUARD_CONST_PROBE_EXC), so every exception raised there runs an
 * appended block and is re-raised. */
int guard__synthesize_probe(const struct rewrite_code_info *info, struct guard_patch *out,
			    struct rewrite_diag *diag);

/* A logpoint (docs/design.md §12): the first instruction of `line` (or,
 * when a jump cannot fit there, a later one of the same run that only
 * pushes come after) is replaced by a same-size JUMP_FORWARD into an
 * appended block that calls helper(probe_id) (method form, two stack
 * slots), runs the displaced instruction with its own caches and jumps
 * back after it. kind GUARD_PROBE, replaced_unit set, resume_unit the
 * unit after the replaced instruction. -ENOENT: no reachable instruction
 * on that line; -EOPNOTSUPP: the line starts with an instruction that
 * cannot be displaced (a call's PRECALL/CALL, the prologue); -ERANGE: no
 * candidate holds the jump. */
int guard__synthesize_logpoint(const struct rewrite_code_info *info, int line, int64_t probe_id,
			       const char *helper, struct guard_patch *out,
			       struct rewrite_diag *diag);

/* Frees the bytes; accepts a zeroed or already released patch. */
void guard_patch__release(struct guard_patch *p);

/* Describe the patched code object: *out is info with the patch's code,
 * tables and stack size, and consts extended by the patch's constants
 * (type/repr texts); *consts receives the malloc'ed array to free(). */
int guard_patch__info(const struct rewrite_code_info *info, const struct guard_patch *p,
		      struct rewrite_code_info *out, struct rewrite_const **consts);

/* Print the original and the patched disassembly side by side around the
 * guarded instruction (context instructions either side), then the
 * appended blocks and the exception entries that changed. */
int guard_patch__dis(const struct rewrite_code_info *info, const struct guard_patch *p,
		     uint32_t anchor_unit, unsigned context, FILE *out);

/* For suture-dis and `explain`: analyse the crash and print the decision
 * (kind, target, fallback, placement, fingerprint, or the refusal and why);
 * when a guard is decided, the side-by-side disassembly and the diff
 * gate's verdict and delta. 0, or -errno as guard__analyse/__synthesize;
 * -EINVAL if the gate rejects the patch. */
int guard__explain(const struct rewrite_code_info *info, const struct guard_crash *crash,
		   unsigned context, FILE *out);

/* ---------------------------------------------------------------------- */
/* Semantic diff gate                                                     */

struct guard_delta {
	size_t original;       /* instructions of the original */
	size_t unchanged;      /* original instructions byte-identical in place */
	size_t replaced;       /* 0, or 1 for a redirect guard */
	int64_t replaced_unit; /* -1 if none */
	size_t appended;       /* instructions after the original code */
	uint32_t appended_units;
	size_t exc_before, exc_after;
	size_t guard_entries; /* entries whose target is an appended block */
	int stacksize_before, stacksize_after;
};

/* Accept patched (described like the original) only if: the original
 * instructions are byte-identical at their offsets, except at most one
 * replaced by a forward jump into the appended code padded with NOPs to
 * the same size;
 * every original unit keeps its location and, unless a guard entry now
 * covers it, its exception handler; guard entries cover whole original
 * instructions and jump to appended code; each appended block is covered
 * by the handler of the instructions it guards; the verifier passes.
 * 0 accepted (delta filled), -EINVAL rejected (diag says why). */
int guard_diffgate__check(const struct rewrite_code_info *orig,
			  const struct rewrite_code_info *patched, struct guard_delta *delta,
			  struct rewrite_diag *diag);

/* "12 original instructions unchanged, 1 replaced (unit 8), 9 appended
 * (14 units), exception entries 1 -> 3 (1 guard), stack 4 -> 7" */
int guard_delta__format(const struct guard_delta *d, char *buf, size_t len);

/* ---------------------------------------------------------------------- */
/* Fingerprints                                                           */

struct guard_fingerprint {
	uint64_t hash;    /* FNV-1a 64 over window + exception type */
	char window[320]; /* the canonical instruction window, as text */
};

/* The crash site's identity: up to 3 instructions before and 2 after the
 * failing one (canonical opcodes; names and constants as text, not
 * indices; jumps as relative distances) plus the exception type. The same
 * for quickened and canonical bytes, across runs and processes. */
int guard_fingerprint__compute(const struct rewrite_code_info *info, uint32_t unit,
			       const char *exc_type, struct guard_fingerprint *out,
			       struct rewrite_diag *diag);

/* The identity of an original code object for the patch store
 * (docs/design.md §10): FNV-1a 64 over the canonical bytes (quickened input is
 * deoptimized first), the exception and location tables, the constants'
 * type/repr texts, co_names, filename (heal passes the file's resolved key),
 * qualname and first line. A stored
 * patch whose code_id differs from the live code's is stale.
 * 0, or -EINVAL for an odd or unknown-opcode code. */
int guard_code__identity(const struct rewrite_code_info *info, uint64_t *id);

#endif /* SUTURE_REWRITE_GUARD_H */
