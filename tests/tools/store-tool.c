/* store-tool: a small test and benchmark driver for store/, standing in for
 * the real writers (suture-run, suture-attach) in end-to-end tests.
 *
 *   store-tool add   --store DIR --guard G --module M --qualname Q --line N [...]
 *                    [--unique: named apart as a healer's new patch is]
 *                    [--wait FILE: open the store, then add once FILE exists]
 *   store-tool fill  --store DIR --count N [--modules K] [--program P]
 *   store-tool hit   --store DIR NAME
 *   store-tool stale --store DIR NAME [REASON]
 *   store-tool find  --store DIR [--program P] [--module M] [--python V]
 *   store-tool bench --store DIR --program P --module M [--iterations N]
 *
 * Built into $(BUILD)/tests/store-tool by store/module.mk; not installed.
 */
#include "store/store.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(void)
{
	fprintf(stderr,
		"usage: store-tool add|fill|hit|stale|find|bench --store DIR [options]\n"
		"  add:   --guard G --module M --qualname Q --line N [--name N] [--file F]\n"
		"         [--unique] (store__add_unique: the name chosen under the lock)\n"
		"         [--wait FILE] (open the store, then add once FILE exists)\n"
		"         [--first-line N] [--target T] [--fallback F] [--consumer C]\n"
		"         [--consumer-kind TOKEN]\n"
		"         [--placement value|statement|skip|redirect]\n"
		"         [--offset N] [--window W] [--code-id ID] [--program P] [--python V]\n"
		"         [--build-id B] [--created ISO | --age SECONDS] [--ttl DAYS] [--hits N]\n"
		"         [--last-hit ISO] [--stale REASON]\n"
		"  fill:  --count N [--modules K] [--program P]\n"
		"  find:  [--program P] [--module M] [--python V]\n"
		"  bench: --program P --module M [--iterations N]\n");
}

static int num(const char *s, long long lo, long long hi, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	if (errno || end == s || *end || *out < lo || *out > hi) {
		fprintf(stderr, "store-tool: bad number \"%s\"\n", s);
		return -1;
	}
	return 0;
}

static double clock_ms(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "store", 1, 0, 's' },
		{ "name", 1, 0, 'n' },
		{ "guard", 1, 0, 'g' },
		{ "module", 1, 0, 'm' },
		{ "qualname", 1, 0, 'q' },
		{ "file", 1, 0, 'f' },
		{ "first-line", 1, 0, 'F' },
		{ "line", 1, 0, 'l' },
		{ "target", 1, 0, 't' },
		{ "fallback", 1, 0, 'b' },
		{ "consumer", 1, 0, 'c' },
		{ "offset", 1, 0, 'o' },
		{ "window", 1, 0, 'w' },
		{ "code-id", 1, 0, 'i' },
		{ "program", 1, 0, 'p' },
		{ "python", 1, 0, 'P' },
		{ "build-id", 1, 0, 'B' },
		{ "created", 1, 0, 'C' },
		{ "age", 1, 0, 'a' },
		{ "ttl", 1, 0, 'T' },
		{ "hits", 1, 0, 'h' },
		{ "last-hit", 1, 0, 'L' },
		{ "stale", 1, 0, 'S' },
		{ "count", 1, 0, 'N' },
		{ "modules", 1, 0, 'K' },
		{ "iterations", 1, 0, 'I' },
		{ "placement", 1, 0, 'x' },
		{ "unique", 0, 0, 'u' },
		{ "wait", 1, 0, 'W' },
		{ "consumer-kind", 1, 0, 'k' },
		{ 0, 0, 0, 0 },
	};
	struct store_patch p = {
		.file = "app.py",
		.target = "x",
		.fallback = "None",
		.anchor_window = "w0",
		.code_id = "c0",
		.program = "/tmp/app.py",
		.python_version = "3.11.2",
		.first_line = 1,
	};
	const char *dir = NULL, *wait_for = NULL, *cmd, *module_q = NULL, *program_q = NULL,
		   *python_q = NULL;
	long long v, count = 0, modules = 10, iterations = 1000, age = -1;
	char namebuf[STORE_NAME_MAX + 1];
	struct store *s = NULL;
	int c, r, rc = 1, program_set = 0, unique = 0;

	if (argc < 2) {
		usage();
		return 2;
	}
	cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			dir = optarg;
			break;
		case 'n':
			p.name = optarg;
			break;
		case 'g':
			p.guard = optarg;
			break;
		case 'm':
			p.module = module_q = optarg;
			break;
		case 'q':
			p.qualname = optarg;
			break;
		case 'f':
			p.file = optarg;
			break;
		case 'F':
			if (num(optarg, 0, 1 << 30, &v))
				return 2;
			p.first_line = (int)v;
			break;
		case 'l':
			if (num(optarg, 0, 1 << 30, &v))
				return 2;
			p.line = (int)v;
			break;
		case 't':
			p.target = optarg;
			break;
		case 'b':
			p.fallback = optarg;
			break;
		case 'c':
			p.consumer = optarg;
			break;
		case 'k':
			p.consumer_kind = optarg;
			break;
		case 'x':
			p.placement = optarg;
			break;
		case 'u':
			unique = 1;
			break;
		case 'W':
			wait_for = optarg;
			break;
		case 'o':
			if (num(optarg, 0, 1 << 30, &v))
				return 2;
			p.anchor_offset = (uint32_t)v;
			break;
		case 'w':
			p.anchor_window = optarg;
			break;
		case 'i':
			p.code_id = optarg;
			break;
		case 'p':
			p.program = program_q = optarg;
			program_set = 1;
			break;
		case 'P':
			p.python_version = python_q = optarg;
			break;
		case 'B':
			p.build_id = optarg;
			break;
		case 'C':
			if (store__parse_time(optarg, &p.created)) {
				fprintf(stderr, "store-tool: bad time \"%s\"\n", optarg);
				return 2;
			}
			break;
		case 'a':
			if (num(optarg, 0, 1LL << 40, &age))
				return 2;
			break;
		case 'T':
			if (num(optarg, 0, 1 << 30, &v))
				return 2;
			p.ttl_days = (uint32_t)v;
			break;
		case 'h':
			if (num(optarg, 0, 1LL << 50, &v))
				return 2;
			p.hits = (uint64_t)v;
			break;
		case 'L':
			if (store__parse_time(optarg, &p.last_hit)) {
				fprintf(stderr, "store-tool: bad time \"%s\"\n", optarg);
				return 2;
			}
			break;
		case 'S':
			p.status = STORE_STATUS_STALE;
			p.stale_reason = optarg;
			break;
		case 'N':
			if (num(optarg, 1, 1000000, &count))
				return 2;
			break;
		case 'K':
			if (num(optarg, 1, 1000000, &modules))
				return 2;
			break;
		case 'I':
			if (num(optarg, 1, 100000000, &iterations))
				return 2;
			break;
		default:
			usage();
			return 2;
		}
	}
	if (age >= 0)
		p.created = store__now() - age;

	if (strcmp(cmd, "add") == 0) {
		if (!p.name && p.module && p.qualname && p.guard) {
			if (store_patch__default_name(&p, namebuf, sizeof(namebuf)))
				return 1;
			p.name = namebuf;
		}
		if (unique && p.name != namebuf) {
			snprintf(namebuf, sizeof(namebuf), "%s", p.name);
			p.name = namebuf;
		}
		if (store__open(dir, STORE_F_CREATE, &s))
			goto out;
		/* Racers: each has read the index (as a healer has when it
		 * stores) before any of them adds. */
		while (wait_for && access(wait_for, F_OK) != 0)
			nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
		if ((unique ? store__add_unique(s, &p, namebuf, sizeof(namebuf))
			    : store__add(s, &p)))
			goto out;
		printf("%s\n", p.name);
	} else if (strcmp(cmd, "fill") == 0) {
		struct store_patch *v = calloc((size_t)count, sizeof(*v));
		/* Kept by hand: clang-format 14 writes "char(*names)". */
		/* clang-format off */
		char (*names)[96] = calloc((size_t)count, sizeof(*names));
		char (*mods)[32] = calloc((size_t)count, sizeof(*mods));
		/* clang-format on */

		if (!v || !names || !mods || !count)
			goto fill_out;
		if (!program_set)
			p.program = "/srv/app/main.py";
		for (long long i = 0; i < count; i++) {
			v[i] = p;
			snprintf(mods[i], sizeof(mods[i]), "mod%lld", i % modules);
			snprintf(names[i], sizeof(names[i]), "mod%lld.f%lld:%lld:key_guard",
				 i % modules, i, 10 + i);
			v[i].name = names[i];
			v[i].module = mods[i];
			v[i].guard = "key_guard";
			v[i].line = (int)(10 + i);
			v[i].target = "cfg[\"timeout\"]";
			v[i].fallback = "30";
		}
		{
			/* clang-format off */
			char (*quals)[32] = calloc((size_t)count, sizeof(*quals));
			/* clang-format on */

			if (!quals)
				goto fill_out;
			for (long long i = 0; i < count; i++) {
				snprintf(quals[i], sizeof(quals[i]), "f%lld", i);
				v[i].qualname = quals[i];
			}
			if (store__open(dir, STORE_F_CREATE, &s) == 0 &&
			    store__add_many(s, v, (size_t)count) == 0)
				rc = 0;
			free(quals);
		}
fill_out:
		free(v);
		free(names);
		free(mods);
		store__close(s);
		return rc;
	} else if (strcmp(cmd, "hit") == 0 || strcmp(cmd, "stale") == 0) {
		if (optind >= argc) {
			usage();
			return 2;
		}
		if (store__open(dir, 0, &s))
			goto out;
		r = cmd[0] == 'h' ? store__record_hit(s, argv[optind], store__now())
				  : store__mark_stale(s, argv[optind],
						      optind + 1 < argc ? argv[optind + 1] : NULL);
		if (r)
			goto out;
	} else if (strcmp(cmd, "find") == 0) {
		struct store_query q = { .program = program_q,
					 .module = module_q,
					 .python_version = python_q,
					 .flags = STORE_Q_APPLICABLE };
		struct store_iter it;
		const struct store_patch *pt;

		if (store__open(dir, STORE_F_RDONLY, &s))
			goto out;
		store_iter__init(&it, s, &q);
		while ((pt = store_iter__next(&it)))
			printf("%s\n", pt->name);
	} else if (strcmp(cmd, "bench") == 0) {
		/* The share of a script's start-up that is the store's: open the
		 * store (read + validate the index) and select the patches of one
		 * module of one program. */
		struct store_query q = { .program = program_q,
					 .module = module_q,
					 .flags = STORE_Q_APPLICABLE };
		double t0 = clock_ms(CLOCK_MONOTONIC), c0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID), t1,
		       c1;
		size_t found = 0;

		for (long long i = 0; i < iterations; i++) {
			struct store_iter it;

			if (store__open(dir, STORE_F_RDONLY, &s))
				goto out;
			store_iter__init(&it, s, &q);
			found = 0;
			while (store_iter__next(&it))
				found++;
			store__close(s);
			s = NULL;
		}
		t1 = clock_ms(CLOCK_MONOTONIC);
		c1 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
		printf("store open + select: %lld iterations, %.1f us wall, %.1f us CPU each, "
		       "%zu patches selected\n",
		       iterations, (t1 - t0) * 1e3 / (double)iterations,
		       (c1 - c0) * 1e3 / (double)iterations, found);
	} else {
		usage();
		return 2;
	}
	rc = 0;
out:
	store__close(s);
	return rc;
}
