/*
 * daemon/svc_mem.c — the daemon's resident memory, for job results: the
 * current resident set (/proc/self/statm) and its high-water mark (VmHWM in
 * /proc/self/status, else getrusage's ru_maxrss). Both are the process's:
 * with one worker they are one job's, with several they bound it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "daemon/svc_internal.h"

long svc__rss_now(void)
{
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * sysconf(_SC_PAGESIZE);
}

long svc__rss_peak(void)
{
    long kb = 0;
    char line[128];
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "VmHWM:", 6) == 0)
                kb = strtol(line + 6, NULL, 10);
        fclose(f);
    }
    if (kb == 0) {
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0)
            kb = ru.ru_maxrss;
    }
    return kb * 1024L;
}

json_t *svc__memory_json(long rss_start)
{
    /* the kernel updates the high-water mark lazily: never report it below
     * what was just measured */
    long end = svc__rss_now(), peak = svc__rss_peak();
    if (peak < end)
        peak = end;
    if (peak < rss_start)
        peak = rss_start;
    return json_pack("{s:I,s:I,s:I}", "rss_start_bytes", (json_int_t)rss_start,
                     "rss_end_bytes", (json_int_t)end, "peak_rss_bytes", (json_int_t)peak);
}
