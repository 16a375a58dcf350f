/* heal: suture-attach --pid N --watch.
 *
 * Attach (inspect/ reads the target; inject/ injects or reuses the agent,
 * ptrace is held only for the remote dlopen), then heal every crash the
 * agent reports until the target exits, the timeout passes or a signal
 * asks us to stop. Stopping detaches the agent cleanly (watcher removed,
 * channel closed, applied patches stay). If we die without detaching, even
 * by SIGKILL, the agent sees EOF and lets parked threads go on untouched.
 */
#include "heal/heal-priv.h"
#include "inspect/inspect.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	g_stop = sig;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* What --dump checks, before anything is injected: the interpreter's
 * layout (inspect_proc__open) and one snapshot of its threads. A binary
 * that exports _PyRuntime but is no running CPython fails here with the
 * dump's error instead of getting an agent that never opens its channel. */
int heal__check_target(pid_t pid, struct inspect_proc **ip, char *err, size_t errlen)
{
	struct inspect_snapshot *snap = NULL;
	int rc = inspect_proc__open(pid, NULL, ip, err, errlen);
	if (rc)
		return rc;
	rc = inspect_proc__snapshot(*ip, 0, NULL, &snap, NULL);
	if (rc == -ESRCH) {
		snprintf(err, errlen, "inspect: pid %d: process exited", (int)pid);
		return rc;
	}
	if (rc) {
		snprintf(err, errlen, "%s", inspect_proc__error(*ip));
		return rc;
	}
	if (!inspect_snapshot__nthreads(snap)) {
		snprintf(err, errlen,
			 "inspect: pid %d: no Python thread: not a running CPython interpreter",
			 (int)pid);
		rc = -ENOEXEC;
	}
	inspect_snapshot__free(snap);
	return rc;
}

int heal_watch__run(pid_t pid, const struct heal_watch_opts *o, char *err, size_t errlen)
{
	struct inspect_proc *ip = NULL;
	struct inject_session *s = NULL;
	struct heal *h = NULL;
	struct heal_holds holds = { 0 }; /* --hold: the crashes held now */
	struct heal_tree *tree = NULL;
	struct heal_stats tree_st = { 0 };
	char program[PATH_MAX];
	int status = 0, rc;
	double t0 = now_s();
	struct sigaction sa = { .sa_handler = on_signal }, old[3];
	const int sigs[3] = { SIGINT, SIGTERM, SIGHUP };
	sigset_t stops, oldmask;

	err[0] = 0;
	/* The stop signals are taken only while we wait for the next event
	 * (no SA_RESTART: one ends that wait at once); everywhere else they
	 * stay pending, so none cuts a heal or the detach short: a second
	 * Ctrl-C, or timeout(1)'s TERM sent twice, while we detach would
	 * interrupt the wait for BYE and lose it with the HITS before it. */
	sigemptyset(&sa.sa_mask);
	sigemptyset(&stops);
	for (int i = 0; i < 3; i++) {
		sigaction(sigs[i], &sa, &old[i]);
		sigaddset(&stops, sigs[i]);
	}
	sigprocmask(SIG_BLOCK, &stops, &oldmask);

	if ((status = heal__check_target(pid, &ip, err, errlen)))
		goto out;
	/* tree: the agent reports every child that gets an agent of its own
	 * (a fork after this point), and such a child's crash waits for us. */
	struct inject_opts io = { .agent_path = o->agent_path,
				  .hits = true,
				  .tree = true,
				  .app_paths = o->app_paths,
				  .hold = o->hold,
				  .handled = true,
				  .heal_handled = o->heal_handled };
	if ((status = inject_session__open(pid, &io, &s, err, errlen))) {
		/* Gone in the middle (a remote call, the wait for the socket):
		 * said once, whichever step noticed. */
		if (status == -ESRCH)
			snprintf(err, errlen, "inject: pid %d: process exited during the attach",
				 (int)pid);
		goto out;
	}
	if (inject_session__watch_mode(s) == WIRE_WATCH_NONE) {
		snprintf(err, errlen, "heal: pid %d: the agent is not watching: %s", (int)pid,
			 inject_session__watch_detail(s));
		status = -EPROTO;
		goto out_undo;
	}
	struct heal_opts ho = {
		.store_dir = o->store_dir,
		.ttl_days = o->ttl_days,
		.dry_run = o->dry_run,
		.verbose = o->verbose,
		.events = o->events,
		.store_found = o->store_found,
		.quiet = o->quiet,
		.heal_handled = o->heal_handled,
	};
	if (heal_program__of_pid(pid, program, sizeof(program)) == 0)
		ho.program = program;
	else
		fprintf(stderr,
			"[suture] pid %d runs no script file (python -c or a REPL): "
			"patches are applied but not stored\n",
			(int)pid);
	if ((status = heal__open(ip, s, &ho, &h))) {
		snprintf(err, errlen, "heal: pid %d: %s", (int)pid, strerror(-status));
		goto out_undo;
	}
	/* Patches stored for this program earlier (another run, another
	 * process) go into its live functions before we watch. */
	if (heal__load_live(h) == -EPIPE) {
		if (!o->quiet)
			fprintf(stderr, "[suture] pid %d exited\n", (int)pid);
		goto out;
	}
	if (!o->quiet)
		fprintf(stderr, "[suture] watching pid %d%s\n", (int)pid,
			o->hold ? ": crashes are held until their source is fixed and reloaded"
				: "");
	/* The rest of the tree (docs/design.md §15): the processes it forked
	 * already, found in /proc, each injected; later forks are reported by
	 * their parent's agent. */
	struct heal_tree_opts to = { .heal = ho,
				     .agent_path = o->agent_path,
				     .app_paths = o->app_paths };
	if (heal_tree__open(pid, &to, &tree) == 0) {
		heal_tree__set_root(tree, s, h);
		heal_tree__add_descendants(tree, &g_stop);
		heal_tree__take_forked(tree, s);
		if (heal_tree__several(tree))
			heal__set_tag(h, true);
	}
	if (o->verbose) {
		struct inject_timings tm;
		inject_session__timings(s, &tm);
		fprintf(stderr,
			"[suture] agent %s (%s), program %s; watching %.2f ms after start, "
			"injection %.2f ms, target stopped %.3f ms, %zu more process(es) in its tree\n",
			inject_session__how(s) == INJECT_HOW_CONNECTED ? "reused" : "injected",
			inject_session__watch_detail(s),
			ho.program ? ho.program : "(none: nothing stored)", (now_s() - t0) * 1e3,
			tm.open_ns / 1e6, tm.stopped_ns / 1e6, heal_tree__size(tree));
	}
	fflush(stderr);
	double deadline = o->timeout_s > 0 ? now_s() + o->timeout_s : 0;
	double t_flush = now_s();
	while (!g_stop) {
		struct wire_crash ev;
		int wait_ms = 200;
		if (deadline) {
			double left = deadline - now_s();
			if (left <= 0) {
				if (!o->quiet)
					fprintf(stderr,
						"[suture] timeout: stopped watching pid %d\n",
						(int)pid);
				break;
			}
			if (left * 1e3 < wait_ms)
				wait_ms = (int)(left * 1e3) + 1;
		}
		struct pollfd pf[1 + 256];
		size_t n = 1;
		pf[0] = (struct pollfd){ .fd = inject_session__fd(s), .events = POLLIN };
		heal_tree__pollfds(tree, pf, &n, sizeof(pf) / sizeof(pf[0]));
		sigprocmask(SIG_UNBLOCK, &stops, NULL); /* a pending one is taken here */
		int pr = g_stop ? -1 : poll(pf, (nfds_t)n, wait_ms);
		sigprocmask(SIG_BLOCK, &stops, NULL);
		/* Guard firings the agent reported: stored every few seconds
		 * (and at the end, by heal__close). */
		if (now_s() - t_flush > 5.0) {
			heal__flush(h);
			heal_tree__flush(tree);
			t_flush = now_s();
		}
		if (pr < 0)
			continue;
		/* Every turn, not only when a socket is readable: a crash read
		 * while we awaited an answer on a session (TREE_FILES, a
		 * sibling's patch) waits in that session's queue. */
		if (tree) {
			bool went_on = false;
			if (heal_tree__step(tree, &went_on) > 0) {
				/* ... and the root, so that later forks are born
				 * healed. */
				heal__load_live(h);
			}
			if (heal_tree__several(tree))
				heal__set_tag(h, true);
		}
		while ((rc = inject_session__next_event(s, 0, &ev)) >= 0) {
			if (o->hold) {
				/* --hold (docs/design.md §14): held, not guarded. */
				int hr = rc == INJECT_EVENT_HELD_CHANGED
						 ? heal_hold__on_changed(h, &holds, &ev)
						 : heal_hold__on_crash(h, &holds, &ev);
				if (hr == -EPIPE) {
					rc = -EPIPE;
					break;
				}
				continue;
			}
			if (rc == INJECT_EVENT_HELD_CHANGED)
				continue;
			enum heal_outcome oc = HEAL_NONE;
			if (heal__on_crash(h, &ev, &oc) == -EPIPE) {
				rc = -EPIPE;
				break;
			}
			if (oc == HEAL_APPLIED || oc == HEAL_RESUMED)
				heal_tree__propagate(tree, pid);
		}
		heal_tree__take_forked(tree, s);
		if (heal_tree__several(tree))
			heal__set_tag(h, true);
		if (rc == -ETIMEDOUT || rc == -EINTR)
			continue;
		/* -EPIPE: the agent is gone, i.e. the target exited. */
		if (rc == -EPIPE) {
			if (!o->quiet)
				fprintf(stderr, "[suture] pid %d exited\n", (int)pid);
		} else {
			snprintf(err, errlen, "%s", inject_session__error(s));
			status = rc;
		}
		goto out_noddetach;
	}
	if (g_stop && !o->quiet)
		fprintf(stderr, "[suture] %s: detaching from pid %d\n", strsignal(g_stop),
			(int)pid);
	if (holds.n)
		fprintf(stderr, "[suture] released %zu held crash(es): the exception goes on\n",
			holds.n);
	if ((rc = inject_session__detach(s)) == 0) {
		if (!o->quiet)
			fprintf(stderr,
				"[suture] detached: watcher removed, applied patches stay\n");
	} else if (rc == -EPIPE) {
		fprintf(stderr, "[suture] pid %d exited\n", (int)pid);
	} else {
		snprintf(err, errlen, "%s", inject_session__error(s));
		status = rc;
	}
	/* Every process of the tree is detached the same way. */
	heal_tree__close(tree, true, &tree_st);
	tree = NULL;
out_noddetach:
	/* The target exited: its children (if any still run) are released,
	 * their agents wait for the next debugger. */
	heal_tree__close(tree, false, &tree_st);
	if (h) {
		heal__add_stats(h, &tree_st);
		/* What the agent reported up to BYE or its exit (handled
		 * crashes said, firings stored) before the summary line. */
		heal__flush(h);
		heal__summary(h, stderr);
	}
	goto out;
out_undo:
	/* Failed mid-attach: an agent we loaded is detached again (watcher
	 * removed, thread ended), so the target is left as it was. */
	if (s && inject_session__how(s) != INJECT_HOW_CONNECTED)
		inject_session__detach(s);
out:
	heal_hold__free(&holds);
	heal__close(h);
	inject_session__close(s);
	inspect_proc__close(ip);
	/* Signals that came meanwhile go to on_signal (nothing left to stop),
	 * not to the handlers restored next: the exit status stays ours. The
	 * handlers are restored with the stop signals blocked, and after a
	 * stop by a signal they stay blocked: the caller is on its way out,
	 * and a second signal sent a few ms after the first (timeout(1)'s
	 * TERM twice, INT then TERM) to a detach that was quicker than that
	 * would otherwise meet the default action and turn status 0 into
	 * 143. A pending one is discarded at exit. */
	sigprocmask(SIG_UNBLOCK, &stops, NULL);
	sigprocmask(SIG_BLOCK, &stops, NULL);
	for (int i = 0; i < 3; i++)
		sigaction(sigs[i], &old[i], NULL);
	if (!g_stop)
		sigprocmask(SIG_SETMASK, &oldmask, NULL);
	return status;
}
