/* IDX reading and the Fashion-MNIST importer: small gzip'd IDX files written
 * here round-trip and every kind of damage is refused with file and offset;
 * a synthetic import loads back image for image; the real data set (if
 * installed) imports in a few seconds and splits 60000/10000. */
#include <criterion/criterion.h>
#include "timeout.h"
#include "test_data_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "dptrain/data.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

static char dir[256], idx_dir[300], out_dir[300];

static void setup(void)
{
    td_tmpdir(dir, sizeof dir);
    td_path(idx_dir, sizeof idx_dir, dir, "idx");
    td_path(out_dir, sizeof out_dir, dir, "out");
    cr_assert_eq(mkdir(idx_dir, 0755), 0);
}

static void teardown(void) { td_rmtree(dir); }

TestSuite(data_idx, .init = setup, .fini = teardown, .timeout = DP_TIMEOUT(30));

/* Writes an IDX file through gzip: magic, big-endian dims, then `ndata` bytes
 * (pixel/label value = index * 3 % mod) and `extra` trailing bytes. */
static void write_idx(const char *path, uint32_t magic, int ndim, const uint32_t *dims, size_t ndata,
                      int mod, size_t extra)
{
    gzFile gz = gzopen(path, "wb");
    cr_assert_not_null(gz);
    uint8_t be[4];
    for (int i = -1; i < ndim; i++) {
        uint32_t v = i < 0 ? magic : dims[i];
        be[0] = (uint8_t)(v >> 24), be[1] = (uint8_t)(v >> 16), be[2] = (uint8_t)(v >> 8), be[3] = (uint8_t)v;
        cr_assert_eq(gzwrite(gz, be, 4), 4);
    }
    for (size_t i = 0; i < ndata + extra; i++) {
        uint8_t b = (uint8_t)(i * 3 % (size_t)mod);
        cr_assert_eq(gzwrite(gz, &b, 1), 1);
    }
    cr_assert_eq(gzclose(gz), Z_OK);
}

static void idx_path(char *out, const char *name) { td_path(out, 512, idx_dir, name); }

static void expect_idx_error(const char *path, int ndim, dp_status want, const char *what)
{
    dp_idx a;
    dp_status rc = dp_idx_load(path, ndim, &a);
    cr_assert_eq(rc, want, "got %s: %s", dp_status_name(rc), dp_errmsg());
    cr_assert(strstr(dp_errmsg(), path), "message does not name the file: %s", dp_errmsg());
    cr_assert(strstr(dp_errmsg(), what), "message lacks '%s': %s", what, dp_errmsg());
    cr_assert_null(a.data);
}

Test(data_idx, round_trip, .timeout = DP_TIMEOUT(10))
{
    char p[512];
    idx_path(p, "a.gz");
    uint32_t dims[3] = {5, 4, 3};
    write_idx(p, 0x803, 3, dims, 60, 256, 0);
    dp_idx a;
    cr_assert_eq(dp_idx_load(p, 3, &a), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(a.ndim, 3);
    cr_assert_eq(a.dims[0], 5);
    cr_assert_eq(a.dims[1], 4);
    cr_assert_eq(a.dims[2], 3);
    cr_assert_eq(a.size, 60);
    for (size_t i = 0; i < 60; i++)
        cr_assert_eq(a.data[i], (uint8_t)(i * 3 % 256));
    dp_idx_free(&a);
    cr_assert_null(a.data);

    idx_path(p, "l.gz");
    write_idx(p, 0x801, 1, dims, 5, 10, 0);
    cr_assert_eq(dp_idx_load(p, 1, &a), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(a.size, 5);
    dp_idx_free(&a);
}

/* Damaged IDX files (a 5x4x3 image file as data_idx.round_trip writes it, changed in one place)
 * and the error each must get: it names the offset where there is one. */
static const struct {
    uint32_t magic;
    int ndim;
    uint32_t dims[3];
    size_t ndata, extra;
    const char *what;
} bad_idx[] = {
    {0x801, 3, {5, 4, 3}, 60, 0, "offset 0: bad IDX magic 0x00000801 (want 0x00000803"},
    {0x0d03, 3, {5, 4, 3}, 60, 0, "bad IDX magic"}, /* doubles, not bytes */
    {0x803, 3, {5, 4, 3}, 59, 0, "offset 75: truncated: header promises 60 data bytes, file holds 59"},
    {0x803, 2, {5, 4, 3}, 0, 0, "truncated inside the IDX header"},
    {0x803, 3, {5, 4, 3}, 60, 2, "offset 76: trailing bytes"},
    {0x803, 3, {5, 0, 3}, 0, 0, "offset 8: dimension 1 is 0"},
};

Test(data_idx, damaged_files, .timeout = DP_TIMEOUT(10))
{
    char p[512];
    idx_path(p, "a.gz");
    for (size_t i = 0; i < sizeof bad_idx / sizeof bad_idx[0]; i++) {
        write_idx(p, bad_idx[i].magic, bad_idx[i].ndim, bad_idx[i].dims, bad_idx[i].ndata, 256, bad_idx[i].extra);
        expect_idx_error(p, 3, DP_ERR_FORMAT, bad_idx[i].what);
    }
}

/* a.gz holding 100 images of 28x28 (a stream of several gzip blocks) for the tests below to damage;
 * returns the file's size. */
static size_t write_gzip_idx(char *p)
{
    idx_path(p, "a.gz");
    uint32_t dims[3] = {100, 28, 28};
    write_idx(p, 0x803, 3, dims, 78400, 251, 0);
    size_t n;
    free(td_read(p, &n));
    return n;
}

Test(data_idx, truncated_gzip_stream, .timeout = DP_TIMEOUT(10))
{
    char p[512];
    size_t n = write_gzip_idx(p);
    long cuts[] = {(long)n - 4, (long)n / 2, 20};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        td_truncate(p, cuts[i]);
        dp_idx a;
        cr_assert_eq(dp_idx_load(p, 3, &a), DP_ERR_FORMAT, "cut at %ld accepted", cuts[i]);
        cr_assert(strstr(dp_errmsg(), p), "%s", dp_errmsg());
    }
}

Test(data_idx, corrupt_gzip_stream, .timeout = DP_TIMEOUT(10))
{
    char p[512];
    write_gzip_idx(p);
    size_t n;
    unsigned char *b = td_read(p, &n);
    b[n - 6] ^= 0xff; /* inside the gzip trailer's crc32 */
    td_write(p, b, n);
    free(b);
    expect_idx_error(p, 3, DP_ERR_FORMAT, "corrupt gzip stream");
}

Test(data_idx, missing_file, .timeout = DP_TIMEOUT(10))
{
    char p[512];
    idx_path(p, "nope.gz");
    expect_idx_error(p, 3, DP_ERR_IO, "open");
}

/* ------------------------------------------------------------ importer */

/* A tiny Fashion-MNIST look-alike: n_train and n_test 28x28 images. */
static void fake_fmnist(uint32_t n_train, uint32_t n_train_labels, uint32_t side, int label_mod)
{
    char p[512];
    uint32_t dims[3] = {n_train, side, side};
    idx_path(p, "train-images-idx3-ubyte.gz");
    write_idx(p, 0x803, 3, dims, (size_t)n_train * side * side, 256, 0);
    idx_path(p, "train-labels-idx1-ubyte.gz");
    dims[0] = n_train_labels;
    write_idx(p, 0x801, 1, dims, n_train_labels, label_mod, 0);
    uint32_t tdims[3] = {7, 28, 28};
    idx_path(p, "t10k-images-idx3-ubyte.gz");
    write_idx(p, 0x803, 3, tdims, 7 * 784, 256, 0);
    idx_path(p, "t10k-labels-idx1-ubyte.gz");
    write_idx(p, 0x801, 1, tdims, 7, 10, 0);
}

Test(data_idx, import_synthetic_round_trip, .timeout = DP_TIMEOUT(20))
{
    fake_fmnist(50, 50, 28, 10);
    dp_import_stats st;
    cr_assert_eq(dp_import_fashion_mnist(idx_dir, out_dir, 4, &st), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(st.train_records, 50);
    cr_assert_eq(st.test_records, 7);
    cr_assert_eq(st.train_shards, 4);
    cr_assert_eq(st.test_shards, 4);
    cr_assert_eq(st.raw_bytes, 57 * 786);

    dp_manifest *m = NULL;
    cr_assert_eq(dp_manifest_load(out_dir, &m), DP_OK, "%s", dp_errmsg());
    cr_assert_str_eq(m->name, "fashion-mnist");
    cr_assert_eq(m->nshards, 8);
    cr_assert_str_eq(m->shards[0].file, "train-00000.dps");
    cr_assert_eq(m->shards[0].records, 13, "50 over 4: 13 13 12 12");
    cr_assert_eq(m->shards[3].records, 12);
    cr_assert_str_eq(m->shards[7].file, "test-00003.dps");
    dp_manifest_free(m);

    dp_image_set s;
    cr_assert_eq(dp_image_set_load(out_dir, "train", 0, 1, 0, &s), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(s.n, 50);
    cr_assert_eq(s.c, 1);
    cr_assert_eq(s.h, 28);
    cr_assert_eq(s.w, 28);
    cr_assert_eq(s.classes, 10);
    for (long i = 0; i < 50 * 784; i++)
        cr_assert_eq(s.pixels[i], (uint8_t)(i * 3 % 256), "pixel %ld", i);
    for (long i = 0; i < 50; i++)
        cr_assert_eq(s.labels[i], (int32_t)(i * 3 % 10));
    dp_image_set_free(&s);
    cr_assert_eq(dp_image_set_load(out_dir, "test", 0, 1, 0, &s), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(s.n, 7);
    dp_image_set_free(&s);

    /* Re-import with fewer shards: the new manifest lists only the new ones. */
    cr_assert_eq(dp_import_fashion_mnist(idx_dir, out_dir, 2, &st), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_manifest_load(out_dir, &m), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(m->nshards, 4);
    dp_manifest_free(m);
}

Test(data_idx, import_rejects_bad_sources, .timeout = DP_TIMEOUT(20))
{
    char lab[512], img[512], manifest[512];
    idx_path(lab, "train-labels-idx1-ubyte.gz");
    idx_path(img, "train-images-idx3-ubyte.gz");
    td_path(manifest, sizeof manifest, out_dir, "manifest.txt");

    fake_fmnist(50, 49, 28, 10);
    cr_assert_eq(dp_import_fashion_mnist(idx_dir, out_dir, 4, NULL), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), lab) && strstr(dp_errmsg(), "49 labels but"), "%s", dp_errmsg());
    cr_assert_neq(access(manifest, F_OK), 0, "a failed import left a manifest");

    fake_fmnist(50, 50, 27, 10);
    cr_assert_eq(dp_import_fashion_mnist(idx_dir, out_dir, 4, NULL), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), img) && strstr(dp_errmsg(), "27x27"), "%s", dp_errmsg());

    fake_fmnist(50, 50, 28, 13); /* labels up to 12 */
    cr_assert_eq(dp_import_fashion_mnist(idx_dir, out_dir, 4, NULL), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), lab) && strstr(dp_errmsg(), "outside [0, 10)"), "%s", dp_errmsg());

    cr_assert_eq(dp_import_fashion_mnist(idx_dir, out_dir, 0, NULL), DP_ERR_ARG);
}

Test(data_idx, import_real_fashion_mnist, .timeout = DP_TIMEOUT(60))
{
    if (access(FMNIST_DIR "/train-images-idx3-ubyte.gz", R_OK) != 0)
        cr_skip_test("Fashion-MNIST not installed at " FMNIST_DIR);
    dp_import_stats st;
    cr_assert_eq(dp_import_fashion_mnist(FMNIST_DIR, out_dir, 4, &st), DP_OK, "%s", dp_errmsg());
    cr_log_info("imported %ld + %ld images, %llu -> %llu bytes in %.2f s", st.train_records,
                st.test_records, (unsigned long long)st.raw_bytes,
                (unsigned long long)st.compressed_bytes, st.seconds);
    cr_assert_eq(st.train_records, 60000);
    cr_assert_eq(st.test_records, 10000);
    /* no bound on st.seconds: a timing is a benchmark's business (it is logged above), and it fails
     * for nothing under valgrind or on a loaded machine */

    long total = 0;
    int count[10] = {0};
    for (int r = 0; r < 2; r++) {
        dp_image_set s;
        cr_assert_eq(dp_image_set_load(out_dir, "train", r, 2, 0, &s), DP_OK, "%s", dp_errmsg());
        cr_assert_eq(s.n, 30000, "4 shards of 15000, two per rank");
        cr_assert_eq(s.split_total, 60000);
        for (long i = 0; i < s.n; i++) {
            cr_assert(s.labels[i] >= 0 && s.labels[i] <= 9, "label %d", s.labels[i]);
            count[s.labels[i]]++;
        }
        total += s.n;
        dp_image_set_free(&s);
    }
    cr_assert_eq(total, 60000);
    for (int k = 0; k < 10; k++)
        cr_assert_eq(count[k], 6000, "class %d has %d images", k, count[k]);
    dp_image_set s;
    cr_assert_eq(dp_image_set_load(out_dir, "test", 0, 1, 0, &s), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(s.n, 10000);
    dp_image_set_free(&s);
}
