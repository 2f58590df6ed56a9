/* What `dptrain eval` and `predict` share: the --run and --data flags, opening
 * a run on every rank (rank 0 first, so a bad run is said once), JSON strings,
 * and the confusion matrix's heat map. */
#ifndef DP_CLI_TRAINED_CLI_H
#define DP_CLI_TRAINED_CLI_H

#include <mpi.h>
#include <stdio.h>

#include "cli/options.h"
#include "dptrain/sync.h"
#include "dptrain/trained.h"

typedef struct dp_trained_cli {
    char run[512];   /* --run: the run directory */
    char data[512];  /* --data: "" = the run's own data set (filled by dp_trained_cli_open) */
    int eval_batch;
    int threads;
} dp_trained_cli;

extern const dp_cli_opt dp_trained_cli_run, dp_trained_cli_data, dp_trained_cli_split, dp_trained_cli_limit;

void dp_trained_cli_defaults(dp_trained_cli *c);
/* --run is required. */
dp_status dp_trained_cli_check(const dp_trained_cli *c);
/* A sync over comm (statistics only); the run loaded into *t on every rank, rank 0 first; with data
 * (data_needed), --data (or the run's own data set) checked against the model. Ranks other than 0 return
 * DP_ERR_MPI for an error rank 0 reports. The caller frees sync (also on error) and t. */
dp_status dp_trained_cli_open(dp_trained_cli *c, MPI_Comm comm, int data_needed, dp_sync *sync, dp_trained *t);
/* The confusion matrix cm [nc * nc] (rows true, columns predicted) into png.dat (predicted, true, count,
 * share of the row) and, with gnuplot on PATH, drawn as a heat map into png; without gnuplot, says so on
 * stderr and writes the data file only. */
dp_status dp_confusion_png(const char *png, const double *cm, int nc, char (*names)[DP_CLASS_NAME_MAX],
                           const char *title);

#endif
