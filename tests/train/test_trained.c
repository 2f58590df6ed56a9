/* A trained run out of its run directory (dptrain/trained.h): the model a
 * checkpoint rebuilds holds the bits the training run ended with; the
 * configuration text reads back to the configuration that wrote it; a missing
 * or damaged checkpoint is refused naming the file, or passed over for the
 * older one kept. Also --augment: deterministic and resumed bit-exactly. */
#include <criterion/criterion.h>
#include "timeout.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dptrain/checkpoint.h"
#include "dptrain/data.h"
#include "dptrain/trained.h"
#include "test_data_util.h"

#define IDX_DIR "/usr/share/datasets/fashion-mnist"

static char tmp[256], shards[300];

static void setup(void)
{
    td_tmpdir(tmp, sizeof tmp);
    snprintf(shards, sizeof shards, "%s/fmnist", tmp);
    cr_assert_eq(dp_import_fashion_mnist(IDX_DIR, shards, 4, NULL), DP_OK, "import: %s", dp_errmsg());
}

static void teardown(void) { td_rmtree(tmp); }

TestSuite(trained, .init = setup, .fini = teardown, .timeout = DP_TIMEOUT(300));

static dp_train_config tiny(const char *model, const char *out, long limit)
{
    dp_train_config cfg;
    dp_train_config_defaults(&cfg);
    snprintf(cfg.run.data, sizeof cfg.run.data, "%s", shards);
    snprintf(cfg.model, sizeof cfg.model, "%s", model);
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s/%s", tmp, out);
    cfg.run.limit = limit;
    cfg.test_limit = 100;
    cfg.run.quiet = 1;
    return cfg;
}

static void train_ok(const dp_train_config *cfg, dp_train_result *res)
{
    cr_assert_eq(dp_train_run(cfg, MPI_COMM_NULL, res), DP_OK, "%s", dp_errmsg());
}

static void expect_loaded(const dp_train_config *cfg, const dp_train_result *res, const char *name)
{
    dp_trained t;
    cr_assert_eq(dp_trained_load(cfg->run.out, &t), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_params_hash(&t.model->params), res->params_hash, "%s: loaded parameters differ", name);
    cr_assert_str_eq(t.data, shards);
    cr_assert_eq(t.shape.c, 1);
    cr_assert_eq(t.shape.h, 28);
    cr_assert_eq(t.shape.classes, 10);
    cr_assert_eq(t.cfg.run.seed, cfg->run.seed);
    cr_assert_eq(t.cfg.lr, cfg->lr);
    dp_trained_free(&t);
}

Test(trained, mlp_and_cnn_load_with_the_bits_train_ended_with)
{
    dp_train_result res;
    dp_train_config cfg = tiny("mlp", "mlp", 256);
    train_ok(&cfg, &res);
    expect_loaded(&cfg, &res, "mlp");
    cfg = tiny("cnn", "cnn", 128); /* batch-norm buffers too */
    cfg.run.seed = 9;
    cfg.lr = 0.02f;
    train_ok(&cfg, &res);
    expect_loaded(&cfg, &res, "cnn");
}

Test(trained, a_genotype_network_loads_from_the_checkpoint_alone)
{
    char arch[300];
    td_path(arch, sizeof arch, tmp, "arch.json");
    FILE *f = fopen(arch, "w");
    cr_assert_not_null(f);
    fputs("{\"normal\": [[\"sep_conv_3x3\", 0], [\"skip_connect\", 1], [\"dil_conv_3x3\", 0], [\"max_pool_3x3\", 2], "
          "[\"avg_pool_3x3\", 1], [\"sep_conv_5x5\", 3], [\"skip_connect\", 0], [\"dil_conv_5x5\", 4]], "
          "\"normal_concat\": [2, 3, 4, 5], \"reduce\": [[\"max_pool_3x3\", 0], [\"sep_conv_3x3\", 1], "
          "[\"skip_connect\", 0], [\"dil_conv_3x3\", 2], [\"avg_pool_3x3\", 1], [\"skip_connect\", 2], "
          "[\"sep_conv_5x5\", 3], [\"max_pool_3x3\", 0]], \"reduce_concat\": [2, 3, 4, 5]}\n", f);
    fclose(f);
    dp_train_config cfg = tiny("cnn", "arch", 64);
    snprintf(cfg.arch, sizeof cfg.arch, "%s", arch);
    cfg.layers = 3;
    cfg.channels = 4;
    cfg.run.batch = 32;
    dp_train_result res;
    train_ok(&cfg, &res);
    cr_assert_eq(unlink(arch), 0); /* the checkpoint holds the cell, not the path */
    expect_loaded(&cfg, &res, "arch");
}

Test(trained, configuration_text_reads_back_to_the_same_text)
{
    dp_train_config a, b;
    dp_train_config_defaults(&a);
    a.run.epochs = 7, a.run.batch = 33, a.lr = 0.123f, a.opt = dp_opt_defaults(DP_OPT_ADAMW);
    a.schedule = DP_SCHED_COSINE, a.run.seed = 123456789012345ull, a.run.sampler = 1;
    a.run.allreduce = DP_ALLREDUCE_MPI, a.run.on_nonfinite = DP_NONFINITE_SKIP, a.augment = 1, a.crop_pad = 2;
    a.cutout = 8, a.run.watchdog_s = 12.5, a.clip = 0.75f;
    cr_assert_eq(dp_compress_parse("topk:0.25", &a.run.codec), DP_OK);
    a.run.codec.dgc_momentum = 0.9f;
    snprintf(a.run.data, sizeof a.run.data, "some/data dir");
    char ta[4096], tb[4096];
    dp_train_config_format(&a, ta, sizeof ta);
    cr_assert_eq(dp_train_config_parse(ta, "text", &b), DP_OK, "%s", dp_errmsg());
    dp_train_config_format(&b, tb, sizeof tb);
    cr_assert_str_eq(tb, ta);
    cr_assert_eq(b.run.seed, a.run.seed);

    cr_assert_eq(dp_train_config_parse("model=mlp\nlr=fast\n", "ck.dpc", &b), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "ck.dpc: configuration line 2: lr=fast"), "%s", dp_errmsg());
    cr_assert_eq(dp_train_config_parse("model=mlp\noptimizer=rmsprop\n", "ck.dpc", &b), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "optimizer=rmsprop"), "%s", dp_errmsg());
    cr_assert_eq(dp_train_config_parse("model=mlp\njunk\n", "ck.dpc", &b), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "line 2: no '='"), "%s", dp_errmsg());
}

Test(trained, missing_and_damaged_checkpoints_are_named)
{
    dp_trained t;
    char dir[400], ck[600], older[610];
    td_path(dir, sizeof dir, tmp, "nowhere");
    cr_assert_eq(dp_trained_load(dir, &t), DP_ERR_IO);
    cr_assert(strstr(dp_errmsg(), "nowhere: run directory"), "%s", dp_errmsg());
    td_path(dir, sizeof dir, tmp, "empty");
    cr_assert_eq(mkdir(dir, 0755), 0);
    cr_assert_eq(dp_trained_load(dir, &t), DP_ERR_IO);
    cr_assert(strstr(dp_errmsg(), "no checkpoint in the run directory"), "%s", dp_errmsg());

    /* two epochs, two checkpoints kept: a damaged newest one falls back to .1 (epoch 1) */
    dp_train_config cfg = tiny("mlp", "damaged", 128);
    cfg.run.epochs = 2;
    dp_train_result res;
    train_ok(&cfg, &res);
    snprintf(ck, sizeof ck, "%s/checkpoint.dpc", cfg.run.out);
    snprintf(older, sizeof older, "%s.1", ck);
    td_flip(ck, 100, 0x10);
    cr_assert_eq(dp_trained_load(cfg.run.out, &t), DP_OK, "%s", dp_errmsg());
    cr_assert_neq(dp_params_hash(&t.model->params), res.params_hash, "the epoch-1 checkpoint has other bits");
    dp_trained_free(&t);
    td_flip(older, 60, 0x01);
    cr_assert_eq(dp_trained_load(cfg.run.out, &t), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "checkpoint.dpc: offset"), "%s", dp_errmsg());
}
