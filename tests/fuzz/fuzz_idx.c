/* Fuzz target: IDX arrays (src/data/idx.c), plain or gzip'd: zlib's gz*
 * reader takes both, so one input exercises whichever it is. Both array
 * ranks the importer asks for are tried. */
#include "dptrain/data.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("in.idx", data, size, 0);
    for (int ndim = 1; ndim <= 3; ndim += 2) {
        dp_idx idx;
        dp_status rc = dp_idx_load(path, ndim, &idx);
        fuzz_expect_named(rc, path);
        if (rc == DP_OK && idx.size) {
            volatile uint8_t x = idx.data[0] ^ idx.data[idx.size - 1];
            (void)x;
        }
        dp_idx_free(&idx);
    }
    return 0;
}
