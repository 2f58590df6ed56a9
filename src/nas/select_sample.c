/* One-shot selection among sampled cells (dptrain/nas_select.h): the
 * trained supernet, cut down to one candidate cell at a time, ranks them on
 * held-out data. A cell is the supernet with its eight ops alive at weight 1
 * and every other op and edge not computed, so the measurement is the cell
 * itself with the supernet's weights, as single-path one-shot NAS evaluates
 * its candidates (Guo et al. 2020). */
#include <stdio.h>
#include <string.h>

#include "dptrain/nas_select.h"
#include "dptrain/rng.h"

enum { NE = DP_NAS_EDGES };

dp_status dp_nas_genotype_weights(const dp_genotype *g, const int *ops, int nops, float *w, float *alive)
{
    const size_t n = (size_t)dp_genotype_cells(g) * NE * (size_t)nops;
    memset(w, 0, n * sizeof *w);
    memset(alive, 0, n * sizeof *alive);
    for (int t = 0; t < dp_genotype_cells(g); t++) {
        const int *gop = dp_genotype_cops(g, t), *gin = dp_genotype_cins(g, t);
        char cell[24];
        if (g->layers > 0) snprintf(cell, sizeof cell, "cell %d", t);
        else snprintf(cell, sizeof cell, "%s cell", t ? "reduce" : "normal");
        for (int node = 0; node < DP_NAS_NODES; node++)
            for (int j = 0; j < 2; j++) {
                const int op = gop[2 * node + j], in = gin[2 * node + j];
                int col = -1;
                for (int k = 0; k < nops; k++)
                    if (ops[k] == op) col = k;
                if (col < 0 || op == DP_NAS_NONE)
                    return dp_errorf(DP_ERR_ARG, "%s, node %d: op %s is not in the supernet's op set", cell, node,
                                     dp_nas_op_name(op));
                if (in < 0 || in > node + 1)
                    return dp_errorf(DP_ERR_ARG, "%s, node %d: input %d is not an earlier state", cell, node, in);
                const size_t at = ((size_t)t * NE + (size_t)dp_nas_edge(node, in)) * (size_t)nops;
                w[at + (size_t)col] = 1.0f;
                alive[at + (size_t)col] = 1.0f;
            }
    }
    return DP_OK;
}

dp_status dp_nas_select_sample(const dp_nas_sample *p, dp_genotype *g, dp_nas_sample_stats *stats)
{
    dp_nas_sample_stats local;
    dp_nas_sample_stats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    const int nfirst = p->first != NULL, n = nfirst + p->ngiven + p->samples;
    if (p->nops < 1 || p->nops > DP_NAS_NUM_OPS || !p->ops || !p->w || !p->alive || !p->eval || p->samples < 0 ||
        p->ngiven < 0 || (p->ngiven && !p->given) || n < 1)
        return dp_errorf(DP_ERR_ARG, "sample selection: %d op columns, %d given cells and %d samples, or a missing "
                         "buffer or callback", p->nops, p->ngiven, p->samples);
    dp_rng r;
    dp_rng_seed(&r, p->seed, DP_STREAM_USER + 8, 0);
    double best[3] = {0}, first[3] = {0};
    for (int i = 0; i < n; i++) {
        dp_genotype cand;
        memset(&cand, 0, sizeof cand);
        if (i < nfirst) cand = *p->first;
        else if (i < nfirst + p->ngiven) cand = p->given[i - nfirst];
        else dp_nas_random_genotype(&r, p->ops, p->nops, 0, &cand);
        dp_status rc = dp_nas_genotype_weights(&cand, p->ops, p->nops, p->w, p->alive);
        double v[3] = {0, 0, 0};
        if (rc == DP_OK) rc = p->eval(p->user, p->w, p->alive, v);
        if (rc != DP_OK) return rc;
        st->evals++;
        const int lead = i == 0 || dp_nas_eval_better(v, best);
        if (i == 0) memcpy(first, v, sizeof first);
        else st->first_rank += dp_nas_eval_better(v, first);
        if (lead) {
            memcpy(best, v, sizeof best);
            *g = cand;
            st->chosen = i;
        }
        if (p->probe) p->probe(p->user, i, &cand, v, lead);
    }
    st->first_rank += 1;
    st->first_acc = first[1] > 0 ? first[0] / first[1] : 0;
    st->best_acc = best[1] > 0 ? best[0] / best[1] : 0;
    return DP_OK;
}
