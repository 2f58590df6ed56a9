/* `dptrain shard idx IMAGES LABELS` (any u8 IDX pair) and `dptrain shard fashion-mnist` (Debian's files). */
#include <string.h>

#include "cli/shard_format.h"

static char idx_dir[512], test_images[1024], test_labels[1024], name[64];
static double val_split;
static int classes;

static const dp_cli_opt o_idx = {.name = "idx", .arg = "DIR", .help = "folder of the four .gz IDX files",
                                 .kind = DP_CLI_STR, .cap = sizeof idx_dir, .show_default = 1};
static const dp_cli_opt o_test_images = {.name = "test-images", .arg = "FILE", .help = "IDX images of the test split",
                                         .kind = DP_CLI_STR, .cap = sizeof test_images};
static const dp_cli_opt o_test_labels = {.name = "test-labels", .arg = "FILE", .help = "IDX labels of the test split",
                                         .kind = DP_CLI_STR, .cap = sizeof test_labels};
static const dp_cli_opt o_val_split = {
    .name = "val-split", .arg = "F",
    .help = "without a test pair: hold out fraction F of each class\n(deterministic, exact per class) as split test",
    .kind = DP_CLI_DOUBLE, .lo = 0, .hi = 0.99, .show_default = 1};
static const dp_cli_opt o_classes = {.name = "classes", .arg = "K", .help = "labels are below K (0: the largest label + 1)",
                                     .kind = DP_CLI_INT, .lo = 0, .hi = 256, .show_default = 1};
static const dp_cli_opt o_name = {.name = "name", .arg = "NAME", .help = "the dataset's name in the manifest",
                                  .kind = DP_CLI_STR, .cap = sizeof name, .show_default = 1};

static const dp_cli_bind fmnist_binds[] = {DP_CLI_BIND(o_idx, idx_dir), DP_CLI_END};
static const dp_cli_bind idx_binds[] = {DP_CLI_BIND(o_test_images, test_images), DP_CLI_BIND(o_test_labels, test_labels),
                                        DP_CLI_BIND(o_val_split, val_split), DP_CLI_BIND(o_classes, classes),
                                        DP_CLI_BIND(o_name, name), DP_CLI_END};

static void fmnist_defaults(void) { strcpy(idx_dir, "/usr/share/datasets/fashion-mnist"); }

static dp_status fmnist_run(const dp_shard_args *a, dp_import_stats *st)
{
    return dp_import_fashion_mnist_to(idx_dir, &a->opts, st);
}

const dp_shard_format dp_shard_fashion_mnist = {
    .name = "fashion-mnist",
    .summary = "Fashion-MNIST's IDX files (Debian package dataset-fashion-mnist)",
    .header = "usage: dptrain shard fashion-mnist [options]\n"
              "\n"
              "Converts the Fashion-MNIST IDX files ({train,t10k}-{images-idx3,labels-idx1}-ubyte.gz) into\n"
              "shards: splits train and test, 10 named classes.\n\n",
    .binds = fmnist_binds,
    .default_out = "shards/fashion-mnist",
    .defaults = fmnist_defaults,
    .run = fmnist_run,
};

static void idx_defaults(void)
{
    test_images[0] = test_labels[0] = '\0';
    strcpy(name, "idx");
    val_split = 0;
    classes = 0;
}

static dp_status idx_check(const dp_shard_args *a)
{
    (void)a;
    if (!test_images[0] != !test_labels[0]) return dp_errorf(DP_ERR_ARG, "idx: --test-images and --test-labels come together");
    if (test_images[0] && val_split > 0) return dp_errorf(DP_ERR_ARG, "idx: --val-split or a test pair, not both");
    return DP_OK;
}

static dp_status idx_run(const dp_shard_args *a, dp_import_stats *st)
{
    const dp_idx_import in = {.images = a->pos[0], .labels = a->pos[1], .test_images = test_images[0] ? test_images : NULL,
                              .test_labels = test_labels[0] ? test_labels : NULL, .val_split = val_split,
                              .classes = classes};
    dp_import_opts o = a->opts;
    o.name = name;
    return dp_import_idx(&in, &o, st);
}

const dp_shard_format dp_shard_idx = {
    .name = "idx",
    .summary = "any u8 IDX image/label pair (MNIST, KMNIST, EMNIST ...), gzip'd or plain",
    .header = "usage: dptrain shard idx IMAGES LABELS [--test-images F --test-labels F | --val-split F] [options]\n"
              "\n"
              "Converts an IDX pair (images: magic 0x00000803, N x H x W bytes; labels: 0x00000801, N bytes;\n"
              "gzip'd or plain) into split train, and a test pair or a held-out part into split test.\n\n",
    .min_pos = 2,
    .max_pos = 2,
    .binds = idx_binds,
    .defaults = idx_defaults,
    .check = idx_check,
    .run = idx_run,
};
