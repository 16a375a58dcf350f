/* agent: the per-architecture part of the watcher's entry jump.
 *
 * watch.c redirects PyTraceBack_Here by writing a jump over its first
 * bytes (and puts them back on removal); the jump's encoding lives in one
 * file per arch (agent/arch-<arch>.c) behind these functions. An unknown
 * arch is a compile error, never a silent guess (the chain is attach/'s,
 * attach/arch.h).
 */
#ifndef SUTURE_AGENT_ARCH_H
#define SUTURE_AGENT_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__)
#define AGENT_ARCH_NAME "x86_64"
/* The longest jump written: jmp [rip+0] followed by the target (6 + 8). */
#define AGENT_ARCH_JUMP_MAX 14
#else
#error "agent: unsupported architecture; only x86-64 is implemented (agent/arch-x86_64.c)"
#endif

/* A jump to write at an entry point. */
struct agent_arch_jump {
	uint8_t code[AGENT_ARCH_JUMP_MAX];
	size_t len;       /* bytes of code used; the bytes saved for the undo */
	uint32_t mode;    /* enum wire_watch_mode: WELCOME's watch_mode */
	const char *form; /* its name for WELCOME's detail ("rel32") */
};

/* Whether the code at entry already starts with a jump (another copy of
 * the agent, a profiler): writing ours over it would break theirs. entry
 * is readable for AGENT_ARCH_JUMP_MAX bytes (a function's start). */
bool agent_arch__starts_with_jump(const uint8_t *entry);
/* The jump written at `from` that lands at `to`: the shortest form that
 * reaches. */
void agent_arch__jump(uintptr_t from, uintptr_t to, struct agent_arch_jump *out);

#endif
