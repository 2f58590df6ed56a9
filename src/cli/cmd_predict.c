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
#include "dptrain/image_decode.h"
#include "dptrain/image_task.h"
#include "dptrain/text.h"
#include "dptrain/trained.h"

static const char header[] =
    "usage: dptrain predict --run DIR [--top K] [--logits] (--data DIR [--split NAME] [--limit N] | FILE...)\n"
    "\n"
    "The model of a run's newest checkpoint, in eval mode, on each image of a split of a shard\n"
    "set, or on PNG/JPEG files (decoded to the model's grey or RGB, resized to its size as\n"
    "`shard image-folder --size` does), normalised as training normalised: one JSON line each,\n"
    "  {\"index\":I,\"label\":Y,\"top\":[{\"class\":K,\"name\":\"N\",\"p\":P},...]}  (a file: \"file\":F)\n"
    "with the K most probable classes (softmax of the logits), and \"logits\":[...] with --logits.\n"
    "\n";

static const dp_cli_opt o_data = {.name = "data", .arg = "DIR", .help = "shard set whose images to predict (or FILEs)",
                                  .kind = DP_CLI_STR, .cap = 512};
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
    DP_CLI_BIND(o_data, tc.data),
    DP_CLI_BIND(dp_trained_cli_split, split),
    DP_CLI_BIND(dp_trained_cli_limit, limit),
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
    return DP_OK;
}

/* ------------------------------------------------------------ one input's line */

static int *order; /* [classes]: class indices by falling probability */
static double *prob;

/* file NULL: image `index` of the set, with its label */
static void print_line(const dp_trained *t, char (*names)[DP_CLASS_NAME_MAX], const float *z, const char *file,
                       long index, int label)
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
    if (file) {
        printf("{\"file\":");
        dp_json_string(stdout, file);
        printf(",\"top\":[");
    } else {
        printf("{\"index\":%ld,\"label\":%d,\"top\":[", index, label);
    }
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
    dp_trained_data d;
    dp_status rc = dp_trained_data_open(t, tc.data, split, 0, 1, limit, tc.eval_batch, &d);
    for (long first = 0; rc == DP_OK && first < d.set.n; first += tc.eval_batch) {
        long bs = d.set.n - first < tc.eval_batch ? d.set.n - first : tc.eval_batch;
        dp_ctx_reset(&d.ctx);
        dp_tensor *z = dp_image_logits(&d.b, &d.ctx, t->model, &d.set, first, bs);
        if (!z) {
            rc = d.ctx.status ? d.ctx.status : dp_errorf(DP_ERR_SHAPE, "%s: forward failed", tc.run);
            break;
        }
        for (long i = 0; i < bs; i++)
            print_line(t, names, z->data + (size_t)i * (size_t)t->shape.classes, NULL, first + i, d.b.y[i]);
    }
    dp_trained_data_close(&d);
    return rc;
}

/* ------------------------------------------------------------ image files */

/* One PNG or JPEG file: decoded to the model's channels (grey or RGB), resized to its H x W as
 * `dptrain shard image-folder --size` resizes (dp_image_resize), normalised with the training's statistics
 * through the set path training uses (dp_image_norm_fill, dp_image_set_batch). */
static dp_status predict_file(dp_trained *t, char (*names)[DP_CLASS_NAME_MAX], const char *path, dp_ctx *ctx)
{
    const dp_model_shape *m = &t->shape;
    if (m->c != 1 && m->c != 3)
        return dp_errorf(DP_ERR_ARG, "%s: the run's model takes %d channels; image files give 1 (grey) or 3 (RGB)",
                         path, m->c);
    uint8_t *pix = NULL, *sized = NULL;
    float *lut = NULL, *x = NULL, mean[3], std[3];
    int h = 0, w = 0;
    int32_t y = 0;
    dp_status rc = dp_image_decode(path, m->c, &pix, &h, &w);
    size_t n = (size_t)m->c * (size_t)m->h * (size_t)m->w;
    if (rc == DP_OK && (h != m->h || w != m->w)) {
        if (!(sized = malloc(n))) rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory", path);
        if (rc == DP_OK) rc = dp_image_resize(pix, m->c, h, w, sized, m->h, m->w);
    }
    for (int ch = 0; ch < m->c; ch++) {
        mean[ch] = t->mean ? t->mean[ch] : DP_IMAGE_DEFAULT_MEAN;
        std[ch] = t->std ? t->std[ch] : DP_IMAGE_DEFAULT_STD;
    }
    dp_image_set one = {.n = 1, .c = m->c, .h = m->h, .w = m->w, .classes = m->classes,
                        .pixels = sized ? sized : pix, .labels = &y, .split_total = 1, .mean = mean, .std = std};
    if (rc == DP_OK && (!(lut = malloc(dp_image_norm_size(&one) * sizeof *lut)) || !(x = malloc(n * sizeof *x))))
        rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory", path);
    if (rc == DP_OK) {
        dp_image_norm_fill(&one, lut);
        dp_image_set_batch(&one, lut, NULL, 0, 1, x, &y);
        dp_ctx_reset(ctx);
        dp_tensor *z = t->model->forward(t->model, ctx, dp_tensor_wrap(ctx, x, 4, (int[]){1, m->c, m->h, m->w}));
        if (z) print_line(t, names, z->data, path, 0, 0);
        else rc = ctx->status ? ctx->status : dp_errorf(DP_ERR_SHAPE, "%s: forward failed", path);
    }
    free(pix);
    free(sized);
    free(lut);
    free(x);
    return rc;
}

static dp_status predict_files(dp_trained *t, char (*names)[DP_CLASS_NAME_MAX])
{
    dp_ctx ctx;
    dp_ctx_init(&ctx);
    ctx.training = 0;
    ctx.grad_enabled = 0;
    dp_status rc = DP_OK;
    for (int i = 0; i < nfiles && rc == DP_OK; i++) rc = predict_file(t, names, files[i], &ctx);
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
    dp_status rc = dp_trained_cli_open(&tc, MPI_COMM_NULL, nfiles == 0, &sync, &t);
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
        /* class names from the data given, else from the run's own */
        dp_trained_class_names(tc.data[0] ? tc.data : t.data, nc, names);
        rc = nfiles ? predict_files(&t, names) : predict_set(&t, names);
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
