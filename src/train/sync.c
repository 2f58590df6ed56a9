/* Rank agreement and gradient buckets for the trainer (see sync.h).
 *
 * Buckets are suffix-first ranges of the flat gradient buffer: bucket 0 holds
 * the last parameters declared, whose gradients backward finishes first. They
 * are submitted strictly in index order (a bucket goes out once it and every
 * bucket before it are final), so every rank feeds the comm engine the same
 * sequence even if their backward passes finish parameters in different
 * orders, and the ring's messages always match. */
#include "dptrain/sync.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/train.h"
#include "dptrain/report.h"

static void build_buckets(dp_sync *s, size_t bucket_bytes)
{
    size_t cap = bucket_bytes / sizeof(float);
    if (cap == 0) cap = 1;
    s->nb = 0;
    size_t hi = s->params->n;
    int count = 0;
    for (int i = s->np - 1; i >= 0; i--) {
        count++;
        s->p_bucket[i] = s->nb;
        size_t lo = s->p_off[i];
        if (hi - lo >= cap || i == 0) {
            s->buckets[s->nb++] = (dp_bucket){.lo = lo, .hi = hi, .params = count};
            hi = lo;
            count = 0;
        }
    }
}

/* The gradient as a compressor sees it: every parameter of two or more dims is
 * a matrix [shape[0], rest] (a conv weight [Cout, Cin kh kw]), 1-D ones are
 * vectors; and the buckets, in submission order. */
static dp_status compressor_init(dp_sync *s)
{
    const dp_params *p = s->params;
    dp_powersgd_matrix *mats = calloc((size_t)p->count + 1, sizeof *mats);
    dp_powersgd_range *vecs = calloc((size_t)p->count + 1, sizeof *vecs);
    dp_powersgd_range *buckets = calloc((size_t)s->nb + 1, sizeof *buckets);
    int nm = 0, nv = 0;
    dp_status rc = DP_OK;
    if (!mats || !vecs || !buckets) rc = dp_errorf(DP_ERR_NOMEM, "compressor: out of memory");
    for (int i = 0; rc == DP_OK && i < p->count; i++) {
        const dp_param *it = p->items[i];
        if (it->is_buffer) continue;
        if (it->t.ndim >= 2)
            mats[nm++] = (dp_powersgd_matrix){it->offset, it->t.shape[0], (int)(it->t.n / it->t.shape[0])};
        else
            vecs[nv++] = (dp_powersgd_range){it->offset, (size_t)it->t.n};
    }
    for (int b = 0; rc == DP_OK && b < s->nb; b++)
        buckets[b] = (dp_powersgd_range){s->buckets[b].lo, s->buckets[b].hi - s->buckets[b].lo};
    const dp_grad_layout l = {.n = p->n, .mats = mats, .nmats = nm, .vecs = vecs, .nvecs = nv,
                              .buckets = buckets, .nbuckets = s->nb};
    if (rc == DP_OK) rc = dp_compressor_create(&s->codec, &l, &s->compressor);
    if (rc == DP_OK) {
        s->state = dp_compressor_state(s->compressor, &s->state_n);
        s->residual = dp_compressor_residual(s->compressor);
    }
    free(mats);
    free(vecs);
    free(buckets);
    return rc;
}

dp_status dp_sync_init(dp_sync *s, MPI_Comm comm, const dp_params *p, const dp_sync_opts *o)
{
    memset(s, 0, sizeof *s);
    s->comm = comm;
    s->size = 1;
    s->params = p;
    s->overlap = o->overlap;
    s->codec = o->codec;
    /* the task turns it on and off per step (dp_compress_on) */
    s->codec_on = dp_compress_on(&o->codec, 0);
    if (comm != MPI_COMM_NULL) {
        MPI_Comm_rank(comm, &s->rank);
        MPI_Comm_size(comm, &s->size);
    }
    for (int i = 0; i < p->count; i++) s->np += !p->items[i]->is_buffer;
    int n = s->np ? s->np : 1;
    s->p_off = calloc((size_t)n, sizeof *s->p_off);
    s->p_bucket = calloc((size_t)n, sizeof *s->p_bucket);
    s->p_uses = calloc((size_t)n, sizeof *s->p_uses);
    s->buckets = calloc((size_t)n, sizeof *s->buckets);
    if (!s->p_off || !s->p_bucket || !s->p_uses || !s->buckets) return dp_errorf(DP_ERR_NOMEM, "buckets: out of memory");
    int k = 0;
    for (int i = 0; i < p->count; i++)
        if (!p->items[i]->is_buffer) s->p_off[k++] = p->items[i]->offset;
    build_buckets(s, o->bucket_bytes);
    if (s->size > 1) {
        int provided = MPI_THREAD_SINGLE;
        MPI_Query_thread(&provided);
        int threaded = o->overlap && dp_comm_thread_level_ok(provided);
        if (o->overlap && !threaded && s->rank == 0)
            fprintf(stderr, "warning: MPI thread level %d is too low for a communication thread; "
                            "running without overlap\n", provided);
        s->overlap = threaded;
        s->hashes = malloc((size_t)s->size * sizeof *s->hashes);
        if (!s->hashes) return dp_errorf(DP_ERR_NOMEM, "replica check: out of memory");
        dp_status rc;
        rc = dp_engine_create_table(comm, o->algo, threaded, o->allreduce_table, &s->engine);
        if (rc != DP_OK) return rc;
        if (dp_compress_hook_of(&s->codec) != DP_COMPRESS_OFF && (rc = compressor_init(s)) != DP_OK) return rc;
    } else if (comm != MPI_COMM_NULL && (o->algo == DP_ALLREDUCE_HIER || o->algo == DP_ALLREDUCE_HIER_RD ||
                                       o->algo == DP_ALLREDUCE_AUTO)) {
        /* nothing to reduce, but a bad DP_RANKS_PER_NODE fails here as it would at P ranks */
        dp_topo *t = NULL;
        dp_status rc = dp_topo_create(comm, 0, &t);
        dp_topo_free(t);
        if (rc != DP_OK) return rc;
    }
    return DP_OK;
}

void dp_sync_free(dp_sync *s)
{
    dp_watchdog_free(s->wd);
    dp_engine_free(s->engine);
    dp_compressor_free(s->compressor);
    free(s->hashes);
    free(s->p_off);
    free(s->p_bucket);
    free(s->p_uses);
    free(s->buckets);
    memset(s, 0, sizeof *s);
}

/* ---- agreement ---- */

#define AGREE_BYTES DP_CONFIG_TEXT_CAP

static void field_at(const char *text, const char *key, size_t klen, char *out, size_t n)
{
    for (const char *l = text; *l;) {
        size_t len = strcspn(l, "\n");
        if (len > klen && !memcmp(l, key, klen) && l[klen] == '=') {
            snprintf(out, n, "%.*s", (int)(len - klen - 1), l + klen + 1);
            return;
        }
        l += len + (l[len] == '\n');
    }
    snprintf(out, n, "(missing)");
}

dp_status dp_sync_agree(dp_sync *s, const char *text)
{
    if (s->size == 1) return DP_OK;
    if (strlen(text) >= AGREE_BYTES) return dp_errorf(DP_ERR_ARG, "configuration text over %d bytes", AGREE_BYTES);
    char *all = calloc((size_t)s->size, AGREE_BYTES);
    char *mine = calloc(1, AGREE_BYTES);
    if (!all || !mine) {
        free(all);
        free(mine);
        return dp_errorf(DP_ERR_NOMEM, "agreement: out of memory");
    }
    strcpy(mine, text);
    dp_watchdog_wait_begin(s->wd, "configuration agreement", 0, 0);
    dp_status rc = dp_mpi_errorf(MPI_Allgather(mine, AGREE_BYTES, MPI_CHAR, all, AGREE_BYTES, MPI_CHAR, s->comm),
                                 "rank %d: MPI_Allgather (configuration) failed", s->rank);
    dp_watchdog_wait_end(s->wd);
    /* Every rank runs the same comparison on the same data, so all of them
     * report the same first difference and stop together. */
    for (int r = 1; rc == DP_OK && r < s->size; r++) {
        const char *a = all, *b = all + (size_t)r * AGREE_BYTES;
        while (*a || *b) {
            size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
            if (la != lb || memcmp(a, b, la)) {
                size_t klen = strcspn(a, "=");
                char key[64], va[256], vb[256];
                snprintf(key, sizeof key, "%.*s", (int)(klen < la ? klen : la), a);
                field_at(all, key, strlen(key), va, sizeof va);
                field_at(all + (size_t)r * AGREE_BYTES, key, strlen(key), vb, sizeof vb);
                rc = dp_errorf(DP_ERR_MPI, "ranks disagree: rank %d has %s=%s, rank 0 has %s=%s", r, key, vb, key, va);
                break;
            }
            a += la + (a[la] == '\n');
            b += lb + (b[lb] == '\n');
        }
    }
    free(all);
    free(mine);
    return rc;
}

/* MPI_SUM of n doubles in place; `label` is what the watchdog reports a wait here as (a literal) */
static dp_status sum_doubles(dp_sync *s, double *v, int n, const char *label)
{
    dp_watchdog_wait_begin(s->wd, label, 0, 0);
    double t0 = dp_now();
    dp_status rc = dp_mpi_errorf(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, s->comm),
                                 "rank %d: MPI_Allreduce failed", s->rank);
    s->coll_wait_s += dp_now() - t0;
    dp_watchdog_wait_end(s->wd);
    return rc;
}

dp_status dp_sync_all_ok(dp_sync *s, dp_status mine, const char *what)
{
    if (s->size == 1) return mine;
    char why[1024];
    snprintf(why, sizeof why, "%s", dp_errmsg());
    double bad = mine != DP_OK;
    dp_status rc = sum_doubles(s, &bad, 1, "agreement that every rank succeeded");
    if (rc != DP_OK) return rc;
    if (mine != DP_OK) return dp_errorf(mine, "rank %d: %s", s->rank, why);
    if (bad > 0) return dp_errorf(DP_ERR_MPI, "rank %d: %s failed on another rank", s->rank, what);
    return DP_OK;
}

void dp_sync_phase(dp_sync *s, const char *phase, long step) { dp_watchdog_phase(s->wd, phase, step); }

dp_status dp_sync_bcast(dp_sync *s, void *buf, size_t bytes)
{
    if (s->size == 1) return DP_OK;
    dp_watchdog_wait_begin(s->wd, "broadcast from rank 0", 0, 0);
    double t0 = dp_now();
    dp_status rc = DP_OK;
    char *p = buf;
    while (bytes) { /* MPI counts are int */
        int k = bytes > (1u << 30) ? (1 << 30) : (int)bytes;
        rc = dp_mpi_errorf(MPI_Bcast(p, k, MPI_BYTE, 0, s->comm), "rank %d: MPI_Bcast (parameters) failed", s->rank);
        if (rc != DP_OK) break;
        p += k;
        bytes -= (size_t)k;
    }
    s->coll_wait_s += dp_now() - t0;
    dp_watchdog_wait_end(s->wd);
    return rc;
}

dp_status dp_sync_root_status(dp_sync *s, dp_status rc)
{
    if (s->size == 1) return rc;
    char msg[1024] = {0};
    int code = (int)rc;
    if (s->rank == 0 && rc != DP_OK) snprintf(msg, sizeof msg, "%s", dp_errmsg());
    if (dp_sync_bcast(s, &code, sizeof code) != DP_OK || dp_sync_bcast(s, msg, sizeof msg) != DP_OK) return DP_ERR_MPI;
    if (code != DP_OK) return dp_errorf((dp_status)code, "%s", msg);
    return DP_OK;
}

/* gather: every rank's `from` to rank 0's `to`, in rank order; else rank 0's slice r of `from` to rank r's `to`. */
static dp_status gather_or_scatter(dp_sync *s, int gather, const void *from, void *to, size_t bytes)
{
    if (s->size == 1) {
        if (bytes) memcpy(to, from, bytes);
        return DP_OK;
    }
    const char *what = gather ? "gather" : "scatter";
    if (bytes > INT_MAX) return dp_errorf(DP_ERR_ARG, "rank %d: %s of %zu bytes per rank", s->rank, what, bytes);
    int n = (int)bytes;
    int rc = gather ? MPI_Gather(from, n, MPI_BYTE, to, n, MPI_BYTE, 0, s->comm)
                    : MPI_Scatter(from, n, MPI_BYTE, to, n, MPI_BYTE, 0, s->comm);
    return dp_mpi_errorf(rc, "rank %d: MPI_%s (checkpoint state) failed", s->rank, gather ? "Gather" : "Scatter");
}

dp_status dp_sync_gather0(dp_sync *s, const void *mine, size_t bytes, void *all)
{
    return gather_or_scatter(s, 1, mine, all, bytes);
}

dp_status dp_sync_scatter0(dp_sync *s, const void *all, size_t bytes, void *mine)
{
    return gather_or_scatter(s, 0, all, mine, bytes);
}

dp_status dp_sync_sum(dp_sync *s, double *v, int n)
{
    return s->size == 1 ? DP_OK : sum_doubles(s, v, n, "statistics allreduce");
}

dp_status dp_sync_allgather_long(dp_sync *s, long v, long *all)
{
    if (s->size == 1) {
        all[0] = v;
        return DP_OK;
    }
    dp_watchdog_wait_begin(s->wd, "allgather of a count", 0, 0);
    dp_status rc = dp_mpi_errorf(MPI_Allgather(&v, 1, MPI_LONG, all, 1, MPI_LONG, s->comm),
                                 "rank %d: MPI_Allgather failed", s->rank);
    dp_watchdog_wait_end(s->wd);
    return rc;
}

dp_status dp_sync_average(dp_sync *s, float *buf, size_t n)
{
    if (s->size == 1 || n == 0) return DP_OK;
    double t0 = dp_now();
    dp_watchdog_wait_begin(s->wd, "parameter averaging (--sync-every)", dp_engine_submitted(s->engine), 1);
    dp_status rc = dp_engine_submit(s->engine, buf, n, DP_REDUCE_AVG);
    dp_status rc2 = dp_engine_wait_all(s->engine); /* also after a refused submit: the engine is left idle */
    dp_watchdog_wait_end(s->wd);
    s->comm_wait_s += dp_now() - t0;
    return rc != DP_OK ? rc : rc2;
}

dp_status dp_sync_check_replicas(dp_sync *s, const dp_params *p, long step)
{
    if (s->size == 1) return DP_OK;
    uint64_t mine = dp_params_hash(p), *all = s->hashes;
    dp_status rc = dp_mpi_errorf(MPI_Allgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, s->comm),
                                 "rank %d: MPI_Allgather (replica check) failed", s->rank);
    for (int r = 1; rc == DP_OK && r < s->size; r++)
        if (all[r] != all[0])
            rc = dp_errorf(DP_ERR_MPI,
                           "replica check at step %ld: rank %d's parameters differ from rank 0's "
                           "(xxh3 %016llx vs %016llx): the replicas have drifted",
                           step, r, (unsigned long long)all[r], (unsigned long long)all[0]);
    return rc;
}

void dp_sync_wire_bytes(dp_sync *s, double *wire, double *raw)
{
    *wire = *raw = 0;
    if (!s->engine) return;
    dp_comm_stats st;
    dp_engine_stats(s->engine, &st);
    *wire = (double)st.bytes_sent + s->compress_sent;
    *raw = (double)(st.bytes_raw_sent ? st.bytes_raw_sent : st.bytes_sent) + s->compress_raw;
}

void dp_sync_auto_desc(dp_sync *s, char *buf, size_t n)
{
    buf[0] = '\0';
    const dp_allreduce_table *t = s->engine ? dp_engine_table(s->engine) : NULL;
    if (!t || n < 2) return;
    int count[DP_ALLREDUCE_NALGOS] = {0};
    size_t most[DP_ALLREDUCE_NALGOS] = {0};
    for (int b = 0; b < s->nb; b++) {
        size_t len = s->buckets[b].hi - s->buckets[b].lo;
        dp_allreduce_algo a = dp_engine_algo_for(s->engine, len);
        count[a]++;
        if (len > most[a]) most[a] = len;
    }
    size_t k = (size_t)snprintf(buf, n, " (");
    for (int a = 0, first = 1; a < DP_ALLREDUCE_NALGOS && k < n; a++) {
        if (!count[a]) continue;
        k += (size_t)snprintf(buf + k, n - k, "%s%s for %d%s up to %zu KiB", first ? "" : ", ",
                              dp_allreduce_algo_name((dp_allreduce_algo)a), count[a], first ? " bucket(s)" : "",
                              (most[a] * sizeof(float) + 1023) / 1024);
        first = 0;
    }
    if (k < n) snprintf(buf + k, n - k, "; table %s)", t->source);
}

/* ---- buckets ---- */

static int param_of(const dp_sync *s, const dp_tensor *t)
{
    if (!t || !t->grad || t->grad < s->params->grad || t->grad >= s->params->grad + s->params->n) return -1;
    size_t off = (size_t)(t->grad - s->params->grad);
    int lo = 0, hi = s->np - 1; /* last p_off <= off */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (s->p_off[mid] <= off) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

static void submit_ready(dp_sync *s)
{
    while (s->next < s->nb && s->buckets[s->next].pending == 0) {
        dp_bucket *b = &s->buckets[s->next++];
        /* An error here is sticky in the engine and returned by wait_all. */
        dp_codec_config cc;
        float *residual;
        if (s->codec_on && dp_compressor_hook(s->compressor) == DP_COMPRESS_RING &&
            dp_compressor_bucket(s->compressor, b->lo, s->step, s->next - 1, &cc, &residual) == DP_OK)
            dp_engine_submit_codec(s->engine, s->params->grad + b->lo, b->hi - b->lo, DP_REDUCE_SUM, &cc, residual);
        else
            dp_engine_submit(s->engine, s->params->grad + b->lo, b->hi - b->lo, DP_REDUCE_SUM);
    }
}

static void on_node(void *user, const dp_node *nd)
{
    dp_sync *s = user;
    for (int i = 0; i < nd->nin; i++) {
        int pi = param_of(s, nd->ins ? nd->ins[i] : nd->in[i]);
        if (pi < 0 || s->p_uses[pi] <= 0) continue;
        if (--s->p_uses[pi] == 0 && --s->buckets[s->p_bucket[pi]].pending == 0) submit_ready(s);
    }
}

/* This step's gradients go through a compressor that runs after backward. */
static int after_backward(const dp_sync *s)
{
    return s->codec_on && dp_compressor_hook(s->compressor) == DP_COMPRESS_AFTER_BACKWARD;
}

void dp_sync_begin(dp_sync *s, dp_ctx *c)
{
    if (s->size == 1) return;
    s->next = 0;
    s->active = 1;
    if (s->wd) s->item_base = dp_engine_submitted(s->engine);
    /* Without the hook everything goes out in dp_sync_end: nothing to count. */
    if (!s->overlap || after_backward(s)) return;
    memset(s->p_uses, 0, (size_t)s->np * sizeof *s->p_uses);
    for (long k = 0; k < c->tape.len; k++) {
        const dp_node *nd = &c->tape.nodes[k];
        for (int i = 0; i < nd->nin; i++) {
            int pi = param_of(s, nd->ins ? nd->ins[i] : nd->in[i]);
            if (pi >= 0) s->p_uses[pi]++;
        }
    }
    for (int b = 0; b < s->nb; b++) s->buckets[b].pending = 0;
    for (int i = 0; i < s->np; i++)
        if (s->p_uses[i] > 0) s->buckets[s->p_bucket[i]].pending++;
    c->after_node = on_node;
    c->hook_user = s;
}

dp_status dp_sync_end(dp_sync *s, dp_ctx *c)
{
    if (s->size == 1) return DP_OK;
    /* from here the training thread only waits (or, without overlap, reduces inline) */
    double t0 = dp_now();
    if (c) c->after_node = NULL;
    if (after_backward(s)) {
        /* top-k, PowerSGD: their own collectives on the training thread's
         * communicator (the engine is idle between steps) */
        dp_watchdog_wait_begin(s->wd, "gradient allreduce", 0, 0);
        dp_status rc = dp_compressor_run(s->compressor, s->params->grad, s->comm, &s->compress_sent, &s->compress_raw);
        dp_watchdog_wait_end(s->wd);
        s->comm_wait_s += dp_now() - t0;
        s->active = 0;
        return rc;
    }
    if (!s->active) { /* an empty local batch: nothing was counted */
        s->next = 0;
        if (s->wd) s->item_base = dp_engine_submitted(s->engine);
    }
    for (int b = s->next; b < s->nb; b++) s->buckets[b].pending = 0;
    dp_watchdog_wait_begin(s->wd, "gradient allreduce", s->item_base, s->nb);
    submit_ready(s);
    dp_status rc = dp_engine_wait_all(s->engine);
    dp_watchdog_wait_end(s->wd);
    s->comm_wait_s += dp_now() - t0;
    s->active = 0;
    return rc;
}
