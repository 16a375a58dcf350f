/* wire/: the boot image, what suture-run keeps of a load so that a later
 * run's boot hook can install the same patches itself
 * (docs/formats/boot-image.md). Written by heal/ (heal/image.c), read by
 * heal/ to decide whether to use it and by the agent's boot hook
 * (agent/boot.c) to install from it.
 *
 * The encoder appends to a struct wire_buf (an allocation failure is
 * sticky in b->err); the decoder validates the whole image once
 * (wire_image__open) and then walks it with no further checks to fail.
 */
#ifndef SUTURE_WIRE_IMAGE_H
#define SUTURE_WIRE_IMAGE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/msg.h"

#define WIRE_IMAGE_MAGIC "SUTBOOT\n"
#define WIRE_IMAGE_VERSION 1u
/* Bounds the decoder enforces (an image is a file anyone with the store
 * could have written). */
#define WIRE_IMAGE_MAX (16u << 20)
#define WIRE_IMAGE_MAX_SECTIONS 4096u /* the boot list's bound (agent/boot.c) */
#define WIRE_IMAGE_MAX_ENTRIES 20000u /* a section's: heal/load.c's tree bound */
#define WIRE_IMAGE_QUALNAME_MAX 511u
#define WIRE_IMAGE_FILE_MAX (PATH_MAX - 1)

struct wire_image_hdr {
	uint32_t py_version; /* the interpreter's Py_Version the patches were derived for */
	uint64_t index_hash; /* the store index's bytes it was derived from (heal/image.c) */
	uint64_t build;      /* suture-run's and the agent's files (heal/image.c) */
	int64_t valid_until; /* Unix seconds: the first of its patches' expiries; 0: none */
	char program[PATH_MAX];
	uint32_t nsections;
};

struct wire_image_entry {
	char qualname[WIRE_IMAGE_QUALNAME_MAX + 1];
	uint32_t firstlineno;
	uint32_t line; /* the stored patch's line, for messages */
	/* The agent's key of the code object the PATCH applies to
	 * (agent/codekey.c); 0: the code the previous entry of the same
	 * qualname and first line produced. */
	uint64_t key;
	const uint8_t *payload; /* a PATCH_NAMED payload (wire_msg__decode_patch_named) */
	size_t payload_len;
};

/* ---- encoding ---- */

/* The header; sections follow, then wire_image__end. */
void wire_image__begin(struct wire_buf *b, const struct wire_image_hdr *h);
void wire_image__section(struct wire_buf *b, const char *file, uint32_t nentries);
void wire_image__entry(struct wire_buf *b, const struct wire_image_entry *e);
/* Entries already encoded (another image's, a recorded section's). */
void wire_image__raw(struct wire_buf *b, const void *p, size_t n);
/* nsections into the header and the checksum at the end. 0, -ENOMEM, or
 * -E2BIG over WIRE_IMAGE_MAX. */
int wire_image__end(struct wire_buf *b, uint32_t nsections);

/* ---- decoding ---- */

struct wire_image {
	struct wire_image_hdr hdr;
	const uint8_t *sections, *end; /* the sections' bytes */
};

/* Check everything (magic, version, checksum, every section's and entry's
 * bounds and every payload decoding as PATCH_NAMED) and fill img. 0 or
 * -EINVAL (-E2BIG: over WIRE_IMAGE_MAX). */
int wire_image__open(const uint8_t *p, size_t len, struct wire_image *img);

struct wire_image_section {
	char file[WIRE_IMAGE_FILE_MAX + 1];
	uint32_t index; /* its place in the image, from 0 */
	uint32_t nentries;
	const uint8_t *entries, *end;
};

/* Sections in order: 1 and *s filled, 0 at the end. *at starts at
 * img->sections; *index is the walk's (s->index, from 0). */
int wire_image__next_section(const struct wire_image *img, const uint8_t **at,
			     struct wire_image_section *s, uint32_t *index);
/* A section's entries in order: 1 and *e filled, 0 at the end. *at starts
 * at s->entries. */
int wire_image__next_entry(const struct wire_image_section *s, const uint8_t **at,
			   struct wire_image_entry *e);

/* FNV-1a 64 of n bytes, from h (WIRE_IMAGE_FNV_SEED to start). */
#define WIRE_IMAGE_FNV_SEED 0xcbf29ce484222325ull
uint64_t wire_image__fnv(uint64_t h, const void *p, size_t n);

#endif
