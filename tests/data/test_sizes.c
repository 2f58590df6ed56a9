/* Hostile sizes: headers whose counts and sizes sit near 2^32 and 2^64, or
 * whose products wrap, in the shard, IDX, checkpoint and DSI member formats.
 * Each must come back as DP_ERR_FORMAT (or IO) naming the file and the field
 * or offset: no crash, and no allocation sized by the lie. The address space
 * of each test is capped a little above what it uses (except under ASan,
 * which reserves terabytes of shadow), so a reader that believes a header
 * and mallocs gigabytes turns into a visible DP_ERR_NOMEM failure here. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include "timeout.h"
#include "test_data_util.h"
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <zlib.h>
#include <zstd.h>

#include "dsi/member_format.h"
#include "dptrain/checkpoint.h"
#include "dptrain/data.h"
#include "dptrain/dsi.h"
#include "dptrain/dsi_train.h"
#include "member_files.h"

static char dir[256], path[512];

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* Caps this test process's address space at its current size + 512 MiB. */
static void cap_memory(void)
{
#ifndef UNDER_ASAN
    if (getenv("DP_TEST_NO_MEMCAP")) return; /* to tell a cap failure from a bug */
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (!f || fscanf(f, "%lu", &pages) != 1) {
        if (f) fclose(f);
        return;
    }
    fclose(f);
    rlim_t lim = (rlim_t)pages * 4096 + (512ul << 20);
    struct rlimit r = {lim, lim};
    setrlimit(RLIMIT_AS, &r);
#endif
}

static void setup(void)
{
    td_tmpdir(dir, sizeof dir);
    cap_memory();
}

static void teardown(void) { td_rmtree(dir); }

TestSuite(sizes, .init = setup, .fini = teardown, .timeout = DP_TIMEOUT(60));

/* The verdict every case wants: a clean rejection that names file and field. */
static void expect_rejected(dp_status rc, const char *file, const char *field)
{
    cr_assert(rc == DP_ERR_FORMAT || rc == DP_ERR_IO, "%s: status %s: %s", field, dp_status_name(rc), dp_errmsg());
    cr_assert_not_null(strstr(dp_errmsg(), file), "message lacks the file: %s", dp_errmsg());
    cr_assert_not_null(strstr(dp_errmsg(), field), "message lacks '%s': %s", field, dp_errmsg());
}

/* ------------------------------------------------------------ shards */

typedef struct patch {
    long off;        /* byte offset in the file */
    int width;       /* 4 or 8 */
    uint64_t value;
    long off2;       /* a second field (0: none), for consistent pairs */
    uint64_t value2;
    char field[48];  /* what the message must say */
} patch;

/* Header fields: count 40, raw 48, payload 56, frames 64, largest frame 68;
 * the first frame's prefix at 128 (compressed, raw). The shard holds 10
 * records of 18 bytes (raw 180) in one frame. */
ParameterizedTestParameters(sizes, shard_header)
{
    static patch p[] = {
        {40, 8, 0xFFFFFFFFull, 0, 0, "record count"},
        {40, 8, 0x100000000ull, 0, 0, "record count"},
        {40, 8, UINT64_MAX, 0, 0, "record count"},
        {40, 8, (1ull << 63) + 10, 0, 0, "record count"}, /* x 18 wraps to exactly 180 */
        {48, 8, 0xFFFFFFFFull, 0, 0, "uncompressed size"},
        {48, 8, UINT64_MAX, 0, 0, "uncompressed size"},
        {40, 8, 0x100000000ull, 48, 18ull << 32, "uncompressed size"}, /* consistent, past zstd's ratio */
        {40, 8, 0x0E38E38E38E38E38ull, 48, 0x0E38E38E38E38E38ull * 18, "uncompressed size"},
        {56, 8, 0xFFFFFFFFull, 0, 0, "payload"},
        {56, 8, 0x100000000ull, 0, 0, "payload"},
        {56, 8, UINT64_MAX, 0, 0, "payload"},
        {64, 4, 0xFFFFFFFFull, 0, 0, "frames"},
        {68, 4, 0xFFFFFFFFull, 0, 0, "largest frame"},
        {68, 4, 0x80000000ull, 0, 0, "largest frame"},
        {128, 4, 0xFFFFFFFFull, 0, 0, "frame 0"},
        {132, 4, 0xFFFFFFFFull, 0, 0, "frame 0"},
        {128, 4, 0x7FFFFFFFull, 132, 0x7FFFFFFFull, "frame 0"},
    };
    return cr_make_param_array(patch, p, sizeof p / sizeof p[0]);
}

ParameterizedTest(patch *p, sizes, shard_header)
{
    td_path(path, sizeof path, dir, "s.dps");
    dp_shard_schema s = dp_shard_schema_image(1, 4, 4, 10);
    td_write_images(path, &s, 0, 10, 0);
    td_patch(path, p->off, p->value, p->width, 1);
    if (p->off2) td_patch(path, p->off2, p->value2, p->off2 >= 64 ? 4 : 8, 1);
    dp_shard_reader *r = NULL;
    dp_status rc = dp_shard_reader_open(path, &r);
    while (rc == DP_OK) { /* frame prefixes are judged as they arrive */
        const void *rec;
        size_t len;
        int eof;
        rc = dp_shard_reader_next(r, &rec, &len, &eof);
        cr_assert(rc != DP_OK || !eof, "a shard with %s = 0x%llx was read to its end", p->field,
                  (unsigned long long)p->value);
    }
    dp_shard_reader_close(r);
    expect_rejected(rc, path, p->field);
}

/* ------------------------------------------------------------ IDX */

typedef struct idx_case {
    int ndim, gz;
    uint32_t dim[3];
    char field[48];
} idx_case;

ParameterizedTestParameters(sizes, idx_header)
{
    static idx_case c[] = {
        {3, 0, {0xFFFFFFFFu, 1, 1}, "dimension 0"},
        {3, 0, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, "dimension 0"},
        {3, 0, {0x10000u, 0x10000u, 1}, "dimension 1"},          /* 2^32 bytes */
        {3, 0, {0x8000u, 0x8000u, 0x8000u}, "dimension 2"},      /* 2^45: the first two reach the limit */
        {3, 0, {1000, 1000, 1000}, "dimensions promise"},        /* 1e9: under the limit, file holds 0 */
        {3, 1, {1000, 1000, 1000}, "truncated"},                 /* same, gzip'd: size unknown up front */
        {1, 0, {0xFFFFFFFFu, 0, 0}, "dimension 0"},
        {1, 0, {0x40000000u, 0, 0}, "dimensions promise"},       /* exactly the 1 GiB limit */
        {1, 1, {0x40000000u, 0, 0}, "truncated"},
    };
    return cr_make_param_array(idx_case, c, sizeof c / sizeof c[0]);
}

ParameterizedTest(idx_case *c, sizes, idx_header)
{
    uint8_t hdr[16] = {0, 0, 0x08, (uint8_t)c->ndim};
    for (int i = 0; i < c->ndim; i++)
        for (int k = 0; k < 4; k++) hdr[4 + 4 * i + k] = (uint8_t)(c->dim[i] >> (24 - 8 * k));
    uint8_t body[64] = {0}; /* a little data: the rest is missing */
    td_path(path, sizeof path, dir, c->gz ? "a.idx.gz" : "a.idx");
    size_t hlen = 4 + 4 * (size_t)c->ndim;
    if (c->gz) {
        gzFile gz = gzopen(path, "wb");
        cr_assert_not_null(gz);
        gzwrite(gz, hdr, (unsigned)hlen);
        gzwrite(gz, body, sizeof body);
        gzclose(gz);
    } else {
        uint8_t file[16 + sizeof body];
        memcpy(file, hdr, hlen);
        memcpy(file + hlen, body, sizeof body);
        td_write(path, file, hlen + sizeof body);
    }
    dp_idx idx;
    expect_rejected(dp_idx_load(path, c->ndim, &idx), path, c->field);
    cr_assert_null(idx.data);
}

/* ------------------------------------------------------------ checkpoints */

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* A checkpoint file (docs/CHECKPOINT.md) built by hand so every header field
 * can lie: `body` compressed as the one zstd frame, then the header's section
 * count, body size and compressed size replaced where given (~0: keep). */
static void write_ck(const char *file, uint32_t ns, const uint8_t *body, size_t body_len, uint64_t body_n,
                     uint64_t comp_n)
{
    size_t bound = ZSTD_compressBound(body_len);
    uint8_t *f = calloc(1, 48 + bound);
    size_t comp = ZSTD_compress(f + 48, bound, body, body_len, 1);
    cr_assert(!ZSTD_isError(comp));
    memcpy(f, "DPCKPT01", 8);
    put32(f + 8, 1);
    put32(f + 12, ns);
    put64(f + 16, body_n != UINT64_MAX - 1 ? body_n : body_len);
    put64(f + 24, comp_n != UINT64_MAX - 1 ? comp_n : comp);
    put32(f + 32, (uint32_t)crc32(0, body, (uInt)body_len));
    put32(f + 40, (uint32_t)crc32(0, f, 40));
    td_write(file, f, 48 + comp);
    free(f);
}

#define KEEP (UINT64_MAX - 1)

typedef struct ck_case {
    uint32_t ns;
    uint64_t body_n, comp_n, section_size;
    char field[48];
} ck_case;

ParameterizedTestParameters(sizes, checkpoint_header)
{
    static ck_case c[] = {
        {0xFFFFFFFFu, KEEP, KEEP, 8, "offset 12"},                /* section count */
        {0x80000000u, KEEP, KEEP, 8, "offset 12"},
        {1, UINT64_MAX, KEEP, 8, "offset 16"},                    /* body size */
        {1, 0x1000000000000000ull, KEEP, 8, "offset 16"},
        {1, KEEP, 0xFFFFFFFFull, 8, "offset 24"},                 /* compressed size vs the file */
        {1, KEEP, 0x100000000ull, 8, "offset 24"},
        {1, KEEP, UINT64_MAX, 8, "offset 24"},
        {1, KEEP, KEEP, 0xFFFFFFFFull, "section size"},           /* inside the body */
        {1, KEEP, KEEP, 0x100000000ull, "section size"},
        {1, KEEP, KEEP, UINT64_MAX, "section size"},
        {1, KEEP, KEEP, UINT64_MAX - 15, "section size"},         /* + 16 wraps to 0 */
        {2, KEEP, KEEP, 8, "section header"},                     /* a second section that is not there */
    };
    return cr_make_param_array(ck_case, c, sizeof c / sizeof c[0]);
}

ParameterizedTest(ck_case *c, sizes, checkpoint_header)
{
    uint8_t body[24] = {0};
    put32(body, DP_CK_PARAMS);
    put64(body + 8, c->section_size);
    td_path(path, sizeof path, dir, "c.dpc");
    write_ck(path, c->ns, body, sizeof body, c->body_n, c->comp_n);
    dp_checkpoint ck;
    expect_rejected(dp_checkpoint_read(path, &ck), path, c->field);
}

/* A body size of 4 GiB from a 100-byte file: the reader mallocs it before the
 * zstd frame can disagree; rejected since the body is bounded by zstd's
 * largest ratio to the compressed size. */
Test(sizes, checkpoint_body_past_zstd_ratio)
{
    uint8_t body[24] = {0};
    put32(body, DP_CK_PARAMS);
    td_path(path, sizeof path, dir, "c.dpc");
    write_ck(path, 1, body, sizeof body, 0x100000000ull, KEEP);
    dp_checkpoint ck;
    expect_rejected(dp_checkpoint_read(path, &ck), path, "offset 16");
}

/* A 17-byte body holding one 1-byte section, read as two sections: the
 * padding takes the walk past the body and `body_n - off` wraps (an
 * out-of-bounds read) unless the padding is checked too. */
Test(sizes, checkpoint_section_padding_past_body)
{
    uint8_t body[17] = {0};
    put32(body, DP_CK_PARAMS);
    put64(body + 8, 1);
    td_path(path, sizeof path, dir, "c.dpc");
    write_ck(path, 2, body, sizeof body, KEEP, KEEP);
    dp_checkpoint ck;
    expect_rejected(dp_checkpoint_read(path, &ck), path, "section");
}

/* ------------------------------------------------------------ DSI members */


/* A real member (3 documents, a tiny model) saved, then its header section
 * replaced by `edit` and the checkpoint rewritten with the same sections. */
static const int32_t tiny_vocab[] = {3, 60, 67, 200}; /* 67 reads row 3 of a 64-row table */

/* vocab: none, or tiny_vocab's tokens below `space` (the tokenizer's buckets; the table has 64 rows) */
static void save_tiny_member_space(const char *file, int head, int vocab, uint32_t space)
{
    dp_dsi_docids ids;
    cr_assert_eq(dp_dsi_docids_atomic(3, &ids), DP_OK, "%s", dp_errmsg());
    dp_dsi_model_config mc = {.buckets = 64, .token_space = space, .embed = 4, .hidden = 8, .layers = 1,
                              .dropout = 0.1f, .head = head, .head_scale = 8};
    dp_dsi_model *m;
    cr_assert_eq(dp_dsi_model_build(&mc, &ids, &m), DP_OK, "%s", dp_errmsg());
    if (vocab) {
        int32_t tok[4], doc[] = {0};
        int64_t off[] = {0, 0};
        for (int i = 0; i < 4; i++)
            if ((uint32_t)tiny_vocab[i] < space) tok[off[1]++] = tiny_vocab[i];
        const dp_dsi_set v = {.n = 1, .doc = doc, .off = off, .tok = tok};
        const dp_dsi_set *sets[1] = {&v};
        cr_assert_eq(dp_dsi_model_learn_vocab(m, sets, 1), DP_OK, "%s", dp_errmsg());
    }
    dp_dsi_tok_config tok;
    dp_dsi_tok_defaults(&tok);
    char *names[3] = {"a", "b", "c"};
    tok.buckets = space == 64 ? 128 : 64;
    cr_assert_neq(dp_dsi_member_save(file, m, &tok, names, "x=1\n"), DP_OK, "tokenizer and model disagree");
    cr_assert(strstr(dp_errmsg(), "token space"), "%s", dp_errmsg());
    tok.buckets = space;
    cr_assert_eq(dp_dsi_member_save(file, m, &tok, names, "x=1\n"), DP_OK, "%s", dp_errmsg());
    dp_dsi_model_free(m);
}

static void save_tiny_member(const char *file, int head, int vocab) { save_tiny_member_space(file, head, vocab, 64); }

static void write_member(const char *file, void (*edit)(member_head *h))
{
    save_tiny_member(file, DP_DSI_HEAD_DOT, 0);

    dp_checkpoint ck;
    cr_assert_eq(dp_checkpoint_read(file, &ck), DP_OK, "%s", dp_errmsg());
    dp_ck_section s[DP_CK_MAX_SECTIONS];
    member_head h;
    for (int i = 0; i < ck.n; i++) {
        s[i] = ck.sections[i];
        if (s[i].tag == SEC_HEAD) {
            cr_assert_eq(s[i].size, sizeof h, "member header layout changed: update this test");
            memcpy(&h, s[i].data, sizeof h);
            edit(&h);
            s[i].data = &h;
        }
        if (s[i].tag == SEC_EMB && h.emb_n * 4 < s[i].size) s[i].size = h.emb_n * 4; /* a shrunk table */
    }
    cr_assert_eq(dp_checkpoint_write(file, s, ck.n), DP_OK, "%s", dp_errmsg());
    dp_checkpoint_free(&ck);
}

/* Criterion hands parameters to a re-executed process, where a function
 * pointer from the parent would dangle: cases are numbers, edits a switch. */
enum { NDOCS_INT_MAX, NDOCS_ALL_ONES, MAXLEN_ALL_ONES, MAXLEN_2_31, DENSE_ALL_ONES, DENSE_2_32, DENSE_WRAPS,
       EMB_ALL_ONES, EMB_WRAPS, BUCKETS_2_32, EMBED_HUGE, MODEL_16TIB, ROWS_ABOVE_TOKENS };

static int g_case;

static void edit_head(member_head *h)
{
    switch (g_case) {
    case NDOCS_INT_MAX: h->ndocs = INT32_MAX; break;
    case NDOCS_ALL_ONES: h->ndocs = (int32_t)0xFFFFFFFFu; break;
    case MAXLEN_ALL_ONES: h->maxlen = (int32_t)0xFFFFFFFFu; break;
    case MAXLEN_2_31: h->maxlen = INT32_MIN; break;
    case DENSE_ALL_ONES: h->dense_n = UINT64_MAX; break;
    case DENSE_2_32: h->dense_n = 0x100000000ull; break;
    case DENSE_WRAPS: h->dense_n += 1ull << 62; break; /* x 4 bytes: the same section size */
    case EMB_ALL_ONES: h->emb_n = UINT64_MAX; break;
    case EMB_WRAPS: h->emb_n += 3ull << 62; break;
    case BUCKETS_2_32: h->buckets = h->tok_buckets = 0xFFFFFFFFu; break;
    case EMBED_HUGE: h->embed = INT32_MAX; break;
    case ROWS_ABOVE_TOKENS: h->tok_buckets = 32; break; /* a 64-row table for 32 token ids */
    case MODEL_16TIB: /* each in range; an empty embedding section matches emb_n = 0 */
        h->buckets = h->tok_buckets = 1u << 30;
        h->embed = 4096;
        h->emb_n = 0;
        break;
    }
}

typedef struct member_case {
    int edit;
    char field[48];
} member_case;

ParameterizedTestParameters(sizes, member_header)
{
    static member_case c[] = {
        {NDOCS_INT_MAX, "ndocs"},         {NDOCS_ALL_ONES, "ndocs"},      {MAXLEN_ALL_ONES, "maxlen"},
        {MAXLEN_2_31, "maxlen"},          {DENSE_ALL_ONES, "parameters"}, {DENSE_2_32, "parameters"},
        {DENSE_WRAPS, "parameters"},      {EMB_ALL_ONES, "embedding"},    {EMB_WRAPS, "parameters"},
        {EMBED_HUGE, "embed"},            {ROWS_ABOVE_TOKENS, "buckets"},
        /* buckets 2^30 x embed 4096 are each in range, and an empty embedding section
         * matches emb_n = 0: the loader would build the model (16 TiB of floats) if it
         * did not compare emb_n with buckets x embed first. */
        {MODEL_16TIB, "embedding"},
        /* buckets = 2^32 - 1 is rejected, but check_head formats dp_errmsg() into
         * dp_errorf's own buffer ("%s: %s", path, dp_errmsg()), so the message comes
         * out garbled ("model.dsi: model.dsi: ide [1, 2^30]") unless dp_errorf formats
         * through a temporary (src/core/status.c). */
        {BUCKETS_2_32, "buckets"},
    };
    return cr_make_param_array(member_case, c, sizeof c / sizeof c[0]);
}

ParameterizedTest(member_case *c, sizes, member_header)
{
    td_path(path, sizeof path, dir, "model.dsi");
    g_case = c->edit;
    write_member(path, edit_head);
    dp_dsi_member mb;
    expect_rejected(dp_dsi_member_load(path, &mb), path, c->field);
}

/* The head-kind section (cosine head): a hostile kind or scale, or a section
 * of the wrong size, is named; a file without the section (written before the
 * cosine head existed) loads as the dot head. */
static void write_cosine_member(const char *file, int32_t kind, float scale, uint64_t size, int dot_model)
{
    save_tiny_member(file, dot_model ? DP_DSI_HEAD_DOT : DP_DSI_HEAD_COSINE, 0);
    const member_headkind hk = {kind, scale};
    tm_rewrite_section(file, SEC_HEADKIND, &hk, size);
}

/* The vocabulary comes back bit for bit, over a token space 4x the table's
 * rows (so 3 and 67, one row, stay apart); a section of the wrong size (the
 * table's, not the token space's) is named. */
Test(sizes, member_vocabulary)
{
    td_path(path, sizeof path, dir, "model.dsi");
    save_tiny_member_space(path, DP_DSI_HEAD_COSINE, 1, 256);
    dp_dsi_member mb;
    cr_assert_eq(dp_dsi_member_load(path, &mb), DP_OK, "%s", dp_errmsg());
    cr_assert_not_null(mb.model->known);
    cr_assert(mb.model->cfg.buckets == 64 && mb.model->cfg.token_space == 256 && mb.tok.buckets == 256);
    for (int t = 0; t < 256; t++)
        cr_assert_eq(mb.model->known[t >> 3] >> (t & 7) & 1, t == 3 || t == 60 || t == 67 || t == 200, "token %d", t);
    dp_dsi_member_free(&mb);
    const uint8_t table[8] = {0};
    tm_rewrite_section(path, SEC_KNOWN, table, sizeof table);
    expect_rejected(dp_dsi_member_load(path, &mb), path, "vocabulary");
}

Test(sizes, member_head_kind)
{
    td_path(path, sizeof path, dir, "model.dsi");
    dp_dsi_member mb;
    write_cosine_member(path, 7, 8, sizeof(member_headkind), 0);
    expect_rejected(dp_dsi_member_load(path, &mb), path, "head");
    write_cosine_member(path, DP_DSI_HEAD_COSINE, NAN, sizeof(member_headkind), 0);
    expect_rejected(dp_dsi_member_load(path, &mb), path, "head");
    write_cosine_member(path, DP_DSI_HEAD_COSINE, 8, 4, 0);
    expect_rejected(dp_dsi_member_load(path, &mb), path, "head kind");
    write_cosine_member(path, DP_DSI_HEAD_COSINE, 8, sizeof(member_headkind), 0);
    cr_assert_eq(dp_dsi_member_load(path, &mb), DP_OK, "%s", dp_errmsg());
    cr_assert(mb.model->cfg.head == DP_DSI_HEAD_COSINE && mb.model->cfg.head_scale == 8.0f);
    dp_dsi_member_free(&mb);
    write_cosine_member(path, 0, 0, 0, 1);
    cr_assert_eq(dp_dsi_member_load(path, &mb), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(mb.model->cfg.head, DP_DSI_HEAD_DOT);
    dp_dsi_member_free(&mb);
}
