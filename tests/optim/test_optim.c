/* Tests for the optimizers in src/optim: SGD (plain, momentum, dampening, Nesterov,
 * weight decay) and Adam/AdamW against numbers worked out by hand or by a plain
 * double-precision transcription of the torch formulas written here, not taken
 * from the implementation; plus the dp_optimizer object's bookkeeping. */
#include <criterion/criterion.h>
#include "timeout.h"
#include <criterion/parameterized.h>

#include <math.h>
#include <string.h>

#include "dptrain/optim.h"

/* Float kernels against double references: a few ulps per step, so a relative
 * 1e-5 with a small absolute floor is tight enough to catch any formula slip
 * (those move results by >= 1e-3 here). */
static void expect_close(double got, double want, const char *what, int i)
{
    double tol = 1e-6 + 1e-5 * fabs(want);
    cr_expect(fabs(got - want) <= tol, "%s[%d]: got %.9g, want %.9g", what, i, got, want);
}

/* ---------------------------------------------------------------- SGD ---- */

Test(optim_sgd, plain_one_step, .timeout = DP_TIMEOUT(10))
{
    /* p - lr*g with lr = 0.1: 1-0.05, -2-0.025, 0.5+0.1 */
    float p[3] = {1.0f, -2.0f, 0.5f};
    const float g[3] = {0.5f, 0.25f, -1.0f};
    dp_opt_config c = dp_opt_defaults(DP_OPT_SGD);
    dp_sgd_update(p, g, NULL, 3, &c, 0.1f, 1);
    const double want[3] = {0.95, -2.025, 0.6};
    for (int i = 0; i < 3; i++)
        expect_close(p[i], want[i], "p", i);
}

/* Minimising p^2 (g = 2p) from p = 1, lr 0.1, momentum 0.9, by hand:
 *   1: g=2     buf=2                 p=1-0.2=0.8
 *   2: g=1.6   buf=1.8+1.6=3.4       p=0.8-0.34=0.46
 *   3: g=0.92  buf=3.06+0.92=3.98    p=0.46-0.398=0.062 */
Test(optim_sgd, momentum_three_steps, .timeout = DP_TIMEOUT(10))
{
    dp_opt_config c = dp_opt_defaults(DP_OPT_SGD);
    c.momentum = 0.9f;
    dp_optimizer o;
    cr_assert_eq(dp_optimizer_init(&o, &c, 1), DP_OK);
    cr_assert_eq(o.state_n, 1);
    float p = 1.0f, g;
    const double want_p[3] = {0.8, 0.46, 0.062}, want_buf[3] = {2.0, 3.4, 3.98};
    for (int s = 0; s < 3; s++) {
        g = 2.0f * p;
        dp_optimizer_step(&o, &p, &g, 0.1f);
        expect_close(p, want_p[s], "p", s);
        expect_close(o.state[0], want_buf[s], "buf", s);
    }
    cr_expect_eq(o.t, 3);
    dp_optimizer_free(&o);
}

/* Same problem with Nesterov (d = g + 0.9*buf), by hand:
 *   1: g=2       buf=2                     d=2+1.8=3.8          p=1-0.38=0.62
 *   2: g=1.24    buf=1.8+1.24=3.04         d=1.24+2.736=3.976   p=0.62-0.3976=0.2224
 *   3: g=0.4448  buf=2.736+0.4448=3.1808   d=0.4448+2.86272=3.30752
 *                                                               p=0.2224-0.330752=-0.108352 */
Test(optim_sgd, nesterov_three_steps, .timeout = DP_TIMEOUT(10))
{
    dp_opt_config c = dp_opt_defaults(DP_OPT_SGD);
    c.momentum = 0.9f;
    c.nesterov = 1;
    dp_optimizer o;
    cr_assert_eq(dp_optimizer_init(&o, &c, 1), DP_OK);
    float p = 1.0f, g;
    const double want[3] = {0.62, 0.2224, -0.108352};
    for (int s = 0; s < 3; s++) {
        g = 2.0f * p;
        dp_optimizer_step(&o, &p, &g, 0.1f);
        expect_close(p, want[s], "p", s);
    }
    dp_optimizer_free(&o);
}

/* Constant g = 1, p = 1, lr 0.1, weight decay 0.1, momentum 0.9, dampening 0.5.
 * The first step copies d into the buffer undamped (torch's "buf is None"):
 *   1: d=1+0.1=1.1          buf=1.1                              p=1-0.11=0.89
 *   2: d=1+0.089=1.089      buf=0.99+0.5445=1.5345               p=0.89-0.15345=0.73655
 *   3: d=1+0.073655         buf=1.38105+0.5368275=1.9178775      p=0.73655-0.19178775=0.54476225 */
Test(optim_sgd, weight_decay_dampening, .timeout = DP_TIMEOUT(10))
{
    dp_opt_config c = dp_opt_defaults(DP_OPT_SGD);
    c.momentum = 0.9f;
    c.dampening = 0.5f;
    c.weight_decay = 0.1f;
    dp_optimizer o;
    cr_assert_eq(dp_optimizer_init(&o, &c, 1), DP_OK);
    float p = 1.0f;
    const float g = 1.0f;
    const double want_p[3] = {0.89, 0.73655, 0.54476225}, want_buf[3] = {1.1, 1.5345, 1.9178775};
    for (int s = 0; s < 3; s++) {
        dp_optimizer_step(&o, &p, &g, 0.1f);
        expect_close(p, want_p[s], "p", s);
        expect_close(o.state[0], want_buf[s], "buf", s);
    }
    dp_optimizer_free(&o);
}

/* Plain SGD with weight decay only: p = 2, g = 0, wd 0.5, lr 0.1 -> p*(1-0.05) each step. */
Test(optim_sgd, weight_decay_plain, .timeout = DP_TIMEOUT(10))
{
    dp_opt_config c = dp_opt_defaults(DP_OPT_SGD);
    c.weight_decay = 0.5f;
    float p = 2.0f;
    const float g = 0.0f;
    dp_sgd_update(&p, &g, NULL, 1, &c, 0.1f, 1);
    expect_close(p, 1.9, "p", 0);
    dp_sgd_update(&p, &g, NULL, 1, &c, 0.1f, 2);
    expect_close(p, 1.805, "p", 1);
}

/* A vector of odd length (vector body plus scalar tail) over 5 steps with a
 * gradient that changes every step, against a double transcription of torch's
 * _single_tensor_sgd, for each combination of options. */
struct sgd_case {
    float momentum, dampening, wd;
    int nesterov;
};

ParameterizedTestParameters(optim_sgd, vector_vs_reference)
{
    static struct sgd_case cases[] = {
        {0.0f, 0.0f, 0.0f, 0},  {0.0f, 0.0f, 1e-2f, 0}, {0.9f, 0.0f, 0.0f, 0},
        {0.9f, 0.1f, 1e-3f, 0}, {0.9f, 0.0f, 0.0f, 1},  {0.5f, 0.0f, 5e-2f, 1},
    };
    return cr_make_param_array(struct sgd_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct sgd_case *k, optim_sgd, vector_vs_reference, .timeout = DP_TIMEOUT(10))
{
    enum { N = 37, STEPS = 5 };
    float p[N], g[N];
    double rp[N], rbuf[N];
    for (int i = 0; i < N; i++)
        rp[i] = p[i] = (float)sin(0.7 * i + 0.3);
    dp_opt_config c = dp_opt_defaults(DP_OPT_SGD);
    c.momentum = k->momentum;
    c.dampening = k->dampening;
    c.weight_decay = k->wd;
    c.nesterov = k->nesterov;
    dp_optimizer o;
    cr_assert_eq(dp_optimizer_init(&o, &c, N), DP_OK, "%s", dp_errmsg());
    const double lr = 0.05, mom = k->momentum, damp = k->dampening, wd = k->wd;
    for (int s = 1; s <= STEPS; s++) {
        for (int i = 0; i < N; i++)
            g[i] = (float)(cos(0.3 * i * s) + 0.1 * s);
        dp_optimizer_step(&o, p, g, (float)lr);
        for (int i = 0; i < N; i++) {
            double d = (double)g[i] + wd * rp[i];
            if (mom != 0.0) {
                rbuf[i] = s == 1 ? d : mom * rbuf[i] + (1.0 - damp) * d;
                d = k->nesterov ? d + mom * rbuf[i] : rbuf[i];
            }
            rp[i] -= lr * d;
        }
    }
    for (int i = 0; i < N; i++)
        expect_close(p[i], rp[i], "p", i);
    dp_optimizer_free(&o);
}

/* --------------------------------------------------------------- Adam ---- */

/* Step 1 of Adam is lr * g/|g| whatever the betas, since bias correction turns
 * m and v back into g and g^2: p - 0.01*sign(g) (eps 1e-8 shifts it by ~1e-9). */
Test(optim_adam, first_step_is_sign, .timeout = DP_TIMEOUT(10))
{
    float p[3] = {1.0f, -2.0f, 0.5f};
    const float g[3] = {0.1f, -0.3f, 2.0f};
    dp_opt_config c = dp_opt_defaults(DP_OPT_ADAM);
    dp_optimizer o;
    cr_assert_eq(dp_optimizer_init(&o, &c, 3), DP_OK);
    cr_assert_eq(o.state_n, 6);
    dp_optimizer_step(&o, p, g, 0.01f);
    const double want[3] = {0.99, -1.99, 0.49};
    for (int i = 0; i < 3; i++)
        expect_close(p[i], want[i], "p", i);
    /* m = 0.1*g, v = 0.001*g^2 */
    expect_close(o.state[1], -0.03, "m", 1);
    expect_close(o.state[3 + 2], 0.004, "v", 2);
    dp_optimizer_free(&o);
}

/* Double transcription of PyTorch 1.13 _single_tensor_adam(w), one element. */
static void ref_adam(double *p, double g, double *m, double *v, int t, double lr,
                     double b1, double b2, double eps, double wd, int decoupled)
{
    if (decoupled)
        *p *= 1.0 - lr * wd;
    else
        g += wd * *p;
    *m = b1 * *m + (1.0 - b1) * g;
    *v = b2 * *v + (1.0 - b2) * g * g;
    double mhat = *m / (1.0 - pow(b1, t));
    double vhat = *v / (1.0 - pow(b2, t));
    *p -= lr * mhat / (sqrt(vhat) + eps);
}

/* Three steps on a small vector with the gradient of 0.5*(p - target)^2, so each
 * step's gradient depends on the last update; checks p, m and v every step. */
static void adam_three_steps(dp_opt_kind kind, float wd, float b1, float b2)
{
    enum { N = 5 };
    const double target[N] = {0.3, -1.0, 2.0, 0.0, 0.01};
    float p[N] = {1.0f, -2.0f, 0.5f, 0.25f, 0.0f}, g[N];
    double rp[N], rm[N] = {0}, rv[N] = {0};
    for (int i = 0; i < N; i++)
        rp[i] = p[i];
    dp_opt_config c = dp_opt_defaults(kind);
    c.weight_decay = wd;
    c.beta1 = b1;
    c.beta2 = b2;
    dp_optimizer o;
    cr_assert_eq(dp_optimizer_init(&o, &c, N), DP_OK, "%s", dp_errmsg());
    const float lr = 0.1f;
    for (int t = 1; t <= 3; t++) {
        for (int i = 0; i < N; i++)
            g[i] = (float)(p[i] - target[i]);
        dp_optimizer_step(&o, p, g, lr);
        for (int i = 0; i < N; i++) {
            ref_adam(&rp[i], g[i], &rm[i], &rv[i], t, lr, c.beta1, c.beta2, c.eps, wd,
                     DP_OPT_ADAMW == kind);
            expect_close(p[i], rp[i], "p", i);
            expect_close(o.state[i], rm[i], "m", i);
            expect_close(o.state[N + i], rv[i], "v", i);
        }
    }
    cr_expect_eq(o.t, 3);
    dp_optimizer_free(&o);
}

Test(optim_adam, three_steps, .timeout = DP_TIMEOUT(10)) { adam_three_steps(DP_OPT_ADAM, 0.0f, 0.9f, 0.999f); }
Test(optim_adam, three_steps_l2, .timeout = DP_TIMEOUT(10)) { adam_three_steps(DP_OPT_ADAM, 0.1f, 0.9f, 0.999f); }
Test(optim_adam, three_steps_betas, .timeout = DP_TIMEOUT(10)) { adam_three_steps(DP_OPT_ADAM, 0.0f, 0.5f, 0.75f); }
Test(optim_adamw, three_steps, .timeout = DP_TIMEOUT(10)) { adam_three_steps(DP_OPT_ADAMW, 0.1f, 0.9f, 0.999f); }

/* Literal values for the first three steps on the same problem, produced once,
 * by hand, with torch 1.13 (torch.optim.Adam / AdamW, lr 0.1, wd 0.1, default
 * betas/eps, float32) and checked then against the double formulas above (they
 * agree to 1.1e-7): p0 = {1, -2, 0.5, 0.25, 0}, target = {0.3, -1, 2, 0, 0.01}. */
Test(optim_adam, literal_torch_values, .timeout = DP_TIMEOUT(10))
{
    enum { N = 5 };
    const double target[N] = {0.3, -1.0, 2.0, 0.0, 0.01};
    /* torch 1.13 float32 results, printed with %.9f: [adam, adamw][step][i] */
    static const double adam_literals[2][3][N] = {
        {{0.899999976, -1.899999976, 0.600000024, 0.150000006, 0.099999897},
         {0.800655246, -1.800365329, 0.699716985, 0.054250993, 0.032619186},
         {0.702579916, -1.701398969, 0.798925817, -0.030208312, -0.033757873}},
        {{0.889999986, -1.879999995, 0.595000029, 0.147500008, 0.099999897},
         {0.781904578, -1.761735201, 0.688826263, 0.050495163, 0.032436810},
         {0.676470816, -1.645656347, 0.781322122, -0.033717792, -0.033200182}},
    };
    for (int w = 0; w < 2; w++) {
        float p[N] = {1.0f, -2.0f, 0.5f, 0.25f, 0.0f}, g[N];
        dp_opt_config c = dp_opt_defaults(w ? DP_OPT_ADAMW : DP_OPT_ADAM);
        c.weight_decay = 0.1f;
        dp_optimizer o;
        cr_assert_eq(dp_optimizer_init(&o, &c, N), DP_OK);
        for (int t = 0; t < 3; t++) {
            for (int i = 0; i < N; i++)
                g[i] = (float)(p[i] - target[i]);
            dp_optimizer_step(&o, p, g, 0.1f);
            for (int i = 0; i < N; i++)
                expect_close(p[i], adam_literals[w][t][i], w ? "adamw p" : "adam p", t * N + i);
        }
        dp_optimizer_free(&o);
    }
}

/* --------------------------------------------------- optimizer object ---- */

/* Stepping two sub-ranges with the raw kernel and the same t must give exactly
 * what one step over the whole range gives: the kernels are elementwise. */
Test(optim_object, subranges_match_whole, .timeout = DP_TIMEOUT(10))
{
    enum { N = 29, CUT = 11 };
    const dp_opt_kind kinds[3] = {DP_OPT_SGD, DP_OPT_ADAM, DP_OPT_ADAMW};
    for (int k = 0; k < 3; k++) {
        dp_opt_config c = dp_opt_defaults(kinds[k]);
        c.momentum = 0.9f;
        c.weight_decay = 0.01f;
        float pw[N], ps[N], g[N], ms[2 * N];
        for (int i = 0; i < N; i++) {
            pw[i] = ps[i] = (float)i / N - 0.5f;
            g[i] = (float)((i * 7) % 5) - 2.0f;
        }
        memset(ms, 0, sizeof ms);
        dp_optimizer o;
        cr_assert_eq(dp_optimizer_init(&o, &c, N), DP_OK);
        for (long t = 1; t <= 3; t++) {
            dp_optimizer_step(&o, pw, g, 0.01f);
            if (DP_OPT_SGD == kinds[k]) {
                dp_sgd_update(ps, g, ms, CUT, &c, 0.01f, t);
                dp_sgd_update(ps + CUT, g + CUT, ms + CUT, N - CUT, &c, 0.01f, t);
            } else {
                /* own layout for the moments: m and v of each piece side by side */
                dp_adam_update(ps, g, ms, ms + CUT, CUT, &c, 0.01f, t);
                dp_adam_update(ps + CUT, g + CUT, ms + 2 * CUT, ms + 2 * CUT + (N - CUT),
                               N - CUT, &c, 0.01f, t);
            }
        }
        cr_expect_arr_eq(pw, ps, sizeof pw, "%s: sub-range steps differ", dp_opt_kind_name(kinds[k]));
        dp_optimizer_free(&o);
    }
}

Test(optim_object, state_sizes_and_free, .timeout = DP_TIMEOUT(10))
{
    dp_optimizer o;
    dp_opt_config c = dp_opt_defaults(DP_OPT_SGD);
    cr_assert_eq(dp_optimizer_init(&o, &c, 100), DP_OK);
    cr_expect_eq(o.state_n, 0);
    cr_expect_null(o.state);
    cr_expect_eq(o.t, 0);
    dp_optimizer_free(&o);

    c.momentum = 0.5f;
    cr_assert_eq(dp_optimizer_init(&o, &c, 100), DP_OK);
    cr_expect_eq(o.state_n, 100);
    dp_optimizer_free(&o);
    dp_optimizer_free(&o); /* freeing twice is harmless: free zeroes the struct */
    dp_optimizer_free(NULL);

    c = dp_opt_defaults(DP_OPT_ADAMW);
    cr_assert_eq(dp_optimizer_init(&o, &c, 100), DP_OK);
    cr_expect_eq(o.state_n, 200);
    for (size_t i = 0; i < o.state_n; i++)
        cr_assert_eq(o.state[i], 0.0f);
    dp_optimizer_free(&o);

    /* n = 0 is a valid, empty optimizer and a step on it touches nothing. */
    cr_assert_eq(dp_optimizer_init(&o, &c, 0), DP_OK);
    dp_optimizer_step(&o, NULL, NULL, 0.1f);
    cr_expect_eq(o.t, 1);
    dp_optimizer_free(&o);
}

Test(optim_object, defaults_are_torch, .timeout = DP_TIMEOUT(10))
{
    dp_opt_config s = dp_opt_defaults(DP_OPT_SGD);
    cr_expect(s.kind == DP_OPT_SGD && s.momentum == 0.0f && s.dampening == 0.0f &&
              s.weight_decay == 0.0f && !s.nesterov);
    dp_opt_config a = dp_opt_defaults(DP_OPT_ADAM);
    cr_expect(a.beta1 == 0.9f && a.beta2 == 0.999f && a.eps == 1e-8f && a.weight_decay == 0.0f);
    dp_opt_config w = dp_opt_defaults(DP_OPT_ADAMW);
    cr_expect(w.kind == DP_OPT_ADAMW && w.weight_decay == 1e-2f && w.beta2 == 0.999f);
}

Test(optim_object, bad_configs_rejected, .timeout = DP_TIMEOUT(10))
{
    dp_optimizer o;
    dp_opt_config c = dp_opt_defaults(DP_OPT_SGD);
    c.nesterov = 1; /* without momentum */
    cr_expect_eq(dp_optimizer_init(&o, &c, 4), DP_ERR_ARG);
    cr_expect(strstr(dp_errmsg(), "nesterov"), "message: %s", dp_errmsg());
    cr_expect_null(o.state);
    dp_optimizer_free(&o);

    c.momentum = 0.9f;
    c.dampening = 0.1f; /* Nesterov with dampening: torch refuses too */
    cr_expect_eq(dp_optimizer_init(&o, &c, 4), DP_ERR_ARG);

    c = dp_opt_defaults(DP_OPT_SGD);
    c.weight_decay = -1.0f;
    cr_expect_eq(dp_optimizer_init(&o, &c, 4), DP_ERR_ARG);
    cr_expect(strstr(dp_errmsg(), "weight_decay"), "message: %s", dp_errmsg());

    c = dp_opt_defaults(DP_OPT_ADAM);
    c.beta2 = 1.0f;
    cr_expect_eq(dp_optimizer_init(&o, &c, 4), DP_ERR_ARG);
    cr_expect(strstr(dp_errmsg(), "beta2"), "message: %s", dp_errmsg());
    c = dp_opt_defaults(DP_OPT_ADAM);
    c.eps = NAN;
    cr_expect_eq(dp_optimizer_init(&o, &c, 4), DP_ERR_ARG);
}

Test(optim_object, kind_parse, .timeout = DP_TIMEOUT(10))
{
    dp_opt_kind k = DP_OPT_SGD;
    cr_expect_eq(dp_opt_kind_parse("adamw", &k), DP_OK);
    cr_expect_eq(k, DP_OPT_ADAMW);
    cr_expect_eq(dp_opt_kind_parse("adam", &k), DP_OK);
    cr_expect_eq(k, DP_OPT_ADAM);
    cr_expect_eq(dp_opt_kind_parse("lamb", &k), DP_ERR_ARG);
    cr_expect_eq(k, DP_OPT_ADAM, "failed parse must not write *out");
    cr_expect(strstr(dp_errmsg(), "\"lamb\"") && strstr(dp_errmsg(), "sgd, adam or adamw"),
              "message: %s", dp_errmsg());
    cr_expect_str_eq(dp_opt_kind_name(DP_OPT_SGD), "sgd");
}
