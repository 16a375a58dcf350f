/* probe/: the language of live probes (suture-attach --log/--snapshot,
 * docs/design.md §12): the format string 'TEXT {expr} ...' and the
 * expressions inside it and after --if.
 *
 * Parsed twice: by the debugger, which refuses a bad expression or a call
 * before it touches the target, and by the agent, which evaluates the
 * nodes in the target without running any program code (agent/probe.c).
 * Both use this file: pure C, no allocation, no I/O, no Python; a parse
 * writes into the caller's fixed-size structs and fails on anything that
 * does not fit. Nodes refer to the source text by offset, so the text must
 * outlive them. Fuzzed by tests/fuzz/fuzz_probe_expr.c and
 * fuzz_probe_format.c.
 *
 * Expressions: names; attributes (a.b); subscripts (a[k]); int, float and
 * string constants, None, True, False; unary - + not; * / // %; + -;
 * comparisons (== != < <= > >= is, is not, in, not in; one per
 * comparison, no chains); and, or; parentheses. Never a call: a '(' after
 * a value is refused (-EPERM), as are lambda, comprehensions and every
 * other construct (-EINVAL).
 *
 * Errors: 0, -EINVAL a syntax error, -EPERM a call, -E2BIG more than the
 * limits below. err->msg is a one-line reason, err->at the byte offset.
 */
#ifndef SUTURE_PROBE_H
#define SUTURE_PROBE_H

#include <stddef.h>
#include <stdint.h>

#define PROBE_TEXT_MAX 1024     /* bytes of a format string or a condition */
#define PROBE_EXPR_MAX_NODES 48 /* nodes of one expression */
#define PROBE_EXPR_MAX_DEPTH 24 /* nesting of one expression */
#define PROBE_FMT_MAX_EXPRS 8   /* {expr} fields of one format string */
#define PROBE_FMT_MAX_PARTS (2 * PROBE_FMT_MAX_EXPRS + 8)
#define PROBE_NAME_MAX 128 /* bytes of one identifier */

enum probe_node_kind {
	PROBE_N_NAME = 1, /* off/len: the identifier */
	PROBE_N_ATTR,     /* a.name: a = object, off/len: the attribute name */
	PROBE_N_SUBSCR,   /* a[b] */
	PROBE_N_INT,      /* i */
	PROBE_N_FLOAT,    /* f */
	PROBE_N_STR,      /* off/len: the literal's body, escapes still in */
	PROBE_N_NONE,
	PROBE_N_TRUE,
	PROBE_N_FALSE,
	PROBE_N_BINOP, /* a op b, op: enum probe_binop */
	PROBE_N_CMP,   /* a op b, op: enum probe_cmpop */
	PROBE_N_AND,   /* a and b */
	PROBE_N_OR,    /* a or b */
	PROBE_N_NOT,   /* not a */
	PROBE_N_NEG,   /* -a */
	PROBE_N_POS,   /* +a */
};

enum probe_binop { PROBE_ADD = 0, PROBE_SUB, PROBE_MUL, PROBE_DIV, PROBE_FLOORDIV, PROBE_MOD };
enum probe_cmpop {
	PROBE_EQ = 0,
	PROBE_NE,
	PROBE_LT,
	PROBE_LE,
	PROBE_GT,
	PROBE_GE,
	PROBE_IS,
	PROBE_IS_NOT,
	PROBE_IN,
	PROBE_NOT_IN,
};

struct probe_node {
	uint8_t kind; /* enum probe_node_kind */
	uint8_t op;   /* BINOP, CMP */
	int16_t a, b; /* children (node indices), -1 if none */
	uint32_t off, len;
	int64_t i;
	double f;
};

struct probe_expr {
	uint32_t off, len; /* the expression's text in the source */
	uint16_t n;
	int16_t root;
	struct probe_node nodes[PROBE_EXPR_MAX_NODES];
};

struct probe_err {
	uint32_t at;
	char msg[160];
};

/* Parse src[off, off + len) as one expression (surrounding blanks
 * allowed). */
int probe_expr__parse(const char *src, size_t off, size_t len, struct probe_expr *e,
		      struct probe_err *err);

/* A format string: literal parts and {expr} fields; "{{" and "}}" are a
 * literal brace. A field ends at the first '}' outside a string literal
 * and outside brackets. */
struct probe_part {
	uint32_t off, len; /* literal: the text to copy; field: the expression's text */
	int16_t expr;      /* -1 literal, else index into exprs */
};

struct probe_format {
	uint16_t nparts, nexprs;
	struct probe_part parts[PROBE_FMT_MAX_PARTS];
	struct probe_expr exprs[PROBE_FMT_MAX_EXPRS];
};

int probe_format__parse(const char *src, size_t len, struct probe_format *f, struct probe_err *err);

/* The value of a string literal's body (node off/len): escapes \\ \' \"
 * \n \t \r \0 undone. The length written (out is not NUL-terminated), or
 * -EINVAL for another escape, -E2BIG when out is too small. */
int probe_str__unescape(const char *src, size_t len, char *out, size_t cap);

/* "+", "==", "is not" ... for messages. */
const char *probe_binop__name(int op);
const char *probe_cmpop__name(int op);

#endif
