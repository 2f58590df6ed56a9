/* A trained run against a data set (dptrain/trained.h): the data must fit the
 * model; evaluation is the trainer's (dp_image_evaluate_confusion) with a
 * confusion matrix, each rank its share, summed over the ranks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/image_task.h"
#include "dptrain/trained.h"

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
    /* DATA: once manifests keep class names (branch `data`: dp_manifest.class_names), copy them here */
    (void)dir;
    for (int k = 0; k < classes; k++) snprintf(names[k], DP_CLASS_NAME_MAX, "%d", k);
}

dp_status dp_trained_evaluate(dp_trained *t, const char *dir, const char *split, long limit, int eval_batch,
                              dp_sync *sync, dp_eval_result *out)
{
    memset(out, 0, sizeof *out);
    dp_image_set set;
    dp_image_batch b;
    dp_ctx ctx;
    memset(&set, 0, sizeof set);
    memset(&b, 0, sizeof b);
    dp_ctx_init(&ctx);
    dp_run_config run;
    dp_run_config_defaults(&run);
    run.batch = run.eval_batch = eval_batch;
    int nc = t->shape.classes;
    dp_status rc = dp_image_set_load(dir, split, sync->rank, sync->size, limit, &set);
    if (rc == DP_OK) rc = dp_image_batch_init(&b, &set, &run);
    if (rc == DP_OK && !(out->confusion = calloc((size_t)nc * (size_t)nc, sizeof(double))))
        rc = dp_errorf(DP_ERR_NOMEM, "confusion matrix of %d classes: out of memory", nc);
    rc = dp_sync_all_ok(sync, rc, "loading the data");
    if (rc == DP_OK && set.split_total == 0)
        rc = dp_errorf(DP_ERR_ARG, "%s: split '%s' holds no images", dir, split);
    if (rc == DP_OK)
        rc = dp_image_evaluate_confusion(&b, &ctx, t->model, &set, 0, set.n, eval_batch, sync, out->confusion,
                                         &out->loss, &out->acc);
    out->n = set.split_total;
    out->classes = nc;
    dp_image_set_free(&set);
    dp_image_batch_free(&b);
    dp_ctx_free(&ctx);
    if (rc != DP_OK) dp_eval_result_free(out);
    return rc;
}

void dp_eval_result_free(dp_eval_result *r)
{
    if (!r) return;
    free(r->confusion);
    memset(r, 0, sizeof *r);
}
