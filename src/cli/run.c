/* The steps every command takes, in one place (dp_cli_run, commands.h). */
#include <signal.h>
#include <stdio.h>

#include "cli/commands.h"
#include "dptrain/task.h"

static const char stop_footer[] = "SIGINT/SIGTERM: the current step finishes, a checkpoint is written, exit 130/143.\n";

static void on_signal(int sig) { dp_drive_request_stop(sig); }

int dp_cli_run(const dp_cli_command *c, int argc, char **argv, MPI_Comm comm)
{
    int rank = dp_cli_rank(comm), ranks = 0, help = 0, rest = argc;
    if (comm != MPI_COMM_NULL) MPI_Comm_size(comm, &ranks);
    c->defaults();
    dp_status rc = c->operands ? dp_cli_parse_pos(c->name, argc, argv, c->binds, &help, &rest)
                               : dp_cli_parse(c->name, argc, argv, c->binds, &help);
    if (help) { /* defaults as they are, whatever flags came before --help */
        c->defaults();
        dp_cli_help(stdout, c->header, c->binds, c->stop_on_signal ? stop_footer : NULL);
        return 0;
    }
    if (rc == DP_OK && c->operands) rc = c->operands(argc - rest, argv + rest);
    if (rc == DP_OK && c->check) rc = c->check(ranks);
    if (rc != DP_OK) {
        /* every rank parsed the same flags; one message is enough */
        if (rank == 0) fprintf(stderr, "dptrain %s: %s%s\n", c->name, rc == DP_ERR_ARG ? "" : "error: ", dp_errmsg());
        return rc == DP_ERR_ARG ? 2 : 1;
    }
    if (comm == MPI_COMM_NULL && !c->no_mpi) return DP_CLI_FLAGS_OK;
    if (c->stop_on_signal) {
        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    rc = c->run(comm, rank);
    if (rc != DP_OK) {
        /* agreed errors are reported by rank 0; a rank-local one by its rank */
        int agreed = rc == DP_ERR_MPI || (rc == DP_ERR_NONFINITE && !c->split_world);
        if (rank == 0 || !agreed) fprintf(stderr, "dptrain %s: error: %s\n", c->name, dp_errmsg());
        return 1;
    }
    if (rank != 0 || !c->report) return 0;
    int stopped = c->report();
    /* the agreed signal: a run stopped because another rank was signalled exits as if this one was */
    int sig = dp_drive_stop_signal();
    return stopped && sig ? 128 + sig : 0;
}
