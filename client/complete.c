/*
 * client/complete.c — candidates for shell completion (`mtlctl __complete`),
 * computed from the same tables that drive parsing and help, so the bash
 * script (client/mtlctl.bash) never lists a command or option that does
 * not exist. The script passes the words typed so far; the last is the one
 * being completed.
 *
 * Values with a fixed set of choices come from `choices[]` below; options
 * and positionals that name files answer "__files__" so the shell completes
 * file names itself.
 */
#include <stdio.h>
#include <string.h>

#include "client/commands.h"

static const struct {
    const char *opt, *words;
} choices[] = {
    {"missing", "error drop fill keep"},
    {"kind", "classification regression"},
    {"state", "queued running succeeded failed cancelled"},
    {"generator", "sinusoid"},
    {"class-weight", "balanced"},
    {"delimiter", ", ; tab"},
    {"checkpoint", "latest best"},
};

static const char *const file_opts[] = {"output", "support", "query", "token-file", NULL};

static const cli_opt *find_opt(const cli_opt *opts, const char *word)
{
    if (!opts || word[0] != '-')
        return NULL;
    for (int k = 0; opts[k].name; k++) {
        if (word[1] == '-' && strcmp(word + 2, opts[k].name) == 0)
            return &opts[k];
        if (word[1] != '-' && opts[k].short_name && word[1] == opts[k].short_name && !word[2])
            return &opts[k];
    }
    return NULL;
}

static void print_words(const char *words)
{
    for (const char *p = words; *p;) {
        size_t n = strcspn(p, " ");
        printf("%.*s\n", (int)n, p);
        p += n;
        p += *p == ' ';
    }
}

static void print_opts(const cli_opt *opts)
{
    for (int k = 0; opts && opts[k].name; k++)
        printf("--%s\n", opts[k].name);
}

/* Completion of the value of option o. */
static void value_of(const cli_opt *o)
{
    for (size_t k = 0; k < sizeof choices / sizeof choices[0]; k++)
        if (strcmp(choices[k].opt, o->name) == 0) {
            print_words(choices[k].words);
            return;
        }
    for (int k = 0; file_opts[k]; k++)
        if (strcmp(file_opts[k], o->name) == 0)
            puts("__files__");
}

int cli_complete(int argc, char **argv)
{
    size_t ncmd, ngrp;
    const cli_command *cmds = cli_commands(&ncmd);
    const cli_group *grps = cli_groups(&ngrp);
    const cli_opt *glob = cli_global_opts();
    const char *group = NULL;
    const cli_command *cmd = NULL;
    int npos = 0;

    /* argv[0] is "__complete"; argv[argc - 1] is the word being completed. */
    if (argc < 2)
        return CLI_EXIT_OK;
    const char *cur = argv[argc - 1];
    for (int i = 1; i < argc - 1; i++) {
        const char *w = argv[i];
        const cli_opt *o = find_opt(cmd ? cmd->opts : NULL, w);
        if (!o)
            o = find_opt(glob, w);
        if (o) {
            if (o->metavar && !strchr(w, '='))
                i++; /* its value */
            continue;
        }
        if (w[0] == '-')
            continue;
        if (cmd) {
            npos++;
            continue;
        }
        for (size_t k = 0; k < ncmd && !cmd; k++)
            if (((!group && !cmds[k].group) ||
                 (group && cmds[k].group && strcmp(group, cmds[k].group) == 0)) &&
                strcmp(cmds[k].name, w) == 0)
                cmd = &cmds[k];
        for (size_t g = 0; g < ngrp && !cmd && !group; g++)
            if (strcmp(grps[g].name, w) == 0)
                group = grps[g].name;
    }

    /* the value of the option just before? */
    if (argc >= 3) {
        const char *prev = argv[argc - 2];
        const cli_opt *o = find_opt(cmd ? cmd->opts : NULL, prev);
        if (!o)
            o = find_opt(glob, prev);
        if (o && o->metavar) {
            value_of(o);
            return CLI_EXIT_OK;
        }
    }
    if (cur[0] == '-') {
        print_opts(cmd ? cmd->opts : NULL);
        print_opts(glob);
        puts("--help");
        return CLI_EXIT_OK;
    }
    if (cmd) {
        if (npos < cmd->max_pos && (strstr(cmd->synopsis, "FILE") || strstr(cmd->synopsis, ".json")) &&
            (npos > 0 || strncmp(cmd->synopsis, "JOB", 3) != 0))
            puts("__files__");
        return CLI_EXIT_OK;
    }
    for (size_t k = 0; k < ncmd; k++)
        if ((!group && !cmds[k].group) || (group && cmds[k].group && !strcmp(group, cmds[k].group)))
            puts(cmds[k].name);
    if (!group) {
        for (size_t g = 0; g < ngrp; g++)
            puts(grps[g].name);
        puts("help");
    }
    return CLI_EXIT_OK;
}
