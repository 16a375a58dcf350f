/* agent: what counts as a crash beyond one frame's handlers (policy.c).
 *
 * A crash is an exception the application does not handle
 * (docs/design.md, "What counts as a crash"):
 * - it starts in application code: not the standard library, not a
 *   site-packages/dist-packages directory, not a frozen module, unless the
 *   file is under a path the user named (SUTURE_APP_PATH, colon separated:
 *   --app-path);
 * - walking outward, a handler in application code that may catch it, or a
 *   library handler naming specific types (a protocol), handles it;
 * - a broad library handler (Exception, BaseException, bare except) ends a
 *   unit of work: a crash, unless the framework owning that frame keeps a
 *   registry of the application's handlers with one for the type (read,
 *   never called), or the handler is a transport that stores the exception
 *   for a consumer, whose own code then decides.
 *
 * Everything here runs in the watcher with the GIL held and the error
 * indicator clear; it reads objects (frames, instance dicts, C getters of
 * exact built-in types) and never runs program code. It leaves no error set.
 */
#ifndef SUTURE_AGENT_POLICY_H
#define SUTURE_AGENT_POLICY_H

#include "agent/agent-py.h"

/* Frame verdicts (watch.c's frame_catches). */
enum agent_catch {
	AGENT_NO_HANDLER = 0, /* nothing in this frame may catch it */
	AGENT_HANDLED = 1,    /* a handler here may catch it */
	AGENT_THREAD_TOP = 2, /* threading's catch-all: the thread dies of it */
	AGENT_BOUNDARY = 3,   /* a broad library handler: a unit of work ends */
};

/* Reads the standard library's directory and SUTURE_APP_PATH once. */
void agent_policy__init(void);
/* Whether co is library code (cached per code object). */
int agent_policy__is_library(PyCodeObject *co);

/* A with block's __exit__ (exit_fn, Python code) is called with type: may
 * it suppress it? A @contextmanager's generator is judged by its own
 * handlers at its yield, contextlib.suppress by its types, a few library
 * context managers that suppress only their own cancellation (anyio's
 * cancel scopes and limiters, asyncio.timeout) never do; any other may. */
int agent_policy__exit_may_suppress(PyObject *exit_fn, PyObject *type, int library);

/* fr's broad library handler catches type; above is the frame the walk came
 * from (fr's callee, NULL when fr raised). 1: a crash (the unit of work
 * ends), 0: handled (a registered handler, a consumer that handles it, or a
 * consumer that cannot be known yet). depth bounds consumer recursion. */
int agent_policy__boundary(_PyInterpreterFrame *fr, _PyInterpreterFrame *above, PyObject *type,
			   int depth);

/* watch.c, for the consumers policy.c follows: the verdict of one frame at
 * its current instruction, and the whole walk outward from a frame (1: a
 * crash, 0: handled), which may be another thread's (blocked, so its frames
 * hold still while we hold the GIL) or a suspended coroutine's. */
int agent_watch__frame_verdict(_PyInterpreterFrame *f, PyObject *type);
int agent_watch__walk(_PyInterpreterFrame *from, PyObject *type, int depth);

#endif
