/* `dptrain shard npy`: NumPy X (N, F) and Y (N,) -> vector_f32 shards.
 *
 * The .npy header (format 1.0 / 2.0) is parsed here: "\x93NUMPY", major,
 * minor, a u16 (1.0) or u32 (2.0) LE header length, then a Python dict literal
 * {'descr': '<f4', 'fortran_order': False, 'shape': (N, F), } padded with
 * spaces and a '\n'. The file size must be exactly header + N*F*itemsize,
 * checked before anything is read. Y is read whole (4 bytes a label kept);
 * X is read a window of the write order at a time (see row_window). */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/import_order.h"
#include "dptrain/text.h"
#include "dptrain/infile.h"

enum { NPY_MAX_HEADER = 1 << 20 };

typedef struct npy {
    const char *path;
    FILE *f;
    char descr[16];
    int fortran, ndim;
    uint64_t shape[2];
    uint64_t data_off;  /* bytes before the data */
    int itemsize;
    char kind;          /* 'f', 'i', 'u' */
} npy;

static void npy_close(npy *a)
{
    if (a->f)
        fclose(a->f);
    a->f = NULL;
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* A quoted Python string literal (no escapes) into out[cap]. */
static const char *parse_str(const char *p, char *out, size_t cap)
{
    char q = *p;
    if (q != '\'' && q != '"')
        return NULL;
    const char *e = strchr(p + 1, q);
    if (!e || (size_t)(e - p - 1) >= cap)
        return NULL;
    memcpy(out, p + 1, (size_t)(e - p - 1));
    out[e - p - 1] = 0;
    return e + 1;
}

static dp_status hdr_err(const npy *a, const char *hdr, const char *p, const char *what)
{
    return dp_errorf(DP_ERR_FORMAT, "%s: offset %" PRIu64 ": header: %s", a->path,
                     (uint64_t)(a->data_off - strlen(hdr)) + (uint64_t)(p - hdr), what);
}

static dp_status parse_dict(npy *a, const char *hdr)
{
    const char *p = skip_ws(hdr);
    int seen = 0;
    if (*p++ != '{')
        return hdr_err(a, hdr, p - 1, "not a dict ('{' expected)");
    for (;;) {
        p = skip_ws(p);
        if (*p == '}')
            break;
        char key[32];
        const char *k = p;
        if (!(p = parse_str(p, key, sizeof key)))
            return hdr_err(a, hdr, k, "a quoted key expected");
        p = skip_ws(p);
        if (*p++ != ':')
            return hdr_err(a, hdr, p - 1, "':' expected");
        p = skip_ws(p);
        const char *v = p;
        if (!strcmp(key, "descr")) {
            if (!(p = parse_str(p, a->descr, sizeof a->descr)))
                return hdr_err(a, hdr, v, "descr: a quoted dtype string expected (structured dtypes are not supported)");
            seen |= 1;
        } else if (!strcmp(key, "fortran_order")) {
            if (!strncmp(p, "True", 4))
                a->fortran = 1, p += 4;
            else if (!strncmp(p, "False", 5))
                a->fortran = 0, p += 5;
            else
                return hdr_err(a, hdr, v, "fortran_order: True or False expected");
            seen |= 2;
        } else if (!strcmp(key, "shape")) {
            if (*p++ != '(')
                return hdr_err(a, hdr, v, "shape: a tuple expected");
            a->ndim = 0;
            for (;;) {
                p = skip_ws(p);
                if (*p == ')')
                    break;
                if (a->ndim == 2)
                    return hdr_err(a, hdr, p, "shape: more than 2 dimensions");
                char *e;
                errno = 0;
                if (*p < '0' || *p > '9')
                    return hdr_err(a, hdr, p, "shape: a non-negative integer expected");
                unsigned long long d = strtoull(p, &e, 10);
                if (errno)
                    return hdr_err(a, hdr, p, "shape: dimension too large");
                a->shape[a->ndim++] = d;
                p = skip_ws(e);
                if (*p == ',')
                    p++;
                else if (*p != ')')
                    return hdr_err(a, hdr, p, "shape: ',' or ')' expected");
            }
            p++;
            seen |= 4;
        } else {
            return hdr_err(a, hdr, k, "unknown key (want descr, fortran_order, shape)");
        }
        p = skip_ws(p);
        if (*p == ',')
            p++;
        else if (*p != '}')
            return hdr_err(a, hdr, p, "',' or '}' expected");
    }
    p = skip_ws(p + 1);
    if (*p)
        return hdr_err(a, hdr, p, "text after the dict");
    if (seen != 7)
        return hdr_err(a, hdr, p, !(seen & 1) ? "no 'descr'" : !(seen & 2) ? "no 'fortran_order'" : "no 'shape'");
    return DP_OK;
}

/* Opens an .npy, parses its header and checks dtype (`want` 'f' or 'i' for any integer), order,
 * dimensions and the file size. */
static dp_status npy_open(npy *a, const char *path, char want, int ndim)
{
    memset(a, 0, sizeof *a);
    a->path = path;
    dp_status orc = dp_fopen_regular(path, 0, &a->f);
    if (orc != DP_OK)
        return orc;
    unsigned char pre[12];
    size_t got = fread(pre, 1, sizeof pre, a->f);
    if (ferror(a->f))
        return dp_errorf(DP_ERR_IO, "%s: read: %s", path, strerror(errno));
    if (got < 10 || memcmp(pre, "\x93NUMPY", 6))
        return dp_errorf(DP_ERR_FORMAT, "%s: offset 0: not a .npy file (bad magic)", path);
    uint64_t hlen;
    if (pre[6] == 1) {
        hlen = pre[8] | (uint64_t)pre[9] << 8;
        a->data_off = 10 + hlen;
    } else if (pre[6] == 2 && got == 12) {
        hlen = pre[8] | (uint64_t)pre[9] << 8 | (uint64_t)pre[10] << 16 | (uint64_t)pre[11] << 24;
        a->data_off = 12 + hlen;
    } else {
        return dp_errorf(DP_ERR_FORMAT, "%s: offset 6: .npy format version %d.%d not supported (want 1.0 or 2.0)",
                         path, pre[6], pre[7]);
    }
    if (hlen > NPY_MAX_HEADER)
        return dp_errorf(DP_ERR_FORMAT, "%s: offset 8: header of %" PRIu64 " bytes, at most %d", path, hlen,
                         NPY_MAX_HEADER);
    char *hdr = malloc(hlen + 1);
    if (!hdr)
        return dp_errorf(DP_ERR_NOMEM, "%s: out of memory for the header", path);
    dp_status rc = DP_OK;
    if (fseek(a->f, (long)(a->data_off - hlen), SEEK_SET) != 0 || fread(hdr, 1, hlen, a->f) != hlen)
        rc = ferror(a->f) ? dp_errorf(DP_ERR_IO, "%s: read: %s", path, strerror(errno))
                          : dp_errorf(DP_ERR_FORMAT, "%s: truncated inside the header", path);
    hdr[rc == DP_OK ? hlen : 0] = 0;
    if (rc == DP_OK && strlen(hdr) != hlen)
        rc = dp_errorf(DP_ERR_FORMAT, "%s: a NUL byte in the header", path);
    if (rc == DP_OK)
        rc = parse_dict(a, hdr);
    free(hdr);
    if (rc != DP_OK)
        return rc;
    static const char *ints[] = {"|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", NULL};
    if (want == 'f') {
        if (strcmp(a->descr, "<f4") && strcmp(a->descr, "<f8"))
            return dp_errorf(DP_ERR_FORMAT, "%s: dtype '%s' not supported (want '<f4' or '<f8')", path,
                             DP_ESC(a->descr));
    } else {
        int ok = 0;
        for (int i = 0; ints[i] && !ok; i++)
            ok = !strcmp(a->descr, ints[i]);
        if (!ok)
            return dp_errorf(DP_ERR_FORMAT, "%s: dtype '%s' not supported for labels (want an integer type: '|u1', "
                             "'<i4', '<i8', ...)", path, DP_ESC(a->descr));
    }
    a->kind = a->descr[1];
    a->itemsize = a->descr[2] - '0';
    if (a->fortran)
        return dp_errorf(DP_ERR_FORMAT, "%s: fortran_order True not supported (save with np.ascontiguousarray)", path);
    if (a->ndim != ndim)
        return dp_errorf(DP_ERR_FORMAT, "%s: shape has %d dimensions, want %d (%s)", path, a->ndim, ndim,
                         ndim == 2 ? "rows x features" : "one label a row");
    uint64_t n = a->shape[0], f = ndim == 2 ? a->shape[1] : 1, bytes;
    if (n == 0 || f == 0)
        return dp_errorf(DP_ERR_FORMAT, "%s: empty array (shape has a 0)", path);
    if (ndim == 2 && f > DP_VECTOR_MAX_FEATURES)
        return dp_errorf(DP_ERR_FORMAT, "%s: %" PRIu64 " features, at most %d", path, f, DP_VECTOR_MAX_FEATURES);
    if (n > INT32_MAX || __builtin_mul_overflow(n, f, &bytes) || __builtin_mul_overflow(bytes, (uint64_t)a->itemsize, &bytes))
        return dp_errorf(DP_ERR_FORMAT, "%s: shape too large", path);
    struct stat st;
    if (fstat(fileno(a->f), &st) != 0)
        return dp_errorf(DP_ERR_IO, "%s: stat: %s", path, strerror(errno));
    uint64_t have = (uint64_t)st.st_size - a->data_off;
    if ((uint64_t)st.st_size < a->data_off + bytes)
        return dp_errorf(DP_ERR_FORMAT, "%s: offset %" PRIu64 ": truncated data: shape promises %" PRIu64
                         " bytes, the file holds %" PRIu64, path, (uint64_t)st.st_size, bytes, have);
    if (have > bytes)
        return dp_errorf(DP_ERR_FORMAT, "%s: offset %" PRIu64 ": %" PRIu64 " trailing bytes after the data", path,
                         a->data_off + bytes, have - bytes);
    return DP_OK;
}

/* Y's labels as int32, range-checked; *max_label raised to the largest. */
static dp_status read_labels(npy *a, int32_t **out, int32_t *max_label)
{
    uint64_t n = a->shape[0];
    int32_t *lab = malloc(n * sizeof *lab);
    unsigned char buf[8 * 512];
    if (!lab)
        return dp_errorf(DP_ERR_NOMEM, "%s: out of memory for %" PRIu64 " labels", a->path, n);
    if (fseek(a->f, (long)a->data_off, SEEK_SET) != 0) {
        free(lab);
        return dp_errorf(DP_ERR_IO, "%s: seek: %s", a->path, strerror(errno));
    }
    for (uint64_t i = 0; i < n;) {
        size_t k = n - i < 512 ? (size_t)(n - i) : 512;
        if (fread(buf, (size_t)a->itemsize, k, a->f) != k) {
            free(lab);
            return dp_errorf(ferror(a->f) ? DP_ERR_IO : DP_ERR_FORMAT, "%s: offset %" PRIu64 ": read failed or file "
                             "shrank", a->path, a->data_off + i * (uint64_t)a->itemsize);
        }
        for (size_t j = 0; j < k; j++, i++) {
            const unsigned char *p = buf + j * (size_t)a->itemsize;
            uint64_t u = 0;
            for (int b = 0; b < a->itemsize; b++)
                u |= (uint64_t)p[b] << (8 * b);
            int64_t v = (int64_t)u;
            if (a->kind == 'i' && a->itemsize < 8 && (u >> (8 * a->itemsize - 1)) & 1)
                v = (int64_t)(u | (~0ull << (8 * a->itemsize))); /* sign-extend */
            if ((a->kind == 'u' && u > 65535) || (a->kind == 'i' && (v < 0 || v > 65535))) {
                free(lab);
                char val[32];
                if (a->kind == 'i')
                    snprintf(val, sizeof val, "%" PRId64, v);
                else
                    snprintf(val, sizeof val, "%" PRIu64, u);
                return dp_errorf(DP_ERR_FORMAT, "%s: offset %" PRIu64 ": label %s at row %" PRIu64
                                 " is out of range (labels are 0..65535)", a->path,
                                 a->data_off + i * (uint64_t)a->itemsize, val, i);
            }
            lab[i] = (int32_t)u;
            if (lab[i] > *max_label)
                *max_label = lab[i];
        }
    }
    *out = lab;
    return DP_OK;
}

/* Rows of X are wanted in the shuffled write order. One read per row made the
 * import syscall-bound (a pread costs more than converting the row), so the
 * order is taken a window at a time: the window's rows are sorted by offset,
 * read in runs that cover several rows at once (gaps included while they stay
 * short), and then handed out in order. The window is bounded by bytes, not
 * by the file's size. */
enum { WIN_BYTES = 32 << 20, RUN_BYTES = 1 << 20, GAP_ROWS = 8 };

typedef struct row_window {
    unsigned char *buf;  /* rows of the window, in write order */
    int64_t *key;        /* (row << 24 | slot) sorted: row number and its slot in buf */
    long cap;            /* rows that fit */
    unsigned char *run;  /* RUN_BYTES */
} row_window;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static dp_status pread_all(const npy *a, void *dst, size_t bytes, uint64_t off)
{
    ssize_t got;
    do
        got = pread(fileno(a->f), dst, bytes, (off_t)off);
    while (got < 0 && errno == EINTR);
    if (got != (ssize_t)bytes)
        return dp_errorf(got < 0 ? DP_ERR_IO : DP_ERR_FORMAT, "%s: offset %" PRIu64 ": %s", a->path, off,
                         got < 0 ? strerror(errno) : "file shrank while it was read");
    return DP_OK;
}

/* rows[0..n) (row numbers) into win->buf, slot i holding rows[i]. */
static dp_status window_fill(const npy *a, row_window *win, const int32_t *rows, long n)
{
    const uint64_t rb = a->shape[1] * (uint64_t)a->itemsize;
    for (long i = 0; i < n; i++)
        win->key[i] = (int64_t)rows[i] << 24 | i;
    qsort(win->key, (size_t)n, sizeof *win->key, cmp_i64);
    const long run_rows = (long)(RUN_BYTES / rb);
    for (long i = 0; i < n;) {
        long r0 = (long)(win->key[i] >> 24), j = i + 1;
        while (run_rows > 1 && j < n) {
            long r = (long)(win->key[j] >> 24), prev = (long)(win->key[j - 1] >> 24);
            if (r - r0 >= run_rows || r - prev > GAP_ROWS)
                break;
            j++;
        }
        long last = (long)(win->key[j - 1] >> 24);
        if (j - i == 1) {
            dp_status rc = pread_all(a, win->buf + (win->key[i] & 0xffffff) * rb, rb, a->data_off + r0 * rb);
            if (rc != DP_OK)
                return rc;
        } else {
            dp_status rc = pread_all(a, win->run, (size_t)(last - r0 + 1) * rb, a->data_off + r0 * rb);
            if (rc != DP_OK)
                return rc;
            for (long k = i; k < j; k++)
                memcpy(win->buf + (win->key[k] & 0xffffff) * rb, win->run + ((win->key[k] >> 24) - r0) * rb, rb);
        }
        i = j;
    }
    return DP_OK;
}

/* Row r (its raw bytes) of X as floats into x (F values), finite and within float32's range. */
static dp_status convert_row(const npy *a, uint64_t r, const unsigned char *raw, float *x)
{
    uint64_t f = a->shape[1], off = a->data_off + r * f * (uint64_t)a->itemsize;
    for (uint64_t j = 0; j < f; j++) {
        const unsigned char *p = raw + j * (uint64_t)a->itemsize;
        double v;
        if (a->itemsize == 4) {
            uint32_t u = p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            float fv;
            memcpy(&fv, &u, 4);
            v = fv;
        } else {
            uint64_t u = 0;
            for (int b = 0; b < 8; b++)
                u |= (uint64_t)p[b] << (8 * b);
            memcpy(&v, &u, 8);
        }
        if (!isfinite(v) || fabs(v) > FLT_MAX)
            return dp_errorf(DP_ERR_FORMAT, "%s: offset %" PRIu64 ": row %" PRIu64 ", column %" PRIu64 ": %g is %s",
                             a->path, off + j * (uint64_t)a->itemsize, r, j, v,
                             isfinite(v) ? "out of float32 range" : "not finite");
        x[j] = (float)v;
    }
    return DP_OK;
}

static dp_status write_rows(dp_dataset_writer *w, npy *x, const int32_t *lab, const uint8_t *take, uint8_t want,
                            const dp_import_order *o, int tag, row_window *win, float *row)
{
    long n = (long)x->shape[0], m = 0;
    int32_t *order;
    dp_status rc = dp_imp_order(n, o, tag, &order);
    if (rc != DP_OK)
        return rc;
    for (long k = 0; k < n; k++)
        if (!take || take[order[k]] == want)
            order[m++] = order[k];
    const uint64_t rb = x->shape[1] * (uint64_t)x->itemsize;
    for (long k0 = 0; k0 < m && rc == DP_OK; k0 += win->cap) {
        long k1 = m - k0 < win->cap ? m : k0 + win->cap;
        rc = window_fill(x, win, order + k0, k1 - k0);
        for (long k = k0; k < k1 && rc == DP_OK; k++) {
            long r = order[k];
            rc = convert_row(x, (uint64_t)r, win->buf + (k - k0) * rb, row);
            if (rc == DP_OK)
                rc = dp_dataset_writer_add(w, (uint32_t)lab[r], row);
        }
    }
    free(order);
    return rc;
}

/* X and Y of one split, opened and checked against each other; Y's labels read. */
static dp_status open_pair(npy *x, npy *y, const char *xp, const char *yp, int32_t **lab, int32_t *max_label)
{
    dp_status rc = npy_open(x, xp, 'f', 2);
    if (rc == DP_OK)
        rc = npy_open(y, yp, 'i', 1);
    if (rc == DP_OK && x->shape[0] != y->shape[0])
        rc = dp_errorf(DP_ERR_FORMAT, "%s: %" PRIu64 " labels, but %s has %" PRIu64 " rows", yp, y->shape[0], xp,
                       x->shape[0]);
    if (rc == DP_OK)
        rc = read_labels(y, lab, max_label);
    npy_close(y);
    return rc;
}

dp_status dp_import_npy(const dp_npy_import *in, const dp_import_opts *o, dp_import_stats *st)
{
    double t0 = dp_imp_now();
    dp_import_stats s = {0};
    if (st)
        *st = s;
    const char *x_path = in->x, *y_path = in->y, *test_x = in->test_x, *test_y = in->test_y;
    const dp_import_order *ord = &in->order;
    DP_CHECK(!test_x == !test_y, "--test-x and --test-y: give both or neither");
    DP_CHECK(!(test_x && ord->val_split > 0), "--val-split: not with --test-x/--test-y (the test split is given)");
    dp_status rc = dp_imp_start(o, ord);
    if (rc != DP_OK)
        return rc;
    npy x = {0}, y = {0}, tx = {0}, ty = {0};
    int32_t *lab = NULL, *tlab = NULL, max_label = -1;
    uint8_t *is_val = NULL;
    row_window win = {0};
    float *row = NULL;
    dp_dataset_writer *w = NULL;
    rc = open_pair(&x, &y, x_path, y_path, &lab, &max_label);
    if (rc == DP_OK && test_x) {
        rc = open_pair(&tx, &ty, test_x, test_y, &tlab, &max_label);
        if (rc == DP_OK && tx.shape[1] != x.shape[1])
            rc = dp_errorf(DP_ERR_FORMAT, "%s: %" PRIu64 " features, but %s has %" PRIu64, test_x, tx.shape[1], x_path,
                           x.shape[1]);
    }
    int classes = max_label + 1;
    long n = rc == DP_OK ? (long)x.shape[0] : 0, ntest = 0;
    if (rc == DP_OK && ord->val_split > 0) {
        if (!(is_val = malloc((size_t)n)))
            rc = dp_errorf(DP_ERR_NOMEM, "npy: out of memory");
        else
            dp_stratified_holdout(lab, n, classes, ord->val_split, is_val);
        for (long i = 0; is_val && i < n; i++)
            ntest += is_val[i];
    }
    uint64_t f = rc == DP_OK ? x.shape[1] : 1;
    if (rc == DP_OK) {
        uint64_t rb = f * (uint64_t)(test_x && tx.itemsize > x.itemsize ? tx.itemsize : x.itemsize);
        win.cap = rb >= WIN_BYTES ? 1 : (long)(WIN_BYTES / rb);
        if (win.cap > 1 << 24)
            win.cap = 1 << 24;
        win.buf = malloc((size_t)win.cap * rb);
        win.key = malloc((size_t)win.cap * sizeof *win.key);
        win.run = malloc(RUN_BYTES);
        row = malloc((size_t)f * sizeof *row);
        if (!win.buf || !win.key || !win.run || !row)
            rc = dp_errorf(DP_ERR_NOMEM, "npy: out of memory for a window of %ld rows of %" PRIu64 " features", win.cap,
                           f);
    }
    dp_shard_schema schema = dp_shard_schema_vector((uint32_t)f, (uint32_t)(classes > 0 ? classes : 1));
    if (rc == DP_OK)
        rc = dp_imp_begin(o, x_path, &schema, &w);
    if (rc == DP_OK) {
        rc = dp_dataset_writer_split(w, "train", (uint64_t)(n - ntest), o->nshards);
    }
    if (rc == DP_OK)
        rc = write_rows(w, &x, lab, is_val, 0, ord, 0, &win, row);
    if (rc == DP_OK && (is_val || test_x))
        rc = dp_dataset_writer_split(w, "test", is_val ? (uint64_t)ntest : tx.shape[0], o->nshards);
    if (rc == DP_OK && is_val)
        rc = write_rows(w, &x, lab, is_val, 1, ord, 1, &win, row);
    else if (rc == DP_OK && test_x)
        rc = write_rows(w, &tx, tlab, NULL, 0, ord, 1, &win, row);
    if (rc == DP_OK) {
        rc = dp_dataset_writer_commit(w, &s);
        w = NULL;
    }
    dp_dataset_writer_abort(w);
    if (rc == DP_OK) {
        const char *files[4] = {x_path, y_path, test_x, test_y};
        for (int i = 0; i < 4; i++)
            if (files[i])
                dp_import_count_input(&s, files[i]);
    }
    npy_close(&x);
    npy_close(&tx);
    free(lab);
    free(tlab);
    free(is_val);
    free(win.buf);
    free(win.key);
    free(win.run);
    free(row);
    if (rc != DP_OK)
        return rc;
    s.seconds = dp_imp_now() - t0;
    if (st)
        *st = s;
    return DP_OK;
}
