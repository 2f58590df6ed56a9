/* Perturbation-based selection (dptrain/nas_select.h): the algorithm over the
 * evaluate / tune callbacks, and one evaluation batch of a supernet.
 *
 * Removing op k of an edge is alive[k] = 0 for one evaluation: the op is not
 * computed and the others keep their weights (no renormalisation), as in the
 * paper's code, so the measurement is "the supernet without this op's
 * contribution". A chosen edge becomes the chosen op at weight 1. */
#include <string.h>

#include "dptrain/nas_select.h"
#include "dptrain/rng.h"

enum { NE = DP_NAS_EDGES };

static const char *const select_names[] = {"alpha", "perturb", "sample"};

const char *dp_nas_select_name(dp_nas_select s)
{
    return (unsigned)s < 3 ? select_names[s] : "unknown";
}

dp_status dp_nas_select_parse(const char *name, dp_nas_select *out)
{
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, select_names[i])) {
            *out = (dp_nas_select)i;
            return DP_OK;
        }
    return dp_errorf(DP_ERR_ARG, "--select: '%s' is not alpha, perturb or sample", name ? name : "(null)");
}

typedef struct sel {
    const dp_nas_perturb *p;
    dp_nas_perturb_stats *st;
    int dead[2][NE]; /* edges with no op present */
    int col[2][NE];  /* the chosen column of each edge */
} sel;

static dp_status eval(sel *s, double *v)
{
    v[0] = v[1] = v[2] = 0;
    s->st->evals++;
    return s->p->eval(s->p->user, s->p->w, s->p->alive, v);
}

static void probe(const sel *s, int phase, int cell, int edge, int col, const double *v, int kept)
{
    if (!s->p->probe) return;
    dp_nas_probe r = {phase, cell, edge, col, {v[0], v[1], v[2]}, kept};
    s->p->probe(s->p->user, &r);
}

static float *row_of(float *base, const dp_nas_perturb *p, int t, int e)
{
    return base + ((size_t)t * NE + (size_t)e) * (size_t)p->nops;
}

/* Edge e of cell type t: its op, and the edge projected onto it. */
static dp_status choose_op(sel *s, int t, int e)
{
    const dp_nas_perturb *p = s->p;
    float *w = row_of(p->w, p, t, e), *a = row_of(p->alive, p, t, e);
    int cand = 0, best = -1, first_real = -1;
    for (int k = 0; k < p->nops; k++) {
        if (p->ops[k] == DP_NAS_NONE) continue;
        if (first_real < 0) first_real = k;
        if (a[k] != 0.0f) cand++, best = best < 0 ? k : best;
    }
    double bv[3] = {0, 0, 0}, v[3];
    if (cand > 1) {
        best = -1;
        for (int k = 0; k < p->nops; k++) {
            if (p->ops[k] == DP_NAS_NONE || a[k] == 0.0f) continue;
            const float keep = a[k];
            a[k] = 0.0f;
            dp_status rc = eval(s, v);
            a[k] = keep;
            if (rc != DP_OK) return rc;
            probe(s, 0, t, e, k, v, 0);
            if (best < 0 || dp_nas_eval_better(bv, v)) best = k, memcpy(bv, v, sizeof bv);
        }
        probe(s, 0, t, e, best, bv, 1);
    }
    s->dead[t][e] = cand == 0;
    s->col[t][e] = cand ? best : first_real; /* a dead edge names an op but computes nothing */
    for (int k = 0; k < p->nops; k++) {
        const int on = cand && k == best;
        w[k] = on ? 1.0f : 0.0f;
        a[k] = on ? 1.0f : 0.0f;
    }
    return DP_OK;
}

/* Node i of cell type t: its two incoming edges (in[0] the more important), the others dropped. */
static dp_status choose_edges(sel *s, int t, int node, int *in)
{
    const dp_nas_perturb *p = s->p;
    const int e0 = dp_nas_edge(node, 0), n = node + 2;
    double v[DP_NAS_NODES + 1][3];
    in[0] = in[1] = -1;
    int live = 0;
    for (int j = 0; j < n; j++) live += !s->dead[t][e0 + j];
    for (int j = 0; j < n && live > 2; j++) {
        if (s->dead[t][e0 + j]) continue;
        float *a = row_of(p->alive, p, t, e0 + j);
        const int k = s->col[t][e0 + j];
        a[k] = 0.0f;
        dp_status rc = eval(s, v[j]);
        a[k] = 1.0f;
        if (rc != DP_OK) return rc;
        probe(s, 1, t, e0 + j, -1, v[j], 0);
    }
    /* the two live edges that hurt most (with two live edges or fewer: those, in order), then dead ones */
    for (int slot = 0; slot < 2; slot++) {
        int best = -1;
        for (int j = 0; j < n; j++) {
            if (s->dead[t][e0 + j] || j == in[0]) continue;
            if (best < 0 || (live > 2 && dp_nas_eval_better(v[best], v[j]))) best = j;
        }
        for (int j = 0; j < n && best < 0; j++)
            if (j != in[0]) best = j;
        in[slot] = best;
        if (live > 2) probe(s, 1, t, e0 + best, -1, v[best], 1);
    }
    for (int j = 0; j < n; j++)
        if (j != in[0] && j != in[1]) {
            memset(row_of(p->w, p, t, e0 + j), 0, (size_t)p->nops * sizeof(float));
            memset(row_of(p->alive, p, t, e0 + j), 0, (size_t)p->nops * sizeof(float));
        }
    return DP_OK;
}

static dp_status tune(sel *s)
{
    if (!s->p->tune) return DP_OK;
    s->st->tunes++;
    return s->p->tune(s->p->user, s->p->w, s->p->alive);
}

dp_status dp_nas_select_perturb(const dp_nas_perturb *p, dp_genotype *g, dp_nas_perturb_stats *stats)
{
    dp_nas_perturb_stats local;
    sel s;
    memset(&s, 0, sizeof s);
    s.p = p;
    s.st = stats ? stats : &local;
    memset(s.st, 0, sizeof *s.st);
    if (p->nops < 1 || p->nops > DP_NAS_NUM_OPS || !p->ops || !p->w || !p->alive || !p->eval)
        return dp_errorf(DP_ERR_ARG, "perturbation selection: %d op columns, or a missing buffer or callback", p->nops);
    int real = 0;
    for (int k = 0; k < p->nops; k++) {
        if (p->ops[k] < 0 || p->ops[k] >= DP_NAS_NUM_OPS)
            return dp_errorf(DP_ERR_ARG, "perturbation selection: column %d names op %d, not a primitive", k, p->ops[k]);
        real += p->ops[k] != DP_NAS_NONE;
    }
    if (!real) return dp_errorf(DP_ERR_ARG, "perturbation selection: the op set holds nothing but none");

    double v[3];
    dp_status rc = eval(&s, v);
    if (rc != DP_OK) return rc;
    probe(&s, -1, -1, -1, -1, v, 0);
    s.st->base_acc = v[1] > 0 ? v[0] / v[1] : 0;

    /* the paper's random edge order, from a stream of its own: the same on every rank */
    dp_rng r;
    dp_rng_seed(&r, p->seed, DP_STREAM_USER + 7, 0);
    int32_t edges[2][NE], nodes[2][DP_NAS_NODES - 1];
    for (int t = 0; t < 2; t++) {
        for (int e = 0; e < NE; e++) edges[t][e] = e;
        for (int i = 0; i < DP_NAS_NODES - 1; i++) nodes[t][i] = i + 1; /* node 0 has only its two edges */
        dp_rng_shuffle_i32(&r, edges[t], NE);
        dp_rng_shuffle_i32(&r, nodes[t], DP_NAS_NODES - 1);
    }
    const int rounds = NE + DP_NAS_NODES - 1;
    int in[2][2 * DP_NAS_NODES];
    for (int t = 0; t < 2; t++) in[t][0] = 0, in[t][1] = 1;
    for (int round = 0; round < rounds && rc == DP_OK; round++) {
        for (int t = 0; t < 2 && rc == DP_OK; t++) {
            if (round < NE) {
                rc = choose_op(&s, t, edges[t][round]);
            } else {
                const int node = nodes[t][round - NE];
                rc = choose_edges(&s, t, node, in[t] + 2 * node);
            }
        }
        if (rc == DP_OK && round + 1 < rounds) rc = tune(&s);
    }
    if (rc != DP_OK) return rc;
    memset(g, 0, sizeof *g);
    for (int t = 0; t < 2; t++) {
        int *gop = dp_genotype_ops(g, t), *gin = dp_genotype_ins(g, t);
        for (int i = 0; i < DP_NAS_NODES; i++) {
            const int e0 = 2 * i + i * (i - 1) / 2;
            for (int j = 0; j < 2; j++) {
                gin[2 * i + j] = in[t][2 * i + j];
                gop[2 * i + j] = p->ops[s.col[t][e0 + in[t][2 * i + j]]];
            }
        }
    }
    return DP_OK;
}

dp_status dp_supernet_eval_weights(dp_supernet *sn, dp_ctx *c, dp_tensor *x, const int32_t *y, const float *w,
                                   const float *alive, double *v)
{
    if (!x) return c->status != DP_OK ? c->status : dp_errorf(DP_ERR_ARG, "supernet evaluation: no input");
    const int training = c->training, grad = c->grad_enabled;
    c->training = 1;
    c->grad_enabled = 0;
    long correct = 0;
    dp_tensor *logits = dp_supernet_forward_host(sn, c, x, w, alive);
    dp_tensor *loss = logits ? dp_cross_entropy(c, logits, y, &correct) : NULL;
    c->training = training;
    c->grad_enabled = grad;
    if (!loss) return c->status != DP_OK ? c->status : dp_errorf(DP_ERR_SHAPE, "supernet evaluation: forward failed");
    const double bs = (double)x->shape[0];
    v[0] += (double)correct;
    v[1] += bs;
    v[2] += (double)loss->data[0] * bs;
    return DP_OK;
}
