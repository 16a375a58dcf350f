/* store/: boot image files (docs/formats/boot-image.md), read and written
 * under the store's safety rules (docs/formats/store.md): the directory
 * and each file opened relative to a checked descriptor, never through a
 * symbolic link, owned by the caller or root and not writable by others;
 * written as the index is (a private temporary file, fsync, rename).
 *
 * The image's contents are wire/'s business (wire/image.c); here it is
 * bytes. What ties an image to the index is a hash of the index's bytes
 * (store__index_bytes_hash), computed without parsing them: 66 KB hash in
 * ~0.1 ms where cJSON's parse takes ~1.5 ms (docs/performance.md). The
 * counters running programs update (firings, handled crashes) are left
 * out of it: a guard that fires does not make the next run derive its
 * patches again.
 */
#include "store/store-priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMAGE_MAX (16u << 20) /* wire/image.h's WIRE_IMAGE_MAX */

/* A line the running programs' own bookkeeping rewrites, which no
 * derivation reads: a patch's "hits" and "last_hit", a handled crash's
 * "count" and "last_seen", each alone on its line as the index's writer
 * puts them (tabs, the key, a tab, an integer, a time or null, an
 * optional comma). Anything else, including these keys written any other
 * way, is hashed. */
static bool counter_line(const unsigned char *p, size_t n)
{
	static const struct {
		const char *key;
		bool time;
	} keys[] = { { "\"hits\":\t", false },
		     { "\"last_hit\":\t", true },
		     { "\"count\":\t", false },
		     { "\"last_seen\":\t", true } };
	size_t i = 0;
	while (i < n && p[i] == '\t')
		i++;
	/* Every key of ours starts with h, l or c. */
	if (i == 0 || n - i < 8 || p[i] != '"' ||
	    (p[i + 1] != 'h' && p[i + 1] != 'l' && p[i + 1] != 'c'))
		return false;
	if (n && p[n - 1] == ',')
		n--;
	for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
		size_t kl = strlen(keys[k].key);
		if (n - i < kl || memcmp(p + i, keys[k].key, kl))
			continue;
		const unsigned char *v = p + i + kl, *end = p + n;
		if (v == end)
			return false;
		if (!keys[k].time) {
			for (; v < end; v++)
				if (*v < '0' || *v > '9')
					return false;
			return true;
		}
		if (end - v == 4 && !memcmp(v, "null", 4))
			return true;
		if (end - v < 2 || *v != '"' || end[-1] != '"')
			return false;
		for (v++; v < end - 1; v++)
			if (!((*v >= '0' && *v <= '9') || *v == '-' || *v == ':' || *v == 'T' ||
			      *v == 'Z'))
				return false;
		return true;
	}
	return false;
}

/* FNV-1a's step over 8-byte words (and a last short one): a byte at a
 * time is a chain of 66 K multiplications for a 66 KB index. */
static uint64_t fnv_words(uint64_t h, const unsigned char *b, size_t n)
{
	uint64_t w;
	for (; n >= 8; b += 8, n -= 8) {
		memcpy(&w, b, 8);
		h = (h ^ w) * 0x100000001b3ull;
	}
	w = 0;
	memcpy(&w, b, n);
	return (h ^ w ^ ((uint64_t)n << 56)) * 0x100000001b3ull;
}

uint64_t store__index_bytes_hash(const void *data, size_t n)
{
	const unsigned char *p = data, *end = p + n;
	uint64_t h = 0xcbf29ce484222325ull;
	while (p < end) {
		const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p);
		if (!counter_line(p, len))
			h = fnv_words(h, p, len + (nl ? 1 : 0));
		p += len + (nl ? 1 : 0);
	}
	return h;
}

void store_image__name(const char *program, char *out, size_t cap)
{
	snprintf(out, cap, "boot-%016llx.img",
		 (unsigned long long)fnv_words(0xcbf29ce484222325ull,
					       (const unsigned char *)program, strlen(program)));
}

static void quiet(const char *msg, void *ctx)
{
	(void)msg;
	(void)ctx;
}

/* The whole of fd (a regular file of st->st_size bytes, at most max). */
static int read_whole(int fd, const struct stat *st, size_t max, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if (st->st_size < 0 || (uint64_t)st->st_size > max)
		return -EFBIG;
	size_t n = (size_t)st->st_size, got = 0;
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		return -ENOMEM;
	while (got < n) {
		ssize_t r = pread(fd, buf + got, n - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(buf);
			return r < 0 ? -errno : -EBADMSG; /* shorter than it said */
		}
		got += (size_t)r;
	}
	*out = buf;
	*len = n;
	return 0;
}

/* The index's hash now, from its bytes. */
static int index_hash(struct store *s, uint64_t *out)
{
	struct stat st;
	uint8_t *buf;
	size_t n;
	int fd, r = store_file__open(s, store__fd(s), "index.json", store__index_path(s), &fd, &st);
	if (r)
		return r;
	r = read_whole(fd, &st, STORE_INDEX_MAX, &buf, &n);
	close(fd);
	if (r)
		return r;
	*out = store__index_bytes_hash(buf, n);
	free(buf);
	return 0;
}

int store_image__read(const char *path, const char *name, struct store_image *out)
{
	struct store *s = NULL;
	struct stat st;
	memset(out, 0, sizeof *out);
	out->fd = -1;
	int r = store__open_print(path, STORE_F_RDONLY | STORE_F_LAZY, quiet, NULL, &s);
	if (r)
		return r;
	if ((r = store_file__open(s, store__fd(s), name, name, &out->fd, &st)) == 0 &&
	    (r = read_whole(out->fd, &st, IMAGE_MAX, &out->data, &out->len)) == 0)
		r = index_hash(s, &out->index_hash);
	store__close(s);
	if (r)
		store_image__free(out);
	return r;
}

void store_image__free(struct store_image *im)
{
	free(im->data);
	im->data = NULL;
	im->len = 0;
	if (im->fd >= 0)
		close(im->fd);
	im->fd = -1;
}

int store_image__write(const char *path, const char *name, uint64_t want, const uint8_t *data,
		       size_t len)
{
	struct store *s = NULL;
	uint64_t now = 0;
	if (len > IMAGE_MAX)
		return -EFBIG;
	int r = store__open_print(path, STORE_F_LAZY, quiet, NULL, &s);
	if (r)
		return r;
	if ((r = index_hash(s, &now)) == 0 && now != want)
		r = -ESTALE;
	if (r == 0)
		r = store_file__replace(s, store__fd(s), store__path(s), name, (const char *)data,
					len, NULL);
	store__close(s);
	return r;
}
