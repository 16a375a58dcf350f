/* inspect/dump.c: a snapshot printed py-spy style, or as one JSON document
 * (cJSON). The format is described in docs/man/suture-attach.1. */
#include "inspect/inspect-priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

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
	fprintf(out, "Process %d: Python %u.%u.%u (%s)\n", (int)ip->pid, v >> 24, (v >> 16) & 0xff,
		(v >> 8) & 0xff, inspect_proc__python_path(ip));
	for (size_t i = 0; i < inspect_snapshot__nthreads(s); i++) {
		const struct inspect_snap_thread *t = inspect_snapshot__thread(s, i);
		fprintf(out, "\nThread %llu \"%s\"%s\n", (unsigned long long)t->raw.native_id,
			t->name, t->holds_gil ? " (holds the GIL)" : "");
		if (t->nframes == 0 && !t->walk_err)
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
		if (t->walk_err)
			fprintf(out, "    <frame chain ends early: %s>\n", strerror(-t->walk_err));
	}
	return ferror(out) ? -EIO : 0;
}

static cJSON *hex(uint64_t v)
{
	char b[32];
	snprintf(b, sizeof(b), "0x%llx", (unsigned long long)v);
	return cJSON_CreateString(b);
}

static cJSON *frame_json(const struct inspect_snap_frame *f)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	if (f->code) {
		cJSON_AddStringToObject(o, "qualname", f->code->qualname);
		cJSON_AddStringToObject(o, "name", f->code->name);
		cJSON_AddStringToObject(o, "filename", f->code->filename);
		if (f->line >= 0)
			cJSON_AddNumberToObject(o, "line", f->line);
		else
			cJSON_AddNullToObject(o, "line");
		cJSON_AddNumberToObject(o, "firstlineno", f->code->firstlineno);
	} else {
		cJSON_AddNullToObject(o, "qualname");
	}
	cJSON_AddItemToObject(o, "frame", hex(f->raw.addr));
	cJSON_AddItemToObject(o, "code", hex(f->raw.code));
	cJSON_AddNumberToObject(o, "lasti", f->raw.lasti);
	cJSON_AddNumberToObject(o, "stacktop", f->raw.stacktop);
	cJSON_AddStringToObject(o, "owner", owner_name(f->raw.owner));
	const char *kind = frame_kind(f);
	if (kind)
		cJSON_AddStringToObject(o, "kind", kind);
	cJSON_AddBoolToObject(o, "is_entry", f->raw.is_entry);
	if (f->locals || f->nlocals) {
		cJSON *locals = cJSON_AddArrayToObject(o, "locals");
		for (size_t k = 0; locals && k < f->nlocals; k++) {
			cJSON *l = cJSON_CreateObject();
			if (!l)
				break;
			cJSON_AddStringToObject(l, "name", f->locals[k].name);
			cJSON_AddStringToObject(l, "type", f->locals[k].type);
			cJSON_AddStringToObject(l, "repr", f->locals[k].repr);
			if (f->locals[k].kind & (INSPECT_FAST_CELL | INSPECT_FAST_FREE))
				cJSON_AddStringToObject(l, "storage",
							f->locals[k].kind & INSPECT_FAST_FREE
								? "free"
								: "cell");
			cJSON_AddItemToArray(locals, l);
		}
	}
	return o;
}

int inspect_snapshot__print_json(const struct inspect_snapshot *s, struct inspect_proc *ip,
				 FILE *out)
{
	char ver[32], ident[32];
	const char *src_path = NULL;
	enum inspect_source src = inspect_proc__source(ip, &src_path);
	uint32_t v = ip->version;
	cJSON *root = cJSON_CreateObject();
	if (!root)
		return -ENOMEM;
	snprintf(ver, sizeof(ver), "%u.%u.%u", v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff);
	cJSON_AddNumberToObject(root, "pid", ip->pid);
	cJSON_AddStringToObject(root, "python_version", ver);
	cJSON_AddStringToObject(root, "python", inspect_proc__python_path(ip));
	cJSON *lay = cJSON_AddObjectToObject(root, "layout");
	if (lay) {
		cJSON_AddStringToObject(lay, "source", inspect_source__name(src));
		cJSON_AddStringToObject(lay, "path", src_path);
	}
	cJSON *gil = NULL;
	cJSON *threads = cJSON_AddArrayToObject(root, "threads");
	for (size_t i = 0; threads && i < inspect_snapshot__nthreads(s); i++) {
		const struct inspect_snap_thread *t = inspect_snapshot__thread(s, i);
		cJSON *o = cJSON_CreateObject();
		if (!o)
			break;
		cJSON_AddNumberToObject(o, "native_id", (double)t->raw.native_id);
		/* pthread_t does not fit a JSON number exactly: decimal string. */
		snprintf(ident, sizeof(ident), "%llu", (unsigned long long)t->raw.thread_id);
		cJSON_AddStringToObject(o, "ident", ident);
		cJSON_AddStringToObject(o, "name", t->name);
		cJSON_AddStringToObject(o, "comm", t->comm);
		cJSON_AddNumberToObject(o, "interpreter", (double)t->raw.interp_id);
		cJSON_AddBoolToObject(o, "holds_gil", t->holds_gil);
		if (t->holds_gil)
			gil = cJSON_CreateNumber((double)t->raw.native_id);
		cJSON *frames = cJSON_AddArrayToObject(o, "frames");
		for (size_t j = 0; frames && j < t->nframes; j++) {
			cJSON *f = frame_json(&t->frames[j]);
			if (f)
				cJSON_AddItemToArray(frames, f);
		}
		if (t->walk_err)
			cJSON_AddStringToObject(o, "error", strerror(-t->walk_err));
		cJSON_AddItemToArray(threads, o);
	}
	cJSON_AddItemToObject(root, "gil_holder", gil ? gil : cJSON_CreateNull());
	char *text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!text)
		return -ENOMEM;
	fputs(text, out);
	fputc('\n', out);
	free(text);
	return ferror(out) ? -EIO : 0;
}
