/* The gradient pool (src/core/gradpool.c) when shapes change every step, as
 * the DSI transformer's packed sequences do: the pool must stay bounded
 * (it used to keep a block of every size ever seen and grew by tens of MB a
 * step until the rank was killed), must stop allocating once it has seen
 * the range of sizes, must give memory back when the sizes shrink for good,
 * and the gradients it serves must be those a fresh context computes. */
#include <criterion/criterion.h>
#include "timeout.h"
#include <string.h>

#include "core/tape.h"

enum { D = 16, K = 4, TMAX = 700 };

/* the sizes of one "step": a few gradients of t rows, taken and given back the way a backward pass does */
static void pool_step(dp_gradpool *p, int t)
{
    float *a = dp_gradpool_get(p, (size_t)t * D * sizeof(float));
    float *b = dp_gradpool_get(p, (size_t)t * 3 * D * sizeof(float));
    cr_assert(a && b, "pool: no block for %d rows", t);
    memset(a, 1, (size_t)t * D * sizeof(float)); /* the whole request is writable */
    memset(b, 1, (size_t)t * 3 * D * sizeof(float));
    dp_gradpool_put(p, b);
    float *c = dp_gradpool_get(p, (size_t)t * D * sizeof(float));
    cr_assert(c);
    dp_gradpool_put(p, a);
    dp_gradpool_put(p, c);
    dp_gradpool_reset(p);
}

Test(gradpool, varying_sizes_stay_bounded_and_stop_allocating, .timeout = DP_TIMEOUT(30))
{
    dp_gradpool p = {0};
    uint32_t s = 12345;
    size_t most = 0;
    long allocs_at_100 = 0;
    for (int i = 0; i < 400; i++) {
        s = s * 1664525u + 1013904223u;
        pool_step(&p, 500 + (int)(s >> 8) % 200); /* 500 .. 699 rows, a new size nearly every step */
        if (p.held > most) most = p.held;
        if (i == 99) allocs_at_100 = p.sys_allocs;
    }
    /* one step holds at most 5 D TMAX floats at once; classes round up by < 25% and a
     * request may take a block two classes up: a few steps' worth is the bound */
    const size_t step_need = (size_t)5 * D * TMAX * sizeof(float);
    cr_assert_leq(most, 4 * step_need, "pool held %zu bytes over 400 steps of <= %zu bytes each", most, step_need);
    cr_assert_lt(p.sys_allocs, 60, "pool allocated %ld times in 400 steps", p.sys_allocs);
    cr_assert_leq(p.sys_allocs - allocs_at_100, 8, "pool still allocating after 100 steps: %ld more",
                  p.sys_allocs - allocs_at_100);
    dp_gradpool_free(&p);
}

Test(gradpool, fixed_sizes_allocate_only_in_the_first_step)
{
    dp_gradpool p = {0};
    pool_step(&p, 333);
    long a = p.sys_allocs;
    size_t held = p.held;
    for (int i = 0; i < 50; i++) pool_step(&p, 333);
    cr_assert_eq(p.sys_allocs, a, "allocated in a steady step");
    cr_assert_eq(p.held, held);
    dp_gradpool_free(&p);
}

Test(gradpool, idle_blocks_go_back_but_evaluation_does_not_age_them)
{
    dp_gradpool p = {0};
    for (int i = 0; i < 5; i++) pool_step(&p, 4000);
    const size_t big = p.held;
    /* resets with nothing taken (an evaluation pass) keep the blocks */
    for (int i = 0; i < 100; i++) dp_gradpool_reset(&p);
    cr_assert_eq(p.held, big, "steps that used nothing freed blocks: %zu -> %zu", big, p.held);
    long a = p.sys_allocs;
    pool_step(&p, 4000);
    cr_assert_eq(p.sys_allocs, a, "the training step after an evaluation allocated again");
    /* the sizes shrink for good: the large blocks are freed within a few hundred steps */
    for (int i = 0; i < 300; i++) pool_step(&p, 10);
    cr_assert_lt(p.held, big / 100, "pool still holds %zu bytes (had %zu) after 300 small steps", p.held, big);
    dp_gradpool_free(&p);
}

/* logits = tanh(x w1) w2 over t rows, cross-entropy; the parameters' gradients into g1, g2 */
static void graph_step(dp_ctx *c, int t, const float *x, const int32_t *y, float *w1, float *w2, float *g1, float *g2)
{
    dp_ctx_reset(c);
    memset(g1, 0, D * D * sizeof *g1);
    memset(g2, 0, D * K * sizeof *g2);
    dp_tensor *X = dp_tensor_wrap(c, (float *)x, 2, (int[]){t, D});
    dp_tensor *W1 = dp_tensor_wrap(c, w1, 2, (int[]){D, D}), *W2 = dp_tensor_wrap(c, w2, 2, (int[]){D, K});
    cr_assert(X && W1 && W2);
    W1->requires_grad = W2->requires_grad = 1;
    W1->grad = g1;
    W2->grad = g2;
    dp_tensor *loss = dp_cross_entropy(c, dp_matmul(c, dp_tanh(c, dp_matmul(c, X, W1, 0, 0)), W2, 0, 0), y, NULL);
    cr_assert(loss, "forward failed");
    cr_assert_eq(dp_backward(c, loss), DP_OK);
}

Test(gradpool, gradients_with_reused_blocks_match_a_fresh_context, .timeout = DP_TIMEOUT(60))
{
    static float x[TMAX * D], w1[D * D], w2[D * K], g1[D * D], g2[D * K], f1[D * D], f2[D * K];
    static int32_t y[TMAX];
    uint32_t s = 7;
    for (int i = 0; i < TMAX * D; i++) x[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (int i = 0; i < D * D; i++) w1[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (int i = 0; i < D * K; i++) w2[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (int i = 0; i < TMAX; i++) y[i] = (int32_t)(i % K);
    dp_ctx c;
    dp_ctx_init(&c);
    for (int i = 0; i < 60; i++) {
        const int t = 1 + (int)((s = s * 1664525u + 1013904223u) >> 8) % TMAX; /* 1 .. TMAX rows */
        graph_step(&c, t, x, y, w1, w2, g1, g2);
        dp_ctx fresh;
        dp_ctx_init(&fresh);
        graph_step(&fresh, t, x, y, w1, w2, f1, f2);
        dp_ctx_free(&fresh);
        cr_assert(memcmp(g1, f1, sizeof g1) == 0 && memcmp(g2, f2, sizeof g2) == 0,
                  "step %d (%d rows): the gradients differ from a fresh context's", i, t);
    }
    cr_assert_leq(c.grads.held, (size_t)4 * 4 * D * TMAX * sizeof(float), "pool holds %zu bytes", c.grads.held);
    dp_ctx_free(&c);
}
