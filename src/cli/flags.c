/* Range-checked flag values (see flags.h). */
#include "cli/flags.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dp_status dp_flag_long(const char *flag, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) return dp_errorf(DP_ERR_ARG, "%s: '%s' is not an integer", flag, s);
    if (v < lo || v > hi) return dp_errorf(DP_ERR_ARG, "%s: %ld is out of range [%ld, %ld]", flag, v, lo, hi);
    *out = v;
    return DP_OK;
}

dp_status dp_flag_int(const char *flag, const char *s, int lo, int hi, int *out)
{
    long v = 0;
    dp_status rc = dp_flag_long(flag, s, lo, hi, &v);
    if (rc == DP_OK) *out = (int)v;
    return rc;
}

dp_status dp_flag_double(const char *flag, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return dp_errorf(DP_ERR_ARG, "%s: '%s' is not a number", flag, s);
    if (v < lo || v > hi) return dp_errorf(DP_ERR_ARG, "%s: %g is out of range [%g, %g]", flag, v, lo, hi);
    *out = v;
    return DP_OK;
}

dp_status dp_flag_float(const char *flag, const char *s, double lo, double hi, float *out)
{
    double v = 0;
    dp_status rc = dp_flag_double(flag, s, lo, hi, &v);
    if (rc == DP_OK) *out = (float)v;
    return rc;
}

dp_status dp_flag_str(const char *flag, const char *s, char *out, unsigned long cap)
{
    if (strlen(s) >= cap) return dp_errorf(DP_ERR_ARG, "%s: value longer than %lu characters", flag, cap - 1);
    strcpy(out, s);
    return DP_OK;
}

/* s's index among the choices (NULL-terminated), or a message naming the flag */
static dp_status choice(const char *flag, const char *s, const char *const *names, const char *list, int *out)
{
    for (int i = 0; names[i]; i++)
        if (!strcmp(s, names[i])) {
            *out = i;
            return DP_OK;
        }
    return dp_errorf(DP_ERR_ARG, "%s: '%s' is not %s", flag, s, list);
}

dp_status dp_flag_sampler(const char *s, int *out)
{
    static const char *const names[] = {"shard", "global", NULL};
    return choice("--sampler", s, names, "shard or global", out);
}

dp_status dp_flag_allreduce(const char *s, int *out)
{
    static const char *const names[] = {"ring", "mpi", NULL}; /* DP_ALLREDUCE_RING, DP_ALLREDUCE_MPI */
    return choice("--allreduce", s, names, "ring or mpi", out);
}

dp_status dp_flag_progress(const char *s, int *out)
{
    static const char *const names[] = {"plain", "bar", NULL};
    return choice("--progress", s, names, "bar or plain", out);
}
