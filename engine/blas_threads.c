/* engine/blas_threads.c — see blas_threads.h. */
#include <cblas.h>

#include "engine/blas_threads.h"

void eng_blas_set_threads(int n)
{
    openblas_set_num_threads(n > 0 ? n : 1);
}
