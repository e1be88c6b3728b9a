/*
 * daemon/svc_rows.c — client rows to model inputs (svc_rows.h).
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/svc_rows.h"

static char *dupstr(const char *s)
{
    return strdup(s ? s : "");
}

void svc__inputs_clear(svc__inputs *in)
{
    if (!in)
        return;
    for (int i = 0; i < in->n_cols; i++) {
        for (int l = 0; l < in->cols[i].n_levels; l++)
            free(in->cols[i].levels[l]);
        free(in->cols[i].levels);
    }
    free(in->cols);
    memset(in, 0, sizeof *in);
}

/* Groups the input names into raw columns: "col" is a number column,
 * consecutive "col=level" names are one category column. */
int svc__inputs_build(svc__inputs *in, json_t *features)
{
    size_t n = json_array_size(features);
    memset(in, 0, sizeof *in);
    if (!json_is_array(features) || n == 0 || n > 1000000)
        return -1;
    in->n_in = (int)n;
    in->cols = calloc(n, sizeof *in->cols);
    if (!in->cols)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *f = json_string_value(json_array_get(features, i));
        if (!f)
            return -1;
        const char *eq = strchr(f, '=');
        size_t cn = eq ? (size_t)(eq - f) : strlen(f);
        if (cn >= sizeof in->cols[0].name)
            return -1;
        svc__incol *last = in->n_cols ? &in->cols[in->n_cols - 1] : NULL;
        if (eq && last && last->n_levels > 0 && strlen(last->name) == cn &&
            !strncmp(last->name, f, cn)) {
            char **lv = realloc(last->levels, (size_t)(last->n_levels + 1) * sizeof *lv);
            if (!lv)
                return -1;
            last->levels = lv;
            if (!(lv[last->n_levels] = dupstr(eq + 1)))
                return -1;
            last->n_levels++;
            continue;
        }
        svc__incol *c = &in->cols[in->n_cols++];
        memcpy(c->name, f, cn);
        c->name[cn] = 0;
        c->first = (int)i;
        if (eq) {
            c->levels = malloc(sizeof *c->levels);
            if (!c->levels || !(c->levels[0] = dupstr(eq + 1)))
                return -1;
            c->n_levels = 1;
        }
    }
    return 0;
}

static int level_of(const svc__incol *c, json_t *v)
{
    char buf[64];
    const char *text = json_string_value(v);
    if (!text && json_is_number(v)) {
        double d = json_number_value(v);
        if (d == floor(d) && fabs(d) < 1e15)
            snprintf(buf, sizeof buf, "%.0f", d);
        else
            snprintf(buf, sizeof buf, "%.9g", d);
        text = buf;
    }
    if (!text)
        return -1;
    for (int l = 0; l < c->n_levels; l++)
        if (!strcmp(c->levels[l], text))
            return l;
    return -1;
}

int svc__inputs_encode(const svc__inputs *in, json_t *row, const char *where, size_t r,
                       float *x, svc_error *e)
{
    char field[128];
    if (json_is_array(row) && (int)json_array_size(row) != in->n_cols) {
        snprintf(field, sizeof field, "%s[%zu]", where, r);
        return svc__fail(e, SVC_EINVAL, field,
                         "'%s' has %zu values; the model reads %d columns (see "
                         "\"columns\" in a reply, or send an object per row)",
                         field, json_array_size(row), in->n_cols);
    }
    /* In an object, keys that are not input columns (the target, an id) are
     * ignored: a misspelt column still fails, as the one it meant is missing. */
    if (!json_is_object(row) && !json_is_array(row)) {
        snprintf(field, sizeof field, "%s[%zu]", where, r);
        return svc__fail(e, SVC_EINVAL, field,
                         "'%s' must be an array of values or an object of column: value",
                         field);
    }
    memset(x, 0, (size_t)in->n_in * sizeof *x);
    for (int i = 0; i < in->n_cols; i++) {
        const svc__incol *c = &in->cols[i];
        json_t *v = json_is_array(row) ? json_array_get(row, (size_t)i)
                                       : json_object_get(row, c->name);
        if (json_is_array(row))
            snprintf(field, sizeof field, "%s[%zu][%d]", where, r, i);
        else
            snprintf(field, sizeof field, "%s[%zu].%.60s", where, r, c->name);
        if (!v)
            return svc__fail(e, SVC_EINVAL, field, "'%s': the column '%s' is missing", field,
                             c->name);
        if (c->n_levels == 0) {
            /* The engine computes in float32: a larger value would become
             * inf there and come back as a made-up prediction (as an upload
             * refuses it, so does a request). */
            if (!json_is_number(v) || !isfinite(json_number_value(v)))
                return svc__fail(e, SVC_EINVAL, field,
                                 "'%s': column '%s' takes a finite number", field, c->name);
            if (fabs(json_number_value(v)) > FLT_MAX)
                return svc__fail(e, SVC_EINVAL, field,
                                 "'%s': %g is out of range (float32) for column '%s'", field,
                                 json_number_value(v), c->name);
            x[c->first] = (float)json_number_value(v);
        } else {
            int l = level_of(c, v);
            if (l < 0)
                return svc__fail(e, SVC_EINVAL, field,
                                 "'%s': '%.80s' is not one of the %d values column '%s' had "
                                 "in training",
                                 field, json_is_string(v) ? json_string_value(v) : "(not text)",
                                 c->n_levels, c->name);
            x[c->first + l] = 1.0f;
        }
    }
    return SVC_OK;
}
