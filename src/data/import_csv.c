/* `dptrain shard csv`: a CSV table -> vector_f32 shards + manifest.
 *
 * Pass 1 reads every line once: it splits fields (RFC 4180 quotes within a
 * line), checks the column count, parses every feature strictly, and keeps
 * per data row only its byte offset and a label id (12 bytes); distinct label
 * strings go to a small hash set. Then labels become classes (integers as
 * they are, strings by sorted rank), the hold-out is drawn, and pass 2 seeks
 * to each row in write order and parses it again into one float record. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/import_order.h"
#include "dptrain/text.h"
#include "dptrain/infile.h"

enum { MAX_CLASSES = 65536, MAX_LABEL_BYTES = DP_MANIFEST_CLASS_MAX - 1 };

/* ------------------------------------------------------------ one line */

typedef struct csv_line {
    char *buf;
    size_t cap;
    char **field; /* into buf, NUL-terminated, quotes removed */
    int *col;     /* 1-based byte column of each field's start, for messages */
    int n, fcap;
} csv_line;

static void line_free(csv_line *l)
{
    free(l->buf);
    free(l->field);
    free(l->col);
}

static dp_status push_field(csv_line *l, char *f, int col)
{
    if (l->n == l->fcap) {
        int cap = l->fcap ? 2 * l->fcap : 64;
        char **pf = realloc(l->field, (size_t)cap * sizeof *pf);
        if (pf)
            l->field = pf;
        int *pc = pf ? realloc(l->col, (size_t)cap * sizeof *pc) : NULL;
        if (!pc)
            return dp_errorf(DP_ERR_NOMEM, "csv: out of memory for %d fields", cap);
        l->col = pc, l->fcap = cap;
    }
    l->field[l->n] = f;
    l->col[l->n++] = col;
    return DP_OK;
}

/* Splits buf (one line, no line break) at commas, in place. */
static dp_status split_line(csv_line *l, const char *path, long lineno)
{
    l->n = 0;
    char *p = l->buf, *start = l->buf;
    for (;;) {
        int col = (int)(p - start) + 1;
        char *f = p;
        if (*p == '"') {
            char *out = p;
            p++;
            for (;;) {
                if (!*p)
                    return dp_errorf(DP_ERR_FORMAT, "%s:%ld:%d: unterminated quote (a quoted field cannot span lines)",
                                     path, lineno, col);
                if (*p == '"' && p[1] == '"')
                    *out++ = '"', p += 2;
                else if (*p == '"')
                    break;
                else
                    *out++ = *p++;
            }
            p++;
            if (*p && *p != ',')
                return dp_errorf(DP_ERR_FORMAT, "%s:%ld:%d: text after the closing quote", path, lineno,
                                 (int)(p - start) + 1);
            *out = 0;
        } else {
            while (*p && *p != ',')
                p++;
        }
        int last = !*p;
        *p = 0;
        dp_status rc = push_field(l, f, col);
        if (rc != DP_OK || last)
            return rc;
        p++;
    }
}

/* Reads the next non-blank line into l->buf (line break and a '\r' dropped); *eof at the end.
 * *off gets the line's byte offset, *lineno its 1-based number. */
static dp_status read_line(FILE *f, const char *path, csv_line *l, long *lineno, uint64_t *pos, uint64_t *off,
                           int *eof)
{
    for (;;) {
        errno = 0;
        ssize_t got = getline(&l->buf, &l->cap, f);
        if (got < 0) {
            if (ferror(f))
                return dp_errorf(DP_ERR_IO, "%s: read: %s", path, strerror(errno));
            *eof = 1;
            return DP_OK;
        }
        *off = *pos;
        *pos += (uint64_t)got;
        ++*lineno;
        if (memchr(l->buf, 0, (size_t)got))
            return dp_errorf(DP_ERR_FORMAT, "%s:%ld: a NUL byte: not a text file", path, *lineno);
        while (got > 0 && (l->buf[got - 1] == '\n' || l->buf[got - 1] == '\r'))
            l->buf[--got] = 0;
        size_t k = strspn(l->buf, " \t");
        if (l->buf[k]) {
            *eof = 0;
            return DP_OK;
        }
    }
}

/* A finite decimal float: [sign] digits [. digits] [e [sign] digits], spaces around allowed; no hex,
 * inf or nan. strtof rounds correctly (glibc). */
static const char *parse_float(const char *s, float *out)
{
    const char *p = s + strspn(s, " \t"), *num = p;
    if (*p == '+' || *p == '-')
        p++;
    size_t digits = strspn(p, "0123456789");
    p += digits;
    if (*p == '.') {
        size_t frac = strspn(p + 1, "0123456789");
        digits += frac;
        p += 1 + frac;
    }
    if (!digits)
        return *num ? "not a number" : "empty field";
    if (*p == 'e' || *p == 'E') {
        const char *q = p + 1 + (p[1] == '+' || p[1] == '-');
        size_t ed = strspn(q, "0123456789");
        if (!ed)
            return "not a number (bad exponent)";
        p = q + ed;
    }
    const char *end = p + strspn(p, " \t");
    if (*end)
        return "not a number";
    errno = 0;
    char *e;
    float v = strtof(num, &e);
    if (e != p)
        return "not a number";
    if (errno == ERANGE && isinf(v))
        return "out of float32 range";
    *out = v;
    return NULL;
}

/* Non-negative decimal integer of digits only (leading zeros allowed). -1: not one; -2: over 65535. */
static long parse_label_int(const char *s)
{
    if (!*s || strspn(s, "0123456789") != strlen(s))
        return -1;
    long v = 0;
    for (; *s; s++) {
        v = v * 10 + (*s - '0');
        if (v >= MAX_CLASSES)
            return -2;
    }
    return v;
}

/* ---------------------------------------------------- distinct labels */

typedef struct label_set {
    char **key;   /* [cap] open addressing; NULL = empty */
    int32_t *id;  /* [cap] insertion id */
    char **by_id; /* [n] */
    int n, cap;
} label_set;

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

static void set_free(label_set *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->by_id[i]);
    free(s->key);
    free(s->id);
    free(s->by_id);
}

static dp_status set_grow(label_set *s)
{
    int cap = s->cap ? 2 * s->cap : 64;
    char **key = calloc((size_t)cap, sizeof *key);
    int32_t *id = calloc((size_t)cap, sizeof *id);
    char **by_id = realloc(s->by_id, (size_t)cap * sizeof *by_id);
    if (by_id)
        s->by_id = by_id;
    if (!key || !id || !by_id) {
        free(key);
        free(id);
        return dp_errorf(DP_ERR_NOMEM, "csv: out of memory for the labels");
    }
    for (int i = 0; i < s->n; i++) {
        size_t h = (size_t)fnv1a(s->by_id[i]) & (size_t)(cap - 1);
        while (key[h])
            h = (h + 1) & (size_t)(cap - 1);
        key[h] = s->by_id[i];
        id[h] = i;
    }
    free(s->key);
    free(s->id);
    s->key = key, s->id = id, s->cap = cap;
    return DP_OK;
}

/* The id of label string `k`, adding it if new; -1 and an error past MAX_CLASSES. */
static dp_status set_id(label_set *s, const char *k, int32_t *out, const char *path, long lineno, int col)
{
    if (2 * (s->n + 1) > s->cap) {
        dp_status rc = set_grow(s);
        if (rc != DP_OK)
            return rc;
    }
    size_t h = (size_t)fnv1a(k) & (size_t)(s->cap - 1);
    while (s->key[h]) {
        if (!strcmp(s->key[h], k)) {
            *out = s->id[h];
            return DP_OK;
        }
        h = (h + 1) & (size_t)(s->cap - 1);
    }
    if (s->n == MAX_CLASSES)
        return dp_errorf(DP_ERR_FORMAT, "%s:%ld:%d: more than %d distinct labels", path, lineno, col, MAX_CLASSES);
    if (!*k || strlen(k) > MAX_LABEL_BYTES)
        return dp_errorf(DP_ERR_FORMAT, "%s:%ld:%d: a label of %zu bytes (want 1..%d)", path, lineno, col, strlen(k),
                         MAX_LABEL_BYTES);
    char *d = strdup(k);
    if (!d)
        return dp_errorf(DP_ERR_NOMEM, "csv: out of memory for the labels");
    s->key[h] = d;
    s->id[h] = s->n;
    s->by_id[s->n] = d;
    *out = s->n++;
    return DP_OK;
}

/* ------------------------------------------------------------ one file */

typedef struct csv_file {
    const char *path;
    FILE *f;
    int label_col, ncols;
    long rows;
    uint64_t *off;   /* [rows] byte offset of each data row */
    int32_t *lid;    /* [rows] label id in the set */
    uint64_t bytes;
} csv_file;

static void file_free(csv_file *cf)
{
    if (cf->f)
        fclose(cf->f);
    free(cf->off);
    free(cf->lid);
}

/* The label column from `label` (an index, or a header name) and the first line's fields. */
static dp_status resolve_label(const char *path, const csv_line *first, int has_header, const char *label,
                               int *col)
{
    long idx = parse_label_int(label);
    if (idx >= 0) {
        if (idx >= first->n)
            return dp_errorf(DP_ERR_ARG, "--label: column %ld, but %s has %d columns (0..%d)", idx, path, first->n,
                             first->n - 1);
        *col = (int)idx;
        return DP_OK;
    }
    if (!has_header)
        return dp_errorf(DP_ERR_ARG, "--label: '%s' is a column name, but %s has no header line", label, path);
    for (int i = 0; i < first->n; i++)
        if (!strcmp(first->field[i], label)) {
            *col = i;
            return DP_OK;
        }
    return dp_errorf(DP_ERR_ARG, "--label: no column '%s' in the header of %s", label, path);
}

/* Parses the features of a split line into x (every field but the label column). */
static dp_status parse_features(const csv_line *l, const csv_file *cf, long lineno, float *x)
{
    for (int i = 0, k = 0; i < l->n; i++) {
        if (i == cf->label_col)
            continue;
        const char *why = parse_float(l->field[i], &x[k++]);
        if (why)
            return dp_errorf(DP_ERR_FORMAT, "%s:%ld:%d: field %d: '%s' is %s", cf->path, lineno, l->col[i], i,
                             DP_ESC(l->field[i]), why);
    }
    return DP_OK;
}

static dp_status first_pass(csv_file *cf, const dp_csv_import *o, int want_cols, csv_line *l, label_set *set,
                            float **x_alloc)
{
    dp_status orc = dp_fopen_regular(cf->path, 0, &cf->f);
    if (orc != DP_OK)
        return orc;
    long lineno = 0, cap = 0;
    uint64_t pos = 0, off;
    int eof = 0;
    dp_status rc = read_line(cf->f, cf->path, l, &lineno, &pos, &off, &eof);
    if (rc == DP_OK && eof)
        rc = dp_errorf(DP_ERR_FORMAT, "%s: empty file", cf->path);
    if (rc == DP_OK)
        rc = split_line(l, cf->path, lineno);
    if (rc != DP_OK)
        return rc;
    cf->ncols = l->n;
    if (want_cols && cf->ncols != want_cols)
        return dp_errorf(DP_ERR_FORMAT, "%s:%ld: %d columns, but the train file has %d", cf->path, lineno, cf->ncols,
                         want_cols);
    if (cf->ncols < 2)
        return dp_errorf(DP_ERR_FORMAT, "%s:%ld: one column: want a label and at least one feature (comma-separated)",
                         cf->path, lineno);
    int header = o->header;
    if (header < 0) { /* a header iff a field that is not the label is not a number */
        long idx = parse_label_int(o->label);
        header = idx < 0; /* a label given by name needs one */
        float v;
        for (int i = 0; i < l->n && !header; i++)
            header = i != idx && parse_float(l->field[i], &v);
    }
    rc = resolve_label(cf->path, l, header, o->label, &cf->label_col);
    if (rc != DP_OK)
        return rc;
    if (!*x_alloc && !(*x_alloc = malloc((size_t)(cf->ncols - 1) * sizeof **x_alloc)))
        return dp_errorf(DP_ERR_NOMEM, "csv: out of memory");
    int have_line = !header;
    for (;;) {
        if (!have_line) {
            rc = read_line(cf->f, cf->path, l, &lineno, &pos, &off, &eof);
            if (rc != DP_OK)
                return rc;
            if (eof)
                break;
            rc = split_line(l, cf->path, lineno);
            if (rc != DP_OK)
                return rc;
        }
        have_line = 0;
        if (l->n != cf->ncols)
            return dp_errorf(DP_ERR_FORMAT, "%s:%ld: ragged row: %d fields, the first line has %d", cf->path, lineno,
                             l->n, cf->ncols);
        rc = parse_features(l, cf, lineno, *x_alloc);
        if (rc != DP_OK)
            return rc;
        if (cf->rows == cap) {
            cap = cap ? 2 * cap : 1024;
            uint64_t *po = realloc(cf->off, (size_t)cap * sizeof *po);
            if (po)
                cf->off = po;
            int32_t *pl = po ? realloc(cf->lid, (size_t)cap * sizeof *pl) : NULL;
            if (!pl)
                return dp_errorf(DP_ERR_NOMEM, "%s: out of memory for the index of %ld rows", cf->path, cap);
            cf->lid = pl;
        }
        if (cf->rows == INT32_MAX)
            return dp_errorf(DP_ERR_FORMAT, "%s:%ld: more than %d rows", cf->path, lineno, INT32_MAX);
        cf->off[cf->rows] = off;
        if (parse_label_int(l->field[cf->label_col]) == -2)
            return dp_errorf(DP_ERR_FORMAT, "%s:%ld:%d: label %s is out of range (labels are 0..65535)", cf->path,
                             lineno, l->col[cf->label_col], DP_ESC(l->field[cf->label_col]));
        rc = set_id(set, l->field[cf->label_col], &cf->lid[cf->rows], cf->path, lineno, l->col[cf->label_col]);
        if (rc != DP_OK)
            return rc;
        cf->rows++;
    }
    if (cf->rows == 0)
        return dp_errorf(DP_ERR_FORMAT, "%s: no data rows", cf->path);
    cf->bytes = pos;
    return DP_OK;
}

/* Rows of cf (those with take[i] == want, or all) in the seeded order into the open split. */
static dp_status write_rows(dp_dataset_writer *w, csv_file *cf, const uint8_t *take, uint8_t want,
                            const int32_t *class_of, const dp_import_order *o, int tag, csv_line *l, float *x)
{
    int32_t *order;
    dp_status rc = dp_imp_order(cf->rows, o, tag, &order);
    uint64_t pos = UINT64_MAX;
    for (long k = 0; k < cf->rows && rc == DP_OK; k++) {
        long r = order[k];
        if (take && take[r] != want)
            continue;
        if (pos != cf->off[r] && fseeko(cf->f, (off_t)cf->off[r], SEEK_SET) != 0)
            rc = dp_errorf(DP_ERR_IO, "%s: seek: %s", cf->path, strerror(errno));
        long lineno = 0; /* a changed file shows as an error without a true line number */
        uint64_t off;
        int eof = 0;
        pos = cf->off[r];
        if (rc == DP_OK)
            rc = read_line(cf->f, cf->path, l, &lineno, &pos, &off, &eof);
        if (rc == DP_OK && (eof || off != cf->off[r]))
            rc = dp_errorf(DP_ERR_FORMAT, "%s: changed while being read (offset %" PRIu64 ")", cf->path, cf->off[r]);
        if (rc == DP_OK)
            rc = split_line(l, cf->path, lineno);
        if (rc == DP_OK && l->n != cf->ncols)
            rc = dp_errorf(DP_ERR_FORMAT, "%s: changed while being read (offset %" PRIu64 ")", cf->path, cf->off[r]);
        if (rc == DP_OK)
            rc = parse_features(l, cf, lineno, x);
        if (rc == DP_OK)
            rc = dp_dataset_writer_add(w, (uint32_t)class_of[cf->lid[r]], x);
    }
    free(order);
    return rc;
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

dp_status dp_import_csv(const dp_csv_import *csv, const dp_import_opts *o, dp_import_stats *st)
{
    double t0 = dp_imp_now();
    dp_import_stats s = {0};
    if (st)
        *st = s;
    const char *path = csv->path;
    const dp_import_order *ord = &csv->order;
    DP_CHECK(csv->label && *csv->label, "--label: name the label column (an index from 0, or a header name)");
    DP_CHECK(!(csv->test && ord->val_split > 0), "--val-split: not with --test (the test split is given)");
    dp_status rc = dp_imp_start(o, ord);
    if (rc != DP_OK)
        return rc;
    csv_file tr = {.path = path}, te = {.path = csv->test};
    csv_line l = {0};
    label_set set = {0};
    float *x = NULL;
    int32_t *class_of = NULL, *labels = NULL;
    uint8_t *is_val = NULL;
    char **sorted = NULL;
    dp_dataset_writer *w = NULL;
    rc = first_pass(&tr, csv, 0, &l, &set, &x);
    if (rc == DP_OK && te.path)
        rc = first_pass(&te, csv, tr.ncols, &l, &set, &x);
    /* classes: integers as they are when every label is one, else the sorted strings */
    int all_int = 1, classes = 0;
    for (int i = 0; rc == DP_OK && i < set.n && all_int; i++)
        all_int = parse_label_int(set.by_id[i]) != -1;
    for (int i = 0; rc == DP_OK && all_int && i < set.n; i++) {
        long v = parse_label_int(set.by_id[i]);
        if (v == -2)
            rc = dp_errorf(DP_ERR_FORMAT, "%s: label '%s' is over 65535 (labels are 0..65535)", path,
                           DP_ESC(set.by_id[i]));
        else if (v + 1 > classes)
            classes = (int)v + 1;
    }
    if (rc == DP_OK && !(class_of = malloc((size_t)(set.n ? set.n : 1) * sizeof *class_of)))
        rc = dp_errorf(DP_ERR_NOMEM, "csv: out of memory");
    if (rc == DP_OK && all_int) {
        for (int i = 0; i < set.n; i++)
            class_of[i] = (int32_t)parse_label_int(set.by_id[i]);
    } else if (rc == DP_OK) {
        classes = set.n;
        if (!(sorted = malloc((size_t)set.n * sizeof *sorted)))
            rc = dp_errorf(DP_ERR_NOMEM, "csv: out of memory");
        for (int i = 0; rc == DP_OK && i < set.n; i++)
            sorted[i] = set.by_id[i];
        if (rc == DP_OK) {
            qsort(sorted, (size_t)set.n, sizeof *sorted, str_cmp);
            for (int i = 0; i < set.n; i++) {
                int32_t id;
                set_id(&set, sorted[i], &id, path, 0, 0); /* present: a look-up */
                class_of[id] = i;
            }
        }
    }
    if (rc == DP_OK && ord->val_split > 0) {
        labels = malloc((size_t)tr.rows * sizeof *labels);
        is_val = malloc((size_t)tr.rows);
        if (!labels || !is_val)
            rc = dp_errorf(DP_ERR_NOMEM, "csv: out of memory for %ld labels", tr.rows);
        for (long i = 0; rc == DP_OK && i < tr.rows; i++)
            labels[i] = class_of[tr.lid[i]];
        if (rc == DP_OK)
            dp_stratified_holdout(labels, tr.rows, classes, ord->val_split, is_val);
    }
    dp_shard_schema schema = dp_shard_schema_vector((uint32_t)(tr.ncols - 1), (uint32_t)classes);
    if (rc == DP_OK)
        rc = dp_imp_begin(o, path, &schema, &w);
    if (rc == DP_OK && sorted)
        rc = dp_dataset_writer_classes(w, classes, (const char *const *)sorted);
    long ntest = 0;
    for (long i = 0; is_val && i < tr.rows; i++)
        ntest += is_val[i];
    if (rc == DP_OK)
        rc = dp_dataset_writer_split(w, "train", (uint64_t)(tr.rows - ntest), o->nshards);
    if (rc == DP_OK)
        rc = write_rows(w, &tr, is_val, 0, class_of, ord, 0, &l, x);
    if (rc == DP_OK && (is_val || te.path))
        rc = dp_dataset_writer_split(w, "test", (uint64_t)(is_val ? ntest : te.rows), o->nshards);
    if (rc == DP_OK && is_val)
        rc = write_rows(w, &tr, is_val, 1, class_of, ord, 1, &l, x);
    else if (rc == DP_OK && te.path)
        rc = write_rows(w, &te, NULL, 0, class_of, ord, 1, &l, x);
    if (rc == DP_OK) {
        rc = dp_dataset_writer_commit(w, &s);
        w = NULL;
    }
    dp_dataset_writer_abort(w);
    s.in_bytes = tr.bytes + te.bytes;
    file_free(&tr);
    file_free(&te);
    line_free(&l);
    set_free(&set);
    free(x);
    free(class_of);
    free(labels);
    free(is_val);
    free(sorted);
    if (rc != DP_OK)
        return rc;
    s.seconds = dp_imp_now() - t0;
    if (st)
        *st = s;
    return DP_OK;
}
