/*
 * daemon/svc_baseline.h — single-task baselines for "baselines": true.
 *
 * A multi-task job is worth its complexity only if it beats training each
 * task alone. With "baselines": true, after the multi-task training the
 * runner trains every task again, alone, with the same budget: the same
 * model (trunk, towers, the task's head and loss options), the same seed
 * (so the same initial trunk), the same split, batches in the same order,
 * the same optimiser, schedule, epochs and dropout masks. Only the other
 * tasks' losses are gone. Nothing of it is checkpointed: a job stopped
 * during its baselines resumes from its last (final) checkpoint and trains
 * them again, which gives the same numbers because everything is seeded.
 */
#ifndef SVC_BASELINE_H
#define SVC_BASELINE_H

#include "daemon/svc_jobdata.h"
#include "engine/optim.h"

/* The training rows of epoch `epoch` in their order: a pure function of
 * (seed, epoch). perm receives n_train entries. */
void svc__epoch_perm(uint64_t seed, long epoch, const uint32_t *train, size_t n_train,
                     uint32_t *perm);

/* Trains task t of jd alone for `steps` steps of sp->batch_size rows
 * (epoch after epoch over the training rows). full is the multi-task
 * model's spec (task t's head is taken from it). *out gets the trained
 * one-task model (new; eng_mtl_free). Returns SVC_OK, SVC_ECONFLICT when
 * cancel or stopping is set (checked between steps; either may be NULL),
 * SVC_ENOMEM, or SVC_EIO when training diverged. */
int svc__train_alone(const svc__spec *sp, const svc__jobdata *jd, int t,
                     const eng_mtl_spec *full, const eng_opt_cfg *opt, const eng_schedule *sched,
                     int64_t steps, atomic_int *cancel, atomic_int *stopping, eng_mtl **out);

/* The sign-aware relative improvement of a multi-task figure m over its
 * single-task baseline b, in percent: 100·(m − b)/|b| when higher is better,
 * 100·(b − m)/|b| when lower is better; NAN when b is 0 or either is not
 * finite. */
double svc__relative_gain(double m, double b, int lower_is_better);

#endif
