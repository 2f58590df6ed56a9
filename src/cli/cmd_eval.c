/* `dptrain eval`: a run's checkpoint -> loss, accuracy, per-class accuracy and
 * the confusion matrix on a split of a data set (text, --json, --png heat map),
 * each rank evaluating its share under mpirun. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/trained_cli.h"
#include "dptrain/text.h"
#include "dptrain/trained.h"

static const char header[] =
    "usage: dptrain eval --run DIR [--data DIR] [--split test] [--limit N] [--png FILE] [--json]\n"
    "       mpirun -np P dptrain eval ...   (each rank evaluates its share)\n"
    "\n"
    "Evaluates the model of a run's newest checkpoint (checkpoint.dpc, else the older ones\n"
    "kept) in eval mode on a split of a shard set, normalised as training normalised it, and\n"
    "prints the loss, the accuracy, each class's accuracy and the confusion matrix\n"
    "(rows: true class, columns: predicted). --png draws the matrix with gnuplot.\n"
    "\n";

static const dp_cli_opt o_png = {.name = "png", .arg = "FILE",
                                 .help = "also draw the confusion matrix into FILE (its counts go to FILE.dat)",
                                 .kind = DP_CLI_STR, .cap = 512};
static const dp_cli_opt o_json = {.name = "json", .help = "print one JSON object instead of the text",
                                  .kind = DP_CLI_ON};

static dp_trained_cli tc;
static char split[16], png[512];
static long limit;
static int json;
static dp_eval_result res;
static dp_trained model;

static const dp_cli_bind binds[] = {
    DP_CLI_BIND(dp_trained_cli_run, tc.run),
    DP_CLI_BIND(dp_trained_cli_data, tc.data),
    DP_CLI_BIND(dp_trained_cli_split, split),
    DP_CLI_BIND(dp_trained_cli_limit, limit),
    DP_CLI_BIND(dp_cli_eval_batch, tc.eval_batch),
    DP_CLI_BIND(dp_cli_threads, tc.threads),
    DP_CLI_HEADING("output:"),
    DP_CLI_BIND(o_json, json),
    DP_CLI_BIND(o_png, png),
    DP_CLI_END,
};

static void defaults(void)
{
    dp_trained_cli_defaults(&tc);
    snprintf(split, sizeof split, "test");
    png[0] = 0;
    limit = 0;
    json = 0;
}

static dp_status check(int ranks)
{
    (void)ranks;
    return dp_trained_cli_check(&tc);
}

static char (*names)[DP_CLASS_NAME_MAX];

static dp_status run(MPI_Comm comm, int rank)
{
    dp_sync sync;
    dp_status rc = dp_trained_cli_open(&tc, comm, 1, &sync, &model);
    if (rc == DP_OK) rc = dp_trained_evaluate(&model, tc.data, split, limit, tc.eval_batch, &sync, &res);
    dp_sync_free(&sync);
    if (rc != DP_OK || rank != 0) return rc;
    if (!(names = calloc((size_t)res.classes, DP_CLASS_NAME_MAX))) return dp_errorf(DP_ERR_NOMEM, "out of memory");
    dp_trained_class_names(tc.data, res.classes, names);
    char title[1200];
    snprintf(title, sizeof title, "%s on %s (%s, %ld images): accuracy %.4f", tc.run, tc.data, split, res.n, res.acc);
    return png[0] ? dp_confusion_png(png, res.confusion, res.classes, names, title) : DP_OK;
}

/* ------------------------------------------------------------ output */

static double row_sum(int k)
{
    double s = 0;
    for (int j = 0; j < res.classes; j++) s += res.confusion[(size_t)k * res.classes + j];
    return s;
}

static void print_json(void)
{
    printf("{\"run\":");
    dp_json_string(stdout, tc.run);
    printf(",\"data\":");
    dp_json_string(stdout, tc.data);
    printf(",\"split\":");
    dp_json_string(stdout, split);
    printf(",\"images\":%ld,\"loss\":%.9g,\"accuracy\":%.9g,\"correct\":%.0f,\"classes\":[", res.n, res.loss, res.acc,
           res.acc * (double)res.n);
    for (int k = 0; k < res.classes; k++) {
        double n = row_sum(k), hit = res.confusion[(size_t)k * res.classes + k];
        printf("%s{\"index\":%d,\"name\":", k ? "," : "", k);
        dp_json_string(stdout, names[k]);
        printf(",\"images\":%.0f,\"accuracy\":%.9g}", n, n > 0 ? hit / n : 0.0);
    }
    printf("],\"confusion\":[");
    for (int k = 0; k < res.classes; k++) {
        printf("%s[", k ? "," : "");
        for (int j = 0; j < res.classes; j++) printf("%s%.0f", j ? "," : "", res.confusion[(size_t)k * res.classes + j]);
        printf("]");
    }
    printf("]}\n");
}

static void print_text(void)
{
    int nc = res.classes;
    printf("eval: %s on %s (split %s): %ld images\n", tc.run, tc.data, split, res.n);
    printf("loss %.4f accuracy %.4f (%.0f of %ld)\n", res.loss, res.acc, res.acc * (double)res.n, res.n);
    printf("\nclass                    images  accuracy\n");
    for (int k = 0; k < nc; k++) {
        double n = row_sum(k), hit = res.confusion[(size_t)k * nc + k];
        printf("%-3d %-20.20s %7.0f  %8.4f\n", k, names[k], n, n > 0 ? hit / n : 0.0);
    }
    printf("\nconfusion matrix (rows: true class, columns: predicted class)\n      ");
    for (int j = 0; j < nc; j++) printf(" %6d", j);
    printf("\n");
    for (int k = 0; k < nc; k++) {
        printf("%5d ", k);
        for (int j = 0; j < nc; j++) printf(" %6.0f", res.confusion[(size_t)k * nc + j]);
        printf("\n");
    }
}

static void release(void)
{
    free(names);
    names = NULL;
    dp_eval_result_free(&res);
    dp_trained_free(&model);
}

static int report(void)
{
    if (json) print_json();
    else print_text();
    return 0;
}

static const dp_cli_command eval = {.name = "eval", .header = header, .binds = binds, .defaults = defaults,
                                    .check = check, .run = run, .report = report};

int dp_cmd_eval(int argc, char **argv, MPI_Comm comm)
{
    int rc = dp_cli_run(&eval, argc, argv, comm);
    release();
    return rc;
}
