/* The trainer's configuration: defaults, range checks that name the flag, and
 * the key=value text saved in checkpoints and compared across ranks. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dptrain/train.h"

void dp_train_config_defaults(dp_train_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    dp_run_config_defaults(&cfg->run);
    snprintf(cfg->run.data, sizeof cfg->run.data, "shards/fashion-mnist");
    snprintf(cfg->model, sizeof cfg->model, "cnn");
    /* --arch: 8 cells of 16 channels, the reference's search-network size (its
     * CIFAR network is 20 x 36). On 28x28: ~0.25M parameters, ~2.5 s and ~1.7 GiB
     * of activations per batch-64 step on one core, so ~40 min per Fashion-MNIST
     * epoch per core; --layers 5 --channels 8 is ~4x cheaper. */
    cfg->layers = 8;
    cfg->channels = 16;
    cfg->lr = 0.05f;
    cfg->opt = dp_opt_defaults(DP_OPT_SGD);
    cfg->opt.momentum = 0.9f;
    cfg->schedule = DP_SCHED_CONSTANT;
    cfg->step_gamma = 0.1f;
    cfg->step_size = 1000;
    cfg->accumulate = 1;
}

dp_status dp_train_config_check(const dp_train_config *cfg)
{
    dp_status rc = dp_run_config_check(&cfg->run, 1);
    if (rc != DP_OK) return rc;
    DP_CHECK(isfinite(cfg->lr) && cfg->lr > 0 && cfg->lr <= 100, "--lr: %g is out of range (0, 100]", cfg->lr);
    DP_CHECK(isfinite(cfg->min_lr) && cfg->min_lr >= 0 && cfg->min_lr <= cfg->lr,
             "--min-lr: %g is out of range [0, lr=%g]", cfg->min_lr, cfg->lr);
    DP_CHECK(cfg->warmup >= 0, "--warmup: %ld is negative", cfg->warmup);
    DP_CHECK(cfg->step_size >= 1, "--step-size: %ld must be >= 1", cfg->step_size);
    DP_CHECK(isfinite(cfg->step_gamma) && cfg->step_gamma > 0 && cfg->step_gamma <= 1,
             "--step-gamma: %g is out of range (0, 1]", cfg->step_gamma);
    DP_CHECK(isfinite(cfg->clip) && cfg->clip >= 0, "--clip: %g must be >= 0 (0 = off)", cfg->clip);
    DP_CHECK(cfg->layers >= 1 && cfg->layers <= 1000, "--layers: %d is out of range [1, 1000]", cfg->layers);
    DP_CHECK(cfg->channels >= 1 && cfg->channels <= 4096, "--channels: %d is out of range [1, 4096]", cfg->channels);
    DP_CHECK(isfinite(cfg->drop_path) && cfg->drop_path >= 0 && cfg->drop_path < 1,
             "--drop-path: %g is out of range [0, 1)", cfg->drop_path);
    DP_CHECK(cfg->cutout >= 0 && cfg->cutout <= 1024, "--cutout: %d is out of range [0, 1024]", cfg->cutout);
    DP_CHECK(cfg->test_limit >= 0, "--test-limit: %ld is negative", cfg->test_limit);
    DP_CHECK(cfg->accumulate >= 1 && cfg->accumulate <= 65536, "--accumulate: %d is out of range [1, 65536]",
             cfg->accumulate);
    DP_CHECK(!cfg->init_partial || cfg->init[0], "--init-partial needs --init FILE");
    return dp_opt_config_check(&cfg->opt);
}

int dp_train_config_format(const dp_train_config *cfg, char *buf, size_t n)
{
    char codec[64];
    dp_compress_name(&cfg->run.codec, codec, sizeof codec);
    return snprintf(buf, n,
                    "model=%s\nepochs=%d\nbatch=%d\nlr=%.9g\noptimizer=%s\nmomentum=%.9g\ndampening=%.9g\n"
                    "nesterov=%d\nweight_decay=%.9g\nbeta1=%.9g\nbeta2=%.9g\neps=%.9g\nschedule=%s\nwarmup=%ld\n"
                    "min_lr=%.9g\nstep_gamma=%.9g\nstep_size=%ld\nclip=%.9g\nseed=%llu\nlimit=%ld\ntest_limit=%ld\n"
                    "sampler=%s\naccumulate=%d\nallreduce=%s\nbucket_mb=%.9g\noverlap=%d\ncheck_replicas=%ld\n"
                    "threads=%d\ncodec=%s\nwire_zstd=%d\ncodec_start=%ld\narch=%s\nlayers=%d\nchannels=%d\n"
                    "drop_path=%.9g\ncutout=%d\nkeep_checkpoints=%d\non_nonfinite=%s\nloss_scale=%.9g\nloss_scale_growth=%ld\n"
                    "watchdog=%g\n",
                    cfg->model, cfg->run.epochs, cfg->run.batch, cfg->lr, dp_opt_kind_name(cfg->opt.kind),
                    cfg->opt.momentum, cfg->opt.dampening, cfg->opt.nesterov, cfg->opt.weight_decay, cfg->opt.beta1, cfg->opt.beta2,
                    cfg->opt.eps, dp_schedule_kind_name(cfg->schedule), cfg->warmup, cfg->min_lr, cfg->step_gamma,
                    cfg->step_size, cfg->clip, (unsigned long long)cfg->run.seed, cfg->run.limit, cfg->test_limit,
                    cfg->run.sampler ? "global" : "shard", cfg->accumulate,
                    cfg->run.allreduce == DP_ALLREDUCE_MPI ? "mpi" : "ring", cfg->run.bucket_mb, cfg->run.overlap,
                    cfg->run.check_replicas, cfg->run.threads, codec, cfg->run.codec.wire_zstd_level,
                    cfg->run.codec.start, cfg->arch, cfg->layers, cfg->channels, cfg->drop_path, cfg->cutout,
                    cfg->run.keep_checkpoints, cfg->run.on_nonfinite == DP_NONFINITE_SKIP ? "skip" : "stop",
                    cfg->run.loss_scale, cfg->run.loss_scale_growth, cfg->run.watchdog_s);
}

int dp_train_config_resume_key(const char *key)
{
    /* How long to train and how to communicate may change on resume; what
     * decides the arithmetic of a step may not. The genotype file may move:
     * the trainer adds its content as key "genotype", which must match. */
    static const char *free_keys[] = {"epochs", "test_limit", "allreduce", "bucket_mb", "overlap",
                                      "check_replicas", "threads", "wire_zstd", "arch",
                                      "keep_checkpoints", "on_nonfinite", "watchdog"};
    for (size_t i = 0; i < sizeof free_keys / sizeof free_keys[0]; i++)
        if (!strcmp(key, free_keys[i])) return 0;
    return 1;
}
