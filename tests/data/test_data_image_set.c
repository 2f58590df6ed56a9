/* dp_image_set_load: rank assignment (shard i -> rank i mod nranks, or
 * contiguous ranges when shards < ranks) covers every record exactly once,
 * `limit` keeps the first records, and shards that disagree with the
 * manifest are refused. Records carry their global index in their pixels. */
#include <criterion/criterion.h>
#include "timeout.h"
#include "test_data_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/data.h"

static char dir[256];
static dp_shard_schema schema;

static void setup(void)
{
    td_tmpdir(dir, sizeof dir);
    schema = dp_shard_schema_image(1, 3, 3, 7);
}

static void teardown(void) { td_rmtree(dir); }

TestSuite(data_image_set, .init = setup, .fini = teardown, .timeout = DP_TIMEOUT(30));

/* Loads every rank, checks each record's content, and counts how often each
 * global index was loaded. Returns per-rank sizes in sizes[]. */
static void load_all(int nranks, long limit, long total, long *sizes, int *seen)
{
    memset(seen, 0, (size_t)total * sizeof *seen);
    uint8_t *want = malloc(schema.record_size);
    for (int r = 0; r < nranks; r++) {
        dp_image_set s;
        cr_assert_eq(dp_image_set_load(dir, "train", r, nranks, limit, &s), DP_OK, "%s", dp_errmsg());
        cr_assert_eq(s.c * s.h * s.w, 9);
        cr_assert_eq(s.classes, 7);
        cr_assert_eq(s.split_total, limit > 0 && limit < total ? limit : total);
        for (long i = 0; i < s.n; i++) {
            const uint8_t *px = s.pixels + i * 9;
            long g = td_image_index(px);
            cr_assert(g >= 0 && g < total, "index %ld out of range", g);
            td_make_image(want, g, &schema);
            cr_assert_eq(memcmp(px, want + 2, 9), 0, "pixels of record %ld", g);
            cr_assert_eq(s.labels[i], (int32_t)(g % 7));
            seen[g]++;
        }
        sizes[r] = s.n;
        dp_image_set_free(&s);
        cr_assert_null(s.pixels);
    }
    free(want);
}

/* load_all at nranks with limit: the first `kept` of the `total` records are loaded once each, the
 * rest not at all. */
static void expect_loaded_once(int nranks, long limit, long total, long kept, long *sizes)
{
    int seen[64];
    load_all(nranks, limit, total, sizes, seen);
    for (long g = 0; g < total; g++)
        cr_assert_eq(seen[g], g < kept, "%d ranks, limit %ld: record %ld loaded %d times", nranks, limit, g, seen[g]);
}

static long sum(const long *v, int n)
{
    long t = 0;
    for (int i = 0; i < n; i++)
        t += v[i];
    return t;
}

Test(data_image_set, three_shards_two_ranks_round_robin, .timeout = DP_TIMEOUT(10))
{
    long shard_sizes[3] = {5, 7, 4}, sizes[2];
    td_make_dataset(dir, "train", shard_sizes, 3, &schema);
    expect_loaded_once(2, 0, 16, 16, sizes);
    cr_assert_eq(sizes[0], 5 + 4, "rank 0 holds shards 0 and 2");
    cr_assert_eq(sizes[1], 7, "rank 1 holds shard 1");
}

Test(data_image_set, two_shards_three_ranks_contiguous, .timeout = DP_TIMEOUT(10))
{
    long shard_sizes[2] = {10, 7}, sizes[3];
    td_make_dataset(dir, "train", shard_sizes, 2, &schema);
    expect_loaded_once(3, 0, 17, 17, sizes);
    cr_assert_eq(sizes[0], 6);
    cr_assert_eq(sizes[1], 6);
    cr_assert_eq(sizes[2], 5);
    /* contiguous and in order: rank 1 holds 6..11, across the shard boundary */
    dp_image_set s;
    cr_assert_eq(dp_image_set_load(dir, "train", 1, 3, 0, &s), DP_OK, "%s", dp_errmsg());
    for (long i = 0; i < s.n; i++)
        cr_assert_eq(td_image_index(s.pixels + i * 9), 6 + i);
    dp_image_set_free(&s);
}

Test(data_image_set, every_shard_rank_combination_covers_once, .timeout = DP_TIMEOUT(30))
{
    for (int nshards = 1; nshards <= 5; nshards++) {
        long shard_sizes[5], sizes[6];
        for (int i = 0; i < nshards; i++)
            shard_sizes[i] = 3 + (i * 5) % 4;
        long total = sum(shard_sizes, nshards);
        td_make_dataset(dir, "train", shard_sizes, nshards, &schema);
        int seen[64];
        for (int nranks = 1; nranks <= 6; nranks++) {
            load_all(nranks, 0, total, sizes, seen);
            for (long g = 0; g < total; g++)
                cr_assert_eq(seen[g], 1, "%d shards, %d ranks: record %ld loaded %d times", nshards,
                             nranks, g, seen[g]);
            cr_assert_eq(sum(sizes, nranks), total);
        }
    }
}

Test(data_image_set, limit_keeps_first_records_before_rank_split, .timeout = DP_TIMEOUT(10))
{
    long shard_sizes[3] = {5, 7, 4}, sizes[2];
    td_make_dataset(dir, "train", shard_sizes, 3, &schema);
    /* limit 6: shards 0 (whole) and 1 (one record) remain, 2 shards over 2 ranks */
    expect_loaded_once(2, 6, 16, 6, sizes);
    cr_assert_eq(sizes[0], 5);
    cr_assert_eq(sizes[1], 1);
    /* limit 3: one shard left, fewer than ranks, so contiguous ranges 2 + 1 */
    expect_loaded_once(2, 3, 16, 3, sizes);
    cr_assert_eq(sizes[0], 2);
    cr_assert_eq(sizes[1], 1);
    /* a limit past the end changes nothing */
    int seen[16];
    load_all(2, 1000, 16, sizes, seen);
    cr_assert_eq(sum(sizes, 2), 16);
}

Test(data_image_set, bad_arguments, .timeout = DP_TIMEOUT(10))
{
    long shard_sizes[1] = {3};
    td_make_dataset(dir, "train", shard_sizes, 1, &schema);
    dp_image_set s;
    cr_assert_eq(dp_image_set_load(dir, "train", 2, 2, 0, &s), DP_ERR_ARG);
    cr_assert_eq(dp_image_set_load(dir, "train", 0, 0, 0, &s), DP_ERR_ARG);
    cr_assert_eq(dp_image_set_load(dir, "val", 0, 1, 0, &s), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "no shards for split 'val'"), "%s", dp_errmsg());
    cr_assert_null(s.pixels);
    dp_image_set_free(NULL);
}

/* ------------------------------------------------ shards vs manifest */

static void rewrite_manifest(const char *from, const char *to)
{
    char path[512];
    td_path(path, sizeof path, dir, "manifest.txt");
    size_t n;
    char *text = (char *)td_read(path, &n);
    text[n] = '\0';
    char *at = strstr(text, from);
    cr_assert_not_null(at, "'%s' not in manifest:\n%s", from, text);
    char out[4096];
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    td_write(path, out, strlen(out));
    free(text);
}

/* The data set the tests below damage: two shards of 4 records each. */
static void make_two_shards(void)
{
    static const long shard_sizes[2] = {4, 4};
    td_make_dataset(dir, "train", shard_sizes, 2, &schema);
}

/* The checksum manifest.txt holds for shard 1. */
static uint32_t manifest_crc1(void)
{
    dp_manifest *m = NULL;
    cr_assert_eq(dp_manifest_load(dir, &m), DP_OK);
    uint32_t crc = m->shards[1].crc32;
    dp_manifest_free(m);
    return crc;
}

/* Rewrites manifest.txt's checksum for shard 1 (of 4 records) to crc. */
static void set_manifest_crc1(uint32_t crc)
{
    char from[64], to[64];
    snprintf(from, sizeof from, "4 0x%08x", manifest_crc1());
    snprintf(to, sizeof to, "4 0x%08x", crc);
    rewrite_manifest(from, to);
}

static void expect_load_error(dp_status want, const char *file, const char *what)
{
    dp_image_set s;
    char path[512];
    td_path(path, sizeof path, dir, file);
    dp_status rc = dp_image_set_load(dir, "train", 0, 1, 0, &s);
    cr_assert_eq(rc, want, "got %s: %s", dp_status_name(rc), dp_errmsg());
    cr_assert(strstr(dp_errmsg(), path), "message does not name %s: %s", path, dp_errmsg());
    cr_assert(strstr(dp_errmsg(), what), "message lacks '%s': %s", what, dp_errmsg());
    cr_assert_null(s.pixels);
}

Test(data_image_set, manifest_with_wrong_checksum, .timeout = DP_TIMEOUT(10))
{
    make_two_shards();
    set_manifest_crc1(manifest_crc1() ^ 0x10);
    expect_load_error(DP_ERR_FORMAT, "train-00001.dps", "payload crc32");
}

Test(data_image_set, manifest_with_wrong_count, .timeout = DP_TIMEOUT(10))
{
    make_two_shards();
    rewrite_manifest("train-00001.dps 4 ", "train-00001.dps 5 ");
    expect_load_error(DP_ERR_FORMAT, "train-00001.dps", "record count 4 differs from manifest.txt (5)");
}

Test(data_image_set, missing_shard_is_io_error, .timeout = DP_TIMEOUT(10))
{
    make_two_shards();
    char path[512];
    td_path(path, sizeof path, dir, "train-00001.dps");
    cr_assert_eq(unlink(path), 0);
    expect_load_error(DP_ERR_IO, "train-00001.dps", "No such file");
}

Test(data_image_set, shard_schema_differs_from_manifest, .timeout = DP_TIMEOUT(10))
{
    make_two_shards();
    char path[512];
    td_path(path, sizeof path, dir, "train-00001.dps");
    dp_shard_schema other = dp_shard_schema_image(1, 3, 3, 8);
    dp_shard_info info = td_write_images(path, &other, 4, 4, 0);
    set_manifest_crc1(info.payload_crc32);
    expect_load_error(DP_ERR_FORMAT, "train-00001.dps", "differs from manifest.txt");
}

Test(data_image_set, label_out_of_range, .timeout = DP_TIMEOUT(10))
{
    char path[512];
    td_path(path, sizeof path, dir, "train-00000.dps");
    dp_shard_writer *w = NULL;
    cr_assert_eq(dp_shard_writer_open(path, &schema, &w), DP_OK);
    uint8_t rec[11] = {9, 0}; /* label 9, classes 7 */
    cr_assert_eq(dp_shard_writer_add(w, rec, sizeof rec), DP_OK);
    dp_shard_info info;
    cr_assert_eq(dp_shard_writer_close(w, &info), DP_OK);
    dp_manifest_shard ms = {"train", "train-00000.dps", 1, info.payload_crc32};
    dp_manifest m = {.name = "bad-labels", .schema = schema, .nshards = 1, .shards = &ms};
    cr_assert_eq(dp_manifest_save(dir, &m), DP_OK, "%s", dp_errmsg());
    expect_load_error(DP_ERR_FORMAT, "train-00000.dps", "label 9 outside [0, 7)");
}

Test(data_image_set, token_dataset_is_not_images, .timeout = DP_TIMEOUT(10))
{
    dp_manifest_shard ms = {"train", "t.dps", 1, 0};
    dp_manifest m = {.name = "toks", .nshards = 1, .shards = &ms};
    m.schema = dp_shard_schema_tokens(10);
    cr_assert_eq(dp_manifest_save(dir, &m), DP_OK);
    dp_image_set s;
    cr_assert_eq(dp_image_set_load(dir, "train", 0, 1, 0, &s), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "not images"), "%s", dp_errmsg());
}
