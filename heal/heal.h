/* heal: the debugger's healing pipeline (suture-attach --watch,
 * suture-run). It joins inspect/ (the failing code object, read from the
 * target through DWARF-resolved offsets), rewrite/ (guard analysis,
 * synthesis, the diff gate), inject/ (the patch is sent to the agent, the
 * parked thread released) and store/ (the decision is persisted as a spec).
 *
 *   struct heal *h;
 *   heal__open(ip, session, &opts, &h);
 *   heal__load_live(h);                         // --watch: stored patches first
 *   for (;;) {
 *           if (inject_session__next_event(session, 200, &ev) == 0)
 *                   heal__on_crash(h, &ev, &outcome);   // [suture] lines; resumes or releases ev
 *   }
 *   heal__summary(h, stderr);
 *   heal__close(h);                             // also stores pending hit counts
 *
 * Stored patches are never code: heal__load_tree_boot_release() walks the code
 * objects under a root (a module about to run, reported by the agent's boot
 * hook), and for each one matching a stored spec (file, qualified name) it
 * checks the live code's identity against the stored one (different: the
 * patch is stale, marked so and never applied), then synthesizes the guard
 * again from the live original and sends it. Expired patches are reported,
 * not applied.
 *
 * Output: one line per event on opts.log (stderr by default), prefixed
 * "[suture]". Errors: 0 or -errno; the message is in heal__error().
 */
#ifndef SUTURE_INJECT_HEAL_H
#define SUTURE_INJECT_HEAL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "inject/inject.h"
#include "rewrite/rewrite.h"

struct inspect_proc;
struct inspect_reader;

/* ---- a code object read from the target, as rewrite/ describes it ---- */

struct heal_code {
	uint64_t addr;
	int firstlineno;
	uint32_t flags;
	char name[128], qualname[256], filename[512];
	uint64_t consts_obj; /* co_consts tuple in the target */
	size_t nconsts;
	uint64_t *const_addrs; /* co_consts items in the target */
	struct rewrite_code_info info;
	/* Owned storage behind info. */
	uint8_t *code, *exctable, *linetable, *kinds;
	char **names, **lpnames, **cstrs;
	struct rewrite_const *consts;
};

/* Read the code object at addr: canonical-able bytes (quickened as they
 * are; rewrite/ deoptimizes), tables, names, local names and kinds, and the
 * constants as type/repr texts (a code constant's repr is its qualname; a
 * frozenset's items are sorted so the text does not depend on hash
 * randomization). -EINVAL: not a code object or implausible; -EFAULT. */
int heal_code__read(const struct inspect_reader *r, uint64_t addr, struct heal_code *hc);
/* Accepts a zeroed or freed one. */
void heal_code__free(struct heal_code *hc);

/* ---- the pipeline ---- */

struct heal_opts {
	const char *store_dir; /* NULL: $SUTURE_STORE, else ".suture" */
	const char *program;   /* the store's program identity: the main
				    * script's absolute path (NULL: unknown,
				    * nothing is stored or loaded) */
	uint32_t ttl_days;     /* 0: the store's default (7) */
	bool dry_run;          /* report what would be patched; patch and store nothing */
	bool verbose;          /* the bytecode delta, side by side */
	bool no_store;         /* heal, but persist nothing */
	bool no_resume;        /* never resume the crashing call in flight */
	FILE *log;             /* NULL: stderr */
	FILE *events;          /* --json: one JSON object a line (NULL: none) */
	bool store_found;      /* store_dir was found from the program (not
				    * named): say so when the first patch makes it */
	bool quiet;            /* --quiet: no progress lines (heal__note), only
				    * what failed, was refused or needs the user */
	/* --heal-handled: sites ("module.qualname:line", '\n'-separated)
	 * healed although the application's own catch-all handles them; the
	 * agent was told (inject_opts.heal_handled); NULL: none. */
	const char *heal_handled;
};

enum heal_outcome {
	HEAL_NONE = 0,     /* nothing done (an event that is not a crash) */
	HEAL_APPLIED,      /* guard synthesized, sent and installed; the
				    * crash itself goes on (later calls are healed) */
	HEAL_RESUMED,      /* ... and the crashing call went on in flight
				    * from the guard's fallback: no crash at all */
	HEAL_WOULD_APPLY,  /* --dry-run */
	HEAL_REFUSED,      /* the guard analysis said no (reason printed) */
	HEAL_MODULE_LEVEL, /* a crash in a module or class body: reported only */
	HEAL_FAILED,       /* reading, synthesis, the gate or the agent failed */
};

struct heal_stats {
	unsigned crashes, applied, resumed, would_apply, refused, failed;
	unsigned loaded, stale, expired;
};

struct heal;

/* ip reads the target (heal uses its reader), s is its agent session (may
 * be NULL for now: heal__set_session); both stay the caller's. The store is opened per change (never held). */
int heal__open(struct inspect_proc *ip, struct inject_session *s, const struct heal_opts *o,
	       struct heal **out);
void heal__close(struct heal *h); /* accepts NULL */
/* A handle for what the agent reports on its own only (guard firings,
 * handled crashes: heal__flush, heal__close), without a reader of the
 * target: never given a crash. suture-run's, while nothing crashed. */
int heal__open_reports(pid_t pid, struct inject_session *s, const struct heal_opts *o,
		       struct heal **out);
const char *heal__error(const struct heal *h);
const struct heal_stats *heal__stats(const struct heal *h);

/* A CRASH event: print it, analyse, synthesize, gate, send, persist; then
 * resume the crashing call in flight from the guard's fallback where the
 * agent can (handler guards, a Python caller at a CALL), else release the
 * parked thread (its exception goes on untouched; later calls are healed).
 * *outcome (may be NULL) says what happened.
 * 0, or -EPIPE when the agent is gone (other failures are outcomes). */
int heal__on_crash(struct heal *h, const struct wire_crash *ev, enum heal_outcome *outcome);

/* Install the stored patches that match code objects under root (the code
 * object itself and, through co_consts, everything nested in it). Prints
 * "already healed", "stale" and "expired" lines; counts hits. 0 or -EPIPE. */
int heal__load_tree(struct heal *h, uint64_t root);

/* The same for a process that runs already (suture-attach --watch): the
 * functions of the program's modules (module dicts, from sys.modules), the
 * methods of their classes (plain, staticmethod, classmethod, property
 * accessors, nested classes), the functions decorators wrapped (found
 * through functools.wraps' __wrapped__) and the code nested in them get
 * their stored patches through the agent. 0 or -EPIPE. */
int heal__load_live(struct heal *h);

/* The same at the agent's boot hook (agent/boot.c): patches go over its
 * socket fd while the module is parked before its body runs, answers are
 * read through rd (the reader of fd for as long as the caller reads it:
 * bytes it holds past the answers are the caller's next frames), and when
 * patches went out, the RELEASE of the hook's event_id goes right behind
 * them (the hook installs them all before it reads it), so the module runs
 * while the answers are read. *released_at: when it was sent (monotonic
 * ms, heal__now_ms), 0 when it was not (the caller releases the module).
 * The load's [suture] lines are written after it, at once. 0 or -EPIPE. */
struct wire_reader;
int heal__load_tree_boot_release(struct heal *h, uint64_t root, int fd, struct wire_reader *rd,
				 uint64_t event_id, double *released_at);
/* Boot loads record what they installed into rec (the caller's, a boot
 * image in the making: heal-priv.h); NULL: stop. */
struct heal_image_rec;
void heal__record_image(struct heal *h, struct heal_image_rec *rec);

/* Read the stored patches now, from st (a handle the caller opened,
 * possibly read-only, and still owns), for the next heal__load_tree*
 * only: suture-run reads them while the interpreter starts, not while a
 * module waits. st NULL: nothing (the load reads the store itself).
 * 0 or -ENOMEM. */
struct store;
int heal__preload(struct heal *h, const struct store *st);

/* Store the guard firings the agent reported (HITS frames the session
 * collected) as hits / last_hit of the stored patches, in one transaction;
 * nothing when there are none. Called off the start-up path: by the
 * supervisor's and the watcher's loops every few seconds, and by
 * heal__close. Loading a patch is no hit. */
void heal__flush(struct heal *h);
/* Write hit counts through st, a writable handle the caller keeps open
 * while h lives (suture-run's boot-list handle): while index.json is the
 * file st read, the transaction copies st's snapshot instead of parsing
 * the index again. NULL: a handle of its own each time. */
void heal__use_store(struct heal *h, struct store *st);

/* The session may come after heal__open (s NULL until then). Replacing a
 * session (NULL when it ended) first takes the firings it collected, so
 * call it before inject_session__close. */
void heal__set_session(struct heal *h, struct inject_session *s);

/* Lines name the process ("[suture] pid N: ..."): one of several in a
 * process tree. */
void heal__set_tag(struct heal *h, bool on);
/* Add what other processes' heal handles did (a tree's) to h's stats, for
 * heal__summary. */
void heal__add_stats(struct heal *h, const struct heal_stats *more);
/* to += more, every counter but `loaded` (whose sum means something else
 * to each caller). */
void heal_stats__add(struct heal_stats *to, const struct heal_stats *more);
/* "[suture] patches applied: N, already healed: N" (plus refusals etc.);
 * not printed with heal_opts.quiet. */
void heal__summary(const struct heal *h, FILE *out);

/* The absolute path of the main script of pid (from /proc/PID/cmdline and
 * /proc/PID/cwd): the program identity --watch stores patches under; for
 * `python -m NAME` the module's file as suture-run finds it (the target's
 * working directory and PYTHONPATH), else "-m NAME" as suture-run keys it.
 * -ENOENT if it has none (python -c, a REPL). */
int heal_program__of_pid(pid_t pid, char *buf, size_t cap);

/* The application paths for the agent: cli (--app-path's, ':'-joined, may
 * be NULL) and the store's config.json "app_paths" (the store at store_dir,
 * NULL: the default; an absent store or file adds nothing). *out: malloc'ed
 * ':'-joined list, or NULL when there is none. A config.json that is
 * malformed or fails the store's checks: -errno, err says why in one line. */
int heal_config__app_paths(const char *store_dir, const char *cli, char **out, char *err,
			   size_t errlen);
/* The store a command uses: store_dir when given; NULL (store__open's
 * $SUTURE_STORE) when that is set; else the store found from program
 * (store__locate: walking up from its directory; NULL, or a path that is
 * not absolute: from the working directory), written to buf and returned
 * (then heal_opts.store_found: its creation is announced). */
const char *heal_config__store(const char *store_dir, const char *program, char *buf, size_t cap);
/* The same for suture-attach --watch: the store found from pid's script
 * (/proc/PID/cmdline and cwd), or from its working directory when it runs
 * none (python -m, -c). */
const char *heal_config__store_of_pid(pid_t pid, const char *store_dir, char *buf, size_t cap);
/* One --app-path argument: resolved (realpath) and appended to the
 * malloc'ed ':'-joined *list (NULL: empty). -errno with err in one line:
 * no such path, or one containing ':'. */
int heal_config__add_app_path(char **list, const char *arg, char *err, size_t errlen);
/* The --heal-handled sites: cli's ('\n'-joined, may be NULL) and the
 * store's config.json "heal_handled", as heal_config__app_paths. */
int heal_config__heal_handled(const char *store_dir, const char *cli, char **out, char *err,
			      size_t errlen);
/* One --heal-handled argument ("module.qualname:line": printable, no
 * spaces, a line number after the last ':') appended to the malloc'ed
 * '\n'-joined *list. -EINVAL with err in one line. */
int heal_config__add_heal_handled(char **list, const char *arg, char *err, size_t errlen);

/* ---- suture-attach --watch ---- */

struct heal_watch_opts {
	const char *store_dir;
	bool dry_run, verbose;
	double timeout_s; /* 0: until the target exits or a signal */
	uint32_t ttl_days;
	const char *agent_path;   /* NULL: the usual search (inject.h) */
	const char *app_paths;    /* --app-path: ':'-joined absolute paths, or NULL */
	const char *heal_handled; /* --heal-handled: '\n'-joined sites, or NULL */
	FILE *events;             /* --json: the event lines (heal_opts.events) */
	bool store_found;         /* heal_opts.store_found */
	bool quiet;               /* heal_opts.quiet; no watching/exited/detached lines */
	/* --hold: hold crashes instead of guarding them (any exception that
	 * ends a thread of application code); a reload of the function
	 * restarts the held call at its failing line in the new code. */
	bool hold;
};

/* Attach to pid, inject (or reuse) the agent, print "[suture] watching pid
 * N", heal crashes until the target exits, the timeout passes, or SIGINT /
 * SIGTERM / SIGHUP arrive (then detach the agent: watcher removed, channel
 * closed, applied patches stay). Before injecting, the target must pass
 * what suture-attach --dump checks (inspect_proc__open and a snapshot of
 * its threads). Returns 0 (watched until one of those ends), or -errno with
 * the one-line message (module, pid, cause) in err, as inspect_proc__open
 * and inject_session__open give them: -ESRCH no such process (or it
 * exited during the attach), -EPERM, -ENOEXEC not CPython, -EPROTONOSUPPORT
 * not 3.11, -EBUSY already traced, -EAGAIN stopped, -ENODATA no layout;
 * anything else is another failure. The caller's handlers of those three
 * signals are restored; after a stop by one of them the three stay blocked
 * (the caller is on its way out: a second one must not kill it). */
int heal_watch__run(pid_t pid, const struct heal_watch_opts *o, char *err, size_t errlen);

/* ---- suture-attach --log / --snapshot (probe.c) ---- */

/* The default rate limit of a probe: lines a second (a burst of as many). */
#define HEAL_PROBE_RATE 100u

struct heal_probe_opts {
	const char *file; /* FILE of FILE:LINE, matched against co_filename */
	int line;
	const char *format; /* --log TEXT; NULL with --snapshot */
	const char *cond;   /* --if COND; NULL: every time */
	uint32_t count;     /* --count K: stop after K lines; 0: no limit */
	uint32_t rate;      /* lines a second before lines are dropped; 0: no limit */
	double timeout_s;   /* --timeout S; 0: none */
	bool snapshot;      /* --snapshot: the first hit's stack, then stop */
	bool json, verbose;
	bool quiet;             /* no progress lines on stderr (probe set, removed, exited) */
	const char *agent_path; /* NULL: the usual search (inject.h) */
	FILE *out;              /* NULL: stdout */
};

/* Parse the format and the condition as the agent will (probe/probe.h):
 * 0, or -EINVAL (syntax), -EPERM (a call or an assignment), -E2BIG, with
 * a one-line reason in why. Touches nothing. */
int heal_probe__check(const struct heal_probe_opts *o, char *why, size_t cap);

/* Set the probe in pid and in every descendant running its executable
 * (docs/design.md §15; a descendant that cannot take it is a line on
 * stderr), print one line per hit on o->out (prefixed "[pid N] " when more
 * than one process is probed; JSON objects with o->json; the first hit's
 * thread stack for a snapshot) until o->count lines over the tree, the
 * timeout, SIGINT/SIGTERM/SIGHUP or every process's exit, then remove it:
 * every function and suspended frame runs its original code again. 0, or
 * -errno with a one-line message in err: as heal_watch__run for the
 * attach; -ENOENT no live code on that line (the message names the
 * nearest lines with code) or no live code of that file; -EOPNOTSUPP the
 * line cannot be probed; -ETIMEDOUT no snapshot within the timeout;
 * refusals of heal_probe__check. The caller's handlers of those three
 * signals are restored; after a stop by one of them the three stay blocked
 * (the caller is on its way out: a second one must not kill it). */
int heal_probe__run(pid_t pid, const struct heal_probe_opts *o, char *err, size_t errlen);

/* ---- suture-attach --reload (edit and continue) ---- */

struct heal_reload_opts {
	const char *agent_path; /* NULL: the usual search (inject.h) */
	/* The store whose patches of reloaded functions retire (superseded by
	 * the reload); NULL: the default store ($SUTURE_STORE, .suture). */
	const char *store_dir;
	bool verbose;
	FILE *out; /* the result lines; NULL: stdout */
};

/* For each file (in order): read it, find the module loaded from its real
 * path in pid, recompile it there, switch every changed function (one
 * "reloaded" / "refused" / "added" line each on o->out, then a summary).
 * The store's active patches of this program in a reloaded function (or
 * nested in it) are marked superseded by the reload (one "superseded" line
 * each; a missing store is no store to change, a store that cannot be
 * changed is a warning line: the reload happened).
 * The target is checked as --dump checks it, the agent injected or
 * reused (served beside a --watch). Returns 0 when every file was applied
 * (perhaps partly: refusals are lines, not errors), else -errno with a
 * one-line message in err, at the first file that failed (earlier ones
 * stay applied): -EBADF a file cannot be read here; -ENOENT no module of
 * the target was loaded from it; -EINVAL it does not compile (err names
 * the SyntaxError's file and line; that module is unchanged); the
 * attach's errors as heal_watch__run gives them. */
int heal_reload__run(pid_t pid, char *const *files, size_t nfiles, const struct heal_reload_opts *o,
		     char *err, size_t errlen);

/* ---- process trees (heal/tree.c, docs/design.md §15) ---- */

/* The processes forked from a root the caller watches itself: one agent
 * session, reader and heal handle each, one store. */
struct heal_tree_opts {
	struct heal_opts heal;  /* for every member (program: the root's) */
	const char *agent_path; /* NULL: the usual search (inject.h) */
	const char *app_paths;  /* --app-path, or NULL */
};
struct heal_tree;
struct pollfd;
int heal_tree__open(pid_t root, const struct heal_tree_opts *o, struct heal_tree **out);
/* detach: DETACH every member's agent first (watcher removed). sum (may
 * be NULL) gets what the members did added (loaded patches aside). NULL t
 * ok. */
void heal_tree__close(struct heal_tree *t, bool detach, struct heal_stats *sum);
/* Add pid: connect to its agent (a FORKED child: it listens already), or
 * with inject, inject or reuse one (ptrace: suture-attach). A process
 * whose attach fails is left as it was and said so unless it is gone.
 * Its stored patches are loaded when the tree made some or it was
 * injected. 0 (also: already in, or the root) or -errno. */
int heal_tree__add(struct heal_tree *t, pid_t pid, bool inject);
/* The root's descendants in /proc running its executable, injected, until
 * *stop (may be NULL) is set. */
int heal_tree__add_descendants(struct heal_tree *t, volatile sig_atomic_t *stop);
/* The children s's agent reported (FORKED), added. */
void heal_tree__take_forked(struct heal_tree *t, struct inject_session *s);
/* The members' session descriptors, appended to pf (n of cap used). */
void heal_tree__pollfds(const struct heal_tree *t, struct pollfd *pf, size_t *n, size_t cap);
/* Serve what the members' agents sent: crashes healed (each patch sent
 * to the other members at once), FORKED children added, exited members
 * dropped. Returns how many patches were made (the caller sends them to
 * the root); *not_resumed set when one crash went on (its work failed:
 * suture-run may run the script again). */
int heal_tree__step(struct heal_tree *t, bool *not_resumed);
/* A patch was made in `except` (a member or the root): every other
 * member gets the stored patches into its live code. */
void heal_tree__propagate(struct heal_tree *t, pid_t except);
/* The root's session and heal handle (the caller's; NULL: none now):
 * a new session gets TREE_FILES (forked imports, design §15). */
void heal_tree__set_root(struct heal_tree *t, struct inject_session *s, struct heal *h);
/* The files with stored patches, as a boot image names them: the root's
 * session gets them without a heal handle or a read of the store. */
void heal_tree__give_files(struct heal_tree *t, char *const *files, size_t n);
/* Store the members' guard firings (heal__flush each). */
void heal_tree__flush(struct heal_tree *t);
/* fn on each member's session; the first error. */
int heal_tree__each(struct heal_tree *t, int (*fn)(pid_t pid, struct inject_session *s, void *ctx),
		    void *ctx);
size_t heal_tree__size(const struct heal_tree *t);
/* More than one process was ever watched (lines then name the pid). */
bool heal_tree__several(const struct heal_tree *t);

/* ---- suture-run ---- */

/* What suture-run runs (heal/cmdline.c): the words after its options,
 * "script.py args", "-m NAME args", or "python3.11 [options] (script.py |
 * -m NAME) args". args is what follows the interpreter, passed as typed. */
struct heal_cmdline {
	const char *python; /* an interpreter named first, or NULL */
	char **args;        /* the interpreter's arguments (pointers into words) */
	const char *script; /* the script file, or NULL with module */
	const char *module; /* -m's module name, or NULL with script */
};
/* Parse words (NULL-terminated). -EINVAL with a one-line err: nothing to
 * run, -c, a script on stdin ('-'), an option without its value. */
int heal_cmdline__parse(char **words, struct heal_cmdline *out, char *err, size_t cap);
/* Whether word names a Python interpreter (python, python3, python3.11,
 * python3.11d, python3.11-dbg; any directory). */
bool heal_cmdline__is_python(const char *word);
/* The file runpy would run for -m name, searched in dirs (NULL-terminated;
 * empty entries skipped): DIR/a/b.py, or DIR/a/b/__main__.py for a package.
 * -ENOENT where none is, -EINVAL for a name that is no module name. */
int heal_cmdline__module_file(const char *name, const char *const *dirs, char *out, size_t cap);

struct heal_run_opts {
	const char *python;     /* the interpreter (default /usr/bin/python3.11) */
	bool python_from_venv;  /* python is $VIRTUAL_ENV/bin/python (no --python) */
	const char *agent_path; /* NULL: the usual search (inject.h) */
	const char *store_dir;
	bool dry_run, verbose, shadow;
	bool restart;             /* --restart: restart the program after each healed crash */
	bool quiet;               /* --quiet: suture's progress lines are not printed */
	bool no_resume;           /* never resume a crashing call in flight */
	const char *app_paths;    /* --app-path: ':'-joined absolute paths, or NULL */
	const char *heal_handled; /* --heal-handled: '\n'-joined sites, or NULL */
	uint32_t ttl_days;
	unsigned retries;      /* re-runs after a healed crash (default 3; 0: never) */
	unsigned max_restarts; /* --restart: restarts after a healed crash */
	FILE *events;          /* --json: one JSON object a line per event (NULL: none) */
	bool store_found;      /* heal_opts.store_found (set by heal_run__main) */
	/* What to run; python above is cmd.python's when one was named. */
	struct heal_cmdline cmd;
};

/* Run python with o->cmd.args (a script, or -m and a module, found in the
 * working directory and $PYTHONPATH for the program's identity) under the
 * agent, heal, re-run; prints the session summary. Returns the exit
 * status for suture-run: the script's own (a script killed by a signal
 * makes us die by it too), 5 if python is not CPython 3.11 (checked
 * before it runs; a name without '/' is looked up on PATH), 127 if it
 * could not be started. */
int heal_run__main(const struct heal_run_opts *o);

#endif
