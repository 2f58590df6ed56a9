/* Early stopping of a search (DARTS+, Liang et al. 2019), checked at each
 * epoch end on the cell --select alpha derives there:
 *
 *   --stop-stable N  the cell has not changed for N epochs: more epochs would
 *                    only sharpen alpha around the same choice.
 *   --stop-free K    the normal cell has K or more parameter-free ops (pools,
 *                    skip): the collapse short searches are known for.
 *
 * Only epochs in which alpha moves count (none of --arch-warmup's): a frozen
 * alpha derives the same cell every epoch, and its untrained cell says nothing
 * about collapse. The first cell compared with is the one alpha has when it
 * starts to move (the initial alpha's, or the end of the warm-up's).
 *
 * --stop-free keeps the cell of the epoch before the stop, the last one under
 * K: K is the user's statement that a cell with K parameter-free ops has
 * collapsed, so handing over the cell that crossed it would return exactly
 * what the rule is there to avoid. The supernet, alpha.csv and the
 * checkpoint stay at the stop (genotype_epochN.json keeps every epoch's cell);
 * genotype.json and genotype_alpha.json are the kept cell. When the first
 * epoch of moving alpha already crosses K there is no earlier trained cell:
 * the crossing one is kept and the log says so.
 *
 * The counters and cells are a checkpoint section, so a resumed search stops
 * where the uninterrupted one does, and one that stopped refuses to go on. */
#include <stdio.h>
#include <string.h>

#include "nas/search_run.h"
#include "nas/strategy.h"

int nas_levers_on(const dp_search_config *cfg)
{
    return cfg->stop_stable > 0 || cfg->stop_free > 0 || cfg->self_distill > 0;
}

dp_status nas_stop_start(srch *s)
{
    const dp_search_config *cfg = s->cfg;
    if (!(cfg->stop_stable || cfg->stop_free) || s->lev.base_epoch >= 0) return DP_OK; /* off, or resumed */
    /* the temperature of the first step, which the search has not taken yet */
    s->temp = s->strat->temperature ? s->strat->temperature(s->t_start, s->t_end, 0.0) : 1.0f;
    s->lev.base_epoch = 0;
    return nas_derive(s, &s->lev.base);
}

static void report_stop(srch *s, int epoch, const dp_genotype *g)
{
    const dp_search_config *cfg = s->cfg;
    nas_ck_levers *v = &s->lev;
    dp_driver *d = s->d;
    char kept[DP_GENOTYPE_TEXT_MAX];
    dp_genotype_format(&v->kept, kept, sizeof kept);
    const int free_ops = nas_param_free(g);
    dp_report_json(&d->rep,
                   "{\"kind\":\"early_stop\",\"epoch\":%d,\"epochs\":%d,\"reason\":\"%s\",\"stop_stable\":%d,"
                   "\"stop_free\":%d,\"unchanged_epochs\":%d,\"param_free\":%d,\"kept_epoch\":%d,\"genotype\":%s}",
                   epoch + 1, cfg->run.epochs, dp_search_stop_name(v->stop_reason), cfg->stop_stable, cfg->stop_free,
                   v->streak, free_ops, v->kept_epoch, kept);
    if (cfg->run.quiet || d->rank != 0) return;
    if (v->stop_reason == DP_SEARCH_STOP_STABLE)
        fprintf(stderr, "early stop after epoch %d of %d: the derived cell has not changed for %d epochs "
                        "(--stop-stable %d)\n", epoch + 1, cfg->run.epochs, v->streak, cfg->stop_stable);
    else
        fprintf(stderr, "early stop after epoch %d of %d: the normal cell has %d parameter-free ops (--stop-free %d); "
                        "%s\n", epoch + 1, cfg->run.epochs, free_ops, cfg->stop_free,
                v->kept_epoch != epoch + 1 ? "keeping the cell of the epoch before"
                                           : "no earlier epoch of moving alpha: keeping this cell");
}

void nas_stop_check(srch *s, int epoch, const dp_genotype *g)
{
    const dp_search_config *cfg = s->cfg;
    nas_ck_levers *v = &s->lev;
    if (!(cfg->stop_stable || cfg->stop_free)) return;
    const int done = epoch + 1, warm = cfg->arch_warmup;
    if (done <= warm) { /* alpha has not moved: the cell alpha starts from */
        v->base = *g;
        v->base_epoch = done;
        return;
    }
    v->streak = !memcmp(g, &v->base, sizeof *g) ? v->streak + 1 : 0;
    if (cfg->stop_free && nas_param_free(g) >= cfg->stop_free) {
        const int trained = v->base_epoch > warm; /* the epoch before moved alpha too */
        v->stop_reason = DP_SEARCH_STOP_FREE;
        v->kept = trained ? v->base : *g;
        v->kept_epoch = trained ? v->base_epoch : done;
    } else if (cfg->stop_stable && v->streak >= cfg->stop_stable) {
        v->stop_reason = DP_SEARCH_STOP_STABLE;
        v->kept = *g;
        v->kept_epoch = done;
    }
    v->base = *g;
    v->base_epoch = done;
    if (v->stop_reason == DP_SEARCH_STOP_NONE) return;
    v->stop_epoch = done;
    s->d->finish_early = 1;
    s->res->early_stop = v->stop_reason;
    s->res->stop_epoch = v->stop_epoch;
    s->res->kept_epoch = v->kept_epoch;
    report_stop(s, epoch, g);
}

dp_status nas_levers_restored(srch *s)
{
    const dp_search_config *cfg = s->cfg;
    const nas_ck_levers *v = &s->lev;
    const dp_driver *d = s->d;
    const int done = (int)d->st.epoch, stopping = cfg->stop_stable || cfg->stop_free;
    /* counters no run of this configuration writes: refused, as the driver's own fields are */
    const char *bad = v->streak < 0 || v->streak > done                                      ? "streak"
                      : v->base_epoch < (stopping ? 0 : -1) || v->base_epoch > done          ? "base_epoch"
                      : v->stop_reason < DP_SEARCH_STOP_NONE || v->stop_reason > DP_SEARCH_STOP_FREE ? "stop_reason"
                      : (v->stop_reason != 0) != (v->stop_epoch != 0) || v->stop_epoch < 0 || v->stop_epoch > done
                          ? "stop_epoch"
                      : v->kept_epoch < 0 || v->kept_epoch > done                            ? "kept_epoch"
                      : v->snaps < 0 || v->snaps > cfg->distill_voters || v->snaps > done    ? "snaps"
                      : v->snap_next < 0 || v->snap_next >= cfg->distill_voters              ? "snap_next"
                      : stopping && dp_genotype_check(&v->base) != DP_OK                    ? "base"
                      : v->stop_reason && dp_genotype_check(&v->kept) != DP_OK              ? "kept" : NULL;
    if (bad)
        return dp_errorf(DP_ERR_FORMAT, "%s: the early-stop and self-distillation section: '%s' out of range for "
                         "this run (epoch %d)", d->ckpt, bad, done);
    if (v->stop_epoch)
        return dp_errorf(DP_ERR_ARG, "%s: this search stopped early after epoch %d of %d (--%s %d): nothing to "
                         "resume; its cell is %s/genotype.json (start over with --overwrite)", d->ckpt, v->stop_epoch,
                         cfg->run.epochs, v->stop_reason == DP_SEARCH_STOP_STABLE ? "stop-stable" : "stop-free",
                         v->stop_reason == DP_SEARCH_STOP_STABLE ? cfg->stop_stable : cfg->stop_free, cfg->run.out);
    return DP_OK;
}
