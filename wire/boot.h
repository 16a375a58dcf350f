/* wire/: the boot socket between suture-run (heal/run.c) and the agent's
 * boot hook (agent/boot.c), what both sides must agree on.
 *
 * suture-run starts the interpreter with the agent in LD_PRELOAD and two
 * variables: WIRE_BOOT_ENV_FD, the decimal number of the child's end of a
 * socketpair (inherited across exec), and WIRE_BOOT_ENV_LIST, the path of
 * a file naming the script and the source files with stored patches, one
 * absolute real path a line. The hook removes both from the environment.
 *
 * Frames are docs/formats/channel.md's, used this way:
 *   1. suture-run -> hook, once, before any report: RELEASE whose event id
 *      is BOOT_LIST_SCRIPT or BOOT_LIST_ANY (below); the list file is
 *      complete by then.
 *   2. hook -> suture-run: a module about to run, as a CRASH frame with
 *      exc_type "" and frame_addr 0, code_addr its code object, event_id
 *      from 1 up (so neither value of 1. can be mistaken for an answer).
 *   3. suture-run -> hook: PATCH frames for code objects nested in that
 *      module, any number, pipelined; the hook answers each with one
 *      PATCH_RESULT, in order: when no PATCH is waiting to be read, and
 *      at the latest once WIRE_BOOT_ANSWER_BATCH answers wait. suture-run
 *      keeps at most WIRE_BOOT_MAX_UNANSWERED patches unanswered.
 *   4. suture-run -> hook: RELEASE of the event id: the module runs. It
 *      may follow the last PATCH at once, before its answer is read.
 */
#ifndef SUTURE_WIRE_BOOT_H
#define SUTURE_WIRE_BOOT_H

#include <stdint.h>

#define WIRE_BOOT_ENV_FD "SUTURE_AGENT_BOOT_FD"
#define WIRE_BOOT_ENV_LIST "SUTURE_AGENT_BOOT"
/* Optional: the decimal number of a descriptor open on a boot image
 * (docs/formats/boot-image.md) suture-run checked against its store. */
#define WIRE_BOOT_ENV_IMAGE_FD "SUTURE_AGENT_BOOT_IMAGE_FD"

/* Step 2 with a boot image: before reporting a listed module the image has
 * a section for, the hook checks the section against the module's code
 * objects and, when every one it names is there with its key, installs
 * the section's PATCHes itself; then it sends one PATCH_RESULT per entry,
 * request id WIRE_BOOT_IMAGE_ID(section, entry), right before the
 * module's report. suture-run then only releases the module (step 4). A
 * section that does not match is not touched (no PATCH_RESULT): the
 * module is loaded the usual way. */
#define WIRE_BOOT_IMAGE_BIT (1ull << 63)
#define WIRE_BOOT_IMAGE_ID(section, entry) \
	(WIRE_BOOT_IMAGE_BIT | ((uint64_t)(uint32_t)(section) << 32) | (uint32_t)(entry))
#define WIRE_BOOT_IMAGE_SECTION(id) ((uint32_t)(((id) & ~WIRE_BOOT_IMAGE_BIT) >> 32))
#define WIRE_BOOT_IMAGE_ENTRY(id) ((uint32_t)(id))

/* The list is complete and names the script itself: report listed modules
 * only (suture-run holds the script's module until its session is up). */
#define BOOT_LIST_SCRIPT ((uint64_t)0)
/* The script cannot be named by its file (a directory, a zip) or the list
 * is incomplete: report the first module after initialization whatever its
 * file, and the listed ones after it. */
#define BOOT_LIST_ANY UINT64_MAX

/* Step 3's pipeline. The bound on unanswered patches keeps the hook from
 * ever blocking on its answers while suture-run writes patches: 128
 * PATCH_RESULT frames of at most 290 bytes, one write each, some 170 KB
 * with the kernel's overhead, fit a Unix socket's default send buffer
 * (212992 bytes). The hook answering every 32 at the latest means a
 * debugger at that bound waits for one batch of installs, not for all it
 * sent (docs/performance.md, "start-up, sixth pass"). */
#define WIRE_BOOT_ANSWER_BATCH 32
#define WIRE_BOOT_MAX_UNANSWERED 128
_Static_assert(WIRE_BOOT_ANSWER_BATCH <= WIRE_BOOT_MAX_UNANSWERED,
	       "a batch of answers must come before the debugger's bound stops it");

#endif
