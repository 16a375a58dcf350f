/* libFuzzer harness for the store's index decoder (store/index.c).
 * Any input: the decoder must return 0 or -EBADMSG without reading outside
 * [data, data + size). An accepted input must encode and decode again to
 * the same encoding (the store rewrites what it reads). */
#include "store/store-priv.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_index idx, again;
	char err[STORE_ERR_MAX];
	char *buf = malloc(size ? size : 1), *text, *text2;
	size_t len, len2;
	int r;

	if (!buf)
		return 0;
	/* A private copy of exactly size bytes, so ASan sees any overread. */
	memcpy(buf, data, size);
	r = store_index__parse(buf, buf + size, &idx, err, sizeof(err));
	if (r != 0 && r != -EBADMSG && r != -ENOMEM)
		abort();
	if (r == 0) {
		if (!(text = store_index__serialize(&idx, &len)))
			abort();
		if (store_index__parse(text, text + len, &again, err, sizeof(err)) != 0)
			abort();
		if (again.n != idx.n || !(text2 = store_index__serialize(&again, &len2)) ||
		    len2 != len || memcmp(text, text2, len) != 0)
			abort();
		free(text2);
		free(text);
		store_index__free(&again);
		store_index__free(&idx);
	} else if (!err[0]) {
		abort(); /* every refusal says why */
	}
	free(buf);
	return 0;
}
