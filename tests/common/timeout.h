/* Criterion's per-test .timeout is fixed at compile time and its --timeout flag does not override it,
 * so slow instrumented builds (valgrind memcheck runs 20-50x slower) scale every bound through this
 * one macro: cmake -DDP_TEST_TIMEOUT_SCALE=N. */
#ifndef DP_TESTS_TIMEOUT_H
#define DP_TESTS_TIMEOUT_H

#ifndef DP_TEST_TIMEOUT_SCALE
#define DP_TEST_TIMEOUT_SCALE 1
#endif

#define DP_TIMEOUT(seconds) ((double)(seconds) * DP_TEST_TIMEOUT_SCALE)

/* 1 in the sanitized build (ASan, launch/check.sh --sanitize). A Criterion test whose point is a property of
 * the plain build (an accuracy after so many images) and whose code paths another test of the same binary
 * runs there too sets .disabled = DP_SANITIZED: the sanitizers would only see those paths again, slower. */
#if defined(__SANITIZE_ADDRESS__)
#define DP_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DP_SANITIZED 1
#endif
#endif
#ifndef DP_SANITIZED
#define DP_SANITIZED 0
#endif

#endif
