/* agent: interfaces that take Python objects. Everything here runs with
 * the GIL held unless said otherwise. */
#ifndef SUTURE_AGENT_PY_H
#define SUTURE_AGENT_PY_H

#define PY_SSIZE_T_CLEAN
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1 /* _PyInterpreterFrame, struct _frame */
#endif
#include <Python.h>
#include "internal/pycore_frame.h"
#include "internal/pycore_traceback.h" /* _PyTraceBack_FromFrame */

#include "agent/agent.h"

/* watch.c. install picks the entry jump, or the trace fallback when code
 * cannot be written (or SUTURE_AGENT_MODE=trace); *mode receives an
 * enum wire_watch_mode and detail a sentence for WELCOME. */
int agent_watch__install(uint32_t *mode, char *detail, size_t cap);
/* installer.c: install the watcher now, on the calling thread, which holds the
 * GIL (the boot hook, at the first module after initialization), instead of
 * the agent's installer waiting for the main thread to give the GIL up;
 * recorded for WELCOME as the installer would. Nothing when the agent is
 * not running or already watches. */
void agent__install_watcher_here(void);
/* Undo: restore the original bytes / remove the trace functions. */
void agent_watch__remove(void);
/* Trace fallback: give threads started since the last call our trace
 * function (called periodically by the agent thread). */
void agent_watch__rescan_threads(void);
uint32_t agent_watch__mode(void);
/* The park bound in milliseconds (SUTURE_AGENT_TIMEOUT_MS, HELLO). */
void agent_watch__set_timeout(uint32_t ms);
uint32_t agent_watch__timeout(void);
/* After fork in the child: stop watching (the channel belongs to the parent). */
void agent_watch__disable(void);

/* crash.c (GIL held). init: what the decision looks up once (the standard
 * library's directory, builtins.hasattr/getattr), before the watcher is
 * on. decide: whether the exception of `type` that just started in f, the
 * frame being unwound, is a crash (1) or may be handled (0). unit_of: f's
 * current code unit, -1 when it is outside f's code. */
void agent_crash__init(void);
int agent_crash__decide(_PyInterpreterFrame *f, PyObject *type);
/* An exception with a traceback tb arrived at frame f (the one being
 * unwound) other than from f's callee: a stored exception re-raised by its
 * consumer. Its origin's frame (the innermost of tb, owned by its frame
 * object) when it began in application code, not by a deliberate raise,
 * and nothing from f outward handles it; else NULL. */
_PyInterpreterFrame *agent_crash__reraised(_PyInterpreterFrame *f, PyObject *tb, PyObject *type);
int agent_crash__unit_of(_PyInterpreterFrame *f, uint32_t *unit);
/* decide's answer for a crash that is one only because its site was opted
 * in with --heal-handled (handled.c): the application's own catch-all
 * would handle it. */
#define AGENT_CRASH_OPTED_IN 2

/* handled.c: f (application code) raised `type`, and the first handler
 * on the way out is the application's own catch-all. 1: its site was
 * opted in (--heal-handled): a crash; 0: counted as a handled crash. */
int agent_handled__note(_PyInterpreterFrame *f, PyObject *type);

/* resume.c: in-flight resume of the parked frame f (the exception held in
 * the three pointers, the error indicator clear), after its patch was
 * installed. WIRE_RESUMED, WIRE_RESUME_RAISED (the pointers now hold
 * the continuation's exception) or -errno with nothing changed; msg says
 * what happened. f may be a continuation's own frame (a second crash in a
 * resumed call): its result then goes to the resume that runs it. */
int agent_resume__run(_PyInterpreterFrame *f, PyObject **pexc, PyObject **pval, PyObject **ptb,
		      uint32_t fallback_unit, uint32_t base_depth, char *msg, size_t cap);

/* resume.c: continuations running now (GIL held). depth: how many of the
 * thread's are running (the watcher watches each level once). site: if f
 * is the frame of the thread's innermost continuation K, its crash site in
 * the function's code K was built from (1, *code and *unit replaced; -1
 * inside K's prologue), else 0. skips: whether fr is a continuation's
 * frame called by the resume of below (the frame parked in the watcher):
 * what K raises leaves below without its handlers, so below is no
 * handler to consider. */
int agent_resume__depth(PyThreadState *ts);
/* resume.c (GIL held): the function f runs for (a continuation's frame:
 * the real function it continues, else f_func); whether fn is the
 * function object of a continuation running now (not the program's). */
PyFunctionObject *agent_resume__function_of(_PyInterpreterFrame *f);
int agent_resume__is_continuation(PyObject *fn);
int agent_resume__site(_PyInterpreterFrame *f, PyCodeObject **code, uint32_t *unit);
int agent_resume__skips(_PyInterpreterFrame *fr, _PyInterpreterFrame *below);
/* resume.c (GIL held): a resume of a frame entered from C prepared the
 * return of its result to the C caller; arm: make it happen at the
 * frame's next dispatch (the watcher calls it last, for its thread);
 * settle: at the watcher's entry, undo an armed return that was not
 * reached (one load when there is none). */
void agent_resume__arm(PyThreadState *ts);
void agent_resume__settle(void);

/* resume.c: whether the handler at `target` of co is the block of a
 * resumed call's one-shot decider, which re-raises every exception but
 * the one it delivered for (so it never catches a new one). */
int agent_resume__is_decider_block(PyCodeObject *co, uint32_t target);

/* resume.c: the code a resumed call's caller copy was made from (the
 * function's own), or co itself when co is no such copy. A crash later in
 * that caller is reported against the original, which functions own. */
PyCodeObject *agent_resume__original(PyCodeObject *co);

/* codekey.c: the key of a code object as the boot image keeps it
 * (docs/formats/boot-image.md): 0 when it has none. */
uint64_t agent_codekey(PyCodeObject *co);

/* install.c: build the code object described by a PATCH and install it on
 * every function sharing the original and in enclosing code objects. */
int agent_install__patch(const struct wire_patch *p, struct wire_patch_result *res);

/* install.c: the registry of installed patches (each keeps its original
 * and patched code objects alive). list encodes a whole LIST_RESULT frame
 * into b; rollback gives every function running a selected patch (or an
 * enclosing copy made for it) its original code back, switches suspended
 * frames back where their layout allows, and forgets the entries. */
int agent_install__list(struct wire_buf *b, uint64_t request_id);
/* reload.c: a reload's unit joins the registry under the reload's name
 * (listed with WIRE_LIVE_F_RELOAD; a ROLLBACK of that name gives every
 * function running one of the pairs' new code its old code back). pairs:
 * (old, new) tuples, the unit's first. */
void agent_install__record_reload(const char *name, PyObject *pairs, uint32_t nfunctions);
/* boot.c: a patch installed at start-up in its parent's co_consts (before
 * any function of it exists) joins the registry too. */
void agent_install__record_boot(PyObject *orig, PyObject *newc, const struct wire_patch *p);
/* old.replace(...) with the patch's bytes, stack size and appended constants
 * and names (GIL held). NULL on failure, with a one-line reason in err and
 * no Python error left set. Shared by PATCH (install.c) and boot.c. */
PyObject *agent_install__build_code(PyCodeObject *old, const struct wire_patch *p, char *err,
				    size_t cap);
int agent_install__rollback(const struct wire_rollback *m, struct wire_rollback_result *res);
/* park.c (GIL held): after a reload switched functions, tell the
 * debugger about each held crash whose frame's function now has other
 * code (HELD_CHANGED; reload is the reload's name). */
void agent_park__reloaded(const char *reload);

/* resume.c: restart the held frame f in its function's new code (RESTART,
 * docs/design.md §14): a continuation K built from the new code, locals
 * taken by the map, the value stack cut to r->base_depth, entered at
 * r->unit; its result goes to f's caller as a resume's does. Same results
 * as agent_resume__run. */
int agent_resume__restart(_PyInterpreterFrame *f, PyObject **pexc, PyObject **pval, PyObject **ptb,
			  const struct wire_restart *r, char *msg, size_t cap);

/* install.c: every live function object (gc.get_objects()), as PATCH finds
 * them: a new list in *funcs, 0, or -ENOMEM with no error left set. */
int agent_install__functions(PyObject **funcs);
/* install.c: the code a live guard patch (and the guards stacked under it)
 * was made from, or code itself when no guard entry produced it (a
 * reload's code is its own original: borrowed). */
PyObject *agent_install__original_of(PyObject *code);

/* reload.c: RELOAD (edit and continue, docs/design.md §10): compile the
 * source in the target, give every function whose code changed the new
 * code, add new functions; appends the whole RELOAD_RESULT frame to b.
 * 0, or -ENOMEM when the frame could not be built. */
int agent_reload__run(const struct wire_reload *m, struct wire_buf *b);

#endif
