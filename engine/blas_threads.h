/*
 * engine/blas_threads.h — how many threads BLAS may use.
 *
 * mtld parallelises across jobs (one worker thread per job), so each job's
 * BLAS calls run single-threaded: two workers each driving a multi-threaded
 * OpenBLAS would oversubscribe the cores and thrash. The daemon calls this
 * once at start. It sets OpenBLAS's process-wide setting, the one piece of
 * global state the engine touches, and only on request.
 */
#ifndef ENG_BLAS_THREADS_H
#define ENG_BLAS_THREADS_H

void eng_blas_set_threads(int n);

#endif
