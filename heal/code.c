/* heal: a live code object, read from outside, described as
 * rewrite/ wants it (struct rewrite_code_info).
 *
 * Constants become type/repr texts, as the codedump fixture writes them
 * (docs/formats/codedump.md): a code constant's repr is its qualname. The
 * texts feed guard_code__identity(), which must give the same hash in every
 * run of an unchanged program, so a frozenset (`x in {"a", "b"}`) is shown
 * with its items sorted: its iteration order follows string hashes, which
 * PYTHONHASHSEED randomizes.
 */
#include "heal/heal.h"
#include "inspect/inspect.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Bounds far above what the compiler produces for one code object. */
#define MAX_TABLE (1u << 20)
#define MAX_ITEMS (1u << 16)
#define NAME_MAX_TEXT 1024

void heal_code__free(struct heal_code *hc)
{
	if (!hc)
		return;
	free(hc->code);
	free(hc->exctable);
	free(hc->linetable);
	free(hc->kinds);
	if (hc->names)
		for (size_t i = 0; i < hc->info.nnames; i++)
			free(hc->names[i]);
	if (hc->lpnames)
		for (int i = 0; i < hc->info.nlocalsplus; i++)
			free(hc->lpnames[i]);
	if (hc->cstrs)
		for (size_t i = 0; i < 2 * hc->nconsts; i++)
			free(hc->cstrs[i]);
	free(hc->names);
	free(hc->lpnames);
	free(hc->cstrs);
	free(hc->consts);
	free(hc->const_addrs);
	memset(hc, 0, sizeof(*hc));
}

static int read_str_tuple(const struct inspect_reader *r, uint64_t addr, char ***out, size_t *n)
{
	uint64_t *items;
	int err = inspect_tuple__read(r, addr, MAX_ITEMS, &items, n);
	if (err)
		return err;
	char **v = calloc(*n + 1, sizeof(char *));
	if (!v) {
		free(items);
		return -ENOMEM;
	}
	char buf[NAME_MAX_TEXT];
	for (size_t i = 0; i < *n; i++) {
		if ((err = inspect_str__read(r, items[i], buf, sizeof(buf))))
			break;
		if (!(v[i] = strdup(buf))) {
			err = -ENOMEM;
			break;
		}
	}
	free(items);
	if (err) {
		for (size_t i = 0; i < *n; i++)
			free(v[i]);
		free(v);
		return err;
	}
	*out = v;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "frozenset({A, B})" -> the same with the pieces between ", " sorted.
 * Splitting the joined text on its separator gives the same multiset of
 * pieces whatever the item order, so the result is order-independent. */
static char *canonical_set_repr(const char *repr)
{
	const char *open = strchr(repr, '{');
	size_t len = strlen(repr);
	if (!open || len < 3 || repr[len - 1] != ')' || repr[len - 2] != '}')
		return strdup(repr);
	size_t head = (size_t)(open - repr) + 1;
	char *body = strndup(open + 1, len - 2 - head);
	char *out = malloc(len + 1);
	char **parts = calloc(len + 1, sizeof(char *));
	size_t np = 0;
	if (!body || !out || !parts) {
		free(body);
		free(out);
		free(parts);
		return NULL;
	}
	for (char *p = body;;) {
		char *sep = strstr(p, ", ");
		parts[np++] = p;
		if (!sep)
			break;
		*sep = 0;
		p = sep + 2;
	}
	qsort(parts, np, sizeof(char *), cmp_str);
	memcpy(out, repr, head);
	size_t at = head;
	for (size_t i = 0; i < np; i++) {
		size_t l = strlen(parts[i]);
		if (i) {
			memcpy(out + at, ", ", 2);
			at += 2;
		}
		memcpy(out + at, parts[i], l);
		at += l;
	}
	memcpy(out + at, "})", 3);
	free(body);
	free(parts);
	return out;
}

/* "<builtin_function_or_method at 0x7f...>" -> "<builtin_function_or_method>":
 * an address differs in every run, the identity must not. In place. */
static void strip_addresses(char *s)
{
	char *w = s;
	for (const char *p = s; *p;) {
		if (strncmp(p, " at 0x", 6) == 0) {
			const char *q = p + 6;
			while ((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f'))
				q++;
			if (q > p + 6) {
				p = q;
				continue;
			}
		}
		*w++ = *p++;
	}
	*w = 0;
}

static int read_consts(const struct inspect_reader *r, struct heal_code *hc)
{
	int err = inspect_tuple__read(r, hc->consts_obj, MAX_ITEMS, &hc->const_addrs, &hc->nconsts);
	if (err)
		return err;
	hc->consts = calloc(hc->nconsts + 1, sizeof(*hc->consts));
	hc->cstrs = calloc(2 * hc->nconsts + 1, sizeof(char *));
	if (!hc->consts || !hc->cstrs)
		return -ENOMEM;
	struct inspect_limits lim = { 3, 4096, 4096, 256, 1u << 20 };
	for (size_t i = 0; i < hc->nconsts; i++) {
		char type[64];
		uint64_t a = hc->const_addrs[i];
		char *repr = NULL;
		inspect_value__type_name(r, a, type, sizeof(type));
		if (strcmp(type, "code") == 0) {
			struct inspect_code c;
			if ((err = inspect_code__read(r, a, &c)))
				return err;
			repr = strdup(c.qualname);
		} else {
			struct inspect_str s = { 0 };
			if ((err = inspect_value__repr(r, a, &lim, &s))) {
				inspect_str__free(&s);
				return err;
			}
			repr = strcmp(type, "frozenset") == 0 ? canonical_set_repr(s.p ? s.p : "")
							      : strdup(s.p ? s.p : "");
			inspect_str__free(&s);
		}
		if (repr)
			strip_addresses(repr);
		hc->cstrs[2 * i] = strdup(type);
		hc->cstrs[2 * i + 1] = repr;
		if (!hc->cstrs[2 * i] || !repr)
			return -ENOMEM;
		hc->consts[i].type = hc->cstrs[2 * i];
		hc->consts[i].repr = repr;
	}
	return 0;
}

int heal_code__read(const struct inspect_reader *r, uint64_t addr, struct heal_code *hc)
{
	struct inspect_code c;
	size_t len, n;
	int err;

	memset(hc, 0, sizeof(*hc));
	if ((err = inspect_code__read(r, addr, &c)))
		return err;
	hc->addr = addr;
	hc->firstlineno = c.firstlineno;
	hc->flags = (uint32_t)c.flags;
	hc->consts_obj = c.consts;
	snprintf(hc->name, sizeof(hc->name), "%s", c.name);
	snprintf(hc->qualname, sizeof(hc->qualname), "%s", c.qualname);
	snprintf(hc->filename, sizeof(hc->filename), "%s", c.filename);

	struct rewrite_code_info *in = &hc->info;
	if ((err = inspect_code__units(r, &c, &hc->code, &len)))
		goto fail;
	in->code = hc->code;
	in->code_len = len;
	if ((err = inspect_bytes__read(r, c.exctable, MAX_TABLE, &hc->exctable,
				       &in->exctable_len)) ||
	    (err = inspect_bytes__read(r, c.linetable, MAX_TABLE, &hc->linetable,
				       &in->linetable_len)) ||
	    (err = inspect_bytes__read(r, c.localspluskinds, MAX_ITEMS, &hc->kinds, &n)))
		goto fail;
	in->exctable = hc->exctable;
	in->linetable = hc->linetable;
	if ((int)n != c.nlocalsplus) {
		err = -EINVAL;
		goto fail;
	}
	in->localspluskinds = hc->kinds;
	if ((err = read_str_tuple(r, c.names, &hc->names, &in->nnames)))
		goto fail;
	in->names = (const char *const *)hc->names;
	if ((err = read_str_tuple(r, c.localsplusnames, &hc->lpnames, &n)))
		goto fail;
	if ((int)n != c.nlocalsplus) {
		/* lpnames holds n entries; free() walks nlocalsplus of them. */
		in->nlocalsplus = (int)n;
		err = -EINVAL;
		goto fail;
	}
	in->localsplusnames = (const char *const *)hc->lpnames;
	in->nlocalsplus = c.nlocalsplus;
	if ((err = read_consts(r, hc)))
		goto fail;
	in->nconsts = hc->nconsts;
	in->consts = hc->consts;
	in->firstlineno = c.firstlineno;
	in->stacksize = c.stacksize;
	in->flags = (uint32_t)c.flags;
	in->argcount = c.argcount;
	in->posonlyargcount = c.posonlyargcount;
	in->kwonlyargcount = c.kwonlyargcount;
	in->nlocals = c.nlocals;
	in->filename = hc->filename;
	in->qualname = hc->qualname;
	in->name = hc->name;
	return 0;
fail:
	heal_code__free(hc);
	return err;
}
