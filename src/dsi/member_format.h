/* The sections of a DSI member checkpoint (model.dsi, a dptrain checkpoint
 * file, see docs/CHECKPOINT.md) beyond the generic params section. Private to
 * src/dsi (dsi_query.c writes and reads them); tests craft hostile headers
 * from the same definitions. */
#ifndef DP_DSI_MEMBER_FORMAT_H
#define DP_DSI_MEMBER_FORMAT_H

#include <stdint.h>

enum {
    SEC_HEAD = 32,  /* member_head */
    SEC_EMB = 33,   /* float [buckets * embed] */
    SEC_LEN = 34,   /* uint8 [ndocs] */
    SEC_CODE = 35,  /* uint16 [ndocs * maxlen] */
    SEC_NAMES = 36, /* ndocs NUL-terminated strings */
    SEC_HEADKIND = 37, /* member_headkind; absent (files before it): the dot head */
    SEC_KNOWN = 38,    /* uint8 [(tok_buckets + 7) / 8]: the vocabulary bitmap; absent: every token */
    SEC_ENCODER = 39,  /* member_encoder; absent (the plain bag, and files before it): DP_DSI_ENCODER_BAG_MLP */
    /* The lexical head's pattern (its weights are parameters); all four or none (no lexical head). */
    SEC_LEXICON = 40,  /* member_lexicon */
    SEC_LEX_TOK = 41,  /* uint32 [nterms]: each term's token id */
    SEC_LEX_OFF = 42,  /* int64 [nterms + 1]: term t's postings [off[t], off[t+1]) */
    SEC_LEX_DOC = 43,  /* int32 [postings]: each posting's document */
    HEAD_VERSION = 1,
    MAX_DOCS = 1 << 28,
};

typedef struct member_head {
    uint32_t version, buckets; /* embedding rows; token id t reads row t % buckets */
    int32_t embed, hidden, layers, kind, ndocs, maxlen;
    float dropout;
    int32_t tok_words, tok_bigrams, tok_trigrams, tok_max;
    uint32_t tok_buckets;
    uint64_t dense_n, emb_n;
} member_head;

/* The query encoder (dp_dsi_encoder_kind) and a Transformer's own sizes (0 for the bag encoders). */
typedef struct member_encoder {
    int32_t kind, heads, positions, reserved;
} member_encoder;

typedef struct member_lexicon {
    int32_t nterms, reserved;
    int64_t postings;
} member_lexicon;

typedef struct member_headkind {
    int32_t head; /* dp_dsi_head_kind */
    float scale;
} member_headkind;

#endif
