/* The checker itself must fail on a wrong backward: a square op with a
 * correct and a deliberately wrong gradient, checked through gc_check. */
#include <criterion/criterion.h>
#include "timeout.h"

#include "core/tape.h"
#include "gradcheck.h"

static void square_backward_ok(dp_ctx *c, dp_node *nd)
{
    dp_tensor *x = nd->in[0];
    float *gx = dp_grad(c, x);
    for (long i = 0; i < x->n; i++) gx[i] += 2.0f * x->data[i] * nd->out->grad[i];
}

static void square_backward_wrong(dp_ctx *c, dp_node *nd)
{
    dp_tensor *x = nd->in[0];
    float *gx = dp_grad(c, x);
    for (long i = 0; i < x->n; i++) gx[i] += x->data[i] * nd->out->grad[i]; /* missing factor 2 */
}

static dp_tensor *square(dp_ctx *c, dp_tensor **in, void *arg)
{
    dp_tensor *x = in[0];
    dp_tensor *y = dp_tensor_new(c, x->ndim, x->shape);
    if (!y) return NULL;
    for (long i = 0; i < x->n; i++) y->data[i] = x->data[i] * x->data[i];
    dp_tape_push(c, arg ? square_backward_wrong : square_backward_ok, "square", y, 1, in);
    return y;
}

Test(gradcheck, passes_a_correct_backward, .timeout = DP_TIMEOUT(30))
{
    gc_input in = {.ndim = 2, .shape = {3, 5}, .lo = -2, .hi = 2};
    gc_result r;
    cr_assert(gc_check("square", 1, &in, square, NULL, NULL, &r), "worst: %s", r.worst);
    cr_assert_eq(r.checked, 15);
}

Test(gradcheck, fails_a_wrong_backward, .timeout = DP_TIMEOUT(30))
{
    gc_input in = {.ndim = 2, .shape = {3, 5}, .lo = 0.5f, .hi = 2};
    gc_result r;
    cr_assert_not(gc_check("square_wrong", 1, &in, square, (void *)1, NULL, &r));
    cr_assert_eq(r.bad, 15);
}

Test(arena, stops_allocating_after_the_first_step, .timeout = DP_TIMEOUT(30))
{
    dp_ctx c;
    dp_ctx_init(&c);
    for (int step = 0; step < 5; step++) {
        for (int k = 0; k < 20; k++) cr_assert_not_null(dp_scratch(&c, (size_t)(1 + k) << 18));
        dp_ctx_reset(&c);
    }
    long after_warmup = c.arena.sys_allocs;
    for (int step = 0; step < 5; step++) {
        for (int k = 0; k < 20; k++) cr_assert_not_null(dp_scratch(&c, (size_t)(1 + k) << 18));
        dp_ctx_reset(&c);
    }
    cr_assert_eq(c.arena.sys_allocs, after_warmup);
    dp_ctx_free(&c);
}

Test(rng, streams_are_reproducible_and_distinct, .timeout = DP_TIMEOUT(30))
{
    dp_rng a, b, d;
    dp_rng_seed(&a, 7, DP_STREAM_SHUFFLE, 0);
    dp_rng_seed(&b, 7, DP_STREAM_SHUFFLE, 0);
    dp_rng_seed(&d, 7, DP_STREAM_SHUFFLE, 1);
    int same_as_other_rank = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = dp_rng_u64(&a);
        cr_assert_eq(x, dp_rng_u64(&b));
        same_as_other_rank += x == dp_rng_u64(&d);
    }
    cr_assert_eq(same_as_other_rank, 0);
    /* uniform in [0,1), below() in range, mean near 1/2 */
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        float u = dp_rng_uniform(&a);
        cr_assert(u >= 0.0f && u < 1.0f);
        sum += u;
        cr_assert_lt(dp_rng_below(&a, 10), 10u);
    }
    cr_assert_float_eq(sum / 100000, 0.5, 0.01);
}
