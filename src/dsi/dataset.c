/* Loading a DSI dataset dir (written by dp_dsi_prepare; layout in
 * shards/README.md, "DSI datasets") whole into memory.
 *
 *   tokenizer.txt ─▶ dp_dsi_tok_config (must match the manifest's vocab_size)
 *   docs.tsv      ─▶ ndocs, names (unique, non-empty)
 *   manifest.txt  ─▶ per split (train, test required; index optional) its
 *                    shards in order ─▶ each streamed to its end (count, size
 *                    and crc32 checked by the reader), header vs manifest,
 *                    every record [doc, tok...] checked: len % 4 == 0,
 *                    len >= 4, doc < ndocs, tok < buckets
 *
 * DSI sets are small, so every rank holds all of its member's data. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/fsutil.h"
#include "dptrain/data.h"
#include "dptrain/text.h"
#include "dsi/data_internal.h"

/* ------------------------------------------------------------ tokenizer.txt */

static dp_status load_tokenizer(const char *dir, dp_dsi_tok_config *tok)
{
    dsi_lines r;
    dp_status rc = dsi_lines_open(&r, dir, "tokenizer.txt");
    if (rc != DP_OK) return rc;
    const char *path = r.path;
    static const char *const keys[] = {"buckets", "words", "bigrams", "trigrams", "max_tokens"};
    long val[5];
    int seen[5] = {0};
    while (rc == DP_OK && dsi_lines_next(&r)) {
        char *s = r.buf;
        while (*s == ' ' || *s == '\t') s++;
        if (*s == '\0' || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: expected key=value", path, r.line);
            break;
        }
        *eq = '\0';
        int k = -1;
        for (int i = 0; i < 5; i++)
            if (!strcmp(s, keys[i])) k = i;
        char *end;
        errno = 0;
        long v = strtol(eq + 1, &end, 10);
        while (*end == ' ' || *end == '\t') end++;
        if (k < 0) rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: unknown key '%s'", path, r.line, DP_ESC(s));
        else if (seen[k]) rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: '%s' given twice", path, r.line, s);
        else if (errno || end == eq + 1 || *end || v < 0 || v > (1L << 30))
            rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: %s: '%s' is not a number in [0, 2^30]", path, r.line, s,
                           DP_ESC(eq + 1));
        if (rc != DP_OK) break;
        seen[k] = 1;
        val[k] = v;
    }
    rc = dsi_lines_close(&r, rc);
    for (int i = 0; i < 5 && rc == DP_OK; i++)
        if (!seen[i]) rc = dp_errorf(DP_ERR_FORMAT, "%s: no '%s=' line", path, keys[i]);
    if (rc != DP_OK) return rc;
    *tok = (dp_dsi_tok_config){.buckets = (uint32_t)val[0], .words = (int)val[1], .bigrams = (int)val[2],
                               .trigrams = (int)val[3], .max_tokens = (int)val[4]};
    if (dp_dsi_tok_check(tok) != DP_OK) return dp_errorf(DP_ERR_FORMAT, "%s: %s", path, dp_errmsg());
    return DP_OK;
}

/* ------------------------------------------------------------ docs.tsv */

static dp_status load_names(const char *dir, dp_dsi_data *d)
{
    dsi_lines r;
    dp_status rc = dsi_lines_open(&r, dir, "docs.tsv");
    if (rc != DP_OK) return rc;
    const char *path = r.path;
    dsi_intern t = {0};
    while (dsi_lines_next(&r)) {
        if (r.len == 0 || memchr(r.buf, '\t', (size_t)r.len)) {
            rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: %s docid", path, r.line, r.len == 0 ? "empty" : "tab in a");
            break;
        }
        int is_new;
        long id = dsi_intern_get(&t, r.buf, (size_t)r.len, 1, &is_new);
        if (id < 0) {
            rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory at line %ld", path, r.line);
            break;
        }
        if (!is_new) {
            rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: docid '%s' repeats line %ld", path, r.line, DP_ESC(r.buf),
                           id + 1);
            break;
        }
        if (r.line > INT32_MAX / 2) {
            rc = dp_errorf(DP_ERR_FORMAT, "%s: more than %d documents", path, INT32_MAX / 2);
            break;
        }
    }
    rc = dsi_lines_close(&r, rc);
    if (rc == DP_OK && t.n == 0) rc = dp_errorf(DP_ERR_FORMAT, "%s: no documents", path);
    /* the interner's keys are the names in id order, back to back */
    if (rc == DP_OK && !(d->names = dsi_names_block(t.keys.buf, t.keys.len, t.n)))
        rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory for %ld names", path, t.n);
    if (rc == DP_OK) d->ndocs = (int)t.n;
    dsi_intern_free(&t);
    return rc;
}

/* ------------------------------------------------------------ shards */

dp_status dsi_set_reserve(dp_dsi_set *s, int64_t *ex_cap, size_t *tok_cap, int64_t ntok, int64_t max_ex,
                          const char *who)
{
    if (s->n == *ex_cap) {
        int64_t cap = *ex_cap ? 2 * *ex_cap : 4096;
        if (cap > max_ex) cap = max_ex;
        if (!dsi_resize(&s->doc, (size_t)cap, sizeof *s->doc) || !dsi_resize(&s->off, (size_t)cap + 1, sizeof *s->off))
            return dp_errorf(DP_ERR_NOMEM, "%s: out of memory (%" PRId64 " examples)", who, cap);
        if (*ex_cap == 0) s->off[0] = 0;
        *ex_cap = cap;
    }
    if (!dsi_reserve(&s->tok, tok_cap, (size_t)(s->off[s->n] + ntok), sizeof *s->tok))
        return dp_errorf(DP_ERR_NOMEM, "%s: out of memory (%" PRId64 " tokens)", who, s->off[s->n] + ntok);
    return DP_OK;
}

static dp_status load_shard(const char *dir, const dp_manifest *m, const dp_manifest_shard *ms, const dp_dsi_data *d,
                            dp_dsi_set *s, size_t *tok_cap, int64_t *ex_cap, uint64_t total)
{
    char path[4096];
    dp_shard_reader *r = NULL;
    dp_status rc = dp_manifest_open_shard(dir, m, ms, path, sizeof path, &r);
    if (rc != DP_OK) return rc;
    for (uint64_t i = 0;; i++) {
        const void *rec;
        size_t len;
        int eof;
        if ((rc = dp_shard_reader_next(r, &rec, &len, &eof)) != DP_OK || eof) break;
        if (len < 4 || len % 4) {
            rc = dp_errorf(DP_ERR_FORMAT, "%s: record %" PRIu64 ": %zu bytes; want 4 * (1 + tokens)", path, i, len);
            break;
        }
        if (i >= ms->records) { /* the reader stops there too; belt and braces for the arrays */
            rc = dp_errorf(DP_ERR_FORMAT, "%s: record %" PRIu64 ": more records than the manifest's %" PRIu64, path, i,
                           ms->records);
            break;
        }
        if ((uint64_t)s->n >= total) { /* the manifest's per-shard counts bound this; belt and braces */
            rc = dp_errorf(DP_ERR_FORMAT, "%s: record %" PRIu64 ": more records than the split's %" PRIu64, path, i,
                           total);
            break;
        }
        const uint8_t *b = rec;
        size_t nt = len / 4 - 1;
        /* memory follows the records that arrive, up to the split's manifest total */
        if ((rc = dsi_set_reserve(s, ex_cap, tok_cap, (int64_t)nt, (int64_t)total, path)) != DP_OK) break;
        uint32_t doc = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        if (doc >= (uint32_t)d->ndocs) {
            rc = dp_errorf(DP_ERR_FORMAT, "%s: record %" PRIu64 ": document %" PRIu32 " >= %d (docs.tsv)", path, i, doc,
                           d->ndocs);
            break;
        }
        int64_t at = s->off[s->n];
        for (size_t j = 0; j < nt; j++) {
            const uint8_t *p = b + 4 * (j + 1);
            uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            if (v >= d->tok.buckets) {
                rc = dp_errorf(DP_ERR_FORMAT, "%s: record %" PRIu64 ": token %" PRIu32 " >= %" PRIu32 " buckets", path,
                               i, v, d->tok.buckets);
                goto done;
            }
            s->tok[at + (int64_t)j] = (int32_t)v;
        }
        s->doc[s->n] = (int32_t)doc;
        s->off[s->n + 1] = at + (int64_t)nt;
        s->n++;
    }
done:
    dp_shard_reader_close(r);
    return rc;
}

/* The shards of `split` in manifest order into s; `required` splits must have one. */
static dp_status load_split(const char *dir, const dp_manifest *m, const char *split, int required,
                            const dp_dsi_data *d, dp_dsi_set *s)
{
    uint64_t total = 0;
    int nshards = 0;
    for (int i = 0; i < m->nshards; i++)
        if (!strcmp(m->shards[i].split, split)) {
            if (m->shards[i].records > (uint64_t)INT32_MAX - total) /* also stops the sum wrapping */
                return dp_errorf(DP_ERR_FORMAT, "%s/manifest.txt: split '%s' holds more than %d records", dir, split,
                                 INT32_MAX);
            total += m->shards[i].records;
            nshards++;
        }
    if (nshards == 0 && required) return dp_errorf(DP_ERR_FORMAT, "%s/manifest.txt: no shards for split '%s'", dir, split);
    /* Sized by the records that arrive, not by the manifest; an empty split
     * still gets off[0] and freeable buffers. */
    size_t tok_cap = 0;
    int64_t ex_cap = 0;
    s->n = 0;
    dp_status rc = dsi_set_reserve(s, &ex_cap, &tok_cap, 1, (int64_t)total, dir);
    for (int i = 0; i < m->nshards && rc == DP_OK; i++)
        if (!strcmp(m->shards[i].split, split)) rc = load_shard(dir, m, &m->shards[i], d, s, &tok_cap, &ex_cap, total);
    return rc;
}

/* ------------------------------------------------------------ entry */

dp_status dp_dsi_data_load(const char *dir, dp_dsi_data *out)
{
    memset(out, 0, sizeof *out);
    if (strlen(dir) >= sizeof out->dir) return dp_errorf(DP_ERR_ARG, "%s: path longer than %zu bytes", dir, sizeof out->dir - 1);
    strcpy(out->dir, dir);
    dp_manifest *m = NULL;
    dp_status rc = load_tokenizer(dir, &out->tok);
    if (rc == DP_OK) rc = load_names(dir, out);
    if (rc == DP_OK) rc = dp_manifest_load(dir, &m);
    if (rc == DP_OK && m->schema.kind != DP_SCHEMA_TOKENS)
        rc = dp_errorf(DP_ERR_FORMAT, "%s/manifest.txt: dataset '%s' has schema %" PRIu32 ", not tokens", dir, m->name,
                       m->schema.kind);
    if (rc == DP_OK && m->schema.tokens.vocab_size != out->tok.buckets)
        rc = dp_errorf(DP_ERR_FORMAT, "%s/manifest.txt: vocab_size %" PRIu32 " differs from tokenizer.txt buckets=%" PRIu32,
                       dir, m->schema.tokens.vocab_size, out->tok.buckets);
    if (rc == DP_OK) rc = load_split(dir, m, "train", 1, out, &out->train);
    if (rc == DP_OK) rc = load_split(dir, m, "test", 1, out, &out->test);
    if (rc == DP_OK) rc = load_split(dir, m, "index", 0, out, &out->index);
    if (rc == DP_OK) out->manifest_hash = dp_manifest_hash(m);
    dp_manifest_free(m);
    if (rc != DP_OK) dp_dsi_data_free(out);
    return rc;
}

void dp_dsi_set_free(dp_dsi_set *s)
{
    if (!s) return;
    free(s->doc);
    free(s->off);
    free(s->tok);
    memset(s, 0, sizeof *s);
}

void dp_dsi_data_free(dp_dsi_data *d)
{
    if (!d) return;
    free(d->names); /* one block with the strings */
    dp_dsi_set_free(&d->train);
    dp_dsi_set_free(&d->test);
    dp_dsi_set_free(&d->index);
    memset(d, 0, sizeof *d);
}
