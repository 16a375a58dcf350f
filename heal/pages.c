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
		if (pc->tag[slot] != page + 1) {
			if (u->read(u->ctx, page, pc->data[slot], HEAL_PAGE)) {
				/* A page we may not read whole: read exactly. */
				pc->tag[slot] = 0;
				int err = u->read(u->ctx, addr, out, n);
				if (err)
					return err;
				goto next;
			}
			pc->tag[slot] = page + 1;
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
