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

#include "rewrite/rewrite.h" /* struct rewrite_code_info (a plain struct) */

#define STORE_CODE_DIR "code"
#define STORE_CODE_FORMAT 1

struct store;

/* The file's path for a code id ("fnv64:<16 hex>"), for messages: -EINVAL
 * if the id is not of that form (nothing else may become a file name). */
int store_code__path(const char *store_dir, const char *code_id, char *buf, size_t size);

/* Write info as <store>/code/<hex>.json: code/ is created mode 0700 or
 * opened with the store directory's checks (no symbolic link, the
 * caller's or root's, not group or world writable: -EPERM, -ENOTDIR), the
 * file replaced atomically (a new temporary file of a random name, O_EXCL,
 * mode 0600, fsync, rename, fsync of code/). 0 or -errno; a failure is
 * reported through the store's print function and kept in s. */
int store_code__save(struct store *s, const char *code_id, const struct rewrite_code_info *info);

/* A loaded file: info points into storage owned here. */
struct store_code {
	struct rewrite_code_info info;
	void *mem; /* private */
};

/* 0; -ENOENT no such file (an older store); -EPERM refused (code/ or the
 * file is a symbolic link, another user's, or group or world writable;
 * reported through the store's print function); -EBADMSG malformed (not a
 * regular file, any field missing, of the wrong type, hex odd or invalid,
 * counts inconsistent). */
int store_code__load(const struct store *s, const char *code_id, struct store_code *out);
/* The file's text for info (malloc'd, NUL terminated), NULL on ENOMEM;
 * store_code__save() writes it. */
char *store_code__encode(const char *code_id, const struct rewrite_code_info *info);
/* Decode the bytes [p, end) of a code file for code_id: 0 or -EBADMSG
 * (the file's name and the code_id inside must agree); store_code__load()
 * reads the file through it, tests/fuzz/fuzz_store_code.c fuzzes it. */
int store_code__decode(const char *p, const char *end, const char *code_id, struct store_code *out);
/* Accepts a zeroed or freed one. */
void store_code__free(struct store_code *c);

#endif
