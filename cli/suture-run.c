/* suture-run: run a Python 3.11 script under suture, healing structural
 * crashes and keeping the healed patches for the next runs.
 *
 * Options are parsed here; the supervisor is heal_run__main (heal/heal.h).
 * See docs/man/suture-run.1. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/exit.h"
#include "heal/heal.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: suture-run [options] [--] script.py [args...]\n"
		"       suture-run [options] -m module [args...]\n"
		"       suture-run [options] -- python3.11 [python options] (script.py | -m module) [args...]\n"
		"\n"
		"  --store DIR          patch store (default $SUTURE_STORE, else ./.suture)\n"
		"  --dry-run            report what would be patched; patch and store nothing\n"
		"  -v, --verbose        show each patch's bytecode delta, side by side\n"
		"  --shadow             warn each time a guard's fallback value is used\n"
		"  --ttl DAYS           lifetime of new patches (default 7)\n"
		"  --retries N          re-runs after a healed crash (default 3; 0: never; never\n"
		"                       with a piped or redirected stdin)\n"
		"  --no-resume          never continue a crashing call in flight: heal later calls\n"
		"  --restart            service mode: restart the program after each healed crash\n"
		"                       (was --watch, still accepted: suture-attach --watch heals\n"
		"                       a running process, without restarting it)\n"
		"  --max-restarts N     with --restart: at most N restarts (default 10)\n"
		"  -q, --quiet          no progress lines (crash seen, guard applied, stored,\n"
		"                       already healed, restarting, the summary); what failed, was\n"
		"                       refused, is re-run or needs you, and every error, still print\n"
		"  --json[=FILE]        one JSON object a line per event (crash, guard applied,\n"
		"                       resumed, refused, stored) on stdout, shared with the\n"
		"                       program's own stdout, or appended to FILE\n"
		"  --app-path PATH      more application code (repeatable): crashes in it are\n"
		"                       healed even inside site-packages (see WHAT COUNTS AS A CRASH)\n"
		"  --heal-handled SITE  heal crashes at SITE (module.qualname:line, as suture-audit\n"
		"                       lists handled crashes) although the program's own catch-all\n"
		"                       handles them (repeatable)\n"
		"  -m MODULE            run a module as python -m does (found in the working\n"
		"                       directory or $PYTHONPATH for the store)\n"
		"  --python PATH        the interpreter, a CPython 3.11 (default: $VIRTUAL_ENV/bin/python\n"
		"                       in an activated venv, else /usr/bin/python3.11; a bare\n"
		"                       name is looked up on PATH)\n"
		"  --agent PATH         libsuture_agent.so (default: $SUTURE_AGENT, ../lib/suture, PREFIX)\n"
		"  -h, --help           this help\n"
		"  -V, --version        print the version\n"
		"\n"
		"suture's own lines go to stderr, prefixed [suture]. Exit status: the script's;\n"
		"1 no agent library, 2 usage, 5 the interpreter is not CPython 3.11, 127 it\n"
		"cannot be run (one table for every command: suture(7)).\n"
		"See suture-run(1).\n");
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || end == s || s[0] == '-' || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	char *app_paths = NULL, *sites = NULL, err[512];
	enum {
		O_STORE = 1000,
		O_DRY,
		O_SHADOW,
		O_TTL,
		O_RETRIES,
		O_RESTART,
		O_WATCH,
		O_MAXR,
		O_PYTHON,
		O_AGENT,
		O_NO_RESUME,
		O_APP_PATH,
		O_HEAL_HANDLED,
		O_JSON
	};
	static const struct option opts[] = {
		{ "store", required_argument, NULL, O_STORE },
		{ "dry-run", no_argument, NULL, O_DRY },
		{ "verbose", no_argument, NULL, 'v' },
		{ "shadow", no_argument, NULL, O_SHADOW },
		{ "ttl", required_argument, NULL, O_TTL },
		{ "retries", required_argument, NULL, O_RETRIES },
		{ "restart", no_argument, NULL, O_RESTART },
		{ "watch", no_argument, NULL, O_WATCH }, /* deprecated: --restart */
		{ "quiet", no_argument, NULL, 'q' },
		{ "max-restarts", required_argument, NULL, O_MAXR },
		{ "python", required_argument, NULL, O_PYTHON },
		{ "agent", required_argument, NULL, O_AGENT },
		{ "no-resume", no_argument, NULL, O_NO_RESUME },
		{ "app-path", required_argument, NULL, O_APP_PATH },
		{ "heal-handled", required_argument, NULL, O_HEAL_HANDLED },
		{ "json", optional_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct heal_run_opts o = {
		.python = "/usr/bin/python3.11",
		.retries = 3,
		.max_restarts = 10,
	};
	unsigned long v;
	int c;
	bool maxr = false, python_given = false, said_watch = false;
	const char *module = NULL;
	char *venv_python = NULL;

	opterr = 0;
	/* "+": stop at the script; its own options are its business. */
	while ((c = getopt_long(argc, argv, "+vqhVm:", opts, NULL)) != -1) {
		switch (c) {
		case O_STORE:
			o.store_dir = optarg;
			break;
		case O_DRY:
			o.dry_run = true;
			break;
		case 'v':
			o.verbose = true;
			break;
		case 'm':
			module = optarg;
			break;
		case O_SHADOW:
			o.shadow = true;
			break;
		case O_WATCH:
			/* The old spelling: "--watch" is suture-attach's "heal a
			 * running process live"; said once, then as --restart. */
			if (!said_watch)
				fprintf(stderr,
					"suture-run: --watch is deprecated: it is --restart "
					"(restart after each healed crash); it will go away\n");
			said_watch = true;
			/* fall through */
		case O_RESTART:
			o.restart = true;
			break;
		case 'q':
			o.quiet = true;
			break;
		case O_PYTHON:
			o.python = optarg;
			python_given = true;
			break;
		case O_AGENT:
			o.agent_path = optarg;
			break;
		case O_NO_RESUME:
			o.no_resume = true;
			break;
		case O_JSON:
			/* stdout is the program's too: a file keeps them apart. */
			if (!optarg || strcmp(optarg, "-") == 0) {
				o.events = stdout;
			} else if (!(o.events = fopen(optarg, "ae"))) {
				fprintf(stderr, "suture-run: --json=%s: %s\n", optarg,
					strerror(errno));
				return EXIT_USAGE;
			}
			break;
		case O_APP_PATH:
			if (heal_config__add_app_path(&app_paths, optarg, err, sizeof(err))) {
				fprintf(stderr, "suture-run: %s\n", err);
				return EXIT_USAGE;
			}
			o.app_paths = app_paths;
			break;
		case O_HEAL_HANDLED:
			if (heal_config__add_heal_handled(&sites, optarg, err, sizeof(err))) {
				fprintf(stderr, "suture-run: %s\n", err);
				return EXIT_USAGE;
			}
			o.heal_handled = sites;
			break;
		case O_TTL:
			if (parse_uint(optarg, 36500, &v) || v == 0) {
				fprintf(stderr,
					"suture-run: --ttl takes a number of days, 1 to 36500\n");
				return EXIT_USAGE;
			}
			o.ttl_days = (uint32_t)v;
			break;
		case O_RETRIES:
			if (parse_uint(optarg, 1000, &v)) {
				fprintf(stderr,
					"suture-run: --retries takes a number, 0 to 1000\n");
				return EXIT_USAGE;
			}
			o.retries = (unsigned)v;
			break;
		case O_MAXR:
			if (parse_uint(optarg, 1000000, &v)) {
				fprintf(stderr, "suture-run: --max-restarts takes a number\n");
				return EXIT_USAGE;
			}
			o.max_restarts = (unsigned)v;
			maxr = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("suture-run " SUTURE_VERSION "\n");
			return EXIT_OK;
		default:
			fprintf(stderr,
				"suture-run: unknown or incomplete option '%s' (see suture-run --help)\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (maxr && !o.restart) {
		fprintf(stderr, "suture-run: --max-restarts goes with --restart\n");
		return EXIT_USAGE;
	}
	if (o.quiet && o.verbose) {
		fprintf(stderr, "suture-run: --quiet and --verbose: give one of them\n");
		return EXIT_USAGE;
	}
	/* suture-run -m NAME args: the interpreter's "-m NAME args". */
	char **words = argv + optind, **mwords = NULL;
	if (module) {
		if (!(mwords = calloc((size_t)(argc - optind) + 3, sizeof(char *)))) {
			fprintf(stderr, "suture-run: out of memory\n");
			return EXIT_FAIL;
		}
		mwords[0] = "-m";
		mwords[1] = (char *)module;
		memcpy(mwords + 2, argv + optind, (size_t)(argc - optind + 1) * sizeof(char *));
		words = mwords;
	}
	if (heal_cmdline__parse(words, &o.cmd, err, sizeof(err))) {
		fprintf(stderr, "suture-run: %s (see suture-run --help)\n", err);
		return EXIT_USAGE;
	}
	if (o.cmd.python) {
		if (python_given) {
			fprintf(stderr,
				"suture-run: --python %s and an interpreter after the options "
				"(%s): give one\n",
				o.python, o.cmd.python);
			return EXIT_USAGE;
		}
		o.python = o.cmd.python;
		python_given = true;
	}
	/* In an activated virtual environment its interpreter is the one
	 * the user means (its packages, its sys.prefix), as `python` would
	 * be; it is checked like any other (heal_run__main). */
	const char *venv = getenv("VIRTUAL_ENV");
	if (!python_given && venv && *venv) {
		size_t len = strlen(venv) + sizeof("/bin/python");
		if (!(venv_python = malloc(len))) {
			fprintf(stderr, "suture-run: out of memory\n");
			return EXIT_FAIL;
		}
		snprintf(venv_python, len, "%s/bin/python", venv);
		o.python = venv_python;
		o.python_from_venv = true;
	}
	int rc = heal_run__main(&o);
	free(venv_python);
	free(mwords);
	return rc;
}
