/* store/: display copies of original code objects. Format:
 * docs/formats/store.md ("Code files"). */
#include "store/code.h"
#include "store/store-priv.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bounds a file must respect (a real code object is far smaller). */
#define CODE_MAX_BYTES (1u << 24)
#define CODE_MAX_ITEMS (1u << 16)
#define CODE_MAX_FILE (64u << 20)

/* "<hex>.json" for a code id "fnv64:<16 hex>"; -EINVAL for any other id. */
static int file_name(const char *code_id, char *buf, size_t size)
{
	const char *hex = code_id;
	if (strncmp(hex, "fnv64:", 6) != 0)
		return -EINVAL;
	hex += 6;
	if (strlen(hex) != 16 || strspn(hex, "0123456789abcdef") != 16)
		return -EINVAL;
	int n = snprintf(buf, size, "%s.json", hex);
	return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
}

int store_code__path(const char *store_dir, const char *code_id, char *buf, size_t size)
{
	char name[32];
	int rc = file_name(code_id, name, sizeof(name));
	if (rc)
		return rc;
	int n = snprintf(buf, size, "%s/" STORE_CODE_DIR "/%s", store_dir, name);
	return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
}

static char *hex_of(const uint8_t *p, size_t n)
{
	static const char d[] = "0123456789abcdef";
	char *s = malloc(2 * n + 1);
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		s[2 * i] = d[p[i] >> 4];
		s[2 * i + 1] = d[p[i] & 15];
	}
	s[2 * n] = 0;
	return s;
}

static int add_hex(cJSON *o, const char *key, const uint8_t *p, size_t n)
{
	char *h = hex_of(p ? p : (const uint8_t *)"", p ? n : 0);
	int ok = h && cJSON_AddStringToObject(o, key, h);
	free(h);
	return ok ? 0 : -1;
}

static int add_str(cJSON *o, const char *key, const char *v)
{
	return cJSON_AddStringToObject(o, key, v ? v : "") ? 0 : -1;
}

char *store_code__encode(const char *code_id, const struct rewrite_code_info *in)
{
	cJSON *o = cJSON_CreateObject(), *a, *item;
	char *text = NULL;
	if (!o || !cJSON_AddNumberToObject(o, "format", STORE_CODE_FORMAT) ||
	    add_str(o, "code_id", code_id) || add_str(o, "filename", in->filename) ||
	    add_str(o, "name", in->name) || add_str(o, "qualname", in->qualname) ||
	    !cJSON_AddNumberToObject(o, "firstlineno", in->firstlineno) ||
	    !cJSON_AddNumberToObject(o, "stacksize", in->stacksize) ||
	    !cJSON_AddNumberToObject(o, "flags", in->flags) ||
	    !cJSON_AddNumberToObject(o, "argcount", in->argcount) ||
	    !cJSON_AddNumberToObject(o, "posonlyargcount", in->posonlyargcount) ||
	    !cJSON_AddNumberToObject(o, "kwonlyargcount", in->kwonlyargcount) ||
	    !cJSON_AddNumberToObject(o, "nlocals", in->nlocals) ||
	    add_hex(o, "code", in->code, in->code_len) ||
	    add_hex(o, "exceptiontable", in->exctable, in->exctable_len) ||
	    add_hex(o, "linetable", in->linetable, in->linetable_len) ||
	    !(a = cJSON_AddArrayToObject(o, "names")))
		goto out;
	for (size_t i = 0; i < in->nnames; i++)
		if (!(item = cJSON_CreateString(in->names[i] ? in->names[i] : "")) ||
		    !cJSON_AddItemToArray(a, item))
			goto out;
	if (!(a = cJSON_AddArrayToObject(o, "localsplus")))
		goto out;
	for (int i = 0; i < in->nlocalsplus; i++) {
		cJSON *pair = cJSON_CreateArray();
		if (!pair || !cJSON_AddItemToArray(a, pair) ||
		    !(item = cJSON_CreateString(in->localsplusnames[i] ? in->localsplusnames[i]
								       : "")) ||
		    !cJSON_AddItemToArray(pair, item) ||
		    !(item = cJSON_CreateNumber(in->localspluskinds ? in->localspluskinds[i]
								    : 0)) ||
		    !cJSON_AddItemToArray(pair, item))
			goto out;
	}
	if (!(a = cJSON_AddArrayToObject(o, "consts")))
		goto out;
	for (size_t i = 0; i < in->nconsts; i++) {
		cJSON *pair = cJSON_CreateArray();
		const struct rewrite_const *c = &in->consts[i];
		if (!pair || !cJSON_AddItemToArray(a, pair) ||
		    !(item = cJSON_CreateString(c->type ? c->type : "")) ||
		    !cJSON_AddItemToArray(pair, item) ||
		    !(item = cJSON_CreateString(c->repr ? c->repr : "")) ||
		    !cJSON_AddItemToArray(pair, item))
			goto out;
	}
	text = cJSON_PrintUnformatted(o);
out:
	cJSON_Delete(o);
	return text;
}

int store_code__save(struct store *s, const char *code_id, const struct rewrite_code_info *info)
{
	char name[32], dir[PATH_MAX];
	int dfd = -1, rc = file_name(code_id, name, sizeof(name));
	char *text = NULL;

	if (rc)
		return rc;
	if (snprintf(dir, sizeof(dir), "%s/" STORE_CODE_DIR, store__path(s)) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	/* code/ gets the store directory's checks, relative to its checked
	 * descriptor: a link or another user's directory there is refused. */
	if ((rc = store_dir__open(s, store__fd(s), STORE_CODE_DIR, dir, true, &dfd)))
		return rc;
	if (!(text = store_code__encode(code_id, info))) {
		rc = -ENOMEM;
		goto out;
	}
	rc = store_file__replace(s, dfd, dir, name, text, strlen(text), NULL);
out:
	free(text);
	close(dfd);
	return rc;
}

/* Everything a loaded info points to. */
struct code_mem {
	char *filename, *name, *qualname;
	uint8_t *code, *exctable, *linetable, *kinds;
	char **names, **lpnames, **cstrs; /* cstrs: 2 per constant */
	size_t nnames, nlp, nconsts;
	struct rewrite_const *consts;
};

static void mem_free(struct code_mem *m)
{
	if (!m)
		return;
	for (size_t i = 0; m->names && i < m->nnames; i++)
		free(m->names[i]);
	for (size_t i = 0; m->lpnames && i < m->nlp; i++)
		free(m->lpnames[i]);
	for (size_t i = 0; m->cstrs && i < 2 * m->nconsts; i++)
		free(m->cstrs[i]);
	free(m->filename);
	free(m->name);
	free(m->qualname);
	free(m->code);
	free(m->exctable);
	free(m->linetable);
	free(m->kinds);
	free(m->names);
	free(m->lpnames);
	free(m->cstrs);
	free(m->consts);
	free(m);
}

void store_code__free(struct store_code *c)
{
	if (!c)
		return;
	mem_free(c->mem);
	memset(c, 0, sizeof(*c));
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int get_hex(const cJSON *o, const char *key, uint8_t **out, size_t *len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsString(v))
		return -1;
	size_t n = strlen(v->valuestring);
	if (n % 2 || n / 2 > CODE_MAX_BYTES || !(*out = malloc(n / 2 + 1)))
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(v->valuestring[2 * i]), lo = hexval(v->valuestring[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		(*out)[i] = (uint8_t)(hi << 4 | lo);
	}
	*len = n / 2;
	return 0;
}

static int get_int(const cJSON *o, const char *key, int *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(v) || v->valuedouble < -2147483648.0 || v->valuedouble > 2147483647.0)
		return -1;
	*out = (int)v->valuedouble;
	return 0;
}

static int get_str(const cJSON *o, const char *key, char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return (cJSON_IsString(v) && (*out = strdup(v->valuestring))) ? 0 : -1;
}

int store_code__decode(const char *p, const char *end, const char *code_id, struct store_code *out)
{
	struct code_mem *m = calloc(1, sizeof(*m));
	struct rewrite_code_info *in = &out->info;
	cJSON *o = cJSON_ParseWithLength(p, (size_t)(end - p));
	const cJSON *a, *item;
	int v, flags;
	size_t n;

	memset(out, 0, sizeof(*out));
	/* A NUL inside a JSON string (\u0000) would end it early for every C
	 * string read from it: such a file is refused, not read short. */
	if (!m || !o || memmem(p, (size_t)(end - p), "\\u0000", 6) || get_int(o, "format", &v) ||
	    v != STORE_CODE_FORMAT)
		goto bad;
	item = cJSON_GetObjectItemCaseSensitive(o, "code_id");
	if (!cJSON_IsString(item) || strcmp(item->valuestring, code_id) != 0)
		goto bad;
	if (get_str(o, "filename", &m->filename) || get_str(o, "name", &m->name) ||
	    get_str(o, "qualname", &m->qualname) || get_int(o, "firstlineno", &in->firstlineno) ||
	    get_int(o, "stacksize", &in->stacksize) || get_int(o, "flags", &flags) ||
	    get_int(o, "argcount", &in->argcount) ||
	    get_int(o, "posonlyargcount", &in->posonlyargcount) ||
	    get_int(o, "kwonlyargcount", &in->kwonlyargcount) ||
	    get_int(o, "nlocals", &in->nlocals) || get_hex(o, "code", &m->code, &in->code_len) ||
	    get_hex(o, "exceptiontable", &m->exctable, &in->exctable_len) ||
	    get_hex(o, "linetable", &m->linetable, &in->linetable_len) || in->code_len == 0 ||
	    in->code_len % 2 || in->stacksize < 0 || flags < 0)
		goto bad;
	in->flags = (uint32_t)flags;
	a = cJSON_GetObjectItemCaseSensitive(o, "names");
	if (!cJSON_IsArray(a) || (n = (size_t)cJSON_GetArraySize(a)) > CODE_MAX_ITEMS ||
	    !(m->names = calloc(n + 1, sizeof(char *))))
		goto bad;
	cJSON_ArrayForEach(item, a)
	{
		if (!cJSON_IsString(item) || !(m->names[m->nnames] = strdup(item->valuestring)))
			goto bad;
		m->nnames++;
	}
	a = cJSON_GetObjectItemCaseSensitive(o, "localsplus");
	if (!cJSON_IsArray(a) || (n = (size_t)cJSON_GetArraySize(a)) > CODE_MAX_ITEMS ||
	    !(m->lpnames = calloc(n + 1, sizeof(char *))) || !(m->kinds = calloc(n + 1, 1)))
		goto bad;
	cJSON_ArrayForEach(item, a)
	{
		const cJSON *nm = cJSON_GetArrayItem(item, 0), *k = cJSON_GetArrayItem(item, 1);
		if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 2 || !cJSON_IsString(nm) ||
		    !cJSON_IsNumber(k) || k->valuedouble < 0 || k->valuedouble > 255 ||
		    !(m->lpnames[m->nlp] = strdup(nm->valuestring)))
			goto bad;
		m->kinds[m->nlp++] = (uint8_t)k->valuedouble;
	}
	a = cJSON_GetObjectItemCaseSensitive(o, "consts");
	if (!cJSON_IsArray(a) || (n = (size_t)cJSON_GetArraySize(a)) > CODE_MAX_ITEMS ||
	    !(m->consts = calloc(n + 1, sizeof(*m->consts))) ||
	    !(m->cstrs = calloc(2 * n + 1, sizeof(char *))))
		goto bad;
	cJSON_ArrayForEach(item, a)
	{
		const cJSON *t = cJSON_GetArrayItem(item, 0), *r = cJSON_GetArrayItem(item, 1);
		if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 2 || !cJSON_IsString(t) ||
		    !cJSON_IsString(r))
			goto bad;
		m->nconsts++;
		if (!(m->cstrs[2 * m->nconsts - 2] = strdup(t->valuestring)) ||
		    !(m->cstrs[2 * m->nconsts - 1] = strdup(r->valuestring)))
			goto bad;
		m->consts[m->nconsts - 1].type = m->cstrs[2 * m->nconsts - 2];
		m->consts[m->nconsts - 1].repr = m->cstrs[2 * m->nconsts - 1];
	}
	in->filename = m->filename;
	in->name = m->name;
	in->qualname = m->qualname;
	in->code = m->code;
	in->exctable = m->exctable;
	in->linetable = m->linetable;
	in->nnames = m->nnames;
	in->names = (const char *const *)m->names;
	in->nlocalsplus = (int)m->nlp;
	in->localsplusnames = (const char *const *)m->lpnames;
	in->localspluskinds = m->kinds;
	in->nconsts = m->nconsts;
	in->consts = m->consts;
	out->mem = m;
	cJSON_Delete(o);
	return 0;
bad:
	cJSON_Delete(o);
	mem_free(m);
	memset(out, 0, sizeof(*out));
	return -EBADMSG;
}

int store_code__load(const struct store *s, const char *code_id, struct store_code *out)
{
	char name[32], dir[PATH_MAX], path[PATH_MAX + 32];
	struct stat st;
	char *text = NULL;
	int rc = file_name(code_id, name, sizeof(name));
	int dfd = -1, fd = -1;
	size_t done = 0;

	memset(out, 0, sizeof(*out));
	if (rc)
		return rc;
	if (snprintf(dir, sizeof(dir), "%s/" STORE_CODE_DIR, store__path(s)) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	/* Reported through the handle's print function; its message buffer is
	 * the only thing written (the handle is heap memory the caller passes
	 * as a read-only view: the store's state is untouched). */
	struct store *msgs = (struct store *)s;
	if ((rc = store_dir__open(msgs, store__fd(s), STORE_CODE_DIR, dir, false, &dfd)) ||
	    (rc = store_file__open(msgs, dfd, name, path, &fd, &st)))
		goto out;
	if (st.st_size > (off_t)CODE_MAX_FILE || !(text = malloc((size_t)st.st_size + 1))) {
		rc = -EBADMSG;
		goto out;
	}
	while (done < (size_t)st.st_size) {
		ssize_t r = read(fd, text + done, (size_t)st.st_size - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		done += (size_t)r;
	}
	rc = store_code__decode(text, text + done, code_id, out);
out:
	free(text);
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	return rc;
}
