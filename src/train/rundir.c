/* Run directories as one run's own (dptrain/rundir.h). */
#include "dptrain/rundir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dptrain/fsutil.h"

#define MAX_KEPT 1000 /* --keep-checkpoints' bound: ckpt.1 .. ckpt.999 */

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* An empty metrics.jsonl is a run that ended before its first line: nothing of it to lose. */
static int nonempty(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && st.st_size > 0;
}

/* The holder a lock file names ("host pid"), or "unknown" when it says nothing readable. */
static void holder(int fd, char *out, size_t cap)
{
    char buf[300] = {0};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    char host[256];
    long pid;
    if (n > 0 && sscanf(buf, "%255s %ld", host, &pid) == 2)
        snprintf(out, cap, "host %s, pid %ld", host, pid);
    else
        snprintf(out, cap, "holder unknown");
}

static dp_status lock_dir(const char *dir, int *lock_fd)
{
    char path[1100];
    dp_status rc = dp_path_join(path, sizeof path, dir, DP_RUNDIR_LOCK);
    if (rc != DP_OK) return rc;
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ELOOP)
        return dp_errorf(DP_ERR_IO, "%s: a symbolic link: refused (remove it)", path);
    if (fd < 0) return dp_errorf(DP_ERR_IO, "%s: cannot open the run directory's lock file: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return dp_errorf(DP_ERR_IO, "%s: not a regular file: refused", path);
    }
    /* flock: held by this open file until it is closed (or the process dies), so a crashed run leaves no lock */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char who[300];
        holder(fd, who, sizeof who);
        close(fd);
        if (err == EWOULDBLOCK)
            return dp_errorf(DP_ERR_ARG, "%s: in use by another run (%s; lock file %s): wait for it to end or "
                             "choose another --out", dir, who, path);
        return dp_errorf(DP_ERR_IO, "%s: flock: %s", path, strerror(err));
    }
    char host[256] = "unknown", line[300];
    gethostname(host, sizeof host - 1);
    int n = snprintf(line, sizeof line, "%s %ld\n", host, (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != n) {
        dp_status e = dp_errorf(DP_ERR_IO, "%s: write: %s", path, strerror(errno));
        close(fd);
        return e;
    }
    *lock_fd = fd;
    return DP_OK;
}

static dp_status remove_file(const char *path)
{
    if (unlink(path) != 0 && errno != ENOENT)
        return dp_errorf(DP_ERR_IO, "%s: --overwrite cannot remove it: %s", path, strerror(errno));
    return DP_OK;
}

/* The checkpoint and every kept older one, and the metrics: what --overwrite removes. */
static dp_status remove_run(const char *dir, const char *ckpt)
{
    char path[1100];
    dp_status rc = dp_path_join(path, sizeof path, dir, "metrics.jsonl");
    if (rc == DP_OK) rc = remove_file(path);
    if (rc == DP_OK) rc = remove_file(ckpt);
    for (int i = 1; i < MAX_KEPT && rc == DP_OK; i++) {
        if (snprintf(path, sizeof path, "%s.%d", ckpt, i) >= (int)sizeof path)
            return dp_errorf(DP_ERR_ARG, "%s: path too long", ckpt);
        rc = remove_file(path);
    }
    return rc;
}

dp_status dp_rundir_open(const char *dir, const char *ckpt, int resume, int overwrite, int *lock_fd)
{
    dp_status rc = dp_mkdir_p(dir);
    if (rc == DP_OK) rc = lock_dir(dir, lock_fd);
    if (rc != DP_OK || resume) return rc;
    char metrics[1100], older[1100];
    rc = dp_path_join(metrics, sizeof metrics, dir, "metrics.jsonl");
    if (rc != DP_OK) return rc;
    snprintf(older, sizeof older, "%s.1", ckpt);
    const char *found = exists(ckpt) ? ckpt : exists(older) ? older : nonempty(metrics) ? metrics : NULL;
    if (!found) return DP_OK;
    if (overwrite) return remove_run(dir, ckpt);
    return dp_errorf(DP_ERR_ARG, "%s: holds a run already (%s): --resume continues it, --overwrite starts over "
                     "(removing its checkpoints and metrics), or choose another --out", dir, found);
}

void dp_rundir_unlock(int *lock_fd)
{
    if (*lock_fd < 0) return;
    /* emptied while still held, so the file never names a run that has ended (should that fail, a stale
     * name is harmless: the lock itself ends with the descriptor) */
    int rc = ftruncate(*lock_fd, 0);
    (void)rc;
    close(*lock_fd);
    *lock_fd = -1;
}

/* A free name for a damaged copy of ckpt: ckpt.damaged, else ckpt.damaged.N. */
static dp_status damaged_name(const char *ckpt, char *out, size_t cap)
{
    for (int i = 0; i < MAX_KEPT; i++) {
        int n = i ? snprintf(out, cap, "%s.damaged.%d", ckpt, i) : snprintf(out, cap, "%s.damaged", ckpt);
        if (n < 0 || (size_t)n >= cap) return dp_errorf(DP_ERR_ARG, "%s: path too long", ckpt);
        if (!exists(out)) return DP_OK;
    }
    return dp_errorf(DP_ERR_IO, "%s: %d damaged copies already kept: remove some", ckpt, MAX_KEPT);
}

dp_status dp_rundir_set_aside(const char *ckpt, const char *used)
{
    size_t n = strlen(ckpt);
    if (strncmp(used, ckpt, n) != 0 || used[n] != '.') return DP_OK; /* ckpt itself was read */
    int k = atoi(used + n + 1);
    for (int i = 0; i < k; i++) {
        char from[1100], to[1200];
        if (i == 0) snprintf(from, sizeof from, "%s", ckpt);
        else snprintf(from, sizeof from, "%s.%d", ckpt, i);
        if (!exists(from)) continue;
        dp_status rc = damaged_name(ckpt, to, sizeof to);
        if (rc != DP_OK) return rc;
        if (rename(from, to) != 0)
            return dp_errorf(DP_ERR_IO, "%s: cannot move the damaged checkpoint aside to %s: %s", from, to,
                             strerror(errno));
        fprintf(stderr, "warning: %s kept as %s (it failed verification)\n", from, to);
    }
    return dp_fsync_parent_dir(ckpt);
}

int dp_rundir_last_record(const char *dir, const char *key, char *out, size_t cap)
{
    char path[1100];
    if (dp_path_join(path, sizeof path, dir, "metrics.jsonl") != DP_OK) return 0;
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int found = 0;
    while ((len = getline(&line, &lcap, f)) > 0) {
        if (!strstr(line, key)) continue;
        if (line[len - 1] == '\n') line[len - 1] = '\0';
        snprintf(out, cap, "%s", line);
        found = 1;
    }
    free(line);
    fclose(f);
    return found;
}
