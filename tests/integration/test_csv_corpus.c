/*
 * tests/integration/test_csv_corpus.c — the CSV corpus (tests/data/csv, made
 * by make_corpus.py, each file's expected outcome in MANIFEST) against a
 * real mtld.
 *
 * Every file is uploaded twice: once with a Content-Length, once with
 * Transfer-Encoding: chunked in pieces of 7 bytes (so quotes, CRLFs, UTF-8
 * sequences and gzip headers are cut everywhere); both must give the
 * MANIFEST's outcome:
 *  - 201: row and column counts, types, names, levels, dropped / missing /
 *    filled counts, and given rows read back through /rows; the stored
 *    dataset (GET /v1/datasets/{id}) says the same as the 201;
 *  - an error: status, code, the message's "line L, column C: " prefix and
 *    a part of its text; and nothing was stored.
 * Every mismatch is collected, so one run names all of them.
 */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/harness.h"

static char DIR_[256];

/* The report: every mismatch, one per line. */
static char REPORT[16384];
static int N_BAD;

static void bad(const char *file, const char *how, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void bad(const char *file, const char *how, const char *fmt, ...)
{
    size_t n = strlen(REPORT);
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < sizeof REPORT - 1)
        snprintf(REPORT + n, sizeof REPORT - n, "\n  %s (%s): %s", file, how, msg);
    N_BAD++;
}

/* The keys of an expectation line, in any order. */
static const char *const KEYS[] = {"rows=", "cols=", "types=", "names=", "levels=", "dropped=",
                                   "missing=", "filled=", "row=", "at=", "msg="};

static const char *key_at(const char *s)
{
    for (size_t i = 0; i < sizeof KEYS / sizeof KEYS[0]; i++)
        if (!strncmp(s, KEYS[i], strlen(KEYS[i])))
            return KEYS[i];
    return NULL;
}

/* Undoes the MANIFEST's escapes (\n, \r, \\) in place. */
static void unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r == '\\' && (r[1] == 'n' || r[1] == 'r' || r[1] == '\\')) {
            r++;
            *w++ = *r == 'n' ? '\n' : *r == 'r' ? '\r' : '\\';
        } else {
            *w++ = *r;
        }
    }
    *w = 0;
}

/* Splits s on '|' into at most max parts (unescaped, in place). */
static int split_bar(char *s, char **parts, int max)
{
    int n = 0;
    if (!*s)
        return 0;
    for (char *p = s; n < max;) {
        char *bar = strchr(p, '|');
        parts[n++] = p;
        if (!bar)
            break;
        *bar = 0;
        p = bar + 1;
    }
    for (int i = 0; i < n; i++)
        unescape(parts[i]);
    return n;
}

typedef struct {
    const char *file, *how;
    json_t *body; /* the 201 */
    const mtld_proc *p;
    long long id;
} ok_ctx;

static json_t *column(ok_ctx *c, long i)
{
    return json_array_get(json_object_get(c->body, "columns"), (size_t)i);
}

/* One cell read back against its expected text. */
static int cell_equals(json_t *got, const char *want)
{
    if (json_is_string(got))
        return !strcmp(json_string_value(got), want);
    if (!json_is_number(got))
        return 0;
    char *end = NULL;
    double w = strtod(want, &end);
    return end && !*end && (float)w == (float)json_number_value(got);
}

/* json_equal, with two absent values equal. */
static int same(json_t *a, json_t *b)
{
    return (!a && !b) || json_equal(a, b);
}

/* One expectation of a 201 (key, value as written in MANIFEST). */
static void check_ok(ok_ctx *c, const char *key, char *val)
{
    char *parts[64];
    json_t *cols = json_object_get(c->body, "columns");
    if (!strcmp(key, "rows=")) {
        long long got = json_integer_value(json_object_get(c->body, "rows"));
        if (got != atoll(val))
            bad(c->file, c->how, "rows %lld, expected %s", got, val);
    } else if (!strcmp(key, "cols=")) {
        if ((long long)json_array_size(cols) != atoll(val))
            bad(c->file, c->how, "%zu columns, expected %s", json_array_size(cols), val);
    } else if (!strcmp(key, "types=")) {
        char got[128] = "";
        for (size_t i = 0; i < json_array_size(cols) && i < sizeof got - 1; i++) {
            const char *t = json_string_value(json_object_get(json_array_get(cols, i), "type"));
            got[i] = t && !strcmp(t, "number") ? 'n' : t && !strcmp(t, "category") ? 'c' : '?';
        }
        if (strcmp(got, val) != 0)
            bad(c->file, c->how, "types %s, expected %s", got, val);
    } else if (!strcmp(key, "names=")) {
        int n = split_bar(val, parts, 64);
        if ((int)json_array_size(cols) != n)
            bad(c->file, c->how, "%zu names, expected %d", json_array_size(cols), n);
        for (int i = 0; i < n && i < (int)json_array_size(cols); i++) {
            const char *nm = json_string_value(json_object_get(json_array_get(cols, (size_t)i),
                                                               "name"));
            if (!nm || strcmp(nm, parts[i]) != 0)
                bad(c->file, c->how, "column %d named '%s', expected '%s'", i, nm ? nm : "",
                    parts[i]);
        }
    } else if (!strcmp(key, "levels=")) {
        long col = strtol(val, NULL, 10);
        int n = split_bar(strchr(val, ':') + 1, parts, 64);
        json_t *lv = json_object_get(column(c, col), "levels");
        if ((int)json_array_size(lv) != n)
            bad(c->file, c->how, "column %ld has %zu levels, expected %d", col,
                json_array_size(lv), n);
        for (int i = 0; i < n && i < (int)json_array_size(lv); i++) {
            const char *l = json_string_value(json_array_get(lv, (size_t)i));
            if (!l || strcmp(l, parts[i]) != 0)
                bad(c->file, c->how, "column %ld level %d '%s', expected '%s'", col, i,
                    l ? l : "", parts[i]);
        }
    } else if (!strcmp(key, "dropped=")) {
        long long got = json_integer_value(json_object_get(c->body, "dropped_rows"));
        if (got != atoll(val))
            bad(c->file, c->how, "dropped_rows %lld, expected %s", got, val);
    } else if (!strcmp(key, "missing=") || !strcmp(key, "filled=")) {
        long col = strtol(val, NULL, 10);
        const char *what = key[0] == 'm' ? "missing" : "filled";
        long long got = json_integer_value(json_object_get(column(c, col), what));
        if (got != atoll(strchr(val, ':') + 1))
            bad(c->file, c->how, "column %ld %s %lld, expected %s", col, what, got,
                strchr(val, ':') + 1);
    } else if (!strcmp(key, "row=")) {
        long row = strtol(val, NULL, 10);
        int n = split_bar(strchr(val, ':') + 1, parts, 64);
        char path[128];
        snprintf(path, sizeof path, "/v1/datasets/%lld/rows?offset=%ld&limit=1", c->id, row);
        json_t *r = h_get_json(c->p, path, 200);
        json_t *cells = json_array_get(json_object_get(r, "rows"), 0);
        if ((int)json_array_size(cells) != n) {
            bad(c->file, c->how, "row %ld has %zu cells, expected %d", row,
                json_array_size(cells), n);
        } else {
            for (int i = 0; i < n; i++)
                if (!cell_equals(json_array_get(cells, (size_t)i), parts[i])) {
                    char *g = json_dumps(json_array_get(cells, (size_t)i), JSON_ENCODE_ANY);
                    bad(c->file, c->how, "row %ld cell %d is %s, expected '%s'", row, i,
                        g ? g : "?", parts[i]);
                    free(g);
                }
        }
        json_decref(r);
    } else {
        bad(c->file, c->how, "expectation %s%s does not apply to a 201", key, val);
    }
}

/* One expectation of an error (message msg). */
static void check_err(const char *file, const char *how, const char *key, const char *val,
                      const char *msg)
{
    if (!strcmp(key, "at=")) {
        long line = 0, col = 0;
        char want[64];
        sscanf(val, "%ld:%ld", &line, &col);
        if (line > 0 && col > 0)
            snprintf(want, sizeof want, "line %ld, column %ld: ", line, col);
        else if (line > 0)
            snprintf(want, sizeof want, "line %ld: ", line);
        if (line > 0 && strncmp(msg, want, strlen(want)) != 0)
            bad(file, how, "message '%s' does not start '%s'", msg, want);
        if (line == 0 && !strncmp(msg, "line ", 5))
            bad(file, how, "message '%s' names a line; expected none", msg);
    } else if (!strcmp(key, "msg=")) {
        if (!strstr(msg, val))
            bad(file, how, "message '%s' lacks '%s'", msg, val);
    } else {
        bad(file, how, "expectation %s%s does not apply to an error", key, val);
    }
}

static long long dataset_total(const mtld_proc *p)
{
    json_t *l = h_get_json(p, "/v1/datasets", 200);
    long long n = json_integer_value(json_object_get(l, "total"));
    json_decref(l);
    return n;
}

/* One MANIFEST line, uploaded one way (chunked or not) as dataset name. */
static void run_entry(const mtld_proc *p, char *const f[5], const char *name, int chunked)
{
    const char *file = f[0], *how = chunked ? "chunked" : "length";
    char rel[300], path[400];
    size_t len = 0;
    snprintf(rel, sizeof rel, "tests/data/csv/%s", file);
    char *data = h_read_file(h_src(rel), &len);
    ck_assert_msg(data != NULL, "cannot read %s", rel);
    snprintf(path, sizeof path, "/v1/datasets?name=%s%s%s", name, strcmp(f[1], "-") ? "&" : "",
             strcmp(f[1], "-") ? f[1] : "");
    size_t fl = strlen(file);
    const char *gz[] = {"Content-Encoding: gzip", NULL};
    const char *const *hdrs = fl > 3 && !strcmp(file + fl - 3, ".gz") ? gz : NULL;
    long long before = dataset_total(p);
    h_resp r = chunked ? h_req_pieces(p, "POST", path, "text/csv", data, len, 7, hdrs)
                       : h_req_headers(p, "POST", path, "text/csv", data, len, hdrs);
    free(data);
    long want = atol(f[2]);
    json_t *body = h_json(&r);
    if (r.status != want) {
        bad(file, how, "status %ld, expected %ld: %s", r.status, want, r.body);
        goto done;
    }
    if (!body) {
        bad(file, how, "the body is not JSON: %s", r.body);
        goto done;
    }
    /* The expectations: "key=value" runs, a value up to the next " key=". */
    char ex[2048];
    snprintf(ex, sizeof ex, "%s", f[4]);
    json_t *err = json_object_get(body, "error");
    const char *msg = json_string_value(json_object_get(err, "message"));
    ok_ctx c = {file, how, body, p, json_integer_value(json_object_get(body, "id"))};
    if (want == 201) {
        /* The stored dataset says what the 201 said. */
        char dp[64];
        snprintf(dp, sizeof dp, "/v1/datasets/%lld", c.id);
        json_t *d = h_get_json(p, dp, 200);
        if (json_integer_value(json_object_get(d, "rows")) !=
            json_integer_value(json_object_get(body, "rows")))
            bad(file, how, "the stored dataset's rows differ from the 201's");
        json_t *dc = json_object_get(d, "columns");
        size_t i;
        json_t *col;
        json_array_foreach(json_object_get(body, "columns"), i, col)
        {
            json_t *s = json_array_get(dc, i);
            if (!same(json_object_get(col, "name"), json_object_get(s, "name")) ||
                !same(json_object_get(col, "type"), json_object_get(s, "type")) ||
                !same(json_object_get(col, "levels"), json_object_get(s, "levels")))
                bad(file, how, "stored column %zu differs from the 201's", i);
            if (!json_is_object(json_object_get(s, "stats")))
                bad(file, how, "stored column %zu has no statistics", i);
        }
        json_decref(d);
    } else {
        const char *code = json_string_value(json_object_get(err, "code"));
        if (!msg || !code) {
            bad(file, how, "no error code and message: %s", r.body);
            goto done;
        }
        if (strcmp(f[3], "-") && strcmp(code, f[3]))
            bad(file, how, "code '%s', expected '%s' (%s)", code, f[3], msg);
        if (dataset_total(p) != before)
            bad(file, how, "a refused upload changed the dataset count");
    }
    for (char *s = ex; *s;) {
        while (*s == ' ')
            s++;
        const char *key = key_at(s);
        if (!key) {
            if (*s)
                bad(file, how, "MANIFEST: cannot read '%s'", s);
            break;
        }
        char *val = s + strlen(key), *end = val;
        if (strcmp(key, "msg=") != 0)
            while (*end && !(end[0] == ' ' && key_at(end + 1)))
                end++;
        else
            end += strlen(end);
        char save = *end;
        *end = 0;
        if (want == 201)
            check_ok(&c, key, val);
        else
            check_err(file, how, key, val, msg);
        *end = save;
        s = end;
    }
done:
    json_decref(body);
    h_resp_free(&r);
}

START_TEST(corpus_outcomes_match_the_manifest)
{
    mtld_proc p;
    const char *limits[] = {"--max-field",  "1000", "--max-line",    "4000", "--max-levels",
                            "50",           "--max-columns", "20", NULL};
    h_tmpdir(DIR_, sizeof DIR_);
    h_start(&p, DIR_, limits);
    size_t len = 0;
    char *man = h_read_file(h_src("tests/data/csv/MANIFEST"), &len);
    ck_assert_ptr_nonnull(man);
    int n_files = 0, n_ok = 0, n_err = 0;
    REPORT[0] = 0;
    N_BAD = 0;
    for (char *line = strtok(man, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || !line[0])
            continue;
        char *f[5] = {0};
        char *save = line;
        for (int i = 0; i < 5; i++) {
            f[i] = save;
            save = i < 4 ? strchr(save, '\t') : NULL;
            if (i < 4) {
                ck_assert_msg(save != NULL, "MANIFEST line for %s has too few fields", f[0]);
                *save++ = 0;
            }
        }
        n_files++;
        if (atol(f[2]) == 201)
            n_ok++;
        else
            n_err++;
        for (int chunked = 0; chunked < 2; chunked++) {
            char name[32];
            snprintf(name, sizeof name, "d%d_%d", n_files, chunked);
            run_entry(&p, f, name, chunked);
        }
    }
    free(man);
    /* The issue asks for at least 40 malformed or untidy files. */
    ck_assert_int_ge(n_files, 40);
    ck_assert_int_ge(n_ok, 10);
    ck_assert_int_ge(n_err, 20);
    if (N_BAD) /* Check's messages are short: the whole list goes to stderr */
        fprintf(stderr, "csv corpus: %d mismatches:%s\n", N_BAD, REPORT);
    ck_assert_msg(N_BAD == 0, "%d mismatches with MANIFEST (listed on stderr)", N_BAD);
    /* Still serving, and exactly the accepted files are stored (twice each). */
    ck_assert_int_eq(dataset_total(&p), 2 * n_ok);
    ck_assert_int_eq(h_stop(&p, SIGTERM), 0);
}
END_TEST

Suite *csv_corpus_suite(void);
Suite *csv_corpus_suite(void)
{
    Suite *s = suite_create("csv_corpus");
    TCase *tc = tcase_create("csv_corpus");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, corpus_outcomes_match_the_manifest);
    suite_add_tcase(s, tc);
    return s;
}
