/* safetensors: a parameter registry out to a file, a file checked and back
 * into a registry (format and rules in dptrain/safetensors.h). The whole file
 * is held in memory: these are model files, read once at start-up. */
#include "dptrain/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "dptrain/fsutil.h"
#include "dptrain/text.h"
#include "dptrain/infile.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "tensor bytes are copied as little-endian");
_Static_assert(DP_MAX_DIMS <= DP_ST_MAX_DIMS, "a parameter's shape fits a safetensors shape");

static const struct {
    const char *name;
    size_t size;
} dtypes[DP_ST_NDTYPES] = {
    [DP_ST_BOOL] = {"BOOL", 1}, [DP_ST_U8] = {"U8", 1},       [DP_ST_I8] = {"I8", 1},
    [DP_ST_F8_E4M3] = {"F8_E4M3", 1}, [DP_ST_F8_E5M2] = {"F8_E5M2", 1}, [DP_ST_I16] = {"I16", 2},
    [DP_ST_U16] = {"U16", 2},   [DP_ST_F16] = {"F16", 2},     [DP_ST_BF16] = {"BF16", 2},
    [DP_ST_I32] = {"I32", 4},   [DP_ST_U32] = {"U32", 4},     [DP_ST_F32] = {"F32", 4},
    [DP_ST_I64] = {"I64", 8},   [DP_ST_U64] = {"U64", 8},     [DP_ST_F64] = {"F64", 8},
};

const char *dp_st_dtype_name(dp_st_dtype d) { return d < DP_ST_NDTYPES ? dtypes[d].name : "?"; }
size_t dp_st_dtype_size(dp_st_dtype d) { return d < DP_ST_NDTYPES ? dtypes[d].size : 0; }

void dp_st_shape_text(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

void dp_safetensors_free(dp_safetensors *f)
{
    if (!f) return;
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    for (int i = 0; i < f->nmeta; i++) free((char *)f->meta[i].key), free((char *)f->meta[i].value);
    free(f->t);
    free(f->meta);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

const dp_st_tensor *dp_safetensors_find(const dp_safetensors *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

const char *dp_safetensors_meta(const dp_safetensors *f, const char *key)
{
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta[i].key, key)) return f->meta[i].value;
    return NULL;
}

/* ------------------------------------------------------------ reading */

/* A JSON number that is a non-negative integer a double holds exactly. */
static int json_u64(const cJSON *j, uint64_t *v)
{
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != floor(d)) return 0;
    *v = (uint64_t)d;
    return 1;
}

/* One tensor entry: dtype, shape, data_offsets and nothing else; sizes checked against each other. */
static dp_status parse_entry(const char *path, const cJSON *e, uint64_t data_size, dp_st_tensor *t)
{
    const char *nm = DP_ESC(t->name); /* for messages: the header's names are anyone's text */
    if (!cJSON_IsObject(e)) return dp_errorf(DP_ERR_FORMAT, "%s: tensor '%s': not a JSON object", path, nm);
    const cJSON *dt = NULL, *sh = NULL, *off = NULL, *x;
    cJSON_ArrayForEach(x, e)
    {
        const cJSON **slot = !strcmp(x->string, "dtype") ? &dt : !strcmp(x->string, "shape") ? &sh
                           : !strcmp(x->string, "data_offsets") ? &off : NULL;
        if (!slot) return dp_errorf(DP_ERR_FORMAT, "%s: tensor '%s': unknown field '%s'", path, nm, DP_ESC(x->string));
        if (*slot) return dp_errorf(DP_ERR_FORMAT, "%s: tensor '%s': field '%s' given twice", path, nm, x->string);
        *slot = x;
    }
    if (!dt || !sh || !off)
        return dp_errorf(DP_ERR_FORMAT, "%s: tensor '%s': field '%s' is missing", path, nm,
                         !dt ? "dtype" : !sh ? "shape" : "data_offsets");
    if (!cJSON_IsString(dt)) return dp_errorf(DP_ERR_FORMAT, "%s: tensor '%s': dtype is not a string", path, nm);
    t->dtype = DP_ST_NDTYPES;
    for (int d = 0; d < DP_ST_NDTYPES; d++)
        if (!strcmp(dt->valuestring, dtypes[d].name)) t->dtype = (dp_st_dtype)d;
    if (t->dtype == DP_ST_NDTYPES)
        return dp_errorf(DP_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", path, nm,
                         DP_ESC(dt->valuestring));
    int nd = cJSON_IsArray(sh) ? cJSON_GetArraySize(sh) : -1;
    if (nd < 0 || nd > DP_ST_MAX_DIMS)
        return dp_errorf(DP_ERR_FORMAT, "%s: tensor '%s': shape is not an array of at most %d sizes", path, nm,
                         DP_ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t elems = 1, v;
    int overflow = 0, i = 0;
    cJSON_ArrayForEach(x, sh)
    {
        if (!json_u64(x, &v))
            return dp_errorf(DP_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer", path, nm, i);
        t->shape[i++] = (int64_t)v;
        if (v && elems > UINT64_MAX / v) overflow = 1;
        elems *= v;
    }
    uint64_t b, e2;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !json_u64(off->child, &b) ||
        !json_u64(off->child->next, &e2))
        return dp_errorf(DP_ERR_FORMAT, "%s: tensor '%s': data_offsets is not [begin, end] of non-negative integers",
                         path, nm);
    t->begin = b, t->end = e2;
    char st[160];
    dp_st_shape_text(t->ndim, t->shape, st, sizeof st);
    if (e2 < b) return dp_errorf(DP_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin",
                                 path, nm, (unsigned long long)b, (unsigned long long)e2);
    if (e2 > data_size)
        return dp_errorf(DP_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] are past the end of the data "
                         "(%llu bytes)", path, nm, (unsigned long long)b, (unsigned long long)e2,
                         (unsigned long long)data_size);
    size_t es = dtypes[t->dtype].size;
    if (overflow || elems > UINT64_MAX / es || elems * es != e2 - b)
        return dp_errorf(DP_ERR_FORMAT, "%s: tensor '%s': shape %s of %s needs %s bytes, data_offsets [%llu, %llu] "
                         "hold %llu", path, nm, st, dtypes[t->dtype].name,
                         overflow || elems > UINT64_MAX / es ? "more than 2^64" : "a different number of",
                         (unsigned long long)b, (unsigned long long)e2, (unsigned long long)(e2 - b));
    return DP_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const dp_st_tensor *const *)a)->name, (*(const dp_st_tensor *const *)b)->name);
}

static int by_offset(const void *a, const void *b)
{
    const dp_st_tensor *x = *(const dp_st_tensor *const *)a, *y = *(const dp_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Names unique; ranges, sorted, tiling [0, data_size) exactly. */
static dp_status check_layout(dp_safetensors *f, uint64_t data_size)
{
    const dp_st_tensor **s = malloc((size_t)(f->n ? f->n : 1) * sizeof *s);
    if (!s) return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", f->path);
    for (int i = 0; i < f->n; i++) s[i] = &f->t[i];
    dp_status rc = DP_OK;
    qsort(s, (size_t)f->n, sizeof *s, by_name);
    for (int i = 1; i < f->n && rc == DP_OK; i++)
        if (!strcmp(s[i]->name, s[i - 1]->name))
            rc = dp_errorf(DP_ERR_FORMAT, "%s: tensor '%s' is named twice in the header", f->path,
                           DP_ESC(s[i]->name));
    qsort(s, (size_t)f->n, sizeof *s, by_offset);
    uint64_t at = 0;
    for (int i = 0; i < f->n && rc == DP_OK; i++) {
        if (s[i]->begin < at)
            rc = dp_errorf(DP_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s' [%llu, %llu]",
                           f->path, DP_ESC(s[i]->name), (unsigned long long)s[i]->begin, (unsigned long long)s[i]->end,
                           DP_ESC(s[i - 1]->name), (unsigned long long)s[i - 1]->begin, (unsigned long long)s[i - 1]->end);
        else if (s[i]->begin > at)
            rc = dp_errorf(DP_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] leave bytes [%llu, %llu) of the "
                           "data unindexed", f->path, DP_ESC(s[i]->name), (unsigned long long)s[i]->begin,
                           (unsigned long long)s[i]->end, (unsigned long long)at, (unsigned long long)s[i]->begin);
        at = s[i]->end;
    }
    if (rc == DP_OK && at != data_size)
        rc = dp_errorf(DP_ERR_FORMAT, "%s: bytes [%llu, %llu) after the last tensor%s%s%s are not indexed", f->path,
                       (unsigned long long)at, (unsigned long long)data_size, f->n ? " '" : "",
                       DP_ESC(f->n ? s[f->n - 1]->name : ""), f->n ? "'" : "");
    free(s);
    return rc;
}

static dp_status parse_metadata(dp_safetensors *f, const cJSON *m)
{
    if (!cJSON_IsObject(m)) return dp_errorf(DP_ERR_FORMAT, "%s: __metadata__ is not a JSON object", f->path);
    int n = cJSON_GetArraySize(m);
    f->meta = calloc((size_t)(n ? n : 1), sizeof *f->meta);
    if (!f->meta) return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", f->path);
    const cJSON *x;
    cJSON_ArrayForEach(x, m)
    {
        if (!cJSON_IsString(x))
            return dp_errorf(DP_ERR_FORMAT, "%s: __metadata__ '%s' is not a string", f->path, DP_ESC(x->string));
        for (int i = 0; i < f->nmeta; i++)
            if (!strcmp(f->meta[i].key, x->string))
                return dp_errorf(DP_ERR_FORMAT, "%s: __metadata__ '%s' is given twice", f->path, DP_ESC(x->string));
        dp_st_meta *e = &f->meta[f->nmeta++];
        char *k = strdup(x->string), *v = strdup(x->valuestring);
        e->key = k, e->value = v;
        if (!k || !v) return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", f->path);
    }
    return DP_OK;
}

static dp_status parse_header(dp_safetensors *f, const cJSON *root, uint64_t hlen)
{
    int total = cJSON_GetArraySize(root), seen_meta = 0;
    f->t = calloc((size_t)(total ? total : 1), sizeof *f->t);
    if (!f->t) return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", f->path);
    uint64_t data_size = f->size - 8 - hlen;
    const uint8_t *data = f->buf + 8 + hlen;
    const cJSON *x;
    cJSON_ArrayForEach(x, root)
    {
        dp_status rc;
        if (!strcmp(x->string, "__metadata__")) {
            if (seen_meta++) return dp_errorf(DP_ERR_FORMAT, "%s: __metadata__ is given twice", f->path);
            rc = parse_metadata(f, x);
        } else {
            dp_st_tensor *t = &f->t[f->n++];
            if (!(t->name = strdup(x->string))) return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", f->path);
            rc = parse_entry(f->path, x, data_size, t);
            if (rc == DP_OK) t->data = data + t->begin; /* begin <= end <= data_size: inside the buffer */
        }
        if (rc != DP_OK) return rc;
    }
    return check_layout(f, data_size);
}

dp_status dp_safetensors_parse(const char *path, const void *bytes, size_t size, dp_safetensors *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s", path);
    if (size < 8)
        return dp_errorf(DP_ERR_FORMAT, "%s: truncated: %zu bytes, not even the 8-byte header length", path, size);
    const uint8_t *b = bytes;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    if (hlen > size - 8)
        return dp_errorf(DP_ERR_FORMAT, "%s: header length %llu is past the end of the file (%zu bytes): truncated?",
                         path, (unsigned long long)hlen, size);
    if (hlen > DP_ST_MAX_HEADER)
        return dp_errorf(DP_ERR_FORMAT, "%s: header length %llu is over the limit of %u bytes", path,
                         (unsigned long long)hlen, DP_ST_MAX_HEADER);
    if (hlen < 2 || b[8] != '{')
        return dp_errorf(DP_ERR_FORMAT, "%s: the header does not start with a JSON object '{'", path);
    if (!(out->buf = malloc(size))) return dp_errorf(DP_ERR_NOMEM, "%s: out of memory for %zu bytes", path, size);
    memcpy(out->buf, bytes, size);
    out->size = size;
    out->hash = XXH3_64bits(bytes, size);
    const char *h = (const char *)out->buf + 8, *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(h, (size_t)hlen, &end, 0);
    dp_status rc = DP_OK;
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t pos = at && at >= h && at <= h + hlen ? (size_t)(at - h) : 0;
        rc = dp_errorf(DP_ERR_FORMAT, "%s: the header is not valid JSON (near byte %zu of the header)", path, pos);
    } else {
        for (const char *p = end; p < h + hlen && rc == DP_OK; p++) /* the reference pads with spaces */
            if (*p != ' ')
                rc = dp_errorf(DP_ERR_FORMAT, "%s: byte %zu of the header follows the JSON object and is not padding",
                               path, (size_t)(p - h));
        if (rc == DP_OK && !cJSON_IsObject(root))
            rc = dp_errorf(DP_ERR_FORMAT, "%s: the header is not a JSON object", path);
        if (rc == DP_OK) rc = parse_header(out, root, hlen);
    }
    cJSON_Delete(root);
    if (rc != DP_OK) dp_safetensors_free(out);
    return rc;
}

dp_status dp_safetensors_read(const char *path, dp_safetensors *out)
{
    memset(out, 0, sizeof *out);
    FILE *fp;
    dp_status orc = dp_fopen_regular(path, 0, &fp);
    if (orc != DP_OK) return orc;
    struct stat sb;
    dp_status rc = DP_OK;
    uint8_t *buf = NULL;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode))
        rc = dp_errorf(DP_ERR_IO, "%s: not a regular file", path);
    else if (!(buf = malloc(sb.st_size ? (size_t)sb.st_size : 1)))
        rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory for %lld bytes", path, (long long)sb.st_size);
    else if (fread(buf, 1, (size_t)sb.st_size, fp) != (size_t)sb.st_size || fgetc(fp) != EOF)
        rc = dp_errorf(DP_ERR_IO, "%s: read failed or the file changed size while being read", path);
    fclose(fp);
    if (rc == DP_OK) rc = dp_safetensors_parse(path, buf, (size_t)sb.st_size, out);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------ writing */

dp_status dp_safetensors_write_params(const char *path, const dp_params *p, const dp_st_meta *meta, int nmeta)
{
    cJSON *root = cJSON_CreateObject(), *m = NULL;
    int ok = root != NULL;
    if (ok && nmeta > 0) ok = (m = cJSON_AddObjectToObject(root, "__metadata__")) != NULL;
    for (int i = 0; ok && i < nmeta; i++)
        if (meta[i].value) ok = cJSON_AddStringToObject(m, meta[i].key, meta[i].value) != NULL;
    uint64_t at = 0;
    for (int i = 0; ok && i < p->count; i++) {
        const dp_param *it = p->items[i];
        cJSON *e = cJSON_AddObjectToObject(root, it->name), *sh = NULL, *off = NULL;
        ok = e && cJSON_AddStringToObject(e, "dtype", "F32") && (sh = cJSON_AddArrayToObject(e, "shape")) &&
             (off = cJSON_AddArrayToObject(e, "data_offsets"));
        for (int d = 0; ok && d < it->t.ndim; d++) ok = cJSON_AddItemToArray(sh, cJSON_CreateNumber(it->t.shape[d]));
        uint64_t bytes = (uint64_t)it->t.n * sizeof(float);
        ok = ok && cJSON_AddItemToArray(off, cJSON_CreateNumber((double)at)) &&
             cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(at + bytes)));
        at += bytes;
    }
    char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json) return dp_errorf(DP_ERR_NOMEM, "%s: out of memory for the header", path);
    /* the header is padded with spaces to 8 bytes, as the reference does, so the data is aligned */
    size_t jl = strlen(json), hl = (jl + 7) / 8 * 8, total = 8 + hl + (size_t)at;
    uint8_t *buf = malloc(total);
    if (!buf) {
        free(json);
        return dp_errorf(DP_ERR_NOMEM, "%s: out of memory for %zu bytes", path, total);
    }
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, json, jl);
    memset(buf + 8 + jl, ' ', hl - jl);
    free(json);
    uint8_t *d = buf + 8 + hl;
    for (int i = 0; i < p->count; i++) {
        size_t bytes = (size_t)p->items[i]->t.n * sizeof(float);
        memcpy(d, p->items[i]->t.data, bytes);
        d += bytes;
    }
    dp_status rc = dp_write_file_atomic(path, buf, total);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------ into a registry */

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, ex = (h >> 10) & 31, man = h & 1023;
    float v;
    if (ex == 0) v = ldexpf((float)man, -24); /* zero and subnormals */
    else if (ex == 31) v = man ? NAN : INFINITY;
    else v = ldexpf((float)(man | 1024), (int)ex - 25);
    return sign ? -v : v;
}

static float element(const dp_st_tensor *t, size_t i)
{
    const uint8_t *b = t->data;
    switch (t->dtype) {
    case DP_ST_F64: {
        double v;
        memcpy(&v, b + 8 * i, 8);
        return (float)v;
    }
    case DP_ST_F16: {
        uint16_t h;
        memcpy(&h, b + 2 * i, 2);
        return half_to_float(h);
    }
    case DP_ST_BF16: {
        uint16_t h;
        memcpy(&h, b + 2 * i, 2);
        uint32_t u = (uint32_t)h << 16;
        float v;
        memcpy(&v, &u, 4);
        return v;
    }
    default: {
        float v;
        memcpy(&v, b + 4 * i, 4);
        return v;
    }
    }
}

static const dp_param *param_named(const dp_params *p, const char *name)
{
    for (int i = 0; i < p->count; i++)
        if (!strcmp(p->items[i]->name, name)) return p->items[i];
    return NULL;
}

/* PyTorch's batch-norm step counter next to a batch-norm of the registry. */
static int bn_counter(const dp_params *p, const dp_st_tensor *t)
{
    const char *suffix = ".num_batches_tracked";
    size_t ln = strlen(t->name), ls = strlen(suffix);
    if (ln <= ls || strcmp(t->name + ln - ls, suffix) || t->end - t->begin > 8) return 0;
    char mean[160];
    snprintf(mean, sizeof mean, "%.*s.running_mean", (int)(ln - ls), t->name);
    return param_named(p, mean) != NULL;
}

/* Appends ", name" to skipped; what does not fit ends in "...". */
static void note_skipped(char *skipped, size_t cap, const char *name)
{
    if (!skipped || !cap) return;
    size_t len = strlen(skipped);
    if (len >= 3 && !strcmp(skipped + len - 3, "...")) return;
    int n = snprintf(skipped + len, cap - len, "%s%s", len ? ", " : "", name);
    if (n < 0 || (size_t)n >= cap - len) {
        size_t at = cap >= 4 ? cap - 4 : 0;
        snprintf(skipped + at, cap - at, "...");
    }
}

dp_status dp_safetensors_check_params(const dp_safetensors *f, const dp_params *p, int partial, char *skipped,
                                      size_t cap)
{
    if (skipped && cap) skipped[0] = 0;
    char a[160], b[160];
    for (int i = 0; i < f->n; i++) {
        const dp_st_tensor *t = &f->t[i];
        if (param_named(p, t->name) || bn_counter(p, t)) continue;
        dp_st_shape_text(t->ndim, t->shape, a, sizeof a);
        if (!partial)
            return dp_errorf(DP_ERR_FORMAT, "%s: tensor '%s' %s is not a parameter or buffer of the model", f->path,
                             DP_ESC(t->name), a);
        note_skipped(skipped, cap, t->name);
    }
    for (int i = 0; i < p->count; i++) {
        const dp_param *it = p->items[i];
        const dp_st_tensor *t = dp_safetensors_find(f, it->name);
        int64_t ms[DP_ST_MAX_DIMS];
        for (int d = 0; d < it->t.ndim && d < DP_ST_MAX_DIMS; d++) ms[d] = it->t.shape[d];
        dp_st_shape_text(it->t.ndim, ms, b, sizeof b);
        if (!t)
            return dp_errorf(DP_ERR_FORMAT, "%s: the model's %s '%s' %s is not in the file", f->path,
                             it->is_buffer ? "buffer" : "parameter", it->name, b);
        int same = t->ndim == it->t.ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == ms[d];
        dp_st_shape_text(t->ndim, t->shape, a, sizeof a);
        if (!same)
            return dp_errorf(DP_ERR_FORMAT, "%s: tensor '%s' has shape %s in the file, the model's is %s", f->path,
                             DP_ESC(t->name), a, b);
        if (t->dtype != DP_ST_F32 && t->dtype != DP_ST_F64 && t->dtype != DP_ST_F16 && t->dtype != DP_ST_BF16)
            return dp_errorf(DP_ERR_FORMAT, "%s: tensor '%s' has dtype %s; parameters load from F32, F64, F16 or BF16",
                             f->path, DP_ESC(t->name), dtypes[t->dtype].name);
        for (size_t k = 0; k < (size_t)it->t.n; k++)
            if (!isfinite(element(t, k)))
                return dp_errorf(DP_ERR_FORMAT, "%s: tensor '%s': element %zu is not finite as a float32", f->path,
                                 DP_ESC(t->name), k);
    }
    return DP_OK;
}

dp_status dp_safetensors_load_params(const dp_safetensors *f, dp_params *p, int partial, char *skipped, size_t cap)
{
    dp_status rc = dp_safetensors_check_params(f, p, partial, skipped, cap);
    if (rc != DP_OK) return rc;
    for (int i = 0; i < p->count; i++) {
        dp_param *it = p->items[i];
        const dp_st_tensor *t = dp_safetensors_find(f, it->name);
        if (t->dtype == DP_ST_F32) memcpy(it->t.data, t->data, (size_t)it->t.n * sizeof(float));
        else
            for (size_t k = 0; k < (size_t)it->t.n; k++) it->t.data[k] = element(t, k);
    }
    return DP_OK;
}
