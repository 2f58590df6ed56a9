/* The DSI model's modules (model.c), shared with the beam search (beam.c).
 * Private to src/dsi. */
#ifndef DP_DSI_MODEL_INTERNAL_H
#define DP_DSI_MODEL_INTERNAL_H

#include "dptrain/dsi.h"

/* Decoder level l of a semantic model: from h [N, hdim] and the trie node v
 * of the prefix (depth l), logits [width] = out(ReLU(a(h) + node[v - base])). */
typedef struct dp_dsi_level {
    dp_linear_layer a;   /* hdim -> dec: A_l h + b_l */
    dp_tensor *node;     /* E_l [nodes, dec], one row per trie node of depth l */
    dp_linear_layer out; /* dec -> width */
    int base, nodes, width;
} dp_dsi_level;

typedef struct dp_dsi_impl {
    const struct dp_dsi_encoder_ops *encoder;
    void *enc;                  /* the encoder's modules */
    dp_linear_layer head;       /* atomic: hdim -> ndocs */
    dp_dsi_level lv[DP_DSI_MAXLEN];
    int hdim, dec;              /* width of h, of the decoder's hidden layer */
    int32_t *path;              /* [ndocs * maxlen]: trie node of document d's prefix of length l */
    uint8_t *reach;             /* [nnodes]: depth of the deepest leaf below (or at) the node */
    float *head_inv;            /* cosine head after dp_dsi_model_freeze: 1 / |w_d| [ndocs], else NULL */
    dp_dsi_lexicon lex;         /* the lexical head's pattern; nterms 0: none */
    dp_postings post;           /* lex as dp_sparse_score reads it */
    dp_tensor *lex_w, *lex_s;   /* lex.w [postings], lex.scale [1], in m->dense */
} dp_dsi_impl;

/* The lexical head's scale at init: BM25's scores as they are. Its logits then
 * sit beside the cosine head's (s cos, s = 64 by default, so a few tens apart
 * from the best document to a random one) on the same footing as BM25's top
 * scores (tens for a query of several rare words); measured in
 * benchmarks/RESULTS.md §16. */
#define DP_DSI_LEX_SCALE0 1.0f

#define DP_DSI_NORM_EPS 1e-12f /* torch.nn.functional.normalize's default */

static inline dp_dsi_impl *dp_dsi_impl_of(const dp_dsi_model *m) { return (dp_dsi_impl *)m->impl; }

#endif
