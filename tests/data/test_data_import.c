/* The IDX and CIFAR importers on tiny files written here in the exact layouts:
 * records land in order in the right splits with the right labels and names,
 * and every bad input is refused naming the file and the record or offset,
 * leaving no manifest and none of the shards the import wrote. */
#include <criterion/criterion.h>
#include "timeout.h"
#include "test_data_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "dptrain/import.h"

static char dir[256], in_dir[300], out_dir[300];

static void setup(void)
{
    td_tmpdir(dir, sizeof dir);
    td_path(in_dir, sizeof in_dir, dir, "in");
    td_path(out_dir, sizeof out_dir, dir, "out");
    cr_assert_eq(mkdir(in_dir, 0755), 0);
}

static void teardown(void) { td_rmtree(dir); }

TestSuite(data_import, .init = setup, .fini = teardown, .timeout = DP_TIMEOUT(30));

/* dir/in/name; the strings live on for the next 255 calls (a test makes far fewer) */
static const char *in_path(const char *name)
{
    static char p[256][512];
    static int k;
    k = (k + 1) % 256;
    td_path(p[k], sizeof p[k], in_dir, name);
    return p[k];
}

static dp_import_opts opts(int nshards)
{
    return (dp_import_opts){.out_dir = out_dir, .name = "t", .nshards = nshards};
}

/* A failed import leaves nothing of its own: no dataset where there was none, and no
 * temporary sibling "<out>.tmp.*" of the output directory. */
static void expect_no_dataset(void)
{
    char p[512], cmd[700];
    td_path(p, sizeof p, out_dir, "manifest.txt");
    cr_assert_neq(access(p, F_OK), 0, "a failed import left a manifest");
    td_path(p, sizeof p, out_dir, "train-00000.dps");
    cr_assert_neq(access(p, F_OK), 0, "a failed import left its shards");
    snprintf(cmd, sizeof cmd, "ls -d '%s'.tmp.* >/dev/null 2>&1", out_dir);
    cr_assert_neq(system(cmd), 0, "a failed import left its temporary directory");
}

static void expect_error(dp_status rc, dp_status want, const char *file, const char *what)
{
    cr_assert_eq(rc, want, "got %s: %s", dp_status_name(rc), dp_errmsg());
    cr_assert(strstr(dp_errmsg(), file), "message does not name %s: %s", file, dp_errmsg());
    cr_assert(strstr(dp_errmsg(), what), "message lacks '%s': %s", what, dp_errmsg());
    expect_no_dataset();
}

/* ------------------------------------------------------------------ IDX */

/* An IDX file: magic, big-endian dims, then data[i] = f(i); gzip'd or plain. */
static void write_idx(const char *path, uint32_t magic, int ndim, const uint32_t *dims, size_t n,
                      uint8_t (*f)(size_t), int gz)
{
    size_t hlen = 4 + 4 * (size_t)ndim;
    uint8_t *b = malloc(hlen + n + 1);
    for (int i = -1; i < ndim; i++) {
        uint32_t v = i < 0 ? magic : dims[i];
        uint8_t *p = b + 4 + 4 * i;
        p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
    }
    for (size_t i = 0; i < n; i++)
        b[hlen + i] = f(i);
    if (gz) {
        gzFile g = gzopen(path, "wb");
        cr_assert_not_null(g);
        cr_assert_eq(gzwrite(g, b, (unsigned)(hlen + n)), (int)(hlen + n));
        cr_assert_eq(gzclose(g), Z_OK);
    } else {
        td_write(path, b, hlen + n);
    }
    free(b);
}

static uint8_t px_of(size_t i) { return (uint8_t)(i / 6); }      /* image g of 2x3: all pixels g */
static uint8_t label_of(size_t i) { return (uint8_t)(i % 3); }   /* labels 0 1 2 0 1 2 ... */
static uint8_t label_big(size_t i) { return (uint8_t)(i == 4 ? 7 : i % 3); }

/* n images of 2x3 (image g has every pixel g) and labels g % 3. */
static void write_pair(const char *img, const char *lab, uint32_t n, uint32_t nlab, int gz)
{
    uint32_t dims[3] = {n, 2, 3};
    write_idx(in_path(img), 0x803, 3, dims, (size_t)n * 6, px_of, gz);
    dims[0] = nlab;
    write_idx(in_path(lab), 0x801, 1, dims, nlab, label_of, gz);
}

static void load(const char *split, long n, dp_image_set *s)
{
    cr_assert_eq(dp_image_set_load(out_dir, split, 0, 1, 0, s), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(s->n, n, "%s: %ld records", split, s->n);
}

Test(data_import, idx_with_a_test_pair)
{
    write_pair("tr-img", "tr-lab.gz", 10, 10, 0); /* plain images, gzip'd labels: both work */
    write_pair("te-img.gz", "te-lab", 4, 4, 1);
    dp_idx_import in = {.images = in_path("tr-img"), .labels = in_path("tr-lab.gz"), .test_images = in_path("te-img.gz"),
                        .test_labels = in_path("te-lab")};
    dp_import_opts o = opts(3);
    dp_import_stats st;
    cr_assert_eq(dp_import_idx(&in, &o, &st), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(st.train_records, 10);
    cr_assert_eq(st.test_records, 4);
    cr_assert_eq(st.train_shards, 3);
    cr_assert_eq(st.test_shards, 3);
    cr_assert_gt(st.in_bytes, 10 * 6);
    dp_manifest *m = NULL;
    cr_assert_eq(dp_manifest_load(out_dir, &m), DP_OK, "%s", dp_errmsg());
    cr_assert_str_eq(m->name, "t");
    cr_assert_eq(m->schema.image.height, 2);
    cr_assert_eq(m->schema.image.width, 3);
    cr_assert_eq(m->schema.image.classes, 3, "classes: the largest label + 1");
    cr_assert_eq(m->nstats, 1);
    cr_assert_float_eq(m->mean[0], 4.5 / 255, 1e-5);
    cr_assert_null(m->class_names);
    dp_manifest_free(m);
    dp_image_set s;
    load("train", 10, &s);
    for (int g = 0; g < 10; g++) {
        cr_assert_eq(s.labels[g], g % 3);
        cr_assert_eq(s.pixels[g * 6 + 5], g);
    }
    dp_image_set_free(&s);
    load("test", 4, &s);
    dp_image_set_free(&s);
}

Test(data_import, idx_val_split_is_stratified_and_ordered)
{
    write_pair("img.gz", "lab.gz", 30, 30, 1);
    dp_idx_import in = {.images = in_path("img.gz"), .labels = in_path("lab.gz"), .val_split = 0.2, .classes = 5};
    dp_import_opts o = opts(2);
    cr_assert_eq(dp_import_idx(&in, &o, NULL), DP_OK, "%s", dp_errmsg());
    dp_image_set tr, va;
    load("train", 24, &tr);
    load("test", 6, &va);
    cr_assert_eq(tr.classes, 5, "--classes is kept even above the largest label");
    int per_class[3] = {0};
    /* class c's records are g = c, c+3, ...; the 5th and 10th of each (j = 4, 9) are held out */
    for (int i = 0; i < 6; i++) {
        int g = va.pixels[i * 6];
        cr_assert_eq(g % 3, va.labels[i]);
        cr_assert(g / 3 == 4 || g / 3 == 9, "record %d held out", g);
        per_class[va.labels[i]]++;
        if (i)
            cr_assert_gt(g, va.pixels[(i - 1) * 6], "held-out records keep their order");
    }
    for (int c = 0; c < 3; c++)
        cr_assert_eq(per_class[c], 2);
    for (int i = 1; i < 24; i++)
        cr_assert_gt(tr.pixels[i * 6], tr.pixels[(i - 1) * 6]);
    dp_image_set_free(&tr);
    dp_image_set_free(&va);
}

Test(data_import, idx_bad_inputs)
{
    dp_import_opts o = opts(2);
    dp_idx_import in = {.images = in_path("img"), .labels = in_path("lab")};

    write_pair("img", "lab", 10, 9, 0);
    expect_error(dp_import_idx(&in, &o, NULL), DP_ERR_FORMAT, in_path("lab"), "9 labels but");

    uint32_t dims[3] = {10, 2, 3};
    write_pair("img", "lab", 10, 10, 0);
    write_idx(in_path("img"), 0x802, 3, dims, 60, px_of, 0);
    expect_error(dp_import_idx(&in, &o, NULL), DP_ERR_FORMAT, in_path("img"), "offset 0: bad IDX magic 0x00000802");

    write_idx(in_path("img"), 0x803, 3, dims, 59, px_of, 1); /* a gzip'd stream one byte short */
    expect_error(dp_import_idx(&in, &o, NULL), DP_ERR_FORMAT, in_path("img"), "offset 75: truncated");

    write_idx(in_path("img"), 0x803, 3, dims, 60, px_of, 0);
    write_idx(in_path("lab"), 0x801, 1, dims, 10, label_big, 0);
    in.classes = 3;
    expect_error(dp_import_idx(&in, &o, NULL), DP_ERR_FORMAT, in_path("lab"), "offset 12: record 4: label 7 outside [0, 3)");
    in.classes = 0;

    write_pair("img", "lab", 10, 10, 0);
    uint32_t other[3] = {4, 3, 2};
    write_idx(in_path("te"), 0x803, 3, other, 24, px_of, 0);
    write_idx(in_path("tl"), 0x801, 1, other, 4, label_of, 0);
    in.test_images = in_path("te");
    in.test_labels = in_path("tl");
    expect_error(dp_import_idx(&in, &o, NULL), DP_ERR_FORMAT, in_path("te"), "images are 3x2, the train images");
    in.val_split = 0.5;
    cr_assert_eq(dp_import_idx(&in, &o, NULL), DP_ERR_ARG, "a test pair and --val-split");
    in.test_labels = NULL;
    in.val_split = 0;
    cr_assert_eq(dp_import_idx(&in, &o, NULL), DP_ERR_ARG, "test images without test labels");
    in.test_images = NULL;

    in.labels = in_path("missing");
    expect_error(dp_import_idx(&in, &o, NULL), DP_ERR_IO, in_path("missing"), "open");
}

/* A good import, then one that fails half-way through the images: the old
 * dataset is gone and the new import's shards are removed. */
Test(data_import, idx_failure_midway_leaves_nothing)
{
    write_pair("img", "lab", 10, 10, 0);
    dp_idx_import in = {.images = in_path("img"), .labels = in_path("lab")};
    dp_import_opts o = opts(4);
    cr_assert_eq(dp_import_idx(&in, &o, NULL), DP_OK, "%s", dp_errmsg());
    /* truncated inside image 7 of a gzip'd stream: found only while streaming, after 2 shards are written */
    uint32_t dims[3] = {10, 2, 3};
    write_idx(in_path("img"), 0x803, 3, dims, 45, px_of, 1);
    dp_manifest *before = NULL, *after = NULL;
    cr_assert_eq(dp_manifest_load(out_dir, &before), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_import_idx(&in, &o, NULL), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "truncated"), "%s", dp_errmsg());
    /* the first import's dataset is whole: the failed one wrote beside it */
    cr_assert_eq(dp_manifest_load(out_dir, &after), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_manifest_hash(after), dp_manifest_hash(before));
    dp_manifest_free(before);
    dp_manifest_free(after);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls -d '%s'.tmp.* >/dev/null 2>&1", out_dir);
    cr_assert_neq(system(cmd), 0, "a failed import left its temporary directory");
}

Test(data_import, fashion_mnist_is_byte_identical_through_idx)
{
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0)
        cr_skip_test("Fashion-MNIST not installed");
    dp_import_stats st;
    cr_assert_eq(dp_import_fashion_mnist("/usr/share/datasets/fashion-mnist", out_dir, 4, &st), DP_OK, "%s",
                 dp_errmsg());
    dp_manifest *m = NULL;
    cr_assert_eq(dp_manifest_load(out_dir, &m), DP_OK, "%s", dp_errmsg());
    /* the crc32s of the shards the importer wrote before the dataset writer existed */
    const uint32_t crc[8] = {0x3f634238, 0xaea7a049, 0xc8017977, 0x9b32e347,
                             0x0593a637, 0xdd8015e8, 0x2cf3fe82, 0xd459e366};
    cr_assert_eq(m->nshards, 8);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(m->shards[i].crc32, crc[i], "shard %d", i);
    /* the statistics the loader's constants have always been */
    cr_assert_eq(m->mean[0], 0.286);
    cr_assert_eq(m->std[0], 0.353);
    cr_assert_str_eq(m->class_names[0], "T-shirt/top");
    cr_assert_str_eq(m->class_names[9], "Ankle boot");
    dp_manifest_free(m);
}

/* ---------------------------------------------------------------- CIFAR */

/* A CIFAR file of n records: label byte(s) (lab(i) or coarse/fine) then 3072 pixels, pixel p of record i =
 * (i + p) % 256. */
static void write_cifar(const char *name, int n, int label_bytes, int bad_at, int bad_label, long cut)
{
    size_t rec = (size_t)label_bytes + 3072;
    uint8_t *b = malloc(rec * (size_t)n + 1);
    for (int i = 0; i < n; i++) {
        uint8_t *r = b + rec * (size_t)i;
        if (label_bytes == 1) {
            r[0] = (uint8_t)(i % 10);
        } else {
            r[0] = (uint8_t)(i % 20);
            r[1] = (uint8_t)(i % 100);
        }
        if (i == bad_at)
            r[label_bytes - 1] = (uint8_t)bad_label;
        for (int p = 0; p < 3072; p++)
            r[label_bytes + p] = (uint8_t)(i + p);
    }
    td_write(in_path(name), b, rec * (size_t)n - (size_t)cut);
    free(b);
}

static void write_cifar10(int per_batch, int test)
{
    char name[32];
    for (int k = 1; k <= 5; k++) {
        snprintf(name, sizeof name, "data_batch_%d.bin", k);
        write_cifar(name, per_batch, 1, -1, 0, 0);
    }
    write_cifar("test_batch.bin", test, 1, -1, 0, 0);
}

Test(data_import, cifar10_round_trip_with_names)
{
    write_cifar10(3, 2);
    const char *meta = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
    td_write(in_path("batches.meta.txt"), meta, strlen(meta));
    dp_import_opts o = {.out_dir = out_dir, .nshards = 2};
    dp_import_stats st;
    cr_assert_eq(dp_import_cifar(in_dir, DP_CIFAR10, &o, &st), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(st.train_records, 15);
    cr_assert_eq(st.test_records, 2);
    cr_assert_eq(st.in_bytes, 17 * 3073, "in_bytes: the batches");
    dp_manifest *m = NULL;
    cr_assert_eq(dp_manifest_load(out_dir, &m), DP_OK, "%s", dp_errmsg());
    cr_assert_str_eq(m->name, "cifar10");
    cr_assert_eq(m->schema.image.channels, 3);
    cr_assert_eq(m->schema.image.height, 32);
    cr_assert_eq(m->schema.image.classes, 10);
    cr_assert_eq(m->nstats, 3);
    cr_assert_str_eq(m->class_names[1], "automobile");
    cr_assert_str_eq(m->class_names[9], "truck");
    dp_manifest_free(m);
    dp_image_set s;
    load("train", 15, &s);
    for (int g = 0; g < 15; g++) {
        int i = g % 3; /* record i of batch g / 3 */
        cr_assert_eq(s.labels[g], i % 10);
        cr_assert_eq(s.pixels[(size_t)g * 3072 + 1024], (uint8_t)(i + 1024), "green plane of record %d", g);
    }
    dp_image_set_free(&s);
}

Test(data_import, cifar100_fine_and_coarse)
{
    write_cifar("train.bin", 120, 2, -1, 0, 0);
    write_cifar("test.bin", 5, 2, -1, 0, 0);
    dp_import_opts o = opts(1);
    cr_assert_eq(dp_import_cifar(in_dir, DP_CIFAR100_FINE, &o, NULL), DP_OK, "%s", dp_errmsg());
    dp_image_set s;
    load("train", 120, &s);
    cr_assert_eq(s.classes, 100);
    cr_assert_eq(s.labels[117], 17);
    dp_image_set_free(&s);

    char names[512] = "";
    for (int c = 0; c < 20; c++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "super %d\r\n", c);
    td_write(in_path("coarse_label_names.txt"), names, strlen(names));
    cr_assert_eq(dp_import_cifar(in_dir, DP_CIFAR100_COARSE, &o, NULL), DP_OK, "%s", dp_errmsg());
    load("train", 120, &s);
    cr_assert_eq(s.classes, 20);
    cr_assert_eq(s.labels[117], 117 % 20);
    dp_image_set_free(&s);
    dp_manifest *m = NULL;
    cr_assert_eq(dp_manifest_load(out_dir, &m), DP_OK, "%s", dp_errmsg());
    cr_assert_str_eq(m->class_names[19], "super 19");
    dp_manifest_free(m);
}

Test(data_import, cifar_bad_inputs)
{
    dp_import_opts o = opts(2);
    write_cifar10(3, 2);
    write_cifar("data_batch_3.bin", 3, 1, -1, 0, 100); /* the last record 100 bytes short */
    expect_error(dp_import_cifar(in_dir, DP_CIFAR10, &o, NULL), DP_ERR_FORMAT, in_path("data_batch_3.bin"),
                 "record 2 at offset 6146: truncated (2973 of 3073 bytes)");

    write_cifar10(3, 2);
    write_cifar("data_batch_4.bin", 3, 1, 1, 10, 0);
    expect_error(dp_import_cifar(in_dir, DP_CIFAR10, &o, NULL), DP_ERR_FORMAT, in_path("data_batch_4.bin"),
                 "record 1 at offset 3073: label 10 outside [0, 10)");

    write_cifar10(3, 2);
    unlink(in_path("data_batch_5.bin"));
    expect_error(dp_import_cifar(in_dir, DP_CIFAR10, &o, NULL), DP_ERR_IO, in_path("data_batch_5.bin"), "open");

    write_cifar10(3, 2);
    td_write(in_path("batches.meta.txt"), "a\nb\n", 4);
    expect_error(dp_import_cifar(in_dir, DP_CIFAR10, &o, NULL), DP_ERR_FORMAT, in_path("batches.meta.txt"),
                 "2 class names, want 10");
    unlink(in_path("batches.meta.txt"));

    write_cifar("train.bin", 4, 2, 2, 100, 0); /* fine label 100 */
    write_cifar("test.bin", 2, 2, -1, 0, 0);
    expect_error(dp_import_cifar(in_dir, DP_CIFAR100_FINE, &o, NULL), DP_ERR_FORMAT, in_path("train.bin"),
                 "record 2 at offset 6149: fine label 100 outside [0, 100)");
    write_cifar("test.bin", 2, 2, -1, 0, 1);
    write_cifar("train.bin", 4, 2, -1, 0, 0);
    expect_error(dp_import_cifar(in_dir, DP_CIFAR100_COARSE, &o, NULL), DP_ERR_FORMAT, in_path("test.bin"),
                 "record 1 at offset 3074: truncated (3073 of 3074 bytes)");
}

/* A label error in the test file, after the train split's shards are written: they are removed. */
Test(data_import, cifar_failure_in_the_test_file_removes_the_train_shards)
{
    write_cifar10(3, 2);
    write_cifar("test_batch.bin", 2, 1, 1, 200, 0);
    dp_import_opts o = opts(2);
    expect_error(dp_import_cifar(in_dir, DP_CIFAR10, &o, NULL), DP_ERR_FORMAT, in_path("test_batch.bin"),
                 "label 200 outside [0, 10)");
    char p[512];
    td_path(p, sizeof p, out_dir, "train-00001.dps");
    cr_assert_neq(access(p, F_OK), 0);
    td_path(p, sizeof p, out_dir, "test-00000.dps");
    cr_assert_neq(access(p, F_OK), 0);
}
