/* Direct convolution on AVX-512F: forward and input gradient (see conv_direct.h).
 *
 * Why: ResNet-sized convs (16..64 channels, 3x3) are thin GEMMs; im2col,
 * sgemm's packing and col2im cost as much as the multiply. Here the multiply
 * reads the input straight from a zero-padded copy and writes each output once.
 *
 * One kernel, two callers:
 *   forward  y_n  = conv(x_n, w) + b       input x_n [C][H][W], out channels O
 *   dx       dx_n += conv(dy_n, w')        input dy_n [O][Ho][Wo], out channels C,
 *            w'[c][o][i][j] = w[o][c][kh-1-i][kw-1-j], padding kh-1-pad / kw-1-pad
 *            (stride s > 1: one stride-1 conv per phase of dx, see dp_direct_dx)
 *
 * Per call: the weights are transposed to wt[K][Co] (K = Ci*kh*kw, k =
 * (ci*kh + i)*kw + j, output channels contiguous), and a table koff[k] holds the
 * offset of tap k in the padded input. Per image: the input is copied into
 * xpad[Ci][Hp][s][Wq] (zero borders written once per call; columns split by
 * phase col % s so that a tap reads consecutive floats at any stride). Then for
 * every block of RB output pixels of one output row x OV 16-lane vectors of
 * output channels, RB*OV <= 28 accumulators (zmm) live across the whole K loop:
 *     per k: OV weight loads, RB broadcasts from xpad (memory operands of the
 *            FMAs), RB*OV FMAs.
 * (ResNet-20: O=32: 2 vectors x 14 px, O=64: 4x7 with one accumulator spilled;
 * O=16 with 3-wide kernels at stride 1: row3_RB, 14 px, each broadcast feeding
 * its three taps, since 1 vector per broadcast is load-bound.) A row that is
 * not a multiple of RB ends in a block overlapping the previous one (same
 * values written twice). Blocks go pixel-major into Yt[P][Co]; 16x16 in-register
 * transposes move Yt to the NCHW output (plain store forward, += for dx).
 * The accumulators start from the bias (forward) or zero. Summation order
 * depends only on the shape: bit-for-bit reproducible on one machine. */
#include "core/conv_direct.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conv_direct_util.h"

/* -1: follow DP_CONV and the CPU; 0 / 1: forced by dp_direct_force (tests). */
static int direct_forced = -1;
/* DP_CONV and the CPU, read on first use: -1 not yet (dp_direct_force(-1) rereads). */
static int direct_have = -1;

void dp_direct_force(int mode)
{
    direct_forced = mode < 0 ? -1 : mode ? 1 : 0;
    if (mode < 0) direct_have = -1;
}

#if defined(__x86_64__) && defined(__GNUC__)

/* DP_CONV: unset or "auto" -> direct kernels where the CPU has them; "gemm" -> never. */
static int direct_env_allows(void)
{
    const char *v = getenv("DP_CONV");
    if (!v || !*v || !strcmp(v, "auto")) return 1;
    if (!strcmp(v, "gemm")) return 0;
    fprintf(stderr, "dptrain: DP_CONV='%s' is not a convolution path (want auto or gemm); using gemm\n", v);
    return 0;
}

int dp_direct_available(void)
{
    if (direct_forced >= 0) return direct_forced && dp_direct_cpu_ok();
    if (direct_have < 0) direct_have = dp_direct_cpu_ok() && direct_env_allows();
    return direct_have;
}

#define RB_MAX 28 /* accumulators: 32 zmm less the OV weight vectors */

/* Geometry of one kernel run (forward or dx): input planes Ci x Hi x Wi,
 * output Co x Ho x Wo, padding ph/pw (>= 0), and the padded copy's shape. */
typedef struct dconv {
    int Ci, Hi, Wi, Co, Ho, Wo, kh, kw, s, ph, pw;
    int Hp, Wq;      /* xpad rows; floats per phase row (ceil(padded width / s)) */
    long plane, K, P; /* Hp*s*Wq; Ci*kh*kw; Ho*Wo */
} dconv;

static dconv dconv_make(int Ci, int Hi, int Wi, int Co, int Ho, int Wo, int kh, int kw, int s, int ph, int pw)
{
    dconv d = {Ci, Hi, Wi, Co, Ho, Wo, kh, kw, s, ph, pw, 0, 0, 0, 0, 0};
    d.Hp = (Ho - 1) * s + kh;
    const int Wp = (Wo - 1) * s + kw;
    d.Wq = (Wp + s - 1) / s;
    d.plane = (long)d.Hp * s * d.Wq;
    d.K = (long)Ci * kh * kw;
    d.P = (long)Ho * Wo;
    return d;
}


/* Scratch layout in floats: wt [K][Co] | koff [K] ints | xpad [Ci][plane] (+16) | Yt [P rounded to 16][Co]. */
static size_t dconv_scratch(const dconv *d)
{
    return (size_t)(dp_direct_up16(d->K * d->Co) + dp_direct_up16(d->K) + dp_direct_up16(d->Ci * d->plane + 16) + dp_direct_up16(d->P) * d->Co) *
           sizeof(float);
}

/* ---- the register-blocked kernel ---- */

/* yt[r*ldy + 16v ...] <- (bias or 0) + sum_k wt[k][16v..] * xb[koff[k] + r], r < RB, v < OV. */
#define DEF_BLOCK(OV, RB)                                                                                              \
    static DP_DIRECT_TARGET void blk_##OV##_##RB(const float *xb, const float *wt, const int *koff, long K, long ldw,  \
                                                 const float *bias, float *yt, long ldy)                               \
    {                                                                                                                  \
        __m512 acc[RB][OV];                                                                                            \
        _Pragma("GCC unroll 32") for (int r = 0; r < RB; r++)                                                          \
            _Pragma("GCC unroll 4") for (int v = 0; v < OV; v++) acc[r][v] =                                           \
                bias ? _mm512_loadu_ps(bias + 16 * v) : _mm512_setzero_ps();                                           \
        for (long k = 0; k < K; k++) {                                                                                 \
            const float *xp = xb + koff[k], *wp = wt + k * ldw;                                                        \
            __m512 wv[OV];                                                                                             \
            _Pragma("GCC unroll 4") for (int v = 0; v < OV; v++) wv[v] = _mm512_loadu_ps(wp + 16 * v);                 \
            _Pragma("GCC unroll 32") for (int r = 0; r < RB; r++)                                                      \
            {                                                                                                          \
                const __m512 xv = _mm512_set1_ps(xp[r]);                                                               \
                _Pragma("GCC unroll 4") for (int v = 0; v < OV; v++) acc[r][v] =                                       \
                    _mm512_fmadd_ps(wv[v], xv, acc[r][v]);                                                             \
            }                                                                                                          \
        }                                                                                                              \
        _Pragma("GCC unroll 32") for (int r = 0; r < RB; r++)                                                          \
            _Pragma("GCC unroll 4") for (int v = 0; v < OV; v++) _mm512_storeu_ps(yt + r * ldy + 16 * v, acc[r][v]);  \
    }

typedef void (*blk_fn)(const float *, const float *, const int *, long, long, const float *, float *, long);

#define RB_LIST_7(OV, X) X(OV, 1) X(OV, 2) X(OV, 3) X(OV, 4) X(OV, 5) X(OV, 6) X(OV, 7)
#define RB_LIST_9(OV, X) RB_LIST_7(OV, X) X(OV, 8) X(OV, 9)
#define RB_LIST_14(OV, X) RB_LIST_9(OV, X) X(OV, 10) X(OV, 11) X(OV, 12) X(OV, 13) X(OV, 14)
#define RB_LIST_28(OV, X)                                                                                              \
    RB_LIST_14(OV, X) X(OV, 15) X(OV, 16) X(OV, 17) X(OV, 18) X(OV, 19) X(OV, 20) X(OV, 21) X(OV, 22) X(OV, 23)        \
        X(OV, 24) X(OV, 25) X(OV, 26) X(OV, 27) X(OV, 28)

#define DEF_ONE(OV, RB) DEF_BLOCK(OV, RB)
RB_LIST_28(1, DEF_ONE)
RB_LIST_14(2, DEF_ONE)
RB_LIST_9(3, DEF_ONE)
RB_LIST_7(4, DEF_ONE)
#undef DEF_ONE

#define FN_ONE(OV, RB) [RB] = blk_##OV##_##RB,
static const blk_fn blk_table[5][RB_MAX + 1] = {
    [1] = {RB_LIST_28(1, FN_ONE)},
    [2] = {RB_LIST_14(2, FN_ONE)},
    [3] = {RB_LIST_9(3, FN_ONE)},
    [4] = {RB_LIST_7(4, FN_ONE)},
};
#undef FN_ONE
static const int rb_max[5] = {0, 28, 14, 9, 7};

/* One channel vector (Co == 16), stride 1, kw == 3: blk_1_RB needs a broadcast
 * per FMA and is load-bound (2 loads/cycle). Here each input pixel of a
 * kernel row is broadcast once and feeds the three outputs it reaches: per
 * (ci, i), 3 weight loads and RB + 2 broadcasts for 3*RB FMAs. Each
 * accumulator still sums over k in order, as blk_1_RB does. */
#define DEF_ROW3(RB)                                                                                                   \
    static DP_DIRECT_TARGET void row3_##RB(const float *xb, const float *wt, const int *koff, long K, long ldw,        \
                                           const float *bias, float *yt, long ldy)                                     \
    {                                                                                                                  \
        __m512 acc[RB];                                                                                                \
        _Pragma("GCC unroll 32") for (int r = 0; r < RB; r++) acc[r] =                                                 \
            bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();                                                        \
        for (long k = 0; k < K; k += 3) {                                                                              \
            const float *xp = xb + koff[k], *wp = wt + k * ldw;                                                        \
            const __m512 w0 = _mm512_loadu_ps(wp), w1 = _mm512_loadu_ps(wp + ldw);                                    \
            const __m512 w2 = _mm512_loadu_ps(wp + 2 * ldw);                                                           \
            _Pragma("GCC unroll 32") for (int q = 0; q < RB + 2; q++)                                                  \
            {                                                                                                          \
                const __m512 xv = _mm512_set1_ps(xp[q]);                                                               \
                if (q < RB) acc[q] = _mm512_fmadd_ps(w0, xv, acc[q]);                                                  \
                if (q >= 1 && q - 1 < RB) acc[q - 1] = _mm512_fmadd_ps(w1, xv, acc[q - 1]);                           \
                if (q >= 2) acc[q - 2] = _mm512_fmadd_ps(w2, xv, acc[q - 2]);                                          \
            }                                                                                                          \
        }                                                                                                              \
        _Pragma("GCC unroll 32") for (int r = 0; r < RB; r++) _mm512_storeu_ps(yt + r * ldy, acc[r]);                  \
    }

#define ROW3_MAX 24
#define ROW3_LIST(X)                                                                                                   \
    X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20)   \
        X(21) X(22) X(23) X(24)
ROW3_LIST(DEF_ROW3)
#define FN_ROW3(RB) [RB] = row3_##RB,
static const blk_fn row3_table[ROW3_MAX + 1] = {ROW3_LIST(FN_ROW3)};
#undef FN_ROW3

/* ---- the passes around it ---- */

/* koff[k]: offset of tap k = (ci*kh + i)*kw + j in xpad from the block's base. */
static void fill_koff(int *koff, const dconv *d)
{
    const long row = (long)d->s * d->Wq;
    for (int ci = 0; ci < d->Ci; ci++)
        for (int i = 0; i < d->kh; i++)
            for (int j = 0; j < d->kw; j++)
                koff[((long)ci * d->kh + i) * d->kw + j] =
                    (int)(ci * d->plane + i * row + (long)(j % d->s) * d->Wq + j / d->s);
}

/* The interior of xpad <- one image in [Ci][Hi][Wi] (conv_direct_util.c). */
static void fill_xpad(float *xpad, const float *x, const dconv *d)
{
    const dp_xpad p = {.C = d->Ci, .H = d->Hi, .W = d->Wi, .ph = d->ph, .pw = d->pw, .Hp = d->Hp,
                       .Wp = (d->Wo - 1) * d->s + d->kw, .s = d->s, .Wq = d->Wq, .plane = d->plane};
    dp_direct_fill_xpad(xpad, x, &p);
}

/* out [Co][P] (=, or += when add) <- Yt [P][Co] (Yt has rows up to P rounded to 16). */
static DP_DIRECT_TARGET void untranspose(float *out, const float *yt, long P, int Co, int add)
{
    for (long p0 = 0; p0 < P; p0 += 16) {
        const int np = P - p0 < 16 ? (int)(P - p0) : 16;
        const __mmask16 m = (__mmask16)((1u << np) - 1);
        for (int o0 = 0; o0 < Co; o0 += 16) {
            __m512 r[16];
            for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(yt + (p0 + i) * Co + o0);
            dp_direct_transpose16(r);
            for (int i = 0; i < 16; i++) {
                float *dst = out + (long)(o0 + i) * P + p0;
                __m512 v = r[i];
                if (add) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, dst));
                _mm512_mask_storeu_ps(dst, m, v);
            }
        }
    }
}

/* Output channels in blocks of at most 4 vectors, as even as possible; per
 * block, each output row in blocks of RB pixels (the last one overlapping). */
static DP_DIRECT_TARGET void run_image(const dconv *d, const float *xpad, const float *wt, const int *koff,
                                    const float *bias, float *yt)
{
    const int nv = d->Co / 16;
    const long rowstep = (long)d->s * d->s * d->Wq; /* xpad floats between output rows */
    for (int v0 = 0, nb = (nv + 3) / 4; v0 < nv; nb--) {
        const int ov = (nv - v0 + nb - 1) / nb, o0 = 16 * v0;
        const int row3 = ov == 1 && d->s == 1 && d->kw == 3, rbm = row3 ? ROW3_MAX : rb_max[ov];
        const int nrb = (d->Wo + rbm - 1) / rbm, rb = (d->Wo + nrb - 1) / nrb;
        const blk_fn f = row3 ? row3_table[rb] : blk_table[ov][rb];
        for (int oh = 0; oh < d->Ho; oh++)
            for (int b = 0; b < nrb; b++) {
                const int ow0 = b * rb + rb <= d->Wo ? b * rb : d->Wo - rb;
                f(xpad + oh * rowstep + ow0, wt + o0, koff, d->K, d->Co, bias ? bias + o0 : NULL,
                  yt + ((long)oh * d->Wo + ow0) * d->Co + o0, d->Co);
            }
        v0 += ov;
    }
}

/* Every image: out_n (= or +=) conv(in_n); wt/koff already filled in scratch. */
static DP_DIRECT_TARGET void run_batch(const dconv *d, int N, float *out, const float *in, const float *bias, int add,
                                    float *scratch)
{
    const float *wt = scratch;
    const int *koff = (const int *)(scratch + dp_direct_up16(d->K * d->Co));
    float *xpad = scratch + dp_direct_up16(d->K * d->Co) + dp_direct_up16(d->K);
    float *yt = xpad + dp_direct_up16(d->Ci * d->plane + 16);
    memset(xpad, 0, (size_t)dp_direct_up16(d->Ci * d->plane + 16) * sizeof(float));
    memset(yt + d->P * d->Co, 0, (size_t)(dp_direct_up16(d->P) - d->P) * d->Co * sizeof(float)); /* rows read by the last transpose */
    const long in_sz = (long)d->Ci * d->Hi * d->Wi, out_sz = (long)d->Co * d->P;
    for (int n = 0; n < N; n++) {
        fill_xpad(xpad, in + n * in_sz, d);
        run_image(d, xpad, wt, koff, bias, yt);
        untranspose(out + n * out_sz, yt, d->P, d->Co, add);
    }
}

/* ---- forward ---- */

static dconv fwd_dconv(const dp_conv_geom *g)
{
    return dconv_make(g->C, g->H, g->W, g->O, g->Ho, g->Wo, g->kh, g->kw, g->stride, g->pad, g->pad);
}

static int sane_geom(const dp_conv_geom *g)
{
    return g->groups == 1 && g->dil == 1 && g->Ho >= 1 && g->Wo >= 1 && g->kh * g->kw <= 121 && g->stride <= 4 &&
           g->pad <= 8;
}

int dp_direct_fits_forward(const dp_conv_geom *g)
{
    if (!sane_geom(g) || g->O % 16 || g->kh * g->kw == 1 || g->K <= 12) return 0;
    const dconv d = fwd_dconv(g);
    return d.Ci * d.plane < (1L << 30) && d.K * d.Co < (1L << 28);
}

size_t dp_direct_forward_scratch(const dp_conv_geom *g)
{
    const dconv d = fwd_dconv(g);
    return dconv_scratch(&d);
}

DP_DIRECT_TARGET void dp_direct_forward(float *y, const float *x, const float *w, const float *b, const dp_conv_geom *g,
                                     float *scratch)
{
    const dconv d = fwd_dconv(g);
    float *wt = scratch;
    for (long k = 0; k < d.K; k++) /* wt[k][o] = w[o][k] */
        for (int o = 0; o < d.Co; o++) wt[k * d.Co + o] = w[(long)o * d.K + k];
    fill_koff((int *)(scratch + dp_direct_up16(d.K * d.Co)), &d);
    run_batch(&d, g->N, y, x, b, 0, scratch);
}

/* ---- input gradient: the forward on dy, per phase of dx ----
 *
 * dx[c][h][w] = sum_{o,i,j} w[o][c][i][j] dy[o][oh][ow], h = oh*s - pad + i.
 * Split dx by phase (a, b) = ((h + pad) % s, (w + pad) % s): with h = m*s + a
 * - pad, only rows i = a + s*t contribute, from oh = m - t. Over the phase's
 * rows m' = m - m0 that is a stride-1 convolution of dy with the T x U
 * sub-kernel flipped, w'[c][o][t'][u'] = w[o][c][a + s(T-1-t')][b + s(U-1-u')],
 * and padding T-1-m0 (negative: dy's first rows are cropped). Stride 1 has the
 * one phase (0, 0): padding kh-1-pad, the output is dx itself. */

typedef struct dx_phase {
    dconv d;
    int m0, n0;            /* first phase row / column; dx cell (m0+m')*s + a - pad */
    int a, b;
    long wt, koff, xpad;   /* offsets in scratch (floats) */
} dx_phase;

#define DX_MAX_PHASES 16

/* First index m >= 0 with m*s + a - pad >= 0, and how many with it < n. */
static void phase_range(int a, int s, int pad, int n, int *m0, int *cnt)
{
    *m0 = pad > a ? (pad - a + s - 1) / s : 0;
    const int last = n - 1 + pad - a; /* m*s <= last */
    *cnt = last < 0 ? 0 : last / s - *m0 + 1;
    if (*cnt < 0) *cnt = 0;
}

/* The phases that receive gradient, with their scratch offsets; returns how
 * many, and the scratch floats in all (phases, then Yt, then a phase plane). */
static int dx_phases(const dp_conv_geom *g, dx_phase *ph, long *total)
{
    const int s = g->stride;
    int np = 0;
    long off = 0, maxP = 0;
    for (int a = 0; a < s; a++)
        for (int b = 0; b < s; b++) {
            const int T = (g->kh - a + s - 1) / s, U = (g->kw - b + s - 1) / s;
            int m0, hn, n0, wn;
            phase_range(a, s, g->pad, g->H, &m0, &hn);
            phase_range(b, s, g->pad, g->W, &n0, &wn);
            if (T <= 0 || U <= 0 || hn <= 0 || wn <= 0) continue;
            dx_phase *q = &ph[np++];
            q->d = dconv_make(g->O, g->Ho, g->Wo, g->C, hn, wn, T, U, 1, T - 1 - m0, U - 1 - n0);
            q->m0 = m0, q->n0 = n0, q->a = a, q->b = b;
            q->wt = off;
            off += dp_direct_up16(q->d.K * q->d.Co);
            q->koff = off;
            off += dp_direct_up16(q->d.K);
            q->xpad = off;
            off += dp_direct_up16(q->d.Ci * q->d.plane + 16);
            if (q->d.P > maxP) maxP = q->d.P;
        }
    *total = off + dp_direct_up16(maxP) * g->C + (s > 1 ? maxP * g->C : 0);
    return np;
}

int dp_direct_fits_dx(const dp_conv_geom *g)
{
    if (!sane_geom(g) || g->C % 16 || g->kh * g->kw == 1 || (long)g->O * g->kh * g->kw <= 12) return 0;
    dx_phase ph[DX_MAX_PHASES];
    long total;
    const int np = dx_phases(g, ph, &total);
    for (int i = 0; i < np; i++)
        if (ph[i].d.Ci * ph[i].d.plane >= (1L << 30)) return 0;
    return total < (1L << 30);
}

size_t dp_direct_dx_scratch(const dp_conv_geom *g)
{
    dx_phase ph[DX_MAX_PHASES];
    long total;
    dx_phases(g, ph, &total);
    return (size_t)total * sizeof(float);
}

/* Phase q's flipped sub-kernel, transposed: wt[(o*T + t')*U + u'][c]. */
static void dx_weights(float *wt, const float *w, const dp_conv_geom *g, const dx_phase *q)
{
    const int T = q->d.kh, U = q->d.kw, s = g->stride;
    for (int o = 0; o < g->O; o++)
        for (int t = 0; t < T; t++)
            for (int u = 0; u < U; u++) {
                const int i = q->a + s * (T - 1 - t), j = q->b + s * (U - 1 - u);
                float *row = wt + (((long)o * T + t) * U + u) * g->C;
                for (int c = 0; c < g->C; c++) row[c] = w[(((long)o * g->C + c) * g->kh + i) * g->kw + j];
            }
}

/* dx_n += the phase plane pl [C][hn][wn] at rows (m0+m')*s + a - pad, columns likewise. */
static void dx_scatter_add(float *dxn, const float *pl, const dp_conv_geom *g, const dx_phase *q)
{
    const int s = g->stride, hn = q->d.Ho, wn = q->d.Wo;
    for (int c = 0; c < g->C; c++)
        for (int m = 0; m < hn; m++) {
            const float *src = pl + ((long)c * hn + m) * wn;
            float *dst = dxn + ((long)c * g->H + (long)(q->m0 + m) * s + q->a - g->pad) * g->W + q->n0 * s + q->b - g->pad;
            for (int n = 0; n < wn; n++) dst[(long)n * s] += src[n];
        }
}

DP_DIRECT_TARGET void dp_direct_dx(float *dx, const float *dy, const float *w, const dp_conv_geom *g, float *scratch)
{
    dx_phase ph[DX_MAX_PHASES];
    long total;
    const int np = dx_phases(g, ph, &total);
    long maxP = 0;
    for (int i = 0; i < np; i++) {
        const dx_phase *q = &ph[i];
        dx_weights(scratch + q->wt, w, g, q);
        fill_koff((int *)(scratch + q->koff), &q->d);
        memset(scratch + q->xpad, 0, (size_t)dp_direct_up16(q->d.Ci * q->d.plane + 16) * sizeof(float));
        if (q->d.P > maxP) maxP = q->d.P;
    }
    float *yt = scratch + (total - dp_direct_up16(maxP) * g->C - (g->stride > 1 ? maxP * g->C : 0));
    float *plane = yt + dp_direct_up16(maxP) * g->C;
    memset(yt, 0, (size_t)dp_direct_up16(maxP) * g->C * sizeof(float)); /* rows past P are read by the last transpose */
    const long dx_sz = (long)g->C * g->H * g->W, dy_sz = (long)g->O * g->P;
    for (int n = 0; n < g->N; n++)
        for (int i = 0; i < np; i++) {
            const dx_phase *q = &ph[i];
            float *xpad = scratch + q->xpad;
            fill_xpad(xpad, dy + n * dy_sz, &q->d);
            run_image(&q->d, xpad, scratch + q->wt, (const int *)(scratch + q->koff), NULL, yt);
            if (g->stride == 1) {
                untranspose(dx + n * dx_sz, yt, q->d.P, g->C, 1);
                continue;
            }
            untranspose(plane, yt, q->d.P, g->C, 0);
            dx_scatter_add(dx + n * dx_sz, plane, g, q);
        }
}

#else /* not x86-64 GCC/Clang: the GEMM path does everything */

int dp_direct_available(void) { return 0; }
int dp_direct_fits_forward(const dp_conv_geom *g) { return (void)g, 0; }
int dp_direct_fits_dx(const dp_conv_geom *g) { return (void)g, 0; }
size_t dp_direct_forward_scratch(const dp_conv_geom *g) { return (void)g, 0; }
size_t dp_direct_dx_scratch(const dp_conv_geom *g) { return (void)g, 0; }
void dp_direct_forward(float *y, const float *x, const float *w, const float *b, const dp_conv_geom *g, float *scratch)
{
    (void)y, (void)x, (void)w, (void)b, (void)g, (void)scratch;
}
void dp_direct_dx(float *dx, const float *dy, const float *w, const dp_conv_geom *g, float *scratch)
{
    (void)dx, (void)dy, (void)w, (void)g, (void)scratch;
}

#endif
