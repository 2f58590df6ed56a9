/* The stall watchdog (see comm.h): one thread per rank, its own communicator.
 *
 *   training thread                 watchdog thread (every 100 ms)
 *   phase("forward", step)          answer any query: send my report
 *   wait_begin("gradient ...")      waiting, and no ring message for timeout_s?
 *     ring: note_wait(left, s)        -> query every other rank
 *     ring: note_progress()           -> collect answers for a grace period
 *   wait_end()                        -> print one line per rank, MPI_Abort
 *   dp_io_begin("opening", path)      inside one file operation for timeout_s?
 *   dp_io_end()  (dptrain/infile.h)   -> the same report (start-up reads, 1 rank too)
 *
 * Everything the training and communication threads publish is a relaxed
 * atomic store: the hot path takes no lock and allocates nothing. The watchdog
 * needs MPI_THREAD_MULTIPLE because it probes and sends while the other threads
 * sit in MPI calls. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm/comm_internal.h"
#include "dptrain/infile.h"

enum { TAG_QUERY = 7101, TAG_REPLY = 7102 };

static _Atomic uint64_t wd_item, wd_progress;
static _Atomic int wd_peer = -1, wd_step = -1, wd_P;

/* a new range forgets the previous one's ring position: MPI_Allreduce notes none */
void dp_wd_note_item(uint64_t index)
{
    atomic_store_explicit(&wd_peer, -1, memory_order_relaxed);
    atomic_store_explicit(&wd_item, index, memory_order_relaxed);
}

void dp_wd_note_wait(int peer, int step, int P)
{
    atomic_store_explicit(&wd_peer, peer, memory_order_relaxed);
    atomic_store_explicit(&wd_step, step, memory_order_relaxed);
    atomic_store_explicit(&wd_P, P, memory_order_relaxed);
}

void dp_wd_note_progress(void) { atomic_fetch_add_explicit(&wd_progress, 1, memory_order_relaxed); }

/* What one rank says about itself; sent as bytes between identical builds. */
typedef struct wd_report {
    int32_t rank, waiting, bucket, nbuckets, peer, ring_step, ring_P, answered;
    int64_t step;
    double secs; /* in the current wait, or in the current phase */
    double io_secs; /* in the current file operation (0: none) */
    char what[64];
    char io[128]; /* that operation: "opening PATH" */
} wd_report;

struct dp_watchdog {
    MPI_Comm comm;
    int rank, size;
    double timeout;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    const char *_Atomic phase;
    _Atomic long step;
    _Atomic double phase_since;
    const char *_Atomic wait_what; /* NULL: not waiting */
    _Atomic double wait_since;
    _Atomic uint64_t item_base;
    _Atomic int nitems;
    wd_report *reports; /* [size], the stall report's answers */
};

static void my_report(dp_watchdog *w, wd_report *r)
{
    memset(r, 0, sizeof *r);
    double now = dp_comm_now_s();
    const char *what = atomic_load(&w->wait_what);
    r->rank = w->rank;
    r->answered = 1;
    r->step = atomic_load(&w->step);
    r->bucket = r->peer = r->ring_step = -1;
    r->io_secs = dp_io_busy(r->io, sizeof r->io);
    if (what) {
        r->waiting = 1;
        r->secs = now - atomic_load(&w->wait_since);
        snprintf(r->what, sizeof r->what, "%s", what);
        int n = atomic_load(&w->nitems);
        if (n > 0) {
            uint64_t item = atomic_load_explicit(&wd_item, memory_order_relaxed), base = atomic_load(&w->item_base);
            r->bucket = item >= base && item - base < (uint64_t)n ? (int)(item - base) : -1;
            r->nbuckets = n;
            r->peer = atomic_load_explicit(&wd_peer, memory_order_relaxed);
            r->ring_step = atomic_load_explicit(&wd_step, memory_order_relaxed);
            r->ring_P = atomic_load_explicit(&wd_P, memory_order_relaxed);
        }
    } else {
        const char *ph = atomic_load(&w->phase);
        snprintf(r->what, sizeof r->what, "%s", ph ? ph : "setting up");
        r->secs = now - atomic_load(&w->phase_since);
    }
}

static void describe(const wd_report *r, char *out, size_t cap)
{
    if (!r->answered) {
        snprintf(out, cap, "rank %d: no answer (stopped, stuck outside the process's control, or gone)", r->rank);
        return;
    }
    char when[48] = "before the first step"; /* step 0: set-up (data, agreements, checkpoint) */
    if (r->step > 0) snprintf(when, sizeof when, "of step %lld", (long long)r->step);
    if (!r->waiting && r->io_secs > 0) {
        snprintf(out, cap, "rank %d: not waiting on other ranks: stuck %.1f s %s, in %s %s", r->rank, r->io_secs,
                 r->io, r->what, when);
        return;
    }
    if (!r->waiting) {
        snprintf(out, cap, "rank %d: not waiting on other ranks: in %s %s for %.1f s", r->rank, r->what, when, r->secs);
        return;
    }
    /* the bucket is known for any allreduce; the ring step and peer only when our ring carries it
     * (MPI_Allreduce does not say whom it waits for) */
    char where[160] = "";
    size_t n = 0;
    if (r->bucket >= 0) n = (size_t)snprintf(where, sizeof where, ", bucket %d of %d", r->bucket + 1, r->nbuckets);
    if (r->bucket >= 0 && r->peer >= 0 && n < sizeof where) {
        int P = r->ring_P, s = r->ring_step;
        snprintf(where + n, sizeof where - n, ", ring %s step %d of %d, waiting for rank %d",
                 s < P - 1 ? "reduce-scatter" : "allgather", s < P - 1 ? s + 1 : s - (P - 1) + 1, P - 1, r->peer);
    }
    snprintf(out, cap, "rank %d: waiting %.1f s in the %s %s%s", r->rank, r->secs, r->what, when, where);
}

static void answer_queries(dp_watchdog *w)
{
    for (;;) {
        int flag = 0;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_QUERY, w->comm, &flag, &st) != MPI_SUCCESS || !flag) return;
        int dummy;
        MPI_Recv(&dummy, 1, MPI_INT, st.MPI_SOURCE, TAG_QUERY, w->comm, MPI_STATUS_IGNORE);
        wd_report r;
        my_report(w, &r);
        MPI_Send(&r, (int)sizeof r, MPI_BYTE, st.MPI_SOURCE, TAG_REPLY, w->comm);
    }
}

/* Asks everyone, waits a grace period for answers (answering theirs, since
 * the others may be stalled too), prints, and ends the job. */
static void stall(dp_watchdog *w)
{
    double grace = w->timeout / 2 < 1 ? 1 : w->timeout / 2 > 5 ? 5 : w->timeout / 2;
    for (int i = 0; i < w->size; i++) w->reports[i] = (wd_report){.rank = i};
    my_report(w, &w->reports[w->rank]);
    static int query;
    for (int i = 0; i < w->size; i++) {
        if (i == w->rank) continue;
        MPI_Request req; /* never waited for: a dead rank would hold it forever */
        MPI_Isend(&query, 1, MPI_INT, i, TAG_QUERY, w->comm, &req);
        MPI_Request_free(&req);
    }
    int answers = 1;
    for (double t0 = dp_comm_now_s(); answers < w->size && dp_comm_now_s() - t0 < grace;) {
        answer_queries(w);
        int flag = 0;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_REPLY, w->comm, &flag, &st) == MPI_SUCCESS && flag) {
            wd_report r;
            MPI_Recv(&r, (int)sizeof r, MPI_BYTE, st.MPI_SOURCE, TAG_REPLY, w->comm, MPI_STATUS_IGNORE);
            if (st.MPI_SOURCE >= 0 && st.MPI_SOURCE < w->size && !w->reports[st.MPI_SOURCE].answered) {
                r.rank = st.MPI_SOURCE;
                r.what[sizeof r.what - 1] = 0;
                r.io[sizeof r.io - 1] = 0;
                w->reports[st.MPI_SOURCE] = r;
                answers++;
            }
        } else {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    char line[512];
    describe(&w->reports[w->rank], line, sizeof line);
    fprintf(stderr, "dptrain watchdog: rank %d: no progress for %.0f s (--watchdog %g); every rank's state:\n", w->rank,
            w->timeout, w->timeout);
    for (int i = 0; i < w->size; i++) {
        describe(&w->reports[i], line, sizeof line);
        fprintf(stderr, "  %s\n", line);
    }
    /* Ranks waiting point at each other; the stall comes from a rank that is not
     * waiting, or not answering. */
    char sus[256] = "";
    size_t len = 0;
    for (int i = 0; i < w->size && len < sizeof sus - 16; i++)
        if (!w->reports[i].answered || !w->reports[i].waiting)
            len += (size_t)snprintf(sus + len, sizeof sus - len, "%s%d", len ? ", " : "", i);
    if (len)
        fprintf(stderr, "dptrain watchdog: suspect rank(s): %s (not in a collective or not answering)\n", sus);
    else
        fprintf(stderr, "dptrain watchdog: every rank is waiting: a message was lost (network) or the ranks "
                        "called different collectives\n");
    fprintf(stderr, "dptrain watchdog: aborting the job\n");
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 3);
}

static void *watch(void *arg)
{
    dp_watchdog *w = arg;
    uint64_t seen = atomic_load_explicit(&wd_progress, memory_order_relaxed);
    double last = dp_comm_now_s();
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        if (w->stop) break;
        pthread_mutex_unlock(&w->mu);
        answer_queries(w);
        uint64_t p = atomic_load_explicit(&wd_progress, memory_order_relaxed);
        double now = dp_comm_now_s();
        if (p != seen) seen = p, last = now;
        if (atomic_load(&w->wait_what)) {
            double since = atomic_load(&w->wait_since);
            if (now - (last > since ? last : since) > w->timeout) stall(w);
        } else {
            /* a rank stuck in one read or open (a hung file system, start-up included) stalls
             * the job as surely as a lost message, and may be the only rank to know it */
            char io[128];
            if (dp_io_busy(io, sizeof io) > w->timeout) stall(w);
        }
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

dp_status dp_watchdog_create(MPI_Comm comm, double timeout_s, dp_watchdog **out)
{
    *out = NULL;
    int size = 1, provided = MPI_THREAD_SINGLE;
    if (comm == MPI_COMM_NULL || timeout_s <= 0) return DP_OK;
    MPI_Comm_size(comm, &size);
    MPI_Query_thread(&provided);
    /* one rank too: it has no one to wait for, but may be stuck in a file operation */
    if (provided < MPI_THREAD_MULTIPLE) return DP_OK; /* the same answer on every rank */
    dp_watchdog *w = calloc(1, sizeof *w);
    if (!w || !(w->reports = calloc((size_t)size, sizeof *w->reports))) {
        free(w);
        return dp_errorf(DP_ERR_NOMEM, "watchdog: out of memory");
    }
    w->size = size;
    w->timeout = timeout_s;
    MPI_Comm_rank(comm, &w->rank);
    atomic_store(&w->phase_since, dp_comm_now_s());
    if (MPI_Comm_dup(comm, &w->comm) != MPI_SUCCESS) {
        free(w->reports);
        free(w);
        return dp_errorf(DP_ERR_MPI, "watchdog: MPI_Comm_dup failed");
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, watch, w) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        MPI_Comm_free(&w->comm);
        free(w->reports);
        free(w);
        return dp_errorf(DP_ERR_NOMEM, "watchdog: pthread_create failed");
    }
    *out = w;
    return DP_OK;
}

void dp_watchdog_free(dp_watchdog *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    MPI_Comm_free(&w->comm);
    free(w->reports);
    free(w);
}

void dp_watchdog_phase(dp_watchdog *w, const char *phase, long step)
{
    if (!w) return;
    if (atomic_load_explicit(&w->phase, memory_order_relaxed) != phase) {
        atomic_store(&w->phase, phase);
        atomic_store(&w->phase_since, dp_comm_now_s());
    }
    atomic_store(&w->step, step);
}

void dp_watchdog_wait_begin(dp_watchdog *w, const char *what, uint64_t item_base, int nitems)
{
    if (!w) return;
    atomic_store(&w->item_base, item_base);
    atomic_store(&w->nitems, nitems);
    atomic_store(&w->wait_since, dp_comm_now_s());
    atomic_store(&w->wait_what, what);
}

void dp_watchdog_wait_end(dp_watchdog *w)
{
    if (!w) return;
    atomic_store(&w->wait_what, NULL);
    /* back in the phase it left: computing since now */
    atomic_store(&w->phase_since, dp_comm_now_s());
}
