/* wire/: where the channel lives and how bytes cross it; shared by the
 * debugger side and the agent (compiled into both).
 *
 * The socket is <dir>/agent-<pid>.sock, dir chosen by wire_channel__place()
 * (mode 0700, owned by uid, not a symlink), where pid and uid are the
 * target's own (in its namespaces). The agent also holds
 * <dir>/agent-<pid>.lock (flock) while it serves. */
#ifndef SUTURE_INJECT_CHANNEL_H
#define SUTURE_INJECT_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WIRE_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path) */

/* "<dir>/agent-<pid>.<ext>". */
int wire_channel__path(const char *dir, pid_t pid, const char *ext, char *buf, size_t cap);

/* Where a process's channel lives; the one rule both sides follow
 * (docs/formats/channel.md, "Where"). rootfd is the process's root (the
 * agent: "/"; a debugger: /proc/PID/root); paths are resolved inside it.
 * uid is the process's real uid and xdg its XDG_RUNTIME_DIR (NULL when
 * unset), both as the process itself sees them (they name the place);
 * owner is that uid as the caller's stat() shows it (they differ when a
 * debugger looks into another user namespace).
 *   1. xdg set and present: <xdg>/suture. xdg must be owned by uid and
 *      closed to group and others, else refused (-EPERM).
 *   2. else /tmp/suture-<uid>, when it is uid's own;
 *   3. else (someone else made that name) the private
 *      /tmp/suture-<uid>.<random> of smallest name that uid owns, made
 *      when create is set: squatting the predictable name diverts
 *      suture, never disables it.
 * A directory is used only if it is a directory (not a symlink), owned by
 * owner, mode 0700 or tighter. create: make what is missing (the agent).
 * Gives an O_PATH descriptor of it in *dirfd (the caller closes) and its
 * path as the process sees it in dir. Returns 0; -ENOENT nothing there yet
 * (create unset); -EPERM refused; -errno. why gets a one-line reason on
 * failure, and on success a note when a place was passed over. */
int wire_channel__place(int rootfd, uid_t uid, uid_t owner, const char *xdg, bool create,
			int *dirfd, char *dir, size_t cap, char *why, size_t wcap);
/* XDG_RUNTIME_DIR out of an environment block (NUL-separated "K=V", as
 * /proc/PID/environ): 0, -ENOENT when absent, -ENAMETOOLONG. */
int wire_channel__xdg(const char *p, const char *end, char *buf, size_t cap);
/* A debugger's tree socket in dir (heal/tree.c): <dir>/tree-<pid>.sock.
 * 0 or -ENAMETOOLONG. */
int wire_channel__tree_path(const char *dir, pid_t pid, char *buf, size_t cap);
/* Remove the stale channel files in dir (docs/formats/channel.md, "Stale
 * files"): for each agent-<pid>.lock whose flock can be taken at once (no
 * agent holds it) and whose pid is dead (gone or a zombie) or was started
 * after the lock file was last written (the pid was reused), the lock and
 * agent-<pid>.sock / .sock-new; a tree-<pid>.sock whose pid is dead or
 * reused the same way. A held lock is never touched, so a live
 * agent's files stay. Best effort: returns how many pids it cleaned, or
 * -errno when dir cannot be read. dir must come from wire_channel__place(). */
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

/* The same, for a peer that sends frames in bursts (a boot load's PATCH
 * frames, their answers): one receive takes what the socket holds and the
 * frames are handed out from it, so a burst of a hundred frames costs a few
 * system calls, not three a frame. A reader belongs to one descriptor for
 * as long as it reads it: bytes it holds are the next frame's. Same
 * results as wire_channel__read_frame (the wait bounds the first byte of a
 * frame only). Zero-initialized; wire_reader__free when done. */
struct wire_reader {
	uint8_t *buf;
	size_t off, len, cap;
};
int wire_reader__next(struct wire_reader *r, int fd, int timeout_ms, struct wire_hdr *h,
		      uint8_t **payload);
/* A whole frame is held: the next call makes no system call. */
bool wire_reader__has_frame(const struct wire_reader *r);
void wire_reader__free(struct wire_reader *r);

#endif
