/* heal/linemap.c: a held crash's line in the edited text (docs/design.md
 * §13): above the edit it stays, below it moves with the edit's length,
 * inside it keeps its distance from the edit's start (clamped); a line in
 * a deleted region or past the end has none. */
#include <criterion/criterion.h>
#include <string.h>

#include "heal/heal-priv.h"

static int map(const char *a, const char *b, int line)
{
	return heal_linemap__map(a, strlen(a), b, strlen(b), line);
}

static const char *old = "def f(rs):\n"
			 "    t = 0\n"
			 "    for r in rs:\n"
			 "        assert r >= 0\n"
			 "        t += r\n"
			 "    return t\n";

Test(heal_linemap, unchanged_text_keeps_every_line)
{
	for (int l = 1; l <= 6; l++)
		cr_assert_eq(map(old, old, l), l);
	cr_assert_eq(map(old, old, 7), -1);
	cr_assert_eq(map(old, old, 0), -1);
}

Test(heal_linemap, the_failing_line_rewritten_in_place)
{
	const char *now = "def f(rs):\n"
			  "    t = 0\n"
			  "    for r in rs:\n"
			  "        q = max(r, 0)\n"
			  "        t += q\n"
			  "    return t\n";
	cr_assert_eq(map(old, now, 4), 4);
	cr_assert_eq(map(old, now, 5), 5);
	cr_assert_eq(map(old, now, 6), 6);
	cr_assert_eq(map(old, now, 2), 2);
}

Test(heal_linemap, lines_inserted_above_move_what_follows)
{
	const char *now = "import os\n"
			  "\n"
			  "def f(rs):\n"
			  "    t = 0\n"
			  "    for r in rs:\n"
			  "        assert r >= 0\n"
			  "        t += r\n"
			  "    return t\n";
	cr_assert_eq(map(old, now, 4), 6);
	cr_assert_eq(map(old, now, 6), 8);
}

Test(heal_linemap, a_guard_inserted_at_the_failing_line_is_where_it_restarts)
{
	const char *now = "def f(rs):\n"
			  "    t = 0\n"
			  "    for r in rs:\n"
			  "        if r < 0:\n"
			  "            r = 0\n"
			  "        assert r >= 0\n"
			  "        t += r\n"
			  "    return t\n";
	cr_assert_eq(map(old, now, 4), 4);
	cr_assert_eq(map(old, now, 5), 7);
}

Test(heal_linemap, a_deleted_region_has_no_line)
{
	const char *now = "def f(rs):\n"
			  "    t = 0\n"
			  "    return t\n";
	cr_assert_eq(map(old, now, 4), -1);
	cr_assert_eq(map(old, now, 6), 3);
}
