/* libFuzzer harness: codedump parsing, then decoding every entry. */
#include <stdint.h>
#include <stdlib.h>

#include "rewrite/rewrite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rewrite_dump *d;
	struct rewrite_diag diag;
	if (rewrite_dump__parse(data, data + size, &d, &diag))
		return 0;
	for (size_t i = 0; i < rewrite_dump__count(d); i++) {
		struct rewrite_code *code;
		if (rewrite_code__decode(&rewrite_dump__entry(d, i)->info, &code, &diag) == 0) {
			(void)rewrite_code__verify(code, &diag);
			rewrite_code__free(code);
		}
	}
	rewrite_dump__close(d);
	return 0;
}
