/* The DARTS primitives (src/models/darts_ops.c) and the search supernet
 * (src/nas/supernet.c): parameter counts against the reference, shapes,
 * finite-difference gradient checks of every primitive and of a tiny
 * supernet under each mixing strategy, the expected-cost term, FLOPs, and
 * PC-DARTS' partial channels and edge normalisation (at the end).
 *
 * Tiny supernet for the gradient checks: 3 cells (normal, reduce, reduce:
 * the third preprocesses s0 with FactorizedReduce and reduces an odd 3x3
 * grid), C = 2, 2 x 6 x 6 inputs, N = 2, 3 classes, all eight ops; alpha and
 * x uniform in [-1, 1]. Each configuration is checked twice:
 *   alpha  with BN on batch statistics, as the search runs;
 *   x      with BN on fresh running statistics (mean 0, var 1: BN is then
 *          a fixed affine map) and the max-pool column masked off.
 * The BN batch-statistic terms are covered by the alpha checks, by the
 * per-primitive checks below (train mode) and by test_ops_norm.
 *
 * Why so (measured over gc seeds 1..12, not guessed):
 *  - Conditioning. With C = 2 a pointwise conv mixes two channels; with
 *    PyTorch's mixed-sign init the terms can nearly cancel and the next BN
 *    normalises a channel of variance ~5e-5 over 8..72 values. Its 1/std
 *    amplifies curvature and float rounding so much that no step h works
 *    (the differences do converge to the analytic gradient as h shrinks,
 *    until rounding takes over). So the checks re-draw the non-stem convs
 *    positive with unit gain, U(0.5, 1.5) / fan_in (condition()): the same
 *    graph and ops, no cancellation.
 *  - x feeds every activation, so a step of x moves thousands of ReLU
 *    inputs and max-pool windows (whose two largest of 9 values are often
 *    close); with batch statistics each such flip also moves a whole BN
 *    channel. Fixed statistics make the net piecewise linear in x, and
 *    max-pool's gradient is checked on spread inputs per primitive and
 *    through alpha here.
 *  - h = 2e-3 with the default atol 1e-3, rtol 1e-2: 1e-3 drowns in
 *    rounding (gold's unnormalised sums most), 5e-3 crosses more kinks.
 *    Even so a step may straddle a kink somewhere: at most 2.1% of the
 *    elements of a network check and 2.7% of a primitive check missed, so
 *    a check may miss MISS_BUDGET = 3%. A wrong gradient path misses far
 *    more: a whole op column (28 of 224 alpha elements), a strategy's
 *    weights (all of alpha) or the input (all of x). */
#include <criterion/criterion.h>
#include "timeout.h"
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/tape.h"
#include "dptrain/supernet.h"
#include "gradcheck_assert.h"
#include "dptrain/darts_ops.h"

/* CHECK_GRAD allowing up to `frac` of the checked elements to miss (kink
 * crossings, see the top of the file); anything systematic still fails. */
#define CHECK_GRAD_MOSTLY(name, nin, ins, fn, arg, opts, frac)                                                     \
    do {                                                                                                          \
        gc_result r_;                                                                                             \
        gc_check((name), (nin), (ins), (fn), (arg), (opts), &r_);                                                 \
        cr_log_info("%s: %ld checked, %ld off, max abs err %.3g", (name), r_.checked, r_.bad, r_.max_abs_err);    \
        cr_assert_gt(r_.checked, 0, "%s: the check did not run: %s", (name), dp_errmsg());                        \
        cr_assert_leq(r_.bad, (long)((frac) * r_.checked), "%s: %ld of %ld off, worst %s", (name), r_.bad,        \
                      r_.checked, r_.worst);                                                                      \
    } while (0)

/* The share of elements a check may miss (see the top of the file). */
#define MISS_BUDGET 0.03

static gc_opts net_opts(void)
{
    gc_opts o = gc_defaults();
    o.h = 2e-3;
    return o;
}

/* Cell convs positive with unit gain (see the top of the file); the stem keeps its init. */
static void condition_params(dp_params *p)
{
    dp_rng r;
    dp_rng_seed(&r, 9, DP_STREAM_INIT, 0);
    for (int i = 0; i < p->count; i++) {
        dp_param *it = p->items[i];
        if (it->t.ndim != 4 || !strncmp(it->name, "stem", 4)) continue;
        const long fan_in = it->t.n / it->t.shape[0];
        dp_init_uniform(&r, it->t.data, (size_t)it->t.n, 0.5f / fan_in, 1.5f / fan_in);
    }
}

static void condition(dp_supernet *sn) { condition_params(&sn->model->params); }

static dp_supernet *build(int layers, int C, dp_model_shape in, int nops, const int *ops)
{
    dp_supernet_config cfg;
    dp_supernet_config_defaults(&cfg);
    cfg.layers = layers;
    cfg.channels = C;
    cfg.in = in;
    if (ops) {
        cfg.nops = nops;
        memcpy(cfg.ops, ops, (size_t)nops * sizeof *ops);
    }
    dp_supernet *sn = NULL;
    cr_assert_eq(dp_supernet_build(&cfg, &sn), DP_OK, "%s", dp_errmsg());
    dp_rng r;
    dp_rng_seed(&r, 5, DP_STREAM_INIT, 0);
    dp_params_init(&sn->model->params, &r);
    dp_supernet_init_alpha(sn, &r);
    return sn;
}

/* ------------------------------------------------------------------ sizes */

/* The reference counts (quark0/darts model_search.py, count_parameters_in_MB
 * without alpha): BN without affine has no parameters, running stats are buffers. */
Test(supernet, parameter_counts_match_the_reference, .timeout = DP_TIMEOUT(30))
{
    dp_supernet *cifar = build(8, 16, (dp_model_shape){3, 32, 32, 10}, 0, NULL);
    cr_assert_eq(cifar->model->params.n, 1930618, "CIFAR-10 supernet: %zu", cifar->model->params.n);
    dp_supernet_free(cifar);
    dp_supernet *fm = build(5, 8, (dp_model_shape){1, 28, 28, 10}, 0, NULL);
    cr_assert_eq(fm->model->params.n, 393778, "Fashion-MNIST supernet: %zu", fm->model->params.n);
    for (int i = 0; i < fm->model->params.count; i++)
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(fm->model->params.items[i]->name, fm->model->params.items[j]->name);
    dp_supernet_free(fm);
}

Test(supernet, defaults_and_config_errors, .timeout = DP_TIMEOUT(10))
{
    dp_supernet_config cfg;
    dp_supernet_config_defaults(&cfg);
    cr_assert(cfg.layers == 5 && cfg.channels == 8 && cfg.stem_multiplier == 3 && cfg.nops == 8);
    for (int k = 0; k < 8; k++) cr_assert_eq(cfg.ops[k], k);
    dp_supernet *sn = NULL;
    cfg.channels = 7;
    cr_assert_eq(dp_supernet_build(&cfg, &sn), DP_ERR_ARG);
    cr_assert_null(sn);
    cfg.channels = 8;
    cfg.ops[3] = cfg.ops[4];
    cr_assert_eq(dp_supernet_build(&cfg, &sn), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "repeated"), "%s", dp_errmsg());
    cfg.nops = 1;
    cfg.ops[0] = DP_NAS_NONE;
    cr_assert_eq(dp_supernet_build(&cfg, &sn), DP_ERR_ARG);

    dp_nas_strategy s;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(dp_nas_strategy_parse(dp_nas_strategy_name((dp_nas_strategy)i), &s), DP_OK);
        cr_assert_eq((int)s, i);
    }
    cr_assert_eq(dp_nas_strategy_parse("snas", &s), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "snas"));
}

static dp_tensor *fr_forward(dp_ctx *c, dp_darts_fr *fr, float *x, int N, int C, int H, int W)
{
    return dp_darts_fr_forward(c, fr, dp_tensor_wrap(c, x, 4, (int[]){N, C, H, W}));
}

Test(darts_ops, factorized_reduce_shapes, .timeout = DP_TIMEOUT(10))
{
    dp_params p = {0};
    dp_darts_fr fr;
    dp_darts_fr_init(&fr, &p, "fr", 3, 4, 0);
    cr_assert_eq(dp_params_finalize(&p), DP_OK);
    cr_assert_eq(p.n, 2 * 2 * 3, "two 1x1 convs 3 -> 2, no affine");
    dp_rng r;
    dp_rng_seed(&r, 1, DP_STREAM_INIT, 0);
    dp_params_init(&p, &r);
    static float x[2 * 3 * 6 * 6]; /* the largest H x W below: 6x6 reads 216 floats, 7x5 only 210 */
    dp_init_uniform(&r, x, sizeof x / sizeof x[0], -1, 1);
    dp_ctx c;
    dp_ctx_init(&c);
    const int hw[4][4] = {{6, 6, 3, 3}, {7, 5, 4, 3}, {5, 7, 3, 4}, {1, 1, 1, 1}}; /* H, W -> ceil halves */
    for (int i = 0; i < 4; i++) {
        dp_tensor *y = fr_forward(&c, &fr, x, 2, 3, hw[i][0], hw[i][1]);
        cr_assert_not_null(y, "%dx%d: %s", hw[i][0], hw[i][1], dp_errmsg());
        cr_assert(y->shape[0] == 2 && y->shape[1] == 4 && y->shape[2] == hw[i][2] && y->shape[3] == hw[i][3],
                  "%dx%d -> [%d,%d,%d,%d]", hw[i][0], hw[i][1], y->shape[0], y->shape[1], y->shape[2], y->shape[3]);
    }
    dp_ctx_free(&c);
    dp_params_free(&p);
}

Test(supernet, forward_shape_and_alpha_layout, .timeout = DP_TIMEOUT(30))
{
    const int ops[5] = {DP_NAS_NONE, DP_NAS_MAX_POOL_3X3, DP_NAS_SKIP_CONNECT, DP_NAS_SEP_CONV_3X3,
                        DP_NAS_DIL_CONV_5X5};
    dp_supernet *sn = build(4, 4, (dp_model_shape){1, 9, 9, 7}, 5, ops);
    cr_assert_eq(sn->alpha.n, 2 * 14 * 5);
    cr_assert_eq(sn->alpha.count, 2);
    cr_assert(sn->alphas[0]->ndim == 2 && sn->alphas[0]->shape[0] == 14 && sn->alphas[0]->shape[1] == 5);
    cr_assert(sn->alphas[1]->ndim == 2 && sn->alphas[1]->shape[0] == 14 && sn->alphas[1]->shape[1] == 5);
    cr_assert_eq(sn->alphas[0]->data, sn->alpha.data);
    cr_assert_eq(sn->alphas[1]->data, sn->alpha.data + 14 * 5);
    cr_assert_eq(sn->alphas[1]->grad, sn->alpha.grad + 14 * 5);
    for (size_t i = 0; i < sn->alpha.n; i++) cr_assert(fabsf(sn->alpha.data[i]) < 1e-2f && sn->alpha.data[i] != 0);
    cr_assert_gt(sn->model->flops_per_sample, 0);

    static float x[3 * 9 * 9];
    dp_rng r;
    dp_rng_seed(&r, 2, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x, sizeof x / sizeof x[0], -1, 1);
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *y = sn->model->forward(sn->model, &c, dp_tensor_wrap(&c, x, 4, (int[]){3, 1, 9, 9}));
    cr_assert_not_null(y, "%s", dp_errmsg());
    cr_assert(y->ndim == 2 && y->shape[0] == 3 && y->shape[1] == 7);
    for (int t = 0; t < 2; t++) {
        const dp_tensor *w = sn->weights[t];
        cr_assert(w && w->n == 14 * 5);
        for (int e = 0; e < 14; e++) {
            double s = 0;
            for (int k = 0; k < 5; k++) s += w->data[e * 5 + k];
            cr_assert_float_eq(s, 1.0, 1e-5, "darts weights of edge %d sum to %g", e, s);
        }
    }
    int32_t labels[3] = {0, 3, 6};
    dp_tensor *loss = dp_cross_entropy(&c, y, labels, NULL);
    dp_params_zero_grad(&sn->alpha);
    cr_assert_eq(dp_backward(&c, loss), DP_OK, "%s", dp_errmsg());
    double g = 0;
    for (size_t i = 0; i < sn->alpha.n; i++) g += fabsf(sn->alpha.grad[i]);
    cr_assert_gt(g, 0, "the loss reaches alpha");
    dp_ctx_free(&c);
    dp_supernet_free(sn);
}

/* ------------------------------------------------------------------ primitives */

typedef struct op_case {
    int kind, stride, H, W;
} op_case;

typedef struct op_state {
    dp_params p;
    dp_darts_op op;
} op_state;

static dp_tensor *build_op(dp_ctx *c, dp_tensor **in, void *arg)
{
    const dp_darts_op *o = arg;
    return dp_darts_op_forward(c, o, in[0]);
}

ParameterizedTestParameters(darts_ops, gradcheck)
{
    static op_case cases[2 * 7];
    for (int k = 1; k < DP_NAS_NUM_OPS; k++)
        for (int s = 1; s <= 2; s++) cases[(k - 1) * 2 + s - 1] = (op_case){k, s, s == 1 ? 5 : 7, s == 1 ? 6 : 5};
    return cr_make_param_array(op_case, cases, sizeof cases / sizeof cases[0]);
}

/* Every primitive (search form: no affine, BN after pools) at stride 1 and 2
 * on odd sizes, with respect to its input, C = 4, h = 1e-3. Max-pool inputs
 * are spread apart (gc_init_distinct) so +-h never changes a window's
 * winner; the others are kept |x| >= 0.1 so the leading ReLU never flips. */
ParameterizedTest(op_case *p, darts_ops, gradcheck, .timeout = DP_TIMEOUT(60))
{
    op_state st = {0};
    dp_darts_op_init(&st.op, &st.p, "op", p->kind, 4, p->stride, 0, 1);
    cr_assert_eq(dp_params_finalize(&st.p), DP_OK);
    dp_rng r;
    dp_rng_seed(&r, 3, DP_STREAM_INIT, 0);
    dp_params_init(&st.p, &r);
    condition_params(&st.p);
    gc_input in = {.ndim = 4, .shape = {2, 4, p->H, p->W}, .lo = -1, .hi = 1};
    in.init = p->kind == DP_NAS_MAX_POOL_3X3 ? gc_init_distinct : gc_init_away_from_zero;
    gc_opts o = net_opts();
    if (p->kind == DP_NAS_SKIP_CONNECT && p->stride == 1) { /* the identity: the input comes back */
        dp_ctx c;
        dp_ctx_init(&c);
        static float x[2 * 4 * 5 * 6];
        dp_tensor *X = dp_tensor_wrap(&c, x, 4, (int[]){2, 4, 5, 6});
        cr_assert_eq(dp_darts_op_forward(&c, &st.op, X), X);
        dp_ctx_free(&c);
    } else {
        CHECK_GRAD_MOSTLY(dp_nas_op_name(p->kind), 1, &in, build_op, &st.op, &o, MISS_BUDGET);
    }
    dp_params_free(&st.p);
}

/* ------------------------------------------------------------------ the tiny supernet */

#define TINY_SHAPE ((dp_model_shape){2, 6, 6, 3})
enum { NOPS = DP_NAS_NUM_OPS, NW = 14 * NOPS };

typedef struct net_arg {
    dp_supernet *sn;
    dp_tensor an, ar; /* alpha views onto the checker's leaf */
    int eval;         /* BN on running statistics */
    /* gumbel surrogate: the sample h0 and h0 - s0 at the checked alpha */
    float h0[2 * NW], shift[2 * NW];
} net_arg;

/* Points the supernet's alpha at in (a [2, 14, nops] leaf), so the checker
 * perturbs it and receives its gradient. */
static void alpha_from(net_arg *a, dp_tensor *in)
{
    for (int t = 0; t < 2; t++) {
        dp_tensor *v = t ? &a->ar : &a->an;
        memset(v, 0, sizeof *v);
        dp_tensor_set_shape(v, 2, (int[]){14, NOPS});
        v->data = in->data + t * NW;
        v->grad = in->requires_grad ? in->grad + t * NW : NULL;
        v->requires_grad = in->requires_grad;
    }
    a->sn->alphas[0] = &a->an;
    a->sn->alphas[1] = &a->ar;
}

static dp_tensor *build_net(dp_ctx *c, dp_tensor **in, void *arg)
{
    net_arg *a = arg;
    alpha_from(a, in[1]);
    c->training = !a->eval;
    return a->sn->model->forward(a->sn->model, c, in[0]);
}

static void restore_alpha(dp_supernet *sn)
{
    sn->alphas[0] = &sn->alpha.items[0]->t;
    sn->alphas[1] = &sn->alpha.items[1]->t;
}

typedef struct mix_case {
    dp_nas_strategy strategy;
    float t;
    int masked;
} mix_case;

static float gold_mask[2 * NW], x_mask[3 * NW]; /* x_mask: 3 cell types at most (the per-layer case below) */

static void make_mask(float *m)
{
    /* prunes a changing third of the ops, and every op of normal edge 3 but sep_conv_3x3 */
    for (int i = 0; i < 2 * NW; i++) m[i] = (i * 7 + i / NOPS) % 3 ? 1.0f : 0.0f;
    for (int k = 0; k < NOPS; k++) m[3 * NOPS + k] = k == DP_NAS_SEP_CONV_3X3;
}

/* For the input checks: `base` (NULL = all alive) without max-pool. Its
 * windows' two largest values are often closer than what a step of x moves
 * them (x feeds every activation), so differences straddle a switch of the
 * winner; max-pool's gradient is checked in darts_ops::gradcheck on spread
 * inputs, and through alpha here. */
static const float *without_max_pool(const float *base)
{
    for (int i = 0; i < 3 * NW; i++) /* base: a shared supernet's [2 * NW] mask */
        x_mask[i] = (base && i < 2 * NW ? base[i] : 1.0f) * (i % NOPS != DP_NAS_MAX_POOL_3X3);
    return x_mask;
}

/* Running means 0, variances 1: BN in eval mode is then (almost) the identity. */
static void fresh_running_stats(dp_params *p)
{
    for (int i = 0; i < p->count; i++) {
        dp_param *it = p->items[i];
        if (!it->is_buffer) continue;
        const float v = strstr(it->name, "running_var") ? 1.0f : 0.0f;
        for (long j = 0; j < it->t.n; j++) it->t.data[j] = v;
    }
}

/* The two checks of one configuration: alpha (all ops), then x (no max-pool). */
static void check_alpha_and_x(const char *name, gc_build_fn fn, net_arg *a, const float *mask)
{
    gc_input ins[2] = {{.ndim = 4, .shape = {2, 2, 6, 6}, .lo = -1, .hi = 1, .no_grad = 1},
                       {.ndim = 3, .shape = {2, 14, NOPS}, .lo = -1, .hi = 1}};
    gc_opts o = net_opts();
    o.max_checks = 2 * NW;
    a->sn->mix.mask = mask;
    CHECK_GRAD_MOSTLY(name, 2, ins, fn, a, &o, MISS_BUDGET);
    ins[0].no_grad = 0;
    ins[1].no_grad = 1;
    a->sn->mix.mask = without_max_pool(mask);
    a->eval = 1;
    fresh_running_stats(&a->sn->model->params);
    CHECK_GRAD_MOSTLY(name, 2, ins, fn, a, &o, MISS_BUDGET);
    a->eval = 0;
    restore_alpha(a->sn);
}

ParameterizedTestParameters(supernet, gradcheck)
{
    static mix_case cases[] = {{DP_NAS_DARTS, 1, 0},
                               {DP_NAS_TEMPERATURE, 0.5f, 0},
                               {DP_NAS_GOLD, 1, 1},
                               {DP_NAS_DARTS, 1, 1}}; /* a mask prunes ops under darts too */
    return cr_make_param_array(mix_case, cases, sizeof cases / sizeof cases[0]);
}

/* d (logits . R) / d alpha and / d x for darts, temperature and gold, by central differences. */
ParameterizedTest(mix_case *p, supernet, gradcheck, .timeout = DP_TIMEOUT(120))
{
    net_arg a = {.sn = build(3, 2, TINY_SHAPE, 0, NULL)};
    condition(a.sn);
    make_mask(gold_mask);
    a.sn->mix = (dp_nas_mix){.strategy = p->strategy, .temperature = p->t};
    check_alpha_and_x(dp_nas_strategy_name(p->strategy), build_net, &a, p->masked ? gold_mask : NULL);
    dp_supernet_free(a.sn);
}

/* ---- gumbel (GDAS straight-through) ----
 *
 * The forward uses the hard one-hot h = onehot(argmax softmax((alpha + g) / T))
 * and computes only the sampled ops; the backward treats h as the soft s =
 * softmax((alpha + g) / T). So the gradient is J_s(alpha)^T dL/dh at h = h0,
 * which is exactly the gradient at alpha0 of the surrogate
 *     G(alpha) = L( weights h0 + s(alpha) - s(alpha0), computing the ops h0 picked ),
 * a function that equals the hard forward at alpha0 and moves with the soft
 * weights. What is checked: the analytic alpha gradient of the gumbel forward
 * (the pass with grad on) against central differences of G (the passes with
 * grad off); and, separately, that G at alpha0 equals the hard forward. The
 * input gradient is an ordinary check: with the noise fixed the sample does
 * not depend on x. */

static float gumbel_noise[2 * NW];

static void make_gumbel(float *g)
{
    dp_rng r;
    dp_rng_seed(&r, 17, DP_STREAM_USER, 0);
    for (int i = 0; i < 2 * NW; i++) g[i] = -logf(-logf(fmaxf(dp_rng_uniform(&r), 1e-12f)));
}

/* h0 and h0 - s0 at alpha (float, as the forward makes them) */
static void sample_at(net_arg *a, const float *alpha, float T)
{
    dp_ctx c;
    dp_ctx_init(&c);
    float tmp[2 * NW];
    for (int i = 0; i < 2 * NW; i++) tmp[i] = alpha[i];
    dp_tensor *in = dp_tensor_wrap(&c, tmp, 2, (int[]){28, NOPS});
    dp_tensor *s = dp_softmax(&c, dp_add(&c, in, dp_tensor_wrap(&c, gumbel_noise, 2, (int[]){28, NOPS})), T);
    dp_tensor *h = dp_onehot_st(&c, s);
    cr_assert(s && h);
    for (int i = 0; i < 2 * NW; i++) {
        a->h0[i] = h->data[i];
        a->shift[i] = h->data[i] - s->data[i];
    }
    dp_ctx_free(&c);
}

static dp_tensor *surrogate(dp_ctx *c, net_arg *a, dp_tensor *x, float T)
{
    dp_tensor *w[2];
    for (int t = 0; t < 2; t++) {
        dp_tensor *al = t ? &a->ar : &a->an;
        dp_tensor *g = dp_tensor_wrap(c, gumbel_noise + t * NW, 2, (int[]){14, NOPS});
        dp_tensor *sh = dp_tensor_wrap(c, a->shift + t * NW, 2, (int[]){14, NOPS});
        w[t] = dp_add(c, dp_softmax(c, dp_add(c, al, g), T), sh);
    }
    return dp_supernet_forward_weights(a->sn, c, x, w, a->h0);
}

static dp_tensor *build_gumbel(dp_ctx *c, dp_tensor **in, void *arg)
{
    net_arg *a = arg;
    alpha_from(a, in[1]);
    c->training = !a->eval;
    if (c->grad_enabled || !in[1]->requires_grad) return a->sn->model->forward(a->sn->model, c, in[0]);
    return surrogate(c, a, in[0], a->sn->mix.temperature);
}

/* The checker's inputs, drawn the way gc_check draws them (same seed and order). */
static void checker_inputs(const gc_input *ins, int n, float **out)
{
    dp_rng r;
    dp_rng_seed(&r, net_opts().seed, DP_STREAM_USER, 1);
    for (int i = 0; i < n; i++) {
        long m = 1;
        for (int d = 0; d < ins[i].ndim; d++) m *= ins[i].shape[d];
        dp_init_uniform(&r, out[i], (size_t)m, ins[i].lo, ins[i].hi);
    }
}

Test(supernet, gumbel_straight_through_gradient, .timeout = DP_TIMEOUT(120))
{
    const float T = 0.7f;
    net_arg a = {.sn = build(3, 2, TINY_SHAPE, 0, NULL)};
    condition(a.sn);
    make_gumbel(gumbel_noise);
    a.sn->mix = (dp_nas_mix){.strategy = DP_NAS_GUMBEL, .temperature = T, .gumbel = gumbel_noise};
    gc_input ins[2] = {{.ndim = 4, .shape = {2, 2, 6, 6}, .lo = -1, .hi = 1},
                       {.ndim = 3, .shape = {2, 14, NOPS}, .lo = -1, .hi = 1}};
    static float x0[2 * 2 * 6 * 6], alpha0[2 * NW];
    checker_inputs(ins, 2, (float *[]){x0, alpha0});
    sample_at(&a, alpha0, T);

    /* the hard forward computes the sampled ops only and equals G at alpha0 */
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor al = {.data = alpha0, .ndim = 3, .shape = {2, 14, NOPS, 1}, .n = 2 * NW, .requires_grad = 0};
    alpha_from(&a, &al);
    dp_tensor *X = dp_tensor_wrap(&c, x0, 4, (int[]){2, 2, 6, 6});
    dp_tensor *hard = a.sn->model->forward(a.sn->model, &c, X);
    cr_assert_not_null(hard, "%s", dp_errmsg());
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < NW; i++) cr_assert_eq(a.sn->weights[t]->data[i], a.h0[t * NW + i]);
    dp_tensor *g0 = surrogate(&c, &a, X, T);
    cr_assert_not_null(g0, "%s", dp_errmsg());
    for (long i = 0; i < hard->n; i++) cr_assert_float_eq(hard->data[i], g0->data[i], 1e-6f, "logit %ld", i);
    dp_ctx_free(&c);

    check_alpha_and_x("gumbel straight-through", build_gumbel, &a, NULL);
    dp_supernet_free(a.sn);
}

/* ---- maxw (sharpDARTS' Max-W) ----
 *
 * The forward weighs op k by w_k = s_k + 1 - max_j s_j, s = softmax(alpha),
 * and the shift passes no gradient, so the alpha gradient is J_s^T dL/dw.
 * Checked in three parts, since a central difference through alpha does
 * not resolve it in float: every op weighs ~1, a node is the sum of ~7 unit
 * outputs, and alpha moves it by s_k(1 - s_k) h of that, 7x less signal
 * against the rounding than under darts (measured: 32-84% of the elements
 * missed at h 5e-4..2e-3, and more as h shrinks). So:
 *   - the weights: the favoured op weighs 1, the others 1 - (s_max - s_k);
 *   - the alpha gradient equals that of the surrogate L(s(alpha) + shift0),
 *     shift0 held at alpha0 (the detached max), through softmax and add;
 *   - dL/dw at such weights against central differences (the supernet's
 *     weighted forward, as the maxw forward feeds it). */
static float maxw_shift[2 * NW];

/* softmax of alpha's 28 rows, in double, and each row's shift 1 - its max */
static void maxw_shift_at(const float *alpha, double *soft)
{
    for (int r = 0; r < 28; r++) {
        const float *ar = alpha + r * NOPS;
        double mx = ar[0], sum = 0, smax = 0;
        for (int k = 1; k < NOPS; k++) mx = fmax(mx, ar[k]);
        for (int k = 0; k < NOPS; k++) sum += soft[r * NOPS + k] = exp(ar[k] - mx);
        for (int k = 0; k < NOPS; k++) smax = fmax(smax, soft[r * NOPS + k] /= sum);
        for (int k = 0; k < NOPS; k++) maxw_shift[r * NOPS + k] = (float)(1.0 - smax);
    }
}

/* the logits of the maxw forward (surrogate 0) or of the surrogate, and alpha's gradient for seed dy */
static void maxw_pass(net_arg *a, int surrogate, const float *alpha0, float *x0, const float *dy, float *logits,
                      float *grad)
{
    static float al[2 * NW];
    memcpy(al, alpha0, sizeof al);
    memset(grad, 0, 2 * NW * sizeof *grad);
    dp_tensor t = {.data = al, .grad = grad, .ndim = 3, .shape = {2, 14, NOPS, 1}, .n = 2 * NW, .requires_grad = 1};
    alpha_from(a, &t);
    dp_ctx c;
    dp_ctx_init(&c);
    c.training = 1;
    dp_tensor *X = dp_tensor_wrap(&c, x0, 4, (int[]){2, 2, 6, 6}), *y;
    if (surrogate) {
        dp_tensor *w[2];
        for (int k = 0; k < 2; k++)
            w[k] = dp_add(&c, dp_softmax(&c, k ? &a->ar : &a->an, 1.0f),
                          dp_tensor_wrap(&c, maxw_shift + k * NW, 2, (int[]){14, NOPS}));
        y = dp_supernet_forward_weights(a->sn, &c, X, w, NULL);
    } else {
        y = a->sn->model->forward(a->sn->model, &c, X);
        for (int k = 0; k < 2; k++) memcpy(logits + 6 + k * NW, a->sn->weights[k]->data, NW * sizeof(float));
    }
    cr_assert(y && y->n == 6, "%s", dp_errmsg());
    memcpy(logits, y->data, 6 * sizeof(float));
    y->grad = (float *)dy;
    cr_assert_eq(dp_backward(&c, y), DP_OK, "%s", dp_errmsg());
    dp_ctx_free(&c);
    restore_alpha(a->sn);
}

typedef struct maxw_arg {
    dp_supernet *sn;
    dp_tensor wn, wr;
} maxw_arg;

static dp_tensor *build_weights(dp_ctx *c, dp_tensor **in, void *arg)
{
    maxw_arg *a = arg;
    for (int t = 0; t < 2; t++) {
        dp_tensor *v = t ? &a->wr : &a->wn;
        memset(v, 0, sizeof *v);
        dp_tensor_set_shape(v, 2, (int[]){14, NOPS});
        v->data = in[1]->data + t * NW;
        v->grad = in[1]->requires_grad ? in[1]->grad + t * NW : NULL;
        v->requires_grad = in[1]->requires_grad;
    }
    c->training = 1;
    return dp_supernet_forward_weights(a->sn, c, in[0], (dp_tensor *[]){&a->wn, &a->wr}, NULL);
}

Test(supernet, maxw_weights_and_gradient, .timeout = DP_TIMEOUT(120))
{
    net_arg a = {.sn = build(3, 2, TINY_SHAPE, 0, NULL)};
    condition(a.sn);
    a.sn->mix = (dp_nas_mix){.strategy = DP_NAS_MAXW, .temperature = 1.0f};
    cr_assert_str_eq(dp_nas_strategy_name(DP_NAS_MAXW), "maxw");
    static float x0[2 * 2 * 6 * 6], alpha0[2 * NW], dy[6], out[2][6 + 2 * NW], g[2][2 * NW];
    static double soft[2 * NW];
    dp_rng r;
    dp_rng_seed(&r, 5, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x0, sizeof x0 / sizeof *x0, -1, 1);
    dp_init_uniform(&r, alpha0, 2 * NW, -1, 1);
    dp_init_uniform(&r, dy, 6, -1, 1);
    maxw_shift_at(alpha0, soft);
    for (int pass = 0; pass < 2; pass++) maxw_pass(&a, pass, alpha0, x0, dy, out[pass], g[pass]);

    for (int i = 0; i < 2 * NW; i++) {
        const int row = i / NOPS;
        double smax = 0;
        for (int k = 0; k < NOPS; k++) smax = fmax(smax, soft[row * NOPS + k]);
        cr_assert_float_eq(out[0][6 + i], 1.0 - (smax - soft[i]), 1e-6, "weight %d", i);
        cr_assert(soft[i] < smax || out[0][6 + i] == 1.0f, "weight %d: the favoured op weighs %g", i, out[0][6 + i]);
    }
    double gmax = 0;
    for (int i = 0; i < 2 * NW; i++) gmax = fmax(gmax, fabs(g[1][i]));
    cr_assert_gt(gmax, 1e-4, "alpha's gradient is zero: nothing checked");
    /* the shift is computed in double here, the forward's in float: equal to float rounding */
    for (int i = 0; i < 6; i++) cr_assert_float_eq(out[0][i], out[1][i], 1e-6f * fmaxf(1.0f, fabsf(out[0][i])), "logit %d", i);
    for (int i = 0; i < 2 * NW; i++) cr_assert_float_eq(g[0][i], g[1][i], 1e-5 * gmax, "alpha %d: %g %g", i, g[0][i], g[1][i]);

    /* dL/dw at weights like maxw's (the favoured op 1, the others 0.6..1) */
    maxw_arg m = {.sn = a.sn};
    gc_input ins[2] = {{.ndim = 4, .shape = {2, 2, 6, 6}, .lo = -1, .hi = 1, .no_grad = 1},
                       {.ndim = 3, .shape = {2, 14, NOPS}, .lo = 0.6f, .hi = 1.0f}};
    gc_opts o = net_opts();
    o.max_checks = 2 * NW;
    o.h = 1e-2; /* the rounding again: at 2e-3 8-36% of the elements missed over gc seeds 1-6, at 1e-2 0-1.8% */
    CHECK_GRAD_MOSTLY("maxw weights", 2, ins, build_weights, &m, &o, MISS_BUDGET);
    dp_supernet_free(a.sn);
}

/* ------------------------------------------------------------------ costs */

typedef struct cost_arg {
    net_arg net;
    float cost[2 * NW];
} cost_arg;

static dp_tensor *build_cost(dp_ctx *c, dp_tensor **in, void *arg)
{
    cost_arg *a = arg;
    if (!build_net(c, in, &a->net)) return NULL;
    return dp_supernet_expected_cost(c, a->net.sn, a->cost);
}

ParameterizedTestParameters(expected_cost, gradcheck)
{
    static mix_case cases[] = {{DP_NAS_DARTS, 1, 0}, {DP_NAS_TEMPERATURE, 0.5f, 0}, {DP_NAS_GOLD, 1, 1}};
    return cr_make_param_array(mix_case, cases, sizeof cases / sizeof cases[0]);
}

/* E[cost] is smooth in alpha (no BN or kink on its path): h 1e-2 and a 5x
 * tighter tolerance than the default. */
ParameterizedTest(mix_case *p, expected_cost, gradcheck, .timeout = DP_TIMEOUT(60))
{
    static cost_arg a;
    memset(&a, 0, sizeof a);
    a.net.sn = build(3, 2, TINY_SHAPE, 0, NULL);
    make_mask(gold_mask);
    a.net.sn->mix = (dp_nas_mix){.strategy = p->strategy, .temperature = p->t, .mask = p->masked ? gold_mask : NULL};
    double cost[2 * NW], mx = 0;
    dp_supernet_costs(a.net.sn, NULL, NULL, cost);
    for (int i = 0; i < 2 * NW; i++) mx = fmax(mx, cost[i]);
    for (int i = 0; i < 2 * NW; i++) a.cost[i] = (float)(cost[i] / mx);
    gc_input ins[2] = {{.ndim = 4, .shape = {2, 2, 6, 6}, .lo = -1, .hi = 1, .no_grad = 1},
                       {.ndim = 3, .shape = {2, 14, NOPS}, .lo = -1, .hi = 1}};
    gc_opts o = gc_defaults();
    o.atol = 2e-4;
    o.rtol = 2e-3;
    CHECK_GRAD("expected cost", 2, ins, build_cost, &a, &o);

    /* and its value: sum of w * cost over both cell types */
    dp_ctx c;
    dp_ctx_init(&c);
    restore_alpha(a.net.sn);
    static float x[2 * 2 * 6 * 6];
    dp_tensor *y = a.net.sn->model->forward(a.net.sn->model, &c, dp_tensor_wrap(&c, x, 4, (int[]){2, 2, 6, 6}));
    dp_tensor *ec = dp_supernet_expected_cost(&c, a.net.sn, a.cost);
    cr_assert(y && ec && ec->ndim == 1 && ec->n == 1, "%s", dp_errmsg());
    double want = 0;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < NW; i++) want += (double)a.net.sn->weights[t]->data[i] * a.cost[t * NW + i];
    cr_assert_float_eq(ec->data[0], want, 1e-5 * fabs(want));
    dp_ctx_free(&c);
    dp_supernet_free(a.net.sn);
}

Test(darts_ops, flops_ordering, .timeout = DP_TIMEOUT(10))
{
    const int C = 8, H = 14, W = 14;
    double f[DP_NAS_NUM_OPS];
    for (int k = 0; k < DP_NAS_NUM_OPS; k++) f[k] = dp_darts_op_flops(k, C, H, W, 1);
    cr_assert_eq(f[DP_NAS_NONE], 0);
    cr_assert_eq(f[DP_NAS_SKIP_CONNECT], 0);
    cr_assert_gt(f[DP_NAS_SEP_CONV_3X3], 0);
    cr_assert_gt(f[DP_NAS_SEP_CONV_5X5], f[DP_NAS_SEP_CONV_3X3]);
    cr_assert_gt(f[DP_NAS_DIL_CONV_5X5], f[DP_NAS_DIL_CONV_3X3]);
    cr_assert_gt(f[DP_NAS_SEP_CONV_3X3], f[DP_NAS_DIL_CONV_3X3]);
    cr_assert_gt(f[DP_NAS_DIL_CONV_3X3], f[DP_NAS_MAX_POOL_3X3]);
    cr_assert_gt(f[DP_NAS_MAX_POOL_3X3], 0);
    cr_assert_eq(f[DP_NAS_MAX_POOL_3X3], f[DP_NAS_AVG_POOL_3X3]);
    /* sep_conv_3x3: two (depthwise 9 + pointwise C) MACs and a BN per output cell */
    cr_assert_float_eq(f[DP_NAS_SEP_CONV_3X3], 2.0 * (2.0 * (9 + C) * C * H * W + 2.0 * C * H * W), 1e-6);
    cr_assert_gt(dp_darts_op_flops(DP_NAS_SKIP_CONNECT, C, H, W, 2), 0);
    cr_assert_eq(dp_darts_op_flops(DP_NAS_NONE, C, H, W, 2), 0);
    /* stride 2 on 14x14 (or 13x13) works on 7x7 outputs */
    cr_assert_float_eq(dp_darts_op_flops(DP_NAS_SEP_CONV_5X5, C, 13, 13, 2) * 4,
                       dp_darts_op_flops(DP_NAS_SEP_CONV_5X5, C, 7, 7, 1) * 4, 1e-6);
}

/* Records (C, H, W, stride) as one number so a sum over cells can be recomputed. */
static double probe_cost(int op, int C, int H, int W, int stride, void *user)
{
    (*(int *)user)++;
    return op * 1e6 + C * 1e4 + H * 1e2 + W + stride * 1e-1;
}

Test(supernet, costs_sum_over_cells_of_each_type, .timeout = DP_TIMEOUT(30))
{
    dp_supernet *sn = build(5, 8, (dp_model_shape){1, 28, 28, 10}, 0, NULL);
    static double cost[2 * NW];
    int calls = 0;
    dp_supernet_costs(sn, probe_cost, &calls, cost);
    cr_assert_eq(calls, 5 * NW);
    /* cells: normal (8, 28), reduce (16, 28 -> 14), normal (16, 14), reduce (32, 14 -> 7), normal (32, 7) */
    const int nC[3] = {8, 16, 32}, nH[3] = {28, 14, 7}, rC[2] = {16, 32}, rH[2] = {28, 14};
    for (int e = 0; e < 14; e++) {
        const int from_input = e == 0 || e == 1 || e == 2 || e == 3 || e == 5 || e == 6 || e == 9 || e == 10;
        for (int k = 0; k < NOPS; k++) {
            double wn = 0, wr = 0;
            for (int i = 0; i < 3; i++) wn += probe_cost(k, nC[i], nH[i], nH[i], 1, &(int){0});
            for (int i = 0; i < 2; i++) {
                const int H = from_input ? rH[i] : rH[i] / 2;
                wr += probe_cost(k, rC[i], H, H, from_input ? 2 : 1, &(int){0});
            }
            cr_assert_float_eq(cost[e * NOPS + k], wn, 1e-9 * wn, "normal edge %d op %d", e, k);
            cr_assert_float_eq(cost[NW + e * NOPS + k], wr, 1e-9 * wr, "reduce edge %d op %d", e, k);
        }
    }
    /* FLOPs: the edges' share of the model's count */
    dp_supernet_costs(sn, NULL, NULL, cost);
    double edges = 0;
    for (int i = 0; i < 2 * NW; i++) edges += cost[i];
    cr_assert_gt(edges, 0.5 * sn->model->flops_per_sample);
    cr_assert_lt(edges, sn->model->flops_per_sample);
    cr_assert_eq(cost[DP_NAS_NONE], 0);
    dp_supernet_free(sn);
}

/* ---- recomputation (--recompute) ---- */

typedef struct net_grads {
    float *w, *a, *buf, out[6];
} net_grads;

/* One forward and backward of x [2, 2, 6, 6]; the weight, alpha and buffer bytes afterwards. */
static void grads_of(dp_supernet *sn, float *x, net_grads *g)
{
    dp_params *wp = &sn->model->params, *ap = &sn->alpha;
    dp_ctx c;
    dp_ctx_init(&c);
    dp_params_zero_grad(wp);
    dp_params_zero_grad(ap);
    dp_tensor *y = sn->model->forward(sn->model, &c, dp_tensor_wrap(&c, x, 4, (int[]){2, 2, 6, 6}));
    cr_assert_not_null(y, "%s", dp_errmsg());
    cr_assert_eq(y->n, 6);
    memcpy(g->out, y->data, sizeof g->out);
    float *dy = dp_grad(&c, y);
    for (int i = 0; i < 6; i++) dy[i] = (float)(i + 1) / 6.0f - 0.4f;
    cr_assert_eq(dp_backward(&c, y), DP_OK, "%s", dp_errmsg());
    g->w = malloc(wp->n * sizeof(float));
    g->a = malloc(ap->n * sizeof(float));
    g->buf = malloc(wp->nbuf * sizeof(float));
    cr_assert(g->w && g->a && g->buf);
    memcpy(g->w, wp->grad, wp->n * sizeof(float));
    memcpy(g->a, ap->grad, ap->n * sizeof(float));
    memcpy(g->buf, wp->buffers, wp->nbuf * sizeof(float));
    dp_ctx_free(&c);
}

static void grads_free(net_grads *g)
{
    free(g->w);
    free(g->a);
    free(g->buf);
}

/* Weights, alpha and running statistics come out the same bits with every
 * cell recomputed in backward as with the graph kept, under each strategy
 * (gumbel computes only the sampled ops, gold skips the pruned ones). */
Test(supernet, recompute_gives_the_same_bits, .timeout = DP_TIMEOUT(60))
{
    static float gumbel[2 * NW];
    make_gumbel(gumbel);
    make_mask(gold_mask);
    const dp_nas_mix mixes[3] = {{.strategy = DP_NAS_DARTS, .temperature = 1},
                                 {.strategy = DP_NAS_GUMBEL, .temperature = 1, .gumbel = gumbel},
                                 {.strategy = DP_NAS_GOLD, .temperature = 1, .mask = gold_mask}};
    for (int m = 0; m < 3; m++) {
        dp_supernet *sn = build(3, 2, TINY_SHAPE, 0, NULL);
        dp_params *wp = &sn->model->params;
        sn->mix = mixes[m];
        float x[144], *buf0 = malloc(wp->nbuf * sizeof(float));
        cr_assert_not_null(buf0);
        dp_rng r;
        dp_rng_seed(&r, 11, DP_STREAM_USER, 0);
        dp_init_uniform(&r, x, 144, -1, 1);
        memcpy(buf0, wp->buffers, wp->nbuf * sizeof(float));
        net_grads kept, again;
        grads_of(sn, x, &kept);
        memcpy(wp->buffers, buf0, wp->nbuf * sizeof(float));
        sn->cfg.recompute = 2; /* cells 0, 1 recomputed, cell 2 kept */
        grads_of(sn, x, &again);
        const char *name = dp_nas_strategy_name(mixes[m].strategy);
        cr_assert(!memcmp(kept.out, again.out, sizeof kept.out), "%s: logits differ", name);
        cr_assert(!memcmp(kept.w, again.w, wp->n * sizeof(float)), "%s: weight gradients differ", name);
        cr_assert(!memcmp(kept.a, again.a, sn->alpha.n * sizeof(float)), "%s: alpha gradients differ", name);
        cr_assert(!memcmp(kept.buf, again.buf, wp->nbuf * sizeof(float)), "%s: running statistics differ", name);
        double gw = 0, ga = 0;
        for (size_t i = 0; i < wp->n; i++) gw += fabs(again.w[i]);
        for (size_t i = 0; i < sn->alpha.n; i++) ga += fabs(again.a[i]);
        cr_assert(gw > 0 && ga > 0, "%s: no gradient (weights %g, alpha %g)", name, gw, ga);
        grads_free(&kept);
        grads_free(&again);
        free(buf0);
        dp_supernet_free(sn);
    }
}

/* ---- PC-DARTS: partial channels and edge normalisation ----
 *
 * The same tiny supernet (3 cells: normal, reduce, reduce on 6 x 6, odd 3 x 3
 * in the last) with K partial channels, so C = 2K: the ops are built on 2
 * channels, like the plain checks' C = 2. The checked leaf is alpha then beta
 * (2 x 14 x 8 + 2 x 14 floats, beta only with edge normalisation), all of it:
 * a wrong beta gradient misses 28 of 252 elements (11%), over MISS_BUDGET.
 * Without edge normalisation a node adds its edges' bypassed channels with
 * weight 1 (not softmax(beta), summing to 1), nodes feed later nodes, and
 * the logits grow: at h = 2e-3 float rounding of the central differences
 * missed 10 of 224 alpha elements at K = 4, at 1e-3 57, at 5e-4 122 (the
 * misses grow as h shrinks: rounding, not a wrong gradient), at 4e-3 none.
 * So that case steps alpha by 4e-3. */

typedef struct pc_case {
    int K, edge_norm;
    double h_alpha;
    int per_layer;
} pc_case;

enum { MAXT = 3 }; /* cell types of these tests' supernets: 2, or 3 cells of their own */

typedef struct pc_arg {
    dp_supernet *sn;
    dp_tensor v[2 * MAXT]; /* the alphas, then the betas, of each type: views onto the leaf */
    int eval;
} pc_arg;

static dp_supernet *build_pc_cells(int layers, int C, int K, int edge_norm, int per_layer)
{
    dp_supernet_config cfg;
    dp_supernet_config_defaults(&cfg);
    cfg.layers = layers;
    cfg.channels = C;
    cfg.in = TINY_SHAPE;
    cfg.partial_channels = K;
    cfg.edge_norm = edge_norm;
    cfg.per_layer = per_layer;
    dp_supernet *sn = NULL;
    cr_assert_eq(dp_supernet_build(&cfg, &sn), DP_OK, "%s", dp_errmsg());
    dp_rng r;
    dp_rng_seed(&r, 5, DP_STREAM_INIT, 0);
    dp_params_init(&sn->model->params, &r);
    dp_supernet_init_alpha(sn, &r);
    return sn;
}

static dp_supernet *build_pc(int layers, int C, int K, int edge_norm)
{
    return build_pc_cells(layers, C, K, edge_norm, 0);
}

static dp_tensor *build_pc_net(dp_ctx *c, dp_tensor **in, void *arg)
{
    pc_arg *a = arg;
    const int T = a->sn->ntypes, nb = a->sn->betas[0] ? 2 * T : T;
    for (int t = 0; t < nb; t++) {
        dp_tensor *v = &a->v[t];
        memset(v, 0, sizeof *v);
        if (t < T)
            dp_tensor_set_shape(v, 2, (int[]){14, NOPS});
        else
            dp_tensor_set_shape(v, 1, (int[]){14});
        const long off = t < T ? t * NW : T * NW + (t - T) * 14;
        v->data = in[1]->data + off;
        v->grad = in[1]->requires_grad ? in[1]->grad + off : NULL;
        v->requires_grad = in[1]->requires_grad;
    }
    for (int t = 0; t < T; t++) {
        a->sn->alphas[t] = &a->v[t];
        if (nb > T) a->sn->betas[t] = &a->v[T + t];
    }
    c->training = !a->eval;
    return a->sn->model->forward(a->sn->model, c, in[0]);
}

ParameterizedTestParameters(partial_channels, gradcheck)
{
    static pc_case cases[] = {{2, 1, 2e-3, 0},  /* PC-DARTS at K = 2 */
                              {4, 1, 2e-3, 0},  /* and at the paper's K = 4 */
                              {4, 0, 4e-3, 0},  /* edges unweighted: ones weight the bypass */
                              {1, 1, 2e-3, 0},  /* edge normalisation on the full mixed op */
                              {2, 1, 2e-3, 1}}; /* D-DARTS: an alpha and a beta per cell */
    return cr_make_param_array(pc_case, cases, sizeof cases / sizeof cases[0]);
}

/* d (logits . R) / d (alpha, beta) with BN on batch statistics, then / d x on fixed statistics without the
 * max-pool column (the top of the file says why; the reducing edges' bypass max-pool stays). */
ParameterizedTest(pc_case *p, partial_channels, gradcheck, .timeout = DP_TIMEOUT(180))
{
    pc_arg a = {.sn = build_pc_cells(3, 2 * p->K, p->K, p->edge_norm, p->per_layer)};
    condition(a.sn);
    const int na = (int)a.sn->alpha.n, T = p->per_layer ? 3 : 2;
    cr_assert_eq(na, T * NW + (p->edge_norm ? T * 14 : 0), "alpha + beta: %d floats", na);
    gc_input ins[2] = {{.ndim = 4, .shape = {2, 2, 6, 6}, .lo = -1, .hi = 1, .no_grad = 1},
                       {.ndim = 1, .shape = {na}, .lo = -1, .hi = 1}};
    gc_opts o = net_opts();
    o.h = p->h_alpha;
    o.max_checks = na;
    char name[64];
    snprintf(name, sizeof name, "K=%d edge_norm=%d%s", p->K, p->edge_norm, p->per_layer ? " per layer" : "");
    CHECK_GRAD_MOSTLY(name, 2, ins, build_pc_net, &a, &o, MISS_BUDGET);
    ins[0].no_grad = 0;
    ins[1].no_grad = 1;
    a.sn->mix.mask = without_max_pool(NULL);
    a.eval = 1;
    fresh_running_stats(&a.sn->model->params);
    o.h = net_opts().h;
    o.max_checks = 2 * 2 * 6 * 6;
    CHECK_GRAD_MOSTLY(name, 2, ins, build_pc_net, &a, &o, MISS_BUDGET);
    dp_supernet_free(a.sn);
}

/* The ops are built on C/K channels (their weights shrink), beta exists exactly with edge normalisation, and
 * a width K cannot halve is refused naming the flag. */
Test(partial_channels, narrow_ops_beta_and_errors, .timeout = DP_TIMEOUT(30))
{
    dp_supernet *full = build_pc(5, 8, 1, -1), *pc = build_pc(5, 8, 4, -1);
    cr_assert_null(full->betas[0]);
    cr_assert_eq(full->alpha.n, 2 * NW);
    cr_assert_not_null(pc->betas[0]);
    cr_assert_eq(pc->alpha.n, 2 * NW + 28);
    cr_assert_str_eq(pc->alpha.items[2]->name, "beta_normal");
    cr_assert_eq(full->model->params.count, pc->model->params.count, "the same modules");
    int convs = 0;
    for (int i = 0; i < pc->model->params.count; i++) {
        const dp_param *f = full->model->params.items[i], *q = pc->model->params.items[i];
        cr_assert_str_eq(f->name, q->name);
        if (!strstr(q->name, ".edge") || q->t.ndim != 4) continue;
        /* a depthwise [C, 1, k, k] or pointwise [C, C, 1, 1] conv: C/4 of the channels, 1/4 or 1/16 of the size */
        cr_assert_eq(q->t.shape[0] * 4, f->t.shape[0], "%s: %d of %d output channels", q->name, q->t.shape[0],
                     f->t.shape[0]);
        convs++;
    }
    cr_assert_gt(convs, 0);
    cr_assert_lt(pc->model->params.n * 3, full->model->params.n, "%zu weights of %zu", pc->model->params.n,
                 full->model->params.n);
    dp_supernet_free(full);
    dp_supernet_free(pc);
    dp_supernet *off = build_pc(5, 8, 4, 0);
    cr_assert_null(off->betas[0]);
    dp_supernet_free(off);

    dp_supernet_config cfg;
    dp_supernet_config_defaults(&cfg);
    cr_assert(cfg.partial_channels == 1 && !dp_supernet_edge_norm(&cfg), "defaults: DARTS");
    cfg.partial_channels = 4;
    cfg.channels = 12; /* C/K = 3: FactorizedReduce cannot halve it */
    dp_supernet *sn = NULL;
    cr_assert_eq(dp_supernet_build(&cfg, &sn), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "--partial-channels 4") && strstr(dp_errmsg(), "12"), "%s", dp_errmsg());
    cr_assert_null(sn);
}

/* Recomputed cells give the kept graph's bits with partial channels and beta too. */
Test(partial_channels, recompute_gives_the_same_bits, .timeout = DP_TIMEOUT(60))
{
    dp_supernet *sn = build_pc(3, 4, 2, 1);
    dp_params *wp = &sn->model->params;
    float x[144], *buf0 = malloc(wp->nbuf * sizeof(float));
    cr_assert_not_null(buf0);
    dp_rng r;
    dp_rng_seed(&r, 11, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x, 144, -1, 1);
    memcpy(buf0, wp->buffers, wp->nbuf * sizeof(float));
    net_grads kept, again;
    grads_of(sn, x, &kept);
    memcpy(wp->buffers, buf0, wp->nbuf * sizeof(float));
    sn->cfg.recompute = 2;
    grads_of(sn, x, &again);
    cr_assert(!memcmp(kept.out, again.out, sizeof kept.out), "logits differ");
    cr_assert(!memcmp(kept.w, again.w, wp->n * sizeof(float)), "weight gradients differ");
    cr_assert(!memcmp(kept.a, again.a, sn->alpha.n * sizeof(float)), "alpha and beta gradients differ");
    double gb = 0;
    for (int i = 2 * NW; i < (int)sn->alpha.n; i++) gb += fabs(again.a[i]);
    cr_assert_gt(gb, 0, "no gradient reaches beta");
    grads_free(&kept);
    grads_free(&again);
    free(buf0);
    dp_supernet_free(sn);
}

/* Derivation with beta: a row's best op stays, the edges are re-ranked by softmax(beta) x weight; a uniform
 * beta scales a node's edges alike and derives dp_nas_derive's genotype. */
Test(partial_channels, derive_ranks_edges_by_beta, .timeout = DP_TIMEOUT(10))
{
    static float w[2][NW];
    float beta[2][14] = {{0}};
    dp_rng r;
    dp_rng_seed(&r, 3, DP_STREAM_USER, 0);
    for (int t = 0; t < 2; t++) dp_init_uniform(&r, w[t], NW, 0.01f, 0.1f);
    /* node 0 (edges 0, 1): edge 0's best 0.5 beats edge 1's 0.4; node 1 (edges 2, 3, 4): 0.5, 0.4, 0.3 */
    const float best[5] = {0.5f, 0.4f, 0.5f, 0.4f, 0.3f};
    const int col[5] = {DP_NAS_SEP_CONV_3X3, DP_NAS_MAX_POOL_3X3, DP_NAS_DIL_CONV_5X5, DP_NAS_SKIP_CONNECT,
                        DP_NAS_AVG_POOL_3X3};
    for (int e = 0; e < 5; e++) w[0][e * NOPS + col[e]] = best[e];
    const int *ops = (int[]){0, 1, 2, 3, 4, 5, 6, 7};
    dp_genotype plain, even, tilted;
    cr_assert_eq(dp_nas_derive(w[0], w[1], ops, NOPS, &plain), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_nas_derive_beta(w[0], w[1], beta[0], beta[1], ops, NOPS, &even), DP_OK, "%s", dp_errmsg());
    cr_assert(!memcmp(&plain, &even, sizeof plain), "a uniform beta changed the genotype");
    cr_assert(plain.normal_in[0] == 0 && plain.normal_in[1] == 1 && plain.normal_in[2] == 0 && plain.normal_in[3] == 1);
    beta[0][1] = 2.0f;  /* node 0: edge 1 (0.4 x 0.88) now before edge 0 (0.5 x 0.12) */
    beta[0][2] = -3.0f; /* node 1: edge 2 (input 0) drops out */
    cr_assert_eq(dp_nas_derive_beta(w[0], w[1], beta[0], beta[1], ops, NOPS, &tilted), DP_OK, "%s", dp_errmsg());
    cr_assert(tilted.normal_in[0] == 1 && tilted.normal_in[1] == 0, "node 0: inputs %d %d", tilted.normal_in[0],
              tilted.normal_in[1]);
    cr_assert(tilted.normal_op[0] == DP_NAS_MAX_POOL_3X3 && tilted.normal_op[1] == DP_NAS_SEP_CONV_3X3,
              "node 0: ops %d %d", tilted.normal_op[0], tilted.normal_op[1]);
    cr_assert(tilted.normal_in[2] == 1 && tilted.normal_in[3] == 2, "node 1: inputs %d %d", tilted.normal_in[2],
              tilted.normal_in[3]);
    cr_assert(tilted.normal_op[2] == DP_NAS_SKIP_CONNECT && tilted.normal_op[3] == DP_NAS_AVG_POOL_3X3);
    cr_assert(!memcmp(tilted.reduce_op, plain.reduce_op, sizeof plain.reduce_op) &&
              !memcmp(tilted.reduce_in, plain.reduce_in, sizeof plain.reduce_in), "the reduce cell's beta is uniform");
}

/* ---- a cell of its own per layer (D-DARTS) ---- */

/* 3 cells (normal, reduce, reduce), each its own alpha and beta: set to the shared supernet's alpha and beta
 * of the cell's type, the two supernets compute the same logits, weight gradients and statistics (the same
 * weights: the registry does not change), and each shared alpha's gradient is the sum of the gradients of
 * the cells of its type. */
Test(per_layer, equals_shared_when_alphas_agree, .timeout = DP_TIMEOUT(60))
{
    dp_supernet *sh = build_pc(3, 4, 2, 1), *pl = build_pc_cells(3, 4, 2, 1, 1);
    dp_params *ws = &sh->model->params, *wl = &pl->model->params;
    cr_assert_eq(pl->ntypes, 3);
    cr_assert_eq(pl->alpha.n, 3 * NW + 3 * 14);
    cr_assert_str_eq(pl->alpha.items[2]->name, "alpha_cell2");
    cr_assert_str_eq(pl->alpha.items[3]->name, "beta_cell0");
    cr_assert(ws->n == wl->n && ws->nbuf == wl->nbuf && !memcmp(ws->data, wl->data, ws->n * sizeof(float)),
              "the weights differ");
    for (int t = 0; t < 3; t++) {
        const int red = dp_nas_layer_reduces(t, 3);
        memcpy(pl->alphas[t]->data, sh->alphas[red]->data, NW * sizeof(float));
        memcpy(pl->betas[t]->data, sh->betas[red]->data, 14 * sizeof(float));
    }
    float x[144];
    dp_rng r;
    dp_rng_seed(&r, 12, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x, 144, -1, 1);
    net_grads a, b;
    grads_of(sh, x, &a);
    grads_of(pl, x, &b);
    cr_assert(!memcmp(a.out, b.out, sizeof a.out), "logits differ");
    cr_assert(!memcmp(a.w, b.w, ws->n * sizeof(float)), "weight gradients differ");
    cr_assert(!memcmp(a.buf, b.buf, ws->nbuf * sizeof(float)), "running statistics differ");
    double worst = 0, scale = 0;
    for (int t = 0; t < 2; t++) /* alpha rows, then beta rows */
        for (int k = 0; k < NW + 14; k++) {
            const int j = k < NW ? k : k - NW;
            const float *gs = a.a + (k < NW ? t * NW : 2 * NW + t * 14) + j;
            double sum = 0;
            for (int l = 0; l < 3; l++)
                if (dp_nas_layer_reduces(l, 3) == t) sum += b.a[(k < NW ? l * NW : 3 * NW + l * 14) + j];
            worst = fmax(worst, fabs(sum - *gs));
            scale = fmax(scale, fabs(*gs));
        }
    cr_assert_gt(scale, 0, "no gradient reaches alpha");
    cr_assert_leq(worst, 1e-5 * scale, "the cells' gradients do not sum to the shared one: %g of %g", worst, scale);
    /* cells of one type get gradients of their own */
    double apart = 0;
    for (int k = 0; k < NW; k++) apart = fmax(apart, fabs(b.a[NW + k] - b.a[2 * NW + k]));
    cr_assert_gt(apart, 1e-3 * scale, "the two reduction cells' alpha gradients are alike");
    grads_free(&a);
    grads_free(&b);
    dp_supernet_free(sh);
    dp_supernet_free(pl);
}

/* Derivation per cell type: each cell its own best ops and edges, by beta too; 2 shared types are
 * dp_nas_derive's genotype. */
Test(per_layer, derive_a_cell_per_layer, .timeout = DP_TIMEOUT(10))
{
    static float w[3 * NW];
    float beta[3 * 14] = {0};
    dp_rng r;
    dp_rng_seed(&r, 4, DP_STREAM_USER, 0);
    dp_init_uniform(&r, w, 3 * NW, 0.01f, 0.1f);
    const int fav[3] = {DP_NAS_SEP_CONV_5X5, DP_NAS_AVG_POOL_3X3, DP_NAS_DIL_CONV_3X3};
    for (int t = 0; t < 3; t++)
        for (int e = 0; e < 14; e++) w[t * NW + e * NOPS + fav[t]] = 0.5f + 0.01f * (float)e;
    const int *ops = (int[]){0, 1, 2, 3, 4, 5, 6, 7};
    dp_genotype g, pair, plain;
    cr_assert_eq(dp_nas_derive_types(w, NULL, 3, 1, ops, NOPS, &g), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(g.layers, 3);
    for (int t = 0; t < 3; t++)
        for (int k = 0; k < 8; k++) {
            cr_assert_eq(g.cell_op[t][k], fav[t], "cell %d pair %d: %s", t, k, dp_nas_op_name(g.cell_op[t][k]));
            /* the later edge of a node scores higher: node i keeps its last two inputs */
            cr_assert_eq(g.cell_in[t][k], k / 2 + 1 - k % 2, "cell %d pair %d: input %d", t, k, g.cell_in[t][k]);
        }
    beta[14 + 0] = 3.0f; /* cell 1, node 0: edge 0 (input 0) weighs most */
    cr_assert_eq(dp_nas_derive_types(w, beta, 3, 1, ops, NOPS, &g), DP_OK, "%s", dp_errmsg());
    cr_assert(g.cell_in[1][0] == 0 && g.cell_in[0][0] == 1 && g.cell_in[2][0] == 1, "beta of cell 1 only");
    cr_assert_eq(dp_nas_derive_types(w, NULL, 2, 0, ops, NOPS, &pair), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_nas_derive(w, w + NW, ops, NOPS, &plain), DP_OK, "%s", dp_errmsg());
    cr_assert(!memcmp(&pair, &plain, sizeof pair) && pair.layers == 0);
    cr_assert_eq(dp_nas_derive_types(w, NULL, 3, 0, ops, NOPS, &g), DP_ERR_ARG);
    cr_assert_eq(dp_nas_derive_types(w, NULL, 21, 1, ops, NOPS, &g), DP_ERR_ARG);
}

Test(per_layer, config_errors, .timeout = DP_TIMEOUT(10))
{
    dp_supernet_config cfg;
    dp_supernet_config_defaults(&cfg);
    cfg.per_layer = 1;
    cfg.layers = 21;
    dp_supernet *sn = NULL;
    cr_assert_eq(dp_supernet_build(&cfg, &sn), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "--cell-per-layer with 21 layers"), "%s", dp_errmsg());
    cr_assert_null(sn);
}
