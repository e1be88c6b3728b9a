/*
 * client/args.h — table-driven command-line parsing for mtlctl.
 *
 * Each command describes its options in a cli_opt table; one parser reads
 * argv against that table and, everywhere on the line, against the table of
 * global options, so `mtlctl job list --json` and `mtlctl --json job list`
 * mean the same. The same tables print --help, so help cannot drift from
 * what is parsed. Accepted forms: --name VALUE, --name=VALUE, -o VALUE,
 * -oVALUE, flags without a value, "--" to end options; "-" alone is a
 * positional (stdin). The last occurrence of a repeated option wins.
 */
#ifndef CLI_ARGS_H
#define CLI_ARGS_H

#include <stdio.h>

#define CLI_MAX_OPTS 16 /* options per table */
#define CLI_MAX_POS 4   /* positionals per command */

/* One option. A NULL name ends a table. */
typedef struct cli_opt {
    const char *name;    /* long name without the dashes, e.g. "token-file" */
    char short_name;     /* single-letter alias, or 0 */
    const char *metavar; /* NULL: a flag that takes no value */
    const char *help;    /* one line for --help */
} cli_opt;

/* The options and positionals of one table, as parsed. Values are borrowed
 * from argv; a flag that was given reads as "1". */
typedef struct cli_args {
    const cli_opt *opts;              /* the table (may be NULL: none) */
    const char *val[CLI_MAX_OPTS];    /* by index into opts; NULL = not given */
    const char *pos[CLI_MAX_POS];
    int npos;
} cli_args;

/* Returned by cli_args_parse when -h/--help was seen. */
#define CLI_ARGS_HELP (-1)

/* Sets up `a` for table `opts` (which may be NULL). */
void cli_args_init(cli_args *a, const cli_opt *opts);

/* Parses argv[*i .. argc): options of `cmd`'s table or `glob`'s table (glob
 * may be NULL), positionals into cmd. With stop_at_pos, stops at the first
 * positional (or just after "--") leaving *i on it; otherwise consumes all.
 * Returns 0, CLI_ARGS_HELP, or CLI_EXIT_USAGE after printing why. */
int cli_args_parse(int argc, char **argv, int *i, cli_args *cmd, cli_args *glob,
                   int stop_at_pos);

/* The value of option `name` (which must be in a's table), or NULL. */
const char *cli_args_get(const cli_args *a, const char *name);

/* Prints an options table (may be NULL) as aligned "  --name VALUE  help"
 * lines, then "-h, --help  <help_line>" unless help_line is NULL. */
void cli_args_print_opts(FILE *f, const cli_opt *opts, const char *help_line);

/* Parses a non-negative decimal integer (all of s). 0 on success. */
int cli_parse_count(const char *s, long long *out);

#endif
