/* Sparse-rows allreduce: reduce only the rows of a [table_rows, dim] float table
 * that some rank touched, e.g. the gradient of an embedding table of which a
 * step reads a few thousand rows out of 2^18 (DSI's embedding bag).
 *
 * Where this sits: the trainer keeps the gradient of the table as one flat
 * range (rows of dim floats, zero where untouched) and hands it here with the
 * row ids its batch read; the call leaves every rank with the reduced rows and
 * the sorted union of ids, on which the trainer runs a lazy optimizer step and
 * which it then zeroes. Like the rest of comm it sees floats and ids, never a
 * tensor.
 *
 * Per call, on every rank r of P:
 *
 *   raw ids (repeats, any order) --bitmap--> mine_r: distinct, sorted  (local)
 *   ring allgather of (count_r, bad id?)     3 int64 per rank   [tag ROWS]
 *     -> every rank sees every count: over capacity / bad id on any rank is
 *        DP_ERR_ARG on every rank, before any row moves
 *   ring allgather of mine_0 .. mine_{P-1}   variable blocks    [tag ROWS]
 *   union U = merge of the P sorted lists    pairwise, log2 P rounds, O(|all| log P)
 *   pack[j] = table[U[j]]  (j < |U|)         |U| x dim floats, contiguous
 *   dp_allreduce (ring or MPI) on pack       SUM or AVG          [tags RING]
 *   table[U[j]] = pack[j]
 *
 * Every rank computes the same U from the same gathered bytes, so the reduced
 * count |U| dim agrees everywhere. The allgathers are rings over MPI_Sendrecv
 * (dp_ring_allgather, as in topk.c), so their bytes are counted exactly.
 *
 * Why allgather the ids and not reduce a dense bitmap of the table: a bitmap
 * is table_rows / 8 bytes per rank (32 KiB at 2^18 rows) whatever the step
 * touched; the ids are 4 bytes per distinct row, i.e. smaller while a rank
 * touches fewer than table_rows / 32 rows, which is the case this call is for.
 *
 * Semantics: the union rows are reduced over every rank's copy, touched or not,
 * so a rank's rows that it did not touch must hold zero (a gradient) for SUM to
 * mean "the sum of the touched contributions". Rows outside the union are not
 * read or written.
 *
 * Memory: everything is allocated by dp_rows_ws_create: a bitmap of table_rows
 * bits, id lists of P x max_rows_per_rank, and the packed rows,
 * min(P max_rows_per_rank, table_rows) x dim floats. Only the ring's own
 * workspace (2 receive slots of at most a segment, the request array) grows on
 * its first calls. Sorting is a radix sort through the workspace (glibc's
 * qsort may malloc). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm_internal.h"
#include "dptrain/idsort.h"

struct dp_rows_ws {
    size_t max_rows;   /* distinct rows per rank per call */
    size_t table_rows; /* bits in seen */
    size_t dim;        /* floats per row (at most) */
    int nranks;        /* the communicator size it was made for (at most) */
    size_t cap_union;  /* min(nranks * max_rows, table_rows) */
    uint64_t *seen;    /* table_rows bits, all zero between calls */
    int32_t *mine;     /* [max_rows] this rank's distinct ids, sorted */
    int32_t *all;      /* [nranks * max_rows] gathered lists, then merge ping-pong */
    int32_t *tmp;      /* [nranks * max_rows] the other half of the ping-pong */
    const int32_t *uni;/* the union: all or tmp */
    size_t nuni;
    size_t *off, *off2;/* [nranks + 1] list offsets during the merge */
    int64_t *hdr;      /* [3 nranks]: (distinct count, bad position, bad id) per rank */
    float *pack;       /* [cap_union * dim] */
    dp_ring_ws *ring;
    dp_comm_stats stats;
};

#define HDR 3 /* int64 per rank in the header allgather */

/* ------------------------------------------------------------------------- */
/* Workspace                                                                  */
/* ------------------------------------------------------------------------- */

dp_status dp_rows_ws_create(size_t max_rows_per_rank, size_t dim, size_t table_rows,
                            MPI_Comm comm, dp_rows_ws **out)
{
    if (NULL == out)
        return dp_errorf(DP_ERR_ARG, "dp_rows_ws_create: out is NULL");
    *out = NULL;
    if (0 == dim)
        return dp_errorf(DP_ERR_ARG, "dp_rows_ws_create: dim is 0");
    if (0 == table_rows || table_rows > (size_t)INT32_MAX + 1)
        return dp_errorf(DP_ERR_ARG, "dp_rows_ws_create: table_rows = %zu outside "
                         "[1, 2^31] (row ids are int32)", table_rows);
    if (max_rows_per_rank > (size_t)INT_MAX / sizeof(int32_t))
        return dp_errorf(DP_ERR_ARG, "dp_rows_ws_create: max_rows_per_rank = %zu exceeds "
                         "INT_MAX / 4 (the ids of one rank go in one message)",
                         max_rows_per_rank);
    if (max_rows_per_rank > table_rows)
        max_rows_per_rank = table_rows; /* a rank cannot touch more distinct rows */
    int P = 1;
    if (MPI_COMM_NULL != comm && MPI_SUCCESS != MPI_Comm_size(comm, &P))
        return dp_errorf(DP_ERR_MPI, "dp_rows_ws_create: MPI_Comm_size failed");

    dp_rows_ws *ws = calloc(1, sizeof *ws);
    if (NULL == ws)
        return dp_errorf(DP_ERR_NOMEM, "dp_rows_ws_create: out of memory");
    ws->max_rows = max_rows_per_rank;
    ws->table_rows = table_rows;
    ws->dim = dim;
    ws->nranks = P;
    size_t lists = (size_t)P * max_rows_per_rank;
    ws->cap_union = lists < table_rows ? lists : table_rows;
    if (ws->cap_union && dim > SIZE_MAX / sizeof(float) / ws->cap_union)
        goto nomem;
    ws->seen = calloc((table_rows + 63) / 64, sizeof *ws->seen);
    ws->mine = malloc((max_rows_per_rank ? max_rows_per_rank : 1) * sizeof *ws->mine);
    ws->all = malloc((lists ? lists : 1) * sizeof *ws->all);
    ws->tmp = malloc((lists ? lists : 1) * sizeof *ws->tmp);
    ws->off = malloc(((size_t)P + 1) * sizeof *ws->off);
    ws->off2 = malloc(((size_t)P + 1) * sizeof *ws->off2);
    ws->hdr = malloc((size_t)P * HDR * sizeof *ws->hdr);
    ws->pack = malloc((ws->cap_union ? ws->cap_union * dim : 1) * sizeof *ws->pack);
    if (!ws->seen || !ws->mine || !ws->all || !ws->tmp || !ws->off || !ws->off2 || !ws->hdr ||
        !ws->pack)
        goto nomem;
    dp_status st = dp_ring_ws_create(0, &ws->ring);
    if (DP_OK != st) {
        dp_rows_ws_free(ws);
        return st;
    }
    ws->uni = ws->mine;
    *out = ws;
    return DP_OK;

nomem:
    dp_rows_ws_free(ws);
    return dp_errorf(DP_ERR_NOMEM, "dp_rows_ws_create: out of memory for %zu rows x %zu "
                     "floats (%d ranks x %zu rows, table of %zu rows)",
                     lists < table_rows ? lists : table_rows, dim, P, max_rows_per_rank,
                     table_rows);
}

void dp_rows_ws_free(dp_rows_ws *ws)
{
    if (NULL == ws)
        return;
    free(ws->seen);
    free(ws->mine);
    free(ws->all);
    free(ws->tmp);
    free(ws->off);
    free(ws->off2);
    free(ws->hdr);
    free(ws->pack);
    dp_ring_ws_free(ws->ring);
    free(ws);
}

void dp_rows_ws_stats(const dp_rows_ws *ws, dp_comm_stats *out)
{
    if (NULL != ws && NULL != out)
        *out = ws->stats;
}

/* ------------------------------------------------------------------------- */
/* Local: distinct sorted ids                                                 */
/* ------------------------------------------------------------------------- */

/* Writes the distinct ids of rows[0..n) (sorted, at most ws->max_rows of them)
 * to ws->mine and fills this rank's header: hdr[0] = number of distinct ids
 * (all of them, even past the capacity), hdr[1] = position of the first id
 * outside [0, table_rows) or -1, hdr[2] = that id. The bitmap is all zero
 * again on return. */
static void local_distinct(dp_rows_ws *ws, const int32_t *rows, size_t n, size_t table_rows,
                           int64_t hdr[HDR])
{
    hdr[0] = 0;
    hdr[1] = -1;
    hdr[2] = 0;
    for (size_t i = 0; i < n; i++)
        if (rows[i] < 0 || (size_t)rows[i] >= table_rows) {
            hdr[1] = (int64_t)i;
            hdr[2] = rows[i];
            return;
        }
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)rows[i];
        uint64_t bit = 1ull << (v & 63);
        if (ws->seen[v >> 6] & bit)
            continue;
        ws->seen[v >> 6] |= bit;
        if (d < ws->max_rows)
            ws->mine[d] = rows[i];
        d++;
    }
    for (size_t i = 0; i < n; i++) /* clear through the raw list: O(n), not O(table) */
        ws->seen[(uint32_t)rows[i] >> 6] = 0;
    hdr[0] = (int64_t)d;
    if (d <= ws->max_rows) /* ws->tmp is free until the merge */
        dp_sort_ids(ws->mine, ws->tmp, d, table_rows);
}

/* Merges two sorted lists of distinct ids into dst, keeping each id once.
 * @return the length written. */
static size_t merge_unique(const int32_t *a, size_t na, const int32_t *b, size_t nb,
                           int32_t *dst)
{
    size_t i = 0, j = 0, w = 0;
    while (i < na && j < nb) {
        if (a[i] < b[j])
            dst[w++] = a[i++];
        else if (b[j] < a[i])
            dst[w++] = b[j++];
        else {
            dst[w++] = a[i++];
            j++;
        }
    }
    while (i < na)
        dst[w++] = a[i++];
    while (j < nb)
        dst[w++] = b[j++];
    return w;
}

/* Union of the P sorted lists ws->all[off[q] .. off[q+1]) by rounds of pairwise
 * merges between all and tmp; sets ws->uni and ws->nuni. */
static void merge_lists(dp_rows_ws *ws, int P)
{
    int32_t *src = ws->all, *dst = ws->tmp;
    size_t *o = ws->off, *no = ws->off2;
    int L = P;
    while (L > 1) {
        size_t w = 0;
        int nl = 0;
        for (int q = 0; q < L; q += 2) {
            no[nl++] = w;
            if (q + 1 < L)
                w += merge_unique(src + o[q], o[q + 1] - o[q], src + o[q + 1],
                                  o[q + 2] - o[q + 1], dst + w);
            else {
                memcpy(dst + w, src + o[q], (o[q + 1] - o[q]) * sizeof *dst);
                w += o[q + 1] - o[q];
            }
        }
        no[nl] = w;
        int32_t *t = src;
        src = dst;
        dst = t;
        size_t *u = o;
        o = no;
        no = u;
        L = nl;
    }
    ws->uni = src + o[0];
    ws->nuni = o[1] - o[0];
}

/* ------------------------------------------------------------------------- */
/* The call                                                                   */
/* ------------------------------------------------------------------------- */

/* DP_ERR_ARG when the header h of rank q of P reports an id outside the table
 * or more distinct rows than the workspace holds. */
static dp_status check_hdr(const dp_rows_ws *ws, const int64_t h[HDR], int q, int P, size_t table_rows)
{
    if (h[1] >= 0)
        return dp_errorf(DP_ERR_ARG, "dp_rows_allreduce: rank %d of %d passed row id %lld "
                         "(at position %lld), outside [0, %zu)", q, P, (long long)h[2],
                         (long long)h[1], table_rows);
    if ((uint64_t)h[0] > ws->max_rows)
        return dp_errorf(DP_ERR_ARG, "dp_rows_allreduce: rank %d of %d touched %lld "
                         "distinct rows, more than the workspace's max_rows_per_rank "
                         "(%zu)", q, P, (long long)h[0], ws->max_rows);
    return DP_OK;
}

/* Everything after the local dedupe, on a communicator of P > 1 ranks with
 * MPI_ERRORS_RETURN set. */
static dp_status rows_run(float *table, size_t table_rows, size_t dim, dp_reduce_op op,
                          dp_allreduce_algo algo, MPI_Comm comm, int rank, int P,
                          const int64_t mine_hdr[HDR], dp_rows_ws *ws)
{
    /* 1. Headers: every rank learns every count (and any bad id) first. */
    for (int q = 0; q <= P; q++)
        ws->off[q] = (size_t)q * HDR;
    memcpy(ws->hdr + (size_t)rank * HDR, mine_hdr, HDR * sizeof *ws->hdr);
    dp_status st = dp_ring_allgather(ws->hdr, ws->off, 0, MPI_INT64_T, rank, P, DP_COMM_ROWS_TAG, comm,
                                     "dp_rows_allreduce: allgather of row counts", &ws->stats);
    if (DP_OK != st)
        return st;
    for (int q = 0; q < P; q++)
        if (DP_OK != (st = check_hdr(ws, ws->hdr + (size_t)q * HDR, q, P, table_rows)))
            return st;

    /* 2. The id lists, then their union. */
    ws->off[0] = 0;
    for (int q = 0; q < P; q++)
        ws->off[q + 1] = ws->off[q] + (size_t)ws->hdr[(size_t)q * HDR];
    memcpy(ws->all + ws->off[rank], ws->mine, (size_t)mine_hdr[0] * sizeof *ws->all);
    st = dp_ring_allgather(ws->all, ws->off, 0, MPI_INT32_T, rank, P, DP_COMM_ROWS_TAG, comm,
                           "dp_rows_allreduce: allgather of row ids", &ws->stats);
    if (DP_OK != st)
        return st;
    merge_lists(ws, P);

    /* 3. Pack, reduce, unpack. */
    const size_t nu = ws->nuni, n = nu * dim;
    for (size_t j = 0; j < nu; j++)
        memcpy(ws->pack + j * dim, table + (size_t)ws->uni[j] * dim, dim * sizeof *table);
    st = dp_allreduce_counted(ws->pack, n, op, algo, comm, ws->ring, &ws->stats.bytes_sent,
                              &ws->stats.bytes_recv);
    if (DP_OK != st)
        return st;
    for (size_t j = 0; j < nu; j++)
        memcpy(table + (size_t)ws->uni[j] * dim, ws->pack + j * dim, dim * sizeof *table);
    return DP_OK;
}

dp_status dp_rows_allreduce(float *table, size_t table_rows, size_t dim, const int32_t *rows,
                            size_t nrows, dp_reduce_op op, dp_allreduce_algo algo,
                            MPI_Comm comm, dp_rows_ws *ws, const int32_t **union_rows,
                            size_t *nunion)
{
    static const char who[] = "dp_rows_allreduce";
    if (NULL != union_rows)
        *union_rows = NULL;
    if (NULL != nunion)
        *nunion = 0;
    if (NULL == ws)
        return dp_errorf(DP_ERR_ARG, "%s: ws is NULL", who);
    if (NULL == table || (NULL == rows && nrows > 0))
        return dp_errorf(DP_ERR_ARG, "%s: %s is NULL", who, NULL == table ? "table" : "rows");
    if (0 == dim || dim > ws->dim)
        return dp_errorf(DP_ERR_ARG, "%s: dim = %zu outside the workspace's [1, %zu]", who, dim,
                         ws->dim);
    if (0 == table_rows || table_rows > ws->table_rows)
        return dp_errorf(DP_ERR_ARG, "%s: table_rows = %zu outside the workspace's [1, %zu]",
                         who, table_rows, ws->table_rows);
    if (DP_REDUCE_SUM != op && DP_REDUCE_AVG != op)
        return dp_errorf(DP_ERR_ARG, "%s: unknown reduce op %d", who, (int)op);
    if ((int)algo < 0 || algo >= DP_ALLREDUCE_NALGOS)
        return dp_errorf(DP_ERR_ARG, "%s: unknown algorithm %d", who, (int)algo);
    /* The packed rows of a call differ in count from call to call and the
     * workspace has no topology: the hierarchical choices reduce them with the
     * flat ring (the dense buckets of the same run go hierarchical). */
    if (DP_ALLREDUCE_HIER == algo || DP_ALLREDUCE_HIER_RD == algo)
        algo = DP_ALLREDUCE_RING;
    int P = 1, rank = 0;
    if (MPI_COMM_NULL != comm) {
        int inter = 0;
        if (MPI_SUCCESS != MPI_Comm_test_inter(comm, &inter) || inter)
            return dp_errorf(DP_ERR_ARG, "%s: not an intra-communicator", who);
        if (MPI_SUCCESS != MPI_Comm_size(comm, &P) || MPI_SUCCESS != MPI_Comm_rank(comm, &rank))
            return dp_errorf(DP_ERR_MPI, "%s: MPI_Comm_size/rank failed", who);
    }
    if (P > ws->nranks)
        return dp_errorf(DP_ERR_ARG, "%s: communicator of %d ranks, workspace made for %d",
                         who, P, ws->nranks);

    const double t0 = dp_comm_now_s();
    int64_t hdr[HDR];
    local_distinct(ws, rows, nrows, table_rows, hdr);
    dp_status st = DP_OK;
    if (1 == P) { /* nothing to exchange; AVG over one rank is the identity */
        if (DP_OK != (st = check_hdr(ws, hdr, 0, 1, table_rows)))
            return st;
        ws->uni = ws->mine;
        ws->nuni = (size_t)hdr[0];
    } else {
        dp_errh_guard g;
        if (DP_OK != (st = dp_errh_enter(&g, comm, who)))
            return st;
        st = rows_run(table, table_rows, dim, op, algo, comm, rank, P, hdr, ws);
        dp_errh_leave(&g);
        if (DP_OK != st)
            return st;
    }
    const size_t n = ws->nuni * dim;
    ws->stats.calls++;
    ws->stats.elems += n;
    /* what a float32 ring allreduce of the whole table would have sent */
    ws->stats.bytes_raw_sent +=
        P > 1 ? (uint64_t)(8.0 * (double)table_rows * (double)dim * (P - 1) / P) : 0;
    ws->stats.bytes_codec_sent = ws->stats.bytes_sent;
    ws->stats.seconds += dp_comm_now_s() - t0;
    if (NULL != union_rows)
        *union_rows = ws->uni;
    if (NULL != nunion)
        *nunion = ws->nuni;
    return DP_OK;
}
