/* inspect/probe/probe.c: compiled with -g against the installed python3.11
 * headers at build time; its DWARF is the last-resort layout table
 * (inspect/tools/gen_probe.c reads it and writes $(BUILD)/gen/). Never
 * linked into suture. Each global below makes one layout appear in DWARF. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <frameobject.h>
#include <structmember.h>
#include <internal/pycore_runtime.h>
#include <internal/pycore_interp.h>
#include <internal/pycore_frame.h>
#include <internal/pycore_dict.h>
#include <internal/pycore_moduleobject.h>

_PyRuntimeState probe_runtime;
PyInterpreterState probe_interp;
PyThreadState probe_tstate;
_PyCFrame probe_cframe;
_PyInterpreterFrame probe_frame;
_PyStackChunk probe_stack_chunk;
PyCodeObject probe_code;
PyObject probe_object;
PyVarObject probe_varobject;
PyTypeObject probe_type;
PyHeapTypeObject probe_heaptype;
PyASCIIObject probe_ascii;
PyCompactUnicodeObject probe_compact;
PyUnicodeObject probe_unicode;
PyLongObject probe_long;
PyFloatObject probe_float;
PyBytesObject probe_bytes;
PyTupleObject probe_tuple;
PyListObject probe_list;
PyDictObject probe_dict;
PyDictKeysObject *probe_dictkeys;
PyDictKeyEntry probe_dke;
PyDictUnicodeEntry probe_dku;
PyDictValues *probe_dictvalues;
PySetObject probe_set;
setentry probe_setentry;
PyGenObject probe_gen;
PyFrameObject *probe_frameobj;
PyCellObject probe_cell;
PyModuleObject probe_module;
PyFunctionObject probe_function;
PyMemberDescrObject probe_memberdescr;
PyMemberDef probe_memberdef;
const unsigned long probe_version = PY_VERSION_HEX;

int main(void)
{
	return 0;
}
