/* Throughput of the bytecode engine over a codedump: decode + analyse +
 * verify + encode (co_code, co_exceptiontable, co_linetable) of every code
 * object, repeated for at least MIN_SECONDS. Prints figures, asserts none.
 *
 * Usage: bench_rewrite DUMP [MIN_SECONDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rewrite/rewrite.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
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
	double start = now(), t;
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
		t = now() - start;
	} while (t < min);
	printf("suture rewrite: %zu code objects (%zu code units) in %.3f s: %.0f code objects/s "
	       "(decode+verify+encode, %zu failed)\n",
	       done, units, t, done / t, failed);
	printf("rate=%.1f\n", done / t);
	rewrite_dump__close(dump);
	return 0;
}
