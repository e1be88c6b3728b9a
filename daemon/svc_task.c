/*
 * daemon/svc_task.c — task definitions: which column of which dataset to
 * predict, how (classification or regression), from which features.
 *
 * A definition is validated against its dataset once, at creation, and
 * stored resolved: the features list is explicit (the default "all other
 * columns minus exclude" is expanded), so a job never has to guess.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon/svc_internal.h"

static const char *const task_keys[] = {"name",    "dataset",      "target", "kind",
                                        "features", "exclude",     "class_weight",
                                        "generator", NULL};

/* What a JSON value is, for "must be X, not Y". */
static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_NULL: return "null";
    default: return "a boolean";
    }
}

static int known_key(const char *k)
{
    for (int i = 0; task_keys[i]; i++)
        if (strcmp(task_keys[i], k) == 0)
            return 1;
    return 0;
}

static json_t *find_column(json_t *cols, const char *name)
{
    size_t i;
    json_t *c;
    json_array_foreach(cols, i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "name")), name) == 0)
            return c;
    }
    return NULL;
}

/* Checks that key is an array of distinct column names of the dataset. */
static int column_list(json_t *def, const char *key, json_t *cols, svc_error *e)
{
    json_t *arr = json_object_get(def, key);
    if (!arr)
        return SVC_OK;
    if (!json_is_array(arr))
        return svc__fail(e, SVC_EINVAL, key, "'%s' must be an array of column names", key);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        char field[64];
        snprintf(field, sizeof field, "%s[%zu]", key, i);
        if (!json_is_string(v))
            return svc__fail(e, SVC_EINVAL, field, "'%s' must be a string (a column name)", field);
        if (!find_column(cols, json_string_value(v)))
            return svc__fail(e, SVC_EINVAL, field, "'%s': the dataset has no column '%s'", field,
                             json_string_value(v));
        for (size_t j = 0; j < i; j++)
            if (strcmp(json_string_value(json_array_get(arr, j)), json_string_value(v)) == 0)
                return svc__fail(e, SVC_EINVAL, field, "'%s': column '%s' is listed twice", field,
                                 json_string_value(v));
    }
    return SVC_OK;
}

static int in_list(json_t *arr, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (strcmp(json_string_value(v), name) == 0)
            return 1;
    }
    return 0;
}

/* Validates def and builds the resolved definition (*resolved, new ref). */
static int resolve(svc *s, json_t *def, json_t **resolved, int64_t *dataset_id, svc_error *e)
{
    int rc;
    const char *key;
    json_t *val;
    store_dataset d = {0};
    json_t *meta = NULL, *out = NULL;

    if (!json_is_object(def))
        return svc__fail(e, SVC_EINVAL, "", "a task definition must be a JSON object");
    json_object_foreach(def, key, val)
    {
        if (!known_key(key))
            return svc__fail(e, SVC_EINVAL, key, "unknown key '%s' in task definition", key);
    }
    json_t *name = json_object_get(def, "name");
    if (name && !json_is_string(name))
        return svc__fail(e, SVC_EINVAL, "name", "'name' must be a string, not %s",
                         json_kind(name));
    if (!name)
        return svc__fail(e, SVC_EINVAL, "name", "'name' is required and must be a string");
    if (!svc__valid_name(json_string_value(name)))
        return svc__fail(e, SVC_EINVAL, "name",
                         "task name must be 1-64 characters of letters, digits, '_', '-' or '.', "
                         "starting with a letter");

    json_t *gen = json_object_get(def, "generator");
    if (gen) {
        if (!json_is_string(gen) || strcmp(json_string_value(gen), "sinusoid") != 0)
            return svc__fail(e, SVC_EINVAL, "generator", "'generator' must be \"sinusoid\"");
        json_object_foreach(def, key, val)
        {
            if (strcmp(key, "name") != 0 && strcmp(key, "generator") != 0)
                return svc__fail(e, SVC_EINVAL, key,
                                 "'%s' does not apply to a generator task", key);
        }
        *resolved = json_pack("{s:O,s:s,s:s}", "name", name, "generator", "sinusoid", "kind",
                              "regression");
        *dataset_id = 0;
        return SVC_OK;
    }

    json_t *ds = json_object_get(def, "dataset");
    if (!ds)
        return svc__fail(e, SVC_EINVAL, "dataset",
                         "'dataset' is required: a dataset id or name (or give 'generator')");
    if (!json_is_string(ds) && !json_is_integer(ds))
        return svc__fail(e, SVC_EINVAL, "dataset",
                         "'dataset' must be a dataset id (an integer) or name (a string), not %s",
                         json_kind(ds));
    char dskey[72];
    if (json_is_integer(ds))
        snprintf(dskey, sizeof dskey, "%lld", (long long)json_integer_value(ds));
    else
        snprintf(dskey, sizeof dskey, "%s", json_string_value(ds));
    rc = store_dataset_find(s->db, dskey, &d);
    if (rc == STORE_ENOTFOUND)
        return svc__fail(e, SVC_EINVAL, "dataset", "no dataset '%s'", dskey);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "dataset", dskey);
    meta = json_loads(d.meta ? d.meta : "{}", 0, NULL);
    json_t *cols = json_object_get(meta, "columns");

    json_t *target = json_object_get(def, "target");
    if (!json_is_string(target)) {
        if (target)
            rc = svc__fail(e, SVC_EINVAL, "target",
                           "'target' must be a column name (a string), not %s",
                           json_kind(target));
        else
            rc = svc__fail(e, SVC_EINVAL, "target",
                           "'target' is required and must be a column name");
        goto done;
    }
    json_t *tcol = find_column(cols, json_string_value(target));
    if (!tcol) {
        rc = svc__fail(e, SVC_EINVAL, "target", "dataset '%s' has no column '%s'", d.name,
                       json_string_value(target));
        goto done;
    }
    int target_is_cat = strcmp(json_string_value(json_object_get(tcol, "type")), "category") == 0;

    const char *kind = target_is_cat ? "classification" : "regression";
    json_t *jkind = json_object_get(def, "kind");
    if (jkind) {
        if (!json_is_string(jkind) || (strcmp(json_string_value(jkind), "classification") != 0 &&
                                       strcmp(json_string_value(jkind), "regression") != 0)) {
            rc = svc__fail(e, SVC_EINVAL, "kind",
                           "'kind' must be \"classification\" or \"regression\"");
            goto done;
        }
        kind = json_string_value(jkind);
    }
    if (strcmp(kind, "regression") == 0 && target_is_cat) {
        rc = svc__fail(e, SVC_EINVAL, "kind",
                       "column '%s' holds text categories: it cannot be a regression target",
                       json_string_value(target));
        goto done;
    }

    json_t *cw = json_object_get(def, "class_weight");
    if (cw && !json_is_null(cw)) {
        if (!json_is_string(cw) || strcmp(json_string_value(cw), "balanced") != 0) {
            rc = svc__fail(e, SVC_EINVAL, "class_weight", "'class_weight' must be \"balanced\"");
            goto done;
        }
        if (strcmp(kind, "classification") != 0) {
            rc = svc__fail(e, SVC_EINVAL, "class_weight",
                           "'class_weight' applies to classification tasks only");
            goto done;
        }
    }

    if (json_object_get(def, "features") && json_object_get(def, "exclude")) {
        rc = svc__fail(e, SVC_EINVAL, "exclude", "give 'features' or 'exclude', not both");
        goto done;
    }
    if ((rc = column_list(def, "features", cols, e)) != SVC_OK ||
        (rc = column_list(def, "exclude", cols, e)) != SVC_OK)
        goto done;

    json_t *features = json_array();
    json_t *given = json_object_get(def, "features");
    json_t *exclude = json_object_get(def, "exclude");
    size_t i;
    json_t *c;
    json_array_foreach(cols, i, c)
    {
        const char *cn = json_string_value(json_object_get(c, "name"));
        if (strcmp(cn, json_string_value(target)) == 0)
            continue;
        if (given && !in_list(given, cn))
            continue;
        if (exclude && in_list(exclude, cn))
            continue;
        json_array_append_new(features, json_string(cn));
    }
    if (given && in_list(given, json_string_value(target))) {
        json_decref(features);
        rc = svc__fail(e, SVC_EINVAL, "features", "the target '%s' cannot also be a feature",
                       json_string_value(target));
        goto done;
    }
    if (json_array_size(features) == 0) {
        json_decref(features);
        rc = svc__fail(e, SVC_EINVAL, "features", "the task has no feature columns left");
        goto done;
    }
    out = json_pack("{s:O,s:I,s:s,s:O,s:s,s:o}", "name", name, "dataset", (json_int_t)d.id,
                    "dataset_name", d.name, "target", target, "kind", kind, "features", features);
    if (cw && !json_is_null(cw))
        json_object_set(out, "class_weight", cw);
    *resolved = out;
    *dataset_id = d.id;
    rc = SVC_OK;
done:
    json_decref(meta);
    store_dataset_clear(&d);
    return rc;
}

json_t *svc__task_json(const store_task *t)
{
    json_t *o = json_loads(t->def ? t->def : "{}", 0, NULL);
    if (!o)
        o = json_object();
    json_object_set_new(o, "id", json_integer(t->id));
    json_object_set_new(o, "created_at", json_string(t->created_at ? t->created_at : ""));
    return o;
}

int svc_task_create(svc *s, json_t *def, json_t **out, svc_error *e)
{
    json_t *resolved = NULL;
    int64_t dsid = 0, id = 0;
    int rc = resolve(s, def, &resolved, &dsid, e);
    if (rc != SVC_OK)
        return rc;
    char *text = json_dumps(resolved, JSON_COMPACT);
    const char *name = json_string_value(json_object_get(resolved, "name"));
    if (!text) {
        json_decref(resolved);
        return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    }
    rc = store_task_create(s->db, name, dsid, text, &id);
    free(text);
    if (rc != STORE_OK) {
        rc = svc__store_fail(e, rc, "task", name);
        json_decref(resolved);
        return rc;
    }
    json_decref(resolved);
    return svc_task_get(s, name, out, e);
}

int svc_task_list(svc *s, json_t **out, svc_error *e)
{
    store_task *ts = NULL;
    size_t n = 0;
    int rc = store_task_list(s->db, &ts, &n);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "task", "");
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, svc__task_json(&ts[i]));
    store_task_list_free(ts, n);
    *out = json_pack("{s:o,s:I}", "tasks", arr, "total", (json_int_t)n);
    return SVC_OK;
}

int svc_task_get(svc *s, const char *key, json_t **out, svc_error *e)
{
    store_task t = {0};
    int rc = store_task_find(s->db, key, &t);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "task", key);
    *out = svc__task_json(&t);
    store_task_clear(&t);
    return SVC_OK;
}

int svc_task_delete(svc *s, const char *key, svc_error *e)
{
    store_task t = {0};
    int rc = store_task_find(s->db, key, &t);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "task", key);
    rc = store_task_delete(s->db, t.id);
    if (rc == STORE_EINUSE)
        rc = svc__fail(e, SVC_ECONFLICT, NULL, "task '%s' is used by a queued or running job",
                       t.name);
    else if (rc != STORE_OK)
        rc = svc__store_fail(e, rc, "task", key);
    store_task_clear(&t);
    return rc;
}
