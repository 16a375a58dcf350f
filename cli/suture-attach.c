/* suture-attach: attach to a running CPython 3.11.
 *
 * Modes (one per run): --dump prints every thread's Python stack (inspect/);
 * --watch heals structural crashes as they happen (heal/heal.h); --log and
 * --snapshot set a live probe (heal/probe.c); --reload pushes edited sources
 * into the target (heal_reload__run).
 * The option table and the mode switch are the only places a new mode
 * touches. Exit codes are documented in docs/man/suture-attach.1. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>

#include "heal/heal.h"
#include "inject/inject.h"
#include "inspect/inspect.h"

#include "cli/exit.h" /* one table for every command */
#define EXIT_INTERNAL EXIT_FAIL

enum mode { MODE_NONE, MODE_DUMP, MODE_WATCH, MODE_DETACH, MODE_LOG, MODE_SNAPSHOT, MODE_RELOAD };

struct args {
	pid_t pid;
	enum mode mode;
	bool locals, json, verbose, no_cache, quiet;
	/* --watch */
	const char *store;
	bool dry_run, hold;
	double timeout;
	uint32_t ttl;
	char *app_paths;    /* --app-path, resolved, ':'-joined */
	char *heal_handled; /* --heal-handled, '\n'-joined */
	/* --log / --snapshot */
	struct heal_probe_opts probe;
	/* --reload FILE [FILE...]: argv[reload_at..argc) after parsing */
	char **reload_files;
	size_t nreload;
};

/* --dump, --watch and --detach are three things to do: one at a time. */
static int set_mode(struct args *a, enum mode m)
{
	if (a->mode != MODE_NONE && a->mode != m) {
		fprintf(stderr, "suture-attach: --dump, --watch and --detach: give one of them\n");
		return -EINVAL;
	}
	a->mode = m;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: suture-attach --pid PID --dump [--locals] [--json] [--verbose]\n"
		"       suture-attach --pid PID --watch [--hold] [--store DIR] [--dry-run] [--verbose] [--json] [--timeout S] [--ttl DAYS]\n"
		"                     [--app-path PATH]... [--heal-handled SITE]... [--quiet]\n"
		"       suture-attach --pid PID --log FILE:LINE 'TEXT {expr}...' [--if COND] [--count K]\n"
		"                     [--timeout S] [--json]\n"
		"       suture-attach --pid PID --snapshot FILE:LINE [--if COND] [--timeout S] [--json]\n"
		"       suture-attach --pid PID --detach [--quiet]\n"
		"       suture-attach --pid PID --reload FILE [FILE...] [--store DIR]\n"
		"\n"
		"  -p, --pid PID    the CPython 3.11 process to attach to\n"
		"  -d, --dump       print every thread's Python stack, innermost frame first\n"
		"  -l, --locals     with --dump: also print local variables\n"
		"  -j, --json       with --dump: one JSON document instead of text; with --watch:\n"
		"                   one JSON object a line on stdout per event (crash, guard\n"
		"                   applied, resumed, refused, stored; docs/formats/events.md)\n"
		"  -v, --verbose    say where the interpreter layout came from, and timings\n"
		"  -q, --quiet      no [suture] progress lines: --watch's watching, crash seen,\n"
		"                   guard applied, stored, exited, detached; --detach's\n"
		"                   confirmation; --log's end. Errors, refusals and what needs\n"
		"                   you still print; a dump, probe lines and --reload's results\n"
		"                   are the output and stay\n"
		"      --no-cache   neither read nor write the layout cache\n"
		"  -w, --watch      heal structural crashes in the target as they happen\n"
		"      --store DIR  with --watch: the patch store; with --reload: the store\n"
		"                   whose patches of reloaded functions retire\n"
		"      --dry-run    with --watch: analyse and report, change nothing\n"
		"      --hold       with --watch: hold every crash (its thread parked in the\n"
		"                   crashing function) until its fixed source is reloaded\n"
		"                   (--reload: it restarts at the failing line) or ^C\n"
		"      --timeout S  with --watch: stop watching after S seconds\n"
		"      --ttl DAYS   with --watch: lifetime of stored patches (1..36500)\n"
		"      --app-path P with --watch: more application code (repeatable), healed\n"
		"                   even inside site-packages (see WHAT COUNTS AS A CRASH)\n"
		"      --heal-handled SITE  with --watch: heal crashes at SITE (module.qualname:line,\n"
		"                   as suture-audit lists handled crashes) although the program's\n"
		"                   own catch-all handles them (repeatable)\n"
		"      --log FILE:LINE TEXT  print TEXT each time a thread runs LINE, each {expr}\n"
		"                   evaluated in that frame (no program code runs); removed on exit\n"
		"      --snapshot FILE:LINE  print the stack and locals of the first thread that\n"
		"                   runs LINE (as --dump --locals), then remove the probe\n"
		"      --if COND    with --log/--snapshot: only when COND holds\n"
		"      --count K    with --log: stop after K lines\n"
		"  -r, --reload F.. recompile the edited module source(s) F in the target;\n"
		"                   every changed function runs the new code (edit and continue)\n"
		"      --detach     stop the agent left in the target (watcher removed,\n"
		"                   channel closed); applied patches stay\n"
		"  -h, --help       this help\n"
		"  -V, --version    print the version\n"
		"\n"
		"Exit status: 0 ok, 2 usage (or a thread id), 3 no such process, 4 not Python, 5 not 3.11,\n"
		"6 permission denied, 7 already traced, 8 stopped, 9 exited during the dump,\n"
		"10 no interpreter layout, 11 no agent to detach, 12 FILE not loaded in the target\n"
		"or no code on LINE, 13 FILE does not compile, 14 no snapshot within --timeout,\n"
		"1 other errors. See suture-attach(1).\n");
}

static int parse_pid(const char *s, pid_t *pid)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v <= 0 || v > INT_MAX)
		return -EINVAL;
	*pid = (pid_t)v;
	return 0;
}

/* FILE:LINE (the last colon splits: a path may hold colons). */
static int parse_probe_where(char *arg, struct heal_probe_opts *p)
{
	char *colon = strrchr(arg, ':'), *end;
	long v = 0;
	if (colon) {
		errno = 0;
		v = strtol(colon + 1, &end, 10);
	}
	if (!colon || colon == arg || errno || *end || end == colon + 1 || v < 1 || v > INT_MAX) {
		fprintf(stderr, "suture-attach: bad probe place '%s' (FILE:LINE)\n", arg);
		return -EINVAL;
	}
	*colon = 0;
	p->file = arg;
	p->line = (int)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	enum {
		OPT_NO_CACHE = 1000,
		OPT_STORE,
		OPT_DRY_RUN,
		OPT_TIMEOUT,
		OPT_TTL,
		OPT_DETACH,
		OPT_APP_PATH,
		OPT_HEAL_HANDLED,
		OPT_LOG,
		OPT_SNAPSHOT,
		OPT_IF,
		OPT_COUNT,
		OPT_HOLD
	};
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "dump", no_argument, NULL, 'd' },
		{ "locals", no_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "no-cache", no_argument, NULL, OPT_NO_CACHE },
		{ "watch", no_argument, NULL, 'w' },
		{ "store", required_argument, NULL, OPT_STORE },
		{ "app-path", required_argument, NULL, OPT_APP_PATH },
		{ "heal-handled", required_argument, NULL, OPT_HEAL_HANDLED },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "hold", no_argument, NULL, OPT_HOLD },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "ttl", required_argument, NULL, OPT_TTL },
		{ "detach", no_argument, NULL, OPT_DETACH },
		{ "log", required_argument, NULL, OPT_LOG },
		{ "snapshot", required_argument, NULL, OPT_SNAPSHOT },
		{ "if", required_argument, NULL, OPT_IF },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "reload", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	opterr = 0;
	char *end;
	while ((c = getopt_long(argc, argv, "p:dljwvqr:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (parse_pid(optarg, &a->pid)) {
				fprintf(stderr, "suture-attach: bad pid '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'd':
			if (set_mode(a, MODE_DUMP))
				return EXIT_USAGE;
			break;
		case 'l':
			a->locals = true;
			break;
		case 'j':
			a->json = true;
			break;
		case 'v':
			a->verbose = true;
			break;
		case 'q':
			a->quiet = true;
			break;
		case OPT_NO_CACHE:
			a->no_cache = true;
			break;
		case 'w':
			if (set_mode(a, MODE_WATCH))
				return EXIT_USAGE;
			break;
		case OPT_DETACH:
			if (set_mode(a, MODE_DETACH))
				return EXIT_USAGE;
			break;
		case OPT_LOG:
		case OPT_SNAPSHOT:
			a->mode = c == OPT_LOG ? MODE_LOG : MODE_SNAPSHOT;
			if (parse_probe_where(optarg, &a->probe))
				return EXIT_USAGE;
			if (c == OPT_LOG) {
				/* TEXT is the next word: --log FILE:LINE 'TEXT' */
				if (optind >= argc) {
					fprintf(stderr,
						"suture-attach: --log FILE:LINE needs a TEXT\n");
					return EXIT_USAGE;
				}
				a->probe.format = argv[optind++];
			}
			break;
		case OPT_IF:
			a->probe.cond = optarg;
			break;
		case OPT_COUNT: {
			errno = 0;
			long v = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || v < 1 || v > 1000000000) {
				fprintf(stderr, "suture-attach: bad --count '%s' (1..1000000000)\n",
					optarg);
				return EXIT_USAGE;
			}
			a->probe.count = (uint32_t)v;
			break;
		}
		case 'r':
			a->mode = MODE_RELOAD;
			a->reload_files = &argv[optind - 1]; /* its argument */
			break;
		case OPT_STORE:
			a->store = optarg;
			break;
		case OPT_APP_PATH: {
			char err[512];
			if (heal_config__add_app_path(&a->app_paths, optarg, err, sizeof(err))) {
				fprintf(stderr, "suture-attach: %s\n", err);
				return EXIT_USAGE;
			}
			break;
		}
		case OPT_HEAL_HANDLED: {
			char err[512];
			if (heal_config__add_heal_handled(&a->heal_handled, optarg, err,
							  sizeof(err))) {
				fprintf(stderr, "suture-attach: %s\n", err);
				return EXIT_USAGE;
			}
			break;
		}
		case OPT_DRY_RUN:
			a->dry_run = true;
			break;
		case OPT_HOLD:
			a->hold = true;
			break;
		case OPT_TIMEOUT:
			errno = 0;
			a->timeout = strtod(optarg, &end);
			if (errno || *end || end == optarg || !(a->timeout >= 0)) {
				fprintf(stderr, "suture-attach: bad --timeout '%s' (seconds)\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_TTL: {
			errno = 0;
			long v = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || v < 1 || v > 36500) {
				fprintf(stderr, "suture-attach: bad --ttl '%s' (1..36500 days)\n",
					optarg);
				return EXIT_USAGE;
			}
			a->ttl = (uint32_t)v;
			break;
		}
		case 'h':
			usage(stdout);
			exit(EXIT_OK);
		case 'V':
			printf("suture-attach " SUTURE_VERSION "\n");
			exit(EXIT_OK);
		default:
			fprintf(stderr,
				"suture-attach: unknown or incomplete option '%s' (see suture-attach --help)\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (a->mode == MODE_RELOAD) {
		/* getopt moved the other FILEs behind the options: the first
		 * one (--reload's argument) joins them. */
		char **v = calloc((size_t)(argc - optind + 1), sizeof *v);
		if (!v) {
			fprintf(stderr, "suture-attach: out of memory\n");
			return EXIT_INTERNAL;
		}
		v[0] = *a->reload_files;
		for (int i = optind; i < argc; i++)
			v[1 + (size_t)(i - optind)] = argv[i];
		a->reload_files = v;
		a->nreload = (size_t)(argc - optind + 1);
	} else if (optind < argc) {
		fprintf(stderr, "suture-attach: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (!a->pid || a->mode == MODE_NONE) {
		fprintf(stderr, "suture-attach: %s (see --help)\n",
			!a->pid ? "--pid is required"
				: "no mode given (--dump, --watch, --log, --snapshot, --reload or --detach)");
		return EXIT_USAGE;
	}
	bool probe = a->mode == MODE_LOG || a->mode == MODE_SNAPSHOT;
	if (a->mode != MODE_WATCH &&
	    (a->dry_run || a->hold || a->ttl || (a->store && a->mode != MODE_RELOAD))) {
		fprintf(stderr, "suture-attach: --dry-run, --hold and --ttl go with --watch; "
				"--store with --watch or --reload\n");
		return EXIT_USAGE;
	}
	if (a->mode != MODE_WATCH && !probe && a->timeout > 0) {
		fprintf(stderr,
			"suture-attach: --timeout goes with --watch, --log or --snapshot\n");
		return EXIT_USAGE;
	}
	if (a->quiet && a->verbose) {
		fprintf(stderr, "suture-attach: --quiet and --verbose: give one of them\n");
		return EXIT_USAGE;
	}
	if (a->mode != MODE_DUMP && a->locals) {
		fprintf(stderr, "suture-attach: --locals goes with --dump\n");
		return EXIT_USAGE;
	}
	if (a->mode != MODE_DUMP && a->mode != MODE_WATCH && !probe && a->json) {
		fprintf(stderr,
			"suture-attach: --json goes with --dump, --watch, --log or --snapshot\n");
		return EXIT_USAGE;
	}
	if (!probe && a->probe.cond) {
		fprintf(stderr, "suture-attach: --if goes with --log or --snapshot\n");
		return EXIT_USAGE;
	}
	if (a->mode != MODE_LOG && a->probe.count) {
		fprintf(stderr, "suture-attach: --count goes with --log\n");
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

static int exit_for(int err, bool opened)
{
	switch (-err) {
	case ESRCH:
		return opened ? EXIT_EXITED : EXIT_NO_PROCESS;
	case EPERM:
	case EACCES:
		return EXIT_PERMISSION;
	case ENOEXEC:
		return EXIT_NOT_PYTHON;
	case EPROTONOSUPPORT:
		return EXIT_BAD_VERSION;
	case EBUSY:
		return EXIT_TRACED;
	case EAGAIN:
		return EXIT_STOPPED;
	case ENODATA:
		return EXIT_NO_LAYOUT;
	}
	return EXIT_INTERNAL;
}

/* The modules' messages start "inspect: pid N: ..." (or inject:, attach:,
 * heal:); ours "suture-attach: pid N: ...": one prefix. */
static void report(const char *msg, pid_t pid, int err)
{
	static const char *const mods[] = { "inspect: ", "inject: ", "attach: ", "heal: " };
	for (size_t i = 0; i < sizeof(mods) / sizeof(mods[0]); i++)
		if (!strncmp(msg, mods[i], strlen(mods[i]))) {
			msg += strlen(mods[i]);
			break;
		}
	if (msg[0])
		fprintf(stderr, "suture-attach: %s\n", msg);
	else
		fprintf(stderr, "suture-attach: pid %d: %s\n", (int)pid, strerror(-err));
}

/* A thread id names a task of another process: /proc/TID exists (not
 * listed, but reachable) and its Tgid is the process. Attaching to it would
 * inject into the process and then look for a channel named after the TID,
 * so refuse before touching the target. Returns 0, or the exit code after
 * printing the one-line error. A pid with no /proc entry is left to the
 * mode, which reports "no such process". */
static int refuse_thread_id(pid_t pid)
{
	char path[64], line[256];
	long tgid = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return EXIT_OK;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Tgid: %ld", &tgid) == 1)
			break;
	fclose(f);
	if (tgid <= 0 || tgid == (long)pid)
		return EXIT_OK;
	fprintf(stderr, "suture-attach: %d is a thread of process %ld: give --pid %ld\n", (int)pid,
		tgid, tgid);
	return EXIT_USAGE;
}

static int run_dump(const struct args *a)
{
	struct inspect_opts o = { .no_cache = a->no_cache, .verbose = a->verbose ? stderr : NULL };
	struct inspect_proc *ip = NULL;
	struct inspect_snapshot *snap = NULL;
	struct inspect_snap_stats st = { 0 };
	char err[512];
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = inspect_proc__open(a->pid, &o, &ip, err, sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc) {
		report(err, a->pid, rc);
		return exit_for(rc, false);
	}
	rc = inspect_proc__snapshot(ip, a->locals ? INSPECT_SNAP_LOCALS : 0, NULL, &snap, &st);
	if (rc) {
		report(inspect_proc__error(ip), a->pid, rc);
		inspect_proc__close(ip);
		return exit_for(rc, true);
	}
	rc = a->json ? inspect_snapshot__print_json(snap, ip, stdout)
		     : inspect_snapshot__print(snap, ip, stdout);
	if (a->verbose)
		fprintf(stderr, "suture-attach: pid %d: open %.3f ms\n", (int)a->pid,
			(double)(t1.tv_sec - t0.tv_sec) * 1e3 +
				(double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	if (a->verbose)
		fprintf(stderr,
			"suture-attach: pid %d: %u threads, %u frames, %u reads (%u while stopped); "
			"target stopped %.3f ms (stop %.3f, copy %.3f, resume %.3f), dump %.3f ms\n",
			(int)a->pid, st.threads, st.frames, st.reads, st.copy_reads, st.stopped_ms,
			st.seize_ms, st.copy_ms, st.release_ms, st.total_ms);
	inspect_snapshot__free(snap);
	inspect_proc__close(ip);
	if (fflush(stdout) || rc) {
		fprintf(stderr, "suture-attach: pid %d: cannot write the dump\n", (int)a->pid);
		return EXIT_INTERNAL;
	}
	return EXIT_OK;
}

/* --detach: connect to an agent already serving in the target (never
 * inject one) and tell it to stop: it removes its watcher, closes its
 * channel and keeps every patch it installed. */
static int run_detach(const struct args *a)
{
	struct inject_opts o = { .no_inject = true, .connect_timeout_ms = 200 };
	struct inject_session *s = NULL;
	char why[512] = "";
	int err = inject_session__open(a->pid, &o, &s, why, sizeof(why));

	if (err == -ENOENT || err == -ECONNREFUSED || err == -ETIMEDOUT) {
		fprintf(stderr, "suture-attach: pid %d: no suture agent serves this process\n",
			(int)a->pid);
		return kill(a->pid, 0) && errno == ESRCH ? EXIT_NO_PROCESS : EXIT_NO_AGENT;
	}
	if (err) {
		fprintf(stderr, "suture-attach: %s\n", why);
		return exit_for(err, false);
	}
	err = inject_session__detach(s);
	if (err) {
		fprintf(stderr, "suture-attach: %s\n", inject_session__error(s));
		inject_session__close(s);
		return EXIT_INTERNAL;
	}
	inject_session__close(s);
	if (!a->quiet)
		fprintf(stderr,
			"[suture] detached from pid %d: watcher removed, applied patches stay\n",
			(int)a->pid);
	return EXIT_OK;
}

/* --log / --snapshot (heal/probe.c). A bad expression is refused before
 * the target is touched. */
static int run_probe(struct args *a)
{
	char err[1024];
	struct heal_probe_opts *p = &a->probe;
	p->snapshot = a->mode == MODE_SNAPSHOT;
	p->json = a->json;
	p->verbose = a->verbose;
	p->quiet = a->quiet;
	p->timeout_s = a->timeout;
	p->rate = HEAL_PROBE_RATE;
	int rc = heal_probe__check(p, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "suture-attach: %s\n", err);
		return EXIT_USAGE;
	}
	rc = heal_probe__run(a->pid, p, err, sizeof(err));
	if (!rc)
		return EXIT_OK;
	report(err, a->pid, rc);
	if (rc == -ENOENT || rc == -EOPNOTSUPP)
		return EXIT_NOT_FOUND;
	if (rc == -ETIMEDOUT)
		return EXIT_NO_SNAPSHOT;
	return exit_for(rc, false);
}

int main(int argc, char **argv)
{
	struct args a = { 0 };
	int rc = parse_args(argc, argv, &a);
	if (rc != EXIT_OK)
		return rc;
	if ((rc = refuse_thread_id(a.pid)) != EXIT_OK)
		return rc;
	switch (a.mode) {
	case MODE_DUMP:
		return run_dump(&a);
	case MODE_WATCH: {
		char *paths = NULL, *sites = NULL, err[512], store_buf[PATH_MAX];
		/* No --store: the store found from the target's program. */
		a.store = heal_config__store_of_pid(a.pid, a.store, store_buf, sizeof(store_buf));
		if (heal_config__app_paths(a.store, a.app_paths, &paths, err, sizeof(err))) {
			fprintf(stderr, "suture-attach: %s\n", err);
			return EXIT_USAGE;
		}
		if (heal_config__heal_handled(a.store, a.heal_handled, &sites, err, sizeof(err))) {
			fprintf(stderr, "suture-attach: %s\n", err);
			return EXIT_USAGE;
		}
		struct heal_watch_opts o = { .store_dir = a.store,
					     .dry_run = a.dry_run,
					     .hold = a.hold,
					     .verbose = a.verbose,
					     .timeout_s = a.timeout,
					     .ttl_days = a.ttl,
					     .events = a.json ? stdout : NULL,
					     .store_found = a.store == store_buf,
					     .quiet = a.quiet,
					     .app_paths = paths,
					     .heal_handled = sites };
		rc = heal_watch__run(a.pid, &o, err, sizeof(err));
		if (rc)
			report(err, a.pid, rc);
		return rc ? exit_for(rc, false) : EXIT_OK;
	}
	case MODE_DETACH:
		return run_detach(&a);
	case MODE_LOG:
	case MODE_SNAPSHOT:
		return run_probe(&a);
	case MODE_RELOAD: {
		char err[1024];
		struct heal_reload_opts o = { .store_dir = a.store, .verbose = a.verbose };
		rc = heal_reload__run(a.pid, a.reload_files, a.nreload, &o, err, sizeof(err));
		if (rc)
			report(err, a.pid, rc);
		return rc == 0         ? EXIT_OK
		       : rc == -EBADF  ? EXIT_USAGE
		       : rc == -ENOENT ? EXIT_NOT_FOUND
		       : rc == -EINVAL ? EXIT_NO_COMPILE
				       : exit_for(rc, false);
	}
	case MODE_NONE:
		break;
	}
	return EXIT_USAGE;
}
