/* attach/: byte-level decoders for ELF pieces read from the target's files:
 * note segments (build-id) and .gnu_debuglink. Pure: (p, end) in, untrusted,
 * fail on truncation. Fuzzed by tests/fuzz/fuzz_attach_elfnote.c.
 *
 * Note entry (System V gABI, "Note Section"): Elf64_Nhdr {n_namesz, n_descsz,
 * n_type} as three 32-bit words, then the name (n_namesz bytes including its
 * NUL) padded to 4, then the descriptor padded to 4. The GNU build-id is
 * n_type NT_GNU_BUILD_ID (3), name "GNU".
 *
 * .gnu_debuglink (gdb manual, "Debugging Information in Separate Files"): a
 * NUL-terminated file name, zero padding to a 4-byte boundary, then the
 * CRC32 of the debug file as a 32-bit word in the object's byte order.
 */
#include <elf.h>
#include <errno.h>
#include <string.h>

#include "attach/attach.h"

_Static_assert(sizeof(Elf64_Nhdr) == 12, "note header is three words");

static size_t pad4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

int attach_elf__parse_build_id(const uint8_t *p, const uint8_t *end, char *hex, size_t hexsz)
{
	static const char digits[] = "0123456789abcdef";
	Elf64_Nhdr nh;
	size_t name_sz, desc_sz, i;

	if (!p || !end || p > end)
		return -EINVAL;
	while (p < end) {
		if ((size_t)(end - p) < sizeof(nh))
			return -EINVAL;
		memcpy(&nh, p, sizeof(nh));
		p += sizeof(nh);
		name_sz = pad4(nh.n_namesz);
		desc_sz = pad4(nh.n_descsz);
		/* pad4 of a 32-bit value cannot wrap a 64-bit size_t */
		if (name_sz > (size_t)(end - p) || desc_sz > (size_t)(end - p) - name_sz) {
			/* The last descriptor may legally lack its padding. */
			if (name_sz > (size_t)(end - p) ||
			    nh.n_descsz > (size_t)(end - p) - name_sz)
				return -EINVAL;
			desc_sz = nh.n_descsz;
		}
		if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && !memcmp(p, "GNU", 4)) {
			const uint8_t *d = p + name_sz;
			if (nh.n_descsz == 0)
				return -EINVAL;
			if (hexsz < 2 * (size_t)nh.n_descsz + 1)
				return -ENOSPC;
			for (i = 0; i < nh.n_descsz; i++) {
				hex[2 * i] = digits[d[i] >> 4];
				hex[2 * i + 1] = digits[d[i] & 15];
			}
			hex[2 * i] = 0;
			return 0;
		}
		p += name_sz + desc_sz;
	}
	return -ENOENT;
}

int attach_elf__parse_debuglink(const uint8_t *p, const uint8_t *end, const char **name,
				size_t *name_len, uint32_t *crc)
{
	const uint8_t *nul;
	size_t off;

	if (!p || !end || p >= end)
		return -EINVAL;
	nul = memchr(p, 0, (size_t)(end - p));
	if (!nul || nul == p)
		return -EINVAL;
	off = pad4((size_t)(nul - p) + 1);
	if (off > (size_t)(end - p) || (size_t)(end - p) - off < 4)
		return -EINVAL;
	*name = (const char *)p;
	*name_len = (size_t)(nul - p);
	memcpy(crc, p + off, 4); /* the object's byte order: ours (x86-64 only) */
	return 0;
}

uint32_t attach_crc32(uint32_t crc, const void *buf, size_t len)
{
	/* CRC-32/ISO-HDLC (reflected, polynomial 0xedb88320), as zlib's
	 * crc32() and gdb's gnu_debuglink_crc32(). Table built on first use. */
	static uint32_t table[256];
	static int ready;
	const uint8_t *b = buf;
	uint32_t c;
	size_t i;
	int k;

	if (!ready) {
		for (i = 0; i < 256; i++) {
			c = (uint32_t)i;
			for (k = 0; k < 8; k++)
				c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
			table[i] = c;
		}
		ready = 1;
	}
	crc = ~crc;
	for (i = 0; i < len; i++)
		crc = table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}
