/* inject/heal: suture-run, the supervisor of a script it starts itself.
 *
 * The child is the interpreter on the script, with libsuture_agent.so in
 * LD_PRELOAD (its constructor starts the agent before Py_Initialize) and
 * SUTURE_AGENT_BOOT naming a file that lists the source files with stored
 * patches: the agent's boot hook (an audit hook on "exec", which CPython
 * raises with a module's code object right before running its body, for
 * __main__ in run_mod and for imports through builtins.exec) parks the
 * thread there, we install the stored guards into the nested code objects,
 * and the module body then defines functions that are healed from their
 * first call.
 *
 * We are the debugger: crashes are analysed and patched as in --watch. The
 * crash that produced a patch goes on (the script dies, unless in-flight
 * resume exists), so the script is run again, at most `retries` times (or
 * `max_restarts` in --watch service mode). Arguments, stdin, stdout and the
 * exit status pass through; SIGINT/SIGTERM/SIGHUP sent to us are forwarded
 * (a terminal's SIGINT reaches the child directly, being in our process
 * group, and is not sent twice).
 */
#include "inject/heal.h"
#include "inject/inject-priv.h"
#include "inspect/inspect.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SUTURE_PREFIX
#define SUTURE_PREFIX "/usr/local"
#endif

static volatile sig_atomic_t g_child = 0;

static void forward(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	/* SI_KERNEL: from the terminal, which signalled the whole process
	 * group (the child too). Anything sent to us alone is passed on. */
	if (g_child > 0 && (!si || si->si_code != SI_KERNEL))
		kill((pid_t)g_child, sig);
}

/* An EXEC report of the agent's boot hook: a module about to run. */
static bool heal__is_exec_event(const struct inject_crash *ev)
{
	return ev->frame_addr == 0 && ev->exc_type[0] == 0;
}

static void store_quiet(const char *msg, void *ctx)
{
	(void)msg;
	(void)ctx;
}

/* The files that have stored patches for program, one absolute path a
 * line, into a private temporary file. Its path in out; "" if none. */
static int write_boot_list(const struct heal_run_opts *o, const char *program, char *out, size_t cap)
{
	struct store *st = NULL;
	out[0] = 0;
	store__set_print(store_quiet, NULL);   /* heal__load_tree reports problems */
	int err = store__open(o->store_dir, STORE_F_RDONLY, &st);
	if (err)
		return err == -ENOENT ? 0 : err;
	struct store_query q = { .program = program };
	struct store_iter it;
	char path[] = "/tmp/suture-boot.XXXXXX";
	int fd = -1;
	FILE *f = NULL;
	store_iter__init(&it, st, &q);
	for (const struct store_patch *p; (p = store_iter__next(&it));) {
		if (!f) {
			if ((fd = mkstemp(path)) < 0 || !(f = fdopen(fd, "w"))) {
				err = -errno;
				if (fd >= 0)
					close(fd);
				store__close(st);
				return err;
			}
		}
		fprintf(f, "%s\n", p->file);
	}
	store__close(st);
	if (f) {
		if (fclose(f))
			return -errno;
		snprintf(out, cap, "%s", path);
	}
	return 0;
}

static pid_t start_child(const struct heal_run_opts *o, const char *agent, const char *boot,
			 char **script_argv, char *err, size_t cap)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC)) {
		snprintf(err, cap, "pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, cap, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		close(pfd[0]);
		const char *pre = getenv("LD_PRELOAD");
		char *val = malloc(strlen(agent) + (pre ? strlen(pre) : 0) + 2);
		if (val) {
			sprintf(val, "%s%s%s", agent, pre && *pre ? ":" : "", pre && *pre ? pre : "");
			setenv("LD_PRELOAD", val, 1);
		}
		setenv("SUTURE_AGENT_BOOT", boot, 1);
		if (o->shadow)
			setenv("SUTURE_SHADOW", "1", 1);
		size_t n = 0;
		while (script_argv[n])
			n++;
		char **argv = calloc(n + 2, sizeof(char *));
		if (argv) {
			argv[0] = (char *)o->python;
			for (size_t i = 0; i < n; i++)
				argv[i + 1] = script_argv[i];
			execv(o->python, argv);
		}
		int e = errno;
		if (write(pfd[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	close(pfd[1]);
	g_child = pid;
	int e = 0;
	ssize_t r;
	do
		r = read(pfd[0], &e, sizeof(e));
	while (r < 0 && errno == EINTR);
	close(pfd[0]);
	if (r == (ssize_t)sizeof(e)) {
		snprintf(err, cap, "cannot run %s: %s", o->python, strerror(e));
		waitpid(pid, NULL, 0);
		g_child = 0;
		return -1;
	}
	return pid;
}

/* Wait for the child, the agent and events; returns the child's wait
 * status. Heals with h (created once the session is up). */
static int supervise(const struct heal_run_opts *o, pid_t pid, const char *program,
		     struct heal_stats *total, bool *healed_now)
{
	struct inject_session *s = NULL;
	struct inspect_proc *ip = NULL;
	struct heal *h = NULL;
	int wstatus = 0;
	bool reaped = false;
	char err[512];

	*healed_now = false;
	/* The agent comes up right after Py_Initialize; a script that ends
	 * first simply ends (short connection attempts, checking the child). */
	struct inject_opts io = { .no_inject = true, .connect_timeout_ms = 50 };
	for (int tries = 0; tries < 200 && !reaped; tries++) {
		if (inject_session__open(pid, &io, &s) == 0)
			break;
		s = NULL;
		if (waitpid(pid, &wstatus, WNOHANG) == pid)
			reaped = true;
	}
	if (s) {
		if (o->verbose)
			fprintf(stderr, "[suture] agent ready in pid %d (%s)\n", (int)pid,
				inject_session__watch_detail(s));
		if (inspect_proc__open(pid, NULL, &ip, err, sizeof(err))) {
			fprintf(stderr, "[suture] %s: crashes are not healed in this run\n", err);
		} else {
			struct heal_opts ho = {
				.store_dir = o->store_dir, .program = program, .ttl_days = o->ttl_days,
				.dry_run = o->dry_run, .verbose = o->verbose,
				.no_resume = o->no_resume,
			};
			heal__open(ip, s, &ho, &h);
		}
		for (;;) {
			struct inject_crash ev;
			int rc = inject_session__next_event(s, 500, &ev);
			if (rc == -ETIMEDOUT || rc == -EINTR)
				continue;
			if (rc)
				break;
			if (!h) {
				inject_session__release(s, &ev);
				continue;
			}
			if (heal__is_exec_event(&ev)) {
				rc = heal__load_tree(h, ev.code_addr);
				if (rc != -EPIPE)
					rc = inject_session__release(s, &ev);
			} else {
				enum heal_outcome oc;
				rc = heal__on_crash(h, &ev, &oc);
				if (oc == HEAL_APPLIED)
					*healed_now = true;
			}
			if (rc == -EPIPE)
				break;
		}
	} else if (!reaped) {
		fprintf(stderr, "[suture] %s: crashes are not healed in this run\n", inject_last_error());
	}
	if (h) {
		const struct heal_stats *st = heal__stats(h);
		total->crashes += st->crashes;
		total->applied += st->applied;
		total->resumed += st->resumed;
		total->would_apply += st->would_apply;
		total->refused += st->refused;
		total->failed += st->failed;
		total->loaded = st->loaded;     /* what the last run loaded */
		total->stale += st->stale;
		total->expired += st->expired;
	}
	heal__close(h);
	inspect_proc__close(ip);
	inject_session__close(s);
	while (!reaped) {
		pid_t r = waitpid(pid, &wstatus, 0);
		if (r == pid || (r < 0 && errno != EINTR))
			reaped = true;
	}
	g_child = 0;
	return wstatus;
}

int heal_run__main(const struct heal_run_opts *o, char **script_argv)
{
	char agent[PATH_MAX], program[PATH_MAX], boot[64];
	struct heal_stats total = { 0 };
	int wstatus = 0;
	char err[512];

	if (inject__agent_path(o->agent_path, agent, sizeof(agent))) {
		fprintf(stderr, "suture-run: libsuture_agent.so not found (looked at %s, $SUTURE_AGENT, "
			"../lib next to suture-run, %s/lib/suture)\n",
			o->agent_path ? o->agent_path : "-", SUTURE_PREFIX);
		return 1;
	}
	if (!realpath(script_argv[0], program)) {
		fprintf(stderr, "suture-run: %s: %s\n", script_argv[0], strerror(errno));
		return 2;
	}
	struct sigaction sa = { .sa_sigaction = forward, .sa_flags = SA_SIGINFO | SA_RESTART };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	unsigned limit = o->watch ? o->max_restarts : o->retries;
	for (unsigned run = 0;; run++) {
		int rc = write_boot_list(o, program, boot, sizeof(boot));
		if (rc && rc != -ENOENT)
			fprintf(stderr, "[suture] the patch store cannot be read (%s): no patch is loaded\n",
				strerror(-rc));
		pid_t pid = start_child(o, agent, boot, script_argv, err, sizeof(err));
		if (pid < 0) {
			fprintf(stderr, "suture-run: %s\n", err);
			if (boot[0])
				unlink(boot);
			return 127;
		}
		bool healed;
		wstatus = supervise(o, pid, program, &total, &healed);
		if (boot[0])
			unlink(boot);
		bool failed = !(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
		if (!healed || !failed || o->dry_run)
			break;
		if (run >= limit) {
			fprintf(stderr, "[suture] %s: giving up after %u %s\n", script_argv[0], run,
				o->watch ? "restarts" : "re-runs");
			break;
		}
		if (o->watch)
			fprintf(stderr, "[suture] restarting %s (restart %u of %u) with the new patch\n",
				script_argv[0], run + 1, limit);
		else
			fprintf(stderr, "[suture] re-running %s (attempt %u of %u) with the new patch\n",
				script_argv[0], run + 2, limit + 1);
	}
	char extra[160] = "";
	size_t at = 0;
	if (total.would_apply)
		at += (size_t)snprintf(extra + at, sizeof(extra) - at, ", would apply: %u", total.would_apply);
	if (total.refused && at < sizeof(extra))
		at += (size_t)snprintf(extra + at, sizeof(extra) - at, ", not patched: %u", total.refused);
	if (total.stale && at < sizeof(extra))
		at += (size_t)snprintf(extra + at, sizeof(extra) - at, ", stale: %u", total.stale);
	if (total.expired && at < sizeof(extra))
		snprintf(extra + at, sizeof(extra) - at, ", expired: %u", total.expired);
	fprintf(stderr, "[suture] patches applied: %u, already healed: %u%s\n", total.applied,
		total.loaded, extra);
	fflush(stderr);
	if (WIFSIGNALED(wstatus)) {
		int sig = WTERMSIG(wstatus);
		signal(sig, SIG_DFL);
		raise(sig);
		return 128 + sig;
	}
	return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 1;
}
