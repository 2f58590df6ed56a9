/* DP_FAULT parsing and firing (see dptrain/fault.h). The variable is read once;
 * a malformed value is reported on stderr and ignored, so a typo in a test
 * shows up instead of silently testing nothing. */
#include "dptrain/fault.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
    int parsed, armed, fired;
    char action[16], point[16];
    int rank;  /* -1: any */
    long step; /* -1: first reached */
    double ms; /* delay: milliseconds added each time the point is reached */
    double p;  /* delay: ... at each (rank, step) with this probability (1: always) */
} fault = {.rank = -1, .step = -1, .p = 1};

static int cur_rank;
static long cur_step;

static void parse(void)
{
    fault.parsed = 1;
    const char *s = getenv("DP_FAULT");
    if (!s || !*s) return;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    char *at = strchr(buf, '@');
    if (!at) goto bad;
    *at = 0;
    char *rest = at + 1, *colon = strchr(rest, ':');
    if (colon) *colon = 0;
    snprintf(fault.action, sizeof fault.action, "%.15s", buf);
    snprintf(fault.point, sizeof fault.point, "%.15s", rest);
    for (char *kv = colon ? colon + 1 : NULL; kv && *kv;) {
        char *next = strchr(kv, ':');
        if (next) *next++ = 0;
        char *end;
        if (!strncmp(kv, "rank=", 5)) fault.rank = (int)strtol(kv + 5, &end, 10);
        else if (!strncmp(kv, "step=", 5)) fault.step = strtol(kv + 5, &end, 10);
        else if (!strncmp(kv, "ms=", 3)) fault.ms = strtod(kv + 3, &end);
        else if (!strncmp(kv, "p=", 2)) fault.p = strtod(kv + 2, &end);
        else goto bad;
        if (*end) goto bad;
        kv = next;
    }
    static const char *actions[] = {"kill", "stop", "hang", "nan", "enospc", "delay"};
    for (size_t i = 0; i < sizeof actions / sizeof *actions; i++)
        if (!strcmp(fault.action, actions[i])) fault.armed = 1;
    /* a delay needs its length (and a bounded one: a typo must not hang the job); no other action takes one */
    int delay = !strcmp(fault.action, "delay");
    if (delay ? !(fault.ms > 0 && fault.ms <= 600000 && fault.p > 0 && fault.p <= 1) : fault.ms != 0 || fault.p != 1)
        fault.armed = 0;
    if (!fault.armed) goto bad;
    return;
bad:
    fault.armed = 0;
    fprintf(stderr, "dptrain: ignoring DP_FAULT='%s' (want ACTION@POINT[:rank=R][:step=S], "
                    "delay with :ms=M in (0, 600000] and :p=P in (0, 1])\n", s);
}

void dp_fault_context(int rank, long step)
{
    cur_rank = rank;
    cur_step = step;
}

dp_fault_action dp_fault_point(const char *where)
{
    if (!fault.parsed) parse();
    if (!fault.armed || fault.fired || strcmp(where, fault.point)) return DP_FAULT_NONE;
    if ((fault.rank >= 0 && fault.rank != cur_rank) || (fault.step >= 0 && fault.step != cur_step))
        return DP_FAULT_NONE;
    if (!strcmp(fault.action, "delay")) {
        /* a straggler: this rank's compute takes ms longer every time it passes the point (never
         * "fired": it repeats), so a synchronous job's step should grow by about ms */
        if (fault.p < 1) {
            /* jitter: a pass is delayed or not as a hash of (rank, step) says, the same in every run, so
             * each rank is slow on its own steps, as with noisy neighbours on a shared node */
            uint64_t h = ((uint64_t)cur_rank << 40) ^ (uint64_t)cur_step ^ 0x9e3779b97f4a7c15ull;
            h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
            h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
            h ^= h >> 31;
            if ((double)(h >> 11) * 0x1p-53 >= fault.p) return DP_FAULT_NONE;
        }
        double s = fault.ms / 1000.0;
        struct timespec d = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
        while (nanosleep(&d, &d) != 0) {}
        return DP_FAULT_NONE;
    }
    fault.fired = 1;
    struct timespec ts; /* wall clock, so a test can time how long the job takes to notice */
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(stderr, "dptrain: DP_FAULT: %s at %s, rank %d, step %ld, time %.3f\n", fault.action, where, cur_rank,
            cur_step, (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec);
    fflush(stderr);
    if (!strcmp(fault.action, "kill")) raise(SIGKILL);
    if (!strcmp(fault.action, "stop")) raise(SIGSTOP);
    if (!strcmp(fault.action, "hang"))
        for (;;) pause();
    if (!strcmp(fault.action, "nan")) return DP_FAULT_NAN;
    if (!strcmp(fault.action, "enospc")) return DP_FAULT_ENOSPC;
    return DP_FAULT_NONE;
}
