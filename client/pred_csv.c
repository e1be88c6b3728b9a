/*
 * client/pred_csv.c — predictions as CSV (see pred_csv.h).
 */
#include "client/pred_csv.h"

#include <stdio.h>
#include <string.h>

#include "client/out.h"

#define MAX_TASKS 64

typedef struct ptask {
    const char *name;
    const json_t *labels, *preds;
} ptask;

static void put_field(const char *s)
{
    if (strpbrk(s, ",\"\r\n") || (*s && (s[0] == ' ' || s[strlen(s) - 1] == ' '))) {
        fputc('"', stdout);
        for (; *s; s++) {
            if (*s == '"')
                fputc('"', stdout);
            fputc(*s, stdout);
        }
        fputc('"', stdout);
    } else {
        fputs(s, stdout);
    }
}

static void put_value(const json_t *v)
{
    if (json_is_string(v))
        put_field(json_string_value(v));
    else if (json_is_integer(v))
        printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        printf("%.10g", json_real_value(v));
    else if (json_is_true(v) || json_is_false(v))
        fputs(json_is_true(v) ? "true" : "false", stdout);
    /* null or missing: an empty field */
}

static int collect(const json_t *reply, ptask *t, size_t *n)
{
    const json_t *tasks = json_object_get(reply, "tasks");
    *n = 0;
    if (json_is_object(tasks)) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)tasks, k, v)
        {
            if (*n == MAX_TASKS)
                break;
            t[*n] = (ptask){k, json_object_get(v, "labels"), json_object_get(v, "predictions")};
            if (!json_is_array(t[*n].preds))
                return -1;
            (*n)++;
        }
        return *n ? 0 : -1;
    }
    const char *name = json_string_value(json_object_get(reply, "task"));
    t[0] = (ptask){name ? name : "prediction", json_object_get(reply, "labels"),
                   json_object_get(reply, "predictions")};
    if (!json_is_array(t[0].preds))
        return -1;
    *n = 1;
    return 0;
}

long cli_pred_csv(const json_t *reply, int header)
{
    ptask t[MAX_TASKS];
    size_t n, rows = 0;
    char col[512];

    if (collect(reply, t, &n)) {
        cli_err("the server's answer holds no predictions");
        return -1;
    }
    for (size_t k = 0; k < n; k++) {
        size_t r = json_array_size(t[k].preds);
        if (k && r != rows) {
            cli_err("the server's answer holds %zu predictions for one task, %zu for another",
                    rows, r);
            return -1;
        }
        rows = r;
    }
    if (header) {
        for (size_t k = 0; k < n; k++) {
            if (k)
                fputc(',', stdout);
            put_field(t[k].name);
            size_t i;
            const json_t *lab;
            json_array_foreach(t[k].labels, i, lab)
            {
                char l[256];
                cli_json_text(lab, l, sizeof l);
                snprintf(col, sizeof col, "%s_p_%s", t[k].name, l);
                fputc(',', stdout);
                put_field(col);
            }
        }
        fputc('\n', stdout);
    }
    for (size_t r = 0; r < rows; r++) {
        for (size_t k = 0; k < n; k++) {
            const json_t *p = json_array_get(t[k].preds, r);
            if (k)
                fputc(',', stdout);
            put_value(json_object_get(p, json_object_get(p, "label") ? "label" : "value"));
            const json_t *probs = json_object_get(p, "probabilities");
            for (size_t i = 0; i < json_array_size(t[k].labels); i++) {
                fputc(',', stdout);
                put_value(json_array_get(probs, i));
            }
        }
        fputc('\n', stdout);
    }
    return (long)rows;
}
