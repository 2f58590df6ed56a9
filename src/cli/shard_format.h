/* `dptrain shard FORMAT ...`: one input format per file (src/cli/shard_<format>.c), each a dp_shard_format;
 * cmd_shard.c lists them, adds the flags every format shares (--out, --shards, --quiet), parses, checks the
 * positional arguments, runs the import and prints the summary line.
 *
 * Adding a format: write src/cli/shard_<name>.c defining `const dp_shard_format dp_shard_<name>` (its own
 * flags bound to file-static fields, and a run function calling its importer with a->opts), declare it below,
 * add it to the `formats` table in cmd_shard.c and the file to src/cli/sources.cmake. */
#ifndef DP_CLI_SHARD_FORMAT_H
#define DP_CLI_SHARD_FORMAT_H

#include "cli/options.h"
#include "dptrain/import.h"

/* What every format gets: the shared flags, already parsed, and its positional arguments. */
typedef struct dp_shard_args {
    dp_import_opts opts; /* out_dir, nshards, progress (NULL with --quiet); name NULL: the format picks */
    int npos;
    char **pos;
} dp_shard_args;

typedef struct dp_shard_format {
    const char *name;        /* `dptrain shard <name>` */
    const char *summary;     /* its line in `dptrain shard --help` */
    const char *header;      /* its --help text before the flags: "usage: dptrain shard <name> ARGS [options]\n..." */
    int min_pos, max_pos;    /* how many positional arguments it takes */
    const dp_cli_bind *binds; /* its own flags, DP_CLI_END-terminated (NULL: none) */
    const char *default_out; /* --out's default; NULL: --out is required */
    void (*defaults)(void);  /* resets its own bound fields; NULL: none */
    /* Flag combinations, after parsing (an error is a usage error, exit 2); NULL: none. */
    dp_status (*check)(const dp_shard_args *a);
    /* The import (an error is exit 1); st comes zeroed. */
    dp_status (*run)(const dp_shard_args *a, dp_import_stats *st);
} dp_shard_format;

extern const dp_shard_format dp_shard_fashion_mnist, dp_shard_idx, dp_shard_cifar10, dp_shard_cifar100;
extern const dp_shard_format dp_shard_image_folder, dp_shard_csv, dp_shard_npy; /* shard_user.c */

#endif
