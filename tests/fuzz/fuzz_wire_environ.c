/* libFuzzer harness: wire_channel__xdg() on arbitrary bytes, as a debugger
 * reads another process's /proc/PID/environ (wire/channel.c). An accepted
 * value fits the buffer, has no NUL inside, and is found in the input right
 * after "XDG_RUNTIME_DIR=" at the start of an entry. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/channel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char key[] = "XDG_RUNTIME_DIR=";
	const char *p = (const char *)data, *end = p + size;
	char buf[64];
	memset(buf, 'x', sizeof buf);
	int rc = wire_channel__xdg(p, end, buf, sizeof buf);
	if (rc != 0 && rc != -ENOENT && rc != -ENAMETOOLONG)
		abort();
	if (rc)
		return 0;
	size_t n = strnlen(buf, sizeof buf);
	if (n == sizeof buf)
		abort(); /* not terminated within the buffer */
	/* The value sits in the input after the key, at an entry's start. */
	for (const char *q = p; q < end;) {
		const char *nul = memchr(q, 0, (size_t)(end - q));
		const char *e = nul ? nul : end;
		if ((size_t)(e - q) == sizeof key - 1 + n && !memcmp(q, key, sizeof key - 1) &&
		    !memcmp(q + sizeof key - 1, buf, n))
			return 0;
		q = e + 1;
	}
	abort();
}
