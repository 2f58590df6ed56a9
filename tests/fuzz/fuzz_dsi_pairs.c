/* Fuzz target: query<TAB>docid pair files (dp_dsi_pairs_load in
 * src/dsi/pairs.c), with and without dedupe. */
#include <stdlib.h>

#include "dptrain/dsi.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("pairs.tsv", data, size, 0);
    for (int dedupe = 0; dedupe < 2; dedupe++) {
        dp_dsi_pairs p;
        dp_status rc = dp_dsi_pairs_load(path, dedupe, &p);
        fuzz_expect_named(rc, path);
        for (long i = 0; rc == DP_OK && i < p.n; i++)
            if (!p.query[i][0] || !p.docid[i][0]) abort(); /* empty fields are rejected */
        dp_dsi_pairs_free(&p);
    }
    return 0;
}
