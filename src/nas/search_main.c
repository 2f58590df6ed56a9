/* The DARTS search as a task of the one loop (dptrain/task.h): its set-up,
 * step, update, per-epoch outputs, checkpoint sections and final genotype.
 * The steps themselves are in search.c. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <xxhash.h>

#include "dptrain/fault.h"
#include "dptrain/task.h"
#include "dptrain/nas_select.h"
#include "nas/search_run.h"
#include "nas/strategy.h"


/* This rank's images in two halves: weights train on the first, alpha on the second. */
static dp_status load_data(srch *s)
{
    const dp_search_config *cfg = s->cfg;
    dp_status rc = dp_image_train_load(&cfg->run, &s->d->sync, &s->all);
    if (rc != DP_OK) return rc;
    if (s->all.split_total < 2)
        return dp_errorf(DP_ERR_ARG, "%s: the train split has fewer than 2 images", cfg->run.data);
    long half = s->all.n / 2;
    s->tr = dp_image_set_view(&s->all, 0, half);
    s->va = dp_image_set_view(&s->all, half, s->all.n - half);
    return dp_image_batch_init(&s->b, &s->all, &cfg->run);
}

/* Steps whose batch is full on every rank: the last, partial global batch is
 * dropped, so no rank sits out a step (its batch-norm would not join the
 * others' statistics) and P x b sees the batches 1 x P b sees. */
static long full_batches(const dp_sampler *smp)
{
    if (smp->kind == DP_SAMPLER_GLOBAL) return smp->n / ((long)smp->size * smp->batch);
    long m = -1;
    for (int r = 0; r < smp->size; r++) {
        long k = smp->n_ranks[r] / smp->batch;
        m = m < 0 || k < m ? k : m;
    }
    return m < 0 ? 0 : m;
}

static int stat_reduce(void *user, double *v, int n) { return dp_sync_sum(user, v, n) == DP_OK ? 0 : -1; }

static dp_status cost_tables(srch *s)
{
    const dp_search_config *cfg = s->cfg;
    size_t n = (size_t)s->rows * (size_t)s->nops;
    s->flops = calloc(n, sizeof *s->flops);
    s->cost = calloc(n, sizeof *s->cost);
    double *tmp = calloc(n, sizeof *tmp);
    if (!s->flops || !s->cost || !tmp) {
        free(tmp);
        return dp_errorf(DP_ERR_NOMEM, "cost tables: out of memory");
    }
    dp_supernet_costs(s->sn, NULL, NULL, s->flops);
    double cells = 0;
    for (size_t k = 0; k < n; k++) cells += s->flops[k];
    s->fixed_mflops = (s->sn->model->flops_per_sample - cells) / 1e6;
    dp_status rc = DP_OK;
    if (cfg->cost_table[0]) {
        dp_cost_table *t = NULL;
        rc = dp_cost_table_load(cfg->cost_table, &t);
        if (rc == DP_OK) {
            dp_supernet_costs(s->sn, dp_cost_table_lookup, t, tmp);
            for (size_t k = 0; k < n && rc == DP_OK; k++)
                if (tmp[k] < 0)
                    rc = dp_errorf(DP_ERR_FORMAT, "%s: no latency for an op of this supernet (run --profile-ops with the same --layers/--channels/--batch)",
                                   cfg->cost_table);
            dp_cost_table_free(t);
        }
    } else {
        for (size_t k = 0; k < n; k++) tmp[k] = s->flops[k] / 1e6;
    }
    for (size_t k = 0; k < n; k++) s->cost[k] = (float)tmp[k];
    free(tmp);
    return rc;
}

static dp_status task_build(void *t, dp_driver *d, dp_task_info *info)
{
    srch *s = t;
    const dp_search_config *cfg = s->cfg;
    s->d = d;
    s->net = cfg->net;
    uint64_t manifest_hash = 0;
    dp_status rc = dp_image_shape(cfg->run.data, &s->net.in, &manifest_hash);
    if (rc == DP_OK) rc = dp_supernet_build(&s->net, &s->sn);
    static const dp_params none;
    dp_ctx_init(&s->ctx);
    info->sync = dp_run_sync_opts(&cfg->run);
    dp_sync_opts ao = info->sync;
    ao.codec = dp_compress_ring_part(&info->sync.codec); /* alpha stays dense: no top-k or PowerSGD */
    ao.codec.seed = cfg->run.seed ^ 0x5bd1e995u; /* alpha's rounding stream apart from the weights' */
    ao.overlap = 0, ao.bucket_bytes = 1 << 20;
    dp_status ra = dp_sync_init(&s->async, d->comm, s->sn ? &s->sn->alpha : &none, &ao);
    if (ra != DP_OK) return ra;
    info->params = s->sn ? &s->sn->model->params : NULL;
    info->resume_key = NULL; /* a search resumes with the flags it was started with */
    /* the keys of dp_search_config_format that hold several flags' values, or another flag's */
    static const char *const key_flags[] = {
        "w=--lr/--min-lr/--momentum/--weight-decay/--clip",
        "a=--arch-lr/--arch-beta1/--arch-beta2/--arch-weight-decay/--arch-clip",
        "t=--t-start/--t-end", "prune=--prune-every/--warmup-epochs", "codec=--codec/--wire-zstd",
        "in=--data (the images' shape and classes)", "alpha=the search space (alpha's layout)",
        "stop=--stop-stable/--stop-free", "schedule=--schedule/--lr-power", "distill=--self-distill/--distill-temp/--distill-voters",
        "per_layer=--cell-per-layer", NULL};
    info->key_flags = key_flags;
    /* the keys added since the first checkpoints; stop=, distill=, schedule= and per_layer= are written only when on */
    static const char *const implied[] = {"partial_channels=1", "edge_norm=0", "per_layer=0", NULL};
    info->implied = implied;
    int len = dp_search_config_format(cfg, info->config_text, info->config_cap);
    snprintf(info->config_text + len, info->config_cap - (size_t)len, "manifest=%016llx\nalpha=%016llx\n",
             (unsigned long long)manifest_hash, (unsigned long long)(s->sn ? dp_params_layout_hash(&s->sn->alpha) : 0));
    if (rc == DP_OK) s->nops = s->sn->cfg.nops, s->rows = s->sn->ntypes * DP_NAS_EDGES;
    return rc;
}

static dp_status task_load(void *t, dp_driver *d)
{
    srch *s = t;
    const dp_search_config *cfg = s->cfg;
    dp_status rc = dp_sync_all_ok(&d->sync, load_data(s), "loading the data");
    dp_sampler_kind kind = (dp_sampler_kind)cfg->run.sampler;
    if (rc == DP_OK) rc = dp_sampler_make(&s->str, kind, &d->sync, cfg->run.batch, s->tr.n);
    if (rc == DP_OK) rc = dp_sampler_make(&s->sva, kind, &d->sync, cfg->run.batch, s->va.n);
    if (rc != DP_OK) return rc;
    s->steps = full_batches(&s->str);
    s->vsteps = full_batches(&s->sva);
    if (s->steps == 0 || s->vsteps == 0)
        return dp_errorf(DP_ERR_ARG, "%s: %ld training images make no full global batch of %d x %d in each half",
                         cfg->run.data, s->all.split_total, d->size, cfg->run.batch);
    if (d->size > 1) {
        /* synchronised batch-norm: P ranks x batch b normalise like one rank with batch P b */
        s->ctx.stat_reduce = stat_reduce;
        s->ctx.stat_user = &d->sync;
    }

    dp_rng init;
    dp_rng_seed(&init, cfg->run.seed, DP_STREAM_INIT, 0);
    dp_params_init(&s->sn->model->params, &init);
    dp_rng_seed(&init, cfg->run.seed, DP_STREAM_USER + 2, 0);
    dp_supernet_init_alpha(s->sn, &init);
    dp_params *wp = &s->sn->model->params, *ap = &s->sn->alpha;
    rc = dp_sync_bcast(&d->sync, ap->data, ap->n * sizeof(float)); /* the weights: the driver's */
    if (rc != DP_OK) return rc;

    dp_opt_config wc = dp_opt_defaults(DP_OPT_SGD), ac = dp_opt_defaults(DP_OPT_ADAM);
    wc.momentum = cfg->w_momentum, wc.weight_decay = cfg->w_wd;
    ac.beta1 = cfg->a_beta1, ac.beta2 = cfg->a_beta2, ac.weight_decay = cfg->a_wd;
    rc = dp_optimizer_init(&s->wopt, &wc, wp->n);
    if (rc == DP_OK) rc = dp_optimizer_init(&s->aopt, &ac, ap->n);
    if (rc != DP_OK) return rc;
    d->ckpt_floats = (double)(s->wopt.state_n + s->aopt.state_n + 2 * ap->n) + (double)d->size * (double)s->async.state_n;
    memset(&s->lev, 0, sizeof s->lev);
    s->lev.base_epoch = -1;
    rc = nas_distill_setup(s);
    if (rc != DP_OK) return rc;
    if (cfg->self_distill > 0) d->ckpt_floats += (double)cfg->distill_voters * (double)(wp->n + ap->n);
    s->total_steps = (long)cfg->run.epochs * s->steps;
    s->wsched = (dp_schedule){.kind = cfg->w_schedule, .base_lr = cfg->w_lr, .min_lr = cfg->w_min_lr,
                              .gamma = 1, .step_size = 1, .total = s->total_steps, .power = cfg->w_lr_power};
    dp_search_temperatures(cfg, &s->t_start, &s->t_end);
    uint32_t stream_rank = cfg->run.sampler == DP_SAMPLER_GLOBAL ? 0 : (uint32_t)d->rank;
    dp_rng_seed(&s->shuffle_t, cfg->run.seed, DP_STREAM_SHUFFLE, stream_rank);
    dp_rng_seed(&s->shuffle_v, cfg->run.seed, DP_STREAM_USER + 3, stream_rank);
    dp_rng_seed(&s->noise, cfg->run.seed, DP_STREAM_USER + 4, 0); /* shared: ranks sample the same ops */
    size_t na = (size_t)s->rows * (size_t)s->nops;
    s->gumbel = calloc(na, sizeof *s->gumbel);
    s->mask = malloc(na * sizeof *s->mask);
    if (!s->gumbel || !s->mask) return dp_errorf(DP_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < na; k++) s->mask[k] = 1.0f;
    s->sn->mix = (dp_nas_mix){.strategy = cfg->strategy, .temperature = 1.0f};
    if (s->strat->setup) s->strat->setup(s); /* gumbel: the noise; gold: the mask */
    if (cfg->unrolled) {
        s->wbak = malloc(wp->n * sizeof(float));
        s->vbuf = malloc(wp->n * sizeof(float));
        s->abuf = malloc(ap->n * sizeof(float));
        if (!s->wbak || !s->vbuf || !s->abuf) return dp_errorf(DP_ERR_NOMEM, "--unrolled buffers: out of memory");
    }
    return dp_sync_all_ok(&d->sync, cost_tables(s), "reading the cost table");
}

static dp_status task_start(void *t, dp_driver *d)
{
    srch *s = t;
    const dp_search_config *cfg = s->cfg;
    s->epoch0 = (int)d->st.epoch;
    dp_status rc = nas_stop_start(s); /* every rank: the same alpha, the same cell */
    if (rc != DP_OK) return rc;
    rc = d->rank == 0 ? nas_outputs_open(s) : DP_OK;
    rc = dp_sync_all_ok(&d->sync, rc, "opening the run directory");
    if (rc != DP_OK) return rc;
    char autod[768];
    dp_sync_auto_desc(&d->sync, autod, sizeof autod);
    if (!cfg->run.quiet && d->rank == 0)
        fprintf(stderr,
                "dptrain search: %s, %d cells x %d channels, %d ops, %zu weights + %zu alphas, %ld train / %ld "
                "held-out images, %d rank(s) x batch %d, %ld steps/epoch, allreduce %s%s%s\n",
                dp_nas_strategy_name(cfg->strategy), s->net.layers, s->net.channels, s->nops,
                s->sn->model->params.n, s->sn->alpha.n, s->all.split_total / 2,
                s->all.split_total - s->all.split_total / 2, d->size, cfg->run.batch, s->steps,
                dp_allreduce_algo_name(cfg->run.allreduce), autod, d->sync.overlap ? " overlapped" : "");
    return DP_OK;
}

/* The permutations are functions of the streams' epoch-start states. */
static long task_epoch_begin(void *t, dp_driver *d)
{
    srch *s = t;
    (void)d;
    s->after_t = s->shuffle_t, s->after_v = s->shuffle_v;
    dp_sampler_shuffle(&s->str, &s->after_t);
    dp_sampler_shuffle(&s->sva, &s->after_v);
    return s->steps;
}

static dp_status task_step(void *t, dp_driver *d, long pos, long *next, double *stats)
{
    srch *s = t;
    (void)d;
    dp_fault_point("forward");
    *next = pos + 1;
    return nas_search_step(s, pos, stats);
}

static dp_status task_update(void *t, dp_driver *d)
{
    (void)d;
    nas_search_update(t);
    return DP_OK;
}

static dp_status task_after_step(void *t, dp_driver *d)
{
    srch *s = t;
    const dp_search_config *cfg = s->cfg;
    dp_status rc = DP_OK;
    if (cfg->run.check_replicas && nas_step(s) % cfg->run.check_replicas == 0)
        rc = dp_sync_check_replicas(&s->async, &s->sn->alpha, nas_step(s));
    if (rc == DP_OK && s->strat->after_step) rc = s->strat->after_step(s, (int)d->st.epoch);
    return rc;
}

static dp_status task_epoch_end(void *t, dp_driver *d, const dp_epoch *e)
{
    srch *s = t;
    dp_search_result *res = s->res;
    int epoch = (int)d->st.epoch;
    double vl = 0, va = 0;
    dp_status rc = nas_evaluate(s, s->cfg->eval_limit, &vl, &va);
    if (rc != DP_OK) return rc;
    dp_genotype g;
    int skips = 0;
    rc = nas_epoch_outputs(s, epoch, &g, &skips);
    if (rc != DP_OK) return rc;
    /* a run whose ranks derive different cells is worthless: compare them */
    char text[DP_GENOTYPE_TEXT_MAX + 16] = "genotype=";
    dp_genotype_format(&g, text + 9, sizeof text - 10);
    strcat(text, "\n");
    rc = dp_sync_agree(&d->sync, text);
    if (rc != DP_OK) return rc;
    res->genotype = g;
    res->skips = skips;
    res->epochs_done = epoch + 1;
    res->train_loss = e->seen ? e->loss / e->seen : 0;
    res->train_acc = e->seen ? e->correct / e->seen : 0;
    res->val_loss = vl;
    res->val_acc = va;
    res->derived_mflops = nas_genotype_mflops(s, &g);
    res->param_free = nas_param_free(&g);
    nas_retrain_figures(s, &g, &res->retrain_params, &res->retrain_mflops);
    rc = nas_distill_epoch_end(s); /* the snapshot the next epoch's teacher is */
    if (rc != DP_OK) return rc;
    char extra[96] = "", extra_json[96] = ""; /* only with --self-distill: other runs print what they did */
    if (s->cfg->self_distill > 0) {
        snprintf(extra, sizeof extra, " | distill KL %.4f", res->distill_kl);
        snprintf(extra_json, sizeof extra_json, ",\"distill_kl\":%.6f", res->distill_kl);
    }
    if (!s->cfg->run.quiet && d->rank == 0) {
        fprintf(stderr, "epoch %d/%d: train loss %.4f acc %.4f | held-out loss %.4f acc %.4f | %.1f s | T %.3g | "
                        "normal-cell skips %d | derived %.2f MFLOPs%s\n",
                epoch + 1, s->cfg->run.epochs, res->train_loss, res->train_acc, vl, va, e->step_s, s->temp, skips,
                res->derived_mflops, extra);
        fprintf(stderr, "  genotype %s\n", text + 9);
        if (skips >= s->cfg->skip_warn)
            fprintf(stderr, "warning: skip_connect takes %d of the normal cell's 8 edges: the search may be "
                            "collapsing (try --strategy temperature, fewer epochs or a larger --arch-weight-decay)\n",
                    skips);
        if (res->param_free >= s->cfg->free_warn)
            fprintf(stderr, "warning: parameter-free ops (pools, skip) take %d of the normal cell's 8 edges: alpha "
                            "favours them while the convolutions are untrained (try --select perturb or --arch-warmup)\n",
                    res->param_free);
    }
    text[strlen(text) - 1] = 0;
    dp_report_json(&d->rep,
                   "{\"kind\":\"epoch\",\"epoch\":%d,\"step\":%ld,\"train_loss\":%.6f,\"train_acc\":%.6f,"
                   "\"val_loss\":%.6f,\"val_acc\":%.6f,\"epoch_s\":%.3f,\"temperature\":%.5g,\"skips\":%d,"
                   "\"derived_mflops\":%.4f,\"param_free\":%d,\"retrain_params\":%.0f,\"retrain_mflops\":%.4f,"
                   "\"genotype\":%s%s}",
                   epoch + 1, (long)d->st.step, res->train_loss, res->train_acc, vl, va, e->step_s, s->temp, skips,
                   res->derived_mflops, res->param_free, res->retrain_params, res->retrain_mflops, text + 9,
                   extra_json);
    nas_stop_check(s, epoch, &g); /* after the epoch's line: the stop's reason comes below it */
    s->shuffle_t = s->after_t, s->shuffle_v = s->after_v; /* the next epoch's start */
    return DP_OK;
}

static dp_status task_finish(void *t, dp_driver *d)
{
    srch *s = t;
    const dp_search_config *cfg = s->cfg;
    dp_search_result *res = s->res;
    const int perturb = cfg->select == DP_NAS_SELECT_PERTURB, sample = cfg->select == DP_NAS_SELECT_SAMPLE;
    /* derived again: gold's final pruning changed the network; --reselect ran no epoch */
    const int again = s->strat->finish || cfg->reselect;
    dp_status rc = s->strat->finish ? s->strat->finish(s) : DP_OK;
    if (rc == DP_OK && again) rc = nas_derive(s, &res->genotype);
    /* --stop-free: the cell of the epoch before the stop (early_stop.c says why) */
    const nas_ck_levers *v = &s->lev;
    const int kept = v->stop_reason == DP_SEARCH_STOP_FREE && v->kept_epoch != v->stop_epoch;
    if (kept) res->genotype = v->kept;
    res->early_stop = v->stop_reason, res->stop_epoch = v->stop_epoch, res->kept_epoch = v->kept_epoch;
    res->genotype_alpha = res->genotype;
    if (rc == DP_OK && perturb) rc = nas_select_perturb_run(s, &res->genotype);
    if (rc == DP_OK && sample) rc = nas_select_sample_run(s, &res->genotype);
    if (rc != DP_OK) return rc;
    res->skips = dp_genotype_skips(&res->genotype);
    res->derived_mflops = nas_genotype_mflops(s, &res->genotype);
    res->param_free = nas_param_free(&res->genotype);
    nas_retrain_figures(s, &res->genotype, &res->retrain_params, &res->retrain_mflops);
    if (d->rank != 0) return DP_OK;
    if (cfg->run.out[0] && (again || perturb || sample || kept)) {
        char path[600];
        snprintf(path, sizeof path, "%s/genotype.json", cfg->run.out);
        rc = dp_genotype_save(&res->genotype, path);
        snprintf(path, sizeof path, "%s/genotype_alpha.json", cfg->run.out); /* what magnitude selection keeps */
        if (rc == DP_OK) rc = dp_genotype_save(&res->genotype_alpha, path);
        if (rc != DP_OK) return rc;
    }
    char text[DP_GENOTYPE_TEXT_MAX];
    dp_genotype_format(&res->genotype, text, sizeof text);
    dp_report_json(&d->rep,
                   "{\"kind\":\"select\",\"select\":\"%s\",\"skips\":%d,\"param_free\":%d,\"derived_mflops\":%.4f,"
                   "\"retrain_layers\":%d,\"retrain_channels\":%d,\"retrain_params\":%.0f,\"retrain_mflops\":%.4f,"
                   "\"select_s\":%.3f,\"select_evals\":%d,\"early_stop\":\"%s\",\"stop_epoch\":%d,"
                   "\"kept_epoch\":%d,\"genotype\":%s}",
                   dp_nas_select_name((dp_nas_select)cfg->select), res->skips, res->param_free, res->derived_mflops,
                   cfg->retrain_layers, cfg->retrain_channels, res->retrain_params, res->retrain_mflops, res->select_s,
                   res->select_evals, dp_search_stop_name(res->early_stop), res->stop_epoch, res->kept_epoch, text);
    if (!cfg->run.quiet) {
        char whose[64] = " (the last epoch's)";
        if (kept && !perturb) snprintf(whose, sizeof whose, " (epoch %d's, before the stop)", v->kept_epoch);
        if (again || perturb) whose[0] = 0;
        if (v->stop_reason)
            fprintf(stderr, "search stopped early after epoch %d of %d (--stop-%s)\n", v->stop_epoch, cfg->run.epochs,
                    dp_search_stop_name(v->stop_reason));
        fprintf(stderr, "derived cell (--select %s): %.0f parameters, %.2f MFLOPs per image at %d layers x %d channels%s\n",
                dp_nas_select_name((dp_nas_select)cfg->select), res->retrain_params, res->retrain_mflops,
                cfg->retrain_layers, cfg->retrain_channels, whose);
        if (again || perturb || kept) fprintf(stderr, "  genotype %s\n", text);
        if ((again || perturb || kept) && res->param_free >= cfg->free_warn)
            fprintf(stderr, "warning: parameter-free ops (pools, skip) take %d of the normal cell's 8 edges\n",
                    res->param_free);
    }
    nas_draw_cells(s, &res->genotype);
    nas_plot_alpha(s);
    return DP_OK;
}

/* Besides the driver's sections (configuration, position, weights, batch-norm statistics, the weights' error
 * feedback): alpha, both optimizers, every rank's streams, gold's pruning mask, alpha's error feedback and the
 * counters, so that a resumed search goes on exactly as the uninterrupted one would. */
static int task_parts(void *t, dp_driver *d, dp_ck_part *p)
{
    srch *s = t;
    (void)d;
    s->ck_rng = (nas_ck_rng){s->shuffle_t, s->shuffle_v, s->noise, s->ctx.dropout_rng};
    s->ck_counts = (nas_ck_counts){s->last_prune, s->wopt.t, s->aopt.t};
    size_t ares = s->async.state ? s->async.state_n * sizeof(float) : 0;
    int k = 0;
    p[k++] = (dp_ck_part){NAS_CK_ALPHA, "alpha", s->sn->alpha.data, s->sn->alpha.n * sizeof(float), 0};
    p[k++] = (dp_ck_part){DP_CK_OPTIM, "weight optimizer", s->wopt.state, s->wopt.state_n * sizeof(float), 0};
    p[k++] = (dp_ck_part){NAS_CK_AOPTIM, "alpha optimizer", s->aopt.state, s->aopt.state_n * sizeof(float), 0};
    p[k++] = (dp_ck_part){NAS_CK_RNG, "streams", &s->ck_rng, sizeof s->ck_rng, 1};
    p[k++] = (dp_ck_part){NAS_CK_MASK, "mask", s->mask, (size_t)s->rows * (size_t)s->nops * sizeof(float), 0};
    p[k++] = (dp_ck_part){NAS_CK_ARES, "alpha error-feedback", s->async.state, ares, 1};
    p[k++] = (dp_ck_part){DP_CK_TASK, "counters", &s->ck_counts, sizeof s->ck_counts, 0};
    /* only with the levers on: a checkpoint of a search without them is unchanged */
    if (nas_levers_on(s->cfg))
        p[k++] = (dp_ck_part){NAS_CK_LEVERS, "early-stop and self-distillation (--stop-stable, --stop-free, "
                              "--self-distill)", &s->lev, sizeof s->lev, 0};
    const size_t snap = (s->sn->model->params.n + s->sn->alpha.n) * sizeof(float);
    if (s->cfg->self_distill > 0)
        p[k++] = (dp_ck_part){NAS_CK_TEACHERS, "self-distillation teachers (--self-distill)", s->snaps,
                              (size_t)s->cfg->distill_voters * snap, 0};
    return k;
}

/* (a finished search is refused by the driver before this) */
static dp_status task_restored(void *t, dp_driver *d)
{
    srch *s = t;
    /* each counts steps (or is one): none past the position the driver has checked */
    const nas_ck_counts *c = &s->ck_counts;
    const char *bad = c->last_prune < 0 || c->last_prune > d->st.step ? "last_prune"
                      : c->wopt_t < 0 || c->wopt_t > d->st.step     ? "weight optimizer t"
                      : c->aopt_t < 0 || c->aopt_t > d->st.step     ? "alpha optimizer t" : NULL;
    if (bad)
        return dp_errorf(DP_ERR_FORMAT, "%s: counters: '%s' out of range for this run (must be in [0, step %lld])",
                         d->ckpt, bad, (long long)d->st.step);
    s->last_prune = s->ck_counts.last_prune;
    s->wopt.t = s->ck_counts.wopt_t;
    s->aopt.t = s->ck_counts.aopt_t;
    s->shuffle_t = s->ck_rng.shuffle_t;
    s->shuffle_v = s->ck_rng.shuffle_v;
    s->noise = s->ck_rng.noise;
    s->ctx.dropout_rng = s->ck_rng.dropout;
    return nas_levers_on(s->cfg) ? nas_levers_restored(s) : DP_OK;
}

static double task_lr(void *t, long step) { return dp_schedule_lr(&((srch *)t)->wsched, step); }

static void task_free(void *t)
{
    srch *s = t;
    nas_outputs_close(s);
    dp_ctx_free(&s->ctx);
    dp_optimizer_free(&s->wopt);
    dp_optimizer_free(&s->aopt);
    dp_sync_free(&s->async);
    dp_sampler_free(&s->str);
    dp_sampler_free(&s->sva);
    dp_supernet_free(s->sn);
    dp_image_set_free(&s->all);
    dp_image_batch_free(&s->b);
    free(s->gumbel), free(s->mask), free(s->flops), free(s->cost);
    free(s->wbak), free(s->vbuf), free(s->abuf);
    nas_distill_free(s);
}

/* --reselect: the search's set-up, its supernet from <out>/search.dpc, no epoch, the end of a search */
static dp_status reselect_load(void *t, dp_driver *d)
{
    dp_status rc = task_load(t, d);
    return rc == DP_OK ? nas_reselect_load(t) : rc;
}

static const dp_task_ops reselect_ops = {
    .name = "search", .nonfinite_hint = "--select-tune 0", .build = task_build, .load = reselect_load,
    .epoch_begin = task_epoch_begin, .step = task_step, .update = task_update, .epoch_end = task_epoch_end,
    .finish = task_finish, .lr = task_lr, .free = task_free,
};

static const dp_task_ops search_ops = {
    .name = "search", .ckpt_name = "search.dpc", .nonfinite_hint = "lower --lr or --arch-lr", .build = task_build,
    .load = task_load, .start = task_start, .epoch_begin = task_epoch_begin, .step = task_step, .update = task_update, .after_step = task_after_step,
    .epoch_end = task_epoch_end, .finish = task_finish, .parts = task_parts, .restored = task_restored, .lr = task_lr,
    .free = task_free,
};

dp_status dp_search_run(const dp_search_config *cfg, MPI_Comm comm, dp_search_result *res)
{
    memset(res, 0, sizeof *res);
    dp_status rc = dp_search_config_check(cfg);
    if (rc != DP_OK) return rc;
    dp_run_opts o = {.run = cfg->run};
    o.stop_after_epochs = cfg->stop_after;
    if (cfg->reselect) { /* no epochs, and the run directory is only read (and given the new cell) */
        o.run.out[0] = 0;
        o.run.epochs = 0;
        o.run.resume = o.run.overwrite = 0;
        o.stop_after_epochs = 0;
    }
    srch s;
    memset(&s, 0, sizeof s);
    s.cfg = cfg;
    s.res = res;
    s.strat = nas_strategy_of(cfg->strategy); /* dp_search_config_check: a strategy of the table */
    dp_driver d;
    double t0 = dp_now();
    rc = dp_drive(cfg->reselect ? &reselect_ops : &search_ops, &s, &o, comm, &d);
    res->stopped_early = d.stopped;
    res->steps = cfg->reselect ? s.reselect_step : (long)d.st.step;
    res->wall_s = dp_now() - t0;
    int ran = res->epochs_done - s.epoch0; /* epochs of this session */
    res->epoch_s = ran > 0 ? d.session_train_s / ran : 0;
    res->train_images_per_s = d.session_train_s > 0 ? d.session_seen / d.session_train_s : 0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long rss_kb = ru.ru_maxrss, *all = calloc((size_t)d.size, sizeof *all);
    if (rc == DP_OK && all && dp_sync_allgather_long(&d.sync, rss_kb, all) == DP_OK)
        for (int r = 0; r < d.size; r++) rss_kb = all[r] > rss_kb ? all[r] : rss_kb;
    free(all);
    res->peak_rss_mb = (double)rss_kb / 1024.0;
    if (rc == DP_OK) {
        const dp_params *wp = &s.sn->model->params;
        res->nalpha = (int)s.sn->alpha.n;
        res->params_hash = XXH3_64bits_withSeed(s.sn->alpha.data, s.sn->alpha.n * sizeof(float), dp_params_hash(wp));
        memcpy(res->alpha, s.sn->alpha.data, s.sn->alpha.n * sizeof(float));
        res->weights = malloc(wp->n * sizeof(float));
        if (res->weights) memcpy(res->weights, wp->data, wp->n * sizeof(float)), res->nweights = wp->n;
    }
    dp_drive_free(&d);
    task_free(&s);
    return rc;
}

void dp_search_result_free(dp_search_result *res)
{
    free(res->weights);
    res->weights = NULL;
    res->nweights = 0;
}
