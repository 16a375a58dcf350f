/* inspect/dump.c: a snapshot printed py-spy style, or as one JSON document
 * written as it goes (a dump of a deep, wide process is as large as its
 * text: no document tree is built). The format is described in
 * docs/man/suture-attach.1. */
#include "inspect/inspect-priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static const char *frame_kind(const struct inspect_snap_frame *f)
{
	if (f->raw.owner == INSPECT_OWNED_BY_GENERATOR) {
		if (f->code && (f->code->flags & INSPECT_CO_COROUTINE))
			return "coroutine";
		if (f->code && (f->code->flags & INSPECT_CO_ASYNC_GENERATOR))
			return "async generator";
		return "generator";
	}
	if (f->raw.owner == INSPECT_OWNED_BY_FRAME_OBJECT)
		return "frame object";
	return NULL;
}

static const char *owner_name(uint8_t owner)
{
	switch (owner) {
	case INSPECT_OWNED_BY_THREAD:
		return "thread";
	case INSPECT_OWNED_BY_GENERATOR:
		return "generator";
	case INSPECT_OWNED_BY_FRAME_OBJECT:
		return "frame_object";
	}
	return "?";
}

int inspect_snapshot__print(const struct inspect_snapshot *s, struct inspect_proc *ip, FILE *out)
{
	uint32_t v = ip->version;
	char why[256];
	fprintf(out, "Process %d: Python %u.%u.%u (%s)\n", (int)ip->pid, v >> 24, (v >> 16) & 0xff,
		(v >> 8) & 0xff, inspect_proc__python_path(ip));
	for (size_t i = 0; i < inspect_snapshot__nthreads(s); i++) {
		const struct inspect_snap_thread *t = inspect_snapshot__thread(s, i);
		fprintf(out, "\nThread %llu \"%s\"%s\n", (unsigned long long)t->raw.native_id,
			t->name, t->holds_gil ? " (holds the GIL)" : "");
		if (t->nframes == 0 && !t->walk_err && !t->raw.err)
			fprintf(out, "    (no Python frames)\n");
		for (size_t j = 0; j < t->nframes; j++) {
			const struct inspect_snap_frame *f = &t->frames[j];
			const char *kind = frame_kind(f);
			if (!f->code) {
				fprintf(out, "    <unreadable code object 0x%llx>\n",
					(unsigned long long)f->raw.code);
				continue;
			}
			if (f->line >= 0)
				fprintf(out, "    %s (%s:%d)", f->code->qualname, f->code->filename,
					f->line);
			else
				fprintf(out, "    %s (%s:?)", f->code->qualname, f->code->filename);
			if (kind)
				fprintf(out, " [%s]", kind);
			if (f->raw.is_entry)
				fprintf(out, " [entry]");
			fputc('\n', out);
			for (size_t k = 0; k < f->nlocals; k++)
				fprintf(out, "        %s = %s\n", f->locals[k].name,
					f->locals[k].repr);
		}
		inspect_snap_thread__why(t, why, sizeof(why));
		if (why[0])
			fprintf(out, "    <%s>\n", why);
	}
	for (size_t i = 0; i < inspect_snapshot__nbreaks(s); i++) {
		inspect_snap_break__why(inspect_snapshot__break(s, i), why, sizeof(why));
		fprintf(out, "\n<%s>\n", why);
	}
	return ferror(out) ? -EIO : 0;
}

/* ---- JSON, written as it goes (RFC 8259) ---- */

/* The length of the valid UTF-8 sequence at p (at most n bytes), 0 if
 * there is none (overlong forms, surrogates and values past U+10FFFF are
 * invalid). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t len;
	unsigned min, cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		min = 0x80;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		min = 0x800;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		min = 0x10000;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A JSON string: quotes, backslashes and control characters escaped;
 * bytes that are no valid UTF-8 (text from a damaged target) become
 * U+FFFD, so the document always parses. */
static void json_str(FILE *out, const char *str)
{
	const unsigned char *p = (const unsigned char *)(str ? str : "");
	size_t n = strlen((const char *)p);
	fputc('"', out);
	while (n) {
		unsigned c = *p;
		size_t len = utf8_len(p, n);
		if (!len) {
			fputs("\\ufffd", out);
			len = 1;
		} else if (c == '"' || c == '\\') {
			fputc('\\', out);
			fputc((int)c, out);
		} else if (c == '\n') {
			fputs("\\n", out);
		} else if (c == '\t') {
			fputs("\\t", out);
		} else if (c == '\r') {
			fputs("\\r", out);
		} else if (c < 0x20 || c == 0x7f) {
			fprintf(out, "\\u%04x", c);
		} else {
			fwrite(p, 1, len, out);
		}
		p += len;
		n -= len;
	}
	fputc('"', out);
}

/* "key": at the start of a member (",\"key\":" after the first). */
static void json_key(FILE *out, bool *first, const char *key)
{
	if (!*first)
		fputc(',', out);
	*first = false;
	json_str(out, key);
	fputc(':', out);
}

static void json_kv_str(FILE *out, bool *first, const char *key, const char *v)
{
	json_key(out, first, key);
	json_str(out, v);
}

static void json_kv_hex(FILE *out, bool *first, const char *key, uint64_t v)
{
	json_key(out, first, key);
	fprintf(out, "\"0x%llx\"", (unsigned long long)v);
}

static void json_kv_int(FILE *out, bool *first, const char *key, long long v)
{
	json_key(out, first, key);
	fprintf(out, "%lld", v);
}

static void json_kv_bool(FILE *out, bool *first, const char *key, bool v)
{
	json_key(out, first, key);
	fputs(v ? "true" : "false", out);
}

static void frame_json(FILE *out, const struct inspect_snap_frame *f)
{
	bool first = true;
	fputc('{', out);
	if (f->code) {
		json_kv_str(out, &first, "qualname", f->code->qualname);
		json_kv_str(out, &first, "name", f->code->name);
		json_kv_str(out, &first, "filename", f->code->filename);
		json_key(out, &first, "line");
		if (f->line >= 0)
			fprintf(out, "%d", f->line);
		else
			fputs("null", out);
		json_kv_int(out, &first, "firstlineno", f->code->firstlineno);
	} else {
		json_key(out, &first, "qualname");
		fputs("null", out);
	}
	json_kv_hex(out, &first, "frame", f->raw.addr);
	json_kv_hex(out, &first, "code", f->raw.code);
	json_kv_int(out, &first, "lasti", f->raw.lasti);
	json_kv_int(out, &first, "stacktop", f->raw.stacktop);
	json_kv_str(out, &first, "owner", owner_name(f->raw.owner));
	const char *kind = frame_kind(f);
	if (kind)
		json_kv_str(out, &first, "kind", kind);
	json_kv_bool(out, &first, "is_entry", f->raw.is_entry);
	if (f->locals || f->nlocals) {
		json_key(out, &first, "locals");
		fputc('[', out);
		for (size_t k = 0; k < f->nlocals; k++) {
			bool lf = true;
			fputs(k ? ",{" : "{", out);
			json_kv_str(out, &lf, "name", f->locals[k].name);
			json_kv_str(out, &lf, "type", f->locals[k].type);
			json_kv_str(out, &lf, "repr", f->locals[k].repr);
			if (f->locals[k].kind & (INSPECT_FAST_CELL | INSPECT_FAST_FREE))
				json_kv_str(out, &lf, "storage",
					    f->locals[k].kind & INSPECT_FAST_FREE ? "free"
										  : "cell");
			fputc('}', out);
		}
		fputc(']', out);
	}
	fputc('}', out);
}

int inspect_snapshot__print_json(const struct inspect_snapshot *s, struct inspect_proc *ip,
				 FILE *out)
{
	char ver[32], ident[32], why[256];
	const char *src_path = NULL;
	enum inspect_source src = inspect_proc__source(ip, &src_path);
	uint32_t v = ip->version;
	const struct inspect_snap_thread *gil = NULL;
	bool first = true;
	snprintf(ver, sizeof(ver), "%u.%u.%u", v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff);
	fputc('{', out);
	json_kv_int(out, &first, "pid", ip->pid);
	json_kv_str(out, &first, "python_version", ver);
	json_kv_str(out, &first, "python", inspect_proc__python_path(ip));
	json_key(out, &first, "layout");
	fputc('{', out);
	bool lf = true;
	json_kv_str(out, &lf, "source", inspect_source__name(src));
	json_key(out, &lf, "path");
	if (src_path)
		json_str(out, src_path);
	else
		fputs("null", out);
	fputc('}', out);
	json_key(out, &first, "threads");
	fputc('[', out);
	for (size_t i = 0; i < inspect_snapshot__nthreads(s); i++) {
		const struct inspect_snap_thread *t = inspect_snapshot__thread(s, i);
		bool tf = true;
		fputs(i ? ",{" : "{", out);
		json_kv_int(out, &tf, "native_id", (long long)t->raw.native_id);
		/* pthread_t does not fit a JSON number exactly: decimal string. */
		snprintf(ident, sizeof(ident), "%llu", (unsigned long long)t->raw.thread_id);
		json_kv_str(out, &tf, "ident", ident);
		json_kv_str(out, &tf, "name", t->name);
		json_kv_str(out, &tf, "comm", t->comm);
		json_kv_int(out, &tf, "interpreter", (long long)t->raw.interp_id);
		json_kv_bool(out, &tf, "holds_gil", t->holds_gil);
		if (t->holds_gil && !gil)
			gil = t;
		json_key(out, &tf, "frames");
		fputc('[', out);
		for (size_t j = 0; j < t->nframes; j++) {
			if (j)
				fputc(',', out);
			frame_json(out, &t->frames[j]);
		}
		fputc(']', out);
		inspect_snap_thread__why(t, why, sizeof(why));
		if (why[0])
			json_kv_str(out, &tf, "error", why);
		fputc('}', out);
		if (ferror(out))
			return -EIO;
	}
	fputc(']', out);
	if (inspect_snapshot__nbreaks(s)) {
		json_key(out, &first, "thread_list_errors");
		fputc('[', out);
		for (size_t i = 0; i < inspect_snapshot__nbreaks(s); i++) {
			const struct inspect_thread *b = inspect_snapshot__break(s, i);
			bool bf = true;
			fputs(i ? ",{" : "{", out);
			json_kv_int(out, &bf, "interpreter", (long long)b->interp_id);
			json_kv_hex(out, &bf, "tstate", b->tstate);
			inspect_snap_break__why(b, why, sizeof(why));
			json_kv_str(out, &bf, "error", why);
			fputc('}', out);
		}
		fputc(']', out);
	}
	json_key(out, &first, "gil_holder");
	if (gil)
		fprintf(out, "%llu", (unsigned long long)gil->raw.native_id);
	else
		fputs("null", out);
	fputs("}\n", out);
	return ferror(out) ? -EIO : 0;
}
