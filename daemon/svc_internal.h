/*
 * daemon/svc_internal.h — what the svc_*.c files share and nothing else sees.
 *
 * Lock order: svc.mu is the only svc lock; the store has its own internal
 * mutex, taken inside store calls. Never call into the store while holding
 * svc.mu for longer than one short store call (the claim of a job).
 */
#ifndef SVC_INTERNAL_H
#define SVC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "daemon/svc.h"
#include "engine/mtl.h"
#include "store/store.h"

#define SVC__MAX_RUNNING 64

/* One running job, visible to cancel and shutdown. */
typedef struct {
    int64_t job_id;           /* 0 = free slot */
    atomic_int cancel;        /* set by svc_job_cancel */
    /* Written by the runner, read for eta_seconds (svc_job.c): */
    atomic_llong step;        /* steps done */
    atomic_llong total;       /* steps of the whole job (0 until known) */
    atomic_llong step0;       /* step this run started (or resumed) from */
    double t0;                /* CLOCK_MONOTONIC seconds when step0 was set (under svc.mu) */
} svc__running;

struct svc {
    store *db;
    char *data_dir;
    char *ckpt_dir;
    int n_workers;
    int worker_nice;
    int max_queued;
    int64_t max_model_bytes;
    pthread_t *threads;
    int started;

    pthread_mutex_t mu;       /* guards: wake, running[] slots (job_id), stopping */
    pthread_cond_t wake;      /* a job was queued, or stop */
    int pending;              /* wake-ups not consumed yet */
    atomic_int stopping;      /* read by runners between steps */
    svc__running running[SVC__MAX_RUNNING];
    struct svc__dsentry *ds_cache; /* datasets in memory, shared by jobs (svc_jobdata.c;
                                      guarded by the mutex there) */
    pthread_cond_t slot_freed; /* a running[] slot was released (cancel waits on it) */
    atomic_ulong changes;      /* bumped on every job state change (svc_changes) */
    /* Created on first use (compare-and-swap), freed by svc__extras_free: */
    struct svc__events *_Atomic events;  /* per-job event rings (svc_events.c) */
    struct svc__pcache *_Atomic pcache;  /* loaded models for predict (svc_predict.c) */
    struct svc__vcache *_Atomic vcache;  /* job views for GET /v1/jobs/{id} (svc_viewcache.c) */
};

/* ---- events, prediction cache (svc_events.c, svc_predict.c) ------------- */
/* Publishing never waits for readers: a short lock, a copy into the job's
 * ring, a notify per watcher. Called by the runner. */
void svc__events_progress(svc *s, int64_t job_id, int64_t step, int64_t steps, int batch);
void svc__events_metrics(svc *s, int64_t job_id, const store_metric *m, size_t n);
void svc__events_state(svc *s, int64_t job_id, const char *state, const char *err_code,
                       const char *err_msg);
/* Recent training rate of a job from its progress events (0 if unknown). */
void svc__events_rate(svc *s, int64_t job_id, double *steps_per_s, double *samples_per_s);
void svc__events_free(svc *s);
void svc__pcache_free(svc *s);
void svc__vcache_free(svc *s);
/* Frees both (svc_close). */
void svc__extras_free(svc *s);

/* Records a job state change (for sd_notify STATUS). */
void svc__changed(svc *s);
/* CLOCK_MONOTONIC in seconds. */
double svc__now(void);

/* Signals the workers that a job was queued. */
void svc__wake(svc *s);

/* Fills e (code, field, printf-style message) and returns code. */
int svc__fail(svc_error *e, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps a store error to an svc error with a message naming what. */
int svc__store_fail(svc_error *e, int rc, const char *what, const char *key);
/* The job a URL key names (a positive id); SVC_ENOTFOUND otherwise. The
 * caller clears *out. */
int svc__find_job(svc *s, const char *key, store_job *out, svc_error *e);

/* Names: 1..64 chars of [A-Za-z0-9_.-], starting with a letter (so a name is
 * never mistaken for a numeric id). */
int svc__valid_name(const char *name);

/* The live figures of job id while a worker runs it (svc_job.c): sets
 * "step", "steps" and "progress" of o from its running[] slot and returns 1
 * with *eta (seconds) when a rate is known yet; 0 otherwise (o untouched when
 * the job holds no slot). Takes s->mu. */
int svc__live_figures(svc *s, int64_t id, json_t *o, double *eta);

/* JSON views of stored rows (new references). */
json_t *svc__dataset_json(const store_dataset *d, int with_stats);
json_t *svc__task_json(const store_task *t);
json_t *svc__job_json(const store_job *j);

/* ---- job specs (svc_spec.c) -------------------------------------------- */

typedef enum {
    SVC_ALG_MULTITASK = 0,
    SVC_ALG_MAML, SVC_ALG_FOMAML, SVC_ALG_REPTILE, SVC_ALG_ANIL, SVC_ALG_METASGD,
    SVC_ALG_PROTONET, SVC_ALG_FINETUNE,
} svc__algorithm;

typedef struct {
    char name[65];
    svc__algorithm algorithm;
    int n_tasks;
    struct {
        char task[65];
        double weight;
        int loss;               /* "loss": 0 absent, 1 cross_entropy, 2 mse, 3 huber */
        double huber_delta;     /* 0 = 1.0 */
        double label_smoothing; /* classification tasks */
    } tasks[ENG_MAX_TASKS];
    int n_trunk;
    int trunk[ENG_MAX_LAYERS];
    int n_towers;
    int towers[ENG_MAX_LAYERS];
    eng_act activation;
    double lr, weight_decay, beta1, beta2, eps;
    int epochs;
    int batch_size;
    uint64_t seed;
    double test_fraction;
    double validation_fraction; /* of the rows, carved from the training part (0 = none) */
    int priority;
    int checkpoint_every;
    int keep_checkpoints;
    char from_job[65];        /* from_checkpoint: the source job's id ("" = none) */
    char from_import[65];     /* from_checkpoint {"checkpoint": id or name}: an imported model */
    int freeze_trunk;         /* "freeze": "trunk" (finetune): trunk parameters stay fixed */
    /* engine options (svc_spec.c; docs/guide.md has the formulas) */
    double dropout, leaky_slope;
    int layer_norm;
    int optimizer;            /* eng_opt_kind (engine/optim.h), default adam */
    double momentum, clip_norm;
    int sched;                /* eng_sched_kind */
    long sched_step_size, sched_warmup;
    double sched_gamma, sched_min_lr;
    char es_metric[96];       /* early_stopping.metric ("" = no early stopping) */
    int es_patience;          /* epochs without improvement before stopping */
    int es_task;              /* task index of the metric, -1 = the weighted loss */
    int es_maximise;          /* 1 for accuracy, macro_f1, r2 */
    /* task weighting (svc_spec.c; engine/weighting.h has the formulas) */
    int weighting;            /* eng_wt_kind, default static */
    double wt_alpha;          /* gradnorm's alpha (1.5) */
    double wt_temperature;    /* dwa's temperature (2.0) */
    double wt_lr;             /* uncertainty/gradnorm parameters' lr (0: the optimizer's) */
    int sampling;             /* tasks on several datasets: 0 round_robin, 1 proportional */
    int baselines;            /* 1: also train each task alone and report delta_mtl */
    /* model.mmoe (svc_spec.c; engine/moe.c has the formulas): experts 0 = none */
    int moe_experts, moe_task_experts, moe_levels;
    int moe_n_units;
    int moe_units[ENG_MAX_LAYERS];
    double moe_temperature;
} svc__spec;

/* Validates a job spec strictly (unknown keys, types, ranges) and fills *out
 * with defaults for what is absent. e->field names the key path at fault. */
int svc__spec_parse(json_t *spec, svc__spec *out, svc_error *e);
/* early_stopping.metric "TASK.METRIC" against the kind ("classification" or
 * "regression") of its task as defined: a metric that task never records
 * is SVC_EINVAL naming the ones it does. SVC_OK when it fits, or when the
 * metric names no task. */
int svc__spec_es_fits_kind(const svc__spec *sp, const char *kind, svc_error *e);
const char *svc__algorithm_name(svc__algorithm a);
/* The algorithm a name (as in a spec) names; 0 if none. */
int svc__algorithm_from_name(const char *name, svc__algorithm *out);
/* The architecture a spec describes (trunk, activation, dropout, layer
 * norm, towers, mixture) into *ms, leaving n_in and the tasks' kinds and
 * widths to the caller: the runner and predict build the same model. */
void svc__model_arch(const svc__spec *sp, eng_mtl_spec *ms);
/* "static", "uncertainty", ... for an eng_wt_kind. */
const char *svc__weighting_name(int kind);

/* ---- memory (svc_mem.c) -------------------------------------------------- */
/* The process's resident set now and its peak, in bytes (0 if unknown). */
long svc__rss_now(void);
long svc__rss_peak(void);
/* {"rss_start_bytes", "rss_end_bytes", "peak_rss_bytes"} for a job's results
 * (new reference). */
json_t *svc__memory_json(long rss_start);

/* ---- running jobs (svc_runner.c) ---------------------------------------- */

/* Runs job id to an end state (or back to queued when stopping). Never
 * returns an error: failures are recorded on the job. */
void svc__run_job(svc *s, int64_t job_id, svc__running *slot);

/* ---- checkpoints (svc_checkpoint.c) ------------------------------------- */

typedef struct {
    const char *name;   /* tensor name */
    int rank;
    int shape[2];
    const float *data;  /* count elements */
    size_t count;
} svc__tensor;

/* Writes a safetensors file atomically (tmp, fsync, rename, fsync dir).
 * meta: string→string object for __metadata__ (borrowed). */
int svc__safetensors_write(const char *path, const svc__tensor *t, size_t n, json_t *meta,
                           int64_t *bytes_out, char *err, size_t errlen);

/* A parsed safetensors file: header (new ref) and the whole file in memory. */
typedef struct {
    json_t *header;
    unsigned char *bytes;
    size_t size;
    size_t data_start;
} svc__safetensors;

int svc__safetensors_read(const char *path, svc__safetensors *out, char *err, size_t errlen);
/* Reads only the header's "__metadata__" object (new ref; NULL if the file
 * is unreadable or has none): cheap, for listings. */
json_t *svc__safetensors_metadata(const char *path);
/* Copies tensor name (F32, count elements) into dst; -1 if absent or mismatched. */
int svc__safetensors_get(const svc__safetensors *st, const char *name, float *dst, size_t count);
void svc__safetensors_clear(svc__safetensors *st);

/* A first layer over other inputs: copies tensor sname [out][src inputs]
 * column by column into w [out][in] for every input of dst_names that
 * src_names also has (matched by name); the rest of w is left alone.
 * Returns the number of columns copied (0 if the shapes or names do not
 * fit). svc_checkpoint.c. */
int svc__map_columns(const svc__safetensors *st, const char *sname, json_t *src_names,
                     json_t *dst_names, int out, int in, float *w);

/* The file of imported model key (id or name): SVC_EINVAL naming
 * from_checkpoint.checkpoint when there is none (svc_import.c). */
int svc__import_path(svc *s, const char *key, char *path, size_t pathlen, svc_error *e);

#endif
