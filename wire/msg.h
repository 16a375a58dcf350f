/* wire/: the channel's wire forms (docs/formats/channel.md).
 *
 * Shared by the debugger side (libsuture_inject.a) and the agent
 * (libsuture_agent.so compiles wire/msg.c in). Pure C, no Python, no I/O.
 *
 * A frame is an 8-byte header (u32 payload length, u16 type, u16 zero,
 * little-endian) followed by the payload. Decoders take (p, end) over bytes
 * that came from another process and fail with -EINVAL on truncation,
 * trailing bytes, bad counts or nesting: they never trust a length.
 * Decoded strings are copied into the fixed buffers of the message struct,
 * truncated to fit and always NUL-terminated.
 * Encoders append to a struct wire_buf; an allocation failure is sticky
 * (buf.err = -ENOMEM) and reported by wire_buf__finish_frame().
 */
#ifndef SUTURE_INJECT_MSG_H
#define SUTURE_INJECT_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_PROTO_VERSION 3u
#define WIRE_HDR_SIZE 8u
/* The largest payload either side accepts (a patch is a few KiB). */
#define WIRE_MAX_PAYLOAD (16u << 20)
/* Nesting limit of tuple constants in a patch. */
#define WIRE_MAX_CONST_DEPTH 8

enum wire_msg_type {
	WIRE_MSG_HELLO = 1,            /* debugger -> agent */
	WIRE_MSG_WELCOME = 2,          /* agent -> debugger */
	WIRE_MSG_CRASH = 3,            /* agent -> debugger: a parked thread */
	WIRE_MSG_RELEASE = 4,          /* debugger -> agent: let the exception go on */
	WIRE_MSG_PATCH = 5,            /* debugger -> agent */
	WIRE_MSG_PATCH_RESULT = 6,     /* agent -> debugger */
	WIRE_MSG_DETACH = 7,           /* debugger -> agent: unwatch, close */
	WIRE_MSG_BYE = 8,              /* agent -> debugger: detached */
	WIRE_MSG_ERROR = 9,            /* agent -> debugger: a frame was refused */
	WIRE_MSG_PING = 10,            /* debugger -> agent */
	WIRE_MSG_PONG = 11,            /* agent -> debugger */
	WIRE_MSG_RESUME = 12,          /* debugger -> agent: resume a parked crash in flight */
	WIRE_MSG_RESUME_RESULT = 13,   /* agent -> debugger */
	WIRE_MSG_PATCH_NAMED = 14,     /* debugger -> agent: PATCH with a name and metadata */
	WIRE_MSG_LIST = 15,            /* debugger -> agent: which patches are live */
	WIRE_MSG_LIST_RESULT = 16,     /* agent -> debugger */
	WIRE_MSG_ROLLBACK = 17,        /* debugger -> agent: give functions their original code */
	WIRE_MSG_ROLLBACK_RESULT = 18, /* agent -> debugger */
	WIRE_MSG_HELLO_CONTROL = 19,   /* an auditor: HELLO's payload; LIST, ROLLBACK, PING only */
	WIRE_MSG_HITS = 20,            /* agent -> debugger, unsolicited: guards that fired */
	WIRE_MSG_FORKED = 21,     /* agent -> debugger, unsolicited: a child has its own agent */
	WIRE_MSG_TREE_FILES = 22, /* debugger -> agent: files forked children report */
	WIRE_MSG_TREE_FILES_RESULT = 23, /* agent -> debugger */
	/* 33-39: edit and continue (docs/formats/channel.md, "Reload"). */
	WIRE_MSG_RELOAD = 33,        /* debugger or auditor -> agent: a module's new source */
	WIRE_MSG_RELOAD_RESULT = 34, /* agent -> debugger */
	WIRE_MSG_HELD_CHANGED = 35,  /* agent -> debugger: a reload changed a held function */
	WIRE_MSG_RESTART = 36,       /* debugger -> agent: restart a held frame in the new code */
	/* Live probes (suture-attach --log/--snapshot), 40..49. */
	WIRE_MSG_PROBE_SET = 40,     /* debugger -> agent: register a probe, find its code */
	WIRE_MSG_PROBE_RESULT = 41,  /* agent -> debugger: answer to SET, ARM, CLEAR */
	WIRE_MSG_PROBE_ARM = 42,     /* debugger -> agent: the probe starts reporting */
	WIRE_MSG_PROBE_CLEAR = 43,   /* debugger -> agent: remove a probe (or all) */
	WIRE_MSG_PROBE_HIT = 44,     /* agent -> debugger, unsolicited: a probed line ran */
	WIRE_MSG_PROBE_RELEASE = 45, /* debugger -> agent: a snapshot's parked thread goes on */
	/* Handled crashes (the application's own catch-all), 50..52. */
	WIRE_MSG_HANDLED = 50,        /* agent -> debugger, unsolicited: counts since the last */
	WIRE_MSG_HANDLED_LIST = 51,   /* debugger or auditor -> agent: the counts so far */
	WIRE_MSG_HANDLED_RESULT = 52, /* agent -> debugger: answer to HANDLED_LIST */
};
#define WIRE_MSG_LAST WIRE_MSG_HANDLED_RESULT
/* The ranges in use; the types between them are not (yet) defined. */
#define WIRE_MSG_IS_DEFINED(t)                                           \
	(((t) >= WIRE_MSG_HELLO && (t) <= WIRE_MSG_TREE_FILES_RESULT) || \
	 ((t) >= WIRE_MSG_RELOAD && (t) <= WIRE_MSG_RESTART) ||          \
	 ((t) >= WIRE_MSG_PROBE_SET && (t) <= WIRE_MSG_PROBE_RELEASE) || \
	 ((t) >= WIRE_MSG_HANDLED && (t) <= WIRE_MSG_HANDLED_RESULT))

/* How the agent watches exceptions (WELCOME.watch_mode). */
enum wire_watch_mode {
	WIRE_WATCH_NONE = 0,       /* not watching (refused, see detail) */
	WIRE_WATCH_JUMP_REL32 = 1, /* 5-byte jmp at PyTraceBack_Here's entry */
	WIRE_WATCH_JUMP_ABS = 2,   /* 14-byte jmp [rip+0] at its entry */
	WIRE_WATCH_TRACE = 3,      /* C trace function on every thread state */
};

struct wire_hdr {
	uint32_t len;
	uint16_t type;
};

#define WIRE_APP_PATHS_MAX 4096    /* bytes of HELLO's application paths */
#define WIRE_HEAL_HANDLED_MAX 4096 /* bytes of HELLO's --heal-handled sites */

struct wire_hello {
	uint32_t version;
	uint32_t timeout_ms; /* park bound the agent should use; 0 = keep */
	uint32_t flags;      /* WIRE_HELLO_F_* */
	/* With WIRE_HELLO_F_APP_PATHS: absolute paths of more application
	 * code, ':'-separated (suture-attach --app-path), < WIRE_APP_PATHS_MAX. */
	char app_paths[WIRE_APP_PATHS_MAX];
	/* With WIRE_HELLO_F_HANDLED: the sites opted in to healing although
	 * the application's catch-all handles them (--heal-handled),
	 * '\n'-separated, possibly empty, < WIRE_HEAL_HANDLED_MAX. */
	char heal_handled[WIRE_HEAL_HANDLED_MAX];
};
/* The debugger records guard firings: the agent sends it HITS frames. */
#define WIRE_HELLO_F_HITS 1u
/* A string of application paths follows the flags. */
#define WIRE_HELLO_F_APP_PATHS 2u
/* Hold crashes instead of guarding them (suture-attach --watch --hold):
 * any exception that would end a thread of application code is reported,
 * deliberate raises included, and a parked crash waits without a bound. */
#define WIRE_HELLO_F_HOLD 4u
/* The debugger follows the process tree: the agent sends it FORKED for
 * every child whose agent opened its channel, and a child's crash waits
 * (bounded) for a debugger to connect to it. */
#define WIRE_HELLO_F_TREE 8u
/* The debugger records handled crashes: the agent sends it HANDLED frames;
 * the string of --heal-handled sites follows the application paths. */
#define WIRE_HELLO_F_HANDLED 16u

struct wire_welcome {
	uint32_t version;
	uint32_t pid;
	uint32_t py_hexversion;
	uint32_t watch_mode; /* enum wire_watch_mode */
	char detail[160];    /* human-readable watch detail / refusal cause */
};

struct wire_crash {
	uint64_t event_id;
	uint64_t tid;          /* kernel thread id */
	uint64_t thread_ident; /* threading.get_ident() */
	uint64_t code_addr;    /* PyCodeObject * of the failing frame */
	uint64_t frame_addr;   /* _PyInterpreterFrame * of the failing frame */
	uint32_t offset;       /* byte offset of the failing instruction */
	uint32_t line;         /* 0 if unknown */
	char exc_type[128];
	char message[512];
	char filename[512];
	char qualname[256];
};

struct wire_release {
	uint64_t event_id;
};

/* Appended constants of a patch (symbolic: nothing executable crosses). */
enum wire_const_kind {
	WIRE_CONST_NONE = 0,
	WIRE_CONST_TRUE = 1,
	WIRE_CONST_FALSE = 2,
	WIRE_CONST_INT = 3,   /* i64 */
	WIRE_CONST_FLOAT = 4, /* f64 bits */
	WIRE_CONST_STR = 5,   /* utf-8 */
	WIRE_CONST_BYTES = 6,
	WIRE_CONST_BUILTIN = 7, /* a name looked up in builtins (KeyError) */
	WIRE_CONST_HELPER = 8,  /* a name from agent/helpers.h */
	WIRE_CONST_TUPLE = 9,   /* u32 count, then items */
	WIRE_CONST_ELLIPSIS = 10,
};

struct wire_const {
	enum wire_const_kind kind;
	int64_t i;
	double f;
	const uint8_t *data; /* STR, BYTES, BUILTIN, HELPER: not NUL-terminated */
	size_t len;
	const struct wire_const *items; /* TUPLE (encoder side only) */
	size_t nitems;
};

/* Who a patch is (PATCH_NAMED): the store's name and what the agent
 * reports back in LIST_RESULT. Text only; the agent never interprets it. */
#define WIRE_NAME_MAX 512
struct wire_patch_meta {
	char name[WIRE_NAME_MAX + 1]; /* empty: an unnamed PATCH */
	char guard[48];
	char target[256];
	char fallback[128];
};

/* A patch for one code object. The byte fields replace the original's;
 * consts and names are appended to the original's co_consts / co_names
 * (existing indexes stay valid). On decode, pointers point into the frame. */
struct wire_patch {
	uint64_t request_id;
	uint64_t code_addr; /* the original code object in the target */
	uint32_t stacksize; /* new co_stacksize */
	uint32_t flags;     /* reserved, 0 */
	const uint8_t *code;
	size_t code_len;
	const uint8_t *exctable;
	size_t exctable_len;
	const uint8_t *linetable;
	size_t linetable_len;
	/* Encoder side: arrays. */
	const struct wire_const *consts;
	size_t nconsts;
	const char *const *names;
	size_t nnames;
	/* Decoder side: validated raw runs, walk with the iterators below. */
	const uint8_t *consts_p, *consts_end;
	const uint8_t *names_p, *names_end;
	/* PATCH_NAMED only (ignored by encode_patch, zeroed by decode_patch). */
	struct wire_patch_meta meta;
};

struct wire_patch_result {
	uint64_t request_id;
	int32_t status;      /* 0 or -errno */
	uint32_t nfunctions; /* function objects given the new code */
	uint32_t nparents;   /* enclosing code objects replaced */
	uint32_t nframes;    /* suspended frames switched (OSR) */
	/* The agent's key of the code object replaced (agent/codekey.c), for
	 * a boot image; 0: none (every PATCH but a boot hook's). */
	uint64_t key;
	char message[256];
};

/* In-flight resume of a parked crash (docs/design.md §9), sent after the
 * PATCH for the failing frame's code: the continuation enters the patched
 * code at fallback_unit with the frame's value stack cut to base_depth
 * (guard_patch.fallback_unit / .base_depth, docs/formats/patch.md). */
struct wire_resume {
	uint64_t event_id;
	uint32_t fallback_unit;
	uint32_t base_depth;
};

enum wire_resume_status {
	WIRE_RESUMED = 0,       /* the caller received the continuation's result */
	WIRE_RESUME_RAISED = 1, /* the continuation raised: that exception goes on */
	/* < 0: -errno, not resumed (message says why); the exception goes on
	 * untouched and only later calls are healed. */
};

struct wire_resume_result {
	uint64_t event_id;
	int32_t status;
	char message[256];
};

/* LIST_RESULT: the agent's registry of installed patches. Entries are
 * walked with wire_live_iter (validated by the decoder). */
struct wire_live_patch {
	struct wire_patch_meta meta;
	char qualname[256];
	char filename[512];
	uint32_t first_line;
	uint32_t flags;          /* WIRE_LIVE_F_* */
	uint64_t orig_addr;      /* the original code object (kept alive by the agent) */
	uint64_t new_addr;       /* the patched code object */
	uint64_t installed_ms;   /* Unix time in milliseconds */
	uint32_t nfunctions;     /* at install: function objects given the new code */
	uint32_t nparents;       /* at install: enclosing code objects replaced */
	uint32_t nframes;        /* at install: suspended frames switched */
	uint32_t live_functions; /* now: functions running the patch (or a replaced parent) */
	uint64_t hits;           /* times its guard fired (healed) since install */
	uint64_t last_hit_ms;    /* Unix time in milliseconds of the last firing, 0: none */
};
#define WIRE_LIVE_F_STACKED 1u /* installed on top of another live patch */
#define WIRE_LIVE_F_RELOAD 2u  /* a reload's function (suture-attach --reload), not a guard */

struct wire_list {
	uint64_t request_id;
};

struct wire_list_result {
	uint64_t request_id;
	uint32_t count;
	const uint8_t *entries_p, *entries_end; /* decoder side: into the frame */
};

/* ROLLBACK: by name (every registry entry of that name) or all. */
#define WIRE_ROLLBACK_F_ALL 1u
#define WIRE_ROLLBACK_F_DRY_RUN 2u
struct wire_rollback {
	uint64_t request_id;
	uint32_t flags;
	char name[WIRE_NAME_MAX + 1]; /* empty with F_ALL */
};

struct wire_rollback_result {
	uint64_t request_id;
	int32_t status;      /* 0, or -errno: -ENOENT no such live patch, -EBUSY another
	                              patch was installed on top of it */
	uint32_t npatches;   /* registry entries removed (or, dry run, that would be) */
	uint32_t nfunctions; /* function objects given their original code back */
	uint32_t nframes;    /* suspended frames switched back */
	char message[256];
};

/* HITS: firings of installed guards since the last HITS, per registry
 * entry (or per rolled-back entry whose firings were not reported yet).
 * Entries are walked with wire_hits_iter (validated by the decoder). */
struct wire_hit {
	char name[WIRE_NAME_MAX + 1]; /* PATCH_NAMED's name; empty for a plain PATCH */
	uint64_t orig_addr;           /* the code object the PATCH named */
	uint64_t count;               /* firings since the last report (> 0) */
	uint64_t last_ms;             /* Unix time in milliseconds of the last of them */
};

struct wire_hits {
	uint32_t count;
	const uint8_t *entries_p, *entries_end; /* decoder side: into the frame */
};

/* HANDLED and HANDLED_RESULT: structural exceptions raised in application
 * code that the application's own catch-all (except Exception /
 * BaseException / bare except) handles, counted per raising site and type:
 * HANDLED since the last HANDLED (unsolicited), HANDLED_RESULT since the
 * agent started (the answer to HANDLED_LIST, whose payload is empty).
 * Walked with wire_handled_iter (validated by the decoder). */
#define WIRE_SITE_MAX 383
struct wire_handled_entry {
	char site[WIRE_SITE_MAX + 1]; /* "module.qualname:line" */
	char exc_type[128];
	uint64_t count;   /* > 0 */
	uint64_t last_ms; /* Unix time in milliseconds of the last one */
};

struct wire_handled {
	uint32_t count;
	const uint8_t *entries_p, *entries_end; /* decoder side: into the frame */
};

/* RELOAD (edit and continue): the module loaded from `path` (a real
 * path, matched against the real path of each module's __file__) is
 * recompiled from `source` inside the target and every function whose
 * code changed gets the new code. On decode, source points into the frame. */
#define WIRE_RELOAD_PATH_MAX 4096
struct wire_reload {
	uint64_t request_id;
	uint32_t flags; /* reserved, 0 */
	char path[WIRE_RELOAD_PATH_MAX];
	const uint8_t *source;
	size_t source_len;
};

/* One line of a RELOAD_RESULT. */
enum wire_reload_kind {
	WIRE_RELOAD_RELOADED = 1, /* the function's code changed; every reference runs it */
	WIRE_RELOAD_REFUSED = 2,  /* changed, but cannot be switched (detail says why) */
	WIRE_RELOAD_ADDED = 3,    /* new in the file, added to its module or class */
	WIRE_RELOAD_KEPT = 4,     /* new in the file, not added (detail says why) */
};
struct wire_reload_entry {
	uint32_t kind;       /* enum wire_reload_kind */
	uint32_t line;       /* first line in the new source */
	uint32_t nfunctions; /* function objects given the new code */
	char qualname[256];
	char detail[256];
};

struct wire_reload_result {
	uint64_t request_id;
	int32_t status; /* 0, or -errno: -ENOENT no module from that path, -EINVAL
	                   the source does not compile (message: the SyntaxError) */
	uint32_t moved; /* functions whose lines only moved (given the new lines) */
	char message[512];
	uint32_t count;
	const uint8_t *entries_p, *entries_end; /* decoder side: into the frame */
	char name[WIRE_NAME_MAX + 1];           /* the registry name of this reload, or empty */
};

/* HELD_CHANGED: a reload gave the function of held event event_id new
 * code (its frame still runs the old one). */
struct wire_held_changed {
	uint64_t event_id;
	uint64_t code_addr; /* the function's new code object */
	char reload[WIRE_NAME_MAX + 1];
};

/* RESTART: run the held frame of event_id again from code unit `unit` of
 * the function's new code (code_addr, which must still be its code), with
 * the frame's value stack cut to base_depth items and new local i taken
 * from old local map[i] (-1: unbound). Answered by RESUME_RESULT. */
#define WIRE_RESTART_MAX_LOCALS 65535
struct wire_restart {
	uint64_t event_id;
	uint64_t code_addr;
	uint32_t unit;
	uint32_t base_depth;
	uint32_t nmap;
	int32_t map[WIRE_RESTART_MAX_LOCALS];
};

struct wire_ping {
	uint64_t cookie;
};

/* FORKED: a process forked (directly or further down) from the agent's
 * process, whose own agent now listens on its own channel. */
struct wire_forked {
	uint32_t pid;  /* the child, > 0 */
	uint32_t ppid; /* its parent when it forked, > 0 */
};

/* TREE_FILES: the debugger's socket a forked child connects to when it is
 * about to run the body of a module from one of the files (its stored
 * patches are installed then, docs/formats/channel.md "Process trees"), and
 * the files (absolute real paths, '\n'-separated, NUL-free; empty: none,
 * the children report nothing). files points into the decoded payload. */
#define WIRE_TREE_FILES_MAX (1u << 20)
struct wire_tree_files {
	char sock[108]; /* sizeof(sockaddr_un.sun_path) */
	const char *files;
	size_t files_len;
};

struct wire_pong {
	uint64_t cookie;
	uint32_t crashes;    /* crashes reported since load */
	uint32_t parked;     /* threads parked right now */
	uint64_t hook_calls; /* watcher entries (all exceptions) */
};

/* Live probes (docs/formats/channel.md, "Probes"). The texts are parsed
 * by the agent with probe/parse.c; the wire only bounds them. */
#define WIRE_PROBE_TEXT_MAX 1024 /* bytes of a format or a condition */
#define WIRE_PROBE_MAX_CODES 64  /* code objects a SET may name */
#define WIRE_PROBE_MAX_VALUES 8  /* values a HIT carries */
#define WIRE_PROBE_VALUE_MAX 4096
#define WIRE_PROBE_F_SNAPSHOT 1u /* SET: park the first hit for a stack capture */
#define WIRE_PROBE_F_PARKED 1u   /* HIT: the thread waits for PROBE_RELEASE */

struct wire_probe_set {
	uint64_t request_id;
	uint32_t flags; /* WIRE_PROBE_F_SNAPSHOT */
	uint32_t count; /* hits before the probe stops, 0: no limit */
	uint32_t rate;  /* hits a second before lines are dropped, 0: no limit */
	uint32_t line;
	char file[512];
	char format[WIRE_PROBE_TEXT_MAX + 1];
	char cond[WIRE_PROBE_TEXT_MAX + 1]; /* empty: always */
};

struct wire_probe_result {
	uint64_t request_id;
	int32_t status;    /* 0 or -errno */
	uint32_t probe_id; /* SET: the id the agent gave the probe */
	uint64_t hits;     /* CLEAR: lines reported */
	uint64_t dropped;  /* CLEAR: lines dropped by the rate limit */
	uint32_t ncodes;   /* SET: code objects holding the line */
	uint64_t codes[WIRE_PROBE_MAX_CODES];
	char message[256];
};

/* ARM, CLEAR (probe_id 0: every probe). */
struct wire_probe_ctl {
	uint64_t request_id;
	uint32_t probe_id;
};

struct wire_probe_hit {
	uint32_t probe_id;
	uint32_t flags;    /* WIRE_PROBE_F_PARKED */
	uint64_t event_id; /* PARKED: what PROBE_RELEASE names */
	uint64_t time_ns;  /* CLOCK_REALTIME */
	uint64_t tid;      /* kernel thread id */
	uint64_t thread_ident;
	uint32_t line;
	uint64_t dropped; /* lines dropped since the previous HIT */
	uint32_t nvalues;
	/* Rendered values, in the format's field order. Encoder: NUL-terminated
	 * strings; decoder: pointers into the frame, not NUL-terminated. */
	const char *values[WIRE_PROBE_MAX_VALUES];
	uint32_t value_len[WIRE_PROBE_MAX_VALUES];
};

/* ------------------------------------------------------------------ */
/* Encoding                                                           */

struct wire_buf {
	uint8_t *data;
	size_t len, cap;
	int err;
};
void wire_buf__free(struct wire_buf *b); /* accepts zeroed */
void wire_buf__reset(struct wire_buf *b);
/* Append n bytes (an allocation failure is sticky in b->err). */
void wire_buf__put(struct wire_buf *b, const void *src, size_t n);

/* Each appends one whole frame (header + payload). 0 or -ENOMEM / -E2BIG. */
int wire_msg__encode_hello(struct wire_buf *b, const struct wire_hello *m);
/* HELLO_CONTROL: HELLO's payload under type 19 (decode with decode_hello). */
int wire_msg__encode_hello_control(struct wire_buf *b, const struct wire_hello *m);
int wire_msg__encode_welcome(struct wire_buf *b, const struct wire_welcome *m);
int wire_msg__encode_crash(struct wire_buf *b, const struct wire_crash *m);
int wire_msg__encode_release(struct wire_buf *b, const struct wire_release *m);
/* -EINVAL on tuples nested deeper than WIRE_MAX_CONST_DEPTH. */
int wire_msg__encode_patch(struct wire_buf *b, const struct wire_patch *m);
int wire_msg__encode_patch_result(struct wire_buf *b, const struct wire_patch_result *m);
int wire_msg__encode_ping(struct wire_buf *b, const struct wire_ping *m);
int wire_msg__encode_forked(struct wire_buf *b, const struct wire_forked *m);
/* -ENAMETOOLONG: sock does not fit a socket address; -E2BIG: files over
 * WIRE_TREE_FILES_MAX. The result carries the count of files kept. */
int wire_msg__encode_tree_files(struct wire_buf *b, const struct wire_tree_files *m);
int wire_msg__encode_tree_files_result(struct wire_buf *b, uint32_t nfiles);
int wire_msg__encode_resume(struct wire_buf *b, const struct wire_resume *m);
int wire_msg__encode_resume_result(struct wire_buf *b, const struct wire_resume_result *m);
int wire_msg__encode_pong(struct wire_buf *b, const struct wire_pong *m);
/* PATCH_NAMED: m->meta first, then PATCH's payload. -EINVAL if the name is
 * empty or longer than WIRE_NAME_MAX. */
int wire_msg__encode_patch_named(struct wire_buf *b, const struct wire_patch *m);
int wire_msg__encode_list(struct wire_buf *b, const struct wire_list *m);
/* LIST_RESULT is built in three steps: begin, one entry per patch, end. */
int wire_msg__list_result_begin(struct wire_buf *b, uint64_t request_id, uint32_t count,
				size_t *at);
void wire_msg__list_result_entry(struct wire_buf *b, const struct wire_live_patch *e);
int wire_msg__list_result_end(struct wire_buf *b, size_t at);
int wire_msg__encode_rollback(struct wire_buf *b, const struct wire_rollback *m);
/* HITS is built like LIST_RESULT: begin, one entry per patch, end. */
int wire_msg__hits_begin(struct wire_buf *b, uint32_t count, size_t *at);
void wire_msg__hits_entry(struct wire_buf *b, const struct wire_hit *e);
int wire_msg__hits_end(struct wire_buf *b, size_t at);
int wire_msg__encode_rollback_result(struct wire_buf *b, const struct wire_rollback_result *m);
/* RELOAD: -ENAMETOOLONG for a path that does not fit. */
int wire_msg__encode_reload(struct wire_buf *b, const struct wire_reload *m);
/* RELOAD_RESULT is built like LIST_RESULT: begin (m's fixed part and the
 * count), one entry each, end. */
int wire_msg__reload_result_begin(struct wire_buf *b, const struct wire_reload_result *m,
				  size_t *at);
void wire_msg__reload_result_entry(struct wire_buf *b, const struct wire_reload_entry *e);
int wire_msg__reload_result_end(struct wire_buf *b, size_t at);
int wire_msg__encode_held_changed(struct wire_buf *b, const struct wire_held_changed *m);
/* -EINVAL for nmap over WIRE_RESTART_MAX_LOCALS. */
int wire_msg__encode_restart(struct wire_buf *b, const struct wire_restart *m);
/* DETACH and BYE have no payload; ERROR carries one string. */
int wire_msg__encode_empty(struct wire_buf *b, enum wire_msg_type type);
int wire_msg__encode_error(struct wire_buf *b, const char *text);

int wire_msg__encode_probe_set(struct wire_buf *b, const struct wire_probe_set *m);
int wire_msg__encode_probe_result(struct wire_buf *b, const struct wire_probe_result *m);
/* type: WIRE_MSG_PROBE_ARM or WIRE_MSG_PROBE_CLEAR. */
int wire_msg__encode_probe_ctl(struct wire_buf *b, enum wire_msg_type type,
			       const struct wire_probe_ctl *m);
int wire_msg__encode_probe_hit(struct wire_buf *b, const struct wire_probe_hit *m);
int wire_msg__encode_probe_release(struct wire_buf *b, uint64_t event_id);

/* ------------------------------------------------------------------ */
/* Decoding                                                           */

/* The 8-byte header: -EINVAL if short, reserved bits set, type unknown or
 * len > WIRE_MAX_PAYLOAD. */
int wire_msg__decode_hdr(const uint8_t *p, const uint8_t *end, struct wire_hdr *h);

/* Payload decoders (p, end = the payload only). */
int wire_msg__decode_hello(const uint8_t *p, const uint8_t *end, struct wire_hello *m);
int wire_msg__decode_welcome(const uint8_t *p, const uint8_t *end, struct wire_welcome *m);
int wire_msg__decode_crash(const uint8_t *p, const uint8_t *end, struct wire_crash *m);
int wire_msg__decode_release(const uint8_t *p, const uint8_t *end, struct wire_release *m);
int wire_msg__decode_patch(const uint8_t *p, const uint8_t *end, struct wire_patch *m);
int wire_msg__decode_patch_result(const uint8_t *p, const uint8_t *end,
				  struct wire_patch_result *m);
int wire_msg__decode_ping(const uint8_t *p, const uint8_t *end, struct wire_ping *m);
/* -EINVAL on a zero pid or ppid. */
int wire_msg__decode_forked(const uint8_t *p, const uint8_t *end, struct wire_forked *m);
int wire_msg__decode_tree_files(const uint8_t *p, const uint8_t *end, struct wire_tree_files *m);
int wire_msg__decode_tree_files_result(const uint8_t *p, const uint8_t *end, uint32_t *nfiles);
int wire_msg__decode_resume(const uint8_t *p, const uint8_t *end, struct wire_resume *m);
int wire_msg__decode_resume_result(const uint8_t *p, const uint8_t *end,
				   struct wire_resume_result *m);
int wire_msg__decode_pong(const uint8_t *p, const uint8_t *end, struct wire_pong *m);
int wire_msg__decode_patch_named(const uint8_t *p, const uint8_t *end, struct wire_patch *m);
int wire_msg__decode_list(const uint8_t *p, const uint8_t *end, struct wire_list *m);
/* Validates every entry; walk them with wire_live_iter. */
int wire_msg__decode_list_result(const uint8_t *p, const uint8_t *end, struct wire_list_result *m);
/* HANDLED / HANDLED_RESULT (type) like HITS: begin, entries, end. */
int wire_msg__handled_begin(struct wire_buf *b, enum wire_msg_type type, uint32_t count,
			    size_t *at);
void wire_msg__handled_entry(struct wire_buf *b, const struct wire_handled_entry *e);
int wire_msg__handled_end(struct wire_buf *b, size_t at);
/* Either type's payload; every entry validated (a site, count > 0). */
int wire_msg__decode_handled(const uint8_t *p, const uint8_t *end, struct wire_handled *m);

/* Validates every entry (count > 0 each); walk them with wire_hits_iter. */
int wire_msg__decode_hits(const uint8_t *p, const uint8_t *end, struct wire_hits *m);
int wire_msg__decode_rollback(const uint8_t *p, const uint8_t *end, struct wire_rollback *m);
int wire_msg__decode_rollback_result(const uint8_t *p, const uint8_t *end,
				     struct wire_rollback_result *m);
int wire_msg__decode_reload(const uint8_t *p, const uint8_t *end, struct wire_reload *m);
/* Validates every entry (kind known); walk them with wire_reload_iter. */
int wire_msg__decode_reload_result(const uint8_t *p, const uint8_t *end,
				   struct wire_reload_result *m);
int wire_msg__decode_held_changed(const uint8_t *p, const uint8_t *end,
				  struct wire_held_changed *m);
/* map entries are -1 or below 2^16; unit below 2^24, base_depth below 2^20. */
int wire_msg__decode_restart(const uint8_t *p, const uint8_t *end, struct wire_restart *m);
int wire_msg__decode_error(const uint8_t *p, const uint8_t *end, char *text, size_t cap);
int wire_msg__decode_empty(const uint8_t *p, const uint8_t *end);

/* Probes: texts longer than their buffers, counts over the maxima and
 * unknown flags are -EINVAL, never truncated. */
int wire_msg__decode_probe_set(const uint8_t *p, const uint8_t *end, struct wire_probe_set *m);
int wire_msg__decode_probe_result(const uint8_t *p, const uint8_t *end,
				  struct wire_probe_result *m);
int wire_msg__decode_probe_ctl(const uint8_t *p, const uint8_t *end, struct wire_probe_ctl *m);
int wire_msg__decode_probe_hit(const uint8_t *p, const uint8_t *end, struct wire_probe_hit *m);
int wire_msg__decode_probe_release(const uint8_t *p, const uint8_t *end, uint64_t *event_id);

/* Iterators over a decoded patch's appended constants and names, on the
 * caller's stack; they never allocate. Usage:
 *   struct wire_const_iter it; wire_const_iter__init(&it, patch);
 *   while ((rc = wire_const_iter__next(&it, &c)) > 0) ...
 * next returns 1 with an item, 0 at the end, -EINVAL if malformed.
 * A TUPLE item gives c.nitems; its items follow as the next nitems items
 * (depth-first), so a consumer builds tuples with a small explicit stack. */
struct wire_const_iter {
	const uint8_t *p, *end;
};
void wire_const_iter__init(struct wire_const_iter *it, const struct wire_patch *m);
int wire_const_iter__next(struct wire_const_iter *it, struct wire_const *c);

struct wire_name_iter {
	const uint8_t *p, *end;
};
void wire_name_iter__init(struct wire_name_iter *it, const struct wire_patch *m);
/* 1 with (*s, *len) pointing into the frame (not NUL-terminated), 0 at the end. */
int wire_name_iter__next(struct wire_name_iter *it, const uint8_t **s, size_t *len);

/* Entries of a decoded LIST_RESULT, on the caller's stack: 1 with *e,
 * 0 at the end, -EINVAL if malformed. */
struct wire_live_iter {
	const uint8_t *p, *end;
};
void wire_live_iter__init(struct wire_live_iter *it, const struct wire_list_result *m);
int wire_live_iter__next(struct wire_live_iter *it, struct wire_live_patch *e);

/* Entries of a decoded HITS, likewise. */
struct wire_hits_iter {
	const uint8_t *p, *end;
};
void wire_hits_iter__init(struct wire_hits_iter *it, const struct wire_hits *m);
int wire_hits_iter__next(struct wire_hits_iter *it, struct wire_hit *e);

/* Entries of a decoded HANDLED / HANDLED_RESULT, likewise. */
struct wire_handled_iter {
	const uint8_t *p, *end;
};
void wire_handled_iter__init(struct wire_handled_iter *it, const struct wire_handled *m);
int wire_handled_iter__next(struct wire_handled_iter *it, struct wire_handled_entry *e);

/* Entries of a decoded RELOAD_RESULT, likewise. */
struct wire_reload_iter {
	const uint8_t *p, *end;
};
void wire_reload_iter__init(struct wire_reload_iter *it, const struct wire_reload_result *m);
int wire_reload_iter__next(struct wire_reload_iter *it, struct wire_reload_entry *e);

#endif
