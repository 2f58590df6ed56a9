/* The communication engine: a FIFO of in-place allreduces over ranges, run by a
 * communication thread so that they overlap with backward.
 *
 * Why a thread: Open MPI (ob1/vader, no async progress thread) moves data only
 * inside MPI calls, so non-blocking collectives started from the training thread
 * would mostly wait for its next MPI call. The engine's thread sits in the ring's
 * MPI_Wait calls and drives progress while the training thread computes.
 *
 *   training thread                       communication thread
 *   backward ... bucket k ready
 *   dp_engine_submit(k)  ── queue ──▶     pop k, dp_ring_run(k) on the dup comm
 *   backward ... bucket k+1 ready          (MPI_Isend/Irecv/Wait ...)
 *   dp_engine_submit(k+1) ── queue ──▶    pop k+1 ...
 *   dp_engine_wait_all() ◀── done ──     queue empty: sleep on the condvar
 *   optimizer step
 *
 * While the training thread computes, the two threads usually share one core
 * (one bound core per rank), so the thread's ring waits sleep between tests
 * instead of spinning (ring.c, ring_wait); `busy` tells it when to spin again.
 *
 * Matching: all ranks submit the same ranges in the same order and the thread
 * runs them in FIFO order, so the i-th allreduce of every rank is the same one.
 * The engine owns an MPI_Comm_dup of the caller's communicator, so its messages
 * never match the training thread's; MPI_ERRORS_RETURN is set on the dup once.
 *
 * Thread level: with a thread the engine calls MPI concurrently with whatever the
 * training thread does, so it requires MPI_THREAD_MULTIPLE (see comm.h).
 *
 * Errors are sticky: once a range fails, the rest of the queue is skipped (a ring
 * that has lost its peers would only hang) and every later call returns the same
 * status and message. The message is kept in the engine because dp_errmsg() is
 * per thread. DP_ERR_NONFINITE is the exception: a codec that rejects a NaN
 * poisons the ring on every rank alike and the ring still completes, so the
 * queue goes on; the next dp_engine_wait_all reports it once and clears it
 * (the trainer may then skip the step and carry on). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "comm/comm_internal.h"

typedef struct engine_item {
    float *buf;
    size_t n;
    dp_reduce_op op;
    int coded;           /* 1: through cfg (dp_engine_submit_codec) */
    dp_codec_config cfg; /* copied at submit */
    float *residual;     /* n floats or NULL */
    dp_allreduce_algo algo; /* what runs it: the engine's, or AUTO's choice for n */
} engine_item;

struct dp_engine {
    MPI_Comm comm; /* duplicate of the caller's, MPI_ERRORS_RETURN */
    dp_allreduce_algo algo;
    int threaded;
    dp_ring_ws *ws; /* used by the thread only (or inline) */
    dp_topo *topo;  /* on comm, for the hierarchical algorithms (attached to ws) */
    dp_allreduce_table table; /* AUTO: loaded once at create (the same on every rank) */

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv_work; /* queue not empty, or stop */
    pthread_cond_t cv_done; /* an item completed (or room in the queue) */
    engine_item q[DP_ENGINE_QUEUE_CAP];
    uint64_t submitted, completed; /* q[completed % CAP .. submitted % CAP) queued */
    int stop;
    atomic_int busy; /* 0 while the training thread waits for this engine */

    dp_status err; /* first error, sticky */
    char errmsg[1024];
    int nonfinite; /* a range came back DP_ERR_NONFINITE since the last wait_all */
    char nfmsg[1024];
    dp_comm_stats stats;   /* what dp_engine_stats reports */
    dp_comm_stats ws_seen; /* ws counters when last booked (ws is the thread's) */
};

/* Runs one range on the engine's communicator; records the first error.
 * Threaded: called without the mutex held. Returns the range's status. */
static dp_status engine_run(dp_engine *e, const engine_item *it, uint64_t index, double *secs)
{
    dp_wd_note_item(index);
    double t0 = dp_comm_now_s();
    dp_status st = DP_ALLREDUCE_RING == e->algo && it->coded
                       ? dp_ring_codec_run(it->buf, it->n, it->op, &it->cfg, it->residual,
                                           e->comm, e->ws)
                   : DP_ALLREDUCE_HIER == e->algo && it->coded /* the codec on the inter-node leg */
                       ? dp_hier_codec_run(it->buf, it->n, it->op, &it->cfg, it->residual, e->topo, e->ws)
                       : dp_allreduce_run(it->buf, it->n, it->op, it->algo, e->comm, e->ws);
    *secs = dp_comm_now_s() - t0;
    return st;
}

/* With e->mu held (or inline): books a finished range. */
static void engine_account(dp_engine *e, const engine_item *it, dp_status st, double secs)
{
    if (DP_ERR_NONFINITE == st) {
        if (!e->nonfinite)
            snprintf(e->nfmsg, sizeof e->nfmsg, "%s", dp_errmsg());
        e->nonfinite = 1;
    } else if (DP_OK != st && DP_OK == e->err) {
        e->err = st;
        snprintf(e->errmsg, sizeof e->errmsg, "%s", dp_errmsg());
    }
    if (DP_ALLREDUCE_MPI == it->algo) { /* the ring counts its own calls */
        e->stats.calls++;
        e->stats.elems += it->n;
    } else { /* add what the ring's counters moved by */
        dp_comm_stats w;
        dp_ring_ws_stats(e->ws, &w);
        e->stats.calls += w.calls - e->ws_seen.calls;
        e->stats.elems += w.elems - e->ws_seen.elems;
        e->stats.bytes_sent += w.bytes_sent - e->ws_seen.bytes_sent;
        e->stats.bytes_recv += w.bytes_recv - e->ws_seen.bytes_recv;
        e->stats.bytes_raw_sent += w.bytes_raw_sent - e->ws_seen.bytes_raw_sent;
        e->stats.bytes_codec_sent += w.bytes_codec_sent - e->ws_seen.bytes_codec_sent;
        e->stats.bytes_inter_sent += w.bytes_inter_sent - e->ws_seen.bytes_inter_sent;
        e->stats.bytes_inter_recv += w.bytes_inter_recv - e->ws_seen.bytes_inter_recv;
        e->ws_seen = w;
    }
    e->stats.seconds += secs;
}

static void *engine_thread(void *arg)
{
    dp_engine *e = arg;
#ifdef PR_SET_TIMERSLACK
    prctl(PR_SET_TIMERSLACK, 1000UL); /* the default 50 us slack would stretch ring_wait's sleeps */
#endif
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (e->completed == e->submitted && !e->stop)
            pthread_cond_wait(&e->cv_work, &e->mu);
        if (e->completed == e->submitted) /* stop, and nothing left */
            break;
        engine_item it = e->q[e->completed % DP_ENGINE_QUEUE_CAP];
        int skip = DP_OK != e->err;
        pthread_mutex_unlock(&e->mu);

        dp_status st = DP_OK;
        double secs = 0.0;
        if (!skip)
            st = engine_run(e, &it, e->completed, &secs); /* only this thread moves completed */

        pthread_mutex_lock(&e->mu);
        if (!skip)
            engine_account(e, &it, st, secs);
        e->completed++;
        pthread_cond_broadcast(&e->cv_done);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

static dp_status engine_error(dp_engine *e)
{
    return dp_errorf(e->err, "%s", e->errmsg);
}

/* With e->mu held (or inline): the sticky error, else a pending non-finite
 * report (cleared), else DP_OK. */
static dp_status engine_take_status(dp_engine *e)
{
    if (DP_OK != e->err)
        return engine_error(e);
    if (e->nonfinite) {
        e->nonfinite = 0;
        return dp_errorf(DP_ERR_NONFINITE, "%s", e->nfmsg);
    }
    return DP_OK;
}

dp_status dp_engine_create(MPI_Comm comm, dp_allreduce_algo algo, int threaded,
                           dp_engine **out)
{
    return dp_engine_create_table(comm, algo, threaded, NULL, out);
}

dp_status dp_engine_create_table(MPI_Comm comm, dp_allreduce_algo algo, int threaded,
                                 const char *table_path, dp_engine **out)
{
    if (NULL == out)
        return dp_errorf(DP_ERR_ARG, "dp_engine_create: out is NULL");
    *out = NULL;
    if ((int)algo < 0 || algo >= DP_ALLREDUCE_NALGOS)
        return dp_errorf(DP_ERR_ARG, "dp_engine_create: unknown algorithm %d", (int)algo);
    dp_status st = dp_comm_check_args("dp_engine_create", NULL, 0, DP_REDUCE_SUM, comm);
    if (DP_OK != st)
        return st;
    if (threaded) {
        int provided = MPI_THREAD_SINGLE;
        if (MPI_SUCCESS != MPI_Query_thread(&provided))
            provided = MPI_THREAD_SINGLE;
        if (!dp_comm_thread_level_ok(provided))
            return dp_errorf(DP_ERR_ARG, "dp_engine_create: a threaded engine needs "
                             "MPI_THREAD_MULTIPLE (MPI provides level %d; call "
                             "MPI_Init_thread, or use threaded = 0)", provided);
    }

    dp_engine *e = calloc(1, sizeof *e);
    if (NULL == e)
        return dp_errorf(DP_ERR_NOMEM, "dp_engine_create: out of memory");
    e->comm = MPI_COMM_NULL;
    e->algo = algo;
    e->threaded = threaded ? 1 : 0;
    atomic_init(&e->busy, 1);
    if (DP_OK != (st = dp_ring_ws_create(0, &e->ws)))
        goto err_free;
    if (e->threaded)
        dp_ring_ws_set_yield(e->ws, &e->busy);

    dp_errh_guard g;
    if (DP_OK != (st = dp_errh_enter(&g, comm, "dp_engine_create")))
        goto err_free;
    int rc = MPI_Comm_dup(comm, &e->comm);
    dp_errh_leave(&g);
    if (MPI_SUCCESS == rc)
        rc = MPI_Comm_set_errhandler(e->comm, MPI_ERRORS_RETURN);
    if (MPI_SUCCESS != rc) {
        st = dp_mpi_errorf(rc, "dp_engine_create: MPI_Comm_dup failed");
        goto err_comm;
    }
    if ((DP_ALLREDUCE_HIER == algo || DP_ALLREDUCE_HIER_RD == algo || DP_ALLREDUCE_AUTO == algo) &&
        DP_OK != (st = dp_topo_create(e->comm, 0, &e->topo)))
        goto err_comm;
    if (DP_ALLREDUCE_AUTO == algo) { /* once, here: never a collective per call */
        int nodes = 1, per_node = 1;
        dp_topo_shape(e->topo, &nodes, &per_node, NULL, NULL);
        if (DP_OK != (st = dp_allreduce_table_load(e->comm, table_path, nodes, per_node, &e->table)))
            goto err_comm;
    }
    dp_ring_ws_set_topo(e->ws, e->topo);

    if (0 != pthread_mutex_init(&e->mu, NULL)) {
        st = dp_errorf(DP_ERR_NOMEM, "dp_engine_create: pthread_mutex_init failed");
        goto err_comm;
    }
    if (0 != pthread_cond_init(&e->cv_work, NULL)) {
        st = dp_errorf(DP_ERR_NOMEM, "dp_engine_create: pthread_cond_init failed");
        goto err_mu;
    }
    if (0 != pthread_cond_init(&e->cv_done, NULL)) {
        st = dp_errorf(DP_ERR_NOMEM, "dp_engine_create: pthread_cond_init failed");
        goto err_cv;
    }
    if (e->threaded && 0 != pthread_create(&e->thread, NULL, engine_thread, e)) {
        st = dp_errorf(DP_ERR_NOMEM, "dp_engine_create: pthread_create failed");
        pthread_cond_destroy(&e->cv_done);
        goto err_cv;
    }
    *out = e;
    return DP_OK;

err_cv:
    pthread_cond_destroy(&e->cv_work);
err_mu:
    pthread_mutex_destroy(&e->mu);
err_comm:
    dp_topo_free(e->topo);
    if (MPI_COMM_NULL != e->comm)
        MPI_Comm_free(&e->comm);
err_free:
    dp_ring_ws_free(e->ws);
    free(e);
    return st;
}

static dp_status engine_submit(dp_engine *e, engine_item it)
{
    if (NULL == e)
        return dp_errorf(DP_ERR_ARG, "dp_engine_submit: engine is NULL");
    it.algo = dp_engine_algo_for(e, it.n);
    if (NULL == it.buf && it.n > 0)
        return dp_errorf(DP_ERR_ARG, "dp_engine_submit: buf is NULL with count %zu", it.n);
    if (DP_REDUCE_SUM != it.op && DP_REDUCE_AVG != it.op)
        return dp_errorf(DP_ERR_ARG, "dp_engine_submit: unknown reduce op %d", (int)it.op);

    if (!e->threaded) {
        if (DP_OK != e->err)
            return engine_error(e);
        double secs;
        dp_status st = engine_run(e, &it, e->submitted, &secs);
        engine_account(e, &it, st, secs);
        e->submitted++;
        e->completed++;
        return DP_OK == e->err ? DP_OK : engine_error(e); /* a non-finite range waits for wait_all */
    }

    pthread_mutex_lock(&e->mu);
    atomic_store(&e->busy, 0);
    while (e->submitted - e->completed >= DP_ENGINE_QUEUE_CAP && DP_OK == e->err)
        pthread_cond_wait(&e->cv_done, &e->mu);
    atomic_store(&e->busy, 1);
    dp_status st = e->err;
    if (DP_OK == st) {
        e->q[e->submitted % DP_ENGINE_QUEUE_CAP] = it;
        e->submitted++;
        pthread_cond_signal(&e->cv_work);
    }
    pthread_mutex_unlock(&e->mu);
    return DP_OK == st ? DP_OK : engine_error(e);
}

dp_status dp_engine_submit(dp_engine *e, float *buf, size_t n, dp_reduce_op op)
{
    return engine_submit(e, (engine_item){.buf = buf, .n = n, .op = op});
}

dp_status dp_engine_submit_codec(dp_engine *e, float *buf, size_t n, dp_reduce_op op,
                                 const dp_codec_config *cfg, float *residual)
{
    engine_item it = {.buf = buf, .n = n, .op = op, .residual = residual};
    if (NULL != cfg && (DP_CODEC_NONE != cfg->kind || 0 != cfg->wire_zstd_level ||
                        NULL != residual)) {
        dp_status st = dp_codec_config_check("dp_engine_submit_codec", cfg);
        if (DP_OK != st)
            return st;
        if (NULL != e && DP_ALLREDUCE_RING != e->algo && DP_ALLREDUCE_HIER != e->algo)
            return dp_errorf(DP_ERR_ARG, "dp_engine_submit_codec: codec %s needs the ring or hier "
                             "algorithm (the engine was created with %s)",
                             dp_codec_name(cfg->kind), dp_allreduce_algo_name(e->algo));
        it.coded = 1;
        it.cfg = *cfg;
    }
    return engine_submit(e, it);
}

dp_status dp_engine_wait_all(dp_engine *e)
{
    if (NULL == e)
        return dp_errorf(DP_ERR_ARG, "dp_engine_wait_all: engine is NULL");
    if (!e->threaded)
        return engine_take_status(e);
    pthread_mutex_lock(&e->mu);
    atomic_store(&e->busy, 0);
    while (e->completed != e->submitted)
        pthread_cond_wait(&e->cv_done, &e->mu);
    atomic_store(&e->busy, 1);
    dp_status st = engine_take_status(e);
    pthread_mutex_unlock(&e->mu);
    return st;
}

dp_allreduce_algo dp_engine_algo_for(const dp_engine *e, size_t n)
{
    return DP_ALLREDUCE_AUTO == e->algo ? dp_allreduce_table_choose(&e->table, (uint64_t)n * sizeof(float))
                                        : e->algo;
}

const dp_allreduce_table *dp_engine_table(const dp_engine *e)
{
    return DP_ALLREDUCE_AUTO == e->algo ? &e->table : NULL;
}

uint64_t dp_engine_submitted(dp_engine *e)
{
    if (e->threaded)
        pthread_mutex_lock(&e->mu);
    uint64_t n = e->submitted;
    if (e->threaded)
        pthread_mutex_unlock(&e->mu);
    return n;
}

void dp_engine_stats(dp_engine *e, dp_comm_stats *out)
{
    if (e->threaded)
        pthread_mutex_lock(&e->mu);
    *out = e->stats;
    if (e->threaded)
        pthread_mutex_unlock(&e->mu);
}

void dp_engine_free(dp_engine *e)
{
    if (NULL == e)
        return;
    if (e->threaded) {
        pthread_mutex_lock(&e->mu);
        e->stop = 1;
        pthread_cond_signal(&e->cv_work);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
    }
    pthread_cond_destroy(&e->cv_done);
    pthread_cond_destroy(&e->cv_work);
    pthread_mutex_destroy(&e->mu);
    dp_topo_free(e->topo);
    if (MPI_COMM_NULL != e->comm)
        MPI_Comm_free(&e->comm);
    dp_ring_ws_free(e->ws);
    free(e);
}
