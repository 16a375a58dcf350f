/* inspect/: private helpers shared by the module's files. */
#ifndef SUTURE_INSPECT_PRIV_H
#define SUTURE_INSPECT_PRIV_H

#include <stdarg.h>

#include "attach/attach.h"
#include "inspect/inspect.h"

struct attach_elf;

/* A copy of remote memory taken while threads are stopped; reads that fall
 * inside one are served from it (see inspect__prefetch). */
struct inspect_region {
	uint64_t addr;
	size_t len;
	uint8_t *buf;
};

/* Page cache for the decode phase: objects cluster in pymalloc arenas, so
 * whole pages cost one read for many small decoder reads. Direct mapped. */
#define INSPECT_PAGE 4096u
#define INSPECT_NPAGES 1024u
struct inspect_page {
	uint64_t addr; /* page address + 1; 0 = empty slot */
	uint8_t data[INSPECT_PAGE];
};

struct inspect_proc {
	pid_t pid;
	struct attach_proc *ap;
	struct attach_elf *elf; /* holds _PyRuntime */
	struct inspect_offsets off;
	struct inspect_types types;
	struct inspect_reader reader;
	enum inspect_source source;
	char source_path[4096];
	uint64_t runtime;
	uint32_t version;
	unsigned long reads; /* remote reads issued, for stats */
	struct inspect_region *regions;
	size_t nregions, cap_regions, region_bytes;
	size_t last_region;         /* the one the last read hit: reads cluster */
	struct inspect_page *pages; /* NULL: no page cache */
	struct attach_cache_mem pages_mem;
	char err[512];
};

/* Below this, an address is never a valid object (the zero page). */
#define INSPECT_MIN_ADDR 4096u

/* Bounded reads through a reader: addr 0 or tiny gives -EFAULT. */
int inspect__read(const struct inspect_reader *r, uint64_t addr, void *buf, size_t len);
int inspect__read_u64(const struct inspect_reader *r, uint64_t addr, uint64_t *v);
/* An object's ob_type, checked to be a plausible address (value.c). */
int inspect__obj_type(const struct inspect_reader *r, uint64_t addr, uint64_t *type);
/* A type object's tp_name into buf ("?" and -errno when unreadable;
 * value.c). */
int inspect__type_name(const struct inspect_reader *r, uint64_t type, char *buf, size_t len);
/* A type object's tp_flags (value.c). */
int inspect__type_flags(const struct inspect_reader *r, uint64_t type, uint64_t *flags);
/* A printable ASCII C string at p (tp_name, PyMemberDef.name), at most
 * len-1 bytes and 127: -EFAULT unreadable, -EINVAL empty or not printable. */
int inspect__cstr(const struct inspect_reader *r, uint64_t p, char *buf, size_t len);
/* Copy [addr, addr+len) now; later reads inside it are served locally.
 * Bounded (INSPECT_PREFETCH_MAX in total); -E2BIG past it. */
int inspect__prefetch(struct inspect_proc *ip, uint64_t addr, size_t len);
void inspect__drop_prefetch(struct inspect_proc *ip);
/* Serve reads through a page cache until inspect__page_cache_off(). */
int inspect__page_cache_on(struct inspect_proc *ip);
void inspect__page_cache_off(struct inspect_proc *ip);
int inspect__fail(struct inspect_proc *ip, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* String building (inspect/value.c). All stop growing at `cap_limit`. */
int inspect_str__putn(struct inspect_str *s, const char *p, size_t n, size_t limit);
int inspect_str__printf(struct inspect_str *s, size_t limit, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Append code point cp as UTF-8. */
int inspect_str__put_utf8(struct inspect_str *s, uint32_t cp, size_t limit);

#endif
