/*
 * api/api_upload.c — POST /v1/datasets: a CSV body streamed, never held
 * whole, from the socket into the store.
 *
 *   libmicrohttpd body chunks ──▶ [gzip inflate] ──▶ csv_table builder
 *        ──▶ full 4096-row chunks ──▶ svc_upload_append (a writer thread
 *        commits them, invisible) ──▶ at the end: stale chunks rewritten,
 *        one durable commit ──▶ 201
 *
 * Memory per upload: the parser's record buffer, one chunk being filled,
 * two chunks in the writer's hands, zlib's window and a 64 KiB inflate
 * buffer: about 1 MiB for 16 columns, whatever the file size.
 *
 * Everything the request line and headers say is judged before the body is
 * read (api_server.c's begin): the options, the Content-Encoding, and the
 * dataset's name — valid, and not taken (checked again when the upload is
 * begun, so a race is still refused) — so a refused upload is not sent.
 * The upload is begun in the store lazily, at the first full chunk (or at
 * the end for a small file), so a request that fails early never touches the
 * store. An error of the store (a taken name, a full disk) stops the parse
 * and is answered by the handler at the end of the body, not in the body
 * phase, so Idempotency-Key handling (api_idem.c) still has the first word.
 * A request that ends without a commit — a CSV error, a client that hangs up
 * mid-body — closes the upload, which removes whatever it had stored.
 *
 * Options: delimiter (',' ';' tab), header=true|false, missing=error|drop|fill;
 * limits from the configuration (max_upload, also on the decompressed size;
 * max_rows, max_columns, max_levels, max_field, max_line), each named in
 * the error it causes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_internal.h"
#include "api/csv_gzip.h"

struct api__upload {
    svc *svc;
    csv_table_builder *csv;
    csv_gunzip *gz;         /* Content-Encoding: gzip */
    char *name;
    svc_upload *upload;     /* begun at the first chunk */
    int failed;             /* the store refused: err says why */
    svc_error err;
    size_t max_upload;
};

/* Keeps the first error, like api_server.c's body errors. */
static void set_err(api__req *r, int status, const char *code, const char *field,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void set_err(api__req *r, int status, const char *code, const char *field,
                    const char *fmt, ...)
{
    va_list ap;
    if (r->err_status)
        return;
    r->err_status = status;
    snprintf(r->err_code, sizeof r->err_code, "%s", code);
    snprintf(r->err_field, sizeof r->err_field, "%s", field ? field : "");
    va_start(ap, fmt);
    vsnprintf(r->err_msg, sizeof r->err_msg, fmt, ap);
    va_end(ap);
}

/* The builder's sink: begins the upload at the first chunk, appends. */
static int sink(void *ctx, size_t seq, const float *rows, size_t n_rows, size_t n_cols)
{
    struct api__upload *u = ctx;
    (void)seq;
    if (!u->upload && svc_upload_begin(u->svc, u->name, &u->upload, &u->err) != SVC_OK) {
        u->failed = 1;
        return -1;
    }
    if (svc_upload_append(u->upload, rows, n_rows, n_cols, &u->err) != SVC_OK) {
        u->failed = 1;
        return -1;
    }
    return 0;
}

/* Stops storing: what was stored is removed now, not at the end of the body. */
static void drop_upload(struct api__upload *u)
{
    svc_upload_close(u->upload);
    u->upload = NULL;
}

void api__upload_begin(struct api_server *a, struct MHD_Connection *c, api__req *r)
{
    csv_options opt = csv_options_default();
    const char *d = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "delimiter");
    const char *h = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "header");
    const char *m = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "missing");
    const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "name");
    const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_CONTENT_ENCODING);
    struct api__upload *u;

    if (!name || !name[0])
        set_err(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid", "name",
                "the query parameter 'name' is required (POST /v1/datasets?name=N)");
    if (d) {
        if (!strcmp(d, ",") || !strcmp(d, ";") || !strcmp(d, "\t"))
            opt.delimiter = d[0];
        else if (!strcmp(d, "tab"))
            opt.delimiter = '\t';
        else
            set_err(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid", "delimiter",
                    "'delimiter' must be ',', ';' or a tab");
    }
    if (h) {
        if (!strcmp(h, "false") || !strcmp(h, "0"))
            opt.header = 0;
        else if (strcmp(h, "true") != 0 && strcmp(h, "1") != 0)
            set_err(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid", "header",
                    "'header' must be true or false");
    }
    if (m) {
        if (!strcmp(m, "error"))
            opt.missing = CSV_MISSING_ERROR;
        else if (!strcmp(m, "drop"))
            opt.missing = CSV_MISSING_DROP;
        else if (!strcmp(m, "fill"))
            opt.missing = CSV_MISSING_FILL;
        else if (!strcmp(m, "keep"))
            opt.missing = CSV_MISSING_KEEP;
        else
            set_err(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid", "missing",
                    "'missing' must be error, drop, fill or keep");
    }
    if (enc && strcasecmp(enc, "identity") != 0 && strcasecmp(enc, "gzip") != 0 &&
        strcasecmp(enc, "x-gzip") != 0)
        set_err(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", NULL,
                "Content-Encoding '%.60s' is not supported: send the CSV as it is or gzip it",
                enc);
    if (a->cfg.csv_max_rows)
        opt.max_rows = a->cfg.csv_max_rows;
    if (a->cfg.csv_max_cols)
        opt.max_cols = a->cfg.csv_max_cols;
    if (a->cfg.csv_max_levels)
        opt.max_levels = a->cfg.csv_max_levels;
    if (a->cfg.csv_max_field)
        opt.max_field = a->cfg.csv_max_field;
    if (a->cfg.csv_max_line)
        opt.max_line = a->cfg.csv_max_line;
    if (r->err_status)
        return;

    u = calloc(1, sizeof *u);
    if (!u || !(u->name = strdup(name))) {
        free(u);
        set_err(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory", NULL, "out of memory");
        return;
    }
    r->up = u;
    u->svc = a->svc;
    u->max_upload = a->cfg.max_upload;
    u->csv = csv_table_builder_new_stream(&opt, sink, u);
    if (enc && strcasecmp(enc, "identity") != 0)
        u->gz = csv_gunzip_new(u->max_upload);
    if (!u->csv || (enc && strcasecmp(enc, "identity") != 0 && !u->gz))
        set_err(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory", NULL, "out of memory");
}

/* A CSV error: status, code and a message with its line and column. */
static void csv_fail(api__req *r, int rc, const csv_error *ce)
{
    int st = rc == CSV_ENOMEM   ? MHD_HTTP_SERVICE_UNAVAILABLE
             : rc == CSV_ELIMIT ? MHD_HTTP_CONTENT_TOO_LARGE
                                : MHD_HTTP_UNPROCESSABLE_CONTENT;
    const char *code = rc == CSV_ENOMEM   ? "out_of_memory"
                       : rc == CSV_ELIMIT ? "too_large"
                       : rc == CSV_EEMPTY ? "empty_csv"
                                          : "invalid_csv";
    /* Every located error starts "line L, column C: " (or "line L: " when
     * it is about a whole row), so clients and tests can rely on it. */
    if (ce->line > 0 && ce->column > 0)
        set_err(r, st, code, NULL, "line %ld, column %ld: %s", ce->line, ce->column, ce->message);
    else if (ce->line > 0)
        set_err(r, st, code, NULL, "line %ld: %s", ce->line, ce->message);
    else
        set_err(r, st, code, NULL, "%s", ce->message[0] ? ce->message : "cannot parse CSV");
}

/* Decoded body bytes into the parser. Non-zero once it has failed. */
static int feed_csv(void *ctx, const char *data, size_t n)
{
    api__req *r = ctx;
    struct api__upload *u = r->up;
    csv_error ce = {0};
    int rc = csv_table_builder_feed(u->csv, data, n, &ce);
    if (rc == CSV_OK)
        return 0;
    if (rc != CSV_ESINK) /* the store's reasons are answered by the handler */
        csv_fail(r, rc, &ce);
    drop_upload(u);
    return 1;
}

void api__upload_chunk(struct api_server *a, api__req *r, const char *data, size_t n)
{
    struct api__upload *u = r->up;
    int rc;

    if (r->err_status || !u || u->failed)
        return;
    if (r->received > a->cfg.max_upload) {
        set_err(r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", NULL,
                "the upload is larger than the limit of %zu bytes (max_upload)",
                a->cfg.max_upload);
        drop_upload(u);
        return;
    }
    if (!u->gz) {
        (void)feed_csv(r, data, n);
        return;
    }
    rc = csv_gunzip_feed(u->gz, data, n, feed_csv, r);
    if (rc == CSV_GZ_ELIMIT)
        set_err(r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", NULL,
                "the decompressed upload is larger than the limit of %zu bytes (max_upload)",
                u->max_upload);
    else if (rc == CSV_GZ_EDATA)
        set_err(r, MHD_HTTP_BAD_REQUEST, "invalid_encoding", NULL,
                "the gzip body is corrupt (after %zu decompressed bytes)",
                csv_gunzip_total(u->gz));
    else if (rc == CSV_GZ_ENOMEM)
        set_err(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory", NULL, "out of memory");
    if (rc < 0)
        drop_upload(u);
}

static int stale(void *ctx, size_t seq)
{
    return csv_table_builder_chunk_stale(ctx, seq);
}

static void fix(void *ctx, size_t seq, float *rows, size_t n_rows)
{
    csv_table_builder_fix_chunk(ctx, seq, rows, n_rows);
}

enum MHD_Result api__upload_name_free(struct MHD_Connection *c, api__req *r, int *done)
{
    svc_error e = {0};
    *done = 0;
    if (!r->up || svc_dataset_name_check(r->up->svc, r->up->name, &e) == SVC_OK)
        return MHD_YES;
    *done = 1;
    r->close_after = 1;
    return api__reply_svc_error(c, &e);
}

enum MHD_Result api__upload_finish(struct MHD_Connection *c, api__req *r)
{
    struct api__upload *u = r->up;
    csv_table *t = NULL;
    csv_error ce = {0};
    svc_column *cols = NULL;
    json_t *out = NULL;
    svc_error e = {0};
    enum MHD_Result mr;
    int rc;

    if (!u)
        return api__reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
                                "the upload was not set up");
    if (u->failed)
        return api__reply_svc_error(c, &u->err);
    if (u->gz && csv_gunzip_finish(u->gz) != CSV_GZ_OK)
        return api__reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid_encoding", NULL,
                                "the gzip body ends in the middle of its stream (after %zu "
                                "decompressed bytes)",
                                csv_gunzip_total(u->gz));
    rc = csv_table_builder_finish(u->csv, &t, &ce);
    if (rc == CSV_ESINK)
        return api__reply_svc_error(c, &u->err);
    if (rc != CSV_OK) {
        csv_fail(r, rc, &ce);
        return api__reply_error(c, (unsigned)r->err_status, r->err_code, NULL, "%s",
                                r->err_msg);
    }
    cols = calloc(t->n_cols, sizeof *cols);
    if (!cols) {
        mr = api__reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory", NULL,
                              "out of memory");
        goto done;
    }
    for (size_t i = 0; i < t->n_cols; i++) {
        const csv_column *k = &t->cols[i];
        cols[i].name = k->name;
        cols[i].is_category = k->type == CSV_COL_CATEGORY;
        cols[i].n_levels = k->n_levels;
        cols[i].levels = k->levels;
        cols[i].n_missing = k->n_missing;
        cols[i].n_filled = k->n_filled;
        cols[i].min = k->min;
        cols[i].max = k->max;
        cols[i].mean = k->mean;
        cols[i].std = k->std;
        cols[i].counts = k->counts;
    }
    svc_table st = {t->n_rows, t->n_cols, cols, t->n_dropped};
    if (!u->upload) { /* every finished table has rows: the sink has begun it */
        mr = api__reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
                              "the upload has no rows stored");
        goto done;
    }
    rc = svc_upload_commit(u->upload, &st, stale, fix, u->csv, &out, &e);
    drop_upload(u); /* committed, or failed: either way it is over */
    mr = rc == SVC_OK ? api__reply_json(c, MHD_HTTP_CREATED, out) : api__reply_svc_error(c, &e);
done:
    free(cols);
    csv_table_free(t);
    return mr;
}

void api__upload_free(api__req *r)
{
    struct api__upload *u = r ? r->up : NULL;
    if (!u)
        return;
    svc_upload_close(u->upload); /* discards an upload that was not committed */
    csv_table_builder_free(u->csv);
    csv_gunzip_free(u->gz);
    free(u->name);
    free(u);
    r->up = NULL;
}
