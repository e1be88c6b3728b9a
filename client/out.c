/*
 * client/out.c — printing for people (see out.h).
 *
 * Tables are built whole and then printed, because alignment needs every
 * width first; the lists mtlctl shows are small enough for that. Widths count
 * UTF-8 characters, not bytes, so names in other scripts still line up.
 * Allocation failures are sticky on the table and surface once, at print.
 */
#include "client/out.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "client/http.h"

/* A progress bar is on the terminal without its newline yet. */
static int partial_line;

void cli_out_partial_line(int on)
{
    partial_line = on;
}

int cli_out_line_open(void)
{
    return partial_line;
}

void cli_err(const char *fmt, ...)
{
    va_list ap;
    if (partial_line) {
        fputc('\n', stdout);
        partial_line = 0;
    }
    fflush(stdout);
    fputs("mtlctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void cli_out_clean(char *dst, size_t n, const char *src)
{
    size_t len = strlen(src), i, o = 0;
    int cut = len > n - 1;
    size_t room = cut ? (n > 4 ? n - 4 : 0) : n - 1;

    for (i = 0; i < len && o < room; i++) {
        unsigned char ch = (unsigned char)src[i];
        /* C1 controls arrive in UTF-8 as C2 80..C2 9F. */
        if (ch == 0xC2 && i + 1 < len && (unsigned char)src[i + 1] >= 0x80 &&
            (unsigned char)src[i + 1] <= 0x9F) {
            dst[o++] = '?';
            i++;
            continue;
        }
        dst[o++] = (ch < 0x20 || ch == 0x7F) ? '?' : (char)ch;
    }
    if (cut) {
        /* never leave half a UTF-8 character before the "..." */
        size_t k = o;
        while (k > 0 && ((unsigned char)dst[k - 1] & 0xC0) == 0x80)
            k--;
        if (k > 0 && (unsigned char)dst[k - 1] >= 0xC0) {
            unsigned char lead = (unsigned char)dst[k - 1];
            size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
            if (o - (k - 1) < need)
                o = k - 1;
        }
        for (const char *e = "..."; *e && o < n - 1; e++)
            dst[o++] = *e;
    }
    dst[o] = '\0';
}

void cli_out_raw(const cli_buf *body)
{
    if (!body->len)
        return;
    fwrite(body->data, 1, body->len, stdout);
    if (body->data[body->len - 1] != '\n')
        fputc('\n', stdout);
}

int cli_out_json_mode(const cli_ctx *ctx, const cli_buf *body)
{
    if (!ctx->json)
        return 0;
    cli_out_raw(body);
    return 1;
}

void cli_fmt_num(char *dst, size_t n, double v)
{
    double a = fabs(v);
    if (!isfinite(v))
        snprintf(dst, n, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
    else if (v == 0 || (a >= 1e-4 && a < 1e9))
        snprintf(dst, n, "%.4f", v);
    else
        snprintf(dst, n, "%.4e", v);
}

static int scalar_array(const json_t *v)
{
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e) if (json_is_object(e) || json_is_array(e)) return 0;
    return 1;
}

static void join_array(const json_t *v, char *dst, size_t n)
{
    cli_buf b = {0};
    char item[256];
    size_t i;
    const json_t *e;
    int fail = 0;
    json_array_foreach(v, i, e)
    {
        fail |= (i && cli_buf_puts(&b, ","));
        fail |= cli_buf_puts(&b, cli_json_text(e, item, sizeof item));
    }
    cli_out_clean(dst, n, fail || !b.data ? "" : b.data);
    cli_buf_free(&b);
}

static void dump_compact(const json_t *v, char *dst, size_t n)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    cli_out_clean(dst, n, s ? s : "?");
    free(s);
}

const char *cli_json_text(const json_t *v, char *dst, size_t n)
{
    char tmp[64];
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_NULL:
        snprintf(dst, n, "-");
        break;
    case JSON_TRUE:
        snprintf(dst, n, "true");
        break;
    case JSON_FALSE:
        snprintf(dst, n, "false");
        break;
    case JSON_INTEGER:
        snprintf(dst, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        cli_fmt_num(tmp, sizeof tmp, json_real_value(v));
        snprintf(dst, n, "%s", tmp);
        break;
    case JSON_STRING:
        cli_out_clean(dst, n, json_string_value(v));
        break;
    case JSON_ARRAY:
        if (scalar_array(v)) {
            join_array(v, dst, n);
            break;
        }
        dump_compact(v, dst, n); /* arrays of objects print as JSON */
        break;
    default:
        dump_compact(v, dst, n);
    }
    return dst;
}

const char *cli_json_id(const json_t *obj, char *dst, size_t n)
{
    return cli_json_text(json_object_get(obj, "id"), dst, n);
}

static const char *const ansi[] = {"", "\033[1m", "\033[31m", "\033[32m", "\033[33m", "\033[36m"};

const char *cli_color_on(const cli_ctx *ctx, cli_color c)
{
    return ctx->color ? ansi[c] : "";
}

const char *cli_color_off(const cli_ctx *ctx, cli_color c)
{
    return ctx->color && c != CLI_PLAIN ? "\033[0m" : "";
}

cli_color cli_state_color(const char *state)
{
    if (!state)
        return CLI_PLAIN;
    if (strcmp(state, "succeeded") == 0)
        return CLI_GREEN;
    if (strcmp(state, "failed") == 0)
        return CLI_RED;
    if (strcmp(state, "cancelled") == 0)
        return CLI_YELLOW;
    if (strcmp(state, "running") == 0)
        return CLI_CYAN;
    return CLI_PLAIN;
}

/* ---- tables ---- */

struct cli_table {
    size_t ncols;
    char **headers;      /* ncols copies, or NULL */
    unsigned char *right;
    char **cells;        /* nrows * ncols, NULL = empty */
    unsigned char *colors;
    size_t nrows, caprows;
    int failed;
};

static char *dup_clean(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        cli_out_clean(d, n, s);
    return d;
}

cli_table *cli_table_new(size_t ncols, const char *const *headers)
{
    cli_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ncols = ncols;
    t->right = calloc(ncols, 1);
    if (!t->right)
        t->failed = 1;
    if (headers) {
        t->headers = calloc(ncols, sizeof *t->headers);
        if (!t->headers)
            t->failed = 1;
        for (size_t c = 0; t->headers && c < ncols; c++)
            if (!(t->headers[c] = dup_clean(headers[c])))
                t->failed = 1;
    }
    return t;
}

void cli_table_right(cli_table *t, size_t col)
{
    if (t && t->right && col < t->ncols)
        t->right[col] = 1;
}

void cli_table_row(cli_table *t)
{
    if (!t || t->failed)
        return;
    if (t->nrows == t->caprows) {
        size_t cap = t->caprows ? t->caprows * 2 : 16;
        char **cells = realloc(t->cells, cap * t->ncols * sizeof *cells);
        if (!cells) {
            t->failed = 1;
            return;
        }
        t->cells = cells;
        unsigned char *colors = realloc(t->colors, cap * t->ncols);
        if (!colors) {
            t->failed = 1;
            return;
        }
        t->colors = colors;
        t->caprows = cap;
    }
    memset(t->cells + t->nrows * t->ncols, 0, t->ncols * sizeof *t->cells);
    memset(t->colors + t->nrows * t->ncols, 0, t->ncols);
    t->nrows++;
}

void cli_table_cell_color(cli_table *t, size_t col, const char *text, cli_color c)
{
    if (!t || t->failed || !t->nrows || col >= t->ncols)
        return;
    size_t k = (t->nrows - 1) * t->ncols + col;
    free(t->cells[k]);
    t->cells[k] = NULL;
    if (text && *text && !(t->cells[k] = dup_clean(text)))
        t->failed = 1;
    t->colors[k] = (unsigned char)c;
}

void cli_table_cell(cli_table *t, size_t col, const char *text)
{
    cli_table_cell_color(t, col, text, CLI_PLAIN);
}

void cli_table_cell_json(cli_table *t, size_t col, const json_t *v)
{
    char buf[512];
    cli_table_cell(t, col, cli_json_text(v, buf, sizeof buf));
}

size_t cli_table_rows(const cli_table *t)
{
    return t ? t->nrows : 0;
}

/* Display width: UTF-8 characters. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

static void put_cell(const cli_ctx *ctx, const char *s, size_t width, int right, int last,
                     cli_color c)
{
    size_t w = text_width(s);
    size_t pad = width > w ? width - w : 0;
    if (right)
        printf("%*s", (int)pad, "");
    printf("%s%s%s", cli_color_on(ctx, c), s, cli_color_off(ctx, c));
    if (!right && !last)
        printf("%*s", (int)pad, "");
    if (!last)
        fputs("  ", stdout);
}

int cli_table_print(const cli_ctx *ctx, cli_table *t)
{
    if (!t || t->failed) {
        cli_err("out of memory");
        return CLI_EXIT_USAGE;
    }
    size_t *width = calloc(t->ncols ? t->ncols : 1, sizeof *width);
    if (!width) {
        cli_err("out of memory");
        return CLI_EXIT_USAGE;
    }
    for (size_t c = 0; c < t->ncols; c++) {
        if (t->headers)
            width[c] = text_width(t->headers[c]);
        for (size_t r = 0; r < t->nrows; r++) {
            const char *s = t->cells[r * t->ncols + c];
            size_t w = s ? text_width(s) : 1;
            if (w > width[c])
                width[c] = w;
        }
    }
    if (t->headers) {
        for (size_t c = 0; c < t->ncols; c++)
            put_cell(ctx, t->headers[c], width[c], t->right[c], c + 1 == t->ncols, CLI_BOLD);
        fputc('\n', stdout);
    }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            put_cell(ctx, s ? s : "-", width[c], t->right[c], c + 1 == t->ncols,
                     (cli_color)t->colors[r * t->ncols + c]);
        }
        fputc('\n', stdout);
    }
    free(width);
    return CLI_EXIT_OK;
}

void cli_table_free(cli_table *t)
{
    if (!t)
        return;
    for (size_t k = 0; t->cells && k < t->nrows * t->ncols; k++)
        free(t->cells[k]);
    for (size_t c = 0; t->headers && c < t->ncols; c++)
        free(t->headers[c]);
    free(t->headers);
    free(t->cells);
    free(t->colors);
    free(t->right);
    free(t);
}

void cli_table_kv_text(cli_table *t, const char *key, const char *text, cli_color c)
{
    char k[300];
    snprintf(k, sizeof k, "%s:", key);
    cli_table_row(t);
    cli_table_cell(t, 0, k);
    cli_table_cell_color(t, 1, text, c);
}

static int skipped(const char *key, const char *const *skip)
{
    for (; skip && *skip; skip++)
        if (strcmp(key, *skip) == 0)
            return 1;
    return 0;
}

void cli_table_kv(cli_table *t, const char *prefix, const json_t *obj, const char *const *skip)
{
    const char *key;
    const json_t *v;
    char full[256], text[1024];

    json_object_foreach((json_t *)obj, key, v)
    {
        if (skipped(key, skip))
            continue;
        if (prefix)
            snprintf(full, sizeof full, "%s.%s", prefix, key);
        else
            snprintf(full, sizeof full, "%s", key);
        if (json_is_object(v) && json_object_size(v)) {
            cli_table_kv(t, full, v, NULL);
            continue;
        }
        cli_table_kv_text(t, full, cli_json_text(v, text, sizeof text), CLI_PLAIN);
    }
}

void cli_table_kv_ordered(cli_table *t, const json_t *obj, const char *const *first,
                          const char *const *skip)
{
    const char *all[64];
    size_t n = 0;
    char text[1024];

    for (size_t k = 0; first && first[k]; k++) {
        const json_t *v = json_object_get(obj, first[k]);
        if (v && !skipped(first[k], skip)) {
            if (json_is_object(v) && json_object_size(v))
                cli_table_kv(t, first[k], v, NULL);
            else
                cli_table_kv_text(t, first[k], cli_json_text(v, text, sizeof text), CLI_PLAIN);
        }
        if (n + 1 < sizeof all / sizeof all[0])
            all[n++] = first[k];
    }
    for (size_t k = 0; skip && skip[k]; k++)
        if (n + 1 < sizeof all / sizeof all[0])
            all[n++] = skip[k];
    all[n] = NULL;
    cli_table_kv(t, NULL, obj, all);
}
