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
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX (64 * 1024)

static int bad(char *err, size_t errlen, const char *path, const char *why)
{
	snprintf(err, errlen, "store: %s: %s", path, why);
	return -EBADMSG;
}

/* config.json parsed and its keys checked: *doc (NULL: no file), or
 * -errno with err. */
static int read_config(struct store *s, cJSON **doc, char *path, size_t pathcap, char *err,
		       size_t errlen)
{
	struct stat st;
	char *text = NULL;
	int fd = -1, rc;

	*doc = NULL;
	err[0] = 0;
	snprintf(path, pathcap, "%s/" STORE_CONFIG, store__path(s));
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
	if (memchr(text, 0, (size_t)n) || !(*doc = cJSON_Parse(text)) || !cJSON_IsObject(*doc)) {
		rc = bad(err, errlen, path, "not a JSON object");
		goto out;
	}
	for (cJSON *k = (*doc)->child; k; k = k->next)
		if (strcmp(k->string, "app_paths") != 0 && strcmp(k->string, "heal_handled") != 0) {
			rc = bad(err, errlen, path,
				 "unknown key (only \"app_paths\" and \"heal_handled\" are known)");
			goto out;
		}
	rc = 0;
out:
	if (rc) {
		cJSON_Delete(*doc);
		*doc = NULL;
	}
	free(text);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* A --heal-handled site: "module.qualname:line", printable ASCII or
 * UTF-8 without spaces or control bytes, a decimal line after the last
 * ':'. */
static bool site_ok(const char *v)
{
	const char *colon = strrchr(v, ':');
	if (!colon || colon == v || !colon[1] || strlen(v) > 383)
		return false;
	for (const char *p = colon + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

/* The strings of key, each checked by ok, joined with sep into out. */
static int config_list(struct store *s, const char *key, bool (*ok)(const char *), const char *rule,
		       char sep, char *out, size_t cap, char *err, size_t errlen)
{
	char path[4096 + 16], why[160];
	cJSON *doc = NULL;
	size_t used = 0;
	int rc;

	out[0] = 0;
	if ((rc = read_config(s, &doc, path, sizeof(path), err, errlen)) || !doc)
		return rc;
	cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, key);
	if (list && !cJSON_IsArray(list)) {
		snprintf(why, sizeof(why), "\"%s\" is not an array of strings", key);
		rc = bad(err, errlen, path, why);
		goto out;
	}
	for (cJSON *p = list ? list->child : NULL; p; p = p->next) {
		const char *v = cJSON_IsString(p) ? p->valuestring : NULL;
		if (!v || !ok(v)) {
			snprintf(why, sizeof(why), "\"%s\": each must be %s", key, rule);
			rc = bad(err, errlen, path, why);
			goto out;
		}
		size_t len = strlen(v);
		if (used + len + 2 > cap) {
			rc = -ENAMETOOLONG;
			snprintf(err, errlen, "store: %s: \"%s\" too long", path, key);
			goto out;
		}
		if (used)
			out[used++] = sep;
		memcpy(out + used, v, len + 1);
		used += len;
	}
	rc = 0;
out:
	if (rc)
		out[0] = 0;
	cJSON_Delete(doc);
	return rc;
}

static bool path_ok(const char *v)
{
	return v[0] == '/' && !strchr(v, ':');
}

int store_config__app_paths(struct store *s, char *out, size_t cap, char *err, size_t errlen)
{
	return config_list(s, "app_paths", path_ok, "an absolute path without ':'", ':', out, cap,
			   err, errlen);
}

int store_config__heal_handled(struct store *s, char *out, size_t cap, char *err, size_t errlen)
{
	return config_list(s, "heal_handled", site_ok,
			   "a site \"module.qualname:line\" without spaces", '\n', out, cap, err,
			   errlen);
}
