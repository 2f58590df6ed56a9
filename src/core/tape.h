/* The core's own side of the tape: its walk and the gradient pool. What ops
 * outside core may use is dptrain/tape.h. Private to src/core. */
#ifndef DP_CORE_TAPE_H
#define DP_CORE_TAPE_H

#include "dptrain/ops.h"
#include "dptrain/tape.h"
#include "dptrain/tensor.h"

/*! Runs the backward of tp's nodes, newest first, each node whose output
 *  has a gradient; `hook` (may be NULL) after every node. */
dp_status dp_tape_walk(dp_ctx *c, const dp_tape *tp, dp_backward_hook hook);

/*! The gradient of t for a caller that writes every element: *fresh = 1 when
 *  the block was just made (its contents are undefined: assign, do not
 *  accumulate), 0 when it holds earlier contributions (accumulate). Saves the
 *  zeroing pass of dp_grad for the first writer. NULL where t needs no
 *  gradient or on failure (c->status says which). */
float *dp_grad_fresh(dp_ctx *c, dp_tensor *t, int *fresh);

/*! Hands nd's output gradient to t when t has no gradient yet, has as many
 *  elements, and nd's output owns its block: t's gradient is then the output's
 *  gradient, with no copy and no zeroing, and the output no longer has one
 *  (the walk does not return it to the pool). Returns 1 then, else 0 and
 *  changes nothing. Read nd->out->grad before calling; an op may then overwrite
 *  the block in place elementwise. */
int dp_grad_take(dp_node *nd, dp_tensor *t);

/* The gradient pool (gradpool.c). */
float *dp_gradpool_get(dp_gradpool *p, size_t bytes);
void dp_gradpool_put(dp_gradpool *p, float *g);
void dp_gradpool_reset(dp_gradpool *p);
void dp_gradpool_free(dp_gradpool *p);

/* sum x [n] with 8 independent partial sums, so that it vectorises without
 * -ffast-math (one float accumulator may not be reordered by the compiler);
 * the ops' reductions. */
static inline float dp_sum_lanes(const float *restrict x, long n)
{
    float p[8] = {0};
    long i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) p[k] += x[i + k];
    float s = 0.0f;
    for (; i < n; i++) s += x[i];
    for (int k = 0; k < 8; k++) s += p[k];
    return s;
}

#endif
