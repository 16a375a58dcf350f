/* heal/spec.c: which stored specs a function met while loading takes.
 * A spec applies to the live code of its own function (qualified name and
 * file) only while its identity is the stored one and it is not stale; the
 * live walk looks into a function when a waiting spec is for it or for
 * code nested in it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heal/heal-priv.h"

static struct spec spec(const char *qualname, const char *file, const char *code_id)
{
	return (struct spec){ .qualname = (char *)qualname,
			      .file = (char *)file,
			      .code_id = (char *)code_id,
			      .verdict = STORE_OK };
}

Test(heal_specs, applies_to_its_own_function_and_identity)
{
	struct spec s = spec("Loader.load", "/srv/app.py", "fnv64:00000000000000aa");
	cr_assert(heal_spec__for(&s, "Loader.load", "/srv/app.py"));
	cr_assert(heal_spec__applies(&s, "Loader.load", "/srv/app.py", "fnv64:00000000000000aa"));
	/* Another identity: the source changed, or another guard comes first. */
	cr_assert_not(
		heal_spec__applies(&s, "Loader.load", "/srv/app.py", "fnv64:00000000000000ab"));
	/* Same name elsewhere. */
	cr_assert_not(heal_spec__for(&s, "Loader.load", "/srv/other.py"));
	cr_assert_not(heal_spec__for(&s, "Loader.loads", "/srv/app.py"));
	cr_assert_not(heal_spec__for(&s, "Loader", "/srv/app.py"));
}

Test(heal_specs, done_or_stale_specs_do_not_apply)
{
	struct spec s = spec("f", "/srv/app.py", "fnv64:1");
	s.verdict = STORE_V_STALE;
	cr_assert(heal_spec__for(&s, "f", "/srv/app.py")); /* still reported for f */
	cr_assert_not(heal_spec__applies(&s, "f", "/srv/app.py", "fnv64:1"));
	s.verdict = STORE_V_EXPIRED; /* taken, then reported expired */
	cr_assert(heal_spec__applies(&s, "f", "/srv/app.py", "fnv64:1"));
	s.done = true;
	cr_assert_not(heal_spec__for(&s, "f", "/srv/app.py"));
	cr_assert_not(heal_spec__applies(&s, "f", "/srv/app.py", "fnv64:1"));
}

Test(heal_specs, wanted_for_the_function_and_code_nested_in_it)
{
	struct spec v[2] = {
		spec("C.m.<locals>.<listcomp>", "/srv/app.py", ""),
		spec("load", "/srv/app.py", ""),
	};
	cr_assert(heal_specs__wanted(v, 2, "C.m", 256));
	cr_assert(heal_specs__wanted(v, 2, "C", 256));
	cr_assert(heal_specs__wanted(v, 2, "C.m.<locals>.<listcomp>", 256));
	cr_assert(heal_specs__wanted(v, 2, "load", 256));
	cr_assert_not(heal_specs__wanted(v, 2, "C.mm", 256));
	cr_assert_not(heal_specs__wanted(v, 2, "C.n", 256));
	cr_assert_not(heal_specs__wanted(v, 2, "loader", 256));
	cr_assert_not(heal_specs__wanted(v, 2, "loa", 256));
	v[1].done = true;
	cr_assert_not(heal_specs__wanted(v, 2, "load", 256));
	/* A name that filled its buffer may have been cut: looked at whole. */
	cr_assert(heal_specs__wanted(v, 2, "loader", 8));
	cr_assert(heal_specs__wanted(v, 0, "x", 4));
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static void quiet(const char *msg, void *ctx)
{
	(void)msg;
	(void)ctx;
}

static void add(struct store *st, const char *name, const char *program, const char *pyver,
		const char *qualname)
{
	struct store_patch p = {
		.name = name,
		.guard = "key_guard",
		.module = "app",
		.qualname = qualname,
		.file = "/srv/app.py",
		.first_line = 3,
		.line = 5,
		.target = "d[\"k\"]",
		.fallback = "None",
		.anchor_offset = 12,
		.anchor_window = "fnv64:0000000000000001",
		.code_id = "fnv64:0000000000000002",
		.program = program,
		.python_version = pyver,
	};
	cr_assert_eq(store__add(st, &p), 0, "%s", store__error(st));
}

Test(heal_specs, copied_from_the_store_for_one_program_and_python)
{
	char dir[] = "/tmp/suture-heal-specs.XXXXXX", path[4096];
	struct store *st = NULL;
	struct spec *v = NULL;
	size_t n = 0;
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s", dir);
	cr_assert_eq(store__open_print(path, STORE_F_CREATE, quiet, NULL, &st), 0);
	add(st, "ours", "/srv/app.py", "3.11.2", "load");
	add(st, "other-python", "/srv/app.py", "3.11.4", "load");
	add(st, "other-program", "/srv/other.py", "3.11.2", "load");
	add(st, "stale", "/srv/app.py", "3.11.2", "save");
	cr_assert_eq(store__mark_stale(st, "stale", "changed"), 0);

	cr_assert_eq(heal_specs__from(st, "/srv/app.py", "3.11.2", &v, &n), 0);
	cr_assert_eq(n, 2);
	for (size_t i = 0; i < n; i++) {
		cr_assert(strcmp(v[i].name, "ours") == 0 || strcmp(v[i].name, "stale") == 0,
			  "%s is not this program's under this Python", v[i].name);
		cr_assert_str_eq(v[i].file, "/srv/app.py");
		cr_assert_eq(v[i].anchor, 12);
		cr_assert_eq(v[i].first_line, 3);
		cr_assert_str_eq(v[i].window, "fnv64:0000000000000001");
		cr_assert_eq(v[i].verdict,
			     strcmp(v[i].name, "stale") == 0 ? STORE_V_STALE : STORE_OK);
		cr_assert_not(v[i].done);
	}
	heal_specs__free(v, n);
	store__close(st);
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* Sorted by qualname, the store's order kept among those of one qualname
 * (a function healed twice: its patches apply in the order made), and a
 * function's specs found as one range without a scan of all. */
Test(heal_specs, sorted_by_qualname_and_found_as_a_range)
{
	char dir[] = "/tmp/suture-heal-specs.XXXXXX", path[4096];
	struct store *st = NULL;
	struct spec *v = NULL;
	size_t n = 0, lo, hi;
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s", dir);
	cr_assert_eq(store__open_print(path, STORE_F_CREATE, quiet, NULL, &st), 0);
	add(st, "z1", "/srv/app.py", "3.11.2", "zeta");
	add(st, "a1", "/srv/app.py", "3.11.2", "C.m");
	add(st, "m1", "/srv/app.py", "3.11.2", "load");
	add(st, "a2", "/srv/app.py", "3.11.2", "C.m");
	add(st, "b1", "/srv/app.py", "3.11.2", "C.mm");
	cr_assert_eq(heal_specs__from(st, "/srv/app.py", "3.11.2", &v, &n), 0);
	cr_assert_eq(n, 5);
	for (size_t i = 1; i < n; i++)
		cr_assert_leq(strcmp(v[i - 1].qualname, v[i].qualname), 0);
	heal_specs__range(v, n, "C.m", &lo, &hi);
	cr_assert_eq(hi - lo, 2);
	/* In the store's order: the one added first first. */
	cr_assert_lt(v[lo].seq, v[lo + 1].seq);
	cr_assert_str_eq(v[lo].name, "a1");
	for (size_t i = lo; i < hi; i++)
		cr_assert_str_eq(v[i].qualname, "C.m");
	heal_specs__range(v, n, "C.mm", &lo, &hi);
	cr_assert_eq(hi - lo, 1);
	cr_assert_str_eq(v[lo].name, "b1");
	heal_specs__range(v, n, "C", &lo, &hi);
	cr_assert_eq(hi, lo);
	heal_specs__range(v, n, "zzz", &lo, &hi);
	cr_assert_eq(lo, n);
	cr_assert_eq(hi, n);
	heal_specs__free(v, n);
	store__close(st);
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}
