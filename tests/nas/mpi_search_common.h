/* What the search's MPI tests (mpi_search.c, mpi_search_levers.c) share: the Fashion-MNIST shards in the
 * test's temp dir and a tiny supernet configuration over them. Static functions in a header, not a .c:
 * mpi_check.h's CHECK counters belong to each program. */
#ifndef DP_TEST_MPI_SEARCH_COMMON_H
#define DP_TEST_MPI_SEARCH_COMMON_H

#include <stdio.h>

#include "dptrain/data.h"
#include "dptrain/search.h"
#include "mpi_check.h"

static char tmp[256], shards[300];

/* 2 cells x 4 channels, batch and limit as given, eval_limit held-out images per epoch, quiet */
static dp_search_config tiny_config(int batch, long limit, long eval_limit)
{
    dp_search_config cfg;
    dp_search_config_defaults(&cfg);
    snprintf(cfg.run.data, sizeof cfg.run.data, "%s", shards);
    cfg.net.layers = 2;
    cfg.net.channels = 4;
    cfg.run.batch = batch;
    cfg.run.limit = limit;
    cfg.eval_limit = eval_limit;
    cfg.run.quiet = 1;
    cfg.run.progress = 0;
    return cfg;
}

/* MPI up, tmp made, the shards imported by rank 0 before any rank reads them */
static void search_test_start(int *argc, char ***argv, const char *name)
{
    mpi_start(argc, argv, name, tmp, sizeof tmp);
    snprintf(shards, sizeof shards, "%s/fmnist", tmp);
    if (g_rank == 0 && dp_import_fashion_mnist("/usr/share/datasets/fashion-mnist", shards, 4, NULL) != DP_OK) {
        fprintf(stderr, "import: %s\n", dp_errmsg());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

#endif
