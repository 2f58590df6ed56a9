/* The DSI Transformer encoder (src/dsi/encoder_transformer.c): the whole
 * model's gradient (encoder + atomic head + CE) against central finite
 * differences at tiny sizes; order matters (a reversed query encodes
 * differently, where the bag encoder cannot tell); a query's encoding does
 * not depend on the other queries of its batch; a bag longer than the
 * position table encodes as its first `positions` features; configuration
 * errors; and the member file: a save/load round trip that encodes bit for
 * bit as before, and hostile encoder sections refused naming the field.
 *
 * Gradient check: buckets 11, embed 4, 2 heads, FFN 6, 2 blocks, positions 5
 * (one query of 6 features is cut), dropout 0.25 with the checker's fixed
 * mask, an empty query in the batch; parameters uniform in [-0.8, 0.8]
 * (the embedding table [-1, 1]). Every parameter element is checked with
 * h = 5e-3: float32 forwards through layer norms put ~1e-6 of rounding on
 * the loss, ~2e-4 on the difference quotient, under atol 1e-3; the
 * truncation error h^2/6 f''' stays below that for these smooth ops. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include "timeout.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/checkpoint.h"
#include "dptrain/dsi.h"
#include "dptrain/dsi_train.h"
#include "dsi/member_format.h"
#include "dsi_gradcheck.h"
#include "gradcheck_assert.h"

static dp_dsi_model_config tf_config(void)
{
    dp_dsi_model_config cfg;
    dp_dsi_model_defaults(&cfg);
    cfg.encoder = DP_DSI_ENCODER_TRANSFORMER;
    cfg.buckets = 11;
    cfg.embed = 4;
    cfg.heads = 2;
    cfg.hidden = 6;
    cfg.layers = 2;
    cfg.positions = 5;
    cfg.dropout = 0.0f;
    return cfg;
}

/* ------------------------------------------------------------------ gradients */

Test(dsi_transformer, gradcheck_whole_model, .timeout = DP_TIMEOUT(120))
{
    dp_dsi_model_config cfg = tf_config();
    cfg.dropout = 0.25f;
    dp_dsi_model *m = dsi_gc_atomic_model(&cfg, 7);
    /* 5 queries: 3 features, 1, none, 6 (cut to 5), 2 with a repeated row */
    static const int32_t tok[] = {1, 4, 9, 0, 2, 10, 3, 5, 6, 7, 8, 8};
    static const int32_t off[] = {0, 3, 4, 4, 10, 12};
    static const int32_t docs[] = {5, 0, 2, 4, 6};
    gc_model g = {m, 5, tok, off, docs};
    gc_input in[2];
    dsi_gc_inputs(m, in);
    gc_opts o = gc_defaults();
    o.h = 5e-3;
    o.max_checks = 4096; /* all of them */
    cr_assert_lt((long)m->dense.n, 4096L, "the check would skip parameters");
    CHECK_GRAD("dsi loss, transformer encoder", 2, in, dsi_gc_build_loss, &g, &o);
    dsi_gc_restore(m);
    dp_dsi_model_free(m);
}

/* ------------------------------------------------------------------ forward properties */

static dp_tensor *encode(dp_ctx *c, dp_dsi_model *m, const int32_t *tok, const int32_t *off, int n)
{
    dp_tensor *h = dp_dsi_encode(c, m, tok, off, n);
    cr_assert_not_null(h, "%s", dp_errmsg());
    const int w = m->cfg.encoder == DP_DSI_ENCODER_TRANSFORMER ? m->cfg.embed : m->cfg.hidden;
    cr_assert(h->shape[0] == n && h->shape[1] == w, "h is [%d,%d], expected [%d,%d]", h->shape[0], h->shape[1], n, w);
    return h;
}

static double max_diff(const float *a, const float *b, int n)
{
    double d = 0;
    for (int i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

Test(dsi_transformer, order_batch_and_truncation, .timeout = DP_TIMEOUT(30))
{
    dp_dsi_model_config cfg = tf_config();
    cfg.embed = 8;
    cfg.layers = 1;
    dp_dsi_model *m = dsi_gc_atomic_model(&cfg, 3);
    /* the positions start at N(0, 0.01): make them matter as a trained table would */
    dp_tensor *pos = NULL;
    for (int i = 0; i < m->dense.count; i++)
        if (!strcmp(m->dense.items[i]->name, "tf.pos")) pos = &m->dense.items[i]->t;
    cr_assert_not_null(pos, "no tf.pos parameter");
    for (long i = 0; i < pos->n; i++) pos->data[i] *= 100.0f;
    dp_ctx c;
    dp_ctx_init(&c);
    c.training = 0;
    c.grad_enabled = 0;
    const int E = 8;
    /* 0: {1,2,3}, 1: {3,2,1}, 2: {4,5}, 3: {1,2,3,4,5,6,7} (7 > positions 5), 4: {1,2,3,4,5}, 5: empty */
    static const int32_t tok[] = {1, 2, 3, 3, 2, 1, 4, 5, 1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5};
    static const int32_t off[] = {0, 3, 6, 8, 15, 20, 20};
    dp_tensor *h = encode(&c, m, tok, off, 6);
    cr_assert_gt(max_diff(h->data, h->data + E, E), 1e-3, "a reversed query encodes as the query itself");
    cr_assert_lt(max_diff(h->data + 3 * E, h->data + 4 * E, E), 1e-6, "features past the position table are not left out");
    for (int j = 0; j < E; j++) cr_assert_eq(h->data[5 * E + j], 0.0f, "an empty query's h is 0");
    /* query 2 alone, and next to another query: the same encoding */
    static const int32_t off2[] = {0, 2};
    float h2[8];
    memcpy(h2, h->data + 2 * E, sizeof h2);
    dp_tensor *a = encode(&c, m, tok + 6, off2, 1);
    cr_assert_lt(max_diff(a->data, h2, E), 1e-5, "query {4,5} alone differs from within the batch");
    /* only empty queries: no tokens at all, every h is 0 */
    static const int32_t off0[] = {0, 0, 0};
    dp_tensor *z = encode(&c, m, tok, off0, 2);
    for (int j = 0; j < 2 * E; j++) cr_assert_eq(z->data[j], 0.0f);
    dp_ctx_free(&c);
    dp_dsi_model_free(m);

    /* the bag encoder is order-blind: the premise that makes the first check above mean something */
    dp_dsi_model_config bag = tf_config();
    bag.encoder = DP_DSI_ENCODER_BAG_MLP;
    m = dsi_gc_atomic_model(&bag, 3);
    dp_ctx_init(&c);
    c.training = 0;
    c.grad_enabled = 0;
    h = encode(&c, m, tok, off, 2);
    cr_assert_lt(max_diff(h->data, h->data + bag.hidden, bag.hidden), 1e-6);
    dp_ctx_free(&c);
    dp_dsi_model_free(m);
}

Test(dsi_transformer, config_errors, .timeout = DP_TIMEOUT(30))
{
    dp_dsi_docids ids;
    dp_dsi_model *m = NULL;
    dp_dsi_model_config cfg = tf_config();
    cfg.heads = 3;
    cr_assert_eq(dp_dsi_docids_atomic(3, &ids), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dsi_model_build(&cfg, &ids, &m), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "3 heads do not divide embed 4"), "%s", dp_errmsg());
    cr_assert_not_null(ids.len, "the ids come back on failure");
    cfg = tf_config();
    cfg.positions = 0;
    cr_assert_eq(dp_dsi_model_build(&cfg, &ids, &m), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "positions = 0"), "%s", dp_errmsg());
    dp_dsi_docids_free(&ids);

    dp_dsi_train_config tc;
    dp_dsi_train_defaults(&tc);
    snprintf(tc.run.data, sizeof tc.run.data, "/nonexistent");
    tc.model.encoder = DP_DSI_ENCODER_TRANSFORMER;
    tc.model.embed = 30;
    tc.model.heads = 4;
    cr_assert_eq(dp_dsi_train_check(&tc, 1), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "--heads 4 does not divide --embed 30"), "%s", dp_errmsg());
    tc.model.encoder = DP_DSI_ENCODER_BAG_MLP; /* the bag has no heads to divide */
    cr_assert_eq(dp_dsi_train_check(&tc, 1), DP_OK, "%s", dp_errmsg());
}

/* ------------------------------------------------------------------ member files */

static char dir[256];

static void tmpdir(void)
{
    snprintf(dir, sizeof dir, "/tmp/dp_tf_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void save_member(const char *path, const dp_dsi_model *m)
{
    dp_dsi_tok_config tok;
    dp_dsi_tok_defaults(&tok);
    tok.buckets = m->cfg.token_space;
    char *names[4] = {"a", "b", "c", "d"};
    cr_assert_eq(dp_dsi_member_save(path, m, &tok, names, "x=1\n"), DP_OK, "%s", dp_errmsg());
}

/* path rewritten with its encoder section replaced by data [size] */
static void rewrite_encoder(const char *path, const void *data, uint64_t size)
{
    dp_checkpoint ck;
    cr_assert_eq(dp_checkpoint_read(path, &ck), DP_OK, "%s", dp_errmsg());
    dp_ck_section s[DP_CK_MAX_SECTIONS];
    int seen = 0;
    for (int i = 0; i < ck.n; i++) {
        s[i] = ck.sections[i];
        if (s[i].tag == SEC_ENCODER) {
            seen = 1;
            s[i].data = data;
            s[i].size = size;
        }
    }
    cr_assert(seen, "no encoder section in %s", path);
    cr_assert_eq(dp_checkpoint_write(path, s, ck.n), DP_OK, "%s", dp_errmsg());
    dp_checkpoint_free(&ck);
}

static void expect_refused(const char *path, const char *field)
{
    dp_dsi_member mb;
    dp_status rc = dp_dsi_member_load(path, &mb);
    cr_assert_eq(rc, DP_ERR_FORMAT, "%s: %s", dp_status_name(rc), dp_errmsg());
    cr_assert(strstr(dp_errmsg(), path) && strstr(dp_errmsg(), field), "expected '%s' named: %s", field, dp_errmsg());
}

Test(dsi_transformer, member_round_trip_and_hostile_sections, .timeout = DP_TIMEOUT(30))
{
    tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/model.dsi", dir);
    dp_dsi_model_config cfg = tf_config();
    cfg.embed = 8;
    cfg.heads = 4;
    cfg.positions = 7;
    dp_dsi_model *m = dsi_gc_atomic_model(&cfg, 4);
    save_member(path, m);
    dp_dsi_member mb;
    cr_assert_eq(dp_dsi_member_load(path, &mb), DP_OK, "%s", dp_errmsg());
    const dp_dsi_model_config *lc = &mb.model->cfg;
    cr_assert(lc->encoder == DP_DSI_ENCODER_TRANSFORMER && lc->heads == 4 && lc->positions == 7 && lc->embed == 8 &&
                  lc->hidden == cfg.hidden && lc->layers == cfg.layers,
              "loaded: encoder %d heads %d positions %d", lc->encoder, lc->heads, lc->positions);
    cr_assert_eq(mb.model->dense.n, m->dense.n);
    static const int32_t tok[] = {1, 4, 9, 0, 2, 10, 3, 5, 6, 7, 8};
    static const int32_t off[] = {0, 3, 4, 11};
    dp_ctx c;
    dp_ctx_init(&c);
    c.training = 0;
    c.grad_enabled = 0;
    dp_tensor *h = encode(&c, m, tok, off, 3), *hl = encode(&c, mb.model, tok, off, 3);
    cr_assert_eq(memcmp(h->data, hl->data, (size_t)h->n * sizeof(float)), 0, "the loaded member encodes differently");
    dp_ctx_free(&c);
    dp_dsi_member_free(&mb);

    /* hostile encoder sections: each refused naming the file and the field */
    const member_encoder bad_kind = {77, 4, 7, 0}, bad_heads = {DP_DSI_ENCODER_TRANSFORMER, 3, 7, 0},
                         bad_pos = {DP_DSI_ENCODER_TRANSFORMER, 4, 0, 0}, more_pos = {DP_DSI_ENCODER_TRANSFORMER, 4, 9, 0},
                         as_bag = {DP_DSI_ENCODER_BAG_MLP, 0, 0, 0};
    rewrite_encoder(path, &bad_kind, sizeof bad_kind);
    expect_refused(path, "encoder = 77");
    save_member(path, m);
    rewrite_encoder(path, &bad_heads, sizeof bad_heads);
    expect_refused(path, "heads = 3");
    save_member(path, m);
    rewrite_encoder(path, &bad_pos, sizeof bad_pos);
    expect_refused(path, "positions = 0");
    save_member(path, m);
    rewrite_encoder(path, &bad_heads, 8);
    expect_refused(path, "encoder section");
    /* sizes that pass the field checks but not the parameters stored */
    save_member(path, m);
    rewrite_encoder(path, &more_pos, sizeof more_pos);
    expect_refused(path, "parameters");
    save_member(path, m);
    rewrite_encoder(path, &as_bag, sizeof as_bag);
    expect_refused(path, "parameters");
    dp_dsi_model_free(m);

    /* a bag member is written as before the section existed (the same bits), and loads as the bag */
    dp_dsi_model_config bag = tf_config();
    bag.encoder = DP_DSI_ENCODER_BAG_MLP;
    m = dsi_gc_atomic_model(&bag, 4);
    save_member(path, m);
    dp_checkpoint ck;
    cr_assert_eq(dp_checkpoint_read(path, &ck), DP_OK, "%s", dp_errmsg());
    cr_assert_null(dp_checkpoint_find(&ck, SEC_ENCODER), "a bag member with an encoder section");
    dp_checkpoint_free(&ck);
    cr_assert_eq(dp_dsi_member_load(path, &mb), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(mb.model->cfg.encoder, DP_DSI_ENCODER_BAG_MLP);
    dp_dsi_member_free(&mb);
    dp_dsi_model_free(m);
    unlink(path);
    rmdir(dir);
}
