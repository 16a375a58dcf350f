/* rewrite/analyse.c: crash analysis. From a code object, the failing
 * instruction and the exception, decide the guard kind, the text users
 * read (reconstructed from the bytecode), the fallback and where it goes
 * (docs/design.md §7, docs/formats/guards.md).
 *
 * Two small interpreters over the canonical instructions:
 * - a symbolic one that rebuilds the source text of an instruction's
 *   operands (profile.name, cfg["timeout"], total / count);
 * - a data-flow walk that follows the failing value to its consumer: if the
 *   consumer accepts any value (store, return, call argument ...) the
 *   fallback replaces the value; if it would fail on the fallback too
 *   (attribute, subscript, call, iteration ...) the walk goes on to the
 *   statement's end, so `x = e` assigns the fallback, `return e` returns it
 *   and `x op= e`, `e;` and loops over the value are skipped.
 *
 * One file over 800 lines: one decision procedure (classify the failing
 * instruction, rebuild its text, place the fallback) whose steps read the
 * same instruction window.
 */
#include "rewrite/guard-priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <opcode.h>

/* ---------------------------------------------------------------------- */
/* Symbolic text                                                          */

enum { PREC_LOW = 0, PREC_CMP, PREC_BIN, PREC_UNARY, PREC_ATOM };
enum { SYM_VALUE = 0, SYM_NULL, SYM_SELF };

struct sym {
	char t[96];
	uint8_t prec;
	uint8_t mark;
	int32_t src; /* instruction that produced it, -1 if unknown */
};

#define SYM_MAX 64

struct symstack {
	struct sym s[SYM_MAX];
	int n;
	int kwnames; /* pending KW_NAMES const index, -1 */
};

/* An instruction's argument as an int for stack arithmetic: clamped far
 * above any real stack depth, so hostile bytes (EXTENDED_ARG chains up to
 * 2^32 - 1) never turn into negative counts or wrapped indexes. */
static int arg_int(uint32_t arg)
{
	return arg > (1u << 20) ? (int)(1u << 20) : (int)arg;
}

static void sym_push(struct symstack *st, const char *t, int prec, int mark, int32_t src)
{
	if (st->n >= SYM_MAX)
		return;
	struct sym *s = &st->s[st->n++];
	guard__fmt(s->t, sizeof(s->t), "%s", t);
	s->prec = (uint8_t)prec;
	s->mark = (uint8_t)mark;
	s->src = src;
}

static struct sym sym_pop(struct symstack *st)
{
	struct sym unk = { .t = "…", .prec = PREC_ATOM, .mark = SYM_VALUE, .src = -1 };
	if (st->n <= 0)
		return unk;
	return st->s[--st->n];
}

/* The text of s, parenthesized when its precedence is below min. */
static void sym_text(const struct sym *s, int min, char *buf, size_t len)
{
	if (s->prec < min)
		guard__fmt(buf, len, "(%s)", s->t);
	else
		guard__fmt(buf, len, "%s", s->t);
}

static const char *binop_text(uint32_t arg)
{
	static const char *const ops[] = {
		"+",  "&",  "//",  "<<",  "@",  "*",  "%",  "|",  "**",  ">>",  "-",  "/",  "^",
		"+=", "&=", "//=", "<<=", "@=", "*=", "%=", "|=", "**=", ">>=", "-=", "/=", "^=",
	};
	return arg < sizeof(ops) / sizeof(ops[0]) ? ops[arg] : "?";
}

static const char *cmp_text(uint32_t arg)
{
	static const char *const ops[] = { "<", "<=", "==", "!=", ">", ">=" };
	return arg < 6 ? ops[arg] : "?";
}

/* Where the operands of instruction idx start: walk back over straight-line
 * code until the items it consumes have all been produced. -1 if a jump
 * target or a branch is in the way. */
static int64_t operands_start(const struct gctx *g, int64_t idx, int need)
{
	int64_t i = idx;
	while (need > 0) {
		if (g->jump_target[i] && i != idx)
			return -1;
		if (--i < 0)
			return -1;
		const struct rewrite_instr *in = &g->in[i];
		if (in->target >= 0 || rewrite_opcode__is_terminator(in->opcode))
			return -1;
		need -= guard_op__outputs(in->opcode, in->arg);
		need += guard_op__inputs(in->opcode, in->arg);
	}
	return i;
}

/* Run the symbolic interpreter over [from, to) onto st. */
static void sym_run(const struct gctx *g, int64_t from, int64_t to, struct symstack *st)
{
	char a[96], b[96];
	for (int64_t i = from; i < to; i++) {
		const struct rewrite_instr *in = &g->in[i];
		int op = in->opcode;
		const char *arg = gctx__argtext(g, in);
		switch (op) {
		case NOP:
		case RESUME:
		case CACHE:
			break;
		case LOAD_GLOBAL:
			if (in->arg & 1)
				sym_push(st, "NULL", PREC_ATOM, SYM_NULL, (int32_t)i);
			sym_push(st, arg, PREC_ATOM, SYM_VALUE, (int32_t)i);
			break;
		case LOAD_FAST:
		case LOAD_NAME:
		case LOAD_DEREF:
		case LOAD_CLASSDEREF:
		case LOAD_CLOSURE:
		case LOAD_CONST:
			sym_push(st, arg, PREC_ATOM, SYM_VALUE, (int32_t)i);
			break;
		case PUSH_NULL:
			sym_push(st, "NULL", PREC_ATOM, SYM_NULL, (int32_t)i);
			break;
		case LOAD_ATTR: {
			struct sym o = sym_pop(st);
			sym_text(&o, PREC_ATOM, a, sizeof(a));
			char t[160];
			guard__fmt(t, sizeof(t), "%s.%s", a, arg);
			sym_push(st, t, PREC_ATOM, SYM_VALUE, (int32_t)i);
			break;
		}
		case LOAD_METHOD: {
			struct sym o = sym_pop(st);
			sym_text(&o, PREC_ATOM, a, sizeof(a));
			char t[160];
			guard__fmt(t, sizeof(t), "%s.%s", a, arg);
			sym_push(st, t, PREC_ATOM, SYM_VALUE, (int32_t)i);
			sym_push(st, a, PREC_ATOM, SYM_SELF, (int32_t)i);
			break;
		}
		case BINARY_SUBSCR: {
			struct sym k = sym_pop(st), c = sym_pop(st);
			sym_text(&c, PREC_ATOM, a, sizeof(a));
			char t[200];
			guard__fmt(t, sizeof(t), "%s[%s]", a, k.t);
			sym_push(st, t, PREC_ATOM, SYM_VALUE, (int32_t)i);
			break;
		}
		case BINARY_OP:
		case COMPARE_OP:
		case IS_OP:
		case CONTAINS_OP: {
			struct sym r = sym_pop(st), l = sym_pop(st);
			const char *o;
			int prec = PREC_CMP;
			if (op == BINARY_OP) {
				o = binop_text(in->arg);
				prec = in->arg >= NB_INPLACE_ADD ? PREC_LOW : PREC_BIN;
			} else if (op == COMPARE_OP) {
				o = cmp_text(in->arg);
			} else if (op == IS_OP) {
				o = in->arg ? "is not" : "is";
			} else {
				o = in->arg ? "not in" : "in";
			}
			sym_text(&l, prec, a, sizeof(a));
			sym_text(&r, prec + 1, b, sizeof(b));
			char t[220];
			guard__fmt(t, sizeof(t), "%s %s %s", a, o, b);
			sym_push(st, t, prec, SYM_VALUE, (int32_t)i);
			break;
		}
		case UNARY_NEGATIVE:
		case UNARY_NOT:
		case UNARY_INVERT:
		case UNARY_POSITIVE: {
			struct sym v = sym_pop(st);
			sym_text(&v, PREC_UNARY, a, sizeof(a));
			const char *o = op == UNARY_NEGATIVE ? "-"
					: op == UNARY_NOT    ? "not "
					: op == UNARY_INVERT ? "~"
							     : "+";
			char t[120];
			guard__fmt(t, sizeof(t), "%s%s", o, a);
			sym_push(st, t, op == UNARY_NOT ? PREC_LOW : PREC_UNARY, SYM_VALUE,
				 (int32_t)i);
			break;
		}
		case KW_NAMES:
			st->kwnames = arg_int(in->arg);
			break;
		case PRECALL:
			break; /* CALL does the work in the text */
		case CALL: {
			int n = arg_int(in->arg);
			if (n > 16 || st->n < n + 2) {
				st->n = 0;
				sym_push(st, "…", PREC_ATOM, SYM_VALUE, (int32_t)i);
				break;
			}
			char args[200] = "";
			size_t used = 0;
			int base = st->n - n;
			for (int k = 0; k < n; k++) {
				used += (size_t)snprintf(args + used,
							 used < sizeof(args) ? sizeof(args) - used
									     : 0,
							 "%s%s", k ? ", " : "", st->s[base + k].t);
				if (used >= sizeof(args))
					used = sizeof(args) - 1;
			}
			st->n = base;
			struct sym s1 = sym_pop(st), s0 = sym_pop(st);
			const struct sym *fn = s1.mark == SYM_SELF ? &s0 : &s1;
			sym_text(fn, PREC_ATOM, a, sizeof(a));
			char t[300];
			guard__fmt(t, sizeof(t), "%s(%s)", a, args);
			st->kwnames = -1;
			sym_push(st, t, PREC_ATOM, SYM_VALUE, (int32_t)i);
			break;
		}
		case BUILD_TUPLE:
		case BUILD_LIST: {
			int n = arg_int(in->arg);
			st->n = st->n >= n ? st->n - n : 0;
			sym_push(st, op == BUILD_LIST ? "[…]" : "(…)", PREC_ATOM, SYM_VALUE,
				 (int32_t)i);
			break;
		}
		case COPY:
			if (arg_int(in->arg) >= 1 && st->n >= arg_int(in->arg) && st->n < SYM_MAX)
				st->s[st->n] = st->s[st->n - arg_int(in->arg)], st->n++;
			else
				sym_push(st, "…", PREC_ATOM, SYM_VALUE, -1);
			break;
		case SWAP:
			if (arg_int(in->arg) >= 2 && st->n >= arg_int(in->arg)) {
				struct sym t = st->s[st->n - 1];
				st->s[st->n - 1] = st->s[st->n - arg_int(in->arg)];
				st->s[st->n - arg_int(in->arg)] = t;
			}
			break;
		default: {
			int k = guard_op__inputs(op, in->arg), o = guard_op__outputs(op, in->arg);
			st->n = st->n >= k ? st->n - k : 0;
			for (int j = 0; j < o; j++)
				sym_push(st, "…", PREC_ATOM, SYM_VALUE, (int32_t)i);
		}
		}
	}
}

/* Pad (with "…" below) or trim st to exactly `need` items. More operands
 * than the symbolic stack holds: all unknown. */
static void fit(struct symstack *st, int need)
{
	if (need > SYM_MAX) {
		st->n = 0;
		need = SYM_MAX;
	}
	while (st->n < need) {
		memmove(&st->s[1], &st->s[0], sizeof(st->s[0]) * (size_t)st->n);
		st->n++;
		st->s[0] = (struct sym){ .t = "…", .prec = PREC_ATOM, .src = -1 };
	}
	if (st->n > need) {
		memmove(&st->s[0], &st->s[st->n - need], sizeof(st->s[0]) * (size_t)need);
		st->n = need;
	}
}

/* Operand texts of instruction idx (its inputs, bottom first) into st.
 * Unknown operands read "…". */
static void operands_of(const struct gctx *g, int64_t idx, struct symstack *st)
{
	const struct rewrite_instr *in = &g->in[idx];
	int need = guard_op__inputs(in->opcode, in->arg);
	st->n = 0;
	st->kwnames = -1;
	int64_t start = operands_start(g, idx, need);
	if (start >= 0)
		sym_run(g, start, idx, st);
	fit(st, need);
}

/* The operands of a logical call: [callable-or-method, self-or-NULL..., args].
 * For a CALL at idx the items PRECALL consumed are rebuilt too. */
static void call_operands(const struct gctx *g, int64_t call, struct symstack *st)
{
	int n = arg_int(g->in[call].arg);
	int need = n + 2;
	st->n = 0;
	st->kwnames = -1;
	int64_t pre = call - 1; /* PRECALL */
	int64_t start = pre >= 0 ? operands_start(g, pre, need) : -1;
	if (start >= 0)
		sym_run(g, start, pre, st);
	fit(st, need);
}

/* ---------------------------------------------------------------------- */
/* Following the value                                                    */

enum fbclass { FB_IS_NONE, FB_IS_NUMBER };

/* Whether instruction in, consuming the tainted slot `slot` (depth before
 * in is d), can take the fallback there without failing. */
static bool accepts(const struct rewrite_instr *in, int d, int slot, enum fbclass fb)
{
	int op = in->opcode;
	int top = d - 1; /* slot of TOS */
	switch (op) {
	/* clang-format off */
	case STORE_FAST: case STORE_NAME: case STORE_GLOBAL: case STORE_DEREF:
	case RETURN_VALUE: case YIELD_VALUE: case POP_TOP:
	case BUILD_TUPLE: case BUILD_LIST: case BUILD_SET: case BUILD_MAP:
	case BUILD_CONST_KEY_MAP: case LIST_APPEND: case SET_ADD: case MAP_ADD:
	case IS_OP: case FORMAT_VALUE: case UNARY_NOT:
	case POP_JUMP_FORWARD_IF_FALSE: case POP_JUMP_FORWARD_IF_TRUE:
	case POP_JUMP_BACKWARD_IF_FALSE: case POP_JUMP_BACKWARD_IF_TRUE:
	case POP_JUMP_FORWARD_IF_NONE: case POP_JUMP_FORWARD_IF_NOT_NONE:
	case POP_JUMP_BACKWARD_IF_NONE: case POP_JUMP_BACKWARD_IF_NOT_NONE:
	case JUMP_IF_TRUE_OR_POP: case JUMP_IF_FALSE_OR_POP:
		return true;
	/* clang-format on */
	case STORE_ATTR: /* [value, owner] */
		return slot == top - 1;
	case STORE_SUBSCR: /* [value, container, key] */
		return slot == top - 2;
	case CONTAINS_OP: /* [element, container] */
		return slot == top - 1;
	case COMPARE_OP:
		return fb == FB_IS_NUMBER || in->arg == 2 || in->arg == 3;
	case PRECALL: /* only its arguments: they are what it consumes */
		return true;
	case BINARY_OP:
		if (fb != FB_IS_NUMBER)
			return false;
		/* The fallback 0 as a divisor would fail again. */
		if (slot == top &&
		    (in->arg == NB_TRUE_DIVIDE || in->arg == NB_FLOOR_DIVIDE ||
		     in->arg == NB_REMAINDER || in->arg == NB_INPLACE_TRUE_DIVIDE ||
		     in->arg == NB_INPLACE_FLOOR_DIVIDE || in->arg == NB_INPLACE_REMAINDER))
			return false;
		return true;
	case UNARY_NEGATIVE:
	case UNARY_POSITIVE:
		return fb == FB_IS_NUMBER;
	case BINARY_SUBSCR: /* a number is a fine key, never a container */
		return fb == FB_IS_NUMBER && slot == top;
	default:
		return false;
	}
}

struct flow {
	uint32_t unpack; /* > 0: the fallback is a tuple of that many None */
	int32_t resume;  /* instruction to continue at */
	int32_t base;    /* stack depth the handler pops to */
	bool push;       /* push the fallback before resuming */
	enum guard_placement place;
	char consumer[64];
	enum guard_consumer kind;
};

/* The consumer instruction in, as text for people and as a token
 * (guard_consumer__of_text() maps each text back to the same token). */
static void set_consumer(struct flow *f, const struct gctx *g, const struct rewrite_instr *in)
{
	char *buf = f->consumer;
	size_t len = sizeof(f->consumer);
	switch (in->opcode) {
	case STORE_FAST:
	case STORE_NAME:
	case STORE_GLOBAL:
	case STORE_DEREF:
		guard__fmt(buf, len, "store %s", gctx__argtext(g, in));
		f->kind = GUARD_CONSUMER_STORE;
		break;
	case STORE_ATTR:
		guard__fmt(buf, len, "store attribute .%s", gctx__argtext(g, in));
		f->kind = GUARD_CONSUMER_STORE_ATTR;
		break;
	case STORE_SUBSCR:
		guard__fmt(buf, len, "store item");
		f->kind = GUARD_CONSUMER_STORE_ITEM;
		break;
	case RETURN_VALUE:
		guard__fmt(buf, len, "return");
		f->kind = GUARD_CONSUMER_RETURN;
		break;
	case YIELD_VALUE:
		guard__fmt(buf, len, "yield");
		f->kind = GUARD_CONSUMER_YIELD;
		break;
	case POP_TOP:
		guard__fmt(buf, len, "expression statement");
		f->kind = GUARD_CONSUMER_DISCARD;
		break;
	case PRECALL:
		guard__fmt(buf, len, "call argument");
		f->kind = GUARD_CONSUMER_CALL_ARG;
		break;
	case BUILD_TUPLE:
	case BUILD_LIST:
	case BUILD_SET:
	case BUILD_MAP:
	case BUILD_CONST_KEY_MAP:
		guard__fmt(buf, len, "%s", rewrite_opcode__name(in->opcode));
		f->kind = GUARD_CONSUMER_BUILD;
		break;
	case COMPARE_OP:
		guard__fmt(buf, len, "%s", rewrite_opcode__name(in->opcode));
		f->kind = GUARD_CONSUMER_COMPARE;
		break;
	case IS_OP:
		guard__fmt(buf, len, "%s", rewrite_opcode__name(in->opcode));
		f->kind = GUARD_CONSUMER_IDENTITY;
		break;
	default:
		guard__fmt(buf, len, "%s", rewrite_opcode__name(in->opcode));
		f->kind = GUARD_CONSUMER_OPCODE;
	}
}

/* Follow the value produced by instruction `prod` (its outputs start at
 * slot `slot`, `width` items) to where the fallback can go. 0 with *f
 * filled, -1 if the flow is beyond what a guard may assume. */
static int follow(const struct gctx *g, int64_t prod, int slot, int width, enum fbclass fb,
		  bool is_iter, struct flow *f)
{
	int64_t last = prod;  /* last instruction that produced the value */
	int last_slot = slot; /* where the value was right after it (SWAPs move it) */
	bool inplace = false;
	int64_t i = prod + 1;
	for (int steps = 0; steps < 4096; steps++) {
		if (i < 0 || (size_t)i >= g->n)
			return -1;
		const struct rewrite_instr *in = &g->in[i];
		int d = in->depth;
		if (d < 0)
			return -1;
		int op = in->opcode;
		if (op == NOP || op == RESUME || op == EXTENDED_ARG || op == KW_NAMES) {
			i++;
			continue;
		}
		if (op == JUMP_FORWARD) {
			i = in->target;
			continue;
		}
		if (op == JUMP_BACKWARD || op == JUMP_BACKWARD_NO_INTERRUPT)
			return -1;
		if (op == COPY) {
			int src = d - arg_int(in->arg);
			if (src >= slot && src <= slot + width - 1)
				return -1; /* the value is duplicated */
			i++;
			continue;
		}
		if (op == SWAP) {
			int other = d - arg_int(in->arg);
			if (width != 1 && (other >= slot || d - 1 >= slot))
				return -1;
			if (slot == d - 1)
				slot = other;
			else if (slot == other)
				slot = d - 1;
			i++;
			continue;
		}
		/* A logical call: PRECALL consumes the arguments, CALL the
		 * callable pair; when the value is the callable, both act as
		 * one instruction. */
		int pops = guard_op__inputs(op, in->arg);
		int pushes = guard_op__outputs(op, in->arg);
		int64_t end = i;     /* last instruction of this logical op */
		bool called = false; /* the value is the callable */
		if (op == PRECALL && (size_t)i + 1 < g->n && g->in[i + 1].opcode == CALL) {
			called = d - pops > slot; /* the arguments are above the value */
			if (called || is_iter) {
				pops = pops + 2;
				pushes = 1;
				end = i + 1;
			}
		}
		if (d - pops > slot + width - 1) {
			/* Does not reach the value. A branch that leaves the
			 * value on the stack: follow the fall-through path,
			 * the paths join again where the value is used. */
			if (rewrite_opcode__is_terminator(op))
				return -1;
			i = end + 1;
			continue;
		}
		/* It consumes the value, all of it: a value of several items
		 * (a method and its self) is consumed whole by its call. */
		if (d - pops > slot)
			return -1;
		if (op == FOR_ITER && is_iter) {
			/* A loop over the failing iterable: skip the loop. */
			f->resume = in->target;
			f->base = d - 1;
			f->push = false;
			f->place = GUARD_PLACE_SKIP;
			guard__fmt(f->consumer, sizeof(f->consumer), "for loop (skipped)");
			f->kind = GUARD_CONSUMER_FOR_LOOP;
			return 0;
		}
		bool ok = width == 1 && !is_iter && !called && accepts(in, d, slot, fb);
		if (ok && inplace) {
			/* x op= e: skip the whole statement, store included. */
			if (op != STORE_FAST && op != STORE_NAME && op != STORE_GLOBAL &&
			    op != STORE_DEREF && op != STORE_ATTR && op != STORE_SUBSCR)
				return -1;
			f->resume = (int32_t)(end + 1);
			f->base = d - pops;
			f->push = false;
			f->place = GUARD_PLACE_SKIP;
			set_consumer(f, g, in);
			return 0;
		}
		if (ok) {
			f->resume = (int32_t)(last + 1);
			f->push = true;
			f->base = last_slot;
			f->place = last == prod ? GUARD_PLACE_VALUE : GUARD_PLACE_STATEMENT;
			set_consumer(f, g, in);
			return 0;
		}
		if (op == UNPACK_SEQUENCE) {
			/* a, b = <fallback>: every target gets None. The block
			 * pushes a tuple of None and resumes at the unpack. */
			f->resume = (int32_t)i;
			f->base = d - 1;
			f->push = true;
			f->unpack = in->arg;
			f->place = GUARD_PLACE_STATEMENT;
			guard__fmt(f->consumer, sizeof(f->consumer), "unpacking assignment");
			f->kind = GUARD_CONSUMER_UNPACK;
			return 0;
		}
		/* It would fail on the fallback too: the value grows to this
		 * instruction's result. */
		if (op == BINARY_OP && in->arg >= NB_INPLACE_ADD)
			inplace = true;
		if (rewrite_opcode__is_terminator(op) || (in->target >= 0 && op != FOR_ITER))
			return -1;
		slot = d - pops;
		width = pushes;
		is_iter = op == GET_ITER;
		last = end;
		last_slot = slot;
		if (width == 0) {
			/* A store or delete on the fallback: skip it. */
			f->resume = (int32_t)(end + 1);
			f->base = slot;
			f->push = false;
			f->place = GUARD_PLACE_SKIP;
			set_consumer(f, g, in);
			return 0;
		}
		i = end + 1;
	}
	return -1;
}

/* ---------------------------------------------------------------------- */
/* Classification                                                         */

static bool msg_has(const struct guard_crash *c, const char *s)
{
	return c->message && strstr(c->message, s);
}

static bool msg_starts(const struct guard_crash *c, const char *s)
{
	return c->message && strncmp(c->message, s, strlen(s)) == 0;
}

static bool exc_is(const struct guard_crash *c, const char *name)
{
	const char *t = c->exc_type;
	if (strncmp(t, "builtins.", 9) == 0)
		t += 9;
	return strcmp(t, name) == 0;
}

bool guard__is_stdlib_path(const char *f)
{
	if (!f)
		return false;
	if (strncmp(f, "<frozen ", 8) == 0)
		return true;
	const char *p = strstr(f, "/lib/python3.11/");
	if (!p)
		return false;
	return !strstr(p, "/site-packages/") && !strstr(p, "/dist-packages/");
}

static void refuse(struct guard_decision *d, enum guard_refusal r, const char *why)
{
	d->kind = GUARD_NONE;
	d->refusal = r;
	guard__fmt(d->reason, sizeof(d->reason), "%s", why);
}

/* The source of the callable of a logical call: LOAD_GLOBAL/LOAD_NAME of
 * `name`. */
static bool callable_is_builtin(const struct gctx *g, const struct sym *fn, const char *name)
{
	if (fn->src < 0 || strcmp(fn->t, name) != 0)
		return false;
	int op = g->in[fn->src].opcode;
	return op == LOAD_GLOBAL || op == LOAD_NAME;
}

static bool is_subscr_op(int op)
{
	return op == BINARY_SUBSCR || op == STORE_SUBSCR || op == DELETE_SUBSCR;
}

/* Links of a subscript chain through BINARY_SUBSCR idx: the previous link
 * produced idx's container, the next one consumes idx's result as its
 * container. Fills links (in order) and returns their count. */
static size_t subscript_chain(const struct gctx *g, int64_t idx, int32_t *links, size_t max)
{
	int32_t back[GUARD_MAX_COVER];
	size_t nb = 0;
	int64_t cur = idx;
	while (nb < max) {
		struct symstack st;
		operands_of(g, cur, &st);
		int32_t src = st.s[0].src;
		if (src < 0 || g->in[src].opcode != BINARY_SUBSCR)
			break;
		back[nb++] = src;
		cur = src;
	}
	size_t n = 0;
	for (size_t k = nb; k > 0 && n < max; k--)
		links[n++] = back[k - 1];
	links[n++] = (int32_t)idx;
	/* Forward: the result consumed as the container of the next
	 * BINARY_SUBSCR on straight-line code. */
	cur = idx;
	while (n < max) {
		int slot = g->in[cur].depth - 2;
		int64_t j = cur + 1;
		int64_t found = -1;
		for (; (size_t)j < g->n; j++) {
			const struct rewrite_instr *in = &g->in[j];
			if (in->depth < 0 || g->jump_target[j] || in->target >= 0 ||
			    rewrite_opcode__is_terminator(in->opcode))
				break;
			int pops = guard_op__inputs(in->opcode, in->arg);
			if (in->depth - pops <= slot) {
				if (in->opcode == BINARY_SUBSCR && in->depth - 2 == slot)
					found = j;
				break;
			}
		}
		if (found < 0)
			break;
		links[n++] = (int32_t)found;
		cur = found;
	}
	return n;
}

static void fill_fallback(struct guard_decision *d, enum guard_fallback fb)
{
	d->fallback = fb;
	const char *t = "None";
	switch (fb) {
	case GUARD_FB_NOTHING:
		t = "nothing (statement skipped)";
		break;
	case GUARD_FB_NONE:
		t = "None";
		break;
	case GUARD_FB_INT0:
		t = "0";
		break;
	case GUARD_FB_FLOAT0:
		t = "0.0";
		break;
	case GUARD_FB_STR_CONCAT:
		t = "str(a) + str(b)";
		break;
	case GUARD_FB_EMPTY_FILE:
		t = "io.StringIO()";
		break;
	}
	guard__fmt(d->fallback_text, sizeof(d->fallback_text), "%s", t);
}

/* Refusals that do not depend on what the instruction means: the standard
 * library, deliberate raises, custom types, errors from callees. */
static bool refuse_early(const struct gctx *g, const struct guard_crash *crash, int64_t f,
			 struct guard_decision *d)
{
	const struct rewrite_code_info *info = g->info;
	int op = g->in[f].opcode;
	char buf[224];
	/* The standard library is never patched: its errors come from the
	 * caller's data. Then deliberate raises: never structural crashes. */
	bool stdlib = crash->stdlib < 0 ? guard__is_stdlib_path(info->filename) : crash->stdlib > 0;
	if (stdlib) {
		guard__fmt(
			buf, sizeof(buf),
			"raised inside the standard library (%s): the bug is in the caller's data, not here",
			info->filename ? info->filename : "?");
		refuse(d, GUARD_REFUSE_STDLIB, buf);
		return true;
	}
	if (op == RAISE_VARARGS) {
		bool assert_ = false;
		for (int64_t k = f - 1; k >= 0 && k >= f - 8; k--)
			if (g->in[k].opcode == LOAD_ASSERTION_ERROR)
				assert_ = true;
		if (assert_)
			refuse(d, GUARD_REFUSE_ASSERT,
			       "an assert statement failed: a deliberate check, not a structural crash");
		else
			refuse(d, GUARD_REFUSE_RAISE,
			       "raised by an explicit raise statement: the program meant it");
		return true;
	}
	if (op == RERAISE) {
		refuse(d, GUARD_REFUSE_RERAISE,
		       "re-raised by the program's own except/finally/with block: guard the original site");
		return true;
	}
	if (!guard__builtin_exc(crash->exc_type)) {
		guard__fmt(buf, sizeof(buf),
			   "%s is not a builtin exception: custom exceptions carry program meaning",
			   crash->exc_type);
		refuse(d, GUARD_REFUSE_CUSTOM, buf);
		return true;
	}
	if (crash->in_callee) {
		refuse(d, GUARD_REFUSE_CALLEE,
		       "raised by code this instruction called (the traceback goes deeper): guard it where it was raised");
		return true;
	}
	return false;
}

/* What classify() found besides the decision's texts. */
struct kind_info {
	enum fbclass fbc;
	enum guard_fallback fb;
	bool binary;                    /* file_guard: a binary mode */
	int32_t links[GUARD_MAX_COVER]; /* chain_subscript_guard's links */
	size_t nlinks;
};

static void classify_attr(const struct gctx *g, const struct guard_crash *crash, int64_t f,
			  struct guard_decision *d)
{
	const struct rewrite_instr *in = &g->in[f];
	if (!msg_starts(crash, "'NoneType' object has no attribute")) {
		refuse(d, GUARD_REFUSE_UNHANDLED,
		       "the attribute is missing on an object that is not None: a program error, not a structural crash");
		return;
	}
	struct symstack st;
	operands_of(g, f, &st);
	struct sym *owner = &st.s[in->opcode == STORE_ATTR ? 1 : 0];
	char o[100];
	sym_text(owner, PREC_ATOM, o, sizeof(o));
	d->kind = GUARD_NULL;
	guard__fmt(d->subject, sizeof(d->subject), "%s", owner->t);
	guard__fmt(d->target, sizeof(d->target), "%s.%s", o, gctx__argtext(g, in));
}

static void classify_subscript(const struct gctx *g, const struct guard_crash *crash, int64_t f,
			       struct guard_decision *d, struct kind_info *k)
{
	int op = g->in[f].opcode;
	if (exc_is(crash, "TypeError") &&
	    !(msg_has(crash, "not subscriptable") || msg_has(crash, "does not support item"))) {
		refuse(d, GUARD_REFUSE_UNHANDLED,
		       "TypeError at a subscript that is not about None");
		return;
	}
	if (exc_is(crash, "KeyError") && op == STORE_SUBSCR) {
		refuse(d, GUARD_REFUSE_UNHANDLED, "KeyError while storing an item");
		return;
	}
	d->kind = exc_is(crash, "IndexError") ? GUARD_INDEX
		  : exc_is(crash, "KeyError") ? GUARD_KEY
					      : GUARD_SUBSCRIPT;
	struct symstack st;
	operands_of(g, f, &st);
	struct sym *cont = &st.s[op == STORE_SUBSCR ? 1 : 0];
	struct sym *key = &st.s[op == STORE_SUBSCR ? 2 : 1];
	char c[100];
	sym_text(cont, PREC_ATOM, c, sizeof(c));
	guard__fmt(d->subject, sizeof(d->subject), "%s", cont->t);
	guard__fmt(d->target, sizeof(d->target), "%s[%s]", c, key->t);
	if (op != BINARY_SUBSCR)
		return;
	k->nlinks = subscript_chain(g, f, k->links, GUARD_MAX_COVER);
	if (k->nlinks < 2)
		return;
	d->kind = GUARD_CHAIN_SUBSCRIPT;
	operands_of(g, k->links[0], &st);
	guard__fmt(d->subject, sizeof(d->subject), "%s", st.s[0].t);
	operands_of(g, k->links[k->nlinks - 1], &st);
	sym_text(&st.s[0], PREC_ATOM, c, sizeof(c));
	guard__fmt(d->target, sizeof(d->target), "%s[%s]", c, st.s[1].t);
}

static void classify_call(const struct gctx *g, const struct guard_crash *crash, int64_t f,
			  struct guard_decision *d, struct kind_info *k)
{
	struct symstack st;
	call_operands(g, f, &st);
	int n = arg_int(g->in[f].arg);
	const struct sym *fn = st.s[1].mark == SYM_SELF ? &st.s[0] : &st.s[1];
	char fa[100];
	sym_text(fn, PREC_ATOM, fa, sizeof(fa));
	if (exc_is(crash, "TypeError") && msg_starts(crash, "'NoneType' object is not callable")) {
		d->kind = GUARD_CALLABLE;
		guard__fmt(d->subject, sizeof(d->subject), "%s", fn->t);
		guard__fmt(d->target, sizeof(d->target), "%s(…)", fa);
	} else if ((exc_is(crash, "ValueError") || exc_is(crash, "TypeError")) &&
		   (n == 1 || n == 2) &&
		   (callable_is_builtin(g, fn, "int") || callable_is_builtin(g, fn, "float"))) {
		d->kind = GUARD_TYPE_COERCION;
		k->fbc = FB_IS_NUMBER;
		k->fb = strcmp(fn->t, "int") == 0 ? GUARD_FB_INT0 : GUARD_FB_FLOAT0;
		guard__fmt(d->subject, sizeof(d->subject), "%s", st.s[2].t);
		guard__fmt(d->target, sizeof(d->target), "%s(%s%s%s)", fn->t, st.s[2].t,
			   n == 2 ? ", " : "", n == 2 ? st.s[3].t : "");
	} else if (exc_is(crash, "FileNotFoundError") && callable_is_builtin(g, fn, "open") &&
		   n >= 1) {
		d->kind = GUARD_FILE;
		k->fb = GUARD_FB_EMPTY_FILE;
		/* A literal mode with 'b' in it (positional or mode=...):
		 * the helper will hand on io.BytesIO(). */
		for (int a = 3; a < n + 2 && a < st.n; a++) {
			const char *t = st.s[a].t;
			if ((t[0] == '\'' || t[0] == '"') && strchr(t, 'b') && strlen(t) <= 6)
				k->binary = true;
		}
		guard__fmt(d->subject, sizeof(d->subject), "%s", st.s[2].t);
		guard__fmt(d->target, sizeof(d->target), "open(%s%s)", st.s[2].t,
			   n > 1 ? ", …" : "");
	}
}

static void classify_binop(const struct gctx *g, const struct guard_crash *crash, int64_t f,
			   struct guard_decision *d, struct kind_info *k)
{
	struct symstack st;
	operands_of(g, f, &st);
	char l[100], r[100];
	sym_text(&st.s[0], PREC_BIN, l, sizeof(l)); /* left-associative */
	sym_text(&st.s[1], PREC_BIN + 1, r, sizeof(r));
	uint32_t a = g->in[f].arg;
	if (exc_is(crash, "ZeroDivisionError") &&
	    (a == NB_TRUE_DIVIDE || a == NB_FLOOR_DIVIDE || a == NB_REMAINDER ||
	     a == NB_INPLACE_TRUE_DIVIDE || a == NB_INPLACE_FLOOR_DIVIDE ||
	     a == NB_INPLACE_REMAINDER)) {
		d->kind = GUARD_DIVISION;
		k->fbc = FB_IS_NUMBER;
		k->fb = (a == NB_TRUE_DIVIDE || a == NB_INPLACE_TRUE_DIVIDE) ? GUARD_FB_FLOAT0
									     : GUARD_FB_INT0;
		guard__fmt(d->subject, sizeof(d->subject), "%s", st.s[1].t);
		guard__fmt(d->target, sizeof(d->target), "%s %s %s", l, binop_text(a), r);
	} else if (exc_is(crash, "TypeError") && (a == NB_ADD || a == NB_INPLACE_ADD) &&
		   (msg_starts(crash, "can only concatenate str") ||
		    (msg_starts(crash, "unsupported operand type(s) for +") &&
		     msg_has(crash, "'str'")))) {
		d->kind = GUARD_STR_COERCE;
		k->fb = GUARD_FB_STR_CONCAT;
		/* The operand that is not a str: the right one for "can only
		 * concatenate str (not X) to str", else the one before 'str'. */
		bool right = msg_starts(crash, "can only concatenate str") ||
			     !msg_has(crash, "and 'str'");
		guard__fmt(d->subject, sizeof(d->subject), "%s", right ? st.s[1].t : st.s[0].t);
		guard__fmt(d->target, sizeof(d->target), "%s %s %s", l, binop_text(a), r);
	}
}

/* Which guard, with the texts users read. d->kind stays GUARD_NONE (with
 * a refusal) when none applies. */
static void classify(const struct gctx *g, const struct guard_crash *crash, int64_t f,
		     struct guard_decision *d, struct kind_info *k)
{
	int op = g->in[f].opcode;
	k->fbc = FB_IS_NONE;
	k->fb = GUARD_FB_NONE;
	k->binary = false;
	k->nlinks = 0;
	if (exc_is(crash, "AttributeError") &&
	    (op == LOAD_ATTR || op == LOAD_METHOD || op == STORE_ATTR || op == DELETE_ATTR))
		classify_attr(g, crash, f, d);
	else if (is_subscr_op(op) &&
		 (exc_is(crash, "IndexError") || exc_is(crash, "KeyError") ||
		  (exc_is(crash, "TypeError") && msg_starts(crash, "'NoneType' object "))))
		classify_subscript(g, crash, f, d, k);
	else if (op == CALL)
		classify_call(g, crash, f, d, k);
	else if (op == BINARY_OP)
		classify_binop(g, crash, f, d, k);
	if (d->kind == GUARD_NONE && d->refusal == GUARD_OK) {
		char buf[224];
		guard__fmt(buf, sizeof(buf),
			   "%s at %s is not one of the structural crashes suture heals",
			   crash->exc_type, rewrite_opcode__name(op));
		refuse(d, GUARD_REFUSE_UNHANDLED, buf);
	}
}

/* Where the fallback goes (first..f is the failing logical instruction). */
static void plan(const struct gctx *g, int64_t first, int64_t f, const struct kind_info *k,
		 struct guard_decision *d)
{
	int op = g->in[f].opcode;
	const struct guard_kind_info *ki = guard_kind__info(d->kind);
	if (ki && ki->redirect) {
		d->placement = GUARD_PLACE_REDIRECT;
		d->ncover = 0;
		d->resume = (int32_t)(f + 1);
		d->base_depth = g->in[first].depth -
				guard_op__inputs(g->in[first].opcode, g->in[first].arg) -
				(d->kind == GUARD_FILE ? 2 : 0);
		d->push_fallback = true;
		if (d->base_depth < 0) {
			refuse(d, GUARD_REFUSE_PLACEMENT,
			       "the operands are not on the stack where the instruction expects them");
			return;
		}
		guard__fmt(d->consumer, sizeof(d->consumer), "the instruction's own consumer");
		d->consumer_kind = GUARD_CONSUMER_HELPER;
		guard__fmt(d->reason, sizeof(d->reason), "%s: %s calls helper %s", ki->name,
			   d->target,
			   ki->helper_inplace && g->in[f].opcode == BINARY_OP &&
					   g->in[f].arg == NB_INPLACE_ADD
				   ? ki->helper_inplace
				   : ki->helper);
		return;
	}
	int64_t prod = f;
	int slot;
	if (d->kind == GUARD_CHAIN_SUBSCRIPT) {
		d->ncover = k->nlinks;
		for (size_t i = 0; i < k->nlinks; i++)
			d->cover[i] = (struct guard_cover){ k->links[i], k->links[i] };
		prod = k->links[k->nlinks - 1];
		slot = g->in[k->links[0]].depth - 2;
	} else {
		d->ncover = 1;
		d->cover[0] = (struct guard_cover){ (int32_t)first, (int32_t)f };
		slot = g->in[first].depth - guard_op__inputs(g->in[first].opcode, g->in[first].arg);
		if (op == CALL)
			slot = g->in[f].depth - 2; /* below the callable pair */
	}
	int width = op == CALL ? 1 : guard_op__outputs(g->in[prod].opcode, g->in[prod].arg);
	struct flow fl = { 0 };
	if (width == 0) {
		/* A store or delete that failed: skip it. */
		fl.resume = (int32_t)(prod + 1);
		fl.base = slot;
		fl.push = false;
		fl.place = GUARD_PLACE_SKIP;
		guard__fmt(fl.consumer, sizeof(fl.consumer), "none (the %s is skipped)",
			   op == DELETE_SUBSCR || op == DELETE_ATTR ? "delete" : "store");
		fl.kind = GUARD_CONSUMER_SKIPPED;
	} else if (follow(g, prod, slot, width, k->fbc, false, &fl) < 0) {
		refuse(d, GUARD_REFUSE_PLACEMENT,
		       "the failing value flows through control flow a guard cannot follow safely");
		return;
	}
	/* Safety net: the handler may not pop what an enclosing handler
	 * needs, and the depth at the resume point must be what the block
	 * leaves there. */
	const struct rewrite_exc *enc = rewrite_code__exc_at(g->code, g->in[first].offset);
	int want = fl.base + (fl.push ? 1 : 0);
	if (fl.base < 0 || (enc && (int)enc->depth > fl.base) || fl.resume < 0 ||
	    (size_t)fl.resume >= g->n || g->in[fl.resume].depth != want) {
		refuse(d, GUARD_REFUSE_PLACEMENT,
		       "no resume point with a consistent stack after the failing statement");
		return;
	}
	d->resume = fl.resume;
	d->base_depth = fl.base;
	d->push_fallback = fl.push;
	d->unpack = fl.unpack;
	d->placement = fl.place;
	guard__fmt(d->consumer, sizeof(d->consumer), "%s", fl.consumer);
	d->consumer_kind = fl.kind;
	if (!fl.push)
		fill_fallback(d, GUARD_FB_NOTHING);
	if (fl.unpack)
		guard__fmt(d->fallback_text, sizeof(d->fallback_text),
			   "None for each of %u targets", fl.unpack);
	guard__fmt(d->reason, sizeof(d->reason), "%s: %s yields %s (%s, %s)",
		   guard_kind__name(d->kind), d->target, d->fallback_text,
		   guard_placement__name(d->placement), d->consumer);
}

int guard__analyse(const struct rewrite_code_info *info, const struct guard_crash *crash,
		   struct guard_decision *d, struct rewrite_diag *diag)
{
	memset(d, 0, sizeof(*d));
	d->anchor = -1;
	d->resume = -1;
	if (!crash || !crash->exc_type) {
		if (diag)
			guard__fmt(diag->msg, sizeof(diag->msg), "guard: no exception type given");
		return -EINVAL;
	}
	struct gctx g;
	int err = gctx__open(&g, info, diag);
	if (err < 0)
		return err;
	int64_t f = gctx__at(&g, crash->unit);
	if (f < 0) {
		if (diag) {
			diag->err = -EINVAL;
			diag->where = crash->unit;
			guard__fmt(diag->msg, sizeof(diag->msg),
				   "guard: code '%s': unit %u is outside the code",
				   info->qualname ? info->qualname : "?", crash->unit);
		}
		gctx__close(&g);
		return -EINVAL;
	}
	guard__fmt(d->exc_type, sizeof(d->exc_type), "%s", crash->exc_type);
	/* A specialized PRECALL performs the call itself: the logical
	 * instruction is the PRECALL+CALL pair, named by its CALL. */
	int64_t first = f;
	if (g.in[f].opcode == PRECALL && (size_t)f + 1 < g.n && g.in[f + 1].opcode == CALL)
		f++;
	else if (g.in[f].opcode == CALL && f > 0 && g.in[f - 1].opcode == PRECALL)
		first = f - 1;
	d->anchor = (int32_t)first;
	d->anchor_unit = g.in[first].offset;
	struct guard_fingerprint fp;
	if (guard_fingerprint__compute(info, crash->unit, crash->exc_type, &fp, NULL) == 0)
		d->fingerprint = fp.hash;
	if (!refuse_early(&g, crash, f, d)) {
		struct kind_info k;
		classify(&g, crash, f, d, &k);
		if (d->kind != GUARD_NONE) {
			fill_fallback(d, k.fb);
			if (k.binary)
				guard__fmt(d->fallback_text, sizeof(d->fallback_text),
					   "io.BytesIO()");
			plan(&g, first, f, &k, d);
		}
	}
	gctx__close(&g);
	return 0;
}
