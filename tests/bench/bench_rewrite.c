/* Throughput of the bytecode engine over a codedump: decode + analyse +
 * verify + encode (co_code, co_exceptiontable, co_linetable) of every code
 * object, repeated for at least MIN_SECONDS of CPU time. The rate is per
 * CPU second (the process's own CPU time, so a loaded machine does not
 * distort it); wall time is printed too. Prints figures, asserts none.
 *
 * Usage: bench_rewrite DUMP [MIN_SECONDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rewrite/rewrite.h"

static double now(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s DUMP [MIN_SECONDS]\n", argv[0]);
		return 2;
	}
	double min = argc > 2 ? atof(argv[2]) : 1.0;
	struct rewrite_diag diag = { 0 };
	struct rewrite_dump *dump;
	if (rewrite_dump__open(argv[1], &dump, &diag)) {
		fprintf(stderr, "bench_rewrite: %s\n", diag.msg);
		return 1;
	}
	size_t n = rewrite_dump__count(dump), done = 0, failed = 0, units = 0;
	double start = now(CLOCK_PROCESS_CPUTIME_ID), wall = now(CLOCK_MONOTONIC), t;
	do {
		for (size_t i = 0; i < n; i++) {
			const struct rewrite_code_info *in = &rewrite_dump__entry(dump, i)->info;
			struct rewrite_code *code;
			struct rewrite_bytes c = { 0 }, x = { 0 }, l = { 0 };
			if (rewrite_code__decode(in, &code, NULL)) {
				failed++;
				continue;
			}
			if (rewrite_code__verify(code, NULL) ||
			    rewrite_code__encode(code, &c, &x, &l, NULL))
				failed++;
			units += in->code_len / 2;
			rewrite_bytes__free(&c);
			rewrite_bytes__free(&x);
			rewrite_bytes__free(&l);
			rewrite_code__free(code);
			done++;
		}
		t = now(CLOCK_PROCESS_CPUTIME_ID) - start;
	} while (t < min);
	wall = now(CLOCK_MONOTONIC) - wall;
	printf("suture rewrite: %zu code objects (%zu code units) in %.3f s CPU (%.3f s wall): "
	       "%.0f code objects per CPU second (decode+verify+encode, %zu failed)\n",
	       done, units, t, wall, done / t, failed);
	printf("rate=%.1f\n", done / t);
	rewrite_dump__close(dump);
	return 0;
}
