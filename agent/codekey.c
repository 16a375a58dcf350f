/* agent: a code object's key, for the boot image (docs/formats/boot-image.md).
 *
 * suture-run derives a stored patch from the live original (heal/load.c)
 * and keeps what it sent, the PATCH, in a boot image. A later run's boot
 * hook installs that PATCH itself, with no round trip, when the code object
 * about to be patched is the one the PATCH was derived from. "The one" is
 * decided here, in the target, on the objects themselves: the key is a
 * 64-bit FNV-1a over everything a PATCH is relative to or a derivation
 * reads (the deoptimized bytes, the exception and location tables, names,
 * constants, counts and flags, file, name, qualified name, first line).
 * Two code objects with one key give the same result to the same PATCH
 * (constants and names are appended to the original's, every other field
 * is the original's) and the same guard to the same stored decision.
 *
 * Only the agent computes keys, in the run that installs the PATCH the
 * normal way (PATCH_RESULT carries it) and in the run that uses the image:
 * one implementation, on one kind of object. A constant of a type whose
 * value cannot be hashed here (anything but None, Ellipsis, bool, int,
 * float, complex, str, bytes, tuple, frozenset and code) gives no key (0):
 * such a function is always loaded the normal way.
 *
 * A frozenset's order of iteration follows its elements' hashes, which
 * change from run to run for strings (PYTHONHASHSEED): its elements are
 * combined in an order-free way (the sum of their own keys).
 */
#include "agent/agent-py.h"
#include "wire/image.h"

#include <stdint.h>
#include <string.h>

#define KEY_MAX_DEPTH 32

/* FNV-1a 64, the image's own (wire/image.c, compiled into the agent). */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	return wire_image__fnv(h, p, n);
}

static uint64_t fnv_u64(uint64_t h, uint64_t v)
{
	return fnv(h, &v, sizeof v);
}

/* A length, then the bytes: no two sequences of fields hash alike. */
static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n)
{
	return fnv(fnv_u64(h, n), p, n);
}

static int key_of(PyObject *o, uint64_t *h, int depth);

static int str_key(PyObject *s, uint64_t *h)
{
	Py_ssize_t n;
	const char *u = PyUnicode_AsUTF8AndSize(s, &n);
	if (!u) {
		PyErr_Clear(); /* a lone surrogate: no key */
		return -1;
	}
	*h = fnv_bytes(*h, u, (size_t)n);
	return 0;
}

static int tuple_key(PyObject *t, uint64_t *h, int depth)
{
	Py_ssize_t n = PyTuple_GET_SIZE(t);
	*h = fnv_u64(*h, (uint64_t)n);
	for (Py_ssize_t i = 0; i < n; i++)
		if (key_of(PyTuple_GET_ITEM(t, i), h, depth + 1))
			return -1;
	return 0;
}

static int names_key(PyObject *t, uint64_t *h)
{
	if (!PyTuple_CheckExact(t))
		return -1;
	Py_ssize_t n = PyTuple_GET_SIZE(t);
	*h = fnv_u64(*h, (uint64_t)n);
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *s = PyTuple_GET_ITEM(t, i);
		if (!PyUnicode_CheckExact(s) || str_key(s, h))
			return -1;
	}
	return 0;
}

static int code_key(PyCodeObject *co, uint64_t *h, int depth)
{
	PyObject *bytes = PyCode_GetCode(co); /* deoptimized, as on disk */
	if (!bytes) {
		PyErr_Clear();
		return -1;
	}
	*h = fnv_bytes(*h, PyBytes_AS_STRING(bytes), (size_t)PyBytes_GET_SIZE(bytes));
	Py_DECREF(bytes);
	const int32_t counts[] = { co->co_argcount,   co->co_posonlyargcount, co->co_kwonlyargcount,
				   co->co_flags,      co->co_stacksize,       co->co_firstlineno,
				   co->co_nlocalsplus };
	*h = fnv(*h, counts, sizeof counts);
	PyObject *tables[] = { co->co_exceptiontable, co->co_linetable, co->co_localspluskinds };
	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
		if (!PyBytes_CheckExact(tables[i]))
			return -1;
		*h = fnv_bytes(*h, PyBytes_AS_STRING(tables[i]),
			       (size_t)PyBytes_GET_SIZE(tables[i]));
	}
	if (names_key(co->co_names, h) || names_key(co->co_localsplusnames, h))
		return -1;
	PyObject *strs[] = { co->co_filename, co->co_name, co->co_qualname };
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
		if (!PyUnicode_CheckExact(strs[i]) || str_key(strs[i], h))
			return -1;
	if (!PyTuple_CheckExact(co->co_consts))
		return -1;
	return tuple_key(co->co_consts, h, depth);
}

/* One constant: a tag (its exact type), then its value. */
static int key_of(PyObject *o, uint64_t *h, int depth)
{
	if (depth > KEY_MAX_DEPTH)
		return -1;
	if (o == Py_None || o == Py_Ellipsis || o == Py_True || o == Py_False) {
		char tag = o == Py_None ? 'N' : o == Py_Ellipsis ? '.' : o == Py_True ? 'T' : 'F';
		*h = fnv(*h, &tag, 1);
		return 0;
	}
	if (PyLong_CheckExact(o)) {
		int overflow = 0;
		long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
		if (v == -1 && PyErr_Occurred()) {
			PyErr_Clear();
			return -1;
		}
		if (!overflow) {
			*h = fnv_u64(fnv(*h, "i", 1), (uint64_t)v);
			return 0;
		}
		PyObject *r = PyObject_Repr(o); /* a big one: its digits */
		if (!r) {
			PyErr_Clear();
			return -1;
		}
		*h = fnv(*h, "I", 1);
		int rc = str_key(r, h);
		Py_DECREF(r);
		return rc;
	}
	if (PyFloat_CheckExact(o)) {
		double d = PyFloat_AS_DOUBLE(o); /* its bits: -0.0 is not 0.0 */
		*h = fnv(fnv(*h, "f", 1), &d, sizeof d);
		return 0;
	}
	if (PyComplex_CheckExact(o)) {
		Py_complex c = ((PyComplexObject *)o)->cval;
		*h = fnv(fnv(fnv(*h, "j", 1), &c.real, sizeof c.real), &c.imag, sizeof c.imag);
		return 0;
	}
	if (PyUnicode_CheckExact(o)) {
		*h = fnv(*h, "s", 1);
		return str_key(o, h);
	}
	if (PyBytes_CheckExact(o)) {
		*h = fnv_bytes(fnv(*h, "b", 1), PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o));
		return 0;
	}
	if (PyTuple_CheckExact(o)) {
		*h = fnv(*h, "t", 1);
		return tuple_key(o, h, depth);
	}
	if (PyFrozenSet_CheckExact(o)) {
		uint64_t sum = 0;
		Py_ssize_t pos = 0;
		Py_hash_t hash;
		PyObject *k;
		while (_PySet_NextEntry(o, &pos, &k, &hash)) {
			uint64_t e = WIRE_IMAGE_FNV_SEED;
			if (key_of(k, &e, depth + 1))
				return -1;
			sum += e;
		}
		*h = fnv_u64(fnv_u64(fnv(*h, "z", 1), (uint64_t)PySet_GET_SIZE(o)), sum);
		return 0;
	}
	if (PyCode_Check(o)) {
		*h = fnv(*h, "c", 1);
		return code_key((PyCodeObject *)o, h, depth + 1);
	}
	return -1;
}

uint64_t agent_codekey(PyCodeObject *co)
{
	uint64_t h = WIRE_IMAGE_FNV_SEED;
	if (code_key(co, &h, 0))
		return 0;
	return h ? h : 1; /* 0 says "no key" */
}
