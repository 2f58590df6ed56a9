/* The DSI gradient-check fixture (dsi_gradcheck.h). */
#include <criterion/criterion.h>

#include "dptrain/rng.h"
#include "dsi_gradcheck.h"

void dsi_gc_point_params(dp_params *p, float *data, float *grad)
{
    for (int i = 0; i < p->count; i++) {
        p->items[i]->t.data = data + p->items[i]->offset;
        p->items[i]->t.grad = grad + p->items[i]->offset;
    }
}

dp_tensor *dsi_gc_build_loss(dp_ctx *c, dp_tensor **in, void *arg)
{
    gc_model *g = arg;
    dsi_gc_point_params(&g->m->emb, in[0]->data, in[0]->grad);
    dsi_gc_point_params(&g->m->dense, in[1]->data, in[1]->grad);
    dp_tensor *h = dp_dsi_encode(c, g->m, g->tok, g->off, g->nbags);
    return dp_dsi_loss(c, g->m, h, g->docs, NULL);
}

void dsi_gc_inputs(const dp_dsi_model *m, gc_input in[2])
{
    in[0] = (gc_input){.ndim = 1, .shape = {(int)m->emb.n}, .lo = -1, .hi = 1};
    in[1] = (gc_input){.ndim = 1, .shape = {(int)m->dense.n}, .lo = -0.8f, .hi = 0.8f};
}

void dsi_gc_restore(dp_dsi_model *m)
{
    dsi_gc_point_params(&m->emb, m->emb.data, m->emb.grad);
    dsi_gc_point_params(&m->dense, m->dense.data, m->dense.grad);
}

dp_dsi_model *dsi_gc_atomic_model(const dp_dsi_model_config *cfg, int ndocs)
{
    dp_dsi_docids ids;
    cr_assert_eq(dp_dsi_docids_atomic(ndocs, &ids), DP_OK, "%s", dp_errmsg());
    dp_dsi_model *m = NULL;
    cr_assert_eq(dp_dsi_model_build(cfg, &ids, &m), DP_OK, "%s", dp_errmsg());
    dp_rng r;
    dp_rng_seed(&r, 5, DP_STREAM_INIT, 0);
    dp_dsi_model_init(m, &r);
    return m;
}
