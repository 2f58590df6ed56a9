/* The subcommands of `dptrain`; each returns the process exit code. */
#ifndef DP_CLI_COMMANDS_H
#define DP_CLI_COMMANDS_H

#include <mpi.h>

#include "cli/options.h"

/* Flags first, MPI second: main() calls a command with comm == MPI_COMM_NULL before MPI starts, and the
 * command parses and checks its flags, prints its help text or its flag error, and returns the exit code,
 * or DP_CLI_FLAGS_OK to be called again with MPI_COMM_WORLD. A bad flag or --help then costs no MPI
 * start-up (0.35 s for a singleton here), and a job of P ranks prints one message, not P. */
#define DP_CLI_FLAGS_OK (-1)

/* This process's rank in comm; before MPI starts (MPI_COMM_NULL), the rank the launcher put in the
 * environment (Open MPI, PMIx, PMI, Slurm), or 0 without one. */
int dp_cli_rank(MPI_Comm comm);

/* A command's parts, for dp_cli_run. The bindings point into the command's file-static configuration. */
typedef struct dp_cli_command {
    const char *name;          /* "train": messages start with "dptrain train: " */
    const char *header;        /* --help text before the flags */
    const dp_cli_bind *binds;
    void (*defaults)(void);    /* the bound fields' defaults, before parsing and for --help */
    dp_status (*operands)(int n, char **args); /* the arguments after the flags (NULL: none are taken) */
    dp_status (*check)(int ranks); /* after parsing and operands (ranks: 0 before MPI starts); NULL: none */
    dp_status (*run)(MPI_Comm comm, int rank);
    int (*report)(void);       /* rank 0, after a run that succeeded: prints its result, returns 1 if it stopped
                                * early; NULL: run prints */
    int stop_on_signal;        /* SIGINT/SIGTERM: finish the step, checkpoint, stop, exit 128 + signal */
    int split_world;           /* run splits comm into parts that agree on a non-finite value only among themselves */
    int no_mpi;                /* run right after the flags, before MPI starts (comm MPI_COMM_NULL): a command
                                * that talks to no other rank pays no MPI start-up */
} dp_cli_command;

/* Parses the flags (--help: prints them with their defaults), checks them: a bad flag is exit 2, a file a flag
 * names that does not load exit 1, each said once, by rank 0. Returns DP_CLI_FLAGS_OK before MPI starts; with
 * MPI, runs: an error is exit 1, said by rank 0 if every rank agrees on it, else by the rank that met it. */
int dp_cli_run(const dp_cli_command *c, int argc, char **argv, MPI_Comm comm);

int dp_cmd_train(int argc, char **argv, MPI_Comm comm);
int dp_cmd_shard(int argc, char **argv, MPI_Comm comm);
int dp_cmd_search(int argc, char **argv, MPI_Comm comm);
int dp_cmd_summary(int argc, char **argv, MPI_Comm comm);
int dp_cmd_dsi_prepare(int argc, char **argv, MPI_Comm comm);
int dp_cmd_dsi_train(int argc, char **argv, MPI_Comm comm);
int dp_cmd_dsi_query(int argc, char **argv, MPI_Comm comm);
int dp_cmd_dsi_eval(int argc, char **argv, MPI_Comm comm);
int dp_cmd_eval(int argc, char **argv, MPI_Comm comm);
int dp_cmd_predict(int argc, char **argv, MPI_Comm comm);
int dp_cmd_export(int argc, char **argv, MPI_Comm comm);
int dp_cmd_tune_allreduce(int argc, char **argv, MPI_Comm comm);

#endif
