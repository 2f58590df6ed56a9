/* The text split's two text rules (dsi-prepare, DP_DSI_SPLIT_TEXT): cutting a
 * held-out sentence out of a document's text, and finding which test queries
 * still sit inside anything the model or BM25 is shown.
 *
 * Matching is byte for byte with ASCII letters folded, as the tokenizer and
 * BM25 fold them (a test query that differs from a text only in case would
 * hash to the same tokens). Texts and queries are whitespace-squashed already.
 *
 * dsi_find_inside scans every haystack once per distinct needle key length
 * (at most KEY, almost always just KEY): each needle is keyed by one window
 * of min(len, KEY) folded bytes, the window of it that the fewest needles
 * share; at every haystack position the key of the next bytes is looked up
 * and only a hit is compared in full, at the offset its window implies. */
#include <stdlib.h>
#include <string.h>

#include "dsi/data_internal.h"

enum { KEY = 8, SKETCH = 1 << 20 }; /* key bytes; counters of the needles' key windows */

static inline unsigned char fold(unsigned char ch) { return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch; }

/* 1 when needle[0 .. n) equals s[0 .. n) after folding (s has at least n bytes). */
static int same_folded(const char *s, const char *needle, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fold((unsigned char)s[i]) != fold((unsigned char)needle[i])) return 0;
    return 1;
}

/* The first occurrence of needle (length n > 0) in s[0 .. len), folded; NULL if none. */
static char *find_folded(char *s, size_t len, const char *needle, size_t n)
{
    const unsigned char first = fold((unsigned char)needle[0]);
    for (size_t i = 0; i + n <= len; i++)
        if (fold((unsigned char)s[i]) == first && same_folded(s + i, needle, n)) return s + i;
    return NULL;
}

long dsi_cut_all(char *s, size_t *len, const char *pat)
{
    const size_t n = strlen(pat);
    if (n == 0) return 0;
    long cut = 0;
    size_t from = 0;
    for (char *at; (at = find_folded(s + from, *len - from, pat, n));) {
        /* a space stands where the sentence was: the words either side stay apart */
        size_t i = (size_t)(at - s);
        s[i] = ' ';
        memmove(s + i + 1, s + i + n, *len - i - n + 1);
        *len -= n - 1;
        from = i; /* the bytes now at i may start another occurrence */
        cut++;
    }
    if (cut) *len = dsi_squash_space(s, *len);
    return cut;
}

/* The folded k bytes at s as a key (k <= KEY), with k in the top byte so keys of different lengths differ. */
static uint64_t key_of(const char *s, int k)
{
    uint64_t v = (uint64_t)k << 56;
    for (int i = 0; i < k; i++) v = v * 0x100000001b3ull ^ fold((unsigned char)s[i]);
    v ^= v >> 31;
    v *= 0x9e3779b97f4a7c15ull;
    return v ^ (v >> 29);
}

dp_status dsi_find_inside(const char *const *needle, long nn, const char *const *hay, long nh, uint8_t *found)
{
    memset(found, 0, (size_t)nn);
    if (nn == 0 || nh == 0) return DP_OK;
    size_t cap = 1024;
    while (cap < 2 * (size_t)nn) cap *= 2;
    /* slot -> needle + 1 (0 = empty); needles with one key are chained through next[]. Needle i is keyed by
     * its window at off[i]: the one fewest needles share (counted in a sketch), so that boilerplate openings
     * ("This package provides ...") do not chain thousands of needles behind one key. */
    long *slot = calloc(cap, sizeof *slot), *next = malloc((size_t)nn * sizeof *next);
    uint64_t *skey = malloc(cap * sizeof *skey);
    size_t *nlen = malloc((size_t)nn * sizeof *nlen), *off = malloc((size_t)nn * sizeof *off);
    uint32_t *sketch = calloc(SKETCH, sizeof *sketch);
    if (!slot || !next || !skey || !nlen || !off || !sketch) {
        free(slot), free(next), free(skey), free(nlen), free(off), free(sketch);
        return dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory (%ld test queries)", nn);
    }
    for (long i = 0; i < nn; i++) {
        nlen[i] = strlen(needle[i]);
        for (size_t o = 0; o + KEY <= nlen[i]; o++) {
            uint32_t *c = &sketch[key_of(needle[i] + o, KEY) & (SKETCH - 1)];
            *c += *c < UINT32_MAX;
        }
    }
    int klens = 0; /* bit k-1: some needle's key has k bytes */
    for (long i = 0; i < nn; i++) {
        next[i] = -1;
        off[i] = 0;
        if (nlen[i] == 0) continue; /* an empty needle is inside everything: the caller never passes one */
        const int k = nlen[i] < KEY ? (int)nlen[i] : KEY;
        uint32_t best = UINT32_MAX;
        for (size_t o = 0; k == KEY && o + KEY <= nlen[i]; o++) {
            const uint32_t c = sketch[key_of(needle[i] + o, KEY) & (SKETCH - 1)];
            if (c < best) best = c, off[i] = o;
        }
        klens |= 1 << (k - 1);
        const uint64_t key = key_of(needle[i] + off[i], k);
        size_t h = (size_t)key & (cap - 1);
        while (slot[h] && skey[h] != key) h = (h + 1) & (cap - 1);
        if (slot[h]) next[i] = slot[h] - 1;
        slot[h] = i + 1;
        skey[h] = key;
    }
    for (long j = 0; j < nh; j++) {
        const char *s = hay[j];
        const size_t len = strlen(s);
        for (int k = 1; k <= KEY; k++) {
            if (!(klens & 1 << (k - 1))) continue;
            for (size_t at = 0; at + (size_t)k <= len; at++) {
                const uint64_t key = key_of(s + at, k);
                size_t h = (size_t)key & (cap - 1);
                while (slot[h] && skey[h] != key) h = (h + 1) & (cap - 1);
                for (long i = slot[h] - 1; i >= 0; i = next[i]) /* needle i would start at at - off[i] */
                    if (!found[i] && at >= off[i] && at - off[i] + nlen[i] <= len &&
                        same_folded(s + at - off[i], needle[i], nlen[i]))
                        found[i] = 1;
            }
        }
    }
    free(slot), free(next), free(skey), free(nlen), free(off), free(sketch);
    return DP_OK;
}

int dsi_inside_folded(const char *s, const char *needle)
{
    size_t n = strlen(needle);
    return n > 0 && find_folded((char *)s, strlen(s), needle, n) != NULL;
}
