/* Latency costs for resource-aware search: --profile-ops times every
 * primitive at every place (channels, resolution, stride) the supernet puts
 * it, and the table it writes is read back by --cost-table.
 *
 * Table format, one line per entry after '#' comments:
 *   op C H W stride ms        (ms: median forward + backward of one batch) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/infile.h"
#include "dptrain/fsutil.h"
#include "dptrain/data.h"
#include "dptrain/search.h"
#include "dptrain/darts_ops.h"
#include "dptrain/report.h"
#include "dptrain/text.h"

#define REPS 7

typedef struct cost_entry { int op, C, H, W, stride; double ms; } cost_entry;
struct dp_cost_table { cost_entry *e; int n, cap, missing; };

/* The distinct (C, H, W, stride) places of the supernet's edges, gathered
 * through dp_supernet_costs so that the geometry has one definition. */
typedef struct place_set { int p[64][4], n; } place_set;

static double collect_place(int op, int C, int H, int W, int stride, void *user)
{
    (void)op;
    place_set *ps = user;
    const int cand[4] = {C, H, W, stride};
    for (int j = 0; j < ps->n; j++)
        if (!memcmp(ps->p[j], cand, sizeof cand)) return 0;
    if (ps->n < 64) memcpy(ps->p[ps->n++], cand, sizeof cand);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static dp_status time_op(int op, const int *pl, int batch, double *ms)
{
    dp_params p;
    memset(&p, 0, sizeof p);
    dp_darts_op o;
    memset(&o, 0, sizeof o);
    dp_darts_op_init(&o, &p, "op", op, pl[0], pl[3], 0, 1);
    dp_status rc = dp_params_finalize(&p);
    if (rc != DP_OK) return rc;
    dp_rng r;
    dp_rng_seed(&r, 1, DP_STREAM_USER + 5, 0);
    dp_params_init(&p, &r);
    size_t nx = (size_t)batch * (size_t)pl[0] * (size_t)pl[1] * (size_t)pl[2];
    float *x = malloc(nx * sizeof *x);
    if (!x) {
        dp_params_free(&p);
        return dp_errorf(DP_ERR_NOMEM, "--profile-ops: out of memory");
    }
    for (size_t i = 0; i < nx; i++) x[i] = dp_rng_normal(&r);
    dp_ctx c;
    dp_ctx_init(&c);
    double t[REPS + 1];
    for (int rep = 0; rep <= REPS && rc == DP_OK; rep++) {
        double t0 = dp_now();
        dp_ctx_reset(&c);
        int shape[4] = {batch, pl[0], pl[1], pl[2]};
        dp_tensor *in = dp_tensor_wrap(&c, x, 4, shape);
        in->requires_grad = 1; /* inside a cell the input's gradient is always wanted */
        dp_tensor *y = dp_darts_op_forward(&c, &o, in);
        if (!y) {
            rc = c.status;
            break;
        }
        float *gy = dp_arena_alloc(&c.arena, (size_t)y->n * sizeof *gy), *gx = dp_arena_alloc(&c.arena, nx * sizeof *gx);
        memset(gx, 0, nx * sizeof *gx);
        for (long i = 0; i < y->n; i++) gy[i] = 1.0f;
        in->grad = gx;
        y->grad = gy;
        dp_params_zero_grad(&p);
        rc = dp_backward(&c, y);
        t[rep] = (dp_now() - t0) * 1e3;
    }
    qsort(t + 1, REPS, sizeof *t, cmp_double); /* the first run warms caches and the arena */
    *ms = t[1 + REPS / 2];
    dp_ctx_free(&c);
    free(x);
    dp_params_free(&p);
    return rc;
}

dp_status dp_search_profile_ops(const dp_search_config *cfg, const char *path)
{
    dp_supernet_config net = cfg->net;
    dp_manifest *man = NULL;
    dp_status rc = dp_manifest_load(cfg->run.data, &man);
    if (rc != DP_OK) return rc;
    net.in = (dp_model_shape){(int)man->schema.param[0], (int)man->schema.param[1], (int)man->schema.param[2],
                              (int)man->schema.param[3]};
    dp_manifest_free(man);
    dp_supernet *sn = NULL;
    rc = dp_supernet_build(&net, &sn);
    if (rc != DP_OK) return rc;
    place_set ps = {.n = 0};
    double *sums = malloc((size_t)dp_supernet_types(&net) * DP_NAS_EDGES * (size_t)net.nops * sizeof *sums);
    if (sums) dp_supernet_costs(sn, collect_place, &ps, sums);
    free(sums);
    dp_supernet_free(sn);
    if (!sums) return dp_errorf(DP_ERR_NOMEM, "--profile-ops: out of memory");
    int (*pl)[4] = ps.p, np = ps.n;
    size_t cap = 256 + (size_t)np * (size_t)cfg->net.nops * 64;
    char *buf = malloc(cap);
    if (!buf) return dp_errorf(DP_ERR_NOMEM, "--profile-ops: out of memory");
    size_t len = (size_t)snprintf(buf, cap, "# dptrain search --profile-ops: batch %d, forward + backward, median of %d\n"
                                            "# op C H W stride ms\n", cfg->run.batch, REPS);
    for (int k = 0; k < cfg->net.nops && rc == DP_OK; k++) {
        int op = cfg->net.ops[k];
        for (int j = 0; j < np && rc == DP_OK; j++) {
            double ms = 0;
            if (op != DP_NAS_NONE) rc = time_op(op, pl[j], cfg->run.batch, &ms);
            if (rc == DP_OK)
                len += (size_t)snprintf(buf + len, cap - len, "%s %d %d %d %d %.4f\n", dp_nas_op_name(op), pl[j][0],
                                        pl[j][1], pl[j][2], pl[j][3], ms);
            if (rc == DP_OK && !cfg->run.quiet)
                fprintf(stderr, "%-14s C=%-4d %3dx%-3d stride %d: %8.3f ms\n", dp_nas_op_name(op), pl[j][0], pl[j][1],
                        pl[j][2], pl[j][3], ms);
        }
    }
    if (rc == DP_OK) rc = dp_write_file_atomic(path, buf, len);
    free(buf);
    return rc;
}

dp_status dp_cost_table_load(const char *path, dp_cost_table **out)
{
    *out = NULL;
    FILE *f;
    if (dp_fopen_regular(path, 0, &f) != DP_OK) return dp_errorf(DP_ERR_IO, "%s (the cost table)", dp_errmsg());
    dp_cost_table *t = calloc(1, sizeof *t);
    char line[256];
    int lineno = 0, eof = 0;
    size_t len;
    dp_status rc = t ? DP_OK : dp_errorf(DP_ERR_NOMEM, "out of memory");
    /* whole lines: a long one is refused, not handed over in pieces, and a NUL in one is refused, not a cut */
    while (rc == DP_OK && (rc = dp_line_read(f, path, ++lineno, line, sizeof line, &len, &eof)) == DP_OK && !eof) {
        if (line[0] == '#' || len == 0) continue;
        char name[32];
        cost_entry e;
        char extra;
        if (sscanf(line, "%31s %d %d %d %d %lf %c", name, &e.C, &e.H, &e.W, &e.stride, &e.ms, &extra) != 6 ||
            (e.op = dp_nas_op_parse(name)) < 0 || e.C < 1 || e.H < 1 || e.W < 1 || e.stride < 1 || e.stride > 2 ||
            !isfinite(e.ms) || e.ms < 0) {
            rc = dp_errorf(DP_ERR_FORMAT, "%s:%d: expected 'op C H W stride ms' with a known op and ms >= 0", path,
                           lineno);
            break;
        }
        if (t->n == t->cap) {
            int cap = t->cap ? 2 * t->cap : 64;
            cost_entry *ne = realloc(t->e, (size_t)cap * sizeof *ne);
            if (!ne) {
                rc = dp_errorf(DP_ERR_NOMEM, "out of memory");
                break;
            }
            t->e = ne, t->cap = cap;
        }
        t->e[t->n++] = e;
    }
    fclose(f);
    if (rc == DP_OK && t->n == 0) rc = dp_errorf(DP_ERR_FORMAT, "%s: no entries", path);
    if (rc != DP_OK) {
        dp_cost_table_free(t);
        return rc;
    }
    *out = t;
    return DP_OK;
}

double dp_cost_table_lookup(int op, int C, int H, int W, int stride, void *table)
{
    dp_cost_table *t = table;
    for (int i = 0; i < t->n; i++) {
        const cost_entry *e = &t->e[i];
        if (e->op == op && e->C == C && e->H == H && e->W == W && e->stride == stride) return e->ms;
    }
    t->missing++;
    return -1e30; /* poisons the sum, so the caller sees the gap */
}

void dp_cost_table_free(dp_cost_table *t)
{
    if (!t) return;
    free(t->e);
    free(t);
}
