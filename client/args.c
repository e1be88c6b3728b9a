/*
 * client/args.c — the one argv parser of mtlctl (see args.h).
 *
 * Options are looked up first in the command's table, then in the global
 * table, by long name or short letter. Errors are printed here, once, as
 * "mtlctl: ..." lines; the caller adds the "Try ... --help" hint because only
 * it knows which command is being parsed.
 */
#include "client/args.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli.h"

void cli_args_init(cli_args *a, const cli_opt *opts)
{
    memset(a, 0, sizeof *a);
    a->opts = opts;
}

/* Index of the option named by (name, len) or short letter c, or -1. */
static int find_opt(const cli_opt *opts, const char *name, size_t len, char c)
{
    if (!opts)
        return -1;
    for (int k = 0; opts[k].name; k++) {
        assert(k < CLI_MAX_OPTS);
        if (name && strlen(opts[k].name) == len && strncmp(opts[k].name, name, len) == 0)
            return k;
        if (!name && c && opts[k].short_name == c)
            return k;
    }
    return -1;
}

int cli_args_parse(int argc, char **argv, int *ip, cli_args *cmd, cli_args *glob,
                   int stop_at_pos)
{
    int i = *ip;
    int only_pos = 0;

    for (; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            if (stop_at_pos)
                break;
            if (cmd->npos >= CLI_MAX_POS) {
                fprintf(stderr, "mtlctl: too many arguments\n");
                return CLI_EXIT_USAGE;
            }
            cmd->pos[cmd->npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            if (stop_at_pos) {
                i++;
                break;
            }
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            *ip = i;
            return CLI_ARGS_HELP;
        }

        const char *name = NULL, *inline_val = NULL;
        size_t len = 0;
        char c = 0;
        if (a[1] == '-') {
            name = a + 2;
            const char *eq = strchr(name, '=');
            len = eq ? (size_t)(eq - name) : strlen(name);
            if (eq)
                inline_val = eq + 1;
        } else {
            c = a[1];
            if (a[2] != '\0')
                inline_val = a + 2;
        }

        cli_args *owner = cmd;
        int k = find_opt(cmd->opts, name, len, c);
        if (k < 0 && glob) {
            owner = glob;
            k = find_opt(glob->opts, name, len, c);
        }
        if (k < 0) {
            if (name)
                fprintf(stderr, "mtlctl: unknown option '--%.*s'\n", (int)len, name);
            else
                fprintf(stderr, "mtlctl: unknown option '-%c'\n", c);
            return CLI_EXIT_USAGE;
        }
        const cli_opt *o = &owner->opts[k];
        if (!o->metavar) {
            if (inline_val) {
                fprintf(stderr, "mtlctl: option '--%s' takes no value\n", o->name);
                return CLI_EXIT_USAGE;
            }
            owner->val[k] = "1";
            continue;
        }
        if (!inline_val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mtlctl: option '--%s' needs a value (%s)\n", o->name,
                        o->metavar);
                return CLI_EXIT_USAGE;
            }
            inline_val = argv[++i];
        }
        owner->val[k] = inline_val;
    }
    *ip = i;
    return 0;
}

const char *cli_args_get(const cli_args *a, const char *name)
{
    int k = find_opt(a->opts, name, strlen(name), 0);
    assert(k >= 0 && "option not in the command's table");
    return k >= 0 ? a->val[k] : NULL;
}

void cli_args_print_opts(FILE *f, const cli_opt *opts, const char *help_line)
{
    int width = help_line ? (int)strlen("-h, --help") : 0;
    for (int k = 0; opts && opts[k].name; k++) {
        int w = 4 + 2 + (int)strlen(opts[k].name);
        if (opts[k].metavar)
            w += 1 + (int)strlen(opts[k].metavar);
        if (w > width)
            width = w;
    }
    for (int k = 0; opts && opts[k].name; k++) {
        char left[96];
        const cli_opt *o = &opts[k];
        if (o->short_name)
            snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->name,
                     o->metavar ? " " : "", o->metavar ? o->metavar : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", o->name, o->metavar ? " " : "",
                     o->metavar ? o->metavar : "");
        fprintf(f, "  %-*s  %s\n", width, left, o->help);
    }
    if (help_line)
        fprintf(f, "  %-*s  %s\n", width, "-h, --help", help_line);
}

int cli_parse_count(const char *s, long long *out)
{
    char *end = NULL;
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end != '\0' || v < 0)
        return -1;
    *out = v;
    return 0;
}
