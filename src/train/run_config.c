/* The options every workload shares (dp_run_config, dptrain/task.h): one set of defaults, one range check
 * whose messages name the flag, and the driver's and the gradient sync's options made from them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "dptrain/task.h"

void dp_run_config_defaults(dp_run_config *r)
{
    *r = (dp_run_config){.epochs = 1, .batch = 64, .eval_batch = 500, .seed = 1, .allreduce = DP_ALLREDUCE_RING,
                         .bucket_mb = 4.0f, .overlap = 1, .threads = 1, .progress = -1, .watchdog_s = 300,
                         .keep_checkpoints = 2, .on_nonfinite = DP_NONFINITE_STOP, .loss_scale = 1.0f,
                         .loss_scale_growth = 2000, .sync_every = 1};
}

dp_status dp_run_config_check(const dp_run_config *r, int min_epochs)
{
    DP_CHECK(r->epochs >= min_epochs && r->epochs <= 100000, "--epochs: %d is out of range [%d, 100000]", r->epochs,
             min_epochs);
    DP_CHECK(r->batch >= 1 && r->batch <= DP_BATCH_MAX, "--batch: %d is out of range [1, %d]", r->batch, DP_BATCH_MAX);
    DP_CHECK(r->eval_batch >= 1 && r->eval_batch <= DP_BATCH_MAX, "--eval-batch: %d is out of range [1, %d]",
             r->eval_batch, DP_BATCH_MAX);
    DP_CHECK(r->limit >= 0, "--limit: %ld is negative", r->limit);
    DP_CHECK(r->sampler == 0 || r->sampler == 1, "--sampler: %d is not shard or global", r->sampler);
    DP_CHECK(isfinite(r->bucket_mb) && r->bucket_mb > 0 && r->bucket_mb <= 4096,
             "--bucket-mb: %g is out of range (0, 4096]", r->bucket_mb);
    DP_CHECK(r->check_replicas >= 0, "--check-replicas: %ld is negative", r->check_replicas);
    dp_status rc = dp_compress_check(&r->codec, r->allreduce);
    if (rc != DP_OK) return rc;
    if (r->allreduce == DP_ALLREDUCE_AUTO) { /* a malformed table is a bad flag (exit 2), said before MPI starts */
        const char *path = r->allreduce_table[0] ? r->allreduce_table : getenv("DP_ALLREDUCE_TABLE");
        dp_allreduce_table t;
        if (path && path[0] && (rc = dp_allreduce_table_read(path, &t)) != DP_OK)
            return dp_errorf(rc, "%s: %s", r->allreduce_table[0] ? "--allreduce-table" : "DP_ALLREDUCE_TABLE",
                             dp_errmsg());
    } else {
        DP_CHECK(!r->allreduce_table[0], "--allreduce-table needs --allreduce auto");
    }
    DP_CHECK(!r->resume || r->out[0], "--resume needs --out DIR (the run to continue)");
    DP_CHECK(!r->overwrite || r->out[0], "--overwrite needs --out DIR (the run to start over)");
    DP_CHECK(!r->overwrite || !r->resume, "--overwrite and --resume exclude each other (start over, or continue)");
    DP_CHECK(r->threads >= 1 && r->threads <= DP_THREADS_MAX, "--threads: %d is out of range [1, %d]", r->threads,
             DP_THREADS_MAX);
    DP_CHECK(isfinite(r->watchdog_s) && r->watchdog_s >= 0 && r->watchdog_s <= 86400,
             "--watchdog: %g is out of range [0, 86400] seconds", r->watchdog_s);
    DP_CHECK(r->stop_after >= 0, "--stop-after: %ld is negative", r->stop_after);
    DP_CHECK(r->checkpoint_every >= 0, "--checkpoint-every: %ld is negative", r->checkpoint_every);
    DP_CHECK(!r->stop_after || r->out[0], "--stop-after needs --out DIR (where the checkpoint goes)");
    DP_CHECK(r->keep_checkpoints >= 1 && r->keep_checkpoints <= 1000,
             "--keep-checkpoints: %d is out of range [1, 1000]", r->keep_checkpoints);
    DP_CHECK(r->on_nonfinite == DP_NONFINITE_STOP || r->on_nonfinite == DP_NONFINITE_SKIP,
             "--on-nonfinite: %d is not stop or skip", r->on_nonfinite);
    DP_CHECK(isfinite(r->loss_scale) && r->loss_scale >= 0x1p-24f && r->loss_scale <= 0x1p24f,
             "--loss-scale: %g is out of range [2^-24, 2^24]", r->loss_scale);
    DP_CHECK(r->loss_scale_growth >= 1 && r->loss_scale_growth <= 1000000000L,
             "--loss-scale-growth: %ld is out of range [1, 1e9]", r->loss_scale_growth);
    DP_CHECK(r->rank_times >= 0 && r->rank_times <= 2, "--rank-times: %d is not off, epoch or step", r->rank_times);
    DP_CHECK(r->sync_every >= 1 && r->sync_every <= 1000000L, "--sync-every: %ld is out of range [1, 1000000]",
             r->sync_every);
    /* a local step sees only its own rank's gradient: the error feedback of a codec and the skip policy's
     * shared loss scale both assume every step is reduced */
    DP_CHECK(r->sync_every == 1 || dp_compress_hook_of(&r->codec) == DP_COMPRESS_OFF,
             "--sync-every %ld: local SGD sends parameters, not gradients; drop --codec", r->sync_every);
    DP_CHECK(r->sync_every == 1 || r->on_nonfinite == DP_NONFINITE_STOP,
             "--sync-every %ld needs --on-nonfinite stop (ranks learn of a non-finite step at the next sync)",
             r->sync_every);
    /* a checkpoint holds one replica: it is taken where the replicas are equal, at a sync; a run stopped
     * there resumes onto the syncs of a run never stopped */
    DP_CHECK(r->stop_after % r->sync_every == 0, "--stop-after %ld: not a multiple of --sync-every %ld (a checkpoint "
             "needs the replicas averaged)", r->stop_after, r->sync_every);
    DP_CHECK(r->checkpoint_every % r->sync_every == 0, "--checkpoint-every %ld: not a multiple of --sync-every %ld "
             "(a checkpoint needs the replicas averaged)", r->checkpoint_every, r->sync_every);
    return DP_OK;
}

dp_sync_opts dp_run_sync_opts(const dp_run_config *r)
{
    dp_sync_opts o = {.algo = r->allreduce, .allreduce_table = r->allreduce_table, .bucket_bytes = (size_t)((double)r->bucket_mb * 1048576.0),
                      .overlap = r->overlap, .codec = r->codec};
    o.codec.seed = r->seed;
    return o;
}
