/* attach/: the /proc/PID/maps line parser.
 *
 * Pure: no allocation, no libelf, nothing but attach.h, so the agent
 * compiles this file into the target (agent/module.mk, AGENT_EXTRA_SRC) to
 * read /proc/self/maps; attach_proc__refresh_maps (proc.c) reads the file.
 * Fuzzed by tests/fuzz/fuzz_attach_maps.c.
 *
 * Line format (proc(5)): "start-end perms offset dev inode [path]", numbers
 * in hex except the inode, the path padded with spaces and taken verbatim to
 * the end of the line (it may contain spaces and end in " (deleted)").
 */
#include <errno.h>
#include <string.h>

#include "attach/attach.h"

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
