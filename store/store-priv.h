/* store/ private: the in-memory index and its JSON form
 * (docs/formats/store.md). */
#ifndef SUTURE_STORE_PRIV_H
#define SUTURE_STORE_PRIV_H

#include "store/store.h"

#include <stdbool.h>
#include <sys/stat.h>

/* Patches in index order; every string is owned (malloc'd) by the index. */
struct store_index {
	struct store_patch *v;
	size_t n, cap;
	/* Handled crashes ("handled"), one per (program, site, type). */
	struct store_handled *h;
	size_t nh, caph;
};

#define STORE_ERR_MAX 1024

/* Decode an index from the bytes [p, end). On failure returns -EBADMSG (or
 * -ENOMEM) and writes the cause into err ("line 3, column 7: invalid JSON",
 * "patches[2].line: expected an integer"); *out is left empty. */
int store_index__parse(const char *p, const char *end, struct store_index *out, char *err,
		       size_t errsz);
/* The JSON form of idx, malloc'd, ending in a newline; NULL on ENOMEM. */
char *store_index__serialize(const struct store_index *idx, size_t *len);
void store_index__free(struct store_index *idx);

/* Check every field of p (as given to store__add: created/ttl_days already
 * filled in); -EINVAL with the cause in err. */
int store_patch__validate(const struct store_patch *p, char *err, size_t errsz);
/* Copy p into idx, replacing the patch of the same name; -ENOMEM. */
int store_index__put(struct store_index *idx, const struct store_patch *p);
/* Add e's count to the entry of its (program, site, type) (saturating at
 * STORE_HITS_MAX; last_seen the later), or append a copy; past
 * STORE_HANDLED_MAX entries a new one is dropped (1). 0, 1 or -ENOMEM. */
int store_index__put_handled(struct store_index *idx, const struct store_handled *e);
/* Check an entry's fields; -EINVAL with the cause in err. */
int store_handled__validate(const struct store_handled *e, char *err, size_t errsz);
/* Free the patches only (the handled crashes stay). */
void store_index__free_patches(struct store_index *idx);
/* Index of the patch named name, or -1. */
long store_index__find(const struct store_index *idx, const char *name);
/* Remove entry i, freeing its strings. */
void store_index__drop(struct store_index *idx, size_t i);
/* Replace *slot (an owned string, may be NULL) by a copy of s (may be NULL). */
int store_str__set(const char **slot, const char *s);

/* Files and directories, for store.c and code.c (docs/formats/store.md,
 * "Safety rules"). path: the object's path, for messages. Each reports its
 * failure through the store's print function and, if s is not NULL, keeps
 * it as s's last error. */

/* The store directory's descriptor, checked at store__open(). */
int store__fd(const struct store *s);
/* Open the directory name in pfd into *out (creating it mode 0700 first if
 * create), never through a symbolic link (-EPERM), checked on the
 * descriptor: a directory (-ENOTDIR), owned by the caller or root and not
 * group or world writable (-EPERM). -ENOENT (not reported): no such entry. */
int store_dir__open(struct store *s, int pfd, const char *name, const char *path, bool create,
		    int *out);
/* Open the file name in dirfd for reading into *out, *st its fstat: never
 * through a symbolic link (-EPERM) nor blocking on a FIFO; a regular file
 * (-EBADMSG) owned by the caller or root, not group or world writable
 * (-EPERM). -ENOENT (not reported): no such file. */
int store_file__open(struct store *s, int dirfd, const char *name, const char *path, int *out,
		     struct stat *st);
/* Replace the file name in dirfd (dirpath: for messages) by len bytes of
 * data: a new temporary file "."name".tmp.<16 hex from getrandom()>" created
 * O_CREAT | O_EXCL | O_NOFOLLOW, checked on its descriptor (regular, ours,
 * one link), fchmod 0600, written, fsync'd, renamed over name, then the
 * directory fsync'd. *st (may be NULL): the file as written (before the
 * rename). */
int store_file__replace(struct store *s, int dirfd, const char *dirpath, const char *name,
			const char *data, size_t len, struct stat *st);

#endif
