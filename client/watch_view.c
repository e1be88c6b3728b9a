/*
 * client/watch_view.c — the live view of `job watch` (see watch_view.h).
 *
 * Metrics are kept as a small grid: rows are (task, split) pairs, columns
 * metric names, both in order of first appearance, each cell the latest
 * value and the row the step it came from. Sizes are capped (rows, columns,
 * name lengths): a job with more than that shows the first ones, and
 * `job metrics` has everything.
 *
 * The live block is drawn by moving the cursor back to its first line
 * (CSI n A), rewriting every line and clearing what remains of it (CSI K),
 * and finally erasing below (CSI J) in case the block shrank. The cursor is
 * left at the end of the last line, which cli_out_partial_line() records.
 */
#include "client/watch_view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/out.h"
#include "client/progress.h"

#define MAX_ROWS 24
#define MAX_COLS 12
#define NAME_LEN 48
#define LINE_MAX_ 512
#define REDRAW_S 0.1

typedef struct vrow {
    char task[NAME_LEN], split[NAME_LEN];
    long long step;
    double val[MAX_COLS];
    unsigned char set[MAX_COLS]; /* 0: none, 1: a number, 2: null */
} vrow;

struct cli_watch_view {
    const cli_ctx *ctx;
    char id[64];
    char state[32];
    long long step, steps;
    double progress, eta; /* eta < 0: unknown */
    vrow rows[MAX_ROWS];
    size_t nrows, hidden_rows;
    char cols[MAX_COLS][NAME_LEN];
    size_t ncols;
    int last_decile;
    int lines_shown; /* lines of the live block on screen, 0: none */
    double last_draw;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

cli_watch_view *cli_watch_view_new(const cli_ctx *ctx, const char *id)
{
    cli_watch_view *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->ctx = ctx;
    cli_out_clean(v->id, sizeof v->id, id);
    snprintf(v->state, sizeof v->state, "connecting");
    v->eta = -1;
    v->last_draw = -1;
    return v;
}

void cli_watch_view_free(cli_watch_view *v)
{
    free(v);
}

static void copy_clean(char *dst, size_t n, const json_t *s)
{
    const char *t = json_string_value(s);
    cli_out_clean(dst, n, t ? t : "-");
}

void cli_watch_view_state(cli_watch_view *v, const json_t *d)
{
    const json_t *st = json_object_get(d, "state");
    if (json_is_string(st))
        copy_clean(v->state, sizeof v->state, st);
    if (json_is_integer(json_object_get(d, "step")))
        v->step = json_integer_value(json_object_get(d, "step"));
    if (json_is_integer(json_object_get(d, "steps")))
        v->steps = json_integer_value(json_object_get(d, "steps"));
}

void cli_watch_view_progress(cli_watch_view *v, const json_t *d)
{
    /* "eta_seconds" is the job view's name and progress events carry it too;
     * "eta" is what events of earlier daemons carried alone. */
    const json_t *p = json_object_get(d, "progress"), *eta = json_object_get(d, "eta_seconds");
    if (!eta)
        eta = json_object_get(d, "eta");
    cli_watch_view_state(v, d);
    if (json_is_number(p))
        v->progress = json_number_value(p);
    else if (v->steps > 0)
        v->progress = (double)v->step / (double)v->steps;
    if (!(v->progress >= 0))
        v->progress = 0;
    if (v->progress > 1)
        v->progress = 1;
    v->eta = json_is_number(eta) ? json_number_value(eta) : -1;
}

void cli_watch_view_start(cli_watch_view *v, const json_t *job)
{
    cli_watch_view_progress(v, job);
    v->last_decile = (int)(v->progress * 10.0);
}

void cli_watch_view_metric(cli_watch_view *v, const json_t *d)
{
    char task[NAME_LEN], split[NAME_LEN], name[NAME_LEN];
    const json_t *val = json_object_get(d, "value");
    size_t r, c;

    copy_clean(task, sizeof task, json_object_get(d, "task"));
    copy_clean(split, sizeof split, json_object_get(d, "split"));
    copy_clean(name, sizeof name, json_object_get(d, "name"));
    for (r = 0; r < v->nrows; r++)
        if (strcmp(v->rows[r].task, task) == 0 && strcmp(v->rows[r].split, split) == 0)
            break;
    if (r == v->nrows) {
        if (v->nrows == MAX_ROWS) {
            v->hidden_rows++;
            return;
        }
        memset(&v->rows[r], 0, sizeof v->rows[r]);
        snprintf(v->rows[r].task, NAME_LEN, "%s", task);
        snprintf(v->rows[r].split, NAME_LEN, "%s", split);
        v->nrows++;
    }
    for (c = 0; c < v->ncols; c++)
        if (strcmp(v->cols[c], name) == 0)
            break;
    if (c == v->ncols) {
        if (v->ncols == MAX_COLS)
            return;
        snprintf(v->cols[c], NAME_LEN, "%s", name);
        v->ncols++;
    }
    vrow *row = &v->rows[r];
    if (json_is_integer(json_object_get(d, "step")))
        row->step = json_integer_value(json_object_get(d, "step"));
    row->set[c] = json_is_number(val) ? 1 : 2;
    row->val[c] = json_is_number(val) ? json_number_value(val) : 0;
}

size_t cli_watch_view_rows(const cli_watch_view *v)
{
    return v->nrows;
}

/* Cell text of row r (SIZE_MAX: the header), column k of TASK SPLIT STEP
 * and the metric names. */
static const char *cell(const cli_watch_view *v, size_t r, size_t k, char *buf, size_t n)
{
    static const char *const fixed[] = {"TASK", "SPLIT", "STEP"};
    if (r == (size_t)-1) {
        if (k < 3)
            return fixed[k];
        size_t o = 0;
        for (const char *p = v->cols[k - 3]; *p && o + 1 < n; p++)
            buf[o++] = (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
        buf[o] = '\0';
        return buf;
    }
    const vrow *row = &v->rows[r];
    if (k == 0)
        return row->task;
    if (k == 1)
        return row->split;
    if (k == 2) {
        snprintf(buf, n, "%lld", row->step);
        return buf;
    }
    if (row->set[k - 3] != 1)
        return "-";
    cli_fmt_num(buf, n, row->val[k - 3]);
    return buf;
}

/* Lines of the metrics table (header first) into lines[], each cut to
 * `cols` characters; returns the count. */
static int table_lines(const cli_watch_view *v, char lines[][LINE_MAX_], int max, int cols)
{
    size_t ncol = 3 + v->ncols, width[3 + MAX_COLS] = {0};
    char buf[64];
    int n = 0;
    if (!v->nrows)
        return 0;
    for (size_t k = 0; k < ncol; k++)
        for (size_t r = (size_t)-1; r == (size_t)-1 || r < v->nrows; r++) {
            size_t w = strlen(cell(v, r, k, buf, sizeof buf));
            if (w > width[k])
                width[k] = w;
        }
    for (size_t r = (size_t)-1; (r == (size_t)-1 || r < v->nrows) && n < max; r++, n++) {
        size_t o = 0;
        for (size_t k = 0; k < ncol && o + 1 < LINE_MAX_; k++) {
            const char *t = cell(v, r, k, buf, sizeof buf);
            int right = k >= 2 && r != (size_t)-1;
            int wrote = snprintf(lines[n] + o, LINE_MAX_ - o, right ? "%s%*s" : "%s%-*s",
                                 k ? "  " : "", (int)width[k], t);
            o = wrote > 0 && (size_t)wrote < LINE_MAX_ - o ? o + (size_t)wrote : LINE_MAX_ - 1;
        }
        while (o > 0 && lines[n][o - 1] == ' ')
            o--;
        lines[n][o] = '\0';
        if ((int)o > cols)
            lines[n][cols] = '\0';
    }
    return n;
}

static void header_line(const cli_watch_view *v, char *dst, int cols)
{
    char left[128], right[80], bar[300], eta[32] = "";
    snprintf(left, sizeof left, "job %s %s", v->id, v->state);
    if (v->eta >= 0) {
        long t = (long)(v->eta + 0.5);
        snprintf(eta, sizeof eta, "  ETA %ld:%02ld", t / 60, t % 60);
    }
    if (v->steps > 0)
        snprintf(right, sizeof right, "%lld/%lld %5.1f%%%s", v->step, v->steps,
                 100.0 * v->progress, eta);
    else
        snprintf(right, sizeof right, "%5.1f%%%s", 100.0 * v->progress, eta);
    int width = cols - (int)strlen(left) - (int)strlen(right) - 2;
    int wrote; /* used, so a cut line is no warning: it is cut below anyway */
    if (width >= 12) {
        cli_bar(bar, sizeof bar, width, v->progress);
        wrote = snprintf(dst, LINE_MAX_, "%.127s %.299s %.79s", left, bar, right);
    } else {
        wrote = snprintf(dst, LINE_MAX_, "%.127s %.79s", left, right);
    }
    (void)wrote;
    if ((int)strlen(dst) > cols)
        dst[cols] = '\0';
}

static void plain_progress(cli_watch_view *v)
{
    int decile = (int)(v->progress * 10.0);
    if (decile <= v->last_decile || decile >= 10)
        return;
    v->last_decile = decile;
    if (v->steps > 0)
        printf("job %s %s %.1f%% (step %lld/%lld)\n", v->id, v->state, 100.0 * v->progress,
               v->step, v->steps);
    else
        printf("job %s %s %.1f%%\n", v->id, v->state, 100.0 * v->progress);
    fflush(stdout);
}

void cli_watch_view_draw(cli_watch_view *v, int force)
{
    static char lines[2 + MAX_ROWS][LINE_MAX_];
    if (v->ctx->json || v->ctx->quiet)
        return;
    if (!v->ctx->bars) {
        plain_progress(v);
        return;
    }
    double t = now_s();
    if (!force && v->last_draw >= 0 && t - v->last_draw < REDRAW_S)
        return;
    v->last_draw = t;
    int cols = cli_term_cols() - 1; /* one spare column: never wrap */
    header_line(v, lines[0], cols);
    int n = 1 + table_lines(v, lines + 1, 1 + MAX_ROWS, cols);

    if (v->lines_shown > 1)
        printf("\033[%dA", v->lines_shown - 1);
    fputc('\r', stdout);
    for (int k = 0; k < n; k++)
        printf("%s\033[K%s", lines[k], k + 1 < n ? "\n" : "");
    if (v->lines_shown > n)
        fputs("\033[J", stdout);
    fflush(stdout);
    v->lines_shown = n;
    cli_out_partial_line(1);
}

void cli_watch_view_clear(cli_watch_view *v)
{
    if (!v->lines_shown)
        return;
    if (!cli_out_line_open()) { /* an error line came after it: leave both */
        v->lines_shown = 0;
        return;
    }
    if (v->lines_shown > 1)
        printf("\033[%dA", v->lines_shown - 1);
    fputs("\r\033[J", stdout);
    fflush(stdout);
    v->lines_shown = 0;
    cli_out_partial_line(0);
}

int cli_watch_view_print_metrics(cli_watch_view *v)
{
    const char *heads[3 + MAX_COLS];
    char upper[MAX_COLS][NAME_LEN], buf[64];
    for (size_t k = 0; k < 3 + v->ncols; k++) {
        const char *h = cell(v, (size_t)-1, k, buf, sizeof buf);
        if (k >= 3) {
            snprintf(upper[k - 3], NAME_LEN, "%.*s", NAME_LEN - 1, h);
            h = upper[k - 3];
        }
        heads[k] = h;
    }
    cli_table *t = cli_table_new(3 + v->ncols, heads);
    for (size_t k = 2; k < 3 + v->ncols; k++)
        cli_table_right(t, k);
    for (size_t r = 0; r < v->nrows; r++) {
        cli_table_row(t);
        for (size_t k = 0; k < 3 + v->ncols; k++)
            cli_table_cell(t, k, cell(v, r, k, buf, sizeof buf));
    }
    int rc = cli_table_print(v->ctx, t);
    cli_table_free(t);
    return rc;
}
