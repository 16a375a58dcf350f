/* The live API the agent and the healing pipeline build on, against a real
 * /usr/bin/python3.11 child: thread and frame iteration, frame fields,
 * localsplus values, code object pieces (quickened units, exception and
 * line tables, consts, names) and a suspended generator's frame. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "inspect/inspect.h"
#include "rewrite/rewrite.h"

static const char *script =
	"import sys, threading\n"
	"def g():\n"
	"    x = 41\n"
	"    yield x\n"
	"    yield 2\n"
	"def target(a, b):\n"
	"    s = 'abc'\n"
	"    try:\n"
	"        t = (a, b)\n"
	"        lock.acquire()\n"
	"    except KeyError:\n"
	"        pass\n"
	"gen = g(); next(gen)\n"
	"lock = threading.Lock(); lock.acquire()\n"
	"th = threading.Thread(target=target, args=(3, 'four'), daemon=True); th.start()\n"
	"import time\n"
	"while not any(f.f_code is target.__code__ for f in sys._current_frames().values()): time.sleep(0.01)\n"
	"time.sleep(0.1)\n"
	"print(id(gen), id(target.__code__), th.native_id, target.__code__.co_firstlineno + 4, flush=True)\n"
	"threading.Event().wait()\n";

static pid_t child = -1;
static unsigned long long gen_addr, code_addr, worker_tid;
static int acquire_line;

static void start(void)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	const char *py = getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3.11";
	pid_t parent = getpid();
	child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		/* dies with the test, even when an assertion ends it early */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		dup2(fds[1], 1);
		close(fds[0]);
		execl(py, py, "-c", script, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	FILE *f = fdopen(fds[0], "r");
	cr_assert_eq(fscanf(f, "%llu %llu %llu %d", &gen_addr, &code_addr, &worker_tid,
			    &acquire_line),
		     4, "no ready line from python");
	fclose(f);
}

static void stop(void)
{
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
}

TestSuite(inspect_live, .init = start, .fini = stop, .timeout = 60);

static char *repr(struct inspect_proc *ip, uint64_t addr)
{
	static char buf[256];
	struct inspect_str s = { 0 };
	cr_assert_eq(inspect_value__repr(inspect_proc__reader(ip), addr, NULL, &s), 0);
	snprintf(buf, sizeof(buf), "%s", s.p);
	inspect_str__free(&s);
	return buf;
}

Test(inspect_live, threads_frames_code_and_generators)
{
	struct inspect_opts o = { .no_cache = true };
	struct inspect_proc *ip = NULL;
	char err[512];
	cr_assert_eq(inspect_proc__open(child, &o, &ip, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(inspect_proc__version(ip) >> 16, 0x030bu);
	const struct inspect_reader *r = inspect_proc__reader(ip);

	struct inspect_thread_iter it;
	struct inspect_thread t;
	struct inspect_frame f;
	int found = 0, nthreads = 0, rc;
	cr_assert_eq(inspect_threads__begin(ip, &it), 0);
	while ((rc = inspect_threads__next(&it, &t)) == 1) {
		nthreads++;
		if (t.native_id != worker_tid)
			continue;
		struct inspect_frame_iter fi;
		inspect_frames__begin(ip, t.current_frame, &fi);
		cr_assert_eq(inspect_frames__next(&fi, &f), 1);
		found = 1;
	}
	cr_expect_eq(rc, 0);
	cr_expect_eq(nthreads, 2);
	cr_assert(found, "worker thread %llu not found", worker_tid);

	/* The worker's innermost frame is target(), blocked in lock.acquire(). */
	cr_expect_eq(f.code, code_addr);
	cr_expect_eq(f.owner, INSPECT_OWNED_BY_THREAD);
	cr_expect_eq(f.nlocalsplus, 4);
	cr_expect_geq(f.lasti, 0);
	struct inspect_code c;
	cr_assert_eq(inspect_code__read(r, f.code, &c), 0);
	cr_expect_str_eq(c.name, "target");
	cr_expect_str_eq(c.qualname, "target");
	cr_expect_eq(c.argcount, 2);
	int line = 0;
	cr_expect_eq(inspect_code__line(r, &c, f.lasti, &line), 0);
	cr_expect_eq(line, acquire_line);

	uint64_t slots[4];
	cr_assert_eq(inspect_frame__slots(ip, &f, 0, 4, slots), 0);
	cr_expect_eq(inspect_frame__slots(ip, &f, 2, 3, slots), -EINVAL);
	const char *want[4] = { "3", "'four'", "'abc'", "(3, 'four')" };
	const char *names[4] = { "a", "b", "s", "t" };
	for (int i = 0; i < 4; i++) {
		char name[32];
		uint8_t kind;
		cr_expect_str_eq(repr(ip, slots[i]), want[i]);
		cr_assert_eq(inspect_code__local(r, &c, i, name, sizeof(name), &kind), 0);
		cr_expect_str_eq(name, names[i]);
		cr_expect(kind & INSPECT_FAST_LOCAL);
	}

	/* Raw pieces for rewrite/: quickened units start with RESUME. */
	uint8_t *units;
	size_t n;
	cr_assert_eq(inspect_code__units(r, &c, &units, &n), 0);
	cr_expect_eq(n, 2 * (size_t)c.ncodeunits);
	cr_expect_eq(rewrite_opcode__deopt(units[0]), rewrite_opcode__by_name("RESUME"));
	free(units);
	uint8_t *tab;
	cr_assert_eq(inspect_bytes__read(r, c.exctable, 1 << 16, &tab, &n), 0);
	cr_expect_gt(n, 0, "try/except has an exception table");
	free(tab);
	cr_expect_eq(inspect_bytes__read(r, c.linetable, 1, &tab, &n), -E2BIG);
	uint64_t *items;
	cr_assert_eq(inspect_tuple__read(r, c.names, 64, &items, &n), 0);
	int saw_lock = 0;
	for (size_t i = 0; i < n; i++)
		saw_lock |= strcmp(repr(ip, items[i]), "'lock'") == 0;
	free(items);
	cr_expect(saw_lock, "co_names has 'lock'");
	cr_assert_eq(inspect_tuple__read(r, c.consts, 64, &items, &n), 0);
	int saw_abc = 0;
	for (size_t i = 0; i < n; i++)
		saw_abc |= strcmp(repr(ip, items[i]), "'abc'") == 0;
	free(items);
	cr_expect(saw_abc, "co_consts has 'abc'");

	/* A suspended generator: its frame is in no thread's chain. */
	struct inspect_frame gf;
	cr_assert_eq(inspect_gen__frame(ip, gen_addr, &gf), 0);
	cr_expect_eq(gf.owner, INSPECT_OWNED_BY_GENERATOR);
	struct inspect_code gc;
	cr_assert_eq(inspect_code__read(r, gf.code, &gc), 0);
	cr_expect_str_eq(gc.name, "g");
	cr_expect_eq(inspect_code__line(r, &gc, gf.lasti, &line), 0);
	cr_expect_eq(line, 4, "suspended at 'yield x'");
	uint64_t x;
	cr_assert_eq(inspect_frame__slots(ip, &gf, 0, 1, &x), 0);
	cr_expect_str_eq(repr(ip, x), "41");
	cr_expect_eq(inspect_gen__frame(ip, code_addr, &gf), -EINVAL);

	uint64_t holder = 1;
	cr_expect_eq(inspect_proc__gil_holder(ip, &holder), 0);
	inspect_proc__close(ip);
}

Test(inspect_live, open_errors)
{
	struct inspect_proc *ip = (void *)1;
	char err[512];
	cr_expect_eq(inspect_proc__open(getpid(), NULL, &ip, err, sizeof(err)), -ENOEXEC, "%s",
		     err);
	cr_expect_null(ip);
	cr_expect(strstr(err, "not a Python process") != NULL, "%s", err);
	inspect_proc__close(NULL);
}
