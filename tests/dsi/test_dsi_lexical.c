/* The lexical head (src/dsi/lexicon.c, model.c, beam.c, dsi_query.c; issue 23):
 * at init, with the dense head's part removed (its rows zero, so every cosine
 * is 0), the logits are dp_bm25_search's scores on a small corpus whose words
 * share no token id; the term lists of a token record (the training path)
 * equal the text's; a gradient check through the model's loss with respect to
 * the posting weights and the scale; the member file's round trip and its
 * refusals of hostile lexicon sections, each naming the field. */
#include <criterion/criterion.h>
#include "timeout.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/checkpoint.h"
#include "dptrain/dsi_train.h"
#include "dsi/member_format.h"
#include "gradcheck_assert.h"
#include "test_data_util.h"
#include "member_files.h"

enum { SPACE = 1 << 22, ND = 6 };

static const char *const TEXTS[ND] = {
    "the quick brown fox jumps over the lazy dog",
    "a lazy afternoon with tea and a good book about foxes",
    "fox hunting was banned the fox population grew",
    "brown bread and butter for the tea",
    "compilers translate source code into machine code quickly",
    "the dog and the fox are friends in this book",
};

static const char *const QUERIES[] = {
    "lazy fox",
    "the fox the fox",            /* repeated words count once per occurrence */
    "machine code compilers",
    "zebra brown tea",            /* a word no document has, then known ones */
    "book about dogs and tea",
    "nothing here matches",
};
enum { NQ = sizeof QUERIES / sizeof QUERIES[0] };

static dp_dsi_tok_config tok_cfg(void)
{
    dp_dsi_tok_config t;
    dp_dsi_tok_defaults(&t);
    t.buckets = SPACE;
    return t;
}

static dp_dsi_model *lexical_model(int head, float scale)
{
    dp_dsi_lexicon lex;
    cr_assert_eq(dp_dsi_lexicon_build(ND, TEXTS, SPACE, 0.9f, 0.4f, &lex), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dsi_lexicon_check(&lex, "built"), DP_OK, "%s", dp_errmsg());
    dp_dsi_model_config cfg;
    dp_dsi_model_defaults(&cfg);
    cfg.buckets = 13;
    cfg.token_space = SPACE;
    cfg.embed = 4;
    cfg.hidden = 5;
    cfg.layers = 1;
    cfg.head = head;
    cfg.head_scale = 3.0f;
    cfg.lex_scale = scale;
    dp_dsi_docids ids;
    cr_assert_eq(dp_dsi_docids_atomic(ND, &ids), DP_OK, "%s", dp_errmsg());
    dp_dsi_model *m = NULL;
    cr_assert_eq(dp_dsi_model_build_lexical(&cfg, &ids, &lex, &m), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(lex.nterms, 0, "the model takes the lexicon over");
    dp_rng r;
    dp_rng_seed(&r, 7, DP_STREAM_INIT, 0);
    dp_dsi_model_init(m, &r);
    return m;
}

static float *param(const dp_params *p, const char *name, long *n)
{
    for (int i = 0; i < p->count; i++)
        if (!strcmp(p->items[i]->name, name)) {
            if (n) *n = p->items[i]->t.n;
            return p->items[i]->t.data;
        }
    cr_assert_fail("no parameter %s", name);
    return NULL;
}

/* the queries' token bags, word counts and term lists */
typedef struct qbags {
    int32_t ids[NQ * 256], offs[NQ + 1], nwords[NQ], terms[NQ * 256], toff[NQ + 1];
} qbags;

static void tokenize_queries(const dp_dsi_model *m, qbags *q)
{
    dp_dsi_tok_config t = tok_cfg();
    uint64_t w[64];
    q->offs[0] = 0;
    for (int i = 0; i < NQ; i++) {
        q->offs[i + 1] = q->offs[i] + dp_dsi_tokenize(&t, QUERIES[i], (uint32_t *)q->ids + q->offs[i], 256);
        q->nwords[i] = dp_dsi_words(QUERIES[i], w, 64);
    }
    dp_dsi_lex_terms(m, q->ids, q->offs, NQ, q->nwords, q->terms, q->toff);
}

Test(dsi_lexical, init_scores_are_bm25, .timeout = DP_TIMEOUT(30))
{
    /* no two distinct words of the corpus or the queries on one token id: else the test would measure a collision */
    uint64_t w[64], seen[256];
    int ns = 0;
    for (int k = 0; k < ND + NQ; k++) {
        int n = dp_dsi_words(k < ND ? TEXTS[k] : QUERIES[k - ND], w, 64);
        for (int i = 0; i < n; i++) {
            int dup = 0;
            for (int j = 0; j < ns; j++) {
                if (seen[j] == w[i]) dup = 1;
                else cr_assert_neq(seen[j] % SPACE, w[i] % SPACE, "two words on one token id: pick other words");
            }
            if (!dup) seen[ns++] = w[i];
        }
    }
    dp_bm25 *ix;
    cr_assert_eq(dp_bm25_build(ND, TEXTS, 0.9f, 0.4f, &ix), DP_OK, "%s", dp_errmsg());
    for (int head = DP_DSI_HEAD_DOT; head <= DP_DSI_HEAD_COSINE; head++) {
        dp_dsi_model *m = lexical_model(head, 0); /* 0: the default scale, BM25's */
        /* the dense head's part removed: zero rows (cosine: normalize(0) = 0), zero bias */
        long n;
        float *hw = param(&m->dense, "head.weight", &n);
        memset(hw, 0, (size_t)n * sizeof *hw);
        if (head == DP_DSI_HEAD_DOT) {
            float *hb = param(&m->dense, "head.bias", &n);
            memset(hb, 0, (size_t)n * sizeof *hb);
        }
        qbags q;
        tokenize_queries(m, &q);
        dp_ctx c;
        dp_ctx_init(&c);
        c.training = 0;
        c.grad_enabled = 0;
        dp_tensor *h = dp_dsi_encode(&c, m, q.ids, q.offs, NQ);
        dp_tensor *y = dp_dsi_logits(&c, m, h, q.terms, q.toff);
        cr_assert_not_null(y, "%s", dp_errmsg());
        long matched = 0;
        for (int i = 0; i < NQ; i++) {
            int32_t docs[ND];
            float sc[ND], want[ND] = {0};
            int got = dp_bm25_search(ix, QUERIES[i], ND, docs, sc);
            for (int k = 0; k < got; k++) want[docs[k]] = sc[k];
            for (int d = 0; d < ND; d++) {
                const float v = y->data[i * ND + d];
                cr_assert_float_eq(v, want[d], 1e-5f * (1 + want[d]), "query '%s' doc %d: lexical %g, BM25 %g",
                                   QUERIES[i], d, v, want[d]);
                matched += want[d] > 0;
            }
        }
        cr_assert_gt(matched, 10, "the queries match documents at all");
        dp_ctx_free(&c);
        dp_dsi_model_free(m);
    }
    dp_bm25_free(ix);
}

Test(dsi_lexical, token_records_give_the_texts_terms, .timeout = DP_TIMEOUT(30))
{
    /* the training path has token records only: up to the first token the text lacks */
    dp_dsi_model *m = lexical_model(DP_DSI_HEAD_COSINE, 0);
    dp_dsi_tok_config t = tok_cfg();
    uint64_t w[64];
    for (int d = 0; d < ND; d++) {
        int32_t ids[256], a[256], b[256];
        int n = dp_dsi_tokenize(&t, TEXTS[d], (uint32_t *)ids, 256);
        int nw = dp_dsi_words(TEXTS[d], w, 64);
        int ka = dp_dsi_lex_bag(m, ids, n, nw, a), kb = dp_dsi_lex_bag(m, ids, n, -1, b);
        cr_assert_eq(ka, nw, "every word of an indexed text is a term");
        cr_assert_eq(kb, ka, "text %d: %d terms from the record, %d from the text", d, kb, ka);
        cr_assert_eq(memcmp(a, b, (size_t)ka * sizeof *a), 0);
    }
    /* a query with a word the texts lack: with its word count every known word; from the record, none after it */
    int32_t ids[256], a[256];
    int n = dp_dsi_tokenize(&t, "zebra brown tea", (uint32_t *)ids, 256);
    cr_assert_eq(dp_dsi_lex_bag(m, ids, n, 3, a), 2);
    cr_assert_eq(dp_dsi_lex_bag(m, ids, n, -1, a), 0);
    dp_dsi_model_free(m);
}

/* ------------------------------------------------------------------ gradients through the model */

typedef struct grad_case {
    dp_dsi_model *m;
    qbags q;
    int32_t docs[NQ];
} grad_case;

static void point_params(dp_params *p, float *data, float *grad)
{
    for (int i = 0; i < p->count; i++) {
        p->items[i]->t.data = data + p->items[i]->offset;
        p->items[i]->t.grad = grad + p->items[i]->offset;
    }
}

static dp_tensor *build_loss(dp_ctx *c, dp_tensor **in, void *arg)
{
    grad_case *g = arg;
    point_params(&g->m->emb, in[0]->data, in[0]->grad ? in[0]->grad : g->m->emb.grad);
    point_params(&g->m->dense, in[1]->data, in[1]->grad ? in[1]->grad : g->m->dense.grad);
    dp_tensor *h = dp_dsi_encode(c, g->m, g->q.ids, g->q.offs, NQ);
    return dp_dsi_loss_lex(c, g->m, h, g->q.terms, g->q.toff, g->docs, NULL);
}

Test(dsi_lexical, gradcheck_loss_through_the_lexical_head, .timeout = DP_TIMEOUT(60))
{
    static grad_case g;
    g.m = lexical_model(DP_DSI_HEAD_COSINE, 0.3f); /* a scale that keeps the softmax off saturation */
    tokenize_queries(g.m, &g.q);
    for (int i = 0; i < NQ; i++) g.docs[i] = (i * 5 + 1) % ND;
    gc_input in[2] = {{.ndim = 1, .shape = {(int)g.m->emb.n}, .lo = -1, .hi = 1},
                      {.ndim = 1, .shape = {(int)g.m->dense.n}, .lo = -0.5, .hi = 0.5}};
    in[0].no_grad = 1; /* the embedding table is test_dsi_model's; here the dense side, lex.w and lex.scale in it */
    gc_opts o = gc_defaults();
    o.h = 1e-3;
    o.atol = 2e-3;
    o.rtol = 2e-2;
    o.max_checks = 100000; /* every dense element, the lexical ones among them */
    CHECK_GRAD("dsi loss (lexical)", 2, in, build_loss, &g, &o);
    point_params(&g.m->emb, g.m->emb.data, g.m->emb.grad);
    point_params(&g.m->dense, g.m->dense.data, g.m->dense.grad);
    dp_dsi_model_free(g.m);
}

/* ------------------------------------------------------------------ the member file */

static char dir[256];

static dp_dsi_model *save_member(char *path, size_t cap)
{
    dp_dsi_model *m = lexical_model(DP_DSI_HEAD_COSINE, 0);
    long n;
    float *w = param(&m->dense, "lex.w", &n);
    for (long p = 0; p < n; p++) w[p] += 0.01f * (float)(p % 7); /* trained weights, not BM25's */
    param(&m->dense, "lex.scale", NULL)[0] = 1.25f;
    dp_dsi_tok_config t = tok_cfg();
    char *names[ND] = {"d0", "d1", "d2", "d3", "d4", "d5"};
    snprintf(path, cap, "%s/lex.dsi", dir);
    cr_assert_eq(dp_dsi_member_save(path, m, &t, names, "x=1\n"), DP_OK, "%s", dp_errmsg());
    return m;
}

static void ranked(dp_dsi_model *m, int32_t *docs, float *sc)
{
    qbags q;
    tokenize_queries(m, &q);
    dp_ctx c;
    dp_ctx_init(&c);
    c.training = 0;
    c.grad_enabled = 0;
    dp_tensor *h = dp_dsi_encode(&c, m, q.ids, q.offs, NQ);
    cr_assert_not_null(h, "%s", dp_errmsg());
    cr_assert_eq(dp_dsi_beam_search_lex(&c, m, h->data, q.terms, q.toff, NQ, 4, docs, sc), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dsi_beam_search(&c, m, h->data, NQ, 4, docs, sc), DP_ERR_ARG, "terms are required");
    cr_assert(strstr(dp_errmsg(), "lexical"), "%s", dp_errmsg());
    cr_assert_eq(dp_dsi_beam_search_lex(&c, m, h->data, q.terms, q.toff, NQ, 4, docs, sc), DP_OK, "%s", dp_errmsg());
    dp_ctx_free(&c);
}

Test(dsi_lexical, member_round_trip, .timeout = DP_TIMEOUT(30))
{
    td_tmpdir(dir, sizeof dir);
    char path[400];
    dp_dsi_model *m = save_member(path, sizeof path);
    dp_dsi_member mb;
    cr_assert_eq(dp_dsi_member_load(path, &mb), DP_OK, "%s", dp_errmsg());
    cr_assert(dp_dsi_has_lexical(mb.model));
    const dp_dsi_lexicon *a = dp_dsi_model_lexicon(m), *b = dp_dsi_model_lexicon(mb.model);
    cr_assert(a->nterms == b->nterms && a->ndocs == b->ndocs && a->token_space == b->token_space);
    cr_assert_eq(memcmp(a->tok, b->tok, (size_t)a->nterms * sizeof *a->tok), 0);
    cr_assert_eq(memcmp(a->off, b->off, ((size_t)a->nterms + 1) * sizeof *a->off), 0);
    cr_assert_eq(memcmp(a->doc, b->doc, (size_t)a->off[a->nterms] * sizeof *a->doc), 0);
    cr_assert(mb.model->dense.n == m->dense.n);
    cr_assert_eq(memcmp(mb.model->dense.data, m->dense.data, m->dense.n * sizeof(float)), 0,
                 "the trained posting weights and scale are in the file");
    cr_assert_float_eq(param(&mb.model->dense, "lex.scale", NULL)[0], 1.25f, 0);
    int32_t d1[NQ * 4], d2[NQ * 4];
    float s1[NQ * 4], s2[NQ * 4];
    dp_dsi_model_freeze(m);
    ranked(m, d1, s1);
    ranked(mb.model, d2, s2);
    cr_assert_eq(memcmp(d1, d2, sizeof d1), 0, "the loaded member ranks alike");
    cr_assert_eq(memcmp(s1, s2, sizeof s1), 0);
    dp_dsi_member_free(&mb);
    dp_dsi_model_free(m);
    td_rmtree(dir);
}

/* a copy of section tag of a freshly saved member */
static void *section_copy(const char *path, uint32_t tag, uint64_t *size)
{
    dp_checkpoint ck;
    cr_assert_eq(dp_checkpoint_read(path, &ck), DP_OK, "%s", dp_errmsg());
    const dp_ck_section *s = dp_checkpoint_find(&ck, tag);
    cr_assert_not_null(s, "no section %u", tag);
    void *p = malloc(s->size + 16);
    memcpy(p, s->data, s->size);
    *size = s->size;
    dp_checkpoint_free(&ck);
    return p;
}

Test(dsi_lexical, member_refuses_hostile_lexicon, .timeout = DP_TIMEOUT(60))
{
    td_tmpdir(dir, sizeof dir);
    char path[400];
    uint64_t sz;
    /* header fields: nterms beyond the token space, postings beyond nterms x ndocs, reserved set, short */
    const member_lexicon bad[3] = {{SPACE + 1, 0, 40}, {3, 0, 3 * ND + 1}, {3, 1, 5}};
    const char *what[3] = {"nterms", "postings", "reserved"};
    for (int i = 0; i < 3; i++) {
        dp_dsi_model_free(save_member(path, sizeof path));
        tm_rewrite_section(path, SEC_LEXICON, &bad[i], sizeof bad[i]);
        tm_expect_rejected(path, what[i]);
    }
    dp_dsi_model_free(save_member(path, sizeof path));
    tm_rewrite_section(path, SEC_LEXICON, &bad[0], 4);
    tm_expect_rejected(path, "lexicon section holds 4 bytes");
    /* a section of the four dropped */
    dp_dsi_model_free(save_member(path, sizeof path));
    tm_rewrite_section(path, SEC_LEX_DOC, NULL, 0);
    tm_expect_rejected(path, "lexicon documents");
    /* a token id at the token space */
    dp_dsi_model_free(save_member(path, sizeof path));
    uint32_t *tok = section_copy(path, SEC_LEX_TOK, &sz);
    tok[sz / 4 - 1] = SPACE;
    tm_rewrite_section(path, SEC_LEX_TOK, tok, sz);
    tm_expect_rejected(path, "tok[");
    free(tok);
    /* token ids out of order */
    dp_dsi_model_free(save_member(path, sizeof path));
    tok = section_copy(path, SEC_LEX_TOK, &sz);
    uint32_t t0 = tok[0];
    tok[0] = tok[1];
    tok[1] = t0;
    tm_rewrite_section(path, SEC_LEX_TOK, tok, sz);
    tm_expect_rejected(path, "tok[1]");
    free(tok);
    /* a document id at ndocs */
    dp_dsi_model_free(save_member(path, sizeof path));
    int32_t *doc = section_copy(path, SEC_LEX_DOC, &sz);
    doc[sz / 4 - 1] = ND;
    tm_rewrite_section(path, SEC_LEX_DOC, doc, sz);
    tm_expect_rejected(path, "doc[");
    free(doc);
    /* offsets that do not end at the postings / go backwards */
    dp_dsi_model_free(save_member(path, sizeof path));
    int64_t *off = section_copy(path, SEC_LEX_OFF, &sz);
    off[sz / 8 - 1] -= 1;
    tm_rewrite_section(path, SEC_LEX_OFF, off, sz);
    tm_expect_rejected(path, "off[");
    free(off);
    dp_dsi_model_free(save_member(path, sizeof path));
    off = section_copy(path, SEC_LEX_OFF, &sz);
    off[2] = off[1];
    tm_rewrite_section(path, SEC_LEX_OFF, off, sz);
    tm_expect_rejected(path, "off[2]");
    free(off);
    td_rmtree(dir);
}
