/* Sorting of non-negative int32 ids, shared by rooms that must not call each other: the sparse row
 * allreduce (comm) and BM25's candidate documents (dsi). */
#ifndef DPTRAIN_IDSORT_H
#define DPTRAIN_IDSORT_H

#include <stddef.h>
#include <stdint.h>

/*! Sorts a[0..n) ascending, every a[i] in [0, limit), with tmp[0..n) as scratch: an LSD radix sort of
 *  11-bit digits, as many passes as limit needs (O(n) each, no comparison). */
void dp_sort_ids(int32_t *a, int32_t *tmp, size_t n, size_t limit);

#endif
