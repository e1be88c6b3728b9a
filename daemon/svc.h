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

/* ---- datasets ---------------------------------------------------------- */

typedef struct {
    const char *name;
    int is_category;
    size_t n_levels;
    char *const *levels;
    size_t n_missing, n_filled;
} svc_column;

typedef struct {
    size_t n_rows, n_cols;
    const svc_column *cols;
    const float *data;      /* row-major [n_rows][n_cols]; categories as level index */
    size_t n_dropped;
} svc_table;

/* Validates the name and stores the table durably; *out = the dataset. */
int svc_dataset_create(svc *s, const char *name, const svc_table *t, json_t **out, svc_error *e);
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

#endif
