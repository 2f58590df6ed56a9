/* The table of compressors and the one description of gradient compression
 * (dptrain/compress.h): parse, name, checks, and a compressor at work.
 *
 * Each compressor's file defines its dp_compress_ops entry (comm_internal.h):
 * codec.c none, codec_fp16.c fp16 and bf16, codec_int8.c int8, topk.c topk,
 * powersgd.c powersgd. A new one is its file, a line below and a
 * dp_codec_kind value (comm.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm_internal.h"

extern const dp_compress_ops dp_compress_none, dp_compress_fp16, dp_compress_bf16, dp_compress_int8,
    dp_compress_topk, dp_compress_powersgd;

static const dp_compress_ops *const k_table[] = {
    &dp_compress_none, &dp_compress_fp16, &dp_compress_bf16, &dp_compress_int8,
    &dp_compress_topk, &dp_compress_powersgd,
};
#define NTABLE (sizeof k_table / sizeof k_table[0])

const dp_compress_ops *dp_compress_ops_of(dp_codec_kind kind)
{
    for (size_t i = 0; i < NTABLE; i++)
        if (k_table[i]->kind == kind)
            return k_table[i];
    return NULL;
}

/* "none, fp16, ..., topk:F, powersgd:R": the entries (ring codecs only if ring_only). */
static const char *known(int ring_only, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = 0;
    for (size_t i = 0; i < NTABLE && len < n; i++) {
        const dp_compress_ops *o = k_table[i];
        if (ring_only && DP_COMPRESS_RING != o->hook)
            continue;
        len += (size_t)snprintf(buf + len, n - len, "%s%s%s%s", len ? ", " : "", o->name, o->arg ? ":" : "",
                                o->arg ? o->arg : "");
    }
    return buf;
}

/* ------------------------------------------------------------------------- */
/* The ring's codec names (dp_codec_config)                                   */
/* ------------------------------------------------------------------------- */

/* The entry s names ("topk:0.01" names topk), or NULL; *arg: the text after ':'. */
static const dp_compress_ops *lookup(const char *s, const char **arg)
{
    const char *colon = strchr(s, ':');
    size_t len = colon ? (size_t)(colon - s) : strlen(s);
    *arg = colon ? colon + 1 : NULL;
    for (size_t i = 0; i < NTABLE; i++) {
        const dp_compress_ops *o = k_table[i];
        if (strlen(o->name) == len && 0 == memcmp(s, o->name, len) && (NULL == o->arg) == (NULL == colon))
            return o;
    }
    return NULL;
}

dp_status dp_codec_parse(const char *s, dp_codec_config *out)
{
    if (NULL == out)
        return dp_errorf(DP_ERR_ARG, "dp_codec_parse: out is NULL");
    if (NULL == s)
        return dp_errorf(DP_ERR_ARG, "dp_codec_parse: codec name is NULL");
    const char *arg;
    const dp_compress_ops *o = lookup(s, &arg);
    if (o && DP_COMPRESS_RING == o->hook) {
        out->kind = o->kind;
        return DP_OK;
    }
    char list[256];
    return dp_errorf(DP_ERR_ARG, "unknown codec '%s' (known: %s)", s, known(1, list, sizeof list));
}

const char *dp_codec_name(dp_codec_kind kind)
{
    const dp_compress_ops *o = dp_compress_ops_of(kind);
    return o ? o->name : "?";
}

dp_status dp_codec_config_check(const char *who, const dp_codec_config *cfg)
{
    const dp_compress_ops *o = dp_compress_ops_of(cfg->kind);
    if (NULL == o)
        return dp_errorf(DP_ERR_ARG, "%s: unknown codec kind %d", who, (int)cfg->kind);
    if (DP_COMPRESS_RING != o->hook)
        return dp_errorf(DP_ERR_ARG, "%s: %s is not a ring codec (it runs after backward: "
                         "dp_compressor_run)", who, o->name);
    if (cfg->wire_zstd_level < 0 || cfg->wire_zstd_level > DP_CODEC_ZSTD_MAX)
        return dp_errorf(DP_ERR_ARG, "%s: wire zstd level %d (must be 0..%d)", who,
                         cfg->wire_zstd_level, DP_CODEC_ZSTD_MAX);
    return DP_OK;
}

/* ------------------------------------------------------------------------- */
/* The description                                                            */
/* ------------------------------------------------------------------------- */

dp_status dp_compress_parse(const char *s, dp_compress *c)
{
    if (NULL == c)
        return dp_errorf(DP_ERR_ARG, "dp_compress_parse: out is NULL");
    if (NULL == s)
        return dp_errorf(DP_ERR_ARG, "--codec: missing value");
    const char *arg;
    const dp_compress_ops *o = lookup(s, &arg);
    if (NULL == o) {
        char list[256];
        return dp_errorf(DP_ERR_ARG, "--codec: unknown codec '%s' (known: %s)", s, known(0, list, sizeof list));
    }
    if (o->parse_arg) {
        dp_status rc = o->parse_arg(s, arg, c);
        if (DP_OK != rc)
            return rc;
    }
    c->kind = o->kind;
    return DP_OK;
}

int dp_compress_name(const dp_compress *c, char *buf, size_t n)
{
    const dp_compress_ops *o = dp_compress_ops_of(c->kind);
    if (NULL == o)
        return snprintf(buf, n, "?");
    return o->format ? o->format(c, buf, n) : snprintf(buf, n, "%s", o->name);
}

dp_compress_hook dp_compress_hook_of(const dp_compress *c)
{
    const dp_compress_ops *o = dp_compress_ops_of(c->kind);
    if (NULL == o || (DP_CODEC_NONE == c->kind && 0 == c->wire_zstd_level))
        return DP_COMPRESS_OFF;
    return o->hook;
}

int dp_compress_on(const dp_compress *c, long step)
{
    return DP_COMPRESS_OFF != dp_compress_hook_of(c) && step >= c->start;
}

dp_compress dp_compress_ring_part(const dp_compress *c)
{
    dp_compress r = *c;
    if (DP_COMPRESS_AFTER_BACKWARD == dp_compress_hook_of(c)) {
        r.kind = DP_CODEC_NONE;
        r.topk_fraction = 0;
        r.dgc_momentum = 0;
        r.powersgd_rank = 0;
    }
    return r;
}

dp_status dp_compress_check(const dp_compress *c, dp_allreduce_algo algo)
{
    const dp_compress_ops *o = dp_compress_ops_of(c->kind);
    char name[64];
    DP_CHECK(o, "--codec: unknown codec kind %d", (int)c->kind);
    dp_compress_name(c, name, sizeof name);
    DP_CHECK(c->start >= 0, "--codec-start: %ld is negative", c->start);
    DP_CHECK(c->wire_zstd_level >= 0 && c->wire_zstd_level <= DP_CODEC_ZSTD_MAX,
             "--wire-zstd: %d is out of range [0, %d]", c->wire_zstd_level, DP_CODEC_ZSTD_MAX);
    DP_CHECK(DP_COMPRESS_RING == o->hook || !c->wire_zstd_level,
             "--codec %s cannot be combined with --wire-zstd (it runs after backward, not on the ring's messages)",
             o->name);
    DP_CHECK(c->dgc_momentum == 0 || DP_CODEC_TOPK == c->kind,
             "--dgc: momentum %g needs --codec topk:F and a momentum in (0, 1)", (double)c->dgc_momentum);
    if (o->check) {
        dp_status rc = o->check(c);
        if (DP_OK != rc)
            return rc;
    }
    /* hier encodes its inter-node ring (hier.c); halving/doubling would re-encode its halves at every level */
    DP_CHECK(DP_ALLREDUCE_RING == algo || DP_ALLREDUCE_HIER == algo || DP_COMPRESS_RING != dp_compress_hook_of(c),
             "--codec %s / --wire-zstd need --allreduce ring or hier, not --allreduce %s (%s)", name,
             dp_allreduce_algo_name(algo),
             DP_ALLREDUCE_MPI == algo ? "MPI_Allreduce cannot carry encoded bytes"
                                      : "recursive halving/doubling does not encode");
    return DP_OK;
}

/* ------------------------------------------------------------------------- */
/* A compressor at work                                                       */
/* ------------------------------------------------------------------------- */

struct dp_compressor {
    const dp_compress_ops *ops;
    dp_compress cfg;
    float *state; /* this rank's checkpointable state */
    size_t state_n;
    float *own;   /* lossy ring codecs: the error feedback (state) */
    void *self;   /* after backward: the entry's instance */
};

dp_status dp_compressor_create(const dp_compress *c, const dp_grad_layout *l, dp_compressor **out)
{
    if (NULL == out || NULL == c || NULL == l)
        return dp_errorf(DP_ERR_ARG, "dp_compressor_create: NULL argument");
    *out = NULL;
    const dp_compress_ops *o = dp_compress_ops_of(c->kind);
    if (NULL == o)
        return dp_errorf(DP_ERR_ARG, "dp_compressor_create: unknown codec kind %d", (int)c->kind);
    dp_compressor *x = calloc(1, sizeof *x);
    if (NULL == x)
        return dp_errorf(DP_ERR_NOMEM, "compressor: out of memory");
    x->ops = o;
    x->cfg = *c;
    dp_status rc = DP_OK;
    if (DP_COMPRESS_RING == o->hook) {
        x->state_n = o->ring->lossy ? l->n : 0;
        if (x->state_n && NULL == (x->own = calloc(x->state_n, sizeof *x->own)))
            rc = dp_errorf(DP_ERR_NOMEM, "error-feedback buffer: out of memory");
        x->state = x->own;
    } else {
        rc = o->create(c, l, &x->self);
        if (DP_OK == rc)
            x->state = o->state(x->self, &x->state_n);
    }
    if (DP_OK != rc) {
        dp_compressor_free(x);
        return rc;
    }
    *out = x;
    return DP_OK;
}

void dp_compressor_free(dp_compressor *x)
{
    if (NULL == x)
        return;
    if (x->self && x->ops->destroy)
        x->ops->destroy(x->self);
    free(x->own);
    free(x);
}

dp_compress_hook dp_compressor_hook(const dp_compressor *x)
{
    return x ? dp_compress_hook_of(&x->cfg) : DP_COMPRESS_OFF;
}

float *dp_compressor_state(dp_compressor *x, size_t *nfloats)
{
    *nfloats = x && x->state ? x->state_n : 0;
    return x ? x->state : NULL;
}

float *dp_compressor_residual(dp_compressor *x)
{
    return x && (x->own || x->ops->state_is_residual) ? x->state : NULL;
}

dp_status dp_compressor_bucket(const dp_compressor *x, size_t lo, uint64_t step, int bucket, dp_codec_config *cc,
                               float **residual)
{
    if (NULL == x || DP_COMPRESS_RING != x->ops->hook)
        return dp_errorf(DP_ERR_ARG, "dp_compressor_bucket: not a ring codec");
    /* The stochastic-rounding stream is a function of (seed, step, bucket), never
     * of how many calls this process has made, so a resumed run repeats it. */
    *cc = (dp_codec_config){
        .kind = x->cfg.kind,
        .wire_zstd_level = x->cfg.wire_zstd_level,
        .seed = x->cfg.seed ^ (0x9e3779b97f4a7c15ull * (step + 1)) ^
                (0xc2b2ae3d27d4eb4full * (uint64_t)(bucket + 1)),
    };
    *residual = x->own ? x->own + lo : NULL;
    return DP_OK;
}

dp_status dp_compressor_run(dp_compressor *x, float *grad, MPI_Comm comm, double *sent, double *raw)
{
    if (NULL == x || DP_COMPRESS_AFTER_BACKWARD != x->ops->hook)
        return dp_errorf(DP_ERR_ARG, "dp_compressor_run: not an after-backward compressor");
    return x->ops->run(x->self, grad, comm, sent, raw);
}
