/* Member checkpoints and the ensemble that answers queries with them.
 *
 * A member checkpoint is a dptrain checkpoint file (docs/CHECKPOINT.md) with
 * the sections below; the loader checks every size against the header before
 * it builds anything, so a truncated or foreign file is an error naming it.
 *
 * An ensemble spreads its members over the ranks of a communicator (member m
 * on rank m % P). For a batch of queries every rank runs beam search in its
 * own members, sends the beams (mapped to global docids) to rank 0, and rank 0
 * merges them (dp_dsi_aggregate): De-DSI's softmax-normalised beam scores
 * summed per docid, or the vote baseline. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/checkpoint.h"
#include "dptrain/dsi_train.h"
#include "dsi/data_internal.h"
#include "dsi/ensemble_internal.h"
#include "dsi/encoder.h"
#include "dsi/member_format.h"


/* names[0 .. n) back to back, each NUL-terminated (the names section and the
 * ensemble's broadcast): a new buffer (NULL when out of memory), *len bytes. */
static char *pack_names(char *const *names, int n, size_t *len)
{
    size_t nb = 0;
    for (int d = 0; d < n; d++) nb += strlen(names[d]) + 1;
    char *blob = malloc(nb ? nb : 1);
    if (!blob) return NULL;
    size_t o = 0;
    for (int d = 0; d < n; d++) {
        size_t l = strlen(names[d]) + 1;
        memcpy(blob + o, names[d], l);
        o += l;
    }
    *len = nb;
    return blob;
}

dp_status dp_dsi_member_save(const char *path, const dp_dsi_model *m, const dp_dsi_tok_config *tok,
                             char *const *names, const char *config_text)
{
    const dp_dsi_docids *ids = &m->ids;
    if (tok->buckets != m->cfg.token_space)
        return dp_errorf(DP_ERR_ARG, "%s: tokenizer buckets %u != the model's token space %u", path, tok->buckets,
                         m->cfg.token_space);
    member_head h = {.version = HEAD_VERSION, .buckets = m->cfg.buckets, .embed = m->cfg.embed,
                     .hidden = m->cfg.hidden, .layers = m->cfg.layers, .kind = ids->kind, .ndocs = ids->ndocs,
                     .maxlen = ids->maxlen, .dropout = m->cfg.dropout, .tok_words = tok->words,
                     .tok_bigrams = tok->bigrams, .tok_trigrams = tok->trigrams, .tok_max = tok->max_tokens,
                     .tok_buckets = tok->buckets, .dense_n = m->dense.n, .emb_n = m->emb.n};
    size_t nb = 0;
    char *blob = pack_names(names, ids->ndocs, &nb);
    if (!blob) return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", path);
    const member_headkind hk = {.head = m->cfg.head, .scale = m->cfg.head_scale};
    const int tf = m->cfg.encoder == DP_DSI_ENCODER_TRANSFORMER;
    const member_encoder me = {.kind = m->cfg.encoder, .heads = tf ? m->cfg.heads : 0, .positions = tf ? m->cfg.positions : 0};
    const dp_dsi_lexicon *L = dp_dsi_model_lexicon(m);
    const member_lexicon ml = {.nterms = L ? L->nterms : 0, .postings = L ? L->off[L->nterms] : 0};
    dp_ck_section s[] = {
        {DP_CK_CONFIG, config_text, strlen(config_text)},
        {SEC_HEAD, &h, sizeof h},
        {SEC_HEADKIND, &hk, sizeof hk},
        {DP_CK_PARAMS, m->dense.data, m->dense.n * sizeof(float)},
        {SEC_EMB, m->emb.data, m->emb.n * sizeof(float)},
        {SEC_LEN, ids->len, (size_t)ids->ndocs},
        {SEC_CODE, ids->code, (size_t)ids->ndocs * (size_t)ids->maxlen * sizeof *ids->code},
        {SEC_NAMES, blob, nb},
        {SEC_KNOWN, m->known, ((size_t)m->cfg.token_space + 7) / 8}, /* left out without a vocabulary */
        {SEC_ENCODER, &me, sizeof me}, /* left out for the plain bag: its files stay as they were */
        {SEC_LEXICON, &ml, sizeof ml}, /* these four left out without a lexical head */
        {SEC_LEX_TOK, L ? L->tok : NULL, L ? (size_t)L->nterms * sizeof *L->tok : 0},
        {SEC_LEX_OFF, L ? L->off : NULL, L ? ((size_t)L->nterms + 1) * sizeof *L->off : 0},
        {SEC_LEX_DOC, L ? L->doc : NULL, L ? (size_t)ml.postings * sizeof *L->doc : 0},
    };
    int ns = 0;
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        if ((s[i].tag == SEC_KNOWN && !m->known) || (s[i].tag == SEC_ENCODER && me.kind == DP_DSI_ENCODER_BAG_MLP) ||
            (s[i].tag >= SEC_LEXICON && s[i].tag <= SEC_LEX_DOC && !L))
            continue;
        s[ns++] = s[i];
    }
    dp_status rc = dp_checkpoint_write(path, s, ns);
    free(blob);
    return rc;
}

static const dp_ck_section *need(const dp_checkpoint *ck, const char *path, uint32_t tag, uint64_t size,
                                 const char *what, dp_status *rc)
{
    const dp_ck_section *s = dp_checkpoint_find(ck, tag);
    if (!s) *rc = dp_errorf(DP_ERR_FORMAT, "%s: no %s section (not a DSI member checkpoint?)", path, what);
    else if (size != (uint64_t)-1 && s->size != size) {
        *rc = dp_errorf(DP_ERR_FORMAT, "%s: %s section holds %llu bytes, the header says %llu", path, what,
                        (unsigned long long)s->size, (unsigned long long)size);
        s = NULL;
    }
    return s;
}

static dp_status check_head(const char *path, const member_head *h, const member_encoder *me)
{
    if (h->version != HEAD_VERSION) return dp_errorf(DP_ERR_FORMAT, "%s: member version %u (expected %u)", path, h->version, HEAD_VERSION);
    if (h->ndocs < 1 || h->ndocs > MAX_DOCS) return dp_errorf(DP_ERR_FORMAT, "%s: field ndocs = %d", path, h->ndocs);
    if (h->maxlen < 1 || h->maxlen > DP_DSI_MAXLEN) return dp_errorf(DP_ERR_FORMAT, "%s: field maxlen = %d", path, h->maxlen);
    if (h->kind != DP_DSI_ATOMIC && h->kind != DP_DSI_SEMANTIC) return dp_errorf(DP_ERR_FORMAT, "%s: field kind = %d", path, h->kind);
    if (h->buckets < 1 || h->buckets > h->tok_buckets) /* rows fold token ids: never more rows than ids */
        return dp_errorf(DP_ERR_FORMAT, "%s: model buckets %u outside 1 .. tokenizer buckets %u", path, h->buckets, h->tok_buckets);
    dp_dsi_tok_config t = {h->tok_buckets, h->tok_words, h->tok_bigrams, h->tok_trigrams, h->tok_max};
    if (dp_dsi_tok_check(&t) != DP_OK) return dp_errorf(DP_ERR_FORMAT, "%s: %s", path, dp_errmsg());
    if (h->embed < 1 || h->embed > 4096 || h->hidden < 1 || h->hidden > 16384 || h->layers < 0 || h->layers > 8 ||
        !(h->dropout >= 0 && h->dropout < 1))
        return dp_errorf(DP_ERR_FORMAT, "%s: model fields out of range (embed %d, hidden %d, layers %d)", path, h->embed,
                         h->hidden, h->layers);
    /* Before the model is built from these fields: its sizes must match the sections the file can
     * hold, so a small hostile file cannot make it allocate gigabytes. */
    const dp_dsi_encoder_ops *eo = dp_dsi_encoder_of(me->kind);
    if (!eo) return dp_errorf(DP_ERR_FORMAT, "%s: field encoder = %d (not an encoder this build knows)", path, me->kind);
    if (me->kind == DP_DSI_ENCODER_TRANSFORMER &&
        (me->heads < 1 || me->heads > h->embed || h->embed % me->heads || me->positions < 1 || me->positions > 65536))
        return dp_errorf(DP_ERR_FORMAT, "%s: transformer fields heads = %d (dividing embed %d), positions = %d (1..65536)",
                         path, me->heads, h->embed, me->positions);
    dp_dsi_model_config mc = {.buckets = h->buckets, .embed = h->embed, .hidden = h->hidden, .layers = h->layers,
                              .heads = me->heads, .positions = me->positions};
    uint64_t enc = eo->dense_floats(&mc);
    if (h->emb_n != (uint64_t)h->buckets * (uint64_t)h->embed || h->dense_n > (UINT64_MAX >> 2) || h->dense_n < enc)
        return dp_errorf(DP_ERR_FORMAT,
                         "%s: parameters dense_n %llu and embedding emb_n %llu do not fit buckets %u x embed %d, hidden %d, layers %d",
                         path, (unsigned long long)h->dense_n, (unsigned long long)h->emb_n, h->buckets, h->embed,
                         h->hidden, h->layers);
    return DP_OK;
}

static dp_status load_names(const char *path, const dp_ck_section *s, int n, char ***out)
{
    const char *p = s->data, *end = p + s->size;
    for (int d = 0; d < n; d++) {
        const char *z = p < end ? memchr(p, 0, (size_t)(end - p)) : NULL;
        if (!z) return dp_errorf(DP_ERR_FORMAT, "%s: names section ends before docid %d of %d", path, d, n);
        p = z + 1;
    }
    if (p != end) return dp_errorf(DP_ERR_FORMAT, "%s: names section has bytes after docid %d", path, n - 1);
    if (!(*out = dsi_names_block(s->data, s->size, n))) return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", path);
    return DP_OK;
}

/* The lexical head's pattern, when the file has one: every size against the
 * header's before a copy, then the pattern itself (dp_dsi_lexicon_check:
 * token ids < the token space, documents < ndocs, each list ascending). */
static dp_status load_lexicon(const char *path, const dp_checkpoint *ck, const member_head *h, dp_dsi_lexicon *L)
{
    dp_status rc = DP_OK;
    const int any = dp_checkpoint_find(ck, SEC_LEXICON) || dp_checkpoint_find(ck, SEC_LEX_TOK) ||
                    dp_checkpoint_find(ck, SEC_LEX_OFF) || dp_checkpoint_find(ck, SEC_LEX_DOC);
    if (!any) return DP_OK;
    member_lexicon ml;
    const dp_ck_section *sh = need(ck, path, SEC_LEXICON, sizeof ml, "lexicon", &rc);
    if (!sh) return rc;
    memcpy(&ml, sh->data, sizeof ml);
    if (ml.nterms < 1 || (uint64_t)ml.nterms > h->tok_buckets || ml.reserved)
        return dp_errorf(DP_ERR_FORMAT, "%s: lexicon field nterms = %d (1 .. token space %u; reserved %d)", path,
                         ml.nterms, h->tok_buckets, ml.reserved);
    if (ml.postings < ml.nterms || ml.postings > INT32_MAX || ml.postings > (int64_t)ml.nterms * h->ndocs)
        return dp_errorf(DP_ERR_FORMAT, "%s: lexicon field postings = %lld (nterms %d .. nterms x ndocs %d, < 2^31)",
                         path, (long long)ml.postings, ml.nterms, h->ndocs);
    const dp_ck_section *st = need(ck, path, SEC_LEX_TOK, (uint64_t)ml.nterms * 4, "lexicon tokens", &rc);
    const dp_ck_section *so = st ? need(ck, path, SEC_LEX_OFF, ((uint64_t)ml.nterms + 1) * 8, "lexicon offsets", &rc) : NULL;
    const dp_ck_section *sd = so ? need(ck, path, SEC_LEX_DOC, (uint64_t)ml.postings * 4, "lexicon documents", &rc) : NULL;
    if (!sd) return rc;
    L->nterms = ml.nterms;
    L->ndocs = h->ndocs;
    L->token_space = h->tok_buckets;
    L->tok = malloc(st->size);
    L->off = malloc(so->size);
    L->doc = malloc(sd->size);
    if (!L->tok || !L->off || !L->doc) rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory", path);
    if (rc == DP_OK) {
        memcpy(L->tok, st->data, st->size);
        memcpy(L->off, so->data, so->size);
        memcpy(L->doc, sd->data, sd->size);
        if (L->off[ml.nterms] != ml.postings)
            rc = dp_errorf(DP_ERR_FORMAT, "%s: lexicon field off[%d] = %lld, postings = %lld", path, ml.nterms,
                           (long long)L->off[ml.nterms], (long long)ml.postings);
        else if (L->off[0] != 0)
            rc = dp_errorf(DP_ERR_FORMAT, "%s: lexicon field off[0] = %lld (0)", path, (long long)L->off[0]);
        else
            rc = dp_dsi_lexicon_check(L, path);
    }
    if (rc != DP_OK) dp_dsi_lexicon_free(L);
    return rc;
}

dp_status dp_dsi_member_load(const char *path, dp_dsi_member *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s", path);
    dp_checkpoint ck;
    dp_status rc = dp_checkpoint_read(path, &ck);
    if (rc != DP_OK) return rc;
    member_head h = {0};
    member_encoder me = {DP_DSI_ENCODER_BAG_MLP, 0, 0, 0};
    if (dp_checkpoint_find(&ck, SEC_ENCODER)) {
        const dp_ck_section *se = need(&ck, path, SEC_ENCODER, sizeof me, "encoder", &rc);
        if (se) memcpy(&me, se->data, sizeof me);
        const int tf = me.kind == DP_DSI_ENCODER_TRANSFORMER;
        if (rc == DP_OK && (!dp_dsi_encoder_of(me.kind) || (!tf && (me.heads || me.positions)) || me.reserved))
            rc = dp_errorf(DP_ERR_FORMAT, "%s: field encoder = %d (heads %d, positions %d, reserved %d): not an encoder of this build",
                           path, me.kind, me.heads, me.positions, me.reserved);
    }
    const dp_ck_section *sh = rc == DP_OK ? need(&ck, path, SEC_HEAD, sizeof h, "header", &rc) : NULL;
    if (sh) {
        memcpy(&h, sh->data, sizeof h);
        rc = check_head(path, &h, &me);
    }
    const dp_ck_section *sd = NULL, *se = NULL, *sl = NULL, *sc = NULL, *sn = NULL;
    if (rc == DP_OK) sd = need(&ck, path, DP_CK_PARAMS, h.dense_n * 4, "parameters", &rc);
    if (rc == DP_OK) se = need(&ck, path, SEC_EMB, h.emb_n * 4, "embedding", &rc);
    if (rc == DP_OK) sl = need(&ck, path, SEC_LEN, (uint64_t)h.ndocs, "docid lengths", &rc);
    if (rc == DP_OK) sc = need(&ck, path, SEC_CODE, (uint64_t)h.ndocs * (uint64_t)h.maxlen * 2, "docid digits", &rc);
    if (rc == DP_OK) sn = need(&ck, path, SEC_NAMES, (uint64_t)-1, "names", &rc);
    dp_dsi_docids ids = {.kind = (dp_dsi_docid_kind)h.kind, .ndocs = h.ndocs, .maxlen = h.maxlen};
    if (rc == DP_OK) {
        ids.len = malloc((size_t)h.ndocs);
        ids.code = malloc((size_t)h.ndocs * (size_t)h.maxlen * sizeof *ids.code);
        if (!ids.len || !ids.code) rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory", path);
    }
    if (rc == DP_OK) {
        memcpy(ids.len, sl->data, sl->size);
        memcpy(ids.code, sc->data, sc->size);
        if ((rc = dp_dsi_docids_index(&ids)) != DP_OK) /* checks every length, then that the ids are distinct */
            rc = dp_errorf(rc, "%s: %s", path, dp_errmsg());
    }
    member_headkind hk = {DP_DSI_HEAD_DOT, 0};
    if (rc == DP_OK && dp_checkpoint_find(&ck, SEC_HEADKIND)) {
        const dp_ck_section *sk = need(&ck, path, SEC_HEADKIND, sizeof hk, "head kind", &rc);
        if (sk) memcpy(&hk, sk->data, sizeof hk);
        if (rc == DP_OK && !((hk.head == DP_DSI_HEAD_DOT) ||
                             (hk.head == DP_DSI_HEAD_COSINE && h.kind == DP_DSI_ATOMIC && hk.scale > 0 && hk.scale <= 1000)))
            rc = dp_errorf(DP_ERR_FORMAT, "%s: field head = %d, scale %g (for %s docids)", path, hk.head, (double)hk.scale,
                           h.kind == DP_DSI_ATOMIC ? "atomic" : "semantic");
    }
    dp_dsi_lexicon lex = {0};
    if (rc == DP_OK) rc = load_lexicon(path, &ck, &h, &lex);
    if (rc == DP_OK) {
        dp_dsi_model_config mc = {.buckets = h.buckets, .token_space = h.tok_buckets, .embed = h.embed, .hidden = h.hidden, .layers = h.layers,
                                  .dropout = h.dropout, .head = hk.head, .head_scale = hk.scale, .encoder = me.kind,
                                  .heads = me.heads, .positions = me.positions};
        rc = dp_dsi_model_build_lexical(&mc, &ids, &lex, &out->model);
    }
    dp_dsi_lexicon_free(&lex);
    if (rc == DP_OK && (out->model->dense.n != h.dense_n || out->model->emb.n != h.emb_n))
        rc = dp_errorf(DP_ERR_FORMAT, "%s: %llu + %llu parameters stored, the model has %zu + %zu", path,
                       (unsigned long long)h.dense_n, (unsigned long long)h.emb_n, out->model->dense.n,
                       out->model->emb.n);
    if (rc == DP_OK) {
        memcpy(out->model->dense.data, sd->data, sd->size);
        memcpy(out->model->emb.data, se->data, se->size);
        out->tok = (dp_dsi_tok_config){h.tok_buckets, h.tok_words, h.tok_bigrams, h.tok_trigrams, h.tok_max};
        rc = dp_dsi_model_freeze(out->model);
        const dp_ck_section *sv = NULL;
        if (rc == DP_OK && dp_checkpoint_find(&ck, SEC_KNOWN) &&
            (sv = need(&ck, path, SEC_KNOWN, ((uint64_t)h.tok_buckets + 7) / 8, "vocabulary", &rc))) {
            if (!(out->model->known = malloc(sv->size))) rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory", path);
            else memcpy(out->model->known, sv->data, sv->size);
        }
        if (rc == DP_OK) rc = load_names(path, sn, h.ndocs, &out->names);
    }
    dp_dsi_docids_free(&ids);
    dp_checkpoint_free(&ck);
    if (rc != DP_OK) dp_dsi_member_free(out);
    return rc;
}

void dp_dsi_member_free(dp_dsi_member *mb)
{
    if (!mb) return;
    free(mb->names); /* one block with the strings */
    dp_dsi_model_free(mb->model);
    memset(mb, 0, sizeof *mb);
}

/* ------------------------------------------------------------ ensembles */

struct dp_dsi_ensemble {
    MPI_Comm comm;        /* MPI_COMM_NULL: every member here */
    int rank, size, nm;
    dp_dsi_member *mem;   /* [nm]: model NULL unless held here */
    int32_t **l2g;        /* [nm][member's ndocs]: local -> global id */
    int *nd;              /* [nm] member's ndocs */
    dsi_intern docs;      /* docid names -> global ids */
    float abstain;        /* alpha of dp_dsi_ensemble_abstain; 0: members never abstain */
    dp_ctx ctx;
};

void dp_dsi_ensemble_abstain(dp_dsi_ensemble *e, float alpha) { e->abstain = alpha > 0 && isfinite(alpha) ? alpha : 0; }

static int holder(const dp_dsi_ensemble *e, int m) { return e->comm == MPI_COMM_NULL ? 0 : m % e->size; }

int32_t dp_dsi_ensemble_doc_id(const dp_dsi_ensemble *e, const char *docid)
{
    /* a lookup never adds, so the interner is not changed */
    return (int32_t)dsi_intern_get((dsi_intern *)&e->docs, docid, strlen(docid), 0, NULL);
}

const char *dp_dsi_ensemble_doc_name(const dp_dsi_ensemble *e, int32_t id)
{
    return id >= 0 && id < e->docs.n ? dsi_intern_str(&e->docs, id) : "";
}

int dp_dsi_ensemble_members(const dp_dsi_ensemble *e) { return e->nm; }
MPI_Comm dsi_ensemble_comm(const dp_dsi_ensemble *e) { return e->comm; }
int dp_dsi_ensemble_docs(const dp_dsi_ensemble *e) { return (int)e->docs.n; }

/* Adds member m's names (a NUL-separated blob of n strings) to the table. */
static dp_status add_names(dp_dsi_ensemble *e, int m, const char *blob, int n)
{
    e->l2g[m] = malloc((size_t)n * sizeof **e->l2g);
    if (!e->l2g[m]) return dp_errorf(DP_ERR_NOMEM, "ensemble: out of memory");
    e->nd[m] = n;
    for (int d = 0; d < n; d++) {
        long id = dsi_intern_get(&e->docs, blob, strlen(blob), 1, NULL);
        if (id < 0) return dp_errorf(DP_ERR_NOMEM, "ensemble: out of memory");
        e->l2g[m][d] = (int32_t)id;
        blob += strlen(blob) + 1;
    }
    return DP_OK;
}

/* Member m's names packed by its holder and broadcast to every rank. */
static dp_status share_names(dp_dsi_ensemble *e, int m)
{
    char *blob = NULL;
    long len[2] = {0, 0}; /* bytes, names */
    if (holder(e, m) == e->rank) {
        const dp_dsi_member *mb = &e->mem[m];
        size_t nb = 0;
        if (!(blob = pack_names(mb->names, mb->model->ids.ndocs, &nb)))
            return dp_errorf(DP_ERR_NOMEM, "ensemble: out of memory");
        len[0] = (long)nb;
        len[1] = mb->model->ids.ndocs;
    }
    if (e->comm != MPI_COMM_NULL) {
        if (MPI_Bcast(len, 2, MPI_LONG, holder(e, m), e->comm) != MPI_SUCCESS)
            return dp_errorf(DP_ERR_MPI, "ensemble: broadcast of member %d's names failed", m);
        if (!blob && !(blob = malloc((size_t)len[0] + 1))) return dp_errorf(DP_ERR_NOMEM, "ensemble: out of memory");
        if (MPI_Bcast(blob, (int)len[0], MPI_CHAR, holder(e, m), e->comm) != MPI_SUCCESS) {
            free(blob);
            return dp_errorf(DP_ERR_MPI, "ensemble: broadcast of member %d's names failed", m);
        }
    }
    dp_status rc = add_names(e, m, blob, (int)len[1]);
    free(blob);
    return rc;
}

/* Every rank's status; a failure anywhere fails everywhere. */
static dp_status all_ok(const dp_dsi_ensemble *e, dp_status rc)
{
    if (e->comm == MPI_COMM_NULL) return rc;
    int bad = rc != DP_OK, any = bad;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, e->comm);
    if (rc != DP_OK) return rc;
    return any ? dp_errorf(DP_ERR_MPI, "rank %d: loading a member failed on another rank", e->rank) : DP_OK;
}

dp_status dp_dsi_ensemble_load(const char *const *paths, int n, MPI_Comm comm, dp_dsi_ensemble **out)
{
    *out = NULL;
    if (n < 1 || n > 4096) return dp_errorf(DP_ERR_ARG, "ensemble: %d members", n);
    dp_dsi_ensemble *e = calloc(1, sizeof *e);
    if (!e) return dp_errorf(DP_ERR_NOMEM, "ensemble: out of memory");
    e->comm = comm;
    e->size = 1;
    if (comm != MPI_COMM_NULL) {
        MPI_Comm_rank(comm, &e->rank);
        MPI_Comm_size(comm, &e->size);
    }
    e->nm = n;
    dp_ctx_init(&e->ctx);
    e->mem = calloc((size_t)n, sizeof *e->mem);
    e->l2g = calloc((size_t)n, sizeof *e->l2g);
    e->nd = calloc((size_t)n, sizeof *e->nd);
    dp_status rc = e->mem && e->l2g && e->nd ? DP_OK : dp_errorf(DP_ERR_NOMEM, "ensemble: out of memory");
    for (int m = 0; m < n && rc == DP_OK; m++)
        if (holder(e, m) == e->rank) rc = dp_dsi_member_load(paths[m], &e->mem[m]);
    rc = all_ok(e, rc);
    for (int m = 0; m < n && rc == DP_OK; m++) rc = share_names(e, m);
    if (rc != DP_OK) {
        dp_dsi_ensemble_free(e);
        return rc;
    }
    *out = e;
    return DP_OK;
}

void dp_dsi_ensemble_free(dp_dsi_ensemble *e)
{
    if (!e) return;
    for (int m = 0; m < e->nm; m++) {
        if (e->mem) dp_dsi_member_free(&e->mem[m]);
        if (e->l2g) free(e->l2g[m]);
    }
    dsi_intern_free(&e->docs);
    free(e->mem);
    free(e->l2g);
    free(e->nd);
    dp_ctx_free(&e->ctx);
    free(e);
}

/* Beams of member m for every query: global ids into docs [nq * stride], their
 * scores (log-probabilities) into sc; the row's last slot holds no document
 * (-1) and the member's log partition (dp_dsi_beam_search_lz), which --agg
 * logits adds back. With e->abstain = alpha (slot `beams`), the member's coverage c of the query (the fraction of its tokens in the
 * member's vocabulary) makes it a mixture: p(d) = c^alpha p_model(d), and
 * 1 - c^alpha on "none of mine", the row's last slot (DP_DSI_ABSTAIN). A
 * member that knows every word of a query answers as before. */
static dp_status member_beams(dp_dsi_ensemble *e, int m, const char *const *q, int nq, int beams, int stride,
                              int32_t *docs, float *sc)
{
    dp_dsi_member *mb = &e->mem[m];
    enum { QB = 256 };
    int cap = mb->tok.max_tokens;
    int32_t *ids = malloc((size_t)QB * (size_t)cap * sizeof *ids);
    int32_t *offs = malloc((QB + 1) * sizeof *offs);
    int32_t *bd = malloc((size_t)QB * (size_t)beams * sizeof *bd);
    float *bs = malloc((size_t)QB * (size_t)beams * sizeof *bs), cov[QB], lz[QB];
    const int lex = dp_dsi_has_lexical(mb->model);
    int32_t *terms = lex ? malloc((size_t)QB * (size_t)cap * sizeof *terms) : NULL;
    int32_t *toff = lex ? malloc((QB + 1) * sizeof *toff) : NULL, nwords[QB];
    uint64_t *wbuf = lex ? malloc(1024 * sizeof *wbuf) : NULL; /* the tokenizer's own cap on a text's words */
    dp_status rc = ids && offs && bd && bs && (!lex || (terms && toff && wbuf)) ? DP_OK
                                                                              : dp_errorf(DP_ERR_NOMEM, "query: out of memory");
    dp_ctx *c = &e->ctx;
    for (int q0 = 0; q0 < nq && rc == DP_OK; q0 += QB) {
        int nb = nq - q0 < QB ? nq - q0 : QB;
        offs[0] = 0;
        for (int i = 0; i < nb; i++) {
            offs[i + 1] = offs[i] + dp_dsi_tokenize(&mb->tok, q[q0 + i], (uint32_t *)ids + offs[i], cap);
            /* the tokenizer's words come first: the query's word count says where they end */
            if (lex) nwords[i] = mb->tok.words ? dp_dsi_words(q[q0 + i], wbuf, 1024) : 0;
        }
        if (lex) dp_dsi_lex_terms(mb->model, ids, offs, nb, nwords, terms, toff);
        dp_ctx_reset(c);
        c->training = 0;
        c->grad_enabled = 0;
        dp_tensor *h = dp_dsi_encode(c, mb->model, ids, offs, nb);
        if (!h) {
            rc = c->status ? c->status : DP_ERR_SHAPE;
            break;
        }
        if ((rc = dp_dsi_beam_search_lz(c, mb->model, h->data, terms, toff, nb, beams, bd, bs, lz)) != DP_OK) break;
        dp_dsi_coverage(mb->model, ids, offs, nb, cov);
        for (int i = 0; i < nb; i++) {
            int32_t *d = docs + (size_t)(q0 + i) * stride;
            float *s = sc + (size_t)(q0 + i) * stride;
            /* floored: a query of unknown words only still ranks by the members' own probabilities */
            const double w = e->abstain > 0 ? fmax(pow((double)cov[i], (double)e->abstain), 1e-20) : 1.0;
            const float logw = (float)log(w);
            for (int b = 0; b < beams; b++) {
                const int32_t loc = bd[(size_t)i * beams + b];
                d[b] = loc >= 0 ? e->l2g[m][loc] : loc;
                s[b] = bs[(size_t)i * beams + b] + logw;
            }
            if (e->abstain > 0) {
                d[beams] = w < 1.0 ? DP_DSI_ABSTAIN : -1;
                s[beams] = w < 1.0 ? (float)log1p(-w) : -INFINITY;
            }
            d[stride - 1] = -1;
            s[stride - 1] = lz[i];
        }
    }
    dp_ctx_reset(c);
    free(ids);
    free(offs);
    free(bd);
    free(bs);
    free(terms);
    free(toff);
    free(wbuf);
    return rc;
}

dp_status dp_dsi_ensemble_query(dp_dsi_ensemble *e, const char *const *queries, int nq, int beams, int only,
                                const dp_dsi_agg *how, int nhow, int k, int32_t **out, float **score)
{
    if (beams < 1 || beams > 64) return dp_errorf(DP_ERR_ARG, "query: %d beams outside [1, 64]", beams);
    if (only >= e->nm) return dp_errorf(DP_ERR_ARG, "query: member %d of %d", only, e->nm);
    const int stride = beams + (e->abstain > 0) + 1; /* the beams, the abstention, the log partition */
    size_t per = (size_t)nq * (size_t)stride;
    int32_t *docs = malloc((size_t)e->nm * per * sizeof *docs);
    float *sc = malloc((size_t)e->nm * per * sizeof *sc);
    dp_status rc = docs && sc ? DP_OK : dp_errorf(DP_ERR_NOMEM, "query: out of memory");
    for (int m = 0; m < e->nm && rc == DP_OK; m++)
        if (holder(e, m) == e->rank && (only < 0 || only == m))
            rc = member_beams(e, m, queries, nq, beams, stride, docs + (size_t)m * per, sc + (size_t)m * per);
    rc = all_ok(e, rc);
    /* beams travel to rank 0 */
    for (int m = 0; m < e->nm && rc == DP_OK && e->comm != MPI_COMM_NULL; m++) {
        int src = holder(e, m);
        if (src == 0 || (only >= 0 && only != m)) continue;
        int n = (int)per;
        if (e->rank == src) {
            if (MPI_Send(docs + (size_t)m * per, n, MPI_INT32_T, 0, 2 * m, e->comm) != MPI_SUCCESS ||
                MPI_Send(sc + (size_t)m * per, n, MPI_FLOAT, 0, 2 * m + 1, e->comm) != MPI_SUCCESS)
                rc = dp_errorf(DP_ERR_MPI, "rank %d: sending member %d's beams failed", e->rank, m);
        } else if (e->rank == 0) {
            if (MPI_Recv(docs + (size_t)m * per, n, MPI_INT32_T, src, 2 * m, e->comm, MPI_STATUS_IGNORE) != MPI_SUCCESS ||
                MPI_Recv(sc + (size_t)m * per, n, MPI_FLOAT, src, 2 * m + 1, e->comm, MPI_STATUS_IGNORE) != MPI_SUCCESS)
                rc = dp_errorf(DP_ERR_MPI, "rank 0: receiving member %d's beams from rank %d failed", m, src);
        }
    }
    if (rc == DP_OK && e->rank == 0) {
        int nm = only >= 0 ? 1 : e->nm, m0 = only >= 0 ? only : 0;
        int nb[4096];
        const int32_t *dp[4096];
        const float *sp[4096], *lp[4096];
        int logits = 0;
        for (int a = 0; a < nhow; a++) logits |= how[a] == DP_DSI_AGG_LOGITS;
        float *lg = logits ? malloc((size_t)nm * (size_t)stride * sizeof *lg) : NULL;
        if (logits && !lg) rc = dp_errorf(DP_ERR_NOMEM, "query: out of memory");
        for (int q = 0; q < nq && rc == DP_OK; q++) {
            for (int j = 0; j < nm; j++) {
                nb[j] = stride;
                dp[j] = docs + (size_t)(m0 + j) * per + (size_t)q * stride;
                sp[j] = sc + (size_t)(m0 + j) * per + (size_t)q * stride;
                if (!logits) continue;
                float *l = lg + (size_t)j * stride; /* log-probability + log partition = the logit */
                for (int i = 0; i < stride; i++) l[i] = sp[j][i] + sp[j][stride - 1];
                lp[j] = l;
            }
            for (int a = 0; a < nhow; a++) {
                int32_t *o = out[a] + (size_t)q * k;
                float *s = score[a] + (size_t)q * k;
                int got = dp_dsi_aggregate(how[a], nm, nb, dp, how[a] == DP_DSI_AGG_LOGITS ? lp : sp, k, o, s);
                for (int i = got; i < k; i++) {
                    o[i] = -1;
                    s[i] = 0;
                }
            }
        }
        free(lg);
    }
    free(docs);
    free(sc);
    return rc;
}
