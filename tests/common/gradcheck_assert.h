/* Criterion assertion around gc_check, shared by the op test files. */
#ifndef DP_TEST_GRADCHECK_ASSERT_H
#define DP_TEST_GRADCHECK_ASSERT_H

#include <criterion/criterion.h>

#include "gradcheck.h"

#define CHECK_GRAD(name, nin, ins, fn, arg, opts)                                                                 \
    do {                                                                                                          \
        gc_result r_;                                                                                             \
        int ok_ = gc_check((name), (nin), (ins), (fn), (arg), (opts), &r_);                                       \
        cr_log_info("%s: %ld checked, max abs err %.3g", (name), r_.checked, r_.max_abs_err);                     \
        cr_assert(ok_, "%s: %ld of %ld off, worst %s", (name), r_.bad, r_.checked, r_.worst);                     \
        cr_assert_gt(r_.checked, 0);                                                                              \
    } while (0)

#endif
