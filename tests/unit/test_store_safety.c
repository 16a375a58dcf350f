/* store/: what a hostile file system cannot make the store do
 * (docs/formats/store.md, "Safety rules"): a store directory or code/
 * reached through a symbolic link, a code/ others can write or another user
 * owns, a file planted at a temporary file's name, a lock that is not a
 * regular file; and names chosen under the lock (store__add_unique), so two
 * processes healing one site at once keep both patches. */
#include "test_store_util.h"

#include "store/code.h"

#include <errno.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *ID = "fnv64:0123456789abcdef";
static const uint8_t code[] = { 151, 0, 124, 0, 83, 0 };

static struct rewrite_code_info sample(void)
{
	return (struct rewrite_code_info){
		.code = code,
		.code_len = sizeof code,
		.firstlineno = 1,
		.stacksize = 1,
		.filename = "/srv/app.py",
		.name = "f",
		.qualname = "f",
	};
}

static struct store *fresh(char *dir, size_t size)
{
	struct store *s;

	tmp_store(dir, size);
	cr_assert_eq(open_capturing(dir, STORE_F_CREATE, &s), 0, "%s", last_msg);
	return s;
}

/* dir/name, into buf. */
static char *at(char *buf, size_t size, const char *dir, const char *name)
{
	snprintf(buf, size, "%s/%s", dir, name);
	return buf;
}

static int entries(const char *path)
{
	char cmd[400];
	FILE *ls;
	int n = 0;

	snprintf(cmd, sizeof(cmd), "ls -A '%s'", path);
	cr_assert_not_null(ls = popen(cmd, "r"));
	for (int c; (c = fgetc(ls)) != EOF;)
		n += c == '\n';
	pclose(ls);
	return n;
}

/* ---- the store directory ------------------------------------------------------------ */

Test(store_link, symlinked_store_refused_and_its_target_untouched)
{
	char dir[256], real[300], link[300];
	struct store *s = fresh(dir, sizeof(dir));
	struct store_patch p = full_patch("a");

	store__close(s);
	/* The planted link, and the directory it leads to (the caller's own:
	 * only the link is wrong). */
	at(real, sizeof(real), dir, "real");
	cr_assert_eq(mkdir(real, 0700), 0);
	at(link, sizeof(link), dir, "link");
	cr_assert_eq(symlink(real, link), 0);
	for (unsigned f = 0; f < 3; f++) {
		unsigned flags = (unsigned[]){ 0, STORE_F_CREATE, STORE_F_RDONLY }[f];

		s = (struct store *)1;
		last_msg[0] = '\0';
		cr_assert_eq(open_capturing(link, flags, &s), -EPERM, "flags %#x", flags);
		cr_assert_null(s);
		cr_assert(strstr(last_msg, link) && strstr(last_msg, "is a symbolic link") &&
				  strstr(last_msg, real),
			  "%s", last_msg);
		cr_assert_null(strchr(last_msg, '\n'), "one line: %s", last_msg);
	}
	cr_assert_eq(entries(real), 0, "something was written through the link");
	/* A dangling link is refused too, and nothing is created at its target. */
	cr_assert_eq(rmdir(real), 0);
	cr_assert_eq(open_capturing(link, STORE_F_CREATE, &s), -EPERM);
	cr_assert(strstr(last_msg, "is a symbolic link"), "%s", last_msg);
	cr_assert_neq(access(real, F_OK), 0);
	/* The real directory, named as it is, still works; so does a path whose
	 * parent (not the store itself) is a link: the caller's business. */
	cr_assert_eq(mkdir(real, 0700), 0);
	cr_assert_eq(open_capturing(real, 0, &s), 0);
	cr_assert_eq(store__add(s, &p), 0);
	store__close(s);
	{
		char via[400];

		snprintf(via, sizeof(via), "%s/s", link);
		cr_assert_eq(open_capturing(via, STORE_F_CREATE, &s), 0, "%s", last_msg);
		store__close(s);
	}
	rm_tree(dir);
}

Test(store_link, default_store_in_the_working_directory)
{
	char dir[256], cwd[4096], target[300];
	struct store *s;

	tmp_store(dir, sizeof(dir));
	cr_assert_eq(mkdir(dir, 0700), 0);
	at(target, sizeof(target), dir, "elsewhere");
	cr_assert_eq(mkdir(target, 0755), 0);
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	cr_assert_eq(chdir(dir), 0);
	cr_assert_eq(symlink(target, ".suture"), 0);
	unsetenv(STORE_ENV);
	cr_assert_eq(open_capturing(NULL, STORE_F_CREATE, &s), -EPERM);
	cr_assert(strstr(last_msg, "store: .suture: is a symbolic link"), "%s", last_msg);
	cr_assert_eq(chdir(cwd), 0);
	cr_assert_eq(entries(target), 0);
	rm_tree(dir);
}

Test(store_lock, a_lock_that_is_not_a_regular_file_is_refused)
{
	char dir[256], lock[300];
	struct store *s = fresh(dir, sizeof(dir));
	struct store_patch p = full_patch("a");

	store__close(s);
	cr_assert_eq(mkfifo(at(lock, sizeof(lock), dir, "lock"), 0600), 0);
	cr_assert_eq(open_capturing(dir, 0, &s), 0);
	cr_assert_eq(store__add(s, &p), -EPERM);
	cr_assert(strstr(last_msg, "lock: not a regular file"), "%s", last_msg);
	store__close(s);
	rm_tree(dir);
}

/* ---- code/ --------------------------------------------------------------------------- */

Test(store_code_dir, symlinked_code_dir_refused)
{
	char dir[256], code_dir[300], target[300];
	struct rewrite_code_info in = sample();
	struct store *s = fresh(dir, sizeof(dir));
	struct store_code c;

	snprintf(target, sizeof(target), "%s.target", dir);
	cr_assert_eq(mkdir(target, 0700), 0);
	cr_assert_eq(symlink(target, at(code_dir, sizeof(code_dir), dir, STORE_CODE_DIR)), 0);
	cr_assert_eq(store_code__save(s, ID, &in), -EPERM);
	cr_assert(strstr(last_msg, code_dir) && strstr(last_msg, "is a symbolic link"), "%s",
		  last_msg);
	cr_assert(strstr(store__error(s), "is a symbolic link"), "%s", store__error(s));
	cr_assert_eq(entries(target), 0, "written through the link");
	/* Reading through it is refused as well. */
	char file[400];
	snprintf(file, sizeof(file), "%s/0123456789abcdef.json", target);
	write_file(file, "{}", 2);
	cr_assert_eq(store_code__load(s, ID, &c), -EPERM);
	store__close(s);
	rm_tree(dir);
}

Test(store_code_dir, writable_code_dir_refused)
{
	char dir[256], code_dir[300];
	struct rewrite_code_info in = sample();
	struct store *s = fresh(dir, sizeof(dir));
	struct store_code c;

	cr_assert_eq(store_code__save(s, ID, &in), 0);
	at(code_dir, sizeof(code_dir), dir, STORE_CODE_DIR);
	for (int i = 0; i < 3; i++) {
		mode_t mode = (mode_t[]){ 0770, 0707, 01777 }[i];

		cr_assert_eq(chmod(code_dir, mode), 0);
		cr_assert_eq(store_code__save(s, ID, &in), -EPERM, "mode %o", mode);
		cr_assert(strstr(last_msg, code_dir) && strstr(last_msg, "writable (mode"), "%s",
			  last_msg);
		cr_assert_eq(store_code__load(s, ID, &c), -EPERM, "mode %o", mode);
	}
	cr_assert_eq(chmod(code_dir, 0700), 0);
	cr_assert_eq(store_code__load(s, ID, &c), 0);
	store_code__free(&c);
	store__close(s);
	rm_tree(dir);
}

Test(store_code_dir, code_dir_or_file_of_another_user_refused)
{
	char dir[256], code_dir[300], file[400];
	struct rewrite_code_info in = sample();
	struct store *s = fresh(dir, sizeof(dir));
	struct store_code c;

	cr_assert_eq(store_code__save(s, ID, &in), 0);
	if (geteuid() != 0)
		cr_skip_test("needs root to chown");
	at(code_dir, sizeof(code_dir), dir, STORE_CODE_DIR);
	cr_assert_eq(store_code__path(dir, ID, file, sizeof(file)), 0);
	cr_assert_eq(chown(file, 12345, 12345), 0);
	cr_assert_eq(store_code__load(s, ID, &c), -EPERM);
	cr_assert(strstr(last_msg, "owned by uid 12345"), "%s", last_msg);
	cr_assert_eq(chown(code_dir, 12345, 12345), 0);
	cr_assert_eq(store_code__save(s, ID, &in), -EPERM);
	cr_assert(strstr(last_msg, code_dir) && strstr(last_msg, "owned by uid 12345"), "%s",
		  last_msg);
	store__close(s);
	rm_tree(dir);
}

Test(store_code_dir, symlinked_or_writable_code_file_refused)
{
	char dir[256], file[400], other[420];
	struct rewrite_code_info in = sample();
	struct store *s = fresh(dir, sizeof(dir));
	struct store_code c;

	cr_assert_eq(store_code__save(s, ID, &in), 0);
	cr_assert_eq(store_code__path(dir, ID, file, sizeof(file)), 0);
	cr_assert_eq(chmod(file, 0666), 0);
	cr_assert_eq(store_code__load(s, ID, &c), -EPERM);
	cr_assert(strstr(last_msg, "world writable"), "%s", last_msg);
	snprintf(other, sizeof(other), "%s.real", file);
	cr_assert_eq(rename(file, other), 0);
	cr_assert_eq(chmod(other, 0600), 0);
	cr_assert_eq(symlink(other, file), 0);
	cr_assert_eq(store_code__load(s, ID, &c), -EPERM);
	cr_assert(strstr(last_msg, "is a symbolic link"), "%s", last_msg);
	store__close(s);
	rm_tree(dir);
}

/* Before: the temporary file was "<hex>.json.tmp.<pid>", opened O_TRUNC
 * without O_EXCL: a hard link planted at that name had its target
 * overwritten, and the code file kept the target's mode. */
Test(store_code_dir, nothing_planted_at_a_guessable_name_is_written)
{
	char dir[256], file[400], planted[450], victim[300];
	struct rewrite_code_info in = sample();
	struct store *s = fresh(dir, sizeof(dir));
	struct stat st;
	size_t len;
	char *text;

	cr_assert_eq(store_code__save(s, ID, &in), 0); /* code/ exists */
	cr_assert_eq(store_code__path(dir, ID, file, sizeof(file)), 0);
	cr_assert_eq(unlink(file), 0);
	snprintf(victim, sizeof(victim), "%s.victim", dir);
	write_file(victim, "precious", 8);
	cr_assert_eq(chmod(victim, 0644), 0);
	/* The name the old writer used in this process. */
	snprintf(planted, sizeof(planted), "%s.tmp.%d", file, (int)getpid());
	cr_assert_eq(link(victim, planted), 0);
	cr_assert_eq(store_code__save(s, ID, &in), 0, "%s", last_msg);
	cr_assert_not_null(text = read_file(victim, &len));
	cr_assert(len == 8 && memcmp(text, "precious", 8) == 0, "the victim was overwritten");
	free(text);
	cr_assert_eq(stat(file, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
	cr_assert_eq(st.st_nlink, 1);
	cr_assert_eq(stat(victim, &st), 0);
	cr_assert_eq(st.st_nlink, 2, "the planted link was not left alone");
	store__close(s);
	remove(victim);
	rm_tree(dir);
}

/* Whatever the umask, code/ is 0700 and a code file 0600; repeated saves
 * leave one file, no temporary one. */
Test(store_code_dir, modes_whatever_the_umask)
{
	char dir[256], code_dir[300], file[400];
	struct rewrite_code_info in = sample();
	struct store *s = fresh(dir, sizeof(dir));
	mode_t old = umask(0);
	struct stat st;

	for (int i = 0; i < 5; i++)
		cr_assert_eq(store_code__save(s, ID, &in), 0, "%s", last_msg);
	umask(old);
	cr_assert_eq(stat(at(code_dir, sizeof(code_dir), dir, STORE_CODE_DIR), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700);
	cr_assert_eq(store_code__path(dir, ID, file, sizeof(file)), 0);
	cr_assert_eq(stat(file, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
	cr_assert_eq(entries(code_dir), 1);
	store__close(s);
	rm_tree(dir);
}

/* ---- names chosen under the lock ---------------------------------------------------- */

Test(store_unique, names_apart_by_program_python_and_anchor)
{
	char dir[256], name[STORE_NAME_MAX + 1], first[STORE_NAME_MAX + 1];
	struct store *s = fresh(dir, sizeof(dir));
	struct store_patch p = full_patch(name);
	const struct store_patch *got;

	snprintf(name, sizeof(name), "m.f:3:key_guard");
	cr_assert_eq(store__add_unique(s, &p, name, sizeof(name)), 0);
	cr_assert_str_eq(name, "m.f:3:key_guard");
	/* The same site healed again: replaced, same name. */
	p.fallback = "31";
	cr_assert_eq(store__add_unique(s, &p, name, sizeof(name)), 0);
	cr_assert_str_eq(name, "m.f:3:key_guard");
	cr_assert_eq(store__count(s), 1);
	cr_assert_str_eq(store__find(s, name)->fallback, "31");
	/* Another program: named apart, deterministically. */
	p.program = "/srv/other/main.py";
	snprintf(name, sizeof(name), "m.f:3:key_guard");
	cr_assert_eq(store__add_unique(s, &p, name, sizeof(name)), 0);
	cr_assert_eq(strncmp(name, "m.f:3:key_guard@", 16), 0, "%s", name);
	cr_assert_eq(strlen(name), 16 + 8);
	snprintf(first, sizeof(first), "%s", name);
	snprintf(name, sizeof(name), "m.f:3:key_guard");
	cr_assert_eq(store__add_unique(s, &p, name, sizeof(name)), 0);
	cr_assert_str_eq(name, first);
	cr_assert_eq(store__count(s), 2);
	/* Another Python: apart too. */
	p.program = "/srv/app/main.py";
	p.python_version = "3.11.9";
	snprintf(name, sizeof(name), "m.f:3:key_guard");
	cr_assert_eq(store__add_unique(s, &p, name, sizeof(name)), 0);
	cr_assert_eq(strncmp(name, "m.f:3:key_guard@", 16), 0, "%s", name);
	cr_assert_str_neq(name, first);
	cr_assert_eq(store__count(s), 3);
	/* The first program's second guard of the kind on the line. */
	p.python_version = "3.11.2";
	p.anchor_offset = 140;
	snprintf(name, sizeof(name), "m.f:3:key_guard");
	cr_assert_eq(store__add_unique(s, &p, name, sizeof(name)), 0);
	cr_assert_str_eq(name, "m.f:3:key_guard#140");
	cr_assert_eq(store__count(s), 4);
	/* Once the first is stale, the site's new patch replaces it. */
	cr_assert_eq(store__mark_stale(s, "m.f:3:key_guard", "changed"), 0);
	snprintf(name, sizeof(name), "m.f:3:key_guard");
	cr_assert_eq(store__add_unique(s, &p, name, sizeof(name)), 0);
	cr_assert_str_eq(name, "m.f:3:key_guard");
	cr_assert_not_null(got = store__find(s, name));
	cr_assert_eq(got->anchor_offset, 140);
	cr_assert_eq(got->status, STORE_STATUS_ACTIVE);
	/* No room for the name: refused, nothing written. */
	p.program = "/srv/third.py";
	{
		char small[20] = "m.f:3:key_guard";

		p.name = small;
		cr_assert_eq(store__add_unique(s, &p, small, sizeof(small)), -ENAMETOOLONG);
		cr_assert_str_eq(small, "m.f:3:key_guard");
	}
	cr_assert_eq(store__count(s), 4);
	store__close(s);
	rm_tree(dir);
}

#define RACERS 4
#define ROUNDS 20

/* Each racer opens the store (reading the index, as a healer does), waits
 * for the others, then adds its patch under the same default name. */
static void racer(const char *dir, int id, int go)
{
	char name[STORE_NAME_MAX + 1] = "__main__.load:4:key_guard", prog[64], c;
	struct store_patch p = full_patch(name);
	struct store *s;

	snprintf(prog, sizeof(prog), "/srv/racer%d/app.py", id);
	p.program = prog;
	if (open_capturing(dir, STORE_F_CREATE, &s))
		_exit(10);
	if (read(go, &c, 1) != 0) /* EOF: every racer is released at once */
		_exit(11);
	if (store__add_unique(s, &p, name, sizeof(name)))
		_exit(12);
	store__close(s);
	_exit(0);
}

Test(store_unique, racing_heals_of_one_name_keep_every_patch, .timeout = 120)
{
	for (int round = 0; round < ROUNDS; round++) {
		char dir[256];
		struct store *s;
		pid_t pids[RACERS];
		int go[2];

		tmp_store(dir, sizeof(dir));
		cr_assert_eq(pipe(go), 0);
		for (int i = 0; i < RACERS; i++) {
			pids[i] = fork();
			cr_assert_geq(pids[i], 0);
			if (pids[i] == 0) {
				close(go[1]);
				racer(dir, i, go[0]);
			}
		}
		close(go[0]);
		usleep(20000); /* every racer has opened the store (read the index) */
		close(go[1]);
		for (int i = 0; i < RACERS; i++) {
			int status;

			cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
			cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
				  "round %d racer %d: status %#x", round, i, status);
		}
		cr_assert_eq(open_capturing(dir, STORE_F_RDONLY, &s), 0);
		cr_assert_eq(store__count(s), RACERS, "round %d: %zu of %d patches kept", round,
			     store__count(s), RACERS);
		store__close(s);
		rm_tree(dir);
	}
}

/* Names already on disk must not change between versions: the @hash is the
 * low 32 bits of FNV-1a 64 over program then Python version. */
Test(store_unique, hash_suffix_is_pinned)
{
	char dir[256], name[STORE_NAME_MAX + 1];
	struct store *s = fresh(dir, sizeof(dir));
	struct store_patch p = full_patch(name);

	p.program = "/srv/other.py";
	snprintf(name, sizeof(name), "app.Loader.load:12:key_guard");
	cr_assert_eq(store__add_unique(s, &p, name, sizeof(name)), 0);
	p.program = "/srv/app.py";
	snprintf(name, sizeof(name), "app.Loader.load:12:key_guard");
	cr_assert_eq(store__add_unique(s, &p, name, sizeof(name)), 0);
	cr_assert_str_eq(name, "app.Loader.load:12:key_guard@f71bc29d");
	p.python_version = "3.11.4";
	snprintf(name, sizeof(name), "app.Loader.load:12:key_guard");
	cr_assert_eq(store__add_unique(s, &p, name, sizeof(name)), 0);
	cr_assert_str_eq(name, "app.Loader.load:12:key_guard@f71bb86b");
	store__close(s);
	rm_tree(dir);
}
