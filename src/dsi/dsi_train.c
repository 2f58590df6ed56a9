/* Training one De-DSI member, data-parallel over its communicator, and the
 * split of the world into members.
 *
 * A member is a task of the one loop (dptrain/task.h).
 * A step: every rank takes its slice of the global batch (the global sampler,
 * so P ranks x b compute the update of 1 rank x P b), drops input tokens,
 * encodes, takes the docid loss weighted by its share of the global batch,
 * and runs backward while dp_sync allreduces the dense buckets. The embedding
 * table is [buckets, embed] (2^18 x 128 = 128 MiB) but a batch touches a few
 * thousand rows: those rows alone are summed across ranks (dp_rows_allreduce)
 * and updated by a lazy Adam (moments of untouched rows stay as they are, as
 * torch.optim.SparseAdam), then zeroed for the next step. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "dptrain/dsi_train.h"
#include "dptrain/fault.h"
#include "dptrain/optim.h"
#include "dptrain/rng.h"
#include "dptrain/sampler.h"
#include "dptrain/task.h"
#include "dsi/encoder.h"
#include "dsi/model_internal.h"

enum { RNG_SHUFFLE = 0x51, RNG_TOKDROP = 0x52, RNG_INIT = 0x53 };

typedef struct dsi_run {
    const dp_dsi_train_config *cfg;
    dp_dsi_train_result *res;
    int member;
    dp_dsi_data data;
    dp_dsi_model *m;
    dp_rows_ws *rows;
    const int32_t *touched; /* this step's embedding rows, summed over ranks */
    size_t ntouched;
    dp_optimizer opt;    /* dense, up to the lexical head's parameters (then all of them) */
    dp_optimizer opt_lex; /* the lexical head's weights and scale: the dense buffer's tail from lex_at */
    size_t lex_at;
    float *em, *ev;      /* lazy Adam moments of the embedding table */
    long t;              /* optimizer steps */
    dp_sampler smp;
    long n_index;        /* indexing examples in each epoch's pool */
    long index_first;    /* which of them: a window that moves every epoch */
    dp_ctx ctx;
    int32_t *ids, *offs, *docs; /* one local batch */
    int32_t *lterms, *ltoff;    /* its lexical term lists (a model with a lexical head) */
    dp_rng shuffle, drop;
    char config_text[4096];
} dsi_run;

void dp_dsi_train_defaults(dp_dsi_train_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    dp_run_config_defaults(&cfg->run);
    cfg->members = 1;
    dp_dsi_model_defaults(&cfg->model);
    cfg->docids = DP_DSI_ATOMIC;
    cfg->kmeans_k = 10;
    cfg->leaf = 100;
    cfg->run.epochs = 10;
    cfg->run.batch = 256;
    cfg->lr = 1e-3f;
    cfg->index_ratio = 1.0f;
    cfg->eval_beams = 10;
    cfg->lexical_lr_mult = 1;
}

void dp_dsi_train_recipe(dp_dsi_train_config *cfg)
{
    dp_dsi_train_defaults(cfg);
    /* benchmarks/RESULTS.md §9: on 5,000 Debian documents, 2 epochs of the plain
     * model reached Hits@10 .015 and 4 epochs of these .235 (BM25 .632) */
    cfg->index_ratio = 1.0f;
    cfg->model.dropout = 0.0f;
    cfg->head_init = 1;
    cfg->model.head = DP_DSI_HEAD_COSINE;
    cfg->model.head_scale = 64.0f;
    /* benchmarks/RESULTS.md §16: on the same 5,000 documents, Hits@10 .704 with these (BM25 .704; the
     * dense model alone .263); scale 1 and no word dropout gave .681 */
    cfg->lexical = DP_DSI_LEXICAL_AUTO;
    cfg->model.lex_scale = 4.0f;
    cfg->lexical_drop = 0.5f;
    /* benchmarks/RESULTS.md §18: beside the lexical head the IDF-weighted mean is the encoder that takes the
     * model past BM25 on the whole Debian set (the plain mean stays just below it), at 3/4 of its speed */
    cfg->model.encoder = DP_DSI_ENCODER_IDF_MEAN;
}

dp_status dp_dsi_train_check(const dp_dsi_train_config *c, int ranks)
{
    const dp_dsi_model_config *m = &c->model;
    DP_CHECK(c->run.data[0], "--data is required");
    dp_status rc = dp_run_config_check(&c->run, 0); /* 0 epochs: evaluate the initial model only */
    if (rc != DP_OK) return rc;
    DP_CHECK(c->members >= 1 && c->members <= 1024, "--members: %d is out of range [1, 1024]", c->members);
    DP_CHECK(ranks % c->members == 0,
             "--members %d does not divide the %d ranks: every member needs the same number of ranks", c->members,
             ranks);
    DP_CHECK(m->embed >= 1 && m->embed <= 4096, "--embed: %d is out of range [1, 4096]", m->embed);
    DP_CHECK(m->hidden >= 1 && m->hidden <= 16384, "--hidden: %d is out of range [1, 16384]", m->hidden);
    DP_CHECK(m->layers >= 0 && m->layers <= 8, "--layers: %d is out of range [0, 8]", m->layers);
    DP_CHECK(m->dropout >= 0 && m->dropout < 1, "--dropout: %g is out of range [0, 1)", m->dropout);
    DP_CHECK(m->head != DP_DSI_HEAD_COSINE || c->docids == DP_DSI_ATOMIC, "--head cosine needs --docids atomic");
    DP_CHECK(m->head_scale > 0 && m->head_scale <= 1000, "--head-scale: %g is out of range (0, 1000]", m->head_scale);
    DP_CHECK(m->encoder != DP_DSI_ENCODER_TRANSFORMER || (m->heads >= 1 && m->heads <= m->embed && m->embed % m->heads == 0),
             "--heads %d does not divide --embed %d (the transformer's width)", m->heads, m->embed);
    DP_CHECK(dp_dsi_encoder_of(m->encoder), "--encoder: kind %d is not in the encoders' table", m->encoder);
    DP_CHECK(m->lex_scale >= 0 && m->lex_scale <= 1000, "--lexical-scale: %g is out of range [0, 1000]", m->lex_scale);
    DP_CHECK(c->lexical >= DP_DSI_LEXICAL_OFF && c->lexical <= DP_DSI_LEXICAL_AUTO, "--lexical: mode %d (off, on, auto)",
             c->lexical);
    DP_CHECK(c->lexical != DP_DSI_LEXICAL_ON || c->docids == DP_DSI_ATOMIC, "--lexical on needs --docids atomic");
    DP_CHECK(c->lexical_lr_mult >= 0 && c->lexical_lr_mult <= 100, "--lexical-lr-mult: %g is out of range [0, 100]",
             c->lexical_lr_mult);
    DP_CHECK(c->lexical_drop >= 0 && c->lexical_drop < 1, "--lexical-drop: %g is out of range [0, 1)", c->lexical_drop);
    DP_CHECK(c->kmeans_k >= 2 && c->kmeans_k <= 1000, "--kmeans-k: %d is out of range [2, 1000]", c->kmeans_k);
    DP_CHECK(c->leaf >= 1 && c->leaf <= 65535, "--leaf: %d is out of range [1, 65535]", c->leaf);
    DP_CHECK(c->lr > 0 && c->lr < 10, "--lr: %g is out of range (0, 10)", c->lr);
    DP_CHECK(c->weight_decay >= 0 && c->weight_decay < 1, "--weight-decay: %g is out of range [0, 1)", c->weight_decay);
    DP_CHECK(c->index_ratio >= 0 && c->index_ratio <= 100, "--index-ratio: %g is out of range [0, 100]",
             c->index_ratio);
    DP_CHECK(c->token_drop >= 0 && c->token_drop < 1, "--token-drop: %g is out of range [0, 1)", c->token_drop);
    DP_CHECK(c->eval_beams >= 1 && c->eval_beams <= 64, "--beams: %d is out of range [1, 64]", c->eval_beams);
    return DP_OK;
}

/* rows: the table the model was built with (--embed-rows, at most the tokenizer's ids) */
static int config_format(const dp_dsi_train_config *c, uint32_t rows, char *buf, size_t n)
{
    return snprintf(buf, n,
                    "members=%d\nembed=%d\nhidden=%d\nlayers=%d\ndropout=%g\ndocids=%s\nkmeans_k=%d\nleaf=%d\n"
                    "epochs=%d\nbatch=%d\nlr=%g\nweight_decay=%g\nindex_ratio=%g\ntoken_drop=%g\nhead_init=%d\nseed=%llu\n"
                    "head=%s\nhead_scale=%g\nembed_rows=%u\n",
                    c->members, c->model.embed, c->model.hidden, c->model.layers, c->model.dropout,
                    c->docids == DP_DSI_SEMANTIC ? "semantic" : "atomic", c->kmeans_k, c->leaf, c->run.epochs,
                    c->run.batch, c->lr, c->weight_decay, c->index_ratio, c->token_drop, c->head_init,
                    (unsigned long long)c->run.seed,
                    c->model.head == DP_DSI_HEAD_COSINE ? "cosine" : "dot", c->model.head_scale, rows);
}

/* ------------------------------------------------------------ set-up */

static dp_status make_docids(dsi_run *r, dp_dsi_docids *ids)
{
    const dp_dsi_train_config *cfg = r->cfg;
    if (cfg->docids == DP_DSI_ATOMIC) return dp_dsi_docids_atomic(r->data.ndocs, ids);
    /* TF-IDF of each document's training queries: every rank computes the
     * same ids (deterministic for the seed); the agreement text compares a
     * hash of them all the same. */
    dp_sparse_rows x = {0};
    dp_status rc = dp_dsi_tfidf(&r->data.train, r->data.ndocs, r->data.tok.buckets, &x);
    if (rc == DP_OK) rc = dp_dsi_docids_semantic(&x, cfg->kmeans_k, cfg->leaf, cfg->run.seed, ids);
    dp_sparse_rows_free(&x);
    return rc;
}

static long max_tokens(const dp_dsi_set *s)
{
    long m = 1;
    for (long i = 0; i < s->n; i++)
        if (s->off[i + 1] - s->off[i] > m) m = s->off[i + 1] - s->off[i];
    return m;
}

/* *h [nb, hdim] of examples b0 .. b0+nb of s, without the tape (eval mode);
 * offs has room for nb + 1 entries. */
static dp_status encode_examples(dsi_run *r, const dp_dsi_set *s, long b0, int nb, int32_t *offs, dp_tensor **h)
{
    int64_t base = s->off[b0];
    for (int i = 0; i <= nb; i++) offs[i] = (int32_t)(s->off[b0 + i] - base);
    dp_ctx *c = &r->ctx;
    dp_ctx_reset(c);
    c->training = 0;
    c->grad_enabled = 0;
    *h = dp_dsi_encode(c, r->m, s->tok + base, offs, nb);
    return *h ? DP_OK : c->status ? c->status : DP_ERR_SHAPE;
}

/* --head-init prototypes (atomic): row d of the head starts as the mean
 * encoding of document d's training queries and indexing examples, scaled to
 * a common norm, so that before any step the model already ranks documents
 * by how close a query's encoding is to theirs (a nearest-centroid start that
 * training then sharpens; the head's random init knows nothing of the text). */
static dp_status prototype_head(dsi_run *r)
{
    dp_dsi_impl *im = dp_dsi_impl_of(r->m);
    const int H = im->hdim, N = r->data.ndocs;
    enum { EB = 512 };
    double *sum = calloc((size_t)N * (size_t)H, sizeof *sum);
    int32_t *offs = malloc((EB + 1) * sizeof *offs);
    dp_status rc = sum && offs ? DP_OK : dp_errorf(DP_ERR_NOMEM, "--head-init: out of memory");
    double hnorm = 0;
    long nh = 0;
    const dp_dsi_set *sets[2] = {&r->data.train, &r->data.index};
    for (int k = 0; k < 2 && rc == DP_OK; k++) {
        const dp_dsi_set *s = sets[k];
        for (long b0 = 0; b0 < s->n && rc == DP_OK; b0 += EB) {
            int nb = (int)(s->n - b0 < EB ? s->n - b0 : EB);
            dp_tensor *h;
            if ((rc = encode_examples(r, s, b0, nb, offs, &h)) != DP_OK) break;
            for (int i = 0; i < nb; i++) {
                const float *hi = h->data + (size_t)i * H;
                double *acc = sum + (size_t)s->doc[b0 + i] * H, n2 = 0;
                for (int j = 0; j < H; j++) {
                    acc[j] += hi[j];
                    n2 += (double)hi[j] * hi[j];
                }
                hnorm += sqrt(n2);
                nh++;
            }
        }
    }
    dp_ctx_reset(&r->ctx);
    if (rc == DP_OK) {
        /* logits = 10 cos(h, prototype) at a typical |h|: a softmax sharp enough to rank */
        double scale = nh && hnorm > 0 ? 10.0 / (hnorm / (double)nh) : 1.0;
        float *w = im->head.w->data, *b = im->head.b ? im->head.b->data : NULL;
        for (int d = 0; d < N; d++) {
            double n2 = 0, *v = sum + (size_t)d * H;
            for (int j = 0; j < H; j++) n2 += v[j] * v[j];
            double f = n2 > 0 ? scale / sqrt(n2) : 0;
            for (int j = 0; j < H; j++) w[(size_t)d * H + j] = (float)(v[j] * f);
            if (b) b[d] = 0;
        }
    }
    free(sum);
    free(offs);
    return rc;
}

/* ------------------------------------------------------------ steps */

/* This rank's examples perm[first .. first+bs) into ids/offs/docs, each
 * token dropped with probability token_drop (never every token of a query). */
static void assemble(dsi_run *r, long first, long bs)
{
    float pd = r->cfg->token_drop;
    int32_t k = 0;
    r->offs[0] = 0;
    if (r->ltoff) r->ltoff[0] = 0;
    for (long b = 0; b < bs; b++) {
        /* the epoch's pool: training queries first, then a window of the indexing examples */
        const dp_dsi_set *s = &r->data.train;
        long i = r->smp.perm[first + b];
        if (i >= r->data.train.n) {
            s = &r->data.index;
            i = (i - r->data.train.n + r->index_first) % r->data.index.n;
        }
        r->docs[b] = s->doc[i];
        int32_t k0 = k;
        for (int64_t j = s->off[i]; j < s->off[i + 1]; j++)
            if (pd <= 0 || dp_rng_uniform(&r->drop) >= pd) r->ids[k++] = dp_dsi_row_of(r->m, s->tok[j]);
        if (k == k0 && s->off[i + 1] > s->off[i])
            r->ids[k++] = dp_dsi_row_of(r->m, s->tok[s->off[i] + (int64_t)dp_rng_below(&r->drop, (uint64_t)(s->off[i + 1] - s->off[i]))]);
        r->offs[b + 1] = k;
        if (r->lterms) { /* the lexical head reads the example's words, each kept with p = 1 - lexical_drop */
            int32_t *lt = r->lterms + r->ltoff[b];
            int nl = dp_dsi_lex_bag(r->m, s->tok + s->off[i], (int)(s->off[i + 1] - s->off[i]), -1, lt), kept = 0;
            const float ld = r->cfg->lexical_drop;
            for (int j = 0; j < nl; j++)
                if (ld <= 0 || dp_rng_uniform(&r->drop) >= ld) lt[kept++] = lt[j];
            r->ltoff[b + 1] = r->ltoff[b] + kept;
        }
    }
}

static void lazy_adam(dsi_run *r, const int32_t *rows, size_t n, float lr)
{
    const size_t D = (size_t)r->m->cfg.embed;
    dp_opt_config oc = r->opt.cfg;
    oc.weight_decay = 0; /* decay would touch every row every step: not lazy */
    float *w = r->m->emb.data, *g = r->m->emb.grad;
    for (size_t i = 0; i < n; i++) {
        size_t o = (size_t)rows[i] * D;
        dp_adam_update(w + o, g + o, r->em + o, r->ev + o, D, &oc, lr, r->t);
        memset(g + o, 0, D * sizeof *g);
    }
}

/* ------------------------------------------------------------ the task */

/* dir has a text to index (text.tsv or train.tsv) */
static int has_text(const char *dir)
{
    char path[1100];
    FILE *f;
    snprintf(path, sizeof path, "%s/text.tsv", dir);
    if (!(f = fopen(path, "r"))) {
        snprintf(path, sizeof path, "%s/train.tsv", dir);
        f = fopen(path, "r");
    }
    if (f) fclose(f);
    return f != NULL;
}

static dp_status task_build(void *t, dp_driver *d, dp_task_info *info)
{
    dsi_run *r = t;
    const dp_dsi_train_config *cfg = r->cfg;
    char dir[1024];
    if (cfg->members > 1)
        snprintf(dir, sizeof dir, "%s/m%d/%d", cfg->run.data, cfg->members, r->member);
    else
        snprintf(dir, sizeof dir, "%s", cfg->run.data);
    dp_ctx_init(&r->ctx);
    dp_dsi_docids ids = {0};
    dp_dsi_lexicon lex = {0};
    dp_status rc = dp_dsi_data_load(dir, &r->data);
    if (rc == DP_OK && r->data.train.n < 1) rc = dp_errorf(DP_ERR_FORMAT, "%s: no training queries", dir);
    if (rc == DP_OK) rc = make_docids(r, &ids);
    if (rc == DP_OK && cfg->lexical == DP_DSI_LEXICAL_ON) {
        if (cfg->docids != DP_DSI_ATOMIC) rc = dp_errorf(DP_ERR_ARG, "--lexical on needs --docids atomic");
        else if (!r->data.tok.words)
            rc = dp_errorf(DP_ERR_ARG, "--lexical on: %s was tokenized without words (tokenizer.txt words=0)", dir);
    }
    if (rc == DP_OK && cfg->lexical != DP_DSI_LEXICAL_OFF && cfg->docids == DP_DSI_ATOMIC && r->data.tok.words &&
        (cfg->lexical == DP_DSI_LEXICAL_ON || has_text(dir))) /* dsi-eval's BM25 defaults */
        rc = dp_dsi_lexicon_from_dir(dir, r->data.names, r->data.ndocs, r->data.tok.buckets, 0.9f, 0.4f, &lex);
    if (rc == DP_OK) {
        dp_dsi_model_config mc = cfg->model;
        /* the table: --embed-rows rows at most; the vocabulary spans every token id */
        if (mc.buckets > r->data.tok.buckets) mc.buckets = r->data.tok.buckets;
        mc.token_space = r->data.tok.buckets;
        mc.positions = r->data.tok.max_tokens; /* the transformer: a position for every feature a query can have */
        rc = dp_dsi_model_build_lexical(&mc, &ids, &lex, &r->m);
    }
    dp_dsi_lexicon_free(&lex);
    if (rc == DP_OK) { /* the tokens training will show the model: the indexing examples only when mixed in */
        const dp_dsi_set *sets[2] = {&r->data.train, &r->data.index};
        rc = dp_dsi_model_learn_vocab(r->m, sets, cfg->index_ratio > 0 ? 2 : 1);
    }
    dp_dsi_docids_free(&ids);
    info->sync = dp_run_sync_opts(&cfg->run);
    info->params = rc == DP_OK ? &r->m->dense : NULL;
    if (rc != DP_OK) return rc;
    const dp_dsi_model *m = r->m;
    uint64_t h = XXH3_64bits(m->ids.len, (size_t)m->ids.ndocs);
    h = XXH3_64bits_withSeed(m->ids.code, (size_t)m->ids.ndocs * (size_t)m->ids.maxlen * sizeof *m->ids.code, h);
    int len = config_format(cfg, m->cfg.buckets, r->config_text, sizeof r->config_text);
    if (m->cfg.encoder != DP_DSI_ENCODER_BAG_MLP) /* the plain bag's text (and checkpoint bytes) as before */
        len += snprintf(r->config_text + len, sizeof r->config_text - (size_t)len, "encoder=%s\n",
                        dp_dsi_encoder_of(m->cfg.encoder)->name);
    if (m->cfg.encoder == DP_DSI_ENCODER_TRANSFORMER)
        len += snprintf(r->config_text + len, sizeof r->config_text - (size_t)len, "heads=%d\npositions=%d\n",
                        m->cfg.heads, m->cfg.positions);
    if (dp_dsi_has_lexical(m)) /* without it, the text (and checkpoint bytes) as before */
        len += snprintf(r->config_text + len, sizeof r->config_text - (size_t)len, "lexical=1\nlexical_scale=%g\nlexical_lr_mult=%g\nlexical_drop=%g\nlexical_postings=%lld\n",
                        m->cfg.lex_scale, cfg->lexical_lr_mult, cfg->lexical_drop, (long long)dp_dsi_model_lexicon(m)->off[dp_dsi_model_lexicon(m)->nterms]);
    snprintf(r->config_text + len, sizeof r->config_text - (size_t)len,
             "member=%d\nranks=%d\nmanifest=%016llx\ndocids_hash=%016llx\nbuckets=%u\n", r->member, d->size,
             (unsigned long long)r->data.manifest_hash, (unsigned long long)h, r->data.tok.buckets);
    snprintf(info->config_text, info->config_cap, "%s", r->config_text);
    return DP_OK;
}

static dp_status task_load(void *t, dp_driver *d)
{
    dsi_run *r = t;
    const dp_dsi_train_config *cfg = r->cfg;
    dp_rng init;
    dp_rng_seed(&init, cfg->run.seed, RNG_INIT, (uint32_t)r->member);
    dp_dsi_model_init(r->m, &init);
    /* the same examples as the vocabulary (task_build) */
    const dp_dsi_set *sets[2] = {&r->data.train, &r->data.index};
    dp_status rc = dp_dsi_model_fit(r->m, sets, cfg->index_ratio > 0 ? 2 : 1);
    if (rc == DP_OK && cfg->head_init && cfg->docids == DP_DSI_ATOMIC) rc = prototype_head(r);
    rc = dp_sync_all_ok(&d->sync, rc, "--encoder / --head-init");
    if (rc != DP_OK) return rc;
    /* identical replicas whatever the init did: rank 0's bits everywhere (the dense ones: the driver) */
    rc = dp_sync_bcast(&d->sync, r->m->emb.data, r->m->emb.n * sizeof(float));
    if (rc != DP_OK) return rc;
    dp_params_zero_grad(&r->m->emb);

    dp_opt_config oc = dp_opt_defaults(DP_OPT_ADAM);
    oc.weight_decay = cfg->weight_decay;
    /* the lexical head's parameters are the dense buffer's last ones: their own Adam (and lr) */
    const dp_dsi_impl *im = dp_dsi_impl_of(r->m);
    r->lex_at = im->lex_w ? (size_t)(im->lex_w->data - r->m->dense.data) : r->m->dense.n;
    rc = dp_optimizer_init(&r->opt, &oc, r->lex_at);
    if (rc == DP_OK && r->lex_at < r->m->dense.n) rc = dp_optimizer_init(&r->opt_lex, &oc, r->m->dense.n - r->lex_at);
    if (rc != DP_OK) return rc;
    r->em = calloc(r->m->emb.n, sizeof *r->em);
    r->ev = calloc(r->m->emb.n, sizeof *r->ev);

    r->n_index = (long)fmin((double)r->data.index.n, floor((double)cfg->index_ratio * (double)r->data.train.n + 0.5));
    if (!r->em || !r->ev) return dp_errorf(DP_ERR_NOMEM, "optimizer state: out of memory");
    rc = dp_sampler_make(&r->smp, DP_SAMPLER_GLOBAL, &d->sync, cfg->run.batch, r->data.train.n + r->n_index);
    if (rc != DP_OK) return rc;

    long mt = max_tokens(&r->data.train);
    long mi = max_tokens(&r->data.index);
    size_t ntok = (size_t)cfg->run.batch * (size_t)(mt > mi ? mt : mi);
    r->ids = malloc(ntok * sizeof *r->ids);
    r->offs = malloc(((size_t)cfg->run.batch + 1) * sizeof *r->offs);
    r->docs = malloc((size_t)cfg->run.batch * sizeof *r->docs);
    if (!r->ids || !r->offs || !r->docs) return dp_errorf(DP_ERR_NOMEM, "batch buffers: out of memory");
    if (dp_dsi_has_lexical(r->m)) {
        r->lterms = malloc(ntok * sizeof *r->lterms);
        r->ltoff = malloc(((size_t)cfg->run.batch + 1) * sizeof *r->ltoff);
        if (!r->lterms || !r->ltoff) return dp_errorf(DP_ERR_NOMEM, "batch buffers: out of memory");
    }
    /* every rank's batch together: the most rows one step can touch */
    rc = dp_rows_ws_create(ntok, (size_t)r->m->cfg.embed, r->m->cfg.buckets, d->size > 1 ? d->comm : MPI_COMM_NULL,
                           &r->rows);
    if (rc != DP_OK) return rc;

    dp_rng_seed(&r->shuffle, cfg->run.seed, RNG_SHUFFLE, (uint32_t)r->member);
    dp_rng_seed(&r->drop, cfg->run.seed, RNG_TOKDROP, (uint32_t)(r->member * 65536 + d->rank));
    dp_rng_seed(&r->ctx.dropout_rng, cfg->run.seed, 0x54, (uint32_t)(r->member * 65536 + d->rank));
    return DP_OK;
}

static long task_epoch_begin(void *t, dp_driver *d)
{
    dsi_run *r = t;
    dp_sampler_shuffle(&r->smp, &r->shuffle);
    unsigned long long e = d->st.epoch;
    r->index_first = r->data.index.n ? (long)((e * (unsigned long long)r->n_index) % (unsigned long long)r->data.index.n) : 0;
    return r->smp.steps;
}

/* Forward/backward at sampler step `step`; the dense buckets and the touched embedding rows summed. */
static dp_status task_step(void *t, dp_driver *d, long step, long *next, double *st)
{
    dsi_run *r = t;
    dp_ctx *c = &r->ctx;
    long first, bs = dp_sampler_local(&r->smp, step, &first);
    long global_bs = dp_sampler_global(&r->smp, step);
    *next = step + 1;
    dp_params_zero_grad(&r->m->dense);
    dp_ctx_reset(c);
    c->training = 1;
    c->grad_enabled = 1;
    int ntok = 0;
    dp_fault_point("forward");
    if (bs > 0) {
        assemble(r, first, bs);
        ntok = r->offs[bs];
        long correct = 0;
        dp_tensor *h = dp_dsi_encode_rows(c, r->m, r->ids, r->offs, (int)bs);
        dp_tensor *loss = dp_dsi_loss_lex(c, r->m, h, r->lterms, r->ltoff, r->docs, &correct);
        if (!loss) return c->status ? c->status : dp_errorf(DP_ERR_SHAPE, "dsi: forward failed");
        double l = loss->data[0];
        st[DP_STAT_LOSS] = isfinite(l) ? l * (double)bs : 0;
        st[DP_STAT_CORRECT] = (double)correct;
        st[DP_STAT_SEEN] = (double)bs;
        st[DP_STAT_NONFINITE] = isfinite(l) ? 0 : 1;
        dp_sync_begin(&d->sync, c);
        dp_status rc = dp_backward_scaled(c, loss, (float)((double)bs / (double)global_bs));
        if (rc != DP_OK) return rc;
    }
    dp_status rc = dp_sync_end(&d->sync, c);
    r->touched = NULL;
    r->ntouched = 0;
    if (rc == DP_OK) {
        dp_watchdog_wait_begin(d->sync.wd, "embedding rows allreduce", 0, 0);
        rc = dp_rows_allreduce(r->m->emb.grad, r->m->cfg.buckets, (size_t)r->m->cfg.embed, r->ids, (size_t)ntok,
                               DP_REDUCE_SUM, r->cfg->run.allreduce, d->size > 1 ? d->comm : MPI_COMM_NULL, r->rows,
                               &r->touched, &r->ntouched);
        dp_watchdog_wait_end(d->sync.wd);
    }
    return rc;
}

static dp_status task_update(void *t, dp_driver *d)
{
    dsi_run *r = t;
    (void)d;
    r->t++;
    dp_optimizer_step(&r->opt, r->m->dense.data, r->m->dense.grad, r->cfg->lr);
    if (r->lex_at < r->m->dense.n) {
        const float lr = r->cfg->lr * r->cfg->lexical_lr_mult;
        if (lr > 0) dp_optimizer_step(&r->opt_lex, r->m->dense.data + r->lex_at, r->m->dense.grad + r->lex_at, lr);
    }
    lazy_adam(r, r->touched, r->ntouched, r->cfg->lr);
    return DP_OK;
}

static dp_status task_epoch_end(void *t, dp_driver *d, const dp_epoch *e)
{
    dsi_run *r = t;
    dp_dsi_train_result *res = r->res;
    double dt = e->step_s;
    res->train_s += dt;
    res->steps += r->smp.steps;
    res->loss = e->seen > 0 ? e->loss / e->seen : 0;
    res->epochs = (int)d->st.epoch + 1;
    double acc = e->seen > 0 ? e->correct / e->seen : 0;
    if (d->rank == 0 && !r->cfg->run.quiet)
        fprintf(stderr, "member %d epoch %d/%d: loss %.4f, train acc %.4f, %.1f s (%.0f examples/s/rank)\n",
                r->member, res->epochs, r->cfg->run.epochs, res->loss, acc, dt, e->seen / dt / d->size);
    dp_report_json(&d->rep, "{\"epoch\":%d,\"loss\":%.6f,\"train_acc\":%.6f,\"seconds\":%.3f,\"examples\":%.0f}",
                   res->epochs, res->loss, acc, dt, e->seen);
    return DP_OK;
}

/* ------------------------------------------------------------ evaluation */

/* Beam-search metrics over (at most limit) examples of s, split across the
 * member's ranks and summed. */
static dp_status evaluate(dsi_run *r, dp_driver *d, const dp_dsi_set *s, long limit, dp_dsi_metrics *out)
{
    const int beams = r->cfg->eval_beams;
    enum { EB = 256 };
    long n = limit > 0 && limit < s->n ? limit : s->n;
    int32_t *docs = malloc((size_t)EB * (size_t)beams * sizeof *docs);
    float *sc = malloc((size_t)EB * (size_t)beams * sizeof *sc);
    int32_t *offs = malloc((EB + 1) * sizeof *offs);
    const int lex = dp_dsi_has_lexical(r->m);
    int32_t *terms = lex ? malloc((size_t)EB * (size_t)max_tokens(s) * sizeof *terms) : NULL;
    int32_t *toff = lex ? malloc((EB + 1) * sizeof *toff) : NULL;
    dp_dsi_metrics m = {0};
    dp_status rc = docs && sc && offs && (!lex || (terms && toff)) ? DP_OK : dp_errorf(DP_ERR_NOMEM, "evaluation: out of memory");
    dp_ctx *c = &r->ctx;
    /* rank r takes the r-th contiguous slice */
    long lo = n * d->rank / d->size, hi = n * (d->rank + 1) / d->size;
    for (long b0 = lo; b0 < hi && rc == DP_OK; b0 += EB) {
        int nb = (int)(hi - b0 < EB ? hi - b0 : EB);
        dp_tensor *h;
        if ((rc = encode_examples(r, s, b0, nb, offs, &h)) != DP_OK) break;
        /* a token record's words: up to its first token the indexed text lacks (dp_dsi_lex_bag), so a test
         * query's words after its first unseen one are left out here; dsi-eval reads the text and has them all */
        if (lex) dp_dsi_lex_terms(r->m, s->tok + s->off[b0], offs, nb, NULL, terms, toff);
        rc = dp_dsi_beam_search_lex(c, r->m, h->data, terms, toff, nb, beams, docs, sc);
        for (int i = 0; i < nb && rc == DP_OK; i++) dp_dsi_metrics_add(&m, docs + (size_t)i * beams, beams, s->doc[b0 + i]);
    }
    free(docs);
    free(sc);
    free(offs);
    free(terms);
    free(toff);
    dp_ctx_reset(c);
    double v[5] = {(double)m.queries, m.hits1, m.hits5, m.hits10, m.mrr10};
    dp_status rs = dp_sync_all_ok(&d->sync, rc, "evaluation");
    if (rs == DP_OK) rs = dp_sync_sum(&d->sync, v, 5);
    *out = (dp_dsi_metrics){(long)v[0], v[1], v[2], v[3], v[4]};
    return rs;
}

static double per(const dp_dsi_metrics *m, double v) { return m->queries ? v / (double)m->queries : 0; }

/* ------------------------------------------------------------ the run */

/* into this member's output dir (--out/member-k; "" = none) */
static dp_status save(dsi_run *r, const char *dir)
{
    if (!dir[0]) return DP_OK;
    char path[1100];
    snprintf(path, sizeof path, "%s/model.dsi", dir);
    return dp_dsi_member_save(path, r->m, &r->data.tok, r->data.names, r->config_text);
}

/* After the last epoch: beam-search metrics on (a sample of) the training queries and on the test
 * queries, then the member's checkpoint. */
static dp_status task_finish(void *t, dp_driver *d)
{
    dsi_run *r = t;
    dp_dsi_train_result *res = r->res;
    const dp_dsi_train_config *cfg = r->cfg;
    if (res->train_s > 0)
        res->queries_per_s = (double)res->epochs * (double)(r->data.train.n + r->n_index) / res->train_s / d->size;
    /* training queries: a sample is enough to see memorisation */
    long tl = cfg->eval_limit > 0 ? cfg->eval_limit : 10000;
    dp_status rc = evaluate(r, d, &r->data.train, tl, &res->train_m);
    if (rc == DP_OK) rc = evaluate(r, d, &r->data.test, cfg->eval_limit, &res->test_m);
    if (rc != DP_OK) return rc;
    dp_status rs = DP_OK;
    if (d->rank == 0) {
        rs = save(r, d->o->run.out);
        dp_report_json(&d->rep,
                       "{\"final\":true,\"train_hits1\":%.6f,\"test_hits1\":%.6f,\"test_hits10\":%.6f,\"test_mrr10\":%.6f,"
                       "\"train_s\":%.3f,\"queries_per_s_per_rank\":%.1f}",
                       per(&res->train_m, res->train_m.hits1), per(&res->test_m, res->test_m.hits1),
                       per(&res->test_m, res->test_m.hits10), per(&res->test_m, res->test_m.mrr10), res->train_s,
                       res->queries_per_s);
    }
    return dp_sync_all_ok(&d->sync, rs, "saving the member");
}

static void task_free(void *t)
{
    dsi_run *r = t;
    free(r->ids);
    free(r->offs);
    free(r->docs);
    free(r->lterms);
    free(r->ltoff);
    free(r->em);
    free(r->ev);
    dp_rows_ws_free(r->rows);
    dp_sampler_free(&r->smp);
    dp_optimizer_free(&r->opt);
    dp_optimizer_free(&r->opt_lex);
    dp_dsi_model_free(r->m);
    dp_dsi_data_free(&r->data);
    dp_ctx_free(&r->ctx);
}

static const dp_task_ops dsi_ops = {
    .name = "dsi-train", .nonfinite_hint = "lower --lr", .build = task_build, .load = task_load,
    .epoch_begin = task_epoch_begin, .step = task_step, .update = task_update, .epoch_end = task_epoch_end,
    .finish = task_finish, .free = task_free,
};

dp_status dp_dsi_train_member(const dp_dsi_train_config *cfg, MPI_Comm comm, int member, dp_dsi_train_result *res)
{
    memset(res, 0, sizeof *res);
    dp_status rc = dp_dsi_train_check(cfg, 0);
    if (rc != DP_OK) return rc;
    /* the members write apart and print no progress over each other */
    dp_run_opts o = {.run = cfg->run};
    o.run.progress = 0;
    o.run.quiet = 1;
    if (strlen(cfg->run.out) > sizeof o.run.out - 24)
        return dp_errorf(DP_ERR_ARG, "--out: longer than %zu characters", sizeof o.run.out - 24);
    if (cfg->run.out[0]) snprintf(o.run.out, sizeof o.run.out, "%.488s/member-%d", cfg->run.out, member);
    snprintf(o.label, sizeof o.label, "member %d", member);
    dsi_run r = {.cfg = cfg, .res = res, .member = member};
    dp_driver d;
    rc = dp_drive(&dsi_ops, &r, &o, comm, &d);
    if (r.m) {
        res->member = member;
        res->ranks = d.size;
        res->ndocs = r.data.ndocs;
        res->train_queries = r.data.train.n;
        res->test_queries = r.data.test.n;
        res->params_mb = (double)(r.m->dense.n + r.m->emb.n) * 4.0 / 1048576.0;
    }
    dp_drive_free(&d);
    task_free(&r);
    return rc;
}

dp_status dp_dsi_train_run(const dp_dsi_train_config *cfg, MPI_Comm world, dp_dsi_train_result *res)
{
    int rank = 0, size = 1;
    if (world != MPI_COMM_NULL) {
        MPI_Comm_rank(world, &rank);
        MPI_Comm_size(world, &size);
    }
    dp_status rc = dp_dsi_train_check(cfg, size);
    if (rc != DP_OK) return rc;
    int per = size / cfg->members, member = rank / per;
    MPI_Comm mc = MPI_COMM_NULL;
    if (world != MPI_COMM_NULL && MPI_Comm_split(world, member, rank, &mc) != MPI_SUCCESS)
        return dp_errorf(DP_ERR_MPI, "rank %d: MPI_Comm_split into %d members failed", rank, cfg->members);
    dp_dsi_train_result mine;
    rc = dp_dsi_train_member(cfg, per > 1 ? mc : MPI_COMM_NULL, member, &mine);
    if (mc != MPI_COMM_NULL) MPI_Comm_free(&mc);
    /* members finished on their own; now (only now) the world agrees on the outcome */
    int bad = rc != DP_OK, anybad = bad;
    if (world != MPI_COMM_NULL) MPI_Allreduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, world);
    if (rc != DP_OK) return rc;
    if (anybad) return dp_errorf(DP_ERR_MPI, "rank %d: another member failed (its rank 0 printed why)", rank);
    if (world == MPI_COMM_NULL) {
        res[0] = mine;
        return DP_OK;
    }
    /* rank k * per is member k's rank 0 */
    dp_dsi_train_result *all = rank == 0 ? malloc((size_t)size * sizeof *all) : NULL;
    MPI_Gather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, 0, world);
    if (rank == 0) {
        for (int k = 0; k < cfg->members; k++) res[k] = all[k * per];
        free(all);
    }
    return DP_OK;
}
