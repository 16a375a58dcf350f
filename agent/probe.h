/* agent: live probes (docs/design.md §12, docs/formats/channel.md
 * "Probes"). The debugger registers a probe (PROBE_SET: file, line, format,
 * condition, count, rate), installs the logpoint patches through PATCH_NAMED
 * ("probe:<id>"), arms it (PROBE_ARM) and removes it (PROBE_CLEAR); the
 * patched code calls the builtin helper probe_hit(id), which evaluates the
 * probe's expressions in the calling frame without running program code
 * and sends PROBE_HIT. Frames that cannot take the patched code (running
 * in a C-level eval loop) are served by a line-trace function on their
 * thread until they end or the probe goes.
 *
 * on_set, on_arm, on_clear and clear_orphans run on the agent thread, which
 * takes the GIL for them; disconnected runs with agent_g.lock held and no
 * GIL (it only switches the probes off). */
#ifndef SUTURE_AGENT_PROBE_H
#define SUTURE_AGENT_PROBE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "wire/msg.h"

/* Appends the PROBE_RESULT frame to b. */
void agent_probe__on_set(struct wire_buf *b, const struct wire_probe_set *m);
void agent_probe__on_arm(struct wire_buf *b, const struct wire_probe_ctl *m);
void agent_probe__on_clear(struct wire_buf *b, const struct wire_probe_ctl *m);
/* PROBE_RELEASE: the snapshot's parked thread goes on. */
void agent_probe__release(uint64_t event_id);
/* The debugger went away (agent_g.lock held): every probe stops reporting
 * now, parked threads go on; clear_orphans (agent thread, no lock, no GIL
 * held) then removes their patches and trace functions. */
void agent_probe__disconnected_locked(void);
void agent_probe__clear_orphans(void);

/* The helper the logpoint calls (agent/helpers.c lists it as "probe_hit"):
 * probe_hit(id) -> None, never raises. */
PyObject *agent_probe__hit(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

#endif
