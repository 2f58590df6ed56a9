/* `dptrain shard image-folder`: a folder of class sub-folders of PNG/JPEG
 * files (torchvision's ImageFolder layout) -> image shards + manifest.
 *
 *   scan     classes = sorted sub-folders; files walked recursively and sorted
 *            as torchvision does: by folder, then by name
 *   headers  every file's header (size, grey/colour): mixed sizes without a
 *            target size, unreadable files and empty classes fail here, before
 *            the writer removes the old manifest
 *   split    train/ + test/ (or val/) folders, or a stratified hold-out
 *   write    per split, in a seeded hash order (or folder order), one image
 *            decoded, converted and resized at a time
 * Memory: one decoded image and one record, plus a path and a label for each
 * file (the index the order and the hold-out need). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data/import_order.h"
#include "dptrain/fsutil.h"
#include "dptrain/image_decode.h"
#include "dptrain/text.h"

enum { MAX_DEPTH = 32 };

typedef struct img_file {
    char *path;
    int32_t label;
} img_file;

typedef struct img_list {
    img_file *f;
    long n, cap;
    long skipped; /* files of other extensions */
} img_list;

typedef struct names {
    char **s;
    int n, cap;
} names;

static void names_free(names *v)
{
    for (int i = 0; i < v->n; i++)
        free(v->s[i]);
    free(v->s);
    memset(v, 0, sizeof *v);
}

static dp_status names_push(names *v, const char *s)
{
    if (v->n == v->cap) {
        int cap = v->cap ? 2 * v->cap : 16;
        char **p = realloc(v->s, (size_t)cap * sizeof *p);
        if (!p)
            return dp_errorf(DP_ERR_NOMEM, "image-folder: out of memory");
        v->s = p, v->cap = cap;
    }
    if (!(v->s[v->n] = strdup(s)))
        return dp_errorf(DP_ERR_NOMEM, "image-folder: out of memory");
    v->n++;
    return DP_OK;
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void list_free(img_list *l)
{
    for (long i = 0; i < l->n; i++)
        free(l->f[i].path);
    free(l->f);
    memset(l, 0, sizeof *l);
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode); /* follows links, as torchvision's walk */
}

/* The entries of `dir` not starting with '.', sorted by name: folders into *dirs, the rest into
 * *files (dropped when files is NULL). */
static dp_status read_dir(const char *dir, names *dirs, names *files)
{
    DIR *d = opendir(dir);
    if (!d)
        return dp_errorf(DP_ERR_IO, "%s: %s", dir, strerror(errno));
    dp_status rc = DP_OK;
    struct dirent *e;
    char path[4096];
    errno = 0;
    while (rc == DP_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        rc = dp_path_join(path, sizeof path, dir, e->d_name);
        if (rc == DP_OK)
            rc = is_dir(path) ? names_push(dirs, e->d_name) : files ? names_push(files, e->d_name) : DP_OK;
        errno = 0;
    }
    if (rc == DP_OK && errno)
        rc = dp_errorf(DP_ERR_IO, "%s: readdir: %s", dir, strerror(errno));
    closedir(d);
    if (dirs->n > 1) /* an empty list has no array: qsort's base may not be NULL */
        qsort(dirs->s, (size_t)dirs->n, sizeof *dirs->s, str_cmp);
    if (files && files->n > 1)
        qsort(files->s, (size_t)files->n, sizeof *files->s, str_cmp);
    return rc;
}

static dp_status list_push(img_list *l, const char *path, int32_t label)
{
    if (l->n == l->cap) {
        long cap = l->cap ? 2 * l->cap : 256;
        img_file *p = realloc(l->f, (size_t)cap * sizeof *p);
        if (!p)
            return dp_errorf(DP_ERR_NOMEM, "image-folder: out of memory for the file list");
        l->f = p, l->cap = cap;
    }
    if (!(l->f[l->n].path = strdup(path)))
        return dp_errorf(DP_ERR_NOMEM, "image-folder: out of memory for the file list");
    l->f[l->n++].label = label;
    return DP_OK;
}

/* A folder's own files (sorted), then each sub-folder's in name order: torchvision's
 * sorted(os.walk(dir)) order, except where a folder name holds a byte below '/' (' ' to '.'),
 * which sorts differently there; the files read are the same. */
static dp_status walk(const char *dir, int32_t label, int depth, img_list *l)
{
    if (depth > MAX_DEPTH)
        return dp_errorf(DP_ERR_FORMAT, "%s: folders nested more than %d deep (a link loop?)", dir, MAX_DEPTH);
    names dirs = {0}, files = {0};
    dp_status rc = read_dir(dir, &dirs, &files);
    char path[4096];
    for (int i = 0; i < files.n && rc == DP_OK; i++) {
        rc = dp_path_join(path, sizeof path, dir, files.s[i]);
        if (rc == DP_OK && is_image_name(files.s[i]))
            rc = list_push(l, path, label);
        else
            l->skipped++;
    }
    for (int i = 0; i < dirs.n && rc == DP_OK; i++) {
        rc = dp_path_join(path, sizeof path, dir, dirs.s[i]);
        if (rc == DP_OK)
            rc = walk(path, label, depth + 1, l);
    }
    names_free(&dirs);
    names_free(&files);
    return rc;
}

/* One split's folder: its classes (sorted sub-folders) and their files. */
static dp_status scan_split(const char *dir, names *classes, img_list *l)
{
    dp_status rc = read_dir(dir, classes, NULL);
    if (rc == DP_OK && classes->n == 0)
        rc = dp_errorf(DP_ERR_FORMAT, "%s: no class sub-folders (want DIR/<class>/<image>)", dir);
    if (rc == DP_OK && classes->n > 65536)
        rc = dp_errorf(DP_ERR_FORMAT, "%s: %d class folders, at most 65536", dir, classes->n);
    char path[4096];
    for (int c = 0; c < classes->n && rc == DP_OK; c++) {
        long before = l->n, skipped = l->skipped;
        rc = dp_path_join(path, sizeof path, dir, classes->s[c]);
        if (rc == DP_OK)
            rc = walk(path, c, 0, l);
        if (rc == DP_OK && l->n == before)
            rc = dp_errorf(DP_ERR_FORMAT, "%s: empty class: no .png, .jpg or .jpeg files (%ld others skipped)", path,
                           l->skipped - skipped);
    }
    return rc;
}

typedef struct header_pass {
    int h, w;          /* of `first` */
    const char *first; /* the first file, named when another differs */
    int colour;        /* any image is colour */
} header_pass;

static dp_status read_headers(const img_list *l, int resize, header_pass *hp, FILE *progress, const char *what)
{
    double t0 = dp_imp_now(), last = t0;
    for (long i = 0; i < l->n; i++) {
        dp_image_info info;
        dp_status rc = dp_image_probe(l->f[i].path, &info);
        if (rc != DP_OK)
            return rc;
        hp->colour |= info.channels == 3;
        if (!hp->first) {
            hp->first = l->f[i].path, hp->h = info.height, hp->w = info.width;
        } else if (!resize && (info.height != hp->h || info.width != hp->w)) {
            return dp_errorf(DP_ERR_FORMAT, "mixed image sizes: %s is %dx%d but %s is %dx%d (height x width); "
                             "give --size HxW to resize them all", DP_ESC(hp->first), hp->h, hp->w, DP_ESC(l->f[i].path),
                             info.height, info.width);
        }
        double now = dp_imp_now();
        if (progress && now - last >= 2.0) {
            fprintf(progress, "image-folder: %s headers %ld/%ld, %.0f files/s\n", what, i + 1, l->n,
                    (double)(i + 1) / (now - t0));
            last = now;
        }
    }
    return DP_OK;
}

/* Decodes, converts and resizes the files of `l` picked by `take` (NULL: all) into split `split`. */
static dp_status write_split(dp_dataset_writer *w, const char *split, const img_list *l, const uint8_t *take,
                             uint8_t want, int c, int h, int wd, const dp_import_opts *o, const dp_import_order *ord,
                             int tag, uint8_t *rec, uint64_t *in_bytes)
{
    long n = 0;
    for (long i = 0; i < l->n; i++)
        n += !take || take[i] == want;
    int32_t *order = NULL;
    dp_status rc = dp_imp_order(l->n, ord, tag, &order);
    if (rc == DP_OK)
        rc = dp_dataset_writer_split(w, split, (uint64_t)n, o->nshards);
    double t0 = dp_imp_now(), last = t0;
    long done = 0;
    for (long k = 0; k < l->n && rc == DP_OK; k++) {
        const img_file *f = &l->f[order[k]];
        if (take && take[order[k]] != want)
            continue;
        uint8_t *px = NULL;
        int ih, iw;
        rc = dp_image_decode(f->path, c, &px, &ih, &iw);
        if (rc == DP_OK) {
            struct stat st;
            if (stat(f->path, &st) == 0)
                *in_bytes += (uint64_t)st.st_size;
            if (ih == h && iw == wd)
                rc = dp_dataset_writer_add(w, (uint32_t)f->label, px);
            else if ((rc = dp_image_resize(px, c, ih, iw, rec, h, wd)) == DP_OK)
                rc = dp_dataset_writer_add(w, (uint32_t)f->label, rec);
        }
        free(px);
        done++;
        double now = dp_imp_now();
        if (o->progress && (now - last >= 2.0 || (done == n && rc == DP_OK))) {
            fprintf(o->progress, "image-folder: %s %ld/%ld images, %.0f images/s\n", split, done, n,
                    now > t0 ? (double)done / (now - t0) : 0.0);
            fflush(o->progress);
            last = now;
        }
    }
    free(order);
    return rc;
}

/* DIR/train + DIR/test (or DIR/val) -> the test folder's path in test[]; "" when DIR is one split. */
static dp_status find_layout(const char *dir, char *train, char *test, size_t cap)
{
    char val[4096];
    test[0] = 0;
    dp_status rc = dp_path_join(train, cap, dir, "train");
    if (rc == DP_OK)
        rc = dp_path_join(test, cap, dir, "test");
    if (rc == DP_OK)
        rc = dp_path_join(val, sizeof val, dir, "val");
    if (rc != DP_OK)
        return rc;
    int has_test = is_dir(test), has_val = is_dir(val);
    if (!is_dir(train) || (!has_test && !has_val)) {
        snprintf(train, cap, "%s", dir);
        test[0] = 0;
        return DP_OK;
    }
    if (has_test && has_val)
        return dp_errorf(DP_ERR_FORMAT, "%s: both test/ and val/ beside train/: which is the test split? "
                         "(rename or move one)", dir);
    names dirs = {0};
    rc = read_dir(dir, &dirs, NULL);
    for (int i = 0; rc == DP_OK && i < dirs.n; i++)
        if (strcmp(dirs.s[i], "train") && strcmp(dirs.s[i], has_test ? "test" : "val"))
            rc = dp_errorf(DP_ERR_FORMAT, "%s: folder '%s' beside train/ and %s/: split folders hold the class "
                           "folders (move it, or rename train/ if it is a class)", dir, DP_ESC(dirs.s[i]),
                           has_test ? "test" : "val");
    names_free(&dirs);
    if (rc != DP_OK)
        return rc;
    if (!has_test)
        snprintf(test, cap, "%s", val);
    return DP_OK;
}

dp_status dp_import_image_folder(const dp_folder_import *in, const dp_import_opts *o, dp_import_stats *st)
{
    double t0 = dp_imp_now();
    dp_import_stats s = {0};
    if (st)
        *st = s;
    const char *dir = in->dir;
    const dp_import_order *ord = &in->order;
    int channels = in->channels, height = in->height, width = in->width;
    DP_CHECK(channels == 0 || channels == 1 || channels == 3, "--channels: %d, want 1 or 3", channels);
    DP_CHECK((height == 0) == (width == 0) && height >= 0 && width >= 0 && height <= DP_IMAGE_MAX_SIDE &&
                 width <= DP_IMAGE_MAX_SIDE,
             "--size: %dx%d, want HxW with sides 1..%d", height, width, DP_IMAGE_MAX_SIDE);
    dp_status rc = dp_imp_start(o, ord);
    if (rc != DP_OK)
        return rc;
    char train_dir[4096], test_dir[4096];
    rc = find_layout(dir, train_dir, test_dir, sizeof train_dir);
    if (rc != DP_OK)
        return rc;
    if (test_dir[0] && ord->val_split > 0)
        return dp_errorf(DP_ERR_ARG, "--val-split: %s has its own test split (%s)", dir, test_dir);

    names classes = {0}, test_classes = {0};
    img_list train = {0}, test = {0};
    uint8_t *is_val = NULL, *rec = NULL;
    dp_dataset_writer *w = NULL;
    rc = scan_split(train_dir, &classes, &train);
    if (rc == DP_OK && test_dir[0]) {
        rc = scan_split(test_dir, &test_classes, &test);
        for (int c = 0; rc == DP_OK && c < classes.n; c++)
            if (c >= test_classes.n || strcmp(classes.s[c], test_classes.s[c]))
                rc = dp_errorf(DP_ERR_FORMAT, "%s: class folder '%s' of %s is missing (train and test need the same "
                               "classes)", test_dir, DP_ESC(classes.s[c]), train_dir);
        if (rc == DP_OK && test_classes.n > classes.n)
            rc = dp_errorf(DP_ERR_FORMAT, "%s: class folder '%s' is not in %s (train and test need the same "
                           "classes)", test_dir, DP_ESC(test_classes.s[classes.n]), train_dir);
    }
    header_pass hp = {0};
    if (rc == DP_OK)
        rc = read_headers(&train, height > 0, &hp, o->progress, "train");
    if (rc == DP_OK)
        rc = read_headers(&test, height > 0, &hp, o->progress, "test");
    int c = channels ? channels : hp.colour ? 3 : 1, h = height ? height : hp.h, wd = width ? width : hp.w;
    if (rc == DP_OK && ord->val_split > 0) {
        int32_t *labels = malloc((size_t)train.n * sizeof *labels);
        is_val = malloc((size_t)train.n);
        if (!labels || !is_val) {
            rc = dp_errorf(DP_ERR_NOMEM, "image-folder: out of memory");
        } else {
            for (long i = 0; i < train.n; i++)
                labels[i] = train.f[i].label;
            dp_stratified_holdout(labels, train.n, classes.n, ord->val_split, is_val);
        }
        free(labels);
    }
    if (rc == DP_OK && !(rec = malloc((size_t)c * h * wd)))
        rc = dp_errorf(DP_ERR_NOMEM, "image-folder: out of memory");
    dp_shard_schema schema = dp_shard_schema_image((uint32_t)c, (uint32_t)h, (uint32_t)wd, (uint32_t)classes.n);
    if (rc == DP_OK) {
        rc = dp_imp_begin(o, dir, &schema, &w);
        if (rc == DP_OK)
            dp_dataset_writer_progress(w, NULL); /* write_split says images/s instead */
    }
    if (rc == DP_OK)
        rc = dp_dataset_writer_classes(w, classes.n, (const char *const *)classes.s);
    uint64_t in_bytes = 0;
    if (rc == DP_OK)
        rc = write_split(w, "train", &train, is_val, 0, c, h, wd, o, ord, 0, rec, &in_bytes);
    if (rc == DP_OK && is_val)
        rc = write_split(w, "test", &train, is_val, 1, c, h, wd, o, ord, 1, rec, &in_bytes);
    else if (rc == DP_OK && test.n)
        rc = write_split(w, "test", &test, NULL, 0, c, h, wd, o, ord, 1, rec, &in_bytes);
    if (rc == DP_OK) {
        rc = dp_dataset_writer_commit(w, &s);
        w = NULL;
    }
    dp_dataset_writer_abort(w);
    if (rc == DP_OK && o->progress && train.skipped + test.skipped)
        fprintf(o->progress, "image-folder: %ld files skipped (not .png, .jpg or .jpeg)\n",
                train.skipped + test.skipped);
    names_free(&classes);
    names_free(&test_classes);
    list_free(&train);
    list_free(&test);
    free(is_val);
    free(rec);
    if (rc != DP_OK)
        return rc;
    s.in_bytes = in_bytes;
    s.seconds = dp_imp_now() - t0;
    if (st)
        *st = s;
    return DP_OK;
}
