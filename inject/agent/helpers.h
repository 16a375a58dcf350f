/* agent: runtime helpers called by redirect guards and precise handler
 * filters (rewrite/guard.h, docs/guards.md, docs/formats/patch.md).
 *
 * A patch names its helpers symbolically (constant kind "helper"); whoever
 * builds the code object resolves the name with suture_helpers__get() and
 * puts the callable into co_consts. The helpers are builtin functions
 * (vectorcall, no Python frame of their own), so a guarded instruction that
 * fails for another reason re-raises the original exception unchanged.
 *
 * The same objects are exported as the Python extension module
 * `_suture_helpers` (PyInit__suture_helpers, the only symbol of this file
 * with default visibility) so tests can load libsuture_agent.so with
 * importlib.machinery.ExtensionFileLoader. Everything here needs the GIL.
 */
#ifndef SUTURE_AGENT_HELPERS_H
#define SUTURE_AGENT_HELPERS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* guard_match(exc, code) takes the filter codes of rewrite/guard.h
 * (enum guard_match); they are part of the patch format. */
#include "rewrite/guard.h"

/* A new reference to the helper named `name` ("guard_match",
 * "str_coerce", "str_coerce_inplace", "open_or_empty"); NULL with KeyError
 * set if there is no such helper. */
PyObject *suture_helpers__get(const char *name);

#endif
