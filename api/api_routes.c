/*
 * api/api_routes.c — the route table and the handlers. A handler decodes
 * what it needs (path ids, query, JSON body), calls one svc_* function and
 * replies; it never touches storage or the engine itself.
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api_internal.h"

#define SVC(r) ((r)->srv->svc)

/* How deeply arrays and objects nest in text (strings skipped); stops
 * counting past limit and gives the line and column where it went over. */
static unsigned json_depth(const char *p, size_t n, unsigned limit, int *line, int *col)
{
    unsigned depth = 0, max = 0;
    int in_str = 0, esc = 0, ln = 1, cl = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        cl++;
        if (ch == '\n') {
            ln++;
            cl = 0;
        }
        if (in_str) {
            if (esc)
                esc = 0;
            else if (ch == '\\')
                esc = 1;
            else if (ch == '"')
                in_str = 0;
            continue;
        }
        if (ch == '"')
            in_str = 1;
        else if (ch == '[' || ch == '{') {
            if (++depth > max)
                max = depth;
            if (depth > limit) {
                *line = ln;
                *col = cl;
                return depth;
            }
        } else if ((ch == ']' || ch == '}') && depth > 0)
            depth--;
    }
    return max;
}

/* Parses the gathered JSON body; replies 400 (with line and column) when it
 * does not parse or nests deeper than max_json_depth. Returns NULL after
 * replying. */
static json_t *json_body(struct MHD_Connection *c, api__req *r, enum MHD_Result *reply)
{
    json_error_t je;
    if (!r->body || r->len == 0) {
        *reply = api__reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid_json", NULL,
                                  "the request needs a JSON body");
        return NULL;
    }
    int dl = 0, dc = 0;
    unsigned limit = r->srv->cfg.max_json_depth;
    if (json_depth(r->body, r->len, limit, &dl, &dc) > limit) {
        *reply = api__reply_error(c, MHD_HTTP_BAD_REQUEST, "too_deep", NULL,
                                  "JSON nests deeper than %u levels at line %d, column %d "
                                  "(max_json_depth)",
                                  limit, dl, dc);
        return NULL;
    }
    json_t *v = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &je);
    if (!v)
        *reply = api__reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid_json", NULL,
                                  "JSON does not parse at line %d, column %d: %s", je.line,
                                  je.column, je.text);
    return v;
}

static enum MHD_Result reply_result(struct MHD_Connection *c, int rc, unsigned ok_status,
                                    json_t *out, const svc_error *e)
{
    if (rc != SVC_OK)
        return api__reply_svc_error(c, e);
    return api__reply_json(c, ok_status, out);
}

/* ?limit=&offset= on a list reply: keeps items [offset, offset+limit) of
 * out[key], sets "total" (all items), "limit" and "offset". */
static enum MHD_Result reply_page(struct MHD_Connection *c, int rc, json_t *out,
                                  const svc_error *e, const char *key)
{
    long long limit, offset;
    if (rc != SVC_OK)
        return api__reply_svc_error(c, e);
    if (api__query_int(c, "limit", 100, 1000, &limit) != 0 || limit < 1) {
        json_decref(out);
        return api__reply_error(c, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid", "limit",
                                "'limit' must be an integer from 1 to 1000");
    }
    if (api__query_int(c, "offset", 0, (long long)1 << 40, &offset) != 0) {
        json_decref(out);
        return api__reply_error(c, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid", "offset",
                                "'offset' must be an integer from 0 to %lld", (long long)1 << 40);
    }
    json_t *all = json_object_get(out, key);
    size_t n = json_array_size(all);
    json_t *page = json_array();
    for (size_t i = (size_t)offset; i < n && i < (size_t)(offset + limit); i++)
        json_array_append(page, json_array_get(all, i));
    json_object_set_new(out, key, page);
    json_object_set_new(out, "total", json_integer((json_int_t)n));
    json_object_set_new(out, "limit", json_integer(limit));
    json_object_set_new(out, "offset", json_integer(offset));
    return api__reply_json(c, MHD_HTTP_OK, out);
}

static enum MHD_Result h_health(struct MHD_Connection *c, api__req *r)
{
    (void)r;
    return api__reply_json(c, MHD_HTTP_OK,
                           json_pack("{s:s,s:s}", "status", "ok", "version", MTLD_VERSION));
}

/* ---- datasets ---------------------------------------------------------- */

/* The body was streamed into the store as it arrived (api_upload.c); this
 * commits it. */
static enum MHD_Result h_dataset_create(struct MHD_Connection *c, api__req *r)
{
    return api__upload_finish(c, r);
}

static enum MHD_Result h_dataset_list(struct MHD_Connection *c, api__req *r)
{
    json_t *out = NULL;
    svc_error e = {0};
    int rc = svc_dataset_list(SVC(r), &out, &e);
    return reply_page(c, rc, out, &e, "datasets");
}

static enum MHD_Result h_dataset_get(struct MHD_Connection *c, api__req *r)
{
    json_t *out = NULL;
    svc_error e = {0};
    int rc = svc_dataset_get(SVC(r), r->params[0], &out, &e);
    return reply_result(c, rc, MHD_HTTP_OK, out, &e);
}

static enum MHD_Result h_dataset_rows(struct MHD_Connection *c, api__req *r)
{
    long long offset, limit;
    if (api__query_int(c, "offset", 0, (long long)1 << 40, &offset) != 0)
        return api__reply_error(c, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid", "offset",
                                "'offset' must be an integer from 0 to %lld", (long long)1 << 40);
    if (api__query_int(c, "limit", 20, 1000, &limit) != 0)
        return api__reply_error(c, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid", "limit",
                                "'limit' must be an integer from 0 to 1000");
    json_t *out = NULL;
    svc_error e = {0};
    int rc = svc_dataset_rows(SVC(r), r->params[0], offset, limit, &out, &e);
    return reply_result(c, rc, MHD_HTTP_OK, out, &e);
}

static enum MHD_Result h_dataset_delete(struct MHD_Connection *c, api__req *r)
{
    svc_error e = {0};
    int rc = svc_dataset_delete(SVC(r), r->params[0], &e);
    if (rc != SVC_OK)
        return api__reply_svc_error(c, &e);
    return api__reply_empty(c, MHD_HTTP_NO_CONTENT);
}

/* ---- tasks -------------------------------------------------------------- */

static enum MHD_Result h_task_create(struct MHD_Connection *c, api__req *r)
{
    enum MHD_Result reply = MHD_NO;
    json_t *def = json_body(c, r, &reply);
    if (!def)
        return reply;
    json_t *out = NULL;
    svc_error e = {0};
    int rc = svc_task_create(SVC(r), def, &out, &e);
    json_decref(def);
    return reply_result(c, rc, MHD_HTTP_CREATED, out, &e);
}

static enum MHD_Result h_task_list(struct MHD_Connection *c, api__req *r)
{
    json_t *out = NULL;
    svc_error e = {0};
    int rc = svc_task_list(SVC(r), &out, &e);
    return reply_page(c, rc, out, &e, "tasks");
}

static enum MHD_Result h_task_get(struct MHD_Connection *c, api__req *r)
{
    json_t *out = NULL;
    svc_error e = {0};
    int rc = svc_task_get(SVC(r), r->params[0], &out, &e);
    return reply_result(c, rc, MHD_HTTP_OK, out, &e);
}

static enum MHD_Result h_task_delete(struct MHD_Connection *c, api__req *r)
{
    svc_error e = {0};
    int rc = svc_task_delete(SVC(r), r->params[0], &e);
    if (rc != SVC_OK)
        return api__reply_svc_error(c, &e);
    return api__reply_empty(c, MHD_HTTP_NO_CONTENT);
}

/* ---- jobs --------------------------------------------------------------- */

static enum MHD_Result h_job_submit(struct MHD_Connection *c, api__req *r)
{
    enum MHD_Result reply = MHD_NO;
    json_t *spec = json_body(c, r, &reply);
    if (!spec)
        return reply;
    json_t *out = NULL;
    svc_error e = {0};
    int rc = svc_job_submit(SVC(r), spec, &out, &e);
    json_decref(spec);
    return reply_result(c, rc, MHD_HTTP_ACCEPTED, out, &e);
}

static enum MHD_Result h_job_list(struct MHD_Connection *c, api__req *r)
{
    const char *state = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "state");
    json_t *out = NULL;
    svc_error e = {0};
    int rc = svc_job_list(SVC(r), state, &out, &e);
    return reply_page(c, rc, out, &e, "jobs");
}

/* The API's hottest path (dashboards poll it): the view comes as text from
 * the service's cache, no JSON is built here. */
static enum MHD_Result h_job_get(struct MHD_Connection *c, api__req *r)
{
    char *text = NULL;
    size_t len = 0;
    svc_error e = {0};
    int rc = svc_job_get_text(SVC(r), r->params[0], &text, &len, &e);
    if (rc != SVC_OK)
        return api__reply_svc_error(c, &e);
    char *nl = realloc(text, len + 2);
    if (!nl) {
        free(text);
        return api__reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory", NULL,
                                "out of memory");
    }
    nl[len] = '\n';
    nl[len + 1] = 0;
    return api__reply_text(c, MHD_HTTP_OK, "application/json", nl);
}

static enum MHD_Result h_job_cancel(struct MHD_Connection *c, api__req *r)
{
    json_t *out = NULL;
    svc_error e = {0};
    int rc = svc_job_cancel(SVC(r), r->params[0], &out, &e);
    /* 200: the job has stopped (its state says how); 202: it is still
     * stopping ("state": "running", "cancel_requested": true). */
    unsigned ok = json_is_true(json_object_get(out, "cancel_requested")) ? MHD_HTTP_ACCEPTED
                                                                          : MHD_HTTP_OK;
    return reply_result(c, rc, ok, out, &e);
}

static enum MHD_Result h_job_delete(struct MHD_Connection *c, api__req *r)
{
    svc_error e = {0};
    int rc = svc_job_delete(SVC(r), r->params[0], &e);
    if (rc != SVC_OK)
        return api__reply_svc_error(c, &e);
    return api__reply_empty(c, MHD_HTTP_NO_CONTENT);
}

/* CSV text of the metrics: step,task,split,name,value (empty when not finite). */
static char *metrics_csv(json_t *metrics)
{
    size_t cap = 64 + json_array_size(metrics) * 96, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    len += (size_t)snprintf(buf, cap, "step,task,split,name,value\n");
    size_t i;
    json_t *m;
    json_array_foreach(metrics, i, m)
    {
        char line[512];
        json_t *v = json_object_get(m, "value");
        char val[40] = "";
        if (json_is_number(v))
            snprintf(val, sizeof val, "%.10g", json_number_value(v));
        int n = snprintf(line, sizeof line, "%lld,%s,%s,%s,%s\n",
                         (long long)json_integer_value(json_object_get(m, "step")),
                         json_string_value(json_object_get(m, "task")),
                         json_string_value(json_object_get(m, "split")),
                         json_string_value(json_object_get(m, "name")), val);
        if (n < 0 || (size_t)n >= sizeof line)
            continue;
        if (len + (size_t)n + 1 > cap) {
            cap = (cap + (size_t)n + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        memcpy(buf + len, line, (size_t)n + 1);
        len += (size_t)n;
    }
    return buf;
}

static enum MHD_Result h_job_metrics(struct MHD_Connection *c, api__req *r)
{
    long long since;
    if (api__query_int(c, "since", 0, (long long)1 << 50, &since) != 0)
        return api__reply_error(c, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid", "since",
                                "'since' must be a step, an integer from 0 to %lld",
                                (long long)1 << 50);
    const char *format = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");
    if (format && strcmp(format, "csv") != 0 && strcmp(format, "json") != 0)
        return api__reply_error(c, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid", "format",
                                "'format' must be json or csv");
    json_t *out = NULL;
    svc_error e = {0};
    int rc = svc_job_metrics(SVC(r), r->params[0], since, &out, &e);
    if (rc != SVC_OK)
        return api__reply_svc_error(c, &e);
    if (format && !strcmp(format, "csv")) {
        char *text = metrics_csv(json_object_get(out, "metrics"));
        json_decref(out);
        return api__reply_text(c, MHD_HTTP_OK, "text/csv", text);
    }
    return api__reply_json(c, MHD_HTTP_OK, out);
}

static enum MHD_Result h_job_checkpoints(struct MHD_Connection *c, api__req *r)
{
    json_t *out = NULL;
    svc_error e = {0};
    int rc = svc_job_checkpoints(SVC(r), r->params[0], &out, &e);
    return reply_result(c, rc, MHD_HTTP_OK, out, &e);
}

static enum MHD_Result h_job_checkpoint_file(struct MHD_Connection *c, api__req *r)
{
    char path[4096];
    int64_t bytes = 0;
    svc_error e = {0};
    /* params[1] is "latest", "best" or a checkpoint id; the service looks the
     * file up in the store, so no part of the URL ever becomes a path. */
    int rc = svc_job_checkpoint_file_which(SVC(r), r->params[0], r->params[1], path, sizeof path,
                                           &bytes, &e);
    if (rc != SVC_OK)
        return api__reply_svc_error(c, &e);
    /* The path comes from the store, never from the request. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return api__reply_error(c, MHD_HTTP_NOT_FOUND, "not_available", NULL,
                                "the checkpoint file of job %s is gone", r->params[0]);
    }
    struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    char disp[256];
    snprintf(disp, sizeof disp, "attachment; filename=\"job-%s.safetensors\"", r->params[0]);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_DISPOSITION, disp);
    api__note_status(MHD_HTTP_OK);
    enum MHD_Result mr = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return mr;
}

/* ---- predictions --------------------------------------------------------- */

/* A CSV body (header naming the columns) as rows of {column: value}. */
static json_t *csv_rows(struct MHD_Connection *c, api__req *r, enum MHD_Result *reply)
{
    csv_options opt = csv_options_default();
    opt.max_rows = r->srv->cfg.max_predict_rows;
    csv_table_builder *b = csv_table_builder_new(&opt);
    csv_table *t = NULL;
    csv_error ce = {0};
    json_t *rows = NULL;
    if (!b) {
        *reply = api__reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory", NULL,
                                  "out of memory");
        return NULL;
    }
    int rc = csv_table_builder_feed(b, r->body ? r->body : "", r->body ? r->len : 0, &ce);
    if (rc == CSV_OK)
        rc = csv_table_builder_finish(b, &t, &ce);
    csv_table_builder_free(b);
    if (rc != CSV_OK) {
        unsigned st = rc == CSV_ENOMEM ? MHD_HTTP_SERVICE_UNAVAILABLE
                      : rc == CSV_ELIMIT ? MHD_HTTP_CONTENT_TOO_LARGE
                                         : MHD_HTTP_UNPROCESSABLE_CONTENT;
        const char *code = rc == CSV_ELIMIT ? "too_large" : rc == CSV_EEMPTY ? "empty_csv"
                                                                             : "invalid_csv";
        if (ce.line > 0 && ce.column > 0) /* located as an upload's errors are */
            *reply = api__reply_error(c, st, code, NULL, "line %ld, column %ld: %s", ce.line,
                                      ce.column, ce.message);
        else if (ce.line > 0)
            *reply = api__reply_error(c, st, code, NULL, "line %ld: %s", ce.line, ce.message);
        else
            *reply = api__reply_error(c, st, code, NULL, "%s",
                                      ce.message[0] ? ce.message : "cannot parse CSV");
        return NULL;
    }
    rows = json_array();
    for (size_t i = 0; rows && i < t->n_rows; i++) {
        json_t *o = json_object();
        for (size_t k = 0; k < t->n_cols; k++) {
            float v = t->data[i * t->n_cols + k];
            const csv_column *col = &t->cols[k];
            if (col->type == CSV_COL_CATEGORY && (size_t)v < col->n_levels)
                json_object_set_new(o, col->name, json_string(col->levels[(size_t)v]));
            else
                json_object_set_new(o, col->name, json_real((double)v));
        }
        json_array_append_new(rows, o);
    }
    csv_table_free(t);
    if (!rows)
        *reply = api__reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory", NULL,
                                  "out of memory");
    return rows;
}

static enum MHD_Result h_job_predict(struct MHD_Connection *c, api__req *r)
{
    enum MHD_Result reply = MHD_NO;
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *task = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "task");
    const char *ck = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "checkpoint");
    json_t *req;
    if (ct && !strncasecmp(ct, "text/csv", 8)) {
        json_t *rows = csv_rows(c, r, &reply);
        if (!rows)
            return reply;
        req = json_pack("{s:o}", "rows", rows);
    } else {
        req = json_body(c, r, &reply);
        if (!req)
            return reply;
        if (!json_is_object(req)) {
            json_decref(req);
            return api__reply_error(c, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid", NULL,
                                    "the body must be an object {\"task\", \"rows\": [...]}");
        }
    }
    if (task && !json_object_get(req, "task"))
        json_object_set_new(req, "task", json_string(task));
    if (ck && !json_object_get(req, "checkpoint"))
        json_object_set_new(req, "checkpoint", json_string(ck));
    json_t *out = NULL;
    svc_error e = {0};
    int rc = svc_job_predict(SVC(r), r->params[0], req, r->srv->cfg.max_predict_rows, &out, &e);
    json_decref(req);
    return reply_result(c, rc, MHD_HTTP_OK, out, &e);
}

static enum MHD_Result h_job_adapt(struct MHD_Connection *c, api__req *r)
{
    enum MHD_Result reply = MHD_NO;
    json_t *req = json_body(c, r, &reply);
    if (!req)
        return reply;
    json_t *out = NULL;
    svc_error e = {0};
    int rc = svc_job_adapt(SVC(r), r->params[0], req, r->srv->cfg.max_predict_rows, &out, &e);
    json_decref(req);
    return reply_result(c, rc, MHD_HTTP_OK, out, &e);
}

/* ---- imported models ------------------------------------------------------ */

static enum MHD_Result h_checkpoint_import(struct MHD_Connection *c, api__req *r)
{
    const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "name");
    json_t *out = NULL;
    svc_error e = {0};
    int rc = svc_checkpoint_import(SVC(r), name, r->body ? r->body : "", r->len, &out, &e);
    return reply_result(c, rc, MHD_HTTP_CREATED, out, &e);
}

static enum MHD_Result h_checkpoint_list(struct MHD_Connection *c, api__req *r)
{
    json_t *out = NULL;
    svc_error e = {0};
    int rc = svc_checkpoint_list(SVC(r), &out, &e);
    return reply_page(c, rc, out, &e, "checkpoints");
}

/* The last column is each route's query parameters (api_check.c refuses any
 * other, and any given twice); docs/api.md documents the same lists. */
const api__route api__routes[] = {
    {"GET", "/v1/health", BODY_NONE, h_health, 0, NULL},
    {"POST", "/v1/datasets", BODY_CSV, h_dataset_create, API__CREATES,
     "name delimiter header missing"},
    {"GET", "/v1/datasets", BODY_NONE, h_dataset_list, 0, "limit offset"},
    {"GET", "/v1/datasets/{id}", BODY_NONE, h_dataset_get, API__BY_NAME, NULL},
    {"DELETE", "/v1/datasets/{id}", BODY_NONE, h_dataset_delete, API__BY_NAME, NULL},
    {"GET", "/v1/datasets/{id}/rows", BODY_NONE, h_dataset_rows, API__BY_NAME, "offset limit"},
    {"POST", "/v1/tasks", BODY_JSON, h_task_create, API__CREATES, NULL},
    {"GET", "/v1/tasks", BODY_NONE, h_task_list, 0, "limit offset"},
    {"GET", "/v1/tasks/{id}", BODY_NONE, h_task_get, API__BY_NAME, NULL},
    {"DELETE", "/v1/tasks/{id}", BODY_NONE, h_task_delete, API__BY_NAME, NULL},
    {"POST", "/v1/jobs", BODY_JSON, h_job_submit, API__CREATES, NULL},
    {"GET", "/v1/jobs", BODY_NONE, h_job_list, 0, "state limit offset"},
    {"GET", "/v1/jobs/{id}", BODY_NONE, h_job_get, 0, NULL},
    {"DELETE", "/v1/jobs/{id}", BODY_NONE, h_job_delete, 0, NULL},
    {"POST", "/v1/jobs/{id}/cancel", BODY_NONE, h_job_cancel, 0, NULL},
    {"GET", "/v1/jobs/{id}/metrics", BODY_NONE, h_job_metrics, 0, "since format"},
    {"GET", "/v1/jobs/{id}/events", BODY_NONE, api__h_job_events, API__STREAM, NULL},
    {"POST", "/v1/jobs/{id}/predict", BODY_JSON, h_job_predict, API__CSV_TOO, "task checkpoint"},
    {"POST", "/v1/jobs/{id}/adapt", BODY_JSON, h_job_adapt, 0, NULL},
    {"GET", "/v1/jobs/{id}/checkpoints", BODY_NONE, h_job_checkpoints, 0, NULL},
    {"GET", "/v1/jobs/{id}/checkpoints/{which}", BODY_NONE, h_job_checkpoint_file, 0, NULL},
    {"POST", "/v1/checkpoints", BODY_BINARY, h_checkpoint_import, API__CREATES, "name"},
    {"GET", "/v1/checkpoints", BODY_NONE, h_checkpoint_list, 0, "limit offset"},
    {"GET", "/metrics", BODY_NONE, api__h_metrics, 0, NULL},
};
const size_t api__n_routes = sizeof api__routes / sizeof api__routes[0];
