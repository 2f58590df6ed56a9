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
#include "dptrain/image_task.h"
#include "dptrain/rng.h"
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

/* A synthetic data set in tmp/name: one train and one test shard of c x h x w images, `classes` labels. */
static void make_set(char *dir, size_t cap, const char *name, int c, int h, int w, int classes, long n)
{
    td_path(dir, cap, tmp, name);
    cr_assert_eq(mkdir(dir, 0755), 0, "%s", dir);
    dp_manifest m = {0};
    dp_manifest_shard sh[2];
    snprintf(m.name, sizeof m.name, "%s", name);
    m.schema = dp_shard_schema_image((uint32_t)c, (uint32_t)h, (uint32_t)w, (uint32_t)classes);
    m.shards = sh;
    for (int i = 0; i < 2; i++) {
        dp_manifest_shard *ms = &m.shards[m.nshards++];
        snprintf(ms->split, sizeof ms->split, "%s", i ? "test" : "train");
        snprintf(ms->file, sizeof ms->file, "%s-00000.dps", ms->split);
        char path[600];
        td_path(path, sizeof path, dir, ms->file);
        dp_shard_info info = td_write_images(path, &m.schema, 0, n, 0);
        ms->records = info.record_count;
        ms->crc32 = info.payload_crc32;
    }
    cr_assert_eq(dp_manifest_save(dir, &m), DP_OK, "%s", dp_errmsg());
}

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
    /* the statistics training normalised with: the manifest's */
    cr_assert(t.mean && t.std, "%s: no norm= in the checkpoint", name);
    cr_assert_eq(t.mean[0], 0.286f);
    cr_assert_eq(t.std[0], 0.353f);
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

/* tmp/name holding text names the network of cfg (made by set_up from the path): the run it trains loads
 * with the same bits once the file is gone, since the checkpoint holds its content. */
static void trains_and_loads_without(const char *name, const char *text, dp_train_config *cfg,
                                     void (*set_up)(dp_train_config *cfg, const char *path))
{
    char path[300];
    td_path(path, sizeof path, tmp, name);
    td_write(path, text, strlen(text));
    set_up(cfg, path);
    dp_train_result res;
    train_ok(cfg, &res);
    cr_assert_eq(unlink(path), 0);
    expect_loaded(cfg, &res, name);
}

static void genotype_net(dp_train_config *cfg, const char *path)
{
    *cfg = tiny("cnn", "arch", 64);
    snprintf(cfg->arch, sizeof cfg->arch, "%s", path);
    cfg->layers = 3;
    cfg->channels = 4;
    cfg->run.batch = 32;
}

static void description_net(dp_train_config *cfg, const char *path) { *cfg = tiny(path, "desc", 128); }

Test(trained, a_genotype_network_loads_from_the_checkpoint_alone)
{
    dp_train_config cfg;
    trains_and_loads_without("arch.json",
        "{\"normal\": [[\"sep_conv_3x3\", 0], [\"skip_connect\", 1], [\"dil_conv_3x3\", 0], [\"max_pool_3x3\", 2], "
        "[\"avg_pool_3x3\", 1], [\"sep_conv_5x5\", 3], [\"skip_connect\", 0], [\"dil_conv_5x5\", 4]], "
        "\"normal_concat\": [2, 3, 4, 5], \"reduce\": [[\"max_pool_3x3\", 0], [\"sep_conv_3x3\", 1], "
        "[\"skip_connect\", 0], [\"dil_conv_3x3\", 2], [\"avg_pool_3x3\", 1], [\"skip_connect\", 2], "
        "[\"sep_conv_5x5\", 3], [\"max_pool_3x3\", 0]], \"reduce_concat\": [2, 3, 4, 5]}\n", &cfg, genotype_net);
}

/* A description from a file (conv, batch norm, global pool, linear). */
Test(trained, a_description_file_network_loads_from_the_checkpoint_alone)
{
    dp_train_config cfg;
    trains_and_loads_without("small.json",
        "{\"name\": \"small\", \"layers\": [{\"type\": \"conv\", \"name\": \"c\", \"out\": 4, \"padding\": 1},"
        " {\"type\": \"batchnorm\", \"name\": \"bn\"}, {\"type\": \"relu\"}, {\"type\": \"global_avgpool\"},"
        " {\"type\": \"linear\", \"name\": \"fc\", \"out\": \"classes\"}]}\n", &cfg, description_net);
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
    /* auto and its table (allreduce_table=) read back too */
    a.run.allreduce = DP_ALLREDUCE_AUTO;
    snprintf(a.run.allreduce_table, sizeof a.run.allreduce_table, "tables/ar 2.txt");
    dp_train_config_format(&a, ta, sizeof ta);
    cr_assert_eq(dp_train_config_parse(ta, "text", &b), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(b.run.allreduce, DP_ALLREDUCE_AUTO);
    cr_assert_str_eq(b.run.allreduce_table, "tables/ar 2.txt");
    /* cosine power annealing and its exponent order */
    a.schedule = DP_SCHED_COSPOW, a.lr_power = 4.5f;
    dp_train_config_format(&a, ta, sizeof ta);
    cr_assert_eq(dp_train_config_parse(ta, "text", &b), DP_OK, "%s", dp_errmsg());
    cr_assert(b.schedule == DP_SCHED_COSPOW && b.lr_power == 4.5f, "schedule %d, lr_power %g", (int)b.schedule,
              (double)b.lr_power);

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

/* ------------------------------------------------------------ --augment */

/* Every augmented image is one of the 2 (2p+1)^2 crops-and-flips of its input (pixel values are unique,
 * so the match is unambiguous), and over many draws every one of them turns up. */
Test(trained, crop_flip_yields_each_padded_crop_and_mirror)
{
    enum { H = 5, W = 4, P = 2, N = 2000, NCAND = 2 * (2 * P + 1) * (2 * P + 1) };
    static float x[N][2][H][W];
    float scratch[2 * H * W], fill[2] = {-7.0f, -8.0f};
    for (int i = 0; i < N; i++)
        for (int c = 0; c < 2; c++)
            for (int y = 0; y < H; y++)
                for (int k = 0; k < W; k++) x[i][c][y][k] = (float)(100 * c + 10 * y + k);
    dp_rng r;
    dp_rng_seed(&r, 5, DP_STREAM_DROPOUT, 0);
    dp_image_crop_flip(&x[0][0][0][0], N, 2, H, W, P, fill, &r, scratch);
    int seen[NCAND] = {0};
    for (int i = 0; i < N; i++) {
        int found = -1;
        for (int cand = 0; cand < NCAND && found < 0; cand++) {
            int flip = cand & 1, dy = (cand >> 1) / (2 * P + 1) - P, dx = (cand >> 1) % (2 * P + 1) - P, ok = 1;
            for (int c = 0; c < 2; c++)
                for (int y = 0; y < H; y++)
                    for (int k = 0; k < W; k++) {
                        int sy = y + dy, sx = (flip ? W - 1 - k : k) + dx;
                        float want = sy >= 0 && sy < H && sx >= 0 && sx < W ? (float)(100 * c + 10 * sy + sx) : fill[c];
                        ok &= x[i][c][y][k] == want;
                    }
            if (ok) found = cand;
        }
        cr_assert_geq(found, 0, "image %d is no crop-and-flip of its input", i);
        seen[found]++;
    }
    for (int cand = 0; cand < NCAND; cand++)
        cr_assert_gt(seen[cand], N / NCAND / 3, "crop/flip %d drawn %d times of %d", cand, seen[cand], N);
}

/* --augment changes the bits, is the same for the same seed, and a run stopped mid-epoch and resumed
 * ends with the bits of one never stopped (the draws come from the checkpointed dropout stream). */
Test(trained, augment_is_deterministic_and_resumes_bit_identical)
{
    dp_train_result plain, full, again, part, rest;
    dp_train_config cfg = tiny("cnn", "aug-plain", 320); /* 5 steps per epoch */
    cfg.run.epochs = 2;
    train_ok(&cfg, &plain);
    cfg = tiny("cnn", "aug-full", 320);
    cfg.run.epochs = 2;
    cfg.augment = 1;
    cfg.cutout = 6;
    train_ok(&cfg, &full);
    cr_assert_neq(full.params_hash, plain.params_hash, "--augment changed nothing");
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s/aug-again", tmp);
    train_ok(&cfg, &again);
    cr_assert_eq(again.params_hash, full.params_hash, "--augment is not deterministic per seed");
    snprintf(cfg.run.out, sizeof cfg.run.out, "%s/aug-parts", tmp);
    cfg.run.stop_after = 7;
    train_ok(&cfg, &part);
    cr_assert(part.stopped_early);
    cfg.run.stop_after = 0;
    cfg.run.resume = 1;
    cfg.crop_pad = 3; /* the arithmetic of a step: a resume must keep it */
    cr_assert_eq(dp_train_run(&cfg, MPI_COMM_NULL, &rest), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "'crop_pad' differs"), "%s", dp_errmsg());
    cfg.crop_pad = 4;
    train_ok(&cfg, &rest);
    cr_assert_eq(rest.params_hash, full.params_hash, "resumed --augment run ended with other bits");
}

Test(trained, augment_refuses_vectors_and_bad_pads)
{
    dp_train_config cfg = tiny("mlp", "aug-bad", 64);
    cfg.augment = 1;
    cfg.crop_pad = 65;
    dp_train_result res;
    cr_assert_eq(dp_train_run(&cfg, MPI_COMM_NULL, &res), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "--crop-pad: 65"), "%s", dp_errmsg());
    cfg.crop_pad = 4;
    make_set(cfg.run.data, sizeof cfg.run.data, "vectors", 12, 1, 1, 3, 40);
    cr_assert_neq(dp_train_run(&cfg, MPI_COMM_NULL, &res), DP_OK);
    cr_assert(strstr(dp_errmsg(), "--augment:") && strstr(dp_errmsg(), "vectors (1x1 images of 12 features)"), "%s",
              dp_errmsg());
}

/* ------------------------------------------------------------ evaluation */

/* The run's own test images give the figures its last epoch reported; the matrix adds up. */
Test(trained, evaluate_gives_the_final_figures_of_training)
{
    dp_train_config cfg = tiny("cnn", "eval", 256);
    cfg.test_limit = 300;
    dp_train_result res;
    train_ok(&cfg, &res);
    dp_trained t;
    cr_assert_eq(dp_trained_load(cfg.run.out, &t), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_trained_check_data(&t, shards), DP_OK, "%s", dp_errmsg());
    dp_sync sync;
    static const dp_params none;
    dp_sync_opts so = {.algo = DP_ALLREDUCE_RING, .bucket_bytes = 1u << 20};
    cr_assert_eq(dp_sync_init(&sync, MPI_COMM_NULL, &none, &so), DP_OK);
    dp_eval_result r;
    cr_assert_eq(dp_trained_evaluate(&t, shards, "test", 300, 64, &sync, &r), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(r.n, 300);
    cr_assert_eq(r.acc, res.test_acc, "eval %.6f, train reported %.6f", r.acc, res.test_acc);
    cr_assert_float_eq(r.loss, res.test_loss, 1e-6);
    double all = 0, diag = 0;
    for (int k = 0; k < 10; k++)
        for (int j = 0; j < 10; j++) all += r.confusion[k * 10 + j], diag += k == j ? r.confusion[k * 10 + j] : 0;
    cr_assert_eq(all, 300);
    cr_assert_eq(diag, r.acc * 300);
    dp_eval_result_free(&r);
    cr_assert_eq(dp_trained_evaluate(&t, shards, "valid", 0, 64, &sync, &r), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "valid"), "%s", dp_errmsg());

    /* data of another shape, or other classes, than the model's */
    char dir[400];
    make_set(dir, sizeof dir, "rgb", 3, 28, 28, 10, 20);
    cr_assert_eq(dp_trained_check_data(&t, dir), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "rgb: images are 3x28x28 (CxHxW), the run's model takes 1x28x28"), "%s", dp_errmsg());
    make_set(dir, sizeof dir, "seven", 1, 28, 28, 7, 20);
    cr_assert_eq(dp_trained_check_data(&t, dir), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "seven: 7 classes, the run's model has 10"), "%s", dp_errmsg());
    make_set(dir, sizeof dir, "same", 1, 28, 28, 10, 20); /* another data set that fits: evaluated */
    cr_assert_eq(dp_trained_check_data(&t, dir), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(dp_trained_evaluate(&t, dir, "test", 0, 8, &sync, &r), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(r.n, 20);
    dp_eval_result_free(&r);
    dp_sync_free(&sync);
    dp_trained_free(&t);
}

/* Evaluation forwards b.eval_slice images at a time: any slice gives the loss, accuracy and confusion of one
 * forward over the whole evaluation batch, bit for bit, and a small slice keeps the arena small. */
Test(trained, evaluation_slices_give_the_whole_batch_figures)
{
    dp_train_config cfg = tiny("cnn", "slices", 256);
    dp_train_result res;
    train_ok(&cfg, &res);
    dp_trained t;
    cr_assert_eq(dp_trained_load(cfg.run.out, &t), DP_OK, "%s", dp_errmsg());
    dp_sync sync;
    static const dp_params none;
    dp_sync_opts so = {.algo = DP_ALLREDUCE_RING, .bucket_bytes = 1u << 20};
    cr_assert_eq(dp_sync_init(&sync, MPI_COMM_NULL, &none, &so), DP_OK);
    dp_trained_data d;
    cr_assert_eq(dp_trained_data_open(&t, shards, "test", 0, 1, 250, 250, &d), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(d.b.eval_slice, DP_EVAL_SLICE, "slice %d", d.b.eval_slice);
    const int slices[] = {250, DP_EVAL_SLICE, 7, 1};
    double loss[4], acc[4], conf[4][100];
    size_t arena[4];
    for (int i = 0; i < 4; i++) {
        d.b.eval_slice = slices[i];
        dp_ctx_free(&d.ctx);
        dp_ctx_init(&d.ctx);
        memset(conf[i], 0, sizeof conf[i]);
        cr_assert_eq(dp_image_evaluate_confusion(&d.b, &d.ctx, t.model, &d.set, 0, d.set.n, 250, &sync, conf[i],
                                                 &loss[i], &acc[i]),
                     DP_OK, "%s", dp_errmsg());
        arena[i] = d.ctx.arena.high_water;
    }
    for (int i = 1; i < 4; i++) {
        cr_assert_eq(memcmp(&loss[i], &loss[0], sizeof loss[0]), 0, "slice %d: loss %.9g, whole batch %.9g", slices[i],
                     loss[i], loss[0]);
        cr_assert_eq(acc[i], acc[0], "slice %d: accuracy %.6f, whole batch %.6f", slices[i], acc[i], acc[0]);
        cr_assert_eq(memcmp(conf[i], conf[0], sizeof conf[0]), 0, "slice %d: another confusion matrix", slices[i]);
        cr_assert_lt(arena[i], arena[0], "slice %d: arena %zu bytes, whole batch %zu", slices[i], arena[i], arena[0]);
    }
    dp_trained_data_close(&d);
    dp_sync_free(&sync);
    dp_trained_free(&t);
}
