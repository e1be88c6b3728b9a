/*
 * daemon/blas_pick.h — run sgemm on the best OpenBLAS kernels this CPU has.
 *
 * When the engine advises a better OpenBLAS kernel set than the one the
 * library chose at load (engine/blas_core.h: OpenBLAS 0.3.21 falls back to
 * its SSE3 kernels on CPU models newer than itself), the process re-executes
 * itself once, first thing in main(), with OPENBLAS_CORETYPE set: the only
 * way to change the choice, which OpenBLAS makes before main() runs. The pid,
 * the open file descriptors (a socket from systemd among them) and the
 * environment carry over; nothing has been started yet.
 *
 * An OPENBLAS_CORETYPE already in the environment is the user's choice and
 * is kept, and so is whatever runs under valgrind (whose emulated CPU is not
 * the machine's, and which a re-executed process would escape).
 */
#ifndef MTLD_BLAS_PICK_H
#define MTLD_BLAS_PICK_H

/* Re-executes with a better kernel set, or returns. */
void mtld_blas_pick(char **argv);

/* For the start log line: the kernel set OpenBLAS had chosen itself when
 * mtld replaced it ("" if it did not; the one in use is eng_blas_core()). */
const char *mtld_blas_replaced(void);

#endif
