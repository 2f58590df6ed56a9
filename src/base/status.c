/* The thread-local last-error message behind dp_errorf/dp_errmsg. */
#include "dptrain/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errbuf[1024];

dp_status dp_errorf(dp_status s, const char *fmt, ...)
{
    /* Through a copy: callers often wrap the last message, dp_errorf(s, "%s: %s", path, dp_errmsg()),
     * and vsnprintf into the buffer it reads from is undefined. */
    char tmp[sizeof errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(errbuf, tmp, sizeof tmp);
    return s;
}

const char *dp_errmsg(void) { return errbuf; }

const char *dp_status_name(dp_status s)
{
    switch (s) {
    case DP_OK: return "ok";
    case DP_ERR_ARG: return "bad argument";
    case DP_ERR_IO: return "I/O error";
    case DP_ERR_FORMAT: return "format error";
    case DP_ERR_NOMEM: return "out of memory";
    case DP_ERR_SHAPE: return "shape mismatch";
    case DP_ERR_MPI: return "MPI error";
    case DP_ERR_NONFINITE: return "non-finite value";
    }
    return "unknown status";
}
