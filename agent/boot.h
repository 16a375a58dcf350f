/* agent boot hook <-> suture-run: the boot socket's first frame.
 *
 * Before any report, suture-run sends one RELEASE frame (docs/formats/
 * channel.md) whose event id says how the boot list (SUTURE_AGENT_BOOT) is
 * to be used. Reported modules have ids from 1 up, so neither value below
 * can be mistaken for the answer to a report. */
#ifndef SUTURE_INJECT_AGENT_BOOT_H
#define SUTURE_INJECT_AGENT_BOOT_H

#include <stdint.h>

/* The list is complete and names the script itself: report listed modules
 * only (suture-run holds the script's module until its session is up). */
#define BOOT_LIST_SCRIPT ((uint64_t)0)
/* The script cannot be named by its file (a directory, a zip) or the list
 * is incomplete: report the first module after initialization whatever its
 * file, and the listed ones after it. */
#define BOOT_LIST_ANY UINT64_MAX

#endif
