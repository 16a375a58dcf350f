/* wire/: channel paths and whole reads/writes (docs/formats/channel.md). */
#include "wire/channel.h"
#include "wire/msg.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int wire_channel__dir(uid_t uid, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "/tmp/suture-%u", (unsigned)uid);
	return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : 0;
}

int wire_channel__path(const char *dir, pid_t pid, const char *ext, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s/agent-%d.%s", dir, (int)pid, ext);
	return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : 0;
}

int wire_channel__check_dir(const char *dir, uid_t uid)
{
	struct stat st;
	if (lstat(dir, &st))
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != uid || (st.st_mode & 077))
		return -EPERM;
	return 0;
}

int wire_channel__ensure_dir(const char *dir, uid_t uid)
{
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	return wire_channel__check_dir(dir, uid);
}

int wire_channel__write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int wire_channel__read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len) {
		ssize_t n = recv(fd, p, len, 0);
		if (n == 0)
			return -EPIPE;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int wire_channel__read_frame(int fd, int timeout_ms, struct wire_hdr *h, uint8_t **payload)
{
	uint8_t hdr[WIRE_HDR_SIZE];
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	*payload = NULL;
	int n = poll(&pf, 1, timeout_ms);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ETIMEDOUT;
	int rc = wire_channel__read_all(fd, hdr, sizeof hdr);
	if (rc)
		return rc == -EAGAIN ? -ETIMEDOUT : -EPIPE;
	if (wire_msg__decode_hdr(hdr, hdr + sizeof hdr, h))
		return -EPROTO;
	if (!h->len)
		return 0;
	uint8_t *p = malloc(h->len);
	if (!p)
		return -ENOMEM;
	if ((rc = wire_channel__read_all(fd, p, h->len))) {
		free(p);
		return rc == -EAGAIN ? -ETIMEDOUT : -EPIPE;
	}
	*payload = p;
	return 0;
}
