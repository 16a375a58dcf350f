/* libFuzzer harness for the decoder of code files (store/code.c,
 * docs/formats/store.md "Code files"): the bytes of <store>/code/<hex>.json,
 * which `suture-audit explain` reads and hands to rewrite/. Any input: the
 * decoder returns 0 or -EBADMSG without reading outside [data, data + size);
 * an accepted one has the shape the format promises (code non-empty and of
 * even length, counts within bounds, every string readable) and encodes and
 * decodes again to the same encoding. */
#include "store/code.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const ID = "fnv64:0123456789abcdef";

/* Touch every byte an accepted info points to, so ASan sees a bad pointer. */
static size_t walk(const struct rewrite_code_info *in)
{
	size_t sum = strlen(in->filename) + strlen(in->name) + strlen(in->qualname);

	for (size_t i = 0; i < in->code_len; i++)
		sum += in->code[i];
	for (size_t i = 0; i < in->exctable_len; i++)
		sum += in->exctable[i];
	for (size_t i = 0; i < in->linetable_len; i++)
		sum += in->linetable[i];
	for (size_t i = 0; i < in->nnames; i++)
		sum += strlen(in->names[i]);
	for (int i = 0; i < in->nlocalsplus; i++)
		sum += strlen(in->localsplusnames[i]) + in->localspluskinds[i];
	for (size_t i = 0; i < in->nconsts; i++)
		sum += strlen(in->consts[i].type) + strlen(in->consts[i].repr);
	return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_code c, again;
	char *buf = malloc(size ? size : 1), *text, *text2;
	int r;

	if (!buf)
		return 0;
	/* A private copy of exactly size bytes, so ASan sees any overread. */
	memcpy(buf, data, size);
	r = store_code__decode(buf, buf + size, ID, &c);
	if (r != 0 && r != -EBADMSG)
		abort();
	if (r == 0) {
		if (!c.info.code_len || c.info.code_len % 2 || c.info.nlocalsplus < 0)
			abort();
		(void)walk(&c.info);
		if (!(text = store_code__encode(ID, &c.info)))
			abort();
		if (store_code__decode(text, text + strlen(text), ID, &again) != 0)
			abort();
		if (!(text2 = store_code__encode(ID, &again.info)) || strcmp(text, text2) != 0)
			abort();
		free(text2);
		free(text);
		store_code__free(&again);
		store_code__free(&c);
	} else if (c.mem) {
		abort(); /* a refusal leaves nothing to free */
	}
	free(buf);
	return 0;
}
