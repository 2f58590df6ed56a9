/* Interned strings: docid names -> dense ids 0, 1, 2, ... in order of first
 * insertion (open addressing on XXH3, the table doubled at half load). */
#ifndef DP_DSI_STRTAB_H
#define DP_DSI_STRTAB_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/status.h"

typedef struct dp_strtab {
    char **names;    /* [n], owned copies */
    int32_t n, cap;  /* names held, capacity of names */
    int32_t *slots;  /* [nslots]: id or -1 */
    size_t nslots;   /* a power of two */
} dp_strtab;

/*! The id of s, adding it if new (*added = 1). @return DP_OK or DP_ERR_NOMEM. */
dp_status dp_strtab_intern(dp_strtab *t, const char *s, int32_t *id, int *added);
/*! The id of s, or -1. */
int32_t dp_strtab_find(const dp_strtab *t, const char *s);
void dp_strtab_free(dp_strtab *t);

#endif
