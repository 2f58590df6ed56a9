/* dptrain search across ranks (run at 1 and 2 ranks): a tiny search runs end
 * to end and every rank derives the same genotype; P ranks x batch b end with
 * the weights and alpha of 1 rank x batch P b (--sampler global, synchronised
 * batch-norm); every strategy runs (maxw too); the cost penalty moves alpha away from
 * expensive ops; gold's budget bounds the derived network; PC-DARTS (partial
 * channels, edge normalisation) is equivalent across ranks and resumes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dptrain/data.h"
#include "dptrain/nas_select.h"
#include "dptrain/search.h"
#include "mpi_check.h"
#include "mpi_search_common.h"
#include "timeout.h"

static dp_search_config tiny(int batch, long limit) { return tiny_config(batch, limit, 400); }

/* Every rank's text equals rank 0's. */
static int same_on_all_ranks(const char *text)
{
    char mine[1200] = {0}, root[1200] = {0};
    snprintf(mine, sizeof mine, "%s", text);
    memcpy(root, mine, sizeof root);
    MPI_Bcast(root, sizeof root, MPI_CHAR, 0, MPI_COMM_WORLD);
    int same = !strcmp(root, mine), all;
    MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    return all;
}

static long count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long n = 0;
    for (int ch; (ch = fgetc(f)) != EOF;) n += ch == '\n';
    fclose(f);
    return n;
}

static void tiny_search(void)
{
    dp_search_config cfg = tiny(32, 1000);
    cfg.run.epochs = 2;
    cfg.run.check_replicas = 5;
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s/tiny", tmp);
    dp_search_result res;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &res));
    CHECK(res.epochs_done == 2, "epochs %d", res.epochs_done);
    CHECK(dp_genotype_check(&res.genotype) == DP_OK, "invalid genotype: %s", dp_errmsg());
    char g[1100];
    dp_genotype_format(&res.genotype, g, sizeof g);
    CHECK(same_on_all_ranks(g), "ranks derived different genotypes; mine %s", g);
    /* 30 steps on 500 images: learning, not accuracy (chance is 0.1, ln 10 = 2.303) */
    CHECK(isfinite(res.val_loss) && res.val_acc > 0.12 && res.train_loss < 2.25, "held-out acc %.3f, train loss %.3f",
          res.val_acc, res.train_loss);
    CHECK(res.nalpha == 2 * 14 * 8, "nalpha %d", res.nalpha);
    double moved = 0;
    for (int k = 0; k < res.nalpha; k++) moved = fmax(moved, fabs(res.alpha[k]));
    CHECK(moved > 2e-3, "alpha barely moved from its 1e-3 init: max |alpha| %g", moved);
    if (g_rank == 0) {
        char path[600];
        dp_genotype back;
        snprintf(path, sizeof path, "%s/genotype.json", cfg.run.out);
        CHECK_OK(dp_genotype_load(path, &back));
        CHECK(!memcmp(&back, &res.genotype, sizeof back), "genotype.json differs from the result");
        snprintf(path, sizeof path, "%s/alpha.csv", cfg.run.out);
        CHECK(count_lines(path) == 1 + 2 * 2 * 14, "alpha.csv has %ld lines", count_lines(path));
        snprintf(path, sizeof path, "%s/genotype_epoch2.json", cfg.run.out);
        CHECK(access(path, R_OK) == 0, "%s missing", path);
        snprintf(path, sizeof path, "%s/normal.dot", cfg.run.out);
        CHECK(access(path, R_OK) == 0, "%s missing", path);
    }
    dp_search_result_free(&res);
    end_case("tiny search, same genotype on every rank");
}

/* P ranks x batch b against 1 rank x batch P b on the same global batches.
 * Float sums run in another order across ranks (allreduce, batch-norm
 * statistics), so the two differ by rounding that 12 steps amplify a little:
 * weights within 1e-3 of the largest weight, far below what a wrong averaging
 * or unsynchronised batch-norm gives (~1e-1). Adam moves each alpha by about
 * lr per step whatever the gradient's size, so alpha is held to 1% of
 * lr x steps: an error in its gradient shows as a whole step or more. */
static void equivalence_of(dp_search_config cfg, const char *name)
{
    const int b = cfg.run.batch, unrolled = cfg.unrolled;
    cfg.run.sampler = 1; /* global */
    dp_search_result many, one;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &many));
    cfg.run.batch = b * g_size;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_SELF, &one));
    CHECK(many.steps == one.steps && many.steps == 12, "steps %ld vs %ld", many.steps, one.steps);
    CHECK(many.nweights == one.nweights && many.nweights > 0, "weights %zu vs %zu", many.nweights, one.nweights);
    double wmax = 0, wd = 0, ad = 0, amax = 0;
    for (size_t i = 0; i < many.nweights && many.nweights == one.nweights; i++) {
        wmax = fmax(wmax, fabs(one.weights[i]));
        wd = fmax(wd, fabs(many.weights[i] - one.weights[i]));
    }
    for (int k = 0; k < one.nalpha; k++) {
        amax = fmax(amax, fabs(one.alpha[k]));
        ad = fmax(ad, fabs(many.alpha[k] - one.alpha[k]));
    }
    CHECK(wd <= 1e-3 * wmax, "%s: weights differ by %g (max |w| %g)", name, wd, wmax);
    /* --unrolled divides a difference of two gradients by 2 eps (eps = 0.01 / |dw|): rounding is amplified
     * accordingly, so it gets 5% of a step */
    double tol = (unrolled ? 5e-2 : 1e-2) * cfg.a_lr * 12;
    CHECK(ad <= tol, "%s: alpha differs by %g (max |alpha| %g, tolerance %g)", name, ad, amax, tol);
    if (g_rank == 0) printf("    %s: max |dw| %.3g of %.3g, max |dalpha| %.3g of %.3g\n", name, wd, wmax, ad, amax);
    dp_search_result_free(&many);
    dp_search_result_free(&one);
    end_case(name);
}

static void equivalence(dp_nas_strategy strategy, int unrolled, const char *name)
{
    int b = 8;
    dp_search_config cfg = tiny(b, 2L * 12 * b * g_size);
    cfg.strategy = strategy;
    cfg.unrolled = unrolled;
    equivalence_of(cfg, name);
}

/* PC-DARTS (--partial-channels 4, edge normalisation on): the ops see 2 of the first cells' 8 channels, and beta
 * is averaged and stepped with alpha (the alpha comparison covers it: nalpha counts beta). */
static dp_search_config pc_darts(int batch, long limit)
{
    dp_search_config cfg = tiny(batch, limit);
    cfg.net.channels = 8;
    cfg.net.partial_channels = 4;
    return cfg;
}

static void partial_channels(void)
{
    dp_search_config cfg = pc_darts(8, 2L * 12 * 8 * g_size);
    if (!DP_SANITIZED) /* as darts' (see main); the run below takes the sanitizer through the same code */
        equivalence_of(cfg, "equivalence --partial-channels 4: P x b == 1 x Pb");
    cfg = pc_darts(16, 640);
    cfg.run.check_replicas = 4;
    dp_search_result res;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &res));
    CHECK(res.nalpha == 2 * 14 * 8 + 2 * 14, "nalpha %d: alpha and beta", res.nalpha);
    char g[1100];
    dp_genotype_format(&res.genotype, g, sizeof g);
    CHECK(same_on_all_ranks(g), "--partial-channels: ranks derived different genotypes");
    CHECK(isfinite(res.train_loss) && res.steps > 0, "--partial-channels: loss %g steps %ld", res.train_loss,
          res.steps);
    dp_search_result_free(&res);
    end_case("--partial-channels 4: beta beside alpha, replicas equal (alpha and beta checked), one genotype");
}

/* softmax(alpha/T) with T falling, and maxw: not equivalence cases, because Adam turns the rounding
 * differences of the sanitized build's weights (2e-4) into alpha differences of a few percent of a step where a
 * gradient is near zero. Each must run on every rank, keep replicas identical and derive one genotype. (gumbel
 * and --unrolled are equivalence cases above.) */
static void runs_on_every_rank(dp_nas_strategy strategy)
{
    const char *name = dp_nas_strategy_name(strategy);
    dp_search_config cfg = tiny(16, 400);
    cfg.strategy = strategy;
    cfg.run.check_replicas = 3;
    dp_search_result res;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &res));
    char g[1100], what[80];
    dp_genotype_format(&res.genotype, g, sizeof g);
    CHECK(same_on_all_ranks(g), "%s: ranks derived different genotypes", name);
    CHECK(isfinite(res.train_loss) && res.steps > 0, "%s: loss %g steps %ld", name, res.train_loss, res.steps);
    dp_search_result_free(&res);
    snprintf(what, sizeof what, "%s runs on every rank, replicas equal", name);
    end_case(what);
}

static void gold_budget(void)
{
    dp_search_config cfg = tiny(16, 640);
    cfg.strategy = DP_NAS_GOLD;
    cfg.run.epochs = 2;
    cfg.warmup_epochs = 1;
    cfg.prune_every = 2;
    cfg.flops_budget = 0; /* first: how large is the unconstrained result? */
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s/gold", tmp);
    dp_search_result free_run, bound;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &free_run));
    cfg.flops_budget = free_run.derived_mflops * 0.8;
    cfg.run.overwrite = 1; /* the same directory, on purpose */
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &bound));
    CHECK(bound.derived_mflops <= cfg.flops_budget + 1e-9, "derived %.4f MFLOPs over the budget %.4f",
          bound.derived_mflops, cfg.flops_budget);
    if (g_rank == 0) {
        char path[600];
        snprintf(path, sizeof path, "%s/gold_tradeoff.csv", cfg.run.out);
        CHECK(count_lines(path) >= 3, "gold_tradeoff.csv has %ld lines", count_lines(path));
        printf("    gold: unconstrained %.4f MFLOPs, budget %.4f -> %.4f\n", free_run.derived_mflops, cfg.flops_budget,
               bound.derived_mflops);
    }
    dp_search_result_free(&free_run);
    dp_search_result_free(&bound);
    end_case("gold prunes to the FLOPs budget");
}

/* The expected-cost penalty's gradient lowers alpha of the costliest op. */
static void cost_penalty(void)
{
    dp_search_config cfg = tiny(16, 640);
    double mass[2];
    for (int run = 0; run < 2; run++) {
        cfg.cost_weight = run ? 100.0f : 0.0f;
        dp_search_result res;
        CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &res));
        mass[run] = 0;
        for (int r = 0; r < 28; r++) mass[run] += res.alpha[r * 8 + DP_NAS_SEP_CONV_5X5];
        dp_search_result_free(&res);
    }
    CHECK(mass[1] < mass[0] - 1e-3, "sum of sep_conv_5x5 alphas %.5f with the penalty, %.5f without", mass[1], mass[0]);
    end_case("cost penalty lowers alpha of sep_conv_5x5");
}

/* The first `arch_warmup` epochs leave alpha alone: two warm-up runs whose weights learn differently
 * (another lr) still write the same epoch-1 rows of alpha.csv (softmax of the initial alpha). */
static void arch_warmup(void)
{
    char rows[2][4096];
    for (int run = 0; run < 2; run++) {
        dp_search_config cfg = tiny(16, 400);
        cfg.run.epochs = 2;
        cfg.arch_warmup = 1;
        cfg.w_lr = run ? 0.1f : 0.01f;
        snprintf(cfg.run.out, sizeof cfg.run.out, "%s/warm%d", tmp, run);
        dp_search_result res;
        CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &res));
        dp_search_result_free(&res);
        memset(rows[run], 0, sizeof rows[run]);
        if (g_rank == 0) {
            char path[600];
            snprintf(path, sizeof path, "%s/alpha.csv", cfg.run.out);
            FILE *f = fopen(path, "r");
            CHECK(f != NULL, "%s missing", path);
            char line[512];
            size_t len = 0;
            while (f && fgets(line, sizeof line, f))
                if (!strncmp(line, "1,", 2) && len + strlen(line) < sizeof rows[run]) len += (size_t)sprintf(rows[run] + len, "%s", line);
            if (f) fclose(f);
        }
    }
    if (g_rank == 0) {
        CHECK(strlen(rows[0]) > 0, "no epoch-1 rows in alpha.csv");
        CHECK(!strcmp(rows[0], rows[1]), "alpha moved during --arch-warmup");
    }
    end_case("--arch-warmup freezes alpha");
}

/* --recompute ends with the weights and alpha of the kept graph, bit for bit (same ranks, same sums).
 * With buckets of 4 KB a step sends several while backward runs: one sent before a recomputed cell's
 * gradients were final would show here. */
static void recompute(void)
{
    dp_search_config cfg = tiny(8, 2L * 6 * 8 * g_size);
    cfg.run.bucket_mb = 0.004;
    dp_search_result kept, again;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &kept));
    cfg.net.recompute = 64;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &again));
    CHECK(kept.steps == 6 && again.steps == 6, "steps %ld and %ld", kept.steps, again.steps);
    CHECK(kept.nweights == again.nweights && kept.nalpha == again.nalpha, "sizes differ");
    if (kept.nweights == again.nweights && kept.nalpha == again.nalpha) {
        CHECK(!memcmp(kept.weights, again.weights, kept.nweights * sizeof *kept.weights), "weights differ");
        CHECK(!memcmp(kept.alpha, again.alpha, (size_t)kept.nalpha * sizeof *kept.alpha), "alpha differs");
    }
    dp_search_result_free(&kept);
    dp_search_result_free(&again);
    end_case("--recompute: same weights and alpha bits, buckets overlapped");
}

/* Stopped after epoch 1 and resumed, a search ends with the weights and alpha
 * of the uninterrupted one, bit for bit: every stream, both optimizers, gold's
 * mask and the codec's error feedback come back. Then a resume with another
 * flag, and one of a damaged checkpoint, stop with the field / file named. */
static void resume_one(dp_search_config cfg, const char *name)
{
    char whole[400], part[400];
    snprintf(whole, sizeof whole, "%s/%s-whole", tmp, name);
    snprintf(part, sizeof part, "%s/%s-part", tmp, name);
    dp_search_result a, b, c;
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s", whole);
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &a));
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s", part);
    cfg.stop_after = 1;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &b));
    CHECK(b.stopped_early && b.epochs_done == 1, "%s: stop after 1: stopped %d epochs %d", name, b.stopped_early,
          b.epochs_done);
    cfg.stop_after = 0;
    cfg.run.resume = 1;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &c));
    CHECK(!c.stopped_early && c.epochs_done == cfg.run.epochs && c.steps == a.steps, "%s: resumed to %d epochs, %ld steps",
          name, c.epochs_done, c.steps);
    CHECK(a.nweights == c.nweights && a.nalpha == c.nalpha, "%s: sizes differ", name);
    if (a.nweights == c.nweights && a.nalpha == c.nalpha) {
        CHECK(!memcmp(a.weights, c.weights, a.nweights * sizeof *a.weights), "%s: weights differ", name);
        CHECK(!memcmp(a.alpha, c.alpha, (size_t)a.nalpha * sizeof *a.alpha), "%s: alpha differs", name);
        CHECK(a.nweights > 0 && memcmp(a.weights, b.weights, a.nweights * sizeof *a.weights),
              "%s: one epoch already ends where three do", name);
    }
    dp_search_result_free(&a);
    dp_search_result_free(&b);
    dp_search_result_free(&c);
    /* the stop was not needed: nothing left to resume */
    dp_status rc = dp_search_run(&cfg, MPI_COMM_WORLD, &c);
    CHECK(rc == DP_ERR_ARG && strstr(dp_errmsg(), "complete"), "%s: resume of a finished search: %s", name,
          dp_errmsg());
}

static void resume(void)
{
    const long lim = 2L * 4 * 8 * g_size; /* 4 steps per epoch */
    dp_search_config cfg = tiny(8, lim);
    cfg.run.epochs = 3;
    if (!DP_SANITIZED) /* (see main) */
        resume_one(cfg, "darts");
    cfg.strategy = DP_NAS_GUMBEL;
    cfg.run.codec.kind = DP_CODEC_INT8; /* error feedback in the checkpoint */
    resume_one(cfg, "gumbel-int8");
    cfg = pc_darts(8, lim);
    cfg.run.epochs = 3;
    if (!DP_SANITIZED) /* beta is one more tensor of the alpha section that gumbel's and gold's resumes cover */
        resume_one(cfg, "pc-darts");
    cfg = tiny(8, lim);
    cfg.run.epochs = 3;
    cfg.strategy = DP_NAS_GOLD;
    cfg.prune_every = 2;
    cfg.warmup_epochs = 0;
    resume_one(cfg, "gold");

    /* another configuration, then a truncated checkpoint (a new directory: no older checkpoint to fall back to) */
    char part[400], path[450];
    snprintf(part, sizeof part, "%s/darts-trunc", tmp);
    snprintf(path, sizeof path, "%s/search.dpc", part);
    cfg = tiny(8, lim);
    cfg.run.epochs = 3;
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s", part);
    cfg.stop_after = 1;
    dp_search_result r;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &r));
    dp_search_result_free(&r);
    cfg.stop_after = 0;
    cfg.run.resume = 1;
    cfg.w_lr = 0.05f;
    dp_status rc = dp_search_run(&cfg, MPI_COMM_WORLD, &r);
    CHECK(rc == DP_ERR_ARG && strstr(dp_errmsg(), "'w'") && strstr(dp_errmsg(), "search.dpc"),
          "another --lr: %s", dp_errmsg());
    cfg.w_lr = tiny(8, lim).w_lr;
    cfg.net.partial_channels = 2; /* the checkpoint's supernet is K = 1 */
    rc = dp_search_run(&cfg, MPI_COMM_WORLD, &r);
    CHECK(rc == DP_ERR_ARG && strstr(dp_errmsg(), "--partial-channels") && strstr(dp_errmsg(), "search.dpc"),
          "another --partial-channels: %s", dp_errmsg());
    cfg.net = tiny(8, lim).net;
    MPI_Barrier(MPI_COMM_WORLD);
    if (g_rank == 0) CHECK(0 == truncate(path, 1000), "truncate %s", path);
    MPI_Barrier(MPI_COMM_WORLD);
    rc = dp_search_run(&cfg, MPI_COMM_WORLD, &r);
    CHECK(rc == DP_ERR_FORMAT && strstr(dp_errmsg(), "search.dpc"), "truncated checkpoint: %s", dp_errmsg());
    end_case("--stop-after and --resume: the same bits as one run (darts, gumbel + int8, pc-darts, gold); bad resumes "
             "named");
}

/* --codec reaches the search's allreduces: a lossy codec moves the weights
 * and alpha off the float32 run's (at 1 rank nothing is sent, so they match). */
static void codec_applies(void)
{
    dp_search_config cfg = tiny(8, 2L * 4 * 8 * g_size);
    dp_search_result plain, coded;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &plain));
    cfg.run.codec.kind = DP_CODEC_INT8;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &coded));
    if (plain.nweights == coded.nweights && plain.nweights > 0) {
        int wsame = !memcmp(plain.weights, coded.weights, plain.nweights * sizeof *plain.weights);
        int asame = !memcmp(plain.alpha, coded.alpha, (size_t)plain.nalpha * sizeof *plain.alpha);
        CHECK(g_size > 1 ? !wsame && !asame : wsame && asame, "int8 at %d rank(s): weights %s, alpha %s", g_size,
              wsame ? "equal" : "differ", asame ? "equal" : "differ");
    }
    dp_search_result_free(&plain);
    dp_search_result_free(&coded);
    end_case("--codec int8 is applied to the weights' and alpha's allreduces");
}

/* --select perturb across ranks: every rank chooses the same cell, the search's weights come back untouched
 * by the tuning (the same parameter hash as the same search with --select alpha), perturb.csv logs every
 * measurement, and --reselect from the finished search's checkpoint chooses the same cell again; --reselect
 * with --select sample chooses one cell on every rank and logs every candidate, --select-candidates too. */
static void perturb_select(void)
{
    dp_search_config cfg = tiny(16, 2L * 6 * 16 * g_size); /* 6 steps, 6 held-out batches */
    cfg.run.epochs = 1;
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s/perturb", tmp);
    dp_search_result alpha, pert, again;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &alpha));
    cfg.run.overwrite = 1;
    cfg.select = DP_NAS_SELECT_PERTURB;
    cfg.select_batches = 1; /* 221 evaluations: the cost of this case */
    cfg.select_tune = 1;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &pert));
    CHECK(dp_genotype_check(&pert.genotype) == DP_OK, "invalid genotype: %s", dp_errmsg());
    char g[1100];
    dp_genotype_format(&pert.genotype, g, sizeof g);
    CHECK(same_on_all_ranks(g), "ranks chose different cells; mine %s", g);
    CHECK(pert.params_hash == alpha.params_hash, "the tuning left the search's weights changed");
    CHECK(!memcmp(&pert.genotype_alpha, &alpha.genotype, sizeof alpha.genotype), "alpha's cell differs");
    CHECK(pert.select_evals == 1 + 2 * 14 * 7 + 2 * (3 + 4 + 5), "%d evaluations", pert.select_evals);
    CHECK(pert.retrain_params > 0 && pert.retrain_mflops > 0, "retrain figures %g %g", pert.retrain_params,
          pert.retrain_mflops);
    if (g_rank == 0) {
        char path[600];
        dp_genotype back;
        snprintf(path, sizeof path, "%s/genotype.json", cfg.run.out);
        CHECK_OK(dp_genotype_load(path, &back));
        CHECK(!memcmp(&back, &pert.genotype, sizeof back), "genotype.json is not the perturbation's cell");
        snprintf(path, sizeof path, "%s/genotype_alpha.json", cfg.run.out);
        CHECK_OK(dp_genotype_load(path, &back));
        CHECK(!memcmp(&back, &alpha.genotype, sizeof back), "genotype_alpha.json is not alpha's cell");
        snprintf(path, sizeof path, "%s/perturb.csv", cfg.run.out);
        /* header, the supernet, every measurement, a line per decision (28 ops, 6 nodes with a choice) */
        CHECK(count_lines(path) == 1 + pert.select_evals + 28 + 2 * 2 * 3, "perturb.csv has %ld lines",
              count_lines(path));
    }
    cfg.reselect = 1;
    cfg.run.overwrite = 0;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &again));
    CHECK(!memcmp(&again.genotype, &pert.genotype, sizeof again.genotype), "--reselect chose another cell");
    CHECK(again.params_hash == pert.params_hash && again.epochs_done == 1, "--reselect read another supernet");
    dp_search_result_free(&again);
    /* --reselect with --select sample: alpha's cell and 12 random ones, one cell on every rank, weights untouched */
    cfg.select = DP_NAS_SELECT_SAMPLE;
    cfg.select_samples = 12;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &again));
    dp_genotype_format(&again.genotype, g, sizeof g);
    CHECK(same_on_all_ranks(g), "sample: ranks chose different cells; mine %s", g);
    CHECK(again.select_evals == 13 && again.params_hash == pert.params_hash, "sample: %d evaluations, hash %s",
          again.select_evals, again.params_hash == pert.params_hash ? "kept" : "changed");
    if (g_rank == 0) {
        char path[600];
        snprintf(path, sizeof path, "%s/sample.jsonl", cfg.run.out);
        CHECK(count_lines(path) == 13, "sample.jsonl has %ld lines", count_lines(path));
    }
    dp_search_result_free(&again);
    /* --select-candidates: a directory's *.json genotypes ranked after alpha's cell, in name order, each named in
     * the log (the perturbation's cell, alpha's own again, a note.txt that is not one), no random cells */
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/candidates", tmp);
    if (g_rank == 0) {
        CHECK(mkdir(dir, 0755) == 0, "mkdir %s", dir);
        snprintf(path, sizeof path, "%s/a_perturb.json", dir);
        CHECK_OK(dp_genotype_save(&pert.genotype, path));
        snprintf(path, sizeof path, "%s/b_alpha.json", dir);
        CHECK_OK(dp_genotype_save(&alpha.genotype, path));
        snprintf(path, sizeof path, "%s/note.txt", dir);
        FILE *f = fopen(path, "w");
        CHECK(f && fputs("not a genotype\n", f) >= 0 && fclose(f) == 0, "%s", path);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    cfg.select_samples = 0;
    snprintf(cfg.select_candidates, sizeof cfg.select_candidates, "%.500s", dir);
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &again));
    dp_genotype_format(&again.genotype, g, sizeof g);
    CHECK(same_on_all_ranks(g), "candidates: ranks chose different cells; mine %s", g);
    CHECK(again.select_evals == 3, "candidates: %d evaluations, not alpha's and 2 files'", again.select_evals);
    if (g_rank == 0) {
        snprintf(path, sizeof path, "%s/sample.jsonl", cfg.run.out);
        FILE *f = fopen(path, "r");
        char line[3][1600] = {{0}};
        for (int i = 0; f && i < 3; i++) CHECK(fgets(line[i], sizeof line[i], f), "sample.jsonl line %d", i + 1);
        if (f) fclose(f);
        CHECK(strstr(line[0], "\"source\":\"alpha\"") && strstr(line[1], "\"source\":\"a_perturb.json\"") &&
                  strstr(line[2], "\"source\":\"b_alpha.json\""),
              "sample.jsonl does not name the candidates in order:\n%s%s%s", line[0], line[1], line[2]);
        snprintf(path, sizeof path, "%s/c_broken.json", dir); /* a truncated genotype is named by its file */
        f = fopen(path, "w");
        CHECK(f && fputs("{\"normal\": [[\"sep_conv_3x3\", 0]", f) >= 0 && fclose(f) == 0, "%s", path);
    }
    dp_search_result_free(&again);
    MPI_Barrier(MPI_COMM_WORLD);
    dp_status rc = dp_search_run(&cfg, MPI_COMM_WORLD, &again);
    CHECK(rc != DP_OK && strstr(dp_errmsg(), "c_broken.json"), "a broken candidate: %s", dp_errmsg());
    cfg.select = DP_NAS_SELECT_PERTURB;
    rc = dp_search_run(&cfg, MPI_COMM_WORLD, &again);
    CHECK(rc == DP_ERR_ARG && strstr(dp_errmsg(), "--select-candidates"), "candidates under perturb: %s", dp_errmsg());
    cfg.select_candidates[0] = 0;
    cfg.w_lr *= 2; /* not the search's flags */
    rc = dp_search_run(&cfg, MPI_COMM_WORLD, &again);
    CHECK(rc == DP_ERR_ARG && strstr(dp_errmsg(), "--reselect"), "--reselect with another --lr: %s", dp_errmsg());
    dp_search_result_free(&alpha);
    dp_search_result_free(&pert);
    end_case("--select perturb and sample: one cell on every rank, weights untouched, --reselect chooses again");
}

static void bad_input(void)
{
    dp_search_config cfg = tiny(16, 400);
    snprintf(cfg.run.data, sizeof cfg.run.data, "%s/missing", tmp);
    dp_search_result res;
    dp_status rc = dp_search_run(&cfg, MPI_COMM_WORLD, &res);
    CHECK(rc != DP_OK && strstr(dp_errmsg(), "missing"), "missing data: %s", dp_errmsg());
    cfg = tiny(16, 400);
    cfg.net.layers = 0;
    rc = dp_search_run(&cfg, MPI_COMM_WORLD, &res);
    CHECK(rc == DP_ERR_ARG && strstr(dp_errmsg(), "--layers"), "layers 0: %s", dp_errmsg());
    cfg = tiny(256, 400);
    rc = dp_search_run(&cfg, MPI_COMM_WORLD, &res);
    CHECK(rc != DP_OK && strstr(dp_errmsg(), "full global batch"), "batch over the data: %s", dp_errmsg());
    end_case("bad input named");
}

int main(int argc, char **argv)
{
    search_test_start(&argc, &argv, "mpi-search");

    tiny_search();
    /* Under ASan (DP_SANITIZED) this one and resume's darts case are left out: what they compare is the
     * plain build's business, and their code is run there by others (darts across ranks by tiny_search,
     * recompute and codec_applies; a 1-rank search of batch P b by the gumbel and unrolled equivalences;
     * a resume without codec by gold's, strategy by strategy by gumbel's), at ~10% of this program's
     * sanitized time. */
    if (!DP_SANITIZED)
        equivalence(DP_NAS_DARTS, 0, "equivalence darts: P x b == 1 x Pb");
    equivalence(DP_NAS_GUMBEL, 0, "equivalence gumbel: P x b == 1 x Pb");
    equivalence(DP_NAS_DARTS, 1, "equivalence unrolled: P x b == 1 x Pb");
    partial_channels();
    runs_on_every_rank(DP_NAS_TEMPERATURE);
    runs_on_every_rank(DP_NAS_MAXW);
    gold_budget();
    cost_penalty();
    arch_warmup();
    recompute();
    resume();
    codec_applies();
    perturb_select();
    bad_input();

    return mpi_finish("mpi_search", tmp);
}
