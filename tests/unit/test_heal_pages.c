/* heal/pages.c: the page cache a boot load reads the target through. A
 * mock target (a byte pattern over mapped ranges) counts the reads. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "heal/heal-priv.h"

struct mock {
	uint64_t lo, hi; /* mapped: [lo, hi) */
	unsigned reads, big_reads;
};

static uint8_t byte_at(uint64_t a)
{
	return (uint8_t)(a * 7 + (a >> 12));
}

static int mock_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	struct mock *m = ctx;
	m->reads++;
	m->big_reads += len > HEAL_PAGE;
	if (addr < m->lo || addr > m->hi || len > m->hi - addr)
		return -EFAULT;
	for (size_t i = 0; i < len; i++)
		((uint8_t *)buf)[i] = byte_at(addr + i);
	return 0;
}

static void check(const struct inspect_reader *v, uint64_t addr, size_t len)
{
	uint8_t buf[64];
	cr_assert_leq(len, sizeof(buf));
	cr_assert_eq(v->read(v->ctx, addr, buf, len), 0, "%llx", (unsigned long long)addr);
	for (size_t i = 0; i < len; i++)
		cr_assert_eq(buf[i], byte_at(addr + i), "%llx+%zu", (unsigned long long)addr, i);
}

/* A miss reads its aligned block of pages at once: its neighbours are hits. */
Test(heal_pages, a_miss_reads_the_block_around_it)
{
	struct mock m = { .lo = 0x100000, .hi = 0x200000 };
	struct inspect_reader under = { .read = mock_read, .ctx = &m }, view;
	struct heal_pages pc;
	heal_pages__init(&pc, &under, &view);
	cr_assert_not_null(pc.data);
	pc.on = true;
	check(&view, 0x123456, 40);
	cr_assert_eq(m.reads, 1);
	cr_assert_eq(m.big_reads, 1);
	/* The same 32 KiB block, other pages: no read. */
	check(&view, 0x120010, 16);
	check(&view, 0x127ff0, 16);
	cr_assert_eq(m.reads, 1);
	/* Across into the next block: one more. */
	check(&view, 0x127ff8, 16);
	cr_assert_eq(m.reads, 2);
	heal_pages__drop(&pc);
	check(&view, 0x120010, 16);
	cr_assert_eq(m.reads, 3, "dropped: read again");
	heal_pages__free(&pc);
}

/* Slots held by other pages are not evicted to read ahead. */
Test(heal_pages, read_ahead_evicts_nothing)
{
	struct mock m = { .lo = 0x100000, .hi = 0x400000 };
	struct inspect_reader under = { .read = mock_read, .ctx = &m }, view;
	struct heal_pages pc;
	heal_pages__init(&pc, &under, &view);
	pc.on = true;
	check(&view, 0x100000, 8); /* slots 0..7: block 0x100000 */
	cr_assert_eq(m.reads, 1);
	/* 512 KiB further: the same slots, held: that page alone. */
	uint64_t far = 0x100000 + HEAL_NPAGES * HEAL_PAGE + 3 * HEAL_PAGE;
	check(&view, far, 8);
	cr_assert_eq(m.reads, 2);
	cr_assert_eq(m.big_reads, 1);
	/* The first block's other pages are still there. */
	check(&view, 0x100000 + 5 * HEAL_PAGE, 8);
	cr_assert_eq(m.reads, 2);
	heal_pages__free(&pc);
}

/* A block the target has not mapped whole: its pages one by one; a page
 * not mapped whole: the exact bytes asked for. */
Test(heal_pages, partly_mapped_blocks_read_page_by_page)
{
	struct mock m = { .lo = 0x100000 + 3 * HEAL_PAGE, .hi = 0x100000 + 6 * HEAL_PAGE - 100 };
	struct inspect_reader under = { .read = mock_read, .ctx = &m }, view;
	struct heal_pages pc;
	heal_pages__init(&pc, &under, &view);
	pc.on = true;
	check(&view, 0x100000 + 4 * HEAL_PAGE + 10, 16); /* block fails, page reads */
	cr_assert_eq(m.reads, 2);
	check(&view, 0x100000 + 4 * HEAL_PAGE + 100, 16);
	cr_assert_eq(m.reads, 2, "that page is cached");
	check(&view, 0x100000 + 5 * HEAL_PAGE + 8, 16); /* last page, not whole */
	uint8_t b[8];
	cr_assert_neq(view.read(view.ctx, 0x100000 + 2 * HEAL_PAGE, b, 8), 0, "unmapped");
	heal_pages__free(&pc);
}
