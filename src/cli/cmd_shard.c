/* `dptrain shard FORMAT ...`: the table of input formats (shard_format.h), the flags they share, and the one
 * path every import takes: parse (usage errors exit 2), run (errors exit 1), print the summary. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "cli/shard_format.h"

/* Every format, in the order `dptrain shard --help` lists them. */
static const dp_shard_format *const formats[] = {&dp_shard_fashion_mnist, &dp_shard_idx, &dp_shard_cifar10,
                                                 &dp_shard_cifar100, &dp_shard_image_folder, &dp_shard_csv,
                                                 &dp_shard_npy};
enum { NFORMATS = sizeof formats / sizeof formats[0], MAX_BINDS = 48 };

static const char header[] =
    "usage: dptrain shard FORMAT [ARGS] [options]\n"
    "\n"
    "Converts a dataset into zstd shards with a manifest (format: shards/README.md): records\n"
    "in contiguous shards per split, per-channel mean and std of the train split, class names.\n"
    "The dataset is written beside --out and renamed into place when complete: an import that\n"
    "fails leaves --out as it was. --out may hold an earlier copy of the same dataset (its name\n"
    "and record kind); anything else there is refused unless --overwrite.\n"
    "\n"
    "formats (dptrain shard FORMAT --help for each):\n";

static const dp_cli_opt o_out = {.name = "out", .arg = "DIR", .help = "output dataset directory (created if missing)",
                                 .kind = DP_CLI_STR, .cap = 512, .show_default = 1};
static const dp_cli_opt o_shards = {.name = "shards", .arg = "N", .help = "shards per split", .kind = DP_CLI_INT,
                                    .lo = 1, .hi = DP_DATASET_MAX_SHARDS, .show_default = 1};
static const dp_cli_opt o_quiet = {.name = "quiet", .help = "no progress lines on stderr", .kind = DP_CLI_ON};
static const dp_cli_opt o_overwrite = {.name = "overwrite", .help = "replace --out even if it holds another dataset\n"
                                       "or other files (all of it is replaced)", .kind = DP_CLI_ON};

static char out[512];
static int nshards, quiet, overwrite;

/* The format's own flags, then the shared ones, into b[MAX_BINDS]. */
static void make_binds(const dp_shard_format *f, dp_cli_bind *b)
{
    int n = 0;
    for (const dp_cli_bind *x = f ? f->binds : NULL; x && (x->opt || x->heading) && n < MAX_BINDS - 5; x++)
        b[n++] = *x;
    b[n++] = (dp_cli_bind)DP_CLI_BIND(o_out, out);
    b[n++] = (dp_cli_bind)DP_CLI_BIND(o_shards, nshards);
    b[n++] = (dp_cli_bind)DP_CLI_BIND(o_quiet, quiet);
    b[n++] = (dp_cli_bind)DP_CLI_BIND(o_overwrite, overwrite);
    b[n] = (dp_cli_bind)DP_CLI_END;
}

static void defaults(const dp_shard_format *f)
{
    snprintf(out, sizeof out, "%s", f && f->default_out ? f->default_out : "");
    nshards = 16;
    quiet = 0;
    overwrite = 0;
    if (f && f->defaults) f->defaults();
}

static void general_help(FILE *fp)
{
    dp_cli_bind b[MAX_BINDS];
    defaults(NULL);
    make_binds(NULL, b);
    char list[2048];
    size_t len = 0;
    for (int i = 0; i < NFORMATS; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "  %-14s%s\n", formats[i]->name, formats[i]->summary);
    snprintf(list + len, sizeof list - len, "\noptions of every format:\n");
    char head[4096];
    snprintf(head, sizeof head, "%s%s", header, list);
    dp_cli_help(fp, head, b, NULL);
}

static const dp_shard_format *find(const char *name)
{
    for (int i = 0; i < NFORMATS; i++)
        if (!strcmp(formats[i]->name, name)) return formats[i];
    return NULL;
}

/* Parses the format's flags and arguments into a: 0 when the import may run, else the exit code. */
static int parse_format(const dp_shard_format *f, int argc, char **argv, dp_shard_args *a, int say)
{
    dp_cli_bind b[MAX_BINDS];
    defaults(f);
    make_binds(f, b);
    int help = 0, first = argc;
    dp_status rc = dp_cli_parse_pos("shard", argc, argv, b, &help, &first);
    if (help) {
        dp_cli_help(stdout, f->header, b, NULL);
        return 0 + 256; /* exit 0, without running */
    }
    a->npos = argc - first;
    a->pos = argv + first;
    a->opts = (dp_import_opts){.out_dir = out, .nshards = nshards, .progress = quiet ? NULL : stderr,
                               .overwrite = overwrite};
    if (rc == DP_OK && (a->npos < f->min_pos || a->npos > f->max_pos))
        rc = a->npos < f->min_pos ? dp_errorf(DP_ERR_ARG, "%s: missing arguments (see dptrain shard %s --help)", f->name, f->name)
                                  : dp_errorf(DP_ERR_ARG, "%s: unexpected argument '%s'", f->name, a->pos[f->max_pos]);
    if (rc == DP_OK && !out[0]) rc = dp_errorf(DP_ERR_ARG, "%s: --out DIR is required", f->name);
    if (rc == DP_OK && f->check) rc = f->check(a);
    if (rc != DP_OK) {
        if (say) fprintf(stderr, "dptrain shard: %s\n", dp_errmsg());
        return 2;
    }
    return 0;
}

int dp_cmd_shard(int argc, char **argv, MPI_Comm comm)
{
    /* Under mpirun only rank 0 writes; main() gives every rank its exit code. Every rank checks the
     * flags (comm == MPI_COMM_NULL), so all of them stop alike; rank 0 says why. */
    int rank = dp_cli_rank(comm);
    if (comm != MPI_COMM_NULL && rank != 0) return 0;
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
            general_help(stdout);
            return 0;
        }
        if (rank == 0) {
            fprintf(stderr, "dptrain shard: name a dataset format\n");
            general_help(stderr);
        }
        return 2;
    }
    const dp_shard_format *f = find(argv[1]);
    if (!f) {
        if (rank == 0) {
            fprintf(stderr, "dptrain shard: unknown dataset '%s' (formats:", argv[1]);
            for (int i = 0; i < NFORMATS; i++) fprintf(stderr, " %s", formats[i]->name);
            fprintf(stderr, ")\n");
        }
        return 2;
    }
    dp_shard_args a;
    int code = parse_format(f, argc - 1, argv + 1, &a, rank == 0); /* the format name stands in for argv[0] */
    if (code) return code & 255;
    if (comm == MPI_COMM_NULL) return DP_CLI_FLAGS_OK;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    dp_import_stats st = {0};
    dp_status rc = f->run(&a, &st);
    if (rc != DP_OK) {
        fprintf(stderr, "dptrain shard: error: %s\n", dp_errmsg());
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("shards: %s train=%ld records in %d shards, test=%ld records in %d shards, %.1f MB in, "
           "%.1f MB -> %.1f MB, %.2f s, %.1f MB/s\n",
           out, st.train_records, st.train_shards, st.test_records, st.test_shards, (double)st.in_bytes / 1e6,
           (double)st.raw_bytes / 1e6, (double)st.compressed_bytes / 1e6, s, s > 0 ? (double)st.in_bytes / 1e6 / s : 0);
    return 0;
}
