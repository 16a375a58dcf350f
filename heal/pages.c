/* heal: the page cache over inspect's reader (heal-priv.h says when it is
 * valid).
 *
 * inspect/ has a page cache of its own, but private to it (inspect-priv.h:
 * snapshot.c switches it on around a dump): it serves the process's one
 * reader for every user, and is allocated when switched on and freed when
 * switched off. heal needs a view of its own that it drops after every
 * patch it installs (the target changed), at the cost of clearing a tag
 * array, so it keeps this small one.
 */
#include "heal/heal-priv.h"

#include <stdlib.h>
#include <string.h>

/* A miss reads the whole aligned block of HEAL_AHEAD pages around the
 * page in one call: a module's code objects, their tuples and strings
 * lie in a few runs of neighbouring pages, and on this VM a read costs
 * about 10 us whatever its size up to a few pages, so a boot load of 100
 * patches made 45 reads of one page (docs/performance.md, "start-up,
 * sixth pass"). The block's pages take consecutive slots (HEAL_NPAGES is
 * a multiple of HEAL_AHEAD); it is read whole only into slots that are
 * empty or hold its own pages (evicting other pages to read ahead made a
 * load read ten times more). A block the target has not mapped whole is
 * read page by page, as before. */
#define HEAL_AHEAD 8u
_Static_assert(HEAL_NPAGES % HEAL_AHEAD == 0, "a block's pages take consecutive slots");

static int block_read(struct heal_pages *pc, uint64_t page)
{
	const struct inspect_reader *u = pc->under;
	uint64_t block = page & ~(uint64_t)(HEAL_AHEAD * HEAL_PAGE - 1);
	size_t first = (size_t)((block / HEAL_PAGE) % HEAL_NPAGES);
	bool free_slots = true;
	for (size_t i = 0; i < HEAL_AHEAD && free_slots; i++)
		free_slots = pc->tag[first + i] == 0 ||
			     pc->tag[first + i] == block + i * HEAL_PAGE + 1;
	if (free_slots && u->read(u->ctx, block, pc->data[first], HEAL_AHEAD * HEAL_PAGE) == 0) {
		for (size_t i = 0; i < HEAL_AHEAD; i++)
			pc->tag[first + i] = block + i * HEAL_PAGE + 1;
		return 0;
	}
	size_t slot = (size_t)((page / HEAL_PAGE) % HEAL_NPAGES);
	/* A failed block read may have filled some slots: not theirs. */
	for (size_t i = 0; free_slots && i < HEAL_AHEAD; i++)
		pc->tag[first + i] = 0;
	if (u->read(u->ctx, page, pc->data[slot], HEAL_PAGE))
		return -1;
	pc->tag[slot] = page + 1;
	return 0;
}

static int pages_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	struct heal_pages *pc = ctx;
	const struct inspect_reader *u = pc->under;
	uint8_t *out = buf;
	if (!pc->on || !pc->data)
		return u->read(u->ctx, addr, buf, len);
	while (len) {
		uint64_t page = addr & ~(uint64_t)(HEAL_PAGE - 1);
		size_t off = (size_t)(addr - page);
		size_t n = HEAL_PAGE - off < len ? HEAL_PAGE - off : len;
		size_t slot = (size_t)((page / HEAL_PAGE) % HEAL_NPAGES);
		if (pc->tag[slot] != page + 1 && block_read(pc, page)) {
			/* A page we may not read whole: read exactly. */
			pc->tag[slot] = 0;
			int err = u->read(u->ctx, addr, out, n);
			if (err)
				return err;
			goto next;
		}
		memcpy(out, pc->data[slot] + off, n);
next:
		out += n;
		addr += n;
		len -= n;
	}
	return 0;
}

void heal_pages__init(struct heal_pages *pc, const struct inspect_reader *under,
		      struct inspect_reader *view)
{
	memset(pc, 0, sizeof(*pc));
	pc->under = under;
	pc->data = attach_cache__alloc(HEAL_NPAGES * sizeof(*pc->data), &pc->mem);
	*view = *under;
	view->read = pages_read;
	view->ctx = pc;
}

void heal_pages__drop(struct heal_pages *pc)
{
	memset(pc->tag, 0, sizeof(pc->tag));
}

void heal_pages__free(struct heal_pages *pc)
{
	attach_cache__free(&pc->mem);
	pc->data = NULL;
	pc->on = false;
}
