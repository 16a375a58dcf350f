/* The codedump reader (rewrite/dump.c, docs/formats/codedump.md): fields
 * land where the format says, every truncation and bad count is refused. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rewrite/rewrite.h"

struct w {
	uint8_t b[1024];
	size_t n;
};

static void u32(struct w *w, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		w->b[w->n++] = (uint8_t)(v >> (8 * i));
}

static void str(struct w *w, const char *s)
{
	u32(w, (uint32_t)strlen(s));
	memcpy(w->b + w->n, s, strlen(s) + 1);
	w->n += strlen(s) + 1;
}

static void blob(struct w *w, const void *p, uint32_t len)
{
	u32(w, len);
	if (len != UINT32_MAX) {
		memcpy(w->b + w->n, p, len);
		w->n += len;
	}
}

/* one record: code `f` with one name, one local, one const */
static void record(struct w *w, int32_t parent, const char *qualname)
{
	size_t at = w->n;
	u32(w, 0); /* size, patched below */
	u32(w, (uint32_t)parent);
	str(w, "m.py");
	str(w, "f");
	str(w, qualname);
	u32(w, 3); /* firstlineno */
	u32(w, 1); /* stacksize */
	u32(w, 3); /* flags */
	u32(w, 1); /* argcount */
	u32(w, 0);
	u32(w, 0);
	u32(w, 1); /* nlocals */
	u32(w, 1); /* nlocalsplus */
	static const uint8_t code[] = {
		151, 0, 124, 0, 83, 0
	}; /* RESUME, LOAD_FAST 0, RETURN_VALUE */
	static const uint8_t lines[] = { 0x80, 0x00, 0xd8, 0x0b, 0x0c, 0x88, 0x71 };
	blob(w, code, sizeof(code));
	blob(w, NULL, UINT32_MAX); /* no adaptive bytes */
	blob(w, NULL, 0);          /* no exception table */
	blob(w, lines, sizeof(lines));
	u32(w, 1);
	str(w, "print");
	str(w, "x");
	w->b[w->n++] = 0x20;
	u32(w, 1);
	str(w, "NoneType");
	str(w, "None");
	uint32_t size = (uint32_t)(w->n - at - 4);
	memcpy(w->b + at, &size, 4);
}

static struct w sample(void)
{
	struct w w = { .n = 0 };
	memcpy(w.b, "SUTCODE\0", 8);
	w.n = 8;
	u32(&w, 1);
	u32(&w, 2);
	record(&w, -1, "f");
	record(&w, 0, "f.<locals>.g");
	return w;
}

Test(dump, fields_parsed)
{
	struct w w = sample();
	struct rewrite_dump *d;
	struct rewrite_diag diag = { 0 };
	cr_assert_eq(rewrite_dump__parse(w.b, w.b + w.n, &d, &diag), 0, "%s", diag.msg);
	cr_assert_eq(rewrite_dump__count(d), 2);
	const struct rewrite_dump_entry *e = rewrite_dump__entry(d, 1);
	cr_assert_eq(e->parent, 0);
	cr_assert_str_eq(e->info.qualname, "f.<locals>.g");
	cr_assert_str_eq(e->info.filename, "m.py");
	cr_assert_eq(e->info.firstlineno, 3);
	cr_assert_eq(e->info.code_len, 6);
	cr_assert_null(e->adaptive);
	cr_assert_eq(e->info.nnames, 1);
	cr_assert_str_eq(e->info.names[0], "print");
	cr_assert_eq(e->info.nlocalsplus, 1);
	cr_assert_str_eq(e->info.localsplusnames[0], "x");
	cr_assert_eq(e->info.localspluskinds[0], 0x20);
	cr_assert_str_eq(e->info.consts[0].repr, "None");
	cr_assert_null(rewrite_dump__entry(d, 2));
	struct rewrite_code *code;
	cr_assert_eq(rewrite_code__decode(&e->info, &code, &diag), 0, "%s", diag.msg);
	cr_assert_eq(rewrite_code__verify(code, &diag), 0, "%s", diag.msg);
	char line[128];
	cr_assert_gt(rewrite_code__format_instr(code, 1, 0, line, sizeof(line)), 0);
	cr_assert(strstr(line, "LOAD_FAST") && strstr(line, "(x)"), "%s", line);
	rewrite_code__free(code);
	rewrite_dump__close(d);
	rewrite_dump__close(NULL);
}

Test(dump, truncation_and_bad_headers_refused)
{
	struct w w = sample();
	struct rewrite_dump *d;
	for (size_t cut = 0; cut < w.n; cut++)
		cr_assert_eq(rewrite_dump__parse(w.b, w.b + cut, &d, NULL), -EINVAL, "cut %zu",
			     cut);
	struct w bad = w;
	bad.b[0] = 'X';
	cr_assert_eq(rewrite_dump__parse(bad.b, bad.b + bad.n, &d, NULL), -EINVAL);
	bad = w;
	bad.b[8] = 2; /* version */
	cr_assert_eq(rewrite_dump__parse(bad.b, bad.b + bad.n, &d, NULL), -EINVAL);
	bad = w;
	bad.b[12] = 200; /* count beyond the records */
	cr_assert_eq(rewrite_dump__parse(bad.b, bad.b + bad.n, &d, NULL), -EINVAL);
	/* a parent that is not an earlier record */
	struct w fwd = { .n = 0 };
	memcpy(fwd.b, "SUTCODE\0", 8);
	fwd.n = 8;
	u32(&fwd, 1);
	u32(&fwd, 1);
	record(&fwd, 0, "f");
	cr_assert_eq(rewrite_dump__parse(fwd.b, fwd.b + fwd.n, &d, NULL), -EINVAL);
	struct rewrite_diag diag = { 0 };
	cr_assert_lt(rewrite_dump__open("/nonexistent/x.dump", &d, &diag), 0);
	cr_assert(strstr(diag.msg, "/nonexistent/x.dump"), "%s", diag.msg);
}
