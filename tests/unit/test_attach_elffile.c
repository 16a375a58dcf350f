/* attach/: attach_elf__file_uint, an exported integer read from an ELF file
 * on disk (suture-run's interpreter check), through .gnu.hash with preads,
 * or libelf's scan of .dynsym when the file has no .gnu.hash. */
#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attach/attach.h"

static const char *const pythons[] = { "/usr/bin/python3.11", "/usr/bin/python3.11d",
				       "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0" };

static char *slurp(const char *path, size_t *n)
{
	int fd = open(path, O_RDONLY);
	struct stat sb;
	cr_assert(fd >= 0 && fstat(fd, &sb) == 0, "%s", path);
	char *b = malloc((size_t)sb.st_size);
	cr_assert(b);
	cr_assert_eq(pread(fd, b, (size_t)sb.st_size, 0), sb.st_size);
	close(fd);
	*n = (size_t)sb.st_size;
	return b;
}

static void spill(const char *path, const char *b, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, b, n), (ssize_t)n);
	close(fd);
}

/* An empty file of our own at path (a mkstemp template). */
static void temp_file(char *path)
{
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	close(fd);
}

/* The Debian interpreter's bytes (the test skips without it), and an
 * empty file of our own at path for the copies made of them. */
static char *interpreter_bytes(char *path, size_t *n)
{
	if (access(pythons[0], R_OK))
		cr_skip_test("no %s on this machine", pythons[0]);
	temp_file(path);
	return slurp(pythons[0], n);
}

/* The section header of the given type in an ELF64 image, or NULL. */
static Elf64_Shdr *section(char *b, size_t n, uint32_t type)
{
	Elf64_Ehdr *eh = (Elf64_Ehdr *)b;
	cr_assert(eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) <= n);
	Elf64_Shdr *sh = (Elf64_Shdr *)(b + eh->e_shoff);
	for (unsigned i = 0; i < eh->e_shnum; i++)
		if (sh[i].sh_type == type)
			return &sh[i];
	return NULL;
}

Test(attach_elffile, interpreters_report_their_version)
{
	int seen = 0;
	for (size_t i = 0; i < sizeof(pythons) / sizeof(*pythons); i++) {
		uint64_t v = 0;
		if (access(pythons[i], R_OK))
			continue;
		cr_assert_eq(attach_elf__file_uint(pythons[i], "Py_Version", &v), 0, "%s",
			     pythons[i]);
		cr_assert_eq(v >> 16, 0x030b, "%s: %llx", pythons[i], (unsigned long long)v);
		seen++;
	}
	if (!seen)
		cr_skip_test("no CPython 3.11 interpreter file on this machine");
}

/* The pread lookup and libelf's scan (the same file with its .gnu.hash
 * retyped, which sends the lookup to the scan) agree. */
Test(attach_elffile, hash_lookup_agrees_with_the_scan)
{
	char path[] = "/tmp/suture-elffile.XXXXXX";
	size_t n;
	char *b = interpreter_bytes(path, &n);
	uint64_t hashed = 0, scanned = 0;
	cr_assert_eq(attach_elf__file_uint(pythons[0], "Py_Version", &hashed), 0);
	Elf64_Shdr *gh = section(b, n, SHT_GNU_HASH);
	cr_assert(gh, "the interpreter has a .gnu.hash");
	gh->sh_type = SHT_PROGBITS;
	spill(path, b, n);
	cr_assert_eq(attach_elf__file_uint(path, "Py_Version", &scanned), 0);
	cr_assert_eq(hashed, scanned);
	/* Both say "not exported" alike. */
	cr_assert_eq(attach_elf__file_uint(path, "Py_NoSuchThing", &scanned), -ENOENT);
	cr_assert_eq(attach_elf__file_uint(pythons[0], "Py_NoSuchThing", &hashed), -ENOENT);
	/* Exported, but a function: not an integer object. */
	cr_assert_eq(attach_elf__file_uint(pythons[0], "Py_Initialize", &hashed), -ENOENT);
	unlink(path);
	free(b);
}

Test(attach_elffile, what_is_not_an_elf_file)
{
	uint64_t v = 7;
	char path[] = "/tmp/suture-elffile.XXXXXX";
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "#!/bin/sh\nexit 0\n", 17), 17);
	close(fd);
	cr_assert_eq(attach_elf__file_uint(path, "Py_Version", &v), -ENOEXEC);
	cr_assert_eq(attach_elf__file_uint("/nonexistent/python3.11", "Py_Version", &v), -ENOENT);
	cr_assert_eq(v, 7, "nothing written on failure");
	unlink(path);
}

/* A truncated copy, and copies with the hash table's words and the
 * dynamic symbols changed at random: an answer or -ENOENT/-ENOEXEC, never
 * a read outside the sections (the fuzz harness runs it under ASan). */
Test(attach_elffile, damaged_copies_give_errors)
{
	char path[] = "/tmp/suture-elffile.XXXXXX";
	size_t n;
	char *orig = interpreter_bytes(path, &n);
	char *b = malloc(n);
	cr_assert(b);
	uint64_t v;
	spill(path, orig, 4096);
	cr_assert_eq(attach_elf__file_uint(path, "Py_Version", &v), -ENOEXEC);

	Elf64_Shdr *gh = section(orig, n, SHT_GNU_HASH);
	Elf64_Shdr *ds = section(orig, n, SHT_DYNSYM);
	cr_assert(gh && ds);
	uint64_t lo = gh->sh_offset < ds->sh_offset ? gh->sh_offset : ds->sh_offset;
	uint64_t hi = gh->sh_offset + gh->sh_size > ds->sh_offset + ds->sh_size
			      ? gh->sh_offset + gh->sh_size
			      : ds->sh_offset + ds->sh_size;
	/* The header's words: no buckets, a bloom filter past the end. */
	memcpy(b, orig, n);
	memset(b + gh->sh_offset, 0, 4);
	spill(path, b, n);
	cr_assert_eq(attach_elf__file_uint(path, "Py_Version", &v), -ENOEXEC);
	memcpy(b, orig, n);
	memset(b + gh->sh_offset + 8, 0xff, 4);
	spill(path, b, n);
	cr_assert_eq(attach_elf__file_uint(path, "Py_Version", &v), -ENOEXEC);

	unsigned seed = 12345, answered = 0;
	for (int round = 0; round < 300; round++) {
		memcpy(b, orig, n);
		for (int k = 0; k < 8; k++) {
			seed = seed * 1103515245u + 12345u;
			uint64_t at = lo + (seed >> 8) % (hi - lo);
			b[at] = (char)(seed >> 3);
		}
		spill(path, b, n);
		int rc = attach_elf__file_uint(path, "Py_Version", &v);
		cr_assert(rc == 0 || rc == -ENOENT || rc == -ENOEXEC, "round %d: %d", round, rc);
		answered += rc == 0;
	}
	cr_assert_gt(answered, 0, "most damage misses the symbol's own chain");
	unlink(path);
	free(b);
	free(orig);
}

/* A shared-libpython interpreter: its libpython is found where the loader
 * finds it (pyenv's DT_RUNPATH), and found again through $ORIGIN and
 * $LD_LIBRARY_PATH in a copy of the executable moved elsewhere. */
Test(attach_elffile, needed_libpython_is_found_as_the_loader_would)
{
	static const char py[] = "/root/.pyenv/versions/3.11.7/bin/python3.11";
	static const char lib[] = "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0";
	char out[PATH_MAX];
	uint64_t v = 0;
	if (access(py, R_OK) || access(lib, R_OK))
		cr_skip_test("no shared-libpython pyenv 3.11.7 on this machine");
	cr_assert_eq(attach_elf__file_needed(py, "libpython3", out, sizeof(out)), 0);
	cr_assert_str_eq(out, lib);
	cr_assert_eq(attach_elf__file_uint(out, "Py_Version", &v), 0);
	cr_assert_eq(v >> 16, 0x030b);
	/* Needed, but by another name: nothing. */
	cr_assert_eq(attach_elf__file_needed(py, "libnosuchthing", out, sizeof(out)), -ENOENT);

	/* A copy with its DT_RUNPATH turned into an $ORIGIN one: the
	 * library next to it is found; without it, $LD_LIBRARY_PATH. */
	char dir[] = "/tmp/suture-elffile.XXXXXX";
	cr_assert(mkdtemp(dir));
	char exe[PATH_MAX], link[PATH_MAX], libdir[PATH_MAX];
	snprintf(exe, sizeof(exe), "%s/bin/python3.11", dir);
	snprintf(libdir, sizeof(libdir), "%s/lib", dir);
	snprintf(link, sizeof(link), "%s/lib/libpython3.11.so.1.0", dir);
	char bin[PATH_MAX];
	snprintf(bin, sizeof(bin), "%s/bin", dir);
	cr_assert_eq(mkdir(bin, 0700), 0);
	cr_assert_eq(mkdir(libdir, 0700), 0);
	size_t n;
	char *b = slurp(py, &n);
	const char *old = "/root/.pyenv/versions/3.11.7/lib";
	char *at = memmem(b, n, old, strlen(old) + 1);
	cr_assert(at, "the runpath string is in the file");
	memset(at, 0, strlen(old));
	memcpy(at, "$ORIGIN/../lib", 14);
	spill(exe, b, n);
	cr_assert_eq(symlink(lib, link), 0);
	cr_assert_eq(attach_elf__file_needed(exe, "libpython3", out, sizeof(out)), 0);
	char want[PATH_MAX];
	snprintf(want, sizeof(want), "%s/bin/../lib/libpython3.11.so.1.0", dir);
	cr_assert_str_eq(out, want);
	unlink(link);
	/* Gone from there: the system's, if it has one (Debian's libpython3.11
	 * package), as the loader would take it; else none. */
	static const char sys_lib[] = "/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0";
	if (access(sys_lib, R_OK) == 0) {
		char r1[PATH_MAX], r2[PATH_MAX];
		cr_assert_eq(attach_elf__file_needed(exe, "libpython3", out, sizeof(out)), 0);
		cr_assert(realpath(out, r1) && realpath(sys_lib, r2));
		cr_assert_str_eq(r1, r2); /* /lib may be /usr/lib */
	} else {
		cr_assert_eq(attach_elf__file_needed(exe, "libpython3", out, sizeof(out)), -ENOENT);
	}
	setenv("LD_LIBRARY_PATH", "/nonexistent:/root/.pyenv/versions/3.11.7/lib", 1);
	cr_assert_eq(attach_elf__file_needed(exe, "libpython3", out, sizeof(out)), 0);
	unsetenv("LD_LIBRARY_PATH");
	cr_assert_str_eq(out, lib);
	/* A statically linked interpreter needs no libpython. */
	if (access(pythons[0], R_OK) == 0)
		cr_assert_eq(attach_elf__file_needed(pythons[0], "libpython3", out, sizeof(out)),
			     -ENOENT);
	unlink(exe);
	rmdir(bin);
	rmdir(libdir);
	rmdir(dir);
	free(b);
}
