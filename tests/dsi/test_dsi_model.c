/* The DSI model room (src/dsi/{kmeans,docids,model,beam}.c): TF-IDF by hand,
 * k-means (determinism, two obvious clusters, identical rows, k > n),
 * semantic docids (unique, deterministic, leaf groups <= leaf, the trie holds
 * exactly the ids, duplicate/prefix rejection), finite-difference gradient
 * checks of encode + loss for atomic and semantic models, and beam search
 * against brute force.
 *
 * Gradient checks: the parameter registries' tensors are pointed into the
 * checker's two leaves (embedding table, dense parameters) for the duration
 * of the check, so gc_check perturbs and reads back the real model
 * parameters. Tiny sizes (buckets 11, embed 5, hidden 6, two layers,
 * dropout 0.25 with the checker's fixed mask); h = 1e-3 in double-accumulated
 * float32 forwards. The model is piecewise smooth (ReLU); the fixed seeds
 * below cross no kink (measured), so every element must pass.
 *
 * Beam search: a hand-built trie with ids of length 1, 2 and 3 and non-uniform
 * fan-out; parameters uniform in [-1, 1] so the digit distributions are far
 * from uniform. The brute force scores each valid id with the renormalised
 * log-probabilities computed here in double from the named parameters. */
#include <criterion/criterion.h>
#include "timeout.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/dsi.h"
#include "dsi_gradcheck.h"
#include "gradcheck_assert.h"

/* ------------------------------------------------------------------ helpers */

/* Sparse rows from dense [n, dim] (zeros skipped), rows L2-normalised. */
static void sparse_from_dense(dp_sparse_rows *x, const float *v, int n, int dim)
{
    x->n = n;
    x->dim = (uint32_t)dim;
    x->off = malloc(((size_t)n + 1) * sizeof *x->off);
    x->idx = malloc((size_t)n * dim * sizeof *x->idx);
    x->val = malloc((size_t)n * dim * sizeof *x->val);
    int64_t o = 0;
    for (int i = 0; i < n; i++) {
        x->off[i] = o;
        double ss = 0;
        for (int j = 0; j < dim; j++) ss += (double)v[i * dim + j] * v[i * dim + j];
        for (int j = 0; j < dim; j++)
            if (v[i * dim + j] != 0.0f) {
                x->idx[o] = (uint32_t)j;
                x->val[o++] = (float)(v[i * dim + j] / sqrt(ss));
            }
    }
    x->off[n] = o;
}

/* n documents in `topics` topics: topic t uses features [t*8, t*8+8) plus a little shared noise. */
static void topic_rows(dp_sparse_rows *x, int n, int topics, uint64_t seed, int *topic_of)
{
    const int dim = topics * 8 + 4;
    float *v = calloc((size_t)n * dim, sizeof *v);
    dp_rng r;
    dp_rng_seed(&r, seed, DP_STREAM_USER, 0);
    for (int i = 0; i < n; i++) {
        const int t = (int)dp_rng_below(&r, (uint64_t)topics);
        if (topic_of) topic_of[i] = t;
        for (int j = 0; j < 8; j++)
            if (dp_rng_uniform(&r) < 0.6f) v[i * dim + t * 8 + j] = 1.0f + dp_rng_uniform(&r);
        v[i * dim + t * 8 + (i % 8)] += 1.0f; /* never an empty row */
        v[i * dim + topics * 8 + (int)dp_rng_below(&r, 4)] = 0.3f;
    }
    sparse_from_dense(x, v, n, dim);
    free(v);
}

static const float *param(const dp_params *p, const char *name)
{
    for (int i = 0; i < p->count; i++)
        if (!strcmp(p->items[i]->name, name)) return p->items[i]->t.data;
    cr_assert_fail("no parameter %s", name);
    return NULL;
}

/* Decoder level l's parameters, by name: a.weight and a.bias (A, Ab) and the node embeddings (Et)
 * make its hidden units, out.weight and out.bias (W, Wb) its digit logits. */
typedef struct {
    const float *A, *Ab, *Et, *W, *Wb;
} dec_level;

static dec_level dec_level_of(const dp_dsi_model *m, int l)
{
    static const char *const names[] = {"a.weight", "a.bias", "node", "out.weight", "out.bias"};
    const float *t[5];
    for (int i = 0; i < 5; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "dec%d.%s", l, names[i]);
        t[i] = param(&m->dense, nm);
    }
    return (dec_level){t[0], t[1], t[2], t[3], t[4]};
}

/* The level's E hidden units for h (H wide) at the node with index `node` within its level:
 * relu(A h + Ab + Et[node]), in double. */
static void dec_hidden(const dec_level *p, int E, int H, int node, const float *h, double *g)
{
    for (int j = 0; j < E; j++) {
        double a = p->Ab[j] + p->Et[(long)node * E + j];
        for (int k = 0; k < H; k++) a += (double)p->A[(long)j * H + k] * h[k];
        g[j] = a > 0 ? a : 0;
    }
}

/* Hand-built semantic ids. Set 0: lengths 1..3, fan-out 3 / 1..3 / 2:
 *   0: 0-0   1: 0-1   2: 1-0-0   3: 1-0-1   4: 1-1   5: 2   6: 0-2   7: 1-2-0   8: 1-2-1
 * (node counts per depth 1, 3, 6, 4). Set 1, a long tail behind short ids:
 *   0: 0   1: 1   2: 2   3: 3-0   4: 3-1   5: 3-2   6: 3-3-0   7: 3-3-1
 * (node counts 1, 4, 4, 2): a beam of 4 is exact, and after level 1 the pool
 * is already full, so the bound that prunes 3-3 is exercised. */
static void hand_ids_set(dp_dsi_docids *ids, int set)
{
    static const uint16_t code0[][3] = {{0, 0}, {0, 1}, {1, 0, 0}, {1, 0, 2}, {1, 1}, {2}, {0, 2}, {1, 2, 0}, {1, 2, 1}};
    static const uint8_t len0[] = {2, 2, 3, 3, 2, 1, 2, 3, 3};
    static const uint16_t code1[][3] = {{0}, {1}, {2}, {3, 0}, {3, 1}, {3, 2}, {3, 3, 0}, {3, 3, 1}};
    static const uint8_t len1[] = {1, 1, 1, 2, 2, 2, 3, 3};
    const int n = set ? 8 : 9;
    const uint16_t(*code)[3] = set ? code1 : code0;
    const uint8_t *len = set ? len1 : len0;
    memset(ids, 0, sizeof *ids);
    ids->kind = DP_DSI_SEMANTIC;
    ids->ndocs = n;
    ids->maxlen = 3;
    ids->len = malloc(n);
    ids->code = calloc((size_t)n * 3, sizeof *ids->code);
    memcpy(ids->len, len, n);
    for (int d = 0; d < n; d++)
        for (int l = 0; l < len[d]; l++) ids->code[d * 3 + l] = code[d][l];
    cr_assert_eq(dp_dsi_docids_index(ids), DP_OK, "%s", dp_errmsg());
}

static void hand_ids(dp_dsi_docids *ids) { hand_ids_set(ids, 0); }

/* 11 buckets, embed 5, hidden 6, two layers */
static dp_dsi_model_config tiny_config(float dropout, int head)
{
    dp_dsi_model_config cfg;
    dp_dsi_model_defaults(&cfg);
    cfg.buckets = 11;
    cfg.embed = 5;
    cfg.hidden = 6;
    cfg.layers = 2;
    cfg.dropout = dropout;
    cfg.head = head;
    cfg.head_scale = 3.0f;
    return cfg;
}

static void tiny_init(dp_dsi_model *m)
{
    dp_rng r;
    dp_rng_seed(&r, 5, DP_STREAM_INIT, 0);
    dp_dsi_model_init(m, &r);
}

/* semantic: 0 atomic (7 documents), 1 hand set 0, 2 hand set 1; head: dp_dsi_head_kind (atomic) */
static dp_dsi_model *tiny_model_head(int semantic, float dropout, int head)
{
    dp_dsi_docids ids;
    if (semantic)
        hand_ids_set(&ids, semantic - 1);
    else
        cr_assert_eq(dp_dsi_docids_atomic(7, &ids), DP_OK, "%s", dp_errmsg());
    const dp_dsi_model_config cfg = tiny_config(dropout, head);
    dp_dsi_model *m = NULL;
    cr_assert_eq(dp_dsi_model_build(&cfg, &ids, &m), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(ids.len, NULL, "the model takes the ids over");
    tiny_init(m);
    return m;
}

static dp_dsi_model *tiny_model(int semantic, float dropout)
{
    return tiny_model_head(semantic, dropout, DP_DSI_HEAD_DOT);
}

/* ------------------------------------------------------------------ tf-idf */

Test(dsi_tfidf, values_by_hand, .timeout = DP_TIMEOUT(30))
{
    /* doc 0: examples {1,2,2} and {1}; doc 1: {2,3}; doc 2: one empty example */
    int32_t doc[] = {0, 1, 0, 2};
    int64_t off[] = {0, 3, 5, 6, 6};
    int32_t tok[] = {1, 2, 2, 2, 3, 1};
    dp_dsi_set s = {.n = 4, .doc = doc, .off = off, .tok = tok};
    dp_sparse_rows x;
    cr_assert_eq(dp_dsi_tfidf(&s, 3, 5, &x), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(x.n, 3);
    cr_assert_eq(x.dim, 5u);
    /* df: 1 -> 1, 2 -> 2, 3 -> 1; idf = ln(4 / (1 + df)) + 1 */
    const double i1 = log(2.0) + 1, i2 = log(4.0 / 3.0) + 1;
    /* doc 0: tf 1 -> 2, 2 -> 2 */
    double a = 2 * i1, b = 2 * i2, nrm = sqrt(a * a + b * b);
    cr_assert_eq(x.off[1] - x.off[0], 2);
    cr_assert_eq(x.idx[0], 1u);
    cr_assert_eq(x.idx[1], 2u);
    cr_assert_float_eq(x.val[0], a / nrm, 1e-6);
    cr_assert_float_eq(x.val[1], b / nrm, 1e-6);
    cr_assert_float_eq(x.val[0], 0.79596, 1e-5); /* 3.38629 / 4.25435 */
    /* doc 1: tf 2 -> 1, 3 -> 1 */
    a = i2, b = i1, nrm = sqrt(a * a + b * b);
    cr_assert_eq(x.off[2] - x.off[1], 2);
    cr_assert_eq(x.idx[2], 2u);
    cr_assert_eq(x.idx[3], 3u);
    cr_assert_float_eq(x.val[2], a / nrm, 1e-6);
    cr_assert_float_eq(x.val[3], b / nrm, 1e-6);
    /* doc 2: empty */
    cr_assert_eq(x.off[3], x.off[2]);
    dp_sparse_rows_free(&x);

    tok[0] = 5;
    cr_assert_eq(dp_dsi_tfidf(&s, 3, 5, &x), DP_ERR_ARG);
    tok[0] = 1;
    doc[3] = 3;
    cr_assert_eq(dp_dsi_tfidf(&s, 3, 5, &x), DP_ERR_ARG);
}

/* ------------------------------------------------------------------ k-means */

Test(dsi_kmeans, separates_two_clusters_and_is_deterministic, .timeout = DP_TIMEOUT(30))
{
    enum { N = 40 };
    int topic[N], rows[N], a[N], b[N];
    dp_sparse_rows x;
    topic_rows(&x, N, 2, 3, topic);
    for (int i = 0; i < N; i++) rows[i] = i;
    cr_assert_eq(dp_kmeans(&x, rows, N, 2, 10, 77, a), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_kmeans(&x, rows, N, 2, 10, 77, b), DP_OK);
    cr_assert_arr_eq(a, b, sizeof a);
    for (int i = 1; i < N; i++)
        cr_assert_eq(a[i] == a[0], topic[i] == topic[0], "row %d: cluster %d topic %d vs row 0: %d %d", i, a[i],
                     topic[i], a[0], topic[0]);
    /* a subset of the rows, in another order */
    int sub[10], as[10];
    for (int i = 0; i < 10; i++) sub[i] = N - 1 - 3 * i;
    cr_assert_eq(dp_kmeans(&x, sub, 10, 2, 10, 1, as), DP_OK);
    for (int i = 1; i < 10; i++) cr_assert_eq(as[i] == as[0], topic[sub[i]] == topic[sub[0]]);
    dp_sparse_rows_free(&x);
}

Test(dsi_kmeans, every_cluster_gets_members, .timeout = DP_TIMEOUT(30))
{
    enum { N = 300 };
    int rows[N], a[N], b[N];
    dp_sparse_rows x;
    topic_rows(&x, N, 6, 11, NULL);
    for (int i = 0; i < N; i++) rows[i] = i;
    for (int k = 2; k <= 16; k += 7) {
        cr_assert_eq(dp_kmeans(&x, rows, N, k, 10, (uint64_t)k, a), DP_OK);
        cr_assert_eq(dp_kmeans(&x, rows, N, k, 10, (uint64_t)k, b), DP_OK);
        cr_assert_arr_eq(a, b, sizeof a);
        int cnt[16] = {0};
        for (int i = 0; i < N; i++) {
            cr_assert(a[i] >= 0 && a[i] < k);
            cnt[a[i]]++;
        }
        for (int j = 0; j < k; j++) cr_assert_gt(cnt[j], 0, "k %d: cluster %d empty", k, j);
    }
    dp_sparse_rows_free(&x);
}

Test(dsi_kmeans, identical_rows_and_k_above_n, .timeout = DP_TIMEOUT(30))
{
    enum { N = 12, DIM = 4 };
    float v[N * DIM] = {0};
    for (int i = 0; i < N; i++) v[i * DIM + 1] = 2.0f, v[i * DIM + 3] = 1.0f;
    dp_sparse_rows x;
    sparse_from_dense(&x, v, N, DIM);
    int rows[N], a[N];
    for (int i = 0; i < N; i++) rows[i] = i;
    /* all identical: dealt round-robin */
    cr_assert_eq(dp_kmeans(&x, rows, N, 5, 10, 3, a), DP_OK, "%s", dp_errmsg());
    int cnt[5] = {0};
    for (int i = 0; i < N; i++) cnt[a[i]]++;
    for (int j = 0; j < 5; j++) cr_assert_gt(cnt[j], 0);
    /* k > n: each row its own cluster */
    cr_assert_eq(dp_kmeans(&x, rows, 3, 7, 10, 3, a), DP_OK);
    cr_assert(a[0] != a[1] && a[1] != a[2] && a[0] != a[2]);
    for (int i = 0; i < 3; i++) cr_assert(a[i] >= 0 && a[i] < 7);
    dp_sparse_rows_free(&x);
    /* two distinct rows, k 4: still every cluster filled */
    for (int i = 0; i < N; i += 2) v[i * DIM + 0] = 5.0f;
    sparse_from_dense(&x, v, N, DIM);
    cr_assert_eq(dp_kmeans(&x, rows, N, 4, 10, 3, a), DP_OK);
    int c4[4] = {0};
    for (int i = 0; i < N; i++) c4[a[i]]++;
    for (int j = 0; j < 4; j++) cr_assert_gt(c4[j], 0);
    /* bad arguments */
    rows[0] = N;
    cr_assert_eq(dp_kmeans(&x, rows, N, 4, 10, 3, a), DP_ERR_ARG);
    cr_assert_eq(dp_kmeans(&x, rows, N, 0, 10, 3, a), DP_ERR_ARG);
    dp_sparse_rows_free(&x);
}

/* ------------------------------------------------------------------ docids + trie */

/* Walks every root-to-leaf path: each leaf's path is its document's id, every
 * document is reached once, depths/levels/digit order are consistent. */
static void check_trie(const dp_dsi_docids *ids)
{
    const dp_dsi_trie *t = &ids->trie;
    const int L = ids->maxlen;
    int *seen = calloc((size_t)ids->ndocs, sizeof *seen);
    cr_assert_eq(t->level_base[0], 0);
    cr_assert_eq(t->level_base[1], 1);
    cr_assert_eq(t->depth[0], 0);
    cr_assert_eq(t->digit[0], -1);
    for (int l = 0; l <= L; l++)
        for (int v = t->level_base[l]; v < t->level_base[l + 1]; v++) cr_assert_eq(t->depth[v], l);
    cr_assert_eq(t->level_base[L + 1], t->nnodes);
    /* iterative DFS with the path so far */
    int stack[4096], sp = 0;
    uint16_t path[DP_DSI_MAXLEN];
    stack[sp++] = 0;
    int leaves = 0;
    while (sp) {
        const int v = stack[--sp];
        if (v > 0) path[t->depth[v] - 1] = (uint16_t)t->digit[v];
        if (t->doc[v] >= 0) {
            cr_assert_eq(t->count[v], 0);
            const int d = t->doc[v];
            cr_assert_eq(seen[d]++, 0, "document %d reached twice", d);
            cr_assert_eq(ids->leaf[d], v);
            cr_assert_eq(ids->len[d], t->depth[v]);
            for (int l = 0; l < ids->len[d]; l++) cr_assert_eq(ids->code[(long)d * L + l], path[l]);
            leaves++;
            continue;
        }
        cr_assert_gt(t->count[v], 0, "node %d: neither leaf nor inner", v);
        for (int q = 0; q < t->count[v]; q++) {
            const int ch = t->first[v] + q;
            cr_assert_eq(t->depth[ch], t->depth[v] + 1);
            cr_assert_lt(t->digit[ch], ids->width[t->depth[v]]);
            if (q) cr_assert_gt(t->digit[ch], t->digit[ch - 1], "children of %d not sorted by digit", v);
            cr_assert_lt(sp, 4096);
            stack[sp++] = ch;
        }
    }
    cr_assert_eq(leaves, ids->ndocs);
    free(seen);
}

Test(dsi_docids, atomic, .timeout = DP_TIMEOUT(30))
{
    dp_dsi_docids ids;
    cr_assert_eq(dp_dsi_docids_atomic(13, &ids), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(ids.maxlen, 1);
    cr_assert_eq(ids.width[0], 13);
    cr_assert_eq(ids.trie.nnodes, 14);
    for (int d = 0; d < 13; d++) cr_assert_eq(ids.code[d], d);
    check_trie(&ids);
    dp_dsi_docids_free(&ids);
    dp_dsi_docids_free(&ids); /* idempotent */
}

Test(dsi_docids, semantic_unique_deterministic_bounded, .timeout = DP_TIMEOUT(60))
{
    enum { N = 700, K = 4, LEAF = 10 };
    dp_sparse_rows x;
    topic_rows(&x, N, 9, 21, NULL);
    dp_dsi_docids a, b, c;
    cr_assert_eq(dp_dsi_docids_semantic(&x, K, LEAF, 42, &a), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_dsi_docids_semantic(&x, K, LEAF, 42, &b), DP_OK);
    cr_assert_eq(a.maxlen, b.maxlen);
    cr_assert_arr_eq(a.len, b.len, N);
    cr_assert_arr_eq(a.code, b.code, (size_t)N * a.maxlen * sizeof *a.code);
    cr_assert_eq(a.kind, DP_DSI_SEMANTIC);
    cr_assert_geq(a.maxlen, 3, "700 docs, k 4, leaf 10 need 3 levels or more");
    check_trie(&a); /* unique (index accepted them) and exactly the valid ids */
    /* inner nodes split into <= k, leaf groups hold <= leaf documents */
    const dp_dsi_trie *t = &a.trie;
    for (int v = 0; v < t->nnodes; v++) {
        if (!t->count[v]) continue;
        const int ch = t->first[v];
        if (t->doc[ch] >= 0)
            cr_assert_leq(t->count[v], LEAF);
        else
            cr_assert_leq(t->count[v], K);
        for (int q = 0; q < t->count[v]; q++) {
            cr_assert_eq(t->digit[ch + q], q, "digits of node %d not 0..count-1", v);
            cr_assert_eq(t->doc[ch + q] >= 0, t->doc[ch] >= 0, "node %d mixes leaves and groups", v);
        }
    }
    /* another seed, another (still valid) clustering */
    cr_assert_eq(dp_dsi_docids_semantic(&x, K, LEAF, 43, &c), DP_OK);
    check_trie(&c);
    dp_dsi_docids_free(&a);
    dp_dsi_docids_free(&b);
    dp_dsi_docids_free(&c);
    dp_sparse_rows_free(&x);
}

Test(dsi_docids, semantic_degenerate_rows_terminate, .timeout = DP_TIMEOUT(60))
{
    enum { N = 50, DIM = 3 };
    float v[N * DIM] = {0};
    for (int i = 0; i < N; i++) v[i * DIM + 2] = 1.0f; /* all identical */
    dp_sparse_rows x;
    sparse_from_dense(&x, v, N, DIM);
    dp_dsi_docids ids;
    cr_assert_eq(dp_dsi_docids_semantic(&x, 3, 4, 1, &ids), DP_OK, "%s", dp_errmsg());
    check_trie(&ids);
    dp_dsi_docids_free(&ids);
    /* leaf 1 with k 2: binary ids; depth cap DP_DSI_MAXLEN not reached for 50 docs */
    cr_assert_eq(dp_dsi_docids_semantic(&x, 2, 1, 1, &ids), DP_OK, "%s", dp_errmsg());
    check_trie(&ids);
    cr_assert_leq(ids.maxlen, DP_DSI_MAXLEN);
    dp_dsi_docids_free(&ids);
    /* fewer documents than leaf: one level, the position */
    cr_assert_eq(dp_dsi_docids_semantic(&x, 10, 100, 1, &ids), DP_OK);
    cr_assert_eq(ids.maxlen, 1);
    cr_assert_eq(ids.width[0], N);
    check_trie(&ids);
    dp_dsi_docids_free(&ids);
    cr_assert_eq(dp_dsi_docids_semantic(&x, 1, 4, 1, &ids), DP_ERR_ARG);
    dp_sparse_rows_free(&x);
}

Test(dsi_docids, depth_cap_falls_back_to_position, .timeout = DP_TIMEOUT(60))
{
    /* k 2 and leaf 1 over 5000 identical rows: 12 halvings leave groups of 2 */
    enum { N = 5000 };
    dp_sparse_rows x = {.n = N, .dim = 1};
    x.off = malloc((N + 1) * sizeof *x.off);
    x.idx = calloc(N, sizeof *x.idx);
    x.val = malloc(N * sizeof *x.val);
    for (int i = 0; i <= N; i++) x.off[i] = i;
    for (int i = 0; i < N; i++) x.val[i] = 1.0f;
    dp_dsi_docids ids;
    cr_assert_eq(dp_dsi_docids_semantic(&x, 2, 1, 9, &ids), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(ids.maxlen, DP_DSI_MAXLEN);
    cr_assert_geq(ids.width[DP_DSI_MAXLEN - 1], 2);
    check_trie(&ids);
    dp_dsi_docids_free(&ids);
    dp_sparse_rows_free(&x);
}

Test(dsi_docids, index_rejects_duplicates_and_prefixes, .timeout = DP_TIMEOUT(30))
{
    dp_dsi_docids ids;
    hand_ids(&ids);
    check_trie(&ids);
    cr_assert_eq(ids.width[0], 3);
    cr_assert_eq(ids.width[1], 3);
    cr_assert_eq(ids.width[2], 3);
    cr_assert_eq(ids.trie.nnodes, 1 + 3 + 6 + 4);
    /* doc 4 := 1-0 is a prefix of docs 2 and 3 */
    ids.code[4 * 3 + 1] = 0;
    cr_assert_eq(dp_dsi_docids_index(&ids), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "prefix"), "%s", dp_errmsg());
    cr_assert_eq(ids.trie.nnodes, 0);
    /* doc 4 := 1-0-2, the id of doc 3 */
    ids.len[4] = 3;
    ids.code[4 * 3 + 2] = 2;
    cr_assert_eq(dp_dsi_docids_index(&ids), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "same id"), "%s", dp_errmsg());
    /* 1-0-1: a valid set again */
    ids.code[4 * 3 + 2] = 1;
    cr_assert_eq(dp_dsi_docids_index(&ids), DP_OK, "%s", dp_errmsg());
    check_trie(&ids);
    ids.len[0] = 0;
    cr_assert_eq(dp_dsi_docids_index(&ids), DP_ERR_FORMAT);
    dp_dsi_docids_free(&ids);
}

/* ------------------------------------------------------------------ gradients */

/* A vocabulary of tokens {0, 1, 2, 4, 9}: the query tokens 3, 5..8 and 10 are unknown. */
static void tiny_vocab(dp_dsi_model *m)
{
    static int32_t tok[] = {0, 1, 2, 4, 9, 4, 1};
    static int64_t off[] = {0, 5, 7};
    static int32_t doc[] = {0, 1};
    const dp_dsi_set v = {.n = 2, .doc = doc, .off = off, .tok = tok};
    const dp_dsi_set *sets[1] = {&v};
    cr_assert_eq(dp_dsi_model_learn_vocab(m, sets, 1), DP_OK, "%s", dp_errmsg());
}

static void check_model_grad_vocab(int semantic, int head, int vocab)
{
    dp_dsi_model *m = tiny_model_head(semantic, 0.25f, head);
    if (vocab) tiny_vocab(m);
    /* 6 queries; semantic docs of length 1, 2 and 3 (docs 5, 0/4/6, 2/8) */
    static const int32_t tok[] = {1, 4, 4, 9, 0, 2, 10, 3, 3, 5, 6, 7, 8, 1, 2};
    static const int32_t off[] = {0, 3, 5, 8, 9, 12, 15};
    static const int32_t sem_docs[] = {5, 0, 2, 4, 8, 6}, atomic_docs[] = {5, 0, 2, 4, 6, 1};
    gc_model g = {m, 6, tok, off, semantic ? sem_docs : atomic_docs};
    gc_input in[2];
    dsi_gc_inputs(m, in);
    gc_opts o = gc_defaults();
    o.h = 1e-3;
    o.max_checks = 4096; /* all of them */
    CHECK_GRAD(semantic ? "dsi loss, semantic" : head ? "dsi loss, atomic cosine" : "dsi loss, atomic", 2, in, dsi_gc_build_loss,
               &g, &o);
    dsi_gc_restore(m);
    dp_dsi_model_free(m);
}

static void check_model_grad(int semantic, int head) { check_model_grad_vocab(semantic, head, 0); }

Test(dsi_model, gradcheck_atomic, .timeout = DP_TIMEOUT(60)) { check_model_grad(0, DP_DSI_HEAD_DOT); }
Test(dsi_model, gradcheck_atomic_vocabulary, .timeout = DP_TIMEOUT(60))
{
    check_model_grad_vocab(0, DP_DSI_HEAD_COSINE, 1);
}

/* The vocabulary: coverage by hand; a bag's encoding without its unknown
 * tokens is the encoding of the known ones alone, and a bag of unknown tokens
 * only encodes as the empty bag. */
Test(dsi_model, vocabulary_drops_unknown_tokens, .timeout = DP_TIMEOUT(30))
{
    dp_dsi_model *m = tiny_model(0, 0.0f);
    static const int32_t tok[] = {1, 3, 4, 5, /* */ 1, 4, /* */ 3, 5, 7, /* */ 9};
    static const int32_t off[] = {0, 4, 6, 9, 10, 10};
    float cov[5];
    dp_dsi_coverage(m, tok, off, 5, cov);
    for (int b = 0; b < 5; b++) cr_assert_eq(cov[b], 1.0f, "no vocabulary: everything known");
    tiny_vocab(m);
    dp_dsi_coverage(m, tok, off, 5, cov);
    const float want[5] = {0.5f, 1.0f, 0.0f, 1.0f, 1.0f};
    for (int b = 0; b < 5; b++) cr_assert_eq(cov[b], want[b], "bag %d: coverage %g, expected %g", b, cov[b], want[b]);
    dp_ctx c;
    dp_ctx_init(&c);
    c.training = 0;
    dp_tensor *h = dp_dsi_encode(&c, m, tok, off, 5);
    cr_assert_not_null(h, "%s", dp_errmsg());
    const int H = 6;
    for (int j = 0; j < H; j++) {
        cr_assert_eq(h->data[0 * H + j], h->data[1 * H + j], "bag {1,3,4,5} is bag {1,4}");
        cr_assert_eq(h->data[2 * H + j], h->data[4 * H + j], "bag {3,5,7} is the empty bag");
    }
    int differs = 0;
    for (int j = 0; j < H; j++) differs |= h->data[2 * H + j] != h->data[1 * H + j];
    cr_assert(differs, "the test's premise: an empty bag encodes differently from {1,4}");
    dp_ctx_free(&c);
    dp_dsi_model_free(m);
}
/* A token space wider than the table: ids 1, 12 and 23 share row 1, yet the
 * vocabulary tells them apart; training's folded rows encode like the ids. */
Test(dsi_model, token_space_folds_rows_keeps_vocabulary_apart, .timeout = DP_TIMEOUT(30))
{
    dp_dsi_docids ids;
    cr_assert_eq(dp_dsi_docids_atomic(3, &ids), DP_OK, "%s", dp_errmsg());
    dp_dsi_model_config cfg = tiny_config(0.0f, DP_DSI_HEAD_DOT);
    cfg.token_space = 10;
    dp_dsi_model *m = NULL;
    cr_assert_neq(dp_dsi_model_build(&cfg, &ids, &m), DP_OK, "a token space narrower than the table");
    cr_assert(strstr(dp_errmsg(), "token space"), "%s", dp_errmsg());
    cfg.token_space = 40;
    cr_assert_eq(dp_dsi_model_build(&cfg, &ids, &m), DP_OK, "%s", dp_errmsg());
    tiny_init(m);
    static const int32_t tok[] = {1, /* */ 12, /* */ 23, /* */ 39, 2, /* */ 1, 12};
    static const int32_t off[] = {0, 1, 2, 3, 5, 7};
    static const int32_t rows[] = {1, 1, 1, 6, 2, 1, 1};
    dp_ctx c;
    dp_ctx_init(&c);
    c.training = 0;
    const int H = 6;
    dp_tensor *h = dp_dsi_encode(&c, m, tok, off, 5);
    cr_assert_not_null(h, "%s", dp_errmsg());
    dp_tensor *hr = dp_dsi_encode_rows(&c, m, rows, off, 5);
    cr_assert_not_null(hr, "%s", dp_errmsg());
    for (int j = 0; j < 5 * H; j++) cr_assert_eq(h->data[j], hr->data[j], "ids and their rows encode alike (%d)", j);
    for (int j = 0; j < H; j++)
        cr_assert(h->data[j] == h->data[H + j] && h->data[j] == h->data[2 * H + j], "1, 12, 23 read one row");

    static int32_t vt[] = {1, 39, 2};
    static int64_t vo[] = {0, 3};
    static int32_t vd[] = {0};
    const dp_dsi_set v = {.n = 1, .doc = vd, .off = vo, .tok = vt};
    const dp_dsi_set *sets[1] = {&v};
    cr_assert_eq(dp_dsi_model_learn_vocab(m, sets, 1), DP_OK, "%s", dp_errmsg());
    float cov[5];
    dp_dsi_coverage(m, tok, off, 5, cov);
    const float want[5] = {1.0f, 0.0f, 0.0f, 1.0f, 0.5f};
    for (int b = 0; b < 5; b++) cr_assert_eq(cov[b], want[b], "bag %d: coverage %g, expected %g", b, cov[b], want[b]);
    h = dp_dsi_encode(&c, m, tok, off, 5);
    cr_assert_not_null(h, "%s", dp_errmsg());
    int differs = 0;
    for (int j = 0; j < H; j++) {
        cr_assert_eq(h->data[4 * H + j], h->data[j], "{1, 12} without the unknown 12 is {1}");
        differs |= h->data[H + j] != h->data[j];
    }
    cr_assert(differs, "12 is unknown: its bag is the empty one, not row 1's");
    dp_ctx_free(&c);
    dp_dsi_model_free(m);
}

Test(dsi_model, gradcheck_atomic_cosine, .timeout = DP_TIMEOUT(60)) { check_model_grad(0, DP_DSI_HEAD_COSINE); }
Test(dsi_model, gradcheck_semantic, .timeout = DP_TIMEOUT(60)) { check_model_grad(1, DP_DSI_HEAD_DOT); }

Test(dsi_model, loss_value_and_correct, .timeout = DP_TIMEOUT(30))
{
    /* semantic: the loss is 1/n sum over rows of the summed level CEs, here
     * recomputed in double from the named parameters (dropout off) */
    dp_dsi_model *m = tiny_model(1, 0.0f);
    static const int32_t tok[] = {1, 4, 4, 9, 0, 2, 10};
    static const int32_t off[] = {0, 3, 5, 7};
    static const int32_t docs[] = {5, 3, 1};
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *h = dp_dsi_encode(&c, m, tok, off, 3);
    long correct = -1;
    dp_tensor *loss = dp_dsi_loss(&c, m, h, docs, &correct);
    cr_assert_not_null(loss, "%s", dp_errmsg());
    cr_assert(correct >= 0 && correct <= 3);
    const int H = 6, E = 6, L = 3;
    double want = 0;
    long want_correct = 0;
    for (int i = 0; i < 3; i++) {
        const int d = docs[i];
        int v = 0, ok = 1;
        for (int l = 0; l < m->ids.len[d]; l++) {
            const dec_level p = dec_level_of(m, l);
            double gg[6], lg[3], mx = -1e30, s = 0;
            dec_hidden(&p, E, H, v - m->ids.trie.level_base[l], h->data + i * H, gg);
            const int w = m->ids.width[l];
            int arg = 0;
            for (int q = 0; q < w; q++) {
                lg[q] = p.Wb[q];
                for (int j = 0; j < E; j++) lg[q] += (double)p.W[q * E + j] * gg[j];
                if (lg[q] > mx) mx = lg[q], arg = q;
            }
            for (int q = 0; q < w; q++) s += exp(lg[q] - mx);
            const int dg = m->ids.code[d * L + l];
            want += mx + log(s) - lg[dg];
            ok &= arg == dg;
            const dp_dsi_trie *t = &m->ids.trie;
            for (int q = 0; q < t->count[v]; q++)
                if (t->digit[t->first[v] + q] == dg) {
                    v = t->first[v] + q;
                    break;
                }
        }
        want_correct += ok;
    }
    cr_assert_float_eq(loss->data[0], want / 3, 1e-5, "loss %g, by hand %g", loss->data[0], want / 3);
    cr_assert_eq(correct, want_correct);
    /* errors: a document out of range, a wrong-width h */
    dp_ctx_reset(&c);
    h = dp_dsi_encode(&c, m, tok, off, 3);
    cr_assert_null(dp_dsi_loss(&c, m, h, (int32_t[]){0, 9, 1}, NULL));
    cr_assert_eq(c.status, DP_ERR_ARG);
    dp_ctx_free(&c);
    dp_dsi_model_free(m);
}

/* ------------------------------------------------------------------ beam search */

/* The renormalised log-probability sum / length of document d for h, in double. */
static double brute_score(const dp_dsi_model *m, const float *h, int d)
{
    const dp_dsi_docids *I = &m->ids;
    const dp_dsi_trie *t = &I->trie;
    const int H = m->cfg.layers ? m->cfg.hidden : m->cfg.embed, E = m->cfg.hidden;
    if (I->kind == DP_DSI_ATOMIC) {
        const int cosine = m->cfg.head == DP_DSI_HEAD_COSINE;
        const float *W = param(&m->dense, "head.weight"), *b = cosine ? NULL : param(&m->dense, "head.bias");
        double *lg = malloc((size_t)I->ndocs * sizeof *lg), mx = -1e300, s = 0, hh = 0;
        for (int k = 0; k < H; k++) hh += (double)h[k] * h[k];
        for (int q = 0; q < I->ndocs; q++) {
            double ww = 0;
            lg[q] = 0;
            for (int k = 0; k < H; k++) {
                lg[q] += (double)W[(long)q * H + k] * h[k];
                ww += (double)W[(long)q * H + k] * W[(long)q * H + k];
            }
            lg[q] = cosine ? m->cfg.head_scale * lg[q] / sqrt(hh * ww) : lg[q] + b[q];
            if (lg[q] > mx) mx = lg[q];
        }
        for (int q = 0; q < I->ndocs; q++) s += exp(lg[q] - mx);
        const double r = lg[d] - mx - log(s);
        free(lg);
        return r;
    }
    double sum = 0;
    int v = 0;
    /* a node's children each hold a document: ndocs bounds the fan-out (a fixed 70,000 here cost ASan a
     * fresh 556 KiB mapping per call: 32 s of the sanitized suite) */
    double *g = malloc((size_t)E * sizeof *g), *lg = malloc((size_t)I->ndocs * sizeof *lg);
    for (int l = 0; l < I->len[d]; l++) {
        const dec_level p = dec_level_of(m, l);
        dec_hidden(&p, E, H, v - t->level_base[l], h, g);
        double mx = -1e300, s = 0, mine = 0;
        int next = -1;
        for (int q = 0; q < t->count[v]; q++) {
            const int ch = t->first[v] + q, dg = t->digit[ch];
            lg[q] = p.Wb[dg];
            for (int j = 0; j < E; j++) lg[q] += (double)p.W[(long)dg * E + j] * g[j];
            if (lg[q] > mx) mx = lg[q];
            if (dg == I->code[(long)d * I->maxlen + l]) next = ch, mine = lg[q];
        }
        for (int q = 0; q < t->count[v]; q++) s += exp(lg[q] - mx);
        cr_assert_geq(next, 0);
        sum += mine - mx - log(s);
        v = next;
    }
    free(g);
    free(lg);
    return sum / I->len[d];
}

/* Random h rows, the model's parameters uniform in [-scale, scale]. */
static float *random_setup(dp_dsi_model *m, int n, float scale, uint64_t seed)
{
    dp_rng r;
    dp_rng_seed(&r, seed, DP_STREAM_USER, 0);
    dp_init_uniform(&r, m->dense.data, m->dense.n, -scale, scale);
    const int H = m->cfg.layers ? m->cfg.hidden : m->cfg.embed;
    float *h = malloc((size_t)n * H * sizeof *h);
    dp_init_uniform(&r, h, (size_t)n * H, 0.0f, 1.0f); /* ReLU outputs are >= 0 */
    return h;
}

/* docs/scores of one row: valid, distinct, sorted, scores = brute force;
 * with exact, also the brute-force top-B. */
static void check_beam_row(const dp_dsi_model *m, const float *h, const int32_t *docs, const float *scores, int B,
                           int exact)
{
    const int N = m->ids.ndocs;
    double *bf = malloc((size_t)N * sizeof *bf);
    for (int d = 0; d < N; d++) bf[d] = brute_score(m, h, d);
    int got = 0;
    for (int i = 0; i < B; i++) {
        if (docs[i] < 0) {
            cr_assert(isinf(scores[i]) && scores[i] < 0);
            continue;
        }
        cr_assert_eq(i, got, "slot %d filled after an empty slot", i);
        got++;
        cr_assert_lt(docs[i], N);
        for (int j = 0; j < i; j++) cr_assert_neq(docs[j], docs[i], "doc %d returned twice", docs[i]);
        if (i) cr_assert_geq(scores[i - 1], scores[i], "not sorted at %d", i);
        cr_assert_float_eq(scores[i], bf[docs[i]], 1e-4, "doc %d: beam %g, brute force %g", docs[i], scores[i],
                           bf[docs[i]]);
    }
    cr_assert_gt(got, 0);
    if (exact) {
        cr_assert_eq(got, B < N ? B : N);
        /* the i-th best by brute force */
        int *ord = malloc((size_t)N * sizeof *ord);
        for (int d = 0; d < N; d++) ord[d] = d;
        for (int a = 1; a < N; a++)
            for (int b = a; b > 0 && bf[ord[b]] > bf[ord[b - 1]]; b--) {
                const int tmp = ord[b];
                ord[b] = ord[b - 1];
                ord[b - 1] = tmp;
            }
        for (int i = 0; i < got; i++)
            cr_assert_eq(docs[i], ord[i], "rank %d: beam doc %d (%g), brute force doc %d (%g)", i, docs[i],
                         bf[docs[i]], ord[i], bf[ord[i]]);
        free(ord);
    }
    free(bf);
}

static void run_beam_scaled(dp_dsi_model *m, int n, int B, int exact, uint64_t seed, float scale)
{
    float *h = random_setup(m, n, scale, seed);
    int32_t *docs = malloc((size_t)n * B * sizeof *docs);
    float *scores = malloc((size_t)n * B * sizeof *scores);
    dp_ctx c;
    dp_ctx_init(&c);
    cr_assert_eq(dp_dsi_beam_search(&c, m, h, n, B, docs, scores), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(c.training, 1, "training mode restored");
    cr_assert_eq(c.grad_enabled, 1, "grad mode restored");
    const int H = m->cfg.layers ? m->cfg.hidden : m->cfg.embed;
    for (int i = 0; i < n; i++) check_beam_row(m, h + (long)i * H, docs + (long)i * B, scores + (long)i * B, B, exact);
    dp_ctx_free(&c);
    free(h);
    free(docs);
    free(scores);
}

static void run_beam(dp_dsi_model *m, int n, int B, int exact, uint64_t seed)
{
    run_beam_scaled(m, n, B, exact, seed, 1.0f);
}

Test(dsi_beam, semantic_wide_beam_is_exact, .timeout = DP_TIMEOUT(60))
{
    dp_dsi_model *m = tiny_model(1, 0.0f);
    /* node counts per depth: 1, 3, 6, 4; a beam of 6 or more covers every level */
    run_beam(m, 70, 6, 1, 1); /* 70 rows: more than one chunk of 64 */
    run_beam(m, 5, 9, 1, 2);  /* every document, ranked */
    run_beam(m, 3, 12, 1, 3); /* more beams than documents: empty slots */
    /* peaked digit distributions: a long id whose prefix scores below the
     * pool's worst can still finish above it (the pruning bound must allow it) */
    run_beam_scaled(m, 400, 6, 1, 12, 4.0f);
    dp_dsi_model_free(m);
    m = tiny_model(2, 0.0f);
    run_beam(m, 100, 4, 1, 13);
    run_beam_scaled(m, 400, 4, 1, 14, 4.0f);
    dp_dsi_model_free(m);
}

Test(dsi_beam, semantic_narrow_beam_is_valid, .timeout = DP_TIMEOUT(60))
{
    dp_dsi_model *m = tiny_model(1, 0.0f);
    run_beam(m, 40, 1, 0, 4);
    run_beam(m, 40, 2, 0, 5);
    run_beam(m, 40, 3, 0, 6);
    dp_dsi_model_free(m);
}

Test(dsi_beam, semantic_kmeans_ids, .timeout = DP_TIMEOUT(120))
{
    /* real k-means ids (mixed lengths 2..3), wide and narrow beams */
    dp_sparse_rows x;
    topic_rows(&x, 300, 7, 8, NULL);
    dp_dsi_docids ids;
    cr_assert_eq(dp_dsi_docids_semantic(&x, 3, 12, 4, &ids), DP_OK, "%s", dp_errmsg());
    dp_sparse_rows_free(&x);
    int maxnodes = 0;
    for (int l = 0; l <= ids.maxlen; l++) {
        const int c = ids.trie.level_base[l + 1] - ids.trie.level_base[l];
        if (c > maxnodes) maxnodes = c;
    }
    dp_dsi_model_config cfg = {.buckets = 16, .embed = 8, .hidden = 12, .layers = 1, .dropout = 0};
    dp_dsi_model *m = NULL;
    cr_assert_eq(dp_dsi_model_build(&cfg, &ids, &m), DP_OK, "%s", dp_errmsg());
    run_beam(m, 6, maxnodes, 1, 7);
    run_beam(m, 30, 5, 0, 8);
    dp_dsi_model_free(m);
}

Test(dsi_beam, atomic_is_exact_top_k, .timeout = DP_TIMEOUT(60))
{
    dp_dsi_model *m = tiny_model(0, 0.0f);
    run_beam(m, 70, 3, 1, 9);
    run_beam(m, 4, 7, 1, 10);
    run_beam(m, 2, 10, 1, 11); /* beams > documents; two rows: the gemv path */
    dp_ctx c;
    dp_ctx_init(&c);
    cr_assert_eq(dp_dsi_beam_search(&c, m, NULL, 1, 0, NULL, NULL), DP_ERR_ARG);
    dp_ctx_free(&c);
    dp_dsi_model_free(m);
}

/* the cosine head: without a bias, through the per-search and the frozen
 * (checkpoint) row norms; the head grows no bias parameter */
Test(dsi_beam, atomic_cosine_is_exact_top_k, .timeout = DP_TIMEOUT(60))
{
    dp_dsi_model *m = tiny_model_head(0, 0.0f, DP_DSI_HEAD_COSINE);
    for (int i = 0; i < m->dense.count; i++) cr_assert_neq(strcmp(m->dense.items[i]->name, "head.bias"), 0);
    run_beam(m, 70, 3, 1, 9);
    run_beam(m, 2, 10, 1, 11);
    /* freezing reads the weights once: it must see these, not the ones before */
    float *h = random_setup(m, 5, 1.0f, 21);
    cr_assert_eq(dp_dsi_model_freeze(m), DP_OK, "%s", dp_errmsg());
    int32_t docs[5 * 7];
    float scores[5 * 7];
    dp_ctx c;
    dp_ctx_init(&c);
    cr_assert_eq(dp_dsi_beam_search(&c, m, h, 5, 7, docs, scores), DP_OK, "%s", dp_errmsg());
    for (int i = 0; i < 5; i++) check_beam_row(m, h + (long)i * 6, docs + i * 7, scores + i * 7, 7, 1);
    /* the training loss is the mean of -log p by the same brute force */
    dp_ctx_reset(&c);
    static const int32_t tok[] = {1, 4, 4, 9, 0, 2, 10}, off[] = {0, 3, 5, 7}, want_docs[] = {5, 3, 1};
    dp_tensor *he = dp_dsi_encode(&c, m, tok, off, 3);
    dp_tensor *loss = dp_dsi_loss(&c, m, he, want_docs, NULL);
    cr_assert_not_null(loss, "%s", dp_errmsg());
    double want = 0;
    for (int i = 0; i < 3; i++) want -= brute_score(m, he->data + i * 6, want_docs[i]) / 3;
    cr_assert_float_eq(loss->data[0], want, 1e-5, "cosine loss %g, by hand %g", loss->data[0], want);
    dp_ctx_free(&c);
    free(h);
    dp_dsi_model_free(m);
    /* the cosine head is an atomic head */
    dp_dsi_docids ids;
    hand_ids(&ids);
    dp_dsi_model_config cfg;
    dp_dsi_model_defaults(&cfg);
    cfg.head = DP_DSI_HEAD_COSINE;
    cr_assert_eq(dp_dsi_model_build(&cfg, &ids, &m), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "atomic"), "%s", dp_errmsg());
    dp_dsi_docids_free(&ids);
}

Test(dsi_model, build_errors_give_the_ids_back, .timeout = DP_TIMEOUT(30))
{
    dp_dsi_docids ids;
    cr_assert_eq(dp_dsi_docids_atomic(5, &ids), DP_OK);
    dp_dsi_model_config cfg;
    dp_dsi_model_defaults(&cfg);
    cfg.dropout = 1.5f;
    dp_dsi_model *m = (dp_dsi_model *)1;
    cr_assert_eq(dp_dsi_model_build(&cfg, &ids, &m), DP_ERR_ARG);
    cr_assert_null(m);
    cr_assert_not_null(ids.len);
    dp_dsi_docids_free(&ids);
    cr_assert_eq(dp_dsi_docids_atomic(0, &ids), DP_ERR_ARG);
}
