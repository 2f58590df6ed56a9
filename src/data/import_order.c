/* Shared pieces of the image-folder, CSV and NPY importers (import_order.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/import_order.h"

dp_status dp_imp_start(const dp_import_opts *o, const dp_import_order *ord)
{
    DP_CHECK(o->nshards >= 1 && o->nshards <= DP_DATASET_MAX_SHARDS, "--shards: %d is out of range [1, %d]",
             o->nshards, DP_DATASET_MAX_SHARDS);
    DP_CHECK(ord->val_split >= 0 && ord->val_split < 1, "--val-split: %g is out of range [0, 1)", ord->val_split);
    DP_CHECK(o->out_dir && o->out_dir[0], "import: no output directory");
    return DP_OK; /* out_dir is left as it is until the new dataset is complete (dp_dataset_dir) */
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

typedef struct keyed { uint64_t key; int32_t i; } keyed;

static int keyed_cmp(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key ? 1 : (x->i > y->i) - (x->i < y->i);
}

dp_status dp_imp_order(long n, const dp_import_order *o, int split, int32_t **order)
{
    *order = NULL;
    if (n < 0 || n > INT32_MAX)
        return dp_errorf(DP_ERR_ARG, "import: %ld records, at most %d", n, INT32_MAX);
    int32_t *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    keyed *k = o->keep_order ? NULL : malloc((size_t)(n ? n : 1) * sizeof *k);
    if (!p || (!o->keep_order && !k)) {
        free(p);
        free(k);
        return dp_errorf(DP_ERR_NOMEM, "import: out of memory for the order of %ld records", n);
    }
    if (o->keep_order) {
        for (long i = 0; i < n; i++)
            p[i] = (int32_t)i;
    } else {
        uint64_t base = splitmix64(o->seed ^ splitmix64((uint64_t)split + 1));
        for (long i = 0; i < n; i++)
            k[i] = (keyed){splitmix64(base + (uint64_t)i), (int32_t)i};
        qsort(k, (size_t)n, sizeof *k, keyed_cmp);
        for (long i = 0; i < n; i++)
            p[i] = k[i].i;
        free(k);
    }
    *order = p;
    return DP_OK;
}

static void sanitize(char *out, size_t cap, const char *src, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                 ((c == '.' || c == '-') && i > 0);
        out[i] = ok ? c : '_';
    }
    out[len] = 0;
    if (!len)
        snprintf(out, cap, "dataset");
}

void dp_import_default_name(char *out, size_t cap, const char *path)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    size_t b = len;
    while (b > 0 && path[b - 1] != '/')
        b--;
    const char *src = path + b;
    len -= b;
    for (size_t i = len; i > 1; i--) /* drop an extension, not a leading dot */
        if (src[i - 1] == '.') {
            len = i - 1;
            break;
        }
    sanitize(out, cap, src, len);
}

dp_status dp_imp_begin(const dp_import_opts *o, const char *input, const dp_shard_schema *schema,
                       dp_dataset_writer **w)
{
    char name[DP_MANIFEST_NAME_MAX];
    dp_import_opts oo = *o;
    if (!oo.name) {
        dp_import_default_name(name, sizeof name, input);
        oo.name = name;
    }
    return dp_import_begin(&oo, schema, w);
}

double dp_imp_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
