/* `dptrain shard image-folder DIR`, `dptrain shard csv FILE` and `dptrain shard npy X Y`: a user's own
 * images and tables (include/dptrain/import_user.h does the work). The three share --val-split, --seed,
 * --keep-order and --name; cmd_shard.c adds --out, --shards and --quiet. */
#include <stdio.h>
#include <string.h>

#include "cli/shard_format.h"
#include "dptrain/image_decode.h"
#include "dptrain/import_user.h"

static char name[DP_MANIFEST_NAME_MAX];
static dp_import_order order;

static const dp_cli_opt o_name = {.name = "name", .arg = "NAME",
                                  .help = "the dataset's name in the manifest (default: the input's)",
                                  .kind = DP_CLI_STR, .cap = sizeof name};
static const dp_cli_opt o_val = {.name = "val-split", .arg = "F",
                                 .help = "without a test input: hold out fraction F of each class\n"
                                         "(deterministic, exact per class) as split test; with\n"
                                         "neither, there is no test split and `train` refuses the set",
                                 .kind = DP_CLI_DOUBLE, .lo = 0, .hi = 0.99, .show_default = 1};
static const dp_cli_opt o_seed = {.name = "seed", .arg = "S",
                                  .help = "records are written in an order hashed from S, so classes mix\n"
                                          "across shards (and so across ranks)",
                                  .kind = DP_CLI_U64, .lo = 0, .hi = 9.2e18, .show_default = 1};
static const dp_cli_opt o_keep = {.name = "keep-order", .help = "write records in input order instead",
                                  .kind = DP_CLI_ON};

#define ORDER_BINDS                                                                                            \
    DP_CLI_BIND(o_val, order.val_split), DP_CLI_BIND(o_seed, order.seed), DP_CLI_BIND(o_keep, order.keep_order), \
        DP_CLI_BIND(o_name, name)

static void order_defaults(void)
{
    order = (dp_import_order){0};
    name[0] = '\0';
}

/* The shared options with --name applied (NULL: the importer names the set after its input). */
static dp_import_opts opts(const dp_shard_args *a)
{
    dp_import_opts o = a->opts;
    o.name = name[0] ? name : NULL;
    return o;
}

/* ------------------------------------------------------------ image-folder */

static int size[2], channels;

static dp_status parse_size(const dp_cli_opt *opt, const char *s, void *field)
{
    int *hw = field, h, w, n = 0;
    (void)opt;
    /* %d skips white space before a number, not after: refuse it everywhere */
    if (s[strcspn(s, " \t\n\v\f\r")] || sscanf(s, "%dx%d%n", &h, &w, &n) != 2 || s[n] || h < 1 || w < 1 ||
        h > DP_IMAGE_MAX_SIDE ||
        w > DP_IMAGE_MAX_SIDE)
        return dp_errorf(DP_ERR_ARG, "--size: '%s', want HxW (height x width, e.g. 32x32), sides 1..%d", s,
                         DP_IMAGE_MAX_SIDE);
    hw[0] = h, hw[1] = w;
    return DP_OK;
}

static const dp_cli_opt o_size = {.name = "size", .arg = "HxW",
                                  .help = "resize every image to H x W (area averaging where an axis\n"
                                          "shrinks, bilinear where it grows; default: keep, all equal)",
                                  .kind = DP_CLI_CUSTOM, .parse = parse_size};
static const char *const channel_names[] = {"auto", "1", "3", NULL}; /* index 2 is 3 channels */
static const dp_cli_opt o_channels = {.name = "channels", .arg = "1|3",
                                      .help = "grey (1) or RGB (3) (default: 3 if any image is colour)",
                                      .kind = DP_CLI_CHOICE, .choices = channel_names};
static const dp_cli_bind folder_binds[] = {DP_CLI_BIND(o_size, size), DP_CLI_BIND(o_channels, channels), ORDER_BINDS,
                                           DP_CLI_END};

static void folder_defaults(void)
{
    order_defaults();
    size[0] = size[1] = channels = 0;
}

static dp_status folder_run(const dp_shard_args *a, dp_import_stats *st)
{
    dp_folder_import in = {.dir = a->pos[0], .height = size[0], .width = size[1],
                           .channels = channels == 2 ? 3 : channels, .order = order};
    dp_import_opts o = opts(a);
    dp_status rc = dp_import_image_folder(&in, &o, st);
    if (rc == DP_OK && st->seconds > 0)
        printf("image-folder: %ld images in %.2f s, %.0f images/s\n", st->train_records + st->test_records,
               st->seconds, (double)(st->train_records + st->test_records) / st->seconds);
    return rc;
}

const dp_shard_format dp_shard_image_folder = {
    .name = "image-folder",
    .summary = "a folder of PNG/JPEG images, one sub-folder per class (torchvision's ImageFolder)",
    .header = "usage: dptrain shard image-folder DIR [--size HxW] [--channels 1|3] [--val-split F] [options]\n"
              "\n"
              "Imports a folder of PNG and JPEG images, one sub-folder per class: classes are the\n"
              "sub-folders in name order, files are taken in name order from all depths (.png .jpg\n"
              ".jpeg, any case; other files and names starting with '.' are skipped and counted). If\n"
              "DIR holds train/ and test/ (or val/) with the same class folders, those are the splits.\n"
              "Images become grey or RGB (palette expanded, 16-bit scaled, alpha dropped, colour ->\n"
              "grey as PIL's 'L'). Without --size all images must be the same size. Every header is\n"
              "read before anything is written. Details: shards/README.md.\n\n",
    .min_pos = 1,
    .max_pos = 1,
    .binds = folder_binds,
    .default_out = "shards/images",
    .defaults = folder_defaults,
    .run = folder_run,
};

/* --------------------------------------------------------------------- csv */

static char label[256], test[1024];
static int header;

static const dp_cli_opt o_label = {.name = "label", .arg = "COL",
                                   .help = "the label column: an index from 0, or a header name (required)",
                                   .kind = DP_CLI_STR, .cap = sizeof label};
static const dp_cli_opt o_hdr = {.name = "header",
                                 .help = "the first line names the columns (default: it does when\n"
                                         "one of its feature fields is not a number)",
                                 .kind = DP_CLI_ON};
static const dp_cli_opt o_nohdr = {.name = "no-header", .help = "the first line is data", .kind = DP_CLI_OFF};
static const dp_cli_opt o_test = {.name = "test", .arg = "FILE", .help = "a CSV of the same columns: split test",
                                  .kind = DP_CLI_STR, .cap = sizeof test};
static const dp_cli_bind csv_binds[] = {DP_CLI_BIND(o_label, label), DP_CLI_BIND(o_hdr, header),
                                        DP_CLI_BIND(o_nohdr, header), DP_CLI_BIND(o_test, test), ORDER_BINDS,
                                        DP_CLI_END};

static void csv_defaults(void)
{
    order_defaults();
    label[0] = test[0] = '\0';
    header = -1;
}

static dp_status csv_check(const dp_shard_args *a)
{
    (void)a;
    if (!label[0])
        return dp_errorf(DP_ERR_ARG, "csv: --label COL is required (an index from 0, or a header name)");
    if (test[0] && order.val_split > 0)
        return dp_errorf(DP_ERR_ARG, "csv: --val-split or --test, not both");
    return DP_OK;
}

static dp_status csv_run(const dp_shard_args *a, dp_import_stats *st)
{
    dp_csv_import in = {.path = a->pos[0], .label = label, .header = header, .test = test[0] ? test : NULL,
                        .order = order};
    dp_import_opts o = opts(a);
    return dp_import_csv(&in, &o, st);
}

const dp_shard_format dp_shard_csv = {
    .name = "csv",
    .summary = "a CSV table of numbers and a label column (float vectors)",
    .header = "usage: dptrain shard csv FILE --label COL [--header|--no-header] [--test FILE | --val-split F]\n"
              "       [options]\n"
              "\n"
              "Imports a comma-separated table into float vectors (schema vector_f32): every column\n"
              "but the label is a feature, a finite decimal number (no hex, inf, nan or empty fields).\n"
              "Labels are non-negative integers (classes 0..largest), or else strings (the sorted\n"
              "distinct strings are the classes, named in the manifest). RFC 4180 quotes work within\n"
              "a line; blank lines are skipped. Errors name file:line:column.\n\n",
    .min_pos = 1,
    .max_pos = 1,
    .binds = csv_binds,
    .default_out = "shards/csv",
    .defaults = csv_defaults,
    .check = csv_check,
    .run = csv_run,
};

/* --------------------------------------------------------------------- npy */

static char test_x[1024], test_y[1024];

static const dp_cli_opt o_tx = {.name = "test-x", .arg = "FILE", .help = "features of split test",
                                .kind = DP_CLI_STR, .cap = sizeof test_x};
static const dp_cli_opt o_ty = {.name = "test-y", .arg = "FILE", .help = "labels of split test", .kind = DP_CLI_STR,
                                .cap = sizeof test_y};
static const dp_cli_bind npy_binds[] = {DP_CLI_BIND(o_tx, test_x), DP_CLI_BIND(o_ty, test_y), ORDER_BINDS,
                                        DP_CLI_END};

static void npy_defaults(void)
{
    order_defaults();
    test_x[0] = test_y[0] = '\0';
}

static dp_status npy_check(const dp_shard_args *a)
{
    (void)a;
    if (!test_x[0] != !test_y[0])
        return dp_errorf(DP_ERR_ARG, "npy: --test-x and --test-y come together");
    if (test_x[0] && order.val_split > 0)
        return dp_errorf(DP_ERR_ARG, "npy: --val-split or a test pair, not both");
    return DP_OK;
}

static dp_status npy_run(const dp_shard_args *a, dp_import_stats *st)
{
    dp_npy_import in = {.x = a->pos[0], .y = a->pos[1], .test_x = test_x[0] ? test_x : NULL,
                        .test_y = test_y[0] ? test_y : NULL, .order = order};
    dp_import_opts o = opts(a);
    return dp_import_npy(&in, &o, st);
}

const dp_shard_format dp_shard_npy = {
    .name = "npy",
    .summary = "NumPy arrays: X (N, F) float32/float64 and Y (N,) integer labels",
    .header = "usage: dptrain shard npy X.npy Y.npy [--test-x F --test-y F | --val-split F] [options]\n"
              "\n"
              "Imports NumPy arrays into float vectors (schema vector_f32): X of shape (N, F), '<f4' or\n"
              "'<f8', C order; Y of shape (N,), any integer type, labels 0..65535 (classes = largest + 1).\n"
              ".npy format versions 1.0 and 2.0 (np.save). X is streamed a row at a time.\n\n",
    .min_pos = 2,
    .max_pos = 2,
    .binds = npy_binds,
    .default_out = "shards/npy",
    .defaults = npy_defaults,
    .check = npy_check,
    .run = npy_run,
};
