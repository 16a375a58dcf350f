/* store/: patches superseded by a reload (docs/formats/store.md,
 * "Superseded patches").
 *
 * A reload (suture-attach --reload) gives a function new code: a guard
 * made for the old code no longer applies, and the fix that replaced it is
 * the user's own. The patch is not removed (its history, hits and the
 * decision stay readable) but retired: stored as "stale" with a reason that
 * starts with STORE_SUPERSEDED_PREFIX and names the reload. Older readers
 * of format version 2 see an ordinary stale patch, never applied; this
 * release tells it apart (store_patch__superseded_by). No new field, so the
 * format version stays. */
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int store__mark_superseded(struct store *s, const char *name, const char *reload)
{
	char reason[STORE_STR_MAX];
	int n = snprintf(reason, sizeof reason, "%s%s", STORE_SUPERSEDED_PREFIX, reload);
	if (n < 0 || (size_t)n >= sizeof reason)
		return -ENAMETOOLONG;
	return store__mark_stale(s, name, reason);
}

const char *store_patch__superseded_by(const struct store_patch *p)
{
	size_t n = strlen(STORE_SUPERSEDED_PREFIX);
	if (p->status != STORE_STATUS_STALE || !p->stale_reason ||
	    strncmp(p->stale_reason, STORE_SUPERSEDED_PREFIX, n) != 0 || !p->stale_reason[n])
		return NULL;
	return p->stale_reason + n;
}
