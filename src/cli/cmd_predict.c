/* `dptrain predict`: a run's checkpoint -> for each input (an image of a shard
 * set's split, or an image file), one JSON line with the top-k classes and
 * their probabilities (softmax of the logits, eval mode), and with --logits
 * the logits themselves (%.9g: enough digits to compare with another framework). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/trained_cli.h"
#include "dptrain/image_task.h"
#include "dptrain/trained.h"

static const char header[] =
    "usage: dptrain predict --run DIR [--top K] [--logits] (--data DIR [--split S] [--limit N] | FILE...)\n"
    "\n"
    "The model of a run's newest checkpoint, in eval mode, on each image of a split of a shard\n"
    "set (normalised as training normalised it): one JSON line per image,\n"
    "  {\"index\":I,\"label\":Y,\"top\":[{\"class\":K,\"name\":\"N\",\"p\":P},...]}\n"
    "with the K most probable classes (softmax of the logits), and \"logits\":[...] with --logits.\n"
    "\n";

static const dp_cli_opt o_split = {.name = "split", .arg = "NAME", .help = "--data: the split", .kind = DP_CLI_STR,
                                   .cap = 16, .show_default = 1};
static const dp_cli_opt o_limit = {.name = "limit", .arg = "N", .help = "--data: the first N images only, 0 = all",
                                   .kind = DP_CLI_LONG, .lo = 0, .hi = 0x1p40, .show_default = 1};
static const dp_cli_opt o_top = {.name = "top", .arg = "K", .help = "classes per input, at most the model's classes",
                                 .kind = DP_CLI_INT, .lo = -0x1p30, .hi = 0x1p30, .show_default = 1};
static const dp_cli_opt o_logits = {.name = "logits", .help = "also print each input's logits", .kind = DP_CLI_ON};

static dp_trained_cli tc;
static char split[16];
static long limit;
static int top, logits;
static int nfiles;
static char **files;

static const dp_cli_bind binds[] = {
    DP_CLI_BIND(dp_trained_cli_run, tc.run),
    DP_CLI_BIND(dp_trained_cli_data, tc.data),
    DP_CLI_BIND(o_split, split),
    DP_CLI_BIND(o_limit, limit),
    DP_CLI_BIND(o_top, top),
    DP_CLI_BIND(o_logits, logits),
    DP_CLI_BIND(dp_cli_eval_batch, tc.eval_batch),
    DP_CLI_BIND(dp_cli_threads, tc.threads),
    DP_CLI_END,
};

static void defaults(void)
{
    dp_trained_cli_defaults(&tc);
    snprintf(split, sizeof split, "test");
    limit = 0;
    top = 5;
    logits = 0;
}

static dp_status operands(int n, char **args)
{
    nfiles = n;
    files = args;
    return DP_OK;
}

static dp_status check(int ranks)
{
    (void)ranks;
    dp_status rc = dp_trained_cli_check(&tc);
    if (rc != DP_OK) return rc;
    DP_CHECK(top >= 1, "--top: %d must be >= 1", top);
    DP_CHECK(tc.data[0] || nfiles, "name the inputs: --data DIR (a shard set) or image FILEs");
    DP_CHECK(!(tc.data[0] && nfiles), "--data DIR and image FILEs (%s ...) exclude each other", nfiles ? files[0] : "");
    for (int i = 0; i < nfiles; i++)
        if (access(files[i], R_OK) != 0) return dp_errorf(DP_ERR_IO, "%s: %s", files[i], strerror(errno));
    /* IMGTAB: image files need the PNG/JPEG decoder of branch `imgtab`; until it lands they are refused */
    DP_CHECK(!nfiles, "%s: image files need the PNG/JPEG decoder, which this build lacks: shard them and use --data",
             files[0]);
    return DP_OK;
}

/* ------------------------------------------------------------ one input's line */

static int *order; /* [classes]: class indices by falling probability */
static double *prob;

static void print_line(const dp_trained *t, char (*names)[DP_CLASS_NAME_MAX], const float *z, long index, int label)
{
    int nc = t->shape.classes;
    double mx = z[0], sum = 0;
    for (int k = 1; k < nc; k++) mx = z[k] > mx ? z[k] : mx;
    for (int k = 0; k < nc; k++) sum += prob[k] = exp((double)z[k] - mx);
    for (int k = 0; k < nc; k++) prob[k] /= sum;
    /* the K best by a partial selection; ties keep the lower index first */
    for (int k = 0; k < nc; k++) order[k] = k;
    for (int i = 0; i < top; i++) {
        int best = i;
        for (int k = i + 1; k < nc; k++)
            if (prob[order[k]] > prob[order[best]] ||
                (prob[order[k]] == prob[order[best]] && order[k] < order[best]))
                best = k;
        int tmp = order[i];
        order[i] = order[best];
        order[best] = tmp;
    }
    printf("{\"index\":%ld,\"label\":%d,\"top\":[", index, label);
    for (int i = 0; i < top; i++) {
        printf("%s{\"class\":%d,\"name\":", i ? "," : "", order[i]);
        dp_json_string(stdout, names[order[i]]);
        printf(",\"p\":%.6g}", prob[order[i]]);
    }
    printf("]");
    if (logits) {
        printf(",\"logits\":[");
        for (int k = 0; k < nc; k++) printf("%s%.9g", k ? "," : "", (double)z[k]);
        printf("]");
    }
    printf("}\n");
}

/* ------------------------------------------------------------ the shard set's images */

static dp_status predict_set(dp_trained *t, char (*names)[DP_CLASS_NAME_MAX])
{
    dp_image_set set;
    dp_image_batch b;
    dp_ctx ctx;
    memset(&set, 0, sizeof set);
    memset(&b, 0, sizeof b);
    dp_ctx_init(&ctx);
    dp_run_config run;
    dp_run_config_defaults(&run);
    run.batch = run.eval_batch = tc.eval_batch;
    dp_status rc = dp_image_set_load(tc.data, split, 0, 1, limit, &set);
    if (rc == DP_OK) rc = dp_image_batch_init(&b, &set, &run);
    ctx.training = 0;
    ctx.grad_enabled = 0;
    for (long first = 0; rc == DP_OK && first < set.n; first += tc.eval_batch) {
        long bs = set.n - first < tc.eval_batch ? set.n - first : tc.eval_batch;
        dp_ctx_reset(&ctx);
        dp_tensor *z = t->model->forward(t->model, &ctx, dp_image_batch_get(&b, &ctx, &set, NULL, first, bs));
        if (!z) {
            rc = ctx.status ? ctx.status : dp_errorf(DP_ERR_SHAPE, "%s: forward failed", tc.run);
            break;
        }
        for (long i = 0; i < bs; i++)
            print_line(t, names, z->data + (size_t)i * (size_t)t->shape.classes, first + i, b.y[i]);
    }
    dp_image_set_free(&set);
    dp_image_batch_free(&b);
    dp_ctx_free(&ctx);
    return rc;
}

static dp_status run(MPI_Comm comm, int rank)
{
    (void)comm;
    if (rank != 0) return DP_OK; /* rank 0 predicts; main() gives every rank its exit code */
    dp_sync sync;
    dp_trained t;
    char(*names)[DP_CLASS_NAME_MAX] = NULL;
    dp_status rc = dp_trained_cli_open(&tc, MPI_COMM_NULL, 1, &sync, &t);
    int nc = t.shape.classes;
    if (rc == DP_OK && top > nc)
        rc = dp_errorf(DP_ERR_ARG, "--top: %d is out of range [1, %d] (the classes of %s's model)", top, nc, tc.run);
    if (rc == DP_OK) {
        names = calloc((size_t)nc, DP_CLASS_NAME_MAX);
        order = malloc((size_t)nc * sizeof *order);
        prob = malloc((size_t)nc * sizeof *prob);
        if (!names || !order || !prob) rc = dp_errorf(DP_ERR_NOMEM, "out of memory");
    }
    if (rc == DP_OK) {
        dp_trained_class_names(tc.data, nc, names);
        rc = predict_set(&t, names);
    }
    free(names);
    free(order);
    free(prob);
    dp_sync_free(&sync);
    dp_trained_free(&t);
    return rc;
}

static const dp_cli_command predict = {.name = "predict", .header = header, .binds = binds, .defaults = defaults,
                                       .operands = operands, .check = check, .run = run};

int dp_cmd_predict(int argc, char **argv, MPI_Comm comm) { return dp_cli_run(&predict, argc, argv, comm); }
