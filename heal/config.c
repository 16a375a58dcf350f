/* heal: the application paths a session gives the agent: --app-path's and
 * those the store's config.json names (store_config__app_paths); which
 * store a command uses when none is named (store__locate). */
#include "heal/heal.h"
#include "store/store.h"
#include "wire/msg.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void quiet(const char *msg, void *ctx)
{
	(void)msg;
	(void)ctx;
}

int heal_config__app_paths(const char *store_dir, const char *cli, char **out, char *err,
			   size_t errlen)
{
	char conf[8192];
	struct store *st = NULL;
	int rc;

	*out = NULL;
	err[0] = 0;
	conf[0] = 0;
	rc = store__open_print(store_dir, STORE_F_RDONLY | STORE_F_LAZY, quiet, NULL, &st);
	if (rc == 0) {
		rc = store_config__app_paths(st, conf, sizeof(conf), err, errlen);
		store__close(st);
		if (rc)
			return rc;
	} else if (rc != -ENOENT) {
		/* A store that cannot be opened is reported where it is used. */
		conf[0] = 0;
	}
	size_t a = cli ? strlen(cli) : 0, b = strlen(conf);
	if (!a && !b)
		return 0;
	if (!(*out = malloc(a + b + 2))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(*out, a + b + 2, "%s%s%s", a ? cli : "", a && b ? ":" : "", conf);
	return 0;
}

int heal_config__heal_handled(const char *store_dir, const char *cli, char **out, char *err,
			      size_t errlen)
{
	char conf[8192];
	struct store *st = NULL;
	int rc;

	*out = NULL;
	err[0] = 0;
	conf[0] = 0;
	rc = store__open_print(store_dir, STORE_F_RDONLY | STORE_F_LAZY, quiet, NULL, &st);
	if (rc == 0) {
		rc = store_config__heal_handled(st, conf, sizeof(conf), err, errlen);
		store__close(st);
		if (rc)
			return rc;
	}
	size_t a = cli ? strlen(cli) : 0, b = strlen(conf);
	if (!a && !b)
		return 0;
	if (a + b + 1 >= WIRE_HEAL_HANDLED_MAX) {
		snprintf(err, errlen, "--heal-handled: the sites take over %d bytes",
			 WIRE_HEAL_HANDLED_MAX - 1);
		return -ENAMETOOLONG;
	}
	if (!(*out = malloc(a + b + 2))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(*out, a + b + 2, "%s%s%s", a ? cli : "", a && b ? "\n" : "", conf);
	return 0;
}

int heal_config__add_heal_handled(char **list, const char *arg, char *err, size_t errlen)
{
	const char *colon = strrchr(arg, ':');
	bool ok = colon && colon != arg && colon[1] && strlen(arg) <= WIRE_SITE_MAX;
	for (const char *p = colon ? colon + 1 : ""; ok && *p; p++)
		ok = *p >= '0' && *p <= '9';
	for (const unsigned char *p = (const unsigned char *)arg; ok && *p; p++)
		ok = *p > ' ' && *p != 0x7f;
	if (!ok) {
		snprintf(err, errlen,
			 "--heal-handled %s: expected a site as suture-audit lists it, "
			 "module.qualname:line",
			 arg);
		return -EINVAL;
	}
	size_t had = *list ? strlen(*list) : 0, len = had + strlen(arg) + 2;
	char *v = malloc(len);
	if (!v) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(v, len, "%s%s%s", had ? *list : "", had ? "\n" : "", arg);
	free(*list);
	*list = v;
	return 0;
}

int heal_config__add_app_path(char **list, const char *arg, char *err, size_t errlen)
{
	char real[PATH_MAX];
	if (!realpath(arg, real)) {
		snprintf(err, errlen, "--app-path %s: %s", arg, strerror(errno));
		return -errno;
	}
	if (strchr(real, ':')) {
		snprintf(err, errlen, "--app-path %s: a path with ':' cannot be listed", arg);
		return -EINVAL;
	}
	size_t had = *list ? strlen(*list) : 0, len = had + strlen(real) + 2;
	char *v = malloc(len);
	if (!v) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(v, len, "%s%s%s", had ? *list : "", had ? ":" : "", real);
	free(*list);
	*list = v;
	return 0;
}

const char *heal_config__store(const char *store_dir, const char *program, char *buf, size_t cap)
{
	const char *env = getenv(STORE_ENV);
	bool exists;
	if (store_dir)
		return store_dir;
	if (env && *env)
		return NULL; /* store__open takes $SUTURE_STORE */
	if (store__locate(program, buf, cap, &exists))
		return NULL; /* ./.suture, as before */
	(void)exists;
	return buf;
}

const char *heal_config__store_of_pid(pid_t pid, const char *store_dir, char *buf, size_t cap)
{
	char prog[PATH_MAX], link[64];
	if (store_dir)
		return store_dir;
	if (heal_program__of_pid(pid, prog, sizeof(prog)) || prog[0] != '/') {
		/* No script file (-c, an installed module): from the target's
		 * working directory. */
		snprintf(link, sizeof(link), "/proc/%d/cwd", (int)pid);
		ssize_t n = readlink(link, prog, sizeof(prog) - 3);
		if (n <= 0)
			return heal_config__store(NULL, NULL, buf, cap);
		memcpy(prog + n, "/.", 3);
	}
	return heal_config__store(NULL, prog, buf, cap);
}
