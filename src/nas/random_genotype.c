/* Random architectures of the search space: the NAS sanity baseline (Li and
 * Talwalkar 2019; Yang et al. 2020) that a derived cell must beat. */
#include <string.h>

#include "dptrain/supernet.h"

void dp_nas_random_genotype(dp_rng *r, const int *ops, int nops, int layers, dp_genotype *g)
{
    int live[DP_NAS_NUM_OPS], nl = 0;
    for (int k = 0; k < nops; k++)
        if (ops[k] != DP_NAS_NONE) live[nl++] = ops[k];
    memset(g, 0, sizeof *g);
    g->layers = layers > 0 ? layers : 0;
    for (int t = 0; t < dp_genotype_cells(g); t++) {
        int *op = dp_genotype_ops(g, t), *in = dp_genotype_ins(g, t);
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
