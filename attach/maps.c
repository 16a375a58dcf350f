/* attach/: /proc/PID/maps.
 *
 * Line format (proc(5)): "start-end perms offset dev inode [path]", numbers
 * in hex except the inode, the path padded with spaces and taken verbatim to
 * the end of the line (it may contain spaces and end in " (deleted)").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attach/attach-priv.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* At least one hex digit, at most 16; *pp advanced past them. */
static int parse_hex(const char **pp, const char *end, uint64_t *out)
{
	const char *p = *pp;
	uint64_t v = 0;
	int n = 0, d;

	while (p < end && (d = hexval(*p)) >= 0) {
		if (++n > 16)
			return -EINVAL;
		v = v << 4 | (uint64_t)d;
		p++;
	}
	if (n == 0)
		return -EINVAL;
	*pp = p;
	*out = v;
	return 0;
}

static int expect(const char **pp, const char *end, char c)
{
	if (*pp >= end || **pp != c)
		return -EINVAL;
	(*pp)++;
	return 0;
}

int attach_maps__parse_line(const char *p, const char *end, struct attach_map *out,
			    size_t *path_len)
{
	uint64_t dev_major, dev_minor;
	int i;

	memset(out, 0, sizeof(*out));
	out->path = "";
	*path_len = 0;
	if (!p || p > end)
		return -EINVAL;
	if (parse_hex(&p, end, &out->start) || expect(&p, end, '-') ||
	    parse_hex(&p, end, &out->end) || expect(&p, end, ' '))
		return -EINVAL;
	if (out->end < out->start)
		return -EINVAL;
	if (end - p < 4)
		return -EINVAL;
	for (i = 0; i < 4; i++) {
		static const char allowed[4][3] = { "r-", "w-", "x-", "ps" };
		if (!memchr(allowed[i], p[i], 2))
			return -EINVAL;
		out->perms[i] = p[i];
	}
	out->perms[4] = 0;
	p += 4;
	if (expect(&p, end, ' ') || parse_hex(&p, end, &out->offset) || expect(&p, end, ' ') ||
	    parse_hex(&p, end, &dev_major) || expect(&p, end, ':') ||
	    parse_hex(&p, end, &dev_minor) || expect(&p, end, ' '))
		return -EINVAL;
	/* inode, decimal */
	if (p >= end || *p < '0' || *p > '9')
		return -EINVAL;
	while (p < end && *p >= '0' && *p <= '9')
		p++;
	if (p < end && *p != ' ')
		return -EINVAL;
	while (p < end && *p == ' ')
		p++;
	if (p < end && *p != '\n') {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		out->path = p;
		*path_len = (size_t)((e ? e : end) - p);
	}
	return 0;
}

int attach_proc__refresh_maps(struct attach_proc *proc)
{
	char path[64];
	char *text = NULL, *line, *nl, *t;
	struct attach_map *maps = NULL, *m;
	size_t len = 0, cap = 0, n = 0, mcap = 0, plen;
	ssize_t got;
	int fd, err;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)proc->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno == ENOENT ? -ESRCH : -errno;
		return attach__fail(proc, err, "open %s: %s", path, strerror(-err));
	}
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 65536;
			t = realloc(text, cap + 1);
			if (!t) {
				err = -ENOMEM;
				goto fail;
			}
			text = t;
		}
		got = read(fd, text + len, cap - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			err = -errno;
			goto fail;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	close(fd);
	fd = -1;
	if (len == 0 && !attach__alive(proc->pid)) {
		err = -ESRCH;
		goto fail;
	}
	text[len] = 0;
	for (line = text; line < text + len; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(text + len - line));
		if (!nl)
			nl = text + len;
		if (n == mcap) {
			mcap = mcap ? mcap * 2 : 256;
			m = realloc(maps, mcap * sizeof(*maps));
			if (!m) {
				err = -ENOMEM;
				goto fail;
			}
			maps = m;
		}
		if (attach_maps__parse_line(line, nl, &maps[n], &plen)) {
			err = -EINVAL;
			goto fail;
		}
		if (plen) /* terminate the path in place: the newline */
			((char *)maps[n].path)[plen] = 0;
		n++;
	}
	free(proc->maps);
	free(proc->maps_text);
	proc->maps = maps;
	proc->maps_text = text;
	proc->nmaps = n;
	proc->maps_fresh = proc->seized;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	free(maps);
	free(text);
	return attach__fail(proc, err, "reading /proc/%d/maps: %s", (int)proc->pid,
			    strerror(-err));
}

size_t attach_proc__map_count(const struct attach_proc *proc)
{
	return proc->nmaps;
}

const struct attach_map *attach_proc__map(const struct attach_proc *proc, size_t i)
{
	return i < proc->nmaps ? &proc->maps[i] : NULL;
}
