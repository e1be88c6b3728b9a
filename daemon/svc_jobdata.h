/*
 * daemon/svc_jobdata.h — the training data of one job, assembled from its
 * tasks and their dataset: the input matrix (features minus every target of
 * the job, categories one-hot), per-task targets, the split, and the
 * statistics needed to map inputs and outputs (standardisation, labels).
 */
#ifndef SVC_JOBDATA_H
#define SVC_JOBDATA_H

#include "daemon/svc_internal.h"

typedef struct {
    char name[65];
    int classification;     /* else regression */
    int n_classes;          /* classification */
    char **labels;          /* [n_classes] original label texts */
    float *y;               /* [n_rows] class index or standardised target */
    double y_mean, y_std;   /* regression: original = y * y_std + y_mean */
    float *class_weight;    /* [n_classes] or NULL */
    double lambda;          /* static task weight */
    size_t n_missing;       /* rows whose target is missing (y NaN: masked out of the loss) */
    int group;              /* index of the task's dataset among the job's (0 = the first) */
} svc__jd_task;

typedef struct {
    size_t n_rows;
    int n_in;
    float *x;               /* [n_rows][n_in], standardised with training statistics */
    json_t *input_names;    /* array of strings, one per input ("col" or "col=level") */
    double *x_mean, *x_std; /* [n_in] */
    int n_tasks;
    svc__jd_task task[ENG_MAX_TASKS];
    /* Disjoint row sets: train fits the weights, validation (may be empty:
     * validation_fraction 0) picks the epoch (best checkpoint, early
     * stopping), test is only for the figures reported at the end. */
    uint32_t *train, *validation, *test;
    size_t n_train, n_validation, n_test;
    /* The job's datasets ("groups", in the order of their first task): their
     * rows are stacked, group k's are [g_row0[k], g_row0[k] + g_rows[k]) and
     * its training rows train[g_train0[k] .. + g_ntrain[k]). A task's target
     * is missing (NaN) on the other groups' rows. */
    int n_groups;
    size_t g_row0[ENG_MAX_TASKS], g_rows[ENG_MAX_TASKS];
    size_t g_train0[ENG_MAX_TASKS], g_ntrain[ENG_MAX_TASKS];
    struct svc__dsentry *ds[ENG_MAX_TASKS]; /* each group's rows, shared (held until clear) */
} svc__jobdata;

/* Builds the data for spec (already validated). Errors name what is wrong.
 * The dataset's rows come from a cache shared by all jobs (loaded from the
 * store once, freed when the last job using them clears its data). */
int svc__jobdata_load(svc *s, const svc__spec *sp, svc__jobdata *jd, svc_error *e);
void svc__jobdata_clear(svc__jobdata *jd);
/* Datasets held in memory by the cache now (for tests and metrics). */
size_t svc__dataset_cache_count(svc *s);

#endif
