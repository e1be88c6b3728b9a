/*
 * daemon/svc.h — the service layer: the one header api/ and main() use.
 *
 * svc owns the store, the worker pool and the jobs. Its functions take
 * already-decoded requests (JSON values or typed tables), validate what
 * belongs to the domain (names, references, job specs), act, and hand back
 * the resource as a new JSON object ready to be sent. Errors come back in a
 * caller-owned svc_error: a code api/ maps to an HTTP status through one
 * table, the key path at fault (if any), and a sentence for a person.
 *
 * Threads: every function may be called from any thread at any time
 * (libmicrohttpd's threads and main()); the worker pool is internal.
 * Ownership: json_t **out receives a NEW reference (caller decrefs);
 * json_t arguments are BORROWED.
 */
#ifndef SVC_H
#define SVC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum {
    SVC_OK = 0,
    SVC_EINVAL = -1,      /* a value is wrong: 422 */
    SVC_ENOTFOUND = -2,   /* no such resource: 404 */
    SVC_EEXISTS = -3,     /* a name is taken: 409 */
    SVC_ECONFLICT = -4,   /* state forbids it (in use, running, ...): 409 */
    SVC_EFULL = -5,       /* the queue is full: 429 */
    SVC_ENOMEM = -6,      /* 503 */
    SVC_EIO = -7,         /* storage failed: 500 */
    SVC_EUNSUPPORTED = -8,/* valid but not available in this build: 422 */
    SVC_ELIMIT = -9,      /* a configured limit: 413 */
    SVC_EGONE = -10,      /* existed but no longer available (e.g. no checkpoint yet): 404 */
};

typedef struct {
    int code;              /* SVC_E* */
    char field[128];       /* key path at fault, "" if none (e.g. "model.trunk[2]") */
    char message[384];     /* what was wrong and where */
} svc_error;

/* Short snake_case word for a code, used as error.code in bodies. */
const char *svc_code_name(int code);

typedef struct {
    const char *data_dir;  /* created if missing; holds mtld.db and checkpoints/ */
    int workers;           /* training threads (>= 1) */
    int max_queued;        /* queued jobs at most (0 = unlimited) */
    int64_t max_model_bytes; /* estimated memory of one job's model at most (0 = unlimited) */
    int worker_nice;       /* nice value of the training threads (0..19; see svc_core.c) */
} svc_config;

typedef struct svc svc;

/* Opens the store (migrating it), re-queues jobs left running by a crash and
 * starts the workers. errbuf gets the reason on failure. */
int svc_open(const svc_config *cfg, svc **out, char *errbuf, size_t errlen);
/* Stops taking jobs, asks running jobs to checkpoint and return to queued,
 * joins the workers. Safe to call twice. */
void svc_stop(svc *s);
void svc_close(svc *s); /* svc_stop + free; NULL is fine */

/* Counts for status lines and /metrics. */
typedef struct {
    int queued, running, succeeded, failed, cancelled;
} svc_counts;
int svc_job_counts(svc *s, svc_counts *out);
/* A number that changes whenever a job changes state (submitted, started,
 * finished, cancelled, re-queued): main() polls it to send sd_notify STATUS
 * lines on changes. Thread-safe, lock-free. */
unsigned long svc_changes(svc *s);

/* ---- datasets ---------------------------------------------------------- */

/* A column as the CSV parser described it, with its statistics over the
 * values as stored (filled ones included). */
typedef struct {
    const char *name;
    int is_category;
    size_t n_levels;
    char *const *levels;
    size_t n_missing, n_filled;
    double min, max, mean, std; /* number columns; std is the population one */
    const size_t *counts;       /* category columns: stored cells per level */
} svc_column;

typedef struct {
    size_t n_rows, n_cols;
    const svc_column *cols;
    size_t n_dropped;
} svc_table;

/* Streaming upload of a dataset (svc_dataset.c): begin (validates and
 * reserves the name: SVC_EINVAL / SVC_EEXISTS at once), append chunks of
 * rows as they are parsed (row-major float32, categories as level indices;
 * STORE_CHUNK_ROWS = 4096 rows each, only the last shorter), commit with the
 * columns (rewriting the chunks `stale` names through `fix` first), which
 * is durable before it returns and gives the dataset as JSON. close
 * discards an upload that was not committed (a client gone, a bad CSV):
 * nothing is left behind. One thread at a time per upload; appends may be
 * written by a background thread, their errors come back from a later
 * append or from commit. */
typedef struct svc_upload svc_upload;
typedef int (*svc_chunk_stale_fn)(void *ctx, size_t seq);
typedef void (*svc_chunk_fix_fn)(void *ctx, size_t seq, float *rows, size_t n_rows);
int svc_upload_begin(svc *s, const char *name, svc_upload **out, svc_error *e);
/* Whether name can name a new dataset, checked before an upload's body is
 * read: SVC_EINVAL (field "name") for a name that is not valid, SVC_EEXISTS
 * when a dataset has it already (svc_upload_begin checks again: a race is
 * still refused there). */
int svc_dataset_name_check(svc *s, const char *name, svc_error *e);
int svc_upload_append(svc_upload *u, const float *rows, size_t n_rows, size_t n_cols,
                      svc_error *e);
int svc_upload_commit(svc_upload *u, const svc_table *t, svc_chunk_stale_fn stale,
                      svc_chunk_fix_fn fix, void *ctx, json_t **out, svc_error *e);
void svc_upload_close(svc_upload *u); /* NULL is fine */
int svc_dataset_list(svc *s, json_t **out, svc_error *e);
int svc_dataset_get(svc *s, const char *key, json_t **out, svc_error *e);
int svc_dataset_rows(svc *s, const char *key, int64_t offset, int64_t limit, json_t **out,
                     svc_error *e);
int svc_dataset_delete(svc *s, const char *key, svc_error *e);

/* ---- tasks -------------------------------------------------------------- */

int svc_task_create(svc *s, json_t *def, json_t **out, svc_error *e);
int svc_task_list(svc *s, json_t **out, svc_error *e);
int svc_task_get(svc *s, const char *key, json_t **out, svc_error *e);
int svc_task_delete(svc *s, const char *key, svc_error *e);

/* ---- jobs --------------------------------------------------------------- */

int svc_job_submit(svc *s, json_t *spec, json_t **out, svc_error *e);
int svc_job_list(svc *s, const char *state, json_t **out, svc_error *e);
int svc_job_get(svc *s, const char *key, json_t **out, svc_error *e);
int svc_job_cancel(svc *s, const char *key, json_t **out, svc_error *e);
int svc_job_delete(svc *s, const char *key, svc_error *e);
/* *out = {"metrics":[{step,task,split,name,value}]}, value null when not finite. */
int svc_job_metrics(svc *s, const char *key, int64_t since, json_t **out, svc_error *e);
int svc_job_checkpoints(svc *s, const char *key, json_t **out, svc_error *e);
/* The latest checkpoint's file: path (into buf) and size, for streaming. */
int svc_job_checkpoint_file(svc *s, const char *key, char *path, size_t pathlen,
                            int64_t *bytes, svc_error *e);
/* Same for one checkpoint: which = "latest", "best" (lowest held-out loss at
 * an epoch end) or a checkpoint id in decimal. */
int svc_job_checkpoint_file_which(svc *s, const char *key, const char *which, char *path,
                                  size_t pathlen, int64_t *bytes, svc_error *e);

/* svc_job_get as compact JSON text (*text malloc'd, *len bytes), served from
 * memory while nothing was written to the store (svc_viewcache.c): the same
 * content, live figures of a running job included, without a query. */
int svc_job_get_text(svc *s, const char *key, char **text, size_t *len, svc_error *e);

/* ---- live events (svc_events.c) ----------------------------------------
 * Every job has an in-memory ring of its recent events, written by the
 * training thread without ever waiting for a reader. A watcher reads it at
 * its own pace; `notify` tells it (from the training thread, under the
 * ring's lock: it must not block and must not call svc_events_*) that there
 * is something new. */
typedef struct svc_watch svc_watch;

typedef struct {
    int64_t id;      /* > 0: the event's id in the job's stream (Last-Event-ID);
                        0: a snapshot or synthesised event that has no id */
    char type[16];   /* "progress", "metric" or "state" */
    char *data;      /* JSON text, malloc'd: svc_event_clear frees it */
    int final;       /* the job's final state: the stream ends after it */
} svc_event;

/* Starts watching job key. last_id < 0: from now, beginning with a snapshot
 * (a state event, and a progress event unless the job has ended);
 * last_id >= 0: the events after that id still held in memory. At most
 * max_watchers watchers per job (SVC_EFULL beyond; 0 = no limit).
 * *out is new: svc_events_unwatch releases it. */
int svc_events_watch(svc *s, const char *key, int64_t last_id, int max_watchers,
                     void (*notify)(void *ctx), void *ctx, svc_watch **out, svc_error *e);
/* Non-blocking. 1: *ev filled (clear it); 0: nothing now, wait for notify
 * (or call again later: a job that ended without an event, e.g. a queued job
 * cancelled, is noticed by polling the store at most every 2 s);
 * 2: the stream is over (the final state was handed out, or the job is gone). */
int svc_events_next(svc_watch *w, svc_event *ev);
void svc_event_clear(svc_event *ev);
void svc_events_unwatch(svc_watch *w); /* NULL is fine */

/* ---- predictions (svc_predict.c) ---------------------------------------
 * req: {"task"?: name, "rows": [[v, ...] | {"col": v, ...}, ...],
 *       "checkpoint"?: "latest" | "best" | id}. Row arrays give the job's
 * input columns in the order the reply's "columns" lists (an object names
 * them); categories are their text. *out = predictions in the target's units
 * or label texts, with class probabilities. At most max_rows rows (SVC_ELIMIT). */
int svc_job_predict(svc *s, const char *key, json_t *req, size_t max_rows, json_t **out,
                    svc_error *e);

/* ---- few-shot adaptation (svc_adapt.c) ----------------------------------
 * req: {"support": {"rows": [...], "labels": [...]}, "query": {"rows": [...]},
 *       "steps"?: 0..SVC_ADAPT_MAX_STEPS, "checkpoint"?: "latest" | "best" | id}
 * for a meta-learning job: adapts a private copy of its meta-trained model
 * on the support set (inner steps, default inner.steps, for the MAML family;
 * prototypes for protonet) and predicts the query. Rows as for predictions;
 * labels are the client's own class names (strings or integers) or, for a
 * generator job, target values. Never writes anything. At most
 * SVC_ADAPT_MAX_SUPPORT support rows and max_rows query rows (SVC_ELIMIT). */
#define SVC_ADAPT_MAX_SUPPORT 1000
#define SVC_ADAPT_MAX_STEPS 100
int svc_job_adapt(svc *s, const char *key, json_t *req, size_t max_rows, json_t **out,
                  svc_error *e);

/* ---- imported models (svc_import.c) -------------------------------------
 * POST /v1/checkpoints: bytes of a safetensors file in mtld's MLP layout
 * (trunk.<i>.weight/bias, optional head.weight/bias, F32; docs/guide.md),
 * validated strictly (names, ranks, chained shapes, dtype, offsets, finite
 * values, optional __metadata__.features) before anything is kept, then
 * stored durably. name may be NULL. *out = {"id", "name", "bytes",
 * "trunk": [{"in","out"}], "head", "features", "metadata", "created_at"}.
 * Jobs start from it with "from_checkpoint": {"checkpoint": id or name}. */
int svc_checkpoint_import(svc *s, const char *name, const void *bytes, size_t n, json_t **out,
                          svc_error *e);
/* *out = {"checkpoints": [...]} oldest first. */
int svc_checkpoint_list(svc *s, json_t **out, svc_error *e);

/* ---- figures for GET /metrics (svc_stats.c) ----------------------------- */
#define SVC_STATS_MAX_RUNNING 64
typedef struct {
    svc_counts jobs;
    int64_t datasets, dataset_bytes, tasks;
    size_t n_running;
    struct {
        int64_t job_id;
        int64_t step, steps;
        double steps_per_s, samples_per_s; /* recent rate; 0 until known */
    } running[SVC_STATS_MAX_RUNNING];
} svc_stats;
int svc_stats_get(svc *s, svc_stats *out, svc_error *e);

/* ---- idempotent creation (svc_idem.c) -----------------------------------
 * An Idempotency-Key names one creating request. svc_idem_begin reserves
 * it (SVC_OK, *replay = NULL: go ahead and create), or finds it used:
 * the same request finished before → SVC_OK with *replay = {"status",
 * "content_type", "body"} (new ref) to send again; the same request still
 * in progress → SVC_ECONFLICT; a different request (fingerprint differs) →
 * SVC_EINVAL. Then exactly one of svc_idem_finish (a 2xx was produced: keep
 * it) or svc_idem_abort (nothing was created: forget the key). Keys are kept
 * 24 hours. */
int svc_idem_begin(svc *s, const char *key, const char *fingerprint, json_t **replay,
                   svc_error *e);
int svc_idem_finish(svc *s, const char *key, int status, const char *content_type,
                    const char *body, size_t len);
void svc_idem_abort(svc *s, const char *key);

#endif
