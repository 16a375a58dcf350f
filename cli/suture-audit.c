/* suture-audit: what the patch store holds, why, and how to take it back.
 *
 *   suture-audit [--store DIR] [--json]            table (or JSON) of patches
 *   suture-audit [--store DIR] explain [NAME]      plain-language account
 *   suture-audit [--store DIR] rollback NAME... | --all [--dry-run]
 *   suture-audit --pid N [--json]                  patches live in process N
 *   suture-audit --pid N rollback NAME... | --all  also from the process
 *
 * Exit codes are documented in docs/man/suture-audit.1 (EXIT STATUS).
 *
 * One file over 800 lines: one command's subcommands and their output
 * (table, JSON, explain, rollback, --pid); its logic is rewrite/'s and
 * store/'s.
 */
#include "attach/attach.h"
#include "inject/inject.h"
#include "rewrite/guard.h"
#include "store/code.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/exit.h"

static const char *prog = "suture-audit";

/* --quiet: the confirmations of list, rollback and renew ("no patches in
 * DIR", "removed NAME ...", "renewed NAME ...") are not printed; listings,
 * explanations and every error are. */
static bool quiet;

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;
	if (quiet)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

static void print_msg(const char *msg, void *ctx)
{
	(void)ctx;
	fprintf(stderr, "%s: %s\n", prog, msg);
}

/* Messages of the store's opening, held until it is known whether the
 * store is absent (a listing then prints an empty list, quietly); printed
 * at once after that. */
struct held_msgs {
	bool hold;
	char *text; /* lines, each ending with '\n' */
	size_t len;
};

static void print_msg_held(const char *msg, void *ctx)
{
	struct held_msgs *h = ctx;
	size_t n = strlen(prog) + strlen(msg) + 3;
	char *t = h->hold ? realloc(h->text, h->len + n + 1) : NULL;
	if (!t) {
		print_msg(msg, NULL);
		return;
	}
	h->text = t;
	h->len += (size_t)snprintf(t + h->len, n + 1, "%s: %s\n", prog, msg);
}

/* Print the held messages (to a terminal only, when quiet) and hold no more. */
static void held_msgs__release(struct held_msgs *h, bool quiet)
{
	if (h->text && (!quiet || isatty(STDERR_FILENO)))
		fputs(h->text, stderr);
	free(h->text);
	h->text = NULL;
	h->len = 0;
	h->hold = false;
}

/* The store directory as store__open_print() chooses it. */
static const char *store_dir_named(const char *dir)
{
	if (dir && *dir)
		return dir;
	if ((dir = getenv(STORE_ENV)) && *dir)
		return dir;
	return STORE_DEFAULT_DIR;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [--store DIR] [--json]\n"
		"       %s [--store DIR] explain [NAME]\n"
		"       %s [--store DIR] rollback NAME... | --all [--dry-run]\n"
		"       %s [--store DIR] renew NAME... [--ttl DAYS] [--dry-run]\n"
		"       %s --pid N [--json] | --pid N rollback NAME... | --all [--dry-run]\n"
		"\n"
		"Lists the patches suture stored (guards that keep crashing code running),\n"
		"explains them, and removes them; then the handled crashes (sites where the\n"
		"program's own catch-all caught a structural exception: not patched; heal one\n"
		"with suture-run/suture-attach --heal-handled SITE).\n"
		"\n"
		"  --store DIR   the store (default: $" STORE_ENV ", else the " STORE_DEFAULT_DIR
		" found from\n"
		"                the working directory up, as git finds .git)\n"
		"  --json        list as JSON: {\"patches\": [...]}\n"
		"  --all         rollback: every patch\n"
		"  --dry-run     rollback, renew: say what would be done, change nothing\n"
		"  --ttl DAYS    renew: the patch expires DAYS from now (default: its own TTL)\n"
		"  -p, --pid N   the patches live in process N (read from its suture agent);\n"
		"                with rollback, also give its functions their original code\n"
		"  -q, --quiet   list, rollback, renew: no confirmation lines (\"no patches\n"
		"                in DIR\", \"removed ...\", \"renewed ...\"); errors still print\n"
		"  -h, --help, -V, --version\n"
		"\n"
		"Exit: 0 ok (also listing where no store is), 1 store or agent error, 2 usage,\n"
		"3 no such process, 11 no agent in that process, 12 no such patch (or a name\n"
		"naming several), 15 no store (explain, rollback, renew), 16 agent too old,\n"
		"17 another debugger holds the agent: one table for every command, suture(7).\n",
		prog, prog, prog, prog, prog);
}

/* ---- formatting --------------------------------------------------------------- */

/* "3d4h", "5h12m", "7m", "30s". */
static void fmt_duration(int64_t secs, char *buf, size_t size)
{
	if (secs < 0)
		secs = 0;
	if (secs >= 86400)
		snprintf(buf, size, "%lldd%lldh", (long long)(secs / 86400),
			 (long long)(secs % 86400 / 3600));
	else if (secs >= 3600)
		snprintf(buf, size, "%lldh%lldm", (long long)(secs / 3600),
			 (long long)(secs % 3600 / 60));
	else if (secs >= 60)
		snprintf(buf, size, "%lldm", (long long)(secs / 60));
	else
		snprintf(buf, size, "%llds", (long long)secs);
}

/* The file as the user would type it: relative when under the working
 * directory. */
static const char *short_file(const char *file, const char *cwd)
{
	size_t n = cwd ? strlen(cwd) : 0;

	if (n > 1 && strncmp(file, cwd, n) == 0 && file[n] == '/' && file[n + 1])
		return file + n + 1;
	return file;
}

/* Display width: code points, not bytes (the store holds UTF-8). */
static size_t width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

#define NCOLS 10
static const char *const heads[NCOLS] = {
	"NAME",     "FUNCTION", "FILE:LINE", "GUARD", "TARGET",
	"FALLBACK", "AGE",      "TTL LEFT",  "HITS",  "STATUS",
};

struct row {
	char *cell[NCOLS];
};

static void row_free(struct row *r)
{
	for (int i = 0; i < NCOLS; i++)
		free(r->cell[i]);
}

/* Tabs (the only control byte the store lets through) would break columns. */
static char *cell_dup(const char *s)
{
	char *d = strdup(s);

	for (char *c = d; c && *c; c++)
		if (*c == '\t')
			*c = ' ';
	return d;
}

static int row_fill(struct row *r, const struct store_patch *p, int64_t now, const char *cwd)
{
	enum store_status st = store_patch__status(p, now);
	char buf[64];

	memset(r, 0, sizeof(*r));
	r->cell[0] = cell_dup(p->name);
	if (asprintf(&r->cell[1], "%s.%s", p->module, p->qualname) < 0)
		r->cell[1] = NULL;
	if (asprintf(&r->cell[2], "%s:%d", short_file(p->file, cwd), p->line) < 0)
		r->cell[2] = NULL;
	r->cell[3] = cell_dup(p->guard);
	r->cell[4] = cell_dup(p->target);
	r->cell[5] = cell_dup(p->fallback);
	fmt_duration(now - p->created, buf, sizeof(buf));
	r->cell[6] = strdup(buf);
	if (st == STORE_STATUS_EXPIRED)
		snprintf(buf, sizeof(buf), "-");
	else
		fmt_duration(store_patch__expires(p) - now, buf, sizeof(buf));
	r->cell[7] = strdup(buf);
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)p->hits);
	r->cell[8] = strdup(buf);
	r->cell[9] = strdup(store_patch__superseded_by(p) ? "superseded" : store_status__str(st));
	for (int i = 0; i < NCOLS; i++) {
		if (!r->cell[i]) {
			row_free(r);
			return -ENOMEM;
		}
	}
	return 0;
}

/* Colour on a terminal only, and never with NO_COLOR set (no-color.org). */
static bool use_colour(void)
{
	const char *nc = getenv("NO_COLOR");
	const char *term = getenv("TERM");
	return isatty(STDOUT_FILENO) && !(nc && *nc) && !(term && !strcmp(term, "dumb"));
}

/* The terminal's width when stdout is one (COLUMNS first), else 0: a pipe
 * or a file gets whole cells, for scripts. */
static size_t term_width(void)
{
	struct winsize ws;
	const char *c = getenv("COLUMNS");
	if (!isatty(STDOUT_FILENO))
		return 0;
	if (c && atoi(c) > 0)
		return (size_t)atoi(c);
	return ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col : 0;
}

/* Fit the line to cols: first the FUNCTION column goes (the name holds
 * it: module.qualname:line:guard; width 0, not printed), then the text
 * columns (name, file, target, fallback) narrow, the widest first, each
 * keeping at least 6 columns. */
static void fit_columns(size_t w[NCOLS], size_t cols)
{
	static const int narrowable[] = { 0, 2, 4, 5 };
	size_t total = 2 * (NCOLS - 1);
	for (int i = 0; i < NCOLS; i++)
		total += w[i];
	if (cols && total > cols) {
		total -= w[1] + 2;
		w[1] = 0;
	}
	while (cols && total > cols) {
		int widest = -1;
		for (size_t k = 0; k < sizeof(narrowable) / sizeof(narrowable[0]); k++) {
			int i = narrowable[k];
			if (w[i] > 6 && (widest < 0 || w[i] > w[widest]))
				widest = i;
		}
		if (widest < 0)
			break;
		w[widest]--;
		total--;
	}
}

/* A cell cut to n columns: its start and an ellipsis. */
static void put_cut(const char *s, size_t n)
{
	size_t cols = 0;
	if (width(s) <= n) {
		fputs(s, stdout);
		return;
	}
	for (; *s && cols + 1 < n; s++) {
		putchar(*s);
		if ((((unsigned char)s[1]) & 0xc0) != 0x80)
			cols++;
	}
	fputs("\u2026", stdout);
}

static void print_line(char *const cell[NCOLS], const size_t w[NCOLS])
{
	static const char *const colour[] = { [STORE_STATUS_ACTIVE] = "\033[32m",
					      [STORE_STATUS_STALE] = "\033[33m",
					      [STORE_STATUS_EXPIRED] = "\033[31m" };
	for (int i = 0; i < NCOLS; i++) {
		size_t shown = width(cell[i]) > w[i] ? w[i] : width(cell[i]);
		const char *c = NULL;
		if (!w[i])
			continue; /* left out to fit the terminal */
		if (i == NCOLS - 1 && use_colour())
			for (int st = STORE_STATUS_ACTIVE; st <= STORE_STATUS_EXPIRED; st++)
				if (!strcmp(cell[i], store_status__str((enum store_status)st)))
					c = colour[st];
		if (c)
			fputs(c, stdout);
		put_cut(cell[i], w[i]);
		if (c)
			fputs("\033[0m", stdout);
		if (i + 1 < NCOLS)
			printf("%*s", (int)(w[i] - shown + 2), "");
	}
	putchar('\n');
}

/* ---- handled crashes ---------------------------------------------------------- */

static int add_time(cJSON *o, const char *key, int64_t t);

/* One handled crash, from the store or a live agent. */
struct handled_row {
	const char *site, *type, *program; /* program: NULL live */
	uint64_t count;
	int64_t last; /* Unix seconds; 0 unknown */
};

/* The "handled crashes" section: what the program's own catch-all caught
 * (not patched), site, type, count, last seen. */
static void print_handled(const struct handled_row *v, size_t n, int64_t now, bool lead)
{
	size_t ws = 4, wt = 4;
	if (!n)
		return;
	for (size_t i = 0; i < n; i++) {
		if (width(v[i].site) > ws)
			ws = width(v[i].site);
		if (width(v[i].type) > wt)
			wt = width(v[i].type);
	}
	printf("%shandled crashes (the program's own catch-all caught them: not patched; heal "
	       "one with --heal-handled SITE):\n",
	       lead ? "\n" : "");
	printf("%-*s  %-*s  %8s  %s\n", (int)ws, "SITE", (int)wt, "TYPE", "COUNT", "LAST SEEN");
	for (size_t i = 0; i < n; i++) {
		char ago[32] = "?";
		if (v[i].last > 0) {
			fmt_duration(now > v[i].last ? now - v[i].last : 0, ago, sizeof(ago));
			strncat(ago, " ago", sizeof(ago) - strlen(ago) - 1);
		}
		printf("%-*s  %-*s  %8llu  %s\n", (int)ws, v[i].site, (int)wt, v[i].type,
		       (unsigned long long)v[i].count, ago);
	}
}

static void print_stored_handled(const struct store *s, int64_t now, bool lead)
{
	size_t n = store__handled_count(s);
	struct handled_row *v = n ? calloc(n, sizeof(*v)) : NULL;
	if (!v)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct store_handled *e = store__handled_at(s, i);
		v[i] = (struct handled_row){ e->site, e->exc_type, e->program, e->count,
					     e->last_seen };
	}
	print_handled(v, n, now, lead);
	free(v);
}

/* {"site", "type", "count", "last_seen", "program"?} into arr. */
static int handled_json(cJSON *arr, const struct handled_row *r)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "site", r->site) ||
	    !cJSON_AddStringToObject(o, "type", r->type) ||
	    !cJSON_AddNumberToObject(o, "count", (double)r->count) ||
	    add_time(o, "last_seen", r->last) ||
	    (r->program && !cJSON_AddStringToObject(o, "program", r->program)) ||
	    !cJSON_AddItemToArray(arr, o)) {
		cJSON_Delete(o);
		return -1;
	}
	return 0;
}

static int list_table(const struct store *s, int64_t now)
{
	size_t n = store__count(s), w[NCOLS], nstale = 0, nexpired = 0, nsuper = 0, k = 0;
	struct row *rows = calloc(n ? n : 1, sizeof(*rows));
	char *cwd = getcwd(NULL, 0);
	const struct store_patch *p;
	struct store_iter it;
	int rc = EXIT_OK;

	if (!rows) {
		fprintf(stderr, "%s: out of memory\n", prog);
		free(cwd);
		return EXIT_FAIL;
	}
	if (n == 0) {
		note("no patches in %s\n", store__path(s));
		print_stored_handled(s, now, true);
		goto out;
	}
	for (int i = 0; i < NCOLS; i++)
		w[i] = strlen(heads[i]);
	store_iter__init(&it, s, &(struct store_query){ .now = now });
	while ((p = store_iter__next(&it)) && k < n) {
		if (row_fill(&rows[k], p, now, cwd)) {
			fprintf(stderr, "%s: out of memory\n", prog);
			rc = EXIT_FAIL;
			goto out;
		}
		switch (store_patch__status(p, now)) {
		case STORE_STATUS_STALE:
			if (store_patch__superseded_by(p))
				nsuper++;
			else
				nstale++;
			break;
		case STORE_STATUS_EXPIRED:
			nexpired++;
			break;
		case STORE_STATUS_ACTIVE:
			break;
		}
		for (int i = 0; i < NCOLS; i++)
			if (width(rows[k].cell[i]) > w[i])
				w[i] = width(rows[k].cell[i]);
		k++;
	}
	fit_columns(w, term_width());
	print_line((char *const *)heads, w);
	for (size_t i = 0; i < k; i++)
		print_line(rows[i].cell, w);
	if (nexpired)
		printf("\n%zu expired: no longer applied, and the crash is reported, not healed "
		       "again. Fix the source, then: suture-audit rollback NAME; or keep the "
		       "patch: suture-audit renew NAME [--ttl DAYS]\n",
		       nexpired);
	if (nstale)
		printf("%s%zu stale: the code changed since the patch was made; never applied. "
		       "Remove: suture-audit rollback NAME\n",
		       nexpired ? "" : "\n", nstale);
	if (nsuper)
		printf("%s%zu superseded: the function's fixed source was reloaded into the process "
		       "(suture-attach --reload); never applied. Remove: suture-audit rollback NAME\n",
		       nexpired || nstale ? "" : "\n", nsuper);
	print_stored_handled(s, now, true);
out:
	for (size_t i = 0; i < k; i++)
		row_free(&rows[i]);
	free(rows);
	free(cwd);
	return rc;
}

static int add_time(cJSON *o, const char *key, int64_t t)
{
	char buf[32];

	if (t == 0 || store__format_time(t, buf, sizeof(buf)))
		return cJSON_AddNullToObject(o, key) ? 0 : -1;
	return cJSON_AddStringToObject(o, key, buf) ? 0 : -1;
}

static int add_opt(cJSON *o, const char *key, const char *v)
{
	return (v ? cJSON_AddStringToObject(o, key, v) : cJSON_AddNullToObject(o, key)) ? 0 : -1;
}

static cJSON *patch_json(const struct store_patch *p, int64_t now)
{
	enum store_status st = store_patch__status(p, now);
	int64_t left = store_patch__expires(p) - now;
	cJSON *o = cJSON_CreateObject(), *a;

	if (!o)
		return NULL;
	if (!cJSON_AddStringToObject(o, "name", p->name) ||
	    !cJSON_AddStringToObject(o, "function", p->qualname) ||
	    !cJSON_AddStringToObject(o, "module", p->module) ||
	    !cJSON_AddStringToObject(o, "file", p->file) ||
	    !cJSON_AddNumberToObject(o, "line", p->line) ||
	    !cJSON_AddNumberToObject(o, "first_line", p->first_line) ||
	    !cJSON_AddStringToObject(o, "guard", p->guard) ||
	    !cJSON_AddStringToObject(o, "target", p->target) ||
	    !cJSON_AddStringToObject(o, "fallback", p->fallback) ||
	    add_opt(o, "consumer", p->consumer) || add_opt(o, "consumer_kind", p->consumer_kind) ||
	    add_opt(o, "placement", p->placement) || add_time(o, "created", p->created) ||
	    !cJSON_AddNumberToObject(o, "ttl_days", p->ttl_days) ||
	    add_time(o, "expires", store_patch__expires(p)) ||
	    !cJSON_AddNumberToObject(o, "age_seconds", (double)(now - p->created)) ||
	    !cJSON_AddNumberToObject(o, "ttl_left_seconds", (double)(left > 0 ? left : 0)) ||
	    !cJSON_AddStringToObject(o, "status", store_status__str(st)) ||
	    add_opt(o, "stale_reason", p->stale_reason) ||
	    add_opt(o, "superseded_by", store_patch__superseded_by(p)) ||
	    !cJSON_AddNumberToObject(o, "hits", (double)p->hits) ||
	    add_time(o, "last_hit", p->last_hit) ||
	    !cJSON_AddStringToObject(o, "program", p->program) ||
	    !cJSON_AddStringToObject(o, "python_version", p->python_version) ||
	    add_opt(o, "build_id", p->build_id) ||
	    !cJSON_AddStringToObject(o, "code_id", p->code_id) ||
	    !(a = cJSON_AddObjectToObject(o, "anchor")) ||
	    !cJSON_AddNumberToObject(a, "offset", p->anchor_offset) ||
	    !cJSON_AddStringToObject(a, "window", p->anchor_window)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* Print root as one JSON document and free it; NULL (a failed build) is
 * reported as the allocation failure it is. */
static int print_json(cJSON *root)
{
	char *text = root ? cJSON_Print(root) : NULL;

	cJSON_Delete(root);
	if (!text) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return EXIT_FAIL;
	}
	printf("%s\n", text);
	free(text);
	return EXIT_OK;
}

static int list_json(const struct store *s, int64_t now)
{
	cJSON *root = cJSON_CreateObject(), *arr;
	const struct store_patch *p;
	struct store_iter it;

	if (!root || !(arr = cJSON_AddArrayToObject(root, "patches")))
		goto out;
	if (!s) /* no store: no patches */
		return print_json(root);
	store_iter__init(&it, s, &(struct store_query){ .now = now });
	while ((p = store_iter__next(&it))) {
		cJSON *o = patch_json(p, now);

		if (!o || !cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			goto out;
		}
	}
	/* Only when there are some: {"patches": []} stays what it was. */
	if (store__handled_count(s)) {
		cJSON *h = cJSON_AddArrayToObject(root, "handled");
		if (!h)
			goto out;
		for (size_t i = 0; i < store__handled_count(s); i++) {
			const struct store_handled *e = store__handled_at(s, i);
			struct handled_row r = { e->site, e->exc_type, e->program, e->count,
						 e->last_seen };
			if (handled_json(h, &r))
				goto out;
		}
	}
	return print_json(root);
out:
	cJSON_Delete(root);
	return print_json(NULL);
}

/* ---- explain ------------------------------------------------------------------- */

/* The guard kinds and consumers, and what to say about them, are rewrite/'s
 * tables (rewrite/guards.c); a spec carries the consumer's token
 * (consumer_kind, docs/formats/store.md) next to its text. */
static const struct guard_kind_info *guard_text(const char *kind)
{
	return guard_kind__info(guard_kind__by_name(kind));
}

static enum guard_consumer consumer_of(const struct store_patch *p)
{
	int c = guard_consumer__by_name(p->consumer_kind);

	return c >= 0 ? (enum guard_consumer)c : guard_consumer__of_text(p->consumer);
}

/* Print "  label:    text" wrapped at 79 columns, continuation lines
 * indented under the text. */
/* A space say() never breaks a line at (a command to copy stays whole). */
#define NBSP "\x1f"

static void say(const char *label, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const char *label, const char *fmt, ...)
{
	enum { INDENT = 12, COLS = 79 };
	char *text = NULL, *p, *word;
	size_t col;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	col = (size_t)printf("  %-*s", INDENT - 2, label);
	p = text;
	while ((word = strsep(&p, " "))) {
		size_t w = width(word);

		if (!*word)
			continue;
		if (col > INDENT && col + 1 + w > COLS) {
			printf("\n%*s", INDENT, "");
			col = INDENT;
		} else if (col > INDENT) {
			putchar(' ');
			col++;
		}
		for (const char *c = word; *c; c++)
			putchar(*c == NBSP[0] ? ' ' : *c);
		col += w;
	}
	putchar('\n');
	free(text);
}

/* The original and patched bytecode side by side, from the code file
 * heal saved with the patch (store/code.h): the guard is synthesized again
 * from that data, the way loading does from the live original. Display
 * only: nothing of it is installed. */
static void show_bytecode(const struct store *s, const struct store_patch *p)
{
	struct store_code c;
	struct guard_spec spec = { .guard = p->guard,
				   .anchor = p->anchor_offset,
				   .window = p->anchor_window };
	struct guard_decision d;
	struct guard_patch gp;
	struct rewrite_diag diag;
	int err = store_code__load(s, p->code_id, &c);

	if (err == -ENOENT || err == -EINVAL) {
		say("bytecode:",
		    "no saved original code for this patch (a store written before "
		    "code files were kept, or %s/%s/ was cleaned): the explanation above is "
		    "from the spec only",
		    store__path(s), STORE_CODE_DIR);
		return;
	}
	if (err) {
		say("bytecode:",
		    "the code file of %s is unreadable (%s): the explanation above "
		    "is from the spec only",
		    p->code_id, strerror(-err));
		return;
	}
	memset(&gp, 0, sizeof(gp));
	memset(&diag, 0, sizeof(diag));
	if (guard_spec__redecide(&c.info, &spec, &d, NULL)) {
		say("bytecode:",
		    "the saved original code does not yield this %s at unit %u "
		    "(the file does not match the spec)",
		    p->guard, p->anchor_offset);
	} else if ((err = guard__synthesize(&c.info, &d, &gp, &diag))) {
		say("bytecode:", "the guard could not be synthesized again: %s",
		    diag.msg[0] ? diag.msg : strerror(-err));
	} else {
		say("bytecode:",
		    "original (left) and patched (right), around the guarded "
		    "instruction at unit %u; then the appended block:",
		    d.anchor_unit);
		fflush(stdout);
		guard_patch__dis(&c.info, &gp, d.anchor_unit, 4, stdout);
		fflush(stdout);
	}
	guard_patch__release(&gp);
	store_code__free(&c);
}

static void explain_one(const struct store *s, const struct store_patch *p, int64_t now,
			const char *cwd)
{
	const struct guard_kind_info *g = guard_text(p->guard);
	enum guard_consumer consumer = consumer_of(p);
	enum store_status st = store_patch__status(p, now);
	char age[32], left[32], hit[32];
	int placement = guard_placement__by_name(p->placement);

	/* Older specs without a placement: what the guard kind and the consumer
	 * imply (redirect kinds; older analysers' "statement" consumer). */
	if (placement < 0 && g && g->redirect)
		placement = GUARD_PLACE_REDIRECT;
	else if (placement < 0 && consumer == GUARD_CONSUMER_STATEMENT)
		placement = GUARD_PLACE_STATEMENT;
	fmt_duration(now - p->created, age, sizeof(age));
	fmt_duration(store_patch__expires(p) - now, left, sizeof(left));
	printf("%s\n", p->name);
	say("where:", "%s.%s in %s:%d (function starts at line %d)", p->module, p->qualname,
	    short_file(p->file, cwd), p->line, p->first_line);
	if (placement == GUARD_PLACE_REDIRECT)
		/* Redirect guards (docs/design.md §7): a helper gets the operands. */
		say("what:",
		    "a %s on %s. The instruction is redirected to a helper that does "
		    "the same thing, except that where it would raise %s (%s) it gives %s, "
		    "then the function goes on. Every other case behaves as before.",
		    p->guard, p->target, g ? g->answers : "its error", g ? g->when : "?",
		    p->fallback);
	else if (placement == GUARD_PLACE_SKIP)
		say("what:",
		    "a %s on %s. When %s raises %s (%s), the guard catches it and "
		    "skips the rest of the statement on line %d, then the function goes on. Any "
		    "other exception, and the same error anywhere else, still propagates.",
		    p->guard, p->target, p->target, g ? g->answers : "its error", g ? g->when : "?",
		    p->line);
	else if (placement == GUARD_PLACE_STATEMENT)
		say("what:",
		    "a %s on %s. When %s raises %s (%s), the guard catches it and "
		    "finishes the statement on line %d with %s instead, then the function goes "
		    "on. Any other exception, and the same error anywhere else, still "
		    "propagates.",
		    p->guard, p->target, p->target, g ? g->answers : "its error", g ? g->when : "?",
		    p->line, p->fallback);
	else
		say("what:",
		    "a %s on %s. When %s raises %s (%s), the guard catches it at this "
		    "one instruction and uses %s instead, then the function goes on. Any other "
		    "exception, and the same error anywhere else, still propagates.",
		    p->guard, p->target, p->target, g ? g->answers : "its error", g ? g->when : "?",
		    p->fallback);
	if (p->consumer) {
		const char *ct = guard_consumer__explain(consumer);

		if (ct)
			say("safe?", "%s", ct);
		else
			say("safe?", "The value is consumed by: %s. Check that this accepts %s.",
			    p->consumer, p->fallback);
	} else {
		say("safe?",
		    "The patch does not record what consumes the value; check that the "
		    "code after line %d accepts %s.",
		    p->line, p->fallback);
	}
	if (strcmp(p->fallback, "None") == 0)
		say("", "Note: None has no attributes and cannot be indexed, added to or called; "
			"code that later does so with this value fails there instead.");
	else if (strcmp(p->fallback, "0") == 0 || strcmp(p->fallback, "0.0") == 0)
		say("", "Note: 0 is a number like any other: sums, averages and counts computed "
			"from it look valid but may be wrong.");
	else if (!strcmp(p->fallback, "\"\"") || !strcmp(p->fallback, "''") ||
		 !strcmp(p->fallback, "[]") || !strcmp(p->fallback, "{}") ||
		 !strcmp(p->fallback, "()"))
		say("", "Note: an empty value: loops over it do nothing and lookups in it fail.");
	switch (st) {
	case STORE_STATUS_ACTIVE:
		say("status:", "active: applied to %s (Python %s); made %s ago, expires in %s",
		    p->program, p->python_version, age, left);
		break;
	case STORE_STATUS_EXPIRED:
		say("status:",
		    "expired (made %s ago, TTL %u days): no longer applied; the crash "
		    "is reported, not healed again, until the patch is renewed "
		    "(suture-audit" NBSP "renew" NBSP "%s)",
		    age, p->ttl_days, p->name);
		break;
	case STORE_STATUS_STALE:
		if (store_patch__superseded_by(p))
			say("status:",
			    "superseded by the reload %s: the function's fixed source runs "
			    "in the process; never applied",
			    store_patch__superseded_by(p));
		else
			say("status:",
			    "stale: the code changed since the patch was made%s%s; never "
			    "applied",
			    p->stale_reason ? ": " : "", p->stale_reason ? p->stale_reason : "");
		break;
	}
	if (p->hits) {
		char t[32] = "an unrecorded time";

		if (p->last_hit)
			store__format_time(p->last_hit, t, sizeof(t));
		snprintf(hit, sizeof(hit), "%llu", (unsigned long long)p->hits);
		say("hits:", "the guard fired %s time(s) (healed that many crashes), last at %s",
		    hit, t);
	} else {
		say("hits:", "the guard never fired in a recorded run (loaded is not fired)");
	}
	say("fix:", "%s; then remove the patch: suture-audit" NBSP "rollback" NBSP "%s",
	    g ? g->fix : "fix the source", p->name);
	show_bytecode(s, p);
}

/* Whether word names patch p other than by its full name: its function
 * ("load"), qualified name ("Config.load"), module and qualified name
 * ("app.load"), or its name without the guard ("app.load:12"). */
static bool names_patch(const struct store_patch *p, const char *word)
{
	size_t mlen = strlen(p->module), wlen = strlen(word);
	const char *last = strrchr(p->qualname, '.');
	if (!strcmp(p->qualname, word) || (last && !strcmp(last + 1, word)))
		return true;
	if (wlen > mlen && !strncmp(word, p->module, mlen) && word[mlen] == '.' &&
	    !strcmp(word + mlen + 1, p->qualname))
		return true;
	return !strncmp(p->name, word, wlen) && p->name[wlen] == ':' &&
	       strchr(p->name + wlen + 1, ':') != NULL;
}

/* Each word a patch's full name, or the one patch it names otherwise
 * (names_patch); words replaced in place by malloc'ed full names. 0, or
 * EXIT_NO_PATCH after one line naming the word and what it matched. */
static int resolve_names(const struct store *s, char **words, int n, const char *verb)
{
	for (int i = 0; i < n; i++) {
		const struct store_patch *p, *one = NULL;
		struct store_iter it;
		size_t count = 0;
		char *list = NULL;
		size_t len = 0;
		if (store__find(s, words[i]))
			continue;
		FILE *mem = open_memstream(&list, &len);
		store_iter__init(&it, s, NULL);
		while ((p = store_iter__next(&it))) {
			if (!names_patch(p, words[i]))
				continue;
			if (mem && count < 4)
				fprintf(mem, "%s%s", count ? ", " : "", p->name);
			one = p;
			count++;
		}
		if (mem)
			fclose(mem);
		if (count == 1 && (words[i] = strdup(one->name))) {
			free(list);
			continue;
		}
		if (count > 1)
			fprintf(stderr,
				"%s: \"%s\" names %zu patches (%s%s); nothing %s: give the full "
				"name\n",
				prog, words[i], count, list ? list : "", count > 4 ? ", ..." : "",
				verb);
		else
			fprintf(stderr,
				"%s: %s: no patch named \"%s\"; nothing %s (list them: "
				"suture-audit --store %s)\n",
				prog, store__path(s), words[i], verb, store__path(s));
		free(list);
		return EXIT_NO_PATCH;
	}
	return 0;
}

static int do_explain(const struct store *s, const char *name, int64_t now)
{
	char *cwd = getcwd(NULL, 0);
	const struct store_patch *p;
	struct store_iter it;
	int first = 1;

	if (name) {
		if (!(p = store__find(s, name))) {
			fprintf(stderr,
				"%s: %s: no patch named \"%s\" (list them: suture-audit "
				"--store %s)\n",
				prog, store__path(s), name, store__path(s));
			free(cwd);
			return EXIT_NO_PATCH;
		}
		explain_one(s, p, now, cwd);
		free(cwd);
		return EXIT_OK;
	}
	if (store__count(s) == 0)
		printf("no patches in %s\n", store__path(s));
	store_iter__init(&it, s, &(struct store_query){ .now = now });
	while ((p = store_iter__next(&it))) {
		if (!first)
			putchar('\n');
		first = 0;
		explain_one(s, p, now, cwd);
	}
	free(cwd);
	return EXIT_OK;
}

/* ---- rollback -------------------------------------------------------------------- */

static void describe(const char *verb, const struct store_patch *p)
{
	note("%s %s (%s on %s in %s.%s, %s:%d)\n", verb, p->name, p->guard, p->target, p->module,
	     p->qualname, p->file, p->line);
}

/* renew NAME... [--ttl DAYS]: an expired patch applies again (and a live
 * one lives longer): it expires DAYS (default: its own TTL) from now. */
static int do_renew(struct store *s, char **names, int nnames, unsigned ttl, int dry, int64_t now)
{
	for (int i = 0; i < nnames; i++) {
		if (!store__find(s, names[i])) {
			fprintf(stderr,
				"%s: %s: no patch named \"%s\"; nothing renewed (list them: "
				"suture-audit --store %s)\n",
				prog, store__path(s), names[i], store__path(s));
			return EXIT_NO_PATCH;
		}
	}
	for (int i = 0; i < nnames; i++) {
		const struct store_patch *p = store__find(s, names[i]);
		char until[32] = "?";
		if (!p)
			continue;
		if (p->status == STORE_STATUS_STALE) {
			fprintf(stderr,
				"%s: %s is stale (the code changed since it was made): renewing "
				"cannot make it apply; remove it: suture-audit rollback %s\n",
				prog, names[i], names[i]);
			return EXIT_FAIL;
		}
		unsigned days = ttl ? ttl : p->ttl_days;
		if (!dry) {
			if (store__renew(s, names[i], ttl, now))
				return EXIT_FAIL;
			if (!(p = store__find(s, names[i])))
				continue;
		}
		store__format_time(dry ? now + (int64_t)days * 86400 : store_patch__expires(p),
				   until, sizeof(until));
		note("%s %s: applies again until %s (%u days)\n", dry ? "would renew" : "renewed",
		     names[i], until, days);
	}
	return EXIT_OK;
}

static int do_rollback(struct store *s, char **names, int nnames, int all, int dry)
{
	const char *verb = dry ? "would remove" : "removed";
	const struct store_patch *p;
	struct store_iter it;
	size_t removed = 0;

	if (all) {
		if (store__count(s) == 0) {
			note("no patches in %s\n", store__path(s));
			return EXIT_OK;
		}
		store_iter__init(&it, s, NULL);
		while ((p = store_iter__next(&it)))
			describe(verb, p);
		if (dry)
			return EXIT_OK;
		if (store__remove_all(s, &removed))
			return EXIT_FAIL;
		note("%zu patch%s removed from %s\n", removed, removed == 1 ? "" : "es",
		     store__path(s));
		return EXIT_OK;
	}
	/* All names must exist before anything is removed. */
	for (int i = 0; i < nnames; i++) {
		if (!store__find(s, names[i])) {
			fprintf(stderr,
				"%s: %s: no patch named \"%s\"; nothing removed (list them: "
				"suture-audit --store %s)\n",
				prog, store__path(s), names[i], store__path(s));
			return EXIT_NO_PATCH;
		}
	}
	for (int i = 0; i < nnames; i++) {
		char *line = NULL;
		size_t len = 0;
		FILE *mem;
		int r;

		/* The patch's description must be taken before the removal
		 * invalidates it. */
		if (!(p = store__find(s, names[i])))
			continue; /* named twice */
		if (!(mem = open_memstream(&line, &len))) {
			fprintf(stderr, "%s: out of memory\n", prog);
			return EXIT_FAIL;
		}
		fprintf(mem, "%s on %s in %s.%s, %s:%d", p->guard, p->target, p->module,
			p->qualname, p->file, p->line);
		fclose(mem);
		if (!dry && (r = store__remove(s, names[i]))) {
			free(line);
			return r == -ENOENT ? EXIT_NO_PATCH : EXIT_FAIL;
		}
		note("%s %s (%s)\n", verb, names[i], line ? line : "");
		free(line);
	}
	return EXIT_OK;
}

/* ---- --pid: the live process ------------------------------------------------------ */

/* What the agent in process pid reports; stays NULL-safe for the store. */
struct live {
	long pid;
	struct inject_session *s;
	bool restarted; /* we restarted a detached agent: detach again */
	struct wire_live_patch *v;
	size_t n;
	char program[4096];            /* its main script ("" if none) */
	struct wire_handled_entry *hv; /* handled crashes so far (live_handled) */
	size_t nh;
};

/* The agent's handled crashes (HANDLED_LIST), for a listing only: an
 * agent older than this one does not know the frame and closes the
 * connection, so nothing else is asked after it. */
static void live_handled(struct live *l)
{
	if (inject_session__list_handled(l->s, &l->hv, &l->nh)) {
		l->hv = NULL;
		l->nh = 0;
	}
}

static void live_print_handled(const struct live *l, int64_t now)
{
	struct handled_row *v = l->nh ? calloc(l->nh, sizeof(*v)) : NULL;
	if (!v)
		return;
	for (size_t i = 0; i < l->nh; i++)
		v[i] = (struct handled_row){ l->hv[i].site, l->hv[i].exc_type, NULL, l->hv[i].count,
					     (int64_t)(l->hv[i].last_ms / 1000) };
	print_handled(v, l->nh, now, true);
	free(v);
}

/* Whether the agent library is mapped in pid (never inject one: auditing
 * must not change a process that suture never touched). */
static int agent_mapped(long pid)
{
	char path[64], line[4096];
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/maps", pid);
	if (!(f = fopen(path, "r")))
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "libsuture_agent")) {
			found = 1;
			break;
		}
	fclose(f);
	return found;
}

static int live_open(struct live *l, long pid)
{
	struct inject_opts o = { 0 };
	int r;

	memset(l, 0, sizeof(*l));
	l->pid = pid;
	if (kill((pid_t)pid, 0) && errno == ESRCH) {
		fprintf(stderr, "%s: --pid %ld: no such process\n", prog, pid);
		return EXIT_NO_PROCESS;
	}
	r = agent_mapped(pid);
	if (r == -ENOENT) {
		fprintf(stderr, "%s: --pid %ld: no such process\n", prog, pid);
		return EXIT_NO_PROCESS;
	}
	if (r < 0) {
		fprintf(stderr, "%s: --pid %ld: cannot read its memory map: %s\n", prog, pid,
			strerror(-r));
		return EXIT_NO_AGENT;
	}
	if (r == 0) {
		fprintf(stderr,
			"%s: --pid %ld: no suture agent in this process (nothing was "
			"healed in it live: run it under suture-run or suture-attach --watch)\n",
			prog, pid);
		return EXIT_NO_AGENT;
	}
	char why[512] = "";
	r = inject_session__open((pid_t)pid, &o, &l->s, why, sizeof(why));
	if (r == -EPROTO && strstr(why, "another debugger")) {
		/* suture-run or suture-attach --watch holds the agent: ask as an
		 * auditor (LIST, ROLLBACK only; the debugger stays attached). */
		o.control = true;
		r = inject_session__open((pid_t)pid, &o, &l->s, why, sizeof(why));
	}
	if (r) {
		if (r == -ESRCH || (kill((pid_t)pid, 0) && errno == ESRCH)) {
			fprintf(stderr, "%s: --pid %ld: no such process\n", prog, pid);
			return EXIT_NO_PROCESS;
		}
		fprintf(stderr, "%s: --pid %ld: %s%s\n", prog, pid, why,
			strstr(why, "another debugger") ? " (stop suture-run or suture-attach "
							  "--watch first; its patches stay)"
							: "");
		return strstr(why, "another debugger") ? EXIT_AGENT_BUSY : EXIT_NO_AGENT;
	}
	l->restarted = inject_session__how(l->s) == INJECT_HOW_RESTARTED;
	if ((r = inject_session__list(l->s, &l->v, &l->n))) {
		fprintf(stderr, "%s: --pid %ld: %s%s\n", prog, pid, inject_session__error(l->s),
			r == -EPROTO ? " (an agent older than this suture-audit: it cannot list)"
				     : "");
		return r == -EPROTO ? EXIT_AGENT_OLD : EXIT_FAIL;
	}
	if (attach_pid__script((pid_t)pid, l->program, sizeof(l->program)))
		l->program[0] = 0;
	return EXIT_OK;
}

static void live_close(struct live *l)
{
	/* A detached agent we restarted goes back to detached (watcher
	 * removed); one that was serving stays as it was. */
	if (l->s && l->restarted)
		inject_session__detach(l->s);
	inject_session__close(l->s);
	free(l->hv);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static const struct wire_live_patch *live_find(const struct live *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].meta.name, name) == 0)
			return &l->v[i];
	return NULL;
}

/* Stored patches that belong to the live process's program. */
static bool live_owns(const struct live *l, const struct store_patch *p)
{
	return l->program[0] && strcmp(p->program, l->program) == 0;
}

static const char *live_name(const struct wire_live_patch *e)
{
	return e->meta.name[0] ? e->meta.name : "(unnamed)";
}

static int live_table(const struct live *l, const struct store *s, int64_t now, bool stored_too)
{
	const struct store_patch *p;
	struct store_iter it;
	size_t nlive = 0, nstored_only = 0;

	size_t nreload = 0;

	printf("pid %ld%s%s\n", l->pid, l->program[0] ? ": " : "", l->program);
	for (size_t i = 0; i < l->n; i++) {
		const struct wire_live_patch *e = &l->v[i];
		const struct store_patch *sp = s && e->meta.name[0] ? store__find(s, e->meta.name)
								    : NULL;
		char age[32];
		int64_t t = (int64_t)(e->installed_ms / 1000);

		fmt_duration(now > t ? now - t : 0, age, sizeof(age));
		if (e->flags & WIRE_LIVE_F_RELOAD) {
			/* A reload (suture-attach --reload): one entry per function
			 * it switched, all under the reload's name. */
			bool first = i == 0 || !(l->v[i - 1].flags & WIRE_LIVE_F_RELOAD) ||
				     strcmp(l->v[i - 1].meta.name, e->meta.name) != 0;
			if (first)
				printf("reload  %s, %s ago; rollback restores the previous code in "
				       "every reference: %s --pid %ld rollback %s\n",
				       live_name(e), age, prog, l->pid, live_name(e));
			printf("        %s (%s:%u): %u function object(s) run it (%u at the "
			       "reload)%s\n",
			       e->qualname, e->filename, e->first_line, e->live_functions,
			       e->nfunctions,
			       (e->flags & WIRE_LIVE_F_STACKED) ? "; on top of an earlier change"
								: "");
			nreload++;
			continue;
		}
		printf("live    %s\n", live_name(e));
		printf("        %s on %s -> %s in %s (%s:%u)\n",
		       e->meta.guard[0] ? e->meta.guard : "?",
		       e->meta.target[0] ? e->meta.target : "?",
		       e->meta.fallback[0] ? e->meta.fallback : "?", e->qualname, e->filename,
		       e->first_line);
		printf("        installed %s ago; %u function(s) now run it (%u at install, %u "
		       "enclosing code object(s), %u suspended frame(s))%s\n",
		       age, e->live_functions, e->nfunctions, e->nparents, e->nframes,
		       (e->flags & WIRE_LIVE_F_STACKED) ? "; on top of another patch" : "");
		if (e->hits) {
			char last[32] = "?";
			store__format_time((int64_t)(e->last_hit_ms / 1000), last, sizeof(last));
			printf("        fired %llu time(s) in this process, last at %s\n",
			       (unsigned long long)e->hits, last);
		} else {
			printf("        never fired in this process\n");
		}
		if (!sp)
			printf("        not in the store%s: it will not be loaded again\n",
			       s ? "" : " (no store)");
		else
			printf("        stored: %s\n",
			       store_status__str(store_patch__status(sp, now)));
		nlive++;
	}
	if (s && stored_too) {
		store_iter__init(&it, s, &(struct store_query){ .now = now });
		while ((p = store_iter__next(&it))) {
			if (!live_owns(l, p) || live_find(l, p->name))
				continue;
			printf("stored  %s\n        %s on %s -> %s in %s.%s (%s:%d)\n        not live in "
			       "this process (%s)\n",
			       p->name, p->guard, p->target, p->fallback, p->module, p->qualname,
			       p->file, p->line, store_status__str(store_patch__status(p, now)));
			nstored_only++;
		}
	}
	if (stored_too)
		printf("%zu live patch%s, %zu stored but not live", nlive, nlive == 1 ? "" : "es",
		       nstored_only);
	else
		printf("%zu live patch%s", nlive, nlive == 1 ? "" : "es");
	if (nreload)
		printf(", %zu reloaded function%s", nreload, nreload == 1 ? "" : "s");
	printf("\n");
	return EXIT_OK;
}

static cJSON *live_json_one(const struct wire_live_patch *e, const struct store_patch *sp,
			    int64_t now)
{
	cJSON *o = cJSON_CreateObject();
	char addr[2][24];

	snprintf(addr[0], sizeof(addr[0]), "%#llx", (unsigned long long)e->orig_addr);
	snprintf(addr[1], sizeof(addr[1]), "%#llx", (unsigned long long)e->new_addr);
	if (!o ||
	    !(e->meta.name[0] ? cJSON_AddStringToObject(o, "name", e->meta.name)
			      : cJSON_AddNullToObject(o, "name")) ||
	    !cJSON_AddStringToObject(o, "function", e->qualname) ||
	    !cJSON_AddStringToObject(o, "file", e->filename) ||
	    !cJSON_AddNumberToObject(o, "first_line", e->first_line) ||
	    !cJSON_AddStringToObject(o, "guard", e->meta.guard) ||
	    !cJSON_AddStringToObject(o, "target", e->meta.target) ||
	    !cJSON_AddStringToObject(o, "fallback", e->meta.fallback) ||
	    add_time(o, "installed", (int64_t)(e->installed_ms / 1000)) ||
	    !cJSON_AddNumberToObject(o, "functions", e->nfunctions) ||
	    !cJSON_AddNumberToObject(o, "live_functions", e->live_functions) ||
	    !cJSON_AddNumberToObject(o, "parents", e->nparents) ||
	    !cJSON_AddNumberToObject(o, "frames", e->nframes) ||
	    !cJSON_AddNumberToObject(o, "live_hits", (double)e->hits) ||
	    add_time(o, "live_last_hit", (int64_t)(e->last_hit_ms / 1000)) ||
	    !cJSON_AddBoolToObject(o, "stacked", (e->flags & WIRE_LIVE_F_STACKED) != 0) ||
	    !cJSON_AddBoolToObject(o, "reload", (e->flags & WIRE_LIVE_F_RELOAD) != 0) ||
	    !cJSON_AddStringToObject(o, "original_code", addr[0]) ||
	    !cJSON_AddStringToObject(o, "patched_code", addr[1]) ||
	    !cJSON_AddTrueToObject(o, "live") || !cJSON_AddBoolToObject(o, "stored", sp != NULL) ||
	    add_opt(o, "status", sp ? store_status__str(store_patch__status(sp, now)) : NULL)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* One process's document: pid, program, its live patches and, with
 * stored_too, the stored ones of its program not live in it. NULL: out
 * of memory. */
static cJSON *live_doc(const struct live *l, const struct store *s, int64_t now, bool stored_too)
{
	cJSON *root = cJSON_CreateObject(), *arr, *o;
	const struct store_patch *p;
	struct store_iter it;

	if (!root || !cJSON_AddNumberToObject(root, "pid", (double)l->pid) ||
	    add_opt(root, "program", l->program[0] ? l->program : NULL) ||
	    !(arr = cJSON_AddArrayToObject(root, "patches")))
		goto out;
	if (l->nh) {
		cJSON *h = cJSON_AddArrayToObject(root, "handled");
		if (!h)
			goto out;
		for (size_t i = 0; i < l->nh; i++) {
			struct handled_row r = { l->hv[i].site, l->hv[i].exc_type, NULL,
						 l->hv[i].count,
						 (int64_t)(l->hv[i].last_ms / 1000) };
			if (handled_json(h, &r))
				goto out;
		}
	}
	for (size_t i = 0; i < l->n; i++) {
		const struct wire_live_patch *e = &l->v[i];
		o = live_json_one(e, s && e->meta.name[0] ? store__find(s, e->meta.name) : NULL,
				  now);
		if (!o || !cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			goto out;
		}
	}
	if (s && stored_too) {
		store_iter__init(&it, s, &(struct store_query){ .now = now });
		while ((p = store_iter__next(&it))) {
			if (!live_owns(l, p) || live_find(l, p->name))
				continue;
			o = patch_json(p, now);
			if (!o || !cJSON_AddFalseToObject(o, "live") ||
			    !cJSON_AddTrueToObject(o, "stored") || !cJSON_AddItemToArray(arr, o)) {
				cJSON_Delete(o);
				goto out;
			}
		}
	}
	return root;
out:
	cJSON_Delete(root);
	return NULL;
}

/* The root's document; the other processes of its tree, if any, in its
 * "tree" array (same shape, live patches only). */
static int live_json(const struct live *ls, size_t nl, const struct store *s, int64_t now)
{
	cJSON *root = live_doc(&ls[0], s, now, true), *arr;
	if (!root || nl < 2)
		return print_json(root);
	if (!(arr = cJSON_AddArrayToObject(root, "tree")))
		goto out;
	for (size_t i = 1; i < nl; i++) {
		cJSON *o = live_doc(&ls[i], s, now, false);
		if (!o || !cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			goto out;
		}
	}
	return print_json(root);
out:
	cJSON_Delete(root);
	return print_json(NULL);
}

/* Live first (a refusal leaves the store as it was), then the store as
 * without --pid. Every name must be live or stored before anything
 * changes. */
static bool live_any(const struct live *ls, size_t nl, const char *name)
{
	for (size_t i = 0; i < nl; i++)
		if (live_find(&ls[i], name))
			return true;
	return false;
}

static int live_rollback(struct live *ls, size_t nl, struct store *s, char **names, int nnames,
			 int all, int dry)
{
	struct wire_rollback_result res;
	int r;

	for (int i = 0; !all && i < nnames; i++) {
		if (!live_any(ls, nl, names[i]) && !(s && store__find(s, names[i]))) {
			fprintf(stderr,
				"%s: no patch named \"%s\" live in pid %ld%s or stored%s%s; "
				"nothing removed\n",
				prog, names[i], ls[0].pid, nl > 1 ? "'s tree" : "", s ? " in " : "",
				s ? store__path(s) : "");
			return EXIT_NO_PATCH;
		}
	}
	/* Every process of the tree: a patch propagated to siblings and the
	 * master is live in each. */
	for (size_t k = 0; k < nl; k++) {
		struct live *l = &ls[k];
		for (int i = 0; i < (all ? 1 : nnames); i++) {
			const char *name = all ? NULL : names[i];
			if (name && !live_find(l, name)) {
				if (nl == 1)
					note("%s: not live in pid %ld\n", name, l->pid);
				continue;
			}
			if (all && nl > 1 && !l->n)
				continue;
			if ((r = inject_session__rollback(l->s, name, dry, &res))) {
				fprintf(stderr, "%s: --pid %ld: %s\n", prog, l->pid,
					inject_session__error(l->s));
				return EXIT_FAIL;
			}
			if (res.status) {
				fprintf(stderr, "%s: --pid %ld: %s; nothing removed\n", prog,
					l->pid, res.message);
				return res.status == -ENOENT ? EXIT_NO_PATCH : EXIT_FAIL;
			}
			note("pid %ld: %s\n", l->pid, res.message);
		}
	}
	if (!s) {
		note("no store: nothing to remove on disk\n");
		return EXIT_OK;
	}
	if (all)
		return do_rollback(s, NULL, 0, 1, dry);
	for (int i = 0; i < nnames; i++) {
		if (!store__find(s, names[i])) {
			note("%s: not in %s\n", names[i], store__path(s));
			continue;
		}
		if ((r = do_rollback(s, &names[i], 1, 0, dry)) != EXIT_OK)
			return r;
	}
	return EXIT_OK;
}

/* --pid N: list or rollback against the live process and the store. A
 * missing store is not an error here: the process may hold patches that
 * were never stored (--no-store, another working directory). */
#define LIVE_TREE_MAX 256 /* processes of a tree audited */

/* The other processes of pid's tree that have an agent (descendants
 * running its executable, docs/design.md §15), opened after ls[0]. A
 * descendant that cannot be asked is said so and skipped. */
static size_t live_tree(struct live *ls, long pid)
{
	pid_t d[LIVE_TREE_MAX];
	size_t nd = 0, nl = 1;
	if (attach_pid__descendants((pid_t)pid, d, LIVE_TREE_MAX, &nd))
		return nl;
	for (size_t i = 0; i < nd && nl < LIVE_TREE_MAX; i++) {
		if (!attach_pid__same_exe(d[i], (pid_t)pid) || agent_mapped(d[i]) != 1)
			continue;
		if (live_open(&ls[nl], d[i]) == EXIT_OK)
			nl++;
		else
			live_close(&ls[nl]);
	}
	return nl;
}

/* --pid N: list or rollback against the live process (and the processes
 * forked from it that have an agent) and the store. A missing store is
 * not an error here: the process may hold patches that were never stored
 * (--no-store, another working directory). */
static int live_main(const char *dir, const char *cmd, long pid, int json, char **args, int nargs,
		     int all, int dry)
{
	bool rb = strcmp(cmd, "rollback") == 0;
	struct store *s = NULL;
	struct live *ls = calloc(LIVE_TREE_MAX, sizeof *ls);
	size_t nl = 1;
	int rc, r;

	if (!ls) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return EXIT_FAIL;
	}
	if ((rc = live_open(&ls[0], pid)) != EXIT_OK)
		goto out;
	nl = live_tree(ls, pid);
	r = store__open_print(dir, rb && !dry ? 0 : STORE_F_RDONLY, print_msg, NULL, &s);
	if (r && r != -ENOENT) {
		rc = EXIT_FAIL;
		goto out;
	}
	for (size_t i = 0; !rb && i < nl; i++)
		live_handled(&ls[i]);
	if (rb) {
		rc = live_rollback(ls, nl, s, args, nargs, all, dry);
	} else if (json) {
		rc = live_json(ls, nl, s, store__now());
	} else {
		for (size_t i = 0; i < nl; i++) {
			rc = live_table(&ls[i], s, store__now(), i == 0);
			live_print_handled(&ls[i], store__now());
		}
		if (nl > 1)
			printf("%zu processes in the tree of pid %ld\n", nl, pid);
	}
	store__close(s);
out:
	for (size_t i = 0; i < nl; i++)
		live_close(&ls[i]);
	free(ls);
	return rc;
}

/* ---- main ------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "store", required_argument, 0, 's' }, { "json", no_argument, 0, 'j' },
		{ "all", no_argument, 0, 'a' },         { "dry-run", no_argument, 0, 'n' },
		{ "pid", required_argument, 0, 'p' },   { "help", no_argument, 0, 'h' },
		{ "version", no_argument, 0, 'V' },     { "ttl", required_argument, 0, 't' },
		{ "quiet", no_argument, 0, 'q' },       { 0, 0, 0, 0 },
	};
	const char *dir = NULL, *cmd = "list";
	int json = 0, all = 0, dry = 0, c, rc, r;
	unsigned ttl = 0;
	long pid = 0;
	struct store *s = NULL;
	struct held_msgs held = { .hold = true };
	int64_t now;
	char **args;
	int nargs;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "p:qhV", opts, NULL)) != -1) {
		switch (c) {
		case 'q':
			quiet = true;
			break;
		case 's':
			dir = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'a':
			all = 1;
			break;
		case 'n':
			dry = 1;
			break;
		case 't': {
			char *end;

			errno = 0;
			long v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 1 || v > STORE_MAX_TTL_DAYS) {
				fprintf(stderr, "%s: --ttl takes a number of days, 1 to %d\n", prog,
					STORE_MAX_TTL_DAYS);
				return EXIT_USAGE;
			}
			ttl = (unsigned)v;
			break;
		}
		case 'p': {
			char *end;

			errno = 0;
			pid = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || pid <= 0 || pid > 4194304) {
				fprintf(stderr, "%s: --pid: \"%s\" is not a process id\n", prog,
					optarg);
				return EXIT_USAGE;
			}
			break;
		}
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("suture-audit %s (store format %d)\n", SUTURE_VERSION,
			       STORE_FORMAT_VERSION);
			return EXIT_OK;
		default:
			fprintf(stderr, "%s: unknown or incomplete option '%s' (see %s --help)\n",
				prog, argv[optind - 1], prog);
			return EXIT_USAGE;
		}
	}
	args = argv + optind;
	nargs = argc - optind;
	if (nargs > 0) {
		cmd = args[0];
		args++;
		nargs--;
	}
	if (strcmp(cmd, "list") == 0) {
		if (nargs || all || dry)
			goto bad_usage;
	} else if (strcmp(cmd, "explain") == 0) {
		if (nargs > 1 || all || dry || json)
			goto bad_usage;
	} else if (strcmp(cmd, "rollback") == 0) {
		if (json || (all && nargs) || (!all && !nargs))
			goto bad_usage;
	} else if (strcmp(cmd, "renew") == 0) {
		if (json || all || !nargs || pid)
			goto bad_usage;
	} else {
		fprintf(stderr,
			"%s: unknown command \"%s\" (list, explain, rollback, renew; see %s --help)\n",
			prog, cmd, prog);
		return EXIT_USAGE;
	}
	if (ttl && strcmp(cmd, "renew") != 0)
		goto bad_usage;
	if (quiet && (dry || strcmp(cmd, "explain") == 0)) {
		fprintf(stderr,
			"%s: --quiet goes with list, rollback and renew, not with %s (see %s --help)\n",
			prog, dry ? "--dry-run" : "explain", prog);
		return EXIT_USAGE;
	}
	if (pid && strcmp(cmd, "explain") != 0)
		return live_main(dir, cmd, pid, json, args, nargs, all, dry);
	/* Neither --store nor $SUTURE_STORE: the .suture found from here up,
	 * as suture-run finds it from a script in this tree (store__locate). */
	char located[PATH_MAX];
	bool found;
	if (!(dir && *dir) && !(getenv(STORE_ENV) && *getenv(STORE_ENV)) &&
	    store__locate(NULL, located, sizeof(located), &found) == 0)
		dir = located;

	r = store__open_print(dir,
			      (!strcmp(cmd, "rollback") || !strcmp(cmd, "renew")) && !dry
				      ? 0
				      : STORE_F_RDONLY,
			      print_msg_held, &held, &s);
	if (r == -ENOENT && strcmp(cmd, "list") == 0) {
		/* Nothing was healed here yet: an empty list, as for an empty
		 * store (scripts read it), and a note for a person only. */
		held_msgs__release(&held, true);
		if (json)
			rc = list_json(NULL, store__now());
		else
			rc = quiet || printf("no patches in %s\n", store_dir_named(dir)) >= 0
				     ? EXIT_OK
				     : EXIT_FAIL;
		goto flush;
	}
	held_msgs__release(&held, false);
	if (r == -ENOENT) {
		fprintf(stderr,
			"%s: no store here: give it with --store DIR or $" STORE_ENV
			" (default: the " STORE_DEFAULT_DIR
			" found from the working directory up)\n",
			prog);
		return EXIT_NO_STORE;
	}
	if (r)
		return EXIT_FAIL;
	now = store__now();
	/* A function's name will do where it names one patch. */
	if (strcmp(cmd, "list") != 0 && nargs &&
	    (rc = resolve_names(s, args, nargs,
				!strcmp(cmd, "explain") ? "explained"
				: !strcmp(cmd, "renew") ? "renewed"
							: "removed"))) {
		store__close(s);
		return rc;
	}
	if (strcmp(cmd, "list") == 0)
		rc = json ? list_json(s, now) : list_table(s, now);
	else if (strcmp(cmd, "explain") == 0)
		rc = do_explain(s, nargs ? args[0] : NULL, now);
	else if (strcmp(cmd, "renew") == 0)
		rc = do_renew(s, args, nargs, ttl, dry, now);
	else
		rc = do_rollback(s, args, nargs, all, dry);
	store__close(s);
flush:
	if (fflush(stdout) != 0 && rc == EXIT_OK) {
		fprintf(stderr, "%s: writing output: %s\n", prog, strerror(errno));
		rc = EXIT_FAIL;
	}
	return rc;
bad_usage:
	fprintf(stderr, "%s: %s: wrong arguments (see %s --help)\n", prog, cmd, prog);
	return EXIT_USAGE;
}
