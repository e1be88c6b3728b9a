/*
 * tests/unit/api/bench_csv.c — throughput of the CSV parser (not a test).
 *
 *   bench_csv [ROWS] [file.csv]
 *
 * Generates an in-memory numeric CSV of ROWS rows (default 1000000) x 16
 * columns (~100 MB; values like "123.45", "-4217", "3.14e-2") and feeds it
 * in 64 KiB chunks to (1) the bare reader with a counting callback and (2)
 * the table builder; prints MB/s of each (best of 3). With a file, also times
 * that file. Times are CPU time of the process (best of 3, or of 50 for a
 * file under 10 MB).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/csv_reader.h"
#include "api/csv_table.h"

#define CHUNK 65536

/* CPU time of this process: the machine may be shared. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int count_fn(void *ctx, char *const *fields, const size_t *lens, size_t n, long line,
                    csv_error *err)
{
    size_t *count = ctx;
    (void)fields;
    (void)lens;
    (void)line;
    (void)err;
    *count += n;
    return 0;
}

static double time_reader(const char *buf, size_t len, size_t *fields)
{
    csv_reader *r = csv_reader_new(',', 65536, 1000, count_fn, fields);
    csv_error err;
    size_t off;
    double t0 = now();

    *fields = 0;
    for (off = 0; off < len; off += CHUNK)
        if (csv_reader_feed(r, buf + off, len - off < CHUNK ? len - off : CHUNK, &err)) {
            fprintf(stderr, "reader: %s\n", err.message);
            exit(1);
        }
    if (csv_reader_finish(r, &err)) {
        fprintf(stderr, "reader: %s\n", err.message);
        exit(1);
    }
    t0 = now() - t0;
    csv_reader_free(r);
    return t0;
}

static double time_table(const char *buf, size_t len, size_t *rows, size_t *cols)
{
    csv_options o = csv_options_default();
    csv_table_builder *b = csv_table_builder_new(&o);
    csv_table *t;
    csv_error err;
    size_t off;
    double t0 = now();

    for (off = 0; off < len; off += CHUNK)
        if (csv_table_builder_feed(b, buf + off, len - off < CHUNK ? len - off : CHUNK, &err)) {
            fprintf(stderr, "table: %s (line %ld)\n", err.message, err.line);
            exit(1);
        }
    if (csv_table_builder_finish(b, &t, &err)) {
        fprintf(stderr, "table: %s\n", err.message);
        exit(1);
    }
    t0 = now() - t0;
    *rows = t->n_rows;
    *cols = t->n_cols;
    csv_table_free(t);
    csv_table_builder_free(b);
    return t0;
}

static void run(const char *what, const char *buf, size_t len, int reader_too)
{
    double best_r = 1e30, best_t = 1e30, mb = (double)len / 1e6;
    size_t fields = 0, rows = 0, cols = 0;
    int k, reps = len < 10000000 ? 50 : 3;

    for (k = 0; k < reps; k++) {
        double s;
        if (reader_too && (s = time_reader(buf, len, &fields)) < best_r)
            best_r = s;
        if ((s = time_table(buf, len, &rows, &cols)) < best_t)
            best_t = s;
    }
    printf("%s: %.1f MB, %zu rows x %zu cols\n", what, mb, rows, cols);
    if (reader_too)
        printf("  reader only : %7.1f MB/s (%.3f s, %zu fields)\n", mb / best_r, best_r, fields);
    printf("  table build : %7.1f MB/s (%.3f s)\n", mb / best_t, best_t);
}

int main(int argc, char **argv)
{
    size_t rows = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000, r;
    size_t cap = rows * 16 * 12 + 4096, len = 0;
    char *buf = malloc(cap);
    unsigned long long s = 88172645463325252ull;
    int c, k;

    if (!buf)
        return 1;
    for (c = 0; c < 16; c++)
        len += (size_t)snprintf(buf + len, cap - len, c ? ",f%d" : "f%d", c);
    buf[len++] = '\n';
    for (r = 0; r < rows; r++) {
        for (c = 0; c < 16; c++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            if (c)
                buf[len++] = ',';
            switch (c % 4) {
            case 0:
                k = snprintf(buf + len, cap - len, "%llu.%02llu", s % 1000, (s >> 20) % 100);
                break;
            case 1:
                k = snprintf(buf + len, cap - len, "%lld", (long long)(s % 20000) - 10000);
                break;
            case 2:
                k = snprintf(buf + len, cap - len, "%llu.%llue-%llu", s % 10, (s >> 8) % 100,
                             (s >> 30) % 5);
                break;
            default:
                k = snprintf(buf + len, cap - len, "-%llu.%03llu", s % 10, (s >> 12) % 1000);
            }
            len += (size_t)k;
        }
        buf[len++] = '\n';
    }
    if (rows)
        run("generated numeric CSV", buf, len, 1);
    free(buf);

    if (argc > 2) {
        FILE *f = fopen(argv[2], "rb");
        long n;
        if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
            return 1;
        buf = malloc((size_t)n + 1);
        if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
            return 1;
        fclose(f);
        run(argv[2], buf, (size_t)n, 1);
        free(buf);
    }
    return 0;
}
