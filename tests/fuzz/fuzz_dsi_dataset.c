/* Fuzz target: a DSI dataset dir (dp_dsi_data_load in src/dsi/dataset.c:
 * tokenizer.txt, docs.tsv, manifest.txt and token shards). Input: those
 * three files, then s0.dps, s1.dps, s2.dps, cut at FUZZ_CUT (seed_gen.c);
 * shard header crc32s are recomputed so mutations reach the records. */
#include <stdio.h>
#include <stdlib.h>

#include "dptrain/dsi.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[6];
    size_t len[6];
    fuzz_split(data, size, part, len, 6);
    static const char *const names[6] = {"tokenizer.txt", "docs.tsv", "manifest.txt", "s0.dps", "s1.dps", "s2.dps"};
    for (int i = 0; i < 6; i++) {
        uint8_t *fixed = i >= 3 ? fuzz_fix_shard(part[i], len[i]) : NULL;
        fuzz_write(names[i], fixed ? fixed : part[i], len[i], 0);
        free(fixed);
    }
    dp_dsi_data d;
    dp_status rc = dp_dsi_data_load(fuzz_dir(), &d);
    fuzz_note(rc);
    if (rc == DP_OK) { /* every example's tokens lie inside the token array */
        const dp_dsi_set *s = &d.train;
        if (s->n > 0 && s->off[s->n] > 0) {
            volatile int32_t x = s->tok[s->off[s->n] - 1];
            (void)x;
        }
    }
    dp_dsi_data_free(&d);
    return 0;
}
