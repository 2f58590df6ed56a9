/* The IDF-weighted bag encoder (issue 23): the plain bag's mean treats the
 * query's rare word like its commonest 3-gram, which is what BM25 does not.
 *
 *   pooled = [ sum_t e^{u_t} e_t / sum_t e^{u_t} , max_t e_t ]   [N, 2 embed]
 *   h      = `layers` x (linear hidden, ReLU, dropout)(pooled)
 *
 * u [buckets] is one learned score per embedding row, set before training to
 * log idf(row), BM25's idf (log(1 + (N - df + 0.5) / (df + 0.5))) over the
 * member's documents, a document being the union of its training queries and
 * indexing examples: the first view starts as the IDF-weighted mean of the
 * bag. A softmax of u over the bag rather than weights w / sum w: e^u is
 * positive without a clamp and the gradient never divides by a sum that
 * training could drive to zero. The max view keeps a strong feature of one
 * token that the mean dilutes. u lives in the dense parameters (a 2^18 row
 * vector: 1 MiB next to the head's 48k x 256), so it is saved with the member
 * and allreduced and updated like every dense weight; the loader reproduces
 * the trained weights from the file, not the IDF from data.
 *
 * "idf-mean" is the same without the max view (pooled [N, embed]): the ablation.
 * Parameters: emb.weight (m->emb), enc.logw, enc<i>.{weight,bias}. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "dsi/encoder.h"

typedef struct idf_enc {
    dp_tensor *emb;         /* [buckets, embed], in m->emb */
    dp_tensor *logw;        /* [buckets] u, in m->dense */
    dp_linear_layer *enc;   /* [cfg.layers] */
    int max_view;
} idf_enc;

static int pooled_width(const dp_dsi_model_config *cfg, int max_view) { return max_view ? 2 * cfg->embed : cfg->embed; }

static dp_status build_views(dp_dsi_model *m, void **self, int *hdim, int max_view)
{
    const dp_dsi_model_config *cfg = &m->cfg;
    idf_enc *e = calloc(1, sizeof *e);
    if (e) e->enc = calloc(cfg->layers > 0 ? (size_t)cfg->layers : 1, sizeof *e->enc);
    *self = e;
    if (!e || !e->enc) return dp_errorf(DP_ERR_NOMEM, "dsi encoder: out of memory");
    e->max_view = max_view;
    const int R = (int)cfg->buckets, P = pooled_width(cfg, max_view);
    /* N(0, 1) rows as the plain bag (see encoder_bag.c); u = 0 until fit: the plain mean */
    e->emb = dp_params_add(&m->emb, "emb.weight", 2, (int[]){R, cfg->embed}, DP_INIT_NORMAL, cfg->embed, cfg->embed);
    e->logw = dp_params_add(&m->dense, "enc.logw", 1, (int[]){R}, DP_INIT_ZERO, 1, 1);
    int ok = e->emb && e->logw;
    char nm[32];
    for (int i = 0; i < cfg->layers; i++) {
        snprintf(nm, sizeof nm, "enc%d", i);
        dp_nn_linear_init(&e->enc[i], &m->dense, nm, i ? cfg->hidden : P, cfg->hidden, 1);
        ok &= e->enc[i].w && e->enc[i].b;
    }
    *hdim = cfg->layers > 0 ? cfg->hidden : P;
    return ok ? DP_OK : dp_errorf(DP_ERR_NOMEM, "dsi encoder: cannot declare the parameters");
}

static dp_status build(dp_dsi_model *m, void **self, int *hdim) { return build_views(m, self, hdim, 1); }
static dp_status build_mean(dp_dsi_model *m, void **self, int *hdim) { return build_views(m, self, hdim, 0); }

static dp_tensor *forward(dp_ctx *c, const dp_dsi_model *m, const void *self, const int32_t *rows,
                          const int32_t *offsets, int nbags)
{
    const idf_enc *e = self;
    dp_tensor *x = dp_embedding_bag_softmax(c, e->emb, e->logw, rows, offsets, nbags);
    if (e->max_view) x = dp_concat(c, 2, (dp_tensor *[]){x, dp_embedding_bag_max(c, e->emb, rows, offsets, nbags)});
    for (int i = 0; i < m->cfg.layers; i++) x = dp_dropout(c, dp_relu(c, dp_nn_linear(c, &e->enc[i], x)), m->cfg.dropout);
    return x;
}

/* u = log idf of every row over the member's documents (each counted once per row it holds) */
static dp_status fit(dp_dsi_model *m, void *self, const dp_dsi_set *const *sets, int nsets)
{
    idf_enc *e = self;
    const long R = (long)m->cfg.buckets, N = m->ids.ndocs;
    long total = 0;
    for (int j = 0; j < nsets; j++) total += sets[j]->n;
    /* examples grouped by document (a counting sort), so df counts documents, not queries */
    long *start = calloc((size_t)N + 2, sizeof *start);
    int64_t *order = malloc(((size_t)total + 1) * sizeof *order);
    int32_t *stamp = malloc((size_t)R * sizeof *stamp);
    int32_t *df = calloc((size_t)R, sizeof *df);
    dp_status rc = start && order && stamp && df ? DP_OK : dp_errorf(DP_ERR_NOMEM, "dsi encoder idf: out of memory");
    for (int j = 0; j < nsets && rc == DP_OK; j++)
        for (long i = 0; i < sets[j]->n; i++) {
            const int32_t d = sets[j]->doc[i];
            if (d < 0 || d >= N) {
                rc = dp_errorf(DP_ERR_ARG, "dsi encoder idf: example %ld names document %d of %ld", i, (int)d, N);
                break;
            }
            start[d + 2]++;
        }
    if (rc == DP_OK) {
        for (long d = 0; d < N; d++) start[d + 2] += start[d + 1];
        for (int j = 0; j < nsets; j++)
            for (long i = 0; i < sets[j]->n; i++) order[start[sets[j]->doc[i] + 1]++] = (int64_t)j << 40 | i;
        for (long r = 0; r < R; r++) stamp[r] = -1;
        for (long d = 0; d < N; d++)
            for (long q = start[d]; q < start[d + 1]; q++) {
                const dp_dsi_set *s = sets[order[q] >> 40];
                const long i = (long)(order[q] & ((INT64_C(1) << 40) - 1));
                for (int64_t k = s->off[i]; k < s->off[i + 1]; k++) {
                    const int32_t r = dp_dsi_row_of(m, s->tok[k]);
                    if (stamp[r] != (int32_t)d) {
                        stamp[r] = (int32_t)d;
                        df[r]++;
                    }
                }
            }
        float *u = e->logw->data;
        for (long r = 0; r < R; r++) {
            const double idf = log(1.0 + ((double)N - df[r] + 0.5) / (df[r] + 0.5)); /* > 0 (bm25.c's) */
            u[r] = (float)log(idf);
        }
    }
    free(start);
    free(order);
    free(stamp);
    free(df);
    return rc;
}

/* buckets (u) + pooled x hidden + (layers - 1) x hidden^2 weights (biases aside) */
static uint64_t dense_views(const dp_dsi_model_config *cfg, int max_view)
{
    uint64_t n = cfg->buckets;
    if (cfg->layers <= 0) return n;
    return n + (uint64_t)pooled_width(cfg, max_view) * (uint64_t)cfg->hidden +
           (uint64_t)(cfg->layers - 1) * (uint64_t)cfg->hidden * (uint64_t)cfg->hidden;
}

static uint64_t dense_floats(const dp_dsi_model_config *cfg) { return dense_views(cfg, 1); }
static uint64_t dense_floats_mean(const dp_dsi_model_config *cfg) { return dense_views(cfg, 0); }

static void free_self(void *self)
{
    idf_enc *e = self;
    if (e) free(e->enc);
    free(e);
}

const dp_dsi_encoder_ops dp_dsi_encoder_idf = {
    .name = "idf", .build = build, .forward = forward, .fit = fit, .dense_floats = dense_floats, .free_self = free_self,
};

const dp_dsi_encoder_ops dp_dsi_encoder_idf_mean = {
    .name = "idf-mean", .build = build_mean, .forward = forward, .fit = fit, .dense_floats = dense_floats_mean,
    .free_self = free_self,
};
