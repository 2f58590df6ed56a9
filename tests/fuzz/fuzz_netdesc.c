/* Fuzz target: network descriptions (src/models/netdesc_parse.c, read through dp_netdesc_load). A
 * description that parses has a canonical form that parses again to the same canonical text; one that also
 * builds on a small input (sizes bounded so a mutated "out" cannot ask for gigabytes) runs a forward. */
#include <stdlib.h>
#include <string.h>

#include "dptrain/netdesc.h"
#include "fuzz_util.h"
#include "models/netdesc_internal.h"

/* every width at most 64 and every kernel, stride, padding, dilation at most 8 */
static int small(const nd_layer *ls, int n)
{
    for (int i = 0; i < n; i++) {
        const nd_layer *l = &ls[i];
        if (l->out > 64 || l->kernel > 8 || l->stride > 8 || l->padding > 8 || l->dilation > 8) return 0;
        if (l->kind == ND_RESIDUAL && !small(l->body, l->nbody)) return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("net.json", data, size, 0);
    char *json = NULL;
    dp_status rc = dp_netdesc_load(path, &json);
    fuzz_expect_named(rc, path);
    if (rc != DP_OK) return 0;
    nd_desc d;
    rc = nd_parse(json, path, &d);
    fuzz_expect_named(rc, path);
    if (rc == DP_OK) {
        char *canon = nd_canonical(&d);
        nd_desc d2;
        if (!canon || nd_parse(canon, "canonical", &d2) != DP_OK) abort();
        char *canon2 = nd_canonical(&d2);
        if (!canon2 || strcmp(canon, canon2)) abort();
        if (small(d.layers, d.n)) {
            dp_model *m = NULL;
            static const dp_model_shape in = {2, 8, 8, 3};
            if (dp_netdesc_build(json, path, &in, &m) == DP_OK) {
                dp_rng r;
                dp_rng_seed(&r, 1, DP_STREAM_INIT, 0);
                dp_params_init(&m->params, &r);
                dp_ctx c;
                dp_ctx_init(&c);
                c.training = 1;
                float x[2 * 2 * 8 * 8] = {0};
                dp_tensor *out = m->forward(m, &c, dp_tensor_wrap(&c, x, 4, (int[]){2, 2, 8, 8}));
                if (!out || out->ndim != 2 || out->shape[0] != 2 || out->shape[1] != 3) abort();
                dp_ctx_free(&c);
                if (strcmp(m->desc, canon)) abort();
                dp_model_free(m);
            }
        }
        free(canon);
        free(canon2);
        nd_desc_free(&d2);
        nd_desc_free(&d);
    }
    free(json);
    return 0;
}
