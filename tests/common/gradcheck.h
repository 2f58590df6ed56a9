/* Gradient checking against central finite differences, shared by the op tests.
 *
 * The op under test is wrapped in a build function that maps input tensors to
 * an output tensor. The checker reduces the output with fixed random weights R
 * (loss = sum(out * R), accumulated in double), seeds out->grad = R, runs the
 * tape backward, and compares every checked input element's analytic gradient
 * with (loss(x + h) - loss(x - h)) / 2h computed from float forwards.
 * Pass: |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|). */
#ifndef DP_TEST_GRADCHECK_H
#define DP_TEST_GRADCHECK_H

#include "dptrain/ops.h"

typedef void (*gc_init_fn)(float *x, long n, dp_rng *r);

typedef struct gc_input {
    int ndim;
    int shape[4];
    float lo, hi;       /* uniform init range (when init is NULL) */
    gc_init_fn init;    /* optional custom init, e.g. distinct values for max-pool */
    int no_grad;        /* a constant input: not checked, no gradient */
} gc_input;

typedef dp_tensor *(*gc_build_fn)(dp_ctx *c, dp_tensor **in, void *arg);

typedef struct gc_opts {
    double h, atol, rtol;
    long max_checks; /* per input; a random subset when the input is larger (0 = 256) */
    unsigned seed;
} gc_opts;

typedef struct gc_result {
    long checked, bad;
    double max_abs_err;
    char worst[256];    /* "input 1 elem 17: analytic 0.12 numeric 0.31" */
} gc_result;

/*! Runs the check; returns 1 when every checked element passes. Prints the
 *  worst element on failure. */
int gc_check(const char *name, int nin, const gc_input *ins, gc_build_fn fn, void *arg,
             const gc_opts *opts, gc_result *res);

/*! Default options for smooth float32 ops: h 1e-2, atol 1e-3, rtol 1e-2. */
gc_opts gc_defaults(void);

/*! Init helpers: values spread apart (|x_i - x_j| >= 0.05) so max/ReLU kinks
 *  are not crossed by +-h; and values bounded away from zero. */
void gc_init_distinct(float *x, long n, dp_rng *r);
void gc_init_away_from_zero(float *x, long n, dp_rng *r);

#endif
