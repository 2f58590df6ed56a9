/* Fuzz target: DSI member checkpoints (dp_dsi_member_load in
 * src/dsi/dsi_query.c over the checkpoint reader), crc32s recomputed in a
 * second copy as in fuzz_checkpoint.c. */
#include <stdlib.h>
#include <string.h>

#include "dptrain/dsi_train.h"
#include "fuzz_util.h"

static void load_one(const char *path)
{
    dp_dsi_member m;
    dp_status rc = dp_dsi_member_load(path, &m);
    fuzz_expect_named(rc, path);
    dp_dsi_member_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_checkpoint_twice("model.dsi", data, size, load_one);
    return 0;
}
