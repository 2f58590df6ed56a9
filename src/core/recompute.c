/* Recomputation (gradient checkpointing, Chen et al. 2016, "Training deep
 * nets with sublinear memory cost"). A segment's forward runs without the
 * tape and keeps only its output; the segment's one node, in backward, runs
 * the forward again on a tape of its own and walks that tape from the
 * output's gradient. So a backward pass holds the intermediates of one
 * segment at a time, for the price of a second forward.
 *
 * Exactness: both runs compute the same values (the ops are deterministic),
 * so the gradients are the bits a kept graph would give. Batch-norm updates
 * its running statistics in the first run only (c->replaying). */
#include <string.h>

#include "core/tape.h"

typedef struct segment {
    dp_segment_fn fn;
    void *user;
    dp_tensor **in;
} segment;

static void recompute_backward(dp_ctx *c, dp_node *nd)
{
    const segment *sg = nd->saved[0];
    dp_tape outer = c->tape;
    c->tape = c->replay_tape;
    c->tape.len = 0;
    const int grad = c->grad_enabled;
    c->grad_enabled = 1;
    c->replaying = 1;
    dp_tensor *y = sg->fn(c, sg->user, sg->in);
    c->replaying = 0;
    c->grad_enabled = grad;
    if (c->status == DP_OK && (!y || y->n != nd->out->n))
        dp_fail(c, DP_ERR_SHAPE, "recompute: the segment's second run gave %s", y ? "another shape" : "nothing");
    if (c->status == DP_OK && y->requires_grad) {
        /* the replayed output borrows the kept output's gradient (the outer walk returns it to the pool) */
        y->grad = nd->out->grad;
        y->grad_pooled = 0;
        dp_tape_walk(c, &c->tape, NULL);
        y->grad = NULL;
    }
    c->replay_tape = c->tape;
    c->tape = outer;
}

dp_tensor *dp_recompute(dp_ctx *c, dp_segment_fn fn, void *user, int nin, dp_tensor **in, int nparams,
                        dp_tensor **params)
{
    for (int i = 0; i < nin; i++)
        if (!in[i]) return NULL;
    if (c->status != DP_OK) return NULL;
    /* inside a replay the segment is simply part of the replayed graph */
    if (c->replaying) return fn(c, user, in);

    dp_arena_mark m = dp_arena_get_mark(&c->arena);
    const int grad = c->grad_enabled;
    c->grad_enabled = 0;
    dp_tensor *y = fn(c, user, in);
    c->grad_enabled = grad;
    if (!y) return c->status == DP_OK ? dp_fail(c, DP_ERR_ARG, "recompute: the segment gave no output") : NULL;
    const int ndim = y->ndim;
    int shape[DP_MAX_DIMS];
    memcpy(shape, y->shape, sizeof shape);
    const size_t bytes = (size_t)y->n * sizeof(float);
    /* the output outlives the segment's arena space: park it in the pool meanwhile */
    float *keep = dp_gradpool_get(&c->grads, bytes);
    if (!keep) return dp_fail(c, DP_ERR_NOMEM, "recompute: cannot keep a %zu-byte output", bytes);
    memcpy(keep, y->data, bytes);
    dp_arena_release(&c->arena, m);
    dp_tensor *out = dp_tensor_new(c, ndim, shape);
    if (out) memcpy(out->data, keep, bytes);
    dp_gradpool_put(&c->grads, keep);
    if (!out) return NULL;

    segment *sg = dp_scratch(c, sizeof *sg);
    dp_tensor **all = dp_scratch(c, (size_t)(nin + nparams) * sizeof *all);
    if (!sg || !all) return NULL;
    memcpy(all, in, (size_t)nin * sizeof *all);
    if (nparams) memcpy(all + nin, params, (size_t)nparams * sizeof *all);
    *sg = (segment){fn, user, all};
    dp_node *nd = dp_tape_push(c, recompute_backward, "recompute", out, nin + nparams, all);
    if (nd) nd->saved[0] = sg;
    return c->status == DP_OK ? out : NULL;
}
