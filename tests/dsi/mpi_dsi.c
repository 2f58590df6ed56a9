/* DSI across ranks (run at 1, 2 and 4 ranks) on a tiny synthetic corpus of
 * 200 documents:
 *  - the centralised model (atomic and semantic docids) retrieves its
 *    training queries at Hits@1 >= 0.9, data-parallel over every rank;
 *  - P ranks x batch b end with the parameters of 1 rank x batch P b (the
 *    global sampler, dense buckets through the ring, embedding rows through
 *    dp_rows_allreduce, lazy Adam);
 *  - with members, every MPI call made while a member trains stays inside
 *    its own member: PMPI wrappers below see each call, translate its peers
 *    to world ranks and count any that leave the member (4 ranks: 2 members
 *    of 2 ranks; 2 ranks: 2 members of 1 rank);
 *  - the ensemble of the members answers through dsi-query's path and the
 *    member checkpoints reject a truncated file. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpi_dsi_common.h"

static char tmp[256], data[300];

/* ------------------------------------------------------------ message census */

static atomic_int g_armed;
static int g_lo, g_hi;               /* world ranks of this rank's member: [lo, hi) */
static atomic_long g_inside, g_outside;

static int world_of(MPI_Comm comm, int r)
{
    if (r == MPI_ANY_SOURCE || r == MPI_PROC_NULL) return -1;
    MPI_Group g, w;
    PMPI_Comm_group(comm, &g);
    PMPI_Comm_group(MPI_COMM_WORLD, &w);
    int out = -1;
    PMPI_Group_translate_ranks(g, 1, &r, w, &out);
    PMPI_Group_free(&g);
    PMPI_Group_free(&w);
    return out;
}

static void peer(MPI_Comm comm, int r)
{
    if (!atomic_load(&g_armed)) return;
    int w = world_of(comm, r);
    if (w < 0) return; /* any-source receives: their senders are counted on their side */
    if (w >= g_lo && w < g_hi) atomic_fetch_add(&g_inside, 1);
    else atomic_fetch_add(&g_outside, 1);
}

static void collective(MPI_Comm comm)
{
    if (!atomic_load(&g_armed)) return;
    int n;
    PMPI_Comm_size(comm, &n);
    for (int r = 0; r < n; r++) peer(comm, r);
}

int MPI_Send(const void *b, int c, MPI_Datatype t, int d, int tag, MPI_Comm comm)
{
    peer(comm, d);
    return PMPI_Send(b, c, t, d, tag, comm);
}
int MPI_Isend(const void *b, int c, MPI_Datatype t, int d, int tag, MPI_Comm comm, MPI_Request *q)
{
    peer(comm, d);
    return PMPI_Isend(b, c, t, d, tag, comm, q);
}
int MPI_Recv(void *b, int c, MPI_Datatype t, int s, int tag, MPI_Comm comm, MPI_Status *st)
{
    peer(comm, s);
    return PMPI_Recv(b, c, t, s, tag, comm, st);
}
int MPI_Irecv(void *b, int c, MPI_Datatype t, int s, int tag, MPI_Comm comm, MPI_Request *q)
{
    peer(comm, s);
    return PMPI_Irecv(b, c, t, s, tag, comm, q);
}
int MPI_Sendrecv(const void *sb, int sc, MPI_Datatype st, int d, int stag, void *rb, int rc, MPI_Datatype rt, int s,
                 int rtag, MPI_Comm comm, MPI_Status *status)
{
    peer(comm, d);
    peer(comm, s);
    return PMPI_Sendrecv(sb, sc, st, d, stag, rb, rc, rt, s, rtag, comm, status);
}
int MPI_Allreduce(const void *s, void *r, int c, MPI_Datatype t, MPI_Op op, MPI_Comm comm)
{
    collective(comm);
    return PMPI_Allreduce(s, r, c, t, op, comm);
}
int MPI_Bcast(void *b, int c, MPI_Datatype t, int root, MPI_Comm comm)
{
    collective(comm);
    return PMPI_Bcast(b, c, t, root, comm);
}
int MPI_Allgather(const void *s, int sc, MPI_Datatype st, void *r, int rc, MPI_Datatype rt, MPI_Comm comm)
{
    collective(comm);
    return PMPI_Allgather(s, sc, st, r, rc, rt, comm);
}
int MPI_Gather(const void *s, int sc, MPI_Datatype st, void *r, int rc, MPI_Datatype rt, int root, MPI_Comm comm)
{
    collective(comm);
    return PMPI_Gather(s, sc, st, r, rc, rt, root, comm);
}
int MPI_Scatter(const void *s, int sc, MPI_Datatype st, void *r, int rc, MPI_Datatype rt, int root, MPI_Comm comm)
{
    collective(comm);
    return PMPI_Scatter(s, sc, st, r, rc, rt, root, comm);
}
int MPI_Comm_dup(MPI_Comm comm, MPI_Comm *out)
{
    collective(comm);
    return PMPI_Comm_dup(comm, out);
}
int MPI_Barrier(MPI_Comm comm)
{
    collective(comm);
    return PMPI_Barrier(comm);
}

/* ------------------------------------------------------------ corpus */

/* 200 documents; document d owns three words of its own and each query
 * mixes two or three of them with filler words every document uses. */
static void write_corpus(const char *path)
{
    static const char *filler[] = {"the", "package", "tool", "for", "with", "data", "files", "library", "and", "support"};
    FILE *f = fopen(path, "w");
    if (!f) MPI_Abort(MPI_COMM_WORLD, 1);
    for (int d = 0; d < 200; d++)
        for (int q = 0; q < 6; q++) {
            uint64_t h = mix((uint64_t)d * 131 + (uint64_t)q);
            char own[3][16];
            for (int j = 0; j < 3; j++) snprintf(own[j], sizeof own[j], "w%dx%c", d, 'a' + j);
            int a = (int)(h % 3), b = (int)((h >> 8) % 3);
            if (b == a) b = (a + 1) % 3;
            fprintf(f, "%s %s %s %s\tdoc-%03d\n", filler[(h >> 16) % 10], own[a], filler[(h >> 24) % 10],
                    (h >> 32) % 2 ? own[b] : own[3 - a - b], d);
        }
    fclose(f);
}

static dp_dsi_train_config tiny(void)
{
    dp_dsi_train_config c;
    dp_dsi_train_defaults(&c);
    snprintf(c.run.data, sizeof c.run.data, "%s", data);
    c.model.embed = 32;
    c.model.hidden = 64;
    c.run.epochs = 40;
    c.run.batch = 64 / g_size;
    c.lr = 5e-3f;
    c.index_ratio = 0;
    c.eval_beams = 5;
    c.run.quiet = 1;
    return c;
}

/* ------------------------------------------------------------ cases */

static void central(dp_dsi_docid_kind kind, const char *name)
{
    dp_dsi_train_config c = tiny();
    c.docids = kind;
    if (kind == DP_DSI_SEMANTIC) { /* digit by digit: slower to fit than one softmax */
        c.run.epochs = 60;
        c.lr = 1e-2f;
    }
    c.kmeans_k = 4;
    c.leaf = 10;
    snprintf(c.run.out, sizeof c.run.out, "%s/central-%d", tmp, (int)kind);
    dp_dsi_train_result res[1];
    CHECK_OK(dp_dsi_train_run(&c, MPI_COMM_WORLD, res));
    if (g_rank == 0) {
        double h1 = frac(&res[0].train_m, res[0].train_m.hits1);
        CHECK(h1 >= 0.9, "training queries Hits@1 %.3f < 0.9", h1);
        CHECK(res[0].ndocs == 200, "%d documents", res[0].ndocs);
        CHECK(res[0].train_m.queries == 600, "%ld training queries evaluated", res[0].train_m.queries);
        printf("    %s: train Hits@1 %.3f, test Hits@1 %.3f Hits@10 %.3f\n", name, h1,
               frac(&res[0].test_m, res[0].test_m.hits1), frac(&res[0].test_m, res[0].test_m.hits10));
    }
    end_case(name);
}

/* --head-init prototypes: before any step the atomic head already ranks a
 * document's own training queries near the top; the random head does not. */
static void prototype_head(void)
{
    double h1[2];
    for (int init = 0; init < 2; init++) {
        dp_dsi_train_config c = tiny();
        c.run.epochs = 0;
        c.head_init = init;
        dp_dsi_train_result res[1];
        CHECK_OK(dp_dsi_train_run(&c, MPI_COMM_WORLD, res));
        h1[init] = frac(&res[0].train_m, res[0].train_m.hits1);
    }
    if (g_rank == 0) {
        CHECK(h1[1] >= 0.5, "prototype head, no training: train Hits@1 %.3f < 0.5", h1[1]);
        CHECK(h1[0] <= 0.05, "random head, no training: train Hits@1 %.3f (chance is 0.005)", h1[0]);
        printf("    untrained: random head Hits@1 %.3f, prototype head %.3f\n", h1[0], h1[1]);
    }
    end_case("prototype head before training");
}

/* --agg logits against the definition: for each query, every member's logit
 * of every one of its documents (log p + log Z from a beam over all of them),
 * the union sorted (logit descending, id ascending) must be the merge's top k. */
static int logits_mismatches(dp_dsi_ensemble *e, const char *const *paths, const char *const *qs, int nq,
                             const int32_t *got, int k)
{
    enum { NM = 2, ND = 100, QMAX = 64 };
    int bad = 0;
    dp_dsi_member mb[NM];
    memset(mb, 0, sizeof mb);
    for (int m = 0; m < NM; m++) CHECK_OK(dp_dsi_member_load(paths[m], &mb[m]));
    dp_ctx c;
    dp_ctx_init(&c);
    for (int q = 0; q < nq && !bad; q++) {
        int32_t all_doc[NM * ND];
        float all_lg[NM * ND];
        int n = 0;
        for (int m = 0; m < NM; m++) {
            int32_t ids[QMAX], offs[2] = {0, 0}, docs[ND];
            float sc[ND], lz = 0;
            offs[1] = dp_dsi_tokenize(&mb[m].tok, qs[q], (uint32_t *)ids, QMAX);
            dp_ctx_reset(&c);
            dp_tensor *h = dp_dsi_encode(&c, mb[m].model, ids, offs, 1);
            if (!h || dp_dsi_beam_search_lz(&c, mb[m].model, h->data, NULL, NULL, 1, ND, docs, sc, &lz) != DP_OK) {
                bad = -1;
                break;
            }
            for (int i = 0; i < ND && docs[i] >= 0; i++) {
                all_doc[n] = dp_dsi_ensemble_doc_id(e, mb[m].names[docs[i]]);
                all_lg[n++] = sc[i] + lz;
            }
        }
        for (int r = 0; r < k && r < n && !bad; r++) { /* selection: the r-th best of the union */
            int b = r;
            for (int j = r + 1; j < n; j++)
                if (all_lg[j] > all_lg[b] || (all_lg[j] == all_lg[b] && all_doc[j] < all_doc[b])) b = j;
            int32_t td = all_doc[r];
            float tl = all_lg[r];
            all_doc[r] = all_doc[b], all_lg[r] = all_lg[b], all_doc[b] = td, all_lg[b] = tl;
            /* logits within float rounding of each other may swap places in the merge's softmax */
            if (got[(size_t)q * k + r] != all_doc[r] && !(r + 1 < n && fabsf(all_lg[r] - all_lg[r + 1]) < 1e-4f)) bad = q + 1;
        }
    }
    dp_ctx_free(&c);
    for (int m = 0; m < NM; m++) dp_dsi_member_free(&mb[m]);
    return bad;
}

static void equivalence(void)
{
    dp_dsi_train_config c = tiny();
    c.run.epochs = 2;
    c.run.batch = 16;
    c.model.dropout = 0; /* masks come from each rank's own stream */
    c.docids = DP_DSI_SEMANTIC;
    c.kmeans_k = 4;
    c.leaf = 10;
    dp_dsi_member a, b;
    if (train_p_and_one(&c, tmp, &a, &b)) {
        /* Float sums in another order, through 2 x 19 Adam steps. Adam divides each
         * weight's step by that weight's own gradient RMS, so where a gradient is
         * near zero the reordering's rounding is no longer small beside the step and
         * that one weight can drift by a fair part of lr per step (seen: 3.4e-5 on a
         * weight of 0.05, 1.1e-4 of the largest weight, on AMD Zen 4's OpenBLAS
         * kernels). So the vectors are compared in the L2 norm, where such weights
         * weigh nothing (seen: 2.8e-6): a lost bucket or a rank on the wrong data
         * moves every weight and misses 1e-4 by orders of magnitude. */
        double dd = rel_l2_diff(a.model->dense.data, b.model->dense.data, a.model->dense.n);
        double de = rel_l2_diff(a.model->emb.data, b.model->emb.data, a.model->emb.n);
        CHECK(dd <= 1e-4, "dense parameters differ by %.3g relative (L2)", dd);
        CHECK(de <= 1e-4, "embedding differs by %.3g relative (L2)", de);
        printf("    P x b against 1 x Pb: relative L2 difference dense %.2g, embedding %.2g\n", dd, de);
    }
    dp_dsi_member_free(&a);
    dp_dsi_member_free(&b);
    end_case("equivalence: P x b == 1 x Pb");
}

/* --abstain: a query made of one member-0 document's own words, which member 1
 * never saw whole (a few character 3-grams it shares). Member 1 answers it
 * anyway, with at least 1/5 of its mass on its top beam; abstaining on its
 * coverage, it passes on little, and member 0's document comes first. */
static void abstention(dp_dsi_ensemble *e, const dp_dsi_train_config *c)
{
    char path[700];
    snprintf(path, sizeof path, "%s/m2/0/train.tsv", c->run.data);
    dp_dsi_pairs tr0;
    CHECK_OK(dp_dsi_pairs_load(path, 1, &tr0));
    if (tr0.n < 1) return;
    int d = atoi(tr0.docid[0] + 4); /* "doc-123" */
    char q[96];
    snprintf(q, sizeof q, "w%dxa w%dxb w%dxc", d, d, d);
    const char *qs[1] = {q};
    const int32_t gold = dp_dsi_ensemble_doc_id(e, tr0.docid[0]);
    double best_other[2] = {0, 0};
    int32_t top[2] = {-1, -1};
    for (int a = 0; a < 2; a++) {
        dp_dsi_ensemble_abstain(e, a ? 8.0f : 0.0f);
        int32_t o[10];
        float sc[10];
        int32_t *op = o;
        float *sp = sc;
        dp_dsi_agg how = DP_DSI_AGG_CONFIDENCE;
        CHECK_OK(dp_dsi_ensemble_query(e, qs, 1, 5, -1, &how, 1, 10, &op, &sp));
        if (g_rank) continue;
        top[a] = o[0];
        for (int i = 0; i < 10 && o[i] >= 0; i++) {
            int mine = 0;
            for (long j = 0; j < tr0.n && !mine; j++) mine = dp_dsi_ensemble_doc_id(e, tr0.docid[j]) == o[i];
            if (!mine && sc[i] > best_other[a]) best_other[a] = sc[i];
        }
    }
    dp_dsi_ensemble_abstain(e, 0);
    if (g_rank == 0) {
        CHECK(best_other[0] >= 0.2, "without abstention member 1's best answer holds %.3f (< 1/5?)", best_other[0]);
        CHECK(best_other[1] < 0.05, "abstaining, member 1 still passes on %.3f", best_other[1]);
        CHECK(top[1] == gold, "abstaining: top answer %d, the document is %d", top[1], gold);
        printf("    \"%s\": member 1's best answer %.3f, abstaining %.2g\n", q, best_other[0], best_other[1]);
    }
    dp_dsi_pairs_free(&tr0);
}

/* head: dp_dsi_head_kind; the cosine head's members go through their
 * checkpoints too, and fold the 2^14 token ids onto a 2^12-row table;
 * encoder: dp_dsi_encoder_kind (the idf encoder's members: issue 23) */
static void members(int head, int encoder)
{
    if (g_size % 2) return; /* two members need an even number of ranks */
    dp_dsi_train_config c = tiny();
    c.members = 2;
    c.run.batch = 64 / (g_size / 2);
    c.model.head = head;
    c.model.encoder = encoder;
    if (head) c.model.buckets = 1u << 12;
    snprintf(c.run.out, sizeof c.run.out, "%s/ens-%d-%d", tmp, head, encoder);
    int per = g_size / 2, member = g_rank / per;
    g_lo = member * per;
    g_hi = g_lo + per;
    MPI_Comm mc;
    MPI_Comm_split(MPI_COMM_WORLD, member, g_rank, &mc);
    dp_dsi_train_result res;
    atomic_store(&g_inside, 0);
    atomic_store(&g_outside, 0);
    atomic_store(&g_armed, 1);
    dp_status rc = dp_dsi_train_member(&c, per > 1 ? mc : MPI_COMM_NULL, member, &res);
    atomic_store(&g_armed, 0);
    CHECK_OK(rc);
    MPI_Comm_free(&mc);
    long out = atomic_load(&g_outside), in = atomic_load(&g_inside);
    CHECK(out == 0, "member %d: %ld MPI peers outside the member while training", member, out);
    /* the census sees the member's own traffic, so a silent zero above means something */
    CHECK(per == 1 || in > 100, "member %d: only %ld MPI peers inside the member", member, in);
    double h1 = frac(&res.train_m, res.train_m.hits1);
    CHECK(h1 >= 0.9, "member %d: training queries Hits@1 %.3f < 0.9", member, h1);
    CHECK(res.ndocs == 100, "member %d holds %d documents", member, res.ndocs);
    end_case(encoder ? "idf-encoder members train alone (census)"
             : head  ? "cosine-head members train alone (message census)"
                     : "members train alone (message census)");

    /* the ensemble over both members, spread over the ranks */
    char p0[600], p1[600];
    snprintf(p0, sizeof p0, "%s/member-0/model.dsi", c.run.out);
    snprintf(p1, sizeof p1, "%s/member-1/model.dsi", c.run.out);
    const char *paths[2] = {p0, p1};
    dp_dsi_ensemble *e = NULL;
    CHECK_OK(dp_dsi_ensemble_load(paths, 2, MPI_COMM_WORLD, &e));
    if (e && head) {
        dp_dsi_member back;
        CHECK_OK(dp_dsi_member_load(paths[0], &back));
        CHECK(back.model && back.model->cfg.encoder == encoder, "member 0's checkpoint lost its encoder (%d)",
              back.model ? back.model->cfg.encoder : -1);
        CHECK(back.model && back.model->cfg.head == head && back.model->cfg.head_scale == c.model.head_scale,
              "member 0's checkpoint lost its head (%d, scale %g)", back.model ? back.model->cfg.head : -1,
              back.model ? (double)back.model->cfg.head_scale : 0.0);
        CHECK(back.model && back.model->cfg.buckets == 1u << 12 && back.model->cfg.token_space == 1u << 14 &&
                  back.tok.buckets == 1u << 14,
              "member 0's table %u rows, token space %u", back.model ? back.model->cfg.buckets : 0,
              back.model ? back.model->cfg.token_space : 0);
        dp_dsi_member_free(&back);
    }
    if (e) {
        CHECK(dp_dsi_ensemble_docs(e) == 200, "%d docids in the ensemble", dp_dsi_ensemble_docs(e));
        char path[400];
        snprintf(path, sizeof path, "%s/train.tsv", data);
        dp_dsi_pairs tr;
        CHECK_OK(dp_dsi_pairs_load(path, 1, &tr));
        int nq = (int)tr.n;
        dp_dsi_agg how[3] = {DP_DSI_AGG_CONFIDENCE, DP_DSI_AGG_VOTE, DP_DSI_AGG_LOGITS};
        int32_t *o[3];
        float *s[3];
        for (int a = 0; a < 3; a++) {
            o[a] = malloc((size_t)nq * 10 * sizeof(int32_t));
            s[a] = malloc((size_t)nq * 10 * sizeof(float));
        }
        /* 10 beams a member: the union's best 10 logits are inside them whatever their split */
        CHECK_OK(dp_dsi_ensemble_query(e, (const char *const *)tr.query, nq, 10, -1, how, 3, 10, o, s));
        if (g_rank == 0) {
            int nl = nq < 40 ? nq : 40;
            int bad = logits_mismatches(e, paths, (const char *const *)tr.query, nl, o[2], 10);
            CHECK(bad == 0, "--agg logits differs from the members' logits merged by hand at query %d of %d", bad, nl);
        }
        if (g_rank == 0) {
            dp_dsi_metrics m[2] = {{0}, {0}};
            for (int a = 0; a < 2; a++)
                for (int q = 0; q < nq; q++)
                    dp_dsi_metrics_add(&m[a], o[a] + (size_t)q * 10, 10, dp_dsi_ensemble_doc_id(e, tr.docid[q]));
            double h = frac(&m[0], m[0].hits1);
            CHECK(h >= 0.9, "ensemble (confidence) Hits@1 on training queries %.3f < 0.9", h);
            printf("    ensemble of 2 (%s head): confidence Hits@1 %.3f, vote Hits@1 %.3f\n", head ? "cosine" : "dot", h,
                   frac(&m[1], m[1].hits1));
        }
        for (int a = 0; a < 3; a++) {
            free(o[a]);
            free(s[a]);
        }
        dp_dsi_pairs_free(&tr);
        if (head) abstention(e, &c);
        dp_dsi_ensemble_free(e);
    }
    end_case(encoder ? "ensemble of 2 idf-encoder members answers"
             : head  ? "ensemble of 2 cosine-head members answers"
                     : "ensemble of 2 members answers");
}

static void bad_checkpoint(void)
{
    if (g_rank == 0) {
        char src[600], dst[600];
        snprintf(src, sizeof src, "%s/central-0/member-0/model.dsi", tmp);
        snprintf(dst, sizeof dst, "%s/truncated.dsi", tmp);
        FILE *f = fopen(src, "rb"), *g = fopen(dst, "wb");
        CHECK(f && g, "cannot copy %s", src);
        if (f && g) {
            fseek(f, 0, SEEK_END);
            long n = ftell(f);
            fseek(f, 0, SEEK_SET);
            char *buf = malloc((size_t)n);
            CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n, "read");
            fwrite(buf, 1, (size_t)n / 2, g);
            free(buf);
        }
        if (f) fclose(f);
        if (g) fclose(g);
        dp_dsi_member m;
        dp_status rc = dp_dsi_member_load(dst, &m);
        CHECK(rc == DP_ERR_FORMAT && strstr(dp_errmsg(), "truncated.dsi"), "truncated member: %s (%s)",
              dp_status_name(rc), dp_errmsg());
    }
    if (g_size == 2) {
        dp_dsi_train_config c = tiny();
        c.members = 3;
        dp_dsi_train_result res[3];
        dp_status rc = dp_dsi_train_run(&c, MPI_COMM_WORLD, res);
        CHECK(rc == DP_ERR_ARG && strstr(dp_errmsg(), "--members 3"), "3 members on 2 ranks: %s", dp_errmsg());
    }
    end_case("bad member file, members not dividing ranks");
}

int main(int argc, char **argv)
{
    mpi_start(&argc, &argv, "mpi-dsi", tmp, sizeof tmp);
    snprintf(data, sizeof data, "%s/data", tmp);
    prepare_dataset(tmp, data, write_corpus, 2);

    central(DP_DSI_ATOMIC, "central atomic: train Hits@1 >= 0.9");
    central(DP_DSI_SEMANTIC, "central semantic: train Hits@1 >= 0.9");
    prototype_head();
    equivalence();
    members(DP_DSI_HEAD_DOT, DP_DSI_ENCODER_BAG_MLP);
    members(DP_DSI_HEAD_COSINE, DP_DSI_ENCODER_BAG_MLP);
    members(DP_DSI_HEAD_COSINE, DP_DSI_ENCODER_IDF);
    bad_checkpoint();

    return mpi_finish("mpi_dsi", tmp);
}
