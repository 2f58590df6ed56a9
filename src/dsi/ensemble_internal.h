/* Private to the dsi room: what evaluate.c needs of the ensemble that
 * dsi_query.c defines. */
#ifndef DP_DSI_ENSEMBLE_INTERNAL_H
#define DP_DSI_ENSEMBLE_INTERNAL_H

#include <mpi.h>

#include "dptrain/dsi_train.h"

/* The communicator the ensemble's members are spread over (MPI_COMM_NULL:
 * every member in this process). The ensemble does not own it. */
MPI_Comm dsi_ensemble_comm(const dp_dsi_ensemble *e);

#endif
