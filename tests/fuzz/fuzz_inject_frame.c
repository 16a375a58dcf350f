/* libFuzzer harness for the channel's decoders (inject/msg.c): the bytes a
 * debugger or an agent receives from the other process. The first byte
 * picks the decoder; the rest is the untrusted frame. A decoded patch is
 * walked with its iterators, as the agent does; a LIST_RESULT's and a
 * HITS frame's entries as the debugger does. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "inject/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *p = data + 1, *end = data + size;
	union {
		struct inject_hdr hdr;
		struct inject_hello hello;
		struct inject_welcome welcome;
		struct inject_crash crash;
		struct inject_release release;
		struct inject_patch patch;
		struct inject_patch_result result;
		struct inject_ping ping;
		struct inject_pong pong;
		struct inject_resume resume;
		struct inject_resume_result rresult;
		struct inject_list list;
		struct inject_list_result lresult;
		struct inject_rollback rollback;
		struct inject_rollback_result bresult;
		struct inject_hits hits;
	} m;
	struct inject_live_patch live;
	struct inject_hit hit;
	char text[64];
	switch (data[0] % 19) {
	case 0:
		inject_msg__decode_hdr(p, end, &m.hdr);
		break;
	case 1:
		inject_msg__decode_hello(p, end, &m.hello);
		break;
	case 2:
		inject_msg__decode_welcome(p, end, &m.welcome);
		break;
	case 3:
		inject_msg__decode_crash(p, end, &m.crash);
		break;
	case 4:
		inject_msg__decode_release(p, end, &m.release);
		break;
	case 5:
	case 6:
		if (inject_msg__decode_patch(p, end, &m.patch) == 0) {
			struct inject_const_iter it;
			struct inject_name_iter ni;
			struct inject_const c;
			const uint8_t *s;
			size_t len, total = 0;
			inject_const_iter__init(&it, &m.patch);
			while (inject_const_iter__next(&it, &c) > 0)
				if (c.data)
					total += c.len;
			inject_name_iter__init(&ni, &m.patch);
			while (inject_name_iter__next(&ni, &s, &len) > 0)
				total += len;
			(void)total;
		}
		break;
	case 7:
		inject_msg__decode_patch_result(p, end, &m.result);
		break;
	case 8:
		inject_msg__decode_ping(p, end, &m.ping);
		break;
	case 9:
		inject_msg__decode_pong(p, end, &m.pong);
		break;
	case 10:
		inject_msg__decode_error(p, end, text, sizeof text);
		break;
	case 11:
		inject_msg__decode_resume(p, end, &m.resume);
		break;
	case 12:
		inject_msg__decode_resume_result(p, end, &m.rresult);
		break;
	case 13:
		if (inject_msg__decode_patch_named(p, end, &m.patch) == 0) {
			struct inject_const_iter it;
			struct inject_const c;
			inject_const_iter__init(&it, &m.patch);
			while (inject_const_iter__next(&it, &c) > 0)
				;
		}
		break;
	case 14:
		inject_msg__decode_list(p, end, &m.list);
		break;
	case 15:
		if (inject_msg__decode_list_result(p, end, &m.lresult) == 0) {
			struct inject_live_iter it;
			inject_live_iter__init(&it, &m.lresult);
			while (inject_live_iter__next(&it, &live) > 0)
				;
		}
		break;
	case 16:
		inject_msg__decode_rollback(p, end, &m.rollback);
		break;
	case 17:
		inject_msg__decode_rollback_result(p, end, &m.bresult);
		break;
	case 18:
		if (inject_msg__decode_hits(p, end, &m.hits) == 0) {
			struct inject_hits_iter it;
			inject_hits_iter__init(&it, &m.hits);
			while (inject_hits_iter__next(&it, &hit) > 0)
				;
		}
		break;
	}
	return 0;
}
