/* agent/offer.c: a string handed from the agent thread to the GIL side.
 *
 * HELLO arrives on the agent thread, which holds no GIL and must not wait
 * for it; what HELLO configures (application paths, sites opted in with
 * --heal-handled) is read by the watcher, with the GIL, on every
 * exception. So the agent thread only copies the string under a lock and
 * moves a generation; the watcher compares the generation with the one it
 * took (an atomic load, no lock) and takes a copy when it moved.
 */
#include "agent/agent-priv.h"

#include <stdio.h>

void agent_offer__put(struct agent_offer *o, const char *s)
{
	pthread_mutex_lock(&o->lock);
	snprintf(o->buf, o->size, "%s", s ? s : "");
	__atomic_add_fetch(&o->gen, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&o->lock);
}

void agent_offer__take(struct agent_offer *o, char *copy, size_t n)
{
	pthread_mutex_lock(&o->lock);
	o->taken = o->gen;
	snprintf(copy, n, "%s", o->buf);
	pthread_mutex_unlock(&o->lock);
}

void agent_offer__atfork_child(struct agent_offer *o)
{
	pthread_mutex_init(&o->lock, NULL);
}
