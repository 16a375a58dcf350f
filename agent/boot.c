/* agent: boot-time installation of stored patches (suture-run), and the
 * same for modules a forked child imports (TREE_FILES, at the end).
 *
 * Self-contained: its own constructor, its own connection to the debugger,
 * and it never touches the agent thread, its channel or install.c (the
 * agent thread only hands it TREE_FILES' list). The boot hook is active only when suture-run started us with SUTURE_AGENT_BOOT_FD (one end
 * of a socketpair) and SUTURE_AGENT_BOOT (a file listing the absolute paths
 * of the script and of the source files that have stored patches); both
 * variables are removed from the environment at once, and the descriptor is
 * not inherited. suture-run fills the list while the interpreter starts
 * and then sends a first frame (boot.h); the hook reads both when the first
 * module after initialization is about to run. The listed script's module
 * (or, when the script cannot be named by its file, that first module) is
 * reported even without patches, so suture-run can hold the program until
 * its session with the agent is up.
 *
 * Mechanism (CPython 3.11.2 sources):
 *   - PySys_AddAuditHook may be called before Py_Initialize: it stores the
 *     hook in _PyRuntime.audit_hook_head (Python/sysmodule.c), which
 *     _PyRuntimeState_Init preserves (Python/pystate.c);
 *   - the audit event "exec" carries a module's code object right before its
 *     body runs: for __main__ in run_mod() (Python/pythonrun.c), for every
 *     import through builtins.exec (importlib's exec_module).
 * When a listed file is about to run, the hook reports the module's code
 * object with a CRASH-format frame (exc_type "", frame_addr 0; the debugger
 * tells it apart by that) and serves PATCH frames for code objects nested in
 * that module (functions, methods, comprehensions...: constants of the
 * module code or of each other) until RELEASE. A patched code object replaces
 * the original in its parent's co_consts before the module body has run, so
 * the `def` statements create functions that are healed from their first
 * call. The work runs on the importing thread itself, with the GIL taken
 * only for Python work; socket waits release it.
 *
 * Frames are docs/formats/channel.md's (wire/msg.c encoders/decoders).
 */
#include "agent/agent-priv.h"
#include "wire/boot.h"
#include "wire/image.h"
#include "agent/helpers.h"
#include "wire/channel.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* How long the debugger may take to answer one frame. */
#define BOOT_ANSWER_MS 10000
#define BOOT_MAX_FILES 4096
#define BOOT_MAX_DEPTH 64

static struct {
	int fd;
	bool first_done; /* the first module after initialization was reported */
	char **files;
	struct stat *ids; /* files[i]'s device and inode (st_nlink 0: none) */
	size_t nfiles;
	char *list_path; /* read once the first module was answered */
	uint64_t next_event;
	pthread_mutex_t lock;  /* one module at a time on the socket */
	struct wire_reader rd; /* fd's frames: every read of fd goes through it */
	int image_fd;          /* a boot image suture-run checked, until read */
	uint8_t *image_data;   /* ... read with the list */
	struct wire_image image;
	bool have_image;
	int32_t *section_of; /* files[i]'s section in the image, -1: none */
} boot = { .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .image_fd = -1 };

bool agent_boot__active(void)
{
	return __atomic_load_n(&boot.fd, __ATOMIC_ACQUIRE) >= 0;
}

static void boot_child(void)
{
	/* The connection belongs to the parent process. */
	if (boot.fd >= 0)
		close(boot.fd);
	boot.fd = -1;
	/* Plain stores after fork: its buffer stays the parent's (a few KiB). */
	memset(&boot.rd, 0, sizeof boot.rd);
	pthread_mutex_init(&boot.lock, NULL);
}

static void boot_off(void)
{
	if (boot.fd >= 0)
		close(boot.fd);
	boot.fd = -1;
	wire_reader__free(&boot.rd);
}

/* Called for every module that runs (site's imports, the program's): the
 * usual spelling, the listed real path itself, costs no system call; any
 * other is one stat() compared by device and inode (a symbolic link, a
 * relative path), where a realpath() would walk every component of every
 * module's path. */
static long listed_at(const char *filename)
{
	struct stat sb;
	if (!filename || filename[0] == '<' || !boot.nfiles)
		return -1;
	for (size_t i = 0; i < boot.nfiles; i++)
		if (strcmp(boot.files[i], filename) == 0)
			return (long)i;
	if (stat(filename, &sb))
		return -1;
	for (size_t i = 0; i < boot.nfiles; i++)
		if (boot.ids[i].st_nlink && boot.ids[i].st_dev == sb.st_dev &&
		    boot.ids[i].st_ino == sb.st_ino)
			return (long)i;
	return -1;
}

static bool listed(const char *filename)
{
	return listed_at(filename) >= 0;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- the socket, without the GIL ---- */

static int send_buf(int fd, struct wire_buf *b)
{
	int rc = b->err ? b->err : wire_channel__write_all(fd, b->data, b->len);
	wire_buf__reset(b);
	return rc;
}

/* ---- building and placing the patched code (GIL held) ---- */

/* The code object at addr under root: its parent and index in co_consts. */
static bool find(PyCodeObject *root, uint64_t addr, PyCodeObject **parent, Py_ssize_t *index,
		 int depth)
{
	PyObject *consts = root->co_consts;
	if (depth > BOOT_MAX_DEPTH)
		return false;
	for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(consts); i++) {
		PyObject *k = PyTuple_GET_ITEM(consts, i);
		if (!PyCode_Check(k))
			continue;
		if ((uint64_t)(uintptr_t)k == addr) {
			*parent = root;
			*index = i;
			return true;
		}
		if (find((PyCodeObject *)k, addr, parent, index, depth + 1))
			return true;
	}
	return false;
}

/* Replace co_consts[index] of parent by newc. The parent has not run: a
 * private tuple is changed in place, a shared one is copied first. */
static int place(PyCodeObject *parent, Py_ssize_t index, PyObject *newc)
{
	PyObject *consts = parent->co_consts;
	if (Py_REFCNT(consts) == 1) {
		PyObject *old = PyTuple_GET_ITEM(consts, index);
		PyTuple_SET_ITEM(consts, index, Py_NewRef(newc));
		Py_DECREF(old);
		return 0;
	}
	Py_ssize_t n = PyTuple_GET_SIZE(consts);
	PyObject *copy = PyTuple_New(n);
	if (!copy)
		return -1;
	for (Py_ssize_t i = 0; i < n; i++)
		PyTuple_SET_ITEM(copy, i,
				 Py_NewRef(i == index ? newc : PyTuple_GET_ITEM(consts, i)));
	parent->co_consts = copy;
	Py_DECREF(consts);
	return 0;
}

/* The new code object (borrowed: its parent's co_consts holds it), or
 * NULL with res saying why. res->key (want_key): the original's
 * (agent/codekey.c), for suture-run's boot image. */
static PyObject *install(PyCodeObject *root, const struct wire_patch *p,
			 struct wire_patch_result *res, bool want_key)
{
	PyCodeObject *parent = NULL;
	Py_ssize_t index = -1;
	if (!find(root, p->code_addr, &parent, &index, 0)) {
		res->status = -ENOENT;
		snprintf(res->message, sizeof res->message,
			 "agent boot: code object %#llx is not nested in the module about to run",
			 (unsigned long long)p->code_addr);
		return NULL;
	}
	/* Kept for the registry (LIST, ROLLBACK): place() may drop the tuple
	 * that held the original. */
	PyObject *orig = Py_NewRef(PyTuple_GET_ITEM(parent->co_consts, index));
	if (want_key)
		res->key = agent_codekey((PyCodeObject *)orig);
	char err[sizeof res->message] = "";
	PyObject *newc = agent_install__build_code((PyCodeObject *)orig, p, err, sizeof err);
	if (newc && place(parent, index, newc)) {
		snprintf(err, sizeof err, "agent boot: placing the new code in %s failed",
			 PyUnicode_AsUTF8(parent->co_qualname)
				 ? PyUnicode_AsUTF8(parent->co_qualname)
				 : "?");
		Py_CLEAR(newc);
	}
	if (!newc) {
		PyErr_Clear();
		res->status = -EINVAL;
		snprintf(res->message, sizeof res->message, "%s",
			 err[0] ? err : "agent boot: building the code object failed");
		Py_DECREF(orig);
		return NULL;
	}
	agent_install__record_boot(orig, newc, p);
	Py_DECREF(orig);
	Py_DECREF(newc); /* the parent's co_consts and the registry hold it */
	res->status = 0;
	res->nparents = 1;
	snprintf(res->message, sizeof res->message,
		 "installed in the constants of %s before it ran",
		 PyUnicode_AsUTF8(parent->co_qualname) ? PyUnicode_AsUTF8(parent->co_qualname)
						       : "?");
	PyErr_Clear();
	return newc;
}

/* ---- installing from the boot image (wire/boot.h, step 2) ---- */

/* How many code objects under root have this qualified name and first
 * line (counting stops at 2); the first in *out. */
static int find_named(PyCodeObject *root, const char *qualname, int firstlineno, PyCodeObject **out,
		      int depth)
{
	PyObject *consts = root->co_consts;
	int n = 0;
	if (depth > BOOT_MAX_DEPTH)
		return 2; /* deeper than the walks go: not found for sure */
	for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(consts) && n < 2; i++) {
		PyObject *k = PyTuple_GET_ITEM(consts, i);
		if (!PyCode_Check(k))
			continue;
		PyCodeObject *c = (PyCodeObject *)k;
		if (c->co_firstlineno == firstlineno) {
			const char *q = PyUnicode_AsUTF8(c->co_qualname);
			if (!q)
				PyErr_Clear();
			else if (strcmp(q, qualname) == 0 && n++ == 0)
				*out = c;
		}
		PyCodeObject *inner = NULL;
		int m = find_named(c, qualname, firstlineno, &inner, depth + 1);
		if (m && !n)
			*out = inner;
		n += m;
	}
	return n;
}

/* The section's patches into the module about to run, each PATCH_RESULT
 * appended to b; only when every entry finds its code object, once, and
 * a first patch of a function finds the key it was made for (then the
 * PATCH is what suture-run would derive again: agent/codekey.c). -1:
 * nothing installed, nothing appended. Else how many installed. */
static int apply_image(PyCodeObject *root, const struct wire_image_section *sec, struct wire_buf *b)
{
	struct wire_image_entry e;
	const uint8_t *at = sec->entries;
	uint32_t n = sec->nentries, i;
	PyCodeObject **head = calloc(n ? n : 1, sizeof *head);
	PyObject **cur = calloc(n ? n : 1, sizeof *cur); /* head[i]'s code now */
	int ok = head && cur ? 0 : -1;
	for (i = 0; ok == 0 && wire_image__next_entry(sec, &at, &e); i++) {
		if (find_named(root, e.qualname, (int)e.firstlineno, &head[i], 0) != 1) {
			agent__log("boot: image: %s (line %u) not found once: not used", e.qualname,
				   e.firstlineno);
			ok = -1;
		} else if (e.key && agent_codekey(head[i]) != e.key) {
			agent__log("boot: image: %s changed: not used", e.qualname);
			ok = -1;
		} else if (!e.key) { /* on top of an earlier entry's */
			bool below = false;
			for (uint32_t k = 0; k < i && !below; k++)
				below = head[k] == head[i];
			ok = below ? 0 : -1;
		}
	}
	if (ok == 0 && i != n)
		ok = -1;
	int installed = 0;
	at = sec->entries;
	for (i = 0; ok == 0 && wire_image__next_entry(sec, &at, &e); i++) {
		struct wire_patch p;
		struct wire_patch_result res;
		memset(&res, 0, sizeof res);
		res.request_id = WIRE_BOOT_IMAGE_ID(sec->index, i);
		/* A stacked entry goes on the code the entry below it made;
		 * if that one was not installed, neither is this one (its
		 * bytes and appended constants are relative to that code). */
		PyObject *target = (PyObject *)head[i];
		for (uint32_t k = 0; k < i; k++)
			if (head[k] == head[i])
				target = cur[k];
		if (!target) {
			res.status = -ECANCELED;
			snprintf(res.message, sizeof res.message,
				 "agent boot: the patch it is stacked on was not installed");
		} else if (wire_msg__decode_patch_named(e.payload, e.payload + e.payload_len, &p)) {
			res.status = -EINVAL;
			snprintf(res.message, sizeof res.message, "agent boot: a bad image entry");
		} else {
			p.code_addr = (uint64_t)(uintptr_t)target;
			cur[i] = install(root, &p, &res, false); /* its key was checked */
			installed += cur[i] != NULL;
		}
		wire_msg__encode_patch_result(b, &res);
	}
	free(head);
	free(cur);
	return ok ? -1 : installed;
}

/* ---- one module ---- */

/* Report the module on *fdp, serve PATCH frames until RELEASE, each
 * answer awaited answer_ms at most. Called with the GIL; returns with it.
 * lock (may be NULL) is held meanwhile. Errors close *fdp (boot mode off:
 * the program runs unpatched). */
/* rd: the reader of *fdp (bytes it holds are the next frames). */
/* sec (may be NULL): the boot image's section for this module, installed
 * first when it matches, its answers sent before the report. keys: each
 * PATCH_RESULT carries the key of the code replaced (suture-run's own
 * boot socket records an image; a tree's does not). */
static void serve_on(int *fdp, struct wire_reader *rd, pthread_mutex_t *lock, int answer_ms,
		     PyCodeObject *code, const struct wire_image_section *sec, bool keys)
{
	struct wire_crash ev;
	struct wire_buf b = { 0 };
	const char *fn = PyUnicode_AsUTF8(code->co_filename);
	unsigned npatches = 0, unanswered = 0;
	double busy_ms = 0;
	int from_image = -1;

	if (sec && *fdp >= 0) {
		int gc_was = PyGC_Disable();
		double t0 = now_ms();
		from_image = apply_image(code, sec, &b);
		busy_ms += now_ms() - t0;
		if (gc_was)
			PyGC_Enable();
	}

	memset(&ev, 0, sizeof ev);
	ev.tid = (uint64_t)syscall(SYS_gettid);
	ev.code_addr = (uint64_t)(uintptr_t)code;
	ev.line = (uint32_t)code->co_firstlineno;
	snprintf(ev.filename, sizeof ev.filename, "%s", fn ? fn : "?");
	snprintf(ev.qualname, sizeof ev.qualname, "<module>");
	PyErr_Clear();

	Py_INCREF(code);
	PyThreadState *ts = PyEval_SaveThread();
	if (lock)
		pthread_mutex_lock(lock);
	int rc = *fdp < 0 ? -EPIPE : 0;
	if (!rc) {
		ev.event_id = __atomic_add_fetch(&boot.next_event, 1, __ATOMIC_RELAXED);
		wire_msg__encode_crash(&b, &ev);
		rc = send_buf(*fdp, &b);
		agent__log("boot: reported %s", ev.filename);
		if (from_image >= 0)
			agent__log("boot: %d of %u patches installed from the image", from_image,
				   sec->nentries);
	}
	while (!rc) {
		struct wire_hdr h;
		uint8_t *pl;
		/* Answers go out when no more patches are waiting: the debugger
		 * wakes once for a batch, not once a patch; and every
		 * WIRE_BOOT_ANSWER_BATCH, or a debugger that streams patches faster
		 * than we install them would wait, at its bound of unanswered
		 * patches, until we had installed all it sent (heal/send.c). */
		struct pollfd more = { .fd = *fdp, .events = POLLIN };
		if (b.len && (unanswered >= WIRE_BOOT_ANSWER_BATCH ||
			      (!wire_reader__has_frame(rd) && poll(&more, 1, 0) == 0))) {
			if ((rc = send_buf(*fdp, &b)))
				break;
			unanswered = 0;
		}
		if ((rc = wire_reader__next(rd, *fdp, answer_ms, &h, &pl)))
			break;
		if (h.type == WIRE_MSG_RELEASE) {
			free(pl);
			/* Patches sent right before the release are answered
			 * now, before the module runs. */
			if (b.len)
				rc = send_buf(*fdp, &b);
			break;
		}
		struct wire_patch p;
		struct wire_patch_result res;
		memset(&res, 0, sizeof res);
		if (h.type == WIRE_MSG_PATCH_NAMED
			    ? wire_msg__decode_patch_named(pl, pl + h.len, &p)
			    : (h.type != WIRE_MSG_PATCH ||
			       wire_msg__decode_patch(pl, pl + h.len, &p))) {
			free(pl);
			rc = -EPROTO;
			break;
		}
		res.request_id = p.request_id;
		PyEval_RestoreThread(ts);
		/* A burst of new code objects and tuples would run the cyclic
		 * GC over the whole heap several times for nothing. */
		int gc_was = PyGC_Disable();
		double t0 = now_ms();
		(void)install(code, &p, &res, keys);
		busy_ms += now_ms() - t0;
		npatches++;
		if (gc_was)
			PyGC_Enable();
		ts = PyEval_SaveThread();
		free(pl);
		wire_msg__encode_patch_result(&b, &res);
		unanswered++;
		rc = b.err;
	}
	if (rc && *fdp >= 0) {
		close(*fdp); /* the debugger is gone or confused: run unpatched from now on */
		*fdp = -1;
		wire_reader__free(rd);
	}
	if (lock)
		pthread_mutex_unlock(lock);
	PyEval_RestoreThread(ts);
	agent__log("boot: %s runs (%s; %u patches built and placed in %.2f ms)", ev.filename,
		   rc ? strerror(-rc) : "released", npatches, busy_ms);
	Py_DECREF(code);
	wire_buf__free(&b);
}

/* at: the module's file in the list (-1: not listed). */
static void serve(PyCodeObject *code, long at)
{
	struct wire_image_section sec;
	bool have = false;
	if (at >= 0 && boot.section_of && boot.section_of[at] >= 0) {
		const uint8_t *p = boot.image.sections;
		uint32_t idx = 0;
		while (!have && wire_image__next_section(&boot.image, &p, &sec, &idx))
			have = (int32_t)sec.index == boot.section_of[at];
	}
	serve_on(&boot.fd, &boot.rd, &boot.lock, BOOT_ANSWER_MS, code, have ? &sec : NULL, true);
}

static void read_list(const char *path);

/* The boot image on fd (suture-run checked it against its store; it is
 * checked whole again here, the agent's own defence): each listed file's
 * section. A bad image is not used: every module loads the usual way. */
static void read_image(int fd)
{
	struct stat sb;
	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
	    (uint64_t)sb.st_size > WIRE_IMAGE_MAX)
		return;
	size_t len = (size_t)sb.st_size, got = 0;
	uint8_t *data = malloc(len);
	while (data && got < len) {
		ssize_t r = pread(fd, data + got, len - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	int32_t *at = calloc(boot.nfiles ? boot.nfiles : 1, sizeof *at);
	if (!data || !at || got != len || wire_image__open(data, len, &boot.image)) {
		agent__log("boot: the image is not used (%s)",
			   data && at ? "damaged" : "no memory");
		free(data);
		free(at);
		return;
	}
	for (size_t i = 0; i < boot.nfiles; i++)
		at[i] = -1;
	struct wire_image_section sec;
	const uint8_t *p = boot.image.sections;
	uint32_t idx = 0;
	unsigned n = 0;
	while (wire_image__next_section(&boot.image, &p, &sec, &idx))
		for (size_t i = 0; i < boot.nfiles; i++)
			if (at[i] < 0 && strcmp(boot.files[i], sec.file) == 0) {
				at[i] = (int32_t)sec.index;
				n++;
			}
	boot.image_data = data;
	boot.section_of = at;
	boot.have_image = true;
	agent__log("boot: image of %u section(s), %u of the listed files", boot.image.hdr.nsections,
		   n);
}

/* suture-run's first frame (boot.h). Called with the GIL, returns with it;
 * true when only listed modules are to be reported. */
static bool list_ready(void)
{
	struct wire_hdr h;
	struct wire_release r;
	uint8_t *pl = NULL;
	PyThreadState *ts = PyEval_SaveThread();
	pthread_mutex_lock(&boot.lock);
	int rc = boot.fd < 0 ? -EPIPE
			     : wire_reader__next(&boot.rd, boot.fd, BOOT_ANSWER_MS, &h, &pl);
	if (!rc && (h.type != WIRE_MSG_RELEASE || wire_msg__decode_release(pl, pl + h.len, &r)))
		rc = -EPROTO;
	free(pl);
	if (rc)
		boot_off(); /* suture-run is gone or confused: run unpatched */
	pthread_mutex_unlock(&boot.lock);
	PyEval_RestoreThread(ts);
	return rc == 0 && r.event_id == BOOT_LIST_SCRIPT;
}

/* The list, complete once suture-run's first frame came (it writes the
 * file while the interpreter initializes). The GIL is held here, as in
 * every listed() call: nothing reads the list meanwhile. */
static void load_list(void)
{
	if (boot.list_path) {
		read_list(boot.list_path);
		free(boot.list_path);
		boot.list_path = NULL;
	}
	if (boot.image_fd >= 0) {
		read_image(boot.image_fd);
		close(boot.image_fd);
		boot.image_fd = -1;
	}
}

static int boot_hook(const char *event, PyObject *args, void *ud)
{
	(void)ud;
	/* The first event after initialization starts the agent thread the
	 * constructor left to us (whatever comes first: site's import, -S's
	 * script, a -c string's compile). */
	if (agent__start_is_deferred() && Py_IsInitialized())
		agent__start_deferred();
	if (boot.fd < 0 || strcmp(event, "exec") != 0 || !Py_IsInitialized())
		return 0;
	if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) < 1 ||
	    !PyCode_Check(PyTuple_GET_ITEM(args, 0)))
		return 0;
	PyCodeObject *code = (PyCodeObject *)PyTuple_GET_ITEM(args, 0);
	const char *fn = PyUnicode_AsUTF8(code->co_filename);
	if (!fn) {
		PyErr_Clear();
		return 0;
	}
	/* The first module after initialization: suture-run has said (its
	 * first frame, normally in the socket long before) whether the
	 * script itself is listed. Then only listed modules are reported and
	 * suture-run holds the script's module until its session with the
	 * agent is up; else this first module (site's) is reported whatever
	 * its file, and held. Either way the debugger watches from the
	 * script's first line. */
	if (!boot.first_done) {
		boot.first_done = true;
		agent__interpreter_up(); /* the agent thread opens the channel now */
		agent__log("boot: first module %s", fn);
		/* The GIL is ours: the watcher goes in now rather than when
		 * the agent's installer gets the GIL from us, which could be
		 * as late as the script's module, held for the session. */
		agent__install_watcher_here();
		bool script_listed = list_ready();
		agent__log("boot: list ready (%s)",
			   script_listed ? "the script is listed" : "hold this module");
		if (script_listed)
			load_list();
		if (!script_listed || listed(fn))
			serve(code, script_listed ? listed_at(fn) : -1);
		if (!script_listed)
			load_list();
	} else {
		long at = listed_at(fn);
		if (at >= 0)
			serve(code, at);
	}
	return 0;
}

static void read_list(const char *path)
{
	FILE *f = fopen(path, "re");
	char line[PATH_MAX + 2];
	if (!f)
		return;
	while (fgets(line, sizeof line, f) && boot.nfiles < BOOT_MAX_FILES) {
		line[strcspn(line, "\n")] = 0;
		if (!line[0])
			continue;
		char **v = realloc(boot.files, (boot.nfiles + 1) * sizeof(char *));
		if (!v)
			break;
		boot.files = v;
		struct stat *ids = realloc(boot.ids, (boot.nfiles + 1) * sizeof(struct stat));
		if (!ids)
			break;
		boot.ids = ids;
		char real[PATH_MAX];
		const char *entry = realpath(line, real) ? real : line;
		bool dup = false; /* a file is named once (suture-run dedups too) */
		for (size_t i = 0; i < boot.nfiles && !dup; i++)
			dup = strcmp(boot.files[i], entry) == 0;
		if (dup)
			continue;
		if (!(boot.files[boot.nfiles] = strdup(entry)))
			break;
		if (stat(entry, &boot.ids[boot.nfiles]))
			boot.ids[boot.nfiles].st_nlink = 0;
		boot.nfiles++;
	}
	fclose(f);
}

/* ---- forked children (docs/design.md §15) ----
 *
 * A process tree's debugger (suture-run, suture-attach --watch) sends
 * TREE_FILES: its socket and the files that have stored patches. The list
 * lives in this process's memory, so every later fork inherits it (and
 * gets it anew when the debugger's list changes). A forked child that
 * inherited files adds an audit hook from CPython's after-fork callback
 * (agent_boot__tree_child: the GIL held, before the child runs any of its
 * own code); when it is about to run the body of a module from a listed
 * file (a gunicorn worker importing the application after the fork), its
 * importing thread connects to that socket and is served as above: the
 * patches are in the module's constants before its first line runs.
 *
 * The list has its own lock, never held while waiting for anything: the
 * agent thread changes it without the GIL (which the program may keep for
 * a long C call, while the debugger awaits the answer). A process whose debugger never
 * lists a file gets no hook; without a debugger listening, connect fails
 * at once. */

#define TREE_ANSWER_MS 5000

static struct {
	pthread_mutex_t lock; /* sock, files, nfiles */
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char **files;
	size_t nfiles;
	bool atfork; /* the fork handlers are registered */
	bool hooked; /* the audit hook is in (GIL) */
} tree = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* A fork copies the list whole: never in the middle of a change. */
static void tree_prepare(void)
{
	pthread_mutex_lock(&tree.lock);
}
static void tree_parent(void)
{
	pthread_mutex_unlock(&tree.lock);
}
static void tree_child(void)
{
	pthread_mutex_init(&tree.lock, NULL);
}

/* With tree.lock held: filename's module is listed; *sock gets the socket. */
static bool tree_listed(const char *filename, char *sock, size_t cap)
{
	char real[PATH_MAX];
	if (!tree.nfiles || filename[0] == '<' || !realpath(filename, real))
		return false;
	for (size_t i = 0; i < tree.nfiles; i++)
		if (strcmp(tree.files[i], real) == 0) {
			snprintf(sock, cap, "%s", tree.sock);
			return true;
		}
	return false;
}

/* A connection to the debugger's socket, or -1 (none listens, or its
 * backlog is full: the module runs unpatched rather than wait). */
static int tree_connect(const char *sock)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	snprintf(a.sun_path, sizeof a.sun_path, "%s", sock);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		agent__log("tree: %s not reached: %s", sock, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int tree_hook(const char *event, PyObject *args, void *ud)
{
	(void)ud;
	if (boot.fd >= 0 || strcmp(event, "exec") != 0)
		return 0;
	if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) < 1 ||
	    !PyCode_Check(PyTuple_GET_ITEM(args, 0)))
		return 0;
	PyCodeObject *code = (PyCodeObject *)PyTuple_GET_ITEM(args, 0);
	const char *fn = PyUnicode_AsUTF8(code->co_filename);
	if (!fn) {
		PyErr_Clear();
		return 0;
	}
	char sock[sizeof tree.sock];
	pthread_mutex_lock(&tree.lock);
	bool listed = tree_listed(fn, sock, sizeof sock);
	pthread_mutex_unlock(&tree.lock);
	if (!listed)
		return 0;
	/* A fork CPython does not know of: our agent starts here (we hold
	 * the GIL: a safe point), so the debugger can add this process. */
	agent__fork_start();
	int fd = tree_connect(sock);
	if (fd < 0)
		return 0;
	struct wire_reader rd = { 0 };
	serve_on(&fd, &rd, NULL, TREE_ANSWER_MS, code, NULL, false);
	wire_reader__free(&rd);
	if (fd >= 0)
		close(fd);
	return 0;
}

void agent_boot__tree_child(void)
{
	pthread_mutex_lock(&tree.lock);
	bool want = tree.nfiles && !tree.hooked;
	pthread_mutex_unlock(&tree.lock);
	if (!want)
		return;
	if (PySys_AddAuditHook(tree_hook, NULL) == 0)
		tree.hooked = true;
	else
		PyErr_Clear();
	agent__log("tree: module execs of listed files are reported%s",
		   tree.hooked ? "" : ": no (the audit hook was refused)");
}

/* Replace the list by m's (tree.lock held). */
static void tree_files_set(const struct wire_tree_files *m)
{
	for (size_t i = 0; i < tree.nfiles; i++)
		free(tree.files[i]);
	free(tree.files);
	tree.files = NULL;
	tree.nfiles = 0;
	snprintf(tree.sock, sizeof tree.sock, "%s", m->sock);
	const char *p = m->files, *end = m->files + m->files_len;
	while (p && p < end && tree.nfiles < BOOT_MAX_FILES) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		char *f = n && n < PATH_MAX ? strndup(p, n) : NULL;
		p = nl ? nl + 1 : end;
		if (!f)
			continue;
		char real[PATH_MAX];
		if (realpath(f, real)) {
			free(f);
			f = strdup(real);
		}
		char **v = f ? realloc(tree.files, (tree.nfiles + 1) * sizeof(char *)) : NULL;
		if (!v) {
			free(f);
			break;
		}
		tree.files = v;
		tree.files[tree.nfiles++] = f;
	}
}

int agent_boot__tree_files(struct wire_buf *b, const uint8_t *p, const uint8_t *end)
{
	struct wire_tree_files m;
	if (wire_msg__decode_tree_files(p, end, &m))
		return -EINVAL;
	/* Only this (agent) thread registers, once. */
	if (!tree.atfork && pthread_atfork(tree_prepare, tree_parent, tree_child) == 0)
		tree.atfork = true;
	pthread_mutex_lock(&tree.lock);
	tree_files_set(&m);
	uint32_t n = (uint32_t)tree.nfiles;
	pthread_mutex_unlock(&tree.lock);
	agent__log("tree: %u file(s) reported to %s by later forks", n, m.sock);
	wire_msg__encode_tree_files_result(b, n);
	return 0;
}

/* A debug build (Py_DEBUG: python3.11-dbg) exports _Py_RefTotal; its
 * default allocators carry the debug hooks from the start. */
static bool py_debug_build(void)
{
	return dlsym(RTLD_DEFAULT, "_Py_RefTotal") != NULL;
}

/* Whether the interpreter's raw allocator will carry the memory debug
 * hooks once pre-initialized (Python/preconfig.c, Objects/obmalloc.c in
 * 3.11): a PYTHONMALLOC ending in "debug" (any other value: none), else -X
 * dev or PYTHONDEVMODE, else the build's default; -E and -I make the
 * variables ignored. Read from our own command line (/proc/self/cmdline:
 * the interpreter's options come before the script, -c or -m) and
 * environment. */
static bool debug_hooks_ahead(void)
{
	char cmd[4096];
	bool ignore_env = false, dev = false;
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, cmd, sizeof(cmd) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n > 0) {
		cmd[n] = 0;
		const char *end = cmd + n;
		const char *a = cmd + strlen(cmd) + 1; /* past argv[0] */
		for (; a < end && a[0] == '-' && a[1] && strcmp(a, "--"); a += strlen(a) + 1) {
			if (a[1] == '-')
				continue; /* --check-hash-based-pycs MODE: MODE is no option */
			bool stop = false;
			for (const char *c = a + 1; *c && !stop; c++) {
				if (*c == 'E' || *c == 'I') {
					ignore_env = true;
				} else if (*c == 'X' || *c == 'W') {
					const char *v = c[1] ? c + 1 : a + strlen(a) + 1;
					if (!c[1])
						a = v < end ? v
							    : end - 1; /* the value is the next word */
					if (*c == 'X' && v < end && !strcmp(v, "dev"))
						dev = true;
					break;
				} else if (*c == 'c' || *c == 'm') {
					stop = true;
				}
			}
			if (stop)
				break;
		}
	}
	const char *m = ignore_env ? NULL : getenv("PYTHONMALLOC");
	const char *d = ignore_env ? NULL : getenv("PYTHONDEVMODE");
	if (m && *m) {
		size_t l = strlen(m);
		return l >= 5 && !strcmp(m + l - 5, "debug");
	}
	return dev || (d && *d) || py_debug_build();
}

static void *raw_malloc(void *ctx, size_t n)
{
	(void)ctx;
	return malloc(n ? n : 1);
}
static void *raw_calloc(void *ctx, size_t k, size_t n)
{
	(void)ctx;
	return calloc(k && n ? k : 1, k && n ? n : 1);
}
static void *raw_realloc(void *ctx, void *p, size_t n)
{
	(void)ctx;
	return realloc(p, n ? n : 1);
}
static void raw_free(void *ctx, void *p)
{
	(void)ctx;
	free(p);
}

/* Make the raw allocator now what it will be after the pre-initialization
 * (see the caller): the debug hooks over the defaults, or plain malloc. */
static void raw_allocator_as_ahead(void)
{
	bool want = debug_hooks_ahead(), have = py_debug_build();
	if (want == have || !PyMem_SetupDebugHooks || !PyMem_SetAllocator)
		return;
	if (want) {
		PyMem_SetupDebugHooks();
	} else {
		PyMemAllocatorEx a = { NULL, raw_malloc, raw_calloc, raw_realloc, raw_free };
		PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &a);
	}
}

__attribute__((constructor)) static void boot_ctor(void)
{
	const char *fdv = getenv("SUTURE_AGENT_BOOT_FD");
	const char *list = getenv("SUTURE_AGENT_BOOT");
	if (!fdv && !list)
		return; /* the usual case: never touch the environment (a remote
			   * dlopen runs us while other threads may read it) */
	/* Python's symbols are weak in the agent: in a process that is not
	 * the interpreter (a wrapper or `env` that will exec it) leave the
	 * variables and the descriptor for the interpreter it starts. */
	if (!Py_IsInitialized || !PySys_AddAuditHook)
		return;
	if (!fdv || !list) {
		unsetenv("SUTURE_AGENT_BOOT_FD");
		unsetenv("SUTURE_AGENT_BOOT");
		unsetenv(WIRE_BOOT_ENV_IMAGE_FD);
		return;
	}
	char *end;
	long fd = strtol(fdv, &end, 10);
	if (*end || fd < 0 || fd > INT_MAX || fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0)
		fd = -1;
	boot.list_path = strdup(list);
	const char *imgv = getenv(WIRE_BOOT_ENV_IMAGE_FD);
	if (imgv) {
		long ifd = strtol(imgv, &end, 10);
		if (!*end && ifd >= 0 && ifd <= INT_MAX && ifd != fd &&
		    fcntl((int)ifd, F_SETFD, FD_CLOEXEC) == 0)
			boot.image_fd = (int)ifd;
		unsetenv(WIRE_BOOT_ENV_IMAGE_FD);
	}
	unsetenv("SUTURE_AGENT_BOOT_FD");
	unsetenv("SUTURE_AGENT_BOOT");
	if (fd < 0 || getenv("SUTURE_AGENT_NO_START")) {
		if (fd >= 0)
			close((int)fd);
		if (boot.image_fd >= 0)
			close(boot.image_fd);
		boot.image_fd = -1;
		agent__start_deferred(); /* no hook will */
		return;
	}
	/* The agent thread may be looking already (agent_boot__active). */
	__atomic_store_n(&boot.fd, (int)fd, __ATOMIC_RELEASE);
	pthread_atfork(NULL, NULL, boot_child);
	/* The hook's entry is allocated now with the raw allocator of this
	 * moment (Python/sysmodule.c) and freed at the interpreter's end with
	 * the raw allocator of then (_PySys_ClearAuditHooks). When the
	 * pre-initialization will change it (-X dev, PYTHONMALLOC), the change
	 * is made first, or the free of a block the other allocator made is a
	 * fatal "bad ID" (or glibc's "invalid pointer") at exit: the debug
	 * hooks over the defaults as the pre-initialization installs them (a
	 * second setup keeps them), or plain malloc as PYTHONMALLOC=malloc's. */
	raw_allocator_as_ahead();
	if (PySys_AddAuditHook(boot_hook, NULL) < 0) {
		boot_off();
		agent__start_deferred(); /* no hook will */
	}
}
