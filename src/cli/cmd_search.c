/* `dptrain search`: flags -> dp_search_config -> dp_search_run -> summary line. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "dptrain/search.h"

static const char usage[] =
    "usage: dptrain search [options]\n"
    "       mpirun -np P dptrain search [options]   (data-parallel over P ranks)\n"
    "\n"
    "DARTS-family architecture search on an image shard set. The training split is halved:\n"
    "weights train on one half, the architecture (alpha) on the other. Prints one line:\n"
    "  final: epochs=E steps=S val_acc=A train_images_per_s=R peak_rss_mb=M wall_s=W ...\n"
    "and leaves in --out: genotype.json (for dptrain train --arch), genotype_epochN.json,\n"
    "alpha.csv (softmax(alpha) per epoch), metrics.jsonl, normal/reduction .dot and .png.\n"
    "\n"
    "search space:\n"
    "  --data DIR            shard set with a manifest (default shards/fashion-mnist)\n"
    "  --layers L            cells (default 5; reductions at L/3 and 2L/3)\n"
    "  --channels C          channels of the first cells (default 8)\n"
    "  --ops LIST            primitives, comma-separated, or all (default all: none, max_pool_3x3,\n"
    "                        avg_pool_3x3, skip_connect, sep_conv_3x3, sep_conv_5x5, dil_conv_3x3,\n"
    "                        dil_conv_5x5)\n"
    "strategy:\n"
    "  --strategy NAME       darts (softmax, default) | temperature (softmax(alpha/T), T decays\n"
    "                        exponentially) | gumbel (GDAS: one sampled op per edge, straight-through)\n"
    "                        | gold (one-level, gradual pruning of the weakest ops)\n"
    "  --t-start T, --t-end T  temperature schedule (temperature: 1 -> 0.05; gumbel: 10 -> 0.1)\n"
    "  --unrolled            second-order alpha gradient (finite-difference Hessian-vector product)\n"
    "  --cost-weight L       add L * E[cost] to the alpha objective (cost: MFLOPs per image, or ms\n"
    "                        per batch with --cost-table)\n"
    "  --cost-table FILE     latency table written by --profile-ops\n"
    "  --profile-ops FILE    time every primitive where this supernet uses it, write FILE, exit\n"
    "  --random-genotype FILE  write a uniformly random genotype of the space (--seed) to FILE, exit\n"
    "  --flops-budget MF     gold: the derived network's MFLOPs per image must fit (hard bound)\n"
    "  --prune-every N       gold: steps between pruning rounds (default 50)\n"
    "  --warmup-epochs N     gold: epochs before pruning starts (default 1)\n"
    "  --arch-warmup N       epochs of weight steps only before alpha moves (default 0)\n"
    "optimisation (reference DARTS defaults):\n"
    "  --epochs N            (default 1)      --batch B        per rank (default 64)\n"
    "  --limit N             first N training images (default all)\n"
    "  --lr LR               weights: SGD lr, cosine to --min-lr (default 0.025 -> 0.001)\n"
    "  --momentum M          (default 0.9)    --weight-decay WD (default 3e-4)  --clip N (default 5)\n"
    "  --arch-lr LR          alpha: Adam lr (default 3e-4, betas 0.5 0.999)\n"
    "  --arch-weight-decay WD  (default 1e-3)   --arch-clip N (default 10)\n"
    "  --seed S              (default 1)\n"
    "data-parallel:\n"
    "  --sampler shard|global  shard (default) or global (P ranks x b == 1 rank x P b exactly)\n"
    "  --allreduce ring|mpi  --codec NAME  --wire-zstd L  --bucket-mb MB  --no-overlap\n"
    "  --check-replicas N    compare a hash of weights and alpha across ranks every N steps\n"
    "run:\n"
    "  --out DIR             run directory (created if missing); search.dpc, its checkpoint, is\n"
    "                        written at the end of every epoch\n"
    "  --resume              go on from <out>/search.dpc (the same flags and number of ranks)\n"
    "  --stop-after N        stop after epoch N, checkpoint written (resume later with --resume)\n"
    "  --eval-limit N        held-out images evaluated per epoch (default all)\n"
    "  --eval-batch B        (default 64)     --skip-warn K  warn at K normal-cell skips (default 4)\n"
    "  --threads N           OpenBLAS threads (default 1)\n"
    "  --recompute N|all     the first N cells (the largest) keep only their outputs and run their\n"
    "                        forward again in backward: less memory for a second forward (default 0)\n"
    "  --watchdog SECONDS    a collective without progress this long: report every rank, abort (default 300, 0 = off)\n"
    "  --progress bar|plain  --quiet   -h, --help\n";

enum {
    O_DATA = 256, O_LAYERS, O_CHANNELS, O_OPS, O_STRATEGY, O_TSTART, O_TEND, O_UNROLLED, O_COSTW, O_COSTT, O_PROFILE,
    O_BUDGET, O_PRUNE, O_WARMUP_EP, O_EPOCHS, O_BATCH, O_LIMIT, O_LR, O_MIN_LR, O_MOMENTUM, O_WD, O_CLIP, O_ALR,
    O_AWD, O_ACLIP, O_SEED, O_SAMPLER, O_ALLREDUCE, O_CODEC, O_ZSTD, O_BUCKET, O_NO_OVERLAP, O_REPLICAS, O_OUT,
    O_EVAL_LIMIT, O_EVAL_BATCH, O_SKIP_WARN, O_THREADS, O_PROGRESS, O_QUIET, O_RANDOM, O_ARCH_WARMUP,
    O_WATCHDOG, O_RECOMPUTE, O_RESUME, O_STOP,
};

static const struct option opts[] = {
    {"data", 1, 0, O_DATA}, {"layers", 1, 0, O_LAYERS}, {"channels", 1, 0, O_CHANNELS}, {"ops", 1, 0, O_OPS},
    {"strategy", 1, 0, O_STRATEGY}, {"t-start", 1, 0, O_TSTART}, {"t-end", 1, 0, O_TEND},
    {"unrolled", 0, 0, O_UNROLLED}, {"cost-weight", 1, 0, O_COSTW}, {"cost-table", 1, 0, O_COSTT},
    {"profile-ops", 1, 0, O_PROFILE}, {"flops-budget", 1, 0, O_BUDGET}, {"prune-every", 1, 0, O_PRUNE},
    {"warmup-epochs", 1, 0, O_WARMUP_EP}, {"epochs", 1, 0, O_EPOCHS}, {"batch", 1, 0, O_BATCH},
    {"limit", 1, 0, O_LIMIT}, {"lr", 1, 0, O_LR}, {"min-lr", 1, 0, O_MIN_LR}, {"momentum", 1, 0, O_MOMENTUM},
    {"weight-decay", 1, 0, O_WD}, {"clip", 1, 0, O_CLIP}, {"arch-lr", 1, 0, O_ALR},
    {"arch-weight-decay", 1, 0, O_AWD}, {"arch-clip", 1, 0, O_ACLIP}, {"seed", 1, 0, O_SEED},
    {"sampler", 1, 0, O_SAMPLER}, {"allreduce", 1, 0, O_ALLREDUCE}, {"codec", 1, 0, O_CODEC},
    {"wire-zstd", 1, 0, O_ZSTD}, {"bucket-mb", 1, 0, O_BUCKET}, {"no-overlap", 0, 0, O_NO_OVERLAP},
    {"check-replicas", 1, 0, O_REPLICAS}, {"out", 1, 0, O_OUT}, {"eval-limit", 1, 0, O_EVAL_LIMIT},
    {"eval-batch", 1, 0, O_EVAL_BATCH}, {"skip-warn", 1, 0, O_SKIP_WARN}, {"threads", 1, 0, O_THREADS}, {"watchdog", 1, 0, O_WATCHDOG},
    {"recompute", 1, 0, O_RECOMPUTE}, {"resume", 0, 0, O_RESUME}, {"stop-after", 1, 0, O_STOP},
    {"progress", 1, 0, O_PROGRESS}, {"quiet", 0, 0, O_QUIET}, {"random-genotype", 1, 0, O_RANDOM},
    {"arch-warmup", 1, 0, O_ARCH_WARMUP}, {"help", 0, 0, 'h'}, {0, 0, 0, 0},
};

static dp_status parse(int argc, char **argv, dp_search_config *cfg, char *profile, char *random, int *help)
{
    dp_status rc = DP_OK;
    long l;
    float f;
    int ch;
    optind = 1;
    opterr = 0;
    while (rc == DP_OK && (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const char *a = optarg;
        switch (ch) {
        case O_DATA: rc = dp_flag_str("--data", a, cfg->data, sizeof cfg->data); break;
        case O_LAYERS: rc = dp_flag_int("--layers", a, 1, 64, &cfg->net.layers); break;
        case O_CHANNELS: rc = dp_flag_int("--channels", a, 1, 1024, &cfg->net.channels); break;
        case O_RECOMPUTE:
            if (!strcmp(a, "all")) cfg->net.recompute = 64;
            else rc = dp_flag_int("--recompute", a, 0, 64, &cfg->net.recompute);
            break;
        case O_OPS: rc = dp_nas_ops_parse(a, cfg->net.ops, &cfg->net.nops); break;
        case O_STRATEGY: rc = dp_nas_strategy_parse(a, &cfg->strategy); break;
        case O_TSTART: rc = dp_flag_float("--t-start", a, 1e-6, 1e6, &cfg->t_start); break;
        case O_TEND: rc = dp_flag_float("--t-end", a, 1e-6, 1e6, &cfg->t_end); break;
        case O_UNROLLED: cfg->unrolled = 1; break;
        case O_COSTW: rc = dp_flag_float("--cost-weight", a, 0, 1e6, &cfg->cost_weight); break;
        case O_COSTT: rc = dp_flag_str("--cost-table", a, cfg->cost_table, sizeof cfg->cost_table); break;
        case O_PROFILE: rc = dp_flag_str("--profile-ops", a, profile, 512); break;
        case O_RANDOM: rc = dp_flag_str("--random-genotype", a, random, 512); break;
        case O_BUDGET: rc = dp_flag_float("--flops-budget", a, 1e-6, 1e9, &f), cfg->flops_budget = f; break;
        case O_PRUNE: rc = dp_flag_int("--prune-every", a, 1, 1 << 30, &cfg->prune_every); break;
        case O_ARCH_WARMUP: rc = dp_flag_int("--arch-warmup", a, 0, 100000, &cfg->arch_warmup); break;
        case O_WARMUP_EP: rc = dp_flag_int("--warmup-epochs", a, 0, 100000, &cfg->warmup_epochs); break;
        case O_EPOCHS: rc = dp_flag_int("--epochs", a, 1, 100000, &cfg->epochs); break;
        case O_BATCH: rc = dp_flag_int("--batch", a, 1, 1 << 16, &cfg->batch); break;
        case O_LIMIT: rc = dp_flag_long("--limit", a, 0, 1L << 40, &cfg->limit); break;
        case O_LR: rc = dp_flag_float("--lr", a, 1e-12, 100, &cfg->w_lr); break;
        case O_MIN_LR: rc = dp_flag_float("--min-lr", a, 0, 100, &cfg->w_min_lr); break;
        case O_MOMENTUM: rc = dp_flag_float("--momentum", a, 0, 0.999999, &cfg->w_momentum); break;
        case O_WD: rc = dp_flag_float("--weight-decay", a, 0, 10, &cfg->w_wd); break;
        case O_CLIP: rc = dp_flag_float("--clip", a, 0, 1e9, &cfg->w_clip); break;
        case O_ALR: rc = dp_flag_float("--arch-lr", a, 1e-12, 100, &cfg->a_lr); break;
        case O_AWD: rc = dp_flag_float("--arch-weight-decay", a, 0, 10, &cfg->a_wd); break;
        case O_ACLIP: rc = dp_flag_float("--arch-clip", a, 0, 1e9, &cfg->a_clip); break;
        case O_SEED:
            rc = dp_flag_long("--seed", a, 0, 0x7fffffffffffffffL, &l);
            cfg->seed = (uint64_t)l;
            break;
        case O_SAMPLER: rc = dp_flag_sampler(a, &cfg->sampler); break;
        case O_ALLREDUCE: {
            int algo = 0;
            rc = dp_flag_allreduce(a, &algo);
            cfg->allreduce = (dp_allreduce_algo)algo;
            break;
        }
        case O_CODEC: rc = dp_compress_parse(a, &cfg->codec); break;
        case O_ZSTD: rc = dp_flag_int("--wire-zstd", a, 0, DP_CODEC_ZSTD_MAX, &cfg->codec.wire_zstd_level); break;
        case O_BUCKET: rc = dp_flag_float("--bucket-mb", a, 1e-6, 4096, &cfg->bucket_mb); break;
        case O_NO_OVERLAP: cfg->overlap = 0; break;
        case O_REPLICAS: rc = dp_flag_long("--check-replicas", a, 0, 1L << 40, &cfg->check_replicas); break;
        case O_OUT: rc = dp_flag_str("--out", a, cfg->out, sizeof cfg->out); break;
        case O_EVAL_LIMIT: rc = dp_flag_long("--eval-limit", a, 0, 1L << 40, &cfg->eval_limit); break;
        case O_EVAL_BATCH: rc = dp_flag_int("--eval-batch", a, 1, 1 << 16, &cfg->eval_batch); break;
        case O_SKIP_WARN: rc = dp_flag_int("--skip-warn", a, 1, 8, &cfg->skip_warn); break;
        case O_THREADS: rc = dp_flag_int("--threads", a, 1, 1024, &cfg->threads); break;
        case O_WATCHDOG: rc = dp_flag_double("--watchdog", a, 0, 86400, &cfg->watchdog_s); break;
        case O_PROGRESS: rc = dp_flag_progress(a, &cfg->progress); break;
        case O_QUIET: cfg->quiet = 1; break;
        case O_RESUME: cfg->resume = 1; break;
        case O_STOP: rc = dp_flag_int("--stop-after", a, 1, 100000, &cfg->stop_after); break;
        case 'h': *help = 1; return DP_OK;
        default:
            rc = dp_errorf(DP_ERR_ARG, "unknown or incomplete flag '%s' (see dptrain search --help)", argv[optind - 1]);
        }
    }
    if (rc == DP_OK && optind < argc) rc = dp_errorf(DP_ERR_ARG, "unexpected argument '%s'", argv[optind]);
    return rc;
}

int dp_cmd_search(int argc, char **argv, MPI_Comm comm)
{
    int rank = dp_cli_rank(comm);
    dp_search_config cfg;
    dp_search_config_defaults(&cfg);
    char profile[512] = "", random[512] = "";
    int help = 0;
    dp_status rc = parse(argc, argv, &cfg, profile, random, &help);
    if (help) {
        fputs(usage, stdout);
        return 0;
    }
    if (rc == DP_OK) rc = dp_search_config_check(&cfg);
    if (rc == DP_OK && cfg.cost_table[0]) { /* a bad table is a flag error: say so before any data is read */
        dp_cost_table *t = NULL;
        rc = dp_cost_table_load(cfg.cost_table, &t);
        dp_cost_table_free(t);
        if (rc != DP_OK) {
            if (rank == 0) fprintf(stderr, "dptrain search: error: %s\n", dp_errmsg());
            return 1;
        }
    }
    if (rc != DP_OK) {
        if (rank == 0) fprintf(stderr, "dptrain search: %s\n", dp_errmsg());
        return 2;
    }
    if (comm == MPI_COMM_NULL) return DP_CLI_FLAGS_OK;
    if (random[0]) {
        dp_rng r;
        dp_genotype g;
        dp_rng_seed(&r, cfg.seed, DP_STREAM_USER + 6, 0);
        dp_nas_random_genotype(&r, cfg.net.ops, cfg.net.nops, &g);
        rc = rank == 0 ? dp_genotype_save(&g, random) : DP_OK;
        if (rc != DP_OK) fprintf(stderr, "dptrain search: error: %s\n", dp_errmsg());
        else if (rank == 0) printf("random genotype: %s\n", random);
        return rc == DP_OK ? 0 : 1;
    }
    if (profile[0]) {
        /* one rank measures: several ranks on one node would time each other */
        rc = rank == 0 ? dp_search_profile_ops(&cfg, profile) : DP_OK;
        if (rc != DP_OK) fprintf(stderr, "dptrain search: error: %s\n", dp_errmsg());
        else if (rank == 0) printf("profile: %s\n", profile);
        return rc == DP_OK ? 0 : 1;
    }
    dp_search_result res;
    rc = dp_search_run(&cfg, comm, &res);
    if (rc != DP_OK) {
        if (rank == 0 || rc != DP_ERR_MPI) fprintf(stderr, "dptrain search: error: %s\n", dp_errmsg());
        return 1;
    }
    if (rank != 0) return 0;
    char g[1100];
    dp_genotype_format(&res.genotype, g, sizeof g);
    printf("final: epochs=%d steps=%ld val_acc=%.4f val_loss=%.4f train_images_per_s=%.2f peak_rss_mb=%.0f "
           "epoch_s=%.1f wall_s=%.1f skips=%d derived_mflops=%.3f params_xxh3=%016llx genotype=%s%s\n",
           res.epochs_done, res.steps, res.val_acc, res.val_loss, res.train_images_per_s, res.peak_rss_mb, res.epoch_s,
           res.wall_s, res.skips, res.derived_mflops, (unsigned long long)res.params_hash, cfg.out[0] ? cfg.out : "-", cfg.out[0] ? "/genotype.json" : "");
    if (!cfg.out[0]) printf("genotype: %s\n", g);
    if (res.stopped_early)
        printf("stopped after epoch %d of %d: %s/search.dpc holds the rest (run again with --resume)\n",
               res.epochs_done, cfg.epochs, cfg.out);
    return 0;
}
