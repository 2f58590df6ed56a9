/* Fuzz target: safetensors files (dp_safetensors_read in src/nn/safetensors.c).
 * A file that reads must keep every tensor inside the data and sized by its
 * shape, and loading it into a small registry (conv, batch-norm, linear) must
 * either succeed or name the file. */
#include <stdlib.h>
#include <string.h>

#include "dptrain/safetensors.h"
#include "fuzz_util.h"

static dp_params reg;

static void make_registry(void)
{
    int cw[4] = {2, 1, 1, 1}, c[1] = {2}, fw[2] = {2, 2};
    dp_params_add(&reg, "conv.weight", 4, cw, DP_INIT_ZERO, 1, 1);
    dp_params_add(&reg, "bn.weight", 1, c, DP_INIT_ONE, 1, 1);
    dp_params_add_buffer(&reg, "bn.running_mean", 2, DP_INIT_ZERO);
    dp_params_add(&reg, "fc.weight", 2, fw, DP_INIT_ZERO, 1, 1);
    if (dp_params_finalize(&reg) != DP_OK) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!reg.finalized) make_registry();
    const char *path = fuzz_write("m.safetensors", data, size, 0);
    dp_safetensors f;
    dp_status rc = dp_safetensors_read(path, &f);
    fuzz_expect_named(rc, path);
    fuzz_note(rc);
    if (rc != DP_OK) return 0;
    for (int i = 0; i < f.n; i++) {
        const dp_st_tensor *t = &f.t[i];
        uint64_t n = dp_st_dtype_size(t->dtype);
        for (int d = 0; d < t->ndim; d++) n *= (uint64_t)t->shape[d];
        if (t->data < f.buf || t->data + (t->end - t->begin) > f.buf + f.size || n != t->end - t->begin) abort();
    }
    char skipped[64];
    for (int partial = 0; partial < 2; partial++) {
        rc = dp_safetensors_load_params(&f, &reg, partial, skipped, sizeof skipped);
        fuzz_expect_named(rc, path);
    }
    dp_safetensors_free(&f);
    return 0;
}
