/* Scans of flat float buffers, shared by rooms that must not call each other: the codecs (comm) refuse
 * values they cannot carry, the optimizer's step (optim) refuses a non-finite gradient. */
#ifndef DPTRAIN_FLOATSCAN_H
#define DPTRAIN_FLOATSCAN_H

#include <stddef.h>

/*! Index of the first x[i] that is NaN/Inf or (limit > 0) has |x[i]| >= limit; n if none. The all-good
 *  case is one branch-free pass that vectorises; only a bad buffer is scanned a second time. */
size_t dp_floats_find_bad(const float *x, size_t n, float limit);

#endif
