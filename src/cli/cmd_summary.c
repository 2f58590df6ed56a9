/* `dptrain summary`: a model's layers with their output shapes, parameters and FLOPs, then the totals (as
 * torchinfo and Keras' summary print them). Builds the model only: no data, no MPI. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "dptrain/netdesc.h"

static const char header[] =
    "usage: dptrain summary --model NAME|FILE.json --input CxHxW [--classes K]\n"
    "\n"
    "Prints every layer of a network description (docs/models.md): its parameter name, type, output\n"
    "shape per sample, parameters and FLOPs (2 x the multiply-adds of conv and linear layers, the\n"
    "figure `train` divides by to report %% of the sgemm bound), then the totals.\n"
    "\n";

typedef struct summary_cfg {
    char model[512];
    dp_model_shape in;
} summary_cfg;

static summary_cfg cfg;
static dp_model *model;

static dp_status parse_input(const dp_cli_opt *o, const char *a, void *field)
{
    (void)o;
    dp_model_shape *s = field;
    int c, h, w, end = 0;
    /* %d skips white space before a number, not after: refuse it everywhere */
    if (a[strcspn(a, " \t\n\v\f\r")] || sscanf(a, "%dx%dx%d%n", &c, &h, &w, &end) != 3 || a[end] || c < 1 ||
        h < 1 || w < 1 || c > 1 << 20 || h > 1 << 20 || w > 1 << 20)
        return dp_errorf(DP_ERR_ARG, "--input: '%s' is not CxHxW (three positive sizes up to %d, e.g. 1x28x28)", a,
                         1 << 20);
    s->c = c, s->h = h, s->w = w;
    return DP_OK;
}

static const dp_cli_opt o_model = {.name = "model", .arg = "NAME|FILE",
                                   .help = "mlp | cnn | resnet20, or a network description FILE.json",
                                   .kind = DP_CLI_STR, .cap = sizeof cfg.model, .show_default = 1};
static const dp_cli_opt o_input = {.name = "input", .arg = "CxHxW", .help = "input channels x height x width",
                                   .kind = DP_CLI_CUSTOM, .parse = parse_input};
static const dp_cli_opt o_classes = {.name = "classes", .arg = "K", .help = "classes (linear \"out\": \"classes\")",
                                     .kind = DP_CLI_INT, .lo = 1, .hi = 1 << 24, .show_default = 1};

static const dp_cli_bind binds[] = {
    DP_CLI_BIND(o_model, cfg.model),
    DP_CLI_BIND(o_input, cfg.in),
    DP_CLI_BIND(o_classes, cfg.in.classes),
    DP_CLI_END,
};

static void defaults(void)
{
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.model, sizeof cfg.model, "cnn");
    cfg.in.classes = 10;
}

static dp_status check(int ranks)
{
    (void)ranks;
    DP_CHECK(cfg.in.c > 0, "--input CxHxW is required (e.g. --input 1x28x28)");
    return DP_OK;
}

static dp_status run(MPI_Comm comm, int rank)
{
    (void)comm, (void)rank;
    dp_model_free(model);
    model = NULL;
    return dp_model_build(cfg.model, &cfg.in, &model);
}

/* 1234567 -> "1,234,567" */
static const char *grouped(double v, char *buf, size_t n)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%.0f", v);
    size_t len = strlen(digits), o = 0;
    for (size_t i = 0; i < len && o + 2 < n; i++) {
        if (i && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = 0;
    return buf;
}

static int report(void)
{
    const dp_netdesc_row *rows;
    int n = dp_netdesc_rows(model, &rows);
    char a[32], b[32], name[80], shape[48];
    printf("%s (--model %s): input %dx%dx%d, %d classes\n\n", model->name, cfg.model, cfg.in.c, cfg.in.h, cfg.in.w,
           cfg.in.classes);
    printf("%-36s %-15s %-20s %12s %16s\n", "Layer (parameter name)", "Type", "Output shape", "Params", "FLOPs");
    for (int i = 0; i < 103; i++) putchar('=');
    putchar('\n');
    long buffers = 0;
    for (int i = 0; i < n; i++) {
        const dp_netdesc_row *r = &rows[i];
        snprintf(name, sizeof name, "%*s%s", 2 * r->depth, "", r->name);
        if (r->ndim == 1) snprintf(shape, sizeof shape, "[%ld]", r->shape[0]);
        else snprintf(shape, sizeof shape, "[%ld, %ld, %ld]", r->shape[0], r->shape[1], r->shape[2]);
        printf("%-36s %-15s %-20s %12s %16s\n", name, r->type, shape, grouped((double)r->params, a, sizeof a),
               grouped(r->flops, b, sizeof b));
        if (r->depth == 0) buffers += r->buffers;
    }
    for (int i = 0; i < 103; i++) putchar('=');
    putchar('\n');
    double params = (double)model->params.n;
    printf("Total params: %s\n", grouped(params, a, sizeof a));
    printf("Trainable params: %s\n", grouped(params, a, sizeof a));
    printf("Buffers (batch-norm running statistics): %s\n", grouped((double)buffers, a, sizeof a));
    printf("FLOPs per sample (forward, 2 x multiply-adds of conv and linear): %s\n",
           grouped(model->flops_per_sample, a, sizeof a));
    printf("Params size (MB, float32): %.2f\n", params * 4 / 1e6);
    printf("Buffers size (MB, float32): %.2f\n", (double)buffers * 4 / 1e6);
    dp_model_free(model);
    model = NULL;
    return 0;
}

static const dp_cli_command summary = {.name = "summary", .header = header, .binds = binds, .defaults = defaults,
                                       .check = check, .run = run, .report = report, .no_mpi = 1};

int dp_cmd_summary(int argc, char **argv, MPI_Comm comm) { return dp_cli_run(&summary, argc, argv, comm); }
