/* dp_sort_ids (idsort.h). */
#include "dptrain/idsort.h"

#include <string.h>

void dp_sort_ids(int32_t *a, int32_t *tmp, size_t n, size_t limit)
{
    enum { BITS = 11, R = 1 << BITS };
    size_t cnt[R];
    int32_t *src = a, *dst = tmp;
    for (unsigned shift = 0; shift < 32 && ((size_t)1 << shift) < limit; shift += BITS) {
        memset(cnt, 0, sizeof cnt);
        for (size_t i = 0; i < n; i++)
            cnt[((uint32_t)src[i] >> shift) & (R - 1)]++;
        size_t sum = 0;
        for (int d = 0; d < R; d++) {
            size_t c = cnt[d];
            cnt[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[cnt[((uint32_t)src[i] >> shift) & (R - 1)]++] = src[i];
        int32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
}
