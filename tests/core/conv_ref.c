/* The naive reference convolution of the direct kernels' tests (conv_ref.h). */
#include "conv_ref.h"

#include <math.h>
#include <string.h>

dp_conv_geom conv_ref_geom(int N, int C, int H, int W, int O, int kh, int kw, int stride, int pad)
{
    dp_conv_geom g = {.N = N, .C = C, .H = H, .W = W, .O = O, .kh = kh, .kw = kw, .stride = stride, .pad = pad,
                      .dil = 1, .groups = 1, .Cg = C, .Og = O};
    g.Ho = (H + 2 * pad - kh) / stride + 1;
    g.Wo = (W + 2 * pad - kw) / stride + 1;
    g.K = C * kh * kw;
    g.P = (long)g.Ho * g.Wo;
    return g;
}

static void zero(double *p, long n)
{
    if (p) memset(p, 0, (size_t)n * sizeof *p);
}

/* One pass over every (output cell, tap) pair: each sum runs in the order
 * n, o, oh, ow, c, i, j, whichever outputs are asked for. */
void conv_ref(const dp_conv_geom *g, const float *x, const float *w, const float *b, const float *dy,
              const conv_ref_out *out)
{
    const long nx = (long)g->N * g->C * g->H * g->W, nw = (long)g->O * g->C * g->kh * g->kw;
    zero(out->dx, nx), zero(out->dxm, nx), zero(out->dw, nw), zero(out->db, g->O);
    const int fwd = out->y || out->ym;
    for (int n = 0; n < g->N; n++)
        for (int o = 0; o < g->O; o++)
            for (int oh = 0; oh < g->Ho; oh++)
                for (int ow = 0; ow < g->Wo; ow++) {
                    const long yi = (((long)n * g->O + o) * g->Ho + oh) * g->Wo + ow;
                    const double d = dy ? dy[yi] : 0.0;
                    double s = b ? b[o] : 0.0, m = b ? fabs(b[o]) : 0.0;
                    if (out->db) out->db[o] += d;
                    for (int c = 0; c < g->C; c++)
                        for (int i = 0; i < g->kh; i++) {
                            const int ih = oh * g->stride - g->pad + i;
                            if (ih < 0 || ih >= g->H) continue;
                            for (int j = 0; j < g->kw; j++) {
                                const int iw = ow * g->stride - g->pad + j;
                                if (iw < 0 || iw >= g->W) continue;
                                const long xi = (((long)n * g->C + c) * g->H + ih) * g->W + iw;
                                const long wi = (((long)o * g->C + c) * g->kh + i) * g->kw + j;
                                const double wv = w ? w[wi] : 0.0;
                                if (fwd) s += wv * x[xi], m += fabs(wv * x[xi]);
                                if (out->dx) out->dx[xi] += wv * d;
                                if (out->dxm) out->dxm[xi] += fabs(wv * d);
                                if (out->dw) out->dw[wi] += d * x[xi];
                            }
                        }
                    if (out->y) out->y[yi] = s;
                    if (out->ym) out->ym[yi] = m;
                }
}
