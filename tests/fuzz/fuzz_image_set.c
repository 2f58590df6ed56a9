/* Fuzz target: an image dataset dir (src/data/image_set.c over manifest.c and
 * the shard reader). Input: manifest.txt, then the files s0.dps, s1.dps, ...
 * the manifest may name, cut at FUZZ_CUT (seed_gen.c). Loaded as rank 0 of 1
 * and rank 1 of 3, with and without a limit, since each plans differently. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/data.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[FUZZ_MAX_PARTS];
    size_t len[FUZZ_MAX_PARTS];
    int n = fuzz_split(data, size, part, len, 4);
    fuzz_write("manifest.txt", part[0], len[0], 0);
    for (int i = 1; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%d.dps", i - 1);
        uint8_t *fixed = i < n ? fuzz_fix_shard(part[i], len[i]) : NULL;
        fuzz_write(name, fixed ? fixed : part[i], len[i], 1);
        free(fixed);
    }
    static const int plan[3][3] = {{0, 1, 0}, {1, 3, 0}, {0, 2, 5}}; /* rank, nranks, limit */
    for (int k = 0; k < 3; k++) {
        dp_image_set s;
        dp_status rc = dp_image_set_load(fuzz_dir(), k == 2 ? "test" : "train", plan[k][0], plan[k][1], plan[k][2], &s);
        fuzz_note(rc);
        size_t last = (size_t)s.n * (size_t)s.c * s.h * s.w - 1;
        if (rc == DP_OK && s.n > 0 && s.pixels) {
            volatile uint8_t x = s.pixels[last];
            (void)x;
        } else if (rc == DP_OK && s.n > 0) {
            volatile float x = s.values[last] + s.mean[s.c - 1] + s.std[s.c - 1];
            (void)x;
        }
        dp_image_set_free(&s);
    }
    return 0;
}
