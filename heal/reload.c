/* heal: suture-attach --pid N --reload FILE... (edit and continue).
 *
 * The debugger side of RELOAD (docs/design.md §10): read each file, send
 * its text with its real path, print the agent's verdict per function.
 * Nothing is compiled here: the target compiles the text with its own
 * interpreter (agent/reload.c), so the code objects are exactly what an
 * import would have made. The session is an auditor's (HELLO_CONTROL):
 * a reload may come while another suture-attach --watch is connected. */
#include "heal/heal-priv.h"
#include "inject/inject.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void store_quiet(const char *msg, void *ctx)
{
	(void)msg;
	(void)ctx;
}

/* The largest source sent (the agent's bound for a RELOAD frame). */
#define RELOAD_MAX_SOURCE ((4u << 20) - 8192)

static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	*out = NULL;
	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "heal: %s: %s", path,
			 fd < 0 ? strerror(errno) : "not a regular file");
		if (fd >= 0)
			close(fd);
		return -EBADF;
	}
	if ((size_t)st.st_size > RELOAD_MAX_SOURCE) {
		snprintf(err, errlen, "heal: %s: over %u bytes", path, RELOAD_MAX_SOURCE);
		close(fd);
		return -EBADF;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t n = 0;
	while (buf && n < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (!buf || n != (size_t)st.st_size) {
		free(buf);
		snprintf(err, errlen, "heal: %s: cannot read it", path);
		return -EBADF;
	}
	*out = buf;
	*len = n;
	return 0;
}

static const char *kind_word(uint32_t kind)
{
	switch (kind) {
	case WIRE_RELOAD_RELOADED:
		return "reloaded";
	case WIRE_RELOAD_REFUSED:
		return "refused";
	case WIRE_RELOAD_ADDED:
		return "added";
	default:
		return "not added";
	}
}

/* Whether a stored patch is in the reloaded unit qualname: the unit or
 * code nested in it. */
static bool in_unit(const char *patch_qualname, const char *unit)
{
	size_t n = strlen(unit);
	return !strncmp(patch_qualname, unit, n) &&
	       (patch_qualname[n] == 0 || patch_qualname[n] == '.');
}

/* Retire the store's patches of the functions res reloaded. */
static void supersede(struct inject_session *s, const char *real,
		      const struct wire_reload_result *res, const struct heal_reload_opts *o,
		      FILE *out)
{
	struct store *st = NULL;
	struct store_iter it;
	const struct store_patch *p;
	char program[PATH_MAX], file[PATH_MAX], reason[WIRE_NAME_MAX + 128], when[32];
	char **names = NULL;
	size_t n = 0;
	pid_t pid = inject_session__pid(s);

	if (!res->name[0] || heal_program__of_pid(pid, program, sizeof program))
		return;
	int rc = store__open_print(o->store_dir, 0, store_quiet, NULL, &st);
	if (rc == -ENOENT)
		return;
	if (rc) {
		fprintf(out,
			"[suture] warning: the store's patches of reloaded functions stay "
			"active: %s\n",
			st ? store__error(st) : strerror(-rc));
		store__close(st);
		return;
	}
	store_iter__init(&it, st, &(struct store_query){ .program = program });
	while ((p = store_iter__next(&it))) {
		struct wire_reload_iter ri;
		struct wire_reload_entry e;
		bool hit = false;
		if (p->status != STORE_STATUS_ACTIVE || !realpath(p->file, file) ||
		    strcmp(file, real))
			continue;
		wire_reload_iter__init(&ri, res);
		while (!hit && wire_reload_iter__next(&ri, &e) > 0)
			hit = e.kind == WIRE_RELOAD_RELOADED && in_unit(p->qualname, e.qualname);
		char **v = hit ? realloc(names, (n + 1) * sizeof *v) : NULL;
		if (v && (v[n] = strdup(p->name))) {
			names = v;
			n++;
		} else if (v) {
			names = v;
		}
	}
	store__format_time(store__now(), when, sizeof when);
	snprintf(reason, sizeof reason, "%s (pid %d, %s)", res->name, (int)pid, when);
	for (size_t i = 0; i < n; i++) {
		if (store__mark_superseded(st, names[i], reason))
			fprintf(out, "[suture] warning: %s stays active: %s\n", names[i],
				store__error(st));
		else
			fprintf(out, "[suture] superseded %s: its function was reloaded (%s)\n",
				names[i], res->name);
		free(names[i]);
	}
	free(names);
	store__close(st);
}

static int reload_one(struct inject_session *s, const char *file, const struct heal_reload_opts *o,
		      FILE *out, char *err, size_t errlen)
{
	char real[PATH_MAX], *src = NULL;
	size_t len = 0;
	uint8_t *frame = NULL;
	struct wire_reload_result res;
	struct wire_reload_iter it;
	struct wire_reload_entry e;
	int rc = read_file(file, &src, &len, err, errlen);
	if (rc)
		return rc;
	if (!realpath(file, real)) {
		snprintf(err, errlen, "heal: %s: %s", file, strerror(errno));
		free(src);
		return -EBADF;
	}
	rc = inject_session__reload(s, real, src, len, &res, &frame);
	free(src);
	if (rc) {
		snprintf(err, errlen, "%s", inject_session__error(s));
		return rc;
	}
	if (res.status) {
		if (res.status == -ENOENT)
			snprintf(err, errlen, "heal: pid %d: %s", (int)inject_session__pid(s),
				 res.message);
		else
			snprintf(err, errlen, "heal: pid %d: %s (target unchanged)",
				 (int)inject_session__pid(s), res.message);
		free(frame);
		return res.status;
	}
	wire_reload_iter__init(&it, &res);
	while (wire_reload_iter__next(&it, &e) > 0) {
		fprintf(out, "[suture] %s %s (%s:%u)", kind_word(e.kind), e.qualname, file, e.line);
		if (e.kind == WIRE_RELOAD_RELOADED)
			fprintf(out, ": %u function object(s) run the new code\n", e.nfunctions);
		else if (e.kind == WIRE_RELOAD_ADDED)
			fprintf(out, ": %s\n", e.detail);
		else
			fprintf(out, ": %s\n", e.detail);
	}
	fprintf(out, "[suture] pid %d: %s: %s\n", (int)inject_session__pid(s), file, res.message);
	supersede(s, real, &res, o, out);
	free(frame);
	return 0;
}

int heal_reload__run(pid_t pid, char *const *files, size_t nfiles, const struct heal_reload_opts *o,
		     char *err, size_t errlen)
{
	struct inspect_proc *ip = NULL;
	struct inject_session *s = NULL;
	struct inject_opts io = { .agent_path = o->agent_path, .control = true };
	FILE *out = o->out ? o->out : stdout;
	int rc;

	err[0] = 0;
	/* Every file is readable before the target is touched. */
	for (size_t i = 0; i < nfiles; i++) {
		char *src;
		size_t len;
		if ((rc = read_file(files[i], &src, &len, err, errlen)))
			return rc;
		free(src);
	}
	if ((rc = heal__check_target(pid, &ip, err, errlen)))
		goto out;
	if ((rc = inject_session__open(pid, &io, &s, err, errlen)))
		goto out;
	for (size_t i = 0; i < nfiles && rc == 0; i++)
		rc = reload_one(s, files[i], o, out, err, errlen);
out:
	fflush(out);
	inject_session__close(s);
	inspect_proc__close(ip);
	return rc;
}
