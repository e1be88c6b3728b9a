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
#include <sys/stat.h>
#include <unistd.h>

#include "api/api_internal.h"

#define SVC(r) ((r)->srv->svc)

/* Parses the gathered JSON body; replies 400 (with line and column) when it
 * does not parse. Returns NULL after replying. */
static json_t *json_body(struct MHD_Connection *c, api__req *r, enum MHD_Result *reply)
{
    json_error_t je;
    if (!r->body || r->len == 0) {
        *reply = api__reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid_json", NULL,
                                  "the request needs a JSON body");
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
    return reply_result(c, rc, MHD_HTTP_OK, out, &e);
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
                                "'offset' must be a non-negative integer");
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
    return reply_result(c, rc, MHD_HTTP_OK, out, &e);
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
    return reply_result(c, rc, MHD_HTTP_OK, out, &e);
}

static enum MHD_Result h_job_get(struct MHD_Connection *c, api__req *r)
{
    json_t *out = NULL;
    svc_error e = {0};
    int rc = svc_job_get(SVC(r), r->params[0], &out, &e);
    return reply_result(c, rc, MHD_HTTP_OK, out, &e);
}

static enum MHD_Result h_job_cancel(struct MHD_Connection *c, api__req *r)
{
    json_t *out = NULL;
    svc_error e = {0};
    int rc = svc_job_cancel(SVC(r), r->params[0], &out, &e);
    return reply_result(c, rc, MHD_HTTP_OK, out, &e);
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
                                "'since' must be a non-negative integer (a step)");
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

static enum MHD_Result h_job_checkpoint_latest(struct MHD_Connection *c, api__req *r)
{
    char path[4096];
    int64_t bytes = 0;
    svc_error e = {0};
    int rc = svc_job_checkpoint_file(SVC(r), r->params[0], path, sizeof path, &bytes, &e);
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
    enum MHD_Result mr = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return mr;
}

const api__route api__routes[] = {
    {"GET", "/v1/health", BODY_NONE, h_health},
    {"POST", "/v1/datasets", BODY_CSV, h_dataset_create},
    {"GET", "/v1/datasets", BODY_NONE, h_dataset_list},
    {"GET", "/v1/datasets/{}", BODY_NONE, h_dataset_get},
    {"DELETE", "/v1/datasets/{}", BODY_NONE, h_dataset_delete},
    {"GET", "/v1/datasets/{}/rows", BODY_NONE, h_dataset_rows},
    {"POST", "/v1/tasks", BODY_JSON, h_task_create},
    {"GET", "/v1/tasks", BODY_NONE, h_task_list},
    {"GET", "/v1/tasks/{}", BODY_NONE, h_task_get},
    {"DELETE", "/v1/tasks/{}", BODY_NONE, h_task_delete},
    {"POST", "/v1/jobs", BODY_JSON, h_job_submit},
    {"GET", "/v1/jobs", BODY_NONE, h_job_list},
    {"GET", "/v1/jobs/{}", BODY_NONE, h_job_get},
    {"DELETE", "/v1/jobs/{}", BODY_NONE, h_job_delete},
    {"POST", "/v1/jobs/{}/cancel", BODY_NONE, h_job_cancel},
    {"GET", "/v1/jobs/{}/metrics", BODY_NONE, h_job_metrics},
    {"GET", "/v1/jobs/{}/checkpoints", BODY_NONE, h_job_checkpoints},
    {"GET", "/v1/jobs/{}/checkpoints/latest", BODY_NONE, h_job_checkpoint_latest},
};
const size_t api__n_routes = sizeof api__routes / sizeof api__routes[0];
