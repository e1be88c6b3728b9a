/*
 * daemon/svc_meta.h — meta-learning jobs (maml, fomaml, reptile, anil,
 * metasgd, protonet): their spec keys, the checks at submission, and the
 * runner. svc_spec.c calls the parser, svc_job.c the submission check,
 * svc_runner.c hands meta algorithms to svc__run_meta_job.
 */
#ifndef SVC_META_H
#define SVC_META_H

#include "daemon/svc_internal.h"

#define SVC__META_MAX_EVAL_STEPS 16
#define SVC__META_MAX_TEST_CLASSES 128

typedef struct {
    int ways, shots, queries;   /* episodes: 5, 1, 15 (generator: points per support and
                                   query set, 10 and 10) */
    int has_ways, has_shots, has_queries; /* given in the spec (else defaults) */
    int n_test_classes;         /* episodes.test_classes, as label texts */
    char test_classes[SVC__META_MAX_TEST_CLASSES][65];
    double test_fraction;       /* episodes.test_fraction (0 = not given) */
    char test_task[65];         /* episodes.test_task: meta-test on this task's classes
                                   ("" = a class split of the job's task) */
    double inner_lr;            /* inner.lr */
    int inner_steps;            /* inner.steps */
    int meta_batch;
    long steps;                 /* meta-iterations */
    int eval_episodes;
    int n_eval_steps;
    int eval_steps[SVC__META_MAX_EVAL_STEPS];
    uint64_t eval_seed;
} svc__meta_spec;

/* 1 for the algorithms this file runs. */
int svc__is_meta(svc__algorithm a);

/* Validates the meta-learning keys of a spec (episodes, inner, meta_batch,
 * steps, eval) strictly, with defaults; for other algorithms, refuses them.
 * sp is the rest of the spec, already parsed. e->field is the key path. */
int svc__meta_spec_parse(json_t *spec, const svc__spec *sp, svc__meta_spec *out, svc_error *e);

/* At submission: the job's task can serve the algorithm (one task; a
 * generator or a classification task; test classes exist; enough classes
 * with shots+queries rows remain on both sides of the class split, or in the
 * test task, which must read the same inputs). */
int svc__meta_submit_check(svc *s, const svc__spec *sp, json_t *spec, svc_error *e);

/* Runs a meta-learning job to an end state (like svc__run_job). */
void svc__run_meta_job(svc *s, int64_t job_id, svc__running *slot);

#endif
