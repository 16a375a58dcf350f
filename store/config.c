/* The store's configuration: config.json next to index.json, written by the
 * user, read by suture-run and suture-attach --watch (docs/formats/store.md,
 * "config.json"). Only read, through the same checks as every store file
 * (store_file__open: no link, no FIFO, a regular file of the caller or
 * root, not writable by others); nothing in it is ever executed. */
#include "store/store-priv.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX (64 * 1024)

static int bad(char *err, size_t errlen, const char *path, const char *why)
{
	snprintf(err, errlen, "store: %s: %s", path, why);
	return -EBADMSG;
}

int store_config__app_paths(struct store *s, char *out, size_t cap, char *err, size_t errlen)
{
	char path[4096 + 16];
	struct stat st;
	char *text = NULL;
	cJSON *doc = NULL;
	int fd = -1, rc;
	size_t used = 0;

	out[0] = 0;
	err[0] = 0;
	snprintf(path, sizeof(path), "%s/" STORE_CONFIG, store__path(s));
	rc = store_file__open(s, store__fd(s), STORE_CONFIG, path, &fd, &st);
	if (rc == -ENOENT)
		return 0; /* no configuration: nothing added */
	if (rc) {
		snprintf(err, errlen, "%s", store__error(s));
		return rc;
	}
	if (st.st_size > CONFIG_MAX) {
		rc = bad(err, errlen, path, "larger than 64 KiB");
		goto out;
	}
	if (!(text = malloc((size_t)st.st_size + 1))) {
		rc = -ENOMEM;
		snprintf(err, errlen, "store: %s: out of memory", path);
		goto out;
	}
	ssize_t n = read(fd, text, (size_t)st.st_size);
	if (n != st.st_size) {
		rc = bad(err, errlen, path, "short read");
		goto out;
	}
	text[n] = 0;
	if (memchr(text, 0, (size_t)n) || !(doc = cJSON_Parse(text)) || !cJSON_IsObject(doc)) {
		rc = bad(err, errlen, path, "not a JSON object");
		goto out;
	}
	for (cJSON *k = doc->child; k; k = k->next)
		if (strcmp(k->string, "app_paths") != 0) {
			rc = bad(err, errlen, path, "unknown key (only \"app_paths\" is known)");
			goto out;
		}
	cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "app_paths");
	if (paths && !cJSON_IsArray(paths)) {
		rc = bad(err, errlen, path, "\"app_paths\" is not an array of strings");
		goto out;
	}
	for (cJSON *p = paths ? paths->child : NULL; p; p = p->next) {
		const char *v = cJSON_IsString(p) ? p->valuestring : NULL;
		if (!v || v[0] != '/' || strchr(v, ':')) {
			rc = bad(err, errlen, path,
				 "\"app_paths\": each must be an absolute path without ':'");
			goto out;
		}
		size_t len = strlen(v);
		if (used + len + 2 > cap) {
			rc = -ENAMETOOLONG;
			snprintf(err, errlen, "store: %s: \"app_paths\" too long", path);
			goto out;
		}
		if (used)
			out[used++] = ':';
		memcpy(out + used, v, len + 1);
		used += len;
	}
	rc = 0;
out:
	if (rc)
		out[0] = 0;
	cJSON_Delete(doc);
	free(text);
	if (fd >= 0)
		close(fd);
	return rc;
}
