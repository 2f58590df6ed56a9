/* Fuzz target: the Debian package index reader (src/dsi/debian.c).
 * Input: Packages, FUZZ_CUT, Translation-en; read with and without
 * split_lists, since each cuts descriptions differently. */
#include <stdlib.h>

#include "dsi/data_internal.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[2];
    size_t len[2];
    int n = fuzz_split(data, size, part, len, 2);
    const char *pk = fuzz_write("Packages", part[0], len[0], 0);
    const char *tr = fuzz_write("Translation-en", part[1], len[1], 1);
    for (int split = 0; split < 2; split++) {
        dsi_corpus c = {0};
        dp_status rc = dsi_read_debian(pk, n > 1 ? tr : NULL, 1 + split * 2, split, &c);
        fuzz_note(rc);
        if (rc != DP_OK && !(rc == DP_ERR_FORMAT || rc == DP_ERR_IO || rc == DP_ERR_NOMEM || rc == DP_ERR_ARG)) abort();
        dsi_corpus_free(&c);
    }
    return 0;
}
