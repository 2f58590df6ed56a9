/* A trained run against a data set (dptrain/trained.h): the data must fit the
 * model; evaluation is the trainer's (dp_image_evaluate_confusion) with a
 * confusion matrix, each rank its share, summed over the ranks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/image_task.h"
#include "dptrain/trained.h"

void dp_trained_norm(const dp_trained *t, dp_image_set *set)
{
    if (!t->mean || set->c != t->shape.c) return;
    memcpy(set->mean, t->mean, (size_t)set->c * sizeof *set->mean);
    memcpy(set->std, t->std, (size_t)set->c * sizeof *set->std);
}

dp_status dp_trained_check_data(const dp_trained *t, const char *dir)
{
    dp_model_shape s;
    uint64_t hash;
    dp_status rc = dp_image_shape(dir, &s, &hash);
    if (rc != DP_OK) return rc;
    const dp_model_shape *m = &t->shape;
    if (s.c != m->c || s.h != m->h || s.w != m->w)
        return dp_errorf(DP_ERR_ARG, "%s: images are %dx%dx%d (CxHxW), the run's model takes %dx%dx%d", dir, s.c, s.h,
                         s.w, m->c, m->h, m->w);
    if (s.classes != m->classes)
        return dp_errorf(DP_ERR_ARG, "%s: %d classes, the run's model has %d", dir, s.classes, m->classes);
    return DP_OK;
}

void dp_trained_class_names(const char *dir, int classes, char (*names)[DP_CLASS_NAME_MAX])
{
    dp_manifest *m = NULL;
    int named = dir[0] && dp_manifest_load(dir, &m) == DP_OK && m->class_names && m->nclass_names == classes;
    for (int k = 0; k < classes; k++)
        if (named) snprintf(names[k], DP_CLASS_NAME_MAX, "%s", m->class_names[k]);
        else snprintf(names[k], DP_CLASS_NAME_MAX, "%d", k);
    dp_manifest_free(m);
}

dp_status dp_trained_data_open(const dp_trained *t, const char *dir, const char *split, int rank, int nranks,
                               long limit, int eval_batch, dp_trained_data *d)
{
    memset(d, 0, sizeof *d);
    dp_ctx_init(&d->ctx);
    d->ctx.training = 0;
    d->ctx.grad_enabled = 0;
    dp_run_config run;
    dp_run_config_defaults(&run);
    run.batch = run.eval_batch = eval_batch;
    dp_status rc = dp_image_set_load(dir, split, rank, nranks, limit, &d->set);
    if (rc != DP_OK) return rc;
    dp_trained_norm(t, &d->set);
    return dp_image_batch_init(&d->b, &d->set, &run);
}

void dp_trained_data_close(dp_trained_data *d)
{
    dp_image_set_free(&d->set);
    dp_image_batch_free(&d->b);
    dp_ctx_free(&d->ctx);
    memset(d, 0, sizeof *d);
}

dp_status dp_trained_evaluate(dp_trained *t, const char *dir, const char *split, long limit, int eval_batch,
                              dp_sync *sync, dp_eval_result *out)
{
    memset(out, 0, sizeof *out);
    dp_trained_data d;
    int nc = t->shape.classes;
    dp_status rc = dp_trained_data_open(t, dir, split, sync->rank, sync->size, limit, eval_batch, &d);
    if (rc == DP_OK && !(out->confusion = calloc((size_t)nc * (size_t)nc, sizeof(double))))
        rc = dp_errorf(DP_ERR_NOMEM, "confusion matrix of %d classes: out of memory", nc);
    rc = dp_sync_all_ok(sync, rc, "loading the data");
    if (rc == DP_OK && d.set.split_total == 0)
        rc = dp_errorf(DP_ERR_ARG, "%s: split '%s' holds no images", dir, split);
    if (rc == DP_OK)
        rc = dp_image_evaluate_confusion(&d.b, &d.ctx, t->model, &d.set, 0, d.set.n, eval_batch, sync, out->confusion,
                                         &out->loss, &out->acc);
    out->n = d.set.split_total;
    out->classes = nc;
    dp_trained_data_close(&d);
    if (rc != DP_OK) dp_eval_result_free(out);
    return rc;
}

void dp_eval_result_free(dp_eval_result *r)
{
    if (!r) return;
    free(r->confusion);
    memset(r, 0, sizeof *r);
}
