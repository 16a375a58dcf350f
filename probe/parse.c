/* probe/parse.c: the probe expression and format-string parsers
 * (probe/probe.h). Recursive descent over the caller's bytes with one
 * token of look-ahead; nodes go into the caller's fixed array; depth and
 * node count are bounded so hostile input can neither allocate nor
 * exhaust the C stack. Precedence follows Python's grammar for the subset
 * it accepts (or < and < not < comparison < + - < * / // % < unary <
 * postfix). Compiled into the debugger (libsuture_probe.a) and the agent
 * (agent/module.mk, AGENT_EXTRA_SRC). */
#include "probe/probe.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tok {
	T_END = 0,
	T_NAME,
	T_INT,
	T_FLOAT,
	T_STR,
	T_OP, /* an operator or punctuation: text in (off, len) */
	T_BAD,
};

struct lexer {
	const char *s;
	size_t pos, end;
	/* the current token */
	enum tok t;
	size_t toff, tlen;
	int64_t i;
	double f;
	size_t soff, slen; /* T_STR: the body */
};

struct parser {
	struct lexer lx;
	struct probe_expr *e;
	struct probe_err *err;
	int depth;
	int rc;
};

static int fail(struct parser *p, int rc, size_t at, const char *fmt, ...)
{
	if (p->rc)
		return p->rc;
	p->rc = rc;
	if (p->err) {
		va_list ap;
		va_start(ap, fmt);
		p->err->at = (uint32_t)at;
		vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static bool is_ident0(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool tok_is(const struct lexer *lx, const char *text)
{
	size_t n = strlen(text);
	return (lx->t == T_OP || lx->t == T_NAME) && lx->tlen == n &&
	       memcmp(lx->s + lx->toff, text, n) == 0;
}

/* A number: digits with optional '_' separators, a fraction, an exponent. */
static void lex_number(struct lexer *lx)
{
	char buf[64];
	size_t n = 0, q = lx->pos;
	bool flt = false;
	while (q < lx->end && (is_digit(lx->s[q]) || lx->s[q] == '_' || lx->s[q] == '.' ||
			       lx->s[q] == 'e' || lx->s[q] == 'E' ||
			       ((lx->s[q] == '+' || lx->s[q] == '-') && q > lx->pos &&
				(lx->s[q - 1] == 'e' || lx->s[q - 1] == 'E')))) {
		if (lx->s[q] == '.' || lx->s[q] == 'e' || lx->s[q] == 'E')
			flt = true;
		if (lx->s[q] != '_') {
			if (n + 1 >= sizeof buf) {
				lx->t = T_BAD;
				return;
			}
			buf[n++] = lx->s[q];
		}
		q++;
	}
	buf[n] = 0;
	lx->toff = lx->pos;
	lx->tlen = q - lx->pos;
	lx->pos = q;
	if (q < lx->end && (is_ident0(lx->s[q]))) {
		lx->t = T_BAD; /* 0x10, 1j, 3abc: not ours */
		return;
	}
	char *endp;
	errno = 0;
	if (flt) {
		lx->f = strtod(buf, &endp);
		lx->t = (*endp || n == 0 || !isfinite(lx->f)) ? T_BAD : T_FLOAT;
	} else {
		long long v = strtoll(buf, &endp, 10);
		lx->i = v;
		lx->t = (*endp || n == 0 || errno || (n > 1 && buf[0] == '0')) ? T_BAD : T_INT;
	}
}

static void lex_string(struct lexer *lx)
{
	char quote = lx->s[lx->pos];
	size_t q = lx->pos + 1;
	while (q < lx->end && lx->s[q] != quote) {
		if (lx->s[q] == '\\') {
			if (q + 1 >= lx->end)
				break;
			q++;
		}
		if (lx->s[q] == '\n')
			break;
		q++;
	}
	lx->toff = lx->pos;
	if (q >= lx->end || lx->s[q] != quote) {
		lx->t = T_BAD;
		lx->tlen = q - lx->pos;
		lx->pos = q;
		return;
	}
	lx->t = T_STR;
	lx->soff = lx->pos + 1;
	lx->slen = q - lx->pos - 1;
	lx->tlen = q + 1 - lx->pos;
	lx->pos = q + 1;
}

static void next(struct lexer *lx)
{
	while (lx->pos < lx->end && (lx->s[lx->pos] == ' ' || lx->s[lx->pos] == '\t'))
		lx->pos++;
	lx->toff = lx->pos;
	lx->tlen = 0;
	if (lx->pos >= lx->end) {
		lx->t = T_END;
		return;
	}
	char c = lx->s[lx->pos];
	if (is_ident0(c)) {
		size_t q = lx->pos;
		while (q < lx->end && (is_ident0(lx->s[q]) || is_digit(lx->s[q])))
			q++;
		lx->t = T_NAME;
		lx->tlen = q - lx->pos;
		lx->pos = q;
		if (q < lx->end && (lx->s[q] == '\'' || lx->s[q] == '"'))
			lx->t = T_BAD; /* b'', f'', r'' prefixes: not ours */
		return;
	}
	if (is_digit(c) || (c == '.' && lx->pos + 1 < lx->end && is_digit(lx->s[lx->pos + 1]))) {
		lex_number(lx);
		return;
	}
	if (c == '\'' || c == '"') {
		lex_string(lx);
		return;
	}
	static const char *const ops[] = { "//", "==", "!=", "<=", ">=", "**", "<", ">", "+",
					   "-",  "*",  "/",  "%",  "(",  ")",  "[", "]", ".",
					   ",",  ":",  "=",  "!",  "{",  "}",  "@", "&", "|",
					   "^",  "~",  ";",  "`",  "$",  "?",  "#", "\\" };
	for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
		size_t n = strlen(ops[k]);
		if (lx->pos + n <= lx->end && memcmp(lx->s + lx->pos, ops[k], n) == 0) {
			lx->t = T_OP;
			lx->tlen = n;
			lx->pos += n;
			return;
		}
	}
	lx->t = T_BAD;
	lx->tlen = 1;
	lx->pos++;
}

static int16_t node(struct parser *p, uint8_t kind, int16_t a, int16_t b)
{
	if (p->rc)
		return -1;
	if (p->e->n >= PROBE_EXPR_MAX_NODES) {
		fail(p, -E2BIG, p->lx.toff, "expression too long (more than %d parts)",
		     PROBE_EXPR_MAX_NODES);
		return -1;
	}
	struct probe_node *nd = &p->e->nodes[p->e->n];
	memset(nd, 0, sizeof *nd);
	nd->kind = kind;
	nd->a = a;
	nd->b = b;
	return (int16_t)p->e->n++;
}

static const char *const keywords[] = {
	"and",    "or",     "not",    "is",       "in",       "lambda", "if",      "else",
	"for",    "await",  "yield",  "import",   "from",     "as",     "del",     "def",
	"class",  "return", "global", "nonlocal", "async",    "with",   "while",   "try",
	"except", "raise",  "pass",   "break",    "continue", "assert", "finally", "elif"
};

static bool is_keyword(const struct lexer *lx)
{
	for (size_t k = 0; k < sizeof keywords / sizeof keywords[0]; k++)
		if (tok_is(lx, keywords[k]))
			return true;
	return false;
}

static int16_t parse_or(struct parser *p);

static int16_t parse_atom(struct parser *p)
{
	struct lexer *lx = &p->lx;
	int16_t n = -1;
	if (p->rc)
		return -1;
	switch (lx->t) {
	case T_NAME:
		if (tok_is(lx, "None") || tok_is(lx, "True") || tok_is(lx, "False")) {
			n = node(p,
				 tok_is(lx, "None")   ? PROBE_N_NONE
				 : tok_is(lx, "True") ? PROBE_N_TRUE
						      : PROBE_N_FALSE,
				 -1, -1);
			next(lx);
			return n;
		}
		if (tok_is(lx, "lambda") || tok_is(lx, "await") || tok_is(lx, "yield")) {
			fail(p, -EPERM, lx->toff,
			     "'%.*s' is not allowed in a probe expression (no program code runs)",
			     (int)lx->tlen, lx->s + lx->toff);
			return -1;
		}
		if (is_keyword(lx)) {
			fail(p, -EINVAL, lx->toff, "unexpected '%.*s'", (int)lx->tlen,
			     lx->s + lx->toff);
			return -1;
		}
		if (lx->tlen > PROBE_NAME_MAX) {
			fail(p, -E2BIG, lx->toff, "name longer than %d bytes", PROBE_NAME_MAX);
			return -1;
		}
		n = node(p, PROBE_N_NAME, -1, -1);
		if (n >= 0) {
			p->e->nodes[n].off = (uint32_t)lx->toff;
			p->e->nodes[n].len = (uint32_t)lx->tlen;
		}
		next(lx);
		return n;
	case T_INT:
		n = node(p, PROBE_N_INT, -1, -1);
		if (n >= 0)
			p->e->nodes[n].i = lx->i;
		next(lx);
		return n;
	case T_FLOAT:
		n = node(p, PROBE_N_FLOAT, -1, -1);
		if (n >= 0)
			p->e->nodes[n].f = lx->f;
		next(lx);
		return n;
	case T_STR: {
		char tmp[PROBE_TEXT_MAX];
		if (probe_str__unescape(lx->s + lx->soff, lx->slen, tmp, sizeof tmp) < 0) {
			fail(p, -EINVAL, lx->toff, "unsupported escape in a string literal");
			return -1;
		}
		n = node(p, PROBE_N_STR, -1, -1);
		if (n >= 0) {
			p->e->nodes[n].off = (uint32_t)lx->soff;
			p->e->nodes[n].len = (uint32_t)lx->slen;
		}
		next(lx);
		return n;
	}
	case T_OP:
		if (tok_is(lx, "(")) {
			size_t at = lx->toff;
			next(lx);
			n = parse_or(p);
			if (p->rc)
				return -1;
			if (tok_is(lx, ","))
				return fail(p, -EINVAL, lx->toff, "tuples are not supported"), -1;
			if (!tok_is(lx, ")"))
				return fail(p, -EINVAL, at, "'(' is not closed"), -1;
			next(lx);
			return n;
		}
		if (tok_is(lx, "[") || tok_is(lx, "{"))
			return fail(p, -EINVAL, lx->toff,
				    "list, dict and set displays are not supported"),
			       -1;
		break;
	case T_END:
		return fail(p, -EINVAL, lx->toff, "expression expected"), -1;
	default:
		break;
	}
	fail(p, -EINVAL, lx->toff, "unexpected '%.*s'", (int)(lx->tlen ? lx->tlen : 1),
	     lx->toff < lx->end ? lx->s + lx->toff : "?");
	return -1;
}

static int16_t parse_postfix(struct parser *p)
{
	struct lexer *lx = &p->lx;
	int16_t n = parse_atom(p);
	while (!p->rc) {
		if (tok_is(lx, ".")) {
			next(lx);
			if (lx->t != T_NAME || is_keyword(lx) || tok_is(lx, "None") ||
			    tok_is(lx, "True") || tok_is(lx, "False"))
				return fail(p, -EINVAL, lx->toff,
					    "attribute name expected after '.'"),
				       -1;
			if (lx->tlen > PROBE_NAME_MAX)
				return fail(p, -E2BIG, lx->toff, "name longer than %d bytes",
					    PROBE_NAME_MAX),
				       -1;
			int16_t a = node(p, PROBE_N_ATTR, n, -1);
			if (a >= 0) {
				p->e->nodes[a].off = (uint32_t)lx->toff;
				p->e->nodes[a].len = (uint32_t)lx->tlen;
			}
			n = a;
			next(lx);
		} else if (tok_is(lx, "[")) {
			size_t at = lx->toff;
			next(lx);
			if (tok_is(lx, ":"))
				return fail(p, -EINVAL, lx->toff, "slices are not supported"), -1;
			int16_t k = parse_or(p);
			if (p->rc)
				return -1;
			if (tok_is(lx, ":") || tok_is(lx, ","))
				return fail(p, -EINVAL, lx->toff,
					    "slices and tuple keys are not supported"),
				       -1;
			if (!tok_is(lx, "]"))
				return fail(p, -EINVAL, at, "'[' is not closed"), -1;
			next(lx);
			n = node(p, PROBE_N_SUBSCR, n, k);
		} else if (tok_is(lx, "(")) {
			return fail(p, -EPERM, lx->toff,
				    "a call: probe expressions never run program code "
				    "(names, attributes, subscripts, constants, operators only)"),
			       -1;
		} else {
			break;
		}
	}
	return p->rc ? -1 : n;
}

static int16_t parse_unary(struct parser *p)
{
	struct lexer *lx = &p->lx;
	if (p->depth++ > PROBE_EXPR_MAX_DEPTH)
		return fail(p, -E2BIG, lx->toff, "expression nested too deeply"), -1;
	int16_t n;
	if (tok_is(lx, "-") || tok_is(lx, "+")) {
		uint8_t kind = tok_is(lx, "-") ? PROBE_N_NEG : PROBE_N_POS;
		next(lx);
		int16_t a = parse_unary(p);
		n = p->rc ? -1 : node(p, kind, a, -1);
	} else if (tok_is(lx, "**")) {
		fail(p, -EINVAL, lx->toff, "'**' is not supported");
		n = -1;
	} else {
		n = parse_postfix(p);
		if (!p->rc && tok_is(lx, "**")) {
			fail(p, -EINVAL, lx->toff, "'**' is not supported");
			n = -1;
		}
	}
	p->depth--;
	return n;
}

static int16_t parse_term(struct parser *p)
{
	struct lexer *lx = &p->lx;
	int16_t n = parse_unary(p);
	while (!p->rc) {
		int op = tok_is(lx, "*")    ? PROBE_MUL
			 : tok_is(lx, "/")  ? PROBE_DIV
			 : tok_is(lx, "//") ? PROBE_FLOORDIV
			 : tok_is(lx, "%")  ? PROBE_MOD
					    : -1;
		if (op < 0)
			break;
		next(lx);
		int16_t b = parse_unary(p);
		n = node(p, PROBE_N_BINOP, n, b);
		if (n >= 0)
			p->e->nodes[n].op = (uint8_t)op;
	}
	return p->rc ? -1 : n;
}

static int16_t parse_arith(struct parser *p)
{
	struct lexer *lx = &p->lx;
	int16_t n = parse_term(p);
	while (!p->rc) {
		int op = tok_is(lx, "+") ? PROBE_ADD : tok_is(lx, "-") ? PROBE_SUB : -1;
		if (op < 0)
			break;
		next(lx);
		int16_t b = parse_term(p);
		n = node(p, PROBE_N_BINOP, n, b);
		if (n >= 0)
			p->e->nodes[n].op = (uint8_t)op;
	}
	return p->rc ? -1 : n;
}

/* The comparison operator at the current token (consumed), or -1. */
static int cmp_op(struct parser *p)
{
	struct lexer *lx = &p->lx;
	static const struct {
		const char *t;
		int op;
	} simple[] = { { "==", PROBE_EQ }, { "!=", PROBE_NE }, { "<=", PROBE_LE },
		       { ">=", PROBE_GE }, { "<", PROBE_LT },  { ">", PROBE_GT } };
	for (size_t k = 0; k < sizeof simple / sizeof simple[0]; k++)
		if (tok_is(lx, simple[k].t)) {
			next(lx);
			return simple[k].op;
		}
	if (tok_is(lx, "in")) {
		next(lx);
		return PROBE_IN;
	}
	if (tok_is(lx, "is")) {
		next(lx);
		if (tok_is(lx, "not")) {
			next(lx);
			return PROBE_IS_NOT;
		}
		return PROBE_IS;
	}
	if (tok_is(lx, "not")) {
		/* "not in" here; a bare "not" cannot follow a value */
		size_t at = lx->toff;
		next(lx);
		if (!tok_is(lx, "in"))
			return fail(p, -EINVAL, at, "'in' expected after 'not'"), -1;
		next(lx);
		return PROBE_NOT_IN;
	}
	return -1;
}

static int16_t parse_cmp(struct parser *p)
{
	int16_t n = parse_arith(p);
	if (p->rc)
		return -1;
	int op = cmp_op(p);
	if (op < 0 || p->rc)
		return p->rc ? -1 : n;
	int16_t b = parse_arith(p);
	if (p->rc)
		return -1;
	size_t at = p->lx.toff;
	if (cmp_op(p) >= 0 || p->rc)
		return fail(p, -EINVAL, at, "chained comparisons are not supported (use 'and')"),
		       -1;
	n = node(p, PROBE_N_CMP, n, b);
	if (n >= 0)
		p->e->nodes[n].op = (uint8_t)op;
	return p->rc ? -1 : n;
}

static int16_t parse_not(struct parser *p)
{
	struct lexer *lx = &p->lx;
	if (tok_is(lx, "not")) {
		if (p->depth++ > PROBE_EXPR_MAX_DEPTH)
			return fail(p, -E2BIG, lx->toff, "expression nested too deeply"), -1;
		next(lx);
		int16_t a = parse_not(p);
		p->depth--;
		return p->rc ? -1 : node(p, PROBE_N_NOT, a, -1);
	}
	return parse_cmp(p);
}

static int16_t parse_and(struct parser *p)
{
	int16_t n = parse_not(p);
	while (!p->rc && tok_is(&p->lx, "and")) {
		next(&p->lx);
		int16_t b = parse_not(p);
		n = node(p, PROBE_N_AND, n, b);
	}
	return p->rc ? -1 : n;
}

static int16_t parse_or(struct parser *p)
{
	struct lexer *lx = &p->lx;
	if (p->depth++ > PROBE_EXPR_MAX_DEPTH)
		return fail(p, -E2BIG, lx->toff, "expression nested too deeply"), -1;
	int16_t n = parse_and(p);
	while (!p->rc && tok_is(lx, "or")) {
		next(lx);
		int16_t b = parse_and(p);
		n = node(p, PROBE_N_OR, n, b);
	}
	if (!p->rc && (tok_is(lx, "if") || tok_is(lx, "for")))
		fail(p, -EINVAL, lx->toff,
		     "conditional expressions and comprehensions are not "
		     "supported");
	p->depth--;
	return p->rc ? -1 : n;
}

int probe_expr__parse(const char *src, size_t off, size_t len, struct probe_expr *e,
		      struct probe_err *err)
{
	struct parser p = { .e = e, .err = err };
	memset(e, 0, offsetof(struct probe_expr, nodes));
	e->root = -1;
	if (err) {
		err->at = (uint32_t)off;
		err->msg[0] = 0;
	}
	if (!src || len > PROBE_TEXT_MAX)
		return fail(&p, -E2BIG, off, "expression longer than %d bytes", PROBE_TEXT_MAX);
	p.lx.s = src;
	p.lx.pos = off;
	p.lx.end = off + len;
	e->off = (uint32_t)off;
	e->len = (uint32_t)len;
	for (size_t k = off; k < off + len; k++)
		if (src[k] == '\n' || src[k] == '\r' || src[k] == 0)
			return fail(&p, -EINVAL, k, "line breaks are not allowed");
	next(&p.lx);
	int16_t root = parse_or(&p);
	if (!p.rc && p.lx.t != T_END) {
		if (tok_is(&p.lx, "="))
			fail(&p, -EPERM, p.lx.toff,
			     "an assignment: probes never change program state");
		else
			fail(&p, -EINVAL, p.lx.toff, "unexpected '%.*s'",
			     (int)(p.lx.tlen ? p.lx.tlen : 1), p.lx.s + p.lx.toff);
	}
	if (p.rc)
		return p.rc;
	e->root = root;
	return 0;
}

/* Where the field starting at src[i] (just after '{') ends: the index of
 * its '}', or -1. Strings are skipped; brackets nest. */
static long field_end(const char *src, size_t i, size_t len)
{
	int nest = 0;
	while (i < len) {
		char c = src[i];
		if (c == '\'' || c == '"') {
			size_t q = i + 1;
			while (q < len && src[q] != c) {
				if (src[q] == '\\')
					q++;
				q++;
			}
			if (q >= len)
				return -1;
			i = q + 1;
			continue;
		}
		if (c == '[' || c == '(')
			nest++;
		else if ((c == ']' || c == ')') && nest > 0)
			nest--;
		else if (c == '}' && nest == 0)
			return (long)i;
		else if (c == '{')
			return -1;
		i++;
	}
	return -1;
}

static int fmt_fail(struct probe_err *err, int rc, size_t at, const char *msg)
{
	if (err) {
		err->at = (uint32_t)at;
		snprintf(err->msg, sizeof err->msg, "%s", msg);
	}
	return rc;
}

static int add_part(struct probe_format *f, size_t off, size_t len, int expr, struct probe_err *err)
{
	if (f->nparts >= PROBE_FMT_MAX_PARTS)
		return fmt_fail(err, -E2BIG, off, "format string has too many parts");
	f->parts[f->nparts++] = (struct probe_part){ .off = (uint32_t)off,
						     .len = (uint32_t)len,
						     .expr = (int16_t)expr };
	return 0;
}

int probe_format__parse(const char *src, size_t len, struct probe_format *f, struct probe_err *err)
{
	f->nparts = f->nexprs = 0;
	if (err) {
		err->at = 0;
		err->msg[0] = 0;
	}
	if (!src || len > PROBE_TEXT_MAX)
		return fmt_fail(err, -E2BIG, 0, "format string too long");
	size_t lit = 0, i = 0;
	int rc;
	while (i < len) {
		char c = src[i];
		if (c == 0 || c == '\n' || c == '\r')
			return fmt_fail(err, -EINVAL, i, "line breaks are not allowed");
		if (c == '}') {
			if (i + 1 < len && src[i + 1] == '}') {
				if ((rc = add_part(f, lit, i + 1 - lit, -1, err)))
					return rc;
				i += 2;
				lit = i;
				continue;
			}
			return fmt_fail(err, -EINVAL, i, "single '}' in the format (write '}}')");
		}
		if (c != '{') {
			i++;
			continue;
		}
		if (i + 1 < len && src[i + 1] == '{') {
			if ((rc = add_part(f, lit, i + 1 - lit, -1, err)))
				return rc;
			i += 2;
			lit = i;
			continue;
		}
		if (i > lit && (rc = add_part(f, lit, i - lit, -1, err)))
			return rc;
		long e = field_end(src, i + 1, len);
		if (e < 0)
			return fmt_fail(err, -EINVAL, i, "'{' without its '}'");
		if (f->nexprs >= PROBE_FMT_MAX_EXPRS)
			return fmt_fail(err, -E2BIG, i, "more than 8 {expr} fields");
		struct probe_expr *x = &f->exprs[f->nexprs];
		rc = probe_expr__parse(src, i + 1, (size_t)e - i - 1, x, err);
		if (rc)
			return rc;
		if ((rc = add_part(f, i + 1, (size_t)e - i - 1, f->nexprs, err)))
			return rc;
		f->nexprs++;
		i = (size_t)e + 1;
		lit = i;
	}
	if (i > lit && (rc = add_part(f, lit, i - lit, -1, err)))
		return rc;
	return 0;
}

int probe_str__unescape(const char *src, size_t len, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		char c = src[i];
		if (c == '\\') {
			if (++i >= len)
				return -EINVAL;
			switch (src[i]) {
			case '\\':
			case '\'':
			case '"':
				c = src[i];
				break;
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'r':
				c = '\r';
				break;
			case '0':
				c = 0;
				break;
			default:
				return -EINVAL;
			}
		}
		if (n >= cap)
			return -E2BIG;
		out[n++] = c;
	}
	return (int)n;
}

const char *probe_binop__name(int op)
{
	static const char *const n[] = { "+", "-", "*", "/", "//", "%" };
	return op >= 0 && op < (int)(sizeof n / sizeof n[0]) ? n[op] : "?";
}

const char *probe_cmpop__name(int op)
{
	static const char *const n[] = { "==", "!=", "<",      "<=", ">",
					 ">=", "is", "is not", "in", "not in" };
	return op >= 0 && op < (int)(sizeof n / sizeof n[0]) ? n[op] : "?";
}
