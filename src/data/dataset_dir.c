/* A dataset's directory, replaced whole or not at all (see dp_dataset_dir in
 * dptrain/data.h). A command that writes a dataset must not destroy another
 * one, nor files of the user's, because --out pointed at the wrong place: only
 * an earlier copy of the same dataset is replaced without --overwrite. The new
 * copy is written beside the old one and renamed over it at the end. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dptrain/data.h"
#include "dptrain/fsutil.h"

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && !strcmp(s + n - k, tail);
}

/* "m<digits>": a DSI member directory */
static int member_name(const char *s)
{
    if (s[0] != 'm' || !s[1]) return 0;
    for (s++; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

static const char *kind_name(int kind)
{
    return kind == DP_SCHEMA_IMAGE_U8 ? "image_u8" : kind == DP_SCHEMA_VECTOR_F32 ? "vector_f32"
         : kind == DP_SCHEMA_TOKENS ? "tokens" : "unknown";
}

/* DP_OK when `out` may be replaced without --overwrite: missing, empty, or an
 * earlier copy of this dataset and nothing else. */
static dp_status check_replaceable(const char *out, const char *name, int kind, const char *const *extra,
                                   int member_dirs)
{
    struct stat st;
    if (stat(out, &st) != 0) return errno == ENOENT ? DP_OK : dp_errorf(DP_ERR_IO, "%s: %s", out, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return dp_errorf(DP_ERR_ARG, "--out %s: not a directory", out);
    DIR *dir = opendir(out);
    if (!dir) return dp_errorf(DP_ERR_IO, "%s: opendir: %s", out, strerror(errno));
    int has_manifest = 0;
    char other[256] = "";
    struct dirent *e;
    while ((e = readdir(dir))) {
        const char *f = e->d_name;
        if (!strcmp(f, ".") || !strcmp(f, "..")) continue;
        int ours = !strcmp(f, "manifest.txt") || ends_with(f, ".dps") || ends_with(f, ".tmp") ||
                   (member_dirs && member_name(f));
        for (int i = 0; extra && extra[i] && !ours; i++) ours = !strcmp(f, extra[i]);
        has_manifest |= !strcmp(f, "manifest.txt");
        if (!ours && !other[0]) snprintf(other, sizeof other, "%s", f);
    }
    closedir(dir);
    const char *give = "give --overwrite to replace the whole directory, or another --out";
    if (other[0])
        return dp_errorf(DP_ERR_ARG, "--out %s: holds '%s', which no dataset writer put there: refusing to replace "
                         "the directory; %s", out, other, give);
    if (!has_manifest) return DP_OK; /* empty, or the debris of an import that failed */
    dp_manifest *m = NULL;
    if (dp_manifest_load(out, &m) != DP_OK)
        return dp_errorf(DP_ERR_ARG, "--out %s: holds a manifest.txt that does not load (%s): refusing to replace "
                         "it; %s", out, dp_errmsg(), give);
    dp_status rc = DP_OK;
    if (strcmp(m->name, name) || (int)m->schema.kind != kind)
        rc = dp_errorf(DP_ERR_ARG, "--out %s: holds another dataset ('%s', %s; this one is '%s', %s): refusing to "
                       "replace it; %s", out, m->name, kind_name((int)m->schema.kind), name, kind_name(kind), give);
    dp_manifest_free(m);
    return rc;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path) != 0 && errno != ENOENT;
}

/* rm -rf, not following links (FTW_PHYS): a link inside is removed, not its target */
static int remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    return nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

dp_status dp_dataset_dir_begin(dp_dataset_dir *d, const char *out, const char *name, int kind,
                               const char *const *extra, int member_dirs, int overwrite)
{
    memset(d, 0, sizeof *d);
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/') n--; /* "x/" -> a sibling "x.tmp.PID", not "x/.tmp.PID" */
    if (n == 0) return dp_errorf(DP_ERR_ARG, "--out: empty directory name");
    if (snprintf(d->out, sizeof d->out, "%.*s", (int)n, out) >= (int)sizeof d->out ||
        snprintf(d->tmp, sizeof d->tmp, "%s.tmp.%ld", d->out, (long)getpid()) >= (int)sizeof d->tmp)
        return dp_errorf(DP_ERR_ARG, "%s: path too long", out);
    dp_status rc = overwrite ? DP_OK : check_replaceable(d->out, name, kind, extra, member_dirs);
    if (rc != DP_OK) return rc;
    if (remove_tree(d->tmp) != 0) return dp_errorf(DP_ERR_IO, "%s: cannot remove: %s", d->tmp, strerror(errno));
    return dp_mkdir_p(d->tmp);
}

dp_status dp_dataset_dir_commit(dp_dataset_dir *d)
{
    char old[4200];
    snprintf(old, sizeof old, "%s.old.%ld", d->out, (long)getpid());
    int moved = 0;
    if (rename(d->out, old) == 0) moved = 1;
    else if (errno != ENOENT) return dp_errorf(DP_ERR_IO, "%s: rename to %s: %s", d->out, old, strerror(errno));
    if (rename(d->tmp, d->out) != 0) {
        dp_status rc = dp_errorf(DP_ERR_IO, "%s: rename to %s: %s", d->tmp, d->out, strerror(errno));
        if (moved) rename(old, d->out); /* the old dataset back where it was */
        return rc;
    }
    dp_status rc = dp_fsync_parent_dir(d->out);
    if (moved && remove_tree(old) != 0 && rc == DP_OK)
        rc = dp_errorf(DP_ERR_IO, "%s: the new dataset is in place, but its old copy here could not be removed: %s",
                       old, strerror(errno));
    return rc;
}

void dp_dataset_dir_abort(dp_dataset_dir *d)
{
    if (d && d->tmp[0]) remove_tree(d->tmp);
}
