/* safetensors: a registry written and read back bit for bit with its metadata;
 * every damaged file refused with a message naming the file and the tensor;
 * loading into a registry (missing, extra, reshaped tensors, dtype conversion). */
#include <criterion/criterion.h>
#include "timeout.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/safetensors.h"

static char dir[64], path[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/dptrain-test-st-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(safetensors, .init = setup, .fini = teardown, .timeout = DP_TIMEOUT(30));

/* conv + batch-norm + linear, as a model declares them, filled from `seed`. */
static void make_registry(dp_params *p, uint64_t seed, int fc_out)
{
    memset(p, 0, sizeof *p);
    int cw[4] = {4, 2, 3, 3}, c[1] = {4}, fw[2] = {fc_out, 8}, fb[1] = {fc_out};
    dp_params_add(p, "conv1.weight", 4, cw, DP_INIT_TORCH_WEIGHT, 18, 36);
    dp_params_add(p, "conv1.bias", 1, c, DP_INIT_TORCH_BIAS, 18, 36);
    dp_params_add(p, "bn1.weight", 1, c, DP_INIT_TORCH_BIAS, 4, 4);
    dp_params_add(p, "bn1.bias", 1, c, DP_INIT_TORCH_BIAS, 4, 4);
    dp_params_add_buffer(p, "bn1.running_mean", 4, DP_INIT_ZERO);
    dp_params_add_buffer(p, "bn1.running_var", 4, DP_INIT_ONE);
    dp_params_add(p, "fc.weight", 2, fw, DP_INIT_TORCH_WEIGHT, 8, fc_out);
    dp_params_add(p, "fc.bias", 1, fb, DP_INIT_TORCH_BIAS, 8, fc_out);
    cr_assert_eq(dp_params_finalize(p), DP_OK);
    dp_rng r;
    dp_rng_seed(&r, seed, DP_STREAM_INIT, 0);
    dp_params_init(p, &r);
    for (size_t i = 0; i < p->nbuf; i++) p->buffers[i] = 0.25f * (float)i - 0.5f;
}

static void write_raw(const char *header, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    uint64_t hl = strlen(header);
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)(hl >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(header, 1, hl, f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

/* The read fails with DP_ERR_FORMAT and a message holding the path and `what`. */
static void expect_bad(const char *what, const char *also)
{
    dp_safetensors f;
    dp_status rc = dp_safetensors_read(path, &f);
    cr_assert_eq(rc, DP_ERR_FORMAT, "expected a format error about %s, got %d: %s", what, rc, dp_errmsg());
    cr_assert(strstr(dp_errmsg(), path), "message does not name the file: %s", dp_errmsg());
    cr_assert(strstr(dp_errmsg(), what), "message does not say '%s': %s", what, dp_errmsg());
    if (also) cr_assert(strstr(dp_errmsg(), also), "message does not say '%s': %s", also, dp_errmsg());
    cr_assert_null(f.buf);
}

static const float six[6] = {1, 2, 3, 4, 5, 6};

Test(safetensors, round_trip_of_a_registry)
{
    dp_params a, b;
    make_registry(&a, 7, 3);
    make_registry(&b, 8, 3);
    dp_st_meta meta[] = {{"format", "pt"}, {"dptrain.model", "tiny \"quoted\" \xc3\xa9"}, {"skipped", NULL}};
    cr_assert_eq(dp_safetensors_write_params(path, &a, meta, 3), DP_OK, "%s", dp_errmsg());
    cr_assert_neq(access(path, F_OK), -1);
    char tmpf[160];
    snprintf(tmpf, sizeof tmpf, "%s.tmp", path);
    cr_assert_eq(access(tmpf, F_OK), -1, "the temp file is left behind");

    dp_safetensors f;
    cr_assert_eq(dp_safetensors_read(path, &f), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(f.n, 8);
    cr_assert_eq(f.nmeta, 2);
    cr_assert_str_eq(dp_safetensors_meta(&f, "format"), "pt");
    cr_assert_str_eq(dp_safetensors_meta(&f, "dptrain.model"), "tiny \"quoted\" \xc3\xa9");
    cr_assert_null(dp_safetensors_meta(&f, "skipped"));
    const dp_st_tensor *w = dp_safetensors_find(&f, "conv1.weight");
    cr_assert_not_null(w);
    cr_assert_eq(w->dtype, DP_ST_F32);
    cr_assert_eq(w->ndim, 4);
    cr_assert(w->shape[0] == 4 && w->shape[1] == 2 && w->shape[2] == 3 && w->shape[3] == 3);
    cr_assert_eq((size_t)(w->data - f.buf) % 8, 0, "tensor data is not 8-byte aligned in the file");
    cr_assert_eq(memcmp(w->data, a.items[0]->t.data, 72 * sizeof(float)), 0);
    const dp_st_tensor *rv = dp_safetensors_find(&f, "bn1.running_var");
    cr_assert_not_null(rv);
    cr_assert_eq(rv->ndim, 1);
    cr_assert_eq(rv->shape[0], 4);

    char skipped[64];
    cr_assert_eq(dp_safetensors_load_params(&f, &b, 0, skipped, sizeof skipped), DP_OK, "%s", dp_errmsg());
    cr_assert_str_eq(skipped, "");
    cr_assert_eq(memcmp(a.data, b.data, a.n * sizeof(float)), 0, "parameters differ after the round trip");
    cr_assert_eq(memcmp(a.buffers, b.buffers, a.nbuf * sizeof(float)), 0, "buffers differ after the round trip");
    cr_assert_eq(dp_params_hash(&a), dp_params_hash(&b));
    dp_safetensors_free(&f);
    dp_safetensors_free(&f); /* twice is harmless */
    dp_params_free(&a);
    dp_params_free(&b);
}

Test(safetensors, an_empty_file_of_tensors_is_valid)
{
    write_raw("{\"__metadata__\":{\"a\":\"b\"}}  ", NULL, 0);
    dp_safetensors f;
    cr_assert_eq(dp_safetensors_read(path, &f), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(f.n, 0);
    cr_assert_str_eq(dp_safetensors_meta(&f, "a"), "b");
    dp_safetensors_free(&f);
}

Test(safetensors, scalars_zero_sizes_and_any_header_order_are_valid)
{
    /* data order differs from header order; a scalar I64 and an empty tensor */
    write_raw("{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
              "\"z\":{\"data_offsets\":[16,16],\"shape\":[0,3],\"dtype\":\"F16\"},"
              "\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}}", six, 16);
    dp_safetensors f;
    cr_assert_eq(dp_safetensors_read(path, &f), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(f.n, 3);
    cr_assert_eq(dp_safetensors_find(&f, "n")->ndim, 0);
    cr_assert_eq(dp_safetensors_find(&f, "z")->shape[0], 0);
    dp_safetensors_free(&f);
}

Test(safetensors, missing_file)
{
    dp_safetensors f;
    cr_assert_eq(dp_safetensors_read(path, &f), DP_ERR_IO);
    cr_assert(strstr(dp_errmsg(), path));
}

Test(safetensors, truncated_inside_the_length)
{
    FILE *fp = fopen(path, "wb");
    fwrite("\x10\0\0", 1, 3, fp);
    fclose(fp);
    expect_bad("truncated", NULL);
}

Test(safetensors, truncated_data)
{
    dp_params a;
    make_registry(&a, 7, 3);
    cr_assert_eq(dp_safetensors_write_params(path, &a, NULL, 0), DP_OK, "%s", dp_errmsg());
    dp_params_free(&a);
    FILE *fp = fopen(path, "rb");
    fseek(fp, 0, SEEK_END);
    long full = ftell(fp);
    fclose(fp);
    cr_assert_eq(truncate(path, full - 4), 0); /* the last tensor written loses its last element */
    expect_bad("past the end of the data", "'fc.bias'");
    cr_assert_eq(truncate(path, 100), 0); /* inside the header */
    expect_bad("is past the end of the file", NULL);
}

Test(safetensors, header_length_past_the_end)
{
    write_raw("{}", NULL, 0);
    FILE *fp = fopen(path, "r+b");
    fwrite("\xff\xff\0\0\0\0\0\0", 1, 8, fp);
    fclose(fp);
    expect_bad("header length 65535 is past the end of the file", NULL);
}

Test(safetensors, header_length_over_the_limit)
{
    char *big = malloc((size_t)DP_ST_MAX_HEADER + 16);
    memset(big, ' ', (size_t)DP_ST_MAX_HEADER + 15);
    big[0] = '{', big[1] = '}', big[DP_ST_MAX_HEADER + 15] = 0;
    write_raw(big, NULL, 0);
    free(big);
    expect_bad("over the limit", NULL);
}

Test(safetensors, header_not_json)
{
    write_raw("{\"a\":{\"dtype\":\"F32\",", NULL, 0);
    expect_bad("not valid JSON", NULL);
    write_raw("[1,2]", NULL, 0);
    expect_bad("does not start with a JSON object", NULL);
    write_raw("{}  x", NULL, 0);
    expect_bad("not padding", NULL);
}

Test(safetensors, overlapping_offsets)
{
    write_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", six, 16);
    expect_bad("overlap", "'b'");
}

Test(safetensors, a_hole_in_the_data)
{
    write_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", six, 20);
    expect_bad("unindexed", "'b'");
}

Test(safetensors, bytes_after_the_last_tensor)
{
    write_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", six, 12);
    expect_bad("not indexed", "'a'");
}

/* One tensor 'w' whose entry is wrong in one way: `what` the message must say. */
static const struct bad_entry {
    const char *entry, *what;
    size_t data;
} bad_entries[] = {
    /* bad dtype */
    {"{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}", "unknown dtype 'F33'", 8},
    {"{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}", "dtype is not a string", 8},
    /* shape and offsets disagree */
    {"{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}", "shape [3] of F32 needs", 16},
    {"{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,16]}", "more than 2^64", 16},
    {"{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,16]}", "shape[0] is not a non-negative integer", 16},
    {"{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,16]}", "shape[0] is not", 16},
    {"{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}", "at most 8 sizes", 4},
    /* malformed entries */
    {"{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}", "end before they begin", 8},
    {"{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}", "data_offsets is not", 8},
    {"{\"dtype\":\"F32\",\"data_offsets\":[0,8]}", "field 'shape' is missing", 8},
    {"{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}", "unknown field 'x'", 8},
    {"{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", "field 'dtype' given twice", 8},
    {"[1]", "not a JSON object", 0},
};

Test(safetensors, bad_entries_name_the_tensor)
{
    for (size_t i = 0; i < sizeof bad_entries / sizeof bad_entries[0]; i++) {
        char hdr[256];
        snprintf(hdr, sizeof hdr, "{\"w\":%s}", bad_entries[i].entry);
        write_raw(hdr, six, bad_entries[i].data);
        expect_bad(bad_entries[i].what, "tensor 'w'");
    }
}

Test(safetensors, duplicate_names_and_bad_metadata)
{
    write_raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", six, 8);
    expect_bad("named twice", "'w'");
    write_raw("{\"__metadata__\":{\"k\":1}}", six, 0);
    expect_bad("__metadata__ 'k' is not a string", NULL);
}

/* A file written from registry `a` loaded into `b`: status and message. */
static dp_status load_into(dp_params *b, int partial, char *skipped, size_t cap)
{
    dp_safetensors f;
    cr_assert_eq(dp_safetensors_read(path, &f), DP_OK, "%s", dp_errmsg());
    dp_status rc = dp_safetensors_load_params(&f, b, partial, skipped, cap);
    dp_safetensors_free(&f);
    return rc;
}

Test(safetensors, load_refuses_another_shape_naming_both)
{
    dp_params a, b;
    make_registry(&a, 7, 3);
    make_registry(&b, 8, 5);
    uint64_t before = dp_params_hash(&b);
    cr_assert_eq(dp_safetensors_write_params(path, &a, NULL, 0), DP_OK);
    cr_assert_eq(load_into(&b, 1, NULL, 0), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), path) && strstr(dp_errmsg(), "'fc.weight'") && strstr(dp_errmsg(), "[3, 8]") &&
              strstr(dp_errmsg(), "[5, 8]"), "%s", dp_errmsg());
    cr_assert_eq(dp_params_hash(&b), before, "a refused file changed the registry");
    dp_params_free(&a);
    dp_params_free(&b);
}

Test(safetensors, load_refuses_a_missing_tensor)
{
    write_raw("{\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", six, 4);
    dp_params b;
    make_registry(&b, 8, 3);
    cr_assert_eq(load_into(&b, 1, NULL, 0), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "'conv1.weight'") && strstr(dp_errmsg(), "[1]"), "%s", dp_errmsg());
    write_raw("{}", NULL, 0);
    cr_assert_eq(load_into(&b, 1, NULL, 0), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "parameter 'conv1.weight' [4, 2, 3, 3] is not in the file"), "%s", dp_errmsg());
    dp_params_free(&b);
}

/* The registry's own file plus `extra` tensors before it (hand-made header over the registry's bytes). */
static void write_with_extra(const dp_params *a, const char *extra, const void *extra_data, size_t extra_n)
{
    char hdr[4096];
    size_t len = (size_t)snprintf(hdr, sizeof hdr, "{%s", extra);
    uint64_t at = extra_n;
    for (int i = 0; i < a->count; i++) {
        const dp_param *it = a->items[i];
        len += (size_t)snprintf(hdr + len, sizeof hdr - len, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", it->name);
        for (int d = 0; d < it->t.ndim; d++)
            len += (size_t)snprintf(hdr + len, sizeof hdr - len, "%s%d", d ? "," : "", it->t.shape[d]);
        len += (size_t)snprintf(hdr + len, sizeof hdr - len, "],\"data_offsets\":[%llu,%llu]}",
                                (unsigned long long)at, (unsigned long long)(at + 4 * (uint64_t)it->t.n));
        at += 4 * (uint64_t)it->t.n;
    }
    snprintf(hdr + len, sizeof hdr - len, "}");
    uint8_t *data = malloc(at);
    memcpy(data, extra_data, extra_n);
    uint8_t *d = data + extra_n;
    for (int i = 0; i < a->count; i++) {
        memcpy(d, a->items[i]->t.data, 4 * (size_t)a->items[i]->t.n);
        d += 4 * (size_t)a->items[i]->t.n;
    }
    write_raw(hdr, data, at);
    free(data);
}

Test(safetensors, extra_tensors_need_partial_which_lists_them)
{
    dp_params a, b;
    make_registry(&a, 7, 3);
    make_registry(&b, 8, 3);
    write_with_extra(&a, "\"head.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                         "\"aux.bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}", six, 12);
    cr_assert_eq(load_into(&b, 0, NULL, 0), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), path) && strstr(dp_errmsg(), "'head.weight' [2] is not a parameter"), "%s",
              dp_errmsg());
    char skipped[128];
    cr_assert_eq(load_into(&b, 1, skipped, sizeof skipped), DP_OK, "%s", dp_errmsg());
    cr_assert_str_eq(skipped, "head.weight, aux.bias");
    cr_assert_eq(dp_params_hash(&a), dp_params_hash(&b));
    char tiny[12];
    cr_assert_eq(load_into(&b, 1, tiny, sizeof tiny), DP_OK);
    cr_assert_str_eq(tiny, "head.wei...");
    dp_params_free(&a);
    dp_params_free(&b);
}

Test(safetensors, pytorch_batchnorm_counter_is_accepted_and_ignored)
{
    dp_params a, b;
    make_registry(&a, 7, 3);
    make_registry(&b, 8, 3);
    int64_t count = 938;
    write_with_extra(&a, "\"bn1.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}", &count,
                     8);
    char skipped[64];
    cr_assert_eq(load_into(&b, 0, skipped, sizeof skipped), DP_OK, "%s", dp_errmsg());
    cr_assert_str_eq(skipped, "");
    cr_assert_eq(dp_params_hash(&a), dp_params_hash(&b));
    /* without a batch-norm of that name it is an extra tensor like any other */
    write_with_extra(&a, "\"bn9.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}", &count,
                     8);
    cr_assert_eq(load_into(&b, 0, NULL, 0), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "'bn9.num_batches_tracked'"), "%s", dp_errmsg());
    dp_params_free(&a);
    dp_params_free(&b);
}

/* One-parameter registry "w" [4] loaded from a file of `dtype` holding `bytes`. */
static dp_status load_one(const char *dtype, const void *bytes, size_t n, float out[4])
{
    char hdr[200];
    snprintf(hdr, sizeof hdr, "{\"w\":{\"dtype\":\"%s\",\"shape\":[4],\"data_offsets\":[0,%zu]}}", dtype, n);
    write_raw(hdr, bytes, n);
    dp_params p;
    memset(&p, 0, sizeof p);
    int s[1] = {4};
    dp_params_add(&p, "w", 1, s, DP_INIT_ZERO, 1, 1);
    cr_assert_eq(dp_params_finalize(&p), DP_OK);
    dp_status rc = load_into(&p, 0, NULL, 0);
    memcpy(out, p.data, 4 * sizeof(float));
    dp_params_free(&p);
    return rc;
}

Test(safetensors, float_dtypes_convert)
{
    float v[4];
    const double f64[4] = {1.5, -0.1, 3e-40, 65504.0};
    cr_assert_eq(load_one("F64", f64, sizeof f64, v), DP_OK, "%s", dp_errmsg());
    for (int i = 0; i < 4; i++) cr_assert_eq(v[i], (float)f64[i]);
    /* F16: 1.0, -2.0, the smallest subnormal 2^-24, 65504 */
    const uint16_t f16[4] = {0x3c00, 0xc000, 0x0001, 0x7bff};
    cr_assert_eq(load_one("F16", f16, sizeof f16, v), DP_OK, "%s", dp_errmsg());
    cr_assert(v[0] == 1.0f && v[1] == -2.0f && v[2] == ldexpf(1, -24) && v[3] == 65504.0f);
    const uint16_t bf16[4] = {0x3f80, 0xbfc0, 0x4049, 0x0000}; /* 1, -1.5, 3.140625, 0 */
    cr_assert_eq(load_one("BF16", bf16, sizeof bf16, v), DP_OK, "%s", dp_errmsg());
    cr_assert(v[0] == 1.0f && v[1] == -1.5f && v[2] == 3.140625f && v[3] == 0.0f);
}

Test(safetensors, other_dtypes_and_non_finite_values_are_refused)
{
    float v[4];
    const int32_t i32[4] = {1, 2, 3, 4};
    cr_assert_eq(load_one("I32", i32, sizeof i32, v), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), path) && strstr(dp_errmsg(), "'w' has dtype I32"), "%s", dp_errmsg());
    const float nan4[4] = {0, 1, NAN, 2};
    cr_assert_eq(load_one("F32", nan4, sizeof nan4, v), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "'w': element 2 is not finite"), "%s", dp_errmsg());
    const double big[4] = {0, 1e39, 0, 0}; /* finite as F64, infinite as float32 */
    cr_assert_eq(load_one("F64", big, sizeof big, v), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "element 1"), "%s", dp_errmsg());
}
