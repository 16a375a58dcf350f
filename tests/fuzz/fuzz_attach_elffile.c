/* libFuzzer harness for attach_elf__file_uint and attach_elf__file_needed
 * (attach/elf.c): the input is an ELF file on disk, as suture-run's
 * --python may name anything. Written
 * to a memfd and looked up by name through /proc/self/fd: every answer is
 * 0, -ENOENT, -ENOEXEC or -ENOSYS's fallback (libelf's scan, which may
 * also say -ENOENT or -ENOEXEC); ASan watches every read. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "attach/attach.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	char path[64];
	if (fd < 0 && (fd = memfd_create("fuzz-elf", MFD_CLOEXEC)) < 0)
		return 0;
	if (ftruncate(fd, 0) || (size && pwrite(fd, data, size, 0) != (ssize_t)size))
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	uint64_t v;
	int rc = attach_elf__file_uint(path, "Py_Version", &v);
	if (rc != 0 && rc != -ENOENT && rc != -ENOEXEC)
		abort();
	/* The libraries it needs, with its own DT_RPATH/DT_RUNPATH. */
	char lib[4096];
	rc = attach_elf__file_needed(path, "libpython3", lib, sizeof(lib));
	if (rc != 0 && rc != -ENOENT && rc != -ENOEXEC && rc != -ENAMETOOLONG)
		abort();
	return 0;
}
