/* inject/: private declarations of the debugger side. */
#ifndef SUTURE_INJECT_PRIV_H
#define SUTURE_INJECT_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "inject/inject.h"

/* A target as its namespaces make it (target.c). */
struct inject_target {
	pid_t pid;        /* in our pid namespace */
	pid_t nspid;      /* in its own (NSpid's last field): names its socket */
	uid_t uid, nsuid; /* real uid: as we see it, as it sees itself */
	gid_t gid, nsgid;
	bool other_user, other_pid, other_mnt; /* namespaces not ours */
	bool join_user;                        /* our uid is neither its uid nor 0 in its user ns */
	int rootfd;                            /* /proc/PID/root, O_PATH */
	bool has_xdg;                          /* XDG_RUNTIME_DIR in its environment */
	char xdg[256];
};
/* Read pid's namespaces, ids and environment; open its root. 0 or -errno
 * with a one-line message naming the namespace that cannot be read. */
int inject__target_open(pid_t pid, struct inject_target *t, char *err, size_t cap);
void inject__target_close(struct inject_target *t);
/* Before injecting: whether we can join its user namespace when needed,
 * and whether its root has the /proc the agent is loaded through. */
int inject__target_check_user(const struct inject_target *t, char *err, size_t cap);
int inject__target_check_proc(const struct inject_target *t, char *err, size_t cap);
/* Connect to its agent's socket (through its root, as its uid when the
 * user namespace needs it); the peer must be the target (SO_PEERCRED).
 * -ENOENT/-ECONNREFUSED: no agent (yet); -EPERM: the place is refused. */
int inject__target_connect(const struct inject_target *t, int *fd, char *err, size_t cap);
/* wire_channel__place() for the target, nothing created: 0, -ENOENT (not
 * made yet), -EPERM refused (why says why). */
int inject__target_place(const struct inject_target *t, char *why, size_t cap);
/* The socket's path as we can reach it (through /proc/PID/root when its
 * mount namespace is not ours). */
int inject__target_sock_path(const struct inject_target *t, char *buf, size_t cap);
/* id inside pid's user namespace through /proc/PID/uid_map or gid_map;
 * -ERANGE when not mapped. */
int inject__map_id(pid_t pid, const char *map, unsigned id, unsigned *inside);
/* Make the agent run in pid: remote dlopen, or remote suture_agent_start()
 * when the library is mapped already (remote.c). */
int inject__load_agent(pid_t pid, const char *agent_path, enum inject_how *how,
		       uint64_t *stopped_ns, char *err, size_t cap);
uint64_t inject__now_ns(void);
/* The agent library to inject: explicit, $SUTURE_AGENT, ../lib next to
 * our executable, then the install prefix. Absolute, existing. */
int inject__agent_path(const char *explicit_path, char *buf, size_t cap);

#endif
