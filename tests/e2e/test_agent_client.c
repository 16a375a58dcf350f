/* A test driver for inject/: opens a session on a pid through the real
 * library and runs one command, printing machine-readable lines.
 *
 *   test_agent_client [-n] [-t PARK_MS] PID hello
 *   test_agent_client [-n] [-t PARK_MS] PID watch COUNT WAIT_S [hold|release|patch SPEC|resume SPEC]
 *   test_agent_client [-n] PID patch SPEC
 *   test_agent_client [-n] PID detach
 *
 * -n: never inject (the agent must be there: LD_PRELOAD).
 * hello prints "how=N mode=N detail=...", then "pong crashes=N hook_calls=N".
 * watch prints one "crash ..." line per report, flushing each, and releases
 * it (or holds it: the agent's own bound lets it go, and the client stays
 * connected until the agent leaves or WAIT_S pass; or first installs the
 * patch described in SPEC, then releases; or installs it and resumes the
 * call in flight at SPEC's fallback_unit/base_depth, printing
 * "resumed status=N message=..."). It exits 0 after COUNT reports,
 * 3 if WAIT_S seconds pass first, 4 if the agent goes away first.
 * SPEC (written by the Python fixtures) has lines:
 *   code_addr 0x...  | stacksize N | code HEX | exctable HEX | linetable HEX
 *   fallback_unit N | base_depth N (resume only)
 *   const none|true|false|int N|str TEXT|builtin NAME|helper NAME | name TEXT
 */
#include "inject/inject.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAXC 32

struct spec {
	struct wire_patch p;
	uint32_t fallback_unit, base_depth;
	uint8_t *bufs[3];
	struct wire_const consts[MAXC];
	char *cstr[MAXC];
	char *names[MAXC];
};

static uint8_t *unhex(const char *s, size_t *len)
{
	size_t n = strlen(s) / 2;
	uint8_t *b = malloc(n + 1);
	for (size_t i = 0; b && i < n; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1) {
			free(b);
			return NULL;
		}
		b[i] = (uint8_t)v;
	}
	*len = n;
	return b;
}

static int load_spec(const char *path, struct spec *sp)
{
	FILE *f = fopen(path, "r");
	char line[65536];
	if (!f) {
		perror(path);
		return -1;
	}
	memset(sp, 0, sizeof *sp);
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		char *sp1 = strchr(line, ' ');
		if (!sp1)
			continue;
		*sp1++ = 0;
		if (!strcmp(line, "code_addr")) {
			sp->p.code_addr = strtoull(sp1, NULL, 0);
		} else if (!strcmp(line, "fallback_unit")) {
			sp->fallback_unit = (uint32_t)strtoul(sp1, NULL, 0);
		} else if (!strcmp(line, "base_depth")) {
			sp->base_depth = (uint32_t)strtoul(sp1, NULL, 0);
		} else if (!strcmp(line, "stacksize")) {
			sp->p.stacksize = (uint32_t)strtoul(sp1, NULL, 0);
		} else if (!strcmp(line, "code")) {
			sp->p.code = sp->bufs[0] = unhex(sp1, &sp->p.code_len);
		} else if (!strcmp(line, "exctable")) {
			sp->p.exctable = sp->bufs[1] = unhex(sp1, &sp->p.exctable_len);
		} else if (!strcmp(line, "linetable")) {
			sp->p.linetable = sp->bufs[2] = unhex(sp1, &sp->p.linetable_len);
		} else if (!strcmp(line, "name") && sp->p.nnames < MAXC) {
			sp->names[sp->p.nnames++] = strdup(sp1);
		} else if (!strcmp(line, "const") && sp->p.nconsts < MAXC) {
			struct wire_const *c = &sp->consts[sp->p.nconsts];
			char *arg = strchr(sp1, ' ');
			if (arg)
				*arg++ = 0;
			if (!strcmp(sp1, "none")) {
				c->kind = WIRE_CONST_NONE;
			} else if (!strcmp(sp1, "true")) {
				c->kind = WIRE_CONST_TRUE;
			} else if (!strcmp(sp1, "false")) {
				c->kind = WIRE_CONST_FALSE;
			} else if (!strcmp(sp1, "int") && arg) {
				c->kind = WIRE_CONST_INT;
				c->i = strtoll(arg, NULL, 0);
			} else if (arg && (!strcmp(sp1, "str") || !strcmp(sp1, "builtin") ||
					   !strcmp(sp1, "helper"))) {
				c->kind = !strcmp(sp1, "str")       ? WIRE_CONST_STR
					  : !strcmp(sp1, "builtin") ? WIRE_CONST_BUILTIN
								    : WIRE_CONST_HELPER;
				sp->cstr[sp->p.nconsts] = strdup(arg);
				c->data = (const uint8_t *)sp->cstr[sp->p.nconsts];
				c->len = strlen(arg);
			} else {
				fprintf(stderr, "spec: bad const %s\n", sp1);
				fclose(f);
				return -1;
			}
			sp->p.nconsts++;
		}
	}
	fclose(f);
	sp->p.consts = sp->consts;
	sp->p.names = (const char *const *)sp->names;
	if (!sp->p.code || !sp->p.code_addr) {
		fprintf(stderr, "spec: code_addr and code are required\n");
		return -1;
	}
	return 0;
}

static void free_spec(struct spec *sp)
{
	for (int i = 0; i < 3; i++)
		free(sp->bufs[i]);
	for (int i = 0; i < MAXC; i++) {
		free(sp->cstr[i]);
		free(sp->names[i]);
	}
}

static int do_resume(struct inject_session *s, const struct wire_crash *ev, const char *path)
{
	struct spec sp;
	struct wire_resume_result res;
	int rc = load_spec(path, &sp);
	free_spec(&sp);
	if (rc)
		return 2;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (inject_session__resume(s, ev, sp.fallback_unit, sp.base_depth, &res, NULL)) {
		fprintf(stderr, "%s\n", inject_session__error(s));
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("resumed status=%d resume_us=%ld message=%s\n", res.status,
	       (long)((t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000),
	       res.message);
	fflush(stdout);
	return res.status < 0 ? 1 : 0;
}

static int do_patch(struct inject_session *s, const char *path)
{
	struct spec sp;
	struct wire_patch_result res;
	int rc;
	if (load_spec(path, &sp)) {
		free_spec(&sp);
		return 2;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = inject_session__send_patch(s, &sp.p, &res);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	free_spec(&sp);
	if (rc) {
		fprintf(stderr, "%s\n", inject_session__error(s));
		return 2;
	}
	printf("patched status=%d functions=%u parents=%u frames=%u patch_us=%ld message=%s\n",
	       res.status, res.nfunctions, res.nparents, res.nframes,
	       (long)((t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000),
	       res.message);
	fflush(stdout);
	return res.status ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct inject_opts o = { 0 };
	struct inject_session *s = NULL;
	int opt, rc, ret = 0;

	while ((opt = getopt(argc, argv, "nft:")) != -1) {
		if (opt == 'n')
			o.no_inject = true;
		else if (opt == 'f')
			o.tree = true; /* FORKED notices, printed by watch */
		else if (opt == 't')
			o.park_timeout_ms = (uint32_t)atoi(optarg);
		else
			return 2;
	}
	if (argc - optind < 2) {
		fprintf(stderr, "usage: %s [-n] [-f] [-t MS] PID hello|watch|patch|detach ...\n",
			argv[0]);
		return 2;
	}
	pid_t pid = atoi(argv[optind]);
	const char *cmd = argv[optind + 1];
	char **rest = argv + optind + 2;
	int nrest = argc - optind - 2;

	char err[512] = "";
	if ((rc = inject_session__open(pid, &o, &s, err, sizeof(err)))) {
		fprintf(stderr, "open: %s (%s)\n", err, strerror(-rc));
		return 2;
	}
	struct inject_timings tm;
	inject_session__timings(s, &tm);
	printf("how=%d mode=%u py=%#x open_us=%llu stopped_us=%llu detail=%s\n",
	       (int)inject_session__how(s), inject_session__watch_mode(s),
	       inject_session__py_hexversion(s), (unsigned long long)(tm.open_ns / 1000),
	       (unsigned long long)(tm.stopped_ns / 1000), inject_session__watch_detail(s));
	fflush(stdout);

	if (!strcmp(cmd, "hello")) {
		struct wire_pong pong;
		if ((rc = inject_session__ping(s, &pong))) {
			fprintf(stderr, "%s\n", inject_session__error(s));
			ret = 2;
		} else {
			printf("pong crashes=%u parked=%u hook_calls=%llu\n", pong.crashes,
			       pong.parked, (unsigned long long)pong.hook_calls);
		}
	} else if (!strcmp(cmd, "detach")) {
		if ((rc = inject_session__detach(s))) {
			fprintf(stderr, "%s\n", inject_session__error(s));
			ret = 2;
		} else {
			printf("detached\n");
		}
	} else if (!strcmp(cmd, "patch") && nrest >= 1) {
		ret = do_patch(s, rest[0]);
	} else if (!strcmp(cmd, "watch") && nrest >= 2) {
		int want = atoi(rest[0]), seen = 0;
		time_t end = time(NULL) + atoi(rest[1]);
		const char *what = nrest >= 3 ? rest[2] : "release";
		bool hold = !strcmp(what, "hold");
		ret = 3;
		while ((seen < want || hold) && time(NULL) < end) {
			struct wire_crash ev;
			rc = inject_session__next_event(s, 200, &ev);
			struct wire_forked fk[8];
			size_t nfk = inject_session__take_forked(s, fk, 8);
			for (size_t i = 0; i < nfk; i++)
				printf("forked pid=%u ppid=%u\n", fk[i].pid, fk[i].ppid);
			fflush(stdout);
			if (rc == -ETIMEDOUT)
				continue;
			if (rc) {
				fprintf(stderr, "%s\n", inject_session__error(s));
				if (seen < want)
					ret = 4;
				break;
			}
			seen++;
			printf("crash tid=%llu ident=%llu code=%#llx frame=%#llx offset=%u line=%u "
			       "type=%s func=%s file=%s msg=%s\n",
			       (unsigned long long)ev.tid, (unsigned long long)ev.thread_ident,
			       (unsigned long long)ev.code_addr, (unsigned long long)ev.frame_addr,
			       ev.offset, ev.line, ev.exc_type, ev.qualname, ev.filename,
			       ev.message);
			fflush(stdout);
			if ((!strcmp(what, "patch") || !strcmp(what, "resume")) && nrest >= 4 &&
			    do_patch(s, rest[3]))
				ret = 1;
			if (!strcmp(what, "resume") && nrest >= 4 && ret != 1) {
				int r = do_resume(s, &ev, rest[3]);
				if (r)
					ret = 1;
				if (r != 1) { /* resumed (or the channel failed): no release */
					if (seen == want && ret == 3)
						ret = 0;
					continue;
				}
			}
			if (strcmp(what, "hold") != 0 && inject_session__release(s, &ev)) {
				fprintf(stderr, "%s\n", inject_session__error(s));
				ret = 4;
				break;
			}
			if (seen == want && ret == 3)
				ret = 0;
		}
	} else {
		fprintf(stderr, "unknown command %s\n", cmd);
		ret = 2;
	}
	inject_session__close(s);
	return ret;
}
