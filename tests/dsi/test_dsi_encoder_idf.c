/* The IDF-weighted encoders (src/dsi/encoder_idf.c, issue 23): the IDF of
 * every embedding row by hand (documents counted once whatever their number
 * of queries, folded token ids, the indexing examples' set), the encoding by
 * hand at init, finite-difference gradient checks of encode + loss through
 * the row weights, the pooled views and the MLP, the member file's round trip
 * and its refusals of a hostile encoder section or parameter count.
 *
 * Gradient checks as test_dsi_model.c's: the registries' tensors point into
 * the checker's two leaves (embedding table, dense parameters: the row scores
 * u among them, uniform in [-0.8, 0.8] so the weights are far from uniform);
 * buckets 11, embed 5, hidden 6, two layers; h = 1e-3. The max view and ReLU
 * are piecewise linear: the fixed seeds below cross no kink (measured), so
 * every element must pass. */
#include <criterion/criterion.h>
#include "timeout.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/checkpoint.h"
#include "dptrain/dsi_train.h"
#include "dsi/member_format.h"
#include "dsi_gradcheck.h"
#include "gradcheck_assert.h"
#include "test_data_util.h"
#include "member_files.h"

static dp_dsi_model_config tiny_config(int encoder, int layers, uint32_t space)
{
    dp_dsi_model_config cfg;
    dp_dsi_model_defaults(&cfg);
    cfg.buckets = 11;
    cfg.token_space = space;
    cfg.embed = 5;
    cfg.hidden = 6;
    cfg.layers = layers;
    cfg.dropout = 0;
    cfg.encoder = encoder;
    cfg.head_scale = 3.0f;
    return cfg;
}

static float *param(const dp_params *p, const char *name)
{
    for (int i = 0; i < p->count; i++)
        if (!strcmp(p->items[i]->name, name)) return p->items[i]->t.data;
    cr_assert_fail("no parameter %s", name);
    return NULL;
}

static double idf(double N, double df) { return log(1.0 + (N - df + 0.5) / (df + 0.5)); }

/* Training queries, interleaved across documents (doc 0, 1, 0, 2): a document
 * holding a row in two queries counts once. Token 12 folds onto row 1 of 11. */
static int32_t q_tok[] = {1, 2, 2, /* */ 2, 12, /* */ 1, 3, /* */ 4};
static int64_t q_off[] = {0, 3, 5, 7, 8};
static int32_t q_doc[] = {0, 1, 0, 2};
static int32_t x_tok[] = {3, 5};
static int64_t x_off[] = {0, 2};
static int32_t x_doc[] = {3};

Test(dsi_encoder_idf, fit_is_bm25_idf_per_row, .timeout = DP_TIMEOUT(30))
{
    const dp_dsi_model_config cfg = tiny_config(DP_DSI_ENCODER_IDF, 2, 22);
    dp_dsi_model *m = dsi_gc_atomic_model(&cfg, 7);
    const float *u = param(&m->dense, "enc.logw");
    for (int r = 0; r < 11; r++) cr_assert_eq(u[r], 0.0f, "before fit: the plain mean (u = 0)");
    const dp_dsi_set q = {.n = 4, .doc = q_doc, .off = q_off, .tok = q_tok};
    const dp_dsi_set x = {.n = 1, .doc = x_doc, .off = x_off, .tok = x_tok};
    const dp_dsi_set *sets[2] = {&q, &x};
    for (int nsets = 1; nsets <= 2; nsets++) {
        cr_assert_eq(dp_dsi_model_fit(m, sets, nsets), DP_OK, "%s", dp_errmsg());
        /* documents holding each row: 1 {0, 1 (by 12)}, 2 {0, 1}, 3 {0} (+ {3}), 4 {2}, 5 (+ {3}) */
        const int df[11] = {0, 2, 2, nsets == 2 ? 2 : 1, 1, nsets == 2 ? 1 : 0, 0, 0, 0, 0, 0};
        for (int r = 0; r < 11; r++) {
            const double want = log(idf(7, df[r]));
            cr_assert_float_eq(u[r], want, 1e-6, "%d sets, row %d: u %g, log idf %g (df %d)", nsets, r, u[r], want, df[r]);
        }
    }
    /* an example naming a document the model does not have */
    int32_t bad_doc[] = {0, 7, 0, 2};
    const dp_dsi_set b = {.n = 4, .doc = bad_doc, .off = q_off, .tok = q_tok};
    const dp_dsi_set *bs[1] = {&b};
    cr_assert_eq(dp_dsi_model_fit(m, bs, 1), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "document 7"), "%s", dp_errmsg());
    dp_dsi_model_free(m);

    /* the plain bag learns nothing from data */
    const dp_dsi_model_config bag = tiny_config(DP_DSI_ENCODER_BAG_MLP, 2, 22);
    m = dsi_gc_atomic_model(&bag, 7);
    cr_assert_eq(dp_dsi_model_fit(m, sets, 2), DP_OK, "%s", dp_errmsg());
    dp_dsi_model_free(m);
}

/* layers 0: h = [IDF-weighted mean, max] of the bag's rows, by hand in double */
Test(dsi_encoder_idf, encoding_after_fit_by_hand, .timeout = DP_TIMEOUT(30))
{
    for (int views = 0; views < 2; views++) {
        const dp_dsi_model_config cfg = tiny_config(views ? DP_DSI_ENCODER_IDF : DP_DSI_ENCODER_IDF_MEAN, 0, 22);
        dp_dsi_model *m = dsi_gc_atomic_model(&cfg, 7);
        const dp_dsi_set q = {.n = 4, .doc = q_doc, .off = q_off, .tok = q_tok};
        const dp_dsi_set *sets[1] = {&q};
        cr_assert_eq(dp_dsi_model_fit(m, sets, 1), DP_OK, "%s", dp_errmsg());
        static const int32_t tok[] = {1, 4, 12, 4, 7};
        static const int32_t off[] = {0, 5};
        const int32_t rows[] = {1, 4, 1, 4, 7};
        const double df[11] = {0, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0};
        dp_ctx c;
        dp_ctx_init(&c);
        c.training = 0;
        dp_tensor *h = dp_dsi_encode(&c, m, tok, off, 1);
        cr_assert_not_null(h, "%s", dp_errmsg());
        const int E = 5;
        cr_assert_eq(h->shape[1], views ? 2 * E : E);
        const float *emb = param(&m->emb, "emb.weight");
        for (int j = 0; j < E; j++) {
            double num = 0, den = 0, mx = -INFINITY;
            for (int k = 0; k < 5; k++) {
                const double w = idf(7, df[rows[k]]), e = emb[rows[k] * E + j];
                num += w * e;
                den += w;
                mx = e > mx ? e : mx;
            }
            cr_assert_float_eq(h->data[j], num / den, 1e-5, "weighted mean [%d]: %g, by hand %g", j, h->data[j], num / den);
            if (views) cr_assert_eq(h->data[E + j], (float)mx, "max [%d]", j);
        }
        dp_ctx_free(&c);
        dp_dsi_model_free(m);
    }
}

/* ------------------------------------------------------------------ gradients */

static void check_grad(int encoder, int head, float dropout, int vocab)
{
    dp_dsi_model_config cfg = tiny_config(encoder, 2, 11);
    cfg.head = head;
    cfg.dropout = dropout;
    dp_dsi_model *m = dsi_gc_atomic_model(&cfg, 7);
    if (vocab) { /* tokens 3, 5..8 and 10 unknown */
        static int32_t tok[] = {0, 1, 2, 4, 9, 4, 1};
        static int64_t off[] = {0, 5, 7};
        static int32_t doc[] = {0, 1};
        const dp_dsi_set v = {.n = 2, .doc = doc, .off = off, .tok = tok};
        const dp_dsi_set *sets[1] = {&v};
        cr_assert_eq(dp_dsi_model_learn_vocab(m, sets, 1), DP_OK, "%s", dp_errmsg());
    }
    /* 6 queries: repeated tokens, a one-token bag, a bag of unknown tokens when vocab is on */
    static const int32_t tok[] = {1, 4, 4, 9, 0, 2, 10, 3, 3, 5, 6, 7, 8, 1, 2};
    static const int32_t off[] = {0, 3, 5, 8, 9, 12, 15};
    static const int32_t docs[] = {5, 0, 2, 4, 6, 1};
    gc_model g = {m, 6, tok, off, docs};
    gc_input in[2];
    dsi_gc_inputs(m, in);
    gc_opts o = gc_defaults();
    o.h = 1e-3;
    o.max_checks = 4096; /* all of them */
    char name[96];
    snprintf(name, sizeof name, "dsi loss, encoder %d, head %d, dropout %g, vocab %d", encoder, head, dropout, vocab);
    CHECK_GRAD(name, 2, in, dsi_gc_build_loss, &g, &o);
    dsi_gc_restore(m);
    dp_dsi_model_free(m);
}

Test(dsi_encoder_idf, gradcheck_dot, .timeout = DP_TIMEOUT(60)) { check_grad(DP_DSI_ENCODER_IDF, DP_DSI_HEAD_DOT, 0, 0); }
Test(dsi_encoder_idf, gradcheck_cosine_vocabulary_dropout, .timeout = DP_TIMEOUT(60))
{
    check_grad(DP_DSI_ENCODER_IDF, DP_DSI_HEAD_COSINE, 0.25f, 1);
}
Test(dsi_encoder_idf, gradcheck_mean_only, .timeout = DP_TIMEOUT(60))
{
    check_grad(DP_DSI_ENCODER_IDF_MEAN, DP_DSI_HEAD_COSINE, 0, 0);
}

/* ------------------------------------------------------------------ the member file */

static char dir[256];

static void make_dir(void) { td_tmpdir(dir, sizeof dir); }
static void remove_dir(void) { td_rmtree(dir); }

/* a fitted 3-document member with a vocabulary, saved to dir/name */
static dp_dsi_model *save_member(const char *name, int encoder, char *path, size_t cap)
{
    dp_dsi_model_config cfg = tiny_config(encoder, 1, 22);
    cfg.head = DP_DSI_HEAD_COSINE;
    dp_dsi_model *m = dsi_gc_atomic_model(&cfg, 3);
    const dp_dsi_set q = {.n = 4, .doc = q_doc, .off = q_off, .tok = q_tok};
    const dp_dsi_set *sets[1] = {&q};
    cr_assert_eq(dp_dsi_model_fit(m, sets, 1), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dsi_model_learn_vocab(m, sets, 1), DP_OK, "%s", dp_errmsg());
    dp_dsi_tok_config tok;
    dp_dsi_tok_defaults(&tok);
    tok.buckets = 22;
    char *names[3] = {"a", "b", "c"};
    snprintf(path, cap, "%s/%s", dir, name);
    cr_assert_eq(dp_dsi_member_save(path, m, &tok, names, "x=1\n"), DP_OK, "%s", dp_errmsg());
    return m;
}

static int has_section(const char *path, uint32_t tag)
{
    dp_checkpoint ck;
    cr_assert_eq(dp_checkpoint_read(path, &ck), DP_OK, "%s", dp_errmsg());
    int has = dp_checkpoint_find(&ck, tag) != NULL;
    dp_checkpoint_free(&ck);
    return has;
}

Test(dsi_encoder_idf, member_round_trip, .timeout = DP_TIMEOUT(30))
{
    make_dir();
    char path[400];
    for (int enc = DP_DSI_ENCODER_IDF; enc <= DP_DSI_ENCODER_IDF_MEAN; enc++) {
        dp_dsi_model *m = save_member("idf.dsi", enc, path, sizeof path);
        cr_assert(has_section(path, SEC_ENCODER));
        dp_dsi_member mb;
        cr_assert_eq(dp_dsi_member_load(path, &mb), DP_OK, "%s", dp_errmsg());
        cr_assert_eq(mb.model->cfg.encoder, enc, "encoder %d came back as %d", enc, mb.model->cfg.encoder);
        cr_assert(mb.model->dense.n == m->dense.n && mb.model->emb.n == m->emb.n);
        cr_assert_eq(memcmp(mb.model->dense.data, m->dense.data, m->dense.n * sizeof(float)), 0);
        cr_assert_eq(memcmp(mb.model->emb.data, m->emb.data, m->emb.n * sizeof(float)), 0);
        const float *u = param(&mb.model->dense, "enc.logw");
        cr_assert_float_eq(u[3], log(idf(3, 1)), 1e-6, "the fitted weights are in the file (u[3] = %g)", u[3]);
        static const int32_t tok[] = {1, 4, 12, 4, 7, /* */ 2, 3};
        static const int32_t off[] = {0, 5, 7};
        dp_ctx c;
        dp_ctx_init(&c);
        c.training = 0;
        dp_tensor *a = dp_dsi_encode(&c, m, tok, off, 2), *b = dp_dsi_encode(&c, mb.model, tok, off, 2);
        cr_assert(a && b, "%s", dp_errmsg());
        cr_assert_eq(memcmp(a->data, b->data, (size_t)a->n * sizeof(float)), 0, "the loaded member encodes alike");
        dp_ctx_free(&c);
        dp_dsi_member_free(&mb);
        dp_dsi_model_free(m);
    }
    /* the plain bag writes no encoder section: its files are as before */
    dp_dsi_model_free(save_member("bag.dsi", DP_DSI_ENCODER_BAG_MLP, path, sizeof path));
    cr_assert(!has_section(path, SEC_ENCODER));
    dp_dsi_member mb;
    cr_assert_eq(dp_dsi_member_load(path, &mb), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(mb.model->cfg.encoder, DP_DSI_ENCODER_BAG_MLP);
    dp_dsi_member_free(&mb);
    remove_dir();
}

Test(dsi_encoder_idf, member_refuses_hostile_encoder_fields, .timeout = DP_TIMEOUT(30))
{
    make_dir();
    char path[400];
    /* an encoder this build does not have; a reserved field set; a short section */
    const member_encoder bad[2] = {{99, 0, 0, 0}, {DP_DSI_ENCODER_IDF, 0, 0, 1}};
    for (int i = 0; i < 2; i++) {
        dp_dsi_model_free(save_member("m.dsi", DP_DSI_ENCODER_IDF, path, sizeof path));
        tm_rewrite_section(path, SEC_ENCODER, &bad[i], sizeof bad[i]);
        tm_expect_rejected(path, "encoder");
    }
    dp_dsi_model_free(save_member("m.dsi", DP_DSI_ENCODER_IDF, path, sizeof path));
    tm_rewrite_section(path, SEC_ENCODER, &bad[1], 4);
    tm_expect_rejected(path, "encoder");
    /* the section dropped: read as the plain bag, whose parameters are fewer */
    dp_dsi_model_free(save_member("m.dsi", DP_DSI_ENCODER_IDF, path, sizeof path));
    tm_rewrite_section(path, SEC_ENCODER, NULL, 0);
    tm_expect_rejected(path, "parameters");
    /* a header whose dense parameters cannot hold the row weights: refused before building */
    dp_dsi_model_free(save_member("m.dsi", DP_DSI_ENCODER_IDF, path, sizeof path));
    dp_checkpoint ck;
    cr_assert_eq(dp_checkpoint_read(path, &ck), DP_OK, "%s", dp_errmsg());
    member_head h;
    const dp_ck_section *sh = dp_checkpoint_find(&ck, SEC_HEAD);
    cr_assert(sh && sh->size == sizeof h, "member header layout changed: update this test");
    memcpy(&h, sh->data, sizeof h);
    dp_checkpoint_free(&ck);
    /* the bag's count (embed x hidden) fits, the idf encoder's (buckets + 2 embed x hidden) does not */
    h.dense_n = (uint64_t)h.embed * (uint64_t)h.hidden;
    static float zeros[64];
    cr_assert(h.dense_n <= 64);
    tm_rewrite_section(path, SEC_HEAD, &h, sizeof h);
    tm_rewrite_section(path, DP_CK_PARAMS, zeros, h.dense_n * sizeof(float));
    tm_expect_rejected(path, "dense_n");
    remove_dir();
}
