/* libFuzzer harness for wire_reader (wire/channel.c): the byte stream the
 * agent's boot hook and suture-run read from each other, handed out frame
 * by frame from what one receive took. The input is written into a
 * socketpair (the peer's end then closed) and frames are read until an
 * error: every error must be one of read_frame's (a refused header, the
 * peer gone inside a frame, nothing more), and every frame's payload as
 * long as its header says. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire/channel.h"
#include "wire/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	/* What a socket buffer takes without a reader. */
	if (size > 65536 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return 0;
	for (size_t off = 0; off < size;) {
		ssize_t n = write(sv[0], data + off, size - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(sv[0]);
	struct wire_reader r = { 0 };
	for (;;) {
		struct wire_hdr h;
		uint8_t *p;
		int rc = wire_reader__next(&r, sv[1], 0, &h, &p);
		if (rc) {
			if (rc != -EPIPE && rc != -EPROTO && rc != -ETIMEDOUT && rc != -ENOMEM)
				abort();
			break;
		}
		if ((h.len == 0) != (p == NULL))
			abort();
		if (h.len) {
			volatile uint8_t last = p[h.len - 1]; /* ASan: the whole payload */
			(void)last;
		}
		free(p);
	}
	wire_reader__free(&r);
	close(sv[1]);
	return 0;
}
