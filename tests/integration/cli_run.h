/*
 * tests/integration/cli_run.h — runs the built mtlctl as a person or a
 * script would: as a child process with arguments, an environment, an
 * optional stdin file, and stdout/stderr captured — either to files (not a
 * terminal) or through a pseudo-terminal (forkpty) so mtlctl sees a tty.
 */
#ifndef TEST_CLI_RUN_H
#define TEST_CLI_RUN_H

#include <stddef.h>

typedef struct {
    int status;      /* exit code, or 128+signal */
    char *out;       /* stdout (for a pty: everything the terminal showed) */
    size_t out_len;
    char *err;       /* stderr ("" for a pty: it shares the terminal) */
    long maxrss_kb;  /* the child's peak resident memory */
} c_result;

/* Runs MTLCTL_BIN with argv (NULL-terminated, without argv[0]). env: extra
 * "NAME=value" entries, or "NAME" to unset (NULL-terminated, may be NULL);
 * MTLD_URL, MTLD_TOKEN and NO_COLOR are unset first, and TERM is xterm.
 * stdin_path may be NULL (/dev/null). Aborts the test on a runaway child
 * (timeout_s). */
c_result c_run(const char *const *env, const char *stdin_path, double timeout_s,
               const char *const *argv);
/* The same on a pseudo-terminal of 100 columns by 30 rows. */
c_result c_run_pty(const char *const *env, double timeout_s, const char *const *argv);
void c_result_free(c_result *r);

/* Shorthand: c_run with --url url prepended and a 120 s timeout. */
c_result c_mtlctl(const char *url, const char *const *argv);

/* 1 if the n bytes at s contain byte c. */
int c_has_byte(const char *s, size_t n, char c);

#endif
