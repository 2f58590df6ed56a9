/* Fault injection for the reliability tests: a seam, off unless the
 * environment variable DP_FAULT names a fault. Production code calls
 * dp_fault_point() at the places where a real cluster hurts a job (inside
 * forward, while the allreduce is in flight, halfway through a checkpoint
 * write); when the armed fault matches the point, the rank and the step, it
 * happens there for real: SIGKILL, SIGSTOP, a compute hang, or a NaN the
 * caller plants.
 *
 *   DP_FAULT=ACTION@POINT[:rank=R][:step=S][:ms=M][:p=P]
 *     ACTION  kill | stop | hang | nan | enospc
 *             | delay (sleep M ms every time the point is reached: a straggler of known slowness;
 *               it repeats, unlike the others, e.g. delay@step:rank=1:ms=20)
 *     POINT   forward | allreduce | write | step | load (train, before a rank reads its shards)
 *             | open (inside every input file open, dptrain/infile.h: a rank stuck in I/O)
 *     rank    only on this rank (default: every rank)
 *     step    only at this optimizer step, counted from 1 (default: the first
 *             time the point is reached)
 *     ms      delay only: milliseconds, in (0, 600000]
 *     p       delay only: each (rank, step) is delayed with probability P, in (0, 1] (default 1), drawn
 *             from a hash of the two: jitter that moves between ranks, e.g. delay@step:ms=20:p=0.25
 *
 * Unarmed, a point costs one load and one branch. */
#ifndef DPTRAIN_FAULT_H
#define DPTRAIN_FAULT_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dp_fault_action {
    DP_FAULT_NONE = 0,
    DP_FAULT_NAN,    /* the caller makes a value NaN */
    DP_FAULT_ENOSPC, /* the caller fails its write with ENOSPC */
} dp_fault_action;

/*! Tells the seam which rank this process is and which step it is on (the
 *  trainer calls it once per step). */
void dp_fault_context(int rank, long step);

/*! At point `where`: kill/stop/hang happen here and do not return (stop
 *  returns once the process is continued); nan and enospc are returned for
 *  the caller to act on. Each armed fault fires once, but delay, which
 *  sleeps and returns DP_FAULT_NONE at every matching pass. */
dp_fault_action dp_fault_point(const char *where);

#ifdef __cplusplus
}
#endif
#endif
