/* `dptrain shard fashion-mnist`: IDX .gz files -> a shard set with manifest. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/shard_user.h"
#include "dptrain/data.h"

static const char header[] =
    "usage: dptrain shard fashion-mnist [options]\n"
    "\n"
    "Converts the Fashion-MNIST IDX files (Debian package dataset-fashion-mnist) into\n"
    "zstd shards with a manifest (format: shards/README.md).\n"
    "\n";

static const dp_cli_opt o_idx = {.name = "idx", .arg = "DIR", .help = "folder of the four .gz IDX files",
                                 .kind = DP_CLI_STR, .cap = 512, .show_default = 1};
static const dp_cli_opt o_out = {.name = "out", .arg = "DIR", .help = "output shard set", .kind = DP_CLI_STR,
                                 .cap = 512, .show_default = 1};
static const dp_cli_opt o_shards = {.name = "shards", .arg = "N", .help = "training shards", .kind = DP_CLI_INT,
                                    .lo = 1, .hi = 4096, .show_default = 1};

int dp_cmd_shard(int argc, char **argv, MPI_Comm comm)
{
    /* Under mpirun only rank 0 writes; main() gives every rank its exit code. Every rank checks the
     * flags (comm == MPI_COMM_NULL), so all of them stop alike; rank 0 says why. */
    int rank = dp_cli_rank(comm);
    if (comm != MPI_COMM_NULL && rank != 0) return 0;
    char idx[512] = "/usr/share/datasets/fashion-mnist", out[512] = "shards/fashion-mnist";
    int nshards = 16, help = 0;
    const dp_cli_bind binds[] = {DP_CLI_BIND(o_idx, idx), DP_CLI_BIND(o_out, out), DP_CLI_BIND(o_shards, nshards),
                                 DP_CLI_END};
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
            dp_cli_help(stdout, header, binds, NULL);
            return 0;
        }
        if (rank == 0) {
            fprintf(stderr, "dptrain shard: name a dataset (fashion-mnist)\n");
            dp_cli_help(stderr, header, binds, NULL);
        }
        return 2;
    }
    static const struct {
        const char *name;
        int (*run)(int, char **, MPI_Comm, int);
    } user[] = {{"image-folder", dp_shard_image_folder}, {"csv", dp_shard_csv}, {"npy", dp_shard_npy}};
    for (size_t i = 0; i < sizeof user / sizeof *user; i++)
        if (!strcmp(argv[1], user[i].name))
            return user[i].run(argc - 1, argv + 1, comm, rank);
    if (strcmp(argv[1], "fashion-mnist")) {
        if (rank == 0)
            fprintf(stderr, "dptrain shard: unknown dataset '%s' (known: fashion-mnist, image-folder, csv, npy)\n",
                    argv[1]);
        return 2;
    }
    dp_status rc = dp_cli_parse("shard", argc - 1, argv + 1, binds, &help); /* the flags follow the dataset */
    if (help) {
        dp_cli_help(stdout, header, binds, NULL);
        return 0;
    }
    if (rc != DP_OK) {
        if (rank == 0) fprintf(stderr, "dptrain shard: %s\n", dp_errmsg());
        return 2;
    }
    if (comm == MPI_COMM_NULL) return DP_CLI_FLAGS_OK;
    dp_import_stats st;
    rc = dp_import_fashion_mnist(idx, out, nshards, &st);
    if (rc != DP_OK) {
        fprintf(stderr, "dptrain shard: error: %s\n", dp_errmsg());
        return 1;
    }
    printf("shards: %s train=%ld records in %d shards, test=%ld records in %d shards, %.1f MB -> %.1f MB, %.2f s\n",
           out, st.train_records, st.train_shards, st.test_records, st.test_shards, st.raw_bytes / 1e6,
           st.compressed_bytes / 1e6, st.seconds);
    return 0;
}
