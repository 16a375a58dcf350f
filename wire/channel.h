/* wire/: where the channel lives and how bytes cross it; shared by the
 * debugger side and the agent (compiled into both).
 *
 * The socket is <dir>/agent-<pid>.sock, dir = /tmp/suture-<uid> (mode 0700,
 * owned by uid, not a symlink), where uid is the target's real uid. The
 * agent also holds <dir>/agent-<pid>.lock (flock) while it serves. */
#ifndef SUTURE_INJECT_CHANNEL_H
#define SUTURE_INJECT_CHANNEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WIRE_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path) */

/* "/tmp/suture-<uid>". -ENAMETOOLONG if it does not fit. */
int wire_channel__dir(uid_t uid, char *buf, size_t cap);
/* "<dir>/agent-<pid>.<ext>". */
int wire_channel__path(const char *dir, pid_t pid, const char *ext, char *buf, size_t cap);
/* Create dir 0700 if missing; refuse (-EPERM) a dir that is a symlink,
 * not a directory, not owned by uid, or open to group/others. */
int wire_channel__ensure_dir(const char *dir, uid_t uid);
/* The same checks without creating: 0 when dir is safe to use. */
int wire_channel__check_dir(const char *dir, uid_t uid);
/* Remove the stale channel files in dir (docs/formats/channel.md, "Stale
 * files"): for each agent-<pid>.lock whose flock can be taken at once (no
 * agent holds it) and whose pid is dead (gone or a zombie) or was started
 * after the lock file was last written (the pid was reused), the lock and
 * agent-<pid>.sock / .sock-new. A held lock is never touched, so a live
 * agent's files stay. Best effort: returns how many pids it cleaned, or
 * -errno when dir cannot be read. dir must have passed check_dir. */
int wire_channel__sweep(const char *dir);
/* Whole writes (MSG_NOSIGNAL: a vanished peer gives -EPIPE, no signal)
 * and whole reads (-EPIPE on EOF, -EAGAIN on a receive timeout). */
int wire_channel__write_all(int fd, const void *buf, size_t len);
int wire_channel__read_all(int fd, void *buf, size_t len);

struct wire_hdr;
/* Read one whole frame from fd: wait up to timeout_ms for its first byte
 * (-1: no limit; 0: only if one is already there), then read the header
 * and the payload. *payload is malloc'ed (NULL when the frame is empty)
 * and the caller frees it. Returns 0; -ETIMEDOUT when nothing came in
 * time; -EPIPE on EOF, also inside the frame (the peer is gone); -EPROTO
 * for a header wire_msg__decode_hdr refuses; -ENOMEM; -errno of poll.
 * The payload is not decoded: the caller's decoder checks it. */
int wire_channel__read_frame(int fd, int timeout_ms, struct wire_hdr *h, uint8_t **payload);

#endif
