/* PowerSGD: rank-R gradient compression by one step of warm-started power
 * iteration per training step, with error feedback.
 *
 * Follows Vogels, Karimireddy, Jaggi, "PowerSGD: Practical Low-Rank Gradient
 * Compression for Distributed Optimization" (NeurIPS 2019), Algorithm 1 (rank-R
 * compression) inside Algorithm 2 (error feedback), and the reference code
 * (github.com/epfml/powersgd) for orthogonalisation and batching.
 *
 * Where this sits: the comm room. The caller describes its flat gradient buffer
 * as matrix views (off, rows, cols; a conv kernel out x in x kh x kw is the view
 * out x (in kh kw)) and 1-D ranges; nothing here knows which tensor a view is.
 *
 * Per call, for each compressed matrix (M_w: this rank's, E_w its residual; the
 * sum over ranks w is what an allreduce makes):
 *
 *   M_w = G_w + E_w                       in the residual buffer (state)
 *   P_w = M_w Q                           Q: cols x R, warm-started (state)
 *   -------- ring allreduce #1: [P of every matrix | every uncompressed view] ---
 *   P   = sum_w P_w ; P^ = orthonormal columns of P  (Gram-Schmidt in double)
 *   Q_w = M_w^T P^
 *   E_w = M_w - P^ Q_w^T                  this rank's unexplained part
 *   -------- ring allreduce #2: [Q of every matrix] ---------------------------
 *   Q   = sum_w Q_w ; G = P^ Q^T          = P^ P^T sum_w M_w, identical on all ranks
 *
 * SUM, not AVG: the result approximates sum_w M_w; weighting (1/P or per-rank
 * sample counts) is folded into the gradient by the caller, as for the plain
 * ring, so there is no divide pass and one rule for every codec. (Scaling does not
 * matter to the power iteration itself: P is orthonormalised.)
 *
 * Error feedback: the reference code keeps E_w = M_w - (mean approximation);
 * we keep E_w = M_w - P^ Q_w^T with this rank's Q_w before its allreduce. The two
 * differ per rank but have the same sum over ranks, and the next step's P, Q and
 * output depend on the residuals only through that sum (both products are linear
 * in M), so the outputs are the same; ours needs no division by P and its sum
 * satisfies, per element and call,
 *     G_new + sum_w E_w,new = sum_w (G_w + E_w,old)   up to float rounding.
 *
 * Batching: one ring call carries every P and every uncompressed view (matrices
 * failing the 2x rule and 1-D ranges), one carries every Q; two latencies per
 * step whatever the number of layers. A matrix is compressed only where
 * R (rows + cols) <= rows cols / 2 (at least 2x fewer floats).
 *
 * Q starts as a normal(0,1) matrix drawn from (seed, matrix, element) by a
 * counter-based generator, so every rank has the same Q without a message. A Q
 * column that is exactly zero (a matrix whose gradient was zero, or a rank-deficient
 * P) would stay zero for ever under warm start; such a column is redrawn from
 * (seed, matrix, column) before the product. Orthogonalisation leaves a column of
 * norm 0 at 0 (it then contributes nothing to G), like the reference's
 * col / (|col| + eps).
 *
 * Determinism: P and Q are bit-identical on all ranks after the ring (each block's
 * owner reduces it and the others copy it), and everything after is the same
 * computation on the same bits, so G is identical on all ranks (same binary and
 * BLAS kernels). Non-finite values in a reduced buffer are seen by every rank,
 * so every rank returns DP_ERR_NONFINITE together. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "dptrain/floatscan.h"
#include "comm/comm_internal.h"

typedef struct psgd_mat {
    dp_powersgd_matrix m;
    int compressed;
    size_t poff, qoff; /* compressed: offsets of its P in the batch, of its Q in the Q region */
} psgd_mat;

struct dp_powersgd {
    size_t n;
    int R;
    uint64_t seed;
    int nmats;
    psgd_mat *mats;
    int nunc;
    dp_powersgd_range *unc;    /* uncompressed views: ranges, then uncompressed matrices */
    size_t p_floats, q_floats, u_floats, dense_floats;
    int ncompressed;
    int max_rows;
    float *state;              /* [residual n | Q q_floats] */
    float *batch;              /* [P p_floats | uncompressed u_floats] */
    double *gs;                /* max_rows x R, Gram-Schmidt scratch (column-major) */
    dp_ring_ws *ring;
};

/* A normal(0,1) draw from a key (Box-Muller on two 53-bit uniforms). */
static float normal_at(uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t h = dp_mix64(seed ^ dp_mix64(a * 0x100000001b3ull ^ dp_mix64(b)));
    double u1 = ((double)(dp_mix64(h) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
    double u2 = (double)(dp_mix64(h ^ 0x5851f42d4c957f2dull) >> 11) * 0x1.0p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* The 2x rule: a rows x cols matrix is compressed when its rank-R factors are
 * at most half its floats. */
static int compressible(int rows, int cols, int rank)
{
    return 2 * (uint64_t)rank * ((uint64_t)rows + (uint64_t)cols) <= (uint64_t)rows * (uint64_t)cols;
}

static int cmp_range(const void *a, const void *b)
{
    const dp_powersgd_range *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

void dp_powersgd_free(dp_powersgd *ps)
{
    if (NULL == ps)
        return;
    dp_ring_ws_free(ps->ring);
    free(ps->mats);
    free(ps->unc);
    free(ps->state);
    free(ps->batch);
    free(ps->gs);
    free(ps);
}

dp_status dp_powersgd_create(size_t n, const dp_powersgd_matrix *mats, int nmats,
                             const dp_powersgd_range *ranges, int nranges, int rank,
                             uint64_t seed, dp_powersgd **out)
{
    if (NULL == out)
        return dp_errorf(DP_ERR_ARG, "dp_powersgd_create: out is NULL");
    *out = NULL;
    if (rank < 1)
        return dp_errorf(DP_ERR_ARG, "dp_powersgd_create: rank %d < 1", rank);
    if (nmats < 0 || nranges < 0 || (nmats > 0 && NULL == mats) ||
        (nranges > 0 && NULL == ranges))
        return dp_errorf(DP_ERR_ARG, "dp_powersgd_create: bad view lists (%d matrices, "
                         "%d ranges)", nmats, nranges);

    dp_status rc = DP_OK;
    dp_powersgd_range *all = NULL;
    dp_powersgd *ps = calloc(1, sizeof *ps);
    if (NULL == ps)
        return dp_errorf(DP_ERR_NOMEM, "dp_powersgd_create: out of memory");
    ps->n = n;
    ps->R = rank;
    ps->seed = seed;
    ps->nmats = nmats;
    size_t nviews = (size_t)nmats + (size_t)nranges;
    ps->mats = calloc(nmats ? (size_t)nmats : 1, sizeof *ps->mats);
    ps->unc = malloc((nviews ? nviews : 1) * sizeof *ps->unc);
    all = malloc((nviews ? nviews : 1) * sizeof *all);
    if (!ps->mats || !ps->unc || !all) {
        rc = dp_errorf(DP_ERR_NOMEM, "dp_powersgd_create: out of memory");
        goto done;
    }

    /* Views: inside [0, n), then no overlap (sorted neighbours). */
    for (int i = 0; i < nmats; i++) {
        const dp_powersgd_matrix *m = &mats[i];
        if (m->rows < 1 || m->cols < 1 || m->off > n ||
            (uint64_t)m->rows * (uint64_t)m->cols > (uint64_t)(n - m->off)) {
            rc = dp_errorf(DP_ERR_ARG, "dp_powersgd_create: matrix %d (off %zu, %d x %d) "
                           "is not inside the buffer of %zu floats", i, m->off, m->rows,
                           m->cols, n);
            goto done;
        }
        ps->mats[i].m = *m;
        all[i] = (dp_powersgd_range){m->off, (size_t)m->rows * (size_t)m->cols};
    }
    for (int i = 0; i < nranges; i++) {
        const dp_powersgd_range *r = &ranges[i];
        if (r->off > n || r->n > n - r->off) {
            rc = dp_errorf(DP_ERR_ARG, "dp_powersgd_create: range %d (off %zu, %zu floats) "
                           "is not inside the buffer of %zu floats", i, r->off, r->n, n);
            goto done;
        }
        all[nmats + i] = *r;
    }
    qsort(all, nviews, sizeof *all, cmp_range);
    for (size_t i = 1; i < nviews; i++)
        if (all[i - 1].n > 0 && all[i].n > 0 && all[i - 1].off + all[i - 1].n > all[i].off) {
            rc = dp_errorf(DP_ERR_ARG, "dp_powersgd_create: views [%zu, %zu) and [%zu, %zu) "
                           "overlap", all[i - 1].off, all[i - 1].off + all[i - 1].n,
                           all[i].off, all[i].off + all[i].n);
            goto done;
        }

    /* The 2x rule; offsets of P in the batch and of Q in the state. */
    for (int i = 0; i < nranges; i++)
        if (ranges[i].n > 0) {
            ps->unc[ps->nunc++] = ranges[i];
            ps->u_floats += ranges[i].n;
            ps->dense_floats += ranges[i].n;
        }
    for (int i = 0; i < nmats; i++) {
        const dp_powersgd_matrix *m = &mats[i];
        uint64_t mn = (uint64_t)m->rows * (uint64_t)m->cols;
        ps->dense_floats += mn;
        if (compressible(m->rows, m->cols, rank)) {
            ps->mats[i] = (psgd_mat){*m, 1, ps->p_floats, ps->q_floats};
            ps->ncompressed++;
            ps->p_floats += (size_t)m->rows * (size_t)rank;
            ps->q_floats += (size_t)m->cols * (size_t)rank;
            if (m->rows > ps->max_rows)
                ps->max_rows = m->rows;
        } else {
            ps->unc[ps->nunc++] = (dp_powersgd_range){m->off, (size_t)mn};
            ps->u_floats += mn;
        }
    }

    ps->state = calloc(n + ps->q_floats ? n + ps->q_floats : 1, sizeof *ps->state);
    ps->batch = malloc((ps->p_floats + ps->u_floats ? ps->p_floats + ps->u_floats : 1) *
                       sizeof *ps->batch);
    ps->gs = malloc((ps->max_rows ? (size_t)ps->max_rows * (size_t)rank : 1) * sizeof *ps->gs);
    if (!ps->state || !ps->batch || !ps->gs) {
        rc = dp_errorf(DP_ERR_NOMEM, "dp_powersgd_create: out of memory (state of %zu floats)",
                       n + ps->q_floats);
        goto done;
    }
    rc = dp_ring_ws_create(0, &ps->ring);
    if (DP_OK != rc)
        goto done;

    /* Q0 ~ normal(0,1), the same on every rank. */
    float *q = ps->state + n;
    for (int i = 0; i < nmats; i++)
        if (ps->mats[i].compressed)
            for (size_t e = 0; e < (size_t)mats[i].cols * (size_t)rank; e++)
                q[ps->mats[i].qoff + e] = normal_at(seed, (uint64_t)i, e);

    *out = ps;
done:
    free(all);
    if (DP_OK != rc)
        dp_powersgd_free(ps);
    return rc;
}

int dp_powersgd_is_compressed(const dp_powersgd *ps, int i)
{
    return NULL != ps && i >= 0 && i < ps->nmats && ps->mats[i].compressed;
}

size_t dp_powersgd_state_floats(const dp_powersgd *ps)
{
    return NULL == ps ? 0 : ps->n + ps->q_floats;
}

float *dp_powersgd_state(dp_powersgd *ps)
{
    return NULL == ps ? NULL : ps->state;
}

/* Orthonormalises the R columns of p (rows x R, row-major) in place: modified
 * Gram-Schmidt in double, each column projected twice ("twice is enough"); a
 * column whose remaining norm is 0 (or not finite) becomes 0. */
static void orthonormalise(float *p, int rows, int R, double *gs)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < R; c++)
            gs[(size_t)c * rows + r] = p[(size_t)r * R + c];
    for (int c = 0; c < R; c++) {
        double *v = gs + (size_t)c * rows;
        for (int pass = 0; pass < 2; pass++)
            for (int l = 0; l < c; l++) {
                const double *u = gs + (size_t)l * rows;
                double d = 0.0;
                for (int r = 0; r < rows; r++)
                    d += u[r] * v[r];
                for (int r = 0; r < rows; r++)
                    v[r] -= d * u[r];
            }
        double s = 0.0;
        for (int r = 0; r < rows; r++)
            s += v[r] * v[r];
        double nrm = sqrt(s);
        double inv = (nrm > 0.0 && isfinite(nrm)) ? 1.0 / nrm : 0.0;
        for (int r = 0; r < rows; r++)
            v[r] *= inv;
    }
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < R; c++)
            p[(size_t)r * R + c] = (float)gs[(size_t)c * rows + r];
}

dp_status dp_powersgd_allreduce(dp_powersgd *ps, float *grad, MPI_Comm comm,
                                dp_powersgd_stats *st)
{
    if (NULL == ps)
        return dp_errorf(DP_ERR_ARG, "dp_powersgd_allreduce: ps is NULL");
    dp_status rc = dp_comm_check_args("dp_powersgd_allreduce", grad, ps->n, DP_REDUCE_SUM, comm);
    if (DP_OK != rc)
        return rc;
    if (NULL != st)
        memset(st, 0, sizeof *st);
    int rank = 0;
    MPI_Comm_rank(comm, &rank);

    const int R = ps->R;
    float *res = ps->state, *qall = ps->state + ps->n;
    uint64_t sent = 0, recv = 0;
    size_t at = 0;

    /* M = G + E; refresh zero Q columns; P = M Q into the batch. */
    for (int i = 0; i < ps->nmats; i++) {
        if (!ps->mats[i].compressed)
            continue;
        const dp_powersgd_matrix *m = &ps->mats[i].m;
        const size_t mn = (size_t)m->rows * (size_t)m->cols;
        float *M = res + m->off, *Q = qall + ps->mats[i].qoff;
        const float *g = grad + m->off;
        for (size_t e = 0; e < mn; e++)
            M[e] += g[e];
        for (int c = 0; c < R; c++) {
            int zero = 1;
            for (int r = 0; r < m->cols && zero; r++)
                zero = 0.0f == Q[(size_t)r * R + c];
            if (zero)
                for (int r = 0; r < m->cols; r++)
                    Q[(size_t)r * R + c] = normal_at(ps->seed ^ 0xc0151u, (uint64_t)i,
                                                     (uint64_t)r * (uint64_t)R + (uint64_t)c);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m->rows, R, m->cols, 1.0f, M,
                    m->cols, Q, R, 0.0f, ps->batch + ps->mats[i].poff, R);
    }
    float *u = ps->batch + ps->p_floats;
    for (int j = 0; j < ps->nunc; j++) {
        memcpy(u, grad + ps->unc[j].off, ps->unc[j].n * sizeof *u);
        u += ps->unc[j].n;
    }

    /* Allreduce #1: every P and every uncompressed view. */
    const size_t nb = ps->p_floats + ps->u_floats;
    rc = dp_allreduce_counted(ps->batch, nb, DP_REDUCE_SUM, DP_ALLREDUCE_RING, comm, ps->ring, &sent, &recv);
    if (DP_OK != rc)
        return rc;
    if ((at = dp_floats_find_bad(ps->batch, nb, 0.0f)) < nb)
        return dp_errorf(DP_ERR_NONFINITE, "dp_powersgd_allreduce: rank %d: non-finite value "
                         "in the reduced %s (batch float %zu)", rank,
                         at < ps->p_floats ? "P factors" : "uncompressed views", at);
    u = ps->batch + ps->p_floats;
    for (int j = 0; j < ps->nunc; j++) {
        memcpy(grad + ps->unc[j].off, u, ps->unc[j].n * sizeof *u);
        u += ps->unc[j].n;
    }

    /* P^ = orth(P); Q_w = M^T P^; E = M - P^ Q_w^T. */
    for (int i = 0; i < ps->nmats; i++) {
        if (!ps->mats[i].compressed)
            continue;
        const dp_powersgd_matrix *m = &ps->mats[i].m;
        float *M = res + m->off, *Q = qall + ps->mats[i].qoff, *P = ps->batch + ps->mats[i].poff;
        orthonormalise(P, m->rows, R, ps->gs);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m->cols, R, m->rows, 1.0f, M,
                    m->cols, P, R, 0.0f, Q, R);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m->rows, m->cols, R, -1.0f, P, R,
                    Q, R, 1.0f, M, m->cols);
    }

    /* Allreduce #2: every Q; then G = P^ Q^T. */
    rc = dp_allreduce_counted(qall, ps->q_floats, DP_REDUCE_SUM, DP_ALLREDUCE_RING, comm, ps->ring, &sent, &recv);
    if (DP_OK != rc)
        return rc;
    if ((at = dp_floats_find_bad(qall, ps->q_floats, 0.0f)) < ps->q_floats)
        return dp_errorf(DP_ERR_NONFINITE, "dp_powersgd_allreduce: rank %d: non-finite value "
                         "in the reduced Q factors (float %zu)", rank, at);
    for (int i = 0; i < ps->nmats; i++) {
        if (!ps->mats[i].compressed)
            continue;
        const dp_powersgd_matrix *m = &ps->mats[i].m;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m->rows, m->cols, R, 1.0f,
                    ps->batch + ps->mats[i].poff, R, qall + ps->mats[i].qoff, R, 0.0f, grad + m->off,
                    m->cols);
    }

    if (NULL != st)
        *st = (dp_powersgd_stats){.floats_reduced = ps->p_floats + ps->u_floats + ps->q_floats,
                                  .floats_dense = ps->dense_floats, .bytes_sent = sent,
                                  .bytes_recv = recv, .compressed = ps->ncompressed};
    return DP_OK;
}

/* ------------------------------------------------------------------------- */
/* --codec powersgd:R: after backward, over the whole gradient                 */
/* ------------------------------------------------------------------------- */

static dp_status psgd_parse(const char *s, const char *arg, dp_compress *c)
{
    char *end;
    long r = strtol(arg, &end, 10);
    if (end == arg || *end || isspace((unsigned char)*arg) || r < 1 || r > 1024) /* " 4" as "4 " */
        return dp_errorf(DP_ERR_ARG, "--codec: '%s': powersgd:R needs a rank 1 <= R <= 1024, e.g. powersgd:4", s);
    c->powersgd_rank = (int)r;
    return DP_OK;
}

static int psgd_format(const dp_compress *c, char *buf, size_t n)
{
    return snprintf(buf, n, "powersgd:%d", c->powersgd_rank);
}

static dp_status psgd_check(const dp_compress *c)
{
    if (c->powersgd_rank < 1 || c->powersgd_rank > 1024)
        return dp_errorf(DP_ERR_ARG, "--codec powersgd:R: R = %d is out of range [1, 1024]", c->powersgd_rank);
    return DP_OK;
}

static dp_status psgd_create(const dp_compress *c, const dp_grad_layout *l, void **self)
{
    dp_powersgd *ps = NULL;
    dp_status rc = dp_powersgd_create(l->n, l->mats, l->nmats, l->vecs, l->nvecs, c->powersgd_rank, c->seed, &ps);
    *self = ps;
    return rc;
}

static float *psgd_state(void *self, size_t *nfloats)
{
    *nfloats = dp_powersgd_state_floats(self);
    return dp_powersgd_state(self);
}

static dp_status psgd_run(void *self, float *grad, MPI_Comm comm, double *sent, double *raw)
{
    int P = 1;
    MPI_Comm_size(comm, &P);
    dp_powersgd_stats st = {0};
    dp_status rc = dp_powersgd_allreduce(self, grad, comm, &st);
    *sent += (double)st.bytes_sent;
    *raw += (double)st.floats_dense * 4.0 * 2.0 * (P - 1) / P;
    return rc;
}

static void psgd_destroy(void *self) { dp_powersgd_free(self); }

const dp_compress_ops dp_compress_powersgd = {
    .name = "powersgd",
    .kind = DP_CODEC_POWERSGD,
    .hook = DP_COMPRESS_AFTER_BACKWARD,
    .arg = "R",
    .parse_arg = psgd_parse,
    .format = psgd_format,
    .check = psgd_check,
    .create = psgd_create,
    .state = psgd_state,
    .run = psgd_run,
    .destroy = psgd_destroy,
};
