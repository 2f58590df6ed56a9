/* The context, the tape and reverse-mode traversal.
 * Nodes are appended during forward; dp_backward walks them newest first and
 * lets each accumulate into its inputs. Nodes whose output received no
 * gradient are skipped. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tape.h"

void dp_ctx_init(dp_ctx *c)
{
    memset(c, 0, sizeof *c);
    c->training = 1;
    c->grad_enabled = 1;
    dp_rng_seed(&c->dropout_rng, 0, DP_STREAM_DROPOUT, 0);
}

void dp_ctx_free(dp_ctx *c)
{
    dp_arena_free(&c->arena);
    dp_gradpool_free(&c->grads);
    free(c->tape.nodes);
    free(c->replay_tape.nodes);
    c->tape = c->replay_tape = (dp_tape){0};
}

void dp_ctx_reset(dp_ctx *c)
{
    c->tape.len = 0;
    dp_arena_reset(&c->arena);
    dp_gradpool_reset(&c->grads);
    c->status = DP_OK;
}

dp_tensor *dp_fail(dp_ctx *c, dp_status s, const char *fmt, ...)
{
    if (c->status == DP_OK) {
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        c->status = dp_errorf(s, "%s", buf);
    }
    return NULL;
}

void *dp_scratch(dp_ctx *c, size_t bytes)
{
    void *p = dp_arena_alloc(&c->arena, bytes ? bytes : 1);
    if (!p) dp_fail(c, DP_ERR_NOMEM, "arena: cannot allocate %zu bytes", bytes);
    return p;
}

long dp_shape_numel(int ndim, const int *shape)
{
    long n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

void dp_tensor_set_shape(dp_tensor *t, int ndim, const int *shape)
{
    t->ndim = ndim;
    for (int i = 0; i < DP_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
    t->n = dp_shape_numel(ndim, shape);
}

static dp_tensor *tensor_struct(dp_ctx *c, int ndim, const int *shape)
{
    if (ndim < 1 || ndim > DP_MAX_DIMS) return dp_fail(c, DP_ERR_SHAPE, "tensor: %d dims (1..4 allowed)", ndim);
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0) return dp_fail(c, DP_ERR_SHAPE, "tensor: dim %d has size %d", i, shape[i]);
    dp_tensor *t = dp_scratch(c, sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    dp_tensor_set_shape(t, ndim, shape);
    return t;
}

dp_tensor *dp_tensor_new(dp_ctx *c, int ndim, const int *shape)
{
    dp_tensor *t = tensor_struct(c, ndim, shape);
    if (!t) return NULL;
    t->data = dp_scratch(c, (size_t)t->n * sizeof(float));
    return t->data ? t : NULL;
}

dp_tensor *dp_tensor_wrap(dp_ctx *c, float *data, int ndim, const int *shape)
{
    dp_tensor *t = tensor_struct(c, ndim, shape);
    if (t) t->data = data;
    return t;
}

int dp_check_ndim(dp_ctx *c, const char *op, const dp_tensor *t, int ndim)
{
    if (t->ndim == ndim) return 1;
    dp_fail(c, DP_ERR_SHAPE, "%s: expected a %d-d tensor, got %d-d", op, ndim, t->ndim);
    return 0;
}

float *dp_grad_fresh(dp_ctx *c, dp_tensor *t, int *fresh)
{
    *fresh = 0;
    if (!t->requires_grad) return NULL;
    if (!t->grad) {
        t->grad = dp_gradpool_get(&c->grads, (size_t)t->n * sizeof(float));
        if (!t->grad) {
            dp_fail(c, DP_ERR_NOMEM, "gradient pool: cannot allocate %zu bytes", (size_t)t->n * sizeof(float));
            return NULL;
        }
        t->grad_pooled = 1;
        *fresh = 1;
    }
    return t->grad;
}

float *dp_grad(dp_ctx *c, dp_tensor *t)
{
    int fresh;
    float *g = dp_grad_fresh(c, t, &fresh);
    if (g && fresh) memset(g, 0, (size_t)t->n * sizeof(float));
    return g;
}

int dp_grad_take(dp_node *nd, dp_tensor *t)
{
    dp_tensor *out = nd->out;
    if (!t->requires_grad || t->grad || t == out || !out->grad || !out->grad_pooled || t->n != out->n) return 0;
    t->grad = out->grad;
    t->grad_pooled = 1;
    out->grad = NULL;
    out->grad_pooled = 0;
    return 1;
}

dp_node *dp_tape_push(dp_ctx *c, dp_backward_fn fn, const char *name, dp_tensor *out, int nin, dp_tensor **in)
{
    if (!c->grad_enabled || c->status != DP_OK) return NULL;
    int any = 0;
    for (int i = 0; i < nin; i++) any |= in[i] && in[i]->requires_grad;
    if (!any) return NULL;
    dp_tape *tp = &c->tape;
    if (tp->len == tp->cap) {
        long cap = tp->cap ? tp->cap * 2 : 256;
        dp_node *nodes = realloc(tp->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) {
            dp_fail(c, DP_ERR_NOMEM, "tape: cannot grow to %ld nodes", cap);
            return NULL;
        }
        tp->nodes = nodes;
        tp->cap = cap;
    }
    dp_node *nd = &tp->nodes[tp->len++];
    memset(nd, 0, sizeof *nd);
    nd->backward = fn;
    nd->name = name;
    nd->out = out;
    nd->nin = nin;
    if (nin <= 3) {
        for (int i = 0; i < nin; i++) nd->in[i] = in[i];
    } else {
        nd->ins = dp_scratch(c, (size_t)nin * sizeof *nd->ins);
        if (!nd->ins) return NULL;
        memcpy(nd->ins, in, (size_t)nin * sizeof *nd->ins);
    }
    out->requires_grad = 1;
    return nd;
}

dp_status dp_tape_walk(dp_ctx *c, const dp_tape *tp, dp_backward_hook hook)
{
    for (long i = tp->len - 1; i >= 0; i--) {
        dp_node *nd = &tp->nodes[i];
        if (nd->out->grad) {
            /* a node's scratch dies with its backward; the gradients it makes come from the pool */
            dp_arena_mark m = dp_arena_get_mark(&c->arena);
            nd->backward(c, nd);
            if (c->status != DP_OK) return c->status;
            dp_arena_release(&c->arena, m);
            if (nd->out->grad_pooled) {
                /* every consumer of out ran before its producer: the gradient is spent */
                dp_gradpool_put(&c->grads, nd->out->grad);
                nd->out->grad = NULL;
                nd->out->grad_pooled = 0;
            }
        }
        /* also for a skipped node: its inputs will get nothing more from it */
        if (hook) hook(c->hook_user, nd);
    }
    return DP_OK;
}

static dp_status backward_from(dp_ctx *c, dp_tensor *t, float seed, int seeded)
{
    if (c->status != DP_OK) return c->status;
    if (!t) return dp_errorf(DP_ERR_ARG, "backward: no tensor");
    if (!t->requires_grad) return dp_errorf(DP_ERR_ARG, "backward: tensor does not require grad");
    if (!t->grad || seeded) {
        if (t->n != 1) return dp_errorf(DP_ERR_SHAPE, "backward: seed gradient of a %ld-element tensor", t->n);
        float *g = dp_grad(c, t);
        if (!g) return c->status;
        g[0] = seed;
    }
    return dp_tape_walk(c, &c->tape, c->after_node);
}

dp_status dp_backward(dp_ctx *c, dp_tensor *t) { return backward_from(c, t, 1.0f, 0); }

dp_status dp_backward_scaled(dp_ctx *c, dp_tensor *t, float seed) { return backward_from(c, t, seed, 1); }
