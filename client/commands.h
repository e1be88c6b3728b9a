/*
 * client/commands.h — mtlctl's command table, as main.c defines it, for the
 * parts that are driven from it besides parsing and help: shell completion.
 */
#ifndef CLI_COMMANDS_H
#define CLI_COMMANDS_H

#include <stddef.h>

#include "client/cli.h"

/* One command: a row of main.c's table. */
typedef struct cli_command {
    const char *group;    /* "dataset", or NULL for a top-level command */
    const char *name;
    const char *synopsis; /* positionals and main options, for usage lines */
    int min_pos, max_pos;
    const cli_opt *opts;  /* NULL: no options of its own */
    const char *summary;  /* one line */
    int (*run)(cli_ctx *ctx, const cli_args *args);
} cli_command;

typedef struct cli_group {
    const char *name, *summary;
} cli_group;

/* The tables (static storage; *n gets the count). */
const cli_command *cli_commands(size_t *n);
const cli_group *cli_groups(size_t *n);
const cli_opt *cli_global_opts(void);

/* `mtlctl __complete WORD... CURRENT`: prints the candidates for CURRENT
 * (the last word, maybe empty) one per line, or the line "__files__" when
 * a file name is wanted. Returns an exit code (always CLI_EXIT_OK). */
int cli_complete(int argc, char **argv);

#endif
