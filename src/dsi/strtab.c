#include "dsi/strtab.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static size_t slot_of(const dp_strtab *t, const char *s)
{
    size_t i = (size_t)XXH3_64bits(s, strlen(s)) & (t->nslots - 1);
    while (t->slots[i] >= 0 && strcmp(t->names[t->slots[i]], s)) i = (i + 1) & (t->nslots - 1);
    return i;
}

int32_t dp_strtab_find(const dp_strtab *t, const char *s) { return t->nslots ? t->slots[slot_of(t, s)] : -1; }

static dp_status grow(dp_strtab *t)
{
    size_t ns = t->nslots ? 2 * t->nslots : 64;
    int32_t *slots = malloc(ns * sizeof *slots);
    int32_t cap = t->cap ? 2 * t->cap : 32;
    char **names = realloc(t->names, (size_t)cap * sizeof *names);
    if (!slots || !names) {
        free(slots);
        if (names) t->names = names;
        return dp_errorf(DP_ERR_NOMEM, "string table: out of memory at %d names", t->n);
    }
    memset(slots, 0xff, ns * sizeof *slots);
    free(t->slots);
    t->slots = slots;
    t->nslots = ns;
    t->names = names;
    t->cap = cap;
    for (int32_t i = 0; i < t->n; i++) t->slots[slot_of(t, t->names[i])] = i;
    return DP_OK;
}

dp_status dp_strtab_intern(dp_strtab *t, const char *s, int32_t *id, int *added)
{
    if (added) *added = 0;
    if ((size_t)(t->n + 1) * 2 > t->nslots || t->n == t->cap) {
        dp_status rc = grow(t);
        if (rc != DP_OK) return rc;
    }
    size_t i = slot_of(t, s);
    if (t->slots[i] < 0) {
        if (!(t->names[t->n] = strdup(s))) return dp_errorf(DP_ERR_NOMEM, "string table: out of memory");
        t->slots[i] = t->n++;
        if (added) *added = 1;
    }
    *id = t->slots[i];
    return DP_OK;
}

void dp_strtab_free(dp_strtab *t)
{
    for (int32_t i = 0; i < t->n; i++) free(t->names[i]);
    free(t->names);
    free(t->slots);
    memset(t, 0, sizeof *t);
}
