/* TEMPORARY STUB (branch conv-fwd): the weight-gradient kernel is written on
 * branch conv-dw; its conv_direct_dw.c replaces this file at the merge. Until
 * then no shape fits, so ops_conv.c keeps dW/db on the GEMM path. */
#include "core/conv_direct.h"

int dp_direct_fits_dw(const dp_conv_geom *g) { return (void)g, 0; }
size_t dp_direct_dw_scratch(const dp_conv_geom *g) { return (void)g, 0; }
void dp_direct_dw(float *dw, float *db, const float *dy, const float *x, const dp_conv_geom *g, float *scratch)
{
    (void)dw, (void)db, (void)dy, (void)x, (void)g, (void)scratch;
}
