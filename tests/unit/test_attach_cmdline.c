/* attach_cmdline__script (attach/proc.c): the script of a python command line, from the bytes of
 * /proc/PID/cmdline (NUL-separated, the last NUL possibly missing). The
 * store keeps patches per script, so a wrong answer here loads another
 * program's patches or none. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "attach/attach.h"

/* The script of the command line in bytes[0, n), as a string ("" if
 * none: then *rc says why). */
static const char *script_of(const char *bytes, size_t n, int *rc)
{
	static char out[256];
	const char *a = NULL;
	size_t len = 0;
	*rc = attach_cmdline__script(bytes, bytes + n, &a, &len);
	if (*rc)
		return "";
	cr_assert(a >= bytes && a + len <= bytes + n, "the answer lies outside the input");
	cr_assert_lt(len, sizeof(out));
	memcpy(out, a, len);
	out[len] = 0;
	return out;
}

/* A literal's bytes including the NULs inside it, without the C string's
 * own terminator. */
#define CMD(lit) lit, sizeof(lit) - 1

static void has_script(const char *bytes, size_t n, const char *want)
{
	int rc;
	const char *got = script_of(bytes, n, &rc);
	cr_assert_eq(rc, 0, "no script found, expected %s", want);
	cr_assert_str_eq(got, want);
}

static void no_script(const char *bytes, size_t n)
{
	int rc;
	const char *got = script_of(bytes, n, &rc);
	cr_assert_eq(rc, -ENOENT, "found \"%s\" where there is no script", got);
}

Test(attach_cmdline, empty_and_interpreter_only)
{
	no_script("", 0);
	no_script(CMD("python3.11\0"));
	no_script(CMD("python3.11")); /* NUL-less */
}

Test(attach_cmdline, plain_script)
{
	has_script(CMD("/usr/bin/python3.11\0app.py\0"), "app.py");
	has_script(CMD("python3\0/srv/app.py\0--flag\0-c\0x\0"), "/srv/app.py");
}

Test(attach_cmdline, last_argument_without_its_nul)
{
	has_script(CMD("python3\0app.py"), "app.py");
	has_script(CMD("python3\0-u\0app.py"), "app.py");
}

Test(attach_cmdline, module_and_command_have_no_script)
{
	no_script(CMD("python3\0-m\0pkg.main\0"));
	no_script(CMD("python3\0-mpkg\0"));
	no_script(CMD("python3\0-c\0print(1)\0"));
	no_script(CMD("python3\0-cprint(1)\0"));
	no_script(CMD("python3\0-Bc\0import app\0")); /* clustered: -B -c */
	no_script(CMD("python3\0-u\0-m\0app\0"));
	no_script(CMD("python3\0-\0"));  /* stdin */
	no_script(CMD("python3\0-i\0")); /* a REPL */
	no_script(CMD("python3\0\0"));   /* "" is no file */
}

Test(attach_cmdline, interpreter_flags_are_skipped)
{
	has_script(CMD("python3\0-u\0-B\0app.py\0"), "app.py");
	has_script(CMD("python3\0-uB\0app.py\0"), "app.py");
	has_script(CMD("python3\0-W\0ignore\0app.py\0"), "app.py");
	has_script(CMD("python3\0-Wignore\0app.py\0"), "app.py");
	has_script(CMD("python3\0-X\0dev\0app.py\0"), "app.py");
	has_script(CMD("python3\0-bX\0importtime\0app.py\0"), "app.py");
	has_script(CMD("python3\0-Xfrozen_modules=off\0app.py\0"), "app.py");
	has_script(CMD("python3\0--check-hash-based-pycs\0always\0app.py\0"), "app.py");
	/* The value of -W is not the script, even when it looks like one. */
	has_script(CMD("python3\0-W\0x.py\0app.py\0"), "app.py");
	/* -W at the very end: its value is missing, no script. */
	no_script(CMD("python3\0-W"));
}

Test(attach_cmdline, double_dash_ends_the_options)
{
	has_script(CMD("python3\0--\0-odd-name.py\0"), "-odd-name.py");
	has_script(CMD("python3\0-u\0--\0app.py\0"), "app.py");
	no_script(CMD("python3\0--\0"));
}
