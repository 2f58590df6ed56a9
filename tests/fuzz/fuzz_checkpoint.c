/* Fuzz target: dp_checkpoint_read (src/train/checkpoint.c) and, on what it
 * accepts, dp_train_config_parse of the config section (src/train/config.c,
 * what dp_trained_load reads a run's configuration with). The input is a
 * whole checkpoint file; a copy with both crc32s recomputed reaches the
 * section walk, which the checksums would otherwise guard. */
#include <stdlib.h>
#include <string.h>

#include "dptrain/checkpoint.h"
#include "dptrain/train.h"
#include "fuzz_util.h"

static void read_one(const char *path)
{
    dp_checkpoint ck;
    dp_status rc = dp_checkpoint_read(path, &ck);
    fuzz_expect_named(rc, path);
    if (rc == DP_OK)
        for (int i = 0; i < ck.n; i++)
            if (ck.sections[i].size) { /* each section must lie inside the body */
                const uint8_t *p = ck.sections[i].data;
                volatile uint8_t x = p[0] ^ p[ck.sections[i].size - 1];
                (void)x;
            }
    const dp_ck_section *cs = rc == DP_OK ? dp_checkpoint_find(&ck, DP_CK_CONFIG) : NULL;
    char *text = cs ? strndup(cs->data, cs->size) : NULL;
    if (text) {
        dp_train_config cfg;
        fuzz_expect_named(dp_train_config_parse(text, path, &cfg), path);
        size_t len = 0;
        const char *v = dp_config_find(text, "shape", &len);
        if (v && len) { /* the value lies inside the text */
            volatile char x = v[0] ^ v[len - 1];
            (void)x;
        }
        free(text);
    }
    dp_checkpoint_free(&ck);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_checkpoint_twice("in.dpc", data, size, read_one);
    return 0;
}
