/* suture-dis: disassemble CPython 3.11 code objects from a codedump file
 * (docs/formats/codedump.md): instructions with resolved names, constants,
 * jump targets and stack depths, the exception table and the locations.
 *
 *   suture-dis [-q QUALNAME] [-f FILE] [--all] [--no-depth] [--no-lines] DUMP
 *   suture-dis -q QUALNAME --crash UNIT:EXCTYPE[:MESSAGE] DUMP
 *
 * --crash asks the guard engine (rewrite/guard.h) what it would do about
 * that exception raised at that code unit: the decision, the diff gate's
 * verdict and the original and patched code side by side.
 *
 * Make a dump of one source file with the test fixture:
 *   /usr/bin/python3.11 tests/fixtures/codedump.py out.dump prog.py
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/exit.h"
#include "rewrite/guard.h"
#include "rewrite/rewrite.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: suture-dis [options] DUMP\n"
		"  -q, --qualname NAME  only code objects whose qualname is NAME (or ends in .NAME)\n"
		"  -f, --file TEXT      only code objects whose filename contains TEXT\n"
		"  -a, --all            every code object (default: the first match only,\n"
		"                       or every one when no filter is given)\n"
		"      --no-depth       hide the stack depth column\n"
		"      --no-lines       hide line numbers and the location table\n"
		"  -c, --crash UNIT:EXCTYPE[:MESSAGE]\n"
		"                       explain the guard for that exception raised at code\n"
		"                       unit UNIT (bytes / 2) of the selected code object\n"
		"  -Q, --quiet          print no listing: decode and verify the selected code\n"
		"                       objects, say on stderr only which do not (the exit\n"
		"                       status tells); not with --crash\n"
		"  -h, --help           this help\n"
		"  -V, --version        print the version\n"
		"Exit: 0 every code object decoded and verified, 1 one did not or none\n"
		"matched, 2 usage (one table for every command: suture(7)).\n"
		"DUMP is a codedump file; make one from a source file with\n"
		"  /usr/bin/python3.11 tests/fixtures/codedump.py out.dump prog.py\n");
}

static int qualname_matches(const char *q, const char *want)
{
	if (!q)
		return 0;
	if (strcmp(q, want) == 0)
		return 1;
	size_t lq = strlen(q), lw = strlen(want);
	return lq > lw && q[lq - lw - 1] == '.' && strcmp(q + lq - lw, want) == 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "qualname", required_argument, NULL, 'q' },
		{ "file", required_argument, NULL, 'f' },
		{ "all", no_argument, NULL, 'a' },
		{ "no-depth", no_argument, NULL, 'D' },
		{ "no-lines", no_argument, NULL, 'L' },
		{ "crash", required_argument, NULL, 'c' },
		{ "quiet", no_argument, NULL, 'Q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *want_q = NULL, *want_f = NULL;
	char *crash_spec = NULL;
	int all = 0, quiet = 0, c;
	unsigned flags = REWRITE_DIS_DEPTH | REWRITE_DIS_LINES;
	opterr = 0; /* one line of ours instead of getopt's */
	while ((c = getopt_long(argc, argv, "q:f:c:aQhV", opts, NULL)) != -1) {
		switch (c) {
		case 'q':
			want_q = optarg;
			break;
		case 'f':
			want_f = optarg;
			break;
		case 'a':
			all = 1;
			break;
		case 'D':
			flags &= ~REWRITE_DIS_DEPTH;
			break;
		case 'L':
			flags &= ~REWRITE_DIS_LINES;
			break;
		case 'c':
			crash_spec = optarg;
			break;
		case 'Q':
			quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("suture-dis " SUTURE_VERSION "\n");
			return EXIT_OK;
		default:
			fprintf(stderr,
				"suture-dis: unknown or incomplete option '%s' (see suture-dis --help)\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "suture-dis: give one dump file (see suture-dis --help)\n");
		return EXIT_USAGE;
	}
	if (quiet && crash_spec) {
		fprintf(stderr, "suture-dis: --quiet and --crash: give one of them\n");
		return EXIT_USAGE;
	}
	struct guard_crash crash = { .stdlib = -1 };
	if (crash_spec) {
		/* UNIT:EXCTYPE[:MESSAGE]; the message may itself contain ':' */
		char *end;
		errno = 0;
		unsigned long unit = strtoul(crash_spec, &end, 0);
		if (errno || end == crash_spec || *end != ':' || unit > UINT32_MAX || !end[1]) {
			fprintf(stderr,
				"suture-dis: --crash wants UNIT:EXCTYPE[:MESSAGE], got '%s'\n",
				crash_spec);
			return 2;
		}
		crash.unit = (uint32_t)unit;
		crash.exc_type = end + 1;
		char *colon = strchr(end + 1, ':');
		if (colon) {
			*colon = 0;
			crash.message = colon + 1;
		}
		if (!want_q) {
			fprintf(stderr, "suture-dis: --crash needs -q QUALNAME\n");
			return 2;
		}
		all = 0;
	}
	if (!want_q && !want_f)
		all = 1;
	struct rewrite_diag diag = { 0 };
	struct rewrite_dump *dump;
	if (rewrite_dump__open(argv[optind], &dump, &diag)) {
		fprintf(stderr, "suture-dis: %s\n", diag.msg);
		return 1;
	}
	int status = 0, shown = 0;
	for (size_t i = 0; i < rewrite_dump__count(dump); i++) {
		const struct rewrite_code_info *in = &rewrite_dump__entry(dump, i)->info;
		if (want_q && !qualname_matches(in->qualname, want_q))
			continue;
		if (want_f && (!in->filename || !strstr(in->filename, want_f)))
			continue;
		if (crash_spec) {
			shown++;
			if (guard__explain(in, &crash, 6, stdout) < 0)
				status = 1;
			break;
		}
		struct rewrite_code *code;
		if (rewrite_code__decode(in, &code, &diag)) {
			fprintf(stderr, "suture-dis: %s\n", diag.msg);
			status = 1;
			continue;
		}
		int max = -1;
		bool bad = rewrite_code__analyse(code, &max, &diag) ||
			   rewrite_code__verify(code, &diag);
		if (quiet) {
			if (bad) {
				fprintf(stderr, "suture-dis: %s (%s): does not verify: %s\n",
					in->qualname ? in->qualname : "?",
					in->filename ? in->filename : "?", diag.msg);
				status = 1;
			}
			shown++;
			rewrite_code__free(code);
			if (!all)
				break;
			continue;
		}
		if (shown++)
			putchar('\n');
		if (bad) {
			printf("# verify: %s\n", diag.msg);
			status = 1;
		} else {
			printf("# verified, max stack depth %d\n", max);
		}
		if (rewrite_code__dis(code, flags, stdout)) {
			fprintf(stderr, "suture-dis: write error\n");
			status = 1;
		}
		rewrite_code__free(code);
		if (!all)
			break;
	}
	rewrite_dump__close(dump);
	if (!shown) {
		fprintf(stderr, "suture-dis: no code object matches\n");
		return 1;
	}
	return status;
}
