/* heal: a process tree (docs/design.md §15): the processes forked from
 * the one suture-run started or suture-attach --watch attached to, each
 * with its own agent session, reader and heal handle, one store.
 *
 * The root stays its caller's (run.c's supervisor, watch.c's loop); the
 * tree holds the other processes. They come from FORKED notices (any
 * member's agent, or the root's, reports a child whose own agent listens:
 * connected to, never injected) and, for --watch, from /proc at attach
 * (descendants running the root's interpreter: injected). A patch made in
 * one process is stored there once; every other process of the tree (the
 * root too, through the caller, so later forks inherit it) gets the stored
 * patches re-derived from its own live code (heal__load_live): a process
 * that imported the module after it forked has its own code objects.
 *
 * A process that imports a module after it forked (a gunicorn worker
 * without --preload) gets its stored patches before the module's first
 * line: every agent of the tree gets TREE_FILES (our socket, the files
 * that have stored patches; forks inherit the list), and a process about
 * to run a listed file's module connects to that socket and is served as
 * suture-run's boot channel is (heal__load_tree_boot_release).
 */
#include "heal/heal-priv.h"
#include "attach/attach.h"
#include "inspect/inspect.h"
#include "wire/channel.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct heal_member {
	pid_t pid;
	struct inject_session *s;
	struct inspect_proc *ip;
	struct heal *h;
	struct heal *hr; /* reports only (heal__open_reports), while h is NULL */
	bool inspect_failed;
};

struct heal_tree {
	struct heal_tree_opts o;
	pid_t root;
	struct heal_member *m;
	size_t n, cap;
	unsigned seen;    /* processes ever in the tree, the root included */
	unsigned patches; /* patches made in the tree since it was opened */
	struct heal_stats total;
	/* Forked imports: our listening socket (-1: none) in a private
	 * directory, the root's session and heal handle (the caller's), the
	 * files last listed ('\n'-separated). */
	int lfd;
	char sock[108];
	struct inject_session *root_s;
	struct heal *root_h;
	struct inject_session *root_listed; /* the root session TREE_FILES went to */
	char *files;
	size_t files_len;
	bool files_given; /* heal_tree__give_files: not read from the store */
};

/* The socket forked children report module execs on (tree_files):
 * tree-<our pid>.sock in the per-user channel directory the agents use
 * (wire_channel__place: $XDG_RUNTIME_DIR/suture, else /tmp/suture-<uid>,
 * private and checked), which outlives us: a bind and an unlink a run, where
 * a directory of our own made and removed cost every run half a
 * millisecond on ext4 (docs/performance.md, "start-up, fifth pass"). */
static void listen_open(struct heal_tree *t)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char dir[WIRE_PATH_MAX], why[256] = "";
	int dirfd = -1, rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	uid_t uid = getuid();
	pid_t self = getpid();
	int rc = rootfd < 0 ? -errno : 0;
	t->lfd = -1;
	t->sock[0] = 0;
	if (!rc)
		rc = wire_channel__place(rootfd, uid, uid, getenv("XDG_RUNTIME_DIR"), true, &dirfd,
					 dir, sizeof dir, why, sizeof why);
	if (rootfd >= 0)
		close(rootfd);
	if (dirfd >= 0)
		close(dirfd);
	if (rc)
		goto fail;
	/* Stale files of processes killed with SIGKILL, ours included. */
	wire_channel__sweep(dir);
	if ((rc = wire_channel__tree_path(dir, self, t->sock, sizeof t->sock)) ||
	    strlen(t->sock) >= sizeof a.sun_path) {
		t->sock[0] = 0;
		rc = rc ? rc : -ENAMETOOLONG;
		goto fail;
	}
	snprintf(a.sun_path, sizeof a.sun_path, "%s", t->sock);
	unlink(t->sock); /* a killed debugger's that had our pid */
	t->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (t->lfd >= 0 && bind(t->lfd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    listen(t->lfd, 64) == 0)
		return;
	rc = -errno;
fail:
	fprintf(stderr,
		"[suture] heal: tree socket: %s: modules imported after a fork meet their "
		"stored patches only once loaded\n",
		why[0] ? why : strerror(-rc));
	if (t->lfd >= 0) {
		close(t->lfd);
		if (t->sock[0])
			unlink(t->sock);
	}
	t->lfd = -1;
	t->sock[0] = 0;
}

int heal_tree__open(pid_t root, const struct heal_tree_opts *o, struct heal_tree **out)
{
	struct heal_tree *t = calloc(1, sizeof *t);
	if (!t)
		return -ENOMEM;
	t->o = *o;
	t->root = root;
	t->seen = 1;
	listen_open(t);
	*out = t;
	return 0;
}

/* Handled crashes a member reported while nothing crashed in it (no h):
 * a reports-only handle takes and stores them. */
static struct heal *member__reports(struct heal_tree *t, struct heal_member *m)
{
	if (m->h || m->hr || !m->s || !inject_session__has_handled(m->s))
		return m->hr;
	if (heal__open_reports(m->pid, m->s, &t->o.heal, &m->hr))
		return NULL;
	heal__set_tag(m->hr, true);
	return m->hr;
}

static void member__close(struct heal_tree *t, struct heal_member *m, struct heal_stats *total,
			  bool detach)
{
	if (m->h) {
		const struct heal_stats *st = heal__stats(m->h);
		heal_stats__add(total, st);
		total->loaded += st->loaded;
	}
	if (detach && m->s)
		inject_session__detach(m->s);
	/* What came up to BYE or the exit (HITS, HANDLED) is taken from the
	 * session before it closes. */
	if (m->h)
		heal__set_session(m->h, NULL);
	else if (member__reports(t, m))
		heal__set_session(m->hr, NULL);
	heal__close(m->hr);
	heal__close(m->h);
	inject_session__close(m->s);
	inspect_proc__close(m->ip);
	memset(m, 0, sizeof *m);
}

void heal_tree__close(struct heal_tree *t, bool detach, struct heal_stats *sum)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		member__close(t, &t->m[i], &t->total, detach);
	if (sum) {
		sum->crashes += t->total.crashes;
		sum->applied += t->total.applied;
		sum->resumed += t->total.resumed;
		sum->would_apply += t->total.would_apply;
		sum->refused += t->total.refused;
		sum->failed += t->total.failed;
		sum->stale += t->total.stale;
		sum->expired += t->total.expired;
	}
	free(t->m);
	if (t->lfd >= 0) {
		close(t->lfd);
		unlink(t->sock);
	}
	free(t->files);
	free(t);
}

size_t heal_tree__size(const struct heal_tree *t)
{
	return t ? t->n : 0;
}

bool heal_tree__several(const struct heal_tree *t)
{
	return t && t->seen > 1;
}

static struct heal_member *member__find(struct heal_tree *t, pid_t pid)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->m[i].pid == pid)
			return &t->m[i];
	return NULL;
}

/* The reader and heal handle, at the first need (a crash, a patch from a
 * sibling). */
static struct heal *member__heal(struct heal_tree *t, struct heal_member *m)
{
	char err[512];
	if (m->h || m->inspect_failed)
		return m->h;
	if (inspect_proc__open(m->pid, NULL, &m->ip, err, sizeof err)) {
		fprintf(stderr, "[suture] pid %d: %s: nothing is healed in it\n", (int)m->pid, err);
		m->inspect_failed = true;
		return NULL;
	}
	if (heal__open(m->ip, m->s, &t->o.heal, &m->h)) {
		m->inspect_failed = true;
		return NULL;
	}
	heal__set_tag(m->h, true);
	return m->h;
}

/* The files with stored patches for the program, re-read from the store
 * (through h): true when the list changed. */
static bool files_refresh(struct heal_tree *t, struct heal *h)
{
	struct store *st = NULL;
	char *v = NULL;
	size_t len = 0, cap = 0;
	if (!h || !t->o.heal.program || heal__open_store(h, STORE_F_RDONLY, &st))
		return false;
	struct store_query q = { .program = t->o.heal.program };
	struct store_iter it;
	store_iter__init(&it, st, &q);
	for (const struct store_patch *p; (p = store_iter__next(&it));) {
		size_t n = strlen(p->file);
		bool dup = false;
		for (const char *x = v; x && x < v + len && !dup;) {
			const char *nl = memchr(x, '\n', (size_t)(v + len - x));
			size_t xn = (size_t)((nl ? nl : v + len) - x);
			dup = xn == n && memcmp(x, p->file, n) == 0;
			x = nl ? nl + 1 : v + len;
		}
		if (dup || !n || strchr(p->file, '\n'))
			continue;
		if (len + n + 2 > cap) {
			size_t nc = (len + n + 2) * 2;
			char *w = realloc(v, nc);
			if (!w)
				break;
			v = w;
			cap = nc;
		}
		if (len)
			v[len++] = '\n';
		memcpy(v + len, p->file, n);
		len += n;
	}
	store__close(st);
	bool changed = len != t->files_len || (len && memcmp(v, t->files, len) != 0);
	if (changed) {
		free(t->files);
		t->files = v;
		t->files_len = len;
	} else {
		free(v);
	}
	return changed;
}

/* TREE_FILES to one agent: it and its later forks report those files'
 * module execs to us. */
static void files_send(struct heal_tree *t, pid_t pid, struct inject_session *s)
{
	uint32_t kept = 0;
	if (t->lfd < 0 || !s || !t->files_len)
		return;
	if (inject_session__tree_files(s, t->sock, t->files, t->files_len, &kept) == 0) {
		if (t->o.heal.verbose)
			fprintf(stderr,
				"[suture] pid %d: %u file(s) with stored patches reported "
				"by its forks before their modules run\n",
				(int)pid, kept);
	}
}

void heal_tree__set_root(struct heal_tree *t, struct inject_session *s, struct heal *h)
{
	if (!t)
		return;
	t->root_s = s;
	t->root_h = h;
	/* Once a session: the store is read when its heal handle exists,
	 * unless the files were given (a boot image names them). */
	if (s && (h || t->files_given) && s != t->root_listed) {
		t->root_listed = s;
		if (!t->files_given)
			files_refresh(t, h);
		files_send(t, t->root, s);
	}
}

void heal_tree__give_files(struct heal_tree *t, char *const *files, size_t n)
{
	size_t len = 0;
	if (!t)
		return;
	for (size_t i = 0; i < n; i++)
		len += strlen(files[i]) + 1;
	char *v = len ? malloc(len) : NULL;
	if (len && !v)
		return; /* the store is read as usual */
	len = 0;
	for (size_t i = 0; i < n; i++) {
		size_t k = strlen(files[i]);
		if (!k || strchr(files[i], '\n'))
			continue;
		if (len)
			v[len++] = '\n';
		memcpy(v + len, files[i], k);
		len += k;
	}
	free(t->files);
	t->files = v;
	t->files_len = len;
	t->files_given = true;
}

int heal_tree__add(struct heal_tree *t, pid_t pid, bool inject)
{
	char err[512];
	if (pid <= 0 || pid == t->root || member__find(t, pid))
		return 0;
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 8;
		struct heal_member *v = realloc(t->m, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		t->m = v;
		t->cap = cap;
	}
	struct inject_opts io = {
		.agent_path = t->o.agent_path,
		.app_paths = t->o.app_paths,
		.hits = true,
		.handled = true,
		.heal_handled = t->o.heal.heal_handled,
		.tree = true,
		.no_inject = !inject,
		/* A child announced by FORKED listens already (unless it exec'd
		 * or exited since: not worth waiting for). */
		.connect_timeout_ms = inject ? 0 : 250,
	};
	struct heal_member m = { .pid = pid };
	int rc = inject_session__open(pid, &io, &m.s, err, sizeof err);
	if (rc == 0 && inject_session__watch_mode(m.s) == WIRE_WATCH_NONE) {
		snprintf(err, sizeof err, "heal: pid %d: the agent is not watching: %s", (int)pid,
			 inject_session__watch_detail(m.s));
		/* Left as it was: an agent we injected is detached again. */
		if (inject_session__how(m.s) != INJECT_HOW_CONNECTED)
			inject_session__detach(m.s);
		inject_session__close(m.s);
		m.s = NULL;
		rc = -EPROTO;
	}
	if (rc) {
		/* Gone already (a short-lived child, one that exec'd): quiet
		 * unless it still runs. */
		if (attach_pid__alive(pid) && attach_pid__same_exe(pid, t->root) && rc != -ESRCH)
			fprintf(stderr, "[suture] pid %d: not watched: %s\n", (int)pid, err);
		return rc;
	}
	t->m[t->n++] = m;
	t->seen++;
	if (!t->o.heal.quiet)
		fprintf(stderr, "[suture] watching pid %d (of the tree of %d)\n", (int)pid,
			(int)t->root);
	/* Its reader and heal handle now: they also store the firings of the
	 * patches it inherited (HITS), crash or not. Forked before a patch
	 * reached its parent, or found at attach: the stored patches go into
	 * its live code. */
	struct heal *h = member__heal(t, &t->m[t->n - 1]);
	if (h && (t->patches || inject))
		heal__load_live(h); /* gone meanwhile: the next step sees its EOF */
	if (!t->files)
		files_refresh(t, h);
	files_send(t, pid, t->m[t->n - 1].s);
	return 0;
}

void heal_tree__take_forked(struct heal_tree *t, struct inject_session *s)
{
	struct wire_forked f[16];
	size_t n;
	while (s && (n = inject_session__take_forked(s, f, 16)) > 0)
		for (size_t i = 0; i < n; i++)
			heal_tree__add(t, (pid_t)f[i].pid, false);
}

int heal_tree__add_descendants(struct heal_tree *t, volatile sig_atomic_t *stop)
{
	enum { MAXP = 4096 };
	pid_t *d = calloc(MAXP, sizeof *d);
	size_t n = 0;
	if (!d)
		return -ENOMEM;
	int rc = attach_pid__descendants(t->root, d, MAXP, &n);
	/* Parents first; the same CPython (a fork, not a program it ran). */
	for (size_t i = 0; i < n && !(stop && *stop); i++)
		if (attach_pid__same_exe(d[i], t->root))
			heal_tree__add(t, d[i], true);
	free(d);
	return rc;
}

void heal_tree__pollfds(const struct heal_tree *t, struct pollfd *pf, size_t *n, size_t cap)
{
	for (size_t i = 0; i < t->n && *n < cap; i++)
		if (t->m[i].s)
			pf[(*n)++] = (struct pollfd){ .fd = inject_session__fd(t->m[i].s),
						      .events = POLLIN };
	if (t->lfd >= 0 && *n < cap)
		pf[(*n)++] = (struct pollfd){ .fd = t->lfd, .events = POLLIN };
}

/* Every member but `except` gets the stored patches (a patch was just
 * made in `except`, or in the root). */
void heal_tree__propagate(struct heal_tree *t, pid_t except)
{
	if (!t)
		return;
	t->patches++;
	/* A new file with patches: every agent lists it (later forks
	 * inherit the list from the root). */
	struct heal *any = t->root_h;
	for (size_t i = 0; !any && i < t->n; i++)
		any = t->m[i].h;
	if (files_refresh(t, any)) {
		files_send(t, t->root, t->root_s);
		for (size_t i = 0; i < t->n; i++)
			files_send(t, t->m[i].pid, t->m[i].s);
	}
	for (size_t i = 0; i < t->n; i++) {
		struct heal_member *m = &t->m[i];
		if (m->pid == except || !m->s)
			continue;
		struct heal *h = member__heal(t, m);
		if (h)
			heal__load_live(h);
	}
}

static void member__gone(struct heal_tree *t, size_t i)
{
	struct heal_member *m = &t->m[i];
	if (!t->o.heal.quiet)
		fprintf(stderr, "[suture] pid %d exited\n", (int)m->pid);
	member__close(t, m, &t->total, false);
	t->m[i] = t->m[--t->n];
}

/* A process about to run a listed file's module (connected to our
 * socket): its stored patches go into the module's code first, then it
 * runs. A child not yet announced by FORKED is added now. */
static void boot_serve_rd(struct heal_tree *t, int cfd, struct wire_reader *rd);

static void boot_serve(struct heal_tree *t, int cfd)
{
	struct wire_reader rd = { 0 };
	boot_serve_rd(t, cfd, &rd);
	wire_reader__free(&rd);
}

/* One connection, one module (rd: cfd's frames). */
static void boot_serve_rd(struct heal_tree *t, int cfd, struct wire_reader *rd)
{
	struct ucred cr;
	socklen_t cl = sizeof cr;
	struct wire_crash ev;
	struct timeval tv = { .tv_sec = 5 };
	double released_at = 0;
	struct pollfd pf = { .fd = cfd, .events = POLLIN };
	if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) || cr.pid <= 0 ||
	    fcntl(cfd, F_SETFL, 0) < 0 ||
	    setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) || poll(&pf, 1, 5000) != 1 ||
	    heal_boot__next_module(cfd, rd, &ev))
		return;
	struct heal *h = NULL;
	if (cr.pid == t->root) {
		h = t->root_h;
	} else {
		heal_tree__add(t, cr.pid, false);
		struct heal_member *m = member__find(t, cr.pid);
		h = m ? member__heal(t, m) : NULL;
	}
	unsigned before = h ? heal__stats(h)->loaded : 0;
	if (h && heal__load_tree_boot_release(h, ev.code_addr, cfd, rd, ev.event_id,
					      &released_at) == -EPIPE)
		return;
	if (h && heal__stats(h)->loaded > before && !t->o.heal.quiet)
		fprintf(stderr, "[suture] pid %d: %u stored patch(es) installed before %s ran\n",
			(int)cr.pid, heal__stats(h)->loaded - before,
			heal_names__base(ev.filename));
	if (!released_at)
		heal_boot__release(cfd, ev.event_id);
}

int heal_tree__step(struct heal_tree *t, bool *not_resumed)
{
	int applied = 0;
	for (int cfd; t->lfd >= 0 && (cfd = accept4(t->lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0;) {
		boot_serve(t, cfd);
		close(cfd);
	}
	for (size_t i = 0; i < t->n;) {
		struct heal_member *m = &t->m[i];
		struct wire_crash ev;
		int rc;
		while ((rc = inject_session__next_event(m->s, 0, &ev)) == 0) {
			enum heal_outcome oc = HEAL_NONE;
			struct heal *h = member__heal(t, m);
			rc = h ? heal__on_crash(h, &ev, &oc) : inject_session__release(m->s, &ev);
			if (rc)
				break;
			if (oc == HEAL_APPLIED)
				*not_resumed = true;
			if (oc == HEAL_APPLIED || oc == HEAL_RESUMED) {
				applied++;
				/* At once: a sibling's crash on the same code,
				 * queued meanwhile, then meets code replaced a
				 * moment ago instead of being healed twice. */
				pid_t pid = m->pid;
				heal_tree__propagate(t, pid);
				m = member__find(t, pid);
			}
		}
		pid_t pid = m->pid;
		struct inject_session *s = m->s;
		if (rc == -EPIPE || rc == -EPROTO) {
			heal_tree__take_forked(t, s);
			member__gone(t, i);
			continue;
		}
		heal_tree__take_forked(t, s);
		/* take_forked may have grown (moved) the array. */
		m = member__find(t, pid);
		i = (size_t)(m - t->m) + 1;
	}
	return applied;
}

void heal_tree__flush(struct heal_tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		if (t->m[i].h)
			heal__flush(t->m[i].h);
		else if (member__reports(t, &t->m[i]))
			heal__flush(t->m[i].hr);
	}
}

int heal_tree__each(struct heal_tree *t, int (*fn)(pid_t pid, struct inject_session *s, void *ctx),
		    void *ctx)
{
	int rc = 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->m[i].s) {
			int r = fn(t->m[i].pid, t->m[i].s, ctx);
			if (r && !rc)
				rc = r;
		}
	return rc;
}
