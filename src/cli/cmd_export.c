/* `dptrain export`: a trained run's model out to another framework's format. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/trained_cli.h"
#include "dptrain/export.h"
#include "dptrain/trained.h"

static const char header[] =
    "usage: dptrain export --run DIR --out FILE [--format safetensors]\n"
    "\n"
    "Writes the model of the run's newest checkpoint that verifies: every parameter and\n"
    "batch-norm statistic as F32, with PyTorch's state_dict names and layouts, and in the\n"
    "file's metadata the network description, input shape, classes and normalisation\n"
    "(docs/export.md; benchmarks/torch_check.py loads it in PyTorch).\n"
    "\n";

static const char *const format_names[] = {"safetensors", NULL};

static const dp_cli_opt o_format = {.name = "format", .arg = "NAME", .help = "safetensors",
                                    .kind = DP_CLI_CHOICE, .choices = format_names, .show_default = 1};
static const dp_cli_opt o_file = {.name = "out", .arg = "FILE", .help = "the file to write (replaced atomically)",
                                  .kind = DP_CLI_STR, .cap = 512};

static struct {
    char run[512], out[512];
    int format;
} x;

static const dp_cli_bind binds[] = {
    DP_CLI_BIND(dp_trained_cli_run, x.run),
    DP_CLI_BIND(o_format, x.format),
    DP_CLI_BIND(o_file, x.out),
    DP_CLI_END,
};

static void defaults(void) { memset(&x, 0, sizeof x); }

static dp_status check(int ranks)
{
    (void)ranks;
    DP_CHECK(x.run[0], "--run DIR is required");
    DP_CHECK(x.out[0], "--out FILE is required");
    return DP_OK;
}

static dp_trained t;

static dp_status run(MPI_Comm comm, int rank)
{
    (void)comm;
    if (rank != 0) return DP_OK;
    dp_status rc = dp_trained_load(x.run, &t);
    if (rc == DP_OK) rc = dp_export_safetensors(&t, x.out, DP_VERSION);
    if (rc != DP_OK) dp_trained_free(&t);
    return rc;
}

static int report(void)
{
    printf("exported: %s model=%s tensors=%d parameters=%zu buffers=%zu params_xxh3=%016llx\n", x.out,
           t.model->name, t.model->params.count, t.model->params.n, t.model->params.nbuf,
           (unsigned long long)dp_params_hash(&t.model->params));
    dp_trained_free(&t);
    return 0;
}

static const dp_cli_command export_cmd = {.name = "export", .header = header, .binds = binds, .defaults = defaults,
                                          .check = check, .run = run, .report = report};

int dp_cmd_export(int argc, char **argv, MPI_Comm comm) { return dp_cli_run(&export_cmd, argc, argv, comm); }
