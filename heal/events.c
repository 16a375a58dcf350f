/* heal: the machine-readable event stream (--json on suture-run and
 * suture-attach --watch): one JSON object per line for each thing a user
 * reads a "[suture]" line about (crash seen, guard applied, resumed,
 * refused, stored ...). The schema is docs/formats/events.md; the human
 * lines stay on stderr as they were.
 *
 * Fields are given as (spec, value) pairs after the event's name, ended by
 * NULL: a spec is "s:key" (a string), "i:key" (long long), "f:key"
 * (double, 3 decimals). One fwrite per line: the stream may be shared with
 * the program's own output (suture-run's stdout). */
#include "heal/heal-priv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A JSON string (RFC 8259 §7): quotes, backslash and controls escaped;
 * bytes >= 0x80 are passed as they are (names and messages are UTF-8
 * from the target; an invalid sequence is the target's text as read). */
static void put_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (*p < 0x20)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

void heal_event__emit(FILE *out, pid_t pid, const char *event, ...)
{
	char *buf = NULL;
	size_t len = 0;
	struct timespec ts;
	if (!out)
		return;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	fputs("{\"event\":", f);
	put_str(f, event);
	fprintf(f, ",\"time\":%lld.%03ld,\"pid\":%d", (long long)ts.tv_sec, ts.tv_nsec / 1000000,
		(int)pid);
	va_list ap;
	va_start(ap, event);
	for (const char *spec; (spec = va_arg(ap, const char *));) {
		fputc(',', f);
		put_str(f, spec + 2);
		fputc(':', f);
		switch (spec[0]) {
		case 's':
			put_str(f, va_arg(ap, const char *));
			break;
		case 'i':
			fprintf(f, "%lld", va_arg(ap, long long));
			break;
		default: /* 'f' */
			fprintf(f, "%.3f", va_arg(ap, double));
			break;
		}
	}
	va_end(ap);
	fputs("}\n", f);
	if (fclose(f) == 0 && buf) {
		fwrite(buf, 1, len, out);
		fflush(out);
	}
	free(buf);
}
