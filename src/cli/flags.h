/* Number parsing for command-line flags: every value is range-checked and a
 * bad one is reported with the flag's name. */
#ifndef DP_CLI_FLAGS_H
#define DP_CLI_FLAGS_H

#include "dptrain/status.h"

dp_status dp_flag_long(const char *flag, const char *s, long lo, long hi, long *out);
dp_status dp_flag_int(const char *flag, const char *s, int lo, int hi, int *out);
dp_status dp_flag_double(const char *flag, const char *s, double lo, double hi, double *out);
dp_status dp_flag_float(const char *flag, const char *s, double lo, double hi, float *out);
dp_status dp_flag_str(const char *flag, const char *s, char *out, unsigned long cap);
/* Choices (--sampler, --allreduce, --progress ...) are declared with their names in options.c. */

#endif
