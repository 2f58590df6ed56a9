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
