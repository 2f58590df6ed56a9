/* Progress display and the metrics file of a training run (rank 0 only). */
#ifndef DP_TRAIN_REPORT_H
#define DP_TRAIN_REPORT_H

#include <stdio.h>

#include "dptrain/status.h"

typedef struct dp_report {
    FILE *metrics;      /* metrics.jsonl, appended; NULL when the run has no --out */
    int metrics_failed; /* a write failed (warned once): metrics are lost, checkpoints still fail loudly */
    int bar;            /* redraw one line on a TTY; else print plain lines */
    int quiet;
    double last_draw;   /* seconds, to rate-limit redraws */
    int last_decile;    /* plain mode prints at each tenth of an epoch */
} dp_report;

dp_status dp_report_open(dp_report *r, const char *out_dir, int progress, int quiet);
void dp_report_close(dp_report *r);

/*! One progress update inside an epoch. */
void dp_report_progress(dp_report *r, double now, int epoch, int epochs, long done, long total, double loss,
                        double acc, double samples_per_s, double eta_s);
/*! Clears the bar line before a normal line is printed. */
void dp_report_end_bar(dp_report *r);

/*! Appends one JSON object (already formatted, without newline) and flushes. */
void dp_report_json(dp_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

double dp_now(void);

#endif
