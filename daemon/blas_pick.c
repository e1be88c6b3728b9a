/* daemon/blas_pick.c — see blas_pick.h. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/blas_pick.h"
#include "engine/blas_core.h"

/* Set for the re-executed process only: the kernel set OpenBLAS chose
 * before mtld replaced it. Read once and removed. */
#define PICKED_ENV "MTLD_BLAS_REPLACED"

static char replaced[64];

void mtld_blas_pick(char **argv)
{
    const char *was = getenv(PICKED_ENV);
    if (was) {
        strncpy(replaced, was, sizeof replaced - 1);
        unsetenv(PICKED_ENV);
        return;
    }
    if (getenv("OPENBLAS_CORETYPE"))
        return;
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload"))
        return;
    const char *core = eng_blas_core();
    const char *better = eng_blas_core_advice(core, eng_cpu_probe());
    if (!better)
        return;
    /* The binary's own path, not /proc/self/exe: the process is named after
     * the file it runs (ps, pidof, systemctl status would say "exe"). A
     * binary replaced on disk since it started (an upgrade) is not run. */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || (size_t)n >= sizeof self - 1)
        return;
    self[n] = '\0';
    if (strstr(self, " (deleted)"))
        return;
    if (setenv("OPENBLAS_CORETYPE", better, 1) != 0 || setenv(PICKED_ENV, core, 1) != 0)
        return;
    execv(self, argv);
    /* Not re-executed (no /proc, say): run on the kernels we have. */
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(PICKED_ENV);
}

const char *mtld_blas_replaced(void)
{
    return replaced;
}
