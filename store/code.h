/* store/: display copies of original code objects (docs/formats/store.md,
 * "Code files").
 *
 * When a patch is made, the original code object's parts (canonical
 * co_code, exception and line tables, names, local names and kinds,
 * constants as type/repr texts, first line, qualname, filename, ...) are
 * saved as data in <store>/code/<hex>.json, one file per code id. Only
 * `suture-audit explain` reads them, to synthesize the guard again and show
 * the original and patched bytecode side by side. Nothing in them is ever
 * executed or installed: loading a patch still re-synthesizes it from the
 * live original.
 */
#ifndef SUTURE_STORE_CODE_H
#define SUTURE_STORE_CODE_H

#include <stddef.h>

#include "rewrite/rewrite.h"   /* struct rewrite_code_info (a plain struct) */

#define STORE_CODE_DIR "code"
#define STORE_CODE_FORMAT 1

/* The file's path for a code id ("fnv64:<16 hex>"): -EINVAL if the id is
 * not of that form (nothing else may become a file name). */
int store_code__path(const char *store_dir, const char *code_id, char *buf, size_t size);

/* Write info as <store_dir>/code/<hex>.json: temp file, fsync, rename,
 * fsync the directory (mode 0600, the directory 0700). 0 or -errno. */
int store_code__save(const char *store_dir, const char *code_id,
		     const struct rewrite_code_info *info);

/* A loaded file: info points into storage owned here. */
struct store_code {
	struct rewrite_code_info info;
	void *mem;   /* private */
};

/* 0; -ENOENT no such file (an older store); -EBADMSG malformed (any field
 * missing, of the wrong type, hex odd or invalid, counts inconsistent). */
int store_code__load(const char *store_dir, const char *code_id, struct store_code *out);
/* Accepts a zeroed or freed one. */
void store_code__free(struct store_code *c);

#endif
