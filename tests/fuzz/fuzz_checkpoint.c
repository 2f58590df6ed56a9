/* Fuzz target: dp_checkpoint_read (src/train/checkpoint.c). The input is a
 * whole checkpoint file; a copy with both crc32s recomputed reaches the
 * section walk, which the checksums would otherwise guard. */
#include <stdlib.h>
#include <string.h>

#include "dptrain/checkpoint.h"
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
    dp_checkpoint_free(&ck);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_checkpoint_twice("in.dpc", data, size, read_one);
    return 0;
}
