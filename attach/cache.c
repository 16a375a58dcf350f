/* attach: memory for a page cache of another process's pages (inspect/'s,
 * heal/'s).
 *
 * A cache is filled by process_vm_readv into pages the debugger has never
 * touched, so each slot used first costs a page fault on our side. On a
 * machine whose MMU is paravirtualized that fault is the dearest part of a
 * read (docs/performance.md, "A page cache in huge pages": 11 µs a fresh
 * 4 KiB page, against 3 µs for the read into a page already mapped). Where
 * transparent huge pages are on for madvise() (Debian's default), the
 * cache asks for them: one fault maps 2 MiB, 512 slots. Elsewhere the
 * request is ignored and the memory is the same ordinary zeroed pages as
 * before.
 */
#include "attach/attach.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#define HUGE_SIZE ((size_t)2 << 20)

void *attach_cache__alloc(size_t len, struct attach_cache_mem *m)
{
	/* Room to start at a 2 MiB boundary, so the whole span can be huge. */
	size_t rounded = (len + HUGE_SIZE - 1) & ~(HUGE_SIZE - 1);
	size_t size = rounded + HUGE_SIZE;
	void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	m->base = NULL;
	m->size = 0;
	if (base == MAP_FAILED)
		return NULL;
	uintptr_t at = ((uintptr_t)base + HUGE_SIZE - 1) & ~(uintptr_t)(HUGE_SIZE - 1);
	(void)madvise((void *)at, rounded, MADV_HUGEPAGE); /* a hint: EINVAL without THP */
	m->base = base;
	m->size = size;
	return (void *)at;
}

void attach_cache__free(struct attach_cache_mem *m)
{
	if (m->base)
		munmap(m->base, m->size);
	m->base = NULL;
	m->size = 0;
}
