/* Fuzz target: --cost-table files (dp_cost_table_load in src/nas/costs.c),
 * then one lookup over whatever was loaded. */
#include "dptrain/search.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("costs.txt", data, size, 0);
    dp_cost_table *t = NULL;
    dp_status rc = dp_cost_table_load(path, &t);
    fuzz_expect_named(rc, path);
    if (rc == DP_OK) (void)dp_cost_table_lookup(4, 16, 32, 32, 1, t);
    dp_cost_table_free(t);
    return 0;
}
