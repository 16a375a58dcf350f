/* libFuzzer harness: the /proc/PID/maps line parser on arbitrary bytes.
 * Each input is split at newlines like a maps file; every accepted line must
 * satisfy the parser's postconditions. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attach/attach.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size, *nl;
	struct attach_map m;
	size_t plen;

	while (p <= end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		if (attach_maps__parse_line(p, nl, &m, &plen) == 0) {
			if (m.end < m.start || strlen(m.perms) != 4)
				abort();
			if (plen && (m.path < p || m.path + plen > nl))
				abort();
		}
		if (nl == end)
			break;
		p = nl + 1;
	}
	return 0;
}
