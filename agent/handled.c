/* agent: handled crashes (docs/design.md, "Handled crashes").
 *
 * A structural exception raised in application code whose first handler
 * is the application's own catch-all (except Exception / BaseException /
 * a bare except, in application code) is handled: the program decided to
 * log it and go on. It is counted here per raising site ("module.qualname:
 * line", as suture-audit lists it) and exception type, and reported to the
 * debugger (HANDLED frames, coalesced like HITS, and at DETACH and exit),
 * unless the debugger named the site with --heal-handled: then it is a
 * crash (healed like any other).
 *
 * Costs: nothing on any other path (crash.c calls in only when the walk
 * ended at such a handler); per such exception one probe of a small hash
 * of (code, code unit, type) and an increment (the GIL makes the watcher
 * the only writer: no locked instruction). When it was last seen is
 * stamped by the agent thread, which looks at its poll tick (every 200 ms
 * at most) whether a count moved: the time is that tick's. The
 * table is bounded (HANDLED_MAX sites; more are logged, not listed).
 *
 * Threads: the watcher (GIL held) inserts and counts; the agent thread
 * (no GIL) reads entries [0, g_n) to encode reports: an entry's strings
 * are written before g_n publishes it (release) and never change after;
 * count is stored whole (an atomic store) by the one writer; last_ms and
 * the report marks are the agent thread's, under g_report_lock. The sites
 * offered by HELLO come through a mutex and a generation, as application
 * paths do (policy.c).
 */
#include "agent/agent-priv.h"
#include "agent/policy.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HANDLED_MAX 256
#define SLOTS 1024 /* (code, unit, type) keys: several units may share a site */
#define OPT_MAX 64 /* --heal-handled sites */

struct handled {
	const void *code, *file, *type; /* identity (never dereferenced by readers) */
	int line;
	char site[WIRE_SITE_MAX + 1];
	char alt[WIRE_SITE_MAX + 1]; /* "stem.qualname:line" of a __main__ site, else "" */
	char exc_type[128];
	uint64_t count;    /* written whole by the GIL holder */
	uint64_t last_ms;  /* agent thread only, under g_report_lock: stamped ... */
	uint64_t stamped;  /* ... when it saw count move from this */
	uint64_t reported; /* agent thread only, under g_report_lock */
	unsigned opt_gen;  /* the generation opted was computed for */
	bool opted;
};

static struct handled g_tab[HANDLED_MAX];
static unsigned g_n; /* published entries (release/acquire) */
static bool g_full_logged;

static struct slot {
	const void *code, *file, *type;
	uint32_t unit;
	int at; /* index + 1; 0: empty */
} g_slots[SLOTS];

/* A count moved since the last report (DIRTY_REPORT) / the last stamp
 * (DIRTY_STAMP). Set by the watcher, cleared by the agent thread. */
#define DIRTY_REPORT 1
#define DIRTY_STAMP 2
static int g_dirty;
static bool g_report; /* a debugger asked for HANDLED (WIRE_HELLO_F_HANDLED) */
static pthread_mutex_t g_report_lock = PTHREAD_MUTEX_INITIALIZER;

/* Sites opted in: offered by HELLO (agent thread), taken with the GIL. */
static char g_offered[WIRE_HEAL_HANDLED_MAX];
static struct agent_offer g_offer = AGENT_OFFER_INIT(g_offered);
static char *g_opt[OPT_MAX];
static int g_nopt;

void agent_handled__offer(const char *sites, bool report)
{
	agent_offer__put(&g_offer, sites);
	__atomic_store_n(&g_report, report, __ATOMIC_RELAXED);
}

/* GIL held: the offered list replaces the one in use. */
static void take_offered(void)
{
	char copy[WIRE_HEAL_HANDLED_MAX];
	agent_offer__take(&g_offer, copy, sizeof copy);
	for (int i = 0; i < g_nopt; i++)
		free(g_opt[i]);
	g_nopt = 0;
	for (char *save = NULL, *t = strtok_r(copy, "\n", &save); t && g_nopt < OPT_MAX;
	     t = strtok_r(NULL, "\n", &save))
		if (*t && (g_opt[g_nopt] = strdup(t)))
			g_nopt++;
	if (g_nopt)
		agent__log("handled crashes healed at %d site(s) (--heal-handled)", g_nopt);
}

static bool opted(struct handled *e)
{
	if (e->opt_gen == g_offer.taken)
		return e->opted;
	e->opted = false;
	for (int i = 0; i < g_nopt && !e->opted; i++)
		e->opted = strcmp(g_opt[i], e->site) == 0 ||
			   (e->alt[0] && strcmp(g_opt[i], e->alt) == 0);
	e->opt_gen = g_offer.taken;
	return e->opted;
}

static const char *utf8_or(PyObject *s, const char *dflt)
{
	const char *u = (s && PyUnicode_Check(s)) ? PyUnicode_AsUTF8(s) : NULL;
	if (!u)
		PyErr_Clear();
	return u ? u : dflt;
}

/* The module part of a site, as heal/names.c names a file's module (the
 * store's patch names use it): "__main__" for the program (its globals say
 * so), a package's directory for its __init__, else the file's stem. *stem
 * gets the file's stem for the program too (the other name a user may
 * give its sites). */
static void module_of(_PyInterpreterFrame *f, const char *file, char *out, size_t cap, char *stem,
		      size_t scap)
{
	const char *base = strrchr(file, '/');
	base = base ? base + 1 : file;
	char name[256];
	snprintf(name, sizeof name, "%s", base);
	char *dot = strrchr(name, '.');
	if (dot)
		*dot = 0;
	if (strcmp(name, "__init__") == 0 && base != file) {
		const char *end = base - 1, *start = end;
		while (start > file && start[-1] != '/')
			start--;
		snprintf(name, sizeof name, "%.*s", (int)(end - start), start);
	}
	snprintf(stem, scap, "%s", name[0] ? name : "?");
	PyObject *mn = PyDict_Check(f->f_globals) ? PyDict_GetItemString(f->f_globals, "__name__")
						  : NULL;
	PyErr_Clear();
	if (mn && PyUnicode_Check(mn) && PyUnicode_CompareWithASCIIString(mn, "__main__") == 0)
		snprintf(out, cap, "__main__");
	else
		snprintf(out, cap, "%s", stem);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A new entry for (co, line, type), or an existing one of the same site. */
static struct handled *entry_for(_PyInterpreterFrame *f, PyCodeObject *co, int line, PyObject *type)
{
	unsigned n = g_n;
	for (unsigned i = 0; i < n; i++)
		if (g_tab[i].code == co && g_tab[i].file == co->co_filename &&
		    g_tab[i].type == type && g_tab[i].line == line)
			return &g_tab[i];
	if (n == HANDLED_MAX) {
		if (!g_full_logged)
			agent__log("handled crashes: %d sites listed, more are not", HANDLED_MAX);
		g_full_logged = true;
		return NULL;
	}
	struct handled *e = &g_tab[n];
	char mod[256], stem[256];
	const char *file = utf8_or(co->co_filename, "?");
	memset(e, 0, sizeof *e);
	e->code = co;
	e->file = co->co_filename;
	e->type = type;
	e->line = line;
	module_of(f, file, mod, sizeof mod, stem, sizeof stem);
	const char *qn = utf8_or(co->co_qualname, "?");
	snprintf(e->site, sizeof e->site, "%s.%s:%d", mod, qn, line);
	if (strcmp(mod, "__main__") == 0 && strcmp(stem, "__main__") != 0)
		snprintf(e->alt, sizeof e->alt, "%s.%s:%d", stem, qn, line);
	snprintf(e->exc_type, sizeof e->exc_type, "%s", ((PyTypeObject *)type)->tp_name);
	e->opt_gen = g_offer.taken + 1; /* computed at the first look */
	__atomic_store_n(&g_n, n + 1, __ATOMIC_RELEASE);
	return e;
}

int agent_handled__note(_PyInterpreterFrame *f, PyObject *type)
{
	if (agent_offer__moved(&g_offer))
		take_offered();
	/* Keyed by the frame's own code and unit: what they stand for (the
	 * site of a continuation's frame, of a caller running a resumed copy:
	 * the original function's, as park() reports crashes) is worked out
	 * once, on a miss. */
	PyCodeObject *raw = f->f_code;
	uint32_t runit = 0;
	if (agent_crash__unit_of(f, &runit))
		return 0;
	uintptr_t h = ((uintptr_t)raw >> 4) ^ ((uintptr_t)type >> 4) ^ (runit * 2654435761u);
	unsigned i = (unsigned)((h ^ (h >> 11)) % SLOTS);
	struct handled *e = NULL;
	struct slot *free_slot = NULL;
	for (int probe = 0; probe < 8; probe++, i = (i + 1) % SLOTS) {
		struct slot *s = &g_slots[i];
		if (!s->at) {
			free_slot = s;
			break;
		}
		if (s->code == raw && s->file == raw->co_filename && s->type == type &&
		    s->unit == runit) {
			e = &g_tab[s->at - 1];
			break;
		}
	}
	if (!e) {
		PyCodeObject *co = raw;
		uint32_t unit = runit;
		if (agent_resume__site(f, &co, &unit) < 0)
			return 0;
		co = agent_resume__original(co);
		if (!(e = entry_for(f, co, PyCode_Addr2Line(co, (int)(unit * 2)), type)))
			return 0;
		/* Eight collisions: no slot, the slow way next time too. */
		if (free_slot)
			*free_slot = (struct slot){ raw, raw->co_filename, type, runit,
						    (int)(e - g_tab) + 1 };
	}
	if (opted(e))
		return 1;
	/* One writer at a time (the GIL): a plain increment, stored whole
	 * for the agent thread's load (no locked instruction). */
	__atomic_store_n(&e->count, __atomic_load_n(&e->count, __ATOMIC_RELAXED) + 1,
			 __ATOMIC_RELAXED);
	if (__atomic_load_n(&g_dirty, __ATOMIC_RELAXED) != (DIRTY_REPORT | DIRTY_STAMP))
		__atomic_store_n(&g_dirty, DIRTY_REPORT | DIRTY_STAMP, __ATOMIC_RELEASE);
	return 0;
}

/* With g_report_lock: last_ms of the entries whose count moved. */
static void stamp_locked(void)
{
	if (!(__atomic_fetch_and(&g_dirty, ~DIRTY_STAMP, __ATOMIC_ACQ_REL) & DIRTY_STAMP))
		return;
	uint64_t now = now_ms();
	unsigned n = __atomic_load_n(&g_n, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < n; i++) {
		uint64_t c = __atomic_load_n(&g_tab[i].count, __ATOMIC_RELAXED);
		if (c != g_tab[i].stamped) {
			g_tab[i].stamped = c;
			g_tab[i].last_ms = now;
		}
	}
}

void agent_handled__tick(void)
{
	if (!(__atomic_load_n(&g_dirty, __ATOMIC_ACQUIRE) & DIRTY_STAMP))
		return;
	pthread_mutex_lock(&g_report_lock);
	stamp_locked();
	pthread_mutex_unlock(&g_report_lock);
}

void agent_handled__atfork_child(void)
{
	/* The parent's counts are the parent's (its debugger stores them):
	 * the child counts from zero; the sites stay known. Its own
	 * debugger's HELLO says whether it wants them. The locks may have
	 * been held by the parent's agent thread at the fork. */
	pthread_mutex_init(&g_report_lock, NULL);
	agent_offer__atfork_child(&g_offer);
	for (unsigned i = 0; i < g_n; i++)
		g_tab[i].count = g_tab[i].reported = g_tab[i].stamped = g_tab[i].last_ms = 0;
	g_dirty = 0;
	g_report = false;
}

bool agent_handled__pending(void)
{
	return (__atomic_load_n(&g_dirty, __ATOMIC_ACQUIRE) & DIRTY_REPORT) &&
	       __atomic_load_n(&g_report, __ATOMIC_RELAXED);
}

bool agent_handled__wanted(void)
{
	return __atomic_load_n(&g_report, __ATOMIC_RELAXED);
}

int agent_handled__encode(struct wire_buf *b, enum wire_msg_type type,
			  const struct timespec *deadline)
{
	static struct wire_handled_entry out[HANDLED_MAX];
	bool totals = type == WIRE_MSG_HANDLED_RESULT;
	uint32_t k = 0;
	size_t at;
	if (deadline ? pthread_mutex_timedlock(&g_report_lock, deadline)
		     : pthread_mutex_lock(&g_report_lock))
		return -ETIMEDOUT;
	stamp_locked();
	if (!totals)
		__atomic_fetch_and(&g_dirty, ~DIRTY_REPORT, __ATOMIC_ACQ_REL);
	unsigned n = __atomic_load_n(&g_n, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < n; i++) {
		struct handled *e = &g_tab[i];
		uint64_t c = __atomic_load_n(&e->count, __ATOMIC_RELAXED);
		uint64_t d = totals ? c : c - e->reported;
		if (!totals)
			e->reported = c;
		if (!d)
			continue;
		uint64_t last = e->last_ms;
		/* Several code units of one line are one site. */
		uint32_t j = 0;
		while (j < k &&
		       (strcmp(out[j].site, e->site) || strcmp(out[j].exc_type, e->exc_type)))
			j++;
		if (j == k) {
			memset(&out[k], 0, sizeof out[k]);
			snprintf(out[k].site, sizeof out[k].site, "%s", e->site);
			snprintf(out[k].exc_type, sizeof out[k].exc_type, "%s", e->exc_type);
			k++;
		}
		out[j].count += d;
		if (last > out[j].last_ms)
			out[j].last_ms = last;
	}
	int rc = 0;
	if (k || totals) {
		rc = wire_msg__handled_begin(b, type, k, &at);
		for (uint32_t j = 0; j < k; j++)
			wire_msg__handled_entry(b, &out[j]);
		if (rc == 0)
			rc = wire_msg__handled_end(b, at);
		rc = rc ? rc : 1;
	}
	pthread_mutex_unlock(&g_report_lock);
	return rc;
}
