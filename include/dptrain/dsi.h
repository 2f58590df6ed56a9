/* Differentiable Search Index (Tay et al. 2022) and decentralised De-DSI
 * ensembles (Neague et al. 2024): a query's hashed n-grams -> an encoder ->
 * a document identifier, atomic (one softmax over the documents) or semantic
 * (a digit sequence from hierarchical k-means, decoded level by level).
 *
 * Flow: dsi-prepare (TSV or Debian package index) -> tokenised query shards +
 * docs.tsv per dataset dir -> dsi-train (one model per member communicator)
 * -> member checkpoints -> dsi-query / dsi-eval (beam search in each member,
 * softmax-normalised beam scores summed per docid). BM25 is the baseline.
 *
 * Every function returning dp_status sets dp_errmsg() on failure, naming the
 * file (and line or field) at fault. */
#ifndef DPTRAIN_DSI_H
#define DPTRAIN_DSI_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/nn.h"
#include "dptrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================ tokenizer */
/* src/dsi/tokenize.c. Text is lower-cased ASCII-wise; a word is a maximal run
 * of [a-z0-9] or of bytes >= 0x80 (UTF-8 kept whole); everything else
 * separates words. Features: each word, each pair of adjacent words, each
 * character 3-gram of "#word#" (fastText's boundary marks), each hashed with
 * xxHash3 under a seed per feature kind, then reduced mod `buckets`. */

typedef struct dp_dsi_tok_config {
    uint32_t buckets;   /* hash buckets (the embedding rows), default 1 << 18 */
    int words, bigrams, trigrams; /* feature kinds, 1 = on (default all on) */
    int max_tokens;     /* features kept per text, the first ones (default 256) */
} dp_dsi_tok_config;

void dp_dsi_tok_defaults(dp_dsi_tok_config *c);
/*! DP_ERR_ARG naming the field (buckets 1..2^30, max_tokens 1..65536, some kind on). */
dp_status dp_dsi_tok_check(const dp_dsi_tok_config *c);
/*! Hashed features of `text` (NUL-terminated) into out[0 .. min(n, cap)).
 *  @return n, the number written (words first, then bigrams, then trigrams,
 *  each in text order; cut at cfg->max_tokens and at cap). */
int dp_dsi_tokenize(const dp_dsi_tok_config *cfg, const char *text, uint32_t *out, int cap);
/*! 64-bit hashes of the lower-cased words of `text` (for BM25): returns the
 *  number written, at most cap. */
int dp_dsi_words(const char *text, uint64_t *out, int cap);

/* ============================================================ datasets */
/* A DSI dataset directory (written by dp_dsi_prepare, layout in
 * shards/README.md): manifest.txt with token-record shards in splits "train",
 * "test" and "index" (indexing examples; may be absent), docs.tsv (line i:
 * docid string of local document i), train.tsv / test.tsv (query<TAB>docid,
 * the plain layout, for BM25 and dsi-eval), tokenizer.txt (the dp_dsi_tok_config
 * that made the shards). A token record is uint32 LE: [doc, tok_1 .. tok_n],
 * doc < number of documents, tok < buckets. */

typedef struct dp_dsi_set {
    long n;          /* examples */
    int32_t *doc;    /* [n] document index */
    int64_t *off;    /* [n + 1]: example i's tokens are tok[off[i] .. off[i+1]) */
    int32_t *tok;    /* token ids (int32: what dp_embedding_bag takes) */
} dp_dsi_set;

typedef struct dp_dsi_data {
    char dir[512];
    dp_dsi_tok_config tok;
    int ndocs;
    char **names;    /* [ndocs] docid strings */
    dp_dsi_set train, test, index;
    uint64_t manifest_hash;
} dp_dsi_data;

/*! Loads every split of the dataset in `dir` (all of it: DSI sets are small),
 *  checking shards against manifest and headers, doc < ndocs and tok < buckets.
 *  @return DP_OK, DP_ERR_IO, DP_ERR_FORMAT (file and record named), DP_ERR_NOMEM. */
dp_status dp_dsi_data_load(const char *dir, dp_dsi_data *out);
void dp_dsi_data_free(dp_dsi_data *d);
void dp_dsi_set_free(dp_dsi_set *s);

/*! Query<TAB>docid pairs of a plain TSV (dsi-eval's test file). */
typedef struct dp_dsi_pairs {
    long n;
    char **query, **docid;
    char source[512]; /* the file read, for messages ("" when built in memory) */
} dp_dsi_pairs;
/*! Reads a plain `query<TAB>docid` file; with `dedupe`, identical pairs are kept once.
 *  DP_ERR_FORMAT names file and line (missing tab, empty field). */
dp_status dp_dsi_pairs_load(const char *path, int dedupe, dp_dsi_pairs *out);
void dp_dsi_pairs_free(dp_dsi_pairs *p);

/* How dsi-prepare keeps test queries out of what the model and BM25 are shown. */
typedef enum dp_dsi_split_kind {
    /* The document's text is the index: indexing examples come from it and BM25
     * indexes it (text.tsv). Test queries are whole sentences (queries) held out
     * of the document: every occurrence is cut from its text before indexing,
     * and a test query still found inside any indexed text or training query is
     * dropped from the test set, so none is a substring of anything shown. */
    DP_DSI_SPLIT_TEXT = 0,
    /* The first split: indexing examples from each document's training queries
     * (or the --docs text, as given), BM25 over train.tsv; no text.tsv. */
    DP_DSI_SPLIT_QUERIES = 1,
} dp_dsi_split_kind;

typedef struct dp_dsi_prepare_config {
    /* inputs: either the Debian package index ... */
    char debian_packages[512];     /* `apt-cache dumpavail` output */
    char debian_translations[512]; /* Translation-en text (apt-helper cat-file) */
    /* ... or query-docid TSV (ORCAS: query_id, query, doc_id, url; or plain: query, docid) */
    char queries[512];
    char docs[512];                /* optional docid<TAB>text: indexing examples from the text */
    char out[512];
    dp_dsi_tok_config tok;
    int members[8];                /* ensemble sizes to write (each S > 1 -> out/m<S>/<k>) */
    int nmembers;
    int kmeans_members;            /* 1: group documents by k-means over their query vectors; 0: random */
    int index_examples;            /* indexing examples per document (0 = none) */
    double test_fraction;          /* of each document's queries (default 0.5) */
    long limit_docs;               /* keep a random subset of this many documents (0 = all) */
    int min_words;                 /* a long-description sentence needs this many words (default 3) */
    uint64_t seed;
    int overwrite;                 /* 1: replace out whatever it holds; 0: only an earlier dsi-prepare output */
    int split_lists;               /* 1: also cut long descriptions at paragraph breaks and list bullets
                                      (default 0: only after . ! ?, the rule that reproduces the reference
                                      De-DSI counts of documents and queries, benchmarks/RESULTS.md §9) */
    dp_dsi_split_kind split;       /* default DP_DSI_SPLIT_TEXT, recorded as the manifest's "split-rule text";
                                      DP_DSI_SPLIT_QUERIES writes no such line (as before it existed) */
} dp_dsi_prepare_config;

typedef struct dp_dsi_prepare_stats {
    long docs, train_queries, test_queries, index_examples;
    long dropped_shared_queries, dropped_docs;
    long cut_from_text;      /* text split: occurrences of test queries cut out of their documents' text */
    long dropped_test_in_text; /* text split: test queries left out, still inside an indexed text or a train query */
    double seconds;
} dp_dsi_prepare_stats;

void dp_dsi_prepare_defaults(dp_dsi_prepare_config *c);
/*! Builds the dataset dirs: out/ (every document: the centralised model's
 *  data) and out/m<S>/<k>/ for k < S for each S in members. */
dp_status dp_dsi_prepare(const dp_dsi_prepare_config *cfg, dp_dsi_prepare_stats *st);

/* ============================================================ k-means */
/* src/dsi/kmeans.c: spherical k-means over L2-normalised sparse rows,
 * k-means++ seeding from `seed`; deterministic for a seed. */

typedef struct dp_sparse_rows {
    int n;
    uint32_t dim;
    int64_t *off;    /* [n + 1] */
    uint32_t *idx;   /* sorted within a row */
    float *val;
} dp_sparse_rows;
void dp_sparse_rows_free(dp_sparse_rows *x);

/*! TF-IDF vector of each document from the token ids of its examples in s
 *  (tf = count, idf = log((1 + ndocs) / (1 + df)) + 1), L2-normalised. */
dp_status dp_dsi_tfidf(const dp_dsi_set *s, int ndocs, uint32_t dim, dp_sparse_rows *out);
/*! Clusters rows[0..nrows) of x into k groups: assign[i] in [0, k) for rows[i].
 *  Empty clusters are refilled by splitting the largest; when the rows cannot
 *  be told apart (fewer distinct rows than k), they are dealt round-robin. */
dp_status dp_kmeans(const dp_sparse_rows *x, const int *rows, int nrows, int k, int iters, uint64_t seed,
                    int *assign);

/* ============================================================ docids */
/* src/dsi/docids.c. A document's id is a digit sequence; the trie holds every
 * valid sequence. Atomic: one digit, the document index. Semantic: digits of
 * nested k-means clusters (k per level) until a group has at most `leaf`
 * documents, then the position in the group. */

enum { DP_DSI_MAXLEN = 12 };
typedef enum dp_dsi_docid_kind { DP_DSI_ATOMIC = 0, DP_DSI_SEMANTIC = 1 } dp_dsi_docid_kind;

typedef struct dp_dsi_trie {
    int nnodes;          /* node 0 = root */
    int *depth;          /* [nnodes] */
    int *first, *count;  /* [nnodes] children are nodes first .. first+count-1, by digit */
    int *digit;          /* [nnodes] the digit leading to the node (root: -1) */
    int *doc;            /* [nnodes] the document a leaf names, else -1 */
    int *level_base;     /* [maxlen + 2]: nodes of depth l (0 = root .. maxlen) are level_base[l] .. level_base[l+1]-1 */
} dp_dsi_trie;

typedef struct dp_dsi_docids {
    dp_dsi_docid_kind kind;
    int ndocs, maxlen;
    uint8_t *len;        /* [ndocs] */
    uint16_t *code;      /* [ndocs * maxlen] digits, row d = document d */
    int width[DP_DSI_MAXLEN]; /* logits at level l: the largest digit used there + 1 */
    int *leaf;           /* [ndocs] trie node of document d */
    dp_dsi_trie trie;
} dp_dsi_docids;

dp_status dp_dsi_docids_atomic(int ndocs, dp_dsi_docids *out);
/*! Semantic ids from document vectors x (one row per document). */
dp_status dp_dsi_docids_semantic(const dp_sparse_rows *x, int k, int leaf, uint64_t seed, dp_dsi_docids *out);
/*! Rebuilds trie, leaf and width from kind, ndocs, maxlen, len and code
 *  (after loading a checkpoint); DP_ERR_FORMAT when two documents share an id. */
dp_status dp_dsi_docids_index(dp_dsi_docids *ids);
void dp_dsi_docids_free(dp_dsi_docids *ids);

/* ============================================================ model */
/* src/dsi/model.c. Encoder: mean embedding-bag [buckets, embed] -> `layers`
 * x (linear hidden, ReLU, dropout) -> h [N, hidden]. Atomic head: linear
 * hidden -> ndocs. Semantic decoder, separate weights per level l:
 * g = ReLU(A_l h + E_l[prefix node]) -> linear -> width[l] logits, where
 * E_l embeds the trie node of the prefix so far (teacher forcing in training).
 * The embedding table lives in its own registry so the trainer can update
 * and allreduce only the rows a step touched. */

/* Atomic head: logits = W h + b (dot), or s cos(h, w_d) (cosine: h and the
 * rows of W L2-normalised, no bias, one fixed scale s), which keeps the
 * logits of separately trained ensemble members on one scale. */
typedef enum dp_dsi_head_kind { DP_DSI_HEAD_DOT = 0, DP_DSI_HEAD_COSINE = 1 } dp_dsi_head_kind;
/* Query encoders (src/dsi/encoder.c's table): the bag of n-grams' mean embedding, then a ReLU MLP;
 * a pre-norm Transformer over the bag's features in order (encoder_transformer.c);
 * idf: the bag's softmax-weighted mean (weights start as the rows' IDF) beside its max, then the MLP;
 * idf-mean: the weighted mean alone (encoder_idf.c). */
typedef enum dp_dsi_encoder_kind {
    DP_DSI_ENCODER_BAG_MLP = 0,
    DP_DSI_ENCODER_TRANSFORMER = 1,
    DP_DSI_ENCODER_IDF = 2,
    DP_DSI_ENCODER_IDF_MEAN = 3,
} dp_dsi_encoder_kind;

/* A lexicon: the posting pattern of the lexical head (src/dsi/lexicon.c), BM25's
 * inverted index over the token ids of the words of each document's indexed
 * text (the tokenizer's word ids: the word's hash mod the token space).
 * Terms ascending by token id; a term's postings ascending by document. */
typedef struct dp_dsi_lexicon {
    int nterms, ndocs;
    uint32_t token_space;
    uint32_t *tok;   /* [nterms] token id of each term, strictly ascending, < token_space */
    int64_t *off;    /* [nterms + 1] term t's postings: [off[t], off[t+1]) */
    int32_t *doc;    /* [off[nterms]] documents, strictly ascending within a term, < ndocs */
    float *w0;       /* [off[nterms]] BM25's weight of each posting (the head's init); NULL when loaded */
} dp_dsi_lexicon;

/*! The lexicon of texts[0 .. ndocs) (NULL: an empty document) with BM25's
 *  posting weights for k1, b (dp_bm25_build's, over word token ids instead of
 *  64-bit word hashes: the same unless two words share a token id). */
dp_status dp_dsi_lexicon_build(int ndocs, const char *const *texts, uint32_t token_space, float k1, float b,
                               dp_dsi_lexicon *out);
/*! The same over a dataset dir's indexed text, as dsi-eval's BM25 reads it
 *  (text.tsv, else train.tsv), each line's text joined to document names[i]'s;
 *  lines naming another docid are left out. */
dp_status dp_dsi_lexicon_from_dir(const char *dir, char *const *names, int ndocs, uint32_t token_space, float k1,
                                  float b, dp_dsi_lexicon *out);
/*! DP_ERR_FORMAT naming `who` and the field when the pattern is not one
 *  (sizes, order, token ids < token_space, docs < ndocs). */
dp_status dp_dsi_lexicon_check(const dp_dsi_lexicon *L, const char *who);
/*! The term of token id t, or -1. */
int dp_dsi_lexicon_term(const dp_dsi_lexicon *L, uint32_t t);
void dp_dsi_lexicon_free(dp_dsi_lexicon *L);

typedef struct dp_dsi_model_config {
    uint32_t buckets; /* embedding rows */
    /* Token ids are < token_space (the tokenizer's buckets; 0 = buckets); id t
     * reads embedding row t % buckets. A token space wider than the table keeps
     * the vocabulary below (and so a member's coverage) nearly free of hash
     * collisions without a larger embedding table. */
    uint32_t token_space;
    int embed, hidden, layers;
    float dropout;
    int head;         /* dp_dsi_head_kind (atomic ids only) */
    int encoder;      /* dp_dsi_encoder_kind */
    float head_scale; /* cosine: s */
    float lex_scale;  /* the lexical head's learned scale at init (0: DP_DSI_LEX_SCALE0) */
    /* transformer: width embed, `layers` blocks, FFN width hidden, `heads`
     * attention heads (dividing embed), a learned position table of
     * `positions` rows (a bag's features past it are left out) */
    int heads, positions;
} dp_dsi_model_config;

typedef struct dp_dsi_model {
    dp_dsi_model_config cfg;
    dp_dsi_docids ids;   /* owned */
    dp_params emb;       /* the embedding table only */
    dp_params dense;     /* everything else */
    /* Bitmap over the token space: the tokens of the member's training data. The
     * encoder drops every other token (its embedding row was never trained:
     * still its N(0, 1) init, noise of the size of a real word). NULL: all. */
    uint8_t *known;
    void *impl;
} dp_dsi_model;

void dp_dsi_model_defaults(dp_dsi_model_config *c);
/*! Builds (parameters finalised, not initialised) a model for `ids`, which it
 *  takes over (*ids is zeroed). */
dp_status dp_dsi_model_build(const dp_dsi_model_config *cfg, dp_dsi_docids *ids, dp_dsi_model **out);
/*! The same with a lexical head beside the atomic one (lex: NULL or no terms:
 *  none), which it takes over as it takes ids (*lex zeroed; given back on
 *  failure). The head's logits are s sum over the query's word tokens (each
 *  occurrence) of w[term, d]: parameters lex.w (one per posting, BM25's
 *  weight at init when lex->w0 is set) and lex.scale s, after the head's. */
dp_status dp_dsi_model_build_lexical(const dp_dsi_model_config *cfg, dp_dsi_docids *ids, dp_dsi_lexicon *lex,
                                     dp_dsi_model **out);
void dp_dsi_model_init(dp_dsi_model *m, dp_rng *r);
/*! 1 when the model has a lexical head (its queries need term lists). */
int dp_dsi_has_lexical(const dp_dsi_model *m);
/*! The lexical head's pattern, or NULL. */
const dp_dsi_lexicon *dp_dsi_model_lexicon(const dp_dsi_model *m);
/*! The lexical terms of one bag of token ids tok[0 .. n) into terms (room for
 *  n): its first nwords tokens (the tokenizer puts the words first) that are
 *  in the lexicon; nwords < 0 (a token record, whose text is not at hand):
 *  its tokens up to the first one outside the lexicon, exact for the text's
 *  own examples (every word in the lexicon) unless the first bigram's id is a
 *  word's. Returns how many. */
int dp_dsi_lex_bag(const dp_dsi_model *m, const int32_t *tok, int n, int nwords, int32_t *terms);
/*! dp_dsi_lex_bag over nbags bags (nwords NULL: -1 each): terms (room for
 *  offsets[nbags]) and toff [nbags + 1]. */
void dp_dsi_lex_terms(const dp_dsi_model *m, const int32_t *ids, const int32_t *offsets, int nbags,
                      const int32_t *nwords, int32_t *terms, int32_t *toff);
void dp_dsi_model_free(dp_dsi_model *m);
/*! The model's weights will not change any more (a loaded checkpoint): the
 *  cosine head's row norms are computed once here instead of per search. */
dp_status dp_dsi_model_freeze(dp_dsi_model *m);
/*! m->known from the tokens of the given sets (replacing any before). */
dp_status dp_dsi_model_learn_vocab(dp_dsi_model *m, const dp_dsi_set *const *sets, int nsets);
/*! What the encoder learns from the member's data before training (the idf
 *  encoders: each row's IDF over the documents of `sets`); call after
 *  dp_dsi_model_init. Nothing for the plain bag. */
dp_status dp_dsi_model_fit(dp_dsi_model *m, const dp_dsi_set *const *sets, int nsets);
/*! cov[b] = the fraction of bag b's tokens in m->known (1 for an empty bag
 *  or a model without a vocabulary). */
void dp_dsi_coverage(const dp_dsi_model *m, const int32_t *ids, const int32_t *offsets, int nbags, float *cov);
/*! Bags of token ids -> h [nbags, hidden]; tokens outside m->known are left
 *  out of their bag's mean. */
dp_tensor *dp_dsi_encode(dp_ctx *c, dp_dsi_model *m, const int32_t *ids, const int32_t *offsets, int nbags);
/*! The same for bags of embedding rows (token ids already folded by
 *  dp_dsi_row_of, every one trained): the training step's path, which needs
 *  no vocabulary filter since its bags hold training tokens only. */
dp_tensor *dp_dsi_encode_rows(dp_ctx *c, dp_dsi_model *m, const int32_t *rows, const int32_t *offsets, int nbags);
/*! The embedding row of token id t. */
static inline int32_t dp_dsi_row_of(const dp_dsi_model *m, int32_t t) { return (int32_t)((uint32_t)t % m->cfg.buckets); }
/*! Mean over the n rows of h of the cross-entropy summed over docid levels
 *  (teacher forcing); *correct (may be NULL) counts rows whose every level's
 *  argmax is right. docs must stay valid until backward. */
dp_tensor *dp_dsi_loss(dp_ctx *c, dp_dsi_model *m, dp_tensor *h, const int32_t *docs, long *correct);
/*! The same with the rows' lexical term lists (dp_dsi_lex_terms), which a
 *  model with a lexical head needs; they must stay valid until backward. */
dp_tensor *dp_dsi_loss_lex(dp_ctx *c, dp_dsi_model *m, dp_tensor *h, const int32_t *terms, const int32_t *toff,
                           const int32_t *docs, long *correct);
/*! Atomic docids: the logits [N, ndocs] of h's rows (with the lexical head's
 *  part when the model has one: terms/toff as for dp_dsi_loss_lex). */
dp_tensor *dp_dsi_logits(dp_ctx *c, dp_dsi_model *m, dp_tensor *h, const int32_t *terms, const int32_t *toff);
/*! Constrained beam search for the n rows of h (no tape: call with
 *  c->grad_enabled off or in eval). For row i, writes up to `beams` documents
 *  to docs[i * beams ..] with their scores (sum of log-probabilities, each
 *  renormalised over the node's valid children, divided by the id's length),
 *  best first; unused slots get doc -1. Only ids in the trie can come out. */
dp_status dp_dsi_beam_search(dp_ctx *c, dp_dsi_model *m, const float *h, int n, int beams, int32_t *docs,
                             float *scores);
/*! With lz (may be NULL): each row's log partition, log sum_d exp(logit_d) over
 *  the model's documents (atomic ids; 0 for semantic ids), so score + lz is the
 *  beam's logit, which --agg logits compares across members. */
dp_status dp_dsi_beam_search_lz(dp_ctx *c, dp_dsi_model *m, const float *h, const int32_t *terms, const int32_t *toff,
                                int n, int beams, int32_t *docs, float *scores, float *lz);
/*! The same with the rows' lexical term lists (needed by a model with a
 *  lexical head: its logits add the lexical scores before the softmax). */
dp_status dp_dsi_beam_search_lex(dp_ctx *c, dp_dsi_model *m, const float *h, const int32_t *terms,
                                 const int32_t *toff, int n, int beams, int32_t *docs, float *scores);

/* ============================================================ ranking */
/* src/dsi/rank.c: ensemble aggregation, retrieval metrics, BM25. */

/* Logits: joint over the beams' logits (log-probability + the member's log partition) instead of their
 * log-probabilities: one softmax as if the members' documents were one head. It needs the members'
 * logits on one scale, which the cosine head (s cos) and the BM25-initialised lexical head give. */
typedef enum dp_dsi_agg {
    DP_DSI_AGG_CONFIDENCE = 0,
    DP_DSI_AGG_VOTE = 1,
    DP_DSI_AGG_JOINT = 2,
    DP_DSI_AGG_LOGITS = 3
} dp_dsi_agg;

/* A beam's doc id meaning "none of this member's documents" (see dp_dsi_aggregate). */
#define DP_DSI_ABSTAIN (-2)

/*! Merges the beams of nm members for one query. Member m returned nb[m]
 *  documents docs[m][0..nb[m]) (global ids; -1 = empty slot, skipped;
 *  DP_DSI_ABSTAIN: the member's abstention, in the softmax but never a result) with
 *  beam scores sc[m][..]. Confidence: p(m,i) = softmax over member m's beam
 *  scores, score(d) = sum of p(m,i) over every beam returning d (ties: smaller
 *  id). Vote: +1 per member returning d, no scores used (ties: the better beam
 *  position, then the smaller id; out_score = votes). Joint: one softmax over
 *  every member's beams together, so with log-probabilities as scores each
 *  beam keeps its member's own probability (a member unsure of every document
 *  adds little, where confidence gives every member a mass of 1), renormalised
 *  over all beams and summed per docid. Writes the top k
 *  (distinct documents, best first) to out/out_score; returns how many. */
int dp_dsi_aggregate(dp_dsi_agg how, int nm, const int *nb, const int32_t *const *docs, const float *const *sc,
                     int k, int32_t *out, float *out_score);

typedef struct dp_dsi_metrics {
    long queries;
    double hits1, hits5, hits10, mrr10; /* sums: divide by queries */
} dp_dsi_metrics;
/*! Adds one query's ranking (duplicates after their first occurrence are ignored). */
void dp_dsi_metrics_add(dp_dsi_metrics *m, const int32_t *ranked, int n, int32_t gold);

typedef struct dp_bm25 dp_bm25;
/*! An index over ndocs documents, document d = the words of texts[d] (e.g.
 *  its training queries joined). k1 and b as in Robertson's BM25; idf =
 *  log(1 + (N - df + 0.5) / (df + 0.5)). */
dp_status dp_bm25_build(int ndocs, const char *const *texts, float k1, float b, dp_bm25 **out);
/*! The top k documents for `query`: returns how many (documents scoring 0 are not returned). */
int dp_bm25_search(const dp_bm25 *ix, const char *query, int k, int32_t *docs, float *scores);
void dp_bm25_free(dp_bm25 *ix);

#ifdef __cplusplus
}
#endif
#endif
