/* libFuzzer harness for the channel's decoders (wire/msg.c): the bytes a
 * debugger or an agent receives from the other process. The first byte
 * picks the decoder; the rest is the untrusted frame. A decoded patch is
 * walked with its iterators, as the agent does; a LIST_RESULT's and a
 * HITS frame's entries as the debugger does. A first byte of 0xf0 or
 * more picks a probe message's decoder. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wire/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *p = data + 1, *end = data + size;
	union {
		struct wire_hdr hdr;
		struct wire_hello hello;
		struct wire_welcome welcome;
		struct wire_crash crash;
		struct wire_release release;
		struct wire_patch patch;
		struct wire_patch_result result;
		struct wire_ping ping;
		struct wire_pong pong;
		struct wire_resume resume;
		struct wire_resume_result rresult;
		struct wire_list list;
		struct wire_list_result lresult;
		struct wire_rollback rollback;
		struct wire_rollback_result bresult;
		struct wire_hits hits;
		struct wire_forked forked;
		struct wire_tree_files tree;
		struct wire_handled handled;
	} m;
	struct wire_handled_entry hentry;
	struct wire_live_patch live;
	struct wire_hit hit;
	char text[64];
	if (data[0] >= 0xf0) {
		/* The probes' messages (docs/formats/channel.md, "Probes"). */
		static struct wire_probe_set set;
		struct wire_probe_result res;
		struct wire_probe_ctl ctl;
		struct wire_probe_hit ph;
		uint64_t ev;
		switch (data[0] % 5) {
		case 0:
			wire_msg__decode_probe_set(p, end, &set);
			break;
		case 1:
			wire_msg__decode_probe_result(p, end, &res);
			break;
		case 2:
			wire_msg__decode_probe_ctl(p, end, &ctl);
			break;
		case 3:
			if (wire_msg__decode_probe_hit(p, end, &ph) == 0)
				for (uint32_t i = 0; i < ph.nvalues; i++)
					if (ph.values[i] + ph.value_len[i] > (const char *)end)
						__builtin_trap();
			break;
		case 4:
			wire_msg__decode_probe_release(p, end, &ev);
			break;
		}
		return 0;
	}
	switch (data[0] % 22) {
	case 0:
		wire_msg__decode_hdr(p, end, &m.hdr);
		break;
	case 1:
		wire_msg__decode_hello(p, end, &m.hello);
		break;
	case 2:
		wire_msg__decode_welcome(p, end, &m.welcome);
		break;
	case 3:
		wire_msg__decode_crash(p, end, &m.crash);
		break;
	case 4:
		wire_msg__decode_release(p, end, &m.release);
		break;
	case 5:
	case 6:
		if (wire_msg__decode_patch(p, end, &m.patch) == 0) {
			struct wire_const_iter it;
			struct wire_name_iter ni;
			struct wire_const c;
			const uint8_t *s;
			size_t len, total = 0;
			wire_const_iter__init(&it, &m.patch);
			while (wire_const_iter__next(&it, &c) > 0)
				if (c.data)
					total += c.len;
			wire_name_iter__init(&ni, &m.patch);
			while (wire_name_iter__next(&ni, &s, &len) > 0)
				total += len;
			(void)total;
		}
		break;
	case 7:
		wire_msg__decode_patch_result(p, end, &m.result);
		break;
	case 8:
		wire_msg__decode_ping(p, end, &m.ping);
		break;
	case 9:
		wire_msg__decode_pong(p, end, &m.pong);
		break;
	case 10:
		wire_msg__decode_error(p, end, text, sizeof text);
		break;
	case 11:
		wire_msg__decode_resume(p, end, &m.resume);
		break;
	case 12:
		wire_msg__decode_resume_result(p, end, &m.rresult);
		break;
	case 13:
		if (wire_msg__decode_patch_named(p, end, &m.patch) == 0) {
			struct wire_const_iter it;
			struct wire_const c;
			wire_const_iter__init(&it, &m.patch);
			while (wire_const_iter__next(&it, &c) > 0)
				;
		}
		break;
	case 14:
		wire_msg__decode_list(p, end, &m.list);
		break;
	case 15:
		if (wire_msg__decode_list_result(p, end, &m.lresult) == 0) {
			struct wire_live_iter it;
			wire_live_iter__init(&it, &m.lresult);
			while (wire_live_iter__next(&it, &live) > 0)
				;
		}
		break;
	case 16:
		wire_msg__decode_rollback(p, end, &m.rollback);
		break;
	case 17:
		wire_msg__decode_rollback_result(p, end, &m.bresult);
		break;
	case 18:
		if (wire_msg__decode_hits(p, end, &m.hits) == 0) {
			struct wire_hits_iter it;
			wire_hits_iter__init(&it, &m.hits);
			while (wire_hits_iter__next(&it, &hit) > 0)
				;
		}
		break;
	case 19:
		wire_msg__decode_forked(p, end, &m.forked);
		break;
	case 20:
		if (wire_msg__decode_tree_files(p, end, &m.tree) == 0 && m.tree.files_len)
			(void)memchr(m.tree.files, '\n', m.tree.files_len);
		break;
	case 21:
		/* HANDLED / HANDLED_RESULT (docs/formats/channel.md). */
		if (wire_msg__decode_handled(p, end, &m.handled) == 0) {
			struct wire_handled_iter it;
			wire_handled_iter__init(&it, &m.handled);
			while (wire_handled_iter__next(&it, &hentry) > 0)
				;
		}
		break;
	}
	return 0;
}
