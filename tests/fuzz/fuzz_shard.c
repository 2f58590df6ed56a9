/* Fuzz target: the shard reader (header decode in shard_format.c, frames and
 * records in shard_read.c). The input is a whole shard file; a copy with the
 * header crc32 recomputed gets past the first check to the sizes behind it. */
#include <stdlib.h>
#include <string.h>

#include "dptrain/data.h"
#include "fuzz_util.h"

static void read_all(const char *path)
{
    dp_shard_reader *r = NULL;
    dp_status rc = dp_shard_reader_open(path, &r);
    while (rc == DP_OK) {
        const void *rec;
        size_t len;
        int eof;
        rc = dp_shard_reader_next(r, &rec, &len, &eof);
        if (rc == DP_OK && eof) break;
        if (rc == DP_OK && len) { /* touch both ends: ASan checks the record lies in the buffer */
            volatile uint8_t x = ((const uint8_t *)rec)[0] ^ ((const uint8_t *)rec)[len - 1];
            (void)x;
        }
    }
    fuzz_expect_named(rc, path);
    dp_shard_reader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    read_all(fuzz_write("in.dps", data, size, 0));
    uint8_t *fixed = fuzz_fix_shard(data, size);
    if (fixed && memcmp(fixed, data, size) != 0) read_all(fuzz_write("in.dps", fixed, size, 0));
    free(fixed);
    return 0;
}
