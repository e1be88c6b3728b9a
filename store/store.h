/*
 * store/store.h — SQLite persistence for mtld: datasets (rows as float32
 * chunks in BLOBs), tasks, jobs, metrics and checkpoints records.
 *
 * One database file (WAL, synchronous=FULL, foreign keys on, busy timeout).
 * The store never parses JSON: metadata it keeps for the service layer
 * (dataset columns, task definitions, job specs, results) is opaque text.
 * Every statement is prepared with bound parameters.
 *
 * Threads: a store handle may be used from any thread; calls are serialised
 * by a mutex inside the handle (one connection). Every write that returns
 * STORE_OK has been committed durably (the 201 may be sent after it).
 *
 * Ownership: structs filled by the store own their strings (malloc'd);
 * release them with the matching *_clear / *_list_free. Out-parameters are
 * written only on success.
 *
 * Timestamps are RFC 3339 UTC text with milliseconds, e.g.
 * "2026-12-03T19:31:21.123Z"; NULL when not set.
 */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>

enum {
    STORE_OK = 0,
    STORE_ENOTFOUND = -1, /* no such row */
    STORE_EEXISTS = -2,   /* a unique name is taken */
    STORE_EINUSE = -3,    /* referenced by another row (task uses dataset, ...) */
    STORE_EIO = -4,       /* SQLite failed (disk, corruption, ...) */
    STORE_ENOMEM = -5,
    STORE_EVERSION = -6,  /* the database is newer than this build */
    STORE_EINVAL = -7,    /* bad argument */
};

const char *store_strerror(int code);

typedef struct store store;

/* Opens (creating if missing) the database at path and migrates it to the
 * current schema in one transaction. errbuf (may be NULL) receives a message
 * on failure. */
int store_open(const char *path, store **out, char *errbuf, size_t errlen);
void store_close(store *s); /* NULL is fine */

/* ---- datasets ---------------------------------------------------------- */

typedef struct {
    int64_t id;
    char *name;
    int64_t rows;
    int cols;
    char *meta;        /* opaque text owned by the service layer (JSON) */
    int64_t bytes;     /* bytes of row data stored */
    char *created_at;
} store_dataset;

void store_dataset_clear(store_dataset *d);
void store_dataset_list_free(store_dataset *d, size_t n);

/* Stores a whole dataset: data is row-major [rows][cols] float32, written as
 * chunks of STORE_CHUNK_ROWS rows, all in one transaction. */
#define STORE_CHUNK_ROWS 4096
int store_dataset_create(store *s, const char *name, const char *meta,
                         int64_t rows, int cols, const float *data, int64_t *id_out);
int store_dataset_get(store *s, int64_t id, store_dataset *out);
/* By name, or by decimal id when key is all digits. */
int store_dataset_find(store *s, const char *key, store_dataset *out);
int store_dataset_list(store *s, store_dataset **out, size_t *n);
/* Rows [offset, offset+limit) clipped to the dataset into out (caller holds
 * limit*cols floats); *n_out = rows written. */
int store_dataset_read(store *s, int64_t id, int64_t offset, int64_t limit,
                       float *out, int64_t *n_out);
/* STORE_EINUSE when a task refers to it (and so when a queued or running
 * job does: jobs use datasets through their tasks). */
int store_dataset_delete(store *s, int64_t id);
/* How many tasks refer to the dataset, and how many queued or running jobs
 * use it through their tasks (for a precise "in use" message). */
int store_dataset_usage(store *s, int64_t id, int64_t *tasks, int64_t *active_jobs);

/* ---- streaming uploads (store/upload.c) --------------------------------
 *
 * A dataset written while it is parsed, one chunk at a time, in bounded
 * memory: begin (reserves the name: STORE_EEXISTS at once if taken), append
 * chunks of STORE_CHUNK_ROWS rows (only the last may be shorter), optionally
 * rewrite chunks already appended (values that could only be known at the
 * end), then commit. Until commit the dataset is invisible to every other
 * store call; commit is durable (synchronous=FULL) before it returns.
 * store_upload_close without a successful commit removes everything the
 * upload stored (and a crash's leftovers are removed by the next
 * store_open). Each upload has its own SQLite connection: store calls of
 * other threads are not blocked while it runs, and every chunk is its own
 * short write transaction. Thread-safety: one thread at a time per upload.
 * Errors of append/rewrite/commit are sticky: the upload is then only good
 * for close. */
typedef struct store_upload store_upload;
int store_upload_begin(store *s, const char *name, store_upload **out);
/* rows: row-major [n_rows][cols] float32, copied (caller keeps it). */
int store_upload_append(store_upload *u, const float *rows, int64_t n_rows, int cols);
/* Called by store_upload_rewrite with chunk seq's values (rows [n_rows][cols],
 * the first being row seq*STORE_CHUNK_ROWS), to change in place; non-zero
 * stops the rewrite (STORE_EINVAL). */
typedef int (*store_chunk_fn)(void *ctx, int64_t seq, float *rows, int64_t n_rows, int cols);
int store_upload_rewrite(store_upload *u, int64_t seq, store_chunk_fn fn, void *ctx);
/* Rows appended so far. */
int64_t store_upload_rows(const store_upload *u);
/* Makes the dataset visible with its metadata, durably; *id_out = its id.
 * cols must match the chunks' (it gives the width of a dataset of 0 rows). */
int store_upload_commit(store_upload *u, int cols, const char *meta, int64_t *id_out);
/* Ends the upload: discards it unless committed. NULL is fine. */
void store_upload_close(store_upload *u);

/* ---- tasks -------------------------------------------------------------- */

typedef struct {
    int64_t id;
    char *name;
    int64_t dataset_id; /* 0 for generator tasks */
    char *def;          /* opaque (JSON) definition */
    char *created_at;
} store_task;

void store_task_clear(store_task *t);
void store_task_list_free(store_task *t, size_t n);
int store_task_create(store *s, const char *name, int64_t dataset_id, const char *def,
                      int64_t *id_out);
int store_task_get(store *s, int64_t id, store_task *out);
int store_task_find(store *s, const char *key, store_task *out);
int store_task_list(store *s, store_task **out, size_t *n);
/* STORE_EINUSE when a queued or running job uses it (jobs record their task
 * ids through store_job_create's task_ids). */
int store_task_delete(store *s, int64_t id);

/* ---- jobs --------------------------------------------------------------- */

typedef struct {
    int64_t id;
    char *name;
    char *state;          /* queued | running | succeeded | failed | cancelled */
    char *spec;           /* opaque (JSON) */
    int priority;
    int64_t step, steps;
    double progress;      /* 0..1 */
    char *created_at, *started_at, *finished_at;
    char *error_code, *error_message; /* NULL unless failed */
    char *results;        /* opaque (JSON) or NULL */
} store_job;

void store_job_clear(store_job *j);
void store_job_list_free(store_job *j, size_t n);

/* A new job in state queued. task_ids (n_tasks) are recorded so tasks in use
 * cannot be deleted. */
int store_job_create(store *s, const char *name, const char *spec, int priority,
                     int64_t steps, const int64_t *task_ids, size_t n_tasks, int64_t *id_out);
int store_job_get(store *s, int64_t id, store_job *out);
/* state NULL = all; newest first. */
int store_job_list(store *s, const char *state, store_job **out, size_t *n);
/* Sets state; "running" sets started_at (if not set), a terminal state sets
 * finished_at; err_code/err_msg are stored (NULL clears them). */
int store_job_set_state(store *s, int64_t id, const char *state,
                        const char *err_code, const char *err_msg);
int store_job_set_progress(store *s, int64_t id, int64_t step, int64_t steps, double progress);
int store_job_set_results(store *s, int64_t id, const char *results);
/* The queued job to run next: highest priority, then oldest. STORE_ENOTFOUND
 * when none. */
int store_job_next_queued(store *s, int64_t *id_out);
/* Marks every running job queued again (after a crash); *n_out = how many. */
int store_job_requeue_running(store *s, int *n_out);
/* Deletes the job with its metrics and checkpoint records. */
int store_job_delete(store *s, int64_t id);

/* ---- metrics ------------------------------------------------------------ */

typedef struct {
    int64_t step;
    char *task;   /* task name or "" for job-wide */
    char *split;  /* "train" | "test" | ... */
    char *name;   /* "loss", "accuracy", ... */
    double value; /* may be NaN/Inf: stored as NULL, read back as NaN */
} store_metric;

void store_metric_list_free(store_metric *m, size_t n);
/* Appends n metrics in one transaction (the strings are copied). */
int store_metric_add(store *s, int64_t job_id, const store_metric *m, size_t n);
/* Metrics with step >= since, ordered by step then insertion. */
int store_metric_list(store *s, int64_t job_id, int64_t since, store_metric **out, size_t *n);
/* Deletes metrics with step > step (used when a job resumes from a checkpoint). */
int store_metric_truncate(store *s, int64_t job_id, int64_t step);
/* Deletes the metrics of split with step >= step (a job resumed at its last
 * step evaluates on the test split again: the earlier figures go). */
int store_metric_truncate_split(store *s, int64_t job_id, int64_t step, const char *split);

/* ---- checkpoints -------------------------------------------------------- */

typedef struct {
    int64_t id;
    int64_t job_id;
    int64_t step;
    char *path;      /* absolute file path, written by the service layer */
    int64_t bytes;
    char *created_at;
} store_checkpoint;

void store_checkpoint_clear(store_checkpoint *c);
void store_checkpoint_list_free(store_checkpoint *c, size_t n);
int store_checkpoint_add(store *s, int64_t job_id, int64_t step, const char *path,
                         int64_t bytes, int64_t *id_out);
/* Oldest first. */
int store_checkpoint_list(store *s, int64_t job_id, store_checkpoint **out, size_t *n);
int store_checkpoint_latest(store *s, int64_t job_id, store_checkpoint *out);
int store_checkpoint_delete(store *s, int64_t id);

/* ---- imported models (imports.c) ---------------------------------------- */

typedef struct {
    int64_t id;
    char *name;      /* NULL when imported without a name */
    char *path;      /* absolute file path, written by the service layer */
    int64_t bytes;
    char *meta;      /* opaque text from the service layer (JSON) */
    char *created_at;
} store_import;

void store_import_clear(store_import *m);
void store_import_list_free(store_import *m, size_t n);
/* STORE_EEXISTS when the name is taken; all-digit names are STORE_EINVAL. */
int store_import_add(store *s, const char *name, const char *path, int64_t bytes,
                     const char *meta, int64_t *id_out);
/* key: an id in decimal or a name. STORE_ENOTFOUND. */
int store_import_find(store *s, const char *key, store_import *out);
/* Oldest first. */
int store_import_list(store *s, store_import **out, size_t *n);

/* ---- idempotency keys (idempotency.c) ----------------------------------- */

typedef struct {
    char *fingerprint;   /* what request the key was first used for */
    char *owner;         /* the process that reserved it */
    int status;          /* 0 = reserved, not finished; else the reply's HTTP status */
    char *content_type;  /* of the reply (NULL while reserved) */
    char *body;          /* the reply, NUL-terminated (NULL while reserved) */
    size_t body_len;
} store_idem;

void store_idem_clear(store_idem *r);
/* Reserves key (status 0) and sets *reserved = 1; or, when the key is
 * already recorded, fills *existing and sets *reserved = 0. Records older
 * than a day are removed first. */
int store_idem_begin(store *s, const char *key, const char *fingerprint, const char *owner,
                     store_idem *existing, int *reserved);
/* Records the reply of a reserved key. */
int store_idem_finish(store *s, const char *key, int status, const char *content_type,
                      const char *body, size_t len);
/* Forgets a reservation (status 0 only). */
int store_idem_abort(store *s, const char *key);

/* ---- change counter (version.c) ----------------------------------------- */
/* Moves whenever a write is committed; equal values mean nothing was
 * written in between. Lock-free, thread-safe. */
int64_t store_data_version(store *s);

#endif
