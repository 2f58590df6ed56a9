/* Which ranks share a node: the node and column communicators of the
 * hierarchical allreduce, made once per communicator (never per call, since
 * MPI_Comm_split is a collective with an allgather inside).
 *
 * Real nodes come from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED). Simulated
 * ones (DP_RANKS_PER_NODE=R, or R passed in) are consecutive groups of R ranks,
 * which is how mpirun places ranks by default (--map-by slot), so a test at
 * 4 ranks with R=2 runs the same messages as 2 hosts of 2 would.
 *
 * Uneven nodes (a real cluster with 3 ranks on one host and 2 on another) are
 * not supported by the hierarchical schedule: local rank l of every node must
 * own the same slice of the buffer, or the column allreduce would mix slices.
 * They get no node/column communicators and dp_hier_run falls back to the flat
 * ring, with one warning from rank 0 here (at creation, not per call). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "comm/comm_internal.h"

struct dp_topo {
    MPI_Comm comm;       /* the communicator described (not owned) */
    MPI_Comm node, col;  /* owned; MPI_COMM_NULL when uneven */
    int size, rank;
    int nodes, per_node; /* per_node: the largest node's size */
    int node_id, local;
    int uniform;
};

/* DP_RANKS_PER_NODE as an int in [1, size] dividing size; 0 when unset or empty.
 * The message says "world size" on (a duplicate of) MPI_COMM_WORLD, and names
 * the communicator otherwise (DSI members split the world). */
static dp_status env_ranks_per_node(MPI_Comm comm, int size, int *out)
{
    *out = 0;
    const char *v = getenv("DP_RANKS_PER_NODE");
    if (NULL == v || '\0' == v[0])
        return DP_OK;
    char *end = NULL;
    errno = 0;
    long r = strtol(v, &end, 10);
    if (errno || end == v || *end || r < 1 || r > size || size % r) {
        int cmp = MPI_UNEQUAL;
        MPI_Comm_compare(comm, MPI_COMM_WORLD, &cmp);
        return dp_errorf(DP_ERR_ARG, "DP_RANKS_PER_NODE='%s': must be a whole number of ranks per node, at least 1, "
                         "that divides the %s %d", v,
                         MPI_IDENT == cmp || MPI_CONGRUENT == cmp ? "world size" : "size of the communicator", size);
    }
    *out = (int)r;
    return DP_OK;
}

dp_status dp_topo_create(MPI_Comm comm, int ranks_per_node, dp_topo **out)
{
    if (NULL == out)
        return dp_errorf(DP_ERR_ARG, "dp_topo_create: out is NULL");
    *out = NULL;
    dp_status st = dp_comm_check_args("dp_topo_create", NULL, 0, DP_REDUCE_SUM, comm);
    if (DP_OK != st)
        return st;
    int size = 1, rank = 0;
    MPI_Comm_size(comm, &size);
    MPI_Comm_rank(comm, &rank);
    int R = ranks_per_node;
    if (R < 0 || (R > 0 && (R > size || size % R)))
        return dp_errorf(DP_ERR_ARG, "dp_topo_create: %d ranks per node: must be at least 1 and divide the size %d",
                         R, size);
    if (0 == R && DP_OK != (st = env_ranks_per_node(comm, size, &R)))
        return st;
    return dp_topo_create_colored(comm, R ? rank / R : -1, out);
}

dp_status dp_topo_create_colored(MPI_Comm comm, int color, dp_topo **out)
{
    *out = NULL;
    dp_status st = DP_OK;
    int size = 1, rank = 0;
    MPI_Comm_size(comm, &size);
    MPI_Comm_rank(comm, &rank);

    dp_topo *t = calloc(1, sizeof *t);
    if (NULL == t)
        return dp_errorf(DP_ERR_NOMEM, "dp_topo_create: out of memory");
    t->comm = comm;
    t->node = t->col = MPI_COMM_NULL;
    t->size = size;
    t->rank = rank;
    dp_errh_guard g;
    if (DP_OK != (st = dp_errh_enter(&g, comm, "dp_topo_create"))) {
        free(t);
        return st;
    }
    int rc = color >= 0 ? MPI_Comm_split(comm, color, rank, &t->node)
               : MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &t->node);
    int ext[2] = {0, 0}; /* -min, max of the node sizes */
    if (MPI_SUCCESS == rc) {
        MPI_Comm_size(t->node, &t->per_node);
        MPI_Comm_rank(t->node, &t->local);
        ext[0] = -t->per_node;
        ext[1] = t->per_node;
        rc = MPI_Allreduce(MPI_IN_PLACE, ext, 2, MPI_INT, MPI_MAX, comm);
    }
    /* Column: same local rank; node id = rank among the column (nodes ordered by
     * their lowest world rank, as the key is the world rank). */
    if (MPI_SUCCESS == rc)
        rc = MPI_Comm_split(comm, t->local, rank, &t->col);
    if (MPI_SUCCESS == rc) {
        t->uniform = -ext[0] == ext[1];
        t->per_node = ext[1];
        MPI_Comm_rank(t->col, &t->node_id);
        MPI_Comm_size(t->col, &t->nodes);
        if (t->uniform) {
            rc = MPI_Comm_set_errhandler(t->node, MPI_ERRORS_RETURN);
            if (MPI_SUCCESS == rc)
                rc = MPI_Comm_set_errhandler(t->col, MPI_ERRORS_RETURN);
        } else {
            /* local rank 0 exists on every node: its column counts the nodes */
            int n0 = 0 == t->local ? t->nodes : 0;
            rc = MPI_Allreduce(&n0, &t->nodes, 1, MPI_INT, MPI_MAX, comm);
            MPI_Comm_free(&t->node);
            MPI_Comm_free(&t->col);
            if (0 == rank)
                fprintf(stderr, "dptrain: warning: nodes hold %d to %d ranks (uneven): the hierarchical "
                        "allreduce runs the flat ring instead\n", -ext[0], ext[1]);
        }
    }
    dp_errh_leave(&g);
    if (MPI_SUCCESS != rc)
        st = dp_mpi_errorf(rc, "dp_topo_create: rank %d of %d: splitting the communicator into nodes failed",
                           rank, size);
    if (DP_OK != st) {
        dp_topo_free(t);
        return st;
    }
    *out = t;
    return DP_OK;
}

void dp_topo_free(dp_topo *t)
{
    if (NULL == t)
        return;
    if (MPI_COMM_NULL != t->node)
        MPI_Comm_free(&t->node);
    if (MPI_COMM_NULL != t->col)
        MPI_Comm_free(&t->col);
    free(t);
}

int dp_topo_shape(const dp_topo *t, int *nodes, int *per_node, int *node, int *local)
{
    if (nodes)
        *nodes = t->nodes;
    if (per_node)
        *per_node = t->per_node;
    if (node)
        *node = t->node_id;
    if (local)
        *local = t->local;
    return t->uniform;
}

MPI_Comm dp_topo_comm(const dp_topo *t) { return t->comm; }
MPI_Comm dp_topo_node_comm(const dp_topo *t) { return t->node; }
MPI_Comm dp_topo_col_comm(const dp_topo *t) { return t->col; }
