/* dp_recompute (src/core/recompute.c): the gradients of a recomputed segment
 * against central finite differences, and bit for bit against the same
 * graph kept whole; batch-norm running statistics updated once; the arena
 * holds less and, after the first step, allocates nothing; a backward hook
 * sees the segment's node with its parameters, never the replayed nodes. */
#include <criterion/criterion.h>
#include "timeout.h"
#include <string.h>

#include "core/tape.h"
#include "gradcheck.h"

/* conv 3x3 (weight w) -> batch-norm in place (running statistics rm, rv) -> tanh */
typedef struct seg_arg {
    dp_tensor *w;
    float rm[4], rv[4];
} seg_arg;

static dp_tensor *conv_bn_tanh(dp_ctx *c, void *user, dp_tensor **in)
{
    seg_arg *a = user;
    dp_tensor *y = dp_conv2d(c, in[0], a->w, NULL, 1, 1, 1, 1);
    return dp_tanh(c, dp_batchnorm_inplace(c, y, a->rm, a->rv, 0.1f, 1e-5f));
}

static void fresh_stats(seg_arg *a)
{
    for (int i = 0; i < 4; i++) a->rm[i] = 0.0f, a->rv[i] = 1.0f;
}

/* in: x [2,3,5,5], w [4,3,3,3]; two segments in a row (the second reuses w) */
static dp_tensor *two_segments(dp_ctx *c, dp_tensor **in, void *arg)
{
    seg_arg *a = arg;
    a[0].w = in[1];
    a[1].w = in[2];
    dp_tensor *y = dp_recompute(c, conv_bn_tanh, &a[0], 1, &in[0], 1, &in[1]);
    return dp_recompute(c, conv_bn_tanh, &a[1], 1, &y, 1, &in[2]);
}

Test(recompute, gradients_match_central_differences, .timeout = DP_TIMEOUT(60))
{
    gc_input ins[3] = {{.ndim = 4, .shape = {2, 3, 5, 5}, .lo = -1, .hi = 1},
                       {.ndim = 4, .shape = {4, 3, 3, 3}, .lo = -0.5f, .hi = 0.5f},
                       {.ndim = 4, .shape = {4, 4, 3, 3}, .lo = -0.5f, .hi = 0.5f}};
    seg_arg a[2];
    fresh_stats(&a[0]);
    fresh_stats(&a[1]);
    gc_opts o = gc_defaults();
    o.h = 3e-3;
    gc_result r;
    cr_assert(gc_check("recompute(conv-bn-tanh) x2", 3, ins, two_segments, a, &o, &r), "worst: %s", r.worst);
    cr_assert_eq(r.checked, 150 + 108 + 144);
}

/* One training step of x -> seg -> seg with the given seed gradient; fills gx, gw. */
typedef struct step_out {
    float gx[150], gw[2][144], out[200];
    float rm[2][4], rv[2][4];
    size_t arena_peak;
    long nodes;
} step_out;

/* A conv weight [4, cin, 3, 3] over caller arrays, as a parameter: its gradient accumulates into grad. */
static void weight(dp_tensor *t, int cin, float *data, float *grad)
{
    memset(t, 0, sizeof *t);
    dp_tensor_set_shape(t, 4, (int[]){4, cin, 3, 3});
    t->data = data;
    t->grad = grad;
    t->requires_grad = 1;
}

static void step(dp_ctx *c, int recompute, const float *x0, float w0[2][144], step_out *o)
{
    float x[150], w[2][144], gw[2][144];
    memcpy(x, x0, sizeof x);
    memcpy(w, w0, sizeof w);
    memset(gw, 0, sizeof gw);
    seg_arg a[2];
    fresh_stats(&a[0]);
    fresh_stats(&a[1]);
    dp_ctx_reset(c);
    c->arena.high_water = 0;
    dp_tensor *xt = dp_tensor_wrap(c, x, 4, (int[]){2, 3, 5, 5});
    dp_tensor wt[2];
    for (int k = 0; k < 2; k++) {
        weight(&wt[k], k ? 4 : 3, w[k], gw[k]);
        a[k].w = &wt[k];
    }
    xt->requires_grad = 1;
    dp_tensor *w0t = &wt[0], *w1t = &wt[1];
    dp_tensor *y = recompute ? dp_recompute(c, conv_bn_tanh, &a[0], 1, &xt, 1, &w0t) : conv_bn_tanh(c, &a[0], &xt);
    y = recompute ? dp_recompute(c, conv_bn_tanh, &a[1], 1, &y, 1, &w1t) : conv_bn_tanh(c, &a[1], &y);
    cr_assert_not_null(y, "%s", dp_errmsg());
    cr_assert_eq(y->n, 200);
    memcpy(o->out, y->data, sizeof o->out);
    float *g = dp_grad(c, y);
    for (long i = 0; i < y->n; i++) g[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    o->nodes = c->tape.len;
    cr_assert_eq(dp_backward(c, y), DP_OK, "%s", dp_errmsg());
    memcpy(o->gx, xt->grad, sizeof o->gx);
    memcpy(o->gw, gw, sizeof gw);
    for (int k = 0; k < 2; k++) {
        memcpy(o->rm[k], a[k].rm, sizeof a[k].rm);
        memcpy(o->rv[k], a[k].rv, sizeof a[k].rv);
    }
    o->arena_peak = c->arena.high_water;
}

static void inputs(float *x, float w[2][144])
{
    dp_rng r;
    dp_rng_seed(&r, 3, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x, 150, -1, 1);
    dp_init_uniform(&r, w[0], 108, -0.5f, 0.5f);
    dp_init_uniform(&r, w[1], 144, -0.5f, 0.5f);
}

/* A fresh context, one step with the graph kept, then one recomputed. */
static void kept_then_recomputed(dp_ctx *c, float *x, float w[2][144], step_out *kept, step_out *again)
{
    inputs(x, w);
    dp_ctx_init(c);
    step(c, 0, x, w, kept);
    step(c, 1, x, w, again);
}

Test(recompute, same_bits_as_the_kept_graph_and_stats_updated_once, .timeout = DP_TIMEOUT(30))
{
    float x[150], w[2][144];
    static step_out kept, again;
    dp_ctx c;
    kept_then_recomputed(&c, x, w, &kept, &again);
    cr_assert(!memcmp(kept.out, again.out, sizeof kept.out), "outputs differ");
    cr_assert(!memcmp(kept.gx, again.gx, sizeof kept.gx), "input gradients differ");
    cr_assert(!memcmp(kept.gw, again.gw, sizeof kept.gw), "weight gradients differ");
    /* one update from (0, 1) each: replaying the forward must not move them twice */
    cr_assert(!memcmp(kept.rm, again.rm, sizeof kept.rm) && !memcmp(kept.rv, again.rv, sizeof kept.rv),
              "running statistics differ: %g vs %g", (double)kept.rm[0][0], (double)again.rm[0][0]);
    cr_assert_neq(again.rm[0][0], 0.0f, "running mean not updated at all");
    cr_assert_eq(again.nodes, 2, "the recomputed graph keeps one node per segment, has %ld", again.nodes);
    cr_assert_gt(kept.nodes, 2);
    dp_ctx_free(&c);
}

Test(recompute, holds_less_and_stops_allocating, .timeout = DP_TIMEOUT(30))
{
    float x[150], w[2][144];
    static step_out kept, again;
    dp_ctx c;
    kept_then_recomputed(&c, x, w, &kept, &again);
    cr_assert_lt(again.arena_peak, kept.arena_peak, "arena peak %zu with recompute, %zu without",
                 again.arena_peak, kept.arena_peak);
    long arena = c.arena.sys_allocs, pool = c.grads.sys_allocs;
    for (int i = 0; i < 3; i++) step(&c, 1, x, w, &again);
    cr_assert_eq(c.arena.sys_allocs, arena, "arena allocated in a steady step");
    cr_assert_eq(c.grads.sys_allocs, pool, "gradient pool allocated in a steady step");
    dp_ctx_free(&c);
}

typedef struct hook_log {
    int calls, recompute_nodes, with_w;
    const dp_tensor *w;
} hook_log;

static void hook(void *user, const dp_node *nd)
{
    hook_log *h = user;
    h->calls++;
    if (strcmp(nd->name, "recompute")) return;
    h->recompute_nodes++;
    for (int i = 0; i < nd->nin; i++) h->with_w += (nd->ins ? nd->ins[i] : nd->in[i]) == h->w;
}

Test(recompute, the_hook_sees_the_segment_with_its_parameters, .timeout = DP_TIMEOUT(30))
{
    float x[150], w[2][144], gw[144] = {0};
    inputs(x, w);
    dp_ctx c;
    dp_ctx_init(&c);
    seg_arg a;
    fresh_stats(&a);
    dp_tensor wt;
    weight(&wt, 3, w[0], gw);
    a.w = &wt;
    dp_tensor *xt = dp_tensor_wrap(&c, x, 4, (int[]){2, 3, 5, 5}), *pw = &wt;
    dp_tensor *y = dp_recompute(&c, conv_bn_tanh, &a, 1, &xt, 1, &pw);
    cr_assert_not_null(y, "%s", dp_errmsg());
    cr_assert(y->requires_grad, "a segment with a trainable parameter needs a gradient even from a constant input");
    hook_log h = {.w = &wt};
    c.after_node = hook;
    c.hook_user = &h;
    float *g = dp_grad(&c, y);
    for (long i = 0; i < y->n; i++) g[i] = 1.0f;
    cr_assert_eq(dp_backward(&c, y), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(h.calls, 1, "hook calls %d: the replayed nodes must not reach it", h.calls);
    cr_assert_eq(h.recompute_nodes, 1);
    cr_assert_eq(h.with_w, 1, "the segment's node does not list its parameter");
    float sum = 0;
    for (int i = 0; i < 108; i++) sum += gw[i] * gw[i];
    cr_assert_gt(sum, 0.0f, "no gradient reached the parameter");
    dp_ctx_free(&c);
}

/* A segment ending in ops whose backward takes or masks their output's
 * gradient block in place (batchnorm_relu, add_relu): replayed, the last
 * output's gradient is borrowed from the outer node (not the op's to take),
 * and the replayed backward must still give the kept graph's bits. */
static dp_tensor *bn_relu_add_relu(dp_ctx *c, void *user, dp_tensor **in)
{
    (void)user;
    dp_tensor *h = dp_batchnorm_relu(c, in[0], NULL, NULL, NULL, NULL, 0.1f, 1e-5f);
    return dp_add_relu(c, h, dp_scale(c, in[0], -0.5f));
}

Test(recompute, in_place_gradient_ops_give_the_kept_bits, .timeout = DP_TIMEOUT(30))
{
    float x[2][120], g[120], out[2][120], gx[2][120];
    dp_rng r;
    dp_rng_seed(&r, 9, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x[0], 120, -2, 2);
    dp_init_uniform(&r, g, 120, -1, 1);
    memcpy(x[1], x[0], sizeof x[0]);
    dp_ctx c;
    dp_ctx_init(&c);
    for (int k = 0; k < 2; k++) {
        dp_ctx_reset(&c);
        dp_tensor *xt = dp_tensor_wrap(&c, x[k], 4, (int[]){2, 3, 4, 5});
        xt->requires_grad = 1;
        dp_tensor *y = k ? dp_recompute(&c, bn_relu_add_relu, NULL, 1, &xt, 0, NULL) : bn_relu_add_relu(&c, NULL, &xt);
        cr_assert_not_null(y, "%s", dp_errmsg());
        memcpy(out[k], y->data, sizeof out[k]);
        float *gy = dp_grad(&c, y);
        memcpy(gy, g, sizeof g);
        cr_assert_eq(dp_backward(&c, y), DP_OK, "%s", dp_errmsg());
        memcpy(gx[k], xt->grad, sizeof gx[k]);
    }
    int nonzero = 0;
    for (int i = 0; i < 120; i++) nonzero += gx[0][i] != 0.0f;
    cr_assert_gt(nonzero, 60, "the gradient is mostly zero: not a test");
    cr_assert(!memcmp(out[0], out[1], sizeof out[0]), "outputs differ");
    cr_assert(!memcmp(gx[0], gx[1], sizeof gx[0]), "input gradients differ");
    dp_ctx_free(&c);
}
