/* `dptrain train`: flags -> dp_train_config -> dp_train_run -> summary line. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "dptrain/train.h"

static const char usage[] =
    "usage: dptrain train [options]\n"
    "\n"
    "Trains an image classifier on a shard set and prints one summary line:\n"
    "  final: epochs=E steps=S test_acc=A test_loss=L train_samples_per_s=R wall_s=W\n"
    "\n"
    "data and model:\n"
    "  --data DIR            shard set with a manifest (default shards/fashion-mnist)\n"
    "  --model NAME          mlp | cnn (default cnn)\n"
    "  --limit N             train on the first N images only (default: all)\n"
    "  --test-limit N        evaluate on the first N test images only (default: all)\n"
    "  --cutout N            zero an N x N square at a random place of each training image (default 0 = off)\n"
    "derived DARTS network (instead of --model):\n"
    "  --arch FILE           genotype JSON (as the search writes it): train the network of its cells\n"
    "  --layers L            cells, reductions at L/3 and 2L/3 (default 8)\n"
    "  --channels C          channels of the first cells; the stem has 3C (default 16)\n"
    "  --drop-path P         drop each op output of a sample with probability P x epoch/epochs (default 0)\n"
    "optimisation:\n"
    "  --epochs N            passes over the training images (default 1)\n"
    "  --batch B             batch size (default 64)\n"
    "  --lr LR               base learning rate (default 0.05)\n"
    "  --optimizer NAME      sgd | adam | adamw (default sgd)\n"
    "  --momentum M          SGD momentum (default 0.9)\n"
    "  --nesterov            Nesterov momentum\n"
    "  --weight-decay WD     L2 (sgd, adam) or decoupled (adamw) decay (default 0; adamw 0.01)\n"
    "  --schedule NAME       constant | step | cosine (default constant)\n"
    "  --warmup STEPS        linear warm-up steps (default 0)\n"
    "  --min-lr LR           cosine floor (default 0)\n"
    "  --step-size STEPS     step schedule: decay every STEPS (default 1000)\n"
    "  --step-gamma G        step schedule: factor (default 0.1)\n"
    "  --clip NORM           clip gradients to this global norm (default off)\n"
    "  --seed S              seed of every random stream (default 1)\n"
    "data-parallel (mpirun -np P dptrain train ...; global batch = P x batch x accumulate):\n"
    "  --sampler NAME        shard: each rank trains on its own shards (default);\n"
    "                        global: every rank reads the whole split and takes its slice of each\n"
    "                        global batch, so P ranks x batch B equal 1 rank x batch P*B\n"
    "  --accumulate K        micro-batches per optimizer step, communicating once (default 1)\n"
    "  --allreduce ALGO      ring (ours, default) | mpi (MPI_Allreduce, the reference)\n"
    "  --bucket-mb MB        gradient bucket size (default 4)\n"
    "  --no-overlap          allreduce after backward instead of during it\n"
    "  --check-replicas N    compare a hash of the parameters across ranks every N steps\n"
    "  --codec NAME          gradient compression: none (default) | fp16 | bf16 | int8 (ring codecs)\n"
    "                        | topk:F (largest fraction F of each bucket) | powersgd:R (rank-R factors);\n"
    "                        int8, topk and powersgd keep error feedback, saved in the checkpoint\n"
    "  --dgc                 with topk: DGC momentum correction (Lin et al. 2018): each rank\n"
    "                        accumulates SGD's momentum before the top-k and clears what it sent;\n"
    "                        the optimizer then runs without momentum\n"
    "  --wire-zstd L         byte-shuffle + zstd level L on every message (default 0 = off)\n"
    "  --codec-start N       plain float32 allreduce for the first N steps\n"
    "run:\n"
    "  --out DIR             run directory: metrics.jsonl, checkpoint.dpc\n"
    "  --resume              continue the run in --out from its checkpoint\n"
    "  --checkpoint-every N  also checkpoint every N steps (default: each epoch)\n"
    "  --keep-checkpoints K  keep the K newest checkpoints: checkpoint.dpc, .1 (previous) .. (default 2);\n"
    "                        --resume falls back to an older one if the newest is damaged\n"
    "  --stop-after N        checkpoint and stop after global step N\n"
    "  --eval-batch B        evaluation batch size (default 500)\n"
    "  --threads N           OpenBLAS threads (default 1: one thread per rank)\n"
    "faults:\n"
    "  --on-nonfinite stop|skip  a NaN/Inf loss or gradient (checked after the allreduce, so every rank\n"
    "                        agrees): stop naming the step and tensor (default), or drop the step's update\n"
    "                        and halve the loss scale (doubled back after --loss-scale-growth clean steps)\n"
    "  --loss-scale S        multiply the loss by S before backward, divide the gradients after the\n"
    "                        allreduce (default 1; e.g. 65536 with --codec fp16 and --on-nonfinite skip)\n"
    "  --loss-scale-growth N clean steps before a lowered loss scale doubles, up to --loss-scale (default 2000)\n"
    "  --watchdog SECONDS    a collective without progress for this long: print what every rank is doing\n"
    "                        and abort the job (default 300, 0 = off)\n"
    "  --progress bar|plain  progress display (default: bar on a terminal)\n"
    "  --quiet               no progress output\n"
    "  -h, --help            this text\n"
    "SIGINT/SIGTERM: the current step finishes, a checkpoint is written, exit 130/143.\n";

enum {
    O_DATA = 256, O_MODEL, O_LIMIT, O_TEST_LIMIT, O_EPOCHS, O_BATCH, O_LR, O_OPT, O_MOMENTUM, O_NESTEROV, O_WD,
    O_SCHED, O_WARMUP, O_MIN_LR, O_STEP_SIZE, O_STEP_GAMMA, O_CLIP, O_SEED, O_OUT, O_RESUME, O_CKEVERY, O_STOP,
    O_EVAL_BATCH, O_THREADS, O_PROGRESS, O_QUIET, O_SAMPLER, O_ACCUM, O_ALLREDUCE, O_BUCKET, O_NO_OVERLAP, O_REPLICAS,
    O_CODEC, O_DGC, O_WIRE_ZSTD, O_CODEC_START, O_ARCH, O_LAYERS, O_CHANNELS, O_DROP_PATH, O_CUTOUT,
    O_KEEP, O_NONFINITE, O_LOSS_SCALE, O_LOSS_GROWTH, O_WATCHDOG,
};

static const struct option opts[] = {
    {"data", 1, 0, O_DATA}, {"model", 1, 0, O_MODEL}, {"limit", 1, 0, O_LIMIT}, {"test-limit", 1, 0, O_TEST_LIMIT},
    {"epochs", 1, 0, O_EPOCHS}, {"batch", 1, 0, O_BATCH}, {"lr", 1, 0, O_LR}, {"optimizer", 1, 0, O_OPT},
    {"momentum", 1, 0, O_MOMENTUM}, {"nesterov", 0, 0, O_NESTEROV}, {"weight-decay", 1, 0, O_WD},
    {"schedule", 1, 0, O_SCHED}, {"warmup", 1, 0, O_WARMUP}, {"min-lr", 1, 0, O_MIN_LR},
    {"step-size", 1, 0, O_STEP_SIZE}, {"step-gamma", 1, 0, O_STEP_GAMMA}, {"clip", 1, 0, O_CLIP},
    {"seed", 1, 0, O_SEED}, {"out", 1, 0, O_OUT}, {"resume", 0, 0, O_RESUME},
    {"checkpoint-every", 1, 0, O_CKEVERY}, {"stop-after", 1, 0, O_STOP}, {"eval-batch", 1, 0, O_EVAL_BATCH},
    {"threads", 1, 0, O_THREADS}, {"progress", 1, 0, O_PROGRESS}, {"quiet", 0, 0, O_QUIET}, {"help", 0, 0, 'h'},
    {"sampler", 1, 0, O_SAMPLER}, {"accumulate", 1, 0, O_ACCUM}, {"allreduce", 1, 0, O_ALLREDUCE},
    {"bucket-mb", 1, 0, O_BUCKET}, {"no-overlap", 0, 0, O_NO_OVERLAP}, {"check-replicas", 1, 0, O_REPLICAS},
    {"codec", 1, 0, O_CODEC}, {"dgc", 0, 0, O_DGC}, {"wire-zstd", 1, 0, O_WIRE_ZSTD}, {"codec-start", 1, 0, O_CODEC_START},
    {"arch", 1, 0, O_ARCH}, {"layers", 1, 0, O_LAYERS}, {"channels", 1, 0, O_CHANNELS},
    {"drop-path", 1, 0, O_DROP_PATH}, {"cutout", 1, 0, O_CUTOUT}, {"keep-checkpoints", 1, 0, O_KEEP},
    {"on-nonfinite", 1, 0, O_NONFINITE}, {"loss-scale", 1, 0, O_LOSS_SCALE}, {"loss-scale-growth", 1, 0, O_LOSS_GROWTH}, {"watchdog", 1, 0, O_WATCHDOG},
    {0, 0, 0, 0},
};

static volatile sig_atomic_t last_signal;

static void on_signal(int sig)
{
    last_signal = sig;
    dp_train_request_stop();
}

static dp_status parse(int argc, char **argv, dp_train_config *cfg, int *help)
{
    long l;
    int wd_set = 0, momentum_set = 0, dgc = 0;
    float wd = 0, momentum = 0;
    dp_opt_kind kind = DP_OPT_SGD;
    dp_status rc = DP_OK;
    int ch;
    optind = 1;
    opterr = 0;
    while (rc == DP_OK && (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const char *a = optarg;
        switch (ch) {
        case O_DATA: rc = dp_flag_str("--data", a, cfg->data, sizeof cfg->data); break;
        case O_MODEL: rc = dp_flag_str("--model", a, cfg->model, sizeof cfg->model); break;
        case O_LIMIT: rc = dp_flag_long("--limit", a, 0, 1L << 40, &cfg->limit); break;
        case O_TEST_LIMIT: rc = dp_flag_long("--test-limit", a, 0, 1L << 40, &cfg->test_limit); break;
        case O_EPOCHS: rc = dp_flag_int("--epochs", a, 1, 100000, &cfg->epochs); break;
        case O_BATCH: rc = dp_flag_int("--batch", a, 1, 1 << 20, &cfg->batch); break;
        case O_EVAL_BATCH: rc = dp_flag_int("--eval-batch", a, 1, 1 << 20, &cfg->eval_batch); break;
        case O_LR: rc = dp_flag_float("--lr", a, 1e-12, 100, &cfg->lr); break;
        case O_OPT: rc = dp_opt_kind_parse(a, &kind); break;
        case O_MOMENTUM: rc = dp_flag_float("--momentum", a, 0, 0.999999, &momentum), momentum_set = 1; break;
        case O_NESTEROV: cfg->opt.nesterov = 1; break;
        case O_WD: rc = dp_flag_float("--weight-decay", a, 0, 10, &wd), wd_set = 1; break;
        case O_SCHED: rc = dp_schedule_kind_parse(a, &cfg->schedule); break;
        case O_WARMUP: rc = dp_flag_long("--warmup", a, 0, 1L << 40, &cfg->warmup); break;
        case O_MIN_LR: rc = dp_flag_float("--min-lr", a, 0, 100, &cfg->min_lr); break;
        case O_STEP_SIZE: rc = dp_flag_long("--step-size", a, 1, 1L << 40, &cfg->step_size); break;
        case O_STEP_GAMMA: rc = dp_flag_float("--step-gamma", a, 1e-9, 1, &cfg->step_gamma); break;
        case O_CLIP: rc = dp_flag_float("--clip", a, 0, 1e9, &cfg->clip); break;
        case O_SEED:
            rc = dp_flag_long("--seed", a, 0, 0x7fffffffffffffffL, &l);
            cfg->seed = (uint64_t)l;
            break;
        case O_OUT: rc = dp_flag_str("--out", a, cfg->out, sizeof cfg->out); break;
        case O_RESUME: cfg->resume = 1; break;
        case O_CKEVERY: rc = dp_flag_long("--checkpoint-every", a, 0, 1L << 40, &cfg->checkpoint_every); break;
        case O_STOP: rc = dp_flag_long("--stop-after", a, 1, 1L << 40, &cfg->stop_after); break;
        case O_THREADS: rc = dp_flag_int("--threads", a, 1, 1024, &cfg->threads); break;
        case O_PROGRESS: rc = dp_flag_progress(a, &cfg->progress); break;
        case O_QUIET: cfg->quiet = 1; break;
        case O_SAMPLER: rc = dp_flag_sampler(a, &cfg->sampler); break;
        case O_ACCUM: rc = dp_flag_int("--accumulate", a, 1, 65536, &cfg->accumulate); break;
        case O_ALLREDUCE: {
            int algo = 0;
            rc = dp_flag_allreduce(a, &algo);
            cfg->allreduce = (dp_allreduce_algo)algo;
            break;
        }
        case O_BUCKET: rc = dp_flag_float("--bucket-mb", a, 1e-6, 4096, &cfg->bucket_mb); break;
        case O_NO_OVERLAP: cfg->overlap = 0; break;
        case O_REPLICAS: rc = dp_flag_long("--check-replicas", a, 0, 1L << 40, &cfg->check_replicas); break;
        case O_CODEC: rc = dp_compress_parse(a, &cfg->codec); break;
        case O_DGC: dgc = 1; break;
        case O_WIRE_ZSTD: rc = dp_flag_int("--wire-zstd", a, 0, DP_CODEC_ZSTD_MAX, &cfg->codec.wire_zstd_level); break;
        case O_CODEC_START: rc = dp_flag_long("--codec-start", a, 0, 1L << 40, &cfg->codec.start); break;
        case O_ARCH: rc = dp_flag_str("--arch", a, cfg->arch, sizeof cfg->arch); break;
        case O_LAYERS: rc = dp_flag_int("--layers", a, 1, 1000, &cfg->layers); break;
        case O_CHANNELS: rc = dp_flag_int("--channels", a, 1, 4096, &cfg->channels); break;
        case O_DROP_PATH: rc = dp_flag_float("--drop-path", a, 0, 1, &cfg->drop_path); break;
        case O_CUTOUT: rc = dp_flag_int("--cutout", a, 0, 1024, &cfg->cutout); break;
        case O_KEEP: rc = dp_flag_int("--keep-checkpoints", a, 1, 1000, &cfg->keep_checkpoints); break;
        case O_NONFINITE:
            if (!strcmp(a, "stop") || !strcmp(a, "skip")) cfg->on_nonfinite = !strcmp(a, "skip");
            else rc = dp_errorf(DP_ERR_ARG, "--on-nonfinite: '%s' is not stop or skip", a);
            break;
        case O_LOSS_SCALE: rc = dp_flag_float("--loss-scale", a, 0x1p-24, 0x1p24, &cfg->loss_scale); break;
        case O_LOSS_GROWTH: rc = dp_flag_long("--loss-scale-growth", a, 1, 1000000000L, &cfg->loss_scale_growth); break;
        case O_WATCHDOG: rc = dp_flag_double("--watchdog", a, 0, 86400, &cfg->watchdog_s); break;
        case 'h': *help = 1; return DP_OK;
        case ':': rc = dp_errorf(DP_ERR_ARG, "%s: missing value", argv[optind - 1]); break;
        default:
            rc = dp_errorf(DP_ERR_ARG, "unknown or incomplete flag '%s' (see dptrain train --help)", argv[optind - 1]);
        }
    }
    if (rc != DP_OK) return rc;
    if (optind < argc) return dp_errorf(DP_ERR_ARG, "unexpected argument '%s'", argv[optind]);
    /* The optimizer's own defaults first, then what the user set. */
    int nesterov = cfg->opt.nesterov;
    dp_opt_config base = dp_opt_defaults(kind);
    if (kind == DP_OPT_SGD) base.momentum = 0.9f;
    if (momentum_set) base.momentum = momentum;
    if (wd_set) base.weight_decay = wd;
    base.nesterov = nesterov;
    cfg->opt = base;
    if (dgc) {
        /* DGC: the momentum moves into the compressor, before the top-k selection */
        if (cfg->codec.kind != DP_CODEC_TOPK) return dp_errorf(DP_ERR_ARG, "--dgc needs --codec topk:F");
        if (kind != DP_OPT_SGD || base.nesterov || !(base.momentum > 0))
            return dp_errorf(DP_ERR_ARG, "--dgc needs --optimizer sgd with --momentum > 0 and no --nesterov");
        cfg->codec.dgc_momentum = base.momentum;
        cfg->opt.momentum = 0.0f;
    }
    return DP_OK;
}

int dp_cmd_train(int argc, char **argv, MPI_Comm comm)
{
    int rank = dp_cli_rank(comm);
    dp_train_config cfg;
    dp_train_config_defaults(&cfg);
    int help = 0;
    dp_status rc = parse(argc, argv, &cfg, &help);
    if (help) {
        fputs(usage, stdout);
        return 0;
    }
    if (rc == DP_OK) rc = dp_train_config_check(&cfg);
    if (rc != DP_OK) {
        /* every rank parsed the same flags; one message is enough */
        if (rank == 0) fprintf(stderr, "dptrain train: %s\n", dp_errmsg());
        return 2;
    }
    if (comm == MPI_COMM_NULL) return DP_CLI_FLAGS_OK;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    dp_train_result res;
    rc = dp_train_run(&cfg, comm, &res);
    if (rc != DP_OK) {
        /* agreed errors are reported by rank 0; a rank-local one by its rank */
        if (rank == 0 || (rc != DP_ERR_MPI && rc != DP_ERR_NONFINITE)) fprintf(stderr, "dptrain train: error: %s\n", dp_errmsg());
        return 1;
    }
    if (rank != 0) return 0;
    if (res.stopped_early) {
        printf("stopped: steps=%ld checkpoint=%s/checkpoint.dpc\n", res.steps, cfg.out);
        return last_signal ? 128 + last_signal : 0;
    }
    printf("final: epochs=%d steps=%ld ranks=%d test_acc=%.4f test_loss=%.4f train_loss=%.4f "
           "train_samples_per_s=%.0f comm_wait_s=%.2f wire_kb_per_step=%.1f raw_kb_per_step=%.1f wall_s=%.1f "
           "skipped_steps=%ld loss_scale=%g params_xxh3=%016llx\n",
           res.epochs_done, res.steps, res.ranks, res.test_acc, res.test_loss, res.train_loss,
           res.train_samples_per_s, res.comm_wait_s, res.wire_bytes_per_step / 1024, res.raw_bytes_per_step / 1024,
           res.wall_s, res.skipped_steps, res.loss_scale, (unsigned long long)res.params_hash);
    return 0;
}
