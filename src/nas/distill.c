/* SD-DARTS (Zhu et al. 2021): self-distillation of the supernet from its own
 * earlier states, against the sharp minima of a short search.
 *
 * Every pass on the training half (the weight step; gold's one-level step;
 * --unrolled's virtual step and Hessian passes, which differentiate the same
 * training objective) gains
 *     lambda T^2 KL(p_teacher || softmax(z_student / T)),
 *     p_teacher = 1/V sum_v softmax(z_v / T)   (voting teachers)
 * where z_v are the logits, on the same images, of the supernet (weights and
 * alpha) as it was at the end of one of the last V epochs. Epoch 1 has no
 * teacher and trains on cross-entropy alone.
 *
 * The teachers: V snapshots in one preallocated buffer, a ring written at each
 * epoch end, and one more supernet they are copied into for their forward (one
 * memcpy per snapshot change: once an epoch with V = 1). The teacher's forward
 * runs without the tape, in training mode like the student's (batch
 * statistics, synchronised across ranks as the student's are: the running
 * statistics of a search are never used by its steps), with the student's
 * mixing (temperature, Gumbel noise, gold's mask) applied to its own alpha;
 * its activations go back to the arena before the student's forward, so the
 * step's peak memory is the student's. Each voter costs one forward per
 * training pass; V = 1 (the default) is the plain "teacher of the epoch
 * before". The ring and its counters are checkpoint sections, so a resumed
 * search distils from the teachers an uninterrupted one would. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/ops.h"
#include "nas/search_run.h"

static size_t snap_floats(const srch *s) { return s->sn->model->params.n + s->sn->alpha.n; }

dp_status nas_distill_setup(srch *s)
{
    const dp_search_config *cfg = s->cfg;
    s->teacher_slot = -1;
    if (!(cfg->self_distill > 0)) return DP_OK;
    dp_status rc = dp_supernet_build(&s->net, &s->teacher);
    if (rc != DP_OK) return rc;
    if (dp_params_layout_hash(&s->teacher->model->params) != dp_params_layout_hash(&s->sn->model->params) ||
        s->teacher->alpha.n != s->sn->alpha.n)
        return dp_errorf(DP_ERR_SHAPE, "--self-distill: the teacher supernet's layout is not the search's");
    dp_rng r; /* the teacher's own buffers (running statistics it never reads): any defined values */
    dp_rng_seed(&r, 0, DP_STREAM_INIT, 0);
    dp_params_init(&s->teacher->model->params, &r);
    const size_t n = snap_floats(s), soft = (size_t)cfg->run.batch * (size_t)s->net.in.classes;
    s->snaps = calloc((size_t)cfg->distill_voters * n, sizeof *s->snaps);
    s->soft = malloc(soft * sizeof *s->soft);
    if (!s->snaps || !s->soft)
        return dp_errorf(DP_ERR_NOMEM, "--self-distill: %d snapshot(s) of %zu floats: out of memory",
                         cfg->distill_voters, n);
    return DP_OK;
}

void nas_distill_free(srch *s)
{
    dp_supernet_free(s->teacher);
    free(s->snaps), free(s->soft);
    s->teacher = NULL, s->snaps = s->soft = NULL;
}

/* The snapshot in `slot` into the teacher's weights and alpha. */
static void teacher_load(srch *s, int slot)
{
    if (s->teacher_slot == slot) return;
    const size_t nw = s->sn->model->params.n;
    const float *src = s->snaps + (size_t)slot * snap_floats(s);
    memcpy(s->teacher->model->params.data, src, nw * sizeof *src);
    memcpy(s->teacher->alpha.data, src + nw, s->teacher->alpha.n * sizeof *src);
    s->teacher_slot = slot;
}

dp_status nas_distill_targets(srch *s, dp_tensor *in, long bs, const float **soft)
{
    const dp_search_config *cfg = s->cfg;
    const int V = cfg->distill_voters, K = s->net.in.classes, held = s->lev.snaps;
    *soft = NULL;
    if (held == 0) return DP_OK;
    if (bs > cfg->run.batch)
        return dp_errorf(DP_ERR_SHAPE, "--self-distill: a batch of %ld images, more than the %d its targets hold", bs,
                         cfg->run.batch);
    dp_ctx *c = &s->ctx;
    const size_t n = (size_t)bs * (size_t)K;
    memset(s->soft, 0, n * sizeof *s->soft);
    const float t = cfg->distill_temp, share = 1.0f / (float)held;
    for (int v = 0; v < held; v++) { /* newest first */
        teacher_load(s, (s->lev.snap_next - 1 - v + 2 * V) % V);
        s->teacher->mix = s->sn->mix;
        dp_arena_mark m = dp_arena_get_mark(&c->arena);
        c->grad_enabled = 0;
        dp_tensor *z = s->teacher->model->forward(s->teacher->model, c, in);
        c->grad_enabled = 1;
        if (!z || z->n != (long)n) {
            dp_arena_release(&c->arena, m);
            return c->status != DP_OK ? c->status : dp_errorf(DP_ERR_SHAPE, "--self-distill: teacher forward failed");
        }
        for (long i = 0; i < bs; i++) { /* softmax(z / t) of the row, added with the voter's share */
            const float *zr = z->data + i * K;
            float *pr = s->soft + i * K, mx = zr[0] / t, sum = 0.0f;
            for (int j = 1; j < K; j++) mx = fmaxf(mx, zr[j] / t);
            for (int j = 0; j < K; j++) sum += expf(zr[j] / t - mx);
            for (int j = 0; j < K; j++) pr[j] += share * (expf(zr[j] / t - mx) / sum);
        }
        dp_arena_release(&c->arena, m);
    }
    *soft = s->soft;
    return DP_OK;
}

dp_status nas_distill_epoch_end(srch *s)
{
    const dp_search_config *cfg = s->cfg;
    if (!(cfg->self_distill > 0)) return DP_OK;
    double v[2] = {s->kl_sum, s->kl_seen}; /* a resumed epoch: its part since the resume */
    dp_status rc = dp_sync_sum(&s->d->sync, v, 2);
    if (rc != DP_OK) return rc;
    s->res->distill_kl = v[1] > 0 ? v[0] / v[1] : 0;
    s->kl_sum = s->kl_seen = 0;
    const int V = cfg->distill_voters, slot = s->lev.snap_next;
    const size_t nw = s->sn->model->params.n;
    float *dst = s->snaps + (size_t)slot * snap_floats(s);
    memcpy(dst, s->sn->model->params.data, nw * sizeof *dst);
    memcpy(dst + nw, s->sn->alpha.data, s->sn->alpha.n * sizeof *dst);
    if (s->teacher_slot == slot) s->teacher_slot = -1; /* overwritten */
    s->lev.snap_next = (slot + 1) % V;
    if (s->lev.snaps < V) s->lev.snaps++;
    return DP_OK;
}
