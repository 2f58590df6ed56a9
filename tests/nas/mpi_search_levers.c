/* Issue 22's levers of dptrain search, at 1 and 2 ranks:
 *
 * early stopping (--stop-stable, --stop-free): with alpha held still (an
 * --arch-lr so small that Adam's steps vanish in float) the cell never
 * changes, so --stop-stable N ends the search after exactly --arch-warmup + N
 * epochs; with alpha moving, the epoch a rule stops at is the one its
 * definition gives on the per-epoch cells of the same search run to the end;
 * --stop-free's result is the cell of the epoch before; a stopped search's
 * checkpoint refuses --resume, and one stopped by --stop-after and resumed
 * stops where the uninterrupted one did, with its bits.
 *
 * self-distillation (--self-distill): before the first snapshot it changes
 * nothing (the bits of the plain search), afterwards it moves the weights;
 * P ranks x batch b == 1 rank x batch P b (--sampler global) with the
 * teachers active; a search stopped mid-epoch and resumed ends with the bits
 * of the uninterrupted one (the snapshots come back from the checkpoint).
 *
 * cosine power annealing (--schedule cospow): it moves the weights elsewhere
 * than cosine (its limit at --lr-power -> 1 is test_optim's), a search
 * stopped mid-epoch and resumed ends with the bits of the uninterrupted one,
 * and a resume under another schedule is refused naming the flag.
 *
 * D-DARTS (--cell-per-layer): a cell per layer out, P ranks x b == 1 rank x P b,
 * resumed with the same bits.
 *
 * And the flags' errors name the flag. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/data.h"
#include "dptrain/search.h"
#include "mpi_check.h"
#include "mpi_search_common.h"
#include "timeout.h"

static dp_search_config tiny(int batch, long limit) { return tiny_config(batch, limit, 64); }

static int same_bits(const dp_search_result *a, const dp_search_result *b)
{
    return a->nweights == b->nweights && a->nalpha == b->nalpha && a->nweights > 0 &&
           !memcmp(a->weights, b->weights, a->nweights * sizeof *a->weights) &&
           !memcmp(a->alpha, b->alpha, (size_t)a->nalpha * sizeof *a->alpha);
}

/* Rank 0 reads <out>/genotype_epochE.json for E = 1..n into g; every rank gets them. */
static void epoch_cells(const char *out, int n, dp_genotype *g)
{
    memset(g, 0, (size_t)n * sizeof *g);
    if (g_rank == 0)
        for (int e = 1; e <= n; e++) {
            char path[600];
            snprintf(path, sizeof path, "%s/genotype_epoch%d.json", out, e);
            CHECK_OK(dp_genotype_load(path, &g[e - 1]));
        }
    MPI_Bcast(g, (int)((size_t)n * sizeof *g), MPI_BYTE, 0, MPI_COMM_WORLD);
}

static int param_free(const dp_genotype *g)
{
    int n = 0;
    for (int j = 0; j < 2 * DP_NAS_NODES; j++)
        n += g->normal_op[j] == DP_NAS_MAX_POOL_3X3 || g->normal_op[j] == DP_NAS_AVG_POOL_3X3 ||
             g->normal_op[j] == DP_NAS_SKIP_CONNECT;
    return n;
}

static int same_cell(const dp_genotype *a, const dp_genotype *b) { return !memcmp(a, b, sizeof *a); }

/* Rank 0: metrics.jsonl of out holds a line with every one of the strings. */
static int metrics_has(const char *out, const char *a, const char *b)
{
    if (g_rank != 0) return 1;
    char path[600], line[8192];
    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    FILE *f = fopen(path, "r");
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f)) found = strstr(line, a) && strstr(line, b);
    if (f) fclose(f);
    return found;
}

/* alpha held still: the cell of the initial alpha throughout */
static void stable_fires(void)
{
    const int cases[][2] = {{0, 2}, {2, 1}}; /* --arch-warmup, --stop-stable */
    for (int k = 0; k < 2; k++) {
        dp_search_config cfg = tiny(16, 2L * 3 * 16 * g_size);
        cfg.run.epochs = 5;
        cfg.a_lr = 1e-12f;
        cfg.arch_warmup = cases[k][0];
        cfg.stop_stable = cases[k][1];
        snprintf(cfg.run.out, sizeof cfg.run.out, "%s/still%d", tmp, k);
        dp_search_result res;
        CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &res));
        const int want = cases[k][0] + cases[k][1];
        CHECK(res.epochs_done == want && res.early_stop == DP_SEARCH_STOP_STABLE && res.stop_epoch == want &&
                  res.kept_epoch == want && !res.stopped_early && res.steps == (long)want * 3,
              "warm-up %d, --stop-stable %d: %d epochs, %ld steps, stop %d at %d", cases[k][0], cases[k][1],
              res.epochs_done, res.steps, res.early_stop, res.stop_epoch);
        CHECK(metrics_has(cfg.run.out, "\"kind\":\"early_stop\"", "\"reason\":\"stable\""),
              "no early_stop record in metrics.jsonl");
        CHECK(metrics_has(cfg.run.out, "\"kind\":\"select\"", "\"early_stop\":\"stable\""),
              "the select record does not say the search stopped");
        dp_search_result_free(&res);
        /* nothing to go on with */
        cfg.run.resume = 1;
        dp_status rc = dp_search_run(&cfg, MPI_COMM_WORLD, &res);
        CHECK(rc == DP_ERR_ARG && strstr(dp_errmsg(), "stopped early") && strstr(dp_errmsg(), "search.dpc"),
              "--resume of a stopped search: %s", dp_errmsg());
        dp_search_result_free(&res);
    }
    end_case("--stop-stable: alpha still, stops after warm-up + N");
}

/* The rules against their definitions on the cells of a search run to its end. */
static void rules_match_definition(void)
{
    enum { E = 8, W = 1 };
    dp_search_config base = tiny(16, 2L * 3 * 16 * g_size);
    base.run.epochs = E;
    base.arch_warmup = W;
    base.a_lr = 3e-5f; /* alpha moves from its 1e-3 noise slowly: cells change in some epochs, not all */
    dp_search_config cfg = base;
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s/full", tmp);
    dp_search_result full;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &full));
    dp_genotype g[E];
    epoch_cells(cfg.run.out, E, g);
    int changes = 0;
    for (int e = W; e < E; e++) changes += !same_cell(&g[e], &g[e - 1]);
    if (g_rank == 0) printf("    %d of %d epochs of moving alpha changed the cell\n", changes, E - W);

    /* (sanitized: left out, --stop-stable's code is run by stable_fires and stop_resume) */
    for (int n = 1; n <= 2 && !DP_SANITIZED; n++) { /* --stop-stable n: its cell is the n before's */
        int want = E, why = DP_SEARCH_STOP_NONE;
        for (int e = W + n; e <= E && why == DP_SEARCH_STOP_NONE; e++) { /* e: epochs done */
            int same = 1;
            for (int j = e - n; j < e; j++) same &= same_cell(&g[j], &g[j - 1]); /* g[j]: epoch j + 1's */
            if (same) want = e, why = DP_SEARCH_STOP_STABLE;
        }
        cfg = base;
        cfg.stop_stable = n;
        snprintf(cfg.run.out, sizeof cfg.run.out, "%s/stable%d", tmp, n);
        dp_search_result r;
        CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &r));
        CHECK(r.epochs_done == want && r.early_stop == why, "--stop-stable %d: %d epochs (%s), the cells say %d (%s)",
              n, r.epochs_done, dp_search_stop_name(r.early_stop), want, dp_search_stop_name(why));
        if (g_rank == 0)
            printf("    --stop-stable %d: %s after epoch %d\n", n, why ? "stopped" : "ran to the end", want);
        CHECK(same_cell(&r.genotype, &g[r.epochs_done - 1]), "--stop-stable %d: not the last epoch's cell", n);
        dp_search_result_free(&r);
    }

    /* --stop-free K: the largest K some cell of moving alpha reaches after the first such epoch (so that the
     * epoch before is kept), else the largest reached at all; the result is the epoch before's cell */
    int most = 0, stop = 0;
    for (int k = 8; k >= 1 && !most; k--) {
        int first = 0;
        for (int e = W + 1; e <= E && !first; e++) first = param_free(&g[e - 1]) >= k ? e : 0;
        if (first > W + 1) most = k, stop = first;
    }
    for (int e = W + 1; e <= E && !most; e++) most = param_free(&g[e - 1]) > most ? param_free(&g[e - 1]) : most;
    for (int e = W + 1; e <= E && !stop; e++) stop = param_free(&g[e - 1]) >= most ? e : 0;
    const int keep = stop - 1 > W ? stop - 1 : stop;
    cfg = base;
    cfg.stop_free = most;
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s/free", tmp);
    dp_search_result r;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &r));
    CHECK(r.epochs_done == stop && r.early_stop == DP_SEARCH_STOP_FREE && r.stop_epoch == stop && r.kept_epoch == keep,
          "--stop-free %d: %d epochs, stop %d at %d keeping %d; the cells say %d keeping %d", most, r.epochs_done,
          r.early_stop, r.stop_epoch, r.kept_epoch, stop, keep);
    CHECK(stop >= 1 && same_cell(&r.genotype, &g[keep - 1]) && same_cell(&r.genotype_alpha, &g[keep - 1]),
          "--stop-free: the result is not epoch %d's cell", keep);
    if (g_rank == 0 && stop >= 1) {
        char path[600];
        dp_genotype back;
        snprintf(path, sizeof path, "%s/genotype.json", cfg.run.out);
        CHECK_OK(dp_genotype_load(path, &back));
        CHECK(same_cell(&back, &g[keep - 1]), "genotype.json is not the kept cell");
        printf("    --stop-free %d: stopped after epoch %d, kept epoch %d's cell\n", most, stop, keep);
    }
    /* --reselect of the stopped search keeps the same cell */
    cfg.reselect = 1;
    dp_search_result again;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &again));
    CHECK(same_cell(&again.genotype, &r.genotype), "--reselect chose another cell than the stopped search's");
    dp_search_result_free(&again);
    dp_search_result_free(&r);
    dp_search_result_free(&full);
    end_case("--stop-stable, --stop-free: the epochs the cells give");
}

/* Stopped by --stop-after in the middle of a streak and resumed: the streak comes back. */
static void stop_resume(void)
{
    dp_search_config cfg = tiny(16, 2L * 3 * 16 * g_size);
    cfg.run.epochs = 5;
    cfg.a_lr = 1e-12f;
    cfg.stop_stable = 2;
    dp_search_result whole, part, rest;
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s/sr-whole", tmp);
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &whole));
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s/sr-part", tmp);
    cfg.stop_after = 1;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &part));
    CHECK(part.stopped_early && part.epochs_done == 1 && part.early_stop == DP_SEARCH_STOP_NONE, "stop after 1");
    cfg.stop_after = 0;
    cfg.run.resume = 1;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &rest));
    CHECK(rest.epochs_done == 2 && rest.early_stop == DP_SEARCH_STOP_STABLE && rest.steps == whole.steps,
          "resumed: %d epochs, stop %d, %ld steps (uninterrupted: %d, %ld)", rest.epochs_done, rest.early_stop,
          rest.steps, whole.epochs_done, whole.steps);
    CHECK(same_bits(&whole, &rest), "the resumed search ended with other bits");
    /* a resume without the flag the checkpoint was written with is named */
    dp_search_result_free(&rest);
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s/sr-part2", tmp);
    cfg.run.resume = 0;
    cfg.stop_after = 1;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &rest));
    dp_search_result_free(&rest);
    cfg.stop_after = 0;
    cfg.run.resume = 1;
    cfg.stop_stable = 0;
    dp_status rc = dp_search_run(&cfg, MPI_COMM_WORLD, &rest);
    CHECK(rc == DP_ERR_ARG && strstr(dp_errmsg(), "--stop-stable"), "resume without --stop-stable: %s", dp_errmsg());
    dp_search_result_free(&whole);
    dp_search_result_free(&part);
    end_case("--stop-stable: stopped, resumed, stops where one run does");
}

/* Nothing to distil from before the first snapshot: the plain search's bits; afterwards the term acts. */
static void distill_plain(void)
{
    dp_search_config cfg = tiny(16, 2L * 3 * 16 * g_size);
    cfg.run.epochs = 1;
    dp_search_result plain, zero, first, plain2, sd2;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &plain));
    cfg.self_distill = 0.0f; /* explicitly off, and the shaping flags at their defaults */
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &zero));
    CHECK(same_bits(&plain, &zero) && plain.params_hash == zero.params_hash, "lambda 0 is not the plain search");
    cfg.self_distill = 2.0f;
    cfg.distill_temp = 3.0f;
    cfg.distill_voters = 2;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &first));
    CHECK(same_bits(&plain, &first), "one epoch with --self-distill (no teacher yet) differs from the plain search");
    CHECK(first.distill_kl == 0, "KL %g without a teacher", first.distill_kl);
    cfg.run.epochs = 2;
    cfg.self_distill = 0.0f;
    cfg.distill_temp = 1.0f;
    cfg.distill_voters = 1;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &plain2));
    cfg.self_distill = 2.0f;
    cfg.distill_temp = 3.0f;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &sd2));
    CHECK(plain2.nweights == sd2.nweights && plain2.nweights > 0 &&
              memcmp(plain2.weights, sd2.weights, plain2.nweights * sizeof *plain2.weights),
          "the second epoch's teacher did not move the weights");
    CHECK(sd2.distill_kl > 0 && isfinite(sd2.distill_kl), "epoch 2's KL %g", sd2.distill_kl);
    if (g_rank == 0) printf("    epoch 2's mean KL(teacher || supernet) at T 3: %.3g\n", sd2.distill_kl);
    dp_search_result_free(&plain);
    dp_search_result_free(&zero);
    dp_search_result_free(&first);
    dp_search_result_free(&plain2);
    dp_search_result_free(&sd2);
    end_case("--self-distill: plain bits before a teacher, moves after");
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - (double)b[i]));
    return d;
}

/* P ranks x batch b against 1 rank x batch P b, teachers active for half the steps. Tolerances as
 * mpi_search's equivalence for the weights (rounding of other sums, amplified by 12 steps: 1e-3 of the
 * largest weight), and for alpha 5% of Adam's lr x steps: the plain search in this configuration (two
 * epochs) already parts by 7e-5 = 2% (Adam turns rounding into fractions of a step where a gradient is
 * near zero). The term must matter: without it the weights end at least 5 tolerances away (darts: 14). */
static void distill_equivalence(dp_nas_strategy strategy, int voters, const char *name)
{
    const int b = 8;
    dp_search_config cfg = tiny(b, 2L * 6 * b * g_size);
    cfg.run.epochs = 2;
    cfg.run.sampler = 1; /* global */
    cfg.strategy = strategy;
    cfg.self_distill = 50.0f;
    cfg.distill_temp = 2.0f;
    cfg.distill_voters = voters;
    dp_search_result many, one, plain;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &many));
    cfg.run.batch = b * g_size;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_SELF, &one));
    cfg.self_distill = 0, cfg.distill_temp = 1, cfg.distill_voters = 1;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_SELF, &plain));
    CHECK(many.steps == one.steps && many.steps == 12, "steps %ld vs %ld", many.steps, one.steps);
    double wmax = 0, wd = 0, ad = 0, moved = 0;
    for (size_t i = 0; i < one.nweights; i++) wmax = fmax(wmax, fabs(one.weights[i]));
    if (many.nweights == one.nweights && plain.nweights == one.nweights) {
        wd = max_diff(many.weights, one.weights, one.nweights);
        moved = max_diff(plain.weights, one.weights, one.nweights);
    }
    ad = max_diff(many.alpha, one.alpha, (size_t)one.nalpha);
    CHECK(many.nweights == one.nweights && wd <= 1e-3 * wmax, "%s: weights differ by %g (max |w| %g)", name, wd, wmax);
    CHECK(moved > 5e-3 * wmax, "%s: the term moved the weights by only %g: the check above would hardly see it",
          name, moved);
    const double tol = 5e-2 * cfg.a_lr * 12;
    CHECK(ad <= tol, "%s: alpha differs by %g (tolerance %g)", name, ad, tol);
    CHECK(fabs(many.distill_kl - one.distill_kl) <= 1e-2 * one.distill_kl && one.distill_kl > 0,
          "%s: KL %g vs %g", name, many.distill_kl, one.distill_kl);
    if (g_rank == 0)
        printf("    %s: max |dw| %.3g of %.3g (the term moves them by %.3g), max |dalpha| %.3g\n", name, wd, wmax,
               moved, ad);
    dp_search_result_free(&plain);
    dp_search_result_free(&many);
    dp_search_result_free(&one);
    end_case(name);
}

/* One epoch of `cfg` into tmp/name, then --resume with the flags of `now`: the resume's status (its
 * result freed). */
static dp_status resumed_with(dp_search_config cfg, const char *name, dp_search_config now)
{
    dp_search_result r;
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s/%s", tmp, name);
    snprintf(now.run.out, sizeof now.run.out, "%s", cfg.run.out);
    cfg.run.resume = 0, cfg.stop_after = 1;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &r));
    dp_search_result_free(&r);
    now.run.resume = 1, now.stop_after = 0;
    dp_status rc = dp_search_run(&now, MPI_COMM_WORLD, &r);
    if (rc == DP_OK) dp_search_result_free(&r);
    return rc;
}

/* Stopped in the middle of epoch 3 (teachers from epochs 1 and 2 in use) and resumed: the same bits. */
static void distill_resume(void)
{
    dp_search_config cfg = tiny(8, 2L * 4 * 8 * g_size); /* 4 steps an epoch */
    cfg.run.epochs = 3;
    cfg.self_distill = 1.0f;
    cfg.distill_voters = 2;
    dp_search_result whole, part, rest;
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s/sd-whole", tmp);
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &whole));
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s/sd-part", tmp);
    cfg.run.stop_after = 10; /* step 10 of 12 */
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &part));
    CHECK(part.stopped_early && part.steps == 10, "stopped at step %ld", part.steps);
    cfg.run.stop_after = 0;
    cfg.run.resume = 1;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &rest));
    CHECK(rest.steps == whole.steps && rest.epochs_done == whole.epochs_done && rest.early_stop == whole.early_stop,
          "resumed to %ld steps, %d epochs; uninterrupted %ld, %d", rest.steps, rest.epochs_done, whole.steps,
          whole.epochs_done);
    CHECK(same_bits(&whole, &rest), "the resumed search ended with other bits");
    CHECK(part.nweights == whole.nweights && memcmp(part.weights, whole.weights, part.nweights * sizeof(float)),
          "step 10 already ends where step 12 does");
    dp_search_result_free(&rest);
    /* another temperature than the checkpoint's is named */
    dp_search_config other = cfg;
    other.distill_temp = 4.0f;
    dp_status rc = resumed_with(cfg, "sd-part2", other);
    CHECK(rc == DP_ERR_ARG && strstr(dp_errmsg(), "--distill-temp"), "resume with another T: %s", dp_errmsg());
    dp_search_result_free(&whole);
    dp_search_result_free(&part);
    end_case("--self-distill: stopped mid-epoch, resumed, same bits");
}

/* Alpha held still (an --arch-lr Adam cannot move in float), so only the weights' lr differs between runs. */
static void cospow(void)
{
    dp_search_config cfg = tiny(8, 2L * 4 * 8 * g_size); /* 4 steps an epoch */
    cfg.run.epochs = 3;
    cfg.a_lr = 1e-12f;
    dp_search_result cosine, whole, part, rest;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &cosine));
    cfg.w_schedule = DP_SCHED_COSPOW;
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s/cp-whole", tmp);
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &whole));
    double wmax = 0, apart = 0;
    for (size_t i = 0; i < cosine.nweights; i++) wmax = fmax(wmax, fabs(cosine.weights[i]));
    if (whole.nweights == cosine.nweights) apart = max_diff(whole.weights, cosine.weights, cosine.nweights);
    CHECK(apart > 1e-3 * wmax, "cospow p 10 ends %g from cosine (max |w| %g): the schedule does not act", apart, wmax);
    if (g_rank == 0) printf("    weights from cosine's: %.3g (max |w| %.3g)\n", apart, wmax);
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s/cp-part", tmp);
    cfg.run.stop_after = 6; /* the middle of epoch 2 */
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &part));
    CHECK(part.stopped_early && part.steps == 6, "stopped at step %ld", part.steps);
    cfg.run.stop_after = 0;
    cfg.run.resume = 1;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &rest));
    CHECK(rest.steps == whole.steps && same_bits(&whole, &rest), "resumed: %ld steps (uninterrupted %ld), other bits",
          rest.steps, whole.steps);
    dp_search_result_free(&rest);
    /* a cosine search resumed with cospow, or with self-distillation switched on (keys its checkpoint lacks) */
    dp_search_config plain = cfg, distill = cfg;
    plain.w_schedule = distill.w_schedule = DP_SCHED_COSINE;
    distill.self_distill = 1.0f;
    dp_status rc = resumed_with(plain, "cp-part2", cfg);
    CHECK(rc == DP_ERR_ARG && strstr(dp_errmsg(), "--schedule/--lr-power is cospow/10 in this run, (none) in the"),
          "resume of a cosine search with cospow: %s", dp_errmsg());
    if (g_rank == 0) printf("    %s\n", dp_errmsg());
    rc = resumed_with(plain, "cp-part3", distill);
    CHECK(rc == DP_ERR_ARG && strstr(dp_errmsg(), "--self-distill"), "resume with --self-distill on: %s", dp_errmsg());
    dp_search_result_free(&cosine);
    dp_search_result_free(&whole);
    dp_search_result_free(&part);
    end_case("--schedule cospow: acts, resumes with the same bits, a switch at resume is named");
}

/* A file under out exists (rank 0 looks; every rank gets the answer). */
static int out_has(const char *out, const char *name)
{
    int yes = 1;
    if (g_rank == 0) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", out, name);
        yes = access(path, F_OK) == 0;
    }
    MPI_Bcast(&yes, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return yes;
}

/* D-DARTS (--cell-per-layer), 3 cells (normal, reduce, reduce): an alpha per cell, a genotype with a cell per
 * layer in the result, genotype.json, alpha.csv and the pictures; P ranks x batch b == 1 rank x batch P b
 * (tolerances as distill_equivalence's); stopped mid-epoch and resumed, the same bits; a resume that switches
 * the flag, and a perturbation selection of it, are named. */
static void per_layer(void)
{
    const int b = 8;
    dp_search_config cfg = tiny(b, 2L * 4 * b * g_size); /* 4 steps an epoch */
    cfg.net.layers = 3;
    cfg.net.per_layer = 1;
    cfg.run.epochs = 2;
    cfg.run.sampler = 1; /* global */
    dp_search_result many, one, part, rest;
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s/pl-whole", tmp);
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &many));
    CHECK(many.nalpha == 3 * 14 * DP_NAS_NUM_OPS, "%d alphas for 3 cells of their own", many.nalpha);
    CHECK(many.genotype.layers == 3 && dp_genotype_check(&many.genotype) == DP_OK, "the result's genotype: %d cells",
          many.genotype.layers);
    dp_genotype saved;
    memset(&saved, 0, sizeof saved);
    if (g_rank == 0) {
        char path[600];
        snprintf(path, sizeof path, "%s/genotype.json", cfg.run.out);
        CHECK_OK(dp_genotype_load(path, &saved));
    }
    MPI_Bcast(&saved, (int)sizeof saved, MPI_BYTE, 0, MPI_COMM_WORLD);
    CHECK(same_cell(&saved, &many.genotype), "genotype.json is not the result's cells");
    CHECK(out_has(cfg.run.out, "cell0_normal.dot") && out_has(cfg.run.out, "cell2_reduction.dot"),
          "a picture per cell");
    CHECK(metrics_has(cfg.run.out, "\"cells\":", "\"reductions\":[1,2]"), "metrics.jsonl lacks the per-layer genotype");
    dp_search_config solo = cfg;
    solo.run.batch = b * g_size;
    solo.run.out[0] = 0;
    CHECK_OK(dp_search_run(&solo, MPI_COMM_SELF, &one));
    double wmax = 0, wd = 1e30, ad = 1e30;
    for (size_t i = 0; i < one.nweights; i++) wmax = fmax(wmax, fabs(one.weights[i]));
    if (many.nweights == one.nweights) wd = max_diff(many.weights, one.weights, one.nweights);
    if (many.nalpha == one.nalpha) ad = max_diff(many.alpha, one.alpha, (size_t)one.nalpha);
    CHECK(wd <= 1e-3 * wmax, "per layer: weights differ by %g (max |w| %g)", wd, wmax);
    CHECK(ad <= 5e-2 * cfg.a_lr * 8, "per layer: alpha differs by %g", ad);
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s/pl-part", tmp);
    cfg.run.stop_after = 5; /* the middle of epoch 2 */
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &part));
    cfg.run.stop_after = 0;
    cfg.run.resume = 1;
    CHECK_OK(dp_search_run(&cfg, MPI_COMM_WORLD, &rest));
    CHECK(part.stopped_early && rest.steps == many.steps && same_bits(&many, &rest) &&
              same_cell(&many.genotype, &rest.genotype), "stopped at step %ld and resumed: other bits", part.steps);
    if (g_rank == 0) printf("    per layer: P x b against 1 x Pb: max |dw| %.3g of %.3g, max |dalpha| %.3g\n", wd, wmax, ad);
    dp_search_config shared = cfg;
    shared.net.per_layer = 0;
    dp_status rc = resumed_with(shared, "pl-switch", cfg);
    CHECK(rc == DP_ERR_ARG && strstr(dp_errmsg(), "--cell-per-layer"), "a resume that switches it on: %s", dp_errmsg());
    dp_search_result_free(&part);
    cfg.run.resume = 0;
    cfg.select = 1; /* perturb */
    rc = dp_search_run(&cfg, MPI_COMM_WORLD, &part);
    CHECK(rc == DP_ERR_ARG && strstr(dp_errmsg(), "--cell-per-layer") && strstr(dp_errmsg(), "--select perturb"),
          "--select perturb of cells per layer: %s", dp_errmsg());
    dp_search_result_free(&many);
    dp_search_result_free(&one);
    dp_search_result_free(&rest);
    end_case("--cell-per-layer: a cell per layer, P x b == 1 x Pb, resumes with the same bits");
}

static void bad_flags(void)
{
    static const char *const flag[] = {"--stop-stable", "--stop-free", "--stop-free", "--self-distill",
                                       "--distill-temp", "--distill-voters", "--distill-temp", "--schedule",
                                       "--lr-power"};
    for (int k = 0; k < (int)(sizeof flag / sizeof flag[0]); k++) {
        dp_search_config cfg = tiny(16, 400);
        cfg.run.epochs = 3;
        switch (k) {
        case 0: cfg.stop_stable = 3; break;           /* needs 4 epochs to ever stop early */
        case 1: cfg.stop_free = 9; break;             /* 8 ops in a cell */
        case 2: cfg.stop_free = 4, cfg.strategy = DP_NAS_GOLD; break;
        case 3: cfg.self_distill = -1.0f; break;
        case 4: cfg.self_distill = 1.0f, cfg.distill_temp = 0.0f; break;
        case 5: cfg.self_distill = 1.0f, cfg.distill_voters = 0; break;
        case 6: cfg.distill_temp = 2.0f; break;       /* shaping a term that is off */
        case 7: cfg.w_schedule = DP_SCHED_STEP; break; /* the search anneals */
        case 8: cfg.w_schedule = DP_SCHED_COSPOW, cfg.w_lr_power = 1.0f; break;
        }
        dp_search_result res;
        dp_status rc = dp_search_run(&cfg, MPI_COMM_WORLD, &res);
        CHECK(rc == DP_ERR_ARG && strstr(dp_errmsg(), flag[k]), "case %d: %s", k, dp_errmsg());
    }
    end_case("the levers' flags: bad values named");
}

int main(int argc, char **argv)
{
    search_test_start(&argc, &argv, "mpi-search-levers");

    bad_flags();
    stable_fires();
    rules_match_definition();
    stop_resume();
    distill_plain();
    distill_equivalence(DP_NAS_DARTS, 1, "--self-distill darts: P x b == 1 x Pb");
    if (!DP_SANITIZED) /* the voters' and gumbel's code is the same loop, run plain only */
        distill_equivalence(DP_NAS_GUMBEL, 2, "--self-distill gumbel, 2 voters: P x b == 1 x Pb");
    distill_resume();
    cospow();
    per_layer();

    return mpi_finish("mpi_search_levers", tmp);
}
