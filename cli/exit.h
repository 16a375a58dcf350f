/* cli/: the exit statuses of every suture command, one table (issue 16):
 * a number means the same thing whichever command returns it. Each
 * command's man page lists the ones it can return; suture-run otherwise
 * exits with its program's own status. docs/man/suture.7, EXIT STATUS. */
#ifndef SUTURE_CLI_EXIT_H
#define SUTURE_CLI_EXIT_H

enum suture_exit {
	EXIT_OK = 0,
	EXIT_FAIL = 1,        /* any other error (a store refused or corrupt ...) */
	EXIT_USAGE = 2,       /* bad options or arguments, a thread id as --pid */
	EXIT_NO_PROCESS = 3,  /* no such process */
	EXIT_NOT_PYTHON = 4,  /* not a Python process */
	EXIT_BAD_VERSION = 5, /* not CPython 3.11 (a process, or suture-run's interpreter) */
	EXIT_PERMISSION = 6,  /* not allowed to trace it */
	EXIT_TRACED = 7,      /* another tracer holds it */
	EXIT_STOPPED = 8,     /* it is stopped (SIGSTOP, job control) */
	EXIT_EXITED = 9,      /* it exited during the attach */
	EXIT_NO_LAYOUT = 10,  /* its interpreter's layout cannot be found */
	EXIT_NO_AGENT = 11,   /* no suture agent in that process */
	EXIT_NOT_FOUND = 12,  /* what was named is not there: no such patch (or a
				* name naming several), no module from --reload's
				* FILE, no code on a --log/--snapshot line */
	EXIT_NO_PATCH = EXIT_NOT_FOUND,
	EXIT_NO_COMPILE = 13,  /* --reload: FILE does not compile (target unchanged) */
	EXIT_NO_SNAPSHOT = 14, /* --snapshot: the line did not run within --timeout */
	EXIT_NO_STORE = 15,    /* no store (explain, rollback, renew) */
	EXIT_AGENT_OLD = 16,   /* the agent there is too old for the request */
	EXIT_AGENT_BUSY = 17,  /* the agent serves another debugger */
	EXIT_CANNOT_RUN = 127, /* suture-run: the interpreter cannot be run */
};

#define SUTURE_VERSION "0.1.0"

#endif
