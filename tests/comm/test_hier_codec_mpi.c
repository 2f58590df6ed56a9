/* Multi-rank tests of the hierarchical allreduce with a codec on its inter-node
 * leg (dp_hier_allreduce_codec, the engine with DP_ALLREDUCE_HIER):
 *  - one rank per node: the column ring is the flat ring, so results and
 *    residuals equal dp_ring_allreduce_codec's bit for bit, every codec;
 *  - nodes of 2 (at 2 and 4 ranks): against MPI_Allreduce, exact for fp16/bf16
 *    on small integers, within the codec's bound on random data, the same bits
 *    on every rank; the error-feedback invariant summed over ranks;
 *  - the residual is (what was to be sent) - decode(what was sent) on the slice
 *    this rank encodes across nodes, untouched elsewhere (2 nodes, fp16/bf16);
 *  - byte counters: the inter-node bytes drop 2x for fp16, ~4x for int8, the
 *    intra-node bytes do not change;
 *  - the engine gives dp_hier_allreduce_codec's bits; refusals of hier-rd;
 *  - the node's segmented allgather at every receive depth and small segments;
 *    a non-finite value in one column reaches every rank as DP_ERR_NONFINITE.
 * Run by ctest under mpiexec at 1, 2, 3 and 4 ranks. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "comm/comm_internal.h"
#include "dptrain/comm.h"
#include "mpi_check.h"

static int g_provided;

static float *xalloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (NULL == p)
        MPI_Abort(MPI_COMM_WORLD, 2);
    return p;
}

typedef struct codec_case {
    dp_codec_kind kind;
    int zstd;
    double eps; /* relative bound per encoded value (int8: of the block's max) */
} codec_case;
static const codec_case k_codecs[] = {
    {DP_CODEC_FP16, 0, 0x1p-11}, {DP_CODEC_BF16, 0, 0x1p-8}, {DP_CODEC_INT8, 0, (1.0 + 0x1p-14) / 127.0},
    {DP_CODEC_FP16, 3, 0x1p-11}, {DP_CODEC_INT8, 3, (1.0 + 0x1p-14) / 127.0}, {DP_CODEC_NONE, 3, 0.0},
};
#define NCODECS (sizeof k_codecs / sizeof *k_codecs)

static dp_codec_config cfg_of(const codec_case *c, uint64_t seed)
{
    return (dp_codec_config){.kind = c->kind, .wire_zstd_level = c->zstd, .seed = seed};
}

static const char *cname(const codec_case *c, char *buf)
{
    snprintf(buf, 48, "%s%s", dp_codec_name(c->kind), c->zstd ? "+zstd" : "");
    return buf;
}

/* Same bits on every rank as on rank 0. */
static int same_everywhere(const float *a, size_t n)
{
    float *b = xalloc(n);
    memcpy(b, a, n * sizeof(float));
    if (n)
        MPI_Bcast(b, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
    int same = !memcmp(a, b, n * sizeof(float)), all;
    MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    free(b);
    return all;
}

/* R = 1: hier + codec = flat ring + codec, result and residual, two calls (the
 * second feeds the first's residual back), SUM and AVG, several counts. */
static void case_equals_ring(void)
{
    dp_topo *t = NULL;
    CHECK_OK(dp_topo_create(MPI_COMM_WORLD, 1, &t));
    const size_t counts[] = {1, (size_t)7 * g_size + 3, (size_t)3000 * g_size + 17};
    char nm[48];
    for (size_t k = 0; k < NCODECS; k++)
        for (size_t ci = 0; ci < 3; ci++)
            for (int op = 0; op < 2; op++) {
                const size_t n = counts[ci];
                dp_ring_ws *wa = NULL, *wb = NULL;
                CHECK_OK(dp_ring_ws_create(4096, &wa)); /* several segments per block */
                CHECK_OK(dp_ring_ws_create(4096, &wb));
                float *a = xalloc(n), *b = xalloc(n), *ea = xalloc(n), *eb = xalloc(n);
                const dp_codec_config cfg = cfg_of(&k_codecs[k], 11 + k);
                for (int call = 0; call < 2; call++) {
                    for (size_t i = 0; i < n; i++)
                        a[i] = b[i] = gen_rand(g_rank, i, 40 + (uint64_t)call);
                    CHECK_OK(dp_hier_allreduce_codec(a, n, (dp_reduce_op)op, DP_ALLREDUCE_RING, &cfg, ea, t, wa));
                    CHECK_OK(dp_ring_allreduce_codec(b, n, (dp_reduce_op)op, &cfg, eb, MPI_COMM_WORLD, wb));
                    CHECK(!memcmp(a, b, n * sizeof(float)) && !memcmp(ea, eb, n * sizeof(float)),
                          "R=1 %s n=%zu op %d call %d: hier differs from the flat ring", cname(&k_codecs[k], nm), n,
                          op, call);
                }
                free(a), free(b), free(ea), free(eb);
                dp_ring_ws_free(wa);
                dp_ring_ws_free(wb);
            }
    dp_topo_free(t);
}

/* Every R dividing the size, codecs against MPI_Allreduce: exact on small
 * integers for fp16 and bf16 (and none+zstd), within N encodings' bound on
 * random data; the same bits on every rank; and the error-feedback invariant
 * result + sum_ranks e_new = sum_ranks (x + e_old) (float rounding aside). */
static void case_against_mpi(void)
{
    char nm[48];
    for (int R = 1; R <= g_size; R++) {
        if (g_size % R)
            continue;
        dp_topo *t = NULL;
        dp_ring_ws *ws = NULL;
        CHECK_OK(dp_topo_create(MPI_COMM_WORLD, R, &t));
        CHECK_OK(dp_ring_ws_create(2048, &ws));
        int N;
        dp_topo_shape(t, &N, NULL, NULL, NULL);
        const size_t n = (size_t)1500 * g_size + 5;
        float *a = xalloc(n), *b = xalloc(n), *e = xalloc(n), *e0 = xalloc(n);
        double *mag = calloc(n, sizeof(double)), *lhs = calloc(n, sizeof(double)), *rhs = calloc(n, sizeof(double));
        for (size_t k = 0; k < NCODECS; k++) {
            const codec_case *cc = &k_codecs[k];
            const dp_codec_config cfg = cfg_of(cc, 5);
            for (int op = 0; op < 2; op++) {
                /* integers (AVG: lossy codecs divide first, exact only by a power of two) */
                if (DP_CODEC_INT8 != cc->kind && (DP_REDUCE_SUM == op || 0 == (g_size & (g_size - 1)))) {
                    for (size_t i = 0; i < n; i++)
                        a[i] = b[i] = gen_int(g_rank, i, 3 + (uint64_t)op);
                    CHECK_OK(dp_hier_allreduce_codec(a, n, (dp_reduce_op)op, DP_ALLREDUCE_RING, &cfg, NULL, t, ws));
                    MPI_Allreduce(MPI_IN_PLACE, b, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
                    if (op)
                        for (size_t i = 0; i < n; i++)
                            b[i] /= (float)g_size;
                    CHECK(!memcmp(a, b, n * sizeof(float)), "R=%d %s op %d: integer data differ from MPI_Allreduce",
                          R, cname(cc, nm), op);
                }
                /* random data, no residual: the bound. Each value crosses nodes encoded at most N times
                 * at the partial sums' size (int8: of its block's largest, at most the buffer's largest) */
                for (size_t i = 0; i < n; i++)
                    a[i] = b[i] = gen_rand(g_rank, i, 7 + (uint64_t)op + 2 * k);
                CHECK_OK(dp_hier_allreduce_codec(a, n, (dp_reduce_op)op, DP_ALLREDUCE_RING, &cfg, NULL, t, ws));
                CHECK(same_everywhere(a, n), "R=%d %s op %d: ranks differ", R, cname(cc, nm), op);
                const double div = op ? g_size : 1;
                for (size_t i = 0; i < n; i++) {
                    mag[i] = fabs((double)b[i]) / div;
                    rhs[i] = (double)b[i] / div;
                }
                MPI_Allreduce(MPI_IN_PLACE, mag, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
                MPI_Allreduce(MPI_IN_PLACE, rhs, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
                double big = 0;
                for (size_t i = 0; i < n; i++)
                    big = fmax(big, mag[i]);
                size_t bad = 0, first = 0;
                for (size_t i = 0; i < n; i++) {
                    const double scale = DP_CODEC_INT8 == cc->kind ? big : mag[i];
                    const double tol = N * cc->eps * scale * 1.01 + 8 * g_size * FLT_EPSILON * mag[i];
                    if (fabs((double)a[i] - rhs[i]) > tol && !bad++)
                        first = i;
                }
                CHECK(0 == bad, "R=%d %s op %d: %zu values past the bound (first %zu: %.9g vs %.9g)", R,
                      cname(cc, nm), op, bad, first, (double)a[first], rhs[first]);
                if (DP_CODEC_NONE == cc->kind) /* lossless: residuals are a lossy codec's */
                    continue;
                /* with a residual in place: result + sum_ranks e_new = sum_ranks (x + e_old) */
                for (size_t i = 0; i < n; i++) {
                    a[i] = b[i] = gen_rand(g_rank, i, 17 + (uint64_t)op + 2 * k);
                    e[i] = e0[i] = 1e-3f * gen_rand(g_rank, i, 99);
                }
                CHECK_OK(dp_hier_allreduce_codec(a, n, (dp_reduce_op)op, DP_ALLREDUCE_RING, &cfg, e, t, ws));
                CHECK(same_everywhere(a, n), "R=%d %s op %d (residual): ranks differ", R, cname(cc, nm), op);
                for (size_t i = 0; i < n; i++) {
                    mag[i] = fabs((double)b[i]) / div + fabs((double)e0[i]);
                    rhs[i] = (double)b[i] / div + e0[i];
                    lhs[i] = e[i];
                }
                MPI_Allreduce(MPI_IN_PLACE, mag, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
                MPI_Allreduce(MPI_IN_PLACE, rhs, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
                MPI_Allreduce(MPI_IN_PLACE, lhs, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
                bad = 0;
                for (size_t i = 0; i < n; i++)
                    if (fabs((double)a[i] + lhs[i] - rhs[i]) > 8 * g_size * FLT_EPSILON * mag[i] && !bad++)
                        first = i;
                CHECK(0 == bad, "R=%d %s op %d: error-feedback invariant off at %zu values (first %zu: %.9g vs %.9g)",
                      R, cname(cc, nm), op, bad, first, (double)a[first] + lhs[first], rhs[first]);
                if (N > 1) { /* something was encoded lossily */
                    double m = 0;
                    for (size_t i = 0; i < n; i++)
                        m = fmax(m, fabs((double)e[i] - e0[i]));
                    int moved = m > 0, any;
                    MPI_Allreduce(&moved, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
                    CHECK(any, "R=%d %s: residual never changed", R, cname(cc, nm));
                }
            }
        }
        free(a), free(b), free(e), free(e0), free(mag), free(lhs), free(rhs);
        dp_ring_ws_free(ws);
        dp_topo_free(t);
    }
}

/* Two nodes (R = size / 2), fp16 and bf16, SUM, no residual before: on this
 * rank's slice (block (l+1) mod L of the node's split) the column ring of 2
 * sends block c (c: this node) as the node's sum v, and owns block 1-c, where
 * it forms v = own node sum + decode(other node's message). Either way the
 * residual is v - decode(encode(v)), and the result on the owned block is
 * decode(encode(v)). Elsewhere the residual keeps what it held. */
static void case_residual_slice(void)
{
    if (g_size % 2)
        return;
    const int R = g_size / 2;
    dp_topo *t = NULL;
    dp_ring_ws *ws = NULL;
    CHECK_OK(dp_topo_create(MPI_COMM_WORLD, R, &t));
    CHECK_OK(dp_ring_ws_create(0, &ws));
    int N, L, c, l;
    dp_topo_shape(t, &N, &L, &c, &l);
    CHECK(2 == N && L == R && c == g_rank / R && l == g_rank % R, "shape %d x %d, node %d local %d", N, L, c, l);
    MPI_Comm node;
    MPI_Comm_split(MPI_COMM_WORLD, c, g_rank, &node);
    const size_t n = (size_t)1000 * g_size + 3;
    const size_t off = dp_block_off(n, L, (l + 1) % L), len = dp_block_len(n, L, (l + 1) % L);
    float *a = xalloc(n), *e = xalloc(n), *v = xalloc(n), *other = xalloc(len);
    const dp_codec_kind kinds[] = {DP_CODEC_FP16, DP_CODEC_BF16};
    for (int k = 0; k < 2; k++) {
        const dp_codec_config cfg = {.kind = kinds[k]};
        for (size_t i = 0; i < n; i++) {
            a[i] = v[i] = gen_rand(g_rank, i, 300 + (uint64_t)k);
            e[i] = (i >= off && i < off + len) ? 0.0f : 7.0f; /* 7: must stay */
        }
        /* the node's sums (one addition at L = 2: the ring's bits in any order) */
        if (L > 1)
            MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_FLOAT, MPI_SUM, node);
        const int peer = (g_rank + R) % g_size; /* same local rank, the other node */
        MPI_Sendrecv(v + off, (int)len, MPI_FLOAT, peer, 5, other, (int)len, MPI_FLOAT, peer, 5, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
        CHECK_OK(dp_hier_allreduce_codec(a, n, DP_REDUCE_SUM, DP_ALLREDUCE_RING, &cfg, e, t, ws));
        size_t bad_sent = 0, bad_owned = 0, bad_out = 0, bad_res = 0;
        const size_t mo = dp_block_off(len, 2, c), ml = dp_block_len(len, 2, c); /* sent as the node's sum */
        for (size_t j = 0; j < len; j++) {
            const size_t i = off + j;
            const int mine = j >= mo && j < mo + ml;
            const uint16_t h_other = DP_CODEC_FP16 == kinds[k] ? dp_f16_from_f32(other[j]) : dp_bf16_from_f32(other[j]);
            const float dec_other = DP_CODEC_FP16 == kinds[k] ? dp_f32_from_f16(h_other) : 0.0f;
            float sent_v = v[i];
            if (!mine) { /* owned: own node sum + the other node's decoded message */
                float d = dec_other;
                if (DP_CODEC_BF16 == kinds[k]) {
                    uint32_t u = (uint32_t)h_other << 16;
                    memcpy(&d, &u, sizeof d);
                }
                sent_v = v[i] + d;
            }
            float dv;
            if (DP_CODEC_FP16 == kinds[k])
                dv = dp_f32_from_f16(dp_f16_from_f32(sent_v));
            else {
                uint32_t u = (uint32_t)dp_bf16_from_f32(sent_v) << 16;
                memcpy(&dv, &u, sizeof dv);
            }
            if (e[i] != sent_v - dv)
                *(mine ? &bad_sent : &bad_owned) += 1;
            if (!mine && a[i] != dv)
                bad_out++;
        }
        for (size_t i = 0; i < n; i++)
            if ((i < off || i >= off + len) && 7.0f != e[i])
                bad_res++;
        CHECK(0 == bad_sent && 0 == bad_owned && 0 == bad_out && 0 == bad_res,
              "%s: residual != v - decode(encode(v)) at %zu sent and %zu owned values, result != decoded at %zu, "
              "residual outside the slice changed at %zu", dp_codec_name(kinds[k]), bad_sent, bad_owned, bad_out,
              bad_res);
    }
    free(a), free(e), free(v), free(other);
    MPI_Comm_free(&node);
    dp_ring_ws_free(ws);
    dp_topo_free(t);
}

/* Byte counters: the inter-node bytes of fp16 are half of float32's, int8's
 * about a quarter (a 4-byte scale per 256 values); the bytes inside the node
 * are the same with and without a codec. */
static void case_counters(void)
{
    for (int R = 1; R <= g_size; R++) {
        if (g_size % R)
            continue;
        dp_topo *t = NULL;
        CHECK_OK(dp_topo_create(MPI_COMM_WORLD, R, &t));
        int N;
        dp_topo_shape(t, &N, NULL, NULL, NULL);
        const size_t n = (size_t)65536 * g_size + 7;
        float *a = xalloc(n), *e = xalloc(n);
        const dp_codec_kind kinds[] = {DP_CODEC_NONE, DP_CODEC_FP16, DP_CODEC_INT8};
        dp_comm_stats s[3];
        for (int k = 0; k < 3; k++) {
            dp_ring_ws *ws = NULL;
            CHECK_OK(dp_ring_ws_create(0, &ws));
            for (size_t i = 0; i < n; i++)
                a[i] = gen_rand(g_rank, i, 77);
            const dp_codec_config cfg = {.kind = kinds[k]};
            CHECK_OK(dp_hier_allreduce_codec(a, n, DP_REDUCE_AVG, DP_ALLREDUCE_RING, &cfg, e, t, ws));
            dp_ring_ws_stats(ws, &s[k]);
            dp_ring_ws_free(ws);
        }
        const uint64_t in0 = s[0].bytes_sent - s[0].bytes_inter_sent;
        CHECK(s[1].bytes_sent - s[1].bytes_inter_sent == in0 && s[2].bytes_sent - s[2].bytes_inter_sent == in0,
              "R=%d: intra-node bytes %llu, %llu, %llu", R, (unsigned long long)in0,
              (unsigned long long)(s[1].bytes_sent - s[1].bytes_inter_sent),
              (unsigned long long)(s[2].bytes_sent - s[2].bytes_inter_sent));
        CHECK((N > 1) == (s[0].bytes_inter_sent > 0), "R=%d: %llu inter-node bytes", R,
              (unsigned long long)s[0].bytes_inter_sent);
        if (N > 1) {
            const double r16 = (double)s[0].bytes_inter_sent / (double)s[1].bytes_inter_sent;
            const double r8 = (double)s[0].bytes_inter_sent / (double)s[2].bytes_inter_sent;
            const double q16 = (double)s[0].bytes_inter_recv / (double)s[1].bytes_inter_recv;
            CHECK(s[0].bytes_inter_sent == 2 * s[1].bytes_inter_sent && q16 == 2.0,
                  "R=%d: fp16 inter-node bytes %llu of float32's %llu (sent ratio %.3f, received %.3f)", R,
                  (unsigned long long)s[1].bytes_inter_sent, (unsigned long long)s[0].bytes_inter_sent, r16, q16);
            CHECK(r8 > 3.8 && r8 <= 4.0, "R=%d: int8 inter-node ratio %.3f", R, r8);
            CHECK(s[1].bytes_raw_sent == s[0].bytes_raw_sent && s[1].bytes_codec_sent < s[0].bytes_codec_sent,
                  "R=%d: raw %llu vs %llu, codec %llu vs %llu", R, (unsigned long long)s[1].bytes_raw_sent,
                  (unsigned long long)s[0].bytes_raw_sent, (unsigned long long)s[1].bytes_codec_sent,
                  (unsigned long long)s[0].bytes_codec_sent);
            if (0 == g_rank)
                printf("    R=%d (%d nodes): inter-node bytes sent by rank 0: float32 %llu, fp16 %llu (%.2fx), "
                       "int8 %llu (%.2fx); intra-node %llu\n", R, N, (unsigned long long)s[0].bytes_inter_sent,
                       (unsigned long long)s[1].bytes_inter_sent, r16, (unsigned long long)s[2].bytes_inter_sent,
                       r8, (unsigned long long)in0);
        }
        free(a), free(e);
        dp_topo_free(t);
    }
}

/* The engine with DP_ALLREDUCE_HIER and a codec gives dp_hier_allreduce_codec's
 * bits (results and residuals, two steps); hier-rd and rd engines refuse a codec,
 * dp_hier_allreduce_codec refuses halving/doubling, naming both. */
static void case_engine_and_refusals(void)
{
    const int R = 0 == g_size % 2 ? g_size / 2 : 1;
    char v[16];
    snprintf(v, sizeof v, "%d", R);
    setenv("DP_RANKS_PER_NODE", v, 1);
    const size_t n = (size_t)333 * g_size + 4;
    dp_topo *t = NULL;
    dp_ring_ws *ws = NULL;
    CHECK_OK(dp_topo_create(MPI_COMM_WORLD, 0, &t));
    CHECK_OK(dp_ring_ws_create(0, &ws));
    float *a = xalloc(n), *b = xalloc(n), *ea = xalloc(n), *eb = xalloc(n);
    const int threaded = dp_comm_thread_level_ok(g_provided);
    dp_engine *e = NULL;
    CHECK_OK(dp_engine_create(MPI_COMM_WORLD, DP_ALLREDUCE_HIER, threaded, &e));
    for (int step = 0; step < 2 && e; step++) {
        const dp_codec_config c1 = {.kind = DP_CODEC_INT8, .seed = 3 + (uint64_t)step};
        const dp_codec_config c2 = {.kind = DP_CODEC_FP16, .wire_zstd_level = 1};
        for (size_t i = 0; i < n; i++)
            a[i] = b[i] = gen_rand(g_rank, i, 500 + (uint64_t)step);
        CHECK_OK(dp_engine_submit_codec(e, a, 100, DP_REDUCE_SUM, &c1, ea));
        CHECK_OK(dp_engine_submit_codec(e, a + 100, n - 100, DP_REDUCE_AVG, &c2, ea + 100));
        CHECK_OK(dp_engine_wait_all(e));
        CHECK_OK(dp_hier_allreduce_codec(b, 100, DP_REDUCE_SUM, DP_ALLREDUCE_RING, &c1, eb, t, ws));
        CHECK_OK(dp_hier_allreduce_codec(b + 100, n - 100, DP_REDUCE_AVG, DP_ALLREDUCE_RING, &c2, eb + 100, t, ws));
        CHECK(!memcmp(a, b, n * sizeof(float)) && !memcmp(ea, eb, n * sizeof(float)),
              "engine hier + codec step %d differs from dp_hier_allreduce_codec", step);
    }
    if (e) {
        dp_comm_stats s;
        dp_engine_stats(e, &s);
        int N;
        dp_topo_shape(t, &N, NULL, NULL, NULL);
        CHECK(4 == s.calls && (N > 1) == (s.bytes_inter_sent > 0) && s.bytes_codec_sent <= s.bytes_raw_sent,
              "engine stats: %llu calls, %llu inter-node bytes", (unsigned long long)s.calls,
              (unsigned long long)s.bytes_inter_sent);
    }
    dp_engine_free(e);
    const dp_codec_config f16 = {.kind = DP_CODEC_FP16};
    const dp_allreduce_algo refused[] = {DP_ALLREDUCE_HIER_RD, DP_ALLREDUCE_RD, DP_ALLREDUCE_MPI};
    for (int k = 0; k < 3; k++) {
        e = NULL;
        CHECK_OK(dp_engine_create(MPI_COMM_WORLD, refused[k], 0, &e));
        dp_status st = dp_engine_submit_codec(e, a, n, DP_REDUCE_SUM, &f16, ea);
        CHECK(DP_ERR_ARG == st && has(dp_errmsg(), "fp16") && has(dp_errmsg(), dp_allreduce_algo_name(refused[k])),
              "engine %s + fp16: %s: %s", dp_allreduce_algo_name(refused[k]), dp_status_name(st), dp_errmsg());
        dp_engine_free(e);
    }
    dp_status st = dp_hier_allreduce_codec(a, n, DP_REDUCE_SUM, DP_ALLREDUCE_RD, &f16, ea, t, ws);
    CHECK(DP_ERR_ARG == st && has(dp_errmsg(), "hier-rd") && has(dp_errmsg(), "fp16"), "hier-rd + fp16: %s",
          dp_errmsg());
    /* dp_compress_check, what --codec with --allreduce runs: hier accepted, the others named */
    dp_compress c = {0};
    CHECK_OK(dp_compress_parse("int8", &c));
    CHECK_OK(dp_compress_check(&c, DP_ALLREDUCE_HIER));
    for (int k = 0; k < 3; k++) {
        st = dp_compress_check(&c, refused[k]);
        char want[64];
        snprintf(want, sizeof want, "--allreduce %s", dp_allreduce_algo_name(refused[k]));
        CHECK(DP_ERR_ARG == st && has(dp_errmsg(), "--codec int8") && has(dp_errmsg(), want), "check %s: %s", want,
              dp_errmsg());
    }
    free(a), free(b), free(ea), free(eb);
    dp_ring_ws_free(ws);
    dp_topo_free(t);
    unsetenv("DP_RANKS_PER_NODE");
}

/* A NaN in rank 0's input poisons one column (the local rank whose slice holds
 * it): every rank returns DP_ERR_NONFINITE, and a clean call afterwards works. */
static void case_nonfinite(void)
{
    for (int R = 1; R <= g_size; R++) {
        if (g_size % R)
            continue;
        dp_topo *t = NULL;
        dp_ring_ws *ws = NULL;
        CHECK_OK(dp_topo_create(MPI_COMM_WORLD, R, &t));
        CHECK_OK(dp_ring_ws_create(0, &ws));
        int N;
        dp_topo_shape(t, &N, NULL, NULL, NULL);
        const size_t n = (size_t)50 * g_size + 1;
        float *a = xalloc(n), *e = xalloc(n);
        const dp_codec_config cfg = {.kind = DP_CODEC_FP16};
        for (size_t i = 0; i < n; i++)
            a[i] = gen_int(g_rank, i, 8);
        if (0 == g_rank)
            a[n / 2] = NAN;
        dp_status st = dp_hier_allreduce_codec(a, n, DP_REDUCE_SUM, DP_ALLREDUCE_RING, &cfg, e, t, ws);
        if (N > 1)
            CHECK(DP_ERR_NONFINITE == st, "R=%d: %s: %s", R, dp_status_name(st), dp_errmsg());
        for (size_t i = 0; i < n; i++)
            a[i] = gen_int(g_rank, i, 9);
        memset(e, 0, n * sizeof(float));
        CHECK_OK(dp_hier_allreduce_codec(a, n, DP_REDUCE_SUM, DP_ALLREDUCE_RING, &cfg, e, t, ws));
        CHECK(same_everywhere(a, n), "R=%d: after a poisoned call the ranks differ", R);
        free(a), free(e);
        dp_ring_ws_free(ws);
        dp_topo_free(t);
    }
}

/* The node's allgather is the ring's allgather half (dp_ring_run_ag): every
 * receive depth, 13-float segments, counts below and above the ranks, with and
 * without a codec, against MPI_Allreduce on integers (exact). */
static void case_node_allgather(void)
{
    for (int R = 1; R <= g_size; R++) {
        if (g_size % R)
            continue;
        dp_topo *t = NULL;
        CHECK_OK(dp_topo_create(MPI_COMM_WORLD, R, &t));
        for (int depth = 1; depth <= 4; depth++) {
            dp_ring_ws *ws = NULL;
            CHECK_OK(dp_ring_ws_create(52, &ws));
            CHECK_OK(dp_ring_ws_set_depth(ws, depth));
            const size_t counts[] = {1, (size_t)(g_size > 1 ? g_size - 1 : 1), (size_t)41 * g_size + 3, 5000};
            for (size_t ci = 0; ci < 4; ci++)
                for (int coded = 0; coded < 2; coded++) {
                    const size_t n = counts[ci];
                    float *a = xalloc(n), *b = xalloc(n);
                    for (size_t i = 0; i < n; i++)
                        a[i] = b[i] = gen_int(g_rank, i, 60 + ci + (uint64_t)depth);
                    const dp_codec_config cfg = {.kind = DP_CODEC_FP16};
                    CHECK_OK(dp_hier_allreduce_codec(a, n, DP_REDUCE_SUM, DP_ALLREDUCE_RING, coded ? &cfg : NULL,
                                                     NULL, t, ws));
                    MPI_Allreduce(MPI_IN_PLACE, b, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
                    CHECK(!memcmp(a, b, n * sizeof(float)), "R=%d depth %d n=%zu %s: differs from MPI_Allreduce", R,
                          depth, n, coded ? "fp16" : "float32");
                    free(a), free(b);
                }
            dp_ring_ws_free(ws);
        }
        dp_topo_free(t);
    }
}

static int g_passed;
static void run(const char *name, void (*fn)(void)) { g_passed = run_case("hier-codec", name, fn); }

int main(int argc, char **argv)
{
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &g_provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    unsetenv("DP_RANKS_PER_NODE");
    if (0 == g_rank)
        printf("hier codec tests on %d rank(s)\n", g_size);
    run("R=1: hier + codec = ring + codec", case_equals_ring);
    run("every R: MPI, bound, error feedback", case_against_mpi);
    run("2 nodes: residual = v - dec(enc(v))", case_residual_slice);
    run("inter-node byte counters", case_counters);
    run("engine, refusals", case_engine_and_refusals);
    run("node allgather: depths 1-4, 13-float segments", case_node_allgather);
    run("non-finite in one column", case_nonfinite);
    if (0 == g_rank)
        printf("hier codec tests: %d passed, 0 failed\n", g_passed);
    MPI_Finalize();
    return 0;
}
