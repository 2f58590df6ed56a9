/* Fuzz target: the CSV and NPY importers (src/data/import_csv.c, import_npy.c)
 * through the dataset writer. The input is cut at FUZZ_CUT: part 0 is a CSV
 * (label column 0, header auto, a quarter held out) and also X.npy, part 1 is
 * Y.npy; both importers run on every input. */
#include <stdio.h>
#include <string.h>

#include "dptrain/import_user.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[2];
    size_t len[2];
    fuzz_split(data, size, part, len, 2);
    char out[512];
    snprintf(out, sizeof out, "%s/out", fuzz_dir());
    const dp_import_opts o = {.out_dir = out, .nshards = 2, .overwrite = 1}; /* both importers write to out */
    const dp_import_order ord = {.val_split = 0.25, .keep_order = 0, .seed = 1};
    const dp_csv_import csv = {.path = fuzz_write("in.csv", part[0], len[0], 0), .label = "0", .header = -1,
                               .order = ord};
    dp_status rc = dp_import_csv(&csv, &o, NULL);
    fuzz_expect_named(rc, "in.csv");
    const dp_npy_import npy = {.x = fuzz_write("x.npy", part[0], len[0], 1),
                               .y = fuzz_write("y.npy", part[1], len[1], 2), .order = ord};
    rc = dp_import_npy(&npy, &o, NULL);
    fuzz_expect_named(rc, ".npy");
    return 0;
}
