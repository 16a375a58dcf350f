/* libFuzzer harness for the reload messages' decoders (wire/msg.c,
 * RELOAD, RELOAD_RESULT, HELD_CHANGED, RESTART): what the agent receives
 * from a debugger and what the debugger receives back. The first byte
 * picks the decoder; a decoded RELOAD_RESULT's entries are walked as the
 * debugger does, a RESTART's map is checked as the agent uses it. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wire/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct wire_reload rl;  /* 4 KiB of path: off the stack */
	static struct wire_restart rs; /* 256 KiB of map */
	struct wire_held_changed hc;
	struct wire_reload_result res;
	struct wire_reload_entry e;
	if (size < 1)
		return 0;
	const uint8_t *p = data + 1, *end = data + size;
	if (data[0] % 4 == 2) {
		wire_msg__decode_held_changed(p, end, &hc);
	} else if (data[0] % 4 == 3) {
		if (wire_msg__decode_restart(p, end, &rs) == 0)
			for (uint32_t i = 0; i < rs.nmap; i++)
				if (rs.map[i] < -1 || rs.map[i] > WIRE_RESTART_MAX_LOCALS)
					__builtin_trap();
	} else if (data[0] & 1) {
		if (wire_msg__decode_reload(p, end, &rl) == 0 && rl.source_len &&
		    (rl.source < p || rl.source + rl.source_len > end))
			__builtin_trap(); /* the source must lie inside the frame */
	} else if (wire_msg__decode_reload_result(p, end, &res) == 0) {
		struct wire_reload_iter it;
		wire_reload_iter__init(&it, &res);
		while (wire_reload_iter__next(&it, &e) > 0)
			if (e.kind < WIRE_RELOAD_RELOADED || e.kind > WIRE_RELOAD_KEPT)
				__builtin_trap();
	}
	return 0;
}
