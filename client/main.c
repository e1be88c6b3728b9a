/*
 * client/main.c — mtlctl's entry point: the global options, the command
 * dispatch table, --help at every level, and the per-run context.
 *
 * Everything a command is — its words, its arguments, its options, its help
 * line, its handler — is one row of `commands[]`; parsing, dispatch and help
 * are all driven from that table, so a command cannot exist without help or
 * be documented without existing. Global options are accepted anywhere on
 * the line (before or after the command words).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/commands.h"
#include "client/out.h"

static const cli_opt global_opts[] = {
    {"url", 0, "URL", "server base URL (default: $MTLD_URL, else " CLI_DEFAULT_URL ")"},
    {"token", 0, "TOKEN", "bearer token (default: $MTLD_TOKEN)"},
    {"token-file", 0, "FILE", "read the bearer token from the first line of FILE"},
    {"json", 0, NULL, "print the server's JSON body as received"},
    {"quiet", 'q', NULL, "print only ids and essentials"},
    {"wait", 0, "SECONDS", "retry a refused connection with backoff for up to SECONDS"},
    {"version", 0, NULL, "print the version and exit"},
    {NULL, 0, NULL, NULL},
};

typedef cli_command command;

static const command commands[] = {
    {NULL, "health", "", 0, 0, NULL, "check that the server answers", cli_cmd_health},
    {NULL, "version", "", 0, 0, NULL, "print mtlctl's version", cli_cmd_version},
    {"dataset", "upload", "FILE [--name N] [--missing error|drop|fill|keep] [--delimiter C] [--no-header]", 1, 1,
     cli_dataset_upload_opts, "upload a CSV file (streamed from disk; '-' reads stdin)",
     cli_cmd_dataset_upload},
    {"dataset", "list", "[--limit N] [--offset N]", 0, 0, cli_list_opts, "list datasets",
     cli_cmd_dataset_list},
    {"dataset", "show", "ID", 1, 1, NULL, "describe a dataset and its columns",
     cli_cmd_dataset_show},
    {"dataset", "rows", "ID [--offset N] [--limit N]", 1, 1, cli_dataset_rows_opts,
     "preview a dataset's rows as a table", cli_cmd_dataset_rows},
    {"dataset", "rm", "ID", 1, 1, NULL, "delete a dataset", cli_cmd_dataset_rm},
    {"task", "create",
     "--name N (--dataset D --target COL [--kind K] [--features a,b | --exclude a,b]"
     " [--class-weight balanced] | --generator sinusoid)",
     0, 0, cli_task_create_opts, "define a task", cli_cmd_task_create},
    {"task", "list", "[--limit N] [--offset N]", 0, 0, cli_list_opts, "list tasks",
     cli_cmd_task_list},
    {"task", "show", "ID", 1, 1, NULL, "describe a task", cli_cmd_task_show},
    {"task", "rm", "ID", 1, 1, NULL, "delete a task", cli_cmd_task_rm},
    {"job", "submit", "SPEC.json [--watch]", 1, 1, cli_job_submit_opts,
     "submit a job spec (sent verbatim; '-' reads stdin) and print its id", cli_cmd_job_submit},
    {"job", "list", "[--state S] [--limit N] [--offset N]", 0, 0, cli_job_list_opts,
     "list jobs, newest first", cli_cmd_job_list},
    {"job", "show", "ID", 1, 1, NULL, "describe a job and, once done, its results",
     cli_cmd_job_show},
    {"job", "watch", "ID", 1, 1, NULL, "follow a job until it ends; exit 5 if it fails",
     cli_cmd_job_watch},
    {"job", "cancel", "ID", 1, 1, NULL, "cancel a queued or running job", cli_cmd_job_cancel},
    {"job", "rm", "ID", 1, 1, NULL, "delete a finished job", cli_cmd_job_rm},
    {"job", "metrics", "ID [--csv] [--since N]", 1, 1, cli_job_metrics_opts,
     "print a job's recorded metrics", cli_cmd_job_metrics},
    {"job", "checkpoints", "ID", 1, 1, NULL, "list a job's checkpoints", cli_cmd_job_checkpoints},
    {"job", "checkpoint", "ID -o FILE [--checkpoint C]", 1, 1, cli_job_checkpoint_opts,
     "download a checkpoint (safetensors; the latest unless --checkpoint best or an id) "
     "atomically to FILE", cli_cmd_job_checkpoint},
    {NULL, "predict", "JOB FILE.csv [--task T] [--checkpoint C]", 2, 2, cli_predict_opts,
     "predict the rows of a CSV file with a trained job; prints CSV", cli_cmd_predict},
    {"checkpoint", "import", "FILE [--name N]", 1, 1, cli_checkpoint_import_opts,
     "import a model trained elsewhere for jobs to start from", cli_cmd_checkpoint_import},
    {"checkpoint", "list", "[--limit N] [--offset N]", 0, 0, cli_list_opts,
     "list imported checkpoints", cli_cmd_checkpoint_list},
    {NULL, "metrics", "", 0, 0, NULL, "print the daemon's Prometheus metrics as received",
     cli_cmd_server_metrics},
    {NULL, "adapt", "JOB --support FILE.csv --query FILE.csv [--label COL] [--steps N]", 1, 1,
     cli_adapt_opts, "adapt a meta-learned model to a labelled support set; predict the query",
     cli_cmd_adapt},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const cli_group groups[] = {
    {"dataset", "CSV datasets: upload, list, show, rows, rm"},
    {"task", "tasks on dataset columns or generators: create, list, show, rm"},
    {"job", "training jobs: submit, list, show, watch, cancel, rm, metrics, checkpoint(s)"},
    {"checkpoint", "models imported from elsewhere: import, list"},
};
#define NGROUPS (sizeof groups / sizeof groups[0])

const cli_command *cli_commands(size_t *n)
{
    *n = NCOMMANDS;
    return commands;
}

const cli_group *cli_groups(size_t *n)
{
    *n = NGROUPS;
    return groups;
}

const cli_opt *cli_global_opts(void)
{
    return global_opts;
}

static int is_group(const char *word)
{
    for (size_t g = 0; g < NGROUPS; g++)
        if (strcmp(groups[g].name, word) == 0)
            return 1;
    return 0;
}

static const command *find_command(const char *group, const char *name)
{
    for (size_t k = 0; k < NCOMMANDS; k++) {
        const command *c = &commands[k];
        if (((!group && !c->group) || (group && c->group && strcmp(group, c->group) == 0)) &&
            strcmp(name, c->name) == 0)
            return c;
    }
    return NULL;
}

/* "dataset show ID": the words and the leading positionals of the synopsis. */
static void print_command_line(FILE *f, const command *c)
{
    char words[64];
    size_t pos = strcspn(c->synopsis, "[(");
    const char *dd = strstr(c->synopsis, "--");
    if (dd && (size_t)(dd - c->synopsis) < pos)
        pos = (size_t)(dd - c->synopsis);
    while (pos > 0 && c->synopsis[pos - 1] == ' ')
        pos--;
    snprintf(words, sizeof words, "%s%s%s%s%.*s", c->group ? c->group : "",
             c->group ? " " : "", c->name, pos ? " " : "", (int)pos, c->synopsis);
    fprintf(f, "  %-26s %s\n", words, c->summary);
}

static void print_main_help(FILE *f)
{
    fprintf(f, "Usage: mtlctl [GLOBAL OPTIONS] COMMAND [ARGS...]\n\n"
               "mtlctl drives mtld, the multi-task and meta-learning training daemon, over "
               "HTTP.\n\nCommands:\n");
    for (size_t k = 0; k < NCOMMANDS; k++)
        print_command_line(f, &commands[k]);
    fprintf(f, "  %-26s %s\n", "help [COMMAND]", "show help for a command");
    fprintf(f, "\nGlobal options (accepted anywhere on the line):\n");
    cli_args_print_opts(f, global_opts, "show help (after any command: its help)");
    fprintf(f, "\nExit status: 0 ok; 1 the server refused (4xx); 2 usage or local error;\n"
               "3 cannot connect; 4 server error (5xx); 5 the watched job failed or was "
               "cancelled.\n"
               "Environment: MTLD_URL, MTLD_TOKEN, NO_COLOR.\n"
               "Run 'mtlctl COMMAND --help' for a command's options; see mtlctl(1).\n");
}

static void print_group_help(FILE *f, const char *group)
{
    fprintf(f, "Usage: mtlctl %s SUBCOMMAND [ARGS...]\n\nSubcommands:\n", group);
    for (size_t k = 0; k < NCOMMANDS; k++)
        if (commands[k].group && strcmp(commands[k].group, group) == 0)
            print_command_line(f, &commands[k]);
    fprintf(f, "\nRun 'mtlctl %s SUBCOMMAND --help' for its options; global options: "
               "'mtlctl --help'.\n",
            group);
}

static void print_command_help(FILE *f, const command *c)
{
    fprintf(f, "Usage: mtlctl %s%s%s%s%s\n\n", c->group ? c->group : "", c->group ? " " : "",
            c->name, *c->synopsis ? " " : "", c->synopsis);
    fprintf(f, "%c%s.\n", c->summary[0] >= 'a' && c->summary[0] <= 'z'
                              ? (char)(c->summary[0] - 'a' + 'A')
                              : c->summary[0],
            c->summary + 1);
    fprintf(f, "\nOptions:\n");
    cli_args_print_opts(f, c->opts, "show this help");
    fprintf(f, "Global options (--url, --token, --token-file, --json, --quiet, --wait) are "
               "accepted too;\nsee 'mtlctl --help'.\n");
}

static int usage_hint(const char *what)
{
    fprintf(stderr, "Try 'mtlctl %s--help'.\n", what);
    return CLI_EXIT_USAGE;
}

/* The first line of a token file, without surrounding whitespace. */
static char *read_token_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    if (!f) {
        cli_err("cannot open token file %s: %s", path, strerror(errno));
        return NULL;
    }
    ssize_t n = getline(&line, &cap, f);
    fclose(f);
    if (n < 0) {
        free(line);
        cli_err("token file %s is empty", path);
        return NULL;
    }
    size_t end = (size_t)n, start = 0;
    while (end > 0 && strchr(" \t\r\n", line[end - 1]))
        end--;
    while (start < end && strchr(" \t", line[start]))
        start++;
    memmove(line, line + start, end - start);
    line[end - start] = '\0';
    return line;
}

/* Resolves the global options (and environment) into ctx. */
static int setup_ctx(cli_ctx *ctx, const cli_args *g)
{
    const char *url = cli_args_get(g, "url");
    const char *token = cli_args_get(g, "token");
    const char *token_file = cli_args_get(g, "token-file");
    const char *wait = cli_args_get(g, "wait");
    const char *env;

    if (!url && (env = getenv("MTLD_URL")) && *env)
        url = env;
    if (!url)
        url = CLI_DEFAULT_URL;
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
        cli_err("--url must start with http:// or https:// (got '%s')", url);
        return CLI_EXIT_USAGE;
    }
    if (!(ctx->url = strdup(url)))
        goto oom;
    for (size_t n = strlen(ctx->url); n > 0 && ctx->url[n - 1] == '/'; n--)
        ctx->url[n - 1] = '\0';

    if (token && token_file) {
        cli_err("--token and --token-file exclude each other");
        return CLI_EXIT_USAGE;
    }
    if (token) {
        if (!(ctx->token = strdup(token)))
            goto oom;
    } else if (token_file) {
        if (!(ctx->token = read_token_file(token_file)))
            return CLI_EXIT_USAGE;
    } else if ((env = getenv("MTLD_TOKEN")) && *env) {
        if (!(ctx->token = strdup(env)))
            goto oom;
    }
    if (ctx->token) {
        if (!*ctx->token) {
            cli_err("the token is empty");
            return CLI_EXIT_USAGE;
        }
        for (const char *p = ctx->token; *p; p++)
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7F) {
                cli_err("the token may only hold visible ASCII characters");
                return CLI_EXIT_USAGE;
            }
    }

    if (wait) {
        char *end = NULL;
        errno = 0;
        ctx->wait_s = strtod(wait, &end);
        if (errno || end == wait || *end || !(ctx->wait_s >= 0) || ctx->wait_s > 1e7) {
            cli_err("--wait needs a number of seconds >= 0 (got '%s')", wait);
            return CLI_EXIT_USAGE;
        }
    }
    ctx->json = cli_args_get(g, "json") != NULL;
    ctx->quiet = cli_args_get(g, "quiet") != NULL;
    ctx->tty_out = isatty(STDOUT_FILENO);
    env = getenv("TERM");
    ctx->color = ctx->tty_out && !getenv("NO_COLOR") && !(env && strcmp(env, "dumb") == 0);
    ctx->bars = ctx->color && !ctx->json && !ctx->quiet;
    return CLI_EXIT_OK;
oom:
    cli_err("out of memory");
    return CLI_EXIT_USAGE;
}

int cli_cmd_version(cli_ctx *ctx, const cli_args *args)
{
    (void)ctx;
    (void)args;
    printf("mtlctl %s\n", MTLD_VERSION);
    return CLI_EXIT_OK;
}

/* `mtlctl help [WORDS...]` */
static int run_help(int argc, char **argv, int i)
{
    if (i >= argc) {
        print_main_help(stdout);
        return CLI_EXIT_OK;
    }
    if (is_group(argv[i])) {
        if (i + 1 >= argc) {
            print_group_help(stdout, argv[i]);
            return CLI_EXIT_OK;
        }
        const command *c = find_command(argv[i], argv[i + 1]);
        if (c && i + 2 >= argc) {
            print_command_help(stdout, c);
            return CLI_EXIT_OK;
        }
    } else {
        const command *c = find_command(NULL, argv[i]);
        if (c && i + 1 >= argc) {
            print_command_help(stdout, c);
            return CLI_EXIT_OK;
        }
    }
    cli_err("no help for '%s'", argv[i]);
    return usage_hint("");
}

static int run(int argc, char **argv)
{
    cli_args g, a;
    int i = 1, rc;
    char where[64] = "";

    cli_args_init(&g, global_opts);
    rc = cli_args_parse(argc, argv, &i, &g, NULL, 1);
    if (rc == CLI_ARGS_HELP) {
        print_main_help(stdout);
        return CLI_EXIT_OK;
    }
    if (rc)
        return usage_hint("");
    if (cli_args_get(&g, "version"))
        return cli_cmd_version(NULL, NULL);
    if (i >= argc) {
        cli_err("missing command");
        return usage_hint("");
    }

    const char *word = argv[i++];
    const char *group = NULL;
    if (strcmp(word, "help") == 0)
        return run_help(argc, argv, i);
    if (strcmp(word, "__complete") == 0) /* for the shell's completion script */
        return cli_complete(argc - i + 1, argv + i - 1);
    if (is_group(word)) {
        group = word;
        snprintf(where, sizeof where, "%s ", group);
        cli_args tmp = g; /* global options may sit between the words */
        rc = cli_args_parse(argc, argv, &i, &tmp, NULL, 1);
        if (rc == CLI_ARGS_HELP) {
            print_group_help(stdout, group);
            return CLI_EXIT_OK;
        }
        if (rc)
            return usage_hint(where);
        g = tmp;
        if (i >= argc) {
            cli_err("missing %s subcommand", group);
            print_group_help(stderr, group);
            return CLI_EXIT_USAGE;
        }
        word = argv[i++];
    }
    const command *c = find_command(group, word);
    if (!c) {
        if (group)
            cli_err("unknown %s subcommand '%s'", group, word);
        else
            cli_err("unknown command '%s'", word);
        return usage_hint(where);
    }
    snprintf(where, sizeof where, "%s%s%s ", group ? group : "", group ? " " : "", c->name);

    cli_args_init(&a, c->opts);
    rc = cli_args_parse(argc, argv, &i, &a, &g, 0);
    if (rc == CLI_ARGS_HELP) {
        print_command_help(stdout, c);
        return CLI_EXIT_OK;
    }
    if (rc)
        return usage_hint(where);
    if (cli_args_get(&g, "version"))
        return cli_cmd_version(NULL, NULL);
    if (a.npos < c->min_pos) {
        cli_err("%.*s: missing argument (usage: mtlctl %s%s)", (int)strlen(where) - 1, where,
                where, c->synopsis);
        return usage_hint(where);
    }
    if (a.npos > c->max_pos) {
        cli_err("%.*s: unexpected argument '%s'", (int)strlen(where) - 1, where,
                a.pos[c->max_pos]);
        return usage_hint(where);
    }

    cli_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    rc = setup_ctx(&ctx, &g);
    if (rc == CLI_EXIT_OK) {
        if (!(ctx.curl = curl_easy_init())) {
            cli_err("cannot initialise libcurl");
            rc = CLI_EXIT_USAGE;
        } else {
            rc = c->run(&ctx, &a);
        }
    }
    if (ctx.curl)
        curl_easy_cleanup(ctx.curl);
    free(ctx.url);
    free(ctx.token);
    return rc;
}

int main(int argc, char **argv)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cli_err("cannot initialise libcurl");
        return CLI_EXIT_USAGE;
    }
    int rc = run(argc, argv);
    curl_global_cleanup();
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (errno != EPIPE)
            cli_err("cannot write to standard output: %s", strerror(errno));
        if (rc == CLI_EXIT_OK)
            rc = CLI_EXIT_USAGE;
    }
    return rc;
}
