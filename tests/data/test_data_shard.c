/* Shard writer/reader: round trips over record counts and frame sizes, the
 * atomic-rename contract, and one test per kind of damage the reader must
 * turn into DP_ERR_FORMAT with a message naming the file and offset. */
#include <criterion/criterion.h>
#include "timeout.h"
#include "test_data_util.h"
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/data.h"

static char dir[256], shard[512];

static void setup(void)
{
    td_tmpdir(dir, sizeof dir);
    td_path(shard, sizeof shard, dir, "x-00003.dps");
}

static void teardown(void) { td_rmtree(dir); }

TestSuite(data_shard, .init = setup, .fini = teardown, .timeout = DP_TIMEOUT(60));

/* Reads a whole shard; returns the first failing status (DP_OK if clean). */
static dp_status drain(const char *path, long *count)
{
    dp_shard_reader *r = NULL;
    dp_status rc = dp_shard_reader_open(path, &r);
    long n = 0;
    for (int eof = 0; rc == DP_OK && !eof;) {
        const void *rec;
        size_t len;
        rc = dp_shard_reader_next(r, &rec, &len, &eof);
        n += rc == DP_OK && !eof;
    }
    dp_shard_reader_close(r);
    if (count)
        *count = n;
    return rc;
}

static void expect_format(const char *what)
{
    dp_status rc = drain(shard, NULL);
    cr_assert_eq(rc, DP_ERR_FORMAT, "expected a format error, got %s: %s", dp_status_name(rc),
                 dp_errmsg());
    cr_assert(strstr(dp_errmsg(), shard), "message does not name the file: %s", dp_errmsg());
    cr_assert(strstr(dp_errmsg(), "offset "), "message has no offset: %s", dp_errmsg());
    if (what)
        cr_assert(strstr(dp_errmsg(), what), "message lacks '%s': %s", what, dp_errmsg());
}

/* ------------------------------------------------------------ round trips */

typedef struct rt_case {
    long n;
    uint32_t h, w;
    size_t frame; /* 0 = default 1 MiB */
} rt_case;

ParameterizedTestParameters(data_shard, image_round_trip)
{
    static rt_case cases[] = {
        {0, 28, 28, 0},     {1, 28, 28, 0},     {3, 28, 28, 0},
        {1000, 4, 4, 1024}, /* ~18 frames */    {20000, 28, 28, 0}, /* 15 MB: 15 frames */
        {2, 64, 64, 1024},  /* records larger than the frame target */
    };
    return cr_make_param_array(rt_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(rt_case *tc, data_shard, image_round_trip, .timeout = DP_TIMEOUT(60))
{
    dp_shard_schema s = dp_shard_schema_image(1, tc->h, tc->w, 10);
    dp_shard_info wi = td_write_images(shard, &s, 0, tc->n, tc->frame);
    cr_assert_eq(wi.record_count, (uint64_t)tc->n);

    dp_shard_reader *r = NULL;
    cr_assert_eq(dp_shard_reader_open(shard, &r), DP_OK, "%s", dp_errmsg());
    const dp_shard_info *ri = dp_shard_reader_info(r);
    cr_assert(dp_shard_schema_equal(&ri->schema, &s));
    cr_assert_eq(ri->record_count, (uint64_t)tc->n);
    cr_assert_eq(ri->payload_crc32, wi.payload_crc32);
    cr_assert_eq(ri->frame_count, wi.frame_count);
    /* Bounded memory: no frame exceeds the target unless one record does. */
    size_t target = tc->frame ? tc->frame : DP_SHARD_DEFAULT_FRAME;
    cr_assert_leq(ri->frame_raw_max, target > s.record_size ? target : s.record_size);
    if (tc->n * (long)s.record_size > 3 * (long)target)
        cr_assert_geq(ri->frame_count, 2);

    uint8_t *want = malloc(s.record_size);
    long n = 0;
    for (int eof = 0;;) {
        const void *rec;
        size_t len;
        cr_assert_eq(dp_shard_reader_next(r, &rec, &len, &eof), DP_OK, "%s", dp_errmsg());
        if (eof)
            break;
        cr_assert_eq(len, s.record_size);
        td_make_image(want, n, &s);
        cr_assert_eq(memcmp(rec, want, len), 0, "record %ld differs", n);
        n++;
    }
    cr_assert_eq(n, tc->n);
    /* eof is sticky */
    const void *rec;
    size_t len;
    int eof = 0;
    cr_assert_eq(dp_shard_reader_next(r, &rec, &len, &eof), DP_OK);
    cr_assert_eq(eof, 1);
    free(want);
    dp_shard_reader_close(r);
}

static size_t token_len(long i) { return (size_t)((i * 37) % 300) * 4; }

Test(data_shard, tokens_round_trip_variable_length, .timeout = DP_TIMEOUT(30))
{
    dp_shard_schema s = dp_shard_schema_tokens(50000);
    dp_shard_writer *w = NULL;
    cr_assert_eq(dp_shard_writer_open(shard, &s, &w), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_shard_writer_set_frame_size(w, 4096), DP_OK);
    cr_assert_eq(dp_shard_writer_set_level(w, 1), DP_OK);
    uint32_t buf[5000];
    long n = 500;
    for (long i = 0; i < n; i++) {
        size_t len = i == 7 ? sizeof buf : token_len(i); /* one record bigger than a frame */
        for (size_t k = 0; k < len / 4; k++)
            buf[k] = (uint32_t)(i * 1000 + (long)k) % 50000;
        cr_assert_eq(dp_shard_writer_add(w, buf, len), DP_OK, "%s", dp_errmsg());
    }
    cr_assert_eq(dp_shard_writer_add(w, buf, 6), DP_ERR_ARG, "token bytes must be a multiple of 4");
    dp_shard_writer_abort(w);
    cr_assert_neq(access(shard, F_OK), 0, "abort must leave no shard");

    /* again, cleanly */
    cr_assert_eq(dp_shard_writer_open(shard, &s, &w), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_shard_writer_set_frame_size(w, 4096), DP_OK);
    for (long i = 0; i < n; i++) {
        size_t len = i == 7 ? sizeof buf : token_len(i);
        for (size_t k = 0; k < len / 4; k++)
            buf[k] = (uint32_t)(i * 1000 + (long)k) % 50000;
        cr_assert_eq(dp_shard_writer_add(w, buf, len), DP_OK, "%s", dp_errmsg());
    }
    cr_assert_eq(dp_shard_writer_close(w, NULL), DP_OK, "%s", dp_errmsg());

    dp_shard_reader *r = NULL;
    cr_assert_eq(dp_shard_reader_open(shard, &r), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_shard_reader_info(r)->schema.kind, DP_SCHEMA_TOKENS);
    for (long i = 0;; i++) {
        const void *rec;
        size_t len;
        int eof;
        cr_assert_eq(dp_shard_reader_next(r, &rec, &len, &eof), DP_OK, "%s", dp_errmsg());
        if (eof) {
            cr_assert_eq(i, n);
            break;
        }
        size_t want = i == 7 ? sizeof buf : token_len(i);
        cr_assert_eq(len, want, "record %ld", i);
        const uint8_t *b = rec;
        for (size_t k = 0; k < len / 4; k++) {
            uint32_t t = (uint32_t)b[4 * k] | (uint32_t)b[4 * k + 1] << 8 |
                         (uint32_t)b[4 * k + 2] << 16 | (uint32_t)b[4 * k + 3] << 24;
            cr_assert_eq(t, (uint32_t)(i * 1000 + (long)k) % 50000);
        }
    }
    dp_shard_reader_close(r);
}

/* ------------------------------------------------------------ writer contract */

Test(data_shard, writer_is_atomic, .timeout = DP_TIMEOUT(10))
{
    dp_shard_schema s = dp_shard_schema_image(1, 4, 4, 10);
    dp_shard_writer *w = NULL;
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", shard);
    cr_assert_eq(dp_shard_writer_open(shard, &s, &w), DP_OK);
    uint8_t rec[18];
    td_make_image(rec, 0, &s);
    cr_assert_eq(dp_shard_writer_add(w, rec, sizeof rec), DP_OK);
    cr_assert_eq(access(shard, F_OK), -1, "shard visible before close");
    cr_assert_eq(access(tmp, F_OK), 0);
    cr_assert_eq(dp_shard_writer_close(w, NULL), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(access(shard, F_OK), 0);
    cr_assert_eq(access(tmp, F_OK), -1, "temp file left behind");
}

Test(data_shard, writer_rejects_bad_input, .timeout = DP_TIMEOUT(10))
{
    dp_shard_writer *w = NULL;
    dp_shard_schema bad = dp_shard_schema_image(1, 0, 28, 10);
    cr_assert_eq(dp_shard_writer_open(shard, &bad, &w), DP_ERR_ARG);
    cr_assert_null(w);
    bad = dp_shard_schema_image(1, 28, 28, 10);
    bad.record_size = 100;
    cr_assert_eq(dp_shard_writer_open(shard, &bad, &w), DP_ERR_ARG);
    bad.kind = 9;
    cr_assert_eq(dp_shard_writer_open(shard, &bad, &w), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "unknown record schema 9"), "%s", dp_errmsg());

    char nodir[600];
    snprintf(nodir, sizeof nodir, "%s/missing/x.dps", dir);
    dp_shard_schema s = dp_shard_schema_image(1, 4, 4, 10);
    cr_assert_eq(dp_shard_writer_open(nodir, &s, &w), DP_ERR_IO);
    cr_assert(strstr(dp_errmsg(), nodir), "%s", dp_errmsg());

    cr_assert_eq(dp_shard_writer_open(shard, &s, &w), DP_OK);
    cr_assert_eq(dp_shard_writer_set_level(w, 1000), DP_ERR_ARG);
    cr_assert_eq(dp_shard_writer_set_frame_size(w, 10), DP_ERR_ARG);
    uint8_t rec[18] = {0};
    cr_assert_eq(dp_shard_writer_add(w, rec, 17), DP_ERR_ARG, "wrong record size accepted");
    cr_assert_eq(dp_shard_writer_add(w, rec, 18), DP_OK);
    cr_assert_eq(dp_shard_writer_set_level(w, 5), DP_ERR_ARG, "level changed mid-shard");
    cr_assert_eq(dp_shard_writer_close(w, NULL), DP_OK);
    dp_shard_writer_abort(NULL);
    dp_shard_reader_close(NULL);
}

/* ------------------------------------------------------------ damage */

/* 1000 records of 4x4 in 1 KiB frames: ~18 frames, ~a few KiB on disk. */
static size_t make_shard(void)
{
    dp_shard_schema s = dp_shard_schema_image(1, 4, 4, 10);
    td_write_images(shard, &s, 0, 1000, 1024);
    size_t n;
    free(td_read(shard, &n));
    cr_assert_eq(drain(shard, NULL), DP_OK, "%s", dp_errmsg());
    return n;
}

Test(data_shard, truncated_inside_header, .timeout = DP_TIMEOUT(10))
{
    make_shard();
    static const long cuts[] = {0, 1, 8, 64, 127};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        td_truncate(shard, cuts[i]);
        expect_format("truncated inside the header");
    }
}

Test(data_shard, truncated_inside_payload, .timeout = DP_TIMEOUT(10))
{
    size_t size = make_shard();
    long cuts[] = {(long)size - 1, (long)size / 2, 200, 133, 128};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        td_truncate(shard, cuts[i]);
        expect_format("file truncated");
    }
}

Test(data_shard, trailing_bytes, .timeout = DP_TIMEOUT(10))
{
    make_shard();
    td_append(shard, "junk", 4);
    expect_format("trailing bytes");
}

static void expect_flip_caught(size_t off)
{
    td_flip(shard, (long)off, 0x20);
    dp_status rc = drain(shard, NULL);
    cr_assert_eq(rc, DP_ERR_FORMAT, "flip at %zu not caught (%s)", off, dp_errmsg());
    cr_assert(strstr(dp_errmsg(), shard), "%s", dp_errmsg());
    td_flip(shard, (long)off, 0x20);
}

Test(data_shard, flipped_payload_bytes, .timeout = DP_TIMEOUT(30))
{
    size_t size = make_shard();
    /* Frame prefixes, zstd frame headers, compressed blocks and, at the very
     * end, a zstd content checksum: all must be caught. */
    for (size_t off = DP_SHARD_HEADER_SIZE; off < size; off += 13)
        expect_flip_caught(off);
    expect_flip_caught(size - 1);
}

Test(data_shard, flipped_header_byte, .timeout = DP_TIMEOUT(10))
{
    make_shard();
    /* Every header byte after the magic, the version and the crc itself included. */
    for (long off = 8; off < 128; off += 3) {
        td_flip(shard, off, 0x01);
        expect_format("header crc32 mismatch");
        td_flip(shard, off, 0x01);
    }
}

Test(data_shard, wrong_magic, .timeout = DP_TIMEOUT(10))
{
    make_shard();
    td_flip(shard, 2, 0xff);
    expect_format("bad magic");
}

/* Header fields set to a wrong value, the header's crc32 fixed up so that the field's own check
 * must catch it, and the error each must get. */
static const struct {
    long off;
    uint64_t value;
    int width;
    const char *what;
} bad_fields[] = {
    {8, 2, 4, "unsupported format version 2"},
    {40, 1001, 8, "offset 40: record count times record size"},
    {72, 0xdeadbeef, 4, "payload crc32 mismatch (header 0xdeadbeef, data 0x"},
};

Test(data_shard, bad_header_fields, .timeout = DP_TIMEOUT(10))
{
    for (size_t i = 0; i < sizeof bad_fields / sizeof bad_fields[0]; i++) {
        make_shard();
        td_patch(shard, bad_fields[i].off, bad_fields[i].value, bad_fields[i].width, 1);
        expect_format(bad_fields[i].what);
    }
}

Test(data_shard, record_count_mismatch_variable_size, .timeout = DP_TIMEOUT(10))
{
    dp_shard_schema s = dp_shard_schema_tokens(100);
    dp_shard_writer *w = NULL;
    cr_assert_eq(dp_shard_writer_open(shard, &s, &w), DP_OK);
    uint32_t toks[3] = {1, 2, 3};
    for (int i = 0; i < 10; i++)
        cr_assert_eq(dp_shard_writer_add(w, toks, sizeof toks), DP_OK);
    cr_assert_eq(dp_shard_writer_close(w, NULL), DP_OK);
    td_patch(shard, 40, 11, 8, 1);
    expect_format("record count mismatch (header 11, data 10)");
    td_patch(shard, 40, 9, 8, 1);
    expect_format("more records than the header's 9");
}

Test(data_shard, missing_file_is_io_error, .timeout = DP_TIMEOUT(10))
{
    dp_shard_reader *r = NULL;
    cr_assert_eq(dp_shard_reader_open(shard, &r), DP_ERR_IO);
    cr_assert_null(r);
    cr_assert(strstr(dp_errmsg(), shard), "%s", dp_errmsg());
}
