/* `dptrain shard cifar10 DIR` and `dptrain shard cifar100 DIR [--labels fine|coarse]`: the binary batches. */
#include "cli/shard_format.h"

static const char *const label_names[] = {"fine", "coarse", NULL};
static int labels;

static const dp_cli_opt o_labels = {.name = "labels", .arg = "fine|coarse", .help = "which CIFAR-100 labels to keep",
                                    .kind = DP_CLI_CHOICE, .choices = label_names, .show_default = 1};
static const dp_cli_bind cifar100_binds[] = {DP_CLI_BIND(o_labels, labels), DP_CLI_END};

static void cifar100_defaults(void) { labels = 0; }

static dp_status cifar10_run(const dp_shard_args *a, dp_import_stats *st)
{
    return dp_import_cifar(a->pos[0], DP_CIFAR10, &a->opts, st);
}

static dp_status cifar100_run(const dp_shard_args *a, dp_import_stats *st)
{
    return dp_import_cifar(a->pos[0], labels ? DP_CIFAR100_COARSE : DP_CIFAR100_FINE, &a->opts, st);
}

const dp_shard_format dp_shard_cifar10 = {
    .name = "cifar10",
    .summary = "CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin)",
    .header = "usage: dptrain shard cifar10 DIR [options]\n"
              "\n"
              "Converts the CIFAR-10 binary version in DIR: data_batch_1..5.bin -> split train, test_batch.bin ->\n"
              "split test (records: 1 label byte, 3072 bytes of 32x32 RGB planes), class names from\n"
              "batches.meta.txt when present.\n\n",
    .min_pos = 1,
    .max_pos = 1,
    .default_out = "shards/cifar10",
    .run = cifar10_run,
};

const dp_shard_format dp_shard_cifar100 = {
    .name = "cifar100",
    .summary = "CIFAR-100 binary files (train.bin, test.bin), fine or coarse labels",
    .header = "usage: dptrain shard cifar100 DIR [--labels fine|coarse] [options]\n"
              "\n"
              "Converts the CIFAR-100 binary version in DIR: train.bin -> split train, test.bin -> split test\n"
              "(records: coarse label byte, fine label byte, 3072 bytes of 32x32 RGB planes), class names\n"
              "from fine_label_names.txt or coarse_label_names.txt when present.\n\n",
    .min_pos = 1,
    .max_pos = 1,
    .binds = cifar100_binds,
    .default_out = "shards/cifar100",
    .defaults = cifar100_defaults,
    .run = cifar100_run,
};
