/* `dptrain shard fashion-mnist`: IDX .gz files -> a shard set with manifest. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "dptrain/data.h"

static const char usage[] =
    "usage: dptrain shard fashion-mnist [--idx DIR] [--out DIR] [--shards N]\n"
    "\n"
    "Converts the Fashion-MNIST IDX files (Debian package dataset-fashion-mnist) into\n"
    "zstd shards with a manifest (format: shards/README.md).\n"
    "  --idx DIR     folder of the four .gz IDX files (default /usr/share/datasets/fashion-mnist)\n"
    "  --out DIR     output shard set (default shards/fashion-mnist)\n"
    "  --shards N    training shards, 1..4096 (default 16)\n";

int dp_cmd_shard(int argc, char **argv, MPI_Comm comm)
{
    /* Under mpirun only rank 0 writes; main() gives every rank its exit code. Every rank checks the
     * flags (comm == MPI_COMM_NULL), so all of them stop alike; rank 0 says why. */
    int rank = dp_cli_rank(comm);
    if (comm != MPI_COMM_NULL && rank != 0) return 0;
    static const struct option opts[] = {
        {"idx", 1, 0, 'i'}, {"out", 1, 0, 'o'}, {"shards", 1, 0, 's'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    char idx[512] = "/usr/share/datasets/fashion-mnist", out[512] = "shards/fashion-mnist";
    int nshards = 16, ch;
    dp_status rc = DP_OK;
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
            fputs(usage, stdout);
            return 0;
        }
        if (rank == 0) fprintf(stderr, "dptrain shard: name a dataset (fashion-mnist)\n%s", usage);
        return 2;
    }
    if (strcmp(argv[1], "fashion-mnist")) {
        if (rank == 0) fprintf(stderr, "dptrain shard: unknown dataset '%s' (known: fashion-mnist)\n", argv[1]);
        return 2;
    }
    optind = 2;
    opterr = 0;
    while (rc == DP_OK && (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'i': rc = dp_flag_str("--idx", optarg, idx, sizeof idx); break;
        case 'o': rc = dp_flag_str("--out", optarg, out, sizeof out); break;
        case 's': rc = dp_flag_int("--shards", optarg, 1, 4096, &nshards); break;
        case 'h': fputs(usage, stdout); return 0;
        default: rc = dp_errorf(DP_ERR_ARG, "unknown or incomplete flag '%s'", argv[optind - 1]);
        }
    }
    if (rc == DP_OK && optind < argc) rc = dp_errorf(DP_ERR_ARG, "unexpected argument '%s'", argv[optind]);
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
