/*
 * client/job_watch.c — `mtlctl job watch ID` (and `job submit --watch`):
 * fetch the job; unless it has ended, follow its Server-Sent Events stream,
 * GET /v1/jobs/{id}/events, until its final state, then fetch the job
 * again for its results.
 *
 * Events update the view (watch_view.h): `state`, `progress` and `metric`,
 * from the oldest the server still holds (Last-Event-ID: 0), so metrics
 * of epochs that ended before we connected are in the table too.
 * The server ends the stream after the final state; if the stream ends
 * before that (a restarted daemon, a dropped link, 40 s without even a
 * heartbeat), we reconnect with Last-Event-ID so no event is lost or seen
 * twice, a few times in a row at most; a refused connection is retried for
 * --wait seconds as everywhere. Exit 0 for succeeded, 5 for failed or
 * cancelled (the reason goes to stderr), or the code of a failed request.
 * Ctrl-C leaves the view on screen, ends its line and then ends mtlctl as
 * SIGINT does (the job goes on).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/http.h"
#include "client/job_view.h"
#include "client/out.h"
#include "client/sse.h"
#include "client/watch_view.h"

#define SILENCE_S 40L     /* the server sends a heartbeat after 15 s of quiet */
#define MAX_RECONNECTS 5  /* in a row, without an event in between */

static volatile sig_atomic_t line_open;

static void on_sigint(int sig)
{
    if (line_open) {
        ssize_t w = write(STDOUT_FILENO, "\n", 1);
        (void)w;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

typedef struct watch {
    cli_watch_view *view;
    cli_sse sse;
    int final;       /* the final state event arrived */
    int events;      /* events since the last (re)connect */
    int bad;         /* an event whose data is not a JSON object */
} watch;

static int on_event(void *ud, const cli_sse_event *ev)
{
    watch *w = ud;
    json_t *d = json_loads(ev->data, 0, NULL);
    w->events++;
    if (!json_is_object(d)) {
        json_decref(d);
        w->bad = 1;
        return 1;
    }
    if (strcmp(ev->type, "state") == 0) {
        cli_watch_view_state(w->view, d);
        w->final = cli_job_state_final(json_string_value(json_object_get(d, "state")));
    } else if (strcmp(ev->type, "progress") == 0) {
        cli_watch_view_progress(w->view, d);
    } else if (strcmp(ev->type, "metric") == 0) {
        cli_watch_view_metric(w->view, d);
    }
    json_decref(d);
    cli_watch_view_draw(w->view, w->final);
    line_open = 1;
    return w->final; /* the end: stop reading */
}

static int on_data(void *ud, const char *p, size_t n)
{
    watch *w = ud;
    int rc = cli_sse_feed(&w->sse, p, n);
    if (rc < 0)
        w->bad = 1;
    return rc != 0;
}

/* Follows the stream until the final state. Returns an exit code. */
static int follow(cli_ctx *ctx, const char *id, watch *w)
{
    char *path = cli_http_id_path(ctx, "jobs", id, "/events");
    char last[96];
    int tries = 0, rc = CLI_EXIT_OK;
    if (!path) {
        cli_err("out of memory");
        return CLI_EXIT_USAGE;
    }
    while (!w->final) {
        /* Last-Event-ID: 0 on the first connection replays every event the
         * server still holds, so the table has the metrics of epochs that
         * ended before we connected. */
        const char *lid = cli_sse_last_id(&w->sse)[0] ? cli_sse_last_id(&w->sse) : "0";
        const char *hdrs[2] = {last, NULL};
        snprintf(last, sizeof last, "Last-Event-ID: %s", lid);
        cli_req req = {.path = path,
                       .accept = "text/event-stream",
                       .headers = hdrs,
                       .on_data = on_data,
                       .data_ud = w,
                       .low_speed_s = SILENCE_S};
        cli_resp r;
        w->events = 0;
        rc = cli_http(ctx, &req, &r);
        long status = r.status;
        cli_resp_free(&r);
        if (w->bad) {
            cli_err("the server's event stream for job %s is malformed", id);
            rc = CLI_EXIT_SERVER;
            break;
        }
        if (w->final)
            break;
        /* An answer (4xx/5xx) is final; a stream that ended early or a
         * broken link is worth another try, a few times in a row. */
        if (rc != CLI_EXIT_OK && (status >= 400 || rc == CLI_EXIT_CONNECT || rc == CLI_EXIT_USAGE))
            break;
        tries = w->events ? 1 : tries + 1;
        if (tries > MAX_RECONNECTS) {
            if (rc == CLI_EXIT_OK) {
                cli_err("the event stream of job %s keeps ending before the job does", id);
                rc = CLI_EXIT_SERVER;
            }
            break;
        }
        struct timespec ts = {0, 250000000L * tries};
        nanosleep(&ts, NULL);
    }
    free(path);
    return rc;
}

/* The end: state line, results (or the latest metrics), error line. */
static int finish(const cli_ctx *ctx, const char *id, const cli_resp *r, cli_watch_view *view)
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
        if (!json_is_string(nm) || !*json_string_value(nm))
            nm = NULL;
        cli_color c = cli_state_color(state);
        printf("job %s%s%s %s%s%s %s\n", id, nm ? " " : "",
               nm ? cli_json_text(nm, name, sizeof name) : "", cli_color_on(ctx, c),
               cli_json_text(json_object_get(job, "state"), st, sizeof st),
               cli_color_off(ctx, c), cli_job_progress_text(job, text, sizeof text));
        const json_t *results = json_object_get(job, "results");
        int prc = CLI_EXIT_OK;
        if (ok && json_is_object(results) && json_object_size(results)) {
            fputc('\n', stdout);
            prc = cli_job_print_results(ctx, results);
        } else if (!ok && cli_watch_view_rows(view)) {
            printf("\nlatest metrics:\n");
            prc = cli_watch_view_print_metrics(view);
        }
        if (prc != CLI_EXIT_OK)
            rc = prc;
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
    int rc, catching = 0;
    char cid[64];
    watch w;

    memset(&w, 0, sizeof w);
    cli_out_clean(cid, sizeof cid, id);
    if (!(w.view = cli_watch_view_new(ctx, id))) {
        cli_err("out of memory");
        return CLI_EXIT_USAGE;
    }
    cli_sse_init(&w.sse, on_event, &w);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    line_open = 0;
    if (ctx->bars && sigaction(SIGINT, NULL, &old) == 0 && old.sa_handler != SIG_IGN)
        catching = sigaction(SIGINT, &sa, NULL) == 0;

    /* The job first: a clear 404, no stream for a job that has ended, and
     * where progress stands before the stream replays its history. */
    cli_resp r;
    rc = cli_http_id(ctx, "GET", "jobs", id, NULL, NULL, &r);
    if (rc == CLI_EXIT_OK && !json_is_object(r.json)) {
        cli_err("the server sent no job object for job %s", cid);
        rc = CLI_EXIT_SERVER;
    }
    if (rc == CLI_EXIT_OK && !cli_job_state_final(cli_job_state(r.json))) {
        cli_watch_view_start(w.view, r.json);
        cli_resp_free(&r);
        rc = follow(ctx, id, &w);
        cli_watch_view_clear(w.view);
        line_open = 0;
        if (rc == CLI_EXIT_OK) {
            rc = cli_http_id(ctx, "GET", "jobs", id, NULL, NULL, &r);
            if (rc == CLI_EXIT_OK && !json_is_object(r.json)) {
                cli_err("the server sent no job object for job %s", cid);
                rc = CLI_EXIT_SERVER;
            }
        }
    }
    if (rc == CLI_EXIT_OK)
        rc = finish(ctx, cid, &r, w.view);
    cli_resp_free(&r);
    if (catching)
        sigaction(SIGINT, &old, NULL);
    cli_sse_free(&w.sse);
    cli_watch_view_free(w.view);
    return rc;
}

int cli_cmd_job_watch(cli_ctx *ctx, const cli_args *args)
{
    return cli_job_watch(ctx, args->pos[0]);
}
