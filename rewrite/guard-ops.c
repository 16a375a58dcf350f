/* rewrite/guard-ops.c: per-opcode stack inputs, the decoded-original
 * context and small utilities shared by the guard files. */
#include "rewrite/guard-priv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <opcode.h> /* CPython 3.11's opcode numbers (installed headers) */

void guard__fmt(char *buf, size_t len, const char *fmt, ...)
{
	if (!len)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		buf[0] = '\0';
		return;
	}
	if ((size_t)n < len)
		return;
	/* Truncated: never end inside a UTF-8 sequence (texts go to JSON
	 * and to users). */
	size_t end = len - 1, i = end;
	while (i > 0 && ((unsigned char)buf[i - 1] & 0xC0) == 0x80)
		i--;
	if (i > 0 && ((unsigned char)buf[i - 1] & 0x80)) {
		unsigned char lead = (unsigned char)buf[i - 1];
		size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
		if (end - (i - 1) < need)
			buf[i - 1] = '\0';
	}
}

uint64_t guard__fnv1a(uint64_t h, const void *p, size_t len)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Items an instruction reads off the stack, in compile.c's static model
 * (ceval.c 3.11 opcode bodies; PRECALL's arguments count as consumed by
 * PRECALL, as stack_effect() says). Instructions that only peek (COPY,
 * SWAP, LIST_APPEND's list ...) count what they reach, so the outputs
 * formula below still gives what they leave. */
/* An argument past any real stack depth (a code object's co_stacksize is
 * far below it) is clamped, so counts derived from it (2 * arg + 2) stay
 * positive ints: analysed code may be hostile bytes (fuzz_rewrite_guard). */
#define GUARD_ARG_MAX (1u << 20)

int guard_op__inputs(int op, uint32_t arg)
{
	if (arg > GUARD_ARG_MAX)
		arg = GUARD_ARG_MAX;
	switch (op) {
	/* clang-format off */
	case POP_TOP: case PUSH_EXC_INFO: case POP_EXCEPT:
	case UNARY_POSITIVE: case UNARY_NEGATIVE: case UNARY_NOT: case UNARY_INVERT:
	case GET_ITER: case GET_YIELD_FROM_ITER: case GET_AWAITABLE: case GET_AITER:
	case GET_ANEXT: case GET_LEN: case MATCH_MAPPING: case MATCH_SEQUENCE:
	case STORE_FAST: case STORE_NAME: case STORE_GLOBAL: case STORE_DEREF:
	case DELETE_ATTR: case LOAD_ATTR: case LOAD_METHOD:
	case IMPORT_FROM: case IMPORT_STAR: case RETURN_VALUE: case YIELD_VALUE:
	case ASYNC_GEN_WRAP: case BEFORE_WITH: case BEFORE_ASYNC_WITH:
	case LIST_TO_TUPLE: case UNPACK_SEQUENCE: case UNPACK_EX: case PRINT_EXPR:
	case FOR_ITER: case POP_JUMP_FORWARD_IF_FALSE: case POP_JUMP_FORWARD_IF_TRUE:
	case POP_JUMP_BACKWARD_IF_FALSE: case POP_JUMP_BACKWARD_IF_TRUE:
	case POP_JUMP_FORWARD_IF_NONE: case POP_JUMP_FORWARD_IF_NOT_NONE:
	case POP_JUMP_BACKWARD_IF_NONE: case POP_JUMP_BACKWARD_IF_NOT_NONE:
	case JUMP_IF_TRUE_OR_POP: case JUMP_IF_FALSE_OR_POP:
	case LIST_APPEND: case SET_ADD: case LIST_EXTEND: case SET_UPDATE:
	case DICT_UPDATE: case DICT_MERGE: case RERAISE:
		return 1;
	case BINARY_OP: case BINARY_SUBSCR: case DELETE_SUBSCR: case COMPARE_OP:
	case IS_OP: case CONTAINS_OP: case STORE_ATTR: case IMPORT_NAME: case SEND:
	case CHECK_EXC_MATCH: case CHECK_EG_MATCH: case PREP_RERAISE_STAR:
	case MATCH_KEYS: case MAP_ADD: case END_ASYNC_FOR:
		return 2;
	case STORE_SUBSCR: case MATCH_CLASS:
		return 3;
	case WITH_EXCEPT_START:
		return 4;
	case RAISE_VARARGS: case BUILD_TUPLE: case BUILD_LIST: case BUILD_SET:
	case BUILD_STRING: case BUILD_SLICE: case PRECALL: case COPY: case SWAP:
		return (int)arg;
	/* clang-format on */
	case BUILD_MAP:
		return 2 * (int)arg;
	case BUILD_CONST_KEY_MAP:
		return (int)arg + 1;
	case FORMAT_VALUE:
		return (arg & 0x04) ? 2 : 1;
	case CALL:
		return 2;
	case CALL_FUNCTION_EX:
		return 3 + (int)(arg & 1);
	case MAKE_FUNCTION:
		return 1 + !!(arg & 1) + !!(arg & 2) + !!(arg & 4) + !!(arg & 8);
	default:
		return 0;
	}
}

int guard_op__outputs(int op, uint32_t arg)
{
	int eff = 0;
	if (arg > GUARD_ARG_MAX)
		arg = GUARD_ARG_MAX;
	if (rewrite_opcode__stack_effect(op, arg, 0, &eff) < 0)
		return 0;
	int n = guard_op__inputs(op, arg) + eff;
	return n < 0 ? 0 : n;
}

int gctx__open(struct gctx *g, const struct rewrite_code_info *info, struct rewrite_diag *diag)
{
	memset(g, 0, sizeof(*g));
	g->info = info;
	int err = rewrite_code__decode(info, &g->code, diag);
	if (err < 0)
		return err;
	err = rewrite_code__analyse(g->code, &g->max_depth, diag);
	if (err < 0)
		goto fail;
	g->in = rewrite_code__instrs(g->code);
	g->n = rewrite_code__ninstrs(g->code);
	g->jump_target = calloc(g->n ? g->n : 1, 1);
	if (!g->jump_target) {
		err = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < g->n; i++)
		if (g->in[i].target >= 0 && (size_t)g->in[i].target < g->n)
			g->jump_target[g->in[i].target] = 1;
	const struct rewrite_exc *e = rewrite_code__excs(g->code);
	for (size_t i = 0; i < rewrite_code__nexc(g->code); i++) {
		int64_t t = rewrite_code__instr_at(g->code, e[i].target);
		if (t >= 0)
			g->jump_target[t] = 1;
	}
	return 0;
fail:
	rewrite_code__free(g->code);
	g->code = NULL;
	return err;
}

void gctx__close(struct gctx *g)
{
	rewrite_code__free(g->code);
	free(g->jump_target);
	memset(g, 0, sizeof(*g));
}

int64_t gctx__at(const struct gctx *g, uint32_t unit)
{
	return rewrite_code__instr_at(g->code, unit);
}

const char *gctx__argtext(const struct gctx *g, const struct rewrite_instr *ins)
{
	const struct rewrite_code_info *info = g->info;
	const char *s = NULL;
	uint32_t a = ins->arg;
	switch (rewrite_opcode__argkind(ins->opcode)) {
	case REWRITE_ARG_NAME:
		if (ins->opcode == LOAD_GLOBAL)
			a >>= 1;
		if (info->names && a < info->nnames)
			s = info->names[a];
		break;
	case REWRITE_ARG_LOCAL:
	case REWRITE_ARG_FREE:
		if (info->localsplusnames && a < (uint32_t)info->nlocalsplus)
			s = info->localsplusnames[a];
		break;
	case REWRITE_ARG_CONST:
		if (info->consts && a < info->nconsts)
			s = info->consts[a].repr;
		break;
	default:
		break;
	}
	return s ? s : "?";
}

static const char *const builtin_excs[] = {
	"BaseException",
	"BaseExceptionGroup",
	"Exception",
	"ExceptionGroup",
	"GeneratorExit",
	"KeyboardInterrupt",
	"SystemExit",
	"ArithmeticError",
	"AssertionError",
	"AttributeError",
	"BufferError",
	"EOFError",
	"ImportError",
	"LookupError",
	"MemoryError",
	"NameError",
	"OSError",
	"ReferenceError",
	"RuntimeError",
	"StopAsyncIteration",
	"StopIteration",
	"SyntaxError",
	"SystemError",
	"TypeError",
	"ValueError",
	"FloatingPointError",
	"OverflowError",
	"ZeroDivisionError",
	"ModuleNotFoundError",
	"IndexError",
	"KeyError",
	"UnboundLocalError",
	"BlockingIOError",
	"ChildProcessError",
	"ConnectionError",
	"BrokenPipeError",
	"ConnectionAbortedError",
	"ConnectionRefusedError",
	"ConnectionResetError",
	"FileExistsError",
	"FileNotFoundError",
	"InterruptedError",
	"IsADirectoryError",
	"NotADirectoryError",
	"PermissionError",
	"ProcessLookupError",
	"TimeoutError",
	"NotImplementedError",
	"RecursionError",
	"IndentationError",
	"TabError",
	"UnicodeError",
	"UnicodeDecodeError",
	"UnicodeEncodeError",
	"UnicodeTranslateError",
	"EnvironmentError",
	"IOError",
};

bool guard__builtin_exc(const char *name)
{
	if (!name)
		return false;
	if (strncmp(name, "builtins.", 9) == 0)
		name += 9;
	for (size_t i = 0; i < sizeof(builtin_excs) / sizeof(builtin_excs[0]); i++)
		if (strcmp(name, builtin_excs[i]) == 0)
			return true;
	return false;
}

const char *guard_refusal__name(enum guard_refusal r)
{
	switch (r) {
	case GUARD_OK:
		return "ok";
	case GUARD_REFUSE_RAISE:
		return "explicit-raise";
	case GUARD_REFUSE_ASSERT:
		return "assert";
	case GUARD_REFUSE_RERAISE:
		return "reraise";
	case GUARD_REFUSE_CUSTOM:
		return "custom-exception";
	case GUARD_REFUSE_STDLIB:
		return "stdlib";
	case GUARD_REFUSE_CALLEE:
		return "raised-in-callee";
	case GUARD_REFUSE_UNHANDLED:
		return "not-structural";
	case GUARD_REFUSE_PLACEMENT:
		return "no-safe-placement";
	}
	return "?";
}

const char *guard_const_kind__name(enum guard_const_kind k)
{
	switch (k) {
	case GUARD_CONST_NONE:
		return "none";
	case GUARD_CONST_INT:
		return "int";
	case GUARD_CONST_FLOAT:
		return "float";
	case GUARD_CONST_EXC_TYPE:
		return "exc_type";
	case GUARD_CONST_EXC_TUPLE:
		return "exc_tuple";
	case GUARD_CONST_HELPER:
		return "helper";
	case GUARD_CONST_PROBE_EXC:
		return "probe_exc";
	case GUARD_CONST_NONE_TUPLE:
		return "none_tuple";
	}
	return "?";
}
