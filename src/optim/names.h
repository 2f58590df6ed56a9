/* Name tables of the optimizer and schedule kinds (kind k is names[k]). Private to src/optim. */
#ifndef DP_OPTIM_NAMES_H
#define DP_OPTIM_NAMES_H

#include <string.h>

#define DP_NAMES_N(names) (sizeof(names) / sizeof((names)[0]))

/* The index of name in names[0, n), or -1 (also for a NULL name). */
static inline int dp_names_find(const char *const *names, unsigned n, const char *name)
{
    for (unsigned k = 0; name && k < n; k++)
        if (0 == strcmp(name, names[k])) return (int)k;
    return -1;
}

#endif
