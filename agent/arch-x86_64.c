/* agent: x86-64 jumps for the watcher's entry redirect (agent/arch.h).
 *
 * Intel SDM vol. 2, JMP: E9 cd is "jmp rel32", relative to the end of the
 * 5-byte instruction; FF /4 with ModRM 0x25 is "jmp [rip+disp32]", with
 * disp32 = 0 the 8-byte target right after the 6-byte instruction. Neither
 * touches a register or the stack, so the function we land in sees the
 * caller's arguments and return address as PyTraceBack_Here would.
 */
#include "agent/arch.h"

#if defined(__x86_64__)

#include <string.h>

#include "wire/msg.h"

#define X86_JMP_REL32 0xe9
#define X86_JMP_RM 0xff
#define X86_MODRM_RIP_DISP32_4 0x25 /* mod 00, reg /4 (jmp), rm 101 (rip) */

_Static_assert(sizeof(uintptr_t) == 8, "x86-64 addresses are 8 bytes");
_Static_assert(AGENT_ARCH_JUMP_MAX >= 6 + 8, "jmp [rip+0] and its target");

bool agent_arch__starts_with_jump(const uint8_t *entry)
{
	return entry[0] == X86_JMP_REL32 ||
	       (entry[0] == X86_JMP_RM && entry[1] == X86_MODRM_RIP_DISP32_4);
}

void agent_arch__jump(uintptr_t from, uintptr_t to, struct agent_arch_jump *out)
{
	int64_t rel = (int64_t)to - (int64_t)(from + 5);

	memset(out, 0, sizeof *out);
	if (rel >= INT32_MIN && rel <= INT32_MAX) {
		int32_t r32 = (int32_t)rel;
		out->code[0] = X86_JMP_REL32;
		memcpy(out->code + 1, &r32, 4);
		out->len = 5;
		out->mode = WIRE_WATCH_JUMP_REL32;
		out->form = "rel32";
	} else {
		out->code[0] = X86_JMP_RM;
		out->code[1] = X86_MODRM_RIP_DISP32_4;
		/* code[2..5]: disp32 = 0 */
		memcpy(out->code + 6, &to, 8);
		out->len = 14;
		out->mode = WIRE_WATCH_JUMP_ABS;
		out->form = "absolute";
	}
}

#endif
