/* Status codes and the last-error message every library call leaves behind.
 *
 * Library functions return a dp_status; on failure they also set a message
 * that names the file, offset, field or rank at fault. Only main() and tools
 * turn a status into an exit code. */
#ifndef DPTRAIN_STATUS_H
#define DPTRAIN_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dp_status {
    DP_OK = 0,
    DP_ERR_ARG,       /* bad argument or flag */
    DP_ERR_IO,        /* open/read/write/fsync/rename failed */
    DP_ERR_FORMAT,    /* file content is truncated, corrupt or mismatched */
    DP_ERR_NOMEM,     /* allocation failed */
    DP_ERR_SHAPE,     /* tensor shapes do not fit the op */
    DP_ERR_MPI,       /* an MPI call failed or ranks disagree */
    DP_ERR_NONFINITE, /* NaN or Inf where a finite value is required */
} dp_status;

/*! Sets the thread's last-error message (printf-style) and returns `s`, so a
 *  caller can write `return dp_errorf(DP_ERR_IO, "%s: %s", path, strerror(errno));`. */
dp_status dp_errorf(dp_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*! In a configuration check: unless `cond` holds, returns DP_ERR_ARG with the
 *  message, which names the flag: `DP_CHECK(n >= 1, "--layers: %d is out of range", n);`. */
#define DP_CHECK(cond, ...)                                     \
    do {                                                        \
        if (!(cond)) return dp_errorf(DP_ERR_ARG, __VA_ARGS__); \
    } while (0)

/*! @return the message set by the last failing call on this thread ("" if none). */
const char *dp_errmsg(void);

/*! @return a short constant name for a status, e.g. "format error". */
const char *dp_status_name(dp_status s);

#ifdef __cplusplus
}
#endif
#endif
