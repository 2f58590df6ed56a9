/* The shipped network descriptions, embedded at build time (zoo/embed.cmake writes the table). */
#ifndef DP_MODELS_ZOO_H
#define DP_MODELS_ZOO_H

typedef struct dp_zoo_entry {
    const char *name;
    const char *json;
} dp_zoo_entry;

extern const dp_zoo_entry dp_zoo[];
extern const int dp_zoo_count;

#endif
