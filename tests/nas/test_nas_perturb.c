/* Choosing the cell from a trained supernet (dptrain/nas_select.h):
 * perturbation-based selection, and one-shot selection among sampled cells.
 *
 * algorithm: a synthetic evaluator whose accuracy is a known sum of
 *   importances (each removed op, each removed edge costs its own amount), with
 *   mixing weights that favour max_pool everywhere: the selection must keep
 *   on every edge the op of largest importance and on every node the two
 *   edges of largest importance, whatever the order of edges (seeds), and
 *   make the expected number of evaluations and tunings; ties in accuracy go
 *   to the larger loss; a pruned (dead) op is never chosen.
 *
 * hand_built: a real supernet (1 reduction cell, C = 4, 2 x 8 x 8 inputs,
 *   2 classes) whose weights are set by hand so that the label reaches the
 *   classifier through ONE op of edge 0 (node 0 <- s0), while max_pool on the
 *   same edge, favoured by the mixing weights (0.6 against 0.1), carries
 *   label-free noise into the channel the classifier reads:
 *     input     channel 0 = s (+1 class 1, -1 class 0), channel 1 = n (noise,
 *               independent of the label), constant over the image;
 *     stem      conv: identity on channels 0, 1; BN beta 10 (ReLU passes);
 *     pre0      1x1 conv: channels 0, 1 -> 0, 1 (s0 holds s and n);
 *     pre1      1x1 conv: channel 0 -> 0 (s1 holds s only);
 *     target    (sep_conv_3x3 or dil_conv_3x3 on edge 0): depthwise centre
 *               taps 1, pointwise channel 0 -> channel 1: writes +-1 = s
 *               into channel 1;
 *     pools     on edge 0 write n (normalised) into channel 1; on edge 1
 *               they read s1, whose channel 1 is 0, so they write 0 there;
 *     every other conv is zero, so its op outputs exactly 0 (BN of a constant);
 *     classifier reads node 0's channel 1 only: logits (-4 g, +4 g).
 *   Node 0's channel 1 is g = 0.7 n + 0.1 s: magnitude selection keeps
 *   max_pool; removing the target leaves 0.7 n (chance) while removing any
 *   other op keeps the 0.1 s that only helps, so perturbation must keep the
 *   target. Run with both targets: the choice follows the signal, not a
 *   column. Sample selection, given alpha's cell and random cells, must
 *   keep one that carries the target on edge 0.
 *
 * sample: a synthetic evaluator that scores a cell by how many of its
 *   (edge, op) pairs a hidden cell shares: every candidate given to it is a
 *   cell (two edges from distinct earlier states per node, one op each, 16
 *   alive entries), the first is the caller's, the winner is the best scored
 *   (the earlier on a tie of both numbers, the lower loss on a tie of
 *   accuracy), and the stats count what the log shows. */
#include <criterion/criterion.h>
#include "timeout.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/nas_select.h"

enum { NE = DP_NAS_EDGES, NOPS = DP_NAS_NUM_OPS, ROWS = 2 * NE * NOPS };
static const int all_ops[NOPS] = {0, 1, 2, 3, 4, 5, 6, 7};

static int edge0_of(int node) { return 2 * node + node * (node - 1) / 2; }

/* ---- the algorithm on a synthetic evaluator ---- */

typedef struct synth {
    double op_imp[ROWS];     /* what removing each op costs */
    double edge_imp[2 * NE]; /* what losing a whole edge costs, besides its ops */
    int evals, tunes;
    int loss_only;           /* 1: accuracy never changes, the loss carries the cost */
} synth;

static dp_status synth_eval(void *user, const float *w, const float *alive, double *v)
{
    (void)w;
    synth *s = user;
    double cost = 0;
    for (int r = 0; r < 2 * NE; r++) {
        int any = 0;
        for (int k = 1; k < NOPS; k++) { /* column 0 is none */
            if (alive[r * NOPS + k] == 0.0f) cost += s->op_imp[r * NOPS + k];
            any |= alive[r * NOPS + k] != 0.0f;
        }
        if (!any) cost += s->edge_imp[r];
    }
    s->evals++;
    v[0] = s->loss_only ? 500 : 100000 - cost;
    v[1] = 100000;
    v[2] = s->loss_only ? cost : 1.0;
    return DP_OK;
}

static dp_status synth_tune(void *user, const float *w, const float *alive)
{
    (void)w, (void)alive;
    ((synth *)user)->tunes++;
    return DP_OK;
}

/* Importances: on row r the best op is column 4 + (r * 5) % 4 (a conv), worth 10 + r % 3; the others
 * small; edges 50 + 1.5 ((r * 5) % 14): distinct within a cell, and so are edge + best op (no ties). */
static void synth_fill(synth *s)
{
    memset(s, 0, sizeof *s);
    for (int r = 0; r < 2 * NE; r++) {
        for (int k = 1; k < NOPS; k++) s->op_imp[r * NOPS + k] = 0.1 * k + 0.01 * (r % 5);
        s->op_imp[r * NOPS + 4 + (r * 5) % 4] = 10 + r % 3;
        s->edge_imp[r] = 50 + 1.5 * ((r * 5) % NE);
    }
}

static void favour_max_pool(float *w)
{
    for (int r = 0; r < 2 * NE; r++)
        for (int k = 0; k < NOPS; k++) w[r * NOPS + k] = k == DP_NAS_MAX_POOL_3X3 ? 0.5f : 0.5f / 7;
}

/* The edge choice the importances imply: per node the two edges of largest (edge + kept op) cost. */
static void expected_edges(const synth *s, const int *best_col, int t, int node, int *in)
{
    const int e0 = edge0_of(node);
    in[0] = in[1] = -1;
    for (int slot = 0; slot < 2; slot++)
        for (int j = 0; j < node + 2; j++) {
            if (j == in[0]) continue;
            const int r = t * NE + e0 + j;
            const double c = s->edge_imp[r] + s->op_imp[r * NOPS + best_col[r]];
            const int rb = in[slot] < 0 ? -1 : t * NE + e0 + in[slot];
            if (in[slot] < 0 || c > s->edge_imp[rb] + s->op_imp[rb * NOPS + best_col[rb]]) in[slot] = j;
        }
}

Test(perturb, algorithm_keeps_the_important_ops_and_edges, .timeout = DP_TIMEOUT(60))
{
    for (uint64_t seed = 1; seed <= 3; seed++) {
        synth s;
        synth_fill(&s);
        float w[ROWS], alive[ROWS];
        favour_max_pool(w);
        for (int i = 0; i < ROWS; i++) alive[i] = 1.0f;
        dp_nas_perturb p = {.ops = all_ops, .nops = NOPS, .w = w, .alive = alive, .seed = seed,
                            .eval = synth_eval, .tune = synth_tune, .user = &s};
        dp_nas_perturb_stats st;
        dp_genotype g;
        cr_assert_eq(dp_nas_select_perturb(&p, &g, &st), DP_OK, "%s", dp_errmsg());
        cr_assert_eq(dp_genotype_check(&g), DP_OK, "%s", dp_errmsg());
        /* 1 (the supernet) + 28 edges x 7 ops + nodes 1..3 of both cells (3 + 4 + 5 edges each) */
        cr_assert_eq(st.evals, 1 + 2 * NE * 7 + 2 * (3 + 4 + 5), "seed %llu: %d evaluations", (unsigned long long)seed,
                     st.evals);
        cr_assert_eq(st.evals, s.evals);
        cr_assert_eq(st.tunes, NE + 3 - 1, "one tuning between rounds: %d", st.tunes);
        int best_col[2 * NE];
        for (int r = 0; r < 2 * NE; r++) best_col[r] = 4 + (r * 5) % 4;
        for (int t = 0; t < 2; t++) {
            const int *gop = t ? g.reduce_op : g.normal_op, *gin = t ? g.reduce_in : g.normal_in;
            for (int i = 0; i < DP_NAS_NODES; i++) {
                int in[2] = {0, 1};
                if (i > 0) expected_edges(&s, best_col, t, i, in);
                for (int j = 0; j < 2; j++) {
                    cr_assert_eq(gin[2 * i + j], in[j], "seed %llu cell %d node %d slot %d: input %d, expected %d",
                                 (unsigned long long)seed, t, i, j, gin[2 * i + j], in[j]);
                    const int r = t * NE + edge0_of(i) + in[j];
                    cr_assert_eq(gop[2 * i + j], best_col[r], "seed %llu cell %d node %d: op %s, expected %s",
                                 (unsigned long long)seed, t, i, dp_nas_op_name(gop[2 * i + j]),
                                 dp_nas_op_name(best_col[r]));
                }
            }
        }
        /* the derived cells in w and alive: the kept edges one-hot, the others empty */
        int kept_rows = 0;
        for (int r = 0; r < 2 * NE; r++) {
            float sum = 0;
            for (int k = 0; k < NOPS; k++) sum += alive[r * NOPS + k];
            cr_assert(sum == 0.0f || (sum == 1.0f && alive[r * NOPS + best_col[r]] == 1.0f &&
                                      w[r * NOPS + best_col[r]] == 1.0f), "row %d", r);
            kept_rows += sum == 1.0f;
        }
        cr_assert_eq(kept_rows, 2 * 2 * DP_NAS_NODES);
    }
}

/* Equal accuracy everywhere: the loss decides, so the same cell comes out. */
Test(perturb, ties_in_accuracy_go_to_the_larger_loss, .timeout = DP_TIMEOUT(60))
{
    synth s;
    synth_fill(&s);
    s.loss_only = 1;
    float w[ROWS], alive[ROWS];
    favour_max_pool(w);
    for (int i = 0; i < ROWS; i++) alive[i] = 1.0f;
    dp_nas_perturb p = {.ops = all_ops, .nops = NOPS, .w = w, .alive = alive, .seed = 7, .eval = synth_eval, .user = &s};
    dp_genotype g;
    cr_assert_eq(dp_nas_select_perturb(&p, &g, NULL), DP_OK, "%s", dp_errmsg());
    for (int j = 0; j < 2 * DP_NAS_NODES; j++) {
        const int r = edge0_of(j / 2) + g.normal_in[j];
        cr_assert_eq(g.normal_op[j], 4 + (r * 5) % 4, "slot %d: %s", j, dp_nas_op_name(g.normal_op[j]));
    }
    cr_assert_eq(s.tunes, 0);
}

/* A pruned op is never chosen, and a wholly pruned edge is never kept while its node has two others. */
Test(perturb, pruned_ops_and_edges_stay_out, .timeout = DP_TIMEOUT(60))
{
    synth s;
    synth_fill(&s);
    float w[ROWS], alive[ROWS];
    favour_max_pool(w);
    for (int i = 0; i < ROWS; i++) alive[i] = 1.0f;
    const int r_op = 3, best = 4 + (r_op * 5) % 4; /* edge 3 (node 1 <- s1): its best op pruned */
    alive[r_op * NOPS + best] = 0.0f, w[r_op * NOPS + best] = 0.0f;
    const int r_dead = 12; /* edge 12 (node 3 <- state 3, node 1): pruned whole, yet the most important */
    s.edge_imp[r_dead] = 1000;
    for (int k = 0; k < NOPS; k++) alive[r_dead * NOPS + k] = 0.0f, w[r_dead * NOPS + k] = 0.0f;
    dp_nas_perturb p = {.ops = all_ops, .nops = NOPS, .w = w, .alive = alive, .seed = 3, .eval = synth_eval, .user = &s};
    dp_genotype g;
    cr_assert_eq(dp_nas_select_perturb(&p, &g, NULL), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_genotype_check(&g), DP_OK, "%s", dp_errmsg());
    for (int j = 2; j < 4; j++)
        if (g.normal_in[j] == 1) cr_assert_neq(g.normal_op[j], best, "edge 3 kept its pruned op");
    cr_assert(g.normal_in[6] != 3 && g.normal_in[7] != 3, "node 3 kept its pruned edge: inputs %d %d", g.normal_in[6],
              g.normal_in[7]);
}

Test(perturb, select_names)
{
    dp_nas_select s;
    cr_assert_eq(dp_nas_select_parse("perturb", &s), DP_OK);
    cr_assert_eq(s, DP_NAS_SELECT_PERTURB);
    cr_assert_eq(dp_nas_select_parse("sample", &s), DP_OK);
    cr_assert_eq(s, DP_NAS_SELECT_SAMPLE);
    cr_assert_str_eq(dp_nas_select_name(DP_NAS_SELECT_SAMPLE), "sample");
    cr_assert_str_eq(dp_nas_select_name(DP_NAS_SELECT_ALPHA), "alpha");
    cr_assert_eq(dp_nas_select_parse("magnitude", &s), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "--select") && strstr(dp_errmsg(), "magnitude"), "%s", dp_errmsg());
}

/* ---- sample selection on a synthetic evaluator ---- */

enum { MAXC = 64 };

typedef struct samp {
    dp_genotype hidden;
    int loss_only;          /* 1: every cell has the same accuracy, the loss is 16 - matches */
    int n;
    dp_genotype seen[MAXC]; /* every candidate, decoded from w and alive */
    double score[MAXC];
} samp;

static dp_status samp_eval(void *user, const float *w, const float *alive, double *v)
{
    samp *s = user;
    dp_genotype g;
    memset(&g, 0, sizeof g);
    int live = 0;
    for (int t = 0; t < 2; t++)
        for (int node = 0; node < DP_NAS_NODES; node++) {
            int got = 0;
            for (int j = 0; j < node + 2; j++)
                for (int k = 0; k < NOPS; k++) {
                    const int at = (t * NE + edge0_of(node) + j) * NOPS + k;
                    cr_assert(w[at] == alive[at] && (alive[at] == 0.0f || alive[at] == 1.0f), "w %g alive %g",
                              (double)w[at], (double)alive[at]);
                    if (alive[at] == 0.0f) continue;
                    live++;
                    cr_assert_lt(got, 2, "node %d of cell %d has more than two live ops", node, t);
                    cr_assert(got == 0 || (t ? g.reduce_in : g.normal_in)[2 * node] != j, "two ops on one edge");
                    (t ? g.reduce_in : g.normal_in)[2 * node + got] = j;
                    (t ? g.reduce_op : g.normal_op)[2 * node + got] = all_ops[k];
                    got++;
                }
            cr_assert_eq(got, 2, "node %d of cell %d has %d live ops", node, t, got);
        }
    cr_assert_eq(live, 4 * DP_NAS_NODES);
    cr_assert_eq(dp_genotype_check(&g), DP_OK, "%s", dp_errmsg());
    int match = 0;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 2 * DP_NAS_NODES; i++) {
            const int *hi = t ? s->hidden.reduce_in : s->hidden.normal_in, *ho = t ? s->hidden.reduce_op : s->hidden.normal_op;
            const int *gi = t ? g.reduce_in : g.normal_in, *go = t ? g.reduce_op : g.normal_op;
            for (int k = 0; k < 2 * DP_NAS_NODES; k++) match += k / 2 == i / 2 && gi[i] == hi[k] && go[i] == ho[k];
        }
    cr_assert_lt(s->n, MAXC);
    s->seen[s->n] = g;
    s->score[s->n++] = match;
    v[0] = s->loss_only ? 50 : match, v[1] = 100, v[2] = s->loss_only ? 16 - match : 1.0;
    return DP_OK;
}

/* The same pairs (edge, op) per node, in either order. */
static int same_cell(const dp_genotype *a, const dp_genotype *b)
{
    for (int t = 0; t < 2; t++)
        for (int node = 0; node < DP_NAS_NODES; node++) {
            const int *ai = t ? a->reduce_in : a->normal_in, *ao = t ? a->reduce_op : a->normal_op;
            const int *bi = t ? b->reduce_in : b->normal_in, *bo = t ? b->reduce_op : b->normal_op;
            const int i = 2 * node, swap = ai[i] != bi[i];
            if (ai[i] != bi[i + swap] || ao[i] != bo[i + swap] || ai[i + 1] != bi[i + 1 - swap] ||
                ao[i + 1] != bo[i + 1 - swap])
                return 0;
        }
    return 1;
}

static void sample_case(int loss_only, int first_is_hidden)
{
    samp *s = calloc(1, sizeof *s);
    s->loss_only = loss_only;
    dp_rng r;
    dp_rng_seed(&r, 99, DP_STREAM_USER, 0);
    dp_nas_random_genotype(&r, all_ops, NOPS, 0, &s->hidden);
    dp_genotype first, g;
    if (first_is_hidden) first = s->hidden;
    else dp_nas_random_genotype(&r, all_ops, NOPS, 0, &first);
    float w[ROWS], alive[ROWS];
    dp_nas_sample p = {.ops = all_ops, .nops = NOPS, .first = &first, .samples = 40, .seed = 5, .w = w,
                       .alive = alive, .eval = samp_eval, .user = s};
    dp_nas_sample_stats st;
    cr_assert_eq(dp_nas_select_sample(&p, &g, &st), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(st.evals, 41);
    cr_assert_eq(s->n, 41);
    cr_assert(same_cell(&s->seen[0], &first), "the first candidate is not the caller's cell");
    int best = 0, better = 0, differ = 0;
    for (int i = 1; i < s->n; i++) {
        if (s->score[i] > s->score[best]) best = i;
        better += s->score[i] > s->score[0];
        differ += !same_cell(&s->seen[i], &s->seen[i - 1]);
    }
    cr_assert_gt(differ, 30, "the random candidates are not random: %d of 40 differ from the one before", differ);
    cr_assert_eq(st.chosen, best, "chose candidate %d (%g), the best is %d (%g)", st.chosen, s->score[st.chosen], best,
                 s->score[best]);
    cr_assert(same_cell(&g, &s->seen[best]), "the result is not the chosen candidate");
    cr_assert_eq(st.first_rank, better + 1);
    if (first_is_hidden) cr_assert_eq(st.chosen, 0, "the hidden cell itself was given first and lost");
    else cr_assert_gt(s->score[best], s->score[0], "no random cell beat a random first: the test shows nothing");
    cr_log_info("sample: best %g of 16 at candidate %d, first %g (rank %d)", s->score[best], best, s->score[0],
                st.first_rank);
    free(s);
}

Test(sample, keeps_the_best_candidate, .timeout = DP_TIMEOUT(30)) { sample_case(0, 0); }
Test(sample, keeps_the_first_on_a_tie, .timeout = DP_TIMEOUT(30)) { sample_case(0, 1); }
Test(sample, ties_in_accuracy_go_to_the_lower_loss, .timeout = DP_TIMEOUT(30)) { sample_case(1, 0); }

/* Given cells come after the first and before the random ones, in their order; with no random cells only
 * they are measured, and the hidden cell among them wins. */
Test(sample, ranks_given_cells_in_order, .timeout = DP_TIMEOUT(30))
{
    samp *s = calloc(1, sizeof *s);
    dp_rng r;
    dp_rng_seed(&r, 17, DP_STREAM_USER, 0);
    dp_nas_random_genotype(&r, all_ops, NOPS, 0, &s->hidden);
    dp_genotype first, given[3], g;
    dp_nas_random_genotype(&r, all_ops, NOPS, 0, &first);
    dp_nas_random_genotype(&r, all_ops, NOPS, 0, &given[0]);
    given[1] = s->hidden;
    dp_nas_random_genotype(&r, all_ops, NOPS, 0, &given[2]);
    float w[ROWS], alive[ROWS];
    for (int samples = 0; samples <= 6; samples += 6) {
        s->n = 0;
        dp_nas_sample p = {.ops = all_ops, .nops = NOPS, .first = &first, .given = given, .ngiven = 3,
                           .samples = samples, .seed = 5, .w = w, .alive = alive, .eval = samp_eval, .user = s};
        dp_nas_sample_stats st;
        cr_assert_eq(dp_nas_select_sample(&p, &g, &st), DP_OK, "%s", dp_errmsg());
        cr_assert_eq(st.evals, 4 + samples);
        cr_assert(same_cell(&s->seen[0], &first), "the first candidate is not the caller's cell");
        for (int i = 0; i < 3; i++) cr_assert(same_cell(&s->seen[1 + i], &given[i]), "candidate %d is not given[%d]", 1 + i, i);
        cr_assert_eq(st.chosen, 2, "chose candidate %d, the hidden cell is candidate 2", st.chosen);
        cr_assert(same_cell(&g, &s->hidden));
    }
    /* given cells alone (no first, no random) */
    s->n = 0;
    dp_nas_sample q = {.ops = all_ops, .nops = NOPS, .given = given, .ngiven = 3, .seed = 5, .w = w, .alive = alive,
                       .eval = samp_eval, .user = s};
    dp_nas_sample_stats st;
    cr_assert_eq(dp_nas_select_sample(&q, &g, &st), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(st.evals, 3);
    cr_assert_eq(st.chosen, 1);
    q.ngiven = 0; /* nothing to rank */
    cr_assert_eq(dp_nas_select_sample(&q, &g, &st), DP_ERR_ARG);
    q.ngiven = 2, q.given = NULL;
    cr_assert_eq(dp_nas_select_sample(&q, &g, &st), DP_ERR_ARG);
    free(s);
}

Test(sample, an_op_outside_the_set_is_named, .timeout = DP_TIMEOUT(30))
{
    static const int some[3] = {DP_NAS_NONE, DP_NAS_MAX_POOL_3X3, DP_NAS_SEP_CONV_3X3};
    dp_genotype g;
    dp_rng r;
    dp_rng_seed(&r, 3, DP_STREAM_USER, 0);
    dp_nas_random_genotype(&r, some, 3, 0, &g);
    float w[2 * NE * 3], alive[2 * NE * 3];
    cr_assert_eq(dp_nas_genotype_weights(&g, some, 3, w, alive), DP_OK, "%s", dp_errmsg());
    g.reduce_op[5] = DP_NAS_DIL_CONV_5X5;
    cr_assert_eq(dp_nas_genotype_weights(&g, some, 3, w, alive), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "reduce cell, node 2: op dil_conv_5x5"), "%s", dp_errmsg());
}

/* ---- a hand-built supernet ---- */

enum { N = 64, HW = 8, CIN = 2, BATCHES = 2 };

typedef struct hand {
    dp_supernet *sn;
    dp_ctx c;
    float x[N * CIN * HW * HW];
    int32_t y[N];
    int evals;
} hand;

static float *param(dp_supernet *sn, const char *name, long n)
{
    const dp_params *p = &sn->model->params;
    for (int i = 0; i < p->count; i++)
        if (!p->items[i]->is_buffer && !strcmp(p->items[i]->name, name)) {
            cr_assert_eq(p->items[i]->t.n, n, "%s has %ld elements, expected %ld", name, p->items[i]->t.n, n);
            return p->items[i]->t.data;
        }
    cr_assert_fail("no parameter %s", name);
    return NULL;
}

static dp_status hand_eval(void *user, const float *w, const float *alive, double *v)
{
    hand *h = user;
    h->evals++;
    const int per = N / BATCHES, shape[4] = {per, CIN, HW, HW};
    for (int b = 0; b < BATCHES; b++) {
        dp_ctx_reset(&h->c);
        dp_tensor *x = dp_tensor_wrap(&h->c, h->x + (size_t)b * per * CIN * HW * HW, 4, shape);
        dp_status rc = dp_supernet_eval_weights(h->sn, &h->c, x, h->y + b * per, w, alive, v);
        if (rc != DP_OK) return rc;
    }
    return DP_OK;
}

/* The supernet of the top of the file with the signal through op `target` of edge 0. */
static void hand_build(hand *h, int target)
{
    dp_supernet_config cfg;
    dp_supernet_config_defaults(&cfg);
    cfg.layers = 1; /* one cell: a reduction cell, C 4 -> 8 */
    cfg.channels = 4;
    cfg.in = (dp_model_shape){CIN, HW, HW, 2};
    cr_assert_eq(dp_supernet_build(&cfg, &h->sn), DP_OK, "%s", dp_errmsg());
    dp_params *p = &h->sn->model->params;
    memset(p->data, 0, p->n * sizeof(float));
    const int CS = 12, C = 8;
    float *stem = param(h->sn, "stem.conv.weight", CS * CIN * 9);
    stem[(0 * CIN + 0) * 9 + 4] = 1, stem[(1 * CIN + 1) * 9 + 4] = 1;
    float *gamma = param(h->sn, "stem.bn.weight", CS), *beta = param(h->sn, "stem.bn.bias", CS);
    for (int c = 0; c < CS; c++) gamma[c] = 1;
    beta[0] = beta[1] = 10;
    float *pre0 = param(h->sn, "cell0.pre0.conv.weight", C * CS), *pre1 = param(h->sn, "cell0.pre1.conv.weight", C * CS);
    pre0[0 * CS + 0] = 1, pre0[1 * CS + 1] = 1;
    pre1[0 * CS + 0] = 1;
    char nm[64];
    const char *op = dp_nas_op_name(target);
    const int sep = target == DP_NAS_SEP_CONV_3X3;
    snprintf(nm, sizeof nm, "cell0.edge0.%s.%s.weight", op, sep ? "dw1" : "dw");
    float *dw = param(h->sn, nm, C * 9);
    snprintf(nm, sizeof nm, "cell0.edge0.%s.%s.weight", op, sep ? "pw1" : "pw");
    float *pw = param(h->sn, nm, C * C);
    for (int c = 0; c < C; c++) dw[c * 9 + 4] = 1;
    pw[1 * C + 0] = 1; /* channel 0 (s) -> channel 1 */
    if (sep) { /* the second half passes channel 1 on */
        float *dw2 = param(h->sn, "cell0.edge0.sep_conv_3x3.dw2.weight", C * 9);
        float *pw2 = param(h->sn, "cell0.edge0.sep_conv_3x3.pw2.weight", C * C);
        for (int c = 0; c < C; c++) dw2[c * 9 + 4] = 1;
        pw2[1 * C + 1] = 1;
    }
    float *fc = param(h->sn, "classifier.weight", 2 * 4 * C);
    fc[0 * 4 * C + 1] = -4, fc[1 * 4 * C + 1] = 4; /* node 0's channel 1 */
    /* labels alternate; the noise takes 32 values spread over [-1.94, 1.94] in each class, a few of them small,
     * so that the label's 0.1 decides some images whichever way the rest goes */
    for (int i = 0; i < N; i++) {
        h->y[i] = i % 2;
        const float s = h->y[i] ? 1.0f : -1.0f, n = ((float)((i / 2 * 13) % (N / 2)) - (N / 2 - 1) / 2.0f) / 8.0f;
        for (int q = 0; q < HW * HW; q++) {
            h->x[((size_t)i * CIN + 0) * HW * HW + q] = s;
            h->x[((size_t)i * CIN + 1) * HW * HW + q] = n;
        }
    }
    dp_ctx_init(&h->c);
}

static void hand_weights(float *w, int target)
{
    for (int i = 0; i < ROWS; i++) w[i] = 1.0f / NOPS;
    float *e0 = w + NE * NOPS; /* the reduction cell's edge 0 */
    const float row[NOPS] = {0.02f, 0.6f, 0.1f, 0.08f, 0.03f, 0.04f, 0.03f, 0.1f};
    memcpy(e0, row, sizeof row);
    e0[target] = 0.1f, e0[DP_NAS_DIL_CONV_5X5] = 0.03f, e0[DP_NAS_SEP_CONV_3X3 + DP_NAS_DIL_CONV_3X3 - target] = 0.03f;
}

static int kept_op_of_input0(const dp_genotype *g)
{
    return g->reduce_in[0] == 0 ? g->reduce_op[0] : g->reduce_op[1];
}

static void hand_case(int target)
{
    hand *h = calloc(1, sizeof *h);
    hand_build(h, target);
    float w[ROWS], alive[ROWS];
    hand_weights(w, target);
    for (int i = 0; i < ROWS; i++) alive[i] = 1.0f;

    /* magnitude selection keeps the pool */
    dp_genotype ga;
    cr_assert_eq(dp_nas_derive(w, w + NE * NOPS, all_ops, NOPS, &ga), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(kept_op_of_input0(&ga), DP_NAS_MAX_POOL_3X3, "alpha kept %s", dp_nas_op_name(kept_op_of_input0(&ga)));

    /* the construction: the supernet sees the label only through the target */
    double full[3] = {0}, without[3] = {0}, only[3] = {0};
    cr_assert_eq(hand_eval(h, w, alive, full), DP_OK, "%s", dp_errmsg());
    alive[NE * NOPS + target] = 0;
    cr_assert_eq(hand_eval(h, w, alive, without), DP_OK, "%s", dp_errmsg());
    alive[NE * NOPS + target] = 1;
    alive[NE * NOPS + DP_NAS_MAX_POOL_3X3] = alive[NE * NOPS + DP_NAS_AVG_POOL_3X3] = 0;
    cr_assert_eq(hand_eval(h, w, alive, only), DP_OK, "%s", dp_errmsg());
    alive[NE * NOPS + DP_NAS_MAX_POOL_3X3] = alive[NE * NOPS + DP_NAS_AVG_POOL_3X3] = 1;
    cr_log_info("%s: accuracy %.3f, without it %.3f, without the pools %.3f", dp_nas_op_name(target), full[0] / full[1],
                without[0] / without[1], only[0] / only[1]);
    cr_assert_eq(only[0], N, "the target alone classifies every image: %g of %d", only[0], N);
    cr_assert_lt(without[0], full[0], "removing the target must cost accuracy: %g vs %g", without[0], full[0]);
    cr_assert_leq(without[0], N * 0.6, "without the target the supernet is near chance: %g of %d", without[0], N);

    dp_nas_perturb p = {.ops = all_ops, .nops = NOPS, .w = w, .alive = alive, .seed = 11, .eval = hand_eval, .user = h};
    dp_nas_perturb_stats st;
    dp_genotype gp;
    cr_assert_eq(dp_nas_select_perturb(&p, &gp, &st), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_genotype_check(&gp), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(kept_op_of_input0(&gp), target, "perturbation kept %s, the signal runs through %s",
                 dp_nas_op_name(kept_op_of_input0(&gp)), dp_nas_op_name(target));
    cr_assert_eq(st.evals, h->evals - 3);

    /* sample selection from alpha's cell (the pool on edge 0) and random cells keeps one with the target there */
    dp_nas_sample q = {.ops = all_ops, .nops = NOPS, .first = &ga, .samples = 30, .seed = 2, .w = w, .alive = alive,
                       .eval = hand_eval, .user = h};
    dp_nas_sample_stats qs;
    dp_genotype gs;
    cr_assert_eq(dp_nas_select_sample(&q, &gs, &qs), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(kept_op_of_input0(&gs), target, "sample selection kept %s on edge 0, the signal runs through %s",
                 dp_nas_op_name(kept_op_of_input0(&gs)), dp_nas_op_name(target));
    cr_assert(qs.best_acc == 1.0 && qs.first_acc <= 0.6 && qs.first_rank > 1, "best %g, alpha's cell %g (rank %d)",
              qs.best_acc, qs.first_acc, qs.first_rank);
    dp_ctx_free(&h->c);
    dp_supernet_free(h->sn);
    free(h);
}

Test(perturb, hand_built_supernet_sep_conv, .timeout = DP_TIMEOUT(120)) { hand_case(DP_NAS_SEP_CONV_3X3); }
Test(perturb, hand_built_supernet_dil_conv, .timeout = DP_TIMEOUT(120)) { hand_case(DP_NAS_DIL_CONV_3X3); }
