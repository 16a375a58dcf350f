/* Classes read from outside (inspect/class.c): whether an object is a
 * class, its tp_dict, and the callables inside staticmethod, classmethod
 * and property objects through their types' own member descriptors.
 * Over a mock address space (validation of garbage) and against real
 * interpreters: Debian's python3.11 (build-id DWARF), its debug build (own
 * .debug_info), pyenv's 3.11.7 (libpython's .debug_info), the layout cache,
 * and the build-time probe table applied to the Debian process. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_inspect_mock.h"

/* ---- mock: a class, a metaclass, a staticmethod-like C object ---- */

struct world {
	struct mock m;
	uint64_t meta, cls, sm_type, sm, fn, row, descr;
};

static void put_flags(struct mock *m, uint64_t type, uint64_t flags)
{
	mock_put(m, type, m->off.tp_flags, &flags, 8);
}

/* PyMemberDef {name, type, offset} as the probe layout places it. */
static uint64_t member_def(struct mock *m, const char *name, int32_t kind, int64_t offset)
{
	uint64_t row = mock_alloc(m, 64);
	mock_put64(m, row, m->off.mdef_name, mock_cstr(m, name));
	mock_put(m, row, m->off.mdef_type, &kind, 4);
	mock_put(m, row, m->off.mdef_offset, &offset, 8);
	return row;
}

static void build(struct world *w)
{
	struct mock *m = &w->m;
	mock_init(m);
	m->types.type_type = mock_type(m, "type");
	put_flags(m, m->types.type_type, INSPECT_TPFLAGS_TYPE_SUBCLASS | INSPECT_TPFLAGS_READY);
	m->types.type_member_descr = mock_type(m, "member_descriptor");
	/* A heap class whose dict holds a function and a staticmethod. */
	w->fn = mock_obj(m, m->types.type_func, 64);
	/* staticmethod: header, then its callable at 16, basicsize 32. */
	w->sm_type = mock_obj(m, m->types.type_type, 1024);
	mock_put64(m, w->sm_type, m->off.tp_name, mock_cstr(m, "staticmethod"));
	put_flags(m, w->sm_type, INSPECT_TPFLAGS_READY);
	int64_t bs = 32;
	mock_put(m, w->sm_type, m->off.tp_basicsize, &bs, 8);
	w->row = member_def(m, "__func__", 6, 16);
	w->descr = mock_obj(m, m->types.type_member_descr, 64);
	mock_put64(m, w->descr, m->off.md_member, w->row);
	uint64_t k1 = mock_str(m, "__func__");
	mock_put64(m, w->sm_type, m->off.tp_dict, mock_dict(m, &k1, &w->descr, 1, 1, 0));
	w->sm = mock_obj(m, w->sm_type, 32);
	mock_put64(m, w->sm, 16, w->fn);
	uint64_t ks[2] = { mock_str(m, "run"), mock_str(m, "helper") };
	uint64_t vs[2] = { w->fn, w->sm };
	w->cls = mock_obj(m, m->types.type_type, 1024);
	put_flags(m, w->cls, INSPECT_TPFLAGS_HEAPTYPE | INSPECT_TPFLAGS_READY);
	mock_put64(m, w->cls, m->off.tp_dict, mock_dict(m, ks, vs, 2, 1, 0));
	/* A metaclass (a subclass of type) and a class made with it. */
	w->meta = mock_obj(m, m->types.type_type, 1024);
	put_flags(m, w->meta,
		  INSPECT_TPFLAGS_TYPE_SUBCLASS | INSPECT_TPFLAGS_HEAPTYPE | INSPECT_TPFLAGS_READY);
}

static struct world w;
static void setup(void)
{
	build(&w);
}
static void teardown(void)
{
	mock_fini(&w.m);
}
TestSuite(inspect_class, .init = setup, .fini = teardown);

Test(inspect_class, classes_and_their_dicts)
{
	struct mock *m = &w.m;
	uint64_t flags = 0, dict = 0, got = 0;
	cr_expect_eq(inspect_type__check(&m->reader, w.cls, &flags), 0);
	cr_expect(flags & INSPECT_TPFLAGS_HEAPTYPE);
	cr_expect_eq(inspect_type__dict(&m->reader, w.cls, &dict), 0);
	cr_expect_eq(inspect_dict__get(&m->reader, dict, "run", &got), 0);
	cr_expect_eq(got, w.fn);
	/* Made by a metaclass: still a class. */
	uint64_t viameta = mock_obj(m, w.meta, 1024);
	put_flags(m, viameta, INSPECT_TPFLAGS_HEAPTYPE | INSPECT_TPFLAGS_READY);
	cr_expect_eq(inspect_type__check(&m->reader, viameta, NULL), 0);
	/* Not classes: an instance, a function, a type not ready, garbage. */
	cr_expect_eq(inspect_type__check(&m->reader, w.sm, NULL), -EINVAL);
	cr_expect_eq(inspect_type__check(&m->reader, w.fn, NULL), -EINVAL);
	put_flags(m, viameta, INSPECT_TPFLAGS_HEAPTYPE);
	cr_expect_eq(inspect_type__check(&m->reader, viameta, NULL), -EINVAL);
	cr_expect_eq(inspect_type__check(&m->reader, 0x42, NULL), -EFAULT);
	cr_expect_neq(inspect_type__dict(&m->reader, w.fn, &dict), 0);
	/* tp_dict that is not a dict. */
	mock_put64(m, viameta, m->off.tp_dict, w.fn);
	put_flags(m, viameta, INSPECT_TPFLAGS_READY);
	cr_expect_eq(inspect_type__dict(&m->reader, viameta, &dict), -EINVAL);
	/* A layout without tp_dict. */
	struct inspect_offsets no = m->off;
	no.tp_dict = -1;
	struct inspect_reader r = m->reader;
	r.off = &no;
	cr_expect_eq(inspect_type__dict(&r, w.cls, &dict), -ENODATA);
	cr_expect_eq(inspect_object__member(&r, w.sm, "__func__", &got), -ENODATA);
}

Test(inspect_class, member_slots_through_descriptors)
{
	struct mock *m = &w.m;
	uint64_t got = 0;
	cr_expect_eq(inspect_object__member(&m->reader, w.sm, "__func__", &got), 0);
	cr_expect_eq(got, w.fn);
	cr_expect_eq(inspect_object__member(&m->reader, w.sm, "fget", &got), -ENOENT);
	/* Found through tp_base: a subclass whose own dict lacks it. */
	uint64_t sub = mock_obj(m, m->types.type_type, 1024);
	put_flags(m, sub, INSPECT_TPFLAGS_HEAPTYPE | INSPECT_TPFLAGS_READY);
	uint64_t k = mock_str(m, "__doc__"), v = m->types.none;
	mock_put64(m, sub, m->off.tp_dict, mock_dict(m, &k, &v, 1, 1, 0));
	mock_put64(m, sub, m->off.tp_base, w.sm_type);
	uint64_t sm2 = mock_obj(m, sub, 48);
	mock_put64(m, sm2, 16, w.cls);
	cr_expect_eq(inspect_object__member(&m->reader, sm2, "__func__", &got), 0);
	cr_expect_eq(got, w.cls);
	/* A base chain that loops is cut. */
	mock_put64(m, sub, m->off.tp_base, sub);
	cr_expect_eq(inspect_object__member(&m->reader, sm2, "__func__", &got), -ENOENT);
}

Test(inspect_class, implausible_descriptors_are_refused)
{
	struct mock *m = &w.m;
	uint64_t got = 0;
	struct {
		const char *name;
		int32_t kind;
		int64_t off;
	} bad[] = {
		{ "__wrapped__", 6, 16 }, /* another row than the one asked for */
		{ "__func__", 1, 16 },    /* T_INT, not an object slot */
		{ "__func__", 6, 8 },     /* inside the header: ob_type */
		{ "__func__", 6, 20 },    /* misaligned */
		{ "__func__", 6, 32 },    /* past tp_basicsize */
		{ "__func__", 6, -16 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mock_put64(m, w.descr, m->off.md_member,
			   member_def(m, bad[i].name, bad[i].kind, bad[i].off));
		cr_expect_eq(inspect_object__member(&m->reader, w.sm, "__func__", &got), -EINVAL,
			     "row %zu", i);
	}
	mock_put64(m, w.descr, m->off.md_member, w.row);
	cr_expect_eq(inspect_object__member(&m->reader, w.sm, "__func__", &got), 0);
	/* The entry is not a member descriptor. */
	mock_put64(m, w.descr, m->off.ob_type, m->types.type_func);
	cr_expect_eq(inspect_object__member(&m->reader, w.sm, "__func__", &got), -EINVAL);
	mock_put64(m, w.descr, m->off.ob_type, m->types.type_member_descr);
	/* d_member unreadable; tp_basicsize absurd. */
	mock_put64(m, w.descr, m->off.md_member, 0x10);
	cr_expect_eq(inspect_object__member(&m->reader, w.sm, "__func__", &got), -EINVAL);
	mock_put64(m, w.descr, m->off.md_member, w.row);
	int64_t huge = (int64_t)1 << 40;
	mock_put(m, w.sm_type, m->off.tp_basicsize, &huge, 8);
	cr_expect_eq(inspect_object__member(&m->reader, w.sm, "__func__", &got), -EINVAL);
}

/* ---- live ---- */

static const char *script =
	"import sys\n"
	"class K:\n"
	"    def m(self): pass\n"
	"    @staticmethod\n"
	"    def s(): pass\n"
	"    @classmethod\n"
	"    def c(cls): pass\n"
	"    @property\n"
	"    def p(self): return 1\n"
	"    @p.setter\n"
	"    def p(self, v): pass\n"
	"    class N: pass\n"
	"class Meta(type): pass\n"
	"class M(metaclass=Meta): pass\n"
	"d = K.__dict__\n"
	"k = K()\n"
	"print(id(K), id(d['m']), id(d['s']), id(d['s'].__func__), id(d['c']), id(d['c'].__func__),\n"
	"      id(d['p']), id(d['p'].fget), id(d['p'].fset), id(d['N']), id(M), id(k), id(int),\n"
	"      flush=True)\n"
	"sys.stdin.read()\n";

enum { K, KM, KS, KSF, KC, KCF, KP, KPG, KPS, KN, MM, INST, INT, NIDS };

static pid_t start(const char *py, unsigned long long *ids)
{
	int out[2], in[2];
	cr_assert_eq(pipe(out), 0);
	cr_assert_eq(pipe(in), 0);
	pid_t parent = getpid();
	pid_t child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		dup2(out[1], 1);
		dup2(in[0], 0);
		close(out[0]);
		close(in[1]);
		execl(py, py, "-c", script, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	close(in[0]); /* the write end stays open in us until exit: stdin blocks */
	FILE *f = fdopen(out[0], "r");
	int n = 0;
	for (int i = 0; i < NIDS; i++)
		n += fscanf(f, "%llu", &ids[i]);
	fclose(f);
	cr_assert_eq(n, NIDS, "%s: no ready line", py);
	return child;
}

static void check_reader(const char *what, const struct inspect_reader *r,
			 const unsigned long long *ids)
{
	uint64_t flags = 0, dict = 0, got = 0;
	cr_assert_eq(inspect_type__check(r, ids[K], &flags), 0, "%s", what);
	cr_expect(flags & INSPECT_TPFLAGS_HEAPTYPE, "%s", what);
	cr_expect_eq(inspect_type__check(r, ids[MM], NULL), 0, "%s: class made by a metaclass",
		     what);
	cr_expect_eq(inspect_type__check(r, ids[INT], &flags), 0, "%s: int", what);
	cr_expect(!(flags & INSPECT_TPFLAGS_HEAPTYPE), "%s: int is static", what);
	cr_expect_eq(inspect_type__check(r, ids[INST], NULL), -EINVAL, "%s: an instance", what);
	cr_expect_eq(inspect_type__check(r, ids[KM], NULL), -EINVAL, "%s: a function", what);
	cr_assert_eq(inspect_type__dict(r, ids[K], &dict), 0, "%s", what);
	cr_expect_eq(inspect_dict__get(r, dict, "m", &got), 0, "%s", what);
	cr_expect_eq(got, ids[KM], "%s", what);
	cr_expect_eq(inspect_dict__get(r, dict, "N", &got), 0, "%s", what);
	cr_expect_eq(got, ids[KN], "%s", what);
	cr_expect_eq(inspect_type__check(r, ids[KN], NULL), 0, "%s: nested class", what);

	cr_expect_eq(inspect_object__member(r, ids[KS], "__func__", &got), 0, "%s", what);
	cr_expect_eq(got, ids[KSF], "%s: staticmethod", what);
	cr_expect_eq(inspect_object__member(r, ids[KC], "__func__", &got), 0, "%s", what);
	cr_expect_eq(got, ids[KCF], "%s: classmethod", what);
	cr_expect_eq(inspect_object__member(r, ids[KP], "fget", &got), 0, "%s", what);
	cr_expect_eq(got, ids[KPG], "%s: getter", what);
	cr_expect_eq(inspect_object__member(r, ids[KP], "fset", &got), 0, "%s", what);
	cr_expect_eq(got, ids[KPS], "%s: setter", what);
	cr_expect_eq(inspect_object__member(r, ids[KP], "fdel", &got), 0, "%s", what);
	cr_expect_eq(got, 0, "%s: no deleter", what);
	cr_expect_eq(inspect_object__member(r, ids[KS], "fget", &got), -ENOENT, "%s", what);
	cr_expect_eq(inspect_object__member(r, ids[KM], "__func__", &got), -ENOENT, "%s", what);
}

static void live(const char *py, enum inspect_source want)
{
	unsigned long long ids[NIDS];
	if (access(py, X_OK) != 0) /* pyenv and the debug build are optional */
		cr_skip_test("no %s on this machine", py);
	pid_t child = start(py, ids);
	char err[512], cache[] = "/tmp/suture-class-cache-XXXXXX";
	cr_assert_not_null(mkdtemp(cache));
	struct inspect_opts o = { .cache_dir = cache };
	struct inspect_proc *ip = NULL;
	cr_assert_eq(inspect_proc__open(child, &o, &ip, err, sizeof(err)), 0, "%s: %s", py, err);
	cr_expect_eq(inspect_proc__source(ip, NULL), want, "%s: layout source", py);
	check_reader(py, inspect_proc__reader(ip), ids);
	if (want == INSPECT_SRC_BUILD_ID) {
		/* The probe table describes the installed headers: Debian's 3.11.2. */
		struct inspect_offsets probe;
		inspect_offsets__from_probe(&probe);
		struct inspect_reader r = *inspect_proc__reader(ip);
		r.off = &probe;
		check_reader("probe table", &r, ids);
	}
	inspect_proc__close(ip);
	/* Again, from the cache entry the first open wrote. */
	ip = NULL;
	cr_assert_eq(inspect_proc__open(child, &o, &ip, err, sizeof(err)), 0, "%s: %s", py, err);
	const char *path = NULL;
	inspect_proc__source(ip, &path);
	cr_expect(path && strstr(path, cache) == path, "%s: not from the cache: %s", py, path);
	check_reader("cache", inspect_proc__reader(ip), ids);
	inspect_proc__close(ip);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cache);
	cr_expect_eq(system(cmd), 0);
}

Test(inspect_class, live_debian_build_id_probe_and_cache, .timeout = 60)
{
	live("/usr/bin/python3.11", INSPECT_SRC_BUILD_ID);
}

Test(inspect_class, live_debian_debug_build, .timeout = 60)
{
	live("/usr/bin/python3.11-dbg", INSPECT_SRC_OWN);
}

Test(inspect_class, live_pyenv, .timeout = 60)
{
	live("/root/.pyenv/versions/3.11.7/bin/python3.11", INSPECT_SRC_OWN);
}
