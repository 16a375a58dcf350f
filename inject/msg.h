/* inject/: the channel's wire forms (docs/formats/channel.md).
 *
 * Shared by the debugger side (libsuture_inject.a) and the agent
 * (libsuture_agent.so compiles inject/msg.c in). Pure C, no Python, no I/O.
 *
 * A frame is an 8-byte header (u32 payload length, u16 type, u16 zero,
 * little-endian) followed by the payload. Decoders take (p, end) over bytes
 * that came from another process and fail with -EINVAL on truncation,
 * trailing bytes, bad counts or nesting: they never trust a length.
 * Decoded strings are copied into the fixed buffers of the message struct,
 * truncated to fit and always NUL-terminated.
 * Encoders append to a struct inject_buf; an allocation failure is sticky
 * (buf.err = -ENOMEM) and reported by inject_buf__finish_frame().
 */
#ifndef SUTURE_INJECT_MSG_H
#define SUTURE_INJECT_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INJECT_PROTO_VERSION 2u
#define INJECT_HDR_SIZE 8u
/* The largest payload either side accepts (a patch is a few KiB). */
#define INJECT_MAX_PAYLOAD (16u << 20)
/* Nesting limit of tuple constants in a patch. */
#define INJECT_MAX_CONST_DEPTH 8

enum inject_msg_type {
	INJECT_MSG_HELLO = 1,        /* debugger -> agent */
	INJECT_MSG_WELCOME = 2,      /* agent -> debugger */
	INJECT_MSG_CRASH = 3,        /* agent -> debugger: a parked thread */
	INJECT_MSG_RELEASE = 4,      /* debugger -> agent: let the exception go on */
	INJECT_MSG_PATCH = 5,        /* debugger -> agent */
	INJECT_MSG_PATCH_RESULT = 6, /* agent -> debugger */
	INJECT_MSG_DETACH = 7,       /* debugger -> agent: unwatch, close */
	INJECT_MSG_BYE = 8,          /* agent -> debugger: detached */
	INJECT_MSG_ERROR = 9,        /* agent -> debugger: a frame was refused */
	INJECT_MSG_PING = 10,        /* debugger -> agent */
	INJECT_MSG_PONG = 11,        /* agent -> debugger */
	INJECT_MSG_RESUME = 12,      /* debugger -> agent: resume a parked crash in flight */
	INJECT_MSG_RESUME_RESULT = 13, /* agent -> debugger */
	INJECT_MSG_PATCH_NAMED = 14, /* debugger -> agent: PATCH with a name and metadata */
	INJECT_MSG_LIST = 15,        /* debugger -> agent: which patches are live */
	INJECT_MSG_LIST_RESULT = 16, /* agent -> debugger */
	INJECT_MSG_ROLLBACK = 17,    /* debugger -> agent: give functions their original code */
	INJECT_MSG_ROLLBACK_RESULT = 18, /* agent -> debugger */
	INJECT_MSG_HELLO_CONTROL = 19, /* an auditor: HELLO's payload; LIST, ROLLBACK, PING only */
	INJECT_MSG_HITS = 20,        /* agent -> debugger, unsolicited: guards that fired */
};
#define INJECT_MSG_LAST INJECT_MSG_HITS

/* How the agent watches exceptions (WELCOME.watch_mode). */
enum inject_watch_mode {
	INJECT_WATCH_NONE = 0,       /* not watching (refused, see detail) */
	INJECT_WATCH_JUMP_REL32 = 1, /* 5-byte jmp at PyTraceBack_Here's entry */
	INJECT_WATCH_JUMP_ABS = 2,   /* 14-byte jmp [rip+0] at its entry */
	INJECT_WATCH_TRACE = 3,      /* C trace function on every thread state */
};

struct inject_hdr {
	uint32_t len;
	uint16_t type;
};

struct inject_hello {
	uint32_t version;
	uint32_t timeout_ms;   /* park bound the agent should use; 0 = keep */
	uint32_t flags;        /* INJECT_HELLO_F_* */
};
/* The debugger records guard firings: the agent sends it HITS frames. */
#define INJECT_HELLO_F_HITS 1u

struct inject_welcome {
	uint32_t version;
	uint32_t pid;
	uint32_t py_hexversion;
	uint32_t watch_mode;   /* enum inject_watch_mode */
	char detail[160];      /* human-readable watch detail / refusal cause */
};

struct inject_crash {
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

struct inject_release {
	uint64_t event_id;
};

/* Appended constants of a patch (symbolic: nothing executable crosses). */
enum inject_const_kind {
	INJECT_CONST_NONE = 0,
	INJECT_CONST_TRUE = 1,
	INJECT_CONST_FALSE = 2,
	INJECT_CONST_INT = 3,       /* i64 */
	INJECT_CONST_FLOAT = 4,     /* f64 bits */
	INJECT_CONST_STR = 5,       /* utf-8 */
	INJECT_CONST_BYTES = 6,
	INJECT_CONST_BUILTIN = 7,   /* a name looked up in builtins (KeyError) */
	INJECT_CONST_HELPER = 8,    /* a name from inject/agent/helpers.h */
	INJECT_CONST_TUPLE = 9,     /* u32 count, then items */
	INJECT_CONST_ELLIPSIS = 10,
};

struct inject_const {
	enum inject_const_kind kind;
	int64_t i;
	double f;
	const uint8_t *data;          /* STR, BYTES, BUILTIN, HELPER: not NUL-terminated */
	size_t len;
	const struct inject_const *items; /* TUPLE (encoder side only) */
	size_t nitems;
};

/* Who a patch is (PATCH_NAMED): the store's name and what the agent
 * reports back in LIST_RESULT. Text only; the agent never interprets it. */
#define INJECT_NAME_MAX 512
struct inject_patch_meta {
	char name[INJECT_NAME_MAX + 1];  /* empty: an unnamed PATCH */
	char guard[48];
	char target[256];
	char fallback[128];
};

/* A patch for one code object. The byte fields replace the original's;
 * consts and names are appended to the original's co_consts / co_names
 * (existing indexes stay valid). On decode, pointers point into the frame. */
struct inject_patch {
	uint64_t request_id;
	uint64_t code_addr;        /* the original code object in the target */
	uint32_t stacksize;        /* new co_stacksize */
	uint32_t flags;            /* reserved, 0 */
	const uint8_t *code; size_t code_len;
	const uint8_t *exctable; size_t exctable_len;
	const uint8_t *linetable; size_t linetable_len;
	/* Encoder side: arrays. */
	const struct inject_const *consts; size_t nconsts;
	const char *const *names; size_t nnames;
	/* Decoder side: validated raw runs, walk with the iterators below. */
	const uint8_t *consts_p, *consts_end;
	const uint8_t *names_p, *names_end;
	/* PATCH_NAMED only (ignored by encode_patch, zeroed by decode_patch). */
	struct inject_patch_meta meta;
};

struct inject_patch_result {
	uint64_t request_id;
	int32_t status;           /* 0 or -errno */
	uint32_t nfunctions;      /* function objects given the new code */
	uint32_t nparents;        /* enclosing code objects replaced */
	uint32_t nframes;         /* suspended frames switched (OSR) */
	char message[256];
};

/* In-flight resume of a parked crash (DESIGN.md section 6), sent after the
 * PATCH for the failing frame's code: the continuation enters the patched
 * code at fallback_unit with the frame's value stack cut to base_depth
 * (guard_patch.fallback_unit / .base_depth, docs/formats/patch.md). */
struct inject_resume {
	uint64_t event_id;
	uint32_t fallback_unit;
	uint32_t base_depth;
};

enum inject_resume_status {
	INJECT_RESUMED = 0,       /* the caller received the continuation's result */
	INJECT_RESUME_RAISED = 1, /* the continuation raised: that exception goes on */
	/* < 0: -errno, not resumed (message says why); the exception goes on
	 * untouched and only later calls are healed. */
};

struct inject_resume_result {
	uint64_t event_id;
	int32_t status;
	char message[256];
};

/* LIST_RESULT: the agent's registry of installed patches. Entries are
 * walked with inject_live_iter (validated by the decoder). */
struct inject_live_patch {
	struct inject_patch_meta meta;
	char qualname[256];
	char filename[512];
	uint32_t first_line;
	uint32_t flags;            /* INJECT_LIVE_F_* */
	uint64_t orig_addr;        /* the original code object (kept alive by the agent) */
	uint64_t new_addr;         /* the patched code object */
	uint64_t installed_ms;     /* Unix time in milliseconds */
	uint32_t nfunctions;       /* at install: function objects given the new code */
	uint32_t nparents;         /* at install: enclosing code objects replaced */
	uint32_t nframes;          /* at install: suspended frames switched */
	uint32_t live_functions;   /* now: functions running the patch (or a replaced parent) */
	uint64_t hits;             /* times its guard fired (healed) since install */
	uint64_t last_hit_ms;      /* Unix time in milliseconds of the last firing, 0: none */
};
#define INJECT_LIVE_F_STACKED 1u   /* installed on top of another live patch */

struct inject_list {
	uint64_t request_id;
};

struct inject_list_result {
	uint64_t request_id;
	uint32_t count;
	const uint8_t *entries_p, *entries_end;   /* decoder side: into the frame */
};

/* ROLLBACK: by name (every registry entry of that name) or all. */
#define INJECT_ROLLBACK_F_ALL 1u
#define INJECT_ROLLBACK_F_DRY_RUN 2u
struct inject_rollback {
	uint64_t request_id;
	uint32_t flags;
	char name[INJECT_NAME_MAX + 1];   /* empty with F_ALL */
};

struct inject_rollback_result {
	uint64_t request_id;
	int32_t status;            /* 0, or -errno: -ENOENT no such live patch, -EBUSY another
	                              patch was installed on top of it */
	uint32_t npatches;         /* registry entries removed (or, dry run, that would be) */
	uint32_t nfunctions;       /* function objects given their original code back */
	uint32_t nframes;          /* suspended frames switched back */
	char message[256];
};

/* HITS: firings of installed guards since the last HITS, per registry
 * entry (or per rolled-back entry whose firings were not reported yet).
 * Entries are walked with inject_hits_iter (validated by the decoder). */
struct inject_hit {
	char name[INJECT_NAME_MAX + 1];   /* PATCH_NAMED's name; empty for a plain PATCH */
	uint64_t orig_addr;        /* the code object the PATCH named */
	uint64_t count;            /* firings since the last report (> 0) */
	uint64_t last_ms;          /* Unix time in milliseconds of the last of them */
};

struct inject_hits {
	uint32_t count;
	const uint8_t *entries_p, *entries_end;   /* decoder side: into the frame */
};

struct inject_ping {
	uint64_t cookie;
};

struct inject_pong {
	uint64_t cookie;
	uint32_t crashes;         /* crashes reported since load */
	uint32_t parked;          /* threads parked right now */
	uint64_t hook_calls;      /* watcher entries (all exceptions) */
};

/* ------------------------------------------------------------------ */
/* Encoding                                                           */

struct inject_buf {
	uint8_t *data;
	size_t len, cap;
	int err;
};
void inject_buf__free(struct inject_buf *b);      /* accepts zeroed */
void inject_buf__reset(struct inject_buf *b);

/* Each appends one whole frame (header + payload). 0 or -ENOMEM / -E2BIG. */
int inject_msg__encode_hello(struct inject_buf *b, const struct inject_hello *m);
/* HELLO_CONTROL: HELLO's payload under type 19 (decode with decode_hello). */
int inject_msg__encode_hello_control(struct inject_buf *b, const struct inject_hello *m);
int inject_msg__encode_welcome(struct inject_buf *b, const struct inject_welcome *m);
int inject_msg__encode_crash(struct inject_buf *b, const struct inject_crash *m);
int inject_msg__encode_release(struct inject_buf *b, const struct inject_release *m);
/* -EINVAL on tuples nested deeper than INJECT_MAX_CONST_DEPTH. */
int inject_msg__encode_patch(struct inject_buf *b, const struct inject_patch *m);
int inject_msg__encode_patch_result(struct inject_buf *b, const struct inject_patch_result *m);
int inject_msg__encode_ping(struct inject_buf *b, const struct inject_ping *m);
int inject_msg__encode_resume(struct inject_buf *b, const struct inject_resume *m);
int inject_msg__encode_resume_result(struct inject_buf *b, const struct inject_resume_result *m);
int inject_msg__encode_pong(struct inject_buf *b, const struct inject_pong *m);
/* PATCH_NAMED: m->meta first, then PATCH's payload. -EINVAL if the name is
 * empty or longer than INJECT_NAME_MAX. */
int inject_msg__encode_patch_named(struct inject_buf *b, const struct inject_patch *m);
int inject_msg__encode_list(struct inject_buf *b, const struct inject_list *m);
/* LIST_RESULT is built in three steps: begin, one entry per patch, end. */
int inject_msg__list_result_begin(struct inject_buf *b, uint64_t request_id, uint32_t count,
				  size_t *at);
void inject_msg__list_result_entry(struct inject_buf *b, const struct inject_live_patch *e);
int inject_msg__list_result_end(struct inject_buf *b, size_t at);
int inject_msg__encode_rollback(struct inject_buf *b, const struct inject_rollback *m);
/* HITS is built like LIST_RESULT: begin, one entry per patch, end. */
int inject_msg__hits_begin(struct inject_buf *b, uint32_t count, size_t *at);
void inject_msg__hits_entry(struct inject_buf *b, const struct inject_hit *e);
int inject_msg__hits_end(struct inject_buf *b, size_t at);
int inject_msg__encode_rollback_result(struct inject_buf *b,
				       const struct inject_rollback_result *m);
/* DETACH and BYE have no payload; ERROR carries one string. */
int inject_msg__encode_empty(struct inject_buf *b, enum inject_msg_type type);
int inject_msg__encode_error(struct inject_buf *b, const char *text);

/* ------------------------------------------------------------------ */
/* Decoding                                                           */

/* The 8-byte header: -EINVAL if short, reserved bits set, type unknown or
 * len > INJECT_MAX_PAYLOAD. */
int inject_msg__decode_hdr(const uint8_t *p, const uint8_t *end, struct inject_hdr *h);

/* Payload decoders (p, end = the payload only). */
int inject_msg__decode_hello(const uint8_t *p, const uint8_t *end, struct inject_hello *m);
int inject_msg__decode_welcome(const uint8_t *p, const uint8_t *end, struct inject_welcome *m);
int inject_msg__decode_crash(const uint8_t *p, const uint8_t *end, struct inject_crash *m);
int inject_msg__decode_release(const uint8_t *p, const uint8_t *end, struct inject_release *m);
int inject_msg__decode_patch(const uint8_t *p, const uint8_t *end, struct inject_patch *m);
int inject_msg__decode_patch_result(const uint8_t *p, const uint8_t *end,
				    struct inject_patch_result *m);
int inject_msg__decode_ping(const uint8_t *p, const uint8_t *end, struct inject_ping *m);
int inject_msg__decode_resume(const uint8_t *p, const uint8_t *end, struct inject_resume *m);
int inject_msg__decode_resume_result(const uint8_t *p, const uint8_t *end,
				     struct inject_resume_result *m);
int inject_msg__decode_pong(const uint8_t *p, const uint8_t *end, struct inject_pong *m);
int inject_msg__decode_patch_named(const uint8_t *p, const uint8_t *end, struct inject_patch *m);
int inject_msg__decode_list(const uint8_t *p, const uint8_t *end, struct inject_list *m);
/* Validates every entry; walk them with inject_live_iter. */
int inject_msg__decode_list_result(const uint8_t *p, const uint8_t *end,
				   struct inject_list_result *m);
/* Validates every entry (count > 0 each); walk them with inject_hits_iter. */
int inject_msg__decode_hits(const uint8_t *p, const uint8_t *end, struct inject_hits *m);
int inject_msg__decode_rollback(const uint8_t *p, const uint8_t *end, struct inject_rollback *m);
int inject_msg__decode_rollback_result(const uint8_t *p, const uint8_t *end,
				       struct inject_rollback_result *m);
int inject_msg__decode_error(const uint8_t *p, const uint8_t *end, char *text, size_t cap);
int inject_msg__decode_empty(const uint8_t *p, const uint8_t *end);

/* Iterators over a decoded patch's appended constants and names, on the
 * caller's stack; they never allocate. Usage:
 *   struct inject_const_iter it; inject_const_iter__init(&it, patch);
 *   while ((rc = inject_const_iter__next(&it, &c)) > 0) ...
 * next returns 1 with an item, 0 at the end, -EINVAL if malformed.
 * A TUPLE item gives c.nitems; its items follow as the next nitems items
 * (depth-first), so a consumer builds tuples with a small explicit stack. */
struct inject_const_iter {
	const uint8_t *p, *end;
};
void inject_const_iter__init(struct inject_const_iter *it, const struct inject_patch *m);
int inject_const_iter__next(struct inject_const_iter *it, struct inject_const *c);

struct inject_name_iter {
	const uint8_t *p, *end;
};
void inject_name_iter__init(struct inject_name_iter *it, const struct inject_patch *m);
/* 1 with (*s, *len) pointing into the frame (not NUL-terminated), 0 at the end. */
int inject_name_iter__next(struct inject_name_iter *it, const uint8_t **s, size_t *len);

/* Entries of a decoded LIST_RESULT, on the caller's stack: 1 with *e,
 * 0 at the end, -EINVAL if malformed. */
struct inject_live_iter {
	const uint8_t *p, *end;
};
void inject_live_iter__init(struct inject_live_iter *it, const struct inject_list_result *m);
int inject_live_iter__next(struct inject_live_iter *it, struct inject_live_patch *e);

/* Entries of a decoded HITS, likewise. */
struct inject_hits_iter {
	const uint8_t *p, *end;
};
void inject_hits_iter__init(struct inject_hits_iter *it, const struct inject_hits *m);
int inject_hits_iter__next(struct inject_hits_iter *it, struct inject_hit *e);

#endif
