/* Random architectures of the search space: the NAS sanity baseline (Li and
 * Talwalkar 2019; Yang et al. 2020) that a derived cell must beat. */
#include "dptrain/supernet.h"

void dp_nas_random_genotype(dp_rng *r, const int *ops, int nops, dp_genotype *g)
{
    int live[DP_NAS_NUM_OPS], nl = 0;
    for (int k = 0; k < nops; k++)
        if (ops[k] != DP_NAS_NONE) live[nl++] = ops[k];
    for (int t = 0; t < 2; t++) {
        int *op = t ? g->reduce_op : g->normal_op, *in = t ? g->reduce_in : g->normal_in;
        for (int node = 0; node < DP_NAS_NODES; node++) {
            /* two distinct earlier states, as the derivation keeps two distinct edges */
            int a = (int)dp_rng_below(r, (uint64_t)(node + 2)), b = (int)dp_rng_below(r, (uint64_t)(node + 1));
            if (b >= a) b++;
            in[2 * node] = a < b ? a : b;
            in[2 * node + 1] = a < b ? b : a;
            op[2 * node] = live[dp_rng_below(r, (uint64_t)nl)];
            op[2 * node + 1] = live[dp_rng_below(r, (uint64_t)nl)];
        }
    }
}
