/* Fuzz target: manifest.txt (src/data/manifest.c), then the hash every rank
 * computes from what was parsed. */
#include "dptrain/data.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write("manifest.txt", data, size, 0);
    dp_manifest *m = NULL;
    dp_status rc = dp_manifest_load(fuzz_dir(), &m);
    fuzz_expect_named(rc, "manifest.txt");
    if (rc == DP_OK) (void)dp_manifest_hash(m);
    dp_manifest_free(m);
    return 0;
}
