/* Weight gradient of a convolution (groups 1, dilation 1) on AVX-512F; see
 * conv_direct.h for the interface and why sgemm is not used.
 *
 *   dw [O, C, kh, kw] += sum_n sum_p dy[n, o, p] * x[n, c, oh*s + ki - pad, ow*s + kj - pad]
 *   db [O]            += sum_n sum_p dy[n, o, p]
 *
 * The reduction runs over the pixels p, so the register block has to be made
 * of outputs of dw: 16-lane vectors over o, times taps. Per image:
 *
 *   dyt  [P][O]         dy_n transposed (16x16 tiles in registers), so one
 *                       pixel's 16 output channels are one vector load; db
 *                       is summed from the same tiles;
 *   xpad [C][Hp][Wp]    x_n with a zero border, so every tap reads memory and
 *                       no pixel needs a bounds test (works for any stride);
 *                       the border is zeroed once per call, the interior
 *                       copied per image.
 *
 * A "segment" is KW consecutive taps (c, ki, kj0 .. kj0+KW-1) of one kernel
 * row: for pixel (oh, ow) its inputs are KW consecutive floats of xpad. A
 * block is R segments x OV vectors of o; its R*KW*OV accumulators (24 when
 * KW is 3) stay in zmm registers over all P pixels of the image. Per pixel:
 * OV vector loads of dyt[p], R*KW broadcasts of xpad, R*KW*OV FMAs. The block
 * is then added into dwt [seg][KW][O] (scratch), which is transposed into dw
 * after the last image.
 *
 *   kw == 1: KW 1;  otherwise KW 3 (a 5-wide row is two segments, the sixth
 *   tap reads a neighbour cell and its sum is dropped).
 *   OV 4 if O % 64 == 0, 2 if O % 32 == 0, else 1; R = 24 / (KW*OV) (at most
 *   8: each segment keeps a row pointer in a general register).
 * The segment list (C*kh*ceil(kw/KW) long) is cut into blocks of R; the last
 * block's missing segments read segment 0 and are not stored.
 *
 * Per pixel there are OV + R*KW loads (the broadcasts are 4-byte loads) for
 * R*KW*OV FMAs: below the FMAs' issue time on a core with 2 FMA and 2 load
 * ports when OV >= 2. With OV = 1 (O = 16, 48, ...) that is one load per FMA,
 * so 3-wide stride-1 rows go two pixels at a time, sharing the cells that
 * both windows read (pixel_pair: KW + 1 broadcasts per segment for 2*KW FMAs;
 * +10-20% on the 16-channel layer). 24 independent accumulators cover the FMA
 * latency.
 *
 * Each image's dyt and xpad (up to ~110 KB for ResNet-20's layers) are reread
 * once per block from L1/L2; meanwhile the next image's x and dy are
 * prefetched, a few lines per pixel row (the batch streams from L3/DRAM:
 * without it the copy and transpose took 15-30% of the time at batch 64, on a
 * loaded host).
 * The scratch parts are 64-byte multiples, so an aligned scratch (the arena's)
 * gives aligned vectors; unaligned loads and stores keep any other one working. */
#include "core/conv_direct.h"

#include <stdint.h>
#include <string.h>

#include "core/conv_direct_util.h"

/* Scratch layout, in floats (each part a multiple of 16: 64-byte aligned). */
typedef struct dw_plan {
    int KW, OV, R;    /* taps per segment, o-vectors per block, segments per block */
    int nsegw;        /* segments per kernel row */
    long nseg;        /* C * kh * nsegw */
    long nblk;        /* blocks: ceil(nseg / R) */
    long Hp, Wp;      /* padded input plane */
    dp_xpad xp;       /* its layout for dp_direct_fill_xpad: [C][Hp][Wp], x at (pad, pad) */
    long n_dyt, n_xpad, n_dwt, n_dbt, n_segs; /* n_segs: the segment pointer table, nblk * R pointers */
} dw_plan;

static void dw_plan_init(dw_plan *pl, const dp_conv_geom *g)
{
    pl->KW = g->kw == 1 ? 1 : 3;
    pl->OV = g->O % 64 == 0 ? 4 : g->O % 32 == 0 ? 2 : 1;
    pl->R = 24 / (pl->KW * pl->OV);
    if (pl->R > 8) pl->R = 8;
    pl->nsegw = (g->kw + pl->KW - 1) / pl->KW;
    pl->nseg = (long)g->C * g->kh * pl->nsegw;
    pl->nblk = (pl->nseg + pl->R - 1) / pl->R;
    /* Ho/Wo as given decide which cells are read; the plane holds them all */
    const long hneed = (long)(g->Ho - 1) * g->stride + g->kh, wneed = (long)(g->Wo - 1) * g->stride + g->kw;
    pl->Hp = g->H + 2L * g->pad > hneed ? g->H + 2L * g->pad : hneed;
    pl->Wp = g->W + 2L * g->pad > wneed ? g->W + 2L * g->pad : wneed;
    pl->xp = (dp_xpad){.C = g->C, .H = g->H, .W = g->W, .ph = g->pad, .pw = g->pad, .Hp = (int)pl->Hp,
                       .Wp = (int)pl->Wp, .s = 1, .Wq = (int)pl->Wp, .plane = pl->Hp * pl->Wp};
    pl->n_dyt = g->P * g->O;
    pl->n_xpad = dp_direct_up16(g->C * pl->Hp * pl->Wp + 16); /* + 16: a dropped tap may read past the last row */
    pl->n_dwt = pl->nseg * pl->KW * g->O;
    pl->n_dbt = dp_direct_up16(g->O);
    /* + 8 bytes: the table is aligned up for the pointers, whatever the scratch's alignment */
    pl->n_segs = dp_direct_up16(((long)sizeof(const float *) * pl->nblk * pl->R + 8) / (long)sizeof(float));
}

size_t dp_direct_dw_scratch(const dp_conv_geom *g)
{
    dw_plan pl;
    dw_plan_init(&pl, g);
    return (size_t)(pl.n_dyt + pl.n_xpad + pl.n_dwt + pl.n_dbt + pl.n_segs) * sizeof(float);
}

#if defined(__x86_64__) && defined(__GNUC__)


int dp_direct_fits_dw(const dp_conv_geom *g)
{
    /* C*kh*kw <= 12 belongs to conv_smallk.c (K in registers, pixels in lanes) */
    return dp_direct_cpu_ok() && g->groups == 1 && g->dil == 1 && g->O > 0 && g->O % 16 == 0 && g->C > 0 &&
           g->kh > 0 && g->kw > 0 && (long)g->C * g->kh * g->kw > 12 && g->stride > 0 && g->pad >= 0 &&
           g->Ho > 0 && g->Wo > 0 && g->P == (long)g->Ho * g->Wo;
}

/* dyt [P][O] <- dy_n [O][P]; dbt [O] += its row sums when dbt != NULL. The
 * last pixel tile is loaded masked (zeros beyond P), so it adds nothing to dbt. */
DP_DIRECT_TARGET static void transpose_dy(float *dyt, float *dbt, const float *dyn, int O, long P)
{
    for (int o0 = 0; o0 < O; o0 += 16) {
        __m512 sum = _mm512_setzero_ps();
        for (long p0 = 0; p0 < P; p0 += 16) {
            const long np = P - p0 < 16 ? P - p0 : 16;
            const __mmask16 m = (__mmask16)((1u << np) - 1);
            __m512 r[16];
            for (int i = 0; i < 16; i++) r[i] = _mm512_maskz_loadu_ps(m, dyn + (long)(o0 + i) * P + p0);
            dp_direct_transpose16(r);
            for (long j = 0; j < np; j++) _mm512_storeu_ps(dyt + (p0 + j) * O + o0, r[j]);
            for (int j = 0; j < 16; j++) sum = _mm512_add_ps(sum, r[j]);
        }
        if (dbt) _mm512_storeu_ps(dbt + o0, _mm512_add_ps(_mm512_loadu_ps(dbt + o0), sum));
    }
}

/* The next image's x and dy (streams 0 and 1, in cache lines) that one block
 * pulls toward L2: lines [next, end) of each, per_row of them after each
 * pixel row. Spread over all blocks and rows, the copy and transpose of the
 * next image find their data in L2 instead of waiting on L3/DRAM (nothing else
 * prefetches across images); issued in one burst per block they stalled the
 * block as long as they saved. */
typedef struct dw_prefetch {
    const char *base[2];
    long next[2], end[2], per_row[2];
} dw_prefetch;

static void prefetch_share(dw_prefetch *pf, int k, const void *base, size_t bytes, long part, long nparts, int rows)
{
    const long lines = (long)((bytes + 63) / 64);
    pf->base[k] = base;
    pf->next[k] = lines * part / nparts;
    pf->end[k] = lines * (part + 1) / nparts;
    pf->per_row[k] = (pf->end[k] - pf->next[k] + rows - 1) / rows;
}

static inline __attribute__((always_inline)) void prefetch_row(dw_prefetch *pf)
{
    for (int k = 0; k < 2; k++) {
        const long e = pf->next[k] + pf->per_row[k] < pf->end[k] ? pf->next[k] + pf->per_row[k] : pf->end[k];
        for (long i = pf->next[k]; i < e; i++) __builtin_prefetch(pf->base[k] + 64 * i, 0, 2);
        pf->next[k] = e;
    }
}

/* Predictive commoning would carry pixel_pair's broadcasts from one pair to the
 * next (the pair's last cell is the next pair's first) in ~20 more registers,
 * which spills the accumulators. The pragma is GCC's; clang (only the fuzz
 * build uses it) leaves this kernel's accumulators in memory anyway. */
#if !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-predictive-commoning")
#endif

/* One pixel: OV vectors of dyt[p] times each tap's input cell (a broadcast). */
DP_DIRECT_INLINE void pixel(const int KW, const int OV, const int R, __m512 *acc, const float *const *rp, long q,
                     const float *dp)
{
    __m512 d[4];
#pragma GCC unroll 4
    for (int v = 0; v < OV; v++) d[v] = _mm512_loadu_ps(dp + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int t = 0; t < KW; t++) {
            const __m512 xb = _mm512_set1_ps(rp[r][q + t]);
#pragma GCC unroll 4
            for (int v = 0; v < OV; v++)
                acc[(r * KW + t) * OV + v] = _mm512_fmadd_ps(d[v], xb, acc[(r * KW + t) * OV + v]);
        }
}

/* Two neighbouring pixels at stride 1: tap t of the second reads the cell of
 * tap t + 1 of the first, so a segment needs KW + 1 broadcasts for both
 * instead of 2*KW. With OV = 1 the broadcasts are most of the loads (one per
 * FMA), and this takes them below the FMAs. */
DP_DIRECT_INLINE void pixel_pair(const int KW, const int OV, const int R, __m512 *acc, const float *const *rp, long q,
                          const float *dp, int O)
{
    __m512 d0[4], d1[4];
#pragma GCC unroll 4
    for (int v = 0; v < OV; v++) d0[v] = _mm512_loadu_ps(dp + 16 * v), d1[v] = _mm512_loadu_ps(dp + O + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        __m512 cur = _mm512_set1_ps(rp[r][q]);
#pragma GCC unroll 3
        for (int t = 0; t < KW; t++) {
            const __m512 next = _mm512_set1_ps(rp[r][q + t + 1]);
#pragma GCC unroll 4
            for (int v = 0; v < OV; v++) {
                __m512 *a = &acc[(r * KW + t) * OV + v];
                *a = _mm512_fmadd_ps(d1[v], next, _mm512_fmadd_ps(d0[v], cur, *a));
            }
            cur = next;
        }
    }
}

/* The pixel loop of one block: R segments (row pointers seg[r] into xpad) x
 * KW taps x OV o-vectors (dyt columns from dyo on, row stride O). Adds the
 * first nvalid segments' sums into dwt [seg][KW][O] (at this block's first
 * segment and o-vector). KW, OV, R, PAIRS are constants at each call site, so
 * the loops unroll and acc stays in registers. PAIRS: take stride-1 rows two
 * pixels at a time (pixel_pair). */
DP_DIRECT_INLINE void dw_block(const int KW, const int OV, const int R, const int PAIRS, float *dwt, const float *dyo,
                        const float *const *seg, int nvalid, const dp_conv_geom *g, long Wp, dw_prefetch *pf)
{
    __m512 acc[24];
    const float *rp[8];
#pragma GCC unroll 24
    for (int i = 0; i < R * KW * OV; i++) acc[i] = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) rp[r] = seg[r];
    const int O = g->O, s = g->stride, Wo = g->Wo;
    const float *dp = dyo;
    for (int oh = 0; oh < g->Ho; oh++) {
        long q = oh * s * Wp; /* offset of pixel (oh, ow)'s window in every segment's plane */
        int ow = 0;
        if (PAIRS && s == 1)
            for (; ow + 2 <= Wo; ow += 2, q += 2, dp += 2 * O) pixel_pair(KW, OV, R, acc, rp, q, dp, O);
        for (; ow < Wo; ow++, q += s, dp += O) pixel(KW, OV, R, acc, rp, q, dp);
        prefetch_row(pf);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        if (r >= nvalid) break;
#pragma GCC unroll 3
        for (int t = 0; t < KW; t++)
#pragma GCC unroll 4
            for (int v = 0; v < OV; v++) {
                float *o = dwt + (long)(r * KW + t) * O + 16 * v;
                _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), acc[(r * KW + t) * OV + v]));
            }
    }
}

/* One instantiation per (KW, OV); R follows from them (see the header comment). */
typedef void dw_block_fn(float *dwt, const float *dyo, const float *const *seg, int nvalid, const dp_conv_geom *g,
                         long Wp, dw_prefetch *pf);
#define DW_BLOCK_FN(kw_, ov_, r_, pairs_)                                                                              \
    DP_DIRECT_TARGET static void dw_block_##kw_##_##ov_(float *dwt, const float *dyo, const float *const *seg,         \
                                                        int nvalid, const dp_conv_geom *g, long Wp, dw_prefetch *pf)   \
    {                                                                                                                  \
        dw_block(kw_, ov_, r_, pairs_, dwt, dyo, seg, nvalid, g, Wp, pf);                                              \
    }
DW_BLOCK_FN(3, 1, 8, 1)
DW_BLOCK_FN(3, 2, 4, 0)
DW_BLOCK_FN(3, 4, 2, 0)
DW_BLOCK_FN(1, 1, 8, 0)
DW_BLOCK_FN(1, 2, 8, 0)
DW_BLOCK_FN(1, 4, 6, 0)
#undef DW_BLOCK_FN
#if !defined(__clang__)
#pragma GCC pop_options
#endif

static dw_block_fn *block_fn(const dw_plan *pl)
{
    if (pl->KW == 3) return pl->OV == 4 ? dw_block_3_4 : pl->OV == 2 ? dw_block_3_2 : dw_block_3_1;
    return pl->OV == 4 ? dw_block_1_4 : pl->OV == 2 ? dw_block_1_2 : dw_block_1_1;
}

/* segs [nblk * R] <- each segment's first tap for pixel (0, 0) in xpad, in
 * dwt's order (c, ki, kj / KW); the last block's missing segments read
 * segment 0 (their sums are not stored). Built once per call: the blocks of
 * the 7x7 layers are short enough for the index arithmetic to show. */
static void fill_segments(const float **segs, const float *xpad, const dp_conv_geom *g, const dw_plan *pl)
{
    long i = 0;
    for (int c = 0; c < g->C; c++)
        for (int ki = 0; ki < g->kh; ki++)
            for (int sj = 0; sj < pl->nsegw; sj++)
                segs[i++] = xpad + c * pl->Hp * pl->Wp + ki * pl->Wp + sj * pl->KW;
    for (; i < pl->nblk * pl->R; i++) segs[i] = xpad;
}

/* dw [o][c][ki][kj] += dwt [seg(c, ki, kj / KW)][kj % KW][o]. */
static void add_transposed(float *dw, const float *dwt, const dp_conv_geom *g, const dw_plan *pl)
{
    const int O = g->O, kk = g->kh * g->kw;
    for (int c = 0; c < g->C; c++)
        for (int ki = 0; ki < g->kh; ki++)
            for (int kj = 0; kj < g->kw; kj++) {
                const float *src = dwt + (((long)c * g->kh + ki) * pl->nsegw * pl->KW + kj) * O;
                float *dst = dw + ((long)c * g->kh + ki) * g->kw + kj;
                for (int o = 0; o < O; o++) dst[(long)o * g->C * kk] += src[o];
            }
}

DP_DIRECT_TARGET void dp_direct_dw(float *dw, float *db, const float *dy, const float *x, const dp_conv_geom *g,
                            float *scratch)
{
    dw_plan pl;
    dw_plan_init(&pl, g);
    float *dyt = scratch, *xpad = dyt + pl.n_dyt, *dwt = xpad + pl.n_xpad, *dbt = dwt + pl.n_dwt;
    const float **segs = (const float **)(((uintptr_t)(dbt + pl.n_dbt) + 7) & ~(uintptr_t)7);
    memset(dwt, 0, (size_t)(pl.n_dwt + pl.n_dbt) * sizeof(float));
    memset(xpad, 0, (size_t)pl.n_xpad * sizeof(float));
    fill_segments(segs, xpad, g, &pl);
    dw_block_fn *fn = block_fn(&pl);
    const int ovw = 16 * pl.OV;
    const size_t xbytes = (size_t)((long)g->C * g->H * g->W) * sizeof(float);
    const size_t ybytes = (size_t)(g->O * g->P) * sizeof(float);
    for (int n = 0; n < g->N; n++) {
        const float *xn = x + (long)n * g->C * g->H * g->W, *dyn = dy + (long)n * g->O * g->P;
        transpose_dy(dyt, db ? dbt : NULL, dyn, g->O, g->P);
        dp_direct_fill_xpad(xpad, xn, &pl.xp);
        for (long b = 0; b < pl.nblk; b++) {
            const long i0 = b * pl.R;
            const int nvalid = pl.nseg - i0 < pl.R ? (int)(pl.nseg - i0) : pl.R;
            dw_prefetch pf = {.next = {0, 0}, .end = {0, 0}};
            if (n + 1 < g->N) { /* the first o-block's pass issues them all */
                prefetch_share(&pf, 0, xn + (long)g->C * g->H * g->W, xbytes, b, pl.nblk, g->Ho);
                prefetch_share(&pf, 1, dyn + (long)g->O * g->P, ybytes, b, pl.nblk, g->Ho);
            }
            for (int o0 = 0; o0 < g->O; o0 += ovw)
                fn(dwt + i0 * pl.KW * g->O + o0, dyt + o0, segs + i0, nvalid, g, pl.Wp, &pf);
        }
    }
    add_transposed(dw, dwt, g, &pl);
    if (db)
        for (int o = 0; o < g->O; o++) db[o] += dbt[o];
}

#else /* not x86-64 with GCC/Clang: the GEMM path handles every shape */

int dp_direct_fits_dw(const dp_conv_geom *g)
{
    (void)g;
    return 0;
}

void dp_direct_dw(float *dw, float *db, const float *dy, const float *x, const dp_conv_geom *g, float *scratch)
{
    (void)dw, (void)db, (void)dy, (void)x, (void)g, (void)scratch;
}

#endif
