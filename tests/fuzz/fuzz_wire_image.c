/* libFuzzer harness for the boot image's decoder (wire/image.c,
 * docs/formats/boot-image.md): what suture-run and the agent's boot hook
 * read from a store anyone with the store could have written. An image
 * the decoder accepts is walked as the hook walks it: every section and
 * entry must lie inside the input, every payload decode as PATCH_NAMED,
 * and the walk must end where the decoder said. The checksum is made to
 * fit first (the input's last 8 bytes are replaced), or almost nothing
 * would get past it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct wire_image img; /* a PATH_MAX program: off the stack */
	static struct wire_image_section sec;
	static struct wire_image_entry e;
	static struct wire_patch p;
	if (size < 9 || size > (1u << 20))
		return 0;
	uint8_t *buf = malloc(size);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (data[0] & 1) { /* seal it */
		uint64_t sum = wire_image__fnv(WIRE_IMAGE_FNV_SEED, buf, size - 8);
		for (int i = 0; i < 8; i++)
			buf[size - 8 + (size_t)i] = (uint8_t)(sum >> (8 * i));
	}
	if (wire_image__open(buf, size, &img) == 0) {
		const uint8_t *at = img.sections;
		uint32_t idx = 0, n = 0;
		while (wire_image__next_section(&img, &at, &sec, &idx)) {
			if (sec.entries < img.sections || sec.end > img.end || sec.index != n++)
				__builtin_trap();
			const uint8_t *e_at = sec.entries;
			uint32_t k = 0;
			while (wire_image__next_entry(&sec, &e_at, &e)) {
				k++;
				if (e.payload < buf || e.payload + e.payload_len > buf + size ||
				    wire_msg__decode_patch_named(e.payload,
								 e.payload + e.payload_len, &p) ||
				    !e.firstlineno || !e.qualname[0])
					__builtin_trap();
			}
			if (k != sec.nentries || e_at != sec.end)
				__builtin_trap();
		}
		if (n != img.hdr.nsections || at != img.end)
			__builtin_trap();
	}
	free(buf);
	return 0;
}
