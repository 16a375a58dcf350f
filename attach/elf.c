/* attach/: ELF objects mapped in the target, read with libelf from the
 * target's own files, with their load bias, symbols, build-id and the file
 * holding their DWARF.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attach/attach-priv.h"

#define EF(e) ((Elf *)(e)->elf)

/* A memfd maps as "/memfd:NAME (deleted)": NAME is its basename (the
 * agent is loaded that way, inject/remote.c). */
static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	s = s ? s + 1 : path;
	return strncmp(s, "memfd:", 6) == 0 ? s + 6 : s;
}

/* Open path for reading, first as the target sees it (its root), then ours. */
static int open_in_root(pid_t pid, const char *path, char **used)
{
	char buf[PATH_MAX];
	int fd, n;

	n = snprintf(buf, sizeof(buf), "/proc/%d/root%s", (int)pid, path);
	if (n > 0 && (size_t)n < sizeof(buf)) {
		fd = open(buf, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			*used = strdup(buf);
			if (!*used) {
				close(fd);
				return -ENOMEM;
			}
			return fd;
		}
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*used = strdup(path);
	if (!*used) {
		close(fd);
		return -ENOMEM;
	}
	return fd;
}

void attach_elf__close(struct attach_elf *elf)
{
	struct attach_elf **pp;

	if (!elf)
		return;
	if (elf->proc) {
		for (pp = &elf->proc->elfs; *pp; pp = &(*pp)->next) {
			if (*pp == elf) {
				*pp = elf->next;
				break;
			}
		}
	}
	if (elf->elf)
		elf_end(EF(elf));
	if (elf->fd >= 0)
		close(elf->fd);
	free(elf->path);
	free(elf->open_path);
	free(elf->debug_path);
	free(elf->syms[0].v);
	free(elf->syms[1].v);
	free(elf);
}

/* GNU build-id from SHT_NOTE sections, else PT_NOTE segments. */
static void read_build_id(struct attach_elf *elf)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	GElf_Phdr ph;
	Elf_Data *d;
	size_t i, nph;

	elf->build_id[0] = 0;
	while ((scn = elf_nextscn(EF(elf), scn))) {
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		d = elf_getdata(scn, NULL);
		if (d && d->d_buf &&
		    attach_elf__parse_build_id(d->d_buf, (uint8_t *)d->d_buf + d->d_size,
					       elf->build_id, sizeof(elf->build_id)) == 0)
			return;
	}
	if (elf_getphdrnum(EF(elf), &nph))
		return;
	for (i = 0; i < nph; i++) {
		if (!gelf_getphdr(EF(elf), (int)i, &ph) || ph.p_type != PT_NOTE)
			continue;
		d = elf_getdata_rawchunk(EF(elf), (int64_t)ph.p_offset, ph.p_filesz, ELF_T_NHDR);
		if (d && d->d_buf &&
		    attach_elf__parse_build_id(d->d_buf, (uint8_t *)d->d_buf + d->d_size,
					       elf->build_id, sizeof(elf->build_id)) == 0)
			return;
	}
	elf->build_id[0] = 0;
}

/* bias = runtime address of a file offset - its link-time address. The
 * lowest mapping of the file (smallest offset) holds the PT_LOAD segment
 * whose page-aligned offset equals the mapping's offset. */
static int compute_bias(struct attach_elf *elf, const struct attach_map *low)
{
	GElf_Phdr ph;
	size_t i, nph;
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);

	if (elf_getphdrnum(EF(elf), &nph))
		return -EINVAL;
	for (i = 0; i < nph; i++) {
		if (!gelf_getphdr(EF(elf), (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if ((ph.p_offset & ~(pg - 1)) != low->offset)
			continue;
		elf->bias = low->start + (ph.p_offset - low->offset) - ph.p_vaddr;
		return 0;
	}
	return -ENOENT;
}

static bool same_object(const struct attach_map *m, const char *path)
{
	return m->path[0] == '/' && !strcmp(m->path, path);
}

int attach_proc__find_elf(struct attach_proc *proc, const char *name_prefix,
			  struct attach_elf **out)
{
	char exe[PATH_MAX], link[64], buf[PATH_MAX];
	const struct attach_map *low = NULL, *m;
	const char *want = NULL;
	struct attach_elf *elf;
	size_t i, plen = name_prefix ? strlen(name_prefix) : 0;
	ssize_t n;
	int err;

	*out = NULL;
	if (!proc->maps_fresh || !proc->nmaps) {
		err = attach_proc__refresh_maps(proc);
		if (err)
			return err;
	}
	if (!name_prefix) {
		snprintf(link, sizeof(link), "/proc/%d/exe", (int)proc->pid);
		n = readlink(link, exe, sizeof(exe) - 1);
		if (n <= 0)
			return attach__fail(proc, errno == ENOENT ? -ESRCH : -errno,
					    "readlink %s: %s", link, strerror(errno));
		exe[n] = 0;
		want = exe;
	}
	for (i = 0; i < proc->nmaps; i++) {
		m = &proc->maps[i];
		if (m->path[0] != '/')
			continue;
		if (want ? strcmp(m->path, want) != 0
			 : strncmp(base_name(m->path), name_prefix, plen) != 0)
			continue;
		want = m->path;
		if (!low || m->offset < low->offset)
			low = m;
	}
	if (!low)
		return attach__fail(proc, -ENOENT, "no mapped object named %s*",
				    name_prefix ? name_prefix : "(main executable)");
	for (i = 0; i < proc->nmaps; i++)
		if (same_object(&proc->maps[i], want) && proc->maps[i].offset < low->offset)
			low = &proc->maps[i];

	for (elf = proc->elfs; elf; elf = elf->next) {
		if (strcmp(elf->path, want))
			continue;
		/* Unloaded and loaded again elsewhere since: new bias. */
		if (elf->map_start != low->start) {
			err = compute_bias(elf, low);
			if (err)
				return attach__fail(proc, err,
						    "%s: no PT_LOAD segment at file offset 0x%llx",
						    want, (unsigned long long)low->offset);
			elf->map_start = low->start;
		}
		*out = elf;
		return 0;
	}

	elf = calloc(1, sizeof(*elf));
	if (!elf)
		return attach__fail(proc, -ENOMEM, "out of memory");
	elf->fd = -1;
	elf->path = strdup(want);
	if (!elf->path) {
		err = -ENOMEM;
		goto fail;
	}
	/* The target's own file: map_files names the very inode it mapped
	 * (even if replaced or deleted on disk since); needs CAP_SYS_ADMIN or
	 * CAP_CHECKPOINT_RESTORE, so fall back to its root directory. */
	snprintf(buf, sizeof(buf), "/proc/%d/map_files/%llx-%llx", (int)proc->pid,
		 (unsigned long long)low->start, (unsigned long long)low->end);
	elf->fd = open(buf, O_RDONLY | O_CLOEXEC);
	if (elf->fd >= 0) {
		elf->open_path = strdup(buf);
		if (!elf->open_path) {
			err = -ENOMEM;
			goto fail;
		}
	} else {
		err = open_in_root(proc->pid, want, &elf->open_path);
		if (err < 0) {
			attach__fail(proc, err, "open %s: %s", want, strerror(-err));
			goto fail_msg;
		}
		elf->fd = err;
	}
	elf_version(EV_CURRENT);
	elf->elf = elf_begin(elf->fd, ELF_C_READ_MMAP, NULL);
	if (!elf->elf || elf_kind(EF(elf)) != ELF_K_ELF) {
		attach__fail(proc, -ENOEXEC, "%s: not an ELF file: %s", want, elf_errmsg(-1));
		err = -ENOEXEC;
		goto fail_msg;
	}
	err = compute_bias(elf, low);
	if (err) {
		attach__fail(proc, err, "%s: no PT_LOAD segment at file offset 0x%llx", want,
			     (unsigned long long)low->offset);
		goto fail_msg;
	}
	elf->map_start = low->start;
	read_build_id(elf);
	elf->proc = proc;
	elf->next = proc->elfs;
	proc->elfs = elf;
	*out = elf;
	return 0;
fail:
	attach__fail(proc, err, "%s: %s", want, strerror(-err));
fail_msg:
	attach_elf__close(elf);
	return err;
}

uint64_t attach_elf__bias(const struct attach_elf *elf)
{
	return elf->bias;
}

const char *attach_elf__path(const struct attach_elf *elf)
{
	return elf->path;
}

const char *attach_elf__build_id(const struct attach_elf *elf)
{
	return elf->build_id;
}

/* Search one symbol table section. For .dynsym, prefer the default version
 * (dlopen@@GLIBC_2.34 over the hidden compat dlopen@GLIBC_2.2.5): versym
 * entries with bit 15 set are hidden. */
static int symref__cmp(const void *a, const void *b)
{
	const struct attach_symref *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	if (x->data != y->data) /* tables in section order */
		return x->data < y->data ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* Every defined, named symbol of the tables of kind `kind`, sorted by
 * name, then table, then index (the order a scan would meet them). */
static int symidx__build(struct attach_elf *elf, int k, Elf64_Word kind)
{
	struct attach_symidx *x = &elf->syms[k];
	Elf_Data *versym = NULL;
	Elf_Scn *scn;
	GElf_Shdr sh;
	size_t cap = 0;

	x->built = true;
	if (kind == SHT_DYNSYM)
		for (scn = NULL; (scn = elf_nextscn(EF(elf), scn));)
			if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_GNU_versym)
				versym = elf_getdata(scn, NULL);
	for (scn = NULL; (scn = elf_nextscn(EF(elf), scn));) {
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != kind || !sh.sh_entsize)
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		size_t count = sh.sh_size / sh.sh_entsize;
		if (!d)
			continue;
		for (size_t i = 1; i < count; i++) {
			GElf_Sym s;
			const char *nm;
			if (!gelf_getsym(d, (int)i, &s) || s.st_shndx == SHN_UNDEF || !s.st_name ||
			    !(nm = elf_strptr(EF(elf), sh.sh_link, s.st_name)))
				continue;
			if (x->n == cap) {
				size_t nc = cap ? 2 * cap : 1024;
				struct attach_symref *v = realloc(x->v, nc * sizeof(*v));
				if (!v)
					return -ENOMEM;
				x->v = v;
				cap = nc;
			}
			bool hidden = false;
			if (versym && versym->d_buf && (i + 1) * 2 <= versym->d_size) {
				uint16_t ver;
				memcpy(&ver, (const char *)versym->d_buf + i * 2, 2);
				hidden = ver & 0x8000;
			}
			x->v[x->n++] = (struct attach_symref){ nm, d, (uint32_t)i, hidden };
		}
	}
	qsort(x->v, x->n, sizeof(x->v[0]), symref__cmp);
	return 0;
}

static uint32_t gnu_hash(const char *s)
{
	uint32_t h = 5381;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		h = h * 33 + *p;
	return h;
}

/* .dynsym through its .gnu.hash section (the dynamic linker's own index):
 * a few symbols compared instead of sorting every one (python3.11 exports
 * thousands; a process's tools look up a few dozen). The same pick as the
 * sorted index: the first of that name in table order, past hidden
 * versions to the default one. 0, -ENOENT (not there), or 1: no usable
 * .gnu.hash (the caller builds the sorted index). */
static int gnu_hash__find(struct attach_elf *elf, const char *name, GElf_Sym *found)
{
	Elf_Scn *scn = NULL, *dyn = NULL, *hs = NULL, *vs = NULL;
	GElf_Shdr sh, dsh;
	while ((scn = elf_nextscn(EF(elf), scn))) {
		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type == SHT_GNU_HASH)
			hs = scn;
		else if (sh.sh_type == SHT_DYNSYM && !dyn)
			dyn = scn;
		else if (sh.sh_type == SHT_GNU_versym)
			vs = scn;
	}
	if (!hs || !dyn || !gelf_getshdr(dyn, &dsh) || !dsh.sh_entsize ||
	    gelf_getclass(EF(elf)) != ELFCLASS64)
		return 1;
	Elf_Data *hd = elf_getdata(hs, NULL), *dd = elf_getdata(dyn, NULL);
	Elf_Data *vd = vs ? elf_getdata(vs, NULL) : NULL;
	if (!hd || !hd->d_buf || hd->d_size < 16 || !dd)
		return 1;
	const uint8_t *p = hd->d_buf;
	uint32_t nb, symoff, nbloom;
	memcpy(&nb, p, 4);
	memcpy(&symoff, p + 4, 4);
	memcpy(&nbloom, p + 8, 4);
	size_t nsyms = dsh.sh_size / dsh.sh_entsize;
	size_t buckets = 16 + (size_t)nbloom * 8, chains = buckets + (size_t)nb * 4;
	if (!nb || nbloom > hd->d_size / 8 || chains > hd->d_size || symoff > nsyms)
		return 1;
	uint32_t h = gnu_hash(name), idx;
	memcpy(&idx, p + buckets + (size_t)(h % nb) * 4, 4);
	if (idx < symoff)
		return -ENOENT;
	bool have = false;
	for (; idx < nsyms; idx++) {
		size_t at = chains + (size_t)(idx - symoff) * 4;
		uint32_t h2;
		if (at + 4 > hd->d_size)
			return 1;
		memcpy(&h2, p + at, 4);
		GElf_Sym s;
		const char *nm;
		if ((h | 1) == (h2 | 1) && gelf_getsym(dd, (int)idx, &s) &&
		    s.st_shndx != SHN_UNDEF && s.st_name &&
		    (nm = elf_strptr(EF(elf), dsh.sh_link, s.st_name)) && strcmp(nm, name) == 0) {
			bool hidden = false;
			if (vd && vd->d_buf && ((size_t)idx + 1) * 2 <= vd->d_size) {
				uint16_t ver;
				memcpy(&ver, (const char *)vd->d_buf + (size_t)idx * 2, 2);
				hidden = ver & 0x8000;
			}
			if (!have || !hidden)
				*found = s;
			have = true;
			if (!hidden)
				return 0;
		}
		if (h2 & 1)
			break;
	}
	return have ? 0 : -ENOENT;
}

/* The symbol named `name` in the tables of one kind: the first of that
 * name in a scan, but past hidden (non-default) versions to the default
 * one when there is one. */
static int symidx__find(struct attach_elf *elf, int k, Elf64_Word kind, const char *name,
			GElf_Sym *found)
{
	struct attach_symidx *x = &elf->syms[k];
	int err;
	if (kind == SHT_DYNSYM && !x->built && !x->no_gnu_hash) {
		err = gnu_hash__find(elf, name, found);
		if (err <= 0)
			return err;
		x->no_gnu_hash = true;
	}
	if (!x->built && (err = symidx__build(elf, k, kind)))
		return err;
	size_t lo = 0, hi = x->n;
	while (lo < hi) { /* the first entry not below name */
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(x->v[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	const struct attach_symref *pick = NULL;
	for (size_t i = lo; i < x->n && strcmp(x->v[i].name, name) == 0; i++) {
		pick = &x->v[i];
		if (!pick->hidden)
			break;
	}
	if (!pick || !gelf_getsym(pick->data, (int)pick->i, found))
		return -ENOENT;
	return 0;
}

int attach_elf__symbol_info(struct attach_elf *elf, const char *name, struct attach_sym *out)
{
	static const Elf64_Word kinds[2] = { SHT_DYNSYM, SHT_SYMTAB };
	GElf_Sym s;

	for (int k = 0; k < 2; k++) {
		int err = symidx__find(elf, k, kinds[k], name, &s);
		if (err == -ENOMEM)
			return attach__fail(elf->proc, err, "%s: out of memory", elf->path);
		if (err == 0) {
			out->addr = s.st_shndx == SHN_ABS ? s.st_value : s.st_value + elf->bias;
			out->size = s.st_size;
			out->type = GELF_ST_TYPE(s.st_info);
			return 0;
		}
	}
	return attach__fail(elf->proc, -ENOENT, "%s: no symbol %s", elf->path, name);
}

int attach_elf__symbol(struct attach_elf *elf, const char *name, uint64_t *addr, uint64_t *size)
{
	struct attach_sym s;
	int err = attach_elf__symbol_info(elf, name, &s);

	if (err)
		return err;
	if (addr)
		*addr = s.addr;
	if (size)
		*size = s.size;
	return 0;
}

/* Does this ELF have real (not NOBITS, non-empty) DWARF? */
static bool has_debug_info(Elf *e)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	size_t shstrndx;
	const char *nm;

	if (elf_getshdrstrndx(e, &shstrndx))
		return false;
	while ((scn = elf_nextscn(e, scn))) {
		if (!gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS || !sh.sh_size)
			continue;
		nm = elf_strptr(e, shstrndx, sh.sh_name);
		if (nm && (!strcmp(nm, ".debug_info") || !strcmp(nm, ".zdebug_info")))
			return true;
	}
	return false;
}

static int file_crc32(int fd, uint32_t *crc)
{
	unsigned char buf[16384];
	uint32_t c = 0;
	off_t off = 0;
	ssize_t n;

	for (;;) {
		n = pread(fd, buf, sizeof(buf), off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		c = attach_crc32(c, buf, (size_t)n);
		off += n;
	}
	*crc = c;
	return 0;
}

/* A candidate debug file: an ELF with .debug_info whose build-id matches
 * (when want_id is set) or whose CRC32 matches (when want_crc is set). The
 * target's root is tried first, then ours. */
static char *try_debug_file(pid_t pid, const char *path, const char *want_id,
			    const uint32_t *want_crc)
{
	char *used = NULL;
	char id[sizeof(((struct attach_elf *)0)->build_id)];
	struct attach_elf probe = { .fd = -1 };
	uint32_t crc;
	bool ok = false;
	int fd;

	fd = open_in_root(pid, path, &used);
	if (fd < 0)
		return NULL;
	probe.elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!probe.elf || elf_kind(probe.elf) != ELF_K_ELF || !has_debug_info(probe.elf))
		goto out;
	if (want_id) {
		read_build_id(&probe);
		snprintf(id, sizeof(id), "%s", probe.build_id);
		if (strcmp(id, want_id))
			goto out;
	}
	if (want_crc && (file_crc32(fd, &crc) || crc != *want_crc))
		goto out;
	ok = true;
out:
	if (probe.elf)
		elf_end(probe.elf);
	close(fd);
	if (!ok) {
		free(used);
		return NULL;
	}
	return used;
}

static int find_debug_file(struct attach_elf *elf, char **found)
{
	char path[PATH_MAX], dir[PATH_MAX];
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	Elf_Data *d;
	size_t shstrndx, name_len;
	const char *nm, *link_name, *slash;
	uint32_t crc;
	pid_t pid = elf->proc ? elf->proc->pid : 0;
	int n;

	*found = NULL;
	if (has_debug_info(EF(elf))) {
		*found = strdup(elf->open_path);
		return *found ? 0 : -ENOMEM;
	}
	/* Build-id: /usr/lib/debug/.build-id/ab/cdef....debug */
	if (strlen(elf->build_id) > 2) {
		n = snprintf(path, sizeof(path), "/usr/lib/debug/.build-id/%.2s/%s.debug",
			     elf->build_id, elf->build_id + 2);
		if (n > 0 && (size_t)n < sizeof(path) &&
		    (*found = try_debug_file(pid, path, elf->build_id, NULL)))
			return 0;
	}
	/* .gnu_debuglink: next to the object, in .debug/ there, and under
	 * /usr/lib/debug/<dir>, each verified by the recorded CRC32. */
	if (elf_getshdrstrndx(EF(elf), &shstrndx))
		return -ENOENT;
	while ((scn = elf_nextscn(EF(elf), scn))) {
		if (!gelf_getshdr(scn, &sh))
			continue;
		nm = elf_strptr(EF(elf), shstrndx, sh.sh_name);
		if (nm && !strcmp(nm, ".gnu_debuglink"))
			break;
	}
	if (!scn || !(d = elf_getdata(scn, NULL)) || !d->d_buf)
		return -ENOENT;
	if (attach_elf__parse_debuglink(d->d_buf, (uint8_t *)d->d_buf + d->d_size, &link_name,
					&name_len, &crc))
		return -ENOENT;
	if (memchr(link_name, '/', name_len))
		return -ENOENT; /* a bare file name by definition; refuse paths */
	slash = strrchr(elf->path, '/');
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - elf->path), elf->path);
	{
		const char *fmts[3] = { "%s/%.*s", "%s/.debug/%.*s", "/usr/lib/debug%s/%.*s" };
		int i;
		for (i = 0; i < 3; i++) {
			n = snprintf(path, sizeof(path), fmts[i], dir, (int)name_len, link_name);
			if (n <= 0 || (size_t)n >= sizeof(path))
				continue;
			if (!strcmp(path, elf->path))
				continue; /* the object itself: already known to lack DWARF */
			if ((*found = try_debug_file(pid, path, NULL, &crc)))
				return 0;
		}
	}
	return -ENOENT;
}

int attach_elf__debug_file(struct attach_elf *elf, const char **path)
{
	int err;

	*path = NULL;
	if (elf->debug_err == 0) {
		err = find_debug_file(elf, &elf->debug_path);
		elf->debug_err = err ? err : 1;
	}
	if (elf->debug_err < 0)
		return attach__fail(
			elf->proc, elf->debug_err,
			"%s: no DWARF (no .debug_info, no build-id file for %s, no .gnu_debuglink match)",
			elf->path, elf->build_id[0] ? elf->build_id : "(none)");
	*path = elf->debug_path;
	return 0;
}

int attach__exec_slack(struct attach_elf *elf, uint64_t *addr, uint64_t *len)
{
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE), end, page_end;
	const struct attach_map *m;
	GElf_Phdr ph;
	size_t i, k, nph;

	if (elf_getphdrnum(EF(elf), &nph))
		return -EINVAL;
	for (i = 0; i < nph; i++) {
		if (!gelf_getphdr(EF(elf), (int)i, &ph) || ph.p_type != PT_LOAD ||
		    !(ph.p_flags & PF_X))
			continue;
		end = elf->bias + ph.p_vaddr + ph.p_memsz;
		page_end = (end + pg - 1) & ~(pg - 1);
		if (page_end - end < 32)
			continue;
		/* It must be mapped executable up to the page end. */
		for (k = 0; elf->proc && k < elf->proc->nmaps; k++) {
			m = &elf->proc->maps[k];
			if (m->start <= end && page_end <= m->end && m->perms[2] == 'x') {
				*addr = end;
				*len = page_end - end;
				return 0;
			}
		}
	}
	return -ENOENT;
}

/* The section holding sym's bytes in the file, and their offset there. */
static int sym_file_offset(Elf *e, const GElf_Sym *sym, uint64_t *off)
{
	GElf_Shdr sh;
	Elf_Scn *scn = elf_getscn(e, sym->st_shndx);
	if (!scn || !gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS)
		return -ENOENT;
	if (sym->st_value < sh.sh_addr || sym->st_value - sh.sh_addr > sh.sh_size ||
	    sh.sh_size - (sym->st_value - sh.sh_addr) < sym->st_size)
		return -ENOEXEC;
	*off = sh.sh_offset + (sym->st_value - sh.sh_addr);
	return 0;
}

/* n bytes at off, all of them: 0, -errno, or -ENOEXEC when the file ends. */
static int pread_all(int fd, void *buf, size_t n, uint64_t off)
{
	if (off > (uint64_t)INT64_MAX - n)
		return -ENOEXEC;
	ssize_t r = pread(fd, buf, n, (off_t)off);
	return r == (ssize_t)n ? 0 : r < 0 ? -errno : -ENOEXEC;
}

/* Within [0, size): len bytes at off. */
static bool in_section(const Elf64_Shdr *sh, uint64_t off, uint64_t len)
{
	return off <= sh->sh_size && len <= sh->sh_size - off;
}

#define FILE_UINT_MAX_SHDRS 128

/* An ELF64 little-endian file's header and section headers, read into the
 * caller's stack. */
struct file_shdrs {
	Elf64_Ehdr eh;
	Elf64_Shdr sh[FILE_UINT_MAX_SHDRS];
};

/* 0; -ENOEXEC: not a little-endian ELF64 file; -ENOSYS: more sections
 * than this reads (or none); -errno. */
static int file_shdrs__read(int fd, struct file_shdrs *f)
{
	int err = pread_all(fd, &f->eh, sizeof(f->eh), 0);
	if (err)
		return err;
	if (memcmp(f->eh.e_ident, ELFMAG, SELFMAG) != 0 || f->eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    f->eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return -ENOEXEC;
	if (f->eh.e_shentsize != sizeof(Elf64_Shdr) || f->eh.e_shnum == 0 ||
	    f->eh.e_shnum > FILE_UINT_MAX_SHDRS)
		return -ENOSYS;
	return pread_all(fd, f->sh, f->eh.e_shnum * sizeof(Elf64_Shdr), f->eh.e_shoff);
}

/* Through the file's .gnu.hash, with a few small preads into the stack:
 * no mapping of the file and no heap. suture-run asks this of its
 * interpreter before every start (heal/run.c, python_check); in a fresh
 * process libelf's mapped open of the 6.8 MB interpreter cost 1.0 ms, on
 * this VM mostly first touches of pages, this lookup 0.07 ms
 * (docs/performance.md, "start-up, sixth pass"). Every offset and index
 * is checked against the section it lies in (the file is whatever
 * --python names). -ENOSYS: the file has no .gnu.hash (or more sections
 * than this reads), and the caller scans .dynsym with libelf instead.
 * The hash and table layout: the GNU hash section as ld.so reads it
 * (glibc elf/dl-lookup.c, do_lookup_x; "the GNU hash ELF section"). */
static int gnu_hash_uint(int fd, const char *name, uint64_t *out)
{
	struct file_shdrs f;
	const Elf64_Shdr *sh = f.sh;
	int err = file_shdrs__read(fd, &f);
	if (err)
		return err;
	const Elf64_Ehdr eh = f.eh;
	const Elf64_Shdr *gh = NULL;
	for (unsigned i = 0; i < eh.e_shnum && !gh; i++)
		if (sh[i].sh_type == SHT_GNU_HASH)
			gh = &sh[i];
	if (!gh)
		return -ENOSYS;
	if (gh->sh_link >= eh.e_shnum || sh[gh->sh_link].sh_type != SHT_DYNSYM ||
	    sh[gh->sh_link].sh_entsize != sizeof(Elf64_Sym))
		return -ENOEXEC;
	const Elf64_Shdr *ds = &sh[gh->sh_link];
	if (ds->sh_link >= eh.e_shnum || sh[ds->sh_link].sh_type != SHT_STRTAB)
		return -ENOEXEC;
	const Elf64_Shdr *strs = &sh[ds->sh_link];
	uint64_t nsyms = ds->sh_size / sizeof(Elf64_Sym);

	uint32_t h = 5381;
	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		h = h * 33 + *c;
	/* nbuckets, symoffset, bloom words (of 8 bytes), bloom shift */
	uint32_t hd[4];
	if (!in_section(gh, 0, sizeof(hd)))
		return -ENOEXEC;
	if ((err = pread_all(fd, hd, sizeof(hd), gh->sh_offset)))
		return err;
	uint64_t buckets = sizeof(hd) + (uint64_t)hd[2] * 8;
	uint64_t chains = buckets + (uint64_t)hd[0] * 4;
	if (hd[0] == 0 || !in_section(gh, buckets, (uint64_t)hd[0] * 4))
		return -ENOEXEC;
	uint32_t i;
	if ((err = pread_all(fd, &i, 4, gh->sh_offset + buckets + (uint64_t)(h % hd[0]) * 4)))
		return err;
	if (i == 0)
		return -ENOENT; /* an empty bucket */
	size_t len = strlen(name);
	char nm[128];
	if (len >= sizeof(nm))
		return -ENOENT;
	/* A chain ends with a word whose low bit is set; it cannot run past
	 * the section or the symbol table. */
	for (; i >= hd[1] && i < nsyms; i++) {
		uint32_t c;
		uint64_t at = chains + (uint64_t)(i - hd[1]) * 4;
		if (!in_section(gh, at, 4))
			return -ENOEXEC;
		if ((err = pread_all(fd, &c, 4, gh->sh_offset + at)))
			return err;
		if ((c | 1) == (h | 1)) {
			Elf64_Sym s;
			if ((err = pread_all(fd, &s, sizeof(s),
					     ds->sh_offset + (uint64_t)i * sizeof(s))))
				return err;
			if (in_section(strs, s.st_name, len + 1) &&
			    pread_all(fd, nm, len + 1, strs->sh_offset + s.st_name) == 0 &&
			    memcmp(nm, name, len + 1) == 0) {
				if (s.st_shndx == SHN_UNDEF || s.st_shndx >= eh.e_shnum ||
				    (s.st_size != 4 && s.st_size != 8))
					return -ENOENT;
				const Elf64_Shdr *d = &sh[s.st_shndx];
				if (d->sh_type == SHT_NOBITS)
					return -ENOENT;
				if (s.st_value < d->sh_addr ||
				    !in_section(d, s.st_value - d->sh_addr, s.st_size))
					return -ENOEXEC;
				/* Little-endian: the low bytes first, whatever the size. */
				uint64_t v = 0;
				if ((err = pread_all(fd, &v, s.st_size,
						     d->sh_offset + (s.st_value - d->sh_addr))))
					return err;
				*out = v;
				return 0;
			}
		}
		if (c & 1)
			break;
	}
	return i < hd[1] || i >= nsyms ? -ENOEXEC : -ENOENT;
}

/* A NUL-terminated string of a string table section, whole, into buf. */
static int file_str(int fd, const Elf64_Shdr *strs, uint64_t at, char *buf, size_t cap)
{
	if (at >= strs->sh_size || strs->sh_offset > (uint64_t)INT64_MAX - at)
		return -ENOEXEC;
	uint64_t n = strs->sh_size - at < cap ? strs->sh_size - at : cap;
	ssize_t r = pread(fd, buf, (size_t)n, (off_t)(strs->sh_offset + at));
	if (r < 0)
		return -errno;
	if (!memchr(buf, 0, (size_t)r))
		return -ENOEXEC; /* unterminated, or longer than cap */
	return 0;
}

/* dir/name into out, with $ORIGIN and ${ORIGIN} in dir replaced by
 * origin; whether that is a readable file. */
static bool lib_in(const char *dir, size_t dlen, const char *origin, const char *name, char *out,
		   size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < dlen && o < cap;) {
		size_t skip = strncmp(dir + i, "$ORIGIN", 7) == 0     ? 7
			      : strncmp(dir + i, "${ORIGIN}", 9) == 0 ? 9
								      : 0;
		if (skip && dlen - i >= skip) {
			o += (size_t)snprintf(out + o, cap - o, "%s", origin);
			i += skip;
		} else {
			out[o++] = dir[i++];
		}
	}
	if (o == 0 || o >= cap)
		return false;
	int n = snprintf(out + o, cap - o, "/%s", name);
	struct stat sb;
	return n > 0 && (size_t)n < cap - o && stat(out, &sb) == 0 && S_ISREG(sb.st_mode) &&
	       access(out, R_OK) == 0;
}

/* The first directory of a ':'-separated list holding name. */
static bool lib_in_list(const char *list, const char *origin, const char *name, char *out,
			size_t cap)
{
	for (const char *d = list; d && *d;) {
		const char *end = strchr(d, ':');
		size_t n = end ? (size_t)(end - d) : strlen(d);
		if (n && lib_in(d, n, origin, name, out, cap))
			return true;
		d = end ? end + 1 : NULL;
	}
	return false;
}

int attach_elf__file_needed(const char *path, const char *prefix, char *out, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct file_shdrs f;
	char name[256] = "", rpath[PATH_MAX] = "", runpath[PATH_MAX] = "";
	int err = file_shdrs__read(fd, &f);
	if (err == -ENOSYS)
		err = -ENOENT;
	const Elf64_Shdr *dyn = NULL;
	for (unsigned i = 0; !err && i < f.eh.e_shnum && !dyn; i++)
		if (f.sh[i].sh_type == SHT_DYNAMIC)
			dyn = &f.sh[i];
	if (!err &&
	    (!dyn || dyn->sh_link >= f.eh.e_shnum || f.sh[dyn->sh_link].sh_type != SHT_STRTAB))
		err = -ENOENT; /* static, or nothing to go by */
	/* Entries in batches, to DT_NULL or the section's end. */
	uint64_t n = dyn ? dyn->sh_size / sizeof(Elf64_Dyn) : 0;
	bool done = false;
	for (uint64_t i = 0; !err && !done && i < n;) {
		Elf64_Dyn d[32];
		uint64_t k = n - i < 32 ? n - i : 32;
		if ((err = pread_all(fd, d, (size_t)k * sizeof(Elf64_Dyn),
				     dyn->sh_offset + i * sizeof(Elf64_Dyn))))
			break;
		const Elf64_Shdr *strs = &f.sh[dyn->sh_link];
		for (uint64_t j = 0; j < k && !err && !done; j++) {
			char s[256];
			switch (d[j].d_tag) {
			case DT_NULL:
				done = true;
				break;
			case DT_NEEDED:
				if (!name[0] &&
				    file_str(fd, strs, d[j].d_un.d_val, s, sizeof(s)) == 0 &&
				    strncmp(s, prefix, strlen(prefix)) == 0)
					memcpy(name, s, sizeof(s));
				break;
			case DT_RPATH:
				err = file_str(fd, strs, d[j].d_un.d_val, rpath, sizeof(rpath));
				break;
			case DT_RUNPATH:
				err = file_str(fd, strs, d[j].d_un.d_val, runpath, sizeof(runpath));
				break;
			}
		}
		i += k;
	}
	close(fd);
	if (err)
		return err;
	if (!name[0] || strchr(name, '/'))
		return -ENOENT; /* not needed; a path: not searched */
	/* $ORIGIN: the directory of the file itself, links resolved, as
	 * the loader takes it from the executable it runs. */
	char real[PATH_MAX];
	if (!realpath(path, real))
		return -errno;
	*strrchr(real, '/') = 0;
	/* The loader's order (ld.so(8)); its cache is not read: the
	 * usual directories stand in for it. */
	static const char sys_dirs[] = "/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:"
				       "/lib64:/usr/lib64:/lib:/usr/lib:/usr/local/lib";
	if ((!runpath[0] && lib_in_list(rpath, real, name, out, cap)) ||
	    lib_in_list(getenv("LD_LIBRARY_PATH"), real, name, out, cap) ||
	    lib_in_list(runpath, real, name, out, cap) ||
	    lib_in_list(sys_dirs, real, name, out, cap))
		return 0;
	return -ENOENT;
}

int attach_elf__file_uint(const char *path, const char *name, uint64_t *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int err = gnu_hash_uint(fd, name, out);
	if (err != -ENOSYS) {
		close(fd);
		return err;
	}
	err = -ENOENT;
	elf_version(EV_CURRENT);
	Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	GElf_Ehdr eh;
	if (!e || elf_kind(e) != ELF_K_ELF || !gelf_getehdr(e, &eh) ||
	    eh.e_ident[EI_DATA] != ELFDATA2LSB) {
		err = -ENOEXEC;
		goto out;
	}
	for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e, scn));) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNSYM || !sh.sh_entsize)
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		size_t n = sh.sh_size / sh.sh_entsize;
		for (size_t i = 1; d && i < n && i <= INT_MAX; i++) {
			GElf_Sym sym;
			if (!gelf_getsym(d, (int)i, &sym))
				break;
			const char *nm = elf_strptr(e, sh.sh_link, sym.st_name);
			if (!nm || strcmp(nm, name) != 0 || sym.st_shndx == SHN_UNDEF ||
			    sym.st_shndx >= SHN_LORESERVE || (sym.st_size != 4 && sym.st_size != 8))
				continue;
			uint64_t off;
			if ((err = sym_file_offset(e, &sym, &off)))
				goto out;
			/* Little-endian: the low bytes first, whatever the size. */
			uint64_t v = 0;
			err = pread_all(fd, &v, sym.st_size, off);
			if (!err)
				*out = v;
			goto out;
		}
	}
out:
	if (e)
		elf_end(e);
	close(fd);
	return err;
}
