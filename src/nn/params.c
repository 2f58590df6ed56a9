/* The parameter registry: named tensors laid out in flat buffers
 * (llm.c's malloc_and_point_parameters, with names and init rules). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "dptrain/nn.h"

static dp_tensor *add_item(dp_params *p, const char *name, int ndim, const int *shape, dp_init_kind init,
                           long fan_in, long fan_out, int is_buffer)
{
    if (p->finalized) return NULL;
    if (p->count == p->cap) {
        int cap = p->cap ? p->cap * 2 : 32;
        dp_param **items = realloc(p->items, (size_t)cap * sizeof *items);
        if (!items) return NULL;
        p->items = items;
        p->cap = cap;
    }
    dp_param *it = calloc(1, sizeof *it);
    if (!it) return NULL;
    snprintf(it->name, sizeof it->name, "%s", name);
    dp_tensor_set_shape(&it->t, ndim, shape);
    it->init = init;
    it->fan_in = fan_in;
    it->fan_out = fan_out;
    it->is_buffer = is_buffer;
    it->t.requires_grad = !is_buffer;
    if (is_buffer) {
        it->offset = p->nbuf;
        p->nbuf += (size_t)it->t.n;
    } else {
        it->offset = p->n;
        p->n += (size_t)it->t.n;
    }
    p->items[p->count++] = it;
    return &it->t;
}

dp_tensor *dp_params_add(dp_params *p, const char *name, int ndim, const int *shape, dp_init_kind init, long fan_in,
                         long fan_out)
{
    return add_item(p, name, ndim, shape, init, fan_in, fan_out, 0);
}

dp_tensor *dp_params_add_buffer(dp_params *p, const char *name, long n, dp_init_kind init)
{
    int shape[1] = {(int)n};
    return add_item(p, name, 1, shape, init, 0, 0, 1);
}

dp_status dp_params_finalize(dp_params *p)
{
    /* 64-byte alignment keeps vector loads aligned at the start of the range. */
    size_t n = p->n ? p->n : 1, nb = p->nbuf ? p->nbuf : 1;
    size_t rn = (n * sizeof(float) + 63) / 64 * 64, rb = (nb * sizeof(float) + 63) / 64 * 64;
    p->data = aligned_alloc(64, rn);
    p->grad = aligned_alloc(64, rn);
    p->buffers = aligned_alloc(64, rb);
    if (!p->data || !p->grad || !p->buffers)
        return dp_errorf(DP_ERR_NOMEM, "parameters: cannot allocate %zu floats", p->n);
    memset(p->data, 0, rn);
    memset(p->grad, 0, rn);
    memset(p->buffers, 0, rb);
    for (int i = 0; i < p->count; i++) {
        dp_param *it = p->items[i];
        if (it->is_buffer) {
            it->t.data = p->buffers + it->offset;
            it->t.grad = NULL;
        } else {
            it->t.data = p->data + it->offset;
            it->t.grad = p->grad + it->offset;
        }
    }
    p->finalized = 1;
    return DP_OK;
}

void dp_params_init(dp_params *p, dp_rng *r)
{
    for (int i = 0; i < p->count; i++) {
        dp_param *it = p->items[i];
        float *w = it->t.data;
        size_t n = (size_t)it->t.n;
        switch (it->init) {
        case DP_INIT_ZERO: memset(w, 0, n * sizeof *w); break;
        case DP_INIT_ONE:
            for (size_t k = 0; k < n; k++) w[k] = 1.0f;
            break;
        case DP_INIT_TORCH_WEIGHT: dp_init_kaiming_uniform(r, w, n, it->fan_in, sqrtf(5.0f)); break;
        case DP_INIT_TORCH_BIAS: {
            float b = it->fan_in > 0 ? 1.0f / sqrtf((float)it->fan_in) : 0.0f;
            dp_init_uniform(r, w, n, -b, b);
            break;
        }
        case DP_INIT_KAIMING_NORMAL: dp_init_kaiming_normal(r, w, n, it->fan_in); break;
        case DP_INIT_XAVIER_UNIFORM: dp_init_xavier_uniform(r, w, n, it->fan_in, it->fan_out); break;
        case DP_INIT_NORMAL_SMALL: dp_init_normal(r, w, n, 0.0f, 0.01f); break;
        case DP_INIT_NORMAL: dp_init_normal(r, w, n, 0.0f, 1.0f); break;
        }
    }
}

void dp_params_zero_grad(dp_params *p)
{
    if (p->grad) memset(p->grad, 0, p->n * sizeof(float));
}

void dp_params_free(dp_params *p)
{
    for (int i = 0; i < p->count; i++) free(p->items[i]);
    free(p->items);
    free(p->data);
    free(p->grad);
    free(p->buffers);
    memset(p, 0, sizeof *p);
}

uint64_t dp_params_hash(const dp_params *p)
{
    XXH64_hash_t h = XXH3_64bits(p->data, p->n * sizeof(float));
    return XXH3_64bits_withSeed(p->buffers, p->nbuf * sizeof(float), h);
}

uint64_t dp_params_layout_hash(const dp_params *p)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < p->count; i++) {
        const dp_param *it = p->items[i];
        for (const char *s = it->name; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
        for (int d = 0; d < it->t.ndim; d++) h = (h ^ (uint64_t)it->t.shape[d]) * 1099511628211ull;
        h = (h ^ (uint64_t)it->is_buffer) * 1099511628211ull;
    }
    return h;
}
