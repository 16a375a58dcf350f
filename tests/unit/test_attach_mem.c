/* attach/: remote memory, maps, ELF lookup against child processes. */
#include <criterion/criterion.h>
#include <elf.h>
#include <pthread.h>
#include <sys/mman.h>

#include "attach/attach.h"
#include "attach/attach-priv.h" /* the symbol index, to see it was not built */
#include "test_attach_util.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

/* Fork preserves the layout: the child's copy lives at the same address. */
static char shared_buf[4096] = "hello from the child";
static volatile uint64_t shared_word = 0x1122334455667788ull;

/* Exported (non-static) so it is in .symtab of this PIE test binary. */
int attach_test_marker(int x);
int attach_test_marker(int x)
{
	return x * 3 + 1;
}

static int child_mem(int in, int out)
{
	char b;

	if (write(out, "R", 1) != 1)
		return 2;
	if (read(in, &b, 1) != 1)
		return 3;
	/* The parent wrote into our memory: report what we see. */
	return strcmp(shared_buf, "written by the parent") == 0 && shared_word == 42 ? 0 : 1;
}

Test(attach_mem, read_write_roundtrip)
{
	struct child c = child_start(child_mem);
	struct attach_proc *p;
	char buf[64] = { 0 };
	uint64_t w = 0;
	int st;

	cr_assert(c.pid > 0);
	cr_assert_eq(attach_proc__open(c.pid, &p), 0);
	cr_assert_eq(attach_proc__pid(p), c.pid);
	cr_assert_eq(attach_proc__read(p, (uint64_t)(uintptr_t)shared_buf, buf, 21), 0);
	cr_assert_str_eq(buf, "hello from the child");
	cr_assert_eq(attach_proc__read(p, (uint64_t)(uintptr_t)&shared_word, &w, 8), 0);
	cr_assert_eq(w, 0x1122334455667788ull);
	cr_assert_eq(attach_proc__write(p, (uint64_t)(uintptr_t)shared_buf, "written by the parent",
					22),
		     0);
	w = 42;
	cr_assert_eq(attach_proc__write(p, (uint64_t)(uintptr_t)&shared_word, &w, 8), 0);
	/* Read back what we wrote. */
	memset(buf, 0, sizeof(buf));
	cr_assert_eq(attach_proc__read(p, (uint64_t)(uintptr_t)shared_buf, buf, 22), 0);
	cr_assert_str_eq(buf, "written by the parent");
	cr_assert_eq(write(c.wr, "g", 1), 1);
	st = child_wait(&c, 5000);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child saw status %x", st);
	attach_proc__close(p);
	child_end(&c);
}

Test(attach_mem, readv_batch_and_faults)
{
	struct child c = child_start(child_mem);
	struct attach_proc *p;
	char a[8] = { 0 }, b[8] = { 0 };
	uint64_t w = 0;
	static const char code[] = { 0x90 };

	cr_assert(c.pid > 0);
	cr_assert_eq(attach_proc__open(c.pid, &p), 0);
	struct attach_iov v[3] = {
		{ (uint64_t)(uintptr_t)shared_buf, a, 5 },
		{ (uint64_t)(uintptr_t)shared_buf + 6, b, 4 },
		{ (uint64_t)(uintptr_t)&shared_word, &w, 8 },
	};
	cr_assert_eq(attach_proc__readv(p, v, 3), 0);
	cr_assert_str_eq(a, "hello");
	cr_assert_str_eq(b, "from");
	cr_assert_eq(w, 0x1122334455667788ull);
	/* An unmapped piece fails the whole batch with -EFAULT. */
	v[1].addr = 8;
	cr_assert_eq(attach_proc__readv(p, v, 3), -EFAULT);
	cr_assert(strstr(attach_proc__error(p), "attach: pid"), "%s", attach_proc__error(p));
	cr_assert_eq(attach_proc__read(p, 0, a, 1), -EFAULT);
	cr_assert_eq(attach_proc__write(p, 16, a, 1), -EFAULT);
	/* Read-only code is writable through the mem-file fallback: write the
	 * same byte back to keep the child intact. */
	{
		unsigned char orig;
		uint64_t at = (uint64_t)(uintptr_t)&attach_test_marker;
		cr_assert_eq(attach_proc__read(p, at, &orig, 1), 0);
		cr_assert_eq(attach_proc__write(p, at, &orig, 1), 0);
		(void)code;
	}
	attach_proc__close(p);
	child_end(&c);
}

Test(attach_mem, maps_and_pie_symbol_bias)
{
	struct child c = child_start(child_mem);
	struct attach_proc *p;
	struct attach_elf *exe, *libc;
	uint64_t addr = 0, size = 0;
	size_t i;
	int found_stack = 0, found_exe = 0;

	cr_assert(c.pid > 0);
	cr_assert_eq(attach_proc__open(c.pid, &p), 0);
	cr_assert_eq(attach_proc__refresh_maps(p), 0);
	cr_assert_gt(attach_proc__map_count(p), 5);
	for (i = 0; i < attach_proc__map_count(p); i++) {
		const struct attach_map *m = attach_proc__map(p, i);
		cr_assert_lt(m->start, m->end);
		if (!strcmp(m->path, "[stack]"))
			found_stack = 1;
		if (strstr(m->path, "test_attach_mem") && m->perms[2] == 'x')
			found_exe = 1;
	}
	cr_assert(found_stack && found_exe);
	cr_assert_null(attach_proc__map(p, attach_proc__map_count(p)));

	cr_assert_eq(attach_proc__find_elf(p, NULL, &exe), 0, "%s", attach_proc__error(p));
	cr_assert(strstr(attach_elf__path(exe), "test_attach_mem"));
	/* PIE: the bias is the random load address, not 0. */
	cr_assert_neq(attach_elf__bias(exe), 0);
	cr_assert_eq(attach_elf__symbol(exe, "attach_test_marker", &addr, &size), 0, "%s",
		     attach_proc__error(p));
	cr_assert_eq(addr, (uint64_t)(uintptr_t)&attach_test_marker);
	cr_assert_gt(size, 0);
	cr_assert_eq(attach_elf__symbol(exe, "no_such_symbol_xyz", &addr, NULL), -ENOENT);
	cr_assert_eq(strlen(attach_elf__build_id(exe)), 40);

	/* A shared library: the default version of a versioned symbol. */
	cr_assert_eq(attach_proc__find_elf(p, "libc.so", &libc), 0, "%s", attach_proc__error(p));
	cr_assert_eq(attach_elf__symbol(libc, "getpid", &addr, NULL), 0);
	cr_assert_eq(addr, (uint64_t)(uintptr_t)&getpid);
	cr_assert_eq(attach_elf__symbol(libc, "dlopen", &addr, NULL), 0);
	/* Two versions in libc (GLIBC_2.2.5 hidden, GLIBC_2.3.2 default):
	 * the one a program links against. */
	cr_assert_eq(attach_elf__symbol(libc, "pthread_cond_wait", &addr, NULL), 0);
	cr_assert_eq(addr, (uint64_t)(uintptr_t)&pthread_cond_wait);
	{
		struct attach_sym s;
		cr_assert_eq(attach_elf__symbol_info(libc, "strlen", &s), 0);
		cr_assert_eq(s.type, STT_GNU_IFUNC);
	}
	cr_assert_eq(attach_proc__find_elf(p, "libnotloaded.so", &libc), -ENOENT);
	attach_proc__close(p);
	child_end(&c);
}

/* .dynsym lookups go through .gnu.hash (no sort of every symbol) and find
 * what the dynamic linker finds: every default-version function and object
 * libc exports, at the address dlsym gives this process (an IFUNC's is its
 * resolver's choice: skipped). */
Test(attach_mem, dynsym_by_gnu_hash_agrees_with_dlsym)
{
	struct attach_proc *p;
	struct attach_elf *libc;
	cr_assert_eq(attach_proc__open(getpid(), &p), 0);
	cr_assert_eq(attach_proc__refresh_maps(p), 0);
	cr_assert_eq(attach_proc__find_elf(p, "libc.so", &libc), 0, "%s", attach_proc__error(p));
	int fd = open(attach_elf__path(libc), O_RDONLY);
	cr_assert_geq(fd, 0);
	elf_version(EV_CURRENT);
	Elf *e = elf_begin(fd, ELF_C_READ, NULL);
	cr_assert_not_null(e);
	Elf_Scn *scn = NULL, *dyn = NULL, *vs = NULL;
	GElf_Shdr sh;
	while ((scn = elf_nextscn(e, scn)))
		if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_DYNSYM)
			dyn = scn;
		else if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_GNU_versym)
			vs = scn;
	cr_assert(dyn && vs);
	gelf_getshdr(dyn, &sh);
	Elf_Data *d = elf_getdata(dyn, NULL), *vd = elf_getdata(vs, NULL);
	size_t n = sh.sh_size / sh.sh_entsize, checked = 0;
	for (size_t i = 1; i < n; i++) {
		GElf_Sym s;
		uint16_t ver;
		gelf_getsym(d, (int)i, &s);
		memcpy(&ver, (char *)vd->d_buf + i * 2, 2);
		int t = GELF_ST_TYPE(s.st_info);
		if (s.st_shndx == SHN_UNDEF || (ver & 0x8000) || (t != STT_FUNC && t != STT_OBJECT))
			continue;
		const char *nm = elf_strptr(e, sh.sh_link, s.st_name);
		void *want = dlsym(RTLD_DEFAULT, nm);
		Dl_info di;
		if (!want || !dladdr(want, &di) || !strstr(di.dli_fname, "libc.so"))
			continue; /* another library's, or not visible to dlsym */
		uint64_t addr = 0;
		cr_assert_eq(attach_elf__symbol(libc, nm, &addr, NULL), 0, "%s", nm);
		cr_assert_eq(addr, (uint64_t)(uintptr_t)want, "%s", nm);
		checked++;
	}
	cr_assert_gt(checked, 500, "only %zu symbols checked", checked);
	cr_assert_eq(attach_elf__symbol(libc, "no_such_symbol_xyz", NULL, NULL), -ENOENT);
	cr_assert(!libc->syms[0].built, "the sorted .dynsym index was built");
	elf_end(e);
	close(fd);
	attach_proc__close(p);
}

/* Start a program and wait until it has mapped its executable. */
static pid_t spawn(const char *const argv[])
{
	pid_t pid = test_fork();
	char exe[256], path[64];
	int i;

	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);
		dup2(fd, 0);
		dup2(fd, 1);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	for (i = 0; i < 5000; i++) {
		ssize_t n = readlink(path, exe, sizeof(exe) - 1);
		if (n > 0) {
			exe[n] = 0;
			if (!strcmp(exe, argv[0]))
				break;
		}
		usleep(1000);
	}
	usleep(100000); /* let the dynamic linker map the libraries */
	return pid;
}

static void end(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

Test(attach_mem, python_build_id_debug_file_and_runtime)
{
	const char *const argv[] = { "/usr/bin/python3.11", "-c", "import time; time.sleep(30)",
				     NULL };
	pid_t pid = spawn(argv);
	struct attach_proc *p;
	struct attach_elf *exe;
	const char *dbg;
	uint64_t addr;
	unsigned long ver = 0;

	cr_assert_eq(attach_proc__open(pid, &p), 0);
	cr_assert_eq(attach_proc__find_elf(p, NULL, &exe), 0, "%s", attach_proc__error(p));
	cr_assert_str_eq(attach_elf__path(exe), "/usr/bin/python3.11");
	cr_assert_str_eq(attach_elf__build_id(exe), "c561f3aa7232f2bd6ac6d56bd475f1c154a00486");
	cr_assert_eq(attach_elf__debug_file(exe, &dbg), 0, "%s", attach_proc__error(p));
	cr_assert(
		strstr(dbg,
		       "/usr/lib/debug/.build-id/c5/61f3aa7232f2bd6ac6d56bd475f1c154a00486.debug"),
		"%s", dbg);
	/* Py_Version is exported: reading it through the symbol proves the
	 * address (bias included) is right. */
	cr_assert_eq(attach_elf__symbol(exe, "Py_Version", &addr, NULL), 0);
	cr_assert_eq(attach_proc__read(p, addr, &ver, sizeof(ver)), 0);
	cr_assert_eq(ver, 0x030b02f0ul, "Py_Version %lx", ver);
	cr_assert_eq(attach_elf__symbol(exe, "_PyRuntime", &addr, NULL), 0);
	attach_proc__close(p);
	end(pid);
}

Test(attach_mem, pyenv_libpython_has_its_own_dwarf)
{
	const char *const argv[] = { "/root/.pyenv/versions/3.11.7/bin/python3.11", "-c",
				     "import time; time.sleep(30)", NULL };
	struct attach_proc *p;
	struct attach_elf *lib;
	const char *dbg;
	uint64_t addr;
	unsigned long ver = 0;
	pid_t pid;

	if (access(argv[0], X_OK))
		cr_skip_test("no pyenv 3.11.7 on this machine");
	pid = spawn(argv);
	cr_assert_eq(attach_proc__open(pid, &p), 0);
	cr_assert_eq(attach_proc__find_elf(p, "libpython3.11", &lib), 0, "%s",
		     attach_proc__error(p));
	cr_assert_neq(attach_elf__bias(lib), 0);
	cr_assert_eq(attach_elf__symbol(lib, "Py_Version", &addr, NULL), 0);
	cr_assert_eq(attach_proc__read(p, addr, &ver, sizeof(ver)), 0);
	cr_assert_eq(ver, 0x030b07f0ul, "Py_Version %lx", ver);
	cr_assert_eq(attach_elf__debug_file(lib, &dbg), 0);
	/* Not stripped: the object is its own debug file. */
	cr_assert(strstr(dbg, "/proc/") != NULL, "%s", dbg);
	attach_proc__close(p);
	end(pid);
}

/* .gnu_debuglink: build a program, split its DWARF out, and check the lookup
 * finds it (CRC verified) and refuses a debug file whose CRC differs. */
Test(attach_mem, debuglink_with_crc)
{
	char dir[] = "/tmp/attach-dbglink-XXXXXX", cmd[1024], prog[256], dbgf[256];
	struct attach_proc *p;
	struct attach_elf *exe;
	const char *dbg;
	pid_t pid;

	cr_assert(mkdtemp(dir));
	snprintf(prog, sizeof(prog), "%s/prog", dir);
	snprintf(dbgf, sizeof(dbgf), "%s/prog.debug", dir);
	snprintf(
		cmd, sizeof(cmd),
		"cd %s && printf 'int main(void){for(;;)__asm__ volatile(\"pause\");}\\n' > p.c &&"
		" cc -g -Wl,--build-id=none -o prog p.c && objcopy --only-keep-debug prog prog.debug &&"
		" strip --strip-debug prog && objcopy --add-gnu-debuglink=prog.debug prog",
		dir);
	cr_assert_eq(system(cmd), 0);
	{
		const char *const argv[] = { prog, NULL };
		pid = spawn(argv);
	}
	cr_assert_eq(attach_proc__open(pid, &p), 0);
	cr_assert_eq(attach_proc__find_elf(p, NULL, &exe), 0, "%s", attach_proc__error(p));
	cr_assert_str_eq(attach_elf__build_id(exe), "");
	cr_assert_eq(attach_elf__debug_file(exe, &dbg), 0, "%s", attach_proc__error(p));
	cr_assert(strstr(dbg, dbgf), "%s", dbg);
	attach_proc__close(p);

	/* Same program, debug file altered (one byte appended): CRC mismatch. */
	snprintf(cmd, sizeof(cmd), "printf x >> %s", dbgf);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(attach_proc__open(pid, &p), 0);
	cr_assert_eq(attach_proc__find_elf(p, NULL, &exe), 0);
	cr_assert_eq(attach_elf__debug_file(exe, &dbg), -ENOENT);
	cr_assert(strstr(attach_proc__error(p), "no DWARF"), "%s", attach_proc__error(p));
	attach_proc__close(p);
	end(pid);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

Test(attach_mem, open_errors)
{
	struct attach_proc *p = (void *)1;
	char msg[256];
	pid_t pid = test_fork();

	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0); /* reaped: the pid no longer exists */
	cr_assert_eq(attach_proc__open(pid, &p), -ESRCH);
	cr_assert_null(p);
	attach_explain_error(pid, -ESRCH, msg, sizeof(msg));
	cr_assert(strstr(msg, "no such process"), "%s", msg);
	cr_assert_eq(attach_proc__open(0, &p), -ESRCH);
	attach_proc__close(NULL);
	cr_assert_str_eq(attach_proc__error(NULL), "");
}

Test(attach_mem, parsers)
{
	struct attach_map m;
	size_t plen;
	const char *l1 =
		"7f0000001000-7f0000002000 r-xp 00001000 08:01 123456     /usr/lib/x y.so (deleted)";
	const char *l2 = "7ffc0000-7ffc1000 rw-p 00000000 00:00 0 ";
	const char *bad[] = { "",
			      "zz-10 r-xp 0 0:0 0",
			      "10-5 r-xp 0 0:0 0",
			      "1-2 rwxq 0 0:0 0",
			      "1-2 r-xp 0 0:0",
			      "1-2 r-xp 0 0:0 x",
			      "11111111111111111-2 r-xp 0 0:0 0" };
	size_t i;
	char hex[64];
	/* A GNU build-id note: namesz 4, descsz 4, type 3, "GNU\0", desc. */
	const uint8_t note[] = { 4, 0, 0,   0,   4,   0, 0,    0,    3,    0,
				 0, 0, 'G', 'N', 'U', 0, 0xde, 0xad, 0xbe, 0xef };
	const uint8_t link[] = { 'a', '.', 'd', 'e', 'b', 'u', 'g', 0, 0x78, 0x56, 0x34, 0x12 };
	const char *name;
	size_t nlen;
	uint32_t crc;

	cr_assert_eq(attach_maps__parse_line(l1, l1 + strlen(l1), &m, &plen), 0);
	cr_assert_eq(m.start, 0x7f0000001000ull);
	cr_assert_eq(m.end, 0x7f0000002000ull);
	cr_assert_eq(m.offset, 0x1000);
	cr_assert_str_eq(m.perms, "r-xp");
	cr_assert_eq(plen, strlen("/usr/lib/x y.so (deleted)"));
	cr_assert_eq(attach_maps__parse_line(l2, l2 + strlen(l2), &m, &plen), 0);
	cr_assert_eq(plen, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(attach_maps__parse_line(bad[i], bad[i] + strlen(bad[i]), &m, &plen),
			     -EINVAL, "accepted %s", bad[i]);

	cr_assert_eq(attach_elf__parse_build_id(note, note + sizeof(note), hex, sizeof(hex)), 0);
	cr_assert_str_eq(hex, "deadbeef");
	cr_assert_eq(attach_elf__parse_build_id(note, note + sizeof(note) - 1, hex, sizeof(hex)),
		     -EINVAL);
	cr_assert_eq(attach_elf__parse_build_id(note, note + sizeof(note), hex, 8), -ENOSPC);
	cr_assert_eq(attach_elf__parse_debuglink(link, link + sizeof(link), &name, &nlen, &crc), 0);
	cr_assert_eq(nlen, 7);
	cr_assert_eq(crc, 0x12345678u);
	cr_assert_eq(attach_elf__parse_debuglink(link, link + 10, &name, &nlen, &crc), -EINVAL);
	/* CRC-32 check value of "123456789" (the standard test vector). */
	cr_assert_eq(attach_crc32(0, "123456789", 9), 0xcbf43926u);
}

/* A string that ends right before an unmapped page, and a long one. */
static char *edge_str;
static int child_edge(int in, int out)
{
	char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char b;
	munmap(m + 4096, 4096);
	memset(m, 'x', 4096);
	memcpy(m + 4096 - 6, "tail!", 6);
	edge_str = m + 4096 - 6;
	if (write(out, &edge_str, sizeof(edge_str)) != sizeof(edge_str))
		return 2;
	if (write(out, "R", 1) != 1)
		return 2;
	return read(in, &b, 1) == 1 ? 0 : 3;
}

Test(attach_mem, read_str_at_mapping_end)
{
	int up[2], down[2];
	char *addr = NULL, buf[64], small[4], b;
	struct attach_proc *p;
	pid_t pid;

	cr_assert_eq(pipe(up), 0);
	cr_assert_eq(pipe(down), 0);
	pid = test_fork();
	if (pid == 0)
		_exit(child_edge(down[0], up[1]));
	cr_assert_eq(read(up[0], &addr, sizeof(addr)), (ssize_t)sizeof(addr));
	cr_assert_eq(read(up[0], &b, 1), 1);
	cr_assert_eq(attach_proc__open(pid, &p), 0);
	cr_assert_eq(attach_proc__read_str(p, (uint64_t)(uintptr_t)addr, buf, sizeof(buf)), 5);
	cr_assert_str_eq(buf, "tail!");
	/* a plain read of the same size runs into the unmapped page */
	cr_assert_eq(attach_proc__read(p, (uint64_t)(uintptr_t)addr, buf, sizeof(buf)), -EFAULT);
	cr_assert_eq(attach_proc__read_str(p, (uint64_t)(uintptr_t)addr, small, sizeof(small)),
		     -ERANGE);
	cr_assert_str_eq(small, "tai");
	cr_assert_eq(attach_proc__read_str(p, (uint64_t)(uintptr_t)addr - 100, buf, sizeof(buf)),
		     -ERANGE);
	cr_assert_eq(attach_proc__read_str(p, 16, buf, sizeof(buf)), -EFAULT);
	attach_proc__close(p);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}
