/* Genotypes: derivation from mixing weights, the JSON file and its errors,
 * the dot picture, and the derived network (shape, parameter count by hand,
 * gradients, drop-path). */
#include <criterion/criterion.h>
#include "timeout.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/supernet.h"
#include "gradcheck.h"

enum { NONE = DP_NAS_NONE, MAX = DP_NAS_MAX_POOL_3X3, AVG = DP_NAS_AVG_POOL_3X3, SKIP = DP_NAS_SKIP_CONNECT,
       SEP3 = DP_NAS_SEP_CONV_3X3, SEP5 = DP_NAS_SEP_CONV_5X5, DIL3 = DP_NAS_DIL_CONV_3X3, DIL5 = DP_NAS_DIL_CONV_5X5 };

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/dptrain-genotype-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(genotype, .init = make_dir, .fini = remove_dir, .timeout = DP_TIMEOUT(120));

/* A genotype using every primitive, skip_connect at stride 1 and 2, and
 * inputs from every kind of state. */
static dp_genotype sample(void)
{
    return (dp_genotype){
        .normal_op = {SEP3, SKIP, DIL3, MAX, AVG, SEP5, SKIP, DIL5},
        .normal_in = {0, 1, 0, 2, 1, 3, 0, 4},
        .reduce_op = {MAX, SEP3, SKIP, DIL3, AVG, SKIP, SEP5, MAX},
        .reduce_in = {0, 1, 0, 2, 1, 2, 3, 0},
    };
}

static void assert_cell(const int *op, const int *in, const int *want_op, const int *want_in, const char *cell)
{
    for (int k = 0; k < 8; k++) {
        cr_assert_eq(op[k], want_op[k], "%s[%d]: op %s, want %s", cell, k, dp_nas_op_name(op[k]),
                     dp_nas_op_name(want_op[k]));
        cr_assert_eq(in[k], want_in[k], "%s[%d]: input %d, want %d", cell, k, in[k], want_in[k]);
    }
}

Test(genotype, op_names_and_lists)
{
    for (int k = 0; k < DP_NAS_NUM_OPS; k++) cr_assert_eq(dp_nas_op_parse(dp_nas_op_name(k)), k);
    cr_assert_str_eq(dp_nas_op_name(SEP5), "sep_conv_5x5");
    cr_assert_eq(dp_nas_op_parse("conv_7x7"), -1);
    int ops[DP_NAS_NUM_OPS], n;
    cr_assert_eq(dp_nas_ops_parse("all", ops, &n), DP_OK);
    cr_assert_eq(n, 8);
    cr_assert_eq(ops[7], DIL5);
    cr_assert_eq(dp_nas_ops_parse("sep_conv_3x3,none,skip_connect", ops, &n), DP_OK);
    cr_assert_eq(n, 3);
    cr_assert(ops[0] == SEP3 && ops[1] == NONE && ops[2] == SKIP);
    cr_assert_eq(dp_nas_ops_parse("sep_conv_3x3,conv_7x7", ops, &n), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "conv_7x7"), "%s", dp_errmsg());
    cr_assert_eq(dp_nas_ops_parse("none,max_pool_3x3,none", ops, &n), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "'none' is listed twice"), "%s", dp_errmsg());
    cr_assert_eq(dp_nas_ops_parse("none,,max_pool_3x3", ops, &n), DP_ERR_ARG);
}

/* ---- derivation ---- */

static void fill(float *w, int nops, float v)
{
    for (int i = 0; i < DP_NAS_EDGES * nops; i++) w[i] = v;
}

/* All eight ops in reference order, every weight 0.1 unless set:
 *
 *   node 0 (edges 0-1, states 0-1)
 *     e0: none 0.5, sep3 0.3   none is the largest; the best other op is sep3, score 0.3
 *     e1: skip 0.4             score 0.4
 *     -> (skip_connect, 1), (sep_conv_3x3, 0)   strongest edge first
 *   node 1 (edges 2-4, states 0-2)
 *     e2: dil3 0.25            score 0.25
 *     e3: max 0.25             score 0.25, a tie with e2: the earlier edge first
 *     e4: avg 0.2
 *     -> (dil_conv_3x3, 0), (max_pool_3x3, 1)
 *   node 2 (edges 5-8, states 0-3)
 *     e5: none 0.9             every other op 0.1: a tie won by the first non-none column (max), score 0.1
 *     e6: sep5 0.35            score 0.35
 *     e7: sep3 0.3, dil5 0.3   a tie inside the row: the earlier column, sep3; score 0.3
 *     e8: -                    score 0.1
 *     -> (sep_conv_5x5, 1), (sep_conv_3x3, 2)
 *   node 3 (edges 9-13, states 0-4)
 *     e11: avg 0.3, e13: dil5 0.6, the rest 0.1
 *     -> (dil_conv_5x5, 4), (avg_pool_3x3, 2)
 *
 * The reduction cell is 0.1 everywhere: every comparison ties, so each node
 * keeps states 0 and 1, each with max_pool_3x3 (the first non-none column). */
Test(genotype, derive_full_case_by_hand)
{
    float wn[14 * 8], wr[14 * 8];
    fill(wn, 8, 0.1f);
    fill(wr, 8, 0.1f);
#define W(e, op) wn[(e) * 8 + (op)]
    W(0, NONE) = 0.5f, W(0, SEP3) = 0.3f, W(1, SKIP) = 0.4f;
    W(2, DIL3) = 0.25f, W(3, MAX) = 0.25f, W(4, AVG) = 0.2f;
    W(5, NONE) = 0.9f, W(6, SEP5) = 0.35f, W(7, SEP3) = 0.3f, W(7, DIL5) = 0.3f;
    W(11, AVG) = 0.3f, W(13, DIL5) = 0.6f;
#undef W
    int ops[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    dp_genotype g;
    cr_assert_eq(dp_nas_derive(wn, wr, ops, 8, &g), DP_OK, "%s", dp_errmsg());
    assert_cell(g.normal_op, g.normal_in, (int[]){SKIP, SEP3, DIL3, MAX, SEP5, SEP3, DIL5, AVG},
                (int[]){1, 0, 0, 1, 1, 2, 4, 2}, "normal");
    assert_cell(g.reduce_op, g.reduce_in, (int[]){MAX, MAX, MAX, MAX, MAX, MAX, MAX, MAX},
                (int[]){0, 1, 0, 1, 0, 1, 0, 1}, "reduce");
    cr_assert_eq(dp_genotype_check(&g), DP_OK);
    cr_assert_eq(dp_genotype_skips(&g), 1);
}

/* Columns name ops in any order; none need not be column 0. */
Test(genotype, derive_maps_columns_to_ops)
{
    int ops[3] = {SEP3, NONE, SKIP};
    float wn[14 * 3], wr[14 * 3];
    fill(wn, 3, 0.0f);
    fill(wr, 3, 0.0f);
    /* node 3, state 3 (edge 12): none 0.9, skip 0.8 -> the strongest edge with skip */
    wn[12 * 3 + 1] = 0.9f, wn[12 * 3 + 2] = 0.8f;
    /* node 3, state 0 (edge 9): sep3 0.5 */
    wn[9 * 3 + 0] = 0.5f;
    /* reduce node 0: state 1 beats state 0 */
    wr[1 * 3 + 0] = 0.7f, wr[0 * 3 + 2] = 0.6f;
    dp_genotype g;
    cr_assert_eq(dp_nas_derive(wn, wr, ops, 3, &g), DP_OK, "%s", dp_errmsg());
    cr_assert(g.normal_op[6] == SKIP && g.normal_in[6] == 3 && g.normal_op[7] == SEP3 && g.normal_in[7] == 0);
    cr_assert(g.reduce_op[0] == SEP3 && g.reduce_in[0] == 1 && g.reduce_op[1] == SKIP && g.reduce_in[1] == 0);
}

Test(genotype, derive_rejects_a_row_of_only_none)
{
    int ops[1] = {NONE};
    float w[14] = {0};
    dp_genotype g;
    cr_assert_eq(dp_nas_derive(w, w, ops, 1, &g), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "normal edge 0"), "%s", dp_errmsg());
    int bad[2] = {SEP3, 11};
    float w2[28] = {0};
    cr_assert_eq(dp_nas_derive(w2, w2, bad, 2, &g), DP_ERR_ARG);
}

/* ---- files ---- */

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

Test(genotype, json_round_trip)
{
    dp_genotype g = sample(), back;
    char path[128];
    path_of(path, sizeof path, "g.json");
    cr_assert_eq(dp_genotype_save(&g, path), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_genotype_load(path, &back), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(memcmp(&g, &back, sizeof g), 0);
    char tmp[140];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert_eq(access(tmp, F_OK), -1, "temp file left behind");
    char line[1024];
    int n = dp_genotype_format(&g, line, sizeof line);
    cr_assert_eq((size_t)n, strlen(line));
    cr_assert(strstr(line, "\"normal\":[[\"sep_conv_3x3\",0],[\"skip_connect\",1],"), "%s", line);
    cr_assert(strstr(line, "\"reduce_concat\":[2,3,4,5]"), "%s", line);
    cr_assert_null(strchr(line, '\n'));
    /* the formatted text is a genotype file too */
    FILE *f = fopen(path, "w");
    fputs(line, f);
    fclose(f);
    cr_assert_eq(dp_genotype_load(path, &back), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(memcmp(&g, &back, sizeof g), 0);
    cr_assert_eq(dp_genotype_skips(&g), 2);
}

#define PAIRS8 "[[\"sep_conv_3x3\",0],[\"skip_connect\",1],[\"dil_conv_3x3\",0],[\"max_pool_3x3\",2]," \
               "[\"avg_pool_3x3\",1],[\"sep_conv_5x5\",3],[\"skip_connect\",0],[\"dil_conv_5x5\",4]]"
#define CONCAT "[2,3,4,5]"

Test(genotype, bad_files_name_the_field)
{
    static const struct { const char *text, *expect; } cases[] = {
        {"this is not json", "not JSON"},
        {"", "not JSON"},
        {"{\"normal\":" PAIRS8 ",\"normal_concat\":" CONCAT ",\"reduce\":" PAIRS8 ",\"reduce_concat\":" CONCAT "} x",
         "trailing characters"},
        {"[1, 2]", "not an object"},
        {"{\"normal\":" PAIRS8 ",\"normal_concat\":" CONCAT ",\"reduce_concat\":" CONCAT "}", "reduce: missing key"},
        {"{\"normal\":" PAIRS8 ",\"normal_concat\":" CONCAT ",\"reduce\":" PAIRS8 ",\"reduce_concat\":" CONCAT
         ",\"extra\":1}", "extra: unknown key"},
        {"{\"normal\":[[\"sep_conv_3x3\",0]],\"normal_concat\":" CONCAT ",\"reduce\":" PAIRS8
         ",\"reduce_concat\":" CONCAT "}", "normal: 1 pairs, a cell has 8"},
        {"{\"normal\":" PAIRS8 ",\"normal_concat\":" CONCAT ",\"reduce\":" PAIRS8 ",\"reduce_concat\":[2,3,4]}",
         "reduce_concat: must be [2, 3, 4, 5]"},
        {"{\"normal\":" PAIRS8 ",\"normal_concat\":" CONCAT ",\"reduce\":{},\"reduce_concat\":" CONCAT "}",
         "reduce: is an object"},
    };
    /* one pair of the normal cell replaced */
    static const struct { int k; const char *pair, *expect; } pairs[] = {
        {0, "[\"none\",0]", "normal[0][0]: 'none' cannot be a kept edge"},
        {2, "[\"conv_7x7\",0]", "normal[2][0]: unknown op 'conv_7x7'"},
        {1, "[\"sep_conv_3x3\",1.5]", "normal[1][1]: input is not an integer"},
        {1, "[\"sep_conv_3x3\",\"1\"]", "normal[1][1]: input is not an integer"},
        {3, "[\"sep_conv_3x3\",4]", "normal[3][1]: input 4 is not an earlier state of node 1"},
        {4, "[\"sep_conv_3x3\",-1]", "normal[4][1]: input -1 is not an earlier state of node 2"},
        {5, "[\"sep_conv_3x3\"]", "normal[5]: not an [op, input] pair"},
        {6, "[3,0]", "normal[6][0]: op is a number"},
    };
    char path[128], text[2048];
    path_of(path, sizeof path, "bad.json");
    size_t ncase = sizeof cases / sizeof cases[0], npair = sizeof pairs / sizeof pairs[0];
    for (size_t i = 0; i < ncase + npair; i++) {
        const char *expect;
        if (i < ncase) {
            snprintf(text, sizeof text, "%s", cases[i].text);
            expect = cases[i].expect;
        } else {
            const char *good[8] = {"[\"sep_conv_3x3\",0]", "[\"skip_connect\",1]", "[\"dil_conv_3x3\",0]",
                                   "[\"max_pool_3x3\",2]", "[\"avg_pool_3x3\",1]", "[\"sep_conv_5x5\",3]",
                                   "[\"skip_connect\",0]", "[\"dil_conv_5x5\",4]"};
            good[pairs[i - ncase].k] = pairs[i - ncase].pair;
            int n = snprintf(text, sizeof text, "{\n  \"normal\": [");
            for (int k = 0; k < 8; k++)
                n += snprintf(text + n, sizeof text - (size_t)n, "%s%s", k ? ", " : "", good[k]);
            snprintf(text + n, sizeof text - (size_t)n,
                     "],\n  \"normal_concat\": " CONCAT ",\n  \"reduce\": " PAIRS8
                     ",\n  \"reduce_concat\": " CONCAT "\n}\n");
            expect = pairs[i - ncase].expect;
        }
        FILE *f = fopen(path, "w");
        fputs(text, f);
        fclose(f);
        dp_genotype g;
        cr_assert_eq(dp_genotype_load(path, &g), DP_ERR_FORMAT, "case %zu accepted: %s", i, text);
        cr_assert(strstr(dp_errmsg(), path), "case %zu: %s", i, dp_errmsg());
        cr_assert(strstr(dp_errmsg(), expect), "case %zu: '%s' lacks '%s'", i, dp_errmsg(), expect);
    }
    path_of(path, sizeof path, "nowhere.json");
    dp_genotype g;
    cr_assert_eq(dp_genotype_load(path, &g), DP_ERR_IO);
    cr_assert(strstr(dp_errmsg(), "nowhere.json"), "%s", dp_errmsg());
}

Test(genotype, check_and_save_refuse_bad_genotypes)
{
    dp_genotype g = sample();
    g.reduce_in[7] = 5;
    cr_assert_eq(dp_genotype_check(&g), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "reduce[7][1]: input 5 is not an earlier state of node 3"), "%s", dp_errmsg());
    char path[128];
    path_of(path, sizeof path, "refused.json");
    cr_assert_eq(dp_genotype_save(&g, path), DP_ERR_FORMAT);
    cr_assert_eq(access(path, F_OK), -1);
}

Test(genotype, dot_has_the_edges)
{
    dp_genotype g = sample();
    char path[128];
    path_of(path, sizeof path, "normal.dot");
    cr_assert_eq(dp_genotype_write_dot(&g, 0, path), DP_OK, "%s", dp_errmsg());
    const char *t = slurp(path);
    static const char *const want[] = {
        "digraph", "\"c_{k-2}\" -> \"0\" [label=\"sep_conv_3x3\"", "\"c_{k-1}\" -> \"0\" [label=\"skip_connect\"",
        "\"0\" -> \"1\" [label=\"max_pool_3x3\"", "\"1\" -> \"2\" [label=\"sep_conv_5x5\"",
        "\"2\" -> \"3\" [label=\"dil_conv_5x5\"", "\"0\" -> \"c_{k}\"", "\"3\" -> \"c_{k}\"",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(t, want[i]), "missing %s in\n%s", want[i], t);
    path_of(path, sizeof path, "reduce.dot");
    cr_assert_eq(dp_genotype_write_dot(&g, 1, path), DP_OK, "%s", dp_errmsg());
    t = slurp(path);
    cr_assert(strstr(t, "\"c_{k-2}\" -> \"3\" [label=\"max_pool_3x3\""), "%s", t);
    cr_assert(strstr(t, "\"0\" -> \"2\" [label=\"skip_connect\""), "%s", t);
}

/* ---- the derived network ---- */

static dp_model *tiny_net(float drop_path)
{
    dp_genotype g = sample();
    dp_model_shape in = {1, 8, 8, 10};
    dp_model *m = NULL;
    cr_assert_eq(dp_darts_net_build(&g, 3, 4, drop_path, &in, &m), DP_OK, "%s", dp_errmsg());
    dp_rng r;
    dp_rng_seed(&r, 7, DP_STREAM_INIT, 0);
    dp_params_init(&m->params, &r);
    return m;
}

/* layers 3 (reductions at cells 1 and 2), C 4, 1x8x8 input, 10 classes, the
 * sample genotype. Trainable parameters (BN affine: 2 per channel; DARTS
 * convs have no bias):
 *   ReLUConvBN(i, o) = i o + 2o; FactorizedReduce(i, o) = 2 (i o/2) + 2o = i o + 2o
 *   sep_conv_k(C) = 2 (k^2 C + C^2 + 2C); dil_conv_k(C) = k^2 C + C^2 + 2C
 *   pools and stride-1 skip: 0; stride-2 skip = FactorizedReduce(C, C)
 * stem: conv 1->12 3x3 = 108, BN 24                                        132
 * cell 0 (normal, C 4; inputs 12, 12): pre0 RCB(12,4) 56, pre1 RCB(12,4) 56,
 *   sep3 120 + skip 0 + dil3 60 + max 0 + avg 0 + sep5 248 + skip 0 + dil5 124 = 552   664
 * cell 1 (reduce, C 8; inputs 12, 16): pre0 RCB(12,8) 112, pre1 RCB(16,8) 144,
 *   max 0 + sep3 304 + skip/2 FR(8,8) 80 + dil3 152 + avg 0 + skip/1 0 + sep5 560 + max 0 = 1096   1352
 * cell 2 (reduce, C 16; inputs 16 at 8x8, 32 at 4x4): pre0 FR(16,16) 288, pre1 RCB(32,16) 544,
 *   sep3 864 + skip/2 288 + dil3 432 + sep5 1376 = 2960                       3792
 * classifier 64 -> 10 with bias                                              650
 * total                                                                    6590 */
Test(genotype, derived_net_shape_and_parameter_count)
{
    dp_model *m = tiny_net(0);
    cr_assert_str_eq(m->name, "darts");
    cr_assert_eq(m->params.n, 6590u);
    cr_assert_gt(m->flops_per_sample, 0);
    dp_ctx c;
    dp_ctx_init(&c);
    float x[5 * 64];
    dp_rng r;
    dp_rng_seed(&r, 3, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x, 5 * 64, -1, 1);
    for (int training = 0; training < 2; training++) {
        dp_ctx_reset(&c);
        c.training = training;
        dp_tensor *y = m->forward(m, &c, dp_tensor_wrap(&c, x, 4, (int[]){5, 1, 8, 8}));
        cr_assert_not_null(y, "%s", dp_errmsg());
        cr_assert_eq(y->ndim, 2);
        cr_assert(y->shape[0] == 5 && y->shape[1] == 10);
        for (long i = 0; i < y->n; i++) cr_assert(isfinite(y->data[i]));
    }
    dp_ctx_free(&c);
    dp_model_free(m);
}

/* 7x7 -> 4x4 -> 2x2: stride-2 ops and FactorizedReduce agree on ceil(H/2). */
Test(genotype, derived_net_on_odd_sizes)
{
    dp_genotype g = sample();
    dp_model_shape in = {2, 7, 7, 3};
    dp_model *m;
    cr_assert_eq(dp_darts_net_build(&g, 3, 2, 0, &in, &m), DP_OK, "%s", dp_errmsg());
    dp_rng r;
    dp_rng_seed(&r, 1, DP_STREAM_INIT, 0);
    dp_params_init(&m->params, &r);
    float x[3 * 2 * 49];
    dp_init_uniform(&r, x, 3 * 2 * 49, -1, 1);
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *y = m->forward(m, &c, dp_tensor_wrap(&c, x, 4, (int[]){3, 2, 7, 7}));
    cr_assert_not_null(y, "%s", dp_errmsg());
    cr_assert(y->shape[0] == 3 && y->shape[1] == 3);
    dp_ctx_free(&c);
    dp_model_free(m);
}

Test(genotype, derived_net_rejects_bad_arguments)
{
    dp_genotype g = sample();
    dp_model_shape in = {1, 8, 8, 10}, empty = {1, 0, 8, 10};
    dp_model *m;
    cr_assert_eq(dp_darts_net_build(&g, 0, 4, 0, &in, &m), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "--layers"), "%s", dp_errmsg());
    cr_assert_eq(dp_darts_net_build(&g, 3, 4, 1.5f, &in, &m), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "--drop-path"), "%s", dp_errmsg());
    cr_assert_eq(dp_darts_net_build(&g, 3, 4, 0, &empty, &m), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "1x0x8"), "%s", dp_errmsg());
    g.normal_op[2] = NONE;
    cr_assert_eq(dp_darts_net_build(&g, 3, 4, 0, &in, &m), DP_ERR_FORMAT);
    cr_assert_null(m);
}

static dp_tensor *net_eval(dp_ctx *c, dp_tensor **in, void *arg)
{
    dp_model *m = arg;
    c->training = 0;
    return m->forward(m, c, in[0]);
}

Test(genotype, derived_net_gradient_wrt_input)
{
    dp_model *m = tiny_net(0.3f); /* drop-path must be inert in eval mode */
    m->progress = 1;
    gc_input in = {.ndim = 4, .shape = {2, 1, 8, 8}, .init = gc_init_distinct};
    gc_opts o = gc_defaults();
    o.max_checks = 64;
    gc_result res;
    cr_assert(gc_check("darts_net", 1, &in, net_eval, m, &o, &res), "%s", res.worst);
    cr_assert_eq(res.checked, 64);
    dp_model_free(m);
}

static dp_tensor *net_train(dp_ctx *c, dp_tensor **in, void *arg)
{
    dp_model *m = arg;
    c->training = 1;
    return m->forward(m, c, in[0]);
}

/* Training mode: batch statistics couple the samples through every BN. Deep
 * float32 BN stacks leave the finite differences a few percent off on some
 * elements at any step size (too large: curvature; too small: rounding), so
 * this check uses a step of 1e-3 and a 10% relative tolerance (5% passes); the eval-mode
 * check above keeps the defaults. */
Test(genotype, derived_net_gradient_wrt_input_training)
{
    dp_model *m = tiny_net(0);
    gc_input in = {.ndim = 4, .shape = {4, 1, 8, 8}, .init = gc_init_distinct};
    gc_opts o = gc_defaults();
    o.max_checks = 64;
    o.h = 1e-3;
    o.rtol = 0.1;
    gc_result res;
    cr_assert(gc_check("darts_net_train", 1, &in, net_train, m, &o, &res), "%s", res.worst);
    dp_model_free(m);
}

/* Each drop-path node's output is, per sample, either zero or its input / keep. */
static void check_drop_nodes(const dp_ctx *c, float keep, int *nodes, int *dropped, int *kept)
{
    for (long t = 0; t < c->tape.len; t++) {
        const dp_node *nd = &c->tape.nodes[t];
        if (strcmp(nd->name, "drop_path")) continue;
        ++*nodes;
        const dp_tensor *x = nd->in[0], *y = nd->out;
        long per = y->n / y->shape[0];
        for (int s = 0; s < y->shape[0]; s++) {
            int zero = 1, scaled = 1;
            for (long i = s * per; i < (s + 1) * per; i++) {
                zero &= y->data[i] == 0.0f;
                scaled &= fabsf(y->data[i] - x->data[i] / keep) <= 1e-5f * (1 + fabsf(x->data[i]));
            }
            cr_assert(zero || scaled, "node %ld sample %d neither dropped nor scaled", t, s);
            if (zero && !scaled) ++*dropped;
            else ++*kept;
        }
    }
}

Test(genotype, drop_path_in_training_only)
{
    dp_model *m = tiny_net(0.5f);
    m->progress = 0.8f; /* p = 0.4 */
    float x[16 * 64];
    dp_rng r;
    dp_rng_seed(&r, 5, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x, 16 * 64, -1, 1);
    dp_ctx c;
    dp_ctx_init(&c);
    int nodes = 0, dropped = 0, kept = 0;
    dp_tensor *y = m->forward(m, &c, dp_tensor_wrap(&c, x, 4, (int[]){16, 1, 8, 8}));
    cr_assert_not_null(y, "%s", dp_errmsg());
    check_drop_nodes(&c, 0.6f, &nodes, &dropped, &kept);
    /* non-identity ops: cell 0 has 6 (two stride-1 skips), cells 1 and 2 have 7 (one stride-1 skip) */
    cr_assert_eq(nodes, 6 + 7 + 7);
    cr_assert_gt(dropped, 0);
    cr_assert_gt(kept, 0);
    double frac = (double)dropped / (dropped + kept);
    cr_assert(frac > 0.25 && frac < 0.55, "dropped fraction %.3f, p = 0.4", frac);

    /* eval: no drop-path, no draws, the same output as without drop-path */
    dp_rng before = c.dropout_rng;
    float out_p[16 * 10];
    dp_ctx_reset(&c);
    c.training = 0;
    y = m->forward(m, &c, dp_tensor_wrap(&c, x, 4, (int[]){16, 1, 8, 8}));
    memcpy(out_p, y->data, sizeof out_p);
    nodes = 0;
    check_drop_nodes(&c, 0.6f, &nodes, &dropped, &kept);
    cr_assert_eq(nodes, 0);
    cr_assert_eq(memcmp(&before, &c.dropout_rng, sizeof before), 0);
    m->progress = 0;
    dp_ctx_reset(&c);
    y = m->forward(m, &c, dp_tensor_wrap(&c, x, 4, (int[]){16, 1, 8, 8}));
    cr_assert_eq(memcmp(out_p, y->data, sizeof out_p), 0);
    dp_ctx_free(&c);
    dp_model_free(m);
}

/* ---- a cell per layer (D-DARTS) ---- */

/* layers cells drawn at random (seed), or each the sample's normal or reduction cell when shared_like */
static dp_genotype per_layer(int layers, unsigned seed, int shared_like)
{
    const int ops[DP_NAS_NUM_OPS] = {0, 1, 2, 3, 4, 5, 6, 7};
    dp_genotype g, s = sample();
    dp_rng r;
    dp_rng_seed(&r, seed, DP_STREAM_USER, 0);
    dp_nas_random_genotype(&r, ops, DP_NAS_NUM_OPS, layers, &g);
    for (int t = 0; shared_like && t < layers; t++) {
        const int red = dp_nas_layer_reduces(t, layers);
        memcpy(g.cell_op[t], dp_genotype_cops(&s, red), sizeof g.cell_op[t]);
        memcpy(g.cell_in[t], dp_genotype_cins(&s, red), sizeof g.cell_in[t]);
    }
    return g;
}

Test(genotype, per_layer_random_and_round_trip)
{
    dp_genotype g = per_layer(5, 11, 0), back, pair;
    cr_assert_eq(g.layers, 5);
    cr_assert_eq(dp_genotype_check(&g), DP_OK, "%s", dp_errmsg());
    int distinct = 0;
    for (int t = 1; t < 5; t++) distinct += memcmp(g.cell_op[t], g.cell_op[0], sizeof g.cell_op[0]) != 0;
    cr_assert_gt(distinct, 0, "five random cells all alike");
    /* the shared draw takes the same stream in the same order: its normal and reduce are cells 0 and 1 */
    const int ops[DP_NAS_NUM_OPS] = {0, 1, 2, 3, 4, 5, 6, 7};
    dp_rng r;
    dp_rng_seed(&r, 11, DP_STREAM_USER, 0);
    dp_nas_random_genotype(&r, ops, DP_NAS_NUM_OPS, 0, &pair);
    cr_assert_eq(pair.layers, 0);
    assert_cell(pair.normal_op, pair.normal_in, g.cell_op[0], g.cell_in[0], "normal");
    assert_cell(pair.reduce_op, pair.reduce_in, g.cell_op[1], g.cell_in[1], "reduce");
    char path[128], line[4096];
    path_of(path, sizeof path, "cells.json");
    cr_assert_eq(dp_genotype_save(&g, path), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_genotype_load(path, &back), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(memcmp(&g, &back, sizeof g), 0);
    cr_assert_gt(dp_genotype_format(&g, line, sizeof line), 0);
    cr_assert(strstr(line, "\"reductions\":[1,3],\"concat\":[2,3,4,5]"), "%s", line);
    cr_assert_null(strstr(line, "\"normal\""), "%s", line);
    /* the skip count: the most in one normal cell (layers 0, 2, 4), never a reduction cell's */
    memset(g.cell_op[1], 0, sizeof g.cell_op[1]);
    for (int k = 0; k < 8; k++) g.cell_op[1][k] = SKIP, g.cell_op[2][k] = k < 3 ? SKIP : SEP3;
    for (int k = 0; k < 8; k++) g.cell_op[0][k] = g.cell_op[4][k] = k < 1 ? SKIP : DIL3;
    cr_assert_eq(dp_genotype_skips(&g), 3);
}

Test(genotype, per_layer_bad_files_name_the_field)
{
    static const struct { const char *text, *expect; } cases[] = {
        {"{\"cells\":[" PAIRS8 "," PAIRS8 "," PAIRS8 "],\"reductions\":[1,2],\"concat\":" CONCAT "}", NULL},
        {"{\"cells\":[" PAIRS8 "," PAIRS8 "," PAIRS8 "],\"reductions\":[1],\"concat\":" CONCAT "}",
         "reductions: must be [1, 2] for 3 cells"},
        {"{\"cells\":[],\"reductions\":[],\"concat\":" CONCAT "}", "cells: must be an array of 1 to 20 cells"},
        {"{\"cells\":[" PAIRS8 "],\"concat\":" CONCAT "}", "reductions: missing key"},
        {"{\"cells\":[" PAIRS8 "],\"reductions\":[0],\"concat\":" CONCAT ",\"normal\":" PAIRS8 "}",
         "normal: unknown key"},
        {"{\"cells\":[" PAIRS8 ",[[\"sep_conv_3x3\",5]]],\"reductions\":[0,1],\"concat\":" CONCAT "}",
         "cells[1]: 1 pairs, a cell has 8"},
        {"{\"cells\":[" PAIRS8 ",[[\"sep_conv_3x3\",0],[\"none\",1],[\"dil_conv_3x3\",0],[\"max_pool_3x3\",2],"
         "[\"avg_pool_3x3\",1],[\"sep_conv_5x5\",3],[\"skip_connect\",0],[\"dil_conv_5x5\",4]]],"
         "\"reductions\":[0,1],\"concat\":" CONCAT "}", "cells[1][1][0]: 'none' cannot be a kept edge"},
        {"{\"cells\":[" PAIRS8 "],\"reductions\":[0],\"concat\":[2,3]}", "concat: must be [2, 3, 4, 5]"},
    };
    char path[128];
    path_of(path, sizeof path, "cells-bad.json");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *f = fopen(path, "w");
        fputs(cases[i].text, f);
        fclose(f);
        dp_genotype g;
        dp_status rc = dp_genotype_load(path, &g);
        if (!cases[i].expect) {
            cr_assert_eq(rc, DP_OK, "case %zu: %s", i, dp_errmsg());
            cr_assert_eq(g.layers, 3);
            continue;
        }
        cr_assert_eq(rc, DP_ERR_FORMAT, "case %zu accepted", i);
        cr_assert(strstr(dp_errmsg(), path), "case %zu: %s", i, dp_errmsg());
        cr_assert(strstr(dp_errmsg(), cases[i].expect), "case %zu: '%s' lacks '%s'", i, dp_errmsg(), cases[i].expect);
    }
    dp_genotype g = per_layer(3, 4, 0);
    g.layers = DP_NAS_MAX_CELLS + 1;
    cr_assert_eq(dp_genotype_check(&g), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "cells: 21 of them"), "%s", dp_errmsg());
}

/* A searched network's cells stretched over a deeper one stage by stage (reductions to reductions), and a
 * stage with no searched normal cell refused by the network, naming the layer. */
Test(genotype, per_layer_cells_of_a_deeper_network)
{
    dp_genotype g = per_layer(5, 2, 0); /* normal 0, reduce 1, normal 2, reduce 3, normal 4 */
    static const int want8[8] = {0, 0, 1, 2, 2, 3, 4, 4}, want5[5] = {0, 1, 2, 3, 4}, want3[3] = {0, 1, 3};
    for (int i = 0; i < 8; i++) cr_assert_eq(dp_genotype_layer_cell(&g, i, 8), want8[i], "layer %d of 8", i);
    for (int i = 0; i < 5; i++) cr_assert_eq(dp_genotype_layer_cell(&g, i, 5), want5[i], "layer %d of 5", i);
    for (int i = 0; i < 3; i++) cr_assert_eq(dp_genotype_layer_cell(&g, i, 3), want3[i], "layer %d of 3", i);
    dp_genotype s = sample();
    for (int i = 0; i < 8; i++) cr_assert_eq(dp_genotype_layer_cell(&s, i, 8), dp_nas_layer_reduces(i, 8));
    dp_genotype three = per_layer(3, 2, 0); /* normal 0, reduce 1, reduce 2: no normal cell between them */
    dp_model_shape in = {1, 8, 8, 10};
    dp_model *m = NULL;
    cr_assert_eq(dp_genotype_layer_cell(&three, 2, 5), -1);
    cr_assert_eq(dp_darts_net_build(&three, 5, 4, 0, &in, &m), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "--layers 5: layer 2 has no cell"), "%s", dp_errmsg());
    cr_assert_eq(dp_darts_net_build(&g, 8, 4, 0, &in, &m), DP_OK, "%s", dp_errmsg());
    dp_model_free(m);
}

/* Cells per layer that copy the shared pair build the shared network: the same parameters, FLOPs and, from
 * the same initialisation, the same logits. Other cells per layer change them, by the cells' own counts. */
Test(genotype, per_layer_net_equals_the_shared_one_with_its_cells)
{
    dp_genotype s = sample(), g = per_layer(5, 3, 1), other = per_layer(5, 3, 0);
    dp_model_shape in = {1, 8, 8, 10};
    dp_model *m[3] = {NULL, NULL, NULL};
    cr_assert_eq(dp_darts_net_build(&s, 5, 4, 0, &in, &m[0]), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_darts_net_build(&g, 5, 4, 0, &in, &m[1]), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_darts_net_build(&other, 5, 4, 0, &in, &m[2]), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(m[0]->params.n, m[1]->params.n);
    cr_assert_eq(m[0]->flops_per_sample, m[1]->flops_per_sample);
    cr_assert(m[2]->params.n != m[0]->params.n || m[2]->flops_per_sample != m[0]->flops_per_sample,
              "random cells per layer built the sample's network");
    float x[4 * 64];
    dp_rng r;
    dp_rng_seed(&r, 3, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x, 4 * 64, -1, 1);
    float *out[2];
    dp_ctx c[2];
    for (int k = 0; k < 2; k++) {
        dp_rng_seed(&r, 7, DP_STREAM_INIT, 0);
        dp_params_init(&m[k]->params, &r);
        dp_ctx_init(&c[k]);
        c[k].training = 1;
        dp_tensor *y = m[k]->forward(m[k], &c[k], dp_tensor_wrap(&c[k], x, 4, (int[]){4, 1, 8, 8}));
        cr_assert_not_null(y, "%s", dp_errmsg());
        out[k] = y->data;
    }
    cr_assert_eq(memcmp(out[0], out[1], 4 * 10 * sizeof(float)), 0, "the same cells, other logits");
    for (int k = 0; k < 3; k++) {
        if (k < 2) dp_ctx_free(&c[k]);
        dp_model_free(m[k]);
    }
}
