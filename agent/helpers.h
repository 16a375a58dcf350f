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

/* A new reference to the helper named `name`; NULL with KeyError set if
 * there is no such helper. Filters of handler guards (exc -> None to heal,
 * or exc to re-raise): "match_here", "match_none_attr",
 * "match_none_subscript", "match_none_call", "match_chain". Redirect
 * helpers: "str_coerce", "str_coerce_inplace", "open_or_empty". Probes:
 * "probe_hit" (agent/probe.h). */
PyObject *suture_helpers__get(const char *name);

#endif
