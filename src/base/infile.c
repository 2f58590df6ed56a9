/* Input files opened only when regular, and the file operation in progress
 * for the watchdog (see dptrain/infile.h). */
#include "dptrain/infile.h"

#include "dptrain/fault.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The path is copied byte by byte with relaxed atomics so the watchdog thread
 * may read it at any time; it only reads it once an operation has lasted its
 * whole timeout, when the bytes have long stopped changing. */
static _Atomic char io_path[256];
static const char *_Atomic io_what;
static _Atomic double io_since; /* CLOCK_MONOTONIC seconds; 0 = idle */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void dp_io_begin(const char *what, const char *path)
{
    size_t i = 0;
    for (; path[i] && i + 1 < sizeof io_path; i++) atomic_store_explicit(&io_path[i], path[i], memory_order_relaxed);
    atomic_store_explicit(&io_path[i], 0, memory_order_relaxed);
    atomic_store(&io_what, what);
    atomic_store(&io_since, mono_s());
}

void dp_io_end(void) { atomic_store(&io_since, 0.0); }

double dp_io_busy(char *out, size_t cap)
{
    double since = atomic_load(&io_since);
    if (since == 0.0 || cap == 0) return 0.0;
    const char *what = atomic_load(&io_what);
    size_t n = 0;
    for (const char *w = what ? what : "in"; *w && n + 1 < cap; w++) out[n++] = *w;
    if (n + 1 < cap) out[n++] = ' ';
    for (size_t i = 0; i < sizeof io_path && n + 1 < cap; i++) {
        char c = atomic_load_explicit(&io_path[i], memory_order_relaxed);
        if (!c) break;
        out[n++] = c;
    }
    out[n] = 0;
    double s = mono_s() - since;
    return s > 0 ? s : 1e-9;
}

static const char *kind_of(mode_t m)
{
    return S_ISFIFO(m) ? "a FIFO" : S_ISDIR(m) ? "a directory" : S_ISCHR(m) ? "a character device"
         : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

dp_status dp_open_regular(const char *path, int flags, int *fd)
{
    *fd = -1;
    dp_io_begin("opening", path);
    dp_fault_point("open"); /* a hang here is a rank stuck in start-up I/O (mpi_faults.sh) */
    /* O_NONBLOCK: opening a FIFO with no writer would otherwise wait for one forever */
    int f = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | flags);
    int err = errno;
    dp_io_end();
    if (f < 0) {
        if (err == ELOOP && (flags & O_NOFOLLOW))
            return dp_errorf(DP_ERR_IO, "%s: a symbolic link, which is not followed here", path);
        return dp_errorf(DP_ERR_IO, "%s: open: %s", path, strerror(err));
    }
    struct stat st;
    dp_status rc = DP_OK;
    if (fstat(f, &st) != 0)
        rc = dp_errorf(DP_ERR_IO, "%s: stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = dp_errorf(DP_ERR_IO, "%s: %s, not a regular file: refused (it could block or change while read)", path,
                       kind_of(st.st_mode));
    else if (fcntl(f, F_SETFL, fcntl(f, F_GETFL) & ~O_NONBLOCK) != 0)
        rc = dp_errorf(DP_ERR_IO, "%s: fcntl: %s", path, strerror(errno));
    if (rc != DP_OK) {
        close(f);
        return rc;
    }
    *fd = f;
    return DP_OK;
}

dp_status dp_fopen_regular(const char *path, int flags, FILE **out)
{
    *out = NULL;
    int fd;
    dp_status rc = dp_open_regular(path, flags, &fd);
    if (rc != DP_OK) return rc;
    if (!(*out = fdopen(fd, "rb"))) {
        rc = dp_errorf(DP_ERR_NOMEM, "%s: fdopen: %s", path, strerror(errno));
        close(fd);
    }
    return rc;
}
