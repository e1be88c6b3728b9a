/*
 * client/progress.c — terminal progress bars (see progress.h).
 *
 * The bar is one line redrawn in place with '\r', one column short of the
 * terminal's width so it never wraps, padded with spaces when it shrinks.
 * cli_out_partial_line() tells cli_err() that a line is open, so an error
 * printed mid-transfer starts on a line of its own. The rate is the mean
 * since the start: steady enough to read, and the ETA follows from it.
 */
#include "client/progress.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "client/out.h"

#define REDRAW_S 0.1

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cli_term_cols(void)
{
    struct winsize ws;
    int cols = 80;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        cols = ws.ws_col;
    return cols < 20 ? 20 : cols > 400 ? 400 : cols;
}

void cli_bar(char *dst, size_t n, int width, double frac)
{
    if (width < 3)
        width = 3;
    if ((size_t)width >= n)
        width = (int)n - 1;
    int inner = width - 2;
    frac = frac > 1 ? 1 : frac >= 0 ? frac : 0;
    int fill = (int)(frac * inner + 0.5);
    dst[0] = '[';
    for (int k = 0; k < inner; k++)
        dst[1 + k] = k < fill ? '#' : '.';
    dst[width - 1] = ']';
    dst[width] = '\0';
}

void cli_fmt_bytes(char *dst, size_t n, double bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    while (bytes >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        bytes /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(dst, n, "%.0f B", bytes);
    else
        snprintf(dst, n, "%.1f %s", bytes, units[u]);
}

static void fmt_eta(char *dst, size_t n, double s)
{
    if (!(s >= 0) || s > 359999) {
        snprintf(dst, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(dst, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(dst, n, "%ld:%02ld", t / 60, t % 60);
}

void cli_progress_start(cli_progress *p, const cli_ctx *ctx, const char *label,
                        long long total)
{
    memset(p, 0, sizeof *p);
    p->total = total;
    p->on = ctx->bars;
    cli_out_clean(p->label, sizeof p->label, label);
    p->t0 = now_s();
    p->last_draw = -1;
}

static void draw(cli_progress *p, double t)
{
    char done[32], total[32], rate[32], eta[32], right[160], bar[416], line[640];
    double el = t - p->t0;
    double r = el > 0 ? (double)p->done / el : 0;
    int cols = cli_term_cols();

    cli_fmt_bytes(done, sizeof done, (double)p->done);
    cli_fmt_bytes(rate, sizeof rate, r);
    if (p->total > 0) {
        cli_fmt_bytes(total, sizeof total, (double)p->total);
        fmt_eta(eta, sizeof eta, r > 0 ? (double)(p->total - p->done) / r : -1);
        snprintf(right, sizeof right, " %s / %s  %s/s  ETA %s", done, total, rate, eta);
    } else {
        snprintf(right, sizeof right, " %s  %s/s", done, rate);
    }
    int width = cols - 1 - (int)strlen(p->label) - 1 - (int)strlen(right);
    if (p->total > 0 && width >= 12) {
        cli_bar(bar, sizeof bar, width, (double)p->done / (double)p->total);
        snprintf(line, sizeof line, "%s %s%s", p->label, bar, right);
    } else {
        snprintf(line, sizeof line, "%s%s", p->label, right);
    }
    size_t len = strlen(line);
    if ((int)len > cols - 1)
        line[len = (size_t)(cols - 1)] = '\0';
    printf("\r%s", line);
    if (p->shown > len)
        printf("%*s", (int)(p->shown - len), "");
    fflush(stdout);
    if (len > p->shown)
        p->shown = len;
    cli_out_partial_line(1);
    p->last_draw = t;
}

void cli_progress_update(cli_progress *p, long long done, long long total)
{
    if (!p->on)
        return;
    p->done = done;
    if (total > 0)
        p->total = total; /* curl reports 0 until it knows; keep a known size */
    double t = now_s();
    int finished = total > 0 && done >= total && p->drawn != done;
    if (p->last_draw >= 0 && t - p->last_draw < REDRAW_S && !finished)
        return;
    p->drawn = done;
    draw(p, t);
}

void cli_progress_end(cli_progress *p)
{
    if (!p->on || !p->shown)
        return;
    if (!cli_out_line_open()) { /* an error line already ended the bar's line */
        p->shown = 0;
        return;
    }
    printf("\r%*s\r", (int)p->shown, "");
    fflush(stdout);
    p->shown = 0;
    cli_out_partial_line(0);
}
