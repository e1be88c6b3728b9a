/*
 * daemon/svc_import.c — imported models (POST /v1/checkpoints): a
 * safetensors file made elsewhere (PyTorch, numpy) that any job may start
 * from with "from_checkpoint": {"checkpoint": ID or NAME}.
 *
 * The layout is mtld's MLP, in PyTorch's nn.Linear convention:
 *   trunk.<i>.weight  F32 [d_{i+1}, d_i]   i = 0..n−1, n = 1..8 hidden layers
 *   trunk.<i>.bias    F32 [d_{i+1}]
 *   head.weight       F32 [k, d_n]          optional (both or neither)
 *   head.bias         F32 [k]
 * with an optional __metadata__ (a map of strings) whose "features", if
 * given, is a JSON array of the d_0 input names the first layer reads
 * (mtld's input names: "col", or "col=level" per one-hot level).
 *
 * Everything is checked before a byte is kept, so a job never meets a bad
 * file: the header (length, JSON, only these names, each entry exactly
 * dtype/shape/data_offsets), dtype F32, ranks and shapes (layers chained,
 * widths within the job spec's limits), data offsets tiling the data
 * section exactly (no gap, overlap or trailing bytes), and every value
 * finite. Then the bytes are written like a checkpoint (tmp, fsync, rename,
 * fsync dir) and only then recorded in the store.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/svc_internal.h"
#include "daemon/svc_log.h"

#define MAX_HEADER (16u << 20)
#define MAX_TRUNK 8
#define MAX_WIDTH 4096
#define MAX_INPUTS 65536

typedef struct {
    const char *name;
    int rank;
    long long shape[2];
    size_t begin, end;
} tinfo;

/* trunk.<i>.weight|bias → slot 2i / 2i+1; head.weight|bias → 2*MAX_TRUNK, +1.
 * -1 for any other name. */
static int slot_of(const char *name)
{
    int i = -1, n = 0;
    char kind[8];
    if (!strcmp(name, "head.weight"))
        return 2 * MAX_TRUNK;
    if (!strcmp(name, "head.bias"))
        return 2 * MAX_TRUNK + 1;
    if (sscanf(name, "trunk.%1d.%6[a-z]%n", &i, kind, &n) != 2 || name[n] || i < 0 ||
        i >= MAX_TRUNK)
        return -1;
    if (!strcmp(kind, "weight"))
        return 2 * i;
    if (!strcmp(kind, "bias"))
        return 2 * i + 1;
    return -1;
}

static int cmp_begin(const void *a, const void *b)
{
    const tinfo *x = *(const tinfo *const *)a, *y = *(const tinfo *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Validates the file in memory; *desc (new) describes it for the store and
 * the reply: {"trunk": [{"in","out"}], "head": {"in","out"} | null,
 * "features": [...] | null, "metadata": {...}}. */
static int validate(const unsigned char *b, size_t n, json_t **desc, svc_error *e)
{
    json_t *hdr = NULL, *feats = NULL;
    tinfo ts[2 * MAX_TRUNK + 2];
    const tinfo *by_slot[2 * MAX_TRUNK + 2] = {0};
    const tinfo *order[2 * MAX_TRUNK + 2];
    size_t nt = 0;
    int rc = SVC_OK;
    if (n < 8)
        return svc__fail(e, SVC_EINVAL, "body",
                         "not a safetensors file: %zu bytes, less than the 8-byte header length",
                         n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | b[i];
    if (hl < 2 || hl > MAX_HEADER || hl > n - 8)
        return svc__fail(e, SVC_EINVAL, "body",
                         "not a safetensors file: header length %llu does not fit the %zu-byte "
                         "body (at most %u)",
                         (unsigned long long)hl, n, MAX_HEADER);
    json_error_t je;
    hdr = json_loadb((const char *)b + 8, (size_t)hl, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(hdr)) {
        rc = svc__fail(e, SVC_EINVAL, "body", "the safetensors header is not a JSON object: %s",
                       hdr ? "another JSON value" : je.text);
        goto done;
    }
    const size_t data_len = n - 8 - (size_t)hl;
    const char *key;
    json_t *v;
    json_t *meta = NULL;
    json_object_foreach(hdr, key, v)
    {
        if (!strcmp(key, "__metadata__")) {
            const char *mk;
            json_t *mv;
            if (!json_is_object(v)) {
                rc = svc__fail(e, SVC_EINVAL, "__metadata__", "'__metadata__' must be a map of "
                               "strings");
                goto done;
            }
            json_object_foreach(v, mk, mv)
            {
                if (!json_is_string(mv)) {
                    rc = svc__fail(e, SVC_EINVAL, "__metadata__",
                                   "'__metadata__.%.60s' must be a string", mk);
                    goto done;
                }
            }
            meta = v;
            continue;
        }
        int slot = slot_of(key);
        if (slot < 0) {
            rc = svc__fail(e, SVC_EINVAL, key,
                           "tensor '%.80s' is not in mtld's layout (trunk.<i>.weight, "
                           "trunk.<i>.bias for i = 0..7, head.weight, head.bias)",
                           key);
            goto done;
        }
        tinfo *t = &ts[nt];
        memset(t, 0, sizeof *t);
        t->name = key;
        json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
               *of = json_object_get(v, "data_offsets");
        if (!json_is_object(v) || json_object_size(v) != 3 || !dt || !sh || !of) {
            rc = svc__fail(e, SVC_EINVAL, key,
                           "tensor '%s' must be {\"dtype\", \"shape\", \"data_offsets\"}", key);
            goto done;
        }
        if (!json_is_string(dt) || strcmp(json_string_value(dt), "F32")) {
            rc = svc__fail(e, SVC_EINVAL, key,
                           "tensor '%s' has dtype %.16s; mtld reads F32 (export with .float())",
                           key, json_is_string(dt) ? json_string_value(dt) : "(not a string)");
            goto done;
        }
        t->rank = (int)json_array_size(sh);
        int want_rank = slot % 2 == 0 ? 2 : 1;
        if (!json_is_array(sh) || t->rank != want_rank) {
            rc = svc__fail(e, SVC_EINVAL, key, "tensor '%s' must have rank %d (%s)", key,
                           want_rank, want_rank == 2 ? "[out, in]" : "[out]");
            goto done;
        }
        size_t count = 1;
        for (int r = 0; r < t->rank; r++) {
            json_t *d = json_array_get(sh, (size_t)r);
            t->shape[r] = json_is_integer(d) ? (long long)json_integer_value(d) : -1;
            if (t->shape[r] < 1 || t->shape[r] > MAX_INPUTS) {
                rc = svc__fail(e, SVC_EINVAL, key,
                               "tensor '%s': dimension %d must be an integer from 1 to %d", key,
                               r, MAX_INPUTS);
                goto done;
            }
            count *= (size_t)t->shape[r];
        }
        json_t *ob = json_array_get(of, 0), *oe = json_array_get(of, 1);
        if (json_array_size(of) != 2 || !json_is_integer(ob) || !json_is_integer(oe) ||
            json_integer_value(ob) < 0 || json_integer_value(oe) < json_integer_value(ob) ||
            (uint64_t)json_integer_value(oe) > data_len) {
            rc = svc__fail(e, SVC_EINVAL, key,
                           "tensor '%s': data_offsets must be [begin, end] within the %zu data "
                           "bytes",
                           key, data_len);
            goto done;
        }
        t->begin = (size_t)json_integer_value(ob);
        t->end = (size_t)json_integer_value(oe);
        if (t->end - t->begin != count * sizeof(float)) {
            rc = svc__fail(e, SVC_EINVAL, key,
                           "tensor '%s': data_offsets span %zu bytes, its shape needs %zu", key,
                           t->end - t->begin, count * sizeof(float));
            goto done;
        }
        by_slot[slot] = t;
        order[nt] = t;
        nt++;
    }
    if (nt == 0) {
        rc = svc__fail(e, SVC_EINVAL, "body", "the file holds no tensors");
        goto done;
    }
    /* the data section: tiled exactly, in any order */
    qsort(order, nt, sizeof order[0], cmp_begin);
    size_t at = 0;
    for (size_t i = 0; i < nt; i++) {
        if (order[i]->begin != at) {
            rc = svc__fail(e, SVC_EINVAL, order[i]->name,
                           "tensor '%s' starts at byte %zu of the data; the data must be the "
                           "tensors back to back (expected %zu)",
                           order[i]->name, order[i]->begin, at);
            goto done;
        }
        at = order[i]->end;
    }
    if (at != data_len) {
        rc = svc__fail(e, SVC_EINVAL, "body",
                       "%zu bytes follow the last tensor's data: not a well-formed safetensors "
                       "file",
                       data_len - at);
        goto done;
    }
    /* the layers: trunk.0..n−1 complete and chained, then an optional head */
    int layers = 0;
    while (layers < MAX_TRUNK && (by_slot[2 * layers] || by_slot[2 * layers + 1]))
        layers++;
    for (int i = layers; i < MAX_TRUNK; i++)
        if (by_slot[2 * i] || by_slot[2 * i + 1]) {
            const char *nm = by_slot[2 * i] ? by_slot[2 * i]->name : by_slot[2 * i + 1]->name;
            rc = svc__fail(e, SVC_EINVAL, nm, "tensor '%s' follows a missing trunk.%d layer: "
                           "trunk layers are numbered 0, 1, 2, ... without gaps", nm, layers);
            goto done;
        }
    if (layers == 0) {
        rc = svc__fail(e, SVC_EINVAL, "trunk.0.weight",
                       "the file needs at least one trunk layer (trunk.0.weight, trunk.0.bias)");
        goto done;
    }
    json_t *trunk = json_array();
    long long prev_out = -1;
    for (int i = 0; i <= layers; i++) {
        const tinfo *w = by_slot[i < layers ? 2 * i : 2 * MAX_TRUNK];
        const tinfo *bi = by_slot[i < layers ? 2 * i + 1 : 2 * MAX_TRUNK + 1];
        char wn[32], bn[32];
        snprintf(wn, sizeof wn, i < layers ? "trunk.%d.weight" : "head.weight", i);
        snprintf(bn, sizeof bn, i < layers ? "trunk.%d.bias" : "head.bias", i);
        if (i == layers && !w && !bi)
            break; /* no head */
        if (!w || !bi) {
            json_decref(trunk);
            rc = svc__fail(e, SVC_EINVAL, w ? bn : wn, "'%s' is missing (a layer needs both %s "
                           "and %s)", w ? bn : wn, wn, bn);
            goto done;
        }
        if (bi->shape[0] != w->shape[0]) {
            json_decref(trunk);
            rc = svc__fail(e, SVC_EINVAL, bn, "'%s' has shape [%lld]; '%s' has %lld outputs", bn,
                           bi->shape[0], wn, w->shape[0]);
            goto done;
        }
        if (prev_out >= 0 && w->shape[1] != prev_out) {
            json_decref(trunk);
            rc = svc__fail(e, SVC_EINVAL, wn,
                           "'%s' reads %lld inputs but the layer before it has %lld outputs",
                           wn, w->shape[1], prev_out);
            goto done;
        }
        if (i < layers && w->shape[0] > MAX_WIDTH) {
            json_decref(trunk);
            rc = svc__fail(e, SVC_EINVAL, wn, "'%s' has %lld units; a trunk layer has at most %d",
                           wn, w->shape[0], MAX_WIDTH);
            goto done;
        }
        prev_out = w->shape[0];
        json_t *lay = json_pack("{s:I,s:I}", "in", (json_int_t)w->shape[1], "out",
                                (json_int_t)w->shape[0]);
        if (i < layers)
            json_array_append_new(trunk, lay);
        else
            *desc = json_pack("{s:o}", "head", lay);
    }
    if (!*desc)
        *desc = json_pack("{s:n}", "head");
    json_object_set_new(*desc, "trunk", trunk);
    /* every value finite */
    const unsigned char *data = b + 8 + hl;
    for (size_t i = 0; i < nt; i++) {
        size_t cnt = (ts[i].end - ts[i].begin) / sizeof(float);
        for (size_t k = 0; k < cnt; k++) {
            float f;
            memcpy(&f, data + ts[i].begin + k * sizeof f, sizeof f);
            if (!isfinite(f)) {
                rc = svc__fail(e, SVC_EINVAL, ts[i].name,
                               "tensor '%s': element %zu is %s; every value must be finite",
                               ts[i].name, k, isnan(f) ? "NaN" : "infinite");
                goto done;
            }
        }
    }
    /* optional metadata: features names the first layer's inputs */
    const char *ft = json_string_value(json_object_get(meta, "features"));
    if (ft) {
        feats = json_loads(ft, 0, NULL);
        size_t i;
        json_t *f;
        int ok = json_is_array(feats) &&
                 (long long)json_array_size(feats) == by_slot[0]->shape[1];
        json_array_foreach(feats, i, f) ok = ok && json_is_string(f);
        if (!ok) {
            rc = svc__fail(e, SVC_EINVAL, "__metadata__.features",
                           "'__metadata__.features' must be a JSON array of %lld input names "
                           "(strings), one per input of trunk.0.weight",
                           by_slot[0]->shape[1]);
            goto done;
        }
    }
    json_object_set(*desc, "features", feats ? feats : json_null());
    json_object_set_new(*desc, "metadata", meta ? json_incref(meta) : json_object());
done:
    if (rc != SVC_OK) {
        json_decref(*desc);
        *desc = NULL;
    }
    json_decref(feats);
    json_decref(hdr);
    return rc;
}

static int write_file(const char *path, const void *b, size_t n, char *err, size_t errlen)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%.4200s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %.200s: %s", tmp, strerror(errno));
        return -1;
    }
    const char *p = b;
    size_t left = n;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(err, errlen, "cannot write %.200s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return -1;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot commit %.200s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    char dir[4300];
    snprintf(dir, sizeof dir, "%.4200s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = 0;
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    return 0;
}

static json_t *import_json(const store_import *m)
{
    json_t *o = json_loads(m->meta ? m->meta : "{}", 0, NULL);
    if (!o)
        o = json_object();
    json_object_set_new(o, "id", json_integer(m->id));
    json_object_set_new(o, "name", m->name ? json_string(m->name) : json_null());
    json_object_set_new(o, "bytes", json_integer(m->bytes));
    json_object_set_new(o, "created_at", m->created_at ? json_string(m->created_at) : json_null());
    return o;
}

int svc_checkpoint_import(svc *s, const char *name, const void *bytes, size_t n, json_t **out,
                          svc_error *e)
{
    json_t *desc = NULL;
    char *meta = NULL;
    int rc;
    if (name && !svc__valid_name(name))
        return svc__fail(e, SVC_EINVAL, "name",
                         "'name' must be 1-64 characters of letters, digits, '_', '.', '-', "
                         "starting with a letter");
    if (name) {
        store_import m = {0};
        rc = store_import_find(s->db, name, &m);
        store_import_clear(&m);
        if (rc == STORE_OK)
            return svc__fail(e, SVC_EEXISTS, "name", "an imported model named '%s' exists",
                             name);
    }
    if ((rc = validate(bytes, n, &desc, e)) != SVC_OK)
        return rc;
    meta = json_dumps(desc, JSON_COMPACT);
    json_decref(desc);
    if (!meta)
        return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    static atomic_uint seq;
    char path[4200], err[300];
    snprintf(path, sizeof path, "%s/import-%lld%09ld-%u.safetensors", s->ckpt_dir,
             (long long)ts.tv_sec, (long)ts.tv_nsec, atomic_fetch_add(&seq, 1));
    if (write_file(path, bytes, n, err, sizeof err) != 0) {
        free(meta);
        SVC_LOG(SVC_LOG_ERROR, "import_failed", "reason=\"%s\"", err);
        return svc__fail(e, SVC_EIO, NULL, "cannot store the file");
    }
    int64_t id = 0;
    rc = store_import_add(s->db, name, path, (int64_t)n, meta, &id);
    free(meta);
    if (rc != STORE_OK) {
        unlink(path);
        return svc__store_fail(e, rc, "imported model", name ? name : "");
    }
    store_import m = {0};
    char key[32];
    snprintf(key, sizeof key, "%lld", (long long)id);
    if (store_import_find(s->db, key, &m) != STORE_OK)
        return svc__fail(e, SVC_EIO, NULL, "the import was stored but cannot be read back");
    *out = import_json(&m);
    store_import_clear(&m);
    SVC_LOG(SVC_LOG_INFO, "model_imported", "id=%lld bytes=%zu", (long long)id, n);
    return SVC_OK;
}

int svc_checkpoint_list(svc *s, json_t **out, svc_error *e)
{
    store_import *ms = NULL;
    size_t n = 0;
    int rc = store_import_list(s->db, &ms, &n);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "imported models", "");
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, import_json(&ms[i]));
    store_import_list_free(ms, n);
    *out = json_pack("{s:o}", "checkpoints", arr);
    return SVC_OK;
}

int svc__import_path(svc *s, const char *key, char *path, size_t pathlen, svc_error *e)
{
    store_import m = {0};
    int rc = store_import_find(s->db, key, &m);
    if (rc == STORE_ENOTFOUND)
        return svc__fail(e, SVC_EINVAL, "from_checkpoint.checkpoint",
                         "'from_checkpoint.checkpoint': no imported model '%s'", key);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "imported model", key);
    snprintf(path, pathlen, "%s", m.path);
    store_import_clear(&m);
    return SVC_OK;
}
