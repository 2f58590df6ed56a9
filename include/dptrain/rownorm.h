/* Row L2 norms, shared by the l2norm op (autodiff) and the DSI model's
 * inference path (a frozen cosine head, beam search), so that training and
 * serving normalise with the same arithmetic: sums in double, eps floor. */
#ifndef DPTRAIN_ROWNORM_H
#define DPTRAIN_ROWNORM_H

/* 1 / max(|x|, eps) for the D floats of x */
float dp_row_inv_norm(const float *x, int D, float eps);
/* inv[r] = 1 / max(|x_r|, eps) for the rows x_r of a rows x D matrix */
void dp_row_inv_norms(float *inv, const float *x, long rows, int D, float eps);

#endif
