/* The trainer's configuration: defaults, range checks that name the flag, and
 * the key=value text saved in checkpoints and compared across ranks. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/netdesc.h"
#include "dptrain/text.h"
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
    cfg->lr_power = 10.0f; /* sharpDARTS' exponent order */
    cfg->accumulate = 1;
    cfg->crop_pad = 4; /* torchvision's RandomCrop(32, padding=4) of the CIFAR recipes */
}

dp_status dp_train_config_check(const dp_train_config *cfg)
{
    dp_status rc = dp_run_config_check(&cfg->run, 1);
    if (rc != DP_OK) return rc;
    DP_CHECK(isfinite(cfg->lr) && cfg->lr > 0 && cfg->lr <= 100, "--lr: %g is out of range (0, 100]", cfg->lr);
    DP_CHECK(isfinite(cfg->min_lr) && cfg->min_lr >= 0 && cfg->min_lr <= cfg->lr,
             "--min-lr: %g is out of range [0, lr=%g]", cfg->min_lr, cfg->lr);
    DP_CHECK(cfg->warmup >= 0, "--warmup: %ld is negative", cfg->warmup);
    DP_CHECK(isfinite(cfg->lr_power) && cfg->lr_power > 1 && cfg->lr_power <= 1e6,
             "--lr-power: %g must be in (1, 1e6] (1 is --schedule cosine)", cfg->lr_power);
    DP_CHECK(cfg->step_size >= 1, "--step-size: %ld must be >= 1", cfg->step_size);
    DP_CHECK(isfinite(cfg->step_gamma) && cfg->step_gamma > 0 && cfg->step_gamma <= 1,
             "--step-gamma: %g is out of range (0, 1]", cfg->step_gamma);
    DP_CHECK(isfinite(cfg->clip) && cfg->clip >= 0, "--clip: %g must be >= 0 (0 = off)", cfg->clip);
    size_t ml = strlen(cfg->model);
    DP_CHECK(cfg->arch[0] || dp_netdesc_shipped(cfg->model) || (ml > 5 && !strcmp(cfg->model + ml - 5, ".json") &&
                                                                !strchr(cfg->model, '\n')),
             "--model: unknown model '%s' (known: %s)", cfg->model, dp_model_names());
    DP_CHECK(cfg->layers >= 1 && cfg->layers <= 1000, "--layers: %d is out of range [1, 1000]", cfg->layers);
    DP_CHECK(cfg->channels >= 1 && cfg->channels <= 4096, "--channels: %d is out of range [1, 4096]", cfg->channels);
    DP_CHECK(isfinite(cfg->drop_path) && cfg->drop_path >= 0 && cfg->drop_path < 1,
             "--drop-path: %g is out of range [0, 1)", cfg->drop_path);
    DP_CHECK(cfg->cutout >= 0 && cfg->cutout <= 1024, "--cutout: %d is out of range [0, 1024]", cfg->cutout);
    DP_CHECK(cfg->crop_pad >= 0 && cfg->crop_pad <= 64, "--crop-pad: %d is out of range [0, 64]", cfg->crop_pad);
    DP_CHECK(cfg->augment == 0 || cfg->augment == 1, "--augment: %d is not 0 or 1", cfg->augment);
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
                    "sampler=%s\naccumulate=%d\nallreduce=%s\nallreduce_table=%s\nbucket_mb=%.9g\noverlap=%d\ncheck_replicas=%ld\n"
                    "threads=%d\ncodec=%s\nwire_zstd=%d\ncodec_start=%ld\narch=%s\nlayers=%d\nchannels=%d\n"
                    "drop_path=%.9g\ncutout=%d\nkeep_checkpoints=%d\non_nonfinite=%s\nloss_scale=%.9g\nloss_scale_growth=%ld\n"
                    "watchdog=%g\naugment=%d\ncrop_pad=%d\ndata=%s\nlr_power=%.9g\n",
                    cfg->model, cfg->run.epochs, cfg->run.batch, cfg->lr, dp_opt_kind_name(cfg->opt.kind),
                    cfg->opt.momentum, cfg->opt.dampening, cfg->opt.nesterov, cfg->opt.weight_decay, cfg->opt.beta1, cfg->opt.beta2,
                    cfg->opt.eps, dp_schedule_kind_name(cfg->schedule), cfg->warmup, cfg->min_lr, cfg->step_gamma,
                    cfg->step_size, cfg->clip, (unsigned long long)cfg->run.seed, cfg->run.limit, cfg->test_limit,
                    cfg->run.sampler ? "global" : "shard", cfg->accumulate,
                    dp_allreduce_algo_name(cfg->run.allreduce), cfg->run.allreduce_table, cfg->run.bucket_mb, cfg->run.overlap,
                    cfg->run.check_replicas, cfg->run.threads, codec, cfg->run.codec.wire_zstd_level,
                    cfg->run.codec.start, cfg->arch, cfg->layers, cfg->channels, cfg->drop_path, cfg->cutout,
                    cfg->run.keep_checkpoints, cfg->run.on_nonfinite == DP_NONFINITE_SKIP ? "skip" : "stop",
                    cfg->run.loss_scale, cfg->run.loss_scale_growth, cfg->run.watchdog_s, cfg->augment,
                    cfg->crop_pad, cfg->run.data, cfg->lr_power);
}

int dp_train_config_resume_key(const char *key)
{
    /* How long to train and how to communicate may change on resume; what
     * decides the arithmetic of a step may not. The genotype file may move:
     * the trainer adds its content as key "genotype", which must match. The
     * data may move too: the manifest's hash (key "manifest") must match. */
    static const char *free_keys[] = {"epochs", "test_limit", "allreduce", "allreduce_table", "bucket_mb", "overlap",
                                      "check_replicas", "threads", "wire_zstd", "arch",
                                      "keep_checkpoints", "on_nonfinite", "watchdog", "data"};
    for (size_t i = 0; i < sizeof free_keys / sizeof free_keys[0]; i++)
        if (!strcmp(key, free_keys[i])) return 0;
    return 1;
}

/* ------------------------------------------------------------ reading it back */

typedef enum { K_INT, K_LONG, K_U64, K_FLOAT, K_DOUBLE, K_STR, K_SPECIAL } key_kind;

/* Every key dp_train_config_format writes, with where its value goes. K_SPECIAL keys are names. */
static const struct cfg_key {
    const char *key;
    key_kind kind;
    size_t off, cap;
} cfg_keys[] = {
#define F(k, kind, field) {k, kind, offsetof(dp_train_config, field), sizeof(((dp_train_config *)0)->field)}
    F("model", K_STR, model), F("epochs", K_INT, run.epochs), F("batch", K_INT, run.batch), F("lr", K_FLOAT, lr),
    F("momentum", K_FLOAT, opt.momentum), F("dampening", K_FLOAT, opt.dampening), F("nesterov", K_INT, opt.nesterov),
    F("weight_decay", K_FLOAT, opt.weight_decay), F("beta1", K_FLOAT, opt.beta1), F("beta2", K_FLOAT, opt.beta2),
    F("eps", K_FLOAT, opt.eps), F("warmup", K_LONG, warmup), F("min_lr", K_FLOAT, min_lr),
    F("step_gamma", K_FLOAT, step_gamma), F("step_size", K_LONG, step_size), F("clip", K_FLOAT, clip),
    F("seed", K_U64, run.seed), F("limit", K_LONG, run.limit), F("test_limit", K_LONG, test_limit),
    F("accumulate", K_INT, accumulate), F("bucket_mb", K_FLOAT, run.bucket_mb), F("overlap", K_INT, run.overlap),
    F("check_replicas", K_LONG, run.check_replicas), F("threads", K_INT, run.threads),
    F("wire_zstd", K_INT, run.codec.wire_zstd_level), F("codec_start", K_LONG, run.codec.start),
    F("arch", K_STR, arch), F("layers", K_INT, layers), F("channels", K_INT, channels),
    F("drop_path", K_FLOAT, drop_path), F("cutout", K_INT, cutout), F("keep_checkpoints", K_INT, run.keep_checkpoints),
    F("loss_scale", K_FLOAT, run.loss_scale), F("loss_scale_growth", K_LONG, run.loss_scale_growth),
    F("watchdog", K_DOUBLE, run.watchdog_s), F("augment", K_INT, augment), F("crop_pad", K_INT, crop_pad),
    F("data", K_STR, run.data), F("allreduce_table", K_STR, run.allreduce_table), F("lr_power", K_FLOAT, lr_power),
#undef F
    {"optimizer", K_SPECIAL, 0, 0}, {"schedule", K_SPECIAL, 0, 0}, {"sampler", K_SPECIAL, 0, 0},
    {"allreduce", K_SPECIAL, 0, 0}, {"codec", K_SPECIAL, 0, 0}, {"on_nonfinite", K_SPECIAL, 0, 0},
};

/* The named values: optimizer, schedule, sampler, allreduce, codec (with DGC's "+dgc:M"), on_nonfinite. */
static int set_special(dp_train_config *cfg, const char *key, const char *v)
{
    if (!strcmp(key, "optimizer")) return dp_opt_kind_parse(v, &cfg->opt.kind) == DP_OK;
    if (!strcmp(key, "schedule")) return dp_schedule_kind_parse(v, &cfg->schedule) == DP_OK;
    if (!strcmp(key, "allreduce")) { /* the --allreduce words, in the enum's order */
        for (int i = 0; i < DP_ALLREDUCE_NALGOS; i++)
            if (!strcmp(v, dp_allreduce_algo_name((dp_allreduce_algo)i))) {
                cfg->run.allreduce = (dp_allreduce_algo)i;
                return 1;
            }
        return 0;
    }
    if (!strcmp(key, "sampler") || !strcmp(key, "allreduce") || !strcmp(key, "on_nonfinite")) {
        static const char *const names[3][2] = {{"shard", "global"}, {"ring", "mpi"}, {"stop", "skip"}};
        int which = !strcmp(key, "sampler") ? 0 : !strcmp(key, "allreduce") ? 1 : 2, got = -1;
        for (int i = 0; i < 2; i++)
            if (!strcmp(v, names[which][i])) got = i;
        if (got < 0) return 0;
        if (which == 0) cfg->run.sampler = got;
        else if (which == 1) cfg->run.allreduce = got ? DP_ALLREDUCE_MPI : DP_ALLREDUCE_RING;
        else cfg->run.on_nonfinite = got ? DP_NONFINITE_SKIP : DP_NONFINITE_STOP;
        return 1;
    }
    /* codec */
    char name[64];
    const char *dgc = strstr(v, "+dgc:");
    size_t n = dgc ? (size_t)(dgc - v) : strlen(v);
    if (n >= sizeof name) return 0;
    snprintf(name, sizeof name, "%.*s", (int)n, v);
    if (dp_compress_parse(name, &cfg->run.codec) != DP_OK) return 0;
    char *end = NULL;
    if (dgc) cfg->run.codec.dgc_momentum = strtof(dgc + 5, &end);
    return !dgc || (end && !*end);
}

static int set_value(dp_train_config *cfg, const struct cfg_key *k, const char *v)
{
    char *end = NULL, *field = (char *)cfg + k->off;
    errno = 0;
    switch (k->kind) {
    case K_STR:
        if (strlen(v) >= k->cap) return 0;
        memcpy(field, v, strlen(v) + 1);
        return 1;
    case K_INT: {
        long x = strtol(v, &end, 10);
        if (x < INT_MIN || x > INT_MAX) return 0;
        *(int *)field = (int)x;
        break;
    }
    case K_LONG: *(long *)field = strtol(v, &end, 10); break;
    case K_U64: *(uint64_t *)field = strtoull(v, &end, 10); break;
    case K_FLOAT: *(float *)field = strtof(v, &end); break;
    case K_DOUBLE: *(double *)field = strtod(v, &end); break;
    case K_SPECIAL: return set_special(cfg, k->key, v);
    }
    return errno == 0 && end != v && *end == 0;
}

dp_status dp_train_config_parse(const char *text, const char *source, dp_train_config *cfg)
{
    dp_train_config_defaults(cfg);
    cfg->crop_pad = 0; /* a run written before --augment had none */
    int line = 0;
    for (const char *a = text; *a;) {
        size_t len = strcspn(a, "\n"), klen = strcspn(a, "=");
        line++;
        char key[64], value[1024];
        if (klen < len && klen < sizeof key && len - klen - 1 < sizeof value) {
            snprintf(key, sizeof key, "%.*s", (int)klen, a);
            snprintf(value, sizeof value, "%.*s", (int)(len - klen - 1), a + klen + 1);
            for (size_t i = 0; i < sizeof cfg_keys / sizeof cfg_keys[0]; i++)
                if (!strcmp(key, cfg_keys[i].key) && !set_value(cfg, &cfg_keys[i], value))
                    return dp_errorf(DP_ERR_FORMAT, "%s: configuration line %d: %s=%s is not a valid value", source,
                                     line, key, DP_ESC(value));
        } else if (klen >= len && len > 0) {
            char head[61];
            snprintf(head, sizeof head, "%.*s", (int)(len > 60 ? 60 : len), a);
            return dp_errorf(DP_ERR_FORMAT, "%s: configuration line %d: no '=' in '%s'", source, line, DP_ESC(head));
        }
        a += len + (a[len] == '\n');
    }
    return DP_OK;
}

const char *dp_config_find(const char *text, const char *key, size_t *len)
{
    size_t kl = strlen(key);
    for (const char *a = text; *a;) {
        size_t n = strcspn(a, "\n");
        if (n > kl && a[kl] == '=' && !memcmp(a, key, kl)) {
            *len = n - kl - 1;
            return a + kl + 1;
        }
        a += n + (a[n] == '\n');
    }
    return NULL;
}
