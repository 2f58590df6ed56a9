/* Finite-difference gradient checker (see gradcheck.h). */
#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

gc_opts gc_defaults(void) { return (gc_opts){.h = 1e-2, .atol = 1e-3, .rtol = 1e-2, .max_checks = 256, .seed = 1}; }

void gc_init_distinct(float *x, long n, dp_rng *r)
{
    /* A shuffled ramp: neighbours differ by 0.05, so +-h (<= 0.01) never
     * changes which element wins a max or which side of zero a value is on. */
    int32_t *perm = malloc((size_t)n * sizeof *perm);
    for (long i = 0; i < n; i++) perm[i] = (int32_t)i;
    dp_rng_shuffle_i32(r, perm, (size_t)n);
    for (long i = 0; i < n; i++) x[i] = 0.05f * (float)(perm[i] - n / 2) + 0.025f;
    free(perm);
}

void gc_init_away_from_zero(float *x, long n, dp_rng *r)
{
    for (long i = 0; i < n; i++) {
        float v = 0.1f + 0.9f * dp_rng_uniform(r);
        x[i] = (dp_rng_u64(r) & 1) ? v : -v;
    }
}

typedef struct gc_state {
    int nin;
    dp_tensor leaves[8];
    dp_tensor *ptrs[8];
    gc_build_fn fn;
    void *arg;
    float *R;
    long out_n;
} gc_state;

/* One forward pass; returns sum(out * R) in double, or NAN on error. */
static double gc_loss(dp_ctx *c, gc_state *s, int with_grad, dp_tensor **out_p)
{
    dp_ctx_reset(c);
    c->grad_enabled = with_grad;
    dp_rng_seed(&c->dropout_rng, 99, DP_STREAM_DROPOUT, 0); /* same dropout mask every pass */
    dp_tensor *out = s->fn(c, s->ptrs, s->arg);
    if (!out) {
        fprintf(stderr, "gradcheck: forward failed: %s\n", dp_errmsg());
        return NAN;
    }
    if (!s->R) {
        s->out_n = out->n;
        s->R = malloc((size_t)out->n * sizeof(float));
        dp_rng r;
        dp_rng_seed(&r, 1234, DP_STREAM_USER, 0);
        dp_init_uniform(&r, s->R, (size_t)out->n, -1.0f, 1.0f);
    }
    double f = 0;
    for (long i = 0; i < out->n; i++) f += (double)out->data[i] * s->R[i];
    if (out_p) *out_p = out;
    return f;
}

int gc_check(const char *name, int nin, const gc_input *ins, gc_build_fn fn, void *arg, const gc_opts *opts,
             gc_result *res)
{
    gc_opts o = opts ? *opts : gc_defaults();
    if (o.max_checks <= 0) o.max_checks = 256;
    memset(res, 0, sizeof *res);
    gc_state s = {.nin = nin, .fn = fn, .arg = arg};
    dp_rng r;
    dp_rng_seed(&r, o.seed, DP_STREAM_USER, 1);
    for (int i = 0; i < nin; i++) {
        dp_tensor *t = &s.leaves[i];
        memset(t, 0, sizeof *t);
        dp_tensor_set_shape(t, ins[i].ndim, ins[i].shape);
        t->data = malloc((size_t)t->n * sizeof(float));
        t->grad = malloc((size_t)t->n * sizeof(float));
        t->requires_grad = !ins[i].no_grad;
        if (ins[i].init)
            ins[i].init(t->data, t->n, &r);
        else
            dp_init_uniform(&r, t->data, (size_t)t->n, ins[i].lo, ins[i].hi);
        s.ptrs[i] = t;
    }
    dp_ctx c;
    dp_ctx_init(&c);

    /* analytic */
    for (int i = 0; i < nin; i++) memset(s.leaves[i].grad, 0, (size_t)s.leaves[i].n * sizeof(float));
    dp_tensor *out = NULL;
    int ok = 1;
    if (isnan(gc_loss(&c, &s, 1, &out))) ok = 0;
    if (ok && !out->requires_grad) {
        fprintf(stderr, "gradcheck %s: output does not require grad\n", name);
        ok = 0;
    }
    if (ok) {
        float *g = malloc((size_t)out->n * sizeof(float));
        memcpy(g, s.R, (size_t)out->n * sizeof(float));
        out->grad = g; /* seed with R: d(sum out*R)/d out = R */
        if (dp_backward(&c, out) != DP_OK) {
            fprintf(stderr, "gradcheck %s: backward failed: %s\n", name, dp_errmsg());
            ok = 0;
        }
        free(g);
    }

    /* numeric, on a random subset of each input */
    for (int i = 0; ok && i < nin; i++) {
        dp_tensor *t = &s.leaves[i];
        if (!t->requires_grad) continue;
        float *analytic = malloc((size_t)t->n * sizeof(float));
        memcpy(analytic, t->grad, (size_t)t->n * sizeof(float));
        long m = t->n < o.max_checks ? t->n : o.max_checks;
        for (long k = 0; k < m; k++) {
            long e = t->n <= o.max_checks ? k : (long)dp_rng_below(&r, (uint64_t)t->n);
            float x0 = t->data[e];
            t->data[e] = x0 + (float)o.h;
            double fp = gc_loss(&c, &s, 0, NULL);
            t->data[e] = x0 - (float)o.h;
            double fm = gc_loss(&c, &s, 0, NULL);
            t->data[e] = x0;
            /* divide by the step actually taken after float rounding */
            double step = (double)(x0 + (float)o.h) - (double)(x0 - (float)o.h);
            double num = (fp - fm) / step;
            double an = analytic[e];
            double err = fabs(an - num);
            double tol = o.atol + o.rtol * fmax(fabs(an), fabs(num));
            res->checked++;
            if (!(err <= tol)) {
                res->bad++;
                if (err > res->max_abs_err || isnan(err))
                    snprintf(res->worst, sizeof res->worst, "input %d elem %ld: analytic %.6g numeric %.6g", i, e, an,
                             num);
            }
            if (err > res->max_abs_err) res->max_abs_err = err;
        }
        free(analytic);
    }
    if (ok && res->bad) {
        fprintf(stderr, "gradcheck %s: %ld of %ld elements off; worst %s\n", name, res->bad, res->checked, res->worst);
        ok = 0;
    }
    dp_ctx_free(&c);
    for (int i = 0; i < nin; i++) {
        free(s.leaves[i].data);
        free(s.leaves[i].grad);
    }
    free(s.R);
    return ok;
}
