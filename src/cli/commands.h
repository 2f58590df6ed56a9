/* The subcommands of `dptrain`; each returns the process exit code. */
#ifndef DP_CLI_COMMANDS_H
#define DP_CLI_COMMANDS_H

#include <mpi.h>

/* Flags first, MPI second: main() calls a command with comm == MPI_COMM_NULL before MPI starts, and the
 * command parses and checks its flags, prints its help text or its flag error, and returns the exit code,
 * or DP_CLI_FLAGS_OK to be called again with MPI_COMM_WORLD. A bad flag or --help then costs no MPI
 * start-up (0.35 s for a singleton here), and a job of P ranks prints one message, not P. */
#define DP_CLI_FLAGS_OK (-1)

/* This process's rank in comm; before MPI starts (MPI_COMM_NULL), the rank the launcher put in the
 * environment (Open MPI, PMIx, PMI, Slurm), or 0 without one. */
int dp_cli_rank(MPI_Comm comm);

int dp_cmd_train(int argc, char **argv, MPI_Comm comm);
int dp_cmd_shard(int argc, char **argv, MPI_Comm comm);
int dp_cmd_search(int argc, char **argv, MPI_Comm comm);
int dp_cmd_dsi_prepare(int argc, char **argv, MPI_Comm comm);
int dp_cmd_dsi_train(int argc, char **argv, MPI_Comm comm);
int dp_cmd_dsi_query(int argc, char **argv, MPI_Comm comm);
int dp_cmd_dsi_eval(int argc, char **argv, MPI_Comm comm);

#endif
