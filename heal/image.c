/* heal: recording a boot image (docs/formats/boot-image.md; heal-priv.h
 * says what is recorded and when). The image itself is written by
 * suture-run (heal/run.c) from the sections recorded here and those of
 * the image it used; store/image.c keeps the file. */
#include "heal/heal-priv.h"
#include "wire/boot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void heal__record_image(struct heal *h, struct heal_image_rec *rec)
{
	if (h)
		h->rec = rec;
}

void heal_image_rec__begin(struct heal_image_rec *r)
{
	wire_buf__reset(&r->cur);
	r->ncur = 0;
	r->cur_bad = false;
}

void heal_image_rec__entry(struct heal_image_rec *r, const struct pend *p, uint64_t key,
			   int64_t expires)
{
	/* A function's first patch without a key (a constant the agent
	 * cannot hash) can never be checked: the module is left out. */
	if (!p->payload || (p->head && !key) || r->ncur == WIRE_IMAGE_MAX_ENTRIES) {
		r->cur_bad = true;
		return;
	}
	struct wire_image_entry e = { .firstlineno = p->firstlineno,
				      .line = p->s->line > 0 ? (uint32_t)p->s->line : 0,
				      .key = p->head ? key : 0,
				      .payload = p->payload,
				      .payload_len = p->payload_len };
	heal_names__copy(e.qualname, sizeof e.qualname, p->qualname);
	wire_image__entry(&r->cur, &e);
	r->ncur++;
	if (expires > 0 && (!r->valid_until || expires < r->valid_until))
		r->valid_until = expires;
}

void heal_image_rec__end(struct heal_image_rec *r, const char *file, bool clean)
{
	if (!clean || r->cur_bad || !r->ncur || r->cur.err || heal_image_rec__find(r, file))
		goto out;
	struct heal_image_section *v = realloc(r->v, (r->n + 1) * sizeof *v);
	if (!v)
		goto out;
	r->v = v;
	char *f = strdup(file);
	if (!f)
		goto out;
	/* The section takes the buffer; cur starts empty again. */
	v[r->n++] = (struct heal_image_section){ .file = f, .entries = r->cur, .n = r->ncur };
	memset(&r->cur, 0, sizeof r->cur);
out:
	heal_image_rec__begin(r);
}

const struct heal_image_section *heal_image_rec__find(const struct heal_image_rec *r,
						      const char *file)
{
	for (size_t i = 0; r && i < r->n; i++)
		if (strcmp(r->v[i].file, file) == 0)
			return &r->v[i];
	return NULL;
}

void heal_image_rec__free(struct heal_image_rec *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].file);
		wire_buf__free(&r->v[i].entries);
	}
	free(r->v);
	wire_buf__free(&r->cur);
	memset(r, 0, sizeof *r);
}

/* ---- suture-run's side: using an image, and writing the next one ---- */

/* What identifies the derivation code: suture-run's executable and the
 * agent's library (a rebuild of either makes every image stale). */
static uint64_t build_id(const char *agent_path)
{
	/* Our file by its name: a tool that runs us (valgrind) is not us. */
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return 0;
	self[n] = 0;
	const char *paths[] = { self, agent_path };
	uint64_t h = WIRE_IMAGE_FNV_SEED;
	for (size_t i = 0; i < 2; i++) {
		struct stat st;
		if (!paths[i] || stat(paths[i], &st))
			return 0;
		const uint64_t f[] = { st.st_dev, st.st_ino, (uint64_t)st.st_size,
				       (uint64_t)st.st_mtim.tv_sec, (uint64_t)st.st_mtim.tv_nsec };
		h = wire_image__fnv(h, f, sizeof f);
	}
	return h ? h : 1;
}

static int check(struct heal_boot_image *bi, const char *program);

/* The image read, not what names it. */
static void forget(struct heal_boot_image *bi)
{
	for (size_t i = 0; i < bi->nfiles; i++)
		free(bi->files[i]);
	free(bi->files);
	free(bi->keep);
	store_image__free(&bi->file);
	bi->files = NULL;
	bi->keep = NULL;
	bi->nfiles = 0;
	memset(&bi->img, 0, sizeof bi->img);
	bi->use = false;
}

int heal_boot_image__open(struct heal_boot_image *bi, const char *store_dir, const char *program,
			  uint32_t py_version, const char *agent_path)
{
	memset(bi, 0, sizeof *bi);
	bi->file.fd = -1;
	bi->py_version = py_version;
	bi->build = build_id(agent_path);
	store_image__name(program, bi->name, sizeof bi->name);
	if (!bi->build || store_image__read(store_dir, bi->name, &bi->file))
		return -ENOENT;
	int rc = check(bi, program);
	if (rc)
		forget(bi); /* what a write needs (name, build, version) stays */
	return rc;
}

static int check(struct heal_boot_image *bi, const char *program)
{
	const struct wire_image_hdr *hd = &bi->img.hdr;
	int64_t now = store__now();
	if (wire_image__open(bi->file.data, bi->file.len, &bi->img) || hd->build != bi->build ||
	    hd->py_version != bi->py_version || hd->index_hash != bi->file.index_hash ||
	    strcmp(hd->program, program) != 0 || (hd->valid_until && now >= hd->valid_until) ||
	    !(bi->keep = calloc(hd->nsections ? hd->nsections : 1, sizeof *bi->keep)) ||
	    !(bi->files = calloc(hd->nsections ? hd->nsections : 1, sizeof *bi->files)))
		return -ESTALE;
	struct wire_image_section sec;
	const uint8_t *at = bi->img.sections;
	uint32_t idx = 0;
	while (wire_image__next_section(&bi->img, &at, &sec, &idx)) {
		bi->keep[sec.index] = true;
		if (!(bi->files[bi->nfiles++] = strdup(sec.file)))
			return -ENOMEM;
	}
	bi->use = true;
	return 0;
}

void heal_boot_image__free(struct heal_boot_image *bi)
{
	forget(bi);
	memset(bi, 0, sizeof *bi);
	bi->file.fd = -1;
}

/* Section s of the image (0..nsections-1). */
static bool section_at(const struct heal_boot_image *bi, uint32_t s, struct wire_image_section *sec)
{
	const uint8_t *at = bi->img.sections;
	uint32_t idx = 0;
	while (wire_image__next_section(&bi->img, &at, sec, &idx))
		if (sec->index == s)
			return true;
	return false;
}

void heal_boot_image__report(struct heal_boot_image *bi, const struct wire_patch_result *res,
			     size_t n, const struct heal_boot_image_out *o, struct heal_stats *st)
{
	struct wire_image_section sec;
	const uint8_t *at = NULL;
	/* The lines go out in one write (stderr is unbuffered: 100 lines
	 * were 100 writes while the program starts on the other CPU). */
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	if (!out)
		out = o->log;
	uint32_t entry = 0, cur = UINT32_MAX;
	struct wire_image_entry e;
	for (size_t i = 0; i < n; i++) {
		uint32_t s = WIRE_BOOT_IMAGE_SECTION(res[i].request_id);
		uint32_t k = WIRE_BOOT_IMAGE_ENTRY(res[i].request_id);
		if (s != cur) {
			if (!section_at(bi, s, &sec))
				continue; /* not ours: the hook's image is the one we checked */
			cur = s;
			at = sec.entries;
			entry = 0;
		}
		bool found = false;
		while (entry <= k && wire_image__next_entry(&sec, &at, &e))
			found = entry++ == k;
		struct wire_patch p;
		if (!found ||
		    wire_msg__decode_patch_named(e.payload, e.payload + e.payload_len, &p))
			continue;
		struct heal_loaded l = { p.meta.name,     p.meta.guard, p.meta.target,
					 p.meta.fallback, e.qualname,   heal_names__base(sec.file),
					 (int)e.line };
		char line[1024], why[512];
		if (res[i].status) {
			snprintf(why, sizeof why, "the agent refused the patch: %s",
				 res[i].message);
			heal_loaded__failed_text(l.name, why, line, sizeof line);
			fprintf(out, "[suture] %s\n", line);
			st->failed++;
			bi->keep[s] = false; /* loaded the usual way next time */
			continue;
		}
		heal_loaded__text(&l, line, sizeof line);
		if (!o->quiet)
			fprintf(out, "[suture] %s\n", line);
		heal_loaded__event(&l, o->events, o->pid);
		st->loaded++;
	}
	if (out != o->log) {
		fclose(out);
		fwrite(buf, 1, len, o->log);
		free(buf);
	}
	fflush(o->log);
}

void heal_boot_image__missed(struct heal_boot_image *bi, const char *file)
{
	char real[PATH_MAX];
	if (!bi || !bi->use || !realpath(file, real))
		return;
	for (size_t i = 0; i < bi->nfiles; i++)
		if (strcmp(bi->files[i], real) == 0)
			bi->keep[i] = false; /* files[i] is section i's */
}

int heal_boot_image__write(const struct heal_boot_image *bi, const struct heal_image_rec *rec,
			   char *const *files, size_t nfiles, const char *store_dir,
			   const char *program, uint64_t index_hash)
{
	struct wire_buf b = { 0 };
	struct wire_image_hdr hd = { .py_version = bi->py_version,
				     .index_hash = index_hash,
				     .build = bi->build,
				     .valid_until = rec ? rec->valid_until : 0 };
	if (!bi->build || strlen(program) >= sizeof hd.program)
		return -EINVAL;
	if (nfiles > WIRE_IMAGE_MAX_SECTIONS)
		return -E2BIG; /* one no reader would take */
	if (bi->use && bi->img.hdr.valid_until &&
	    (!hd.valid_until || bi->img.hdr.valid_until < hd.valid_until))
		hd.valid_until = bi->img.hdr.valid_until;
	strcpy(hd.program, program);
	wire_image__begin(&b, &hd);
	for (size_t i = 0; i < nfiles; i++) {
		const struct heal_image_section *r = heal_image_rec__find(rec, files[i]);
		struct wire_image_section old;
		bool kept = false;
		/* The old image's section stays unless this run found it
		 * did not fit (a module not imported this time keeps it). */
		for (uint32_t s = 0; !r && bi->use && s < bi->img.hdr.nsections && !kept; s++)
			kept = bi->keep[s] && section_at(bi, s, &old) &&
			       strcmp(old.file, files[i]) == 0;
		if (r) {
			wire_image__section(&b, files[i], r->n);
			wire_image__raw(&b, r->entries.data, r->entries.len);
		} else if (kept) {
			wire_image__section(&b, files[i], old.nentries);
			wire_image__raw(&b, old.entries, (size_t)(old.end - old.entries));
		} else {
			wire_image__section(&b, files[i], 0);
		}
	}
	int rc = wire_image__end(&b, (uint32_t)nfiles);
	if (!rc)
		rc = store_image__write(store_dir, bi->name, index_hash, b.data, b.len);
	wire_buf__free(&b);
	return rc;
}
