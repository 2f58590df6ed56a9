/* dptrain: the command-line front. Initialises MPI (the trainer is an MPI
 * program and runs as a singleton without mpirun), dispatches a subcommand,
 * finalises. Nothing calls into cli/. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

static const char usage[] =
    "usage: dptrain <command> [options]\n"
    "\n"
    "commands:\n"
    "  train      train an image classifier on a shard set\n"
    "  shard      convert a dataset into shards (fashion-mnist)\n"
    "  help CMD   the options of a command (also: dptrain CMD --help)\n"
    "\n"
    "Run `dptrain train --help` for the training options. README.md has the quick start.\n";

static const struct {
    const char *name;
    int (*fn)(int, char **);
} commands[] = {{"train", dp_cmd_train}, {"shard", dp_cmd_shard}};

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *name = argv[1];
    int help = !strcmp(name, "help");
    if (help) {
        if (argc < 3) {
            fputs(usage, stdout);
            return 0;
        }
        name = argv[2];
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(name, commands[i].name)) continue;
        char *hargv[] = {argv[help ? 2 : 1], "--help", NULL};
        if (help) return commands[i].fn(2, hargv);
        int provided;
        if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            fprintf(stderr, "dptrain: MPI_Init_thread failed\n");
            return 1;
        }
        int size = 1;
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        int rc;
        if (size > 1) {
            fprintf(stderr, "dptrain: started on %d ranks, but this build trains on one rank only "
                            "(data-parallel training is not built yet)\n", size);
            rc = 2;
        } else {
            rc = commands[i].fn(argc - 1, argv + 1);
        }
        MPI_Finalize();
        return rc;
    }
    fprintf(stderr, "dptrain: unknown command '%s'\n%s", name, usage);
    return 2;
}
