/* Fuzz inspect's remote-object decoders with garbage memory.
 *
 * Input: an 8-byte root address, a struct inspect_types (which addresses
 * are None/True/False and the type objects), then a memory image that
 * pretends to live at 0x10000000. Every decoder reads only through the
 * reader, which serves the image and fails elsewhere; the layout is the
 * build-time probe table. Seeds (tests/fuzz/corpus/fuzz_inspect_objects)
 * are well-formed images of ints, strs of every kind, containers, dicts of
 * every keys kind, sets and code objects (their type_type and
 * type_member_descr are 0: the fuzzer finds classes and descriptors). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "inspect/inspect.h"

#define IMAGE_BASE 0x10000000ull

struct image {
	const uint8_t *p;
	size_t n;
};

static int image_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	const struct image *im = ctx;
	if (addr < IMAGE_BASE || addr - IMAGE_BASE > im->n || len > im->n - (addr - IMAGE_BASE))
		return -EFAULT;
	memcpy(buf, im->p + (addr - IMAGE_BASE), len);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct inspect_offsets off;
	static int init;
	struct inspect_types types;
	uint64_t root;
	if (!init) {
		inspect_offsets__from_probe(&off);
		init = 1;
	}
	if (size < 8 + sizeof(types))
		return 0;
	memcpy(&root, data, 8);
	memcpy(&types, data + 8, sizeof(types));
	struct image im = { data + 8 + sizeof(types), size - 8 - sizeof(types) };
	struct inspect_reader r = { image_read, &im, &off, &types };

	struct inspect_limits lim = INSPECT_LIMITS_DEFAULT;
	struct inspect_str s = { 0 };
	inspect_value__repr(&r, root, &lim, &s);
	inspect_str__free(&s);

	char buf[64];
	inspect_str__read(&r, root, buf, sizeof(buf));
	inspect_value__type_name(&r, root, buf, sizeof(buf));

	uint64_t v;
	bool neg;
	inspect_dict__get(&r, root, "a", &v);
	inspect_object__attr(&r, root, "_name", &v);
	inspect_long__read(&r, root, &v, &neg);
	uint64_t flags, dict;
	inspect_type__check(&r, root, &flags);
	if (inspect_type__dict(&r, root, &dict) == 0)
		inspect_dict__get(&r, dict, "m", &v);
	inspect_object__member(&r, root, "__func__", &v);

	struct inspect_code c;
	if (inspect_code__read(&r, root, &c) == 0) {
		int line;
		inspect_code__line(&r, &c, (int32_t)(c.ncodeunits / 2), &line);
		uint8_t kind;
		inspect_code__local(&r, &c, 0, buf, sizeof(buf), &kind);
		uint8_t *b;
		size_t n;
		if (inspect_code__units(&r, &c, &b, &n) == 0)
			free(b);
		if (inspect_bytes__read(&r, c.exctable, 1 << 16, &b, &n) == 0)
			free(b);
		uint64_t *items;
		if (inspect_tuple__read(&r, c.consts, 1 << 16, &items, &n) == 0)
			free(items);
	}
	int line;
	inspect_linetable__line(im.p, im.p + im.n, 1, (int32_t)(root & 0xffff), &line);
	return 0;
}
