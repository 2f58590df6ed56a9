/* Network descriptions: JSON text -> a checked layer tree (netdesc_internal.h), and back to canonical JSON.
 *
 * Every field of every layer is checked here, before any shape is known: its type, its range, and that the
 * layer type takes it at all, so that "kernal": 5 is an error rather than a silent 3. Shapes are the
 * builder's (netdesc_build.c). */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/netdesc.h"
#include "models/json_pos.h"
#include "models/netdesc_internal.h"

const char *const nd_kind_names[ND_KINDS] = {"conv",    "batchnorm", "relu",           "gelu",    "tanh",
                                             "sigmoid", "maxpool",   "avgpool",        "global_avgpool",
                                             "flatten", "linear",    "dropout",        "residual"};

typedef enum nd_field {
    F_TYPE, F_NAME, F_OUT, F_KERNEL, F_STRIDE, F_PADDING, F_DILATION, F_GROUPS, F_BIAS, F_EPS, F_MOMENTUM,
    F_AFFINE, F_P, F_LAYERS, F_COUNT
} nd_field;

static const char *const field_names[F_COUNT] = {"type",     "name",   "out",  "kernel", "stride",
                                                 "padding",  "dilation", "groups", "bias", "eps",
                                                 "momentum", "affine", "p",    "layers"};

#define B(f) (1u << (f))
#define COMMON_FIELDS (B(F_TYPE) | B(F_NAME))
/* The fields each type takes (its required ones in `required`). */
static const unsigned takes[ND_KINDS] = {
    [ND_CONV] = COMMON_FIELDS | B(F_OUT) | B(F_KERNEL) | B(F_STRIDE) | B(F_PADDING) | B(F_DILATION) | B(F_GROUPS) |
                B(F_BIAS),
    [ND_BATCHNORM] = COMMON_FIELDS | B(F_EPS) | B(F_MOMENTUM) | B(F_AFFINE),
    [ND_RELU] = COMMON_FIELDS, [ND_GELU] = COMMON_FIELDS, [ND_TANH] = COMMON_FIELDS, [ND_SIGMOID] = COMMON_FIELDS,
    [ND_MAXPOOL] = COMMON_FIELDS | B(F_KERNEL) | B(F_STRIDE) | B(F_PADDING),
    [ND_AVGPOOL] = COMMON_FIELDS | B(F_KERNEL) | B(F_STRIDE) | B(F_PADDING),
    [ND_GLOBAL_AVGPOOL] = COMMON_FIELDS, [ND_FLATTEN] = COMMON_FIELDS,
    [ND_LINEAR] = COMMON_FIELDS | B(F_OUT) | B(F_BIAS),
    [ND_DROPOUT] = COMMON_FIELDS | B(F_P),
    [ND_RESIDUAL] = COMMON_FIELDS | B(F_LAYERS),
};
static const unsigned required[ND_KINDS] = {
    [ND_CONV] = B(F_OUT), [ND_MAXPOOL] = B(F_KERNEL), [ND_AVGPOOL] = B(F_KERNEL), [ND_LINEAR] = B(F_OUT),
    [ND_DROPOUT] = B(F_P), [ND_RESIDUAL] = B(F_LAYERS),
};

typedef struct parser {
    const char *source;
    int layers; /* so far, against ND_MAX_LAYERS */
} parser;

dp_status nd_errorf(dp_status st, const char *source, const char *path, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return dp_errorf(st, "%s: %s%s%s", source, path, *path ? ": " : "", what);
}

#define bad(ps, path, ...) nd_errorf(DP_ERR_FORMAT, (ps)->source, (path), __VA_ARGS__)

static void list_fields(unsigned mask, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = 0;
    for (int f = 0; f < F_COUNT; f++)
        if (mask & B(f) && len < n) len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? " " : "", field_names[f]);
}

static void list_kinds(char *buf, size_t n)
{
    size_t len = 0;
    for (int k = 0; k < ND_KINDS && len < n; k++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s", k ? " " : "", nd_kind_names[k]);
}

/* Letters, digits and '_', with single dots between parts ("layer1.0"): a PyTorch state_dict prefix. */
static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= ND_NAME_CAP || s[0] == '.' || s[n - 1] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                 (c == '.' && s[i + 1] != '.');
        if (!ok) return 0;
    }
    return 1;
}

/* The description's name goes into the canonical JSON and messages as it is: printable ASCII, no escapes. */
static int printable(const char *s, size_t cap)
{
    size_t n = strlen(s);
    if (n == 0 || n >= cap) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\') return 0;
    return 1;
}

static dp_status get_int(const parser *ps, const nd_layer *l, const cJSON *v, const char *field, int lo, int *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return bad(ps, l->path, "field '%s' must be an integer", field);
    if (v->valuedouble < lo || v->valuedouble > INT_MAX)
        return bad(ps, l->path, "field '%s': %.17g is out of range [%d, %d]", field, v->valuedouble, lo, INT_MAX);
    *out = (int)v->valuedouble;
    return DP_OK;
}

/* A float in [lo, hi] (lo_open: lo itself excluded; hi_open likewise). */
static dp_status get_float(const parser *ps, const nd_layer *l, const cJSON *v, const char *field, double lo,
                           int lo_open, double hi, int hi_open, float *out)
{
    if (!cJSON_IsNumber(v)) return bad(ps, l->path, "field '%s' must be a number", field);
    double x = v->valuedouble;
    if (!isfinite(x) || x < lo || x > hi || (lo_open && x == lo) || (hi_open && x == hi))
        return bad(ps, l->path, "field '%s': %.17g is out of range %c%g, %g%c", field, x, lo_open ? '(' : '[', lo, hi,
                   hi_open ? ')' : ']');
    *out = (float)x;
    return DP_OK;
}

static dp_status get_bool(const parser *ps, const nd_layer *l, const cJSON *v, const char *field, int *out)
{
    if (!cJSON_IsBool(v)) return bad(ps, l->path, "field '%s' must be true or false", field);
    *out = cJSON_IsTrue(v);
    return DP_OK;
}

static dp_status parse_list(parser *ps, const cJSON *arr, const char *prefix, int depth, nd_layer **out, int *n);

static dp_status set_field(parser *ps, nd_layer *l, nd_field f, const cJSON *v, int depth)
{
    const char *fn = field_names[f];
    switch (f) {
    case F_TYPE: return DP_OK;
    case F_NAME:
        if (!cJSON_IsString(v) || !name_ok(v->valuestring))
            return bad(ps, l->path,
                       "field 'name' must be a string of 1 to %d letters, digits, '_' and inner single dots",
                       ND_NAME_CAP - 1);
        snprintf(l->name, sizeof l->name, "%s", v->valuestring);
        return DP_OK;
    case F_OUT:
        if (l->kind == ND_LINEAR && cJSON_IsString(v)) {
            if (strcmp(v->valuestring, "classes"))
                return bad(ps, l->path, "field 'out' must be an integer or \"classes\", not \"%s\"", v->valuestring);
            l->out = ND_CLASSES;
            return DP_OK;
        }
        return get_int(ps, l, v, fn, 1, &l->out);
    case F_KERNEL: return get_int(ps, l, v, fn, 1, &l->kernel);
    case F_STRIDE: return get_int(ps, l, v, fn, 1, &l->stride);
    case F_PADDING: return get_int(ps, l, v, fn, 0, &l->padding);
    case F_DILATION: return get_int(ps, l, v, fn, 1, &l->dilation);
    case F_GROUPS: return get_int(ps, l, v, fn, 1, &l->groups);
    case F_BIAS: return get_bool(ps, l, v, fn, &l->bias);
    case F_AFFINE: return get_bool(ps, l, v, fn, &l->affine);
    case F_EPS: return get_float(ps, l, v, fn, 0, 1, 1, 0, &l->eps);
    case F_MOMENTUM: return get_float(ps, l, v, fn, 0, 0, 1, 0, &l->momentum);
    case F_P: return get_float(ps, l, v, fn, 0, 0, 1, 1, &l->p);
    case F_LAYERS:
        if (depth + 1 > ND_MAX_DEPTH)
            return bad(ps, l->path, "residuals nest deeper than %d levels", ND_MAX_DEPTH);
        return parse_list(ps, v, l->path, depth + 1, &l->body, &l->nbody);
    case F_COUNT: break;
    }
    return DP_OK;
}

static dp_status parse_layer(parser *ps, const cJSON *o, const char *prefix, int index, int depth, nd_layer *l)
{
    char path[ND_PATH_CAP];
    snprintf(path, sizeof path, "%s%slayers[%d]", prefix, *prefix ? " " : "", index);
    snprintf(l->path, sizeof l->path, "%s", path);
    if (!cJSON_IsObject(o)) return bad(ps, path, "a layer must be a JSON object");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    if (!t) return bad(ps, path, "field 'type' is missing");
    char known[256];
    list_kinds(known, sizeof known);
    if (!cJSON_IsString(t)) return bad(ps, path, "field 'type' must be a string (one of: %s)", known);
    int k = 0;
    while (k < ND_KINDS && strcmp(t->valuestring, nd_kind_names[k])) k++;
    if (k == ND_KINDS) return bad(ps, path, "unknown type '%.64s' (known: %s)", t->valuestring, known);
    l->kind = (nd_kind)k;
    snprintf(l->path, sizeof l->path, "%.220s (%s)", path, nd_kind_names[k]);
    snprintf(l->name, sizeof l->name, "%d", index);
    l->kernel = l->kind == ND_CONV ? 3 : 0;
    l->stride = l->kind == ND_CONV ? 1 : 0; /* pools: the kernel, once known */
    l->dilation = l->groups = l->bias = l->affine = 1;
    l->eps = 1e-5f;
    l->momentum = 0.1f;
    unsigned seen = 0;
    for (const cJSON *v = o->child; v; v = v->next) {
        int f = 0;
        while (f < F_COUNT && strcmp(v->string, field_names[f])) f++;
        if (f == F_COUNT || !(takes[k] & B(f))) {
            char fields[256];
            list_fields(takes[k], fields, sizeof fields);
            return bad(ps, l->path, "unknown field '%.64s' (%s takes: %s)", v->string, nd_kind_names[k], fields);
        }
        if (seen & B(f)) return bad(ps, l->path, "field '%s' appears twice", field_names[f]);
        seen |= B(f);
        dp_status rc = set_field(ps, l, (nd_field)f, v, depth);
        if (rc != DP_OK) return rc;
    }
    unsigned missing = required[k] & ~seen;
    for (int f = 0; f < F_COUNT; f++)
        if (missing & B(f)) return bad(ps, l->path, "field '%s' is missing", field_names[f]);
    if ((l->kind == ND_MAXPOOL || l->kind == ND_AVGPOOL) && !(seen & B(F_STRIDE))) l->stride = l->kernel;
    /* PyTorch's rule: a window that could hold padding only would have no cell to take */
    if ((l->kind == ND_MAXPOOL || l->kind == ND_AVGPOOL) && l->padding > l->kernel / 2)
        return bad(ps, l->path, "padding %d is more than half the kernel %d", l->padding, l->kernel);
    return DP_OK;
}

static dp_status parse_list(parser *ps, const cJSON *arr, const char *prefix, int depth, nd_layer **out, int *n)
{
    const char *where = *prefix ? prefix : "";
    if (!cJSON_IsArray(arr)) return bad(ps, where, "'layers' must be a list of layers");
    int count = cJSON_GetArraySize(arr);
    if (count == 0) return bad(ps, where, "'layers' is empty");
    if (count > ND_MAX_LAYERS - ps->layers) return bad(ps, where, "more than %d layers", ND_MAX_LAYERS);
    ps->layers += count;
    nd_layer *ls = calloc((size_t)count, sizeof *ls);
    if (!ls) return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", ps->source);
    *out = ls;
    *n = count;
    int i = 0;
    for (const cJSON *o = arr->child; o; o = o->next, i++) {
        dp_status rc = parse_layer(ps, o, prefix, i, depth, &ls[i]);
        if (rc != DP_OK) {
            *n = i + 1; /* the layers parsed so far, for the caller's free */
            return rc;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(ls[j].name, ls[i].name))
                return bad(ps, ls[i].path, "name '%s' is already %s's", ls[i].name, ls[j].path);
    }
    return DP_OK;
}

dp_status nd_parse(const char *json, const char *source, nd_desc *out)
{
    memset(out, 0, sizeof *out);
    parser ps = {source, 0};
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
    if (!root) {
        int line, col;
        dp_json_line_col(json, end ? end : json, &line, &col);
        return dp_errorf(DP_ERR_FORMAT, "%s: JSON syntax error at line %d, column %d", source, line, col);
    }
    dp_status rc = DP_OK;
    if (!cJSON_IsObject(root)) rc = bad(&ps, "", "the description must be a JSON object {\"name\": .., \"layers\": [..]}");
    for (const cJSON *v = rc == DP_OK ? root->child : NULL; v && rc == DP_OK; v = v->next) {
        if (!strcmp(v->string, "name")) {
            if (!cJSON_IsString(v) || !printable(v->valuestring, sizeof out->name))
                rc = bad(&ps, "", "field 'name' must be a string of 1 to %zu printable characters without '\"' or '\\'",
                         sizeof out->name - 1);
            else
                snprintf(out->name, sizeof out->name, "%s", v->valuestring);
        } else if (strcmp(v->string, "layers")) {
            rc = bad(&ps, "", "unknown field '%.64s' (a description takes: name layers)", v->string);
        }
    }
    if (rc == DP_OK) {
        const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
        if (!layers) rc = bad(&ps, "", "field 'layers' is missing");
        else rc = parse_list(&ps, layers, "", 0, &out->layers, &out->n);
    }
    cJSON_Delete(root);
    if (rc == DP_OK && !out->name[0]) snprintf(out->name, sizeof out->name, "net");
    if (rc != DP_OK) nd_desc_free(out);
    return rc;
}

dp_status dp_netdesc_check(const char *json, const char *source)
{
    nd_desc d;
    dp_status rc = nd_parse(json, source, &d);
    if (rc == DP_OK) nd_desc_free(&d);
    return rc;
}

static void free_list(nd_layer *ls, int n)
{
    for (int i = 0; i < n; i++) free_list(ls[i].body, ls[i].nbody);
    free(ls);
}

void nd_desc_free(nd_desc *d)
{
    if (!d) return;
    free_list(d->layers, d->n);
    d->layers = NULL;
    d->n = 0;
}

/* ------------------------------------------------------------ canonical JSON */

typedef struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

/* The shortest %g that reads back as the same float. */
static void put_float(sbuf *b, const char *key, float x)
{
    char t[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, (double)x);
        if (strtof(t, NULL) == x) break;
    }
    put(b, ",\"%s\":%s", key, t);
}

static void put_list(sbuf *b, const nd_layer *ls, int n)
{
    put(b, "[");
    for (int i = 0; i < n; i++) {
        const nd_layer *l = &ls[i];
        put(b, "%s{\"type\":\"%s\",\"name\":\"%s\"", i ? "," : "", nd_kind_names[l->kind], l->name);
        switch (l->kind) {
        case ND_CONV:
            put(b, ",\"out\":%d,\"kernel\":%d,\"stride\":%d,\"padding\":%d,\"dilation\":%d,\"groups\":%d,\"bias\":%s",
                l->out, l->kernel, l->stride, l->padding, l->dilation, l->groups, l->bias ? "true" : "false");
            break;
        case ND_BATCHNORM:
            put_float(b, "eps", l->eps);
            put_float(b, "momentum", l->momentum);
            put(b, ",\"affine\":%s", l->affine ? "true" : "false");
            break;
        case ND_MAXPOOL:
        case ND_AVGPOOL: put(b, ",\"kernel\":%d,\"stride\":%d,\"padding\":%d", l->kernel, l->stride, l->padding); break;
        case ND_LINEAR:
            if (l->out == ND_CLASSES) put(b, ",\"out\":\"classes\"");
            else put(b, ",\"out\":%d", l->out);
            put(b, ",\"bias\":%s", l->bias ? "true" : "false");
            break;
        case ND_DROPOUT: put_float(b, "p", l->p); break;
        case ND_RESIDUAL:
            put(b, ",\"layers\":");
            put_list(b, l->body, l->nbody);
            break;
        default: break;
        }
        put(b, "}");
    }
    put(b, "]");
}

char *nd_canonical(const nd_desc *d)
{
    sbuf b = {0};
    put(&b, "{\"name\":\"%s\",\"layers\":", d->name);
    put_list(&b, d->layers, d->n);
    put(&b, "}");
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
