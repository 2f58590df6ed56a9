/* Fuzz target: genotype JSON (dp_genotype_load in src/models/genotype.c);
 * a genotype that loads must also pass the check and print. */
#include <stdlib.h>

#include "dptrain/nas.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("genotype.json", data, size, 0);
    dp_genotype g;
    dp_status rc = dp_genotype_load(path, &g);
    fuzz_expect_named(rc, path);
    if (rc == DP_OK) {
        char buf[2048];
        if (dp_genotype_check(&g) != DP_OK || dp_genotype_format(&g, buf, sizeof buf) < 0) abort();
    }
    return 0;
}
