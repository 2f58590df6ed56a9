/* What the importers of import_user.h share: the option checks, the write
 * order (a seeded hash order, so classes stored one after another end up
 * mixed across shards and ranks), the dataset's default name, a clock. */
#ifndef DP_DATA_IMPORT_COMMON_H
#define DP_DATA_IMPORT_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/import_user.h"

/* DP_ERR_ARG naming the option when nshards or val_split is out of range. */
dp_status dp_imp_check_opts(const dp_import_user_opts *o);

/* The order records [0, n) are written in, into *order (malloc'd, caller frees): input order with
 * keep_order, else sorted by splitmix64 of (seed, split, index): a shuffle that needs no RNG state. */
dp_status dp_imp_order(long n, const dp_import_user_opts *o, int split, int32_t **order);

/* o->name, or dp_import_default_name(path), so the manifest accepts it. */
void dp_imp_name(char *out, size_t cap, const dp_import_user_opts *o, const char *path);

/* Monotonic seconds. */
double dp_imp_now(void);

#endif
