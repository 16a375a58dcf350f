/* inject/: private declarations of the debugger side. */
#ifndef SUTURE_INJECT_PRIV_H
#define SUTURE_INJECT_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "inject/inject.h"

int inject__target_uid(pid_t pid, uid_t *uid);
/* Connect to pid's agent socket; the peer must be pid (SO_PEERCRED). */
int inject__connect(pid_t pid, int *fd, char *err, size_t cap);
/* Make the agent run in pid: remote dlopen, or remote suture_agent_start()
 * when the library is mapped already (remote.c). */
int inject__load_agent(pid_t pid, const char *agent_path, enum inject_how *how,
		       uint64_t *stopped_ns, char *err, size_t cap);
uint64_t inject__now_ns(void);
/* The agent library to inject: explicit, $SUTURE_AGENT, ../lib/suture and
 * ../lib next to our executable's real path, then the compiled-in install
 * prefix's lib/suture. Absolute, existing; -ENOENT when none is. */
int inject__agent_path(const char *explicit_path, char *buf, size_t cap);
/* Where inject__agent_path looks, for a message: one line into buf. */
void inject__agent_places(const char *explicit_path, char *buf, size_t cap);

#endif
