/* Query text -> hashed feature ids: the DSI models' input and BM25's words.
 *
 * Words are maximal runs of [a-z0-9] (after ASCII lower-casing) or of bytes
 * >= 0x80, so UTF-8 letters stay inside their word. Features, in this order:
 * every word, every adjacent word pair, every character 3-gram of "#word#"
 * (fastText's boundary marks let "#ab" differ from an inner "ab"). Each kind
 * is hashed with XXH3 under its own seed, so a word and a 3-gram that spell
 * the same bytes land in different buckets. */
#include <string.h>
#include <xxhash.h>

#include "dptrain/dsi.h"

enum { SEED_WORD = 0x5744, SEED_BIGRAM = 0x4247, SEED_TRIGRAM = 0x5447, MAX_WORD = 64 };

void dp_dsi_tok_defaults(dp_dsi_tok_config *c)
{
    *c = (dp_dsi_tok_config){.buckets = 1u << 18, .words = 1, .bigrams = 1, .trigrams = 1, .max_tokens = 256};
}

dp_status dp_dsi_tok_check(const dp_dsi_tok_config *c)
{
    if (c->buckets < 1 || c->buckets > (1u << 30))
        return dp_errorf(DP_ERR_ARG, "tokenizer: buckets = %u outside [1, 2^30]", c->buckets);
    if (c->max_tokens < 1 || c->max_tokens > 65536)
        return dp_errorf(DP_ERR_ARG, "tokenizer: max_tokens = %d outside [1, 65536]", c->max_tokens);
    if (!c->words && !c->bigrams && !c->trigrams)
        return dp_errorf(DP_ERR_ARG, "tokenizer: every feature kind (words, bigrams, trigrams) is off");
    return DP_OK;
}

static int word_byte(unsigned char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch >= 0x80; }

static unsigned char lower(unsigned char ch) { return ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch - 'A' + 'a') : ch; }

/* The next word at or after *p, lower-cased into w (cut at MAX_WORD bytes:
 * longer runs are hashed by their prefix); returns its length, 0 at the end. */
static int next_word(const char **p, char w[MAX_WORD])
{
    const unsigned char *s = (const unsigned char *)*p;
    while (*s && !word_byte(lower(*s))) s++;
    int n = 0;
    for (; *s && word_byte(lower(*s)); s++)
        if (n < MAX_WORD) w[n++] = (char)lower(*s);
    *p = (const char *)s;
    return n;
}

static uint64_t hash(const void *b, size_t n, uint64_t seed) { return XXH3_64bits_withSeed(b, n, seed); }

int dp_dsi_words(const char *text, uint64_t *out, int cap)
{
    char w[MAX_WORD];
    int n = 0, len;
    while (n < cap && (len = next_word(&text, w)) > 0) out[n++] = hash(w, (size_t)len, SEED_WORD);
    return n;
}

int dp_dsi_tokenize(const dp_dsi_tok_config *cfg, const char *text, uint32_t *out, int cap)
{
    if (cap > cfg->max_tokens) cap = cfg->max_tokens;
    enum { MAX_WORDS = 1024 };
    uint64_t wh[MAX_WORDS];
    int nw = dp_dsi_words(text, wh, MAX_WORDS);
    int n = 0;
    const uint64_t B = cfg->buckets;
    if (cfg->words)
        for (int i = 0; i < nw && n < cap; i++) out[n++] = (uint32_t)(wh[i] % B);
    if (cfg->bigrams)
        for (int i = 0; i + 1 < nw && n < cap; i++) {
            uint64_t pair[2] = {wh[i], wh[i + 1]};
            out[n++] = (uint32_t)(hash(pair, sizeof pair, SEED_BIGRAM) % B);
        }
    if (cfg->trigrams) {
        char w[MAX_WORD + 2];
        const char *p = text;
        int len;
        while (n < cap && (len = next_word(&p, w + 1)) > 0) {
            w[0] = '#';
            w[len + 1] = '#';
            for (int i = 0; i + 3 <= len + 2 && n < cap; i++)
                out[n++] = (uint32_t)(hash(w + i, 3, SEED_TRIGRAM) % B);
        }
    }
    return n;
}
