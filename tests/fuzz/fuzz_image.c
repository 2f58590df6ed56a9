/* Fuzz target: PNG and JPEG decoding (src/data/image_decode.c) through libpng's
 * and libjpeg's longjmp error paths: the header probe, a decode to grey and to
 * RGB, and a resize of what decoded. Headers promising more than 4 Mpixels are
 * probed only, so the fuzzer's memory limit measures the decoder, not a
 * legitimately large allocation. */
#include <stdlib.h>

#include "dptrain/image_decode.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("in.img", data, size, 0);
    dp_image_info info;
    dp_status rc = dp_image_probe(path, &info);
    fuzz_expect_named(rc, path);
    if (rc != DP_OK || (long)info.width * info.height > (1L << 22))
        return 0;
    for (int c = 1; c <= 3; c += 2) {
        uint8_t *px = NULL, out[3 * 7 * 5];
        int h = 0, w = 0;
        rc = dp_image_decode(path, c, &px, &h, &w);
        fuzz_expect_named(rc, path);
        if (rc == DP_OK && (h != info.height || w != info.width))
            abort(); /* the probe and the decode disagree */
        if (rc == DP_OK && dp_image_resize(px, c, h, w, out, 7, 5) != DP_OK)
            abort();
        free(px);
    }
    return 0;
}
