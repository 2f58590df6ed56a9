/* IDX importer: any u8 image/label pair (MNIST, Fashion-MNIST, KMNIST,
 * EMNIST ...) -> image shards + manifest.txt. Labels are loaded whole (one
 * byte a record) and checked first; images are streamed one record at a time,
 * so memory does not grow with the data set. Global record order is IDX order
 * within each split; a held-out split keeps the order of its records too. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/fsutil.h"
#include "dptrain/import.h"

enum { IDX_LABEL_HEADER = 8 }; /* bytes before a labels file's first label */

/* One pair's labels (whole) and its images' header, checked against each other. */
typedef struct idx_pair {
    const char *images, *labels;
    dp_idx lab;
    uint32_t dims[3]; /* images: N, H, W */
} idx_pair;

static dp_status pair_open(idx_pair *p, const char *images, const char *labels, dp_import_stats *st)
{
    p->images = images;
    p->labels = labels;
    dp_status rc = dp_idx_load(labels, 1, &p->lab);
    dp_idx_stream *s = NULL;
    if (rc == DP_OK)
        rc = dp_idx_open(images, 3, &s, p->dims); /* the header only: the images come later */
    dp_idx_close(s);
    if (rc != DP_OK)
        return rc;
    dp_import_count_input(st, labels);
    if (p->dims[0] != p->lab.dims[0])
        return dp_errorf(DP_ERR_FORMAT, "%s: offset 4: %" PRIu32 " labels but %s holds %" PRIu32 " images", labels,
                         p->lab.dims[0], images, p->dims[0]);
    return DP_OK;
}

/* Labels below `classes`, or (classes == 0) the largest + 1 into *classes. */
static dp_status check_labels(const idx_pair *p, int *classes, int fixed)
{
    for (size_t i = 0; i < p->lab.size; i++) {
        int v = p->lab.data[i];
        if (fixed && v >= *classes)
            return dp_errorf(DP_ERR_FORMAT, "%s: offset %zu: record %zu: label %d outside [0, %d)", p->labels,
                             IDX_LABEL_HEADER + i, i, v, *classes);
        if (!fixed && v + 1 > *classes)
            *classes = v + 1;
    }
    return DP_OK;
}

/* Streams p's images into the current split: every record, or only those
 * with is_val[i] == want (is_val NULL: all). */
static dp_status write_records(dp_dataset_writer *w, const idx_pair *p, const uint8_t *is_val, int want,
                               uint8_t *px, dp_import_stats *st)
{
    dp_idx_stream *s = NULL;
    uint32_t dims[3];
    dp_status rc = dp_idx_open(p->images, 3, &s, dims);
    if (rc == DP_OK && memcmp(dims, p->dims, sizeof dims) != 0) /* changed since the first look */
        rc = dp_errorf(DP_ERR_FORMAT, "%s: offset 4: the header changed while importing", p->images);
    size_t npx = (size_t)dims[1] * dims[2];
    for (uint32_t i = 0; rc == DP_OK && i < p->dims[0]; i++) {
        rc = dp_idx_read(s, px, npx);
        if (rc == DP_OK && (!is_val || is_val[i] == want))
            rc = dp_dataset_writer_add(w, p->lab.data[i], px);
    }
    if (rc == DP_OK)
        rc = dp_idx_finish(s);
    dp_idx_close(s);
    if (rc == DP_OK)
        dp_import_count_input(st, p->images);
    return rc;
}

/* Opens the pairs and checks them against each other and the classes. */
static dp_status check_input(const dp_idx_import *in, idx_pair *tr, idx_pair *te, int *classes, dp_import_stats *st)
{
    if (!in->images || !in->labels || !in->test_images != !in->test_labels)
        return dp_errorf(DP_ERR_ARG, "idx import: images and labels come in pairs");
    if (in->test_images && in->val_split > 0)
        return dp_errorf(DP_ERR_ARG, "idx import: a test pair and a validation split exclude each other");
    if (!(in->val_split >= 0 && in->val_split < 1))
        return dp_errorf(DP_ERR_ARG, "idx import: validation fraction %g outside [0, 1)", in->val_split);
    dp_status rc = pair_open(tr, in->images, in->labels, st);
    if (rc == DP_OK && in->test_images)
        rc = pair_open(te, in->test_images, in->test_labels, st);
    if (rc != DP_OK)
        return rc;
    if (in->height && (tr->dims[1] != in->height || tr->dims[2] != in->width))
        return dp_errorf(DP_ERR_FORMAT, "%s: offset 8: images are %" PRIu32 "x%" PRIu32 ", expected %" PRIu32
                         "x%" PRIu32, tr->images, tr->dims[1], tr->dims[2], in->height, in->width);
    if (in->test_images && (te->dims[1] != tr->dims[1] || te->dims[2] != tr->dims[2]))
        return dp_errorf(DP_ERR_FORMAT, "%s: offset 8: images are %" PRIu32 "x%" PRIu32 ", the train images (%s) %"
                         PRIu32 "x%" PRIu32, te->images, te->dims[1], te->dims[2], tr->images, tr->dims[1],
                         tr->dims[2]);
    *classes = in->classes;
    int fixed = in->classes > 0;
    rc = check_labels(tr, classes, fixed);
    if (rc == DP_OK && in->test_images)
        rc = check_labels(te, classes, fixed);
    return rc;
}

dp_status dp_import_idx(const dp_idx_import *in, const dp_import_opts *o, dp_import_stats *st_out)
{
    dp_import_stats st = {0};
    if (st_out)
        *st_out = st;
    idx_pair tr = {0}, te = {0};
    int classes = 0;
    uint8_t *is_val = NULL, *px = NULL;
    dp_dataset_writer *w = NULL;
    /* out_dir stays as it is until the new dataset is complete (dp_dataset_dir) */
    dp_status rc = check_input(in, &tr, &te, &classes, &st);
    uint64_t n = tr.dims[0], nval = 0;
    if (rc == DP_OK && in->val_split > 0) {
        int32_t *lab = malloc(n * sizeof *lab + 1);
        is_val = malloc(n + 1);
        if (!lab || !is_val) {
            rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory for %" PRIu64 " labels", in->labels, n);
        } else {
            for (uint64_t i = 0; i < n; i++)
                lab[i] = tr.lab.data[i];
            dp_stratified_holdout(lab, (long)n, classes, in->val_split, is_val);
            for (uint64_t i = 0; i < n; i++)
                nval += is_val[i];
        }
        free(lab);
    }
    if (rc == DP_OK && !(px = malloc((size_t)tr.dims[1] * tr.dims[2])))
        rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory", in->images);
    dp_shard_schema schema = dp_shard_schema_image(1, tr.dims[1], tr.dims[2], (uint32_t)classes);
    dp_import_opts oo = *o;
    if (!oo.name)
        oo.name = "idx";
    if (rc == DP_OK)
        rc = dp_import_begin(&oo, &schema, &w);
    if (rc == DP_OK && in->class_names)
        rc = dp_dataset_writer_classes(w, classes, in->class_names);
    if (rc == DP_OK)
        rc = dp_dataset_writer_split(w, "train", n - nval, o->nshards);
    if (rc == DP_OK)
        rc = write_records(w, &tr, is_val, 0, px, &st);
    if (rc == DP_OK && (in->test_images || nval > 0))
        rc = dp_dataset_writer_split(w, "test", in->test_images ? te.dims[0] : nval, o->nshards);
    if (rc == DP_OK && in->test_images)
        rc = write_records(w, &te, NULL, 0, px, &st);
    else if (rc == DP_OK && nval > 0)
        rc = write_records(w, &tr, is_val, 1, px, &st);
    if (rc == DP_OK) {
        rc = dp_dataset_writer_commit(w, &st);
        w = NULL;
    }
    dp_dataset_writer_abort(w);
    dp_idx_free(&tr.lab);
    dp_idx_free(&te.lab);
    free(is_val);
    free(px);
    if (rc == DP_OK && st_out)
        *st_out = st;
    return rc;
}

dp_status dp_import_fashion_mnist_to(const char *idx_dir, const dp_import_opts *o, dp_import_stats *st)
{
    static const char *const names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    static const char *const files[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    if (st)
        memset(st, 0, sizeof *st);
    if (o->nshards < 1 || o->nshards > DP_DATASET_MAX_SHARDS)
        return dp_errorf(DP_ERR_ARG, "import: %d shards, want 1..%d", o->nshards, DP_DATASET_MAX_SHARDS);
    char path[4][4096];
    for (int i = 0; i < 4; i++) {
        dp_status rc = dp_path_join(path[i], sizeof path[i], idx_dir, files[i]);
        if (rc != DP_OK)
            return rc;
    }
    const dp_idx_import in = {.images = path[0], .labels = path[1], .test_images = path[2], .test_labels = path[3],
                              .classes = 10, .height = 28, .width = 28, .class_names = names};
    dp_import_opts oo = *o;
    if (!oo.name)
        oo.name = "fashion-mnist";
    return dp_import_idx(&in, &oo, st);
}

dp_status dp_import_fashion_mnist(const char *idx_dir, const char *out_dir, int nshards, dp_import_stats *st)
{
    const dp_import_opts o = {.out_dir = out_dir, .nshards = nshards};
    return dp_import_fashion_mnist_to(idx_dir, &o, st);
}
