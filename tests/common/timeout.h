/* Criterion's per-test .timeout is fixed at compile time and its --timeout flag does not override it,
 * so slow instrumented builds (valgrind memcheck runs 20-50x slower) scale every bound through this
 * one macro: cmake -DDP_TEST_TIMEOUT_SCALE=N. */
#ifndef DP_TESTS_TIMEOUT_H
#define DP_TESTS_TIMEOUT_H

#ifndef DP_TEST_TIMEOUT_SCALE
#define DP_TEST_TIMEOUT_SCALE 1
#endif

#define DP_TIMEOUT(seconds) ((double)(seconds) * DP_TEST_TIMEOUT_SCALE)

#endif
