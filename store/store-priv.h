/* store/ private: the in-memory index and its JSON form
 * (docs/formats/store.md). */
#ifndef SUTURE_STORE_PRIV_H
#define SUTURE_STORE_PRIV_H

#include "store/store.h"

/* Patches in index order; every string is owned (malloc'd) by the index. */
struct store_index {
	struct store_patch *v;
	size_t n, cap;
};

#define STORE_ERR_MAX 1024

/* Decode an index from the bytes [p, end). On failure returns -EBADMSG (or
 * -ENOMEM) and writes the cause into err ("line 3, column 7: invalid JSON",
 * "patches[2].line: expected an integer"); *out is left empty. */
int store_index__parse(const char *p, const char *end, struct store_index *out,
		       char *err, size_t errsz);
/* The JSON form of idx, malloc'd, ending in a newline; NULL on ENOMEM. */
char *store_index__serialize(const struct store_index *idx, size_t *len);
void store_index__free(struct store_index *idx);

/* Check every field of p (as given to store__add: created/ttl_days already
 * filled in); -EINVAL with the cause in err. */
int store_patch__validate(const struct store_patch *p, char *err, size_t errsz);
/* Copy p into idx, replacing the patch of the same name; -ENOMEM. */
int store_index__put(struct store_index *idx, const struct store_patch *p);
/* Index of the patch named name, or -1. */
long store_index__find(const struct store_index *idx, const char *name);
/* Remove entry i, freeing its strings. */
void store_index__drop(struct store_index *idx, size_t i);
/* Replace *slot (an owned string, may be NULL) by a copy of s (may be NULL). */
int store_str__set(const char **slot, const char *s);

#endif
