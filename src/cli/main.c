/* dptrain: the command-line front. Initialises MPI (the trainer is an MPI
 * program and runs as a singleton without mpirun), dispatches a subcommand,
 * finalises. Nothing calls into cli/. */
#include <cblas.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "dptrain/comm.h"

static const char usage[] =
    "usage: dptrain <command> [options]\n"
    "       mpirun -np P dptrain train [options]   (data-parallel over P ranks)\n"
    "\n"
    "commands:\n"
    "  train      train an image classifier on a shard set\n"
    "  shard      convert a dataset into shards (fashion-mnist, idx, cifar10, cifar100 ...)\n"
    "  eval       loss, accuracy, per-class accuracy and confusion matrix of a run's model\n"
    "  predict    top-k classes with probabilities, one JSON line per input, from a run's model\n"
    "  export     a trained run's model as safetensors (PyTorch names and layouts)\n"
    "  search     DARTS-family architecture search (mpirun -np P for data-parallel)\n"
    "  summary    a model's layers: output shapes, parameters, FLOPs (docs/models.md)\n"
    "  dsi-prepare  tokenised query-docid shards from TSV or the Debian package index\n"
    "  dsi-train    DSI models, one per ensemble member (mpirun -np P, --members S)\n"
    "  dsi-query    top-k docids for queries on stdin, from member checkpoints\n"
    "  dsi-eval     Hits@1/5/10 and MRR@10 of an ensemble (or BM25) on a test file\n"
    "  tune-allreduce  time the allreduce algorithms (mpirun -np P), write --allreduce auto's table\n"
    "  help CMD   the options of a command (also: dptrain CMD --help)\n"
    "  --version  this build and the OpenBLAS kernels it runs (bits differ between kernels)\n"
    "\n"
    "Run `dptrain train --help` for the training options. README.md has the quick start.\n";

static const struct {
    const char *name;
    int (*fn)(int, char **, MPI_Comm);
    int rank0_only; /* rank 0 does the work; every rank exits with its code */
} commands[] = {{"train", dp_cmd_train, 0}, {"shard", dp_cmd_shard, 1}, {"search", dp_cmd_search, 0},
                {"summary", dp_cmd_summary, 1},
                {"dsi-prepare", dp_cmd_dsi_prepare, 1}, {"dsi-train", dp_cmd_dsi_train, 0},
                {"dsi-query", dp_cmd_dsi_query, 0}, {"dsi-eval", dp_cmd_dsi_eval, 0},
                {"eval", dp_cmd_eval, 0}, {"predict", dp_cmd_predict, 1},
                {"export", dp_cmd_export, 1}, {"tune-allreduce", dp_cmd_tune_allreduce, 0}};

int dp_cli_rank(MPI_Comm comm)
{
    int rank = 0;
    if (comm != MPI_COMM_NULL) {
        MPI_Comm_rank(comm, &rank);
        return rank;
    }
    static const char *const vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--version")) {
        printf("dptrain %s\nopenblas %s\nopenblas_core %s\n", DP_VERSION, openblas_get_config(), openblas_get_corename());
        return 0;
    }
    int help = !strcmp(name, "help");
    if (help && argc < 3) {
        fputs(usage, stdout);
        return 0;
    }
    if (help) name = argv[2];
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(name, commands[i].name)) continue;
        char *hargv[] = {argv[2], "--help", NULL};
        int rc = help ? commands[i].fn(2, hargv, MPI_COMM_NULL) : commands[i].fn(argc - 1, argv + 1, MPI_COMM_NULL);
        if (rc != DP_CLI_FLAGS_OK) return rc;
        /* The communication thread calls MPI while the training thread may
         * too (step statistics), so ask for full thread support. */
        int provided;
        if (MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
            fprintf(stderr, "dptrain: MPI_Init_thread failed\n");
            return 1;
        }
        rc = commands[i].fn(argc - 1, argv + 1, MPI_COMM_WORLD);
        if (commands[i].rank0_only) MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
        MPI_Finalize();
        return rc;
    }
    fprintf(stderr, "dptrain: unknown command '%s'\n%s", name, usage);
    return 2;
}
