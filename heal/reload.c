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
	(void)o;
	free(frame);
	return 0;
}

int heal_reload__run(pid_t pid, char *const *files, size_t nfiles,
		     const struct heal_reload_opts *o, char *err, size_t errlen)
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
