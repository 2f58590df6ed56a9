/* `dptrain train`: flags -> dp_train_config -> dp_train_run -> summary line. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "dptrain/netdesc.h"
#include "dptrain/train.h"

static const char header[] =
    "usage: dptrain train [options]\n"
    "       mpirun -np P dptrain train [options]   (data-parallel over P ranks)\n"
    "\n"
    "Trains an image classifier on a shard set and prints one summary line:\n"
    "  final: epochs=E steps=S test_acc=A test_loss=L train_samples_per_s=R wall_s=W ... params=N mflops=F\n"
    "--out DIR holds metrics.jsonl and checkpoint.dpc. --resume of a finished run exits 1\n"
    "naming its last epoch's figures (raise --epochs to train on).\n"
    "\n";

/* What the optimizer flags set; the optimizer's own defaults are filled in after parsing. */
typedef struct opt_flags {
    dp_opt_kind kind;
    float momentum, wd; /* < 0: not given */
    int dgc;
} opt_flags;

static dp_status parse_optimizer(const dp_cli_opt *o, const char *a, void *field)
{
    (void)o;
    return dp_opt_kind_parse(a, field);
}

static const char *const nonfinite_names[] = {"stop", "skip", NULL}; /* dp_nonfinite_policy */

/* train's own flags */
static const dp_cli_opt o_model = {.name = "model", .arg = "NAME|FILE",
                                   .help = "mlp | cnn | resnet20, or a network description FILE.json\n"
                                           "(docs/models.md; `dptrain summary` shows its layers)",
                                   .kind = DP_CLI_STR, .cap = sizeof((dp_train_config *)0)->model, .show_default = 1};
static const dp_cli_opt o_test_limit = {.name = "test-limit", .arg = "N",
                                        .help = "evaluate on the first N test images only, 0 = all",
                                        .kind = DP_CLI_LONG, .lo = 0, .hi = 0x1p40, .show_default = 1};
static const dp_cli_opt o_cutout = {.name = "cutout", .arg = "N",
                                    .help = "zero an N x N square at a random place of each training image, 0 = off",
                                    .kind = DP_CLI_INT, .lo = 0, .hi = 1024, .show_default = 1};
static const dp_cli_opt o_augment = {
    .name = "augment",
    .help = "image data: random crop of the image padded by --crop-pad, then a\n"
            "horizontal flip with probability 0.5 (torchvision's RandomCrop + RandomHorizontalFlip)",
    .kind = DP_CLI_ON};
static const dp_cli_opt o_crop_pad = {.name = "crop-pad", .arg = "N",
                                      .help = "--augment: pixels of 0 added on each side before the crop",
                                      .kind = DP_CLI_INT, .lo = 0, .hi = 64, .show_default = 1};
static const dp_cli_opt o_arch = {.name = "arch", .arg = "FILE",
                                  .help = "genotype JSON (as the search writes it): train the network of its cells\n"
                                          "(a cell per layer: stretched stage by stage over --layers)",
                                  .kind = DP_CLI_STR, .cap = 512};
static const dp_cli_opt o_layers = {.name = "layers", .arg = "L", .help = "cells, reductions at L/3 and 2L/3",
                                    .kind = DP_CLI_INT, .lo = 1, .hi = 1000, .show_default = 1};
static const dp_cli_opt o_channels = {.name = "channels", .arg = "C",
                                      .help = "channels of the first cells; the stem has 3C", .kind = DP_CLI_INT, .lo = 1,
                                      .hi = 4096, .show_default = 1};
static const dp_cli_opt o_drop_path = {.name = "drop-path", .arg = "P",
                                       .help = "drop each op output of a sample with probability P x epoch/epochs",
                                       .kind = DP_CLI_FLOAT, .lo = 0, .hi = 1, .show_default = 1};
static const dp_cli_opt o_init = {
    .name = "init", .arg = "FILE",
    .help = "start from the tensors of a safetensors file (e.g. PyTorch's state_dict):\n"
            "every parameter and buffer by name, with the model's shape",
    .kind = DP_CLI_STR, .cap = 512};
static const dp_cli_opt o_init_partial = {.name = "init-partial",
                                          .help = "with --init: skip (and list) tensors the model does not have",
                                          .kind = DP_CLI_ON};
static const dp_cli_opt o_lr = {.name = "lr", .arg = "LR", .help = "base learning rate", .kind = DP_CLI_FLOAT,
                                .lo = 1e-12, .hi = 100, .show_default = 1};
static const dp_cli_opt o_optimizer = {.name = "optimizer", .arg = "NAME", .help = "sgd | adam | adamw (default sgd)",
                                       .kind = DP_CLI_CUSTOM, .parse = parse_optimizer};
static const dp_cli_opt o_momentum = {.name = "momentum", .arg = "M", .help = "SGD momentum (default 0.9)",
                                      .kind = DP_CLI_FLOAT, .lo = 0, .hi = 0.999999};
static const dp_cli_opt o_nesterov = {.name = "nesterov", .help = "Nesterov momentum", .kind = DP_CLI_ON};
static const dp_cli_opt o_wd = {.name = "weight-decay", .arg = "WD",
                                .help = "L2 (sgd, adam) or decoupled (adamw) decay (default 0; adamw 0.01)",
                                .kind = DP_CLI_FLOAT, .lo = 0, .hi = 10};
static const dp_cli_opt o_schedule = {.name = "schedule", .arg = "NAME",
                                      .help = "constant | step | cosine | cospow (sharpDARTS' cosine power\n"
                                              "annealing) (default constant)",
                                      .kind = DP_CLI_CUSTOM, .parse = dp_cli_parse_schedule};
static const dp_cli_opt o_warmup = {.name = "warmup", .arg = "STEPS", .help = "linear warm-up steps",
                                    .kind = DP_CLI_LONG, .lo = 0, .hi = 0x1p40, .show_default = 1};
static const dp_cli_opt o_step_size = {.name = "step-size", .arg = "STEPS", .help = "step schedule: decay every STEPS",
                                       .kind = DP_CLI_LONG, .lo = 1, .hi = 0x1p40, .show_default = 1};
static const dp_cli_opt o_step_gamma = {.name = "step-gamma", .arg = "G", .help = "step schedule: factor",
                                        .kind = DP_CLI_FLOAT, .lo = 1e-9, .hi = 1, .show_default = 1};
static const dp_cli_opt o_accumulate = {.name = "accumulate", .arg = "K",
                                        .help = "micro-batches per optimizer step, communicating once",
                                        .kind = DP_CLI_INT, .lo = 1, .hi = 65536, .show_default = 1};
static const dp_cli_opt o_dgc = {
    .name = "dgc",
    .help = "with topk: DGC momentum correction (Lin et al. 2018): each rank\n"
            "accumulates SGD's momentum before the top-k and clears what it sent;\n"
            "the optimizer then runs without momentum",
    .kind = DP_CLI_ON};
static const dp_cli_opt o_codec_start = {.name = "codec-start", .arg = "N",
                                         .help = "plain float32 allreduce for the first N steps", .kind = DP_CLI_LONG,
                                         .lo = 0, .hi = 0x1p40, .show_default = 1};
static const dp_cli_opt o_checkpoint_every = {.name = "checkpoint-every", .arg = "N",
                                              .help = "also checkpoint every N steps, 0 = at each epoch's end only",
                                              .kind = DP_CLI_LONG, .lo = 0, .hi = 0x1p40, .show_default = 1};
static const dp_cli_opt o_keep = {
    .name = "keep-checkpoints", .arg = "K",
    .help = "keep the K newest checkpoints: checkpoint.dpc, .1 (previous) ..;\n"
            "--resume falls back to an older one if the newest is damaged",
    .kind = DP_CLI_INT, .lo = 1, .hi = 1000, .show_default = 1};
static const dp_cli_opt o_stop_after = {.name = "stop-after", .arg = "N", .help = "checkpoint and stop after global step N",
                                        .kind = DP_CLI_LONG, .lo = 1, .hi = 0x1p40};
static const dp_cli_opt o_nonfinite = {
    .name = "on-nonfinite", .arg = "stop|skip",
    .help = "a NaN/Inf loss or gradient (checked after the allreduce, so every rank\n"
            "agrees): stop naming the step and tensor, or drop the step's update\n"
            "and halve the loss scale (doubled back after --loss-scale-growth clean steps)",
    .kind = DP_CLI_CHOICE, .choices = nonfinite_names, .show_default = 1};
static const dp_cli_opt o_loss_scale = {
    .name = "loss-scale", .arg = "S",
    .help = "multiply the loss by S before backward, divide the gradients after the\n"
            "allreduce (e.g. 65536 with --codec fp16 and --on-nonfinite skip)",
    .kind = DP_CLI_FLOAT, .lo = 0x1p-24, .hi = 0x1p24, .show_default = 1};
static const dp_cli_opt o_loss_growth = {.name = "loss-scale-growth", .arg = "N",
                                         .help = "clean steps before a lowered loss scale doubles, up to --loss-scale",
                                         .kind = DP_CLI_LONG, .lo = 1, .hi = 1e9, .show_default = 1};

static dp_train_config cfg;
static opt_flags of;
static dp_train_result res;

static const dp_cli_bind binds[] = {
    DP_CLI_HEADING("data and model:"),
    DP_CLI_BIND(dp_cli_data, cfg.run.data),
    DP_CLI_BIND(o_model, cfg.model),
    DP_CLI_BIND(dp_cli_limit, cfg.run.limit),
    DP_CLI_BIND(o_test_limit, cfg.test_limit),
    DP_CLI_BIND(o_augment, cfg.augment),
    DP_CLI_BIND(o_crop_pad, cfg.crop_pad),
    DP_CLI_BIND(o_cutout, cfg.cutout),
    DP_CLI_HEADING("derived DARTS network (instead of --model):"),
    DP_CLI_BIND(o_arch, cfg.arch),
    DP_CLI_BIND(o_layers, cfg.layers),
    DP_CLI_BIND(o_channels, cfg.channels),
    DP_CLI_BIND(o_drop_path, cfg.drop_path),
    DP_CLI_HEADING("starting weights (fine-tuning):"),
    DP_CLI_BIND(o_init, cfg.init),
    DP_CLI_BIND(o_init_partial, cfg.init_partial),
    DP_CLI_HEADING("optimisation:"),
    DP_CLI_BIND(dp_cli_epochs, cfg.run.epochs),
    DP_CLI_BIND(dp_cli_batch, cfg.run.batch),
    DP_CLI_BIND(o_lr, cfg.lr),
    DP_CLI_BIND(o_optimizer, of.kind),
    DP_CLI_BIND(o_momentum, of.momentum),
    DP_CLI_BIND(o_nesterov, cfg.opt.nesterov),
    DP_CLI_BIND(o_wd, of.wd),
    DP_CLI_BIND(o_schedule, cfg.schedule),
    DP_CLI_BIND(o_warmup, cfg.warmup),
    DP_CLI_BIND(dp_cli_min_lr, cfg.min_lr),
    DP_CLI_BIND(dp_cli_lr_power, cfg.lr_power),
    DP_CLI_BIND(o_step_size, cfg.step_size),
    DP_CLI_BIND(o_step_gamma, cfg.step_gamma),
    DP_CLI_BIND(dp_cli_clip, cfg.clip),
    DP_CLI_BIND(dp_cli_seed, cfg.run.seed),
    DP_CLI_HEADING("data-parallel (mpirun -np P dptrain train ...; global batch = P x batch x accumulate):"),
    DP_CLI_BIND(dp_cli_sampler, cfg.run.sampler),
    DP_CLI_BIND(o_accumulate, cfg.accumulate),
    DP_CLI_BIND(dp_cli_allreduce, cfg.run.allreduce),
    DP_CLI_BIND(dp_cli_allreduce_table, cfg.run.allreduce_table),
    DP_CLI_BIND(dp_cli_bucket_mb, cfg.run.bucket_mb),
    DP_CLI_BIND(dp_cli_no_overlap, cfg.run.overlap),
    DP_CLI_BIND(dp_cli_check_replicas, cfg.run.check_replicas),
    DP_CLI_BIND(dp_cli_codec, cfg.run.codec),
    DP_CLI_BIND(o_dgc, of.dgc),
    DP_CLI_BIND(dp_cli_wire_zstd, cfg.run.codec.wire_zstd_level),
    DP_CLI_BIND(o_codec_start, cfg.run.codec.start),
    DP_CLI_BIND(dp_cli_sync_every, cfg.run.sync_every),
    DP_CLI_BIND(dp_cli_rank_times, cfg.run.rank_times),
    DP_CLI_HEADING("run:"),
    DP_CLI_BIND(dp_cli_out, cfg.run.out),
    DP_CLI_BIND(dp_cli_resume, cfg.run.resume),
    DP_CLI_BIND(dp_cli_overwrite, cfg.run.overwrite),
    DP_CLI_BIND(o_checkpoint_every, cfg.run.checkpoint_every),
    DP_CLI_BIND(o_keep, cfg.run.keep_checkpoints),
    DP_CLI_BIND(o_stop_after, cfg.run.stop_after),
    DP_CLI_BIND(dp_cli_eval_batch, cfg.run.eval_batch),
    DP_CLI_BIND(dp_cli_threads, cfg.run.threads),
    DP_CLI_BIND(dp_cli_progress, cfg.run.progress),
    DP_CLI_BIND(dp_cli_quiet, cfg.run.quiet),
    DP_CLI_HEADING("faults:"),
    DP_CLI_BIND(o_nonfinite, cfg.run.on_nonfinite),
    DP_CLI_BIND(o_loss_scale, cfg.run.loss_scale),
    DP_CLI_BIND(o_loss_growth, cfg.run.loss_scale_growth),
    DP_CLI_BIND(dp_cli_watchdog, cfg.run.watchdog_s),
    DP_CLI_END,
};

static void defaults(void)
{
    dp_train_config_defaults(&cfg);
    of = (opt_flags){.kind = DP_OPT_SGD, .momentum = -1, .wd = -1, .dgc = 0};
}

static dp_status check(int ranks)
{
    (void)ranks;
    /* The optimizer's own defaults first, then what the user set. */
    dp_opt_config base = dp_opt_defaults(of.kind);
    if (of.kind == DP_OPT_SGD) base.momentum = 0.9f;
    if (of.momentum >= 0) base.momentum = of.momentum;
    if (of.wd >= 0) base.weight_decay = of.wd;
    base.nesterov = cfg.opt.nesterov;
    cfg.opt = base;
    if (of.dgc) {
        /* DGC: the momentum moves into the compressor, before the top-k selection */
        DP_CHECK(cfg.run.codec.kind == DP_CODEC_TOPK, "--dgc needs --codec topk:F");
        DP_CHECK(of.kind == DP_OPT_SGD && !base.nesterov && base.momentum > 0,
                 "--dgc needs --optimizer sgd with --momentum > 0 and no --nesterov");
        cfg.run.codec.dgc_momentum = base.momentum;
        cfg.opt.momentum = 0.0f;
    }
    dp_status rc = dp_train_config_check(&cfg);
    if (rc != DP_OK || cfg.arch[0] || dp_netdesc_shipped(cfg.model)) return rc;
    /* a description that does not read or parse is said once, before the ranks start */
    char *json = NULL;
    rc = dp_netdesc_load(cfg.model, &json);
    if (rc == DP_OK) rc = dp_netdesc_check(json, cfg.model);
    free(json);
    return rc;
}

static dp_status run(MPI_Comm comm, int rank)
{
    (void)rank;
    return dp_train_run(&cfg, comm, &res);
}

static int report(void)
{
    if (res.stopped_early) {
        printf("stopped: steps=%ld checkpoint=%s/checkpoint.dpc\n", res.steps, cfg.run.out);
        return 1;
    }
    printf("final: epochs=%d steps=%ld ranks=%d test_acc=%.4f test_loss=%.4f train_loss=%.4f "
           "train_samples_per_s=%.0f comm_wait_s=%.2f wire_kb_per_step=%.1f raw_kb_per_step=%.1f wall_s=%.1f "
           "skipped_steps=%ld loss_scale=%g params_xxh3=%016llx params=%ld mflops=%.3f\n",
           res.epochs_done, res.steps, res.ranks, res.test_acc, res.test_loss, res.train_loss,
           res.train_samples_per_s, res.comm_wait_s, res.wire_bytes_per_step / 1024, res.raw_bytes_per_step / 1024,
           res.wall_s, res.skipped_steps, res.loss_scale, (unsigned long long)res.params_hash, res.params, res.mflops);
    return 0;
}

static const dp_cli_command train = {.name = "train", .header = header, .binds = binds, .defaults = defaults,
                                     .check = check, .run = run, .report = report, .stop_on_signal = 1};

int dp_cmd_train(int argc, char **argv, MPI_Comm comm) { return dp_cli_run(&train, argc, argv, comm); }
