/* What the importers of import_user.h share: the option checks, the write
 * order (a seeded hash order, so classes stored one after another end up
 * mixed across shards and ranks), the writer's opening, a clock. */
#ifndef DP_DATA_IMPORT_ORDER_H
#define DP_DATA_IMPORT_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/import_user.h"

/* DP_ERR_ARG naming the option when nshards or val_split is out of range, else removes out_dir's manifest
 * (an import that fails from here on leaves no dataset there). */
dp_status dp_imp_start(const dp_import_opts *o, const dp_import_order *ord);

/* The order records [0, n) are written in, into *order (malloc'd, caller frees): input order with
 * keep_order, else sorted by splitmix64 of (seed, split, index): a shuffle that needs no RNG state. */
dp_status dp_imp_order(long n, const dp_import_order *ord, int split, int32_t **order);

/* dp_import_begin, with the name dp_import_default_name(input) when o->name is NULL. */
dp_status dp_imp_begin(const dp_import_opts *o, const char *input, const dp_shard_schema *schema,
                       dp_dataset_writer **w);

/* Monotonic seconds. */
double dp_imp_now(void);

#endif
