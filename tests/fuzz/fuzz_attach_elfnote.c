/* libFuzzer harness: the ELF note (build-id) and .gnu_debuglink decoders on
 * arbitrary bytes. Inputs are copied to a 4-aligned buffer, as libelf hands
 * out section data. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attach/attach.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char hex[129];
	const char *name;
	size_t nlen, hexsz;
	uint32_t crc;
	uint8_t *buf = malloc(size ? size : 1);

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	/* vary the output size with the first byte to reach -ENOSPC */
	hexsz = size ? (size_t)(data[0] % sizeof(hex)) + 1 : sizeof(hex);
	if (attach_elf__parse_build_id(buf, buf + size, hex, hexsz) == 0 && strlen(hex) >= hexsz)
		abort();
	if (attach_elf__parse_debuglink(buf, buf + size, &name, &nlen, &crc) == 0 &&
	    (name != (const char *)buf || nlen >= size || name[nlen] != 0))
		abort();
	(void)attach_crc32(0, buf, size);
	free(buf);
	return 0;
}
