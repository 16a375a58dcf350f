/* store/: the patch store on disk.
 *
 * A store is a directory (--store, $SUTURE_STORE, or by default the
 * ".suture" found from the program: store__locate) holding one JSON index, "index.json", and a lock file,
 * "lock". The index lists patches as specs, never as code: guard kind,
 * target text, fallback, the anchor and the identity of the original code.
 * Whoever applies a patch synthesizes the guard again from the live original
 * code; a mismatch makes the patch stale (store__mark_stale()). The format is
 * specified in docs/formats/store.md.
 *
 * Safety rules enforced here:
 *   - the directory, the index, the lock file, code/ and its files must
 *     belong to the caller's effective user (or root) and must not be group
 *     or world writable; a directory the store creates is mode 0700, a file
 *     0600;
 *   - the store directory (its last component), code/ and every file in
 *     them are opened without following a symbolic link, relative to the
 *     checked descriptor of their directory, and checked on the descriptor
 *     opened: a store reached through a link is refused;
 *   - a file is written as a new temporary file whose name comes from
 *     getrandom(), created O_EXCL | O_NOFOLLOW (nothing planted at a name
 *     guessed in advance is ever opened), then renamed over the old one;
 *   - a corrupt, truncated or foreign index is never rewritten: opening it
 *     fails with -EBADMSG and the file stays as it is, for inspection;
 *   - every change is a transaction: take flock(LOCK_EX) on "lock", read the
 *     index again from disk, change it, write a temporary file in the same
 *     directory, fsync it, rename it over index.json, fsync the directory.
 *     Two processes changing one store at once lose nothing (patches are
 *     merged by name; the same name: the last writer wins, unless added
 *     with store__add_unique(), which names a different patch apart);
 *   - a patch past its TTL is reported expired and never returned as
 *     applicable (the check is made at read time against "now", never
 *     stored, so an old index cannot keep an expired patch alive).
 *
 * Errors: functions return 0 or -errno; a pointer return gives NULL. Every
 * failure produces one message naming the module, the object and the cause,
 * "store: /x/.suture/index.json: patches[2].line: expected an integer",
 * passed to the handle's print function (store__open_print(), default:
 * stderr) and kept as the handle's last error (store__error()). Meanings:
 *   -ENOENT     no such store directory (without STORE_F_CREATE) / no such patch
 *   -ENOTDIR    the store path (or code/) is not a directory
 *   -EPERM      the store (directory, index, lock, code/ or a code file) is
 *               writable by others, owned by another user or a symbolic link:
 *               refused
 *   -EBADMSG    the index is corrupt, truncated, foreign or of an unknown
 *               format version: refused, file kept
 *   -EINVAL     a patch given to store__add() is incomplete or malformed
 *   -EROFS      a change was asked of a store opened STORE_F_RDONLY
 *   -ETIMEDOUT  another process held the lock too long
 *   -EFBIG      the index is larger than STORE_INDEX_MAX bytes
 *   other       the failing system call's errno
 *
 * Times are Unix seconds (UTC). Functions that judge expiry take "now" so
 * tests can inject it; store__now() gives the real one.
 *
 * Not thread safe: one handle per thread (several processes are fine).
 */
#ifndef SUTURE_STORE_H
#define SUTURE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_FORMAT_VERSION 2
/* The oldest version still read (and migrated on read; docs/formats/store.md). */
#define STORE_FORMAT_VERSION_MIN 1
#define STORE_DEFAULT_DIR ".suture"
#define STORE_ENV "SUTURE_STORE"
#define STORE_DEFAULT_TTL_DAYS 7
#define STORE_MAX_TTL_DAYS 36500
#define STORE_INDEX_MAX (64u << 20)
#define STORE_CONFIG "config.json" /* the user's settings (store/config.c) */
/* Longest accepted string field, in bytes (UTF-8, no NUL). */
#define STORE_STR_MAX 4096
/* Longest patch name; names are printable, without spaces or control bytes. */
#define STORE_NAME_MAX 512
/* Hit counts saturate here (exact in JSON's doubles and in cJSON's output). */
#define STORE_HITS_MAX 999999999999999ull

struct store;

enum store_status {
	STORE_STATUS_ACTIVE = 0, /* may be applied (unless expired) */
	STORE_STATUS_STALE,      /* the live original no longer matches */
	STORE_STATUS_EXPIRED,    /* past created + ttl_days; derived, never stored */
};

/* One patch. In store__add() every pointer is the caller's and is copied.
 * From store__find() and store_iter__next() every pointer is the store's,
 * valid until the next call that changes or reloads the handle (add, remove,
 * record_hit, mark_*, reload) or store__close(). */
struct store_patch {
	const char *name;  /* stable id, see store_patch__default_name() */
	const char *guard; /* one of the kinds store_guard__valid() accepts
	                               (guard_kind__name(), rewrite/guards.c) */
	/* The function the guard is in. */
	const char *module;   /* "app.config" */
	const char *qualname; /* "Loader.load" */
	const char *file;     /* co_filename */
	int first_line;       /* co_firstlineno, >= 1 */
	int line;             /* line of the guarded instruction, >= 1 */
	/* What the guard does, as text for people (never evaluated). */
	const char *target;        /* cfg["timeout"] */
	const char *fallback;      /* 30 */
	const char *consumer;      /* what uses the value, as rewrite/ describes it:
	                               "store x", "return", "call argument" (optional) */
	const char *consumer_kind; /* the same as a token, guard_consumer__name():
	                               "store", "return", "call-arg" ... NULL with a
	                               consumer: derived from its text when the patch
	                               enters the index (guard_consumer__of_text) */
	const char *placement;     /* "value", "statement", "skip" or "redirect"
	                               (guard_placement__name(); optional, NULL) */
	/* Where, and of what: identities computed by rewrite/, opaque here. */
	uint32_t anchor_offset;     /* offset of the guarded instruction, code units */
	const char *anchor_window;  /* fingerprint of the instruction window */
	const char *code_id;        /* hash of canonical bytes + consts + names */
	const char *program;        /* the program the patch was made for (a script's
	                               absolute path, or path + hash): patches never
	                               apply to another program */
	const char *python_version; /* "3.11.2" */
	const char *build_id;       /* interpreter build id (optional, NULL) */
	/* Life cycle. */
	int64_t created;          /* 0 in store__add(): now */
	uint32_t ttl_days;        /* 0 in store__add(): STORE_DEFAULT_TTL_DAYS */
	uint64_t hits;            /* <= STORE_HITS_MAX */
	int64_t last_hit;         /* 0: never */
	enum store_status status; /* ACTIVE or STALE as stored */
	const char *stale_reason; /* optional, NULL */
};

/* Flags for store__open(). */
enum {
	STORE_F_CREATE = 1u << 0, /* create the directory (0700) if missing */
	STORE_F_RDONLY = 1u << 1, /* never change anything (no lock file either) */
	STORE_F_LAZY = 1u << 2,   /* do not read the index at open: for a caller
				     * that only changes the store (each change reads
				     * it again under the lock); until then the handle
				     * shows an empty store (store__reload reads it) */
};

/* Open the store at path (NULL: $SUTURE_STORE, else ".suture"). Checks the
 * directory's owner and mode, and reads and validates the index (a missing
 * index is an empty store). */
int store__open(const char *path, unsigned flags, struct store **out);
/* Messages: fn gets one line without a trailing newline. */
typedef void (*store_print_fn)(const char *msg, void *ctx);
/* store__open whose messages (its own failure's too) go to fn (NULL:
 * stderr, followed by a newline) instead; ctx is the caller's and must
 * outlive the handle: nothing else holds it. */
int store__open_print(const char *path, unsigned flags, store_print_fn fn, void *ctx,
		      struct store **out);
/* Accepts NULL. */
void store__close(struct store *s);

/* The default store of a program (locate.c), when neither --store nor
 * $SUTURE_STORE names one: from program's directory (an absolute path;
 * NULL or anything else: the working directory) up to "/", the first
 * ".suture" directory owned by us or root, as git finds .git (*exists
 * true); else ".suture" beside the program's top package (up while the
 * directory has __init__.py; *exists false, nothing is created). Absolute.
 * -ENAMETOOLONG, or getcwd's -errno. */
int store__locate(const char *program, char *out, size_t cap, bool *exists);

/* The directory as given / the index file's path, for messages. */
const char *store__path(const struct store *s);
const char *store__index_path(const struct store *s);
/* The last error message for this handle ("" if none). */
const char *store__error(const struct store *s);

/* Read the index from disk again (other processes may have written). */
int store__reload(struct store *s);

/* Boot images (image.c, docs/formats/boot-image.md): what suture-run
 * derived from the index for one program, kept beside it so a later run
 * need not derive it again. A cache: the index stays the truth, and an
 * image records the hash of the index bytes it came from.
 *
 * store__index_bytes_hash: FNV-1a's step over 8-byte words of an index's
 * lines but those of the counters programs update
 * as they run (a patch's "hits" and "last_hit", a handled crash's "count"
 * and "last_seen", each alone on its line as the index is written), which
 * no derivation reads. store__index_hash: that of the index bytes
 * store__open or the last store__reload that found a new file parsed (0:
 * no index). */
uint64_t store__index_bytes_hash(const void *p, size_t n);
uint64_t store__index_hash(const struct store *s);
/* An image file's name for a program: "boot-<16 hex>.img". */
void store_image__name(const char *program, char *out, size_t cap);
struct store_image {
	uint8_t *data; /* the file, whole */
	size_t len;
	int fd;              /* open on it, O_CLOEXEC: the caller passes it on or closes it */
	uint64_t index_hash; /* store__index_bytes_hash of index.json as it is now */
};
/* Read the store at path's image name and hash its index, both checked as
 * every store file is (owner, mode, no symbolic link), the index not
 * parsed. Quiet: an image that cannot be used is the caller's business,
 * never an error to show. -ENOENT: no store, no index or no image. */
int store_image__read(const char *path, const char *name, struct store_image *out);
void store_image__free(struct store_image *im);
/* Write the image name (atomically, as the index is written) if the index
 * still hashes to index_hash; -ESTALE if it changed meanwhile (the image
 * would say it came from an index it did not come from). Quiet. */
int store_image__write(const char *path, const char *name, uint64_t index_hash, const uint8_t *data,
		       size_t len);

size_t store__count(const struct store *s);
/* The patch named name, or NULL (errno = ENOENT). */
const struct store_patch *store__find(const struct store *s, const char *name);

/* Add p, or replace the patch of the same name. Validates every field. */
int store__add(struct store *s, const struct store_patch *p);
/* Add several in one transaction (all or nothing). */
int store__add_many(struct store *s, const struct store_patch *p, size_t n);
/* Add p, a patch just made, under p->name (its default name,
 * store_patch__default_name()) or a name made distinct from it; the choice
 * is made under the lock, on the index as it is then, so two processes
 * healing the same site at once never replace each other's patch:
 *   - the store's active patch of that name is this program's (same
 *     program and Python) at another anchor_offset (a second guard of the
 *     kind on the line): the name gets "#<anchor_offset>", and the rule
 *     below is applied to that name;
 *   - the patch of that name is another program's or another Python's:
 *     the name gets "@<8 hex digits>", a hash of program and Python
 *     version (the same each time, so healing this program again replaces
 *     its own);
 *   - else p takes the name, replacing this program's patch there (the
 *     site healed again).
 * The name used is copied into name (size bytes; may be the buffer
 * p->name points to) on success. -ENAMETOOLONG: the distinct name would
 * pass STORE_NAME_MAX or size. */
int store__add_unique(struct store *s, const struct store_patch *p, char *name, size_t size);
/* Remove one patch; -ENOENT if there is none of that name. */
int store__remove(struct store *s, const char *name);
/* Remove every patch; *removed (may be NULL) gets how many there were. */
int store__remove_all(struct store *s, size_t *removed);
/* hits += 1, last_hit = now. -ENOENT if no such patch. */
int store__record_hit(struct store *s, const char *name, int64_t now);
/* The same for n names in one transaction; names missing from the store
 * (removed meanwhile) are skipped and counted in *missing (may be NULL). */
int store__record_hits(struct store *s, const char *const *names, size_t n, int64_t now,
		       size_t *missing);
/* Firings counted elsewhere (suture-run and suture-attach --watch receive
 * them from the agent): for each entry, hits += count (saturating at
 * STORE_HITS_MAX) and last_hit = max(last_hit, last), all in one
 * transaction; entries with count 0 are skipped, names missing from the
 * store are counted in *missing (may be NULL). */
struct store_hit_count {
	const char *name;
	uint64_t count;
	int64_t last; /* Unix seconds of the last firing */
};
int store__add_hits(struct store *s, const struct store_hit_count *v, size_t n, size_t *missing);
/* Handled crashes (docs/formats/store.md, "handled"): a structural
 * exception raised in the program's code that its own catch-all (except
 * Exception, BaseException, a bare except) handled, counted per raising
 * site ("module.qualname:line") and exception type. Never applied: listed
 * by suture-audit, healed only where the user opts the site in
 * (--heal-handled). Strings are the store's, valid as store_patch's. */
#define STORE_HANDLED_MAX 4096
struct store_handled {
	const char *program;  /* as store_patch.program */
	const char *site;     /* "module.qualname:line", printable, no spaces */
	const char *exc_type; /* "KeyError" */
	uint64_t count;       /* 1..STORE_HITS_MAX */
	int64_t last_seen;    /* Unix seconds */
};
/* Add counts in one transaction: each entry's count joins the stored
 * entry of its (program, site, type), or a new one (past
 * STORE_HANDLED_MAX entries new ones are dropped: *dropped, may be NULL).
 * -EINVAL: an entry fails validation (nothing is written). */
int store__add_handled(struct store *s, const struct store_handled *v, size_t n, size_t *dropped);
size_t store__handled_count(const struct store *s);
/* Entry i (< store__handled_count), in index order; valid as store__find's. */
const struct store_handled *store__handled_at(const struct store *s, size_t i);

/* The caller re-synthesized the guard and the live original did not match
 * (reason: free text, may be NULL), or matched again. -ENOENT: no such patch. */
int store__mark_stale(struct store *s, const char *name, const char *reason);
int store__mark_active(struct store *s, const char *name);
/* Renew a patch's life (suture-audit renew): it expires ttl_days from now
 * (0: its own TTL), rounded up to a whole day; its creation time stays.
 * An expired patch applies again. -ENOENT no such patch, -EINVAL a life
 * over STORE_MAX_TTL_DAYS. now: 0 for store__now(). */
int store__renew(struct store *s, const char *name, uint32_t ttl_days, int64_t now);
/* A reload gave the patch's function new code (suture-attach --reload):
 * stored as stale with the reason STORE_SUPERSEDED_PREFIX + reload (what
 * the reload is called: its registry name, pid, time). -ENOENT: no such
 * patch; -ENAMETOOLONG: the reason would pass STORE_STR_MAX. */
#define STORE_SUPERSEDED_PREFIX "superseded by reload "
int store__mark_superseded(struct store *s, const char *name, const char *reload);
/* What superseded p (the text after the prefix), or NULL when p is not a
 * stale patch whose reason says so. */
const char *store_patch__superseded_by(const struct store_patch *p);

/* Selecting patches. Every selector that is NULL matches anything. */
struct store_query {
	const char *program;
	const char *module;
	const char *qualname;
	/* Applicability: a patch made under another Python version or build
	 * never applies (build_id only compared when both sides have one). */
	const char *python_version;
	const char *build_id;
	int64_t now; /* for expiry; 0: store__now() */
	unsigned flags;
};
enum {
	STORE_Q_APPLICABLE = 1u << 0, /* only patches whose verdict is STORE_OK */
};

/* Why a selected patch may or may not be applied. */
enum store_verdict {
	STORE_OK = 0,
	STORE_V_STALE,        /* marked stale */
	STORE_V_EXPIRED,      /* past its TTL */
	STORE_V_OTHER_PYTHON, /* made under another Python version or build */
};
enum store_verdict store_patch__verdict(const struct store_patch *p, const struct store_query *q);
const char *store_verdict__str(enum store_verdict v);

/* Iteration on the caller's stack; never allocates. q (copied, may be NULL:
 * every patch) selects; the store must not change during the iteration. */
struct store_iter {
	const struct store *s;
	struct store_query q;
	size_t next;
};
void store_iter__init(struct store_iter *it, const struct store *s, const struct store_query *q);
const struct store_patch *store_iter__next(struct store_iter *it);

/* ACTIVE, STALE or EXPIRED at time now. */
enum store_status store_patch__status(const struct store_patch *p, int64_t now);
/* created + ttl_days * 86400. */
int64_t store_patch__expires(const struct store_patch *p);
/* "<module>.<qualname>:<line>:<guard>" into buf; -ENAMETOOLONG if it does not
 * fit in size (or STORE_NAME_MAX); characters a name may not hold (spaces,
 * control bytes) become '_'. */
int store_patch__default_name(const struct store_patch *p, char *buf, size_t size);

/* 1 if text is a placement the store knows ("value", "statement", "skip",
 * "redirect": guard_placement__name()), else 0. */
int store_placement__valid(const char *text);
/* 1 if kind is a guard kind the store knows (a healing kind of rewrite/'s
 * table, guard_kind__info()), else 0. */
int store_guard__valid(const char *kind);
/* 1 if token is a consumer token (guard_consumer__by_name()), else 0. */
int store_consumer__valid(const char *token);
const char *store_status__str(enum store_status st);

int64_t store__now(void);
/* "2026-11-21T13:14:39Z" (needs size >= 21); -ERANGE if it does not fit. */
int store__format_time(int64_t t, char *buf, size_t size);
/* Parse exactly that form; -EINVAL otherwise. */
int store__parse_time(const char *text, int64_t *out);

/* The application paths config.json names ({"app_paths": ["/abs", ...]},
 * docs/formats/store.md), joined with ':' into out[cap] ("" when the file
 * or the key is absent): more application code for the crash decision,
 * added to --app-path's. -EBADMSG (a malformed file: unknown keys, a
 * relative path, one with ':'), -EPERM (the file fails the store's checks),
 * -ENAMETOOLONG; err says which and why in one line. */
int store_config__app_paths(struct store *s, char *out, size_t cap, char *err, size_t errlen);
/* The sites config.json opts in to healing although the application's
 * catch-all handles them ({"heal_handled": ["module.qualname:line", ...]}),
 * '\n'-joined into out[cap] ("" when absent); errors as app_paths. */
int store_config__heal_handled(struct store *s, char *out, size_t cap, char *err, size_t errlen);

#endif
