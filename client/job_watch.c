/*
 * client/job_watch.c — `mtlctl job watch ID`: poll GET /v1/jobs/{id} every
 * half second until the job ends.
 *
 * On a terminal a one-line bar is redrawn in place with '\r'; elsewhere (a
 * log file, a pipe) nothing is printed while the job runs except one plain
 * line each time progress crosses another 10%, so logs stay short. At the
 * end: the final state line and, for a success, the results table. Exit 0
 * for succeeded, 5 for failed or cancelled (the reason goes to stderr).
 * Ctrl-C erases the bar before the default action ends the process.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/http.h"
#include "client/job_view.h"
#include "client/out.h"

#define POLL_NS 500000000L

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

typedef struct bar {
    size_t shown;    /* length of the line on screen, 0: none */
    int last_decile; /* last 10% step reported off-terminal */
} bar;

static int term_cols(void)
{
    struct winsize ws;
    int cols = 80;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        cols = ws.ws_col;
    return cols < 20 ? 20 : cols > 400 ? 400 : cols;
}

static void bar_clear(bar *b)
{
    if (!b->shown)
        return;
    printf("\r%*s\r", (int)b->shown, "");
    fflush(stdout);
    b->shown = 0;
    cli_out_partial_line(0);
}

static void bar_draw(bar *b, const char *id, const json_t *job)
{
    char left[128], right[96], line[512], st[48];
    double p = cli_job_progress(job);
    const json_t *step = json_object_get(job, "step"), *steps = json_object_get(job, "steps");
    int cols = term_cols();

    snprintf(left, sizeof left, "job %s %s ", id,
             cli_json_text(json_object_get(job, "state"), st, sizeof st));
    if (json_is_integer(step) && json_is_integer(steps) && json_integer_value(steps) > 0)
        snprintf(right, sizeof right, " %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT " %5.1f%%",
                 json_integer_value(step), json_integer_value(steps), 100.0 * p);
    else
        snprintf(right, sizeof right, " %5.1f%%", 100.0 * p);

    /* one column spare so the terminal never wraps */
    int width = cols - 1 - (int)strlen(left) - (int)strlen(right) - 2;
    size_t o = 0;
    o += (size_t)snprintf(line + o, sizeof line - o, "%s", left);
    if (width >= 10 && o + (size_t)width + 2 < sizeof line) {
        int fill = (int)(p * width + 0.5);
        line[o++] = '[';
        for (int k = 0; k < width; k++)
            line[o++] = k < fill ? '#' : '.';
        line[o++] = ']';
        line[o] = '\0';
    }
    snprintf(line + o, sizeof line - o, "%s", right);
    size_t len = strlen(line);
    if ((int)len > cols - 1)
        line[len = (size_t)(cols - 1)] = '\0';
    printf("\r%s", line);
    if (b->shown > len)
        printf("%*s", (int)(b->shown - len), "");
    fflush(stdout);
    b->shown = len > b->shown ? len : b->shown;
    cli_out_partial_line(1);
}

static void plain_progress(bar *b, const char *id, const json_t *job)
{
    int decile = (int)(cli_job_progress(job) * 10.0);
    if (decile <= b->last_decile || decile >= 10)
        return;
    char st[48], pct[96];
    b->last_decile = decile;
    printf("job %s %s %s\n", id, cli_json_text(json_object_get(job, "state"), st, sizeof st),
           cli_job_progress_text(job, pct, sizeof pct));
    fflush(stdout);
}

/* The end: state line, results, error line; returns the exit code. */
static int finish(const cli_ctx *ctx, const char *id, const cli_resp *r)
{
    const json_t *job = r->json;
    const char *state = cli_job_state(job);
    char st[48], name[256], text[96];
    int ok = state && strcmp(state, "succeeded") == 0;
    int rc = ok ? CLI_EXIT_OK : CLI_EXIT_JOB;

    if (ctx->json) {
        cli_out_raw(&r->body);
    } else if (ctx->quiet) {
        printf("%s\n", cli_json_text(json_object_get(job, "state"), st, sizeof st));
    } else {
        const json_t *nm = json_object_get(job, "name");
        cli_color c = cli_state_color(state);
        printf("job %s%s%s %s%s%s %s\n", id, nm ? " " : "",
               nm ? cli_json_text(nm, name, sizeof name) : "", cli_color_on(ctx, c),
               cli_json_text(json_object_get(job, "state"), st, sizeof st),
               cli_color_off(ctx, c), cli_job_progress_text(job, text, sizeof text));
        const json_t *results = json_object_get(job, "results");
        if (ok && json_is_object(results) && json_object_size(results)) {
            fputc('\n', stdout);
            int prc = cli_job_print_results(ctx, results);
            if (prc != CLI_EXIT_OK)
                rc = prc;
        }
    }
    if (!ok) {
        const json_t *err = json_object_get(job, "error");
        const char *msg = json_string_value(json_object_get(err, "message"));
        char cmsg[600];
        cli_json_text(json_object_get(job, "state"), st, sizeof st);
        if (msg && *msg) {
            cli_out_clean(cmsg, sizeof cmsg, msg);
            cli_err("job %s %s: %s", id, st, cmsg);
        } else {
            cli_err("job %s %s", id, st);
        }
    }
    return rc;
}

int cli_job_watch(cli_ctx *ctx, const char *id)
{
    struct sigaction sa, old;
    bar b = {0, 0};
    int rc, catching = 0;
    char cid[64];

    cli_out_clean(cid, sizeof cid, id);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    interrupted = 0;
    if (sigaction(SIGINT, NULL, &old) == 0 && old.sa_handler != SIG_IGN)
        catching = sigaction(SIGINT, &sa, NULL) == 0;

    for (;;) {
        cli_resp r;
        rc = cli_http_id(ctx, "GET", "jobs", id, NULL, NULL, &r);
        if (rc != CLI_EXIT_OK) {
            cli_resp_free(&r);
            break;
        }
        if (!json_is_object(r.json)) {
            cli_resp_free(&r);
            bar_clear(&b);
            cli_err("the server sent no job object for job %s", cid);
            rc = CLI_EXIT_SERVER;
            break;
        }
        if (cli_job_state_final(cli_job_state(r.json))) {
            bar_clear(&b);
            rc = finish(ctx, cid, &r);
            cli_resp_free(&r);
            break;
        }
        if (!ctx->json && !ctx->quiet) {
            if (ctx->tty_out)
                bar_draw(&b, cid, r.json);
            else
                plain_progress(&b, cid, r.json);
        }
        cli_resp_free(&r);

        struct timespec ts = {0, POLL_NS};
        while (!interrupted && nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        if (interrupted) {
            bar_clear(&b);
            sigaction(SIGINT, &old, NULL);
            raise(SIGINT);
            return 130; /* only if SIGINT did not end us */
        }
    }
    bar_clear(&b);
    if (catching)
        sigaction(SIGINT, &old, NULL);
    return rc;
}

int cli_cmd_job_watch(cli_ctx *ctx, const cli_args *args)
{
    return cli_job_watch(ctx, args->pos[0]);
}
