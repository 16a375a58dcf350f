/* Store operations: TTL expiry with an injected "now", staleness, rollback
 * by name and all, hit counts, selection by program and module, refused
 * permissions, and concurrent writers that lose nothing. */
#include "test_store_util.h"

#include <errno.h>
#include <sys/wait.h>

#define DAY 86400

static struct store *fresh(char *dir, size_t size)
{
	struct store *s;

	tmp_store(dir, size);
	cr_assert_eq(open_capturing(dir, STORE_F_CREATE, &s), 0, "%s", last_msg);
	return s;
}

Test(store_ttl, expiry_is_judged_at_read_time)
{
	char dir[256];
	struct store *s = fresh(dir, sizeof(dir));
	struct store_patch p = full_patch("a");
	const struct store_patch *got;
	struct store_query q = { .flags = STORE_Q_APPLICABLE };
	struct store_iter it;

	p.created = 1000000;
	p.ttl_days = 7;
	cr_assert_eq(store__add(s, &p), 0);
	got = store__find(s, "a");
	cr_assert_eq(store_patch__expires(got), 1000000 + 7 * DAY);
	cr_assert_eq(store_patch__status(got, 1000000 + 7 * DAY - 1), STORE_STATUS_ACTIVE);
	cr_assert_eq(store_patch__status(got, 1000000 + 7 * DAY), STORE_STATUS_EXPIRED);

	q.now = 1000000 + 7 * DAY - 1;
	store_iter__init(&it, s, &q);
	cr_assert_eq(store_iter__next(&it), got);
	cr_assert_null(store_iter__next(&it));
	cr_assert_eq(store_patch__verdict(got, &q), STORE_OK);

	/* Past the TTL it is reported, never returned as applicable. */
	q.now = 1000000 + 7 * DAY;
	store_iter__init(&it, s, &q);
	cr_assert_null(store_iter__next(&it));
	cr_assert_eq(store_patch__verdict(got, &q), STORE_V_EXPIRED);
	q.flags = 0;
	store_iter__init(&it, s, &q);
	cr_assert_eq(store_iter__next(&it), got);
	store__close(s);

	/* The index never stores "expired": an old file cannot revive it. */
	cr_assert_eq(open_capturing(dir, STORE_F_RDONLY, &s), 0);
	cr_assert_eq(store__find(s, "a")->status, STORE_STATUS_ACTIVE);
	cr_assert_eq(store_patch__status(store__find(s, "a"), store__now()), STORE_STATUS_EXPIRED);
	store__close(s);
	rm_tree(dir);
}

Test(store_stale, mark_stale_and_active)
{
	char dir[256];
	struct store *s = fresh(dir, sizeof(dir));
	struct store_patch p = full_patch("a");
	struct store_query q = { .now = p.created + 1, .flags = STORE_Q_APPLICABLE };
	struct store_iter it;
	struct store *other;

	cr_assert_eq(store__add(s, &p), 0);
	cr_assert_eq(store__mark_stale(s, "a", "code_id sha256:1 != sha256:0"), 0);
	cr_assert_eq(store__find(s, "a")->status, STORE_STATUS_STALE);
	cr_assert_str_eq(store__find(s, "a")->stale_reason, "code_id sha256:1 != sha256:0");
	cr_assert_eq(store_patch__status(store__find(s, "a"), q.now), STORE_STATUS_STALE);
	cr_assert_eq(store_patch__verdict(store__find(s, "a"), &q), STORE_V_STALE);
	store_iter__init(&it, s, &q);
	cr_assert_null(store_iter__next(&it));

	/* Another handle sees it after reload. */
	cr_assert_eq(open_capturing(dir, 0, &other), 0);
	cr_assert_eq(store__find(other, "a")->status, STORE_STATUS_STALE);
	cr_assert_eq(store__mark_active(other, "a"), 0);
	cr_assert_null(store__find(other, "a")->stale_reason);
	cr_assert_eq(store__reload(s), 0);
	cr_assert_eq(store__find(s, "a")->status, STORE_STATUS_ACTIVE);
	store__close(other);

	cr_assert_eq(store__mark_stale(s, "nope", NULL), -ENOENT);
	cr_assert(strstr(last_msg, "no patch named \"nope\""), "%s", last_msg);
	cr_assert_eq(store__mark_stale(s, "a", "bad\nreason"), -EINVAL);
	store__close(s);
	rm_tree(dir);
}

Test(store_rollback, by_name_and_all)
{
	char dir[256];
	struct store *s = fresh(dir, sizeof(dir));
	struct store_patch p[3] = { full_patch("a"), full_patch("b"), full_patch("c") };
	size_t n = 99;

	cr_assert_eq(store__add_many(s, p, 3), 0);
	cr_assert_eq(store__remove(s, "b"), 0);
	cr_assert_eq(store__count(s), 2);
	cr_assert_null(store__find(s, "b"));
	cr_assert_eq(store__remove(s, "b"), -ENOENT);
	cr_assert(strstr(last_msg, "no patch named \"b\""), "%s", last_msg);
	store__close(s);

	cr_assert_eq(open_capturing(dir, 0, &s), 0);
	cr_assert_eq(store__count(s), 2);
	cr_assert_not_null(store__find(s, "a"));
	cr_assert_not_null(store__find(s, "c"));
	cr_assert_eq(store__remove_all(s, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(store__count(s), 0);
	cr_assert_eq(store__remove_all(s, &n), 0);
	cr_assert_eq(n, 0);
	store__close(s);
	cr_assert_eq(open_capturing(dir, 0, &s), 0);
	cr_assert_eq(store__count(s), 0);
	store__close(s);
	rm_tree(dir);
}

Test(store_hits, record_hit)
{
	char dir[256];
	struct store *s = fresh(dir, sizeof(dir));
	struct store_patch p[2] = { full_patch("a"), full_patch("b") };
	const char *names[] = { "a", "gone", "b", "a" };
	size_t missing = 0;

	p[0].hits = 0;
	p[0].last_hit = 0;
	cr_assert_eq(store__add_many(s, p, 2), 0);
	cr_assert_eq(store__record_hit(s, "a", 2000000000), 0);
	cr_assert_eq(store__find(s, "a")->hits, 1);
	cr_assert_eq(store__find(s, "a")->last_hit, 2000000000);
	cr_assert_eq(store__record_hits(s, names, 4, 2000000100, &missing), 0);
	cr_assert_eq(missing, 1);
	cr_assert_eq(store__find(s, "a")->hits, 3);
	cr_assert_eq(store__find(s, "b")->hits, 43);
	cr_assert_eq(store__find(s, "b")->last_hit, 2000000100);
	cr_assert_eq(store__record_hit(s, "gone", 1), -ENOENT);
	store__close(s);
	rm_tree(dir);
}

/* Firing counts received from the agent: added, saturating, last_hit only
 * moves forward, zero counts and missing names change nothing. */
Test(store_hits, add_hits_adds_counts)
{
	char dir[256];
	struct store *s = fresh(dir, sizeof(dir));
	struct store *check;
	struct store_patch p[2] = { full_patch("a"), full_patch("b") };
	size_t missing = 0;

	p[0].hits = 0;
	p[0].last_hit = 0;
	p[1].hits = STORE_HITS_MAX - 2;
	cr_assert_eq(store__add_many(s, p, 2), 0);
	struct store_hit_count v[] = {
		{ "a", 3, 2000000000 },
		{ "gone", 5, 2000000000 },
		{ "b", 7, 1000 },
	};
	cr_assert_eq(store__add_hits(s, v, 3, &missing), 0);
	cr_assert_eq(missing, 1);
	cr_assert_eq(store__find(s, "a")->hits, 3);
	cr_assert_eq(store__find(s, "a")->last_hit, 2000000000);
	cr_assert_eq(store__find(s, "b")->hits, STORE_HITS_MAX);
	cr_assert_eq(store__find(s, "b")->last_hit, p[1].last_hit,
		     "an older firing moved last_hit back");
	/* Zero firings: no change at all, last_hit included. */
	struct store_hit_count z = { "a", 0, 2000000100 };
	cr_assert_eq(store__add_hits(s, &z, 1, NULL), 0);
	cr_assert_eq(store__find(s, "a")->hits, 3);
	cr_assert_eq(store__find(s, "a")->last_hit, 2000000000);
	/* Through the snapshot-reusing path, and seen by another reader. */
	struct store_hit_count w = { "a", 2, 2000000050 };
	cr_assert_eq(store__add_hits(s, &w, 1, NULL), 0);
	store__close(s);
	cr_assert_eq(open_capturing(dir, STORE_F_RDONLY, &check), 0);
	cr_assert_eq(store__find(check, "a")->hits, 5);
	cr_assert_eq(store__find(check, "a")->last_hit, 2000000050);
	store__close(check);
	rm_tree(dir);
}

/* A transaction copies the handle's own snapshot when index.json is the
 * file it was read from or wrote, and parses again when anyone else
 * replaced it, even with a file of the same size. */
Test(store_hits, snapshot_reused_only_while_the_file_is_unchanged)
{
	char dir[256];
	struct store *s = fresh(dir, sizeof(dir));
	struct store *other, *check;
	struct store_patch p[2] = { full_patch("a"), full_patch("b") };

	p[0].hits = p[1].hits = 1;
	cr_assert_eq(store__add_many(s, p, 2), 0);
	/* Our own writes, one after the other: each starts from the last. */
	for (int i = 0; i < 3; i++)
		cr_assert_eq(store__record_hit(s, "a", 2000000000 + i), 0);
	cr_assert_eq(store__find(s, "a")->hits, 4);
	/* Another writer replaces the file with one of the same size. */
	cr_assert_eq(open_capturing(dir, 0, &other), 0);
	cr_assert_eq(store__record_hit(other, "b", 2000000000), 0);
	cr_assert_eq(store__find(other, "b")->hits, 2);
	store__close(other);
	/* Our next transaction sees that write: nothing is lost. */
	cr_assert_eq(store__record_hit(s, "a", 2000000009), 0);
	cr_assert_eq(store__find(s, "a")->hits, 5);
	cr_assert_eq(store__find(s, "b")->hits, 2, "a stale snapshot overwrote another writer");
	store__close(s);
	cr_assert_eq(open_capturing(dir, STORE_F_RDONLY, &check), 0);
	cr_assert_eq(store__find(check, "a")->hits, 5);
	cr_assert_eq(store__find(check, "b")->hits, 2);
	cr_assert_eq(store__find(check, "a")->last_hit, 2000000009);
	store__close(check);
	rm_tree(dir);
}

Test(store_query, select_by_program_module_and_python)
{
	char dir[256];
	struct store *s = fresh(dir, sizeof(dir));
	struct store_patch p[4] = { full_patch("a"), full_patch("b"), full_patch("c"),
				    full_patch("d") };
	struct store_query q = { .program = "/srv/app/main.py",
				 .module = "app.config",
				 .python_version = "3.11.2",
				 .now = 1763700001,
				 .flags = STORE_Q_APPLICABLE };
	struct store_iter it;
	const struct store_patch *got;

	/* b: same function name, another script; c: another module;
	 * d: made under another Python build. */
	p[1].program = "/srv/other/main.py";
	p[2].module = "app.db";
	p[3].build_id = "ffff";
	q.build_id = p[0].build_id;
	cr_assert_eq(store__add_many(s, p, 4), 0);
	store_iter__init(&it, s, &q);
	cr_assert_not_null(got = store_iter__next(&it));
	cr_assert_str_eq(got->name, "a");
	cr_assert_null(store_iter__next(&it));
	cr_assert_eq(store_patch__verdict(store__find(s, "d"), &q), STORE_V_OTHER_PYTHON);
	q.python_version = "3.11.7";
	q.build_id = NULL;
	cr_assert_eq(store_patch__verdict(store__find(s, "a"), &q), STORE_V_OTHER_PYTHON);

	/* Without APPLICABLE: selection only. */
	q.flags = 0;
	q.program = NULL;
	store_iter__init(&it, s, &q);
	cr_assert_str_eq(store_iter__next(&it)->name, "a");
	cr_assert_str_eq(store_iter__next(&it)->name, "b");
	cr_assert_str_eq(store_iter__next(&it)->name, "d");
	cr_assert_null(store_iter__next(&it));
	store_iter__init(&it, s, NULL);
	for (int i = 0; i < 4; i++)
		cr_assert_not_null(store_iter__next(&it));
	cr_assert_null(store_iter__next(&it));
	store__close(s);
	rm_tree(dir);
}

/* ---- the directory ---------------------------------------------------------------- */

Test(store_dir, created_0700_and_default_path)
{
	char dir[256], cwd[4096];
	struct store *s;
	struct stat st;
	mode_t old = umask(0);

	s = fresh(dir, sizeof(dir));
	umask(old);
	cr_assert_eq(stat(dir, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700);
	store__close(s);
	{
		char slash[300];

		snprintf(slash, sizeof(slash), "%s//", dir);
		cr_assert_eq(open_capturing(slash, 0, &s), 0);
		cr_assert_str_eq(store__path(s), dir);
		store__close(s);
	}

	/* NULL path: $SUTURE_STORE, else .suture in the working directory. */
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	cr_assert_eq(chdir(dir), 0);
	unsetenv(STORE_ENV);
	cr_assert_eq(open_capturing(NULL, STORE_F_CREATE, &s), 0);
	cr_assert_str_eq(store__path(s), ".suture");
	store__close(s);
	cr_assert_eq(stat(".suture", &st), 0);
	setenv(STORE_ENV, "elsewhere", 1);
	cr_assert_eq(open_capturing(NULL, STORE_F_CREATE, &s), 0);
	cr_assert_str_eq(store__path(s), "elsewhere");
	cr_assert_str_eq(store__index_path(s), "elsewhere/index.json");
	store__close(s);
	cr_assert_eq(chdir(cwd), 0);
	rm_tree(dir);
}

Test(store_dir, missing_store)
{
	char dir[256];
	struct store *s = (struct store *)1;

	tmp_store(dir, sizeof(dir));
	cr_assert_eq(open_capturing(dir, 0, &s), -ENOENT);
	cr_assert_null(s);
	cr_assert(strstr(last_msg, "no such store"), "%s", last_msg);
	cr_assert(strstr(last_msg, dir), "%s", last_msg);
	/* RDONLY never creates. */
	cr_assert_eq(open_capturing(dir, STORE_F_CREATE | STORE_F_RDONLY, &s), -ENOENT);
	rm_tree(dir);
}

Test(store_dir, not_a_directory)
{
	char dir[256];
	struct store *s;

	tmp_store(dir, sizeof(dir));
	write_file(dir, "x", 1);
	cr_assert_eq(open_capturing(dir, STORE_F_CREATE, &s), -ENOTDIR);
	cr_assert(strstr(last_msg, "not a directory"), "%s", last_msg);
	rm_tree(dir);
}

static void expect_perm_refused(const char *dir, const char *what)
{
	struct store *s = NULL;

	cr_assert_eq(open_capturing(dir, 0, &s), -EPERM, "%s not refused", what);
	cr_assert_null(s);
	cr_assert(strstr(last_msg, what), "expected \"%s\" in %s", what, last_msg);
}

Test(store_perm, group_or_world_writable_directory_refused)
{
	char dir[256];
	struct store *s = fresh(dir, sizeof(dir));
	struct store_patch p = full_patch("a");

	cr_assert_eq(store__add(s, &p), 0);
	store__close(s);
	cr_assert_eq(chmod(dir, 0770), 0);
	expect_perm_refused(dir, "group writable (mode 0770)");
	cr_assert(strstr(last_msg, "chmod go-w"), "%s", last_msg);
	cr_assert_eq(chmod(dir, 0703), 0);
	expect_perm_refused(dir, "world writable (mode 0703)");
	cr_assert_eq(chmod(dir, 01777), 0);
	expect_perm_refused(dir, "world writable (mode 1777)");
	/* Read-only use is refused too: others could have written anything. */
	cr_assert_eq(open_capturing(dir, STORE_F_RDONLY, &s), -EPERM);
	cr_assert_eq(chmod(dir, 0755), 0);
	cr_assert_eq(open_capturing(dir, STORE_F_RDONLY, &s), 0);
	store__close(s);
	rm_tree(dir);
}

Test(store_perm, writable_index_or_lock_refused)
{
	char dir[256], index[300], lock[300];
	struct store *s = fresh(dir, sizeof(dir));
	struct store_patch p = full_patch("a");

	cr_assert_eq(store__add(s, &p), 0);
	store__close(s);
	snprintf(index, sizeof(index), "%s/index.json", dir);
	snprintf(lock, sizeof(lock), "%s/lock", dir);
	cr_assert_eq(chmod(index, 0620), 0);
	expect_perm_refused(dir, "index.json: group writable (mode 0620)");
	cr_assert_eq(chmod(index, 0600), 0);
	cr_assert_eq(chmod(lock, 0666), 0);
	cr_assert_eq(open_capturing(dir, 0, &s), 0);
	p.name = "b";
	cr_assert_eq(store__add(s, &p), -EPERM);
	cr_assert(strstr(last_msg, "lock: world writable"), "%s", last_msg);
	store__close(s);
	rm_tree(dir);
}

Test(store_perm, owned_by_another_user_refused)
{
	char dir[256], index[300];
	struct store *s = fresh(dir, sizeof(dir));
	struct store_patch p = full_patch("a");

	cr_assert_eq(store__add(s, &p), 0);
	store__close(s);
	if (geteuid() != 0)
		cr_skip_test("needs root to chown");
	snprintf(index, sizeof(index), "%s/index.json", dir);
	cr_assert_eq(chown(index, 12345, 12345), 0);
	expect_perm_refused(dir, "owned by uid 12345");
	cr_assert_eq(chown(index, 0, 0), 0);
	cr_assert_eq(chown(dir, 12345, 12345), 0);
	expect_perm_refused(dir, "owned by uid 12345");
	rm_tree(dir);
}

Test(store_perm, symlinked_index_refused)
{
	char dir[256], index[300], target[300];
	struct store *s = fresh(dir, sizeof(dir));

	store__close(s);
	snprintf(index, sizeof(index), "%s/index.json", dir);
	snprintf(target, sizeof(target), "%s/real.json", dir);
	write_file(target, "{}", 2);
	cr_assert_eq(symlink(target, index), 0);
	expect_perm_refused(dir, "index.json: is a symbolic link");
	rm_tree(dir);
}

Test(store_dir, read_only_handle_never_writes)
{
	char dir[256];
	struct store *s = fresh(dir, sizeof(dir));
	struct store_patch p = full_patch("a");
	struct stat st;
	char lock[300];

	store__close(s);
	snprintf(lock, sizeof(lock), "%s/lock", dir);
	cr_assert_eq(open_capturing(dir, STORE_F_RDONLY, &s), 0);
	cr_assert_eq(store__add(s, &p), -EROFS);
	cr_assert_eq(store__remove_all(s, NULL), -EROFS);
	cr_assert_neq(stat(lock, &st), 0);
	store__close(s);
	rm_tree(dir);
}

/* ---- concurrency -------------------------------------------------------------------- */

#define NPROC 6
#define NEACH 20

static void child_adds(const char *dir, int id)
{
	struct store *s;
	char name[64];

	if (open_capturing(dir, STORE_F_CREATE, &s))
		_exit(10);
	for (int i = 0; i < NEACH; i++) {
		struct store_patch p = full_patch(name);

		snprintf(name, sizeof(name), "p%d.%d", id, i);
		p.line = i + 1;
		if (store__add(s, &p))
			_exit(11);
		/* Every child also bumps one shared patch: a read-modify-write
		 * of the same entry. */
		if (store__record_hit(s, "shared", 2000000000))
			_exit(12);
	}
	store__close(s);
	_exit(0);
}

Test(store_concurrency, writers_lose_nothing, .timeout = 60)
{
	char dir[256], name[64];
	struct store *s = fresh(dir, sizeof(dir));
	struct store_patch shared = full_patch("shared");
	pid_t pids[NPROC];

	shared.hits = 0;
	cr_assert_eq(store__add(s, &shared), 0);
	store__close(s);
	for (int i = 0; i < NPROC; i++) {
		pids[i] = fork();
		cr_assert_geq(pids[i], 0);
		if (pids[i] == 0)
			child_adds(dir, i);
	}
	for (int i = 0; i < NPROC; i++) {
		int status;

		cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d: status %#x: %s",
			  i, status, last_msg);
	}
	cr_assert_eq(open_capturing(dir, STORE_F_RDONLY, &s), 0);
	cr_assert_eq(store__count(s), NPROC * NEACH + 1);
	for (int i = 0; i < NPROC; i++) {
		for (int j = 0; j < NEACH; j++) {
			snprintf(name, sizeof(name), "p%d.%d", i, j);
			cr_assert_not_null(store__find(s, name), "%s lost", name);
		}
	}
	cr_assert_eq(store__find(s, "shared")->hits, NPROC * NEACH);
	store__close(s);
	rm_tree(dir);
}

Test(store_concurrency, no_temporary_files_left)
{
	char dir[256];
	struct store *s = fresh(dir, sizeof(dir));
	struct store_patch p = full_patch("a");
	int n = 0;
	FILE *ls;
	char cmd[400], line[256];

	char dead[300];

	for (int i = 0; i < 5; i++)
		cr_assert_eq(store__add(s, &p), 0);
	/* A writer that died between creating and renaming its temporary file
	 * left this: the next change removes it. */
	snprintf(dead, sizeof(dead), "%s/.index.json.tmp.99999.1.0", dir);
	write_file(dead, "{", 1);
	p.name = "b";
	cr_assert_eq(store__add(s, &p), 0);
	store__close(s);
	snprintf(cmd, sizeof(cmd), "ls -A '%s'", dir);
	cr_assert_not_null(ls = popen(cmd, "r"));
	while (fgets(line, sizeof(line), ls)) {
		n++;
		cr_assert(strcmp(line, "index.json\n") == 0 || strcmp(line, "lock\n") == 0,
			  "unexpected file %s", line);
	}
	pclose(ls);
	cr_assert_eq(n, 2);
	rm_tree(dir);
}
