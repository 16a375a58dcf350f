/* Build-time generator of the opcode table (rewrite/opcodes.h layout).
 *
 * Sources, all from the installed CPython 3.11, nothing typed by hand:
 * - internal/pycore_opcode.h: _PyOpcode_Deopt, _PyOpcode_Caches,
 *   _PyOpcode_RelativeJump (NEED_OPCODE_TABLES gives the definitions);
 * - the embedded interpreter's dis/opcode modules: opcode names (dis's
 *   _all_opname includes the specialized ones), hasconst/hasname/haslocal/
 *   hasfree/hascompare/hasjrel, HAVE_ARGUMENT;
 * - libpython's PyCompile_OpcodeStackEffectWithJump (compile.c's
 *   stack_effect), fitted to one of the models of enum rw_effect_kind and
 *   checked for every arg below 2^17 and sampled up to 2^29. A fit that
 *   fails stops the build: a new model is needed, not a guess.
 * The direction of a jump and the terminators follow dis.py's own rule
 * (a relative jump is backward iff its name contains "JUMP_BACKWARD") and
 * compile.c's stackdepth() (RETURN_VALUE, RAISE_VARARGS, RERAISE and the
 * unconditional jumps end the flow).
 *
 * Usage: gen_opcodes OUT.c
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define Py_BUILD_CORE 1
#define NEED_OPCODE_TABLES 1
#include <internal/pycore_opcode.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rewrite/opcodes.h"
#include "rewrite/rewrite.h"

/* rewrite/ reads code units as two bytes, opcode first (RW_OP/RW_ARG):
 * true for CPython 3.11 on little-endian machines (cpython/code.h). */
_Static_assert(sizeof(_Py_CODEUNIT) == 2, "a code unit is two bytes");
#ifdef WORDS_BIGENDIAN
#error "big-endian CPython stores the oparg first; rewrite/ assumes opcode first"
#endif

static char *names[256];
static int argkind[256];

static void die(const char *what)
{
	fprintf(stderr, "gen_opcodes: %s\n", what);
	if (PyErr_Occurred())
		PyErr_Print();
	exit(1);
}

static PyObject *attr(PyObject *mod, const char *name)
{
	PyObject *o = PyObject_GetAttrString(mod, name);
	if (!o)
		die(name);
	return o;
}

static void mark(PyObject *mod, const char *list, int kind)
{
	PyObject *l = attr(mod, list);
	Py_ssize_t n = PySequence_Size(l);
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *it = PySequence_GetItem(l, i);
		long op = PyLong_AsLong(it);
		Py_DECREF(it);
		if (op < 0 || op > 255)
			die("opcode list out of range");
		argkind[op] = kind;
	}
	Py_DECREF(l);
}

static int effect(int op, long arg, int jump)
{
	return PyCompile_OpcodeStackEffectWithJump(op, (int)arg, jump);
}

static long model(const struct rw_effect *m, long arg)
{
	switch (m->kind) {
	case RW_EFFECT_AFFINE:
		return m->a + (long)m->b * arg;
	case RW_EFFECT_LOW4:
		return m->table[arg & 15];
	case RW_EFFECT_BYTES:
		return m->a + (long)m->b * (arg & 0xff) + (long)m->c * (arg >> 8);
	case RW_EFFECT_SMALL:
		return arg < 16 ? m->table[arg] : m->a + (long)m->b * arg;
	}
	return PY_INVALID_STACK_EFFECT;
}

static int check(const struct rw_effect *m, int op, int jump)
{
	for (long arg = 0; arg < (1L << 17); arg++)
		if (model(m, arg) != effect(op, arg, jump))
			return 0;
	for (int k = 17; k <= 29; k++) {
		long base = 1L << k;
		for (long d = -3; d <= 3; d++)
			if (model(m, base + d) != effect(op, base + d, jump))
				return 0;
	}
	return 1;
}

static int fits8(long v)
{
	return v >= -128 && v <= 127;
}

static void fit(int op, int jump, struct rw_effect *m)
{
	memset(m, 0, sizeof(*m));
	if (effect(op, 0, jump) == PY_INVALID_STACK_EFFECT) {
		for (long arg = 1; arg < 4096; arg++)
			if (effect(op, arg, jump) != PY_INVALID_STACK_EFFECT)
				die("stack effect valid for some args only");
		m->kind = RW_EFFECT_INVALID;
		return;
	}
	long e0 = effect(op, 0, jump), e1 = effect(op, 1, jump);
	m->kind = RW_EFFECT_AFFINE;
	m->a = (int32_t)e0;
	m->b = (int32_t)(e1 - e0);
	if (check(m, op, jump))
		return;
	m->kind = RW_EFFECT_BYTES;
	m->a = (int32_t)e0;
	m->b = (int32_t)(e1 - e0);
	m->c = (int32_t)(effect(op, 256, jump) - e0);
	if (check(m, op, jump))
		return;
	int ok = 1;
	for (int i = 0; i < 16; i++) {
		long v = effect(op, i, jump);
		if (!fits8(v))
			ok = 0;
		m->table[i] = (int8_t)v;
	}
	m->a = m->b = m->c = 0;
	m->kind = RW_EFFECT_LOW4;
	if (ok && check(m, op, jump))
		return;
	long e16 = effect(op, 16, jump), e17 = effect(op, 17, jump);
	m->kind = RW_EFFECT_SMALL;
	m->b = (int32_t)(e17 - e16);
	m->a = (int32_t)(e16 - 16 * (long)m->b);
	if (ok && check(m, op, jump))
		return;
	fprintf(stderr, "gen_opcodes: no model fits the stack effect of %s (jump=%d)\n",
		names[op] ? names[op] : "?", jump);
	exit(1);
}

static int by_name(const char *n)
{
	for (int i = 0; i < 256; i++)
		if (names[i] && strcmp(names[i], n) == 0)
			return i;
	return -1;
}

int main(int argc, char **argv)
{
	if (argc != 2)
		die("usage: gen_opcodes OUT.c");
	Py_InitializeEx(0);
	PyObject *dis = PyImport_ImportModule("dis");
	PyObject *opc = PyImport_ImportModule("opcode");
	if (!dis || !opc)
		die("cannot import dis/opcode");
	PyObject *all = attr(dis, "_all_opname");
	if (PySequence_Size(all) != 256)
		die("dis._all_opname has not 256 entries");
	for (int i = 0; i < 256; i++) {
		PyObject *it = PySequence_GetItem(all, i);
		const char *s = PyUnicode_AsUTF8(it);
		if (!s)
			die("opname not a str");
		if (s[0] != '<')
			names[i] = strdup(s);
		Py_DECREF(it);
	}
	PyObject *ha = attr(opc, "HAVE_ARGUMENT");
	long have_argument = PyLong_AsLong(ha);
	Py_DECREF(ha);
	if (have_argument != HAVE_ARGUMENT)
		die("HAVE_ARGUMENT differs between opcode.py and opcode.h");
	for (int op = 0; op < 256; op++)
		argkind[op] = op >= HAVE_ARGUMENT ? REWRITE_ARG_PLAIN : REWRITE_ARG_NONE;
	mark(opc, "hasconst", REWRITE_ARG_CONST);
	mark(opc, "hasname", REWRITE_ARG_NAME);
	mark(opc, "haslocal", REWRITE_ARG_LOCAL);
	mark(opc, "hasfree", REWRITE_ARG_FREE);
	mark(opc, "hascompare", REWRITE_ARG_COMPARE);
	mark(opc, "hasjrel", REWRITE_ARG_JUMP);

	FILE *out = fopen(argv[1], "w");
	if (!out)
		die("cannot open output");
	fprintf(out, "/* Generated by rewrite/gen/gen_opcodes.c from CPython %s; do not edit. */\n",
		PY_VERSION);
	fprintf(out,
		"#include \"rewrite/opcodes.h\"\n\nconst struct rw_opinfo rw_opinfo[256] = {\n");
	static const char *const terminators[] = {
		"RETURN_VALUE", "RAISE_VARARGS", "RERAISE",
		"JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT",
	};
	for (int op = 0; op < 256; op++) {
		if (!names[op]) {
			if (_PyOpcode_Deopt[op] != 0)
				die("deopt table knows an opcode dis does not name");
			continue;
		}
		int deopt = _PyOpcode_Deopt[op];
		if (deopt == 0 && op != CACHE)
			die("dis names an opcode the deopt table does not know");
		if (!names[deopt])
			die("deopt target without a name");
		int flags = RW_OP_VALID;
		if (deopt == op)
			flags |= RW_OP_CANONICAL;
		if (op >= HAVE_ARGUMENT)
			flags |= RW_OP_HASARG;
		int jrel = (_PyOpcode_RelativeJump[op >> 5] >> (op & 31)) & 1;
		if (deopt == op && jrel != (argkind[op] == REWRITE_ARG_JUMP))
			die("opcode.hasjrel and _PyOpcode_RelativeJump disagree");
		if (jrel) {
			flags |= RW_OP_JUMP;
			if (strstr(names[op], "JUMP_BACKWARD"))
				flags |= RW_OP_BACKWARD;
		}
		for (size_t t = 0; t < sizeof(terminators) / sizeof(*terminators); t++)
			if (strcmp(names[op], terminators[t]) == 0)
				flags |= RW_OP_TERMINATOR;
		int reverse = -1;
		if (jrel) {
			char buf[64];
			const char *f = strstr(names[op], "FORWARD");
			const char *b = strstr(names[op], "BACKWARD");
			if (f || b) {
				const char *at = f ? f : b;
				snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - names[op]),
					 names[op], f ? "BACKWARD" : "FORWARD",
					 at + (f ? strlen("FORWARD") : strlen("BACKWARD")));
				reverse = by_name(buf);
				/* JUMP_BACKWARD_NO_INTERRUPT: forward jumps never check
				 * interrupts, so JUMP_FORWARD is its reverse. */
				if (reverse < 0 && b &&
				    strcmp(names[op], "JUMP_BACKWARD_NO_INTERRUPT") == 0)
					reverse = by_name("JUMP_FORWARD");
			}
		}
		struct rw_effect eff[2];
		for (int j = 0; j < 2; j++) {
			if (deopt == op && op != CACHE)
				fit(op, j, &eff[j]);
			else
				memset(&eff[j], 0, sizeof(eff[j]));
		}
		fprintf(out, "\t[%d] = { \"%s\", %d, %d, %d, %d, %d, {", op, names[op], deopt,
			_PyOpcode_Caches[deopt], flags, deopt == op ? argkind[op] : argkind[deopt],
			reverse);
		for (int j = 0; j < 2; j++) {
			fprintf(out, " { %d, %d, %d, %d, {", eff[j].kind, eff[j].a, eff[j].b,
				eff[j].c);
			for (int i = 0; i < 16; i++)
				fprintf(out, "%s%d", i ? "," : "", eff[j].table[i]);
			fprintf(out, "} },");
		}
		fprintf(out, " } },\n");
	}
	fprintf(out, "};\n\n");
	/* Operator spellings for the disassembler: opcode.cmp_op (COMPARE_OP's
	 * arg) and opcode._nb_ops (BINARY_OP's arg). */
	PyObject *cmp = attr(opc, "cmp_op");
	fprintf(out, "const char *const rw_cmp_op[] = {");
	for (Py_ssize_t i = 0; i < PySequence_Size(cmp); i++) {
		PyObject *it = PySequence_GetItem(cmp, i);
		fprintf(out, " \"%s\",", PyUnicode_AsUTF8(it));
		Py_DECREF(it);
	}
	fprintf(out, " };\nconst unsigned rw_ncmp_op = %zd;\n", PySequence_Size(cmp));
	Py_DECREF(cmp);
	PyObject *nb = attr(opc, "_nb_ops");
	fprintf(out, "const char *const rw_nb_op[] = {");
	for (Py_ssize_t i = 0; i < PySequence_Size(nb); i++) {
		PyObject *it = PySequence_GetItem(nb, i);
		PyObject *sym = PySequence_GetItem(it, 1);
		fprintf(out, " \"%s\",", PyUnicode_AsUTF8(sym));
		Py_DECREF(sym);
		Py_DECREF(it);
	}
	fprintf(out, " };\nconst unsigned rw_nnb_op = %zd;\n", PySequence_Size(nb));
	Py_DECREF(nb);
	if (fclose(out) != 0)
		die("write failed");
	Py_DECREF(all);
	Py_DECREF(dis);
	Py_DECREF(opc);
	if (Py_FinalizeEx() < 0)
		die("finalize failed");
	return 0;
}
