/* The dataset writer (shards per split, statistics, class names, manifest last,
 * cleanup on failure), the manifest's optional lines, the vector schema and the
 * stratified hold-out. */
#include <criterion/criterion.h>
#include "timeout.h"
#include "test_data_util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/data.h"

static char dir[256];

static void setup(void) { td_tmpdir(dir, sizeof dir); }
static void teardown(void) { td_rmtree(dir); }

TestSuite(data_writer, .init = setup, .fini = teardown, .timeout = DP_TIMEOUT(20));

static int exists(const char *name)
{
    char p[512];
    td_path(p, sizeof p, dir, name);
    return access(p, F_OK) == 0;
}

static void put_manifest(const char *text)
{
    char p[512];
    td_path(p, sizeof p, dir, "manifest.txt");
    td_write(p, text, strlen(text));
}

/* Image of 2 channels 2x2: channel 0 holds g, channel 1 holds 255 - g. */
static void make_px(uint8_t px[8], int g)
{
    for (int i = 0; i < 4; i++) {
        px[i] = (uint8_t)g;
        px[4 + i] = (uint8_t)(255 - g);
    }
}

Test(data_writer, images_round_trip_with_stats_and_names)
{
    dp_shard_schema s = dp_shard_schema_image(2, 2, 2, 3);
    dp_dataset_writer *w = NULL;
    cr_assert_eq(dp_dataset_writer_open(dir, "tiny", &s, 0, &w), DP_OK, "%s", dp_errmsg());
    const char *names[3] = {"T-shirt/top", "with space", "100% caf\xc3\xa9 #1"};
    cr_assert_eq(dp_dataset_writer_classes(w, 3, names), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_split(w, "train", 10, 3), DP_OK, "%s", dp_errmsg());
    uint8_t px[8];
    for (int g = 0; g < 10; g++) {
        make_px(px, g * 20);
        cr_assert_eq(dp_dataset_writer_add(w, (uint32_t)(g % 3), px), DP_OK, "%s", dp_errmsg());
    }
    cr_assert_eq(dp_dataset_writer_split(w, "test", 4, 8), DP_OK, "%s", dp_errmsg());
    for (int g = 0; g < 4; g++) {
        make_px(px, 7);
        cr_assert_eq(dp_dataset_writer_add(w, 2, px), DP_OK, "%s", dp_errmsg());
    }
    cr_assert(!exists("manifest.txt"), "manifest before commit");
    dp_import_stats st = {.in_bytes = 77};
    cr_assert_eq(dp_dataset_writer_commit(w, &st), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(st.train_records, 10);
    cr_assert_eq(st.test_records, 4);
    cr_assert_eq(st.train_shards, 3);
    cr_assert_eq(st.test_shards, 4);
    cr_assert_eq(st.in_bytes, 77, "in_bytes is the importer's");
    cr_assert_eq(st.raw_bytes, 14 * 10);

    dp_manifest *m = NULL;
    cr_assert_eq(dp_manifest_load(dir, &m), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(m->nshards, 7);
    const long want[7] = {4, 3, 3, 1, 1, 1, 1};
    for (int i = 0; i < 7; i++)
        cr_assert_eq(m->shards[i].records, (uint64_t)want[i], "shard %d", i);
    cr_assert_str_eq(m->shards[2].file, "train-00002.dps");
    cr_assert_str_eq(m->shards[3].file, "test-00000.dps");
    /* channel 0: values 0,20,...,180 / 255 -> mean 90/255; population std sqrt(3300)/255 */
    cr_assert_eq(m->nstats, 2);
    char want_mean[32], got_mean[32];
    snprintf(want_mean, sizeof want_mean, "%.4g %.4g", 90.0 / 255, 165.0 / 255);
    snprintf(got_mean, sizeof got_mean, "%.4g %.4g", m->mean[0], m->mean[1]);
    cr_assert_str_eq(got_mean, want_mean);
    cr_assert_float_eq(m->std[0], sqrt(3300.0) / 255, 1e-4);
    cr_assert_float_eq(m->std[1], sqrt(3300.0) / 255, 1e-4);
    cr_assert_eq(m->nclass_names, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_str_eq(m->class_names[i], names[i]);
    dp_manifest_free(m);

    size_t len;
    char p[512];
    td_path(p, sizeof p, dir, "manifest.txt");
    char *text = (char *)td_read(p, &len);
    text[len] = '\0';
    cr_assert_not_null(strstr(text, "\nclass 0 T-shirt/top\n"), "%s", text);
    cr_assert_not_null(strstr(text, "\nclass 1 with%20space\n"), "%s", text);
    cr_assert_not_null(strstr(text, "\nclass 2 100%25%20caf%C3%A9%20%231\n"), "%s", text);
    cr_assert_not_null(strstr(text, "\nmean 0.3529 0.6471\n"), "%s", text);
    free(text);

    dp_image_set set;
    cr_assert_eq(dp_image_set_load(dir, "train", 0, 1, 0, &set), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(set.n, 10);
    for (int g = 0; g < 10; g++) {
        cr_assert_eq(set.labels[g], g % 3);
        cr_assert_eq(set.pixels[g * 8], g * 20);
        cr_assert_eq(set.pixels[g * 8 + 7], 255 - g * 20);
    }
    dp_image_set_free(&set);
}

Test(data_writer, vectors_written_little_endian_with_pad)
{
    dp_shard_schema s = dp_shard_schema_vector(3, 2);
    cr_assert_eq(s.record_size, 16);
    cr_assert_eq(s.param[1], 1);
    cr_assert_eq(s.param[2], 1);
    dp_dataset_writer *w = NULL;
    cr_assert_eq(dp_dataset_writer_open(dir, "vec", &s, 0, &w), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_split(w, "train", 4, 1), DP_OK, "%s", dp_errmsg());
    const float x[4][3] = {{1, 1000, -2}, {3, 1002, -2}, {5, 1004, -2}, {7, 1006, -2}};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(dp_dataset_writer_add(w, (uint32_t)(i & 1), x[i]), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_commit(w, NULL), DP_OK, "%s", dp_errmsg());

    dp_manifest *m = NULL;
    cr_assert_eq(dp_manifest_load(dir, &m), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(m->schema.kind, DP_SCHEMA_VECTOR_F32);
    cr_assert_eq(m->schema.vector.features, 3);
    cr_assert_eq(m->schema.vector.classes, 2);
    cr_assert_eq(m->nstats, 3);
    cr_assert_float_eq(m->mean[0], 4.0, 1e-9);
    cr_assert_float_eq(m->mean[1], 1003.0, 1e-9);
    cr_assert_float_eq(m->std[0], 2.236, 1e-9); /* sqrt(5), 4 digits */
    cr_assert_float_eq(m->std[1], 2.236, 1e-9);
    cr_assert_float_eq(m->std[2], 1.0, 0, "a constant feature gets std 1");
    cr_assert_null(m->class_names);

    char path[512];
    dp_shard_reader *r = NULL;
    cr_assert_eq(dp_manifest_open_shard(dir, m, &m->shards[0], path, sizeof path, &r), DP_OK, "%s", dp_errmsg());
    const void *rec;
    size_t len;
    int eof;
    cr_assert_eq(dp_shard_reader_next(r, &rec, &len, &eof), DP_OK);
    cr_assert_eq(dp_shard_reader_next(r, &rec, &len, &eof), DP_OK);
    const uint8_t want[16] = {1, 0, 0, 0, 0x00, 0x00, 0x40, 0x40, 0x00, 0x80, 0x7a, 0x44, 0x00, 0x00, 0x00, 0xc0};
    cr_assert_eq(len, 16);
    cr_assert_arr_eq(rec, want, 16);
    dp_shard_reader_close(r);
    dp_manifest_free(m);
}

Test(data_writer, bad_records_are_refused)
{
    dp_shard_schema s = dp_shard_schema_vector(2, 3);
    dp_dataset_writer *w = NULL;
    cr_assert_eq(dp_dataset_writer_open(dir, "bad", &s, 0, &w), DP_OK, "%s", dp_errmsg());
    const float ok[2] = {1, 2}, inf[2] = {1, INFINITY}, nan[2] = {NAN, 0};
    cr_assert_eq(dp_dataset_writer_add(w, 0, ok), DP_ERR_ARG, "a record before any split");
    cr_assert_eq(dp_dataset_writer_split(w, "Train", 2, 1), DP_ERR_ARG, "upper case split name");
    cr_assert_eq(dp_dataset_writer_split(w, "train", 2, 0), DP_ERR_ARG, "0 shards");
    cr_assert_eq(dp_dataset_writer_split(w, "train", 2, 1), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_add(w, 3, ok), DP_ERR_ARG);
    cr_assert_not_null(strstr(dp_errmsg(), "label 3 outside [0, 3)"), "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_add(w, 0, inf), DP_ERR_ARG);
    cr_assert_not_null(strstr(dp_errmsg(), "feature 1"), "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_add(w, 0, nan), DP_ERR_ARG);
    cr_assert_eq(dp_dataset_writer_add(w, 0, ok), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_split(w, "test", 1, 1), DP_ERR_ARG, "previous split short");
    cr_assert_not_null(strstr(dp_errmsg(), "1 of its 2"), "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_add(w, 0, ok), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_add(w, 0, ok), DP_ERR_ARG, "beyond the announced count");
    cr_assert_eq(dp_dataset_writer_split(w, "train", 1, 1), DP_ERR_ARG, "split repeated");
    const char *two[2] = {"a", "b"}, *empty[3] = {"a", "", "c"};
    cr_assert_eq(dp_dataset_writer_classes(w, 2, two), DP_ERR_ARG, "2 names for 3 classes");
    cr_assert_eq(dp_dataset_writer_classes(w, 3, empty), DP_ERR_ARG, "an empty name");
    cr_assert_eq(dp_dataset_writer_commit(w, NULL), DP_OK, "%s", dp_errmsg());

    dp_shard_schema img = dp_shard_schema_image(1, 2, 2, 2);
    cr_assert_eq(dp_dataset_writer_open(dir, "bad/name", &img, 0, &w), DP_ERR_ARG);
    dp_shard_schema tok = dp_shard_schema_tokens(10);
    cr_assert_eq(dp_dataset_writer_open(dir, "tok", &tok, 0, &w), DP_ERR_ARG);
    dp_shard_schema wide = dp_shard_schema_vector(DP_VECTOR_MAX_FEATURES + 1, 2);
    cr_assert_eq(dp_dataset_writer_open(dir, "wide", &wide, 0, &w), DP_ERR_ARG);
}

/* No temporary sibling "<dir>.tmp.*" of the dataset directory is left. */
static int tmp_left(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -d '%s'.tmp.* >/dev/null 2>&1", dir);
    return system(cmd) == 0;
}

static uint64_t manifest_hash(void)
{
    dp_manifest *m = NULL;
    cr_assert_eq(dp_manifest_load(dir, &m), DP_OK, "%s", dp_errmsg());
    uint64_t h = dp_manifest_hash(m);
    dp_manifest_free(m);
    return h;
}

/* An import that fails or stops leaves the old dataset as it was, and nothing of its own. */
Test(data_writer, failure_keeps_the_old_dataset)
{
    const long sizes[2] = {3, 3};
    dp_shard_schema s = dp_shard_schema_image(1, 3, 3, 4);
    td_make_dataset(dir, "train", sizes, 2, &s);
    const uint64_t old = manifest_hash();

    dp_dataset_writer *w = NULL;
    cr_assert_eq(dp_dataset_writer_open(dir, "synthetic", &s, 0, &w), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_split(w, "train", 5, 2), DP_OK, "%s", dp_errmsg());
    uint8_t px[9] = {0};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(dp_dataset_writer_add(w, 1, px), DP_OK, "%s", dp_errmsg());
    cr_assert(tmp_left(), "the new shards go beside the old dataset");
    dp_dataset_writer_abort(w); /* interrupted: the importer met bad input */
    cr_assert(!tmp_left());
    cr_assert_eq(manifest_hash(), old);
    dp_image_set set;
    cr_assert_eq(dp_image_set_load(dir, "train", 0, 1, 0, &set), DP_OK, "the old dataset was damaged: %s", dp_errmsg());
    dp_image_set_free(&set);

    /* a commit with a short split fails the same way */
    cr_assert_eq(dp_dataset_writer_open(dir, "synthetic", &s, 0, &w), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_split(w, "train", 5, 1), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_add(w, 1, px), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_commit(w, NULL), DP_ERR_ARG);
    cr_assert_eq(manifest_hash(), old);
    cr_assert(!tmp_left());

    /* and so does a dataset without records */
    cr_assert_eq(dp_dataset_writer_open(dir, "synthetic", &s, 0, &w), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_split(w, "train", 0, 1), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_commit(w, NULL), DP_ERR_ARG);
    cr_assert_eq(manifest_hash(), old);
    cr_assert(!tmp_left());
    dp_dataset_writer_abort(NULL);

    /* a complete one replaces it whole: the old shards are gone */
    cr_assert_eq(dp_dataset_writer_open(dir, "synthetic", &s, 0, &w), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_split(w, "train", 1, 1), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_add(w, 1, px), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_commit(w, NULL), DP_OK, "%s", dp_errmsg());
    cr_assert_neq(manifest_hash(), old);
    cr_assert(exists("train-00000.dps"));
    cr_assert(!exists("train-00001.dps"), "a shard of the old dataset outlived it");
    cr_assert(!tmp_left());
}

/* Another dataset, or files the writer did not make, are refused unless overwrite says so. */
Test(data_writer, another_dataset_is_refused)
{
    const long sizes[1] = {3};
    dp_shard_schema s = dp_shard_schema_image(1, 3, 3, 4);
    td_make_dataset(dir, "train", sizes, 1, &s);
    const uint64_t old = manifest_hash();
    dp_dataset_writer *w = NULL;
    cr_assert_eq(dp_dataset_writer_open(dir, "other", &s, 0, &w), DP_ERR_ARG, "another name");
    cr_assert_not_null(strstr(dp_errmsg(), "holds another dataset ('synthetic'"), "%s", dp_errmsg());
    cr_assert_not_null(strstr(dp_errmsg(), "--overwrite"), "%s", dp_errmsg());
    dp_shard_schema v = dp_shard_schema_vector(2, 4);
    cr_assert_eq(dp_dataset_writer_open(dir, "synthetic", &v, 0, &w), DP_ERR_ARG, "another kind of record");
    cr_assert_eq(manifest_hash(), old);
    cr_assert(!tmp_left());

    char p[512];
    td_path(p, sizeof p, dir, "notes.txt");
    td_write(p, "mine", 4);
    cr_assert_eq(dp_dataset_writer_open(dir, "synthetic", &s, 0, &w), DP_ERR_ARG, "a file of the user's");
    cr_assert_not_null(strstr(dp_errmsg(), "'notes.txt'"), "%s", dp_errmsg());

    cr_assert_eq(dp_dataset_writer_open(dir, "other", &v, 1, &w), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_split(w, "train", 1, 1), DP_OK, "%s", dp_errmsg());
    const float x[2] = {1, 2};
    cr_assert_eq(dp_dataset_writer_add(w, 0, x), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_commit(w, NULL), DP_OK, "%s", dp_errmsg());
    cr_assert(!exists("notes.txt"), "overwrite replaces the whole directory");
    cr_assert_neq(manifest_hash(), old);
}

static const char old_manifest[] = "dptrain-manifest 1\nname fashion-mnist\n"
                                   "schema image_u8 channels=1 height=28 width=28 classes=10\n"
                                   "shard train train-00000.dps 30000 0x0123abcd\n"
                                   "shard test test-00000.dps 10000 0x00000000\n";

Test(data_writer, old_manifests_load_and_hash_as_before)
{
    put_manifest(old_manifest);
    dp_manifest *m = NULL;
    cr_assert_eq(dp_manifest_load(dir, &m), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(m->nstats, 0);
    cr_assert_null(m->mean);
    cr_assert_null(m->class_names);
    /* the value the hash had before stats and class names existed */
    cr_assert_eq(dp_manifest_hash(m), 0x0347cf8d6c6135b2ull, "%016llx", (unsigned long long)dp_manifest_hash(m));
    uint64_t h = dp_manifest_hash(m);
    dp_manifest_free(m);

    char text[1024];
    snprintf(text, sizeof text, "%smean 0.286\nstd 0.353\nclass 0 a\nclass 1 b\nclass 2 c\nclass 3 d\nclass 4 e\n"
             "class 5 f\nclass 6 g\nclass 7 h\nclass 8 i\nclass 9 j%%2Fk\n", old_manifest);
    put_manifest(text);
    cr_assert_eq(dp_manifest_load(dir, &m), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(m->nstats, 1);
    cr_assert_eq(m->mean[0], 0.286);
    cr_assert_eq(m->std[0], 0.353);
    cr_assert_str_eq(m->class_names[9], "j/k");
    uint64_t h2 = dp_manifest_hash(m);
    cr_assert_neq(h2, h, "stats and names not hashed");
    m->mean[0] = 0.287;
    cr_assert_neq(dp_manifest_hash(m), h2, "a mean change not hashed");
    m->mean[0] = 0.286;
    m->class_names[9][0] = 'J';
    cr_assert_neq(dp_manifest_hash(m), h2, "a class name change not hashed");
    m->class_names[9][0] = 'j';
    /* what save writes, load reads back to the same content */
    cr_assert_eq(dp_manifest_save(dir, m), DP_OK, "%s", dp_errmsg());
    dp_manifest *l = NULL;
    cr_assert_eq(dp_manifest_load(dir, &l), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_manifest_hash(l), h2);
    dp_manifest_free(l);
    dp_manifest_free(m);
}

static void expect_bad(const char *extra, const char *what)
{
    char text[2048];
    snprintf(text, sizeof text, "%s%s", old_manifest, extra);
    put_manifest(text);
    dp_manifest *m = NULL;
    cr_assert_eq(dp_manifest_load(dir, &m), DP_ERR_FORMAT, "accepted: %s", extra);
    cr_assert_null(m);
    cr_assert_not_null(strstr(dp_errmsg(), "manifest.txt"), "%s", dp_errmsg());
    cr_assert_not_null(strstr(dp_errmsg(), what), "'%s' lacks '%s'", dp_errmsg(), what);
}

Test(data_writer, bad_optional_lines_name_what_is_wrong)
{
    expect_bad("mean 0.5\n", "'mean' line needs a 'std'");
    expect_bad("std 0.5\n", "'mean' line needs a 'std'");
    expect_bad("mean 0.5 0.2\nstd 0.5 0.1\n", "the schema has 1 channels");
    expect_bad("mean 0.5\nstd 0\n", "not positive");
    expect_bad("mean 0.5\nstd -1\n", "not positive");
    expect_bad("mean nan\nstd 1\n", ":6: mean value 1: 'nan' is not a finite number");
    expect_bad("mean 0.5x\nstd 1\n", "'0.5x' is not a finite number");
    expect_bad("mean\nstd 1\n", "'mean' line without values");
    expect_bad("mean 1\nmean 1\nstd 1\n", "second 'mean' line");
    expect_bad("class 0 a\n", "class 1 has no 'class' line");
    expect_bad("class 10 a\n", "class 10 named, the schema has 10 classes");
    expect_bad("class 0 a\nclass 0 b\n", ":7: class 0 named twice");
    expect_bad("class 0 a%00b\n", "bad class name");
    expect_bad("class 0 a%4\n", "bad class name");
    expect_bad("class 0 a b\n", "expected 'class <index");
    expect_bad("class x a\n", "expected 'class <index");
}

Test(data_writer, vector_schema_in_the_manifest)
{
    put_manifest("dptrain-manifest 1\nname v\nschema vector_f32 classes=3 features=5\nshard train t.dps 1 0x00000000\n");
    dp_manifest *m = NULL;
    cr_assert_eq(dp_manifest_load(dir, &m), DP_OK, "%s", dp_errmsg());
    dp_shard_schema want = dp_shard_schema_vector(5, 3);
    cr_assert(dp_shard_schema_equal(&m->schema, &want));
    dp_manifest_free(m);
    put_manifest("dptrain-manifest 1\nname v\nschema vector_f32 features=5\nshard train t.dps 1 0x00000000\n");
    cr_assert_eq(dp_manifest_load(dir, &m), DP_ERR_FORMAT);
    cr_assert_not_null(strstr(dp_errmsg(), "vector schema lacks classes="), "%s", dp_errmsg());
    put_manifest("dptrain-manifest 1\nname v\nschema vector_f32 features=0 classes=2\nshard train t.dps 1 0x00000000\n");
    cr_assert_eq(dp_manifest_load(dir, &m), DP_ERR_FORMAT);
    cr_assert_not_null(strstr(dp_errmsg(), "vector of 0 features"), "%s", dp_errmsg());
}

Test(data_writer, stratified_holdout_is_exact_per_class)
{
    enum { N = 1000 };
    int32_t labels[N];
    uint8_t val[N], again[N];
    for (int i = 0; i < N; i++)
        labels[i] = (i * 7 + i / 13) % 4; /* uneven classes, interleaved */
    labels[5] = -1;
    labels[6] = 4;
    const double fracs[] = {0, 0.1, 0.25, 1.0 / 3, 0.5, 0.9, 1};
    for (size_t f = 0; f < sizeof fracs / sizeof fracs[0]; f++) {
        dp_stratified_holdout(labels, N, 4, fracs[f], val);
        dp_stratified_holdout(labels, N, 4, fracs[f], again);
        cr_assert_arr_eq(val, again, N, "not deterministic");
        cr_assert_eq(val[5] | val[6], 0, "an out-of-range label held out");
        for (int c = 0; c < 4; c++) {
            long n = 0, v = 0;
            for (int i = 0; i < N; i++)
                if (labels[i] == c) {
                    /* every prefix of the class holds floor(j * frac) validation records */
                    cr_assert_eq(v, (long)floor((double)n * fracs[f]), "class %d prefix %ld frac %g", c, n, fracs[f]);
                    n++;
                    v += val[i];
                }
            cr_assert_eq(v, (long)floor((double)n * fracs[f]), "class %d frac %g", c, fracs[f]);
        }
    }
    int32_t one[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    dp_stratified_holdout(one, 8, 1, 0.25, val);
    const uint8_t want[8] = {0, 0, 0, 1, 0, 0, 0, 1};
    cr_assert_arr_eq(val, want, 8);
}

/* A vector set loads as c = F channels of 1x1 and batches as (v - mean) / std. */
Test(data_writer, vector_set_loads_and_normalises)
{
    dp_shard_schema s = dp_shard_schema_vector(2, 2);
    dp_dataset_writer *w = NULL;
    cr_assert_eq(dp_dataset_writer_open(dir, "vec", &s, 0, &w), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_split(w, "train", 4, 2), DP_OK, "%s", dp_errmsg());
    const float x[4][2] = {{0, 10}, {2, 10}, {4, 20}, {6, 20}}; /* mean 3, 15; std sqrt(5), 5 */
    for (int i = 0; i < 4; i++)
        cr_assert_eq(dp_dataset_writer_add(w, (uint32_t)(i / 2), x[i]), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dataset_writer_commit(w, NULL), DP_OK, "%s", dp_errmsg());
    dp_image_set set;
    cr_assert_eq(dp_image_set_load(dir, "train", 1, 2, 0, &set), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(set.c, 2);
    cr_assert_eq(set.h * set.w, 1);
    cr_assert_null(set.pixels);
    cr_assert_eq(set.n, 2);
    cr_assert_eq(set.values[0], 4.0f);
    cr_assert_eq(set.values[3], 20.0f);
    cr_assert_eq(dp_image_norm_size(&set), 4);
    float lut[4], out[4];
    int32_t y[2];
    dp_image_norm_fill(&set, lut);
    const int32_t idx[2] = {1, 0};
    dp_image_set_batch(&set, lut, idx, 0, 2, out, y);
    cr_assert_eq(out[0], (6.0f - 3.0f) / 2.236f);
    cr_assert_eq(out[1], 1.0f);
    cr_assert_eq(out[2], (4.0f - 3.0f) / 2.236f);
    cr_assert_eq(y[0], 1);
    dp_image_set view = dp_image_set_view(&set, 1, 1);
    cr_assert_eq(view.values[0], 6.0f);
    cr_assert_eq(view.labels[0], 1);
    dp_image_set_free(&set);
}

/* u8 images normalise per channel with the manifest's statistics, or with the
 * default ones (the same floats as before statistics existed) without them. */
Test(data_writer, images_normalise_per_channel)
{
    put_manifest(old_manifest);
    dp_manifest *m = NULL;
    cr_assert_eq(dp_manifest_load(dir, &m), DP_OK, "%s", dp_errmsg());
    dp_manifest_free(m);
    const long sizes[1] = {2};
    dp_shard_schema s = dp_shard_schema_image(2, 1, 2, 3);
    td_make_dataset(dir, "train", sizes, 1, &s);
    dp_image_set set;
    cr_assert_eq(dp_image_set_load(dir, "train", 0, 1, 0, &set), DP_OK, "%s", dp_errmsg());
    float lut[512], def[256];
    cr_assert_eq(dp_image_norm_size(&set), 512);
    dp_image_norm_fill(&set, lut);
    dp_image_norm_lut(def);
    for (int v = 0; v < 256; v++) {
        cr_assert_eq(lut[v], ((float)v / 255.0f - 0.2860f) / 0.3530f, "the pinned default changed at %d", v);
        cr_assert_eq(lut[256 + v], def[v]);
    }
    set.mean[1] = 0.5f;
    set.std[1] = 0.25f;
    dp_image_norm_fill(&set, lut);
    cr_assert_eq(lut[256 + 255], 2.0f);
    cr_assert_eq(lut[0], def[0]);
    float x[2 * 4];
    int32_t y[2];
    dp_image_set_batch(&set, lut, NULL, 0, 2, x, y);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            cr_assert_eq(x[i * 4 + j], lut[(j / 2) * 256 + set.pixels[i * 4 + j]]);
    dp_image_set_free(&set);
}
