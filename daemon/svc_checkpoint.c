/*
 * daemon/svc_checkpoint.c — safetensors files, written so that a crash at
 * any instant leaves either the previous checkpoint or the new one, never a
 * torn file: write to "<path>.tmp", fsync it, rename over <path>, fsync the
 * directory. Only then does the caller record it in SQLite.
 *
 * Format (what numpy/safetensors readers expect): u64 little-endian header
 * length N, N bytes of JSON {"name": {"dtype":"F32","shape":[..],
 * "data_offsets":[begin,end]}, ..., "__metadata__": {str: str}} padded with
 * spaces to a multiple of 8, then the raw little-endian tensor bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/svc_internal.h"

#define MAX_HEADER (64u << 20)

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int svc__safetensors_write(const char *path, const svc__tensor *t, size_t n, json_t *meta,
                           int64_t *bytes_out, char *err, size_t errlen)
{
    json_t *hdr = json_object();
    char *text = NULL;
    char tmp[4200];
    int fd = -1, rc = -1;
    size_t off = 0;

    for (size_t i = 0; i < n; i++) {
        json_t *shape = json_array();
        for (int r = 0; r < t[i].rank; r++)
            json_array_append_new(shape, json_integer(t[i].shape[r]));
        size_t nb = t[i].count * sizeof(float);
        json_object_set_new(hdr, t[i].name,
                            json_pack("{s:s,s:o,s:[I,I]}", "dtype", "F32", "shape", shape,
                                      "data_offsets", (json_int_t)off, (json_int_t)(off + nb)));
        off += nb;
    }
    if (meta)
        json_object_set(hdr, "__metadata__", meta);
    text = json_dumps(hdr, JSON_COMPACT);
    if (!text) {
        snprintf(err, errlen, "out of memory building checkpoint header");
        goto done;
    }
    size_t hlen = strlen(text);
    size_t padded = (hlen + 7) & ~(size_t)7;
    unsigned char len8[8];
    for (int b = 0; b < 8; b++)
        len8[b] = (unsigned char)(((uint64_t)padded >> (8 * b)) & 0xff);

    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        goto done;
    }
    static const char spaces[8] = "        ";
    if (write_all(fd, len8, 8) || write_all(fd, text, hlen) ||
        write_all(fd, spaces, padded - hlen))
        goto io_fail;
    for (size_t i = 0; i < n; i++)
        if (t[i].count && write_all(fd, t[i].data, t[i].count * sizeof(float)))
            goto io_fail;
    if (fsync(fd) != 0)
        goto io_fail;
    if (close(fd) != 0) {
        fd = -1;
        goto io_fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0 || fsync_dir_of(path) != 0)
        goto io_fail;
    *bytes_out = (int64_t)(8 + padded + off);
    rc = 0;
    goto done;
io_fail:
    snprintf(err, errlen, "cannot write checkpoint %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    fd = -1;
    unlink(tmp);
done:
    if (fd >= 0)
        close(fd);
    free(text);
    json_decref(hdr);
    return rc;
}

int svc__safetensors_read(const char *path, svc__safetensors *out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    json_t *hdr = NULL;
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 8) {
        snprintf(err, errlen, "%s is not a safetensors file (too short)", path);
        goto fail;
    }
    buf = malloc((size_t)st.st_size);
    if (!buf || fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        snprintf(err, errlen, "cannot read %s", path);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int b = 7; b >= 0; b--)
        hlen = (hlen << 8) | buf[b];
    if (hlen > MAX_HEADER || hlen > (uint64_t)st.st_size - 8) {
        snprintf(err, errlen, "%s: header length %llu is out of range", path,
                 (unsigned long long)hlen);
        goto fail;
    }
    json_error_t je;
    hdr = json_loadb((const char *)buf + 8, (size_t)hlen, 0, &je);
    if (!json_is_object(hdr)) {
        snprintf(err, errlen, "%s: header is not a JSON object", path);
        goto fail;
    }
    fclose(f);
    out->header = hdr;
    out->bytes = buf;
    out->size = (size_t)st.st_size;
    out->data_start = 8 + (size_t)hlen;
    return 0;
fail:
    json_decref(hdr);
    free(buf);
    fclose(f);
    return -1;
}

json_t *svc__safetensors_metadata(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char len8[8];
    char *text = NULL;
    json_t *hdr = NULL, *meta = NULL;
    if (!f)
        return NULL;
    if (fread(len8, 1, 8, f) != 8)
        goto done;
    uint64_t hlen = 0;
    for (int b = 7; b >= 0; b--)
        hlen = (hlen << 8) | len8[b];
    if (hlen == 0 || hlen > MAX_HEADER)
        goto done;
    text = malloc((size_t)hlen);
    if (!text || fread(text, 1, (size_t)hlen, f) != (size_t)hlen)
        goto done;
    hdr = json_loadb(text, (size_t)hlen, 0, NULL);
    meta = json_object_get(hdr, "__metadata__");
    if (json_is_object(meta))
        json_incref(meta);
    else
        meta = NULL;
done:
    json_decref(hdr);
    free(text);
    fclose(f);
    return meta;
}

int svc__safetensors_get(const svc__safetensors *st, const char *name, float *dst, size_t count)
{
    json_t *t = json_object_get(st->header, name);
    json_t *offs = json_object_get(t, "data_offsets");
    const char *dtype = json_string_value(json_object_get(t, "dtype"));
    if (!t || !dtype || strcmp(dtype, "F32") != 0 || json_array_size(offs) != 2)
        return -1;
    json_int_t b = json_integer_value(json_array_get(offs, 0));
    json_int_t e = json_integer_value(json_array_get(offs, 1));
    if (b < 0 || e < b || (size_t)(e - b) != count * sizeof(float) ||
        st->data_start + (size_t)e > st->size)
        return -1;
    memcpy(dst, st->bytes + st->data_start + b, count * sizeof(float));
    return 0;
}

void svc__safetensors_clear(svc__safetensors *st)
{
    if (!st)
        return;
    json_decref(st->header);
    free(st->bytes);
    memset(st, 0, sizeof *st);
}

/* A first layer over other inputs: copies, column by column, the weights of
 * every input of the job (names: dst_names) that the source also reads
 * (src_names), into w [out][in] (the rest keep their fresh values). The
 * output widths must agree. Returns the number of columns copied. */
int svc__map_columns(const svc__safetensors *st, const char *sname, json_t *src_names,
                     json_t *dst_names, int out, int in, float *w)
{
    json_t *shape = json_object_get(json_object_get(st->header, sname), "shape");
    long long s_in = json_integer_value(json_array_get(shape, 1));
    if (json_array_size(shape) != 2 || json_integer_value(json_array_get(shape, 0)) != out ||
        s_in < 1 || (size_t)s_in != json_array_size(src_names) ||
        (int)json_array_size(dst_names) != in)
        return 0;
    float *src = malloc((size_t)out * (size_t)s_in * sizeof *src);
    if (!src || svc__safetensors_get(st, sname, src, (size_t)out * (size_t)s_in) != 0) {
        free(src);
        return 0;
    }
    int n = 0;
    for (int j = 0; j < in; j++) {
        const char *nm = json_string_value(json_array_get(dst_names, (size_t)j));
        for (long long k = 0; nm && k < s_in; k++) {
            const char *sn = json_string_value(json_array_get(src_names, (size_t)k));
            if (!sn || strcmp(sn, nm))
                continue;
            for (int o = 0; o < out; o++)
                w[(size_t)o * in + j] = src[(size_t)o * s_in + k];
            n++;
            break;
        }
    }
    free(src);
    return n;
}
