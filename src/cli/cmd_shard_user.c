/* `dptrain shard image-folder | csv | npy`: a user's own images and tables
 * into a shard set (include/dptrain/import_user.h does the work). Each takes
 * its inputs first, then flags; like `shard fashion-mnist`, only rank 0 of a
 * job writes. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/shard_user.h"
#include "dptrain/image_decode.h"
#include "dptrain/import_user.h"

/* The flags all three share. */
typedef struct user_flags {
    char out[512], name[DP_MANIFEST_NAME_MAX];
    int nshards, keep_order;
    double val_split;
    uint64_t seed;
} user_flags;

static const dp_cli_opt o_out = {.name = "out", .arg = "DIR",
                                 .help = "output shard set (default: shards/<input name>)", .kind = DP_CLI_STR,
                                 .cap = 512};
static const dp_cli_opt o_name = {.name = "name", .arg = "NAME", .help = "dataset name in the manifest\n"
                                                                          "(default: the input's name)",
                                  .kind = DP_CLI_STR, .cap = DP_MANIFEST_NAME_MAX};
static const dp_cli_opt o_shards = {.name = "shards", .arg = "N", .help = "shards per split", .kind = DP_CLI_INT,
                                    .lo = 1, .hi = DP_DATASET_MAX_SHARDS, .show_default = 1};
static const dp_cli_opt o_val = {.name = "val-split", .arg = "F",
                                 .help = "hold out this fraction of each class as the test split\n"
                                         "(default 0: no test split unless the input has one, and\n"
                                         "`train` refuses a set without one)",
                                 .kind = DP_CLI_DOUBLE, .lo = 0, .hi = 0.999};
static const dp_cli_opt o_seed = {.name = "seed", .arg = "S",
                                  .help = "records are written in an order hashed from S, so classes\n"
                                          "mix across shards (and so across ranks)",
                                  .kind = DP_CLI_U64, .lo = 0, .hi = 9.2e18, .show_default = 1};
static const dp_cli_opt o_keep = {.name = "keep-order", .help = "write records in input order instead",
                                  .kind = DP_CLI_ON};

#define USER_BINDS(f)                                                                                              \
    DP_CLI_BIND(o_out, (f).out), DP_CLI_BIND(o_name, (f).name), DP_CLI_BIND(o_shards, (f).nshards),              \
        DP_CLI_BIND(o_val, (f).val_split), DP_CLI_BIND(o_seed, (f).seed), DP_CLI_BIND(o_keep, (f).keep_order)

static dp_import_user_opts user_opts(user_flags *f, const char *input)
{
    if (!f->out[0]) {
        char name[DP_MANIFEST_NAME_MAX];
        dp_import_default_name(name, sizeof name, f->name[0] ? f->name : input);
        snprintf(f->out, sizeof f->out, "shards/%s", name);
    }
    return (dp_import_user_opts){.nshards = f->nshards, .val_split = f->val_split, .seed = f->seed,
                                 .keep_order = f->keep_order, .name = f->name[0] ? f->name : NULL,
                                 .progress = stderr};
}

/* Parses the flags after `npos` inputs: 0 to go on, else the exit code. */
static int parse(const char *fmt, const char *header, int argc, char **argv, int npos, const dp_cli_bind *binds,
                 int rank)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "shard %s", fmt);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            if (rank == 0)
                dp_cli_help(stdout, header, binds, NULL);
            return -2;
        }
    if (argc <= npos || argv[npos][0] == '-') { /* the inputs come first */
        if (rank == 0) {
            fprintf(stderr, "dptrain shard %s: name the input%s first\n", fmt, npos > 1 ? "s" : "");
            dp_cli_help(stderr, header, binds, NULL);
        }
        return 2;
    }
    for (int i = 1; i < npos; i++)
        if (argv[i][0] == '-') {
            if (rank == 0)
                fprintf(stderr, "dptrain shard %s: name the inputs before the flags\n", fmt);
            return 2;
        }
    int help = 0;
    dp_status rc = dp_cli_parse(cmd, argc - npos, argv + npos, binds, &help);
    if (rc != DP_OK) {
        if (rank == 0)
            fprintf(stderr, "dptrain shard %s: %s\n", fmt, dp_errmsg());
        return 2;
    }
    return 0;
}

static int report(const char *fmt, const char *out, dp_status rc, const dp_import_stats *st, int images)
{
    if (rc != DP_OK) {
        fprintf(stderr, "dptrain shard %s: error: %s\n", fmt, dp_errmsg());
        return 1;
    }
    double mbs = st->seconds > 0 ? st->in_bytes / 1e6 / st->seconds : 0;
    long n = st->train_records + st->test_records;
    printf("shards: %s train=%ld records in %d shards, test=%ld records in %d shards, %.1f MB in -> %.1f MB raw -> "
           "%.1f MB, %.2f s, %.1f MB/s",
           out, st->train_records, st->train_shards, st->test_records, st->test_shards, st->in_bytes / 1e6,
           st->raw_bytes / 1e6, st->compressed_bytes / 1e6, st->seconds, mbs);
    if (images)
        printf(", %.0f images/s", st->seconds > 0 ? n / st->seconds : 0);
    printf("\n");
    return 0;
}

/* ------------------------------------------------------------ image-folder */

static const char folder_header[] =
    "usage: dptrain shard image-folder DIR [options]\n"
    "\n"
    "Imports a folder of PNG and JPEG images, one sub-folder per class (torchvision's\n"
    "ImageFolder layout): classes are the sub-folders in name order, files are taken in\n"
    "name order from all depths (.png .jpg .jpeg, any case; other files and names\n"
    "starting with '.' are skipped). If DIR holds train/ and test/ (or val/) with the\n"
    "same class folders, they are the two splits. Images are decoded to grey or RGB\n"
    "(palette expanded, 16-bit scaled, alpha dropped, colour -> grey as PIL's 'L').\n"
    "With --size, each image is resized: area averaging on an axis that shrinks,\n"
    "bilinear (half-pixel centres) on one that grows, exact integer arithmetic.\n"
    "Without it, all images must be the same size. Format: shards/README.md.\n"
    "\n";

static dp_status parse_size(const dp_cli_opt *opt, const char *s, void *field)
{
    int *hw = field, h, w, n = 0;
    (void)opt;
    if (sscanf(s, "%dx%d%n", &h, &w, &n) != 2 || s[n] || h < 1 || w < 1 || h > DP_IMAGE_MAX_SIDE ||
        w > DP_IMAGE_MAX_SIDE)
        return dp_errorf(DP_ERR_ARG, "--size: '%s', want HxW (height x width, e.g. 32x32), sides 1..%d", s,
                         DP_IMAGE_MAX_SIDE);
    hw[0] = h, hw[1] = w;
    return DP_OK;
}

static const dp_cli_opt o_size = {.name = "size", .arg = "HxW", .help = "resize every image to H x W",
                                  .kind = DP_CLI_CUSTOM, .parse = parse_size};
static const char *const channel_names[] = {"auto", "1", "2", "3", NULL};
static const dp_cli_opt o_channels = {.name = "channels", .arg = "1|3",
                                      .help = "grey (1) or RGB (3); default: 3 if any image is colour", .kind = DP_CLI_CHOICE,
                                      .choices = channel_names};

int dp_shard_image_folder(int argc, char **argv, MPI_Comm comm, int rank)
{
    static user_flags f;
    static int size[2], channels;
    f = (user_flags){.nshards = 16};
    size[0] = size[1] = channels = 0;
    const dp_cli_bind binds[] = {DP_CLI_BIND(o_size, size), DP_CLI_BIND(o_channels, channels), USER_BINDS(f),
                                 DP_CLI_END};
    int code = parse("image-folder", folder_header, argc, argv, 1, binds, rank);
    if (code == 0 && channels == 2) {
        if (rank == 0)
            fprintf(stderr, "dptrain shard image-folder: --channels: 2 is not 1 or 3\n");
        code = 2;
    }
    if (code)
        return code == -2 ? 0 : code;
    if (comm == MPI_COMM_NULL)
        return DP_CLI_FLAGS_OK;
    dp_import_user_opts o = user_opts(&f, argv[1]);
    dp_import_stats st;
    dp_status rc = dp_import_image_folder(argv[1], size[0], size[1], channels, f.out, &o, &st);
    return report("image-folder", f.out, rc, &st, 1);
}

/* --------------------------------------------------------------------- csv */

static const char csv_header[] =
    "usage: dptrain shard csv FILE --label COL [options]\n"
    "\n"
    "Imports a comma-separated table into float vectors (schema vector_f32): every\n"
    "column but the label is a feature, a finite decimal number (no hex, inf, nan or\n"
    "empty fields). Labels are non-negative integers (classes 0..max), or else strings\n"
    "(the sorted distinct strings are the classes, their names kept in the manifest).\n"
    "RFC 4180 quotes work within a line; blank lines are skipped.\n"
    "\n";

static const dp_cli_opt o_label = {.name = "label", .arg = "COL", .help = "label column: an index from 0, or a header name",
                                   .kind = DP_CLI_STR, .cap = 256};
static const dp_cli_opt o_hdr = {.name = "header", .help = "the first line names the columns\n"
                                                          "(default: it does when a feature field there is not a number)",
                                 .kind = DP_CLI_ON};
static const dp_cli_opt o_nohdr = {.name = "no-header", .help = "the first line is data", .kind = DP_CLI_OFF};
static const dp_cli_opt o_test = {.name = "test", .arg = "FILE", .help = "a CSV of the same columns for the test split",
                                  .kind = DP_CLI_STR, .cap = 512};

int dp_shard_csv(int argc, char **argv, MPI_Comm comm, int rank)
{
    static user_flags f;
    static char label[256], test[512];
    static int header;
    f = (user_flags){.nshards = 16};
    label[0] = test[0] = 0;
    header = -1;
    const dp_cli_bind binds[] = {DP_CLI_BIND(o_label, label), DP_CLI_BIND(o_hdr, header), DP_CLI_BIND(o_nohdr, header),
                                 DP_CLI_BIND(o_test, test), USER_BINDS(f), DP_CLI_END};
    int code = parse("csv", csv_header, argc, argv, 1, binds, rank);
    if (code == 0 && !label[0]) {
        if (rank == 0)
            fprintf(stderr, "dptrain shard csv: --label COL is required (an index from 0, or a header name)\n");
        code = 2;
    }
    if (code)
        return code == -2 ? 0 : code;
    if (comm == MPI_COMM_NULL)
        return DP_CLI_FLAGS_OK;
    dp_import_user_opts o = user_opts(&f, argv[1]);
    dp_csv_opts c = {.label = label, .header = header, .test = test[0] ? test : NULL};
    dp_import_stats st;
    dp_status rc = dp_import_csv(argv[1], &c, f.out, &o, &st);
    return report("csv", f.out, rc, &st, 0);
}

/* --------------------------------------------------------------------- npy */

static const char npy_header[] =
    "usage: dptrain shard npy X.npy Y.npy [options]\n"
    "\n"
    "Imports NumPy arrays into float vectors (schema vector_f32): X of shape (N, F),\n"
    "float32 or float64, C order; Y of shape (N,), any integer type, labels 0..65535\n"
    "(classes = the largest + 1). Format versions 1.0 and 2.0 (np.save).\n"
    "\n";

static const dp_cli_opt o_tx = {.name = "test-x", .arg = "FILE", .help = "features of the test split",
                                .kind = DP_CLI_STR, .cap = 512};
static const dp_cli_opt o_ty = {.name = "test-y", .arg = "FILE", .help = "labels of the test split",
                                .kind = DP_CLI_STR, .cap = 512};

int dp_shard_npy(int argc, char **argv, MPI_Comm comm, int rank)
{
    static user_flags f;
    static char tx[512], ty[512];
    f = (user_flags){.nshards = 16};
    tx[0] = ty[0] = 0;
    const dp_cli_bind binds[] = {DP_CLI_BIND(o_tx, tx), DP_CLI_BIND(o_ty, ty), USER_BINDS(f), DP_CLI_END};
    int code = parse("npy", npy_header, argc, argv, 2, binds, rank);
    if (code == 0 && !tx[0] != !ty[0]) {
        if (rank == 0)
            fprintf(stderr, "dptrain shard npy: --test-x and --test-y go together\n");
        code = 2;
    }
    if (code)
        return code == -2 ? 0 : code;
    if (comm == MPI_COMM_NULL)
        return DP_CLI_FLAGS_OK;
    dp_import_user_opts o = user_opts(&f, argv[1]);
    dp_import_stats st;
    dp_status rc = dp_import_npy(argv[1], argv[2], tx[0] ? tx : NULL, ty[0] ? ty : NULL, f.out, &o, &st);
    return report("npy", f.out, rc, &st, 0);
}
