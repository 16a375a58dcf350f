/* heal: suture-run, the supervisor of a script it starts itself.
 *
 * The child is the interpreter on the script, with libsuture_agent.so in
 * LD_PRELOAD (its constructor starts the agent before Py_Initialize),
 * WIRE_BOOT_ENV_LIST naming a file that lists the source files with stored
 * patches and WIRE_BOOT_ENV_FD one end of a socket pair (wire/boot.h). The agent's
 * boot hook (agent/boot.c: an audit hook on "exec", which CPython
 * raises with a module's code object right before running its body, for
 * __main__ in run_mod and for imports through builtins.exec) parks the
 * thread there and reports the module on that socket; we install the stored
 * guards into its nested code objects over the same socket, and the module
 * body then defines functions that are healed from their first call. The
 * first module after initialization is always reported and answered only
 * once our session with the agent is up, so crashes are watched from the
 * script's first line.
 *
 * We are the debugger: crashes are analysed and patched as in --watch, and
 * resumed in flight where the agent can. A crash that is not resumed goes
 * on (the script dies), so the script is run again with the new patch, at
 * most `retries` times (or `max_restarts` in --watch service mode). Arguments, stdin, stdout and the
 * exit status pass through; SIGINT/SIGTERM/SIGHUP sent to us are forwarded
 * (a terminal's SIGINT reaches the child directly, being in our process
 * group, and is not sent twice).
 */
#include "heal/heal-priv.h"
#include "attach/attach.h"
#include "wire/boot.h"
#include "wire/channel.h"
#include "inject/inject-priv.h"
#include "inspect/inspect.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_child = 0;

/* Set when we were asked to stop (SIGINT, SIGTERM, SIGHUP): the program
 * then ends because it was told to, and is never re-run. */
static volatile sig_atomic_t g_stop_asked;

static void forward(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	g_stop_asked = 1;
	/* SI_KERNEL: from the terminal, which signalled the whole process
	 * group (the child too). Anything sent to us alone is passed on. */
	if (g_child > 0 && (!si || si->si_code != SI_KERNEL))
		kill((pid_t)g_child, sig);
}

/* The store's one-line message ("store: PATH: cause"), kept for ours. */
static void store_keep(const char *msg, void *ctx)
{
	snprintf(ctx, 512, "%s", msg);
}

static double mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The boot list: the script itself and the files that have stored
 * patches for it, each named once (absolute real paths, a line each), in a
 * private temporary file for the agent's boot hook. The file is made before
 * the child starts (its path goes into the environment) and filled while
 * the interpreter initializes: the hook reads it only after we answered the
 * first module, so the store is parsed in parallel with Py_Initialize. */
struct boot_list {
	char path[64];
	int fd;       /* until filled */
	char **files; /* the files with patches (not the script) */
	size_t nfiles;
	struct store *st; /* kept for heal__preload, heal__use_store */
	char why[512];    /* the store's message when it could not be read */
};

static void boot_list__free(struct boot_list *bl)
{
	if (bl->fd >= 0)
		close(bl->fd);
	bl->fd = -1;
	if (bl->path[0])
		unlink(bl->path);
	bl->path[0] = 0;
	for (size_t i = 0; i < bl->nfiles; i++)
		free(bl->files[i]);
	free(bl->files);
	bl->files = NULL;
	bl->nfiles = 0;
	store__close(bl->st);
	bl->st = NULL;
}

static bool boot_list__has(const struct boot_list *bl, const char *file)
{
	for (size_t i = 0; i < bl->nfiles; i++)
		if (strcmp(bl->files[i], file) == 0)
			return true;
	return false;
}

static int boot_list__create(struct boot_list *bl)
{
	memset(bl, 0, sizeof(*bl));
	snprintf(bl->path, sizeof(bl->path), "/tmp/suture-boot.XXXXXX");
	/* CLOEXEC: the child gets the path, never this descriptor. */
	if ((bl->fd = mkostemp(bl->path, O_CLOEXEC)) < 0) {
		bl->path[0] = 0;
		return -errno;
	}
	return 0;
}

/* The list file: the script first, then the files (each once). */
static int boot_list__write(struct boot_list *bl, const char *program, bool *written)
{
	*written = false;
	FILE *f = fdopen(bl->fd, "w");
	if (!f)
		return -errno;
	bl->fd = -1;
	fprintf(f, "%s\n", program);
	for (size_t i = 0; i < bl->nfiles; i++)
		if (strcmp(bl->files[i], program) != 0)
			fprintf(f, "%s\n", bl->files[i]);
	if (fclose(f))
		return -errno;
	*written = true;
	return 0;
}

/* Write the list (the script first). On a store error the list names the
 * script only: the hook still holds it until we are connected. */
static int boot_list__fill(struct boot_list *bl, const struct heal_run_opts *o, const char *program,
			   bool *written)
{
	struct store *st = NULL;
	/* Writable (nothing is written here): heal records hit counts
	 * through it, from the snapshot parsed now (heal__use_store). Quiet:
	 * heal__load_tree reports problems, heal__flush its own failures. */
	int err = store__open_print(o->store_dir, 0, store_keep, bl->why, &st);
	if (err == -ENOENT)
		err = 0; /* nothing stored yet */
	if (st) {
		struct store_query q = { .program = program };
		struct store_iter it;
		store_iter__init(&it, st, &q);
		for (const struct store_patch *p; (p = store_iter__next(&it));) {
			if (boot_list__has(bl, p->file))
				continue;
			char **v = realloc(bl->files, (bl->nfiles + 1) * sizeof(char *));
			if (!v || !(v[bl->nfiles] = strdup(p->file))) {
				if (v)
					bl->files = v;
				err = -ENOMEM;
				break;
			}
			bl->files = v;
			bl->nfiles++;
		}
	}
	bl->st = st; /* the same snapshot gives heal its specs (heal__preload) */
	int werr = boot_list__write(bl, program, written);
	return werr ? werr : err;
}

/* The list from a boot image (heal/image.c): its sections are the files
 * with stored patches, the store is not read. */
static int boot_list__fill_image(struct boot_list *bl, const char *program,
				 const struct heal_boot_image *bi, bool *written)
{
	*written = false;
	for (size_t i = 0; i < bi->nfiles; i++) {
		if (boot_list__has(bl, bi->files[i]))
			continue;
		char **v = realloc(bl->files, (bl->nfiles + 1) * sizeof(char *));
		if (!v)
			return -ENOMEM;
		bl->files = v;
		if (!(v[bl->nfiles] = strdup(bi->files[i])))
			return -ENOMEM;
		bl->nfiles++;
	}
	return boot_list__write(bl, program, written);
}

/* The child's environment: ours, with the variables below set (each
 * replacing an inherited one of the same name). */
struct child_env {
	char **v;
	size_t n, cap;
	char *own[12]; /* the "NAME=value" strings made here */
	size_t nown;
};

static int child_env__set(struct child_env *e, const char *name, const char *value)
{
	size_t nl = strlen(name);
	char *kv = malloc(nl + strlen(value) + 2);
	if (!kv || e->nown == sizeof e->own / sizeof e->own[0]) {
		free(kv);
		return -ENOMEM;
	}
	sprintf(kv, "%s=%s", name, value);
	e->own[e->nown++] = kv;
	for (size_t i = 0; i < e->n; i++)
		if (strncmp(e->v[i], name, nl) == 0 && e->v[i][nl] == '=') {
			e->v[i] = kv;
			return 0;
		}
	if (e->n + 1 >= e->cap) {
		char **nv = realloc(e->v, (e->cap * 2 + 16) * sizeof(char *));
		if (!nv)
			return -ENOMEM;
		e->v = nv;
		e->cap = e->cap * 2 + 16;
	}
	e->v[e->n++] = kv;
	e->v[e->n] = NULL;
	return 0;
}

static void child_env__free(struct child_env *e)
{
	for (size_t i = 0; i < e->nown; i++)
		free(e->own[i]);
	free(e->v);
}

/* "a" + ":" + "b", either may be empty; NULL when out of memory. */
static char *join_colon(const char *a, const char *b)
{
	size_t len = strlen(a) + (b ? strlen(b) : 0) + 2;
	char *r = malloc(len);
	if (r)
		snprintf(r, len, "%s%s%s", a, b && *b ? ":" : "", b && *b ? b : "");
	return r;
}

static int child_env__build(struct child_env *e, const struct heal_run_opts *o, const char *agent,
			    const char *boot, int boot_child_fd, int ready_child_fd, int image_fd)
{
	char fdv[16];
	int rc = 0;
	size_t n = 0;
	while (environ[n])
		n++;
	memset(e, 0, sizeof *e);
	e->cap = n + 16;
	if (!(e->v = malloc(e->cap * sizeof(char *))))
		return -ENOMEM;
	memcpy(e->v, environ, (n + 1) * sizeof(char *));
	e->n = n;
	char *pre = join_colon(agent, getenv("LD_PRELOAD"));
	rc = pre ? child_env__set(e, "LD_PRELOAD", pre) : -ENOMEM;
	free(pre);
	if (!rc && boot[0] && boot_child_fd >= 0) {
		snprintf(fdv, sizeof(fdv), "%d", boot_child_fd);
		if (!(rc = child_env__set(e, WIRE_BOOT_ENV_LIST, boot)))
			rc = child_env__set(e, WIRE_BOOT_ENV_FD, fdv);
		if (!rc && image_fd >= 0) {
			snprintf(fdv, sizeof(fdv), "%d", image_fd);
			rc = child_env__set(e, WIRE_BOOT_ENV_IMAGE_FD, fdv);
		}
	}
	if (!rc && ready_child_fd >= 0) {
		/* The agent writes a byte there once its socket listens. */
		snprintf(fdv, sizeof(fdv), "%d", ready_child_fd);
		rc = child_env__set(e, "SUTURE_AGENT_READY_FD", fdv);
	}
	/* A crash before we are connected waits for us (bounded). */
	if (!rc)
		rc = child_env__set(e, "SUTURE_AGENT_WAIT_DEBUGGER_MS", "5000");
	if (!rc && o->shadow)
		rc = child_env__set(e, "SUTURE_SHADOW", "1");
	if (!rc && o->app_paths) {
		/* The agent's library/application split (policy.h). */
		char *apv = join_colon(o->app_paths, getenv("SUTURE_APP_PATH"));
		rc = apv ? child_env__set(e, "SUTURE_APP_PATH", apv) : -ENOMEM;
		free(apv);
	}
	return rc;
}

/* The interpreter on the script, started with posix_spawn: glibc's is a
 * vfork (CLONE_VM|CLONE_VFORK), so neither our page tables are copied nor
 * our pages made copy-on-write for the time we run beside the child, which
 * a fork() cost on every run (1.7 ms to the child's first instruction and
 * 0.7 ms more to its exec on a paravirtualized MMU: docs/performance.md,
 * "start-up, fifth pass"). The two descriptors for the agent are ours with
 * close-on-exec; a dup2 onto itself clears that flag in the child only.
 * The child's signal handlers are the default (posix_spawn resets every
 * handled signal). */
static pid_t start_child(const struct heal_run_opts *o, const char *agent, const char *boot,
			 int boot_child_fd, int ready_child_fd, int image_fd, char **py_args,
			 char *err, size_t cap)
{
	struct child_env env;
	posix_spawn_file_actions_t fa;
	pid_t pid = -1;
	size_t n = 0;
	int rc;

	while (py_args[n])
		n++;
	char **argv = calloc(n + 2, sizeof(char *));
	if (boot_child_fd < 0)
		image_fd = -1;
	if (!argv ||
	    child_env__build(&env, o, agent, boot, boot_child_fd, ready_child_fd, image_fd)) {
		snprintf(err, cap, "cannot run %s: %s", o->python, strerror(ENOMEM));
		if (argv)
			child_env__free(&env);
		free(argv);
		return -1;
	}
	argv[0] = (char *)o->python;
	memcpy(argv + 1, py_args, n * sizeof(char *));
	posix_spawn_file_actions_init(&fa);
	rc = 0;
	if (boot[0] && boot_child_fd >= 0)
		rc = posix_spawn_file_actions_adddup2(&fa, boot_child_fd, boot_child_fd);
	if (!rc && ready_child_fd >= 0)
		rc = posix_spawn_file_actions_adddup2(&fa, ready_child_fd, ready_child_fd);
	if (!rc && boot[0] && image_fd >= 0)
		rc = posix_spawn_file_actions_adddup2(&fa, image_fd, image_fd);
	if (!rc)
		rc = posix_spawn(&pid, o->python, &fa, NULL, argv, env.v);
	posix_spawn_file_actions_destroy(&fa);
	child_env__free(&env);
	free(argv);
	if (rc) {
		snprintf(err, cap, "cannot run %s: %s", o->python, strerror(rc));
		return -1;
	}
	g_child = pid;
	return pid;
}

/* Everything the supervisor holds for one child. */
struct sup {
	const struct heal_run_opts *o;
	const char *program;
	pid_t pid;
	int boot_fd;
	struct wire_reader rd; /* boot_fd's frames */
	struct inject_session *s;
	struct inspect_proc *ip;
	struct heal *h;
	struct heal *hr; /* reports only (heal__open_reports), while h is NULL */
	bool inspect_failed;
	bool pending; /* a boot event waits for our answer */
	bool load;    /* ... after loading its module's patches */
	unsigned nevents;
	const struct boot_list *bl;
	bool script_listed; /* the hook will report the script's module */
	struct wire_crash ev;
	/* --verbose start-up clock, ms of CLOCK_MONOTONIC (0: not yet) */
	double t_spawn, t_first, t_session, t_event, t_held_from, t_held_to, t_load;
	double t_released;             /* the held module's RELEASE written */
	double t_heal_from, t_heal_to; /* inspect/ and heal opened */
	char held[96];                 /* the module that was held */
	struct heal_tree *tree;        /* the processes it forks */
	/* A boot image the hook installs from (NULL: none), what its
	 * sections gave, and what the usual loads record for the next one. */
	struct heal_boot_image *bi;
	struct heal_image_rec *rec;
	struct wire_patch_result *img_res; /* the held module's, from the image */
	size_t nimg_res;
	struct heal_stats img_st;
};

/* Handled crashes reported while no crash opened h (the usual case: the
 * program handles its own): a reports-only handle takes and stores them.
 * ending: the session goes (what it received is taken now). */
static void sup__handled(struct sup *u, bool ending)
{
	if (u->h || !u->s)
		return;
	if (!u->hr) {
		/* Patches installed from a boot image fire too: their counts
		 * go to the store through this handle. */
		if (!inject_session__has_handled(u->s) && !u->img_st.loaded)
			return;
		struct heal_opts ho = {
			.store_dir = u->o->store_dir,
			.program = u->program,
			.dry_run = u->o->dry_run,
			.verbose = u->o->verbose,
			.events = u->o->events,
			.heal_handled = u->o->heal_handled,
		};
		if (heal__open_reports(u->pid, u->s, &ho, &u->hr))
			return;
		heal__use_store(u->hr, u->bl->st);
	}
	if (ending)
		heal__set_session(u->hr, NULL);
}

/* inspect/ reads the child: opened at the first need (the interpreter is
 * initialized by then, every library mapped): when the agent's session
 * comes up if there are patches to load, else at the first crash.
 * early: right after the start, when patches are to be loaded; a failure
 * then is not final (sup__heal_early). */
static struct heal *sup__heal_open(struct sup *u, bool early)
{
	char err[512];
	if (u->h || u->inspect_failed)
		return u->h;
	u->t_heal_from = mono_ms();
	if (inspect_proc__open(u->pid, NULL, &u->ip, err, sizeof(err))) {
		u->ip = NULL;
		if (early)
			return NULL;
		fprintf(stderr, "[suture] %s: nothing is healed in this run\n", err);
		u->inspect_failed = true;
		return NULL;
	}
	struct heal_opts ho = {
		.store_dir = u->o->store_dir,
		.program = u->program,
		.ttl_days = u->o->ttl_days,
		.dry_run = u->o->dry_run,
		.verbose = u->o->verbose,
		.no_resume = u->o->no_resume,
		.events = u->o->events,
		.store_found = u->o->store_found,
		.quiet = u->o->quiet,
		.heal_handled = u->o->heal_handled,
	};
	if (heal__open(u->ip, u->s, &ho, &u->h)) {
		u->inspect_failed = true;
		return NULL;
	}
	/* The specs of the store snapshot the boot list came from (parsed
	 * once), usually while the interpreter runs site: the module that
	 * waits for its patches does not wait for the store too. */
	heal__preload(u->h, u->bl->st);
	heal__use_store(u->h, u->bl->st);
	heal__record_image(u->h, u->rec);
	u->t_heal_to = mono_ms();
	heal__set_tag(u->h, heal_tree__several(u->tree));
	return u->h;
}

static struct heal *sup__heal(struct sup *u)
{
	return sup__heal_open(u, false);
}

/* With patches to load, the layout is read as soon as the interpreter's
 * image allows: a static libpython (Debian's python3.11) has everything
 * inspect/ reads in the executable, which the exec posix_spawn waited
 * for has mapped, and nothing it reads depends on the interpreter's
 * initialization (symbols, Py_Version, the layout of its structs). Then
 * the interpreter is starting on the other CPU with no other thread; at
 * the agent's ready, this work ran beside site's imports and the agent
 * thread, and the script's module was reported 1.4 ms later than with an
 * empty store (docs/performance.md, "start-up, sixth pass"). A shared
 * libpython may not be mapped yet (the loader maps it a few ms in; pyenv's
 * was mapped in two of three runs here): then the open fails, quietly,
 * and is made again at the agent's ready, as before. */
static void sup__heal_early(struct sup *u)
{
	sup__heal_open(u, true);
}

static void sup__boot_close(struct sup *u)
{
	close(u->boot_fd);
	u->boot_fd = -1;
	wire_reader__free(&u->rd);
	u->pending = false;
}

/* Load the module's stored patches, then let it run. */
static void sup__boot_answer(struct sup *u)
{
	bool from_image = u->nimg_res > 0;
	struct heal *h = u->load && !from_image ? sup__heal(u) : NULL;
	bool first = !u->t_held_to, released = false;
	u->pending = false;
	double t = mono_ms(), released_at = 0;
	if (from_image) {
		/* Installed by the hook already: it runs at once, and the
		 * lines are said after. */
		released_at = mono_ms();
		if (heal_boot__release(u->boot_fd, u->ev.event_id))
			sup__boot_close(u);
		struct heal_boot_image_out io = { .log = stderr,
						  .events = u->o->events,
						  .quiet = u->o->quiet,
						  .pid = u->pid };
		heal_boot_image__report(u->bi, u->img_res, u->nimg_res, &io, &u->img_st);
		free(u->img_res);
		u->img_res = NULL;
		u->nimg_res = 0;
	}
	/* The release goes right behind the patches when there are some. */
	if (h && heal__load_tree_boot_release(h, u->ev.code_addr, u->boot_fd, &u->rd,
					      u->ev.event_id, &released_at) == -EPIPE) {
		sup__boot_close(u);
		released = true; /* nothing to send it on */
	}
	released = released || released_at;
	if (first) {
		u->t_held_from = u->t_event;
		u->t_load = mono_ms() - t;
		const char *b = strrchr(u->ev.filename, '/');
		b = b ? b + 1 : u->ev.filename;
		size_t n = strnlen(b, sizeof(u->held) - 1);
		memcpy(u->held, b, n);
		u->held[n] = 0;
	}
	if (!released && heal_boot__release(u->boot_fd, u->ev.event_id))
		sup__boot_close(u);
	if (first) {
		u->t_held_to = mono_ms(); /* with patches: once their answers are read */
		u->t_released = released_at ? released_at : u->t_held_to;
	}
}

/* The boot hook reports a module about to run and waits for our answer,
 * which comes once the agent's session is up (crashes are watched from
 * the module's first line) and its stored patches are installed. When the
 * script is listed, only listed modules are reported (the script's own
 * and those with patches); else the first module after initialization
 * (site's) is reported too, whatever its file, and is held in its place. */
static void sup__boot_read(struct sup *u)
{
	free(u->img_res);
	u->img_res = NULL;
	u->nimg_res = 0;
	if (heal_boot__next_report(u->boot_fd, &u->rd, &u->ev, &u->img_res, &u->nimg_res)) {
		sup__boot_close(u); /* EOF: the child is exiting */
		return;
	}
	if (u->nimg_res && !u->bi) { /* an image we never gave */
		free(u->img_res);
		u->img_res = NULL;
		u->nimg_res = 0;
	}
	if (!u->nimg_res) /* its section, if any, did not fit */
		heal_boot_image__missed(u->bi, u->ev.filename);
	u->pending = true;
	u->load = true; /* reported because listed */
	u->t_event = mono_ms();
	if (!u->t_first)
		u->t_first = u->t_event;
	if (u->nevents++ == 0 || u->script_listed) {
		/* The first module or the script's own: the child's cwd is
		 * still ours (no user code ran yet). A listed module that is
		 * not the script has patches (the child found it listed). */
		char real[PATH_MAX];
		bool known = realpath(u->ev.filename, real) != NULL;
		if (known && strcmp(real, u->program) == 0)
			u->load = boot_list__has(u->bl, real);
		else if (!u->script_listed)
			u->load = known && boot_list__has(u->bl, real);
	}
	/* The interpreter is initialized: read its layout now, while the
	 * agent's session is coming up (it takes a few ms either way), when
	 * patches are to be loaded; else at the first crash, if any. Those
	 * the hook installed from the image need nothing of it. */
	if (u->load && !u->nimg_res)
		sup__heal(u);
}

/* Tell the boot hook the list is complete; with the script listed, it
 * reports listed modules only (no first-module hold before the script). */
static int sup__boot_list_ready(int boot_fd, bool script_listed)
{
	return heal_boot__release(boot_fd, script_listed ? BOOT_LIST_SCRIPT : BOOT_LIST_ANY);
}

/* How often a long run stores the guard firings received meanwhile. */
#define HITS_FLUSH_MS 5000.0

/* The agent will not serve: say why when its channel directory is the
 * cause (a squatted or foreign XDG_RUNTIME_DIR), which the agent cannot
 * tell us itself. */
static void say_no_agent(pid_t pid)
{
	char why[256];
	if (inject_channel_check(pid, why, sizeof why) == -EPERM)
		fprintf(stderr,
			"[suture] pid %d: the agent did not come up: channel directory refused: %s: "
			"crashes are not healed\n",
			(int)pid, why);
	else
		fprintf(stderr,
			"[suture] pid %d: the agent did not come up: crashes are not healed\n",
			(int)pid);
}

/* Watch the child until it exits: boot events, the agent's session (opened
 * when the agent says its socket listens: a byte on ready_fd, or EOF there
 * when it will not; without that pipe, tried every millisecond), crash
 * reports. Returns the wait status. */
static int supervise(const struct heal_run_opts *o, pid_t pid, int boot_fd, int ready_fd,
		     const char *program, const struct boot_list *bl, bool script_listed,
		     struct heal_boot_image *bi, struct heal_image_rec *rec, double t_spawn,
		     struct heal_stats *total, bool *healed_now)
{
	struct sup u = { .o = o,
			 .program = program,
			 .pid = pid,
			 .boot_fd = boot_fd,
			 .bl = bl,
			 .script_listed = script_listed,
			 .bi = bi && bi->use ? bi : NULL,
			 .rec = rec,
			 .t_spawn = t_spawn };
	/* Patches to derive and load the usual way: the layout is read
	 * early. With an image, the hook installs them itself, and the
	 * layout is read at the first need (a module the image does not
	 * cover, a crash). */
	bool derive = bl->nfiles && !u.bi;
	int wstatus = 0;
	bool reaped = false, session_gone = false, ready = false;
	struct inject_opts io = { .no_inject = true,
				  .connect_timeout_ms = 1,
				  .hits = true,
				  .tree = true,
				  .handled = true,
				  .heal_handled = o->heal_handled };
	/* The processes the script forks (heal/tree.c): their agents come up
	 * on their own and are reported by their parent's (FORKED). */
	struct heal_tree *tree = NULL;
	struct heal_tree_opts to = { .heal = { .store_dir = o->store_dir,
					       .program = program,
					       .ttl_days = o->ttl_days,
					       .dry_run = o->dry_run,
					       .verbose = o->verbose,
					       .no_resume = o->no_resume,
					       .quiet = o->quiet,
					       .heal_handled = o->heal_handled },
				     .agent_path = o->agent_path,
				     .app_paths = o->app_paths };
	if (heal_tree__open(pid, &to, &tree))
		fprintf(stderr, "[suture] out of memory: forked processes are not watched\n");
	u.tree = tree;
	char sock[WIRE_PATH_MAX] = "";
	char open_err[512] = ""; /* why the last session open failed */

	*healed_now = false;
	if (derive)
		sup__heal_early(&u);
	if (u.bi) /* forks learn the files without a read of the store */
		heal_tree__give_files(tree, u.bi->files, u.bi->nfiles);
	/* How long a held script waits for the agent's session. */
	double session_deadline = mono_ms() + 5000;
	double t_flush = mono_ms();
	for (;;) {
		bool try_open = false;
		if (!u.s && !session_gone && !reaped) {
			if (ready)
				try_open = true;
			else if (ready_fd < 0) /* no pipe: look for the socket */
				try_open = (sock[0] ||
					    inject_socket_path(pid, sock, sizeof(sock)) == 0) &&
					   access(sock, F_OK) == 0;
		}
		if (try_open) {
			/* Patches to load: read the layout first (the interpreter
			 * is initialized once the agent listens). The agent
			 * installs its watcher meanwhile, which our handshake
			 * would wait for anyway; the module it holds is answered
			 * sooner. */
			if (ready && derive)
				sup__heal(&u);
			if (inject_session__open(pid, &io, &u.s, open_err, sizeof(open_err)) == 0) {
				u.t_session = mono_ms();
				if (o->verbose)
					fprintf(stderr, "[suture] agent ready in pid %d (%s)\n",
						(int)pid, inject_session__watch_detail(u.s));
				/* Read the layout now if patches will be loaded
				 * (usually while site runs); with none, at the
				 * first crash: most runs never need it. */
				if (u.h)
					heal__set_session(u.h, u.s);
				else if (derive)
					sup__heal(&u);
			} else {
				u.s = NULL;
				if (ready) { /* it listens, yet refuses us: final */
					fprintf(stderr,
						"[suture] pid %d: %s: crashes are not healed\n",
						(int)pid, open_err);
					session_gone = true;
				}
			}
		}
		if (u.pending && (u.s || session_gone || mono_ms() > session_deadline)) {
			if (!u.s && !session_gone)
				say_no_agent(pid);
			session_gone = session_gone || !u.s;
			sup__boot_answer(&u);
		}
		/* Nothing left to listen to: the child is exiting (or runs
		 * without the agent); wait for it below. */
		if (u.boot_fd < 0 && !u.s && (session_gone || reaped))
			break;
		/* Its session gets TREE_FILES when it comes (design §15). */
		heal_tree__set_root(tree, u.s, u.h);
		struct pollfd pf[3 + 256];
		nfds_t n = 0;
		int bi = -1, si = -1, ri = -1;
		/* A report the reader holds already: no poll will say so. */
		bool boot_held = u.boot_fd >= 0 && !u.pending && wire_reader__has_frame(&u.rd);
		if (u.boot_fd >= 0 && !u.pending) {
			pf[n] = (struct pollfd){ .fd = u.boot_fd, .events = POLLIN };
			bi = (int)n++;
		}
		if (u.s) {
			pf[n] = (struct pollfd){ .fd = inject_session__fd(u.s), .events = POLLIN };
			si = (int)n++;
		}
		if (ready_fd >= 0) {
			pf[n] = (struct pollfd){ .fd = ready_fd, .events = POLLIN };
			ri = (int)n++;
		}
		size_t tn = n;
		heal_tree__pollfds(tree, pf, &tn, sizeof(pf) / sizeof(pf[0]));
		bool tree_ready = false;
		/* Without the pipe, look for the session every millisecond; with
		 * it, the timeout only bounds how late a child's exit is seen. */
		int tmo = boot_held                ? 0
			  : u.s || session_gone    ? 200
			  : ready_fd >= 0 || ready ? 50
						   : 1;
		int pr = poll(pf, (nfds_t)tn, tmo);
		if (pr < 0 && errno != EINTR)
			break;
		for (size_t i = n; pr > 0 && i < tn; i++)
			tree_ready = tree_ready || pf[i].revents;
		if (pr > 0 && ri >= 0 && pf[ri].revents) {
			char c;
			ssize_t r = read(ready_fd, &c, 1);
			if (r < 0 && errno == EINTR)
				continue;
			/* A byte: the socket listens. EOF: the agent will not come
			 * up (the child exited, or the agent could not listen). */
			ready = r == 1;
			if (!ready && !u.s && !session_gone) {
				say_no_agent(pid);
				session_gone = true;
			}
			close(ready_fd);
			ready_fd = -1;
		}
		if (bi >= 0 && !u.pending && (boot_held || (pr > 0 && pf[bi].revents)))
			sup__boot_read(&u);
		/* Not only when its socket is readable: a crash read while we
		 * awaited an answer on the session (TREE_FILES after a patch)
		 * waits in the session's queue. */
		if (si >= 0) {
			struct wire_crash ev;
			int rc;
			while ((rc = inject_session__next_event(u.s, 0, &ev)) == 0) {
				enum heal_outcome oc = HEAL_NONE;
				if (sup__heal(&u))
					rc = heal__on_crash(u.h, &ev, &oc);
				else
					rc = inject_session__release(u.s, &ev);
				if (oc == HEAL_APPLIED)
					*healed_now = true;
				/* The rest of the tree gets it (later forks inherit). */
				if (oc == HEAL_APPLIED || oc == HEAL_RESUMED)
					heal_tree__propagate(tree, pid);
				if (rc)
					break;
			}
			heal_tree__take_forked(tree, u.s);
			if (rc == -EPIPE || rc == -EPROTO) {
				/* heal takes the firings the session received first. */
				if (u.h)
					heal__set_session(u.h, NULL);
				sup__handled(&u, true);
				inject_session__close(u.s);
				u.s = NULL;
				session_gone = true;
			}
		}
		/* Every turn (as the root's session above): the members'
		 * queues too. */
		if (tree_ready || heal_tree__size(tree)) {
			bool went_on = false;
			int made = heal_tree__step(tree, &went_on);
			if (u.h && heal_tree__several(tree))
				heal__set_tag(u.h, true);
			/* A worker's crash that went on may fail the script:
			 * re-run as for the script's own. */
			if (went_on)
				*healed_now = true;
			if (made > 0) {
				/* ... and the script's own process, so that what
				 * it forks later is born healed. */
				if (u.s && sup__heal(&u))
					heal__load_live(u.h);
			}
		}
		if (u.h && heal_tree__several(tree))
			heal__set_tag(u.h, true);
		/* Guard firings the agent reported: stored every few seconds
		 * while the child runs, and when it ends (heal__close). */
		if (mono_ms() - t_flush > HITS_FLUSH_MS) {
			if (u.h)
				heal__flush(u.h);
			sup__handled(&u, false);
			heal__flush(u.hr);
			heal_tree__flush(tree);
			t_flush = mono_ms();
		}
		if (!reaped && !u.s && waitpid(pid, &wstatus, WNOHANG) == pid)
			reaped = true;
		if (reaped && pr == 0)
			break;
	}
	if (!reaped && !u.s && !session_gone)
		fprintf(stderr, "[suture] pid %d: %s\n", (int)pid, open_err);
	if (o->verbose || getenv("SUTURE_RUN_TIMING")) {
		/* Where the start-up time goes (docs/performance.md);
		 * SUTURE_RUN_TIMING=1 prints it without the rest of --verbose. */
		double t_end = mono_ms();
#define REL(t) ((t) ? (t)-u.t_spawn : -1.0)
		fprintf(stderr,
			"[suture] start-up clock (ms after the interpreter was started at %.3f monotonic, -1: never): first module reported %.2f, "
			"agent session %.2f, layout and specs read from %.2f to %.2f, %s held from %.2f to %.2f "
			"(%.2f ms, loading patches %.2f, released after %.2f); script ended %.2f\n",
			u.t_spawn, REL(u.t_first), REL(u.t_session), REL(u.t_heal_from),
			REL(u.t_heal_to), u.held[0] ? u.held : "nothing", REL(u.t_held_from),
			REL(u.t_held_to), u.t_held_to ? u.t_held_to - u.t_held_from : 0.0, u.t_load,
			u.t_released ? u.t_released - u.t_held_from : 0.0, t_end - u.t_spawn);
#undef REL
	}
	if (u.h) {
		const struct heal_stats *st = heal__stats(u.h);
		heal_stats__add(total, st);
		total->loaded = st->loaded; /* what the last run loaded */
	} else {
		total->loaded = 0;
	}
	total->loaded += u.img_st.loaded;
	total->failed += u.img_st.failed;
	free(u.img_res);
	/* Processes that outlive the script are left to run unwatched. */
	heal_tree__close(tree, false, total);
	if (ready_fd >= 0)
		close(ready_fd);
	heal__close(u.h);
	sup__handled(&u, true);
	heal__close(u.hr);
	inspect_proc__close(u.ip);
	inject_session__close(u.s);
	if (u.boot_fd >= 0)
		close(u.boot_fd);
	wire_reader__free(&u.rd);
	while (!reaped) {
		pid_t r = waitpid(pid, &wstatus, 0);
		if (r == pid || (r < 0 && errno != EINTR))
			reaped = true;
	}
	g_child = 0;
	return wstatus;
}

/* Whether a re-run would find the script's standard input as the first run
 * did. A terminal is read afresh, /dev/null is always empty and a closed
 * stdin stays closed; a pipe, a socket or a file is consumed by the first
 * run (the re-run would read what is left, usually nothing, and look like
 * a success). Anything else is not re-run either. *what: why not. */
static bool stdin_rereadable(const char **what)
{
	struct stat sb, null;
	if (isatty(STDIN_FILENO) || (fstat(STDIN_FILENO, &sb) && errno == EBADF))
		return true;
	*what = "was not a terminal";
	if (fstat(STDIN_FILENO, &sb))
		return false;
	if (S_ISCHR(sb.st_mode) && stat("/dev/null", &null) == 0 && S_ISCHR(null.st_mode) &&
	    sb.st_rdev == null.st_rdev)
		return true;
	if (S_ISFIFO(sb.st_mode))
		*what = "was a pipe and is consumed";
	else if (S_ISSOCK(sb.st_mode))
		*what = "was a socket and is consumed";
	else if (S_ISREG(sb.st_mode))
		*what = "was a file and is consumed";
	return false;
}

/* --python NAME without a '/': the first executable NAME on PATH, as a shell
 * would find it. -ENOENT when none. */
static int python_on_path(const char *name, char *out, size_t cap)
{
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		struct stat sb;
		int n = snprintf(out, cap, "%.*s/%s", end == p ? 1 : (int)(end - p),
				 end == p ? "." : p, name);
		if (n > 0 && (size_t)n < cap && stat(out, &sb) == 0 && S_ISREG(sb.st_mode) &&
		    access(out, X_OK) == 0)
			return 0;
		if (!*end)
			return -ENOENT;
		p = end;
	}
}

/* The interpreter's sys.hexversion and implementation, asked of itself
 * (-I -S: no site, no environment; stdin /dev/null: the script's is not
 * touched). -EPROTO when it does not answer as a Python would. */
static int python_ask_version(const char *py, uint32_t *hv, char *impl, size_t cap)
{
	static const char code[] = "import sys; print(sys.hexversion, sys.implementation.name)";
	char *argv[] = { (char *)py, "-I", "-S", "-c", (char *)code, NULL };
	posix_spawn_file_actions_t fa;
	int pfd[2], err;
	pid_t pid;
	if (pipe2(pfd, O_CLOEXEC))
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
	err = posix_spawn(&pid, py, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (err) {
		close(pfd[0]);
		return -err;
	}
	char buf[128];
	size_t len = 0;
	for (;;) {
		ssize_t r = read(pfd[0], buf + len, sizeof(buf) - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (len == sizeof(buf) - 1)
			break;
	}
	buf[len] = 0;
	close(pfd[0]);
	int ws;
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	unsigned long v;
	char name[32];
	if (sscanf(buf, "%lu %31s", &v, name) != 2 || v > UINT32_MAX)
		return -EPROTO;
	*hv = (uint32_t)v;
	snprintf(impl, cap, "%s", strcmp(name, "cpython") == 0 ? "Python" : name);
	return 0;
}

/* Refuse an interpreter other than CPython 3.11 before anything is
 * preloaded into it: the agent is built against 3.11's structures and
 * kills any other (3.12 aborts, 3.10 faults). The version is read from the
 * executable's Py_Version (exported by CPython 3.11 and later, statically
 * linked builds such as Debian's), or its libpython's where the loader
 * will find it (attach_elf__file_needed), without running it; else (an
 * older Python, a wrapper script, a library only the loader's cache
 * knows) the interpreter is asked.
 * Returns 0, or the exit status after a one-line message. */
static int python_check(const char *py, bool from_venv, uint32_t *version)
{
	const char *whose = from_venv ? " (the active virtual environment's: $VIRTUAL_ENV; "
					"--python PATH names another)"
				      : "";
	uint64_t word = 0;
	uint32_t hv = 0;
	char impl[32] = "Python";
	int err = attach_elf__file_uint(py, "Py_Version", &word);
	/* A shared libpython (pyenv's builds, many distributions'): read
	 * where the loader will find it rather than start the interpreter
	 * to ask (15-20 ms before every run). */
	char lib[PATH_MAX];
	if (err == -ENOENT && attach_elf__file_needed(py, "libpython3", lib, sizeof(lib)) == 0)
		err = attach_elf__file_uint(lib, "Py_Version", &word);
	if (!err && word > UINT32_MAX)
		err = -ENOENT; /* not a hexversion: ask */
	hv = (uint32_t)word;
	if (err == -ENOENT || err == -ENOEXEC)
		err = python_ask_version(py, &hv, impl, sizeof(impl));
	if (err == -EPROTO) {
		fprintf(stderr,
			"suture-run: %s did not report a Python version; suture needs CPython 3.11%s\n",
			py, whose);
		return 5;
	}
	if (err) {
		fprintf(stderr, "suture-run: cannot run %s: %s%s\n", py, strerror(-err), whose);
		return 127;
	}
	if (strcmp(impl, "Python") != 0 || (hv >> 16) != 0x030b) {
		fprintf(stderr, "suture-run: %s is %s %u.%u.%u; suture needs CPython 3.11%s\n", py,
			impl, hv >> 24, (hv >> 16) & 0xff, (hv >> 8) & 0xff, whose);
		return 5;
	}
	*version = hv;
	return 0;
}

/* The program's identity for the store: the script's real path; for -m,
 * the file runpy will run, found where python -m looks first (the working
 * directory, then $PYTHONPATH), else "-m NAME" (an installed package: its
 * patches are kept under that name). *what: how messages name it. */
static int program_of(const struct heal_cmdline *cmd, char *program, size_t cap, char *what,
		      size_t wcap)
{
	if (cmd->script) {
		snprintf(what, wcap, "%s", cmd->script);
		if (!realpath(cmd->script, program)) {
			fprintf(stderr, "suture-run: %s: %s\n", cmd->script, strerror(errno));
			return 2;
		}
		return 0;
	}
	snprintf(what, wcap, "-m %s", cmd->module);
	char cwd[PATH_MAX], file[PATH_MAX];
	const char *pp = getenv("PYTHONPATH");
	char *ppc = strdup(pp ? pp : "");
	const char *dirs[64] = { getcwd(cwd, sizeof(cwd)) ? cwd : "" };
	size_t nd = 1;
	for (char *save = NULL, *t = ppc ? strtok_r(ppc, ":", &save) : NULL; t && nd < 63;
	     t = strtok_r(NULL, ":", &save))
		dirs[nd++] = t;
	dirs[nd] = NULL;
	if (heal_cmdline__module_file(cmd->module, dirs, file, sizeof(file)) == 0 &&
	    realpath(file, program))
		;
	else
		snprintf(program, cap, "-m %s", cmd->module);
	free(ppc);
	return 0;
}

int heal_run__main(const struct heal_run_opts *opts)
{
	char what[PATH_MAX + 8];
	char agent[PATH_MAX], program[PATH_MAX];
	struct heal_stats total = { 0 };
	int wstatus = 0;
	char err[512];

	char python[PATH_MAX];
	struct heal_run_opts ro = *opts;
	const struct heal_run_opts *o = &ro;

	if (!strchr(ro.python, '/')) {
		if (python_on_path(ro.python, python, sizeof(python))) {
			fprintf(stderr, "suture-run: %s: not found on PATH\n", ro.python);
			return 127;
		}
		ro.python = python;
	}
	uint32_t py_version = 0;
	int bad = python_check(ro.python, ro.python_from_venv, &py_version);
	if (bad)
		return bad;
	if (inject__agent_path(o->agent_path, agent, sizeof(agent))) {
		char where[2 * PATH_MAX];
		inject__agent_places(o->agent_path, where, sizeof(where));
		fprintf(stderr, "suture-run: libsuture_agent.so not found (looked in %s)\n", where);
		return 1;
	}
	int bad_program = program_of(&o->cmd, program, sizeof(program), what, sizeof(what));
	if (bad_program)
		return bad_program;
	/* The store found from the program (store__locate), said when made. */
	char store_buf[PATH_MAX], *paths = NULL;
	ro.store_dir = heal_config__store(ro.store_dir, program, store_buf, sizeof(store_buf));
	ro.store_found = ro.store_dir == store_buf;
	if (heal_config__app_paths(ro.store_dir, ro.app_paths, &paths, err, sizeof(err))) {
		fprintf(stderr, "suture-run: %s\n", err);
		return 2;
	}
	ro.app_paths = paths;
	char *sites = NULL;
	if (heal_config__heal_handled(ro.store_dir, ro.heal_handled, &sites, err, sizeof(err))) {
		fprintf(stderr, "suture-run: %s\n", err);
		free(paths);
		return 2;
	}
	ro.heal_handled = sites;
	struct sigaction sa = { .sa_sigaction = forward, .sa_flags = SA_SIGINFO | SA_RESTART };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	unsigned limit = o->restart ? o->max_restarts : o->retries;
	/* Judged before the first run: it reads the pipe or file. */
	const char *stdin_what = "";
	bool rereadable = stdin_rereadable(&stdin_what);
	pid_t last_pid = 0;
	for (unsigned run = 0;; run++) {
		struct boot_list bl;
		int rc = boot_list__create(&bl);
		if (rc)
			fprintf(stderr,
				"[suture] no stored patch is loaded: no temporary file for the list of "
				"files to patch (%s)\n",
				strerror(-rc));
		int sp[2] = { -1, -1 };
		if (bl.path[0] && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp)) {
			fprintf(stderr, "[suture] socketpair: %s: stored patches are not loaded\n",
				strerror(errno));
			boot_list__free(&bl);
		}
		/* The agent's "listening" notice (without it: polling). */
		int rp[2] = { -1, -1 };
		if (pipe2(rp, O_CLOEXEC))
			rp[0] = rp[1] = -1;
		/* A boot image (docs/formats/boot-image.md): what an earlier run
		 * derived, installed by the hook itself. Not for a dry run (it
		 * installs nothing) nor --verbose (which shows each derivation). */
		struct heal_boot_image bimg;
		struct heal_image_rec rec = { 0 };
		bool imaging = bl.path[0] && sp[0] >= 0 && !o->dry_run && !o->verbose &&
			       !getenv("SUTURE_RUN_NO_IMAGE");
		memset(&bimg, 0, sizeof bimg);
		bimg.file.fd = -1;
		if (imaging)
			heal_boot_image__open(&bimg, o->store_dir, program, py_version, agent);
		double t_spawn = mono_ms();
		pid_t pid = start_child(o, agent, bl.path, sp[1], rp[1],
					bimg.use ? bimg.file.fd : -1, o->cmd.args, err,
					sizeof(err));
		last_pid = pid > 0 ? pid : last_pid;
		if (sp[1] >= 0)
			close(sp[1]);
		if (rp[1] >= 0)
			close(rp[1]);
		if (pid < 0) {
			fprintf(stderr, "suture-run: %s\n", err);
			if (sp[0] >= 0)
				close(sp[0]);
			if (rp[0] >= 0)
				close(rp[0]);
			boot_list__free(&bl);
			heal_boot_image__free(&bimg);
			return 127;
		}
		if (bimg.file.fd >= 0) { /* the child has its own */
			close(bimg.file.fd);
			bimg.file.fd = -1;
		}
		/* The interpreter initializes meanwhile. */
		bool script_listed = false;
		uint64_t index_hash = 0; /* the index the loads come from */
		if (bl.path[0]) {
			struct stat sb;
			bool written;
			if (bimg.use) {
				rc = boot_list__fill_image(&bl, program, &bimg, &written);
				index_hash = bimg.file.index_hash;
			} else {
				rc = boot_list__fill(&bl, o, program, &written);
				index_hash = store__index_hash(bl.st);
			}
			if (rc)
				fprintf(stderr, "[suture] no stored patch is loaded: %s\n",
					bl.why[0]       ? bl.why
					: rc == -ENOMEM ? "out of memory"
							: "the boot list cannot be written");
			/* The hook can name a regular script's module (not a
			 * directory's or a zip's __main__) by its file. */
			script_listed = written && stat(program, &sb) == 0 && S_ISREG(sb.st_mode);
		}
		/* The hook reads this before the first module runs. */
		if (sp[0] >= 0 && sup__boot_list_ready(sp[0], script_listed)) {
			close(sp[0]);
			sp[0] = -1;
		}
		bool healed;
		wstatus = supervise(o, pid, sp[0], rp[0], program, &bl, script_listed, &bimg,
				    imaging && index_hash ? &rec : NULL, t_spawn, &total, &healed);
		/* What this run derived, for the next one (after the child
		 * ended: nothing waits for it). */
		if (rec.n)
			heal_boot_image__write(&bimg, &rec, bl.files, bl.nfiles, o->store_dir,
					       program, index_hash);
		heal_image_rec__free(&rec);
		heal_boot_image__free(&bimg);
		boot_list__free(&bl);
		bool failed = !(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
		/* A program stopped by a signal (ours, forwarded, or anyone's)
		 * did not die of the healed crash: it is not run again. */
		if (!healed || !failed || o->dry_run || g_stop_asked || WIFSIGNALED(wstatus))
			break;
		const char *again = o->restart ? "restarting" : "re-running";
		if (limit == 0) {
			fprintf(stderr,
				"[suture] not %s %s: %s 0; the patch is stored for the next run\n",
				again, what, o->restart ? "--max-restarts" : "--retries");
			break;
		}
		if (!rereadable) {
			fprintf(stderr,
				"[suture] not %s %s: its standard input %s; the patch is stored for the next run\n",
				again, what, stdin_what);
			break;
		}
		if (run >= limit) {
			fprintf(stderr, "[suture] %s: giving up after %u %s\n", what, run,
				o->restart ? "restarts" : "re-runs");
			break;
		}
		heal_event__emit(o->events, pid, o->restart ? "restart" : "rerun", "s:program",
				 what, "i:attempt", (long long)(run + 2), "i:of",
				 (long long)(limit + 1), NULL);
		if (o->restart && !o->quiet)
			fprintf(stderr,
				"[suture] restarting %s (restart %u of %u) with the new patch\n",
				what, run + 1, limit);
		else if (!o->restart)
			fprintf(stderr,
				"[suture] re-running %s from the start (attempt %u of %u) with the new "
				"patch: the crash was not resumed in flight; what ran before it runs "
				"again (--retries 0: never)\n",
				what, run + 2, limit + 1);
	}
	char extra[160] = "";
	size_t at = 0;
	if (total.would_apply)
		at += (size_t)snprintf(extra + at, sizeof(extra) - at, ", would apply: %u",
				       total.would_apply);
	if (total.refused && at < sizeof(extra))
		at += (size_t)snprintf(extra + at, sizeof(extra) - at, ", not patched: %u",
				       total.refused);
	if (total.stale && at < sizeof(extra))
		at += (size_t)snprintf(extra + at, sizeof(extra) - at, ", stale: %u", total.stale);
	if (total.expired && at < sizeof(extra))
		snprintf(extra + at, sizeof(extra) - at, ", expired: %u", total.expired);
	if (!o->quiet)
		fprintf(stderr, "[suture] patches applied: %u, already healed: %u%s\n",
			total.applied, total.loaded, extra);
	free(paths);
	free(sites);
	heal_event__emit(o->events, last_pid, "exit", "s:program", what, "i:status",
			 (long long)(WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1), "i:signal",
			 (long long)(WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0), "i:applied",
			 (long long)total.applied, "i:loaded", (long long)total.loaded, "i:refused",
			 (long long)total.refused, NULL);
	fflush(stderr);
	if (WIFSIGNALED(wstatus)) {
		int sig = WTERMSIG(wstatus);
		signal(sig, SIG_DFL);
		raise(sig);
		return 128 + sig;
	}
	return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 1;
}
