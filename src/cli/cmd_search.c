/* `dptrain search`: flags -> dp_search_config -> dp_search_run -> summary line. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "dptrain/nas_select.h"
#include "dptrain/search.h"

static const char header[] =
    "usage: dptrain search [options]\n"
    "       mpirun -np P dptrain search [options]   (data-parallel over P ranks)\n"
    "\n"
    "DARTS-family architecture search on an image shard set. The training split is halved:\n"
    "weights train on one half, the architecture (alpha) on the other. Prints one line:\n"
    "  final: epochs=E steps=S val_acc=A train_images_per_s=R peak_rss_mb=M wall_s=W ...\n"
    "and leaves in --out: genotype.json (for dptrain train --arch), genotype_epochN.json,\n"
    "alpha.csv (softmax(alpha) per epoch), metrics.jsonl, normal/reduction .dot and .png;\n"
    "search.dpc, its checkpoint, is written at the end of every epoch (--resume of a\n"
    "finished search exits 1 naming its last epoch's figures; --reselect chooses its\n"
    "cell again). alpha_normal.png / alpha_reduce.png plot alpha over the epochs (gnuplot).\n"
    "\n";

static dp_status parse_ops(const dp_cli_opt *o, const char *a, void *field)
{
    (void)o;
    dp_supernet_config *net = field;
    return dp_nas_ops_parse(a, net->ops, &net->nops);
}

static dp_status parse_strategy(const dp_cli_opt *o, const char *a, void *field)
{
    (void)o;
    return dp_nas_strategy_parse(a, field);
}

static dp_status parse_select(const dp_cli_opt *o, const char *a, void *field)
{
    (void)o;
    dp_nas_select sel;
    dp_status rc = dp_nas_select_parse(a, &sel);
    if (rc == DP_OK) *(int *)field = (int)sel;
    return rc;
}

static dp_status parse_recompute(const dp_cli_opt *o, const char *a, void *field)
{
    if (!strcmp(a, "all")) {
        *(int *)field = (int)o->hi;
        return DP_OK;
    }
    long l = 0;
    dp_status rc = dp_cli_long("--recompute", a, (long)o->lo, (long)o->hi, &l);
    if (rc == DP_OK) *(int *)field = (int)l;
    return rc;
}

static dp_status parse_edge_norm(const dp_cli_opt *o, const char *a, void *field)
{
    (void)o;
    if (!strcmp(a, "on") || !strcmp(a, "off")) {
        *(int *)field = a[1] == 'n';
        return DP_OK;
    }
    return dp_errorf(DP_ERR_ARG, "--edge-norm: '%s' is not on or off", a);
}

/* search's own flags */
static const dp_cli_opt o_layers = {.name = "layers", .arg = "L", .help = "cells (reductions at L/3 and 2L/3)",
                                    .kind = DP_CLI_INT, .lo = 1, .hi = 64, .show_default = 1};
static const dp_cli_opt o_channels = {.name = "channels", .arg = "C", .help = "channels of the first cells",
                                      .kind = DP_CLI_INT, .lo = 1, .hi = 1024, .show_default = 1};
static const dp_cli_opt o_ops = {
    .name = "ops", .arg = "LIST",
    .help = "primitives, comma-separated, or all (default all: none, max_pool_3x3,\n"
            "avg_pool_3x3, skip_connect, sep_conv_3x3, sep_conv_5x5, dil_conv_3x3,\n"
            "dil_conv_5x5)",
    .kind = DP_CLI_CUSTOM, .parse = parse_ops};
static const dp_cli_opt o_strategy = {
    .name = "strategy", .arg = "NAME",
    .help = "darts (softmax, default) | temperature (softmax(alpha/T), T decays\n"
            "exponentially) | gumbel (GDAS: one sampled op per edge, straight-through)\n"
            "| gold (one-level, gradual pruning of the weakest ops) | maxw (sharpDARTS'\n"
            "Max-W: softmax(alpha) + 1 - its row's max, the favoured op at weight 1)",
    .kind = DP_CLI_CUSTOM, .parse = parse_strategy};
static const dp_cli_opt o_t_start = {.name = "t-start", .arg = "T",
                                     .help = "first temperature (temperature: 1; gumbel: 10)", .kind = DP_CLI_FLOAT,
                                     .lo = 1e-6, .hi = 1e6};
static const dp_cli_opt o_t_end = {.name = "t-end", .arg = "T", .help = "last temperature (temperature: 0.05; gumbel: 0.1)",
                                   .kind = DP_CLI_FLOAT, .lo = 1e-6, .hi = 1e6};
static const dp_cli_opt o_unrolled = {.name = "unrolled",
                                      .help = "second-order alpha gradient (finite-difference Hessian-vector product)",
                                      .kind = DP_CLI_ON};
static const dp_cli_opt o_cost_weight = {
    .name = "cost-weight", .arg = "L",
    .help = "add L * E[cost] to the alpha objective (cost: MFLOPs per image, or ms\n"
            "per batch with --cost-table)",
    .kind = DP_CLI_FLOAT, .lo = 0, .hi = 1e6, .show_default = 1};
static const dp_cli_opt o_cost_table = {.name = "cost-table", .arg = "FILE", .help = "latency table written by --profile-ops",
                                        .kind = DP_CLI_STR, .cap = 512};
static const dp_cli_opt o_profile = {.name = "profile-ops", .arg = "FILE",
                                     .help = "time every primitive where this supernet uses it, write FILE, exit",
                                     .kind = DP_CLI_STR, .cap = 512};
static const dp_cli_opt o_random = {.name = "random-genotype", .arg = "FILE",
                                    .help = "write a uniformly random genotype of the space (--seed) to FILE, exit\n"
                                            "(with --cell-per-layer: a cell for each of --layers)",
                                    .kind = DP_CLI_STR, .cap = 512};
/* read as a float into the double field, as it always was: the same bits in the configuration */
static const dp_cli_opt o_budget = {.name = "flops-budget", .arg = "MF",
                                    .help = "gold: the derived network's MFLOPs per image must fit (hard bound)",
                                    .kind = DP_CLI_FLOAT, .lo = 1e-6, .hi = 1e9};
static const dp_cli_opt o_prune_every = {.name = "prune-every", .arg = "N", .help = "gold: steps between pruning rounds",
                                         .kind = DP_CLI_INT, .lo = 1, .hi = 1 << 30, .show_default = 1};
static const dp_cli_opt o_warmup_epochs = {.name = "warmup-epochs", .arg = "N", .help = "gold: epochs before pruning starts",
                                           .kind = DP_CLI_INT, .lo = 0, .hi = 100000, .show_default = 1};
static const dp_cli_opt o_arch_warmup = {.name = "arch-warmup", .arg = "N",
                                         .help = "epochs of weight steps only before alpha moves", .kind = DP_CLI_INT,
                                         .lo = 0, .hi = 100000, .show_default = 1};
static const dp_cli_opt o_lr = {.name = "lr", .arg = "LR", .help = "weights: SGD learning rate, annealed to --min-lr by --schedule",
                                .kind = DP_CLI_FLOAT, .lo = 1e-12, .hi = 100, .show_default = 1};
static const dp_cli_opt o_schedule = {.name = "schedule", .arg = "NAME",
                                      .help = "weights' lr: cosine (DARTS) | cospow (sharpDARTS' cosine power\n"
                                              "annealing) (default cosine)",
                                      .kind = DP_CLI_CUSTOM, .parse = dp_cli_parse_schedule};
static const dp_cli_opt o_momentum = {.name = "momentum", .arg = "M", .help = "weights: SGD momentum",
                                      .kind = DP_CLI_FLOAT, .lo = 0, .hi = 0.999999, .show_default = 1};
static const dp_cli_opt o_wd = {.name = "weight-decay", .arg = "WD", .help = "weights: L2 decay", .kind = DP_CLI_FLOAT,
                                .lo = 0, .hi = 10, .show_default = 1};
static const dp_cli_opt o_arch_lr = {.name = "arch-lr", .arg = "LR", .help = "alpha: Adam lr (betas 0.5 0.999)",
                                     .kind = DP_CLI_FLOAT, .lo = 1e-12, .hi = 100, .show_default = 1};
static const dp_cli_opt o_arch_wd = {.name = "arch-weight-decay", .arg = "WD", .help = "alpha: L2 decay",
                                     .kind = DP_CLI_FLOAT, .lo = 0, .hi = 10, .show_default = 1};
static const dp_cli_opt o_arch_clip = {.name = "arch-clip", .arg = "N", .help = "alpha: clip to this global norm, 0 = off",
                                       .kind = DP_CLI_FLOAT, .lo = 0, .hi = 1e9, .show_default = 1};
static const dp_cli_opt o_stop_after = {.name = "stop-after", .arg = "N",
                                        .help = "stop after epoch N, checkpoint written (resume later with --resume)",
                                        .kind = DP_CLI_INT, .lo = 1, .hi = 100000};
static const dp_cli_opt o_eval_limit = {.name = "eval-limit", .arg = "N",
                                        .help = "held-out images evaluated per epoch, 0 = all", .kind = DP_CLI_LONG,
                                        .lo = 0, .hi = 0x1p40, .show_default = 1};
static const dp_cli_opt o_skip_warn = {.name = "skip-warn", .arg = "K", .help = "warn at K normal-cell skips",
                                       .kind = DP_CLI_INT, .lo = 1, .hi = 8, .show_default = 1};
static const dp_cli_opt o_recompute = {
    .name = "recompute", .arg = "N|all",
    .help = "the first N cells (the largest) keep only their outputs and run their\n"
            "forward again in backward: less memory for a second forward (default 0)",
    .kind = DP_CLI_CUSTOM, .lo = 0, .hi = 64, .parse = parse_recompute};

static const dp_cli_opt o_partial = {
    .name = "partial-channels", .arg = "K",
    .help = "PC-DARTS: only 1/K of each edge's channels go through the candidate ops\n"
            "(the rest bypass them, then a channel shuffle); 1 = DARTS, the paper uses 4",
    .kind = DP_CLI_INT, .lo = 1, .hi = 64, .show_default = 1};
static const dp_cli_opt o_edge_norm = {
    .name = "edge-norm", .arg = "on|off",
    .help = "PC-DARTS' edge normalisation: softmax(beta) weights each node's edges,\n"
            "and ranks them at derivation (default: on with --partial-channels > 1)",
    .kind = DP_CLI_CUSTOM, .parse = parse_edge_norm};
static const dp_cli_opt o_per_layer = {
    .name = "cell-per-layer",
    .help = "D-DARTS: every cell its own alpha and its own derived cell (genotype\n"
            "\"cells\": one per layer) instead of one normal and one reduction cell",
    .kind = DP_CLI_ON};
static const dp_cli_opt o_select = {
    .name = "select", .arg = "HOW",
    .help = "how the final cell is chosen: alpha (largest alpha per edge and node,\n"
            "default) | perturb (remove each op, then each edge, from the trained\n"
            "supernet and keep what held-out accuracy misses most; Wang et al. 2021;\n"
            "perturb.csv logs every measurement, genotype_alpha.json keeps alpha's cell)\n"
            "| sample (alpha's cell and --select-samples random cells, each cut out of\n"
            "the supernet and measured on held-out images, the best kept; Li and\n"
            "Talwalkar 2019; sample.jsonl logs each)",
    .kind = DP_CLI_CUSTOM, .parse = parse_select};
static const dp_cli_opt o_select_samples = {.name = "select-samples", .arg = "N",
                                            .help = "sample: random cells ranked beside alpha's",
                                            .kind = DP_CLI_INT, .lo = 0, .hi = 1000000, .show_default = 1};
static const dp_cli_opt o_select_candidates = {
    .name = "select-candidates", .arg = "PATH",
    .help = "sample: rank these cells too, after alpha's and before the random ones: a\n"
            "genotype file, or a directory whose *.json genotypes are taken in name order",
    .kind = DP_CLI_STR, .cap = 512};
static const dp_cli_opt o_select_batches = {.name = "select-batches", .arg = "N",
                                            .help = "perturb, sample: held-out batches per measurement (the first N, fixed)",
                                            .kind = DP_CLI_INT, .lo = 1, .hi = 1000000, .show_default = 1};
static const dp_cli_opt o_select_tune = {.name = "select-tune", .arg = "N",
                                         .help = "perturb: weight steps between decisions (0 = no fine-tuning)",
                                         .kind = DP_CLI_INT, .lo = 0, .hi = 1000000, .show_default = 1};
static const dp_cli_opt o_reselect = {
    .name = "reselect",
    .help = "choose the cell again from --out's search.dpc with --select, without\n"
            "searching (give the flags the search ran with)",
    .kind = DP_CLI_ON};
static const dp_cli_opt o_retrain_layers = {.name = "retrain-layers", .arg = "L",
                                            .help = "cells of the derived network whose parameters and FLOPs are reported",
                                            .kind = DP_CLI_INT, .lo = 1, .hi = 1000, .show_default = 1};
static const dp_cli_opt o_retrain_channels = {.name = "retrain-channels", .arg = "C",
                                              .help = "its channels (bench_nas_retrain.sh passes its recipe's 5 x 8)",
                                              .kind = DP_CLI_INT, .lo = 1, .hi = 4096, .show_default = 1};
static const dp_cli_opt o_free_warn = {.name = "free-warn", .arg = "K",
                                       .help = "warn at K parameter-free ops (pools, skip) in the normal cell",
                                       .kind = DP_CLI_INT, .lo = 1, .hi = 8, .show_default = 1};

static const dp_cli_opt o_stop_stable = {
    .name = "stop-stable", .arg = "N",
    .help = "end the search once the derived cell has not changed for N epochs of\n"
            "alpha steps (DARTS+; 0 = off)",
    .kind = DP_CLI_INT, .lo = 0, .hi = 100000};
static const dp_cli_opt o_stop_free = {
    .name = "stop-free", .arg = "K",
    .help = "end the search once the normal cell has K or more parameter-free ops\n"
            "(pools, skip), keeping the cell of the epoch before (0 = off)",
    .kind = DP_CLI_INT, .lo = 0, .hi = 8};
static const dp_cli_opt o_self_distill = {
    .name = "self-distill", .arg = "L",
    .help = "SD-DARTS: add L * T^2 * KL(teacher || supernet) to the training loss, the\n"
            "teacher being the supernet at the end of the previous epoch(s) (0 = off)",
    .kind = DP_CLI_FLOAT, .lo = 0, .hi = 1e6};
static const dp_cli_opt o_distill_temp = {.name = "distill-temp", .arg = "T",
                                          .help = "self-distillation: softmax temperature of both sides",
                                          .kind = DP_CLI_FLOAT, .lo = 1e-3, .hi = 1e3, .show_default = 1};
static const dp_cli_opt o_distill_voters = {
    .name = "distill-voters", .arg = "V",
    .help = "self-distillation: teachers from the ends of the last V epochs, their\n"
            "probabilities averaged (one more forward per step each)",
    .kind = DP_CLI_INT, .lo = 1, .hi = 16, .show_default = 1};

static dp_search_config cfg;
static char profile[512], random_out[512]; /* what only the command uses */
static dp_search_result res;

static const dp_cli_bind binds[] = {
    DP_CLI_HEADING("search space:"),
    DP_CLI_BIND(dp_cli_data, cfg.run.data),
    DP_CLI_BIND(o_layers, cfg.net.layers),
    DP_CLI_BIND(o_channels, cfg.net.channels),
    DP_CLI_BIND(o_ops, cfg.net),
    DP_CLI_HEADING("strategy:"),
    DP_CLI_BIND(o_strategy, cfg.strategy),
    DP_CLI_BIND(o_t_start, cfg.t_start),
    DP_CLI_BIND(o_t_end, cfg.t_end),
    DP_CLI_BIND(o_unrolled, cfg.unrolled),
    DP_CLI_BIND(o_cost_weight, cfg.cost_weight),
    DP_CLI_BIND(o_cost_table, cfg.cost_table),
    DP_CLI_BIND(o_profile, profile),
    DP_CLI_BIND(o_random, random_out),
    DP_CLI_BIND(o_budget, cfg.flops_budget),
    DP_CLI_BIND(o_prune_every, cfg.prune_every),
    DP_CLI_BIND(o_warmup_epochs, cfg.warmup_epochs),
    DP_CLI_BIND(o_arch_warmup, cfg.arch_warmup),
    DP_CLI_BIND(o_partial, cfg.net.partial_channels),
    DP_CLI_BIND(o_edge_norm, cfg.net.edge_norm),
    DP_CLI_BIND(o_per_layer, cfg.net.per_layer),
    DP_CLI_BIND(o_self_distill, cfg.self_distill),
    DP_CLI_BIND(o_distill_temp, cfg.distill_temp),
    DP_CLI_BIND(o_distill_voters, cfg.distill_voters),
    DP_CLI_HEADING("choosing the cell:"),
    DP_CLI_BIND(o_select, cfg.select),
    DP_CLI_BIND(o_select_batches, cfg.select_batches),
    DP_CLI_BIND(o_select_tune, cfg.select_tune),
    DP_CLI_BIND(o_select_samples, cfg.select_samples),
    DP_CLI_BIND(o_select_candidates, cfg.select_candidates),
    DP_CLI_BIND(o_reselect, cfg.reselect),
    DP_CLI_BIND(o_retrain_layers, cfg.retrain_layers),
    DP_CLI_BIND(o_retrain_channels, cfg.retrain_channels),
    DP_CLI_BIND(o_free_warn, cfg.free_warn),
    DP_CLI_HEADING("optimisation (reference DARTS defaults):"),
    DP_CLI_BIND(dp_cli_epochs, cfg.run.epochs),
    DP_CLI_BIND(dp_cli_batch, cfg.run.batch),
    DP_CLI_BIND(dp_cli_limit, cfg.run.limit),
    DP_CLI_BIND(o_lr, cfg.w_lr),
    DP_CLI_BIND(dp_cli_min_lr, cfg.w_min_lr),
    DP_CLI_BIND(o_schedule, cfg.w_schedule),
    DP_CLI_BIND(dp_cli_lr_power, cfg.w_lr_power),
    DP_CLI_BIND(o_momentum, cfg.w_momentum),
    DP_CLI_BIND(o_wd, cfg.w_wd),
    DP_CLI_BIND(dp_cli_clip, cfg.w_clip),
    DP_CLI_BIND(o_arch_lr, cfg.a_lr),
    DP_CLI_BIND(o_arch_wd, cfg.a_wd),
    DP_CLI_BIND(o_arch_clip, cfg.a_clip),
    DP_CLI_BIND(dp_cli_seed, cfg.run.seed),
    DP_CLI_HEADING("data-parallel:"),
    DP_CLI_BIND(dp_cli_sampler, cfg.run.sampler),
    DP_CLI_BIND(dp_cli_allreduce, cfg.run.allreduce),
    DP_CLI_BIND(dp_cli_allreduce_table, cfg.run.allreduce_table),
    DP_CLI_BIND(dp_cli_codec, cfg.run.codec),
    DP_CLI_BIND(dp_cli_wire_zstd, cfg.run.codec.wire_zstd_level),
    DP_CLI_BIND(dp_cli_bucket_mb, cfg.run.bucket_mb),
    DP_CLI_BIND(dp_cli_no_overlap, cfg.run.overlap),
    DP_CLI_BIND(dp_cli_check_replicas, cfg.run.check_replicas),
    DP_CLI_BIND(dp_cli_sync_every, cfg.run.sync_every),
    DP_CLI_BIND(dp_cli_rank_times, cfg.run.rank_times),
    DP_CLI_HEADING("run:"),
    DP_CLI_BIND(dp_cli_out, cfg.run.out),
    DP_CLI_BIND(dp_cli_resume, cfg.run.resume),
    DP_CLI_BIND(dp_cli_overwrite, cfg.run.overwrite),
    DP_CLI_BIND(o_stop_after, cfg.stop_after),
    DP_CLI_BIND(o_stop_stable, cfg.stop_stable),
    DP_CLI_BIND(o_stop_free, cfg.stop_free),
    DP_CLI_BIND(o_eval_limit, cfg.eval_limit),
    DP_CLI_BIND(dp_cli_eval_batch, cfg.run.eval_batch),
    DP_CLI_BIND(o_skip_warn, cfg.skip_warn),
    DP_CLI_BIND(dp_cli_threads, cfg.run.threads),
    DP_CLI_BIND(o_recompute, cfg.net.recompute),
    DP_CLI_BIND(dp_cli_progress, cfg.run.progress),
    DP_CLI_BIND(dp_cli_quiet, cfg.run.quiet),
    DP_CLI_HEADING("faults:"),
    DP_CLI_BIND(dp_cli_watchdog, cfg.run.watchdog_s),
    DP_CLI_END,
};

static void defaults(void)
{
    dp_search_config_defaults(&cfg);
    profile[0] = random_out[0] = '\0';
}

static dp_status check(int ranks)
{
    (void)ranks;
    dp_status rc = dp_search_config_check(&cfg);
    if (rc == DP_OK && cfg.cost_table[0]) { /* a bad table is reported before any data is read */
        dp_cost_table *t = NULL;
        rc = dp_cost_table_load(cfg.cost_table, &t);
        dp_cost_table_free(t);
    }
    return rc;
}

static dp_status run(MPI_Comm comm, int rank)
{
    if (random_out[0]) {
        dp_rng r;
        dp_genotype g;
        dp_rng_seed(&r, cfg.run.seed, DP_STREAM_USER + 6, 0);
        dp_nas_random_genotype(&r, cfg.net.ops, cfg.net.nops, cfg.net.per_layer ? cfg.net.layers : 0, &g);
        return rank == 0 ? dp_genotype_save(&g, random_out) : DP_OK;
    }
    /* one rank measures: several ranks on one node would time each other */
    if (profile[0]) return rank == 0 ? dp_search_profile_ops(&cfg, profile) : DP_OK;
    return dp_search_run(&cfg, comm, &res);
}

static int report(void)
{
    if (random_out[0]) printf("random genotype: %s\n", random_out);
    else if (profile[0]) printf("profile: %s\n", profile);
    if (random_out[0] || profile[0]) return 0;
    char g[DP_GENOTYPE_TEXT_MAX];
    dp_genotype_format(&res.genotype, g, sizeof g);
    printf("final: epochs=%d steps=%ld val_acc=%.4f val_loss=%.4f train_images_per_s=%.2f peak_rss_mb=%.0f "
           "epoch_s=%.1f wall_s=%.1f skips=%d derived_mflops=%.3f params_xxh3=%016llx select=%s param_free=%d "
           "retrain_params=%.0f retrain_mflops=%.3f select_s=%.1f early_stop=%s stop_epoch=%d genotype=%s%s\n",
           res.epochs_done, res.steps, res.val_acc, res.val_loss, res.train_images_per_s, res.peak_rss_mb, res.epoch_s,
           res.wall_s, res.skips, res.derived_mflops, (unsigned long long)res.params_hash,
           dp_nas_select_name((dp_nas_select)cfg.select), res.param_free, res.retrain_params, res.retrain_mflops,
           res.select_s, dp_search_stop_name(res.early_stop), res.stop_epoch,
           cfg.run.out[0] ? cfg.run.out : "-", cfg.run.out[0] ? "/genotype.json" : "");
    if (!cfg.run.out[0]) printf("genotype: %s\n", g);
    if (res.stopped_early)
        printf("stopped after epoch %d of %d: %s/search.dpc holds the rest (run again with --resume)\n",
               res.epochs_done, cfg.run.epochs, cfg.run.out);
    return res.stopped_early;
}

static const dp_cli_command search = {.name = "search", .header = header, .binds = binds, .defaults = defaults,
                                      .check = check, .run = run, .report = report, .stop_on_signal = 1};

int dp_cmd_search(int argc, char **argv, MPI_Comm comm) { return dp_cli_run(&search, argc, argv, comm); }
