/* The `dptrain shard` formats of cmd_shard_user.c: argv[0] is the format name, the inputs follow, then the
 * flags. Called twice like every command (commands.h): comm == MPI_COMM_NULL parses and checks the flags
 * (returns an exit code or DP_CLI_FLAGS_OK), then rank 0 imports. */
#ifndef DP_CLI_SHARD_USER_H
#define DP_CLI_SHARD_USER_H

#include <mpi.h>

int dp_shard_image_folder(int argc, char **argv, MPI_Comm comm, int rank);
int dp_shard_csv(int argc, char **argv, MPI_Comm comm, int rank);
int dp_shard_npy(int argc, char **argv, MPI_Comm comm, int rank);

#endif
