/* manifest.txt: save/load round trip, a content hash that ignores layout but
 * not content, and parse errors that name the file and line. */
#include <criterion/criterion.h>
#include "timeout.h"
#include "test_data_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/data.h"

static char dir[256], mpath[512];

static void setup(void)
{
    td_tmpdir(dir, sizeof dir);
    td_path(mpath, sizeof mpath, dir, "manifest.txt");
}

static void teardown(void) { td_rmtree(dir); }

TestSuite(data_manifest, .init = setup, .fini = teardown, .timeout = DP_TIMEOUT(10));

static dp_manifest_shard shards[3] = {
    {"train", "train-00000.dps", 30000, 0x0123abcd},
    {"train", "train-00001.dps", 30000, 0xfedc0001},
    {"test", "test-00000.dps", 10000, 0x00000000},
};

static dp_manifest sample(void)
{
    dp_manifest m = {.name = "fashion-mnist", .nshards = 3, .shards = shards};
    m.schema = dp_shard_schema_image(1, 28, 28, 10);
    return m;
}

static void put(const char *text) { td_write(mpath, text, strlen(text)); }

Test(data_manifest, save_load_round_trip, .timeout = DP_TIMEOUT(10))
{
    dp_manifest m = sample();
    cr_assert_eq(dp_manifest_save(dir, &m), DP_OK, "%s", dp_errmsg());
    dp_manifest *l = NULL;
    cr_assert_eq(dp_manifest_load(dir, &l), DP_OK, "%s", dp_errmsg());
    cr_assert_str_eq(l->name, "fashion-mnist");
    cr_assert(dp_shard_schema_equal(&l->schema, &m.schema));
    cr_assert_eq(l->nshards, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_str_eq(l->shards[i].split, shards[i].split);
        cr_assert_str_eq(l->shards[i].file, shards[i].file);
        cr_assert_eq(l->shards[i].records, shards[i].records);
        cr_assert_eq(l->shards[i].crc32, shards[i].crc32);
    }
    cr_assert_eq(dp_manifest_hash(l), dp_manifest_hash(&m));
    dp_manifest_free(l);
    dp_manifest_free(NULL);
}

Test(data_manifest, hash_ignores_layout_not_content, .timeout = DP_TIMEOUT(10))
{
    dp_manifest m = sample();
    uint64_t h = dp_manifest_hash(&m);
    put("# hand written\n\ndptrain-manifest 1\r\n"
        "name\tfashion-mnist\n"
        "schema image_u8 classes=10 width=28 height=28 channels=1   \n"
        "  shard train train-00000.dps 30000 0x0123abcd\n"
        "# a comment between shards\n"
        "shard train train-00001.dps 30000 0xfedc0001\n"
        "shard test test-00000.dps 10000 0x00000000");
    dp_manifest *l = NULL;
    cr_assert_eq(dp_manifest_load(dir, &l), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_manifest_hash(l), h);
    l->shards[1].crc32 ^= 1;
    cr_assert_neq(dp_manifest_hash(l), h, "crc change not hashed");
    l->shards[1].crc32 ^= 1;
    l->shards[2].records--;
    cr_assert_neq(dp_manifest_hash(l), h, "count change not hashed");
    l->shards[2].records++;
    dp_manifest_shard t = l->shards[0];
    l->shards[0] = l->shards[1];
    l->shards[1] = t;
    cr_assert_neq(dp_manifest_hash(l), h, "shard order not hashed");
    l->shards[1] = l->shards[0];
    l->shards[0] = t;
    l->schema.image.classes = 11;
    cr_assert_neq(dp_manifest_hash(l), h, "schema not hashed");
    dp_manifest_free(l);
}

Test(data_manifest, tokens_schema_round_trip, .timeout = DP_TIMEOUT(10))
{
    dp_manifest_shard s = {"train", "docs-0.dps", 5, 0x1};
    dp_manifest m = {.name = "msmarco-100k", .nshards = 1, .shards = &s};
    m.schema = dp_shard_schema_tokens(32000);
    cr_assert_eq(dp_manifest_save(dir, &m), DP_OK, "%s", dp_errmsg());
    dp_manifest *l = NULL;
    cr_assert_eq(dp_manifest_load(dir, &l), DP_OK, "%s", dp_errmsg());
    cr_assert(dp_shard_schema_equal(&l->schema, &m.schema));
    dp_manifest_free(l);
}

Test(data_manifest, save_rejects_unsafe_names, .timeout = DP_TIMEOUT(10))
{
    dp_manifest m = sample();
    dp_manifest_shard bad[1] = {{"train", "../escape.dps", 1, 0}};
    m.shards = bad;
    m.nshards = 1;
    cr_assert_eq(dp_manifest_save(dir, &m), DP_ERR_ARG);
}

typedef struct bad_case {
    const char *text, *where, *what;
} bad_case;

#define HEAD "dptrain-manifest 1\nname fm\nschema image_u8 channels=1 height=28 width=28 classes=10\n"

Test(data_manifest, parse_errors_name_file_and_line, .timeout = DP_TIMEOUT(10))
{
    static const bad_case cases[] = {
        {"name fm\n", ":1:", "expected 'dptrain-manifest 1'"},
        {"dptrain-manifest 2\n", ":1:", "expected 'dptrain-manifest 1'"},
        {HEAD "shard train a.dps 10 0x00000001\nbogus x\n", ":5:", "unknown keyword 'bogus'"},
        {HEAD "shard train a.dps 12x 0x00000001\n", ":4:", "bad record count '12x'"},
        {HEAD "shard train a.dps 18446744073709551616 0x00000001\n", ":4:", "bad record count"},
        {HEAD "shard train a.dps 10 0x1\n", ":4:", "bad crc32"},
        {HEAD "shard train a.dps 10 0x0000000G\n", ":4:", "bad crc32"},
        {HEAD "shard train ../a.dps 10 0x00000001\n", ":4:", "bad shard file name"},
        {HEAD "shard Train a.dps 10 0x00000001\n", ":4:", "bad split name"},
        {HEAD "shard train a.dps 10\n", ":4:", "expected 'shard <split>"},
        {HEAD "shard train a.dps 1 0x00000001\nshard test a.dps 1 0x00000001\n", ":5:", "listed twice"},
        {HEAD "schema tokens vocab_size=5\n", ":4:", "second 'schema' line"},
        {"dptrain-manifest 1\nname fm\nschema image_u8 channels=1 height=28 width=28\n", ":3:",
         "lacks classes="},
        {"dptrain-manifest 1\nname fm\nschema image_u8 channels=1 height=0 width=28 classes=10\n", ":3:",
         "image dimension 1 is 0"},
        {"dptrain-manifest 1\nname fm\nschema jpeg\n", ":3:", "unknown schema 'jpeg'"},
        {"dptrain-manifest 1\nname fm\nshard train a.dps 1 0x00000001\n", ":3:", "without a 'schema' line"},
        {HEAD, ":3:", "without any 'shard' line"},
        {"", ":1:", "without the 'dptrain-manifest 1' line"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        put(cases[i].text);
        dp_manifest *m = NULL;
        char where[600];
        snprintf(where, sizeof where, "%s%s", mpath, cases[i].where);
        cr_assert_eq(dp_manifest_load(dir, &m), DP_ERR_FORMAT, "case %zu accepted", i);
        cr_assert_null(m);
        cr_assert(strstr(dp_errmsg(), where), "case %zu: no '%s' in: %s", i, where, dp_errmsg());
        cr_assert(strstr(dp_errmsg(), cases[i].what), "case %zu: no '%s' in: %s", i, cases[i].what,
                  dp_errmsg());
    }
}

Test(data_manifest, missing_manifest_is_io_error, .timeout = DP_TIMEOUT(10))
{
    dp_manifest *m = NULL;
    cr_assert_eq(dp_manifest_load(dir, &m), DP_ERR_IO);
    cr_assert(strstr(dp_errmsg(), mpath), "%s", dp_errmsg());
}
