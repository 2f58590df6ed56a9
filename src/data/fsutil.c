/* Atomic file replacement and path helpers used by the shard writer, the
 * manifest and the importer. A reader never sees a half-written file: data
 * goes to "<path>.tmp", is fsynced, renamed over `path`, and the directory is
 * fsynced so the rename itself is durable. */
#include "dptrain/fsutil.h"

#include "dptrain/fault.h"
#include "dptrain/infile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

dp_status dp_path_join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return dp_errorf(DP_ERR_ARG, "%s/%s: path longer than %zu bytes", dir, name, cap - 1);
    return DP_OK;
}

dp_status dp_fsync_parent_dir(const char *path)
{
    char buf[4096];
    if (strlen(path) >= sizeof buf)
        return dp_errorf(DP_ERR_ARG, "%s: path too long", path);
    strcpy(buf, path);
    const char *dir = dirname(buf); /* may return a pointer into buf or "." */
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return dp_errorf(DP_ERR_IO, "%s: open directory: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    /* Some file systems cannot fsync a directory; the rename is still atomic there. */
    if (rc != 0 && err != EINVAL && err != ENOTSUP)
        return dp_errorf(DP_ERR_IO, "%s: fsync directory: %s", dir, strerror(err));
    return DP_OK;
}

/* "<path>.<i>" into out. */
static int numbered(char *out, size_t cap, const char *path, int i)
{
    return snprintf(out, cap, "%s.%d", path, i) < (int)cap;
}

/* Shifts path.1 .. path.(keep-2) up by one and hard-links the current `path`
 * as path.1, so that the rename that follows leaves keep files. Each step
 * leaves `path` itself untouched: a crash anywhere in here still has it.
 * Without a `path` (a damaged one was moved aside) nothing moves: shifting
 * would drop the oldest good file and leave no .1 in its place. */
static dp_status rotate(const char *path, int keep)
{
    char from[4096], to[4096];
    struct stat st;
    if (lstat(path, &st) != 0 && errno == ENOENT) return DP_OK;
    for (int i = keep - 1; i >= 2; i--) {
        if (!numbered(from, sizeof from, path, i - 1) || !numbered(to, sizeof to, path, i))
            return dp_errorf(DP_ERR_ARG, "%s: path too long", path);
        if (rename(from, to) != 0 && errno != ENOENT)
            return dp_errorf(DP_ERR_IO, "%s: rename to %s: %s", from, to, strerror(errno));
    }
    if (!numbered(to, sizeof to, path, 1)) return dp_errorf(DP_ERR_ARG, "%s: path too long", path);
    if (unlink(to) != 0 && errno != ENOENT) return dp_errorf(DP_ERR_IO, "%s: unlink: %s", to, strerror(errno));
    if (link(path, to) != 0 && errno != ENOENT)
        return dp_errorf(DP_ERR_IO, "%s: link to %s: %s", path, to, strerror(errno));
    return DP_OK;
}

/* A stale temp file of ours (a killed writer's) is removed; anything else
 * there is refused, never written through: a symbolic link planted at the
 * temp name would otherwise have our bytes written over its target. */
static dp_status create_new(const char *tmp, int *fd)
{
    struct stat st;
    if (lstat(tmp, &st) == 0) {
        if (!S_ISREG(st.st_mode))
            return dp_errorf(DP_ERR_IO, "%s: %s is in the way of the temporary file: refused (remove it)", tmp,
                             S_ISLNK(st.st_mode) ? "a symbolic link" : "something not a regular file");
        if (unlink(tmp) != 0 && errno != ENOENT) return dp_errorf(DP_ERR_IO, "%s: unlink: %s", tmp, strerror(errno));
    }
    *fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (*fd < 0) return dp_errorf(DP_ERR_IO, "%s: create: %s", tmp, strerror(errno));
    return DP_OK;
}

dp_status dp_write_file_keep(const char *path, const void *buf, size_t len, int keep)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return dp_errorf(DP_ERR_ARG, "%s: path too long", path);
    int fd = -1;
    dp_status rc = create_new(tmp, &fd);
    if (rc != DP_OK) return rc;
    const char *p = buf;
    size_t left = len, half = len / 2;
    while (left > 0) {
        /* the fault seam sits halfway, where a killed writer hurts most */
        size_t done = len - left, chunk = done < half ? half - done : left;
        ssize_t n = write(fd, p, chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0 && done < half && done + (size_t)n == half && dp_fault_point("write") == DP_FAULT_ENOSPC) {
            p += n;
            left -= (size_t)n;
            n = -1;
            errno = ENOSPC;
        }
        if (n < 0) {
            dp_errorf(DP_ERR_IO, "%s: offset %zu: write: %s", tmp, len - left, strerror(errno));
            goto err;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0) {
        dp_errorf(DP_ERR_IO, "%s: fsync: %s", tmp, strerror(errno));
        goto err;
    }
    if (close(fd) != 0) {
        fd = -1;
        dp_errorf(DP_ERR_IO, "%s: close: %s", tmp, strerror(errno));
        goto err;
    }
    fd = -1;
    if (keep > 1 && rotate(path, keep) != DP_OK)
        goto err;
    if (rename(tmp, path) != 0) {
        dp_errorf(DP_ERR_IO, "%s: rename to %s: %s", tmp, path, strerror(errno));
        goto err;
    }
    return dp_fsync_parent_dir(path);
err:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return DP_ERR_IO;
}

dp_status dp_write_file_atomic(const char *path, const void *buf, size_t len)
{
    return dp_write_file_keep(path, buf, len, 1);
}

dp_status dp_mkdir_p(const char *dir)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) return dp_errorf(DP_ERR_ARG, "%s: path too long", dir);
    for (char *s = buf + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char ch = *s;
        *s = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return dp_errorf(DP_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *s = ch;
        if (!ch) break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return dp_errorf(DP_ERR_IO, "%s: not a directory", dir);
    return DP_OK;
}

dp_status dp_read_text(const char *path, size_t max, char **out)
{
    *out = NULL;
    FILE *f;
    dp_status orc = dp_fopen_regular(path, 0, &f);
    if (orc != DP_OK)
        return orc;
    /* Sized by the file, limited before allocating; one byte more than the
     * size shows a file that grew while being read. */
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        dp_status rc = dp_errorf(DP_ERR_IO, "%s: stat: %s", path, strerror(errno));
        fclose(f);
        return rc;
    }
    size_t want = S_ISREG(st.st_mode) && st.st_size < (off_t)max ? (size_t)st.st_size + 1 : max + 1;
    char *buf = malloc(want + 1);
    dp_io_begin("reading", path);
    size_t n = buf ? fread(buf, 1, want, f) : 0;
    dp_io_end();
    dp_status rc = DP_OK;
    if (!buf)
        rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory", path);
    else if (ferror(f))
        rc = dp_errorf(DP_ERR_IO, "%s: read: %s", path, strerror(errno));
    else if (n > max)
        rc = dp_errorf(DP_ERR_FORMAT, "%s: offset %zu: larger than %zu bytes", path, max, max);
    else if (n == want)
        rc = dp_errorf(DP_ERR_IO, "%s: offset %zu: file grew while being read", path, n - 1);
    else if (memchr(buf, '\0', n))
        rc = dp_errorf(DP_ERR_FORMAT, "%s: offset %zu: NUL byte in a text file", path,
                       (size_t)((char *)memchr(buf, '\0', n) - buf));
    fclose(f);
    if (rc != DP_OK) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    return DP_OK;
}

dp_status dp_open_output(const char *path, int append, FILE **out)
{
    *out = NULL;
    /* O_NONBLOCK: a FIFO planted there fails (no reader) instead of blocking; a regular file ignores it */
    int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
    if (fd < 0 && errno == ELOOP)
        return dp_errorf(DP_ERR_IO, "%s: a symbolic link: refused (a file written into a run directory is never "
                         "written through a link; remove it)", path);
    if (fd < 0)
        return dp_errorf(DP_ERR_IO, "%s: cannot open for %s: %s", path, append ? "append" : "writing", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return dp_errorf(DP_ERR_IO, "%s: not a regular file: refused", path);
    }
    *out = fdopen(fd, append ? "a" : "w");
    if (!*out) {
        dp_status rc = dp_errorf(DP_ERR_IO, "%s: fdopen: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    return DP_OK;
}
