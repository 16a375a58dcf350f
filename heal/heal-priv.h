/* heal/: private declarations shared by the module's files (README.md
 * says which file does what). */
#ifndef SUTURE_HEAL_PRIV_H
#define SUTURE_HEAL_PRIV_H

#include "attach/attach.h"
#include "heal/heal.h"
#include "inspect/inspect.h"
#include "rewrite/guard.h"
#include "store/store.h"
#include "wire/channel.h"
#include "wire/image.h"
#include "wire/msg.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CO_OPTIMIZED 0x1

/* ---- page cache (pages.c) ----
 *
 * A page cache over inspect's reader: reading a code object touches many
 * small objects that sit on a few pages (one process_vm_readv a page
 * instead of one a field). Valid only while the target cannot change what
 * we read: it is filled while a crashing thread or an importing module is
 * parked, and dropped after every patch we install and at the end of each
 * event. Direct-mapped. */
#define HEAL_PAGE 4096u
#define HEAL_NPAGES 128u

struct heal_pages {
	const struct inspect_reader *under;
	bool on;
	uint64_t tag[HEAL_NPAGES];   /* page address + 1; 0 = empty */
	uint8_t (*data)[HEAL_PAGE];  /* NULL: every read goes to under */
	struct attach_cache_mem mem; /* data's mapping */
};

/* view becomes a reader like under whose reads go through pc (while
 * pc->on). Without memory for the pages it reads directly. */
void heal_pages__init(struct heal_pages *pc, const struct inspect_reader *under,
		      struct inspect_reader *view);
void heal_pages__drop(struct heal_pages *pc);
void heal_pages__free(struct heal_pages *pc); /* accepts a zeroed one */

/* ---- patch senders (send.c) ----
 *
 * How a PATCH reaches the agent, whatever the transport: the live session
 * (inject/, one patch and its answer at a time) or the agent's boot hook
 * (a socket of its own, wire/boot.h, where patches are pipelined). The
 * caller posts patches, flushes, and collects the answers in posting
 * order; chunk and inflight say how the caller may pipeline: flush once
 * `chunk` patches are posted, and keep at most `inflight` written ones
 * unanswered (so neither side blocks on a full socket buffer). */
struct heal_sender;

struct heal_sender_ops {
	/* Hand p over (its request id is assigned here): written at once or
	 * queued. 0, or -errno with why: not sent (-EPIPE: the agent is gone). */
	int (*post)(struct heal_sender *sd, const struct wire_patch *p, char *why, size_t cap);
	/* Write what is queued. last: the final write of a load (the boot
	 * sender puts the hook's RELEASE behind the patches). 0 or -EPIPE. */
	int (*flush)(struct heal_sender *sd, bool last);
	/* The answer to the oldest patch posted and not collected yet. 0 with
	 * *res (res->status: whether the agent installed it), or -errno with
	 * why: the transport failed (-EPIPE: the agent is gone). */
	int (*collect)(struct heal_sender *sd, struct wire_patch_result *res, char *why,
		       size_t cap);
};

struct heal_sender {
	const struct heal_sender_ops *ops;
	size_t chunk, inflight;
};

/* The live session: post sends and waits (inject_session__send_patch,
 * which keeps crash reports arriving meanwhile); chunk 1, inflight 0. */
struct heal_session_sender {
	struct heal_sender base;
	struct inject_session *s; /* NULL: post fails with -ENOTCONN */
	bool have;                /* an answer not collected yet */
	struct wire_patch_result res;
};

/* The boot hook's socket, while it holds a module: PATCH frames are
 * queued and written in one go (the parked importer wakes once for them
 * all); the hook answers each in order. */
struct heal_boot_sender {
	struct heal_sender base;
	int fd;
	struct wire_reader *rd; /* fd's frames (the caller's: it reads fd next) */
	uint64_t next_request, next_answer;
	struct wire_buf posted;
	uint64_t release;   /* the module's event id, RELEASEd behind
					* the last patches (0: none) */
	bool released;      /* ... and it went out */
	double released_at; /* when (heal__now_ms) */
};

void heal_sender__session(struct heal_session_sender *ss, struct inject_session *s);
void heal_sender__boot(struct heal_boot_sender *b, int fd, struct wire_reader *rd,
		       uint64_t release);
void heal_sender__boot_free(struct heal_boot_sender *b);

/* The boot socket as suture-run's supervisor speaks it (wire/boot.h): the
 * hook's report of a module about to run (any other frame: -EPROTO; EOF:
 * -EPIPE), and a RELEASE (the list mode before any report, or a module's
 * event id). 0 or -errno. */
int heal_boot__next_module(int fd, struct wire_reader *rd, struct wire_crash *ev);
/* The same where the hook may install from a boot image (suture-run's own
 * process): the PATCH_RESULTs of image entries sent before the report,
 * in *img (malloc'd, *nimg of them; freed by the caller). */
int heal_boot__next_report(int fd, struct wire_reader *rd, struct wire_crash *ev,
			   struct wire_patch_result **img, size_t *nimg);
int heal_boot__release(int fd, uint64_t event_id);

/* ---- names (names.c): pure functions of their inputs ---- */

/* Copy src into dst[cap], truncated, always terminated. */
void heal_names__copy(char *dst, size_t cap, const char *src);
/* The last component of path. */
const char *heal_names__base(const char *path);
/* co_filename as a path: "<...>" and "" as they are, absolute as it is,
 * relative joined to cwd (unless cwd is ""). */
void heal_names__join(const char *cwd, const char *file, char *out, size_t cap);
/* The store's key for a file: heal_names__join, resolved by realpath when
 * it exists. */
void heal_names__file_key(const char *cwd, const char *file, char *out, size_t cap);
/* The module a file is: "__main__" for the program itself (program may be
 * NULL), a package's directory name for its __init__, else the file's
 * name without its extension ("?" if empty). */
void heal_names__module(const char *program, const char *absfile, char *out, size_t cap);

/* ---- stored specs (spec.c) ---- */

/* A stored patch of this program, copied out of the store. */
struct spec {
	char *name, *guard, *qualname, *file, *target, *fallback, *code_id, *window;
	uint32_t anchor;
	int line;
	int first_line; /* co_firstlineno of the function it was made for */
	enum store_verdict verdict;
	int64_t expires;
	bool done;   /* applied, or reported */
	bool loaded; /* applied (the agent said so) */
	/* A function of its qualname and file was seen, but at another first
	 * line: a sibling of the same name (a property's getter and setter
	 * are both "C.x") may still take it; specs__sweep decides at the end. */
	bool seen;
	size_t seq; /* its place in the store's order */
};

/* The patches of program under python_version (those of another Python
 * left out), copied from st, sorted by qualname (the store's order among
 * those of one qualname): heal_specs__range finds a function's without a
 * scan of all. 0 or -ENOMEM. */
int heal_specs__from(const struct store *st, const char *program, const char *python_version,
		     struct spec **out, size_t *n);
void heal_specs__free(struct spec *v, size_t n);
/* Whether s, not applied or reported yet, is for the function qualname of
 * file (the store's file key). */
bool heal_spec__for(const struct spec *s, const char *qualname, const char *file);
/* [*lo, *hi): the specs of v (as heal_specs__from sorts them) whose
 * qualname is qualname; empty (*lo == *hi) if none. */
void heal_specs__range(const struct spec *v, size_t nv, const char *qualname, size_t *lo,
		       size_t *hi);
/* ... and may be applied to its live code whose identity is code_id (not
 * marked stale). */
bool heal_spec__applies(const struct spec *s, const char *qualname, const char *file,
			const char *code_id);
/* Whether a spec still waiting may be for the code named qualname or for
 * code nested in it ("C.m" for "C.m.<locals>.<listcomp>", not "C.mm"):
 * qualname was read into cap bytes, and one that may have been cut short
 * is wanted (its code is looked at whole). */
bool heal_specs__wanted(const struct spec *v, size_t nv, const char *qualname, size_t cap);

/* ---- the pipeline's state ---- */

/* A patch posted while loading whose answer is still to be read. */
struct pend {
	struct spec *s;
	char qualname[256], base[128];
	/* Recording a boot image (h->rec): the PATCH_NAMED payload sent (code
	 * address 0), its function's first line, and whether it was the first
	 * patch of that function in this load (its key comes in the answer). */
	uint8_t *payload;
	size_t payload_len;
	uint32_t firstlineno;
	bool head;
};

/* A code object we replaced, and where its guard's fallback starts: a
 * frame that kept the original (it could not take the new code while
 * suspended) may still crash there, and be resumed in flight then. */
struct heal_patched {
	uint64_t code_addr;
	uint32_t offset, fallback_unit, base_depth;
	/* The name persist() stored it under (it may differ from the agent's
	 * name for it: "#anchor", "@hash"), for its HITS; empty: not stored. */
	char *stored;
};

/* Firings received from the agent, not stored yet. */
struct heal_hit {
	char *name;
	uint64_t count;
	int64_t last;
};

/* Handled crashes received from the agent, not stored yet. */
struct heal_handled {
	char *site, *exc_type;
	uint64_t count;
	int64_t last;
};

struct heal {
	struct inspect_proc *ip;
	const struct inspect_reader *r;
	struct inspect_reader cached;
	struct heal_pages pages;
	struct inject_session *s;
	struct heal_session_sender sess; /* s, as a patch sender */
	struct heal_sender *send;        /* where patches go now: &sess.base,
						 * or a boot hook's while it loads */
	struct heal_opts o;
	char program[PATH_MAX];
	FILE *log;
	char last[1024]; /* the last "[suture]" line, for a "failed" event */
	pid_t pid;
	bool tag; /* heal__set_tag: lines name the pid */
	/* While a boot hook's module is held, lines wait here and are written
	 * at once after it is released (heal__load_tree_boot_release): 100
	 * "already healed" lines were 100 writes while the module waited. */
	FILE *deferred; /* heal__defer_begin's memory stream, or NULL */
	char *deferred_buf;
	size_t deferred_len;
	char cwd[PATH_MAX];
	char pyver[16];
	struct heal_stats st;
	char err[512];
	/* Code objects this session replaced: a second thread that crashed at
	 * the same site before the patch landed reports the old code again. */
	struct heal_patched *patched;
	size_t npatched, cappatched;
	char key_of[PATH_MAX], key[PATH_MAX];   /* heal__file_key's last answer */
	double t_walk, t_read, t_synth, t_send; /* load times, for --verbose */
	struct pend *pend;                      /* posted, not answered yet */
	size_t npend, cappend;
	size_t pend_read;      /* ... of which answered (read) */
	size_t pend_sent;      /* ... of which flushed */
	struct heal_hit *hits; /* guard firings not yet stored */
	size_t nhits;
	struct heal_handled *handled; /* handled crashes not yet stored */
	size_t nhandled;
	char **handled_seen; /* sites (with their type) already announced */
	size_t nhandled_seen;
	/* heal__load_live: the live code may carry our patches already (a
	 * second attach): a mismatch is counted, never marked stale. */
	bool live;
	unsigned live_skipped;
	/* heal__preload: the specs read from the caller's store handle, for
	 * the next heal__load_tree (used once). */
	struct store *hit_st; /* heal__use_store, not ours */
	struct spec *pre;
	size_t npre;
	bool have_pre;
	/* Crashes being healed inside resumed calls (a continuation crashed
	 * again before its answer): heal__on_crash runs nested this deep. */
	unsigned nest;
	/* heal__record_image: a boot load records what it sent here. */
	struct heal_image_rec *rec;
};

/* A stored patch loaded (load.c), the usual way or by the boot hook from a
 * boot image (image.c): both say it in these words. */
struct heal_loaded {
	const char *name, *guard, *target, *fallback, *function, *base;
	int line;
};
/* "already healed: GUARD TARGET -> FALLBACK in FUNCTION (BASE:LINE)" */
void heal_loaded__text(const struct heal_loaded *l, char *out, size_t cap);
/* The --json "loaded" event (docs/formats/events.md). */
void heal_loaded__event(const struct heal_loaded *l, FILE *events, pid_t pid);
/* "failed: loading NAME: WHY" */
void heal_loaded__failed_text(const char *name, const char *why, char *out, size_t cap);

/* ---- image.c: recording a boot image (docs/formats/boot-image.md) ----
 *
 * While a boot hook's module is loaded (heal__load_tree_boot_release),
 * each PATCH_NAMED the agent installed is kept with its function's
 * qualified name and first line and the agent's key of the code it
 * replaced. A module whose load was clean (every stored patch of its file
 * installed, nothing failed, stale or expired) becomes a section; any
 * other is left out and loads the usual way in later runs too. */
struct heal_image_section {
	char *file;              /* the store's file key */
	struct wire_buf entries; /* wire_image__entry's, in order */
	uint32_t n;
};

struct heal_image_rec {
	struct heal_image_section *v;
	size_t n;
	struct wire_buf cur; /* the module being loaded */
	uint32_t ncur;
	bool cur_bad;        /* something in it cannot go into an image */
	int64_t valid_until; /* the first expiry of what was kept, 0: none */
};

void heal_image_rec__begin(struct heal_image_rec *r);
/* expires: the stored patch's (0: never). */
void heal_image_rec__entry(struct heal_image_rec *r, const struct pend *p, uint64_t key,
			   int64_t expires);
/* The module of file is loaded: kept as a section when clean. */
void heal_image_rec__end(struct heal_image_rec *r, const char *file, bool clean);
const struct heal_image_section *heal_image_rec__find(const struct heal_image_rec *r,
						      const char *file);
void heal_image_rec__free(struct heal_image_rec *r);

/* suture-run's use of an image (heal/run.c). */
struct heal_boot_image {
	struct store_image file;
	struct wire_image img;
	bool use;     /* checked: passed to the hook */
	bool *keep;   /* per section: good for the next image (not missed, nothing failed) */
	char **files; /* the sections' files: the boot list */
	size_t nfiles;
	char name[64];  /* store_image__name */
	uint64_t build; /* this suture-run's and agent's (0: unknown, no image) */
	uint32_t py_version;
};
/* The program's image in the store when it can be used: made by this
 * suture-run and agent for this interpreter version from the index as it
 * is now, none of its patches expired. 0, or -ENOENT / -ESTALE / -ENOMEM
 * (bi is then empty but for what a later write needs). */
int heal_boot_image__open(struct heal_boot_image *bi, const char *store_dir, const char *program,
			  uint32_t py_version, const char *agent_path);
void heal_boot_image__free(struct heal_boot_image *bi);
/* The hook's answers for an image section (heal_boot__next_report): the
 * load's lines and events, as a load the usual way says them. */
struct heal_boot_image_out {
	FILE *log, *events;
	bool quiet;
	pid_t pid;
};
void heal_boot_image__report(struct heal_boot_image *bi, const struct wire_patch_result *res,
			     size_t n, const struct heal_boot_image_out *o, struct heal_stats *st);
/* A module of file (as the hook reported it) was reported without the
 * image's answers: its section no longer fits (it is not kept). */
void heal_boot_image__missed(struct heal_boot_image *bi, const char *file);
/* The next image: for each file of the boot list, the section recorded in
 * this run (rec), else the old image's unless this run found it did not
 * fit (heal_boot_image__missed, a failed install), else an empty one
 * (loaded the usual way). Written only if the index still hashes to
 * index_hash (store_image__write). */
int heal_boot_image__write(const struct heal_boot_image *bi, const struct heal_image_rec *rec,
			   char *const *files, size_t nfiles, const char *store_dir,
			   const char *program, uint64_t index_hash);

/* ---- heal.c ---- */

double heal__now_ms(void);
/* One "[suture] ..." line on the log. */
/* Keep the lines heal__say writes from now on (in memory; said at once
 * if that cannot be had), until heal__deferred_flush writes them at once. */
void heal__defer_begin(struct heal *h);
void heal__deferred_flush(struct heal *h);
void heal__say(struct heal *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A progress line (a crash seen, a guard applied, a patch stored or
 * loaded): as heal__say, but not printed with heal_opts.quiet. What failed,
 * was refused or needs the user goes through heal__say. */
void heal__note(struct heal *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether the crash ev is at a site the user opted in with --heal-handled
 * (heal_opts.heal_handled): its site ("module.qualname:line") in site. */
bool heal__opted_in(struct heal *h, const struct wire_crash *ev, char *site, size_t cap);

/* ---- events.c ---- */

/* One JSON event line on out (NULL: nothing): {"event": event, "time",
 * "pid", then the (spec, value) pairs up to NULL: "s:key" a string,
 * "i:key" a long long, "f:key" a double. docs/formats/events.md. */
void heal_event__emit(FILE *out, pid_t pid, const char *event, ...);
/* heal_names__file_key from the target's cwd, remembering the last
 * answer (every code object of a module has the same co_filename). */
void heal__file_key(struct heal *h, const char *file, char *out, size_t cap);
/* The store, with its messages as [suture] lines (a missing one is no
 * news); the handle is the caller's to close before it returns. */
int heal__open_store(struct heal *h, unsigned flags, struct store **out);
const struct heal_patched *heal__was_patched(const struct heal *h, uint64_t addr);
void heal__note_patched(struct heal *h, uint64_t addr, uint32_t offset,
			const struct guard_patch *gp);

/* ---- synthesis shared by crashes and loads (crash.c) ---- */

struct built {
	struct guard_decision d;
	struct guard_patch gp;
	struct guard_delta delta;
	char fp[32], code_id[32];
};

/* Synthesize b->d's guard on hc and pass it through the diff gate. */
int heal__build_patch(const struct heal_code *hc, struct built *b, char *why, size_t cap);
/* --verbose: the delta and the patched code side by side. */
void heal__show_delta(struct heal *h, const struct heal_code *hc, const struct built *b);

/* ---- sending (send.c) ---- */

/* The PATCH message for gp on the code at code_addr (constants are named,
 * never serialized objects: docs/formats/channel.md). The message borrows
 * gp's bytes; heal_outgoing__free releases what it allocated itself. */
struct outgoing_patch {
	struct wire_patch p;
	struct wire_const consts[GUARD_MAX_CONSTS];
	struct wire_const *items[GUARD_MAX_CONSTS];
};
int heal_outgoing__fill(struct outgoing_patch *w, uint64_t code_addr, const struct guard_patch *gp,
			char *why, size_t cap);
void heal_outgoing__free(struct outgoing_patch *w);

/* Send one patch through h->send and wait for its answer (nothing else
 * may be waiting for one). 0 installed; -EPIPE the agent is gone; other
 * -errno: refused or not sent (why says it). */
int heal__send_one(struct heal *h, uint64_t code_addr, const struct guard_patch *gp,
		   const struct wire_patch_meta *meta, char *why, size_t cap,
		   struct wire_patch_result *res);

/* ---- loading (load.c) ---- */

/* A code object the walk met, with what the load asks of it first (read
 * once, by the walk: a load reads each node's header and names no more). */
struct node {
	uint64_t addr;
	int firstlineno;
	char *qualname;       /* owned */
	const char *filename; /* one of the tree's files */
};

struct tree {
	struct node *v;
	size_t n, cap;
	char **files; /* the distinct co_filename texts (a module has one) */
	size_t nfiles;
};

/* The code object at addr and, through co_consts, every code object
 * nested in it, in walk order (the root first). 0 or -ENOMEM. */
int heal__tree_walk(struct heal *h, struct tree *t, uint64_t addr, int depth);
void heal__tree_free(struct tree *t);
/* Apply, in sequence, the stored patches whose code_id matches the live
 * code at nd; settle the others of its function. root: the module (or
 * function) walked; func: the live function object, 0 at boot. 0 or
 * -EPIPE. */
int heal__load_node(struct heal *h, struct spec *v, size_t nv, uint64_t root, uint64_t func,
		    const struct node *nd);
/* The specs of this program from the store (none: 0 with *n 0). */
int heal__specs_load(struct heal *h, struct spec **out, size_t *n);
/* After a load: the patches whose function was seen only at another first
 * line (no sibling took them) no longer match the code. */
void heal__specs_sweep(struct heal *h, struct spec *v, size_t nv, int rc);

/* watch.c: what --dump checks before anything is injected (the layout,
 * one snapshot of the threads); *ip stays open on success. -errno with
 * the one-line message in err. Shared by --watch and --reload. */
int heal__check_target(pid_t pid, struct inspect_proc **ip, char *err, size_t errlen);

/* linemap.c: line `line` (1-based) of text old in the edited text now
 * (docs/design.md §14): above the edited region it keeps its number, below
 * it moves with the region's change in length, inside it keeps its
 * distance from the region's start, clamped to it; right below lines
 * inserted, it is the first of them. -1: the line is past old's end, or
 * the edit deleted the region it was in. */
int heal_linemap__map(const char *old, size_t old_len, const char *now, size_t now_len, int line);

/* hold.c: suture-attach --watch --hold. Crashes held, with the source text
 * each one's file had when it was held (the frame runs that text's code). */
struct heal_held {
	struct wire_crash ev;
	char *src; /* NULL: the file could not be read */
	size_t src_len;
	bool reparked; /* a restart failed: its next CRASH is this crash again */
};
struct heal_holds {
	struct heal_held *v;
	size_t n;
};
/* A crash the agent holds: print the "held" line with what to run next,
 * keep the file's text. -ENOMEM (the crash stays held). */
int heal_hold__on_crash(struct heal *h, struct heal_holds *hs, const struct wire_crash *ev);
/* A reload gave a held crash's function new code (chg: event id, the new
 * code's address, the reload's name): find where its failing line starts
 * in the new code and restart it there. 0, or -EPIPE when the agent is
 * gone; a restart that cannot be made is a line, the crash stays held. */
int heal_hold__on_changed(struct heal *h, struct heal_holds *hs, const struct wire_crash *chg);
void heal_hold__free(struct heal_holds *hs);

#endif
