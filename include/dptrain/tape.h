/* What an op written outside core needs (a model's own op, such as
 * drop-path or the DSI model's fused encoder): record a tape node with its
 * backward, reach gradient buffers and arena scratch, report a failure. The
 * tape's walk and the gradient pool stay private to core (src/core/tape.h). */
#ifndef DPTRAIN_TAPE_H
#define DPTRAIN_TAPE_H

#include "dptrain/ops.h"
#include "dptrain/tensor.h"

/*! Pushes a node for `out` if grad is enabled and any input requires grad;
 *  marks out->requires_grad. @return the node (caller fills ip/fp/saved) or
 *  NULL when no gradient is wanted (or on error: check c->status). */
dp_node *dp_tape_push(dp_ctx *c, dp_backward_fn fn, const char *name, dp_tensor *out,
                      int nin, dp_tensor **in);

/*! The gradient buffer of t, zero-filled from the gradient pool on first use
 *  (returned to it once t's producing node has run its backward); NULL if t
 *  needs no gradient. */
float *dp_grad(dp_ctx *c, dp_tensor *t);

/*! Arena scratch memory for a kernel (valid until the context is reset). */
void *dp_scratch(dp_ctx *c, size_t bytes);

/*! Records the first error of the pass and returns NULL (for `return dp_fail(...)`). */
dp_tensor *dp_fail(dp_ctx *c, dp_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*! Shape check helper: fails unless t has ndim dims. */
int dp_check_ndim(dp_ctx *c, const char *op, const dp_tensor *t, int ndim);

/*! Input n of a node (in[] for the first three, else ins[]). */
static inline dp_tensor *dp_node_in(const dp_node *nd, int i) { return nd->ins ? nd->ins[i] : nd->in[i]; }

#endif
