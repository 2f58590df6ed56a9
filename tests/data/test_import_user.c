/* The user-data importers (import_user.h) on tiny files written here: image
 * folders (PNG/JPEG via libpng/libjpeg), CSV tables and .npy pairs. Good
 * inputs load back record for record; every bad input named in issue 20 is
 * refused with the file (and line/column, offset, folder) in the message,
 * and leaves no manifest behind. */
#include <criterion/criterion.h>
#include "timeout.h"
#include "test_data_util.h"
#include "test_image_util.h"
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dptrain/data.h"
#include "dptrain/import_user.h"

static char dir[256], out[400];

static dp_import_order ord; /* each test starts from input order, no hold-out */

static void setup(void)
{
    ord = (dp_import_order){.keep_order = 1};
    td_tmpdir(dir, sizeof dir);
    td_path(out, sizeof out, dir, "out");
}
static void teardown(void) { td_rmtree(dir); }

TestSuite(import_user, .init = setup, .fini = teardown, .timeout = DP_TIMEOUT(60));

static const char *tmp(const char *name)
{
    static char p[8][512];
    static int k;
    k = (k + 1) % 8;
    td_path(p[k], sizeof p[k], dir, name);
    return p[k];
}

/* overwrite: a test may import twice into out (the refusal itself: test_data_writer, shard_cli) */
static dp_import_opts opts(void) { return (dp_import_opts){.out_dir = out, .nshards = 2, .overwrite = 1}; }

static dp_status folder(const char *d, int h, int w, int c, dp_import_stats *st)
{
    dp_folder_import in = {.dir = d, .height = h, .width = w, .channels = c, .order = ord};
    dp_import_opts o = opts();
    return dp_import_image_folder(&in, &o, st);
}

/* Every record of `split` of the set in `out`: labels[i], values (record_size - 2 bytes each, for vectors
 * the pad then floats). Returns the count. */
static long load_split(const char *split, dp_manifest **mp, int32_t *labels, uint8_t *values, size_t vcap)
{
    dp_manifest *m;
    cr_assert_eq(dp_manifest_load(out, &m), DP_OK, "%s", dp_errmsg());
    long n = 0;
    size_t vb = m->schema.record_size - 2, off = 0;
    for (int s = 0; s < m->nshards; s++) {
        if (strcmp(m->shards[s].split, split))
            continue;
        char path[600];
        dp_shard_reader *r;
        cr_assert_eq(dp_manifest_open_shard(out, m, &m->shards[s], path, sizeof path, &r), DP_OK, "%s", dp_errmsg());
        for (;;) {
            const void *rec;
            size_t len;
            int eof;
            cr_assert_eq(dp_shard_reader_next(r, &rec, &len, &eof), DP_OK, "%s", dp_errmsg());
            if (eof)
                break;
            const uint8_t *b = rec;
            if (labels)
                labels[n] = b[0] | b[1] << 8;
            if (values) {
                cr_assert(off + vb <= vcap);
                memcpy(values + off, b + 2, vb);
                off += vb;
            }
            n++;
        }
        dp_shard_reader_close(r);
    }
    if (mp)
        *mp = m;
    else
        dp_manifest_free(m);
    return n;
}

static void expect_fail(dp_status rc, dp_status want, const char *a, const char *b)
{
    cr_assert_eq(rc, want, "status %d, want %d: %s", rc, want, dp_errmsg());
    cr_assert(strstr(dp_errmsg(), a), "message has '%s': %s", a, dp_errmsg());
    if (b)
        cr_assert(strstr(dp_errmsg(), b), "message has '%s': %s", b, dp_errmsg());
    char man[600]; /* a refused option leaves the out dir alone; a bad input leaves no dataset there */
    snprintf(man, sizeof man, "%s/manifest.txt", out);
    if (want != DP_ERR_ARG)
        cr_assert_neq(access(man, F_OK), 0, "no manifest after a failure");
}

/* ============================================================ image folder */

static void mkdirs(const char *rel)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    char *s = p + strlen(dir) + 1;
    for (char *q = s; *q; q++)
        if (*q == '/') {
            *q = 0;
            mkdir(p, 0755);
            *q = '/';
        }
    mkdir(p, 0755);
}

/* A grey h x w PNG at rel whose pixels are all v + (y * w + x). */
static void grey_png(const char *rel, int h, int w, int v)
{
    uint8_t px[64 * 64];
    for (int i = 0; i < h * w; i++)
        px[i] = (uint8_t)(v + i);
    cr_assert_eq(ti_write_png(tmp(rel), w, h, PNG_COLOR_TYPE_GRAY, 8, px, NULL, 0, NULL, 0, 0), 0);
}

Test(import_user, folder_classes_order_nested_skipped)
{
    mkdirs("img/dog/sub");
    mkdirs("img/cat");
    mkdirs("img/.hidden");
    grey_png("img/dog/b.png", 4, 3, 30);
    grey_png("img/dog/a.PNG", 4, 3, 20);
    grey_png("img/dog/sub/c.png", 4, 3, 40);
    grey_png("img/cat/z.png", 4, 3, 10);
    grey_png("img/.hidden/x.png", 4, 3, 99);
    grey_png("img/cat/.y.png", 4, 3, 99);
    td_write(tmp("img/cat/notes.txt"), "x", 1);
    dp_import_stats st;
    cr_assert_eq(folder(tmp("img"), 0, 0, 0, &st), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(st.train_records, 4);
    cr_assert_eq(st.test_records, 0);
    dp_manifest *m;
    int32_t lab[8];
    uint8_t px[8 * 12];
    cr_assert_eq(load_split("train", &m, lab, px, sizeof px), 4);
    cr_assert_eq(m->schema.kind, DP_SCHEMA_IMAGE_U8);
    cr_assert_eq(m->schema.image.channels, 1);
    cr_assert_eq(m->schema.image.height, 4);
    cr_assert_eq(m->schema.image.width, 3);
    cr_assert_eq(m->schema.image.classes, 2);
    cr_assert_str_eq(m->name, "img");
    cr_assert_eq(m->nclass_names, 2);
    cr_assert_str_eq(m->class_names[0], "cat");
    cr_assert_str_eq(m->class_names[1], "dog");
    const int want_lab[4] = {0, 1, 1, 1}, want_v[4] = {10, 20, 30, 40}; /* cat/z, dog/a, dog/b, dog/sub/c */
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(lab[i], want_lab[i], "record %d", i);
        for (int k = 0; k < 12; k++)
            cr_assert_eq(px[i * 12 + k], want_v[i] + k, "record %d pixel %d", i, k);
    }
    dp_manifest_free(m);
}

Test(import_user, folder_shuffled_is_a_permutation)
{
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 5; i++) {
            char rel[64];
            snprintf(rel, sizeof rel, "f/c%d/%d.png", c, i);
            if (i == 0) {
                char d[32];
                snprintf(d, sizeof d, "f/c%d", c);
                mkdirs(d);
            }
            grey_png(rel, 2, 2, c * 50 + i * 4);
        }
    ord.keep_order = 0;
    ord.seed = 7;
    cr_assert_eq(folder(tmp("f"), 0, 0, 0, NULL), DP_OK, "%s", dp_errmsg());
    int32_t lab[15];
    uint8_t px[15 * 4];
    cr_assert_eq(load_split("train", NULL, lab, px, sizeof px), 15);
    int seen[15] = {0}, in_order = 1;
    for (int r = 0; r < 15; r++) {
        int c = px[r * 4] / 50, i = (px[r * 4] % 50) / 4;
        cr_assert_eq(lab[r], c);
        seen[c * 5 + i]++;
        in_order &= c * 5 + i == r;
    }
    for (int k = 0; k < 15; k++)
        cr_assert_eq(seen[k], 1);
    cr_assert(!in_order, "seeded order differs from the folder order");
}

Test(import_user, folder_train_test_layout_and_rgb_jpeg)
{
    mkdirs("s/train/a");
    mkdirs("s/train/b");
    mkdirs("s/val/a");
    mkdirs("s/val/b");
    grey_png("s/train/a/1.png", 8, 8, 0);
    grey_png("s/train/b/1.png", 8, 8, 5);
    grey_png("s/val/a/1.png", 8, 8, 1);
    uint8_t rgb[8 * 8 * 3];
    for (int i = 0; i < (int)sizeof rgb; i++)
        rgb[i] = (uint8_t)(i * 3);
    cr_assert_eq(ti_write_jpeg(tmp("s/val/b/2.jpeg"), 8, 8, 3, rgb, 95), 0);
    dp_import_stats st;
    cr_assert_eq(folder(tmp("s"), 0, 0, 0, &st), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(st.train_records, 2);
    cr_assert_eq(st.test_records, 2);
    dp_manifest *m;
    int32_t lab[2];
    cr_assert_eq(load_split("test", &m, lab, NULL, 0), 2);
    cr_assert_eq(m->schema.image.channels, 3, "a colour JPEG makes the set RGB");
    cr_assert_eq(lab[0], 0);
    cr_assert_eq(lab[1], 1);
    dp_manifest_free(m);
    /* --val-split with its own test split is refused */
    ord.val_split = 0.5;
    expect_fail(folder(tmp("s"), 0, 0, 0, NULL), DP_ERR_ARG, "--val-split", "test split");
}

Test(import_user, folder_val_split_is_stratified)
{
    mkdirs("v/a");
    mkdirs("v/b");
    for (int i = 0; i < 10; i++) {
        char rel[32];
        snprintf(rel, sizeof rel, "v/a/%d.png", i);
        grey_png(rel, 2, 2, i);
        snprintf(rel, sizeof rel, "v/b/%d.png", i);
        if (i < 4)
            grey_png(rel, 2, 2, 100 + i);
    }
    ord.val_split = 0.25;
    dp_import_stats st;
    cr_assert_eq(folder(tmp("v"), 0, 0, 1, &st), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(st.test_records, 2 + 1); /* floor(10 / 4) + floor(4 / 4) */
    cr_assert_eq(st.train_records, 14 - 3);
    int32_t lab[4];
    cr_assert_eq(load_split("test", NULL, lab, NULL, 0), 3);
    cr_assert_eq(lab[0] + lab[1] + lab[2], 1);
}

Test(import_user, folder_resize_and_channels)
{
    mkdirs("r/x");
    grey_png("r/x/big.png", 8, 6, 0);
    grey_png("r/x/small.png", 2, 3, 0);
    cr_assert_eq(folder(tmp("r"), 4, 3, 3, NULL), DP_OK, "%s", dp_errmsg());
    dp_manifest *m;
    uint8_t px[2 * 3 * 12];
    cr_assert_eq(load_split("train", &m, NULL, px, sizeof px), 2);
    cr_assert_eq(m->schema.image.channels, 3);
    cr_assert_eq(m->schema.image.height, 4);
    cr_assert_eq(m->schema.image.width, 3);
    dp_manifest_free(m);
    /* big: 8x6 -> 4x3 is the mean of each 2x2 block, in all three planes */
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 3; x++) {
                int a = 2 * y * 6 + 2 * x, sum = a + (a + 1) + (a + 6) + (a + 7);
                cr_assert_eq(px[c * 12 + y * 3 + x], (sum + 2) / 4);
            }
}

Test(import_user, folder_mixed_sizes_name_two_files)
{
    mkdirs("m/a");
    mkdirs("m/b");
    grey_png("m/a/1.png", 4, 4, 0);
    grey_png("m/b/1.png", 5, 4, 0);
    expect_fail(folder(tmp("m"), 0, 0, 0, NULL), DP_ERR_FORMAT, "m/a/1.png is 4x4",
                "m/b/1.png is 5x4");
    cr_assert(strstr(dp_errmsg(), "--size"), "%s", dp_errmsg());
}

Test(import_user, folder_empty_class_and_no_classes)
{
    mkdirs("e/a");
    mkdirs("e/b");
    grey_png("e/a/1.png", 2, 2, 0);
    td_write(tmp("e/b/readme.txt"), "x", 1);
    expect_fail(folder(tmp("e"), 0, 0, 0, NULL), DP_ERR_FORMAT, "e/b: empty class",
                "1 others skipped");
    mkdirs("n");
    expect_fail(folder(tmp("n"), 0, 0, 0, NULL), DP_ERR_FORMAT, "no class sub-folders", NULL);
    expect_fail(folder(tmp("missing"), 0, 0, 0, NULL), DP_ERR_IO, "missing", NULL);
}

Test(import_user, folder_unreadable_image_is_named)
{
    mkdirs("u/a");
    grey_png("u/a/1.png", 2, 2, 0);
    td_write(tmp("u/a/2.jpg"), "not a jpeg", 10);
    expect_fail(folder(tmp("u"), 0, 0, 0, NULL), DP_ERR_FORMAT, "u/a/2.jpg",
                "not a PNG or JPEG");
    /* a truncated file whose header reads fine fails while writing: still no manifest */
    uint8_t px[32 * 32] = {0};
    for (int i = 0; i < 1024; i++)
        px[i] = (uint8_t)(i * 7 ^ i >> 3);
    cr_assert_eq(ti_write_png(tmp("u/a/2.jpg"), 32, 32, PNG_COLOR_TYPE_GRAY, 8, px, NULL, 0, NULL, 0, 0), 0);
    size_t n;
    free(td_read(tmp("u/a/2.jpg"), &n));
    td_truncate(tmp("u/a/2.jpg"), (long)n - 40);
    grey_png("u/a/1.png", 32, 32, 0);
    expect_fail(folder(tmp("u"), 0, 0, 0, NULL), DP_ERR_FORMAT, "u/a/2.jpg", "truncated");
}

Test(import_user, folder_test_classes_must_match)
{
    mkdirs("t/train/a");
    mkdirs("t/train/b");
    mkdirs("t/test/a");
    mkdirs("t/test/c");
    grey_png("t/train/a/1.png", 2, 2, 0);
    grey_png("t/train/b/1.png", 2, 2, 0);
    grey_png("t/test/a/1.png", 2, 2, 0);
    grey_png("t/test/c/1.png", 2, 2, 0);
    expect_fail(folder(tmp("t"), 0, 0, 0, NULL), DP_ERR_FORMAT, "t/test", "'b'");
    mkdirs("t/test/b");
    mkdirs("t/c");
    grey_png("t/test/b/1.png", 2, 2, 0);
    grey_png("t/c/1.png", 2, 2, 0);
    expect_fail(folder(tmp("t"), 0, 0, 0, NULL), DP_ERR_FORMAT, "folder 'c' beside train/ and test/", NULL);
    mkdirs("t/val");
    expect_fail(folder(tmp("t"), 0, 0, 0, NULL), DP_ERR_FORMAT, "both test/ and val/", NULL);
}

/* ===================================================================== CSV */

static dp_status csv(const char *text, const char *label, int header, const char *test_text, double val)
{
    td_write(tmp("d.csv"), text, strlen(text));
    if (test_text)
        td_write(tmp("t.csv"), test_text, strlen(test_text));
    ord.val_split = val;
    dp_csv_import c = {.path = tmp("d.csv"), .label = label, .header = header,
                       .test = test_text ? tmp("t.csv") : NULL, .order = ord};
    dp_import_opts o = opts();
    return dp_import_csv(&c, &o, NULL);
}

static void expect_row(const uint8_t *v, int i, int f, const float *want)
{
    const uint8_t *r = v + (size_t)i * (2 + 4 * f);
    cr_assert_eq(r[0] | r[1], 0, "pad");
    for (int k = 0; k < f; k++) {
        float x;
        memcpy(&x, r + 2 + 4 * k, 4);
        cr_assert_eq(x, want[k], "row %d feature %d: %g vs %g", i, k, x, want[k]);
    }
}

Test(import_user, csv_header_names_string_labels)
{
    const char *text = "a,\"b, quoted\",species\r\n"
                       "1,2,setosa\r\n"
                       "\r\n"
                       "3.5,-4e-1,virginica\r\n"
                       " 0.1 ,\"7\",\"setosa\"\r\n";
    cr_assert_eq(csv(text, "species", -1, NULL, 0), DP_OK, "%s", dp_errmsg());
    dp_manifest *m;
    int32_t lab[3];
    uint8_t v[3 * 10];
    cr_assert_eq(load_split("train", &m, lab, v, sizeof v), 3);
    cr_assert_eq(m->schema.kind, DP_SCHEMA_VECTOR_F32);
    cr_assert_eq(m->schema.vector.features, 2);
    cr_assert_eq(m->schema.vector.classes, 2);
    cr_assert_eq(m->nclass_names, 2);
    cr_assert_str_eq(m->class_names[0], "setosa");
    cr_assert_str_eq(m->class_names[1], "virginica");
    cr_assert_str_eq(m->name, "d");
    dp_manifest_free(m);
    cr_assert_eq(lab[0], 0);
    cr_assert_eq(lab[1], 1);
    cr_assert_eq(lab[2], 0);
    expect_row(v, 0, 2, (float[]){1, 2});
    expect_row(v, 1, 2, (float[]){3.5f, -0.4f});
    expect_row(v, 2, 2, (float[]){0.1f, 7});
}

Test(import_user, csv_integer_labels_by_index_no_header)
{
    cr_assert_eq(csv("5,0.5,1\n2,1.5,0\n", "0", -1, "3,1,1\n", 0), DP_OK, "%s", dp_errmsg());
    dp_manifest *m;
    int32_t lab[2];
    uint8_t v[2 * 10];
    cr_assert_eq(load_split("train", &m, lab, v, sizeof v), 2);
    cr_assert_eq(m->schema.vector.classes, 6, "integer labels: classes = max + 1");
    cr_assert_eq(m->nclass_names, 0);
    dp_manifest_free(m);
    cr_assert_eq(lab[0], 5);
    cr_assert_eq(lab[1], 2);
    expect_row(v, 0, 2, (float[]){0.5f, 1});
    cr_assert_eq(load_split("test", NULL, lab, NULL, 0), 1);
    cr_assert_eq(lab[0], 3);
    /* --no-header on a first line of numbers; --header makes it the names */
    cr_assert_eq(csv("1,2\n3,0\n", "1", 0, NULL, 0), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(load_split("train", NULL, NULL, NULL, 0), 2);
    cr_assert_eq(csv("1,2\n3,0\n", "1", 1, NULL, 0), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(load_split("train", NULL, NULL, NULL, 0), 1);
}

Test(import_user, csv_test_labels_join_the_classes_and_val_split)
{
    cr_assert_eq(csv("x,y\n1,b\n2,c\n", "y", 1, "x,y\n3,a\n", 0), DP_OK, "%s", dp_errmsg());
    dp_manifest *m;
    int32_t lab[3]; /* the second import's test split holds 3 */
    cr_assert_eq(load_split("train", &m, lab, NULL, 0), 2);
    cr_assert_eq(m->schema.vector.classes, 3);
    cr_assert_str_eq(m->class_names[0], "a");
    dp_manifest_free(m);
    cr_assert_eq(lab[0], 1);
    cr_assert_eq(lab[1], 2);
    cr_assert_eq(csv("1,0\n2,0\n3,0\n4,0\n5,1\n6,1\n", "1", 0, NULL, 0.5), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(load_split("train", NULL, NULL, NULL, 0), 3);
    cr_assert_eq(load_split("test", NULL, lab, NULL, 0), 3);
}

Test(import_user, csv_bad_inputs)
{
    expect_fail(csv("a,b\n1,2\n3\n", "b", -1, NULL, 0), DP_ERR_FORMAT, "d.csv:3:", "ragged row");
    expect_fail(csv("a,b,l\n1,2,0\n3,x1,0\n", "l", -1, NULL, 0), DP_ERR_FORMAT, "d.csv:3:3:", "not a number");
    expect_fail(csv("1,2,0\n3,,0\n", "2", -1, NULL, 0), DP_ERR_FORMAT, "d.csv:2:3:", "empty field");
    expect_fail(csv("1,inf,0\n", "2", 0, NULL, 0), DP_ERR_FORMAT, "d.csv:1:3:", "not a number");
    expect_fail(csv("1,nan,0\n", "2", 0, NULL, 0), DP_ERR_FORMAT, "d.csv:1:3:", "not a number");
    expect_fail(csv("1,0x10,0\n", "2", 0, NULL, 0), DP_ERR_FORMAT, "d.csv:1:3:", "not a number");
    expect_fail(csv("1,1e39,0\n", "2", 0, NULL, 0), DP_ERR_FORMAT, "d.csv:1:3:", "out of float32 range");
    expect_fail(csv("1,1e,0\n", "2", 0, NULL, 0), DP_ERR_FORMAT, "d.csv:1:3:", "bad exponent");
    expect_fail(csv("", "0", -1, NULL, 0), DP_ERR_FORMAT, "d.csv", "empty file");
    expect_fail(csv("\n  \n", "0", -1, NULL, 0), DP_ERR_FORMAT, "d.csv", "empty file");
    expect_fail(csv("a,b\n", "b", 1, NULL, 0), DP_ERR_FORMAT, "d.csv", "no data rows");
    expect_fail(csv("a,b\n1,2\n", "c", -1, NULL, 0), DP_ERR_ARG, "--label", "no column 'c'");
    expect_fail(csv("1,2\n", "5", -1, NULL, 0), DP_ERR_ARG, "--label", "column 5");
    expect_fail(csv("1,2\n", "lab", 0, NULL, 0), DP_ERR_ARG, "--label", "no header");
    expect_fail(csv("1,\"2\n", "0", 0, NULL, 0), DP_ERR_FORMAT, "d.csv:1:3:", "unterminated quote");
    expect_fail(csv("1,\"2\"x\n", "0", 0, NULL, 0), DP_ERR_FORMAT, "d.csv:1:", "after the closing quote");
    expect_fail(csv("1,70000\n", "1", 0, NULL, 0), DP_ERR_FORMAT, "d.csv:1:3:", "out of range");
    expect_fail(csv("1\n", "0", 0, NULL, 0), DP_ERR_FORMAT, "d.csv:1:", "one column");
    expect_fail(csv("1,2,0\n", "2", 0, "1,0\n", 0), DP_ERR_FORMAT, "t.csv:1:", "2 columns");
    expect_fail(csv("1,2,0\n", "2", 0, "1,0,z\n9\n", 0), DP_ERR_FORMAT, "t.csv:2:", "ragged");
    char big[100] = "1,";
    memset(big + 2, 'x', 60);
    memcpy(big + 62, "\n1,\n", 5);
    expect_fail(csv(big, "1", 0, NULL, 0), DP_ERR_FORMAT, "d.csv:2:3:", "bytes");
    td_write(tmp("nul.csv"), "1,2\n\0,3\n", 8);
    dp_csv_import c = {.path = tmp("nul.csv"), .label = "1", .header = 0, .order = ord};
    dp_import_opts o = opts();
    expect_fail(dp_import_csv(&c, &o, NULL), DP_ERR_FORMAT, "nul.csv:2", "NUL");
    c.path = tmp("none.csv");
    expect_fail(dp_import_csv(&c, &o, NULL), DP_ERR_IO, "none.csv", NULL);
}

/* ===================================================================== NPY */

/* An .npy with the given header dict, padded as numpy pads it, then `n` data bytes. */
static void npy(const char *name, int major, const char *dict, const void *data, size_t n)
{
    char hdr[512];
    size_t pre = major == 1 ? 10 : 12, len = strlen(dict);
    size_t total = (pre + len + 1 + 63) / 64 * 64;
    memcpy(hdr, dict, len);
    memset(hdr + len, ' ', total - pre - len - 1);
    hdr[total - pre - 1] = '\n';
    size_t hl = total - pre;
    uint8_t head[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', (uint8_t)major, 0, (uint8_t)hl, (uint8_t)(hl >> 8), 0, 0};
    td_write(tmp(name), head, pre);
    td_append(tmp(name), hdr, hl);
    if (n)
        td_append(tmp(name), data, n);
}

static const float X6[6] = {1, 2, 3, 4, 5, 6};
static const int64_t Y3[3] = {2, 0, 2};

static dp_status npy_run(const char *x, const char *y, const char *tx, const char *ty, double val)
{
    ord.val_split = val;
    dp_npy_import in = {.x = tmp(x), .y = tmp(y), .test_x = tx ? tmp(tx) : NULL, .test_y = ty ? tmp(ty) : NULL,
                        .order = ord};
    dp_import_opts o = opts();
    return dp_import_npy(&in, &o, NULL);
}

static void good_pair(void)
{
    npy("x.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", X6, sizeof X6);
    npy("y.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", Y3, sizeof Y3);
}

Test(import_user, npy_good_f4_i8_and_f8_u1_v2)
{
    good_pair();
    cr_assert_eq(npy_run("x.npy", "y.npy", NULL, NULL, 0), DP_OK, "%s", dp_errmsg());
    dp_manifest *m;
    int32_t lab[3];
    uint8_t v[3 * 10];
    cr_assert_eq(load_split("train", &m, lab, v, sizeof v), 3);
    cr_assert_eq(m->schema.vector.features, 2);
    cr_assert_eq(m->schema.vector.classes, 3);
    cr_assert_str_eq(m->name, "x");
    dp_manifest_free(m);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(lab[i], Y3[i]);
        expect_row(v, i, 2, X6 + 2 * i);
    }
    const double xd[4] = {0.1, -2.5, 1e-3, 3e38};
    const uint8_t yu[2] = {1, 0};
    npy("xd.npy", 2, "{\"descr\": \"<f8\", \"shape\": (2, 2), \"fortran_order\": False}", xd, sizeof xd);
    npy("yu.npy", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2,)}", yu, sizeof yu);
    cr_assert_eq(npy_run("xd.npy", "yu.npy", "x.npy", "y.npy", 0), DP_OK, "%s", dp_errmsg()); /* x as test: F = 2 */
    cr_assert_eq(load_split("train", NULL, lab, v, sizeof v), 2);
    expect_row(v, 0, 2, (float[]){(float)0.1, -2.5f});
    expect_row(v, 1, 2, (float[]){(float)1e-3, (float)3e38});
    cr_assert_eq(load_split("test", NULL, NULL, NULL, 0), 3);
    good_pair();
    cr_assert_eq(npy_run("x.npy", "y.npy", NULL, NULL, 0.5), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(load_split("test", NULL, lab, NULL, 0), 1, "floor(0.5 * 2) of class 2, floor(0.5) of class 0");
    cr_assert_eq(lab[0], 2);
}

Test(import_user, npy_bad_inputs)
{
    good_pair();
    td_write(tmp("bad.npy"), "\x93NUMPX\x01\x00\x10\x00", 10);
    expect_fail(npy_run("bad.npy", "y.npy", NULL, NULL, 0), DP_ERR_FORMAT, "bad.npy", "bad magic");
    npy("v3.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", X6, sizeof X6);
    td_patch(tmp("v3.npy"), 6, 3, 1, 0);
    expect_fail(npy_run("v3.npy", "y.npy", NULL, NULL, 0), DP_ERR_FORMAT, "v3.npy", "version 3.0");
    npy("be.npy", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (3, 2), }", X6, sizeof X6);
    expect_fail(npy_run("be.npy", "y.npy", NULL, NULL, 0), DP_ERR_FORMAT, "be.npy", "dtype '>f4' not supported");
    npy("xi.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 2), }", X6, sizeof X6);
    expect_fail(npy_run("xi.npy", "y.npy", NULL, NULL, 0), DP_ERR_FORMAT, "xi.npy", "dtype '<i4'");
    npy("yf.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", X6, 12);
    expect_fail(npy_run("x.npy", "yf.npy", NULL, NULL, 0), DP_ERR_FORMAT, "yf.npy", "integer type");
    npy("fo.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }", X6, sizeof X6);
    expect_fail(npy_run("fo.npy", "y.npy", NULL, NULL, 0), DP_ERR_FORMAT, "fo.npy", "fortran_order");
    npy("x1.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", X6, sizeof X6);
    expect_fail(npy_run("x1.npy", "y.npy", NULL, NULL, 0), DP_ERR_FORMAT, "x1.npy", "1 dimensions, want 2");
    npy("tr.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", X6, sizeof X6 - 3);
    expect_fail(npy_run("tr.npy", "y.npy", NULL, NULL, 0), DP_ERR_FORMAT, "tr.npy", "truncated data");
    npy("tb.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", X6, sizeof X6);
    td_append(tmp("tb.npy"), "xx", 2);
    expect_fail(npy_run("tb.npy", "y.npy", NULL, NULL, 0), DP_ERR_FORMAT, "tb.npy", "trailing bytes");
    const int64_t yneg[3] = {0, -1, 1}, ybig[3] = {0, 70000, 1};
    npy("yn.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", yneg, sizeof yneg);
    expect_fail(npy_run("x.npy", "yn.npy", NULL, NULL, 0), DP_ERR_FORMAT, "yn.npy", "label -1 at row 1 is out of range");
    npy("yb.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", ybig, sizeof ybig);
    expect_fail(npy_run("x.npy", "yb.npy", NULL, NULL, 0), DP_ERR_FORMAT, "yb.npy", "label 70000");
    npy("y2.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", Y3, 16);
    expect_fail(npy_run("x.npy", "y2.npy", NULL, NULL, 0), DP_ERR_FORMAT, "y2.npy: 2 labels", "x.npy has 3 rows");
    const float xnan[2] = {1, __builtin_nanf("")};
    npy("xn.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }", xnan, sizeof xnan);
    npy("y1.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", Y3, 8);
    expect_fail(npy_run("xn.npy", "y1.npy", NULL, NULL, 0), DP_ERR_FORMAT, "xn.npy", "row 0, column 1");
    const double xhuge[2] = {1, 1e300};
    npy("xh.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }", xhuge, sizeof xhuge);
    expect_fail(npy_run("xh.npy", "y1.npy", NULL, NULL, 0), DP_ERR_FORMAT, "xh.npy", "out of float32 range");
    npy("uk.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), 'x': 1}", X6, sizeof X6);
    expect_fail(npy_run("uk.npy", "y.npy", NULL, NULL, 0), DP_ERR_FORMAT, "uk.npy", "unknown key");
    npy("ns.npy", 1, "{'descr': '<f4', 'fortran_order': False}", X6, sizeof X6);
    expect_fail(npy_run("ns.npy", "y.npy", NULL, NULL, 0), DP_ERR_FORMAT, "ns.npy", "no 'shape'");
    npy("z.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 2), }", X6, 0);
    expect_fail(npy_run("z.npy", "y.npy", NULL, NULL, 0), DP_ERR_FORMAT, "z.npy", "empty");
    td_write(tmp("short.npy"), "\x93NUMPY\x01\x00\x40\x00{'descr'", 17);
    expect_fail(npy_run("short.npy", "y.npy", NULL, NULL, 0), DP_ERR_FORMAT, "short.npy", "truncated");
    expect_fail(npy_run("x.npy", "y.npy", "x.npy", NULL, 0), DP_ERR_ARG, "--test-x", NULL);
    npy("x3.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", X6, sizeof X6);
    npy("y22.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", Y3, 16);
    expect_fail(npy_run("x.npy", "y.npy", "x3.npy", "y22.npy", 0), DP_ERR_FORMAT, "x3.npy: 3 features", NULL);
}
