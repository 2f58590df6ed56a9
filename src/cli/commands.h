/* The subcommands of `dptrain`; each returns the process exit code. */
#ifndef DP_CLI_COMMANDS_H
#define DP_CLI_COMMANDS_H

#include <mpi.h>

/* comm: the ranks the command runs on (MPI_COMM_WORLD, or MPI_COMM_SELF for help texts) */
int dp_cmd_train(int argc, char **argv, MPI_Comm comm);
int dp_cmd_shard(int argc, char **argv, MPI_Comm comm);
int dp_cmd_search(int argc, char **argv, MPI_Comm comm);
int dp_cmd_dsi_prepare(int argc, char **argv, MPI_Comm comm);
int dp_cmd_dsi_train(int argc, char **argv, MPI_Comm comm);
int dp_cmd_dsi_query(int argc, char **argv, MPI_Comm comm);
int dp_cmd_dsi_eval(int argc, char **argv, MPI_Comm comm);

#endif
